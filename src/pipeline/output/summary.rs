//! `summary.json`: its content and the file with the list of the other outputs.

use super::super::{Analysis, PipelineOptions};
use super::WrittenFile;
use crate::error::Result;
use crate::report::write_atomic;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `summary.json` into `dir`, with `outputs` (the other files written, in order, each
/// with its own seconds) and `write_seconds` (the wall time of writing them after the steps,
/// `None` when not measured; an `analysis.h5ad` written during the `umap` step by
/// [`crate::pipeline::run_owned_with_h5ad`] is listed with its own seconds but not in it).
pub(super) fn write_summary(
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

/// The `steps` rows of `summary.json` (in-memory and streamed): name, seconds, peak MB.
pub(crate) fn steps_json(steps: &[crate::pipeline::StepReport]) -> Vec<serde_json::Value> {
    steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "step": s.step,
                "seconds": s.seconds,
                "peak_rss_mb": s.peak_rss_bytes.map(|b| b as f64 / 1_048_576.0),
            })
        })
        .collect()
}

/// The content of `summary.json`.
pub fn summary_json(a: &Analysis, opts: &PipelineOptions) -> serde_json::Value {
    let d = a.dataset();
    let sizes = a.cluster_sizes();
    let steps = steps_json(&a.steps);
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
                "removed": d.removed && !d.kept.contains(&s.sample),
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
