//! Result files of the standard analysis.
//!
//! | file | content |
//! |---|---|
//! | `clusters.csv` | barcode, sample, condition, cluster, umap1, umap2 (kept cells) |
//! | `markers.csv` | the tidy marker table (group, rank, gene, score, log2 fold change, p, adjusted p, fractions, AUC) |
//! | `qc.csv` | QC metrics of every input cell, whether it passed, and why not |
//! | `hvg.csv` | per kept gene: mean, dispersion, normalized dispersion, highly variable flag |
//! | `pca_variance.csv` | variance and variance ratio per principal component |
//! | `summary.json` | cells and genes before and after QC, cluster sizes, clusters skipped by the marker test and why, options, step times and memory, and (from [`write_all`]) the seconds and bytes of every other output file |
//!
//! Every file is written atomically (temporary name, then rename).
//!
//! [`write_all`] writes `analysis.h5ad` on one thread while the tables and figures are
//! written on another (the `.h5ad` writer is one sequential stream), then `summary.json`
//! last, with the time each file took.

use super::{Analysis, PipelineOptions};
use crate::dataset::Column;
use crate::error::{Error, Result};
use crate::io::h5ad::{write_h5ad, H5adOutput, RecField, UnsValue};
use crate::plot::{self, PlotOptions};
use crate::report::{fmt_f64, write_atomic, write_csv_record};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One file written by [`write_all_timed`]: where, how long it took, how large it is.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenFile {
    /// The file's path.
    pub path: PathBuf,
    /// Wall seconds spent writing it. A figure's PNG and SVG are drawn by one call: both
    /// carry the time of that call.
    pub seconds: f64,
    /// Its size in bytes (0 when it cannot be read back).
    pub bytes: u64,
}

impl WrittenFile {
    fn timed(path: PathBuf, started: Instant) -> WrittenFile {
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        WrittenFile {
            path,
            seconds: started.elapsed().as_secs_f64(),
            bytes,
        }
    }
}

/// Writes the CSV files and `summary.json` into `dir` (created if missing); returns their paths.
pub fn write_tables(a: &Analysis, opts: &PipelineOptions, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written: Vec<PathBuf> = write_csv_tables(a, opts, dir)?
        .into_iter()
        .map(|f| f.path)
        .collect();
    written.push(write_summary(a, opts, dir, &[], None)?);
    Ok(written)
}

/// Writes `summary.json` into `dir`, with `outputs` (the other files written, in order) and
/// `write_seconds` (their wall time, `None` when not measured).
fn write_summary(
    a: &Analysis,
    opts: &PipelineOptions,
    dir: &Path,
    outputs: &[WrittenFile],
    write_seconds: Option<f64>,
) -> Result<PathBuf> {
    let mut summary = summary_json(a, opts);
    if let Some(m) = summary.as_object_mut() {
        let files: Vec<serde_json::Value> = outputs
            .iter()
            .map(|f| {
                serde_json::json!({
                    "file": f.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    "seconds": f.seconds,
                    "bytes": f.bytes,
                })
            })
            .collect();
        m.insert("outputs".to_string(), serde_json::Value::Array(files));
        m.insert(
            "write_seconds".to_string(),
            serde_json::json!(write_seconds),
        );
    }
    let p = dir.join("summary.json");
    write_atomic(&p, |w| {
        serde_json::to_writer_pretty(&mut *w, &summary)?;
        w.write_all(b"\n")
    })?;
    Ok(p)
}

/// Writes the CSV tables into `dir` (which exists), timing each.
fn write_csv_tables(a: &Analysis, opts: &PipelineOptions, dir: &Path) -> Result<Vec<WrittenFile>> {
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

fn write_clusters(a: &Analysis, w: &mut dyn Write) -> std::io::Result<()> {
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

/// The content of `summary.json`.
pub fn summary_json(a: &Analysis, opts: &PipelineOptions) -> serde_json::Value {
    let d = a.dataset();
    let sizes = a.cluster_sizes();
    let steps: Vec<serde_json::Value> = a
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "step": s.step,
                "seconds": s.seconds,
                "peak_rss_mb": s.peak_rss_bytes.map(|b| b as f64 / 1_048_576.0),
            })
        })
        .collect();
    serde_json::json!({
        "scrna_version": env!("CARGO_PKG_VERSION"),
        "counts_source": crate::io::inputs::counts_source_by_sample(&d.cells).into_iter()
            .map(|(s, m)| (s, serde_json::json!(m))).collect::<serde_json::Map<_, _>>(),
        "cells_before_qc": a.input_shape.0,
        "genes_before_qc": a.input_shape.1,
        "cells_after_qc": d.n_cells(),
        "genes_after_qc": d.n_genes(),
        "cells_removed_by_reason": a.filtered.cell_summary.iter()
            .map(|(r, n)| (format!("{r:?}"), serde_json::json!(n)))
            .collect::<serde_json::Map<String, serde_json::Value>>(),
        "highly_variable_genes": a.hvg_genes.len(),
        "n_clusters": a.clustering.n_clusters,
        "cluster_sizes": sizes,
        "leiden_quality": a.clustering.quality,
        "marker_warnings": a.markers.warnings,
        "warnings": a.warnings,
        "design_limits": a.design_limits,
        "doublets": a.doublets.as_ref().map(|d| serde_json::json!({
            "removed": d.removed,
            "per_sample": d.per_sample.iter().map(|s| serde_json::json!({
                "sample": s.sample,
                "cells": s.n_cells,
                "predicted_doublets": s.n_predicted,
                "threshold": s.threshold,
                "skipped": s.skipped,
            })).collect::<Vec<_>>(),
        })),
        "integration": a.integration.as_ref().map(|i| serde_json::json!({
            "method": "harmony",
            "batch_key": i.batch_key,
            "batches": i.batches,
            "rounds": i.harmony.iterations,
            "converged": i.harmony.converged,
            "mean_batch_lisi_before": i.lisi_before,
            "mean_batch_lisi_after": i.lisi_after,
        })),
        "options": {
            "min_genes": opts.filter.min_genes,
            "min_cells": opts.filter.min_cells,
            "target_sum": opts.normalize.target_sum,
            "hvg_flavor": format!("{:?}", opts.hvg.flavor),
            "n_top_genes": opts.hvg.n_top_genes,
            "n_pcs": a.pca.variance.len(),
            "scale_max_value": opts.pca.max_value,
            "n_neighbors": a.knn.n_neighbors,
            "resolution": opts.leiden.resolution,
            "seed": opts.leiden.seed,
            "marker_method": format!("{:?}", opts.markers.method),
        },
        "steps": steps,
        "total_seconds": a.steps.iter().map(|s| s.seconds).sum::<f64>(),
    })
}

/// Scanpy's `uns["rank_genes_groups"]` for the analysis' markers (all genes, ranked).
pub fn rank_genes_groups_uns(a: &Analysis, opts: &PipelineOptions) -> UnsValue {
    let names = &a.dataset().genes.symbols;
    let m = &a.markers;
    let field = |f: &dyn Fn(&crate::markers::GroupMarkers, usize) -> RecField| {
        UnsValue::RecArray(
            m.groups
                .iter()
                .map(|g| (g.group.to_string(), f(g, 0)))
                .collect(),
        )
    };
    let ordered = |g: &crate::markers::GroupMarkers, v: &[f64]| -> Vec<f64> {
        g.order.iter().map(|&i| v[i as usize]).collect()
    };
    let method = match opts.markers.method {
        crate::markers::Method::Wilcoxon => "wilcoxon",
        crate::markers::Method::TTest => "t-test",
        crate::markers::Method::TTestOverestimVar => "t-test_overestim_var",
    };
    let corr = match opts.markers.corr_method {
        crate::markers::Correction::BenjaminiHochberg => "benjamini-hochberg",
        crate::markers::Correction::Bonferroni => "bonferroni",
    };
    UnsValue::Dict(vec![
        (
            "params".to_string(),
            UnsValue::Dict(vec![
                ("groupby".to_string(), UnsValue::Str("leiden".to_string())),
                ("reference".to_string(), UnsValue::Str("rest".to_string())),
                ("method".to_string(), UnsValue::Str(method.to_string())),
                ("use_raw".to_string(), UnsValue::Bool(false)),
                ("corr_method".to_string(), UnsValue::Str(corr.to_string())),
            ]),
        ),
        (
            "names".to_string(),
            field(&|g, _| {
                RecField::Str(g.order.iter().map(|&i| names[i as usize].clone()).collect())
            }),
        ),
        (
            "scores".to_string(),
            field(&|g, _| RecField::F32(ordered(g, &g.scores).iter().map(|&x| x as f32).collect())),
        ),
        (
            "logfoldchanges".to_string(),
            field(&|g, _| {
                RecField::F32(
                    ordered(g, &g.logfoldchanges)
                        .iter()
                        .map(|&x| x as f32)
                        .collect(),
                )
            }),
        ),
        (
            "pvals".to_string(),
            field(&|g, _| RecField::F64(ordered(g, &g.pvals))),
        ),
        (
            "pvals_adj".to_string(),
            field(&|g, _| RecField::F64(ordered(g, &g.pvals_adj))),
        ),
    ])
}

/// Writes `analysis.h5ad`: `X` (log-normalized), `layers["counts"]`, obs (QC, `leiden`), var
/// (HVG columns), `obsm["X_pca"]`, `obsm["X_umap"]`, `varm["PCs"]` (zero outside the highly
/// variable genes, as Scanpy), `obsp["connectivities"]`, `obsp["distances"]` and
/// `uns["rank_genes_groups"]` (left out when no cluster could be tested, see
/// [`crate::markers::RankGenes::warnings`]).
pub fn write_h5ad_file(a: &Analysis, opts: &PipelineOptions, path: &Path) -> Result<()> {
    let d = a.dataset();
    let x = a.log_normalized()?;
    let mut out = H5adOutput::new(&x, &d.cells, &d.genes);
    out.layers.push(("counts".to_string(), &d.counts));
    out.obsm.push(("X_pca".to_string(), a.pca.embedding.view()));
    if let Some(i) = &a.integration {
        out.obsm
            .push(("X_pca_harmony".to_string(), i.harmony.embedding.view()));
    }
    if a.umap.nrows() == d.n_cells() {
        out.obsm.push(("X_umap".to_string(), a.umap.view()));
    }
    let k = a.pca.loadings.ncols();
    let mut pcs = ndarray::Array2::<f32>::zeros((d.n_genes(), k));
    for (row, &g) in a.hvg_genes.iter().enumerate() {
        pcs.row_mut(g).assign(&a.pca.loadings.row(row));
    }
    out.varm.push(("PCs".to_string(), pcs.view()));
    out.obsp
        .push(("connectivities".to_string(), &a.connectivities));
    out.obsp.push(("distances".to_string(), &a.distances));
    // No cluster could be tested (e.g. a single cluster): no table to store.
    if !a.markers.groups.is_empty() {
        out.uns.push((
            "rank_genes_groups".to_string(),
            rank_genes_groups_uns(a, opts),
        ));
    }
    out.compression = opts.h5ad_compression;
    write_h5ad(&out, path)
}

/// Writes the figures (PNG and SVG): `umap_clusters`, `umap_sample`, `umap_condition`,
/// `qc_violins`, `markers_dotplot` (top 3 markers per cluster), `pca_elbow`.
pub fn write_plots(a: &Analysis, dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(write_plots_timed(a, dir)?
        .into_iter()
        .map(|f| f.path)
        .collect())
}

/// Collects the files of figures, each timed from the end of the previous one.
struct Timed {
    files: Vec<WrittenFile>,
    since: Instant,
}

impl Timed {
    fn extend(&mut self, paths: Vec<PathBuf>) {
        let seconds = self.since.elapsed().as_secs_f64();
        for p in paths {
            let mut f = WrittenFile::timed(p, self.since);
            f.seconds = seconds;
            self.files.push(f);
        }
        self.since = Instant::now();
    }
}

/// [`write_plots`] with the time of every figure.
fn write_plots_timed(a: &Analysis, dir: &Path) -> Result<Vec<WrittenFile>> {
    let d = a.dataset();
    let po = PlotOptions::default();
    let mut files = Timed {
        files: Vec::new(),
        since: Instant::now(),
    };
    let cluster_names: Vec<String> = (0..a.clustering.n_clusters)
        .map(|c| c.to_string())
        .collect();
    if a.umap.nrows() == d.n_cells() {
        files.extend(plot::umap_clusters(
            a.umap.view(),
            &a.clustering.labels,
            &cluster_names,
            &dir.join("umap_clusters"),
            &po,
        )?);
        for (title, values, stem) in [
            ("Sample", &d.cells.sample, "umap_sample"),
            ("Condition", &d.cells.condition, "umap_condition"),
        ] {
            if let Column::Categorical { codes, categories } = Column::categorical_from(values) {
                files.extend(plot::umap_categorical(
                    a.umap.view(),
                    &codes,
                    &categories,
                    title,
                    &dir.join(stem),
                    &po,
                )?);
            }
        }
    }
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let genes_f: Vec<f32> = a.qc.n_genes_by_counts.iter().map(|&x| x as f32).collect();
    let samples = Column::categorical_from(&a.input_cells.sample);
    let groups = match &samples {
        Column::Categorical { codes, categories } if categories.len() > 1 => {
            Some((codes.as_slice(), categories.as_slice()))
        }
        _ => None,
    };
    files.extend(plot::qc_violins(
        &f32s(&a.qc.total_counts),
        &genes_f,
        &f32s(&a.qc.pct_counts_mt),
        groups,
        &dir.join("qc_violins"),
        &po,
    )?);
    // Dot plot of the top 3 markers of each cluster.
    let mut genes: Vec<usize> = Vec::new();
    for g in &a.markers.groups {
        for &i in g.order.iter().take(3) {
            if !genes.contains(&(i as usize)) {
                genes.push(i as usize);
            }
        }
    }
    if !genes.is_empty() {
        let mut sorted = genes.clone();
        sorted.sort_unstable();
        let sub = a.log_normalized()?.select_cols(&sorted)?;
        // Column of `sub` -> position in `genes` (the plot's order).
        let plot_pos: Vec<usize> = sorted
            .iter()
            .map(|g| genes.iter().position(|x| x == g).unwrap_or(0))
            .collect();
        let k = a.clustering.n_clusters;
        let mut frac = ndarray::Array2::<f32>::zeros((k, genes.len()));
        let mut mean = ndarray::Array2::<f32>::zeros((k, genes.len()));
        let sizes = a.cluster_sizes();
        for (cell, &l) in a.clustering.labels.iter().enumerate() {
            let (idx, val) = sub.row(cell);
            for (&c, &v) in idx.iter().zip(val) {
                let j = plot_pos[c as usize];
                if v > 0.0 {
                    frac[(l as usize, j)] += 1.0;
                }
                mean[(l as usize, j)] += v;
            }
        }
        for (c, &s) in sizes.iter().enumerate() {
            let s = s.max(1) as f32;
            frac.row_mut(c).mapv_inplace(|x| x / s);
            mean.row_mut(c).mapv_inplace(|x| x / s);
        }
        let names: Vec<String> = genes.iter().map(|&g| d.genes.symbols[g].clone()).collect();
        files.extend(plot::dot_plot(
            frac.view(),
            mean.view(),
            &names,
            &cluster_names,
            &dir.join("markers_dotplot"),
            &po,
        )?);
    }
    files.extend(plot::pca_elbow(
        &f32s(&a.pca.variance_ratio),
        &dir.join("pca_elbow"),
        &po,
    )?);
    Ok(files.files)
}

/// Writes every result file into `dir`: the tables of [`write_tables`], `analysis.h5ad` and
/// the plots. Returns the paths written.
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// # let mut o = scrna::pipeline::PipelineOptions::default();
/// # o.skip_umap = true;
/// # let analysis = scrna::pipeline::run(&data, &o, &mut |_| {})?;
/// let dir = std::env::temp_dir().join(format!("scrna-doc-tables-{}", std::process::id()));
/// let files = scrna::pipeline::output::write_all(&analysis, &o, &dir)?;
/// assert!(files.iter().all(|f| f.exists()));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn write_all(a: &Analysis, opts: &PipelineOptions, dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(write_all_timed(a, opts, dir)?
        .into_iter()
        .map(|f| f.path)
        .collect())
}

/// [`write_all`], returning the time and size of every file (`summary.json` last, whose
/// `outputs` list holds the others' and `write_seconds` their wall time together).
///
/// `analysis.h5ad` is written on one thread while the CSV tables and then the figures are
/// written on another; the files and their bytes are the same as written one after the
/// other.
pub fn write_all_timed(
    a: &Analysis,
    opts: &PipelineOptions,
    dir: &Path,
) -> Result<Vec<WrittenFile>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let started = Instant::now();
    let h5 = dir.join("analysis.h5ad");
    let (h5ad, rest) = std::thread::scope(|s| {
        let other = s.spawn(|| -> Result<Vec<WrittenFile>> {
            let mut files = write_csv_tables(a, opts, dir)?;
            files.extend(write_plots_timed(a, dir)?);
            Ok(files)
        });
        let t = Instant::now();
        let h5ad = write_h5ad_file(a, opts, &h5).map(|()| WrittenFile::timed(h5.clone(), t));
        let rest = other.join().unwrap_or_else(|_| {
            Err(Error::data(
                "writing outputs",
                "the thread writing the tables and figures failed",
            ))
        });
        (h5ad, rest)
    });
    let mut files = rest?;
    files.insert(files.len().min(5), h5ad?);
    let wall = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let summary = write_summary(a, opts, dir, &files, Some(wall))?;
    files.push(WrittenFile::timed(summary, t));
    Ok(files)
}
