//! The PCA elbow plot: the variance ratio of each principal component.

use super::colors::{hex, DEFAULT_20};
use super::{
    draw_err, font, register_fonts, s, temporary_keeping_ext, with_ext, Area, DResult, PlotOptions,
    RemoveOnDrop,
};
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

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
