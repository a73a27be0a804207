//! The cells: the interactive UMAP, cluster sizes and composition, markers and the dot plot.

use super::{notes, num};
use crate::comparison::ConditionResult;
use crate::design::Codes;
use crate::error::Result;
use crate::html_report::pack::{codes_json, f32_base64, pack_expression, shown_cells};
use crate::html_report::page::Page;
use crate::html_report::svg::{dot_plot, palette, stacked_bars};
use crate::html_report::{base64, ReportOptions};
use crate::markers::TableFilter;
use crate::pipeline::Analysis;
use serde_json::{json, Value};

fn cluster_names(a: &Analysis) -> Vec<String> {
    (0..a.clustering.n_clusters)
        .map(|c| c.to_string())
        .collect()
}

/// Input index of every kept cell (the input cells less the removed ones, in order), when it
/// matches the kept cells.
fn kept_input_cells(a: &Analysis) -> Option<Vec<usize>> {
    let mut removed = vec![false; a.input_shape.0];
    for &(i, _) in &a.filtered.removed_cells {
        *removed.get_mut(i)? = true;
    }
    let kept: Vec<usize> = (0..a.input_shape.0).filter(|&i| !removed[i]).collect();
    (kept.len() == a.dataset().n_cells()).then_some(kept)
}

/// Genes offered to the gene search, in priority order: each cluster's markers by rank
/// (interleaved), then the highly variable genes by decreasing normalized dispersion (or
/// variance), then, with `all_genes`, every other gene.
fn search_genes(a: &Analysis, opts: &ReportOptions) -> Vec<usize> {
    let n = a.dataset().n_genes();
    let mut seen = vec![false; n];
    let mut out = Vec::new();
    let mut push = |g: usize, out: &mut Vec<usize>| {
        if g < n && !seen[g] {
            seen[g] = true;
            out.push(g);
        }
    };
    for r in 0..opts.markers_per_cluster {
        for grp in &a.markers.groups {
            if let Some(&g) = grp.order.get(r) {
                push(g as usize, &mut out);
            }
        }
    }
    let mut hvg = a.hvg_genes.clone();
    if let Some(d) = a
        .hvg
        .dispersions_norm
        .as_ref()
        .or(a.hvg.variances_norm.as_ref())
    {
        hvg.sort_by(|&x, &y| {
            let (dx, dy) = (d.get(x).copied(), d.get(y).copied());
            dy.partial_cmp(&dx).unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    for g in hvg {
        push(g, &mut out);
    }
    if opts.all_genes {
        for g in 0..n {
            push(g, &mut out);
        }
    }
    out
}

/// The UMAP scatter's data (cells, codes, doublet scores, expression) and its section.
pub fn add_umap(p: &mut Page, a: &Analysis, opts: &ReportOptions) -> Result<()> {
    let d = a.dataset();
    let n = d.n_cells();
    if a.umap.nrows() != n || a.umap.ncols() != 2 {
        p.section(
            "umap",
            "UMAP",
            "<p>The UMAP layout was skipped in this run.</p>".to_string(),
        );
        return Ok(());
    }
    let shown = shown_cells(n, opts.max_points, opts.seed);
    let samples = Codes::from_labels("sample", &d.cells.sample);
    let conditions = Codes::from_labels("condition", &d.cells.condition);
    let clusters = cluster_names(a);
    let doublet = kept_input_cells(a).and_then(|kept| {
        let dr = a.doublets.as_ref()?;
        let scores: Vec<f64> = shown
            .iter()
            .map(|&i| dr.scores.get(kept[i]).copied().unwrap_or(f64::NAN))
            .collect();
        let max = scores
            .iter()
            .filter(|s| s.is_finite())
            .fold(0f64, |m, &s| m.max(s));
        let bytes: Vec<u8> = scores
            .iter()
            .map(|&s| {
                if s.is_finite() && max > 0.0 {
                    (254.0 * s / max).round().clamp(0.0, 254.0) as u8
                } else if s.is_finite() {
                    0
                } else {
                    255
                }
            })
            .collect();
        Some(json!({"max": max, "data": base64(&bytes)}))
    });
    let genes = search_genes(a, opts);
    let packed = pack_expression(
        &d.counts,
        &a.size_factors,
        &shown,
        &genes,
        opts.max_expression_bytes,
    )?;
    let names = &d.genes.symbols;
    p.set(
        "cells",
        json!({
            "n": n,
            "shown": shown.len(),
            "x": f32_base64(shown.iter().map(|&i| a.umap[(i, 0)])),
            "y": f32_base64(shown.iter().map(|&i| a.umap[(i, 1)])),
            "cluster": codes_json(shown.iter().map(|&i| a.clustering.labels[i]), clusters.len()),
            "sample": codes_json(shown.iter().map(|&i| samples.codes[i]), samples.names.len()),
            "condition": codes_json(shown.iter().map(|&i| conditions.codes[i]), conditions.names.len()),
            "doublet": doublet,
            "names": {"cluster": clusters, "sample": samples.names, "condition": conditions.names},
            "palette": (0..clusters.len().max(samples.names.len()).max(conditions.names.len()))
                .map(palette).collect::<Vec<_>>(),
        }),
    );
    p.set(
        "expression",
        json!({
            "genes": packed.genes.iter().map(|&g| names.get(g).cloned().unwrap_or_default()).collect::<Vec<_>>(),
            "max": packed.max,
            "offsets": packed.offsets,
            "gzip": base64(&packed.gzip),
            "left_out": packed.left_out,
        }),
    );
    let mut body = String::new();
    if shown.len() < n {
        body.push_str(&format!(
            "<p class=\"note\">The scatter shows a uniform random sample of {} of the {n} \
             cells (seed {}); raise <code>ReportOptions::max_points</code> to draw more.</p>",
            shown.len(),
            opts.seed
        ));
    }
    body.push_str(&format!(
        "<div class=\"controls\"><label>Colour by <select id=\"colour-by\">\
         <option value=\"cluster\">cluster</option><option value=\"sample\">sample</option>\
         <option value=\"condition\">condition</option>{}<option value=\"gene\">gene</option>\
         </select></label> <label>Gene <input id=\"gene-search\" list=\"gene-list\" \
         placeholder=\"type a gene name\" autocomplete=\"off\" disabled></label>\
         <datalist id=\"gene-list\"></datalist> <button id=\"reset-view\" type=\"button\">Reset view</button>\
         <span id=\"gene-status\"></span></div>\
         <div class=\"scatter-wrap\"><canvas id=\"umap-canvas\" width=\"760\" height=\"560\"></canvas>\
         <div id=\"legend\"></div></div>\
         <p class=\"hint\">Drag to pan, wheel to zoom, hover a cell for its cluster, sample and \
         condition. The gene search covers {} genes (markers first, then highly variable \
         genes){}.</p>",
        if a.doublets.is_some() {
            "<option value=\"doublet\">doublet score</option>"
        } else {
            ""
        },
        packed.genes.len(),
        if packed.left_out > 0 {
            format!(
                "; {} more were left out to keep the file small \
                 (<code>ReportOptions::max_expression_bytes</code>)",
                packed.left_out
            )
        } else {
            String::new()
        }
    ));
    p.section("umap", "UMAP", body);
    Ok(())
}

/// Cluster sizes and composition per sample, with the abundance tests of the comparison.
pub fn add_clusters(p: &mut Page, a: &Analysis, c: Option<&ConditionResult>) {
    let d = a.dataset();
    let names = cluster_names(a);
    let samples = Codes::from_labels("sample", &d.cells.sample);
    let conditions = Codes::from_labels("condition", &d.cells.condition);
    let k = names.len();
    let count = |codes: &Codes| -> Vec<Vec<usize>> {
        let mut m = vec![vec![0usize; k]; codes.names.len()];
        for (i, &l) in a.clustering.labels.iter().enumerate() {
            if let (Some(row), true) = (m.get_mut(codes.codes[i] as usize), (l as usize) < k) {
                row[l as usize] += 1;
            }
        }
        m
    };
    let shares = |codes: &Codes, m: &[Vec<usize>]| -> Vec<(String, Vec<f64>)> {
        codes
            .names
            .iter()
            .zip(m)
            .map(|(name, row)| {
                let t = row.iter().sum::<usize>().max(1) as f64;
                (name.clone(), row.iter().map(|&x| x as f64 / t).collect())
            })
            .collect()
    };
    let by_sample = count(&samples);
    let by_condition = count(&conditions);
    let sizes = a.cluster_sizes();
    let rows = (0..k)
        .map(|cl| {
            let mut r = vec![json!(names[cl]), json!(sizes[cl])];
            r.extend(by_sample.iter().map(|row| json!(row[cl])));
            r
        })
        .collect();
    let mut cols: Vec<(&str, bool)> = vec![("cluster", false), ("cells", true)];
    cols.extend(samples.names.iter().map(|s| (s.as_str(), true)));
    let mut body = String::from("<h3>Cells per cluster and sample</h3>");
    body.push_str(&p.table("cluster-sizes", &cols, rows));
    body.push_str("<h3>Composition per sample</h3>");
    body.push_str(&stacked_bars(&shares(&samples, &by_sample), &names));
    if conditions.names.len() > 1 {
        body.push_str("<h3>Composition per condition</h3>");
        body.push_str(&stacked_bars(&shares(&conditions, &by_condition), &names));
    }
    if let Some(c) = c {
        let comp = &c.composition;
        let rows = comp
            .tests
            .iter()
            .map(|t| {
                vec![
                    json!(t.cluster.to_string()),
                    json!(comp
                        .conditions
                        .get(t.condition)
                        .cloned()
                        .unwrap_or_default()),
                    num(t.share),
                    num(t.odds_ratio),
                    num(t.p_adj),
                    t.propeller_fdr.map_or(Value::Null, num),
                    json!(t.decided_by.as_str()),
                    json!(if t.specific { "yes" } else { "" }),
                ]
            })
            .collect();
        body.push_str("<h3>Abundance tests</h3>");
        body.push_str(&notes(&[if c.replicates {
            "Decided by propeller over the samples (every condition has replicates).".to_string()
        } else {
            "Without replicates: decided by Fisher's test over cells, which cannot tell a \
             condition from a sample effect."
                .to_string()
        }]));
        body.push_str(&p.table(
            "abundance",
            &[
                ("cluster", false),
                ("condition", false),
                ("share of cluster", true),
                ("odds ratio", true),
                ("Fisher adj. p", true),
                ("propeller FDR", true),
                ("decided by", false),
                ("specific", false),
            ],
            rows,
        ));
    }
    p.section("clusters", "Clusters and composition", body);
}

/// The marker table and the dot plot.
pub fn add_markers(p: &mut Page, a: &Analysis, opts: &ReportOptions) -> Result<()> {
    let d = a.dataset();
    let names = &d.genes.symbols;
    let rows = a.markers.table(
        names,
        &TableFilter {
            top_n: Some(opts.markers_per_cluster),
            ..Default::default()
        },
    )?;
    let table_rows = rows
        .iter()
        .map(|r| {
            vec![
                json!(r.group.to_string()),
                json!(r.rank),
                json!(r.gene),
                num(r.score),
                num(r.logfoldchange),
                num(r.pval_adj),
                num(r.pct_in),
                num(r.pct_out),
                num(r.auc),
            ]
        })
        .collect();
    let mut body = format!(
        "<p>Top {} genes per cluster against the rest ({:?}).</p>",
        opts.markers_per_cluster, a.markers.method
    );
    body.push_str(&p.table(
        "markers",
        &[
            ("cluster", false),
            ("rank", true),
            ("gene", false),
            ("score", true),
            ("log2 FC", true),
            ("adj. p", true),
            ("fraction in", true),
            ("fraction out", true),
            ("AUC", true),
        ],
        table_rows,
    ));
    // Dot plot: the best genes of each cluster, mean log expression and fraction expressing.
    let (genes, dots) = a.marker_dots(opts.dot_plot_genes)?;
    let rows = |m: &ndarray::Array2<f64>| -> Vec<Vec<f64>> {
        m.outer_iter().map(|r| r.to_vec()).collect()
    };
    let (frac, mean) = (rows(&dots.fractions), rows(&dots.means));
    body.push_str(
        "<h3>Dot plot</h3><p>Dot area: fraction of the cluster's cells expressing the \
                   gene; colour: mean log expression, scaled to the gene's highest cluster.</p>",
    );
    body.push_str(&dot_plot(
        &cluster_names(a),
        &genes.iter().map(|&g| names[g].clone()).collect::<Vec<_>>(),
        &frac,
        &mean,
    ));
    p.section("markers", "Marker genes", body);
    Ok(())
}
