//! Bar charts: cluster proportions per sample as stacked bars, and horizontal bars of values
//! by label.

use super::colors::{hex, DEFAULT_20};
use super::{
    draw_err, font, palette, register_fonts, s, temporary_keeping_ext, with_ext, Area, DResult,
    PlotOptions, RemoveOnDrop,
};
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

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
