//! The CSV tables of an [`InteractionDiff`]: the tested interactions and the per cluster
//! pair summaries.

use super::InteractionDiff;
use crate::error::Result;
use crate::interactions::resource::SignalKind;

/// Writes `interactions_diff.csv` (one row per tested interaction, sorted by p, with the
/// `method` column) and `interactions_summary.csv` (per sender, receiver and condition: the
/// number and total mean of significant secreted, adhesion and membrane-bound interactions)
/// into `dir`; returns their paths.
pub fn write_tables(d: &InteractionDiff, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    use crate::report::{fmt_f64, write_csv_table};
    let p = dir.join("interactions_diff.csv");
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
            "reference",
            "numerator",
            "value_reference",
            "value_numerator",
            "log2_fold_change",
            "statistic",
            "p",
            "p_adj",
            "method",
            "involves_specific_cluster",
        ],
        &d.rows,
        |r| {
            vec![
                r.id.clone(),
                r.ligand.clone(),
                r.receptor.clone(),
                r.sender.to_string(),
                r.receiver.to_string(),
                r.kind.as_str().to_string(),
                r.classification.clone(),
                d.reference.clone(),
                d.numerator.clone(),
                fmt_f64(r.value_reference),
                fmt_f64(r.value_numerator),
                fmt_f64(r.log2_fold_change),
                fmt_f64(r.statistic),
                fmt_f64(r.p),
                fmt_f64(r.p_adj),
                d.method.as_str().to_string(),
                r.involves_specific_cluster.to_string(),
            ]
        },
    )?;
    let q = dir.join("interactions_summary.csv");
    write_csv_table(
        &q,
        &[
            "sender",
            "receiver",
            "condition",
            "n_secreted",
            "strength_secreted",
            "n_adhesion",
            "strength_adhesion",
            "n_membrane",
            "strength_membrane",
        ],
        &d.summary,
        |r| {
            let (s, a, m) = (
                SignalKind::Secreted as usize,
                SignalKind::Adhesion as usize,
                SignalKind::Membrane as usize,
            );
            vec![
                r.sender.to_string(),
                r.receiver.to_string(),
                r.condition.clone(),
                r.n_significant[s].to_string(),
                fmt_f64(r.strength[s]),
                r.n_significant[a].to_string(),
                fmt_f64(r.strength[a]),
                r.n_significant[m].to_string(),
                fmt_f64(r.strength[m]),
            ]
        },
    )?;
    Ok(vec![p, q])
}
