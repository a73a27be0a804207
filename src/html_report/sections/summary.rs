//! Run summary and QC per sample.

use super::{facts, notes, num};
use crate::comparison::ConditionResult;
use crate::html_report::page::Page;
use crate::html_report::svg::{box_plot, box_stats};
use crate::html_report::ReportOptions;
use crate::pipeline::Analysis;
use crate::qc::Reason;
use serde_json::{json, Value};

/// Names of the samples of the input cells in order of first appearance, and each input
/// cell's sample code.
fn sample_codes(a: &Analysis) -> (Vec<String>, Vec<u32>) {
    let c = crate::design::Codes::from_labels("sample", &a.input_cells.sample);
    (c.names, c.codes)
}

/// The run summary: inputs, samples and conditions, cells and genes before and after QC with
/// the reasons, doublets, integration, design limits and notes, options, version and step
/// times.
pub fn add(p: &mut Page, a: &Analysis, c: Option<&ConditionResult>, opts: &ReportOptions) {
    let d = a.dataset();
    let (names, codes) = sample_codes(a);
    let mut condition = vec![String::new(); names.len()];
    let mut input = vec![0usize; names.len()];
    for (i, &s) in codes.iter().enumerate() {
        input[s as usize] += 1;
        condition[s as usize] = a.input_cells.condition[i].clone();
    }
    let mut qc_removed = vec![0usize; names.len()];
    let mut doublets = vec![0usize; names.len()];
    for &(i, r) in &a.filtered.removed_cells {
        if let Some(&s) = codes.get(i) {
            if r == Reason::Doublet {
                doublets[s as usize] += 1;
            } else {
                qc_removed[s as usize] += 1;
            }
        }
    }
    let rows: Vec<Vec<Value>> = (0..names.len())
        .map(|s| {
            json!([
                names[s],
                condition[s],
                input[s],
                qc_removed[s],
                doublets[s],
                input[s] - qc_removed[s] - doublets[s]
            ])
            .as_array()
            .cloned()
            .unwrap_or_default()
        })
        .collect();
    let samples = p.table(
        "samples",
        &[
            ("sample", false),
            ("condition", false),
            ("input cells", true),
            ("removed by QC", true),
            ("doublets removed", true),
            ("kept cells", true),
        ],
        rows,
    );
    let mut body = facts(&[
        ("scrna version", env!("CARGO_PKG_VERSION").to_string()),
        (
            "input",
            format!(
                "{} cells × {} genes in {} sample(s)",
                a.input_shape.0,
                a.input_shape.1,
                names.len()
            ),
        ),
        (
            "after QC",
            format!(
                "{} cells × {} genes ({} highly variable)",
                d.n_cells(),
                d.n_genes(),
                a.hvg_genes.len()
            ),
        ),
        (
            "clusters",
            format!(
                "{} (Leiden, quality {:.3})",
                a.clustering.n_clusters, a.clustering.quality
            ),
        ),
        (
            "total time",
            format!("{:.1} s", a.steps.iter().map(|s| s.seconds).sum::<f64>()),
        ),
    ]);
    body.push_str("<h3>Samples and conditions</h3>");
    body.push_str(&samples);
    let mut reasons: Vec<(String, String)> = a
        .filtered
        .cell_summary
        .iter()
        .map(|(r, n)| (format!("cells: {r:?}"), n.to_string()))
        .collect();
    reasons.push((
        "genes: detected in too few cells (MinCells)".to_string(),
        a.filtered.genes_removed_min_cells.to_string(),
    ));
    body.push_str("<h3>Removed, by reason</h3>");
    body.push_str(&facts(
        &reasons
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect::<Vec<_>>(),
    ));
    if let Some(dr) = &a.doublets {
        let rows = dr
            .per_sample
            .iter()
            .map(|s| {
                vec![
                    json!(s.sample),
                    json!(s.n_cells),
                    json!(s.n_predicted),
                    s.threshold.map_or(Value::Null, num),
                    json!(if s.skipped.is_some() {
                        "not scored"
                    } else if dr.kept.contains(&s.sample) {
                        "kept (implausible share, see the warnings)"
                    } else if dr.removed {
                        "removed"
                    } else {
                        "kept"
                    }),
                    json!(s.skipped.clone().unwrap_or_default()),
                ]
            })
            .collect();
        body.push_str("<h3>Doublets (Scrublet, per sample)</h3>");
        body.push_str(&p.table(
            "doublets",
            &[
                ("sample", false),
                ("cells", true),
                ("predicted doublets", true),
                ("threshold", true),
                ("doublets", false),
                ("why not scored", false),
            ],
            rows,
        ));
    }
    if let Some(i) = &a.integration {
        body.push_str("<h3>Integration</h3>");
        body.push_str(&facts(&[
            (
                "method",
                format!(
                    "Harmony over {} ({} batches), {} rounds{}",
                    i.batch_key,
                    i.batches.len(),
                    i.harmony.iterations,
                    if i.harmony.converged {
                        ""
                    } else {
                        " (not converged)"
                    }
                ),
            ),
            (
                "mean batch LISI",
                format!(
                    "{:.2} before, {:.2} after (1 = one batch per neighbourhood, {} = fully mixed)",
                    i.lisi_before,
                    i.lisi_after,
                    i.batches.len()
                ),
            ),
        ]));
    }
    let mut all_notes: Vec<String> = a.design_limits.clone();
    all_notes.extend(a.warnings.iter().cloned());
    all_notes.extend(a.markers.warnings.iter().cloned());
    if let Some(c) = c {
        all_notes.extend(
            c.notes
                .iter()
                .filter(|n| !a.design_limits.contains(n))
                .cloned(),
        );
    }
    if !all_notes.is_empty() {
        body.push_str("<h3>Design limits, warnings and notes</h3>");
        body.push_str(&notes(&all_notes));
    }
    if let Some(po) = &opts.pipeline {
        let summary = crate::pipeline::output::summary_json(a, po);
        if let Some(Value::Object(o)) = summary.get("options") {
            let items: Vec<(String, String)> = o
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect();
            body.push_str("<h3>Options</h3>");
            body.push_str(&facts(
                &items
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect::<Vec<_>>(),
            ));
        }
    }
    let steps = a
        .steps
        .iter()
        .map(|s| {
            vec![
                json!(s.step),
                num(s.seconds),
                s.peak_rss_bytes
                    .map_or(Value::Null, |b| num(b as f64 / 1_048_576.0)),
            ]
        })
        .collect();
    body.push_str("<h3>Time per step</h3>");
    body.push_str(&p.table(
        "steps",
        &[
            ("step", false),
            ("seconds", true),
            ("peak memory (MB)", true),
        ],
        steps,
    ));
    p.section("summary", "Run summary", body);
}

/// QC distributions per sample (all input cells): total counts, genes detected and % mito.
pub fn add_qc(p: &mut Page, a: &Analysis) {
    let (names, codes) = sample_codes(a);
    let per_sample = |values: &dyn Fn(usize) -> f64| -> Vec<(String, [f64; 5])> {
        names
            .iter()
            .enumerate()
            .filter_map(|(s, name)| {
                let it = codes
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c as usize == s)
                    .map(|(i, _)| values(i));
                box_stats(it).map(|q| (name.clone(), q))
            })
            .collect()
    };
    let q = &a.qc;
    let mut body = String::from(
        "<p>Every input cell, before filtering; boxes span the quartiles, whiskers the 5th \
         to 95th percentiles, the line is the median. Hover a box for its values.</p><div class=\"figs\">",
    );
    body.push_str(&box_plot(
        "total counts",
        &per_sample(&|i| q.total_counts.get(i).copied().unwrap_or(f64::NAN)),
        true,
    ));
    body.push_str(&box_plot(
        "genes detected",
        &per_sample(&|i| {
            q.n_genes_by_counts
                .get(i)
                .map_or(f64::NAN, |&v| f64::from(v))
        }),
        true,
    ));
    body.push_str(&box_plot(
        "% counts mitochondrial",
        &per_sample(&|i| q.pct_counts_mt.get(i).copied().unwrap_or(f64::NAN)),
        false,
    ));
    body.push_str("</div>");
    p.section("qc", "QC per sample", body);
}
