//! Tables and figures of [`super::within_cluster`].

use super::WithinCluster;
use crate::error::{Error, Result};
use crate::plot::{register_fonts, FAMILY};
use crate::report::{commit_temporary, fmt_f64, write_csv_table};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Columns of `condition_de.csv`.
pub const DE_COLUMNS: [&str; 12] = [
    "cluster",
    "gene",
    "base_mean",
    "log2_fold_change",
    "lfc_se",
    "p_value",
    "p_adjusted",
    "method",
    "samples_numerator",
    "samples_denominator",
    "numerator",
    "denominator",
];
/// Columns of `condition_enrichment.csv` (`genes` separated by `;`).
pub const ENRICHMENT_COLUMNS: [&str; 11] = [
    "cluster",
    "direction",
    "id",
    "name",
    "overlap",
    "set_size",
    "query_size",
    "universe_size",
    "p",
    "p_adjusted",
    "genes",
];
/// Columns of `programs.csv`.
pub const PROGRAM_COLUMNS: [&str; 14] = [
    "cluster",
    "set",
    "name",
    "mean_numerator",
    "mean_denominator",
    "difference",
    "t",
    "p_value",
    "p_adjusted",
    "samples_numerator",
    "samples_denominator",
    "replicates",
    "numerator",
    "denominator",
];
/// Columns of `condition_de_notes.csv`.
pub const NOTE_COLUMNS: [&str; 3] = ["cluster", "method", "note"];

/// Writes into `dir` (created when missing): `condition_de.csv` (`DE_COLUMNS`),
/// `condition_enrichment.csv` (`ENRICHMENT_COLUMNS`), `programs.csv` (`PROGRAM_COLUMNS`),
/// `condition_de_notes.csv` (`NOTE_COLUMNS`: skipped clusters and fallback warnings),
/// `volcano_<cluster>.png` for each tested cluster (log2 fold change against `-log10 p`;
/// red: up at adjusted p < 0.05, blue: down) and, when there are program rows,
/// `programs_heatmap.png` (clusters x programs, colour = difference of the per-sample mean
/// scores, numerator minus denominator; grey = not computed). Returns the paths written.
pub fn write_within_cluster(r: &WithinCluster, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();

    let p = dir.join("condition_de.csv");
    write_csv_table(&p, &DE_COLUMNS, &r.de, |d| {
        vec![
            d.cluster.to_string(),
            d.gene.clone(),
            fmt_f64(d.base_mean),
            fmt_f64(d.log2_fold_change),
            fmt_f64(d.lfc_se),
            fmt_f64(d.p_value),
            fmt_f64(d.p_adjusted),
            d.method.as_str().to_string(),
            d.samples_numerator.to_string(),
            d.samples_denominator.to_string(),
            r.numerator.clone(),
            r.denominator.clone(),
        ]
    })?;
    files.push(p);

    let p = dir.join("condition_enrichment.csv");
    write_csv_table(&p, &ENRICHMENT_COLUMNS, &r.enrichment, |(c, dir, e)| {
        vec![
            c.to_string(),
            dir.to_string(),
            e.id.clone(),
            e.name.clone(),
            e.overlap.to_string(),
            e.set_size.to_string(),
            e.query_size.to_string(),
            e.universe_size.to_string(),
            fmt_f64(e.p),
            fmt_f64(e.p_adj),
            e.genes.join(";"),
        ]
    })?;
    files.push(p);

    let p = dir.join("programs.csv");
    write_csv_table(&p, &PROGRAM_COLUMNS, &r.programs, |g| {
        vec![
            g.cluster.to_string(),
            g.set.clone(),
            g.name.clone(),
            fmt_f64(g.mean_numerator),
            fmt_f64(g.mean_denominator),
            fmt_f64(g.difference),
            fmt_f64(g.t),
            fmt_f64(g.p_value),
            fmt_f64(g.p_adjusted),
            g.samples_numerator.to_string(),
            g.samples_denominator.to_string(),
            g.replicates.to_string(),
            r.numerator.clone(),
            r.denominator.clone(),
        ]
    })?;
    files.push(p);

    let p = dir.join("condition_de_notes.csv");
    write_csv_table(&p, &NOTE_COLUMNS, &r.notes, |n| {
        vec![
            n.cluster.to_string(),
            n.method.map_or("none", |m| m.as_str()).to_string(),
            n.note.clone(),
        ]
    })?;
    files.push(p);

    let mut clusters: Vec<u32> = r.de.iter().map(|d| d.cluster).collect();
    clusters.dedup();
    for c in clusters {
        let points: Vec<(f64, f64, f64)> = r
            .de
            .iter()
            .filter(|d| d.cluster == c && d.log2_fold_change.is_finite() && d.p_value.is_finite())
            .map(|d| {
                (
                    d.log2_fold_change,
                    -d.p_value.max(1e-300).log10(),
                    d.p_adjusted,
                )
            })
            .collect();
        let method =
            r.de.iter()
                .find(|d| d.cluster == c)
                .map_or("", |d| d.method.as_str());
        let title = format!(
            "cluster {c}: {} vs {} ({method})",
            r.numerator, r.denominator
        );
        let p = dir.join(format!("volcano_{c}.png"));
        render_png(&p, (900, 750), |root| volcano(root, &points, &title))?;
        files.push(p);
    }

    if !r.programs.is_empty() {
        let mut clusters: Vec<u32> = r.programs.iter().map(|g| g.cluster).collect();
        clusters.sort_unstable();
        clusters.dedup();
        let mut sets: Vec<(String, String)> = Vec::new();
        for g in &r.programs {
            if !sets.iter().any(|(id, _)| *id == g.set) {
                sets.push((g.set.clone(), g.name.clone()));
            }
        }
        let mut values = vec![f64::NAN; clusters.len() * sets.len()];
        for g in &r.programs {
            let i = clusters.iter().position(|&c| c == g.cluster);
            let j = sets.iter().position(|(id, _)| *id == g.set);
            if let (Some(i), Some(j)) = (i, j) {
                values[i * sets.len() + j] = g.difference;
            }
        }
        let title = format!(
            "program score difference, {} - {}",
            r.numerator, r.denominator
        );
        let p = dir.join("programs_heatmap.png");
        let w = 300 + 90 * sets.len() as u32;
        let h = 320 + 40 * clusters.len() as u32;
        render_png(&p, (w.max(600), h), |root| {
            heatmap(root, &clusters, &sets, &values, &title)
        })?;
        files.push(p);
    }
    Ok(files)
}

type Area<DB> = DrawingArea<DB, plotters::coord::Shift>;
type DResult = std::result::Result<(), String>;

fn s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}

/// Draws a PNG under a temporary name (keeping the extension, which selects the encoder) and
/// renames it into place when complete.
fn render_png<F>(path: &Path, size: (u32, u32), draw: F) -> Result<()>
where
    F: for<'b> FnOnce(&Area<BitMapBackend<'b>>) -> DResult,
{
    register_fonts();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".partial-{}-{name}", std::process::id()));
    let err = |m: String| Error::data(format!("plot {}", path.display()), m);
    let result = (|| {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(s)?;
        draw(&root)?;
        root.present().map_err(s)
    })();
    match result {
        Ok(()) => commit_temporary(&tmp, path),
        Err(m) => {
            let _ = std::fs::remove_file(&tmp);
            Err(err(m))
        }
    }
}

fn volcano<DB: DrawingBackend>(
    root: &Area<DB>,
    points: &[(f64, f64, f64)],
    title: &str,
) -> DResult {
    let xmax = points
        .iter()
        .map(|p| p.0.abs())
        .fold(1.0f64, f64::max)
        .min(50.0)
        * 1.05;
    let ymax = points.iter().map(|p| p.1).fold(1.0f64, f64::max) * 1.05;
    let mut chart = ChartBuilder::on(root)
        .caption(title, font(22.0))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(-xmax..xmax, 0.0..ymax)
        .map_err(s)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .x_desc("log2 fold change")
        .y_desc("-log10 p-value")
        .axis_desc_style(font(16.0))
        .label_style(font(13.0))
        .draw()
        .map_err(s)?;
    let colour = |&(lfc, _, padj): &(f64, f64, f64)| {
        if padj < 0.05 && lfc > 0.0 {
            RGBColor(0xd6, 0x27, 0x28)
        } else if padj < 0.05 && lfc < 0.0 {
            RGBColor(0x1f, 0x77, 0xb4)
        } else {
            RGBColor(0xb0, 0xb0, 0xb0)
        }
    };
    chart
        .draw_series(points.iter().map(|p| {
            Circle::new(
                (p.0.clamp(-xmax, xmax), p.1.min(ymax)),
                3,
                colour(p).filled(),
            )
        }))
        .map_err(s)?;
    Ok(())
}

/// Blue (negative) - white - red (positive), `v` in [-1, 1].
fn diverging(v: f64) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let mix = |a: u8, b: u8, t: f64| (f64::from(a) + (f64::from(b) - f64::from(a)) * t) as u8;
    if v >= 0.0 {
        RGBColor(mix(255, 0xb2, v), mix(255, 0x18, v), mix(255, 0x2b, v))
    } else {
        RGBColor(mix(255, 0x21, -v), mix(255, 0x66, -v), mix(255, 0xac, -v))
    }
}

fn heatmap<DB: DrawingBackend>(
    root: &Area<DB>,
    clusters: &[u32],
    sets: &[(String, String)],
    values: &[f64],
    title: &str,
) -> DResult {
    let (nr, nc) = (clusters.len(), sets.len());
    let vmax = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-12);
    let ids: Vec<String> = sets.iter().map(|(id, _)| id.clone()).collect();
    let rows: Vec<String> = clusters.iter().map(|c| c.to_string()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(format!("{title} (max |diff| {vmax:.3})"), font(18.0))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..nc as f64, 0.0..nr as f64)
        .map_err(s)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("program (GO id)")
        .y_desc("cluster")
        .axis_desc_style(font(15.0))
        .label_style(font(12.0))
        .x_labels(nc * 2 + 1)
        .y_labels(nr * 2 + 1)
        .x_label_formatter(&|v| label_at(*v, &ids, false))
        .y_label_formatter(&|v| label_at(*v, &rows, true))
        .draw()
        .map_err(s)?;
    for i in 0..nr {
        for j in 0..nc {
            let v = values.get(i * nc + j).copied().unwrap_or(f64::NAN);
            let colour = if v.is_finite() {
                diverging(v / vmax)
            } else {
                RGBColor(0xc8, 0xc8, 0xc8)
            };
            let y = (nr - 1 - i) as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(j as f64, y), (j as f64 + 1.0, y + 1.0)],
                    colour.filled(),
                )))
                .map_err(s)?;
        }
    }
    Ok(())
}

/// The name at the middle of cell `v - 0.5` (top row first when `reversed`), else nothing.
fn label_at(v: f64, names: &[String], reversed: bool) -> String {
    let i = (v - 0.5).round();
    if (v - 0.5 - i).abs() > 1e-6 || i < 0.0 || i as usize >= names.len() {
        return String::new();
    }
    let i = i as usize;
    let k = if reversed { names.len() - 1 - i } else { i };
    names.get(k).cloned().unwrap_or_default()
}
