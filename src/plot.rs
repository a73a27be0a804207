//! Figures: UMAP by cluster and by category, QC violins, marker dot plot, PCA elbow.
//!
//! Every function writes the same figure twice, as `<stem>.png` and `<stem>.svg`, and returns
//! both paths. Drawing uses `plotters` (pure Rust) with the bundled DejaVu Sans font
//! (`assets/fonts/`, Bitstream Vera / DejaVu license), so no system font or C library is
//! needed. Inputs are plain slices and arrays. Colours follow Scanpy: its 20-colour default
//! categorical palette (`scanpy.plotting.palettes.default_20`) for up to 20 categories, its
//! 28-colour one for up to 28, its 102-colour one beyond; the dot plot uses the `Reds` colour
//! map as `sc.pl.dotplot` does.

mod raster;

use crate::error::{Error, Result};
use ndarray::ArrayView2;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
/// The font family the bundled font is registered under.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the bundled font (once per process) for every figure of the crate.
pub(crate) fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            // the bundled file is a valid TrueType font; a failure would show as a drawing error
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

/// Options shared by the figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Figure width in pixels (UMAP, QC, elbow; the dot plot sizes itself from its content).
    /// Default 1000.
    pub width: u32,
    /// Figure height in pixels. Default 800.
    pub height: u32,
    /// Point radius in pixels for scatter plots; `None` = `clamp(90 / sqrt(n), 1, 5)`.
    /// Default `None`.
    pub point_radius: Option<f32>,
    /// Figure title; `None` = a title naming the content. Default `None`.
    pub title: Option<String>,
    /// Seed of the drawing order of points (shuffled so no group is always on top) and of the
    /// jitter in the QC panel. Default 0.
    pub seed: u64,
    /// Scatter plots of more points than this embed the points in their SVG as one PNG
    /// image (under the vector title, axes, labels and legend) instead of one circle element
    /// per point; the PNG figure always draws its points straight into its pixel buffer.
    /// Default 20,000 (a 50,000-point UMAP was a 4.7 MB SVG of circles).
    pub raster_points_above: usize,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            width: 1000,
            height: 800,
            point_radius: None,
            title: None,
            seed: 0,
            raster_points_above: 20_000,
        }
    }
}

impl PlotOptions {
    fn check(&self) -> Result<()> {
        if !(200..=20_000).contains(&self.width) {
            return Err(Error::option("width", "must be 200 to 20,000 pixels"));
        }
        if !(200..=20_000).contains(&self.height) {
            return Err(Error::option("height", "must be 200 to 20,000 pixels"));
        }
        if let Some(r) = self.point_radius {
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::option("point_radius", "must be a positive number"));
            }
        }
        Ok(())
    }
}

const DEFAULT_20: [u32; 20] = [
    0x1f77b4, 0xff7f0e, 0x279e68, 0xd62728, 0xaa40fc, 0x8c564b, 0xe377c2, 0xb5bd61, 0x17becf,
    0xaec7e8, 0xffbb78, 0x98df8a, 0xff9896, 0xc5b0d5, 0xc49c94, 0xf7b6d2, 0xdbdb8d, 0x9edae5,
    0xad494a, 0x8c6d31,
];
const DEFAULT_28: [u32; 28] = [
    0x023fa5, 0x7d87b9, 0xbec1d4, 0xd6bcc0, 0xbb7784, 0x8e063b, 0x4a6fe3, 0x8595e1, 0xb5bbe3,
    0xe6afb9, 0xe07b91, 0xd33f6a, 0x11c638, 0x8dd593, 0xc6dec7, 0xead3c6, 0xf0b98d, 0xef9708,
    0x0fcfc0, 0x9cded6, 0xd5eae7, 0xf3e1eb, 0xf6c4e1, 0xf79cd4, 0x7f7f7f, 0xc7c7c7, 0x1ce6ff,
    0x336600,
];
const DEFAULT_102: [u32; 102] = [
    0xFFFF00, 0x1CE6FF, 0xFF34FF, 0xFF4A46, 0x008941, 0x006FA6, 0xA30059, 0xFFDBE5, 0x7A4900,
    0x0000A6, 0x63FFAC, 0xB79762, 0x004D43, 0x8FB0FF, 0x997D87, 0x5A0007, 0x809693, 0x6A3A4C,
    0x1B4400, 0x4FC601, 0x3B5DFF, 0x4A3B53, 0xFF2F80, 0x61615A, 0xBA0900, 0x6B7900, 0x00C2A0,
    0xFFAA92, 0xFF90C9, 0xB903AA, 0xD16100, 0xDDEFFF, 0x000035, 0x7B4F4B, 0xA1C299, 0x300018,
    0x0AA6D8, 0x013349, 0x00846F, 0x372101, 0xFFB500, 0xC2FFED, 0xA079BF, 0xCC0744, 0xC0B9B2,
    0xC2FF99, 0x001E09, 0x00489C, 0x6F0062, 0x0CBD66, 0xEEC3FF, 0x456D75, 0xB77B68, 0x7A87A1,
    0x788D66, 0x885578, 0xFAD09F, 0xFF8A9A, 0xD157A0, 0xBEC459, 0x456648, 0x0086ED, 0x886F4C,
    0x34362D, 0xB4A8BD, 0x00A6AA, 0x452C2C, 0x636375, 0xA3C8C9, 0xFF913F, 0x938A81, 0x575329,
    0x00FECF, 0xB05B6F, 0x8CD0FF, 0x3B9700, 0x04F757, 0xC8A1A1, 0x1E6E00, 0x7900D7, 0xA77500,
    0x6367A9, 0xA05837, 0x6B002C, 0x772600, 0xD790FF, 0x9B9700, 0x549E79, 0xFFF69F, 0x201625,
    0x72418F, 0xBC23FF, 0x99ADC0, 0x3A2465, 0x922329, 0x5B4534, 0xFDE8DC, 0x404E55, 0x0089A3,
    0xCB7E98, 0xA4E804, 0x324E72,
];

fn hex(c: u32) -> RGBColor {
    RGBColor((c >> 16) as u8, (c >> 8) as u8, c as u8)
}

/// The categorical palette for `n` categories, as Scanpy chooses it: `default_20` up to 20,
/// `default_28` up to 28, `default_102` beyond (repeated past 102).
pub fn palette(n: usize) -> Vec<RGBColor> {
    let base: &[u32] = if n <= 20 {
        &DEFAULT_20
    } else if n <= 28 {
        &DEFAULT_28
    } else {
        &DEFAULT_102
    };
    (0..n).map(|i| hex(base[i % base.len()])).collect()
}

/// Matplotlib's `Reds` colour map (ColorBrewer, 9 stops) at `t` in [0, 1].
fn reds(t: f32) -> RGBColor {
    const STOPS: [u32; 9] = [
        0xfff5f0, 0xfee0d2, 0xfcbba1, 0xfc9272, 0xfb6a4a, 0xef3b2c, 0xcb181d, 0xa50f15, 0x67000d,
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let (a, b) = (hex(STOPS[i]), hex(STOPS[i + 1]));
    let mix = |p: u8, q: u8| (p as f32 + (q as f32 - p as f32) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn draw_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::data(format!("plot {}", path.display()), e.to_string())
}

/// A temporary name for `path` that keeps its extension (the bitmap backend picks the image
/// format from it): `.name.png.partial-<pid>.png`.
fn temporary_keeping_ext(path: &Path) -> PathBuf {
    let tmp = crate::report::temporary_path(path);
    match path.extension() {
        Some(e) => with_ext(&tmp, &e.to_string_lossy()),
        None => tmp,
    }
}

/// Removes a temporary file when dropped (a no-op once it has been renamed into place).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Draws a figure with a generic `draw(&root) -> Result<(), String>` into PNG and SVG.
macro_rules! render {
    ($stem:expr, $size:expr, |$root:ident| $body:expr) => {{
        register_fonts();
        let stem: &Path = $stem;
        let size: (u32, u32) = $size;
        if let Some(dir) = stem.parent() {
            if !dir.as_os_str().is_empty() && !dir.is_dir() {
                return Err(Error::io(
                    dir,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "folder does not exist"),
                ));
            }
        }
        let png = with_ext(stem, "png");
        let svg = with_ext(stem, "svg");
        // Each image is drawn under a temporary name and renamed when complete: a failed
        // write (a full disk) never leaves a cut image under the final name.
        let png_tmp = RemoveOnDrop(temporary_keeping_ext(&png));
        {
            let $root = BitMapBackend::new(&png_tmp.0, size).into_drawing_area();
            $root.fill(&WHITE).map_err(draw_err(&png))?;
            $body.map_err(draw_err(&png))?;
            $root.present().map_err(draw_err(&png))?;
        }
        crate::report::commit_temporary(&png_tmp.0, &png)?;
        let svg_tmp = RemoveOnDrop(temporary_keeping_ext(&svg));
        {
            let $root = SVGBackend::new(&svg_tmp.0, size).into_drawing_area();
            $root.fill(&WHITE).map_err(draw_err(&svg))?;
            $body.map_err(draw_err(&svg))?;
            $root.present().map_err(draw_err(&svg))?;
        }
        crate::report::commit_temporary(&svg_tmp.0, &svg)?;
        Ok(vec![png, svg])
    }};
}

pub mod interactions;

type Area<DB> = DrawingArea<DB, Shift>;
type DResult = std::result::Result<(), String>;

fn s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}

fn check_embedding(embedding: &ArrayView2<f32>, labels: &[u32], names: &[String]) -> Result<()> {
    if embedding.ncols() < 2 {
        return Err(Error::data(
            "plot",
            format!("the embedding needs 2 columns, got {}", embedding.ncols()),
        ));
    }
    if embedding.nrows() != labels.len() {
        return Err(Error::data(
            "plot",
            format!("{} labels for {} cells", labels.len(), embedding.nrows()),
        ));
    }
    if embedding.nrows() == 0 {
        return Err(Error::data("plot", "no cells to plot"));
    }
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= names.len()) {
        return Err(Error::data(
            "plot",
            format!("label {l} has no name ({} names)", names.len()),
        ));
    }
    Ok(())
}

/// UMAP coloured by cluster, each cluster's name written (black on a white outline) at the
/// median position of its cells, with a legend on the right. `labels[i]` indexes `names`.
pub fn umap_clusters(
    embedding: ArrayView2<f32>,
    labels: &[u32],
    names: &[String],
    path_stem: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>> {
    opts.check()?;
    check_embedding(&embedding, labels, names)?;
    let title = opts.title.clone().unwrap_or_else(|| "Clusters".to_string());
    let scatter = Scatter {
        emb: &embedding,
        labels,
        names,
        title: &title,
        on_data_labels: true,
        opts,
    };
    render_scatter(path_stem, &scatter)
}

/// UMAP coloured by a categorical annotation (sample, condition, ...), with a legend on the
/// right. `labels[i]` indexes `names`; `title` names the annotation.
pub fn umap_categorical(
    embedding: ArrayView2<f32>,
    labels: &[u32],
    names: &[String],
    title: &str,
    path_stem: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>> {
    opts.check()?;
    check_embedding(&embedding, labels, names)?;
    let title = opts.title.clone().unwrap_or_else(|| title.to_string());
    let scatter = Scatter {
        emb: &embedding,
        labels,
        names,
        title: &title,
        on_data_labels: false,
        opts,
    };
    render_scatter(path_stem, &scatter)
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn draw_outlined_text<DB: DrawingBackend>(
    area: &Area<DB>,
    text: &str,
    (x, y): (i32, i32),
    size: f64,
) -> DResult {
    let pos = Pos::new(HPos::Center, VPos::Center);
    let halo = font(size).color(&WHITE).pos(pos);
    let ink = font(size).color(&BLACK).pos(pos);
    for (dx, dy) in [
        (-2, 0),
        (2, 0),
        (0, -2),
        (0, 2),
        (-1, -1),
        (1, 1),
        (-1, 1),
        (1, -1),
        (-2, -1),
        (2, 1),
        (-2, 1),
        (2, -1),
    ] {
        area.draw(&Text::new(text, (x + dx, y + dy), halo.clone()))
            .map_err(s)?;
    }
    area.draw(&Text::new(text, (x, y), ink)).map_err(s)?;
    Ok(())
}

/// How [`draw_scatter`] draws the points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Points {
    /// One circle element per point (the SVG of few points).
    Vector,
    /// Rasterized into a pixel buffer blitted onto the plotting area (the PNG).
    Blit,
    /// Rasterized and handed back to the caller, which embeds it (the SVG of many points).
    Embed,
}

/// The points of a scatter plot rasterized over the plotting area: `size` pixels of RGB at
/// `origin` in the figure.
struct Raster {
    origin: (i32, i32),
    size: (u32, u32),
    rgb: Vec<u8>,
}

/// The content of a UMAP scatter plot.
struct Scatter<'a, 'e> {
    emb: &'a ArrayView2<'e, f32>,
    labels: &'a [u32],
    names: &'a [String],
    title: &'a str,
    on_data_labels: bool,
    opts: &'a PlotOptions,
}

/// Draws a scatter plot into `<stem>.png` (points rasterized straight into the pixel
/// buffer) and `<stem>.svg` (points as circles, or above
/// [`PlotOptions::raster_points_above`] as one embedded PNG image under the vector parts).
fn render_scatter(stem: &Path, sc: &Scatter) -> Result<Vec<PathBuf>> {
    register_fonts();
    if let Some(dir) = stem.parent() {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "folder does not exist"),
            ));
        }
    }
    let size = (sc.opts.width, sc.opts.height);
    let png = with_ext(stem, "png");
    let svg = with_ext(stem, "svg");
    let png_tmp = RemoveOnDrop(temporary_keeping_ext(&png));
    {
        let root = BitMapBackend::new(&png_tmp.0, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err(&png))?;
        draw_scatter(&root, sc, Points::Blit, &mut None).map_err(draw_err(&png))?;
        root.present().map_err(draw_err(&png))?;
    }
    crate::report::commit_temporary(&png_tmp.0, &png)?;
    let embed = sc.labels.len() > sc.opts.raster_points_above;
    let mut text = String::new();
    let mut raster = None;
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err(&svg))?;
        let mode = if embed { Points::Embed } else { Points::Vector };
        draw_scatter(&root, sc, mode, &mut raster).map_err(draw_err(&svg))?;
        root.present().map_err(draw_err(&svg))?;
    }
    if let Some(r) = &raster {
        text = embed_raster(&text, r).map_err(draw_err(&svg))?;
    }
    crate::report::write_atomic(&svg, |w| w.write_all(text.as_bytes()))?;
    Ok(vec![png, svg])
}

/// `svg` with `r` inserted as an `<image>` (a base64 PNG data URI) right after the white
/// background rectangle, so that everything else is drawn over it.
fn embed_raster(svg: &str, r: &Raster) -> std::result::Result<String, String> {
    let at = svg
        .find("<rect")
        .and_then(|i| svg[i..].find("/>").map(|j| i + j + 2))
        .ok_or("no background rectangle in the SVG")?;
    let png = raster::encode_png(&r.rgb, r.size.0, r.size.1);
    let mut out = String::with_capacity(svg.len() + png.len() * 4 / 3 + 200);
    out.push_str(&svg[..at]);
    out.push_str(&format!(
        "\n<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" \
         image-rendering=\"pixelated\" href=\"data:image/png;base64,",
        r.origin.0, r.origin.1, r.size.0, r.size.1
    ));
    raster::base64_into(&png, &mut out);
    out.push_str("\"/>");
    out.push_str(&svg[at..]);
    Ok(out)
}

fn draw_scatter<DB: DrawingBackend>(
    root: &Area<DB>,
    sc: &Scatter,
    mode: Points,
    raster_out: &mut Option<Raster>,
) -> DResult {
    let Scatter {
        emb,
        labels,
        names,
        title,
        on_data_labels,
        opts,
    } = *sc;
    let n = labels.len();
    let (w, h) = root.dim_in_pixel();
    let colors = palette(names.len());
    let fs = (h as f64 / 40.0).clamp(12.0, 28.0);
    let root = root.margin(8, 0, 0, 0);
    let root = root.titled(title, font(fs * 1.4)).map_err(s)?;
    // legend width from the longest name, in up to 3 columns when there are many categories
    let present: Vec<usize> = {
        let mut seen = vec![false; names.len()];
        for &l in labels {
            seen[l as usize] = true;
        }
        (0..names.len()).filter(|&i| seen[i]).collect()
    };
    let (_, area_h) = root.dim_in_pixel();
    let row_h = (fs * 1.35) as u32;
    let rows_fit = ((area_h.saturating_sub(40)) / row_h.max(1)).max(1) as usize;
    let n_cols = present.len().div_ceil(rows_fit).max(1);
    let longest = present
        .iter()
        .map(|&i| {
            root.estimate_text_size(&names[i], &font(fs))
                .map(|(tw, _)| tw)
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    let col_w = longest + (fs * 2.2) as u32;
    let legend_w = (col_w * n_cols as u32 + 20).min(w / 2);
    let (plot_area, legend_area) = root.split_horizontally(w - legend_w);

    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for i in 0..n {
        let (x, y) = (emb[[i, 0]], emb[[i, 1]]);
        if x.is_finite() && y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad_x = ((x1 - x0) * 0.04).max(1e-3);
    let pad_y = ((y1 - y0) * 0.04).max(1e-3);
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(10)
        .x_label_area_size((fs * 2.0) as u32)
        .y_label_area_size((fs * 2.0) as u32)
        .build_cartesian_2d(x0 - pad_x..x1 + pad_x, y0 - pad_y..y1 + pad_y)
        .map_err(s)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc("UMAP1")
        .y_desc("UMAP2")
        .axis_desc_style(font(fs))
        .draw()
        .map_err(s)?;
    let r = opts
        .point_radius
        .unwrap_or_else(|| (90.0 / (n as f32).sqrt()).clamp(1.0, 5.0));
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(opts.seed));
    if mode == Points::Vector {
        let pts = order.iter().filter_map(|&i| {
            let (x, y) = (emb[[i, 0]], emb[[i, 1]]);
            (x.is_finite() && y.is_finite())
                .then(|| Circle::new((x, y), r, colors[labels[i] as usize].mix(0.85).filled()))
        });
        chart.draw_series(pts).map_err(s)?;
    } else {
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let size = (
            (xr.end - xr.start).max(1) as u32,
            (yr.end - yr.start).max(1) as u32,
        );
        let mut canvas = raster::Canvas::white(size.0, size.1);
        for &i in &order {
            let (x, y) = (emb[[i, 0]], emb[[i, 1]]);
            if x.is_finite() && y.is_finite() {
                let (px, py) = chart.backend_coord(&(x, y));
                let c = &colors[labels[i] as usize];
                canvas.disc(px - xr.start, py - yr.start, r, [c.0, c.1, c.2], 0.85);
            }
        }
        if mode == Points::Blit {
            let img = BitMapElement::with_owned_buffer((0, 0), size, canvas.into_rgb())
                .ok_or("raster buffer of the wrong size")?;
            chart
                .plotting_area()
                .strip_coord_spec()
                .draw(&img)
                .map_err(s)?;
        } else {
            *raster_out = Some(Raster {
                origin: (xr.start, yr.start),
                size,
                rgb: canvas.into_rgb(),
            });
        }
    }

    if on_data_labels {
        let mut xs: Vec<Vec<f32>> = vec![Vec::new(); names.len()];
        let mut ys: Vec<Vec<f32>> = vec![Vec::new(); names.len()];
        for i in 0..n {
            let (x, y) = (emb[[i, 0]], emb[[i, 1]]);
            if x.is_finite() && y.is_finite() {
                xs[labels[i] as usize].push(x);
                ys[labels[i] as usize].push(y);
            }
        }
        let area = chart.plotting_area().strip_coord_spec();
        let (ax, ay) = chart.plotting_area().get_base_pixel();
        for &c in &present {
            if xs[c].is_empty() {
                continue;
            }
            let (mx, my) = (median(&mut xs[c]), median(&mut ys[c]));
            let (px, py) = chart.backend_coord(&(mx, my));
            draw_outlined_text(&area, &names[c], (px - ax, py - ay), fs * 1.15)?;
        }
    }

    // legend
    let swatch = (fs * 0.4) as i32;
    for (k, &c) in present.iter().enumerate() {
        let col = (k / rows_fit) as i32;
        let row = (k % rows_fit) as i32;
        let x = 10 + col * col_w as i32;
        let y = 30 + row * row_h as i32;
        legend_area
            .draw(&Circle::new((x + swatch, y), swatch, colors[c].filled()))
            .map_err(s)?;
        legend_area
            .draw(&Text::new(
                names[c].as_str(),
                (x + 3 * swatch, y),
                font(fs).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(s)?;
    }
    Ok(())
}

/// Gaussian kernel density on `grid` with Scott's bandwidth (`1.06 sd n^(-1/5)`, as seaborn's
/// violins), or `None` for fewer than 2 distinct values.
fn kde(values: &[f32], grid: &[f64]) -> Option<Vec<f64>> {
    let n = values.len() as f64;
    if n < 2.0 {
        return None;
    }
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    if var <= 0.0 {
        return None;
    }
    let bw = 1.06 * var.sqrt() * n.powf(-0.2);
    // subsample for speed: at most 5,000 values, evenly spaced in sorted order
    let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let step = (v.len() / 5000).max(1);
    let sub: Vec<f64> = v.iter().step_by(step).copied().collect();
    Some(
        grid.iter()
            .map(|&g| {
                sub.iter()
                    .map(|&x| (-0.5 * ((g - x) / bw).powi(2)).exp())
                    .sum::<f64>()
            })
            .collect(),
    )
}

/// QC panel: violins (with jittered points and the median) of total counts, genes per cell and
/// % mitochondrial counts, one violin per group when `groups = Some((labels, names))` (e.g.
/// per sample), else one per metric.
pub fn qc_violins(
    total_counts: &[f32],
    n_genes: &[f32],
    pct_mito: &[f32],
    groups: Option<(&[u32], &[String])>,
    path_stem: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>> {
    opts.check()?;
    let n = total_counts.len();
    if n == 0 || n_genes.len() != n || pct_mito.len() != n {
        return Err(Error::data(
            "plot",
            format!(
                "QC metrics need the same non-zero length, got {n}, {}, {}",
                n_genes.len(),
                pct_mito.len()
            ),
        ));
    }
    let one = vec![0u32; n];
    let all = vec!["all cells".to_string()];
    let (labels, names): (&[u32], &[String]) = match groups {
        Some((l, nm)) => {
            if l.len() != n {
                return Err(Error::data(
                    "plot",
                    format!("{} group labels for {n} cells", l.len()),
                ));
            }
            if let Some(&x) = l.iter().find(|&&x| x as usize >= nm.len()) {
                return Err(Error::data(
                    "plot",
                    format!("group {x} has no name ({} names)", nm.len()),
                ));
            }
            (l, nm)
        }
        None => (&one, &all),
    };
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| "Quality control".to_string());
    let metrics: [(&str, &[f32]); 3] = [
        ("Total counts", total_counts),
        ("Genes per cell", n_genes),
        ("% mitochondrial counts", pct_mito),
    ];
    render!(path_stem, (opts.width, opts.height), |root| draw_qc(
        &root, &metrics, labels, names, &title, opts
    ))
}

fn draw_qc<DB: DrawingBackend>(
    root: &Area<DB>,
    metrics: &[(&str, &[f32]); 3],
    labels: &[u32],
    names: &[String],
    title: &str,
    opts: &PlotOptions,
) -> DResult {
    let (_, h) = root.dim_in_pixel();
    let fs = (h as f64 / 45.0).clamp(11.0, 24.0);
    let root = root.margin(8, 0, 0, 0);
    let root = root.titled(title, font(fs * 1.4)).map_err(s)?;
    let panels = root.split_evenly((1, 3));
    let colors = palette(names.len());
    let k = names.len();
    let longest = names.iter().map(|x| x.chars().count()).max().unwrap_or(0);
    let rotate = k > 1 && longest * k > 24;
    let label_h = if rotate {
        (fs * 0.5 * longest as f64 + fs * 0.8) as u32
    } else {
        (fs * 2.0) as u32
    };
    let mut rng = StdRng::seed_from_u64(opts.seed);
    for (panel, (name, values)) in panels.iter().zip(metrics.iter()) {
        let finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let (lo, hi) = finite
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let (lo, hi) = if lo > hi {
            (0.0, 1.0)
        } else if lo == hi {
            (lo - 0.5, hi + 0.5)
        } else {
            (lo, hi)
        };
        let pad = (hi - lo) * 0.05;
        let panel = panel.titled(name, font(fs * 1.1)).map_err(s)?;
        let mut chart = ChartBuilder::on(&panel)
            .margin(8)
            .margin_right(16)
            .x_label_area_size(label_h)
            .y_label_area_size((fs * 4.0) as u32)
            .build_cartesian_2d(-0.5f32..k as f32 - 0.5, (lo - pad)..(hi + pad))
            .map_err(s)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(6)
            .light_line_style(WHITE)
            .label_style(font(fs * 0.9))
            .y_label_formatter(&|v| fmt_tick(*v))
            .draw()
            .map_err(s)?;
        let grid: Vec<f64> = (0..120)
            .map(|i| (lo - pad) as f64 + (hi - lo + 2.0 * pad) as f64 * i as f64 / 119.0)
            .collect();
        for (g, gname) in names.iter().enumerate() {
            let vals: Vec<f32> = values
                .iter()
                .zip(labels)
                .filter(|&(v, &l)| l as usize == g && v.is_finite())
                .map(|(v, _)| *v)
                .collect();
            let cx = g as f32;
            if let Some(dens) = kde(&vals, &grid) {
                let max = dens.iter().cloned().fold(0.0, f64::max).max(1e-300);
                // clip the violin to the data range, as seaborn's cut = 0
                let (vlo, vhi) = vals
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                let mut outline: Vec<(f32, f32)> = Vec::new();
                let mut back: Vec<(f32, f32)> = Vec::new();
                for (y, d) in grid.iter().zip(&dens) {
                    let y = *y as f32;
                    if y < vlo || y > vhi {
                        continue;
                    }
                    let half = (0.42 * d / max) as f32;
                    outline.push((cx - half, y));
                    back.push((cx + half, y));
                }
                back.reverse();
                outline.extend(back);
                if outline.len() >= 3 {
                    chart
                        .draw_series(std::iter::once(Polygon::new(
                            outline.clone(),
                            colors[g].mix(0.55).filled(),
                        )))
                        .map_err(s)?;
                    let mut closed = outline;
                    closed.push(closed[0]);
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            closed,
                            BLACK.mix(0.6).stroke_width(1),
                        )))
                        .map_err(s)?;
                }
            }
            // jittered points, at most 1,500 per violin
            let step = (vals.len() / 1500).max(1);
            let jitter = rand::distributions::Uniform::new_inclusive(-0.18f32, 0.18);
            let pts: Vec<(f32, f32)> = vals
                .iter()
                .step_by(step)
                .map(|&v| (cx + rand::Rng::sample(&mut rng, jitter), v))
                .collect();
            chart
                .draw_series(
                    pts.into_iter()
                        .map(|p| Circle::new(p, 1, BLACK.mix(0.35).filled())),
                )
                .map_err(s)?;
            if !vals.is_empty() {
                let mut v = vals.clone();
                let m = median(&mut v);
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(cx - 0.25, m), (cx + 0.25, m)],
                        BLACK.stroke_width(3),
                    )))
                    .map_err(s)?;
            }
            // category name under the axis
            let (px, py) = chart.backend_coord(&(cx, lo - pad));
            let (bx, by) = panel.get_base_pixel();
            let style = if rotate {
                font(fs * 0.9)
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Right, VPos::Center))
            } else {
                font(fs * 0.9).pos(Pos::new(HPos::Center, VPos::Top))
            };
            let pos = (px - bx, py - by + 6);
            panel
                .draw(&Text::new(gname.as_str(), pos, style))
                .map_err(s)?;
        }
    }
    Ok(())
}

/// Tick label: integers without decimals, large numbers with thousands as `k`.
fn fmt_tick(v: f32) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if a >= 100.0 || (v - v.round()).abs() < 1e-6 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Dot plot of marker genes: genes on x, groups (clusters) on y; dot area proportional to the
/// fraction of the group's cells expressing the gene, colour the mean expression in the group
/// (`Reds`, from 0 to the largest mean), as `sc.pl.rank_genes_groups_dotplot`. `fractions` and
/// `means` are groups x genes. The figure is sized from the number of genes and groups; a size
/// legend and a colour bar are drawn on the right.
pub fn dot_plot(
    fractions: ArrayView2<f32>,
    means: ArrayView2<f32>,
    genes: &[String],
    groups: &[String],
    path_stem: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>> {
    opts.check()?;
    let (g, k) = fractions.dim();
    if means.dim() != (g, k) || genes.len() != k || groups.len() != g || g == 0 || k == 0 {
        return Err(Error::data(
            "plot",
            format!(
                "dot plot: fractions {:?}, means {:?}, {} genes, {} groups must agree and not be empty",
                fractions.dim(),
                means.dim(),
                genes.len(),
                groups.len()
            ),
        ));
    }
    if fractions.iter().chain(means.iter()).any(|v| !v.is_finite()) {
        return Err(Error::data("plot", "dot plot values must be finite"));
    }
    let fs = 14.0;
    let cell = 26u32;
    register_fonts();
    let longest_gene = genes.iter().map(|x| x.chars().count()).max().unwrap_or(0) as u32;
    let longest_group = groups.iter().map(|x| x.chars().count()).max().unwrap_or(0) as u32;
    let top = 50;
    let left = 20 + longest_group * 9;
    let bottom = 20 + longest_gene * 9;
    let legend_w = 230;
    let width = (left + cell * k as u32 + legend_w).max(420);
    let height = (top + cell * g as u32 + bottom).max(380);
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| "Marker genes".to_string());
    let max_mean = means.iter().cloned().fold(0.0f32, f32::max);
    let layout = DotLayout {
        top,
        left,
        cell,
        legend_x: left + cell * k as u32 + 30,
        fs,
        max_mean,
    };
    render!(path_stem, (width, height), |root| draw_dots(
        &root, &fractions, &means, genes, groups, &title, &layout
    ))
}

struct DotLayout {
    top: u32,
    left: u32,
    cell: u32,
    legend_x: u32,
    fs: f64,
    max_mean: f32,
}

fn draw_dots<DB: DrawingBackend>(
    root: &Area<DB>,
    fr: &ArrayView2<f32>,
    means: &ArrayView2<f32>,
    genes: &[String],
    groups: &[String],
    title: &str,
    l: &DotLayout,
) -> DResult {
    let (g, k) = fr.dim();
    let fs = l.fs;
    let c = l.cell as i32;
    let (x0, y0) = (l.left as i32, l.top as i32);
    root.draw(&Text::new(
        title,
        (x0 + c * k as i32 / 2, 10),
        font(fs * 1.4).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(s)?;
    // frame and light grid
    root.draw(&Rectangle::new(
        [(x0, y0), (x0 + c * k as i32, y0 + c * g as i32)],
        BLACK.stroke_width(1),
    ))
    .map_err(s)?;
    let rmax = c as f32 * 0.46;
    let scale = if l.max_mean > 0.0 { l.max_mean } else { 1.0 };
    for i in 0..g {
        let cy = y0 + c * i as i32 + c / 2;
        root.draw(&Text::new(
            groups[i].as_str(),
            (x0 - 6, cy),
            font(fs).pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(s)?;
        for j in 0..k {
            let cx = x0 + c * j as i32 + c / 2;
            let f = fr[[i, j]].clamp(0.0, 1.0);
            if f <= 0.0 {
                continue;
            }
            let r = (rmax * f.sqrt()).max(1.0) as i32;
            let col = reds(means[[i, j]] / scale);
            root.draw(&Circle::new((cx, cy), r, col.filled()))
                .map_err(s)?;
            root.draw(&Circle::new((cx, cy), r, BLACK.mix(0.5).stroke_width(1)))
                .map_err(s)?;
        }
    }
    for (j, gene) in genes.iter().enumerate() {
        let cx = x0 + c * j as i32 + c / 2;
        root.draw(&Text::new(
            gene.as_str(),
            (cx, y0 + c * g as i32 + 6),
            font(fs)
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(s)?;
    }
    // colour bar
    let lx = l.legend_x as i32;
    let mut y = y0;
    root.draw(&Text::new(
        "Mean expression",
        (lx, y),
        font(fs).pos(Pos::new(HPos::Left, VPos::Top)),
    ))
    .map_err(s)?;
    y += (fs * 1.6) as i32;
    let bar_w = 150;
    for p in 0..bar_w {
        root.draw(&Rectangle::new(
            [(lx + p, y), (lx + p + 1, y + 14)],
            reds(p as f32 / (bar_w - 1) as f32).filled(),
        ))
        .map_err(s)?;
    }
    root.draw(&Rectangle::new(
        [(lx, y), (lx + bar_w, y + 14)],
        BLACK.stroke_width(1),
    ))
    .map_err(s)?;
    for (t, txt) in [
        (0.0f32, "0".to_string()),
        (1.0, format!("{:.2}", l.max_mean)),
    ] {
        root.draw(&Text::new(
            txt,
            (lx + (t * bar_w as f32) as i32, y + 18),
            font(fs * 0.85).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(s)?;
    }
    // size legend
    y += 60;
    root.draw(&Text::new(
        "Fraction of cells (%)",
        (lx, y),
        font(fs).pos(Pos::new(HPos::Left, VPos::Top)),
    ))
    .map_err(s)?;
    y += (fs * 1.6) as i32 + c / 2;
    for (q, pct) in [0.2f32, 0.4, 0.6, 0.8, 1.0]
        .iter()
        .zip([20, 40, 60, 80, 100])
    {
        let r = (rmax * q.sqrt()) as i32;
        let cx = lx + 5 + (pct / 20 - 1) * (c + 4);
        root.draw(&Circle::new(
            (cx + c / 2, y),
            r,
            RGBColor(160, 160, 160).filled(),
        ))
        .map_err(s)?;
        root.draw(&Circle::new(
            (cx + c / 2, y),
            r,
            BLACK.mix(0.5).stroke_width(1),
        ))
        .map_err(s)?;
        root.draw(&Text::new(
            pct.to_string(),
            (cx + c / 2, y + c / 2 + 4),
            font(fs * 0.85).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(s)?;
    }
    Ok(())
}

/// PCA elbow plot: the variance ratio of each principal component (1-based) against its rank,
/// as `sc.pl.pca_variance_ratio`.
pub fn pca_elbow(
    variance_ratio: &[f32],
    path_stem: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>> {
    opts.check()?;
    if variance_ratio.is_empty() || variance_ratio.iter().any(|v| !v.is_finite()) {
        return Err(Error::data(
            "plot",
            "the variance ratios must be finite and not empty",
        ));
    }
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| "PCA variance ratio".to_string());
    render!(path_stem, (opts.width, opts.height), |root| draw_elbow(
        &root,
        variance_ratio,
        &title
    ))
}

fn draw_elbow<DB: DrawingBackend>(root: &Area<DB>, vr: &[f32], title: &str) -> DResult {
    let (_, h) = root.dim_in_pixel();
    let fs = (h as f64 / 40.0).clamp(12.0, 26.0);
    let n = vr.len();
    let max = vr.iter().cloned().fold(0.0f32, f32::max).max(1e-12);
    let mut chart = ChartBuilder::on(root)
        .caption(title, font(fs * 1.4))
        .margin(20)
        .x_label_area_size((fs * 3.0) as u32)
        .y_label_area_size((fs * 5.0) as u32)
        .build_cartesian_2d(0.0f32..(n as f32 + 1.0), 0.0f32..max * 1.08)
        .map_err(s)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .x_desc("Principal component")
        .y_desc("Variance ratio")
        .axis_desc_style(font(fs))
        .label_style(font(fs * 0.9))
        .x_labels(n.min(12))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| {
            if max >= 0.1 {
                format!("{v:.2}")
            } else {
                format!("{v:.3}")
            }
        })
        .draw()
        .map_err(s)?;
    let pts: Vec<(f32, f32)> = vr
        .iter()
        .enumerate()
        .map(|(i, &v)| ((i + 1) as f32, v))
        .collect();
    chart
        .draw_series(LineSeries::new(
            pts.clone(),
            hex(DEFAULT_20[0]).stroke_width(2),
        ))
        .map_err(s)?;
    chart
        .draw_series(
            pts.into_iter()
                .map(|p| Circle::new(p, 4, hex(DEFAULT_20[0]).filled())),
        )
        .map_err(s)?;
    Ok(())
}

/// Stacked bars of cluster proportions per sample: one bar per sample (x), segments coloured
/// by cluster, heights `proportions[cluster][sample]` (each sample's column sums to 1), as
/// `scCODA` / propeller composition plots.
pub fn stacked_bars(
    proportions: &[Vec<f64>],
    clusters: &[String],
    samples: &[String],
    path_stem: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>> {
    opts.check()?;
    if proportions.len() != clusters.len()
        || samples.is_empty()
        || proportions
            .iter()
            .any(|r| r.len() != samples.len() || r.iter().any(|v| !v.is_finite()))
    {
        return Err(Error::data(
            "plot",
            "stacked bars: one finite proportion per (cluster, sample) is needed",
        ));
    }
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| "Cluster proportions per sample".to_string());
    render!(path_stem, (opts.width, opts.height), |root| draw_stacked(
        &root,
        proportions,
        clusters,
        samples,
        &title
    ))
}

fn draw_stacked<DB: DrawingBackend>(
    root: &Area<DB>,
    props: &[Vec<f64>],
    clusters: &[String],
    samples: &[String],
    title: &str,
) -> DResult {
    let (w, h) = root.dim_in_pixel();
    let fs = (h as f64 / 40.0).clamp(12.0, 26.0);
    let legend_w = (fs * 8.0) as u32;
    let (plot_area, legend) = root.split_horizontally(w.saturating_sub(legend_w));
    let n = samples.len();
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, font(fs * 1.4))
        .margin(20)
        .x_label_area_size((fs * 4.0) as u32)
        .y_label_area_size((fs * 4.0) as u32)
        .build_cartesian_2d(0.0f64..n as f64, 0.0f64..1.0)
        .map_err(s)?;
    let names = samples.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .x_desc("Sample")
        .y_desc("Proportion of the sample's cells")
        .axis_desc_style(font(fs))
        .label_style(font(fs * 0.9))
        .x_labels(n * 2 + 1)
        .x_label_formatter(&move |v| {
            let i = (*v - 0.5).round();
            if (*v - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()
        .map_err(s)?;
    let colors = palette(clusters.len());
    for sample in 0..n {
        let mut bottom = 0.0;
        for (c, row) in props.iter().enumerate() {
            let top = bottom + row[sample];
            let x0 = sample as f64 + 0.15;
            let x1 = sample as f64 + 0.85;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, bottom), (x1, top.min(1.0))],
                    colors[c].filled(),
                )))
                .map_err(s)?;
            bottom = top;
        }
    }
    for (c, name) in clusters.iter().enumerate() {
        let y = (fs * 3.0 + c as f64 * fs * 1.5) as i32;
        legend
            .draw(&Rectangle::new(
                [
                    (4, y - (fs * 0.45) as i32),
                    ((fs * 0.9) as i32 + 4, y + (fs * 0.45) as i32),
                ],
                colors[c].filled(),
            ))
            .map_err(s)?;
        legend
            .draw(&Text::new(
                name.clone(),
                ((fs * 1.4) as i32 + 4, y - (fs * 0.5) as i32),
                font(fs),
            ))
            .map_err(s)?;
    }
    Ok(())
}

/// Horizontal bar chart, e.g. the top enriched terms of a cluster: one bar per label with
/// length `values[i]` (e.g. `-log10` adjusted p), first label on top. `x_label` names the
/// axis.
pub fn bar_chart(
    labels: &[String],
    values: &[f64],
    x_label: &str,
    path_stem: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>> {
    opts.check()?;
    if labels.is_empty() || labels.len() != values.len() || values.iter().any(|v| !v.is_finite()) {
        return Err(Error::data(
            "plot",
            "bar chart: one finite value per label is needed",
        ));
    }
    let title = opts.title.clone().unwrap_or_default();
    render!(path_stem, (opts.width, opts.height), |root| draw_bars(
        &root, labels, values, x_label, &title
    ))
}

fn draw_bars<DB: DrawingBackend>(
    root: &Area<DB>,
    labels: &[String],
    values: &[f64],
    x_label: &str,
    title: &str,
) -> DResult {
    let (_, h) = root.dim_in_pixel();
    let fs = (h as f64 / 40.0).clamp(12.0, 24.0);
    let n = labels.len();
    let max = values.iter().cloned().fold(0.0f64, f64::max).max(1e-12);
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
    let shown: Vec<String> = labels
        .iter()
        .map(|l| {
            if l.chars().count() > 60 {
                format!("{}…", l.chars().take(59).collect::<String>())
            } else {
                l.clone()
            }
        })
        .collect();
    let mut chart = ChartBuilder::on(root)
        .caption(title, font(fs * 1.3))
        .margin(20)
        .x_label_area_size((fs * 3.0) as u32)
        .y_label_area_size((fs * 0.55 * longest.min(60) as f64 + fs) as u32)
        .build_cartesian_2d(0.0f64..max * 1.05, 0.0f64..n as f64)
        .map_err(s)?;
    let names = shown.clone();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .x_desc(x_label)
        .axis_desc_style(font(fs))
        .label_style(font(fs * 0.85))
        .y_labels(n * 2 + 1)
        .y_label_formatter(&move |v| {
            let i = (*v - 0.5).round();
            if (*v - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[names.len() - 1 - i as usize].clone()
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(s)?;
    for (i, &v) in values.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, y + 0.15), (v, y + 0.85)],
                hex(DEFAULT_20[0]).filled(),
            )))
            .map_err(s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_follows_scanpy_sizes() {
        assert_eq!(palette(3)[0], RGBColor(0x1f, 0x77, 0xb4));
        assert_eq!(palette(20)[19], hex(0x8c6d31));
        assert_eq!(palette(25)[0], hex(0x023fa5));
        assert_eq!(palette(200).len(), 200);
    }

    #[test]
    fn reds_ends() {
        assert_eq!(reds(0.0), hex(0xfff5f0));
        assert_eq!(reds(1.0), hex(0x67000d));
        assert_eq!(reds(f32::NAN), hex(0xfff5f0));
    }
}
