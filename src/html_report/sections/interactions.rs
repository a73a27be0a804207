//! Ligand-receptor interactions: the figures of the interactions between conditions
//! ([`figures`]), then each table the comparison result holds as one table of the section; a
//! new kind of interaction result needs one more entry in [`tables`].

use super::num;
use crate::comparison::ConditionResult;
use crate::html_report::page::Page;
use serde_json::{json, Value};

/// One interaction table: id, heading, columns (header, numeric) and rows.
type InteractionTable = (
    &'static str,
    &'static str,
    Vec<(&'static str, bool)>,
    Vec<Vec<Value>>,
);

/// The interaction tables present in `c` (empty tables are left out).
fn tables(c: &ConditionResult) -> Vec<InteractionTable> {
    let mut out = Vec::new();
    if let Some(d) = c.interaction_diff.as_ref().filter(|d| !d.rows.is_empty()) {
        out.push((
            "interactions_diff",
            "Interactions that change between the conditions (the 500 of smallest p)",
            vec![
                ("ligand", false),
                ("receptor", false),
                ("sender", false),
                ("receiver", false),
                ("kind", false),
                ("log2 fold change", true),
                ("p", true),
                ("adjusted p", true),
                ("involves a specific cluster", false),
            ],
            {
                // The 500 rows of smallest p (the whole table is interactions_diff.csv).
                let mut rows: Vec<_> = d.rows.iter().collect();
                rows.sort_by(|a, b| a.p.total_cmp(&b.p));
                rows.truncate(500);
                rows
            }
            .into_iter()
            .map(|r| {
                vec![
                    json!(r.ligand),
                    json!(r.receptor),
                    json!(r.sender.to_string()),
                    json!(r.receiver.to_string()),
                    json!(r.kind.as_str()),
                    num(r.log2_fold_change),
                    num(r.p),
                    num(r.p_adj),
                    json!(if r.involves_specific_cluster {
                        "yes"
                    } else {
                        ""
                    }),
                ]
            })
            .collect(),
        ));
    }
    if !c.interactions.is_empty() {
        out.push((
            "interactions",
            "Significant ligand-receptor interactions per sender and receiver cluster (CellPhoneDB's method, p < 0.05)",
            vec![
                ("ligand", false),
                ("receptor", false),
                ("sender", false),
                ("receiver", false),
                ("kind", false),
                ("mean", true),
                ("p", true),
                ("involves a specific cluster", false),
            ],
            c.interactions
                .iter()
                // The significant ones (the whole table is interactions.csv).
                .filter(|(r, _)| r.expressed && r.p < 0.05)
                .map(|(r, flag)| {
                    vec![
                        json!(r.ligand),
                        json!(r.receptor),
                        json!(r.sender.to_string()),
                        json!(r.receiver.to_string()),
                        json!(r.kind.as_str()),
                        num(r.value()),
                        num(r.p),
                        json!(if *flag { "yes" } else { "" }),
                    ]
                })
                .collect(),
        ));
    }
    out
}

/// The figures of the interactions between conditions (the dot plot of the top changed
/// interactions and the heat maps of significant interactions per cluster pair, as the
/// comparison writes them), inline; empty without a comparison between conditions.
fn figures(c: &ConditionResult) -> String {
    use crate::interactions::{significance_grid, top_changed};
    use crate::plot::interactions::{changed_dot_plot_svg, significance_heatmap_svg, TOP_CHANGED};
    let Some(d) = c.interaction_diff.as_ref() else {
        return String::new();
    };
    let mut out = String::new();
    for (title, svg) in [
        (
            "Top changed interactions",
            changed_dot_plot_svg(&top_changed(d, TOP_CHANGED)),
        ),
        (
            "Significant interactions per cluster pair",
            significance_heatmap_svg(&significance_grid(d)),
        ),
    ] {
        // A figure that cannot be drawn is left out; its data are in the tables.
        if let Ok(svg) = svg {
            out.push_str(&format!("<h3>{title}</h3>"));
            out.push_str(&svg.replacen("<svg ", "<svg class=\"fig\" ", 1));
        }
    }
    out
}

/// Adds the interaction section when the comparison holds interaction results.
pub fn add(p: &mut Page, c: &ConditionResult) {
    let tables = tables(c);
    let figures = figures(c);
    if tables.is_empty() && figures.is_empty() {
        return;
    }
    let mut body = figures;
    for (id, title, cols, rows) in tables {
        body.push_str(&format!("<h3>{title}</h3>"));
        body.push_str(&p.table(id, &cols, rows));
    }
    p.section("interactions", "Interactions", body);
}
