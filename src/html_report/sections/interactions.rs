//! Ligand-receptor interactions. Each table the comparison result holds becomes one table of
//! the section; a new kind of interaction result needs one more entry in [`tables`].

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
    if !c.interactions.is_empty() {
        out.push((
            "interactions",
            "Ligand-receptor scores per sender and receiver cluster",
            vec![
                ("ligand", false),
                ("receptor", false),
                ("sender", false),
                ("receiver", false),
                ("score", true),
                ("p", true),
                ("involves a specific cluster", false),
            ],
            c.interactions
                .iter()
                .map(|(r, flag)| {
                    vec![
                        json!(r.ligand),
                        json!(r.receptor),
                        json!(r.sender.to_string()),
                        json!(r.receiver.to_string()),
                        num(r.score),
                        num(r.p),
                        json!(if *flag { "yes" } else { "" }),
                    ]
                })
                .collect(),
        ));
    }
    out
}

/// Adds the interaction section when the comparison holds interaction results.
pub fn add(p: &mut Page, c: &ConditionResult) {
    let tables = tables(c);
    if tables.is_empty() {
        return;
    }
    let mut body = String::new();
    for (id, title, cols, rows) in tables {
        body.push_str(&format!("<h3>{title}</h3>"));
        body.push_str(&p.table(id, &cols, rows));
    }
    p.section("interactions", "Interactions", body);
}
