//! UMAP scatter plots, coloured by cluster or by a category: points drawn as circles, or
//! rasterized into the PNG and, above a size, embedded as one image in the SVG.

use super::{
    draw_err, font, median, palette, raster, register_fonts, s, temporary_keeping_ext, with_ext,
    Area, DResult, PlotOptions, RemoveOnDrop,
};
use crate::error::{Error, Result};
use ndarray::ArrayView2;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::io::Write;
use std::path::{Path, PathBuf};

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
