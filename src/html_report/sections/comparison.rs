//! The condition comparison: condition-specific clusters and their enrichment, the
//! within-cluster differential expression (volcano per cluster), programs and Milo.

use super::{notes, num};
use crate::comparison::ConditionResult;
use crate::genesets::EnrichmentRow;
use crate::html_report::pack::f32_base64;
use crate::html_report::page::Page;
use crate::html_report::svg::diverging_bars;
use crate::html_report::{base64, ReportOptions};
use crate::pipeline::Analysis;
use serde_json::{json, Value};
use std::collections::HashMap;

const ENRICHMENT_COLUMNS: [(&str, bool); 8] = [
    ("cluster", false),
    ("direction", false),
    ("term", false),
    ("name", false),
    ("overlap", true),
    ("set size", true),
    ("adj. p", true),
    ("genes", false),
];

fn enrichment_row(cluster: u32, direction: &str, r: &EnrichmentRow) -> Vec<Value> {
    vec![
        json!(cluster.to_string()),
        json!(direction),
        json!(r.id),
        json!(r.name),
        json!(r.overlap),
        json!(r.set_size),
        num(r.p_adj),
        json!(r.genes.join(", ")),
    ]
}

/// Adds the comparison's sections (each only when its results exist).
pub fn add(p: &mut Page, a: &Analysis, c: &ConditionResult, opts: &ReportOptions) {
    add_specific(p, c);
    add_within(p, c, opts);
    add_programs(p, c);
    add_milo(p, a, c);
}

fn add_specific(p: &mut Page, c: &ConditionResult) {
    let comp = &c.composition;
    let spec = comp.specific();
    let mut body = String::new();
    if spec.is_empty() {
        body.push_str("<p>No cluster is specific to a condition.</p>");
    } else {
        body.push_str("<ul>");
        for &(cl, k) in &spec {
            let cond = comp.conditions.get(k).map_or("", String::as_str);
            let how = comp
                .test(cl, k)
                .map_or(String::new(), |t| match t.propeller_fdr {
                    Some(q) => format!(
                        "{:.0}% of its cells; propeller FDR {q:.2e} over the samples",
                        100.0 * t.share
                    ),
                    None => format!(
                        "{:.0}% of its cells; Fisher adjusted p {:.2e} over cells",
                        100.0 * t.share,
                        t.p_adj
                    ),
                });
            body.push_str(&format!(
                "<li>cluster {cl}: specific to <b>{}</b> ({})</li>",
                crate::html_report::escape::html(cond),
                crate::html_report::escape::html(&how)
            ));
        }
        body.push_str("</ul>");
    }
    let rows: Vec<Vec<Value>> = c
        .markers
        .iter()
        .flat_map(|m| {
            m.rows.iter().map(move |r| {
                vec![
                    json!(m.cluster.to_string()),
                    json!(m.reference),
                    json!(r.gene),
                    num(r.logfoldchange),
                    num(r.pval_adj),
                    num(r.pct_in),
                    num(r.pct_out),
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        body.push_str("<h3>Differential genes of the specific clusters</h3>");
        body.push_str(&p.table(
            "specific-markers",
            &[
                ("cluster", false),
                ("against", false),
                ("gene", false),
                ("log2 FC", true),
                ("adj. p", true),
                ("fraction in", true),
                ("fraction out", true),
            ],
            rows,
        ));
    }
    if !c.enrichment.is_empty() {
        body.push_str("<h3>Enrichment of their up-regulated genes</h3>");
        let rows = c
            .enrichment
            .iter()
            .map(|e| enrichment_row(e.cluster, "up", &e.row))
            .collect();
        body.push_str(&p.table("specific-enrichment", &ENRICHMENT_COLUMNS, rows));
    }
    p.section("specific", "Condition-specific clusters", body);
}

fn add_within(p: &mut Page, c: &ConditionResult, opts: &ReportOptions) {
    let Some(w) = &c.within_cluster else {
        return;
    };
    let mut body = format!(
        "<p>Log2 fold changes of <b>{}</b> over <b>{}</b> within each cluster.</p>",
        crate::html_report::escape::html(&w.numerator),
        crate::html_report::escape::html(&w.denominator)
    );
    body.push_str(&notes(
        &w.notes
            .iter()
            .map(|n| format!("cluster {}: {}", n.cluster, n.note))
            .collect::<Vec<_>>(),
    ));
    // Volcano data: every tested gene of every cluster, the gene as an index into a list.
    let mut gene_index: HashMap<&str, u32> = HashMap::new();
    let mut gene_names: Vec<&str> = Vec::new();
    let mut by_cluster: std::collections::BTreeMap<u32, Vec<&crate::within_cluster::DeRow>> =
        Default::default();
    for r in &w.de {
        by_cluster.entry(r.cluster).or_default().push(r);
    }
    let mut volcano = serde_json::Map::new();
    let mut table_rows = Vec::new();
    for (cl, rows) in &by_cluster {
        let tested: Vec<&&crate::within_cluster::DeRow> = rows
            .iter()
            .filter(|r| r.p_value.is_finite() && r.log2_fold_change.is_finite())
            .collect();
        let idx: Vec<u8> = tested
            .iter()
            .flat_map(|r| {
                let next = gene_names.len() as u32;
                let k = *gene_index.entry(r.gene.as_str()).or_insert_with(|| {
                    gene_names.push(r.gene.as_str());
                    next
                });
                k.to_le_bytes()
            })
            .collect();
        volcano.insert(
            cl.to_string(),
            json!({
                "lfc": f32_base64(tested.iter().map(|r| r.log2_fold_change as f32)),
                "nlp": f32_base64(tested.iter().map(|r| (-r.p_value.max(1e-300).log10()) as f32)),
                "sig": base64(&tested.iter().map(|r| u8::from(r.p_adjusted < 0.05)).collect::<Vec<_>>()),
                "gene": base64(&idx),
            }),
        );
        let mut best: Vec<&&crate::within_cluster::DeRow> = rows.iter().collect();
        best.sort_by(|x, y| x.p_value.total_cmp(&y.p_value));
        table_rows.extend(best.iter().take(opts.de_rows_per_cluster).map(|r| {
            vec![
                json!(cl.to_string()),
                json!(r.gene),
                num(r.base_mean),
                num(r.log2_fold_change),
                num(r.p_value),
                num(r.p_adjusted),
                json!(r.method.as_str()),
            ]
        }));
    }
    p.set(
        "volcano",
        json!({"genes": gene_names, "clusters": volcano, "numerator": w.numerator, "denominator": w.denominator}),
    );
    body.push_str(
        "<div class=\"controls\"><label>Cluster <select id=\"volcano-cluster\"></select></label>\
         <span class=\"hint\">red: adjusted p &lt; 0.05; hover a point for the gene</span></div>\
         <canvas id=\"volcano\" width=\"560\" height=\"380\"></canvas>",
    );
    body.push_str(&format!(
        "<h3>Genes (the {} smallest p-values per cluster)</h3>",
        opts.de_rows_per_cluster
    ));
    body.push_str(&p.table(
        "within-de",
        &[
            ("cluster", false),
            ("gene", false),
            ("base mean", true),
            ("log2 FC", true),
            ("p", true),
            ("adj. p", true),
            ("method", false),
        ],
        table_rows,
    ));
    if !w.enrichment.is_empty() {
        body.push_str("<h3>Enrichment of the up- and down-regulated genes</h3>");
        let rows = w
            .enrichment
            .iter()
            .map(|(cl, dir, r)| enrichment_row(*cl, dir, r))
            .collect();
        body.push_str(&p.table("within-enrichment", &ENRICHMENT_COLUMNS, rows));
    }
    p.section("within", "Within-cluster changes between conditions", body);
}

fn add_programs(p: &mut Page, c: &ConditionResult) {
    let programs = c
        .within_cluster
        .as_ref()
        .map_or(&[][..], |w| &w.programs[..]);
    if programs.is_empty() && c.scores.is_empty() {
        return;
    }
    let mut body = String::new();
    if !programs.is_empty() {
        body.push_str(
            "<p>Per-sample program scores compared between the conditions within each cluster.</p>",
        );
        let rows = programs
            .iter()
            .map(|r| {
                vec![
                    json!(r.cluster.to_string()),
                    json!(r.set),
                    json!(r.name),
                    num(r.mean_numerator),
                    num(r.mean_denominator),
                    num(r.difference),
                    num(r.p_value),
                    num(r.p_adjusted),
                ]
            })
            .collect();
        body.push_str(&p.table(
            "programs",
            &[
                ("cluster", false),
                ("set", false),
                ("program", false),
                ("mean (numerator)", true),
                ("mean (denominator)", true),
                ("difference", true),
                ("p", true),
                ("adj. p", true),
            ],
            rows,
        ));
    }
    if !c.scores.is_empty() {
        body.push_str("<h3>Mean gene-set scores by cluster and condition</h3>");
        let rows = c
            .scores
            .iter()
            .map(|s| {
                vec![
                    json!(s.set),
                    json!(s.name),
                    json!(s.cluster.to_string()),
                    json!(s.condition),
                    json!(s.n_cells),
                    num(s.mean_score),
                ]
            })
            .collect();
        body.push_str(&p.table(
            "scores",
            &[
                ("set", false),
                ("name", false),
                ("cluster", false),
                ("condition", false),
                ("cells", true),
                ("mean score", true),
            ],
            rows,
        ));
    }
    p.section("programs", "Gene programs", body);
}

fn add_milo(p: &mut Page, a: &Analysis, c: &ConditionResult) {
    let Some(m) = &c.milo else {
        return;
    };
    let mut body = format!(
        "<p>Milo: {} of {} neighbourhoods differ in abundance between <b>{}</b> and <b>{}</b> \
         at spatial FDR &lt; {} (log fold changes of the first over the second).</p>",
        m.milo.n_significant(),
        m.milo.rows.len(),
        crate::html_report::escape::html(&m.numerator),
        crate::html_report::escape::html(&m.reference),
        m.milo.alpha
    );
    let bars: Vec<(String, f64, f64)> = m
        .clusters
        .iter()
        .map(|s| (format!("cluster {}", s.cluster), s.frac_up, s.frac_down))
        .collect();
    body.push_str("<h3>Share of each cluster's neighbourhoods up and down</h3>");
    body.push_str(&diverging_bars(
        &bars,
        &format!("more in {}", m.numerator),
        &format!("more in {}", m.reference),
    ));
    let rows = m
        .milo
        .rows
        .iter()
        .map(|r| {
            vec![
                json!(r.nhood),
                json!(a
                    .clustering
                    .labels
                    .get(r.index_cell)
                    .map_or(String::new(), |l| l.to_string())),
                json!(r.size),
                num(r.log_fc),
                num(r.p_value),
                num(r.spatial_fdr),
            ]
        })
        .collect();
    body.push_str("<h3>Neighbourhoods</h3>");
    body.push_str(&p.table(
        "milo",
        &[
            ("neighbourhood", true),
            ("cluster of index cell", false),
            ("cells", true),
            ("log FC", true),
            ("p", true),
            ("spatial FDR", true),
        ],
        rows,
    ));
    p.section("milo", "Neighbourhood abundance (Milo)", body);
}
