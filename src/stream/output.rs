//! Result files of the streamed analysis.
//!
//! | file | content |
//! |---|---|
//! | `clusters.csv` | barcode, sample, condition, cluster, umap1, umap2 (kept cells) |
//! | `markers.csv` | the tidy marker table, as the in-memory pipeline's |
//! | `summary.json` | cells and genes before and after QC, cluster sizes, options, the memory budget and plan, passes over the file (and why QC and HVG read it separately), seconds and peak memory per step, the overall peak; for a distributed run the workers and the bytes exchanged per pass |
//!
//! Every file is written atomically (temporary name, then rename).

use super::{StreamAnalysis, StreamOptions};
use crate::error::{Error, Result};
use crate::report::write_atomic;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes the result files into `dir` (created if missing); returns their paths.
pub fn write_all(a: &StreamAnalysis, opts: &StreamOptions, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written = Vec::new();
    let mut out = |name: &str, f: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| -> Result<()> {
        let p = dir.join(name);
        write_atomic(&p, |w| f(w))?;
        written.push(p);
        Ok(())
    };
    out("clusters.csv", &|w| write_clusters(a, opts, w))?;
    let rows = a
        .markers
        .table(&a.kept_symbols(), &opts.pipeline.marker_table)?;
    out("markers.csv", &|w| crate::markers::write_csv_to(&rows, w))?;
    let summary = summary_json(a, opts);
    out("summary.json", &|w| {
        serde_json::to_writer_pretty(&mut *w, &summary)?;
        w.write_all(b"\n")
    })?;
    Ok(written)
}

fn write_clusters(
    a: &StreamAnalysis,
    opts: &StreamOptions,
    w: &mut dyn Write,
) -> std::io::Result<()> {
    crate::pipeline::output::write_clusters_csv(
        w,
        a.cells.keep_cells.iter().map(|&i| {
            [
                a.barcodes[i].as_str(),
                opts.read.sample.as_str(),
                opts.read.condition.as_str(),
            ]
        }),
        &a.clustering.labels,
        &a.umap,
    )
}

/// The content of `summary.json`.
pub fn summary_json(a: &StreamAnalysis, opts: &StreamOptions) -> serde_json::Value {
    let mb = |b: u64| b as f64 / 1_048_576.0;
    let po = &opts.pipeline;
    let steps = crate::pipeline::output::steps_json(&a.steps);
    let p = &a.plan;
    serde_json::json!({
        "scrna_version": env!("CARGO_PKG_VERSION"),
        "mode": "streamed",
        "cells_before_qc": a.input_shape.0,
        "genes_before_qc": a.input_shape.1,
        "stored_values": a.input_nnz,
        "cells_after_qc": a.cells.keep_cells.len(),
        "genes_after_qc": a.kept_genes.len(),
        "cells_removed_by_reason": a.cells.cell_summary.iter()
            .map(|(r, n)| (format!("{r:?}"), serde_json::json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        "highly_variable_genes": a.hvg_genes.len(),
        "n_clusters": a.clustering.n_clusters,
        "cluster_sizes": a.cluster_sizes(),
        "leiden_quality": a.clustering.quality,
        "memory": {
            "budget_bytes": p.budget_bytes,
            "budget_mb": mb(p.budget_bytes),
            "observed_peak_rss_mb": a.peak_rss_bytes.map(mb),
            "resident_estimate_mb": mb(p.resident_bytes),
            "read_block_mb": mb(p.read_block_bytes),
            "in_memory_steps_estimate_mb": mb(p.downstream_bytes),
            "marker_block_target_mb": mb(p.marker_block_bytes),
            "cell_blocks": p.cell_blocks.len(),
            "marker_gene_blocks": p.marker_blocks.len(),
        },
        "passes_over_file": a.passes,
        "workers": a.workers,
        "exchange": a.exchange.iter().map(|r| serde_json::json!({
            "pass": r.pass,
            "messages": r.messages,
            "bytes": r.bytes,
            "bytes_between_processes": r.network_bytes,
            "seconds": r.seconds,
        })).collect::<Vec<_>>(),
        "qc_hvg_passes": a.qc_hvg_passes,
        "options": {
            "min_genes": po.filter.min_genes,
            "min_cells": po.filter.min_cells,
            "target_sum": po.normalize.target_sum,
            "hvg_flavor": format!("{:?}", po.hvg.flavor),
            "n_top_genes": po.hvg.n_top_genes,
            "n_pcs": a.pca.variance.len(),
            "scale_max_value": po.pca.max_value,
            "n_neighbors": a.knn.n_neighbors,
            "resolution": po.leiden.resolution,
            "seed": po.leiden.seed,
            "marker_method": format!("{:?}", po.markers.method),
            "chunk_cells": opts.chunk_cells,
        },
        "steps": steps,
        "total_seconds": a.steps.iter().map(|s| s.seconds).sum::<f64>(),
    })
}
