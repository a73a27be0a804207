//! The QC panel: violins, jittered points and medians of the per-cell QC metrics.

use super::{
    draw_err, font, median, palette, register_fonts, s, temporary_keeping_ext, with_ext, Area,
    DResult, PlotOptions, RemoveOnDrop,
};
use crate::error::{Error, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};

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
