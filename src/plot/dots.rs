//! The dot plot of marker genes: fraction expressing as dot size, mean expression as colour.

use super::{
    draw_err, font, reds, register_fonts, s, temporary_keeping_ext, with_ext, Area, DResult,
    PlotOptions, RemoveOnDrop,
};
use crate::error::{Error, Result};
use ndarray::ArrayView2;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use std::path::{Path, PathBuf};

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
