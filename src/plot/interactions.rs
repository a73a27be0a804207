//! Figures of the interactions between conditions, drawn from the finished numbers of
//! [`crate::interactions::figures`]:
//!
//! - [`changed_dot_plot`] (`interactions_dotplot`): the top changed interactions, rows
//!   `ligand -> receptor`, columns `sender -> receiver`; colour the log2 fold change (blue -
//!   white - red, symmetric around 0, scaled to the largest shown), dot area `-log10` adjusted p
//!   (scaled to the largest shown); the top entries are outlined in black, the other tested
//!   entries of the grid in grey. The title names the ranking and, without replicates, says
//!   the test permuted cells;
//! - [`significance_heatmap`] (`interactions_heatmap`, drawn in `interactions/heatmap.rs`):
//!   per condition a sender x receiver grid of the number of significant interactions (`Reds`,
//!   one scale shared by the conditions), and a panel of the numerator's count minus the
//!   reference's (blue - white - red), each with its colour bar.
//!
//! Sizes follow the content: the label margins from the longest label (names longer than
//! 48 characters are cut with `…`), the heat map's cells shrink from 36 to 6 pixels as the
//! clusters grow in number. An empty comparison draws a figure saying "No interactions".
//! Each figure is written as `<stem>.png` and `<stem>.svg` ([`write_interaction_plots`]), or
//! returned as SVG text for the HTML report ([`changed_dot_plot_svg`],
//! [`significance_heatmap_svg`]).

use super::{
    draw_err, font, register_fonts, s, temporary_keeping_ext, with_ext, Area, DResult, RemoveOnDrop,
};
use crate::comparison::diverging;
use crate::error::{Error, Result};
use crate::interactions::diff::{DiffMethod, InteractionDiff};
use crate::interactions::figures::{significance_grid, top_changed, SignificanceGrid, TopChanged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use std::path::{Path, PathBuf};

mod heatmap;
use heatmap::{draw_heatmap, heat_layout, HeatLayout};

/// At most this many (interaction, sender, receiver) entries in the dot plot.
pub const TOP_CHANGED: usize = 30;
/// Labels longer than this are cut.
const MAX_LABEL: usize = 48;
/// Font size of the labels.
const FS: f64 = 13.0;

/// Writes `interactions_dotplot.{png,svg}` ([`TOP_CHANGED`] entries) and
/// `interactions_heatmap.{png,svg}` of `d` into `dir`; returns their paths.
pub fn write_interaction_plots(d: &InteractionDiff, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = changed_dot_plot(
        &top_changed(d, TOP_CHANGED),
        &dir.join("interactions_dotplot"),
    )?;
    files.extend(significance_heatmap(
        &significance_grid(d),
        &dir.join("interactions_heatmap"),
    )?);
    Ok(files)
}

/// `s` cut to [`MAX_LABEL`] characters (the last one `…`).
fn clip(s: &str) -> String {
    if s.chars().count() > MAX_LABEL {
        let mut out: String = s.chars().take(MAX_LABEL - 1).collect();
        out.push('…');
        out
    } else {
        s.to_string()
    }
}

/// Width in pixels of `n` characters at font size `fs` (DejaVu Sans as plotters draws it:
/// about 0.55 `fs` per character on average, 0.6 leaves room for capitals).
fn text_w(n: usize, fs: f64) -> i32 {
    (n as f64 * fs * 0.6).ceil() as i32
}

fn longest(labels: &[String]) -> usize {
    labels.iter().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// Lines of text, top-left at `(x, y)`, `step` pixels apart.
fn text_lines<DB: DrawingBackend>(
    root: &Area<DB>,
    lines: &[String],
    (x, y): (i32, i32),
    fs: f64,
    step: i32,
) -> DResult {
    for (i, l) in lines.iter().enumerate() {
        root.draw(&Text::new(
            l.as_str(),
            (x, y + step * i as i32),
            font(fs).pos(Pos::new(HPos::Left, VPos::Top)),
        ))
        .map_err(s)?;
    }
    Ok(())
}

/// A horizontal colour bar at `(x, y)`, `w` x 12 pixels, `colour(t)` for `t` in [0, 1], with
/// a caption above and tick labels below at `t` = 0, 0.5 and 1.
fn colour_bar<DB: DrawingBackend>(
    root: &Area<DB>,
    (x, y): (i32, i32),
    w: i32,
    caption: &str,
    ticks: [String; 3],
    colour: impl Fn(f64) -> RGBColor,
) -> DResult {
    root.draw(&Text::new(
        caption,
        (x, y),
        font(FS).pos(Pos::new(HPos::Left, VPos::Top)),
    ))
    .map_err(s)?;
    let y = y + (FS * 1.5) as i32;
    for p in 0..w {
        root.draw(&Rectangle::new(
            [(x + p, y), (x + p + 1, y + 12)],
            colour(p as f64 / (w - 1).max(1) as f64).filled(),
        ))
        .map_err(s)?;
    }
    root.draw(&Rectangle::new(
        [(x, y), (x + w, y + 12)],
        BLACK.stroke_width(1),
    ))
    .map_err(s)?;
    for (i, t) in ticks.into_iter().enumerate() {
        root.draw(&Text::new(
            t,
            (x + w * i as i32 / 2, y + 15),
            font(FS * 0.85).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(s)?;
    }
    Ok(())
}

fn fmt_tick(v: f64) -> String {
    if v == v.round() && v.abs() < 1e6 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The figure of an empty result: the title and one line of text.
fn draw_empty<DB: DrawingBackend>(root: &Area<DB>, lines: &[String]) -> DResult {
    text_lines(root, lines, (20, 20), FS * 1.2, (FS * 2.0) as i32)
}

fn empty_size(lines: &[String]) -> (u32, u32) {
    let w = text_w(longest(lines), FS * 1.2) + 40;
    (
        w.max(400) as u32,
        (40.0 + FS * 2.0 * lines.len() as f64) as u32,
    )
}

struct DotLayout {
    size: (u32, u32),
    title: Vec<String>,
    rows: Vec<String>,
    cols: Vec<String>,
    x0: i32,
    y0: i32,
    cell: i32,
    legend_x: i32,
    max_lfc: f64,
    max_nlp: f64,
}

fn nlp(p_adj: f64) -> f64 {
    if p_adj.is_nan() {
        0.0
    } else {
        -p_adj.clamp(1e-300, 1.0).log10()
    }
}

fn dot_title(t: &TopChanged) -> Vec<String> {
    let mut title = vec![format!(
        "Top changed interactions, {} over {}: {} of {} tested entries (at most {}; by adjusted p, then |log2 FC|)",
        clip(&t.numerator),
        clip(&t.reference),
        t.n_top,
        t.n_tested,
        t.n_max
    )];
    title.push(match t.method {
        DiffMethod::LimmaSamples => {
            "Test: limma's moderated t over per-sample values (replicates)".to_string()
        }
        DiffMethod::ConditionPermutation => "No replicates: condition labels of the cells \
             permuted within clusters; a change may be a sample effect"
            .to_string(),
    });
    title
}

fn dot_layout(t: &TopChanged) -> DotLayout {
    let title = dot_title(t);
    let rows: Vec<String> = t.interactions.iter().map(|r| clip(r)).collect();
    let cols: Vec<String> = t.pairs.iter().map(|c| clip(c)).collect();
    let cell = 24;
    let title_h = (FS * 1.3 * 1.6) as i32 * title.len() as i32 + 20;
    let head = (FS * 1.8) as i32;
    let x0 = 20 + text_w(longest(&rows).max(18), FS) + 8;
    let y0 = title_h + head;
    let bottom = text_w(longest(&cols), FS) + 20 + (FS * 2.5) as i32;
    let legend_x = x0 + cell * cols.len() as i32 + 30;
    let width = (legend_x + 220).max(text_w(longest(&title), FS * 1.3) + 40);
    let height = (y0 + cell * rows.len() as i32 + bottom).max(y0 + 260);
    let finite = |v: f64| if v.is_finite() { v.abs() } else { 0.0 };
    let max_lfc = t
        .dots
        .iter()
        .map(|d| finite(d.log2_fold_change))
        .fold(0.0, f64::max);
    let max_nlp = t.dots.iter().map(|d| nlp(d.p_adj)).fold(0.0, f64::max);
    DotLayout {
        size: (width as u32, height as u32),
        title,
        rows,
        cols,
        x0,
        y0,
        cell,
        legend_x,
        max_lfc: if max_lfc > 0.0 { max_lfc } else { 1.0 },
        max_nlp: if max_nlp > 0.0 { max_nlp } else { 1.0 },
    }
}

fn dot_radius(nlp: f64, l: &DotLayout) -> i32 {
    let rmax = l.cell as f64 * 0.45;
    (rmax * (nlp / l.max_nlp).clamp(0.0, 1.0).sqrt()).max(2.0) as i32
}

fn draw_changed<DB: DrawingBackend>(root: &Area<DB>, t: &TopChanged, l: &DotLayout) -> DResult {
    text_lines(root, &l.title, (20, 14), FS * 1.3, (FS * 1.3 * 1.6) as i32)?;
    let (x0, y0, c) = (l.x0, l.y0, l.cell);
    let (nr, nc) = (l.rows.len() as i32, l.cols.len() as i32);
    root.draw(&Text::new(
        "ligand -> receptor",
        (x0 - 8, y0 - 6),
        font(FS).pos(Pos::new(HPos::Right, VPos::Bottom)),
    ))
    .map_err(s)?;
    let grey = RGBColor(230, 230, 230);
    for i in 0..=nr {
        let y = y0 + c * i;
        root.draw(&PathElement::new(vec![(x0, y), (x0 + c * nc, y)], grey))
            .map_err(s)?;
    }
    for j in 0..=nc {
        let x = x0 + c * j;
        root.draw(&PathElement::new(vec![(x, y0), (x, y0 + c * nr)], grey))
            .map_err(s)?;
    }
    for (i, r) in l.rows.iter().enumerate() {
        root.draw(&Text::new(
            r.as_str(),
            (x0 - 6, y0 + c * i as i32 + c / 2),
            font(FS).pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(s)?;
    }
    for (j, col) in l.cols.iter().enumerate() {
        root.draw(&Text::new(
            col.as_str(),
            (x0 + c * j as i32 + c / 2, y0 + c * nr + 6),
            font(FS)
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(s)?;
    }
    let below = y0 + c * nr + text_w(longest(&l.cols), FS) + 12;
    root.draw(&Text::new(
        "sender -> receiver",
        (x0, below),
        font(FS).pos(Pos::new(HPos::Left, VPos::Top)),
    ))
    .map_err(s)?;
    // Context dots first, the top entries over them.
    for top in [false, true] {
        for d in t.dots.iter().filter(|d| d.top == top) {
            let centre = (x0 + c * d.col as i32 + c / 2, y0 + c * d.row as i32 + c / 2);
            let r = dot_radius(nlp(d.p_adj), l);
            let v = if d.log2_fold_change.is_finite() {
                d.log2_fold_change / l.max_lfc
            } else {
                0.0
            };
            root.draw(&Circle::new(centre, r, diverging(v).filled()))
                .map_err(s)?;
            let edge = if top {
                BLACK.stroke_width(1)
            } else {
                RGBColor(150, 150, 150).stroke_width(1)
            };
            root.draw(&Circle::new(centre, r, edge)).map_err(s)?;
        }
    }
    // Legends: colour, then size.
    let lx = l.legend_x;
    let m = l.max_lfc;
    colour_bar(
        root,
        (lx, y0),
        160,
        "log2 fold change",
        [fmt_tick(-m), "0".to_string(), fmt_tick(m)],
        |x| diverging(2.0 * x - 1.0),
    )?;
    let mut y = y0 + 80;
    root.draw(&Text::new(
        "-log10 adjusted p",
        (lx, y),
        font(FS).pos(Pos::new(HPos::Left, VPos::Top)),
    ))
    .map_err(s)?;
    y += (FS * 1.5) as i32 + c / 2;
    for (i, q) in [1.0 / 3.0, 2.0 / 3.0, 1.0].iter().enumerate() {
        let v = l.max_nlp * q;
        let cx = lx + c / 2 + i as i32 * (c + 24);
        let r = dot_radius(v, l);
        root.draw(&Circle::new((cx, y), r, RGBColor(160, 160, 160).filled()))
            .map_err(s)?;
        root.draw(&Circle::new((cx, y), r, BLACK.stroke_width(1)))
            .map_err(s)?;
        root.draw(&Text::new(
            format!("{v:.1}"),
            (cx, y + c / 2 + 4),
            font(FS * 0.85).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(s)?;
    }
    text_lines(
        root,
        &[
            "black edge: a top entry".to_string(),
            "grey edge: other tested".to_string(),
        ],
        (lx, y + c + 10),
        FS * 0.85,
        (FS * 1.3) as i32,
    )
}

fn no_changed(t: &TopChanged) -> Vec<String> {
    vec![
        format!(
            "No interactions were tested between {} and {}",
            clip(&t.numerator),
            clip(&t.reference)
        ),
        "(no interaction is expressed in either condition)".to_string(),
    ]
}

/// Dot plot of the top changed interactions (module docs) as `<stem>.png` and `<stem>.svg`.
pub fn changed_dot_plot(t: &TopChanged, path_stem: &Path) -> Result<Vec<PathBuf>> {
    Figure::dots(t).write(path_stem)
}

/// [`changed_dot_plot`] as SVG text.
pub fn changed_dot_plot_svg(t: &TopChanged) -> Result<String> {
    Figure::dots(t).svg("interactions dot plot")
}

/// Heat maps of the significant interactions per cluster pair (module docs) as `<stem>.png`
/// and `<stem>.svg`.
pub fn significance_heatmap(g: &SignificanceGrid, path_stem: &Path) -> Result<Vec<PathBuf>> {
    Figure::heat(g).write(path_stem)
}

/// [`significance_heatmap`] as SVG text.
pub fn significance_heatmap_svg(g: &SignificanceGrid) -> Result<String> {
    Figure::heat(g).svg("interactions heat map")
}

/// A figure laid out: its size and what it draws.
enum Figure<'a> {
    /// Lines of text saying why there is nothing to draw.
    Empty(Vec<String>),
    Dots(&'a TopChanged, DotLayout),
    Heat(&'a SignificanceGrid, HeatLayout),
}

impl<'a> Figure<'a> {
    fn dots(t: &'a TopChanged) -> Self {
        if t.dots.is_empty() {
            Figure::Empty(no_changed(t))
        } else {
            Figure::Dots(t, dot_layout(t))
        }
    }

    fn heat(g: &'a SignificanceGrid) -> Self {
        if g.n_clusters == 0 || g.counts.is_empty() {
            Figure::Empty(vec!["No interactions: no cluster pair to count".to_string()])
        } else {
            Figure::Heat(g, heat_layout(g))
        }
    }

    fn size(&self) -> (u32, u32) {
        match self {
            Figure::Empty(lines) => empty_size(lines),
            Figure::Dots(_, l) => l.size,
            Figure::Heat(_, l) => l.size,
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> DResult {
        match self {
            Figure::Empty(lines) => draw_empty(root, lines),
            Figure::Dots(t, l) => draw_changed(root, t, l),
            Figure::Heat(g, l) => draw_heatmap(root, g, l),
        }
    }

    fn write(&self, path_stem: &Path) -> Result<Vec<PathBuf>> {
        render!(path_stem, self.size(), |root| self.draw(&root))
    }

    fn svg(&self, what: &str) -> Result<String> {
        register_fonts();
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, self.size()).into_drawing_area();
            let at = Path::new(what);
            root.fill(&WHITE).map_err(draw_err(at))?;
            self.draw(&root).map_err(draw_err(at))?;
            root.present().map_err(draw_err(at))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_labels_are_cut() {
        let long = "X".repeat(200);
        let c = clip(&long);
        assert_eq!(c.chars().count(), MAX_LABEL);
        assert!(c.ends_with('…'));
        assert_eq!(clip("CCL2 -> CCR2"), "CCL2 -> CCR2");
    }
}
