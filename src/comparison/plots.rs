//! Plots of the condition comparison.

use super::{ClusterEnrichment, ConditionResult};
use crate::error::{Error, Result};
use crate::pipeline::Analysis;
use crate::plot::{self, PlotOptions};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Plots of the comparison: `composition_bars` (cluster proportions per sample),
/// `umap_<condition>` (the UMAP split by condition: each condition's cells coloured by
/// cluster) and `enrichment_cluster<c>` (top 10 terms of each condition-specific cluster,
/// `-log10` adjusted p) and `da_neighbourhoods` (`da_neighbourhoods_plot`, with a Milo
/// result and a UMAP layout).
pub fn write_plots(a: &Analysis, r: &ConditionResult, dir: &Path) -> Result<Vec<PathBuf>> {
    let comp = &r.composition;
    let po = PlotOptions::default();
    let mut files = Vec::new();
    let clusters: Vec<String> = (0..comp.n_clusters).map(|c| c.to_string()).collect();
    let props: Vec<Vec<f64>> = (0..comp.n_clusters)
        .map(|c| {
            (0..comp.samples.len())
                .map(|s| comp.sample_proportion(c, s))
                .collect()
        })
        .collect();
    files.extend(plot::stacked_bars(
        &props,
        &clusters,
        &comp.samples,
        &dir.join("composition_bars"),
        &po,
    )?);
    let d = a.dataset();
    if a.umap.nrows() == d.n_cells() {
        for cond in &comp.conditions {
            let cells: Vec<usize> = (0..d.n_cells())
                .filter(|&i| &d.cells.condition[i] == cond)
                .collect();
            let emb = a.umap.select(ndarray::Axis(0), &cells);
            let labels: Vec<u32> = cells.iter().map(|&i| a.clustering.labels[i]).collect();
            let safe: String = cond
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                .collect();
            files.extend(plot::umap_clusters(
                emb.view(),
                &labels,
                &clusters,
                &dir.join(format!("umap_{safe}")),
                &PlotOptions {
                    title: Some(format!("Clusters in {cond} cells")),
                    ..Default::default()
                },
            )?);
        }
    }
    for &(c, k) in &comp.specific() {
        let top: Vec<&ClusterEnrichment> = r
            .enrichment
            .iter()
            .filter(|e| e.cluster == c)
            .take(10)
            .collect();
        if top.is_empty() {
            continue;
        }
        let labels: Vec<String> = top
            .iter()
            .map(|e| format!("{} {}", e.row.id, e.row.name))
            .collect();
        let values: Vec<f64> = top
            .iter()
            .map(|e| -e.row.p_adj.max(1e-300).log10())
            .collect();
        files.extend(plot::bar_chart(
            &labels,
            &values,
            "-log10 adjusted p",
            &dir.join(format!("enrichment_cluster{c}")),
            &PlotOptions {
                title: Some(format!(
                    "Cluster {c} ({}-specific): top enriched terms",
                    comp.conditions[k]
                )),
                width: 1400,
                ..Default::default()
            },
        )?);
    }
    if let Some(m) = &r.milo {
        if a.umap.nrows() == d.n_cells() {
            files.push(da_neighbourhoods_plot(
                a.umap.view(),
                m,
                &dir.join("da_neighbourhoods.png"),
            )?);
        }
    }
    Ok(files)
}

/// Diverging blue - white - red colour of `t` in [-1, 1] (ColorBrewer `RdBu` ends).
pub(crate) fn diverging(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let (end, f) = if t >= 0.0 {
        ((178.0, 24.0, 43.0), t)
    } else {
        ((33.0, 102.0, 172.0), -t)
    };
    let mix = |e: f64| (255.0 + (e - 255.0) * f).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

/// Milo's neighbourhoods on the UMAP (as miloR's `plotNhoodGraphDA`, without the edges): all
/// cells in light grey, each neighbourhood a disc at its index cell's position, its area
/// proportional to its size, coloured by log2 fold change (numerator over reference; red up,
/// blue down, scaled to the largest absolute value) when its spatial FDR is below the
/// threshold and white otherwise. A PNG without text (the colour scale is in
/// `da_neighbourhoods.csv`).
pub fn da_neighbourhoods_plot(
    umap: ndarray::ArrayView2<f32>,
    m: &super::MiloResult,
    path: &Path,
) -> Result<PathBuf> {
    let n = umap.nrows();
    if umap.ncols() < 2 || n == 0 {
        return Err(Error::data("da_neighbourhoods plot", "no UMAP layout"));
    }
    let rows = &m.milo.rows;
    if rows.iter().any(|r| r.index_cell >= n) {
        return Err(Error::data(
            "da_neighbourhoods plot",
            "an index cell is not in the layout",
        ));
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for i in 0..n {
        let (x, y) = (f64::from(umap[(i, 0)]), f64::from(umap[(i, 1)]));
        if x.is_finite() && y.is_finite() {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
    }
    if x0 > x1 || y0 > y1 {
        return Err(Error::data(
            "da_neighbourhoods plot",
            "no finite UMAP position",
        ));
    }
    let (w, h) = (1000u32, 900u32);
    let margin = 40.0;
    let sx = (f64::from(w) - 2.0 * margin) / (x1 - x0).max(1e-9);
    let sy = (f64::from(h) - 2.0 * margin) / (y1 - y0).max(1e-9);
    let at = |i: usize| {
        (
            (margin + (f64::from(umap[(i, 0)]) - x0) * sx).round() as i32,
            (f64::from(h) - margin - (f64::from(umap[(i, 1)]) - y0) * sy).round() as i32,
        )
    };
    let max_lfc = rows
        .iter()
        .filter(|r| r.log_fc.is_finite())
        .map(|r| r.log_fc.abs())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let max_size = rows.iter().map(|r| r.size).max().unwrap_or(1).max(1) as f64;
    // Largest neighbourhoods first, so small ones stay visible.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| rows[b].size.cmp(&rows[a].size).then(a.cmp(&b)));
    let tmp = path.with_file_name(format!(
        ".da_neighbourhoods.partial-{}.png",
        std::process::id()
    ));
    let draw_err =
        |e: &dyn std::fmt::Display| Error::data(format!("plot {}", path.display()), e.to_string());
    {
        let root = BitMapBackend::new(&tmp, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(&e))?;
        let grey = RGBColor(225, 225, 225);
        for i in 0..n {
            if umap[(i, 0)].is_finite() && umap[(i, 1)].is_finite() {
                root.draw(&Circle::new(at(i), 1, grey.filled()))
                    .map_err(|e| draw_err(&e))?;
            }
        }
        for &k in &order {
            let r = &rows[k];
            let radius = (3.0 + 9.0 * (r.size as f64 / max_size).sqrt()).round() as i32;
            let t = if r.spatial_fdr < m.milo.alpha {
                r.log_fc / max_lfc
            } else {
                0.0
            };
            let centre = at(r.index_cell);
            root.draw(&Circle::new(centre, radius, diverging(t).filled()))
                .map_err(|e| draw_err(&e))?;
            root.draw(&Circle::new(
                centre,
                radius,
                RGBColor(90, 90, 90).stroke_width(1),
            ))
            .map_err(|e| draw_err(&e))?;
        }
        root.present().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            draw_err(&e)
        })?;
    }
    crate::report::commit_temporary(&tmp, path)?;
    Ok(path.to_path_buf())
}
