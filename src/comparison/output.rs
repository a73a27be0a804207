//! Result files of the condition comparison.
//!
//! | file | content |
//! |---|---|
//! | `composition.csv` | cells per (cluster, sample), the sample's share, and propeller's t, p and FDR of the cluster for the sample's condition |
//! | `condition_specific_clusters.csv` | per (cluster, condition): shares, Fisher's test over cells, propeller, `replicates`, `decided_by` (`propeller` or `fisher_cells`) and the call |
//! | `markers_condition_specific.csv`, `enrichment.csv`, `gene_set_scores.csv` | the genes, terms and scores of the specific clusters |
//! | `interactions.csv` | CellPhoneDB's statistical analysis over all cells (rows with a mean above 0) |
//! | `interactions_diff.csv`, `interactions_summary.csv` | interactions between the conditions and the significant secreted / adhesion interactions per cluster pair and condition ([`crate::interactions::diff::write_tables`]) |
//! | `interactions_dotplot.{png,svg}` | the top changed interactions (at most 30 entries by adjusted p, then \|log2 FC\|): rows ligand -> receptor, columns sender -> receiver, colour log2 fold change, size -log10 adjusted p ([`crate::plot::interactions::changed_dot_plot`]) |
//! | `interactions_heatmap.{png,svg}` | significant interactions per cluster pair (sender x receiver) in each condition and their difference ([`crate::plot::interactions::significance_heatmap`]) |
//! | `da_neighbourhoods.csv`, `da_clusters.csv` | Milo's neighbourhoods and their per-cluster summary (with replicates) |
//! | `clusters.csv` | the analysis' cells (barcode, sample, condition, cluster, UMAP), as the pipeline writes it |
//! | `comparison_summary.json` | samples per condition, replicates, notes and the calls |

use super::ConditionResult;
use crate::error::{Error, Result};
use crate::pipeline::Analysis;
use crate::report::{fmt_f64, write_atomic, write_csv_table};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes the files of the module docs and the plots of [`super::write_plots`] into `dir`
/// (created if missing); returns their paths.
pub fn write_all(a: &Analysis, r: &ConditionResult, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    let comp = &r.composition;

    let p = dir.join("composition.csv");
    write_csv_table(
        &p,
        &[
            "cluster",
            "sample",
            "condition",
            "cells",
            "sample_cells",
            "proportion",
            "propeller_t",
            "propeller_p",
            "propeller_fdr",
        ],
        (0..comp.n_clusters).flat_map(|c| {
            comp.samples
                .iter()
                .enumerate()
                .map(move |(s, name)| (c, (s, name)))
        }),
        |(c, (s, name))| {
            let t = comp.test(c as u32, comp.sample_condition[s]);
            let get = |f: fn(&crate::conditions::Enrichment) -> Option<f64>| {
                t.and_then(f).map_or("NA".to_string(), fmt_f64)
            };
            vec![
                c.to_string(),
                name.clone(),
                comp.conditions[comp.sample_condition[s]].clone(),
                comp.counts_by_sample[c][s].to_string(),
                comp.sample_totals[s].to_string(),
                fmt_f64(comp.sample_proportion(c, s)),
                get(|t| t.propeller_t),
                get(|t| t.propeller_p),
                get(|t| t.propeller_fdr),
            ]
        },
    )?;
    files.push(p);

    let p = dir.join("condition_specific_clusters.csv");
    write_csv_table(
        &p,
        &[
            "cluster",
            "condition",
            "cells_in_condition",
            "cells_other_conditions",
            "proportion_of_condition",
            "normalized_share",
            "odds_ratio",
            "ci_low",
            "ci_high",
            "p",
            "p_adj",
            "propeller_t",
            "propeller_p",
            "propeller_fdr",
            "replicates",
            "decided_by",
            "specific",
        ],
        &comp.tests,
        |t| {
            let opt = |x: Option<f64>| x.map_or("NA".to_string(), fmt_f64);
            vec![
                t.cluster.to_string(),
                comp.conditions[t.condition].clone(),
                t.in_cluster.to_string(),
                t.other_in_cluster.to_string(),
                fmt_f64(t.proportion),
                fmt_f64(t.share),
                fmt_f64(t.odds_ratio),
                fmt_f64(t.ci_low),
                fmt_f64(t.ci_high),
                fmt_f64(t.p),
                fmt_f64(t.p_adj),
                opt(t.propeller_t),
                opt(t.propeller_p),
                opt(t.propeller_fdr),
                comp.replicates.to_string(),
                t.decided_by.as_str().to_string(),
                t.specific.to_string(),
            ]
        },
    )?;
    files.push(p);

    let p = dir.join("markers_condition_specific.csv");
    write_csv_table(
        &p,
        &[
            "cluster",
            "reference",
            "rank",
            "gene",
            "score",
            "log2_fold_change",
            "p",
            "p_adj",
            "fraction_in",
            "fraction_out",
            "auc",
        ],
        r.markers
            .iter()
            .flat_map(|m| m.rows.iter().map(move |row| (m, row))),
        |(m, row)| {
            vec![
                m.cluster.to_string(),
                m.reference.to_string(),
                row.rank.to_string(),
                row.gene.clone(),
                fmt_f64(row.score),
                fmt_f64(row.logfoldchange),
                fmt_f64(row.pval),
                fmt_f64(row.pval_adj),
                fmt_f64(row.pct_in),
                fmt_f64(row.pct_out),
                fmt_f64(row.auc),
            ]
        },
    )?;
    files.push(p);

    let p = dir.join("enrichment.csv");
    write_csv_table(
        &p,
        &[
            "cluster", "term_id", "name", "overlap", "set_size", "p", "p_adj", "genes",
        ],
        &r.enrichment,
        |e| {
            vec![
                e.cluster.to_string(),
                e.row.id.clone(),
                e.row.name.clone(),
                e.row.overlap.to_string(),
                e.row.set_size.to_string(),
                fmt_f64(e.row.p),
                fmt_f64(e.row.p_adj),
                e.row.genes.join(";"),
            ]
        },
    )?;
    files.push(p);

    let p = dir.join("gene_set_scores.csv");
    write_csv_table(
        &p,
        &[
            "set",
            "name",
            "cluster",
            "condition",
            "n_cells",
            "mean_score",
        ],
        &r.scores,
        |s| {
            vec![
                s.set.clone(),
                s.name.clone(),
                s.cluster.to_string(),
                s.condition.clone(),
                s.n_cells.to_string(),
                fmt_f64(s.mean_score),
            ]
        },
    )?;
    files.push(p);

    let p = dir.join("interactions.csv");
    write_csv_table(
        &p,
        &[
            "id",
            "ligand",
            "receptor",
            "sender",
            "receiver",
            "kind",
            "classification",
            "mean",
            "expressed",
            "p",
            "involves_specific_cluster",
        ],
        r.interactions.iter().filter(|(i, _)| i.mean > 0.0),
        |(i, flag)| {
            vec![
                i.id.clone(),
                i.ligand.clone(),
                i.receptor.clone(),
                i.sender.to_string(),
                i.receiver.to_string(),
                i.kind.as_str().to_string(),
                i.classification.clone(),
                fmt_f64(i.mean),
                i.expressed.to_string(),
                fmt_f64(i.p),
                flag.to_string(),
            ]
        },
    )?;
    files.push(p);
    if let Some(diff) = &r.interaction_diff {
        files.extend(crate::interactions::diff::write_tables(diff, dir)?);
        files.extend(crate::plot::interactions::write_interaction_plots(
            diff, dir,
        )?);
    }
    files.extend(write_milo(a, r, dir)?);

    let p = dir.join("clusters.csv");
    write_atomic(&p, |w| crate::pipeline::output::write_clusters(a, w))?;
    files.push(p);

    let p = dir.join("comparison_summary.json");
    let summary = summary_json(r);
    write_atomic(&p, |w| {
        serde_json::to_writer_pretty(&mut *w, &summary)?;
        w.write_all(b"\n")
    })?;
    files.push(p);
    if let Some(w) = &r.within_cluster {
        files.extend(crate::within_cluster::write_within_cluster(w, dir)?);
    }
    files.extend(super::write_plots(a, r, dir)?);
    Ok(files)
}

/// `da_neighbourhoods.csv` and `da_clusters.csv` (nothing without a Milo result).
fn write_milo(a: &Analysis, r: &ConditionResult, dir: &Path) -> Result<Vec<PathBuf>> {
    let Some(m) = &r.milo else {
        return Ok(Vec::new());
    };
    let cells = &a.dataset().cells;
    let labels = &a.clustering.labels;
    let p = dir.join("da_neighbourhoods.csv");
    write_csv_table(
        &p,
        &[
            "nhood",
            "index_cell",
            "cluster",
            "size",
            "log2_fold_change",
            "p",
            "spatial_fdr",
        ],
        &m.milo.rows,
        |row| {
            let barcode = cells
                .barcodes
                .get(row.index_cell)
                .map_or("NA", String::as_str);
            let cluster = labels
                .get(row.index_cell)
                .map_or("NA".to_string(), u32::to_string);
            vec![
                row.nhood.to_string(),
                barcode.to_string(),
                cluster,
                row.size.to_string(),
                fmt_f64(row.log_fc),
                fmt_f64(row.p_value),
                fmt_f64(row.spatial_fdr),
            ]
        },
    )?;
    let q = dir.join("da_clusters.csv");
    write_csv_table(
        &q,
        &[
            "cluster",
            "neighbourhoods",
            "share_up",
            "share_down",
            "spatial_fdr_threshold",
        ],
        &m.clusters,
        |c| {
            vec![
                c.cluster.to_string(),
                c.n_nhoods.to_string(),
                fmt_f64(c.frac_up),
                fmt_f64(c.frac_down),
                fmt_f64(m.milo.alpha),
            ]
        },
    )?;
    Ok(vec![p, q])
}

/// The content of `comparison_summary.json`.
pub fn summary_json(r: &ConditionResult) -> serde_json::Value {
    let comp = &r.composition;
    let per_condition: serde_json::Map<String, serde_json::Value> = comp
        .conditions
        .iter()
        .zip(&r.samples_per_condition)
        .map(|(c, n)| (c.clone(), serde_json::json!(n)))
        .collect();
    let num = |x: f64| {
        if x.is_finite() {
            serde_json::json!(x)
        } else {
            serde_json::Value::Null
        }
    };
    let calls: Vec<serde_json::Value> = comp
        .tests
        .iter()
        .filter(|t| t.specific)
        .map(|t| {
            serde_json::json!({
                "cluster": t.cluster,
                "condition": comp.conditions[t.condition],
                "decided_by": t.decided_by.as_str(),
                "cells": t.in_cluster + t.other_in_cluster,
                "normalized_share": num(t.share),
                "fisher_p_adj": num(t.p_adj),
                "propeller_p": t.propeller_p.map(num),
                "propeller_fdr": t.propeller_fdr.map(num),
            })
        })
        .collect();
    let milo = r.milo.as_ref().map(|m| {
        serde_json::json!({
            "numerator": m.numerator,
            "reference": m.reference,
            "neighbourhoods": m.milo.rows.len(),
            "significant": m.milo.n_significant(),
            "spatial_fdr_threshold": m.milo.alpha,
        })
    });
    serde_json::json!({
        "samples_per_condition": per_condition,
        "replicates": r.replicates,
        "notes": r.notes,
        "condition_specific_clusters": calls,
        "milo": milo,
    })
}
