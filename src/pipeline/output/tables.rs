//! The CSV tables of the analysis: `clusters.csv`, `markers.csv`, `qc.csv`, `hvg.csv` and
//! `pca_variance.csv`.

use super::super::{Analysis, PipelineOptions};
use super::WrittenFile;
use crate::error::Result;
use crate::report::{fmt_f64, write_atomic, write_csv_record};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Writes the CSV tables into `dir` (which exists), timing each.
pub(super) fn write_csv_tables(
    a: &Analysis,
    opts: &PipelineOptions,
    dir: &Path,
) -> Result<Vec<WrittenFile>> {
    let mut written = Vec::new();
    let mut out = |name: &str, f: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| -> Result<()> {
        let p = dir.join(name);
        let t = Instant::now();
        write_atomic(&p, |w| f(w))?;
        written.push(WrittenFile::timed(p, t));
        Ok(())
    };
    out("clusters.csv", &|w| write_clusters(a, w))?;
    let rows = a
        .markers
        .table(&a.dataset().genes.symbols, &opts.marker_table)?;
    out("markers.csv", &|w| crate::markers::write_csv_to(&rows, w))?;
    out("qc.csv", &|w| write_qc(a, w))?;
    out("hvg.csv", &|w| write_hvg(a, w))?;
    out("pca_variance.csv", &|w| write_pca_variance(a, w))?;
    Ok(written)
}

pub(crate) fn write_clusters(a: &Analysis, w: &mut dyn Write) -> std::io::Result<()> {
    let cells = &a.dataset().cells;
    write_clusters_csv(
        w,
        (0..cells.len()).map(|i| {
            [
                cells.barcodes[i].as_str(),
                cells.sample[i].as_str(),
                cells.condition[i].as_str(),
            ]
        }),
        &a.clustering.labels,
        &a.umap,
    )
}

/// `clusters.csv`: one row per cell, `barcode,sample,condition,cluster,umap1,umap2`, from the
/// cells' `[barcode, sample, condition]` in order, their cluster labels and the layout (`NA`
/// when the layout was skipped, i.e. has another number of rows).
pub(crate) fn write_clusters_csv<'a>(
    w: &mut dyn Write,
    cells: impl Iterator<Item = [&'a str; 3]>,
    labels: &[u32],
    umap: &ndarray::Array2<f32>,
) -> std::io::Result<()> {
    write_csv_record(
        w,
        &[
            "barcode",
            "sample",
            "condition",
            "cluster",
            "umap1",
            "umap2",
        ],
    )?;
    let has_umap = umap.nrows() == labels.len();
    for (i, ([barcode, sample, condition], label)) in cells.zip(labels).enumerate() {
        let (u1, u2) = if has_umap {
            (fmt_f64(umap[(i, 0)] as f64), fmt_f64(umap[(i, 1)] as f64))
        } else {
            ("NA".to_string(), "NA".to_string())
        };
        write_csv_record(
            w,
            &[barcode, sample, condition, &label.to_string(), &u1, &u2],
        )?;
    }
    Ok(())
}

fn write_qc(a: &Analysis, w: &mut dyn Write) -> std::io::Result<()> {
    write_csv_record(
        w,
        &[
            "barcode",
            "sample",
            "condition",
            "total_counts",
            "n_genes_by_counts",
            "pct_counts_mt",
            "pct_counts_ribo",
            "passed",
            "removed_because",
        ]
        .into_iter()
        .chain(
            a.doublets
                .as_ref()
                .map(|_| ["doublet_score", "predicted_doublet"])
                .into_iter()
                .flatten(),
        )
        .collect::<Vec<_>>(),
    )?;
    let mut reason = vec![String::new(); a.input_cells.len()];
    for (i, r) in &a.filtered.removed_cells {
        if let Some(slot) = reason.get_mut(*i) {
            *slot = format!("{r:?}");
        }
    }
    let q = &a.qc;
    for (i, why) in reason.iter().enumerate() {
        let mut fields = vec![
            a.input_cells.barcodes[i].clone(),
            a.input_cells.sample[i].clone(),
            a.input_cells.condition[i].clone(),
            fmt_f64(q.total_counts[i]),
            q.n_genes_by_counts[i].to_string(),
            fmt_f64(q.pct_counts_mt[i]),
            fmt_f64(q.pct_counts_ribo[i]),
            (if why.is_empty() { "true" } else { "false" }).to_string(),
            why.clone(),
        ];
        if let Some(d) = &a.doublets {
            let s = d.scores[i];
            fields.push(if s.is_nan() {
                String::new()
            } else {
                fmt_f64(s)
            });
            fields.push(d.predicted[i].to_string());
        }
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        write_csv_record(w, &refs)?;
    }
    Ok(())
}

fn write_hvg(a: &Analysis, w: &mut dyn Write) -> std::io::Result<()> {
    write_csv_record(
        w,
        &[
            "gene_id",
            "symbol",
            "mean",
            "dispersion",
            "dispersion_norm",
            "variance",
            "variance_norm",
            "highly_variable",
        ],
    )?;
    let g = &a.dataset().genes;
    let h = &a.hvg;
    let get =
        |v: &Option<Vec<f64>>, i: usize| v.as_ref().map_or("NA".to_string(), |v| fmt_f64(v[i]));
    for i in 0..g.len() {
        write_csv_record(
            w,
            &[
                g.ids[i].as_str(),
                &g.symbols[i],
                &fmt_f64(h.means[i]),
                &get(&h.dispersions, i),
                &get(&h.dispersions_norm, i),
                &get(&h.variances, i),
                &get(&h.variances_norm, i),
                if h.highly_variable[i] {
                    "true"
                } else {
                    "false"
                },
            ],
        )?;
    }
    Ok(())
}

fn write_pca_variance(a: &Analysis, w: &mut dyn Write) -> std::io::Result<()> {
    write_csv_record(
        w,
        &[
            "component",
            "variance",
            "variance_ratio",
            "cumulative_ratio",
        ],
    )?;
    let mut cum = 0.0;
    for (k, (v, r)) in a.pca.variance.iter().zip(&a.pca.variance_ratio).enumerate() {
        cum += r;
        write_csv_record(
            w,
            &[(k + 1).to_string(), fmt_f64(*v), fmt_f64(*r), fmt_f64(cum)],
        )?;
    }
    Ok(())
}
