//! The numbers the interaction figures draw ([`crate::plot::interactions`]), computed from an
//! [`InteractionDiff`]:
//!
//! - [`top_changed`]: the interactions that change most between the conditions, ranked by
//!   adjusted p, then by `|log2 fold change|` (larger first), then by the order of
//!   [`InteractionDiff::rows`]; the first `n` (interaction, sender, receiver) entries give the
//!   rows (interactions, in order of their best entry) and columns (sender -> receiver, by
//!   sender then receiver) of a dot plot, and every tested entry of that grid is a dot;
//! - [`significance_grid`]: per cluster pair (sender, receiver) and condition the number of
//!   significant interactions of the condition's CellPhoneDB analysis (fraction filter passed
//!   and `p < DiffOptions::significance`, the counts of [`InteractionDiff::summary`] over all
//!   kinds), and the numerator's count minus the reference's.

use super::diff::{DiffMethod, InteractionDiff};
use std::collections::HashMap;

/// One dot of [`TopChanged`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedDot {
    /// Row (index into [`TopChanged::interactions`]).
    pub row: usize,
    /// Column (index into [`TopChanged::pairs`]).
    pub col: usize,
    /// log2 fold change, numerator over reference.
    pub log2_fold_change: f64,
    /// Benjamini-Hochberg adjusted p.
    pub p_adj: f64,
    /// Whether the entry is one of the top `n` (the others fill the grid).
    pub top: bool,
}

/// Result of [`top_changed`].
#[derive(Debug, Clone, PartialEq)]
pub struct TopChanged {
    /// Numerator condition.
    pub numerator: String,
    /// Reference condition.
    pub reference: String,
    /// The test used.
    pub method: DiffMethod,
    /// Number of tested entries in the comparison.
    pub n_tested: usize,
    /// The `n` asked for.
    pub n_max: usize,
    /// Number of top entries the grid was built from (at most `n_max`).
    pub n_top: usize,
    /// Row labels, `ligand -> receptor`.
    pub interactions: Vec<String>,
    /// Column labels, `sender -> receiver` (cluster numbers).
    pub pairs: Vec<String>,
    /// The tested entries of the grid.
    pub dots: Vec<ChangedDot>,
}

/// The top `n` changed interactions of `d` as a dot-plot grid (module docs).
pub fn top_changed(d: &InteractionDiff, n: usize) -> TopChanged {
    let mut order: Vec<usize> = (0..d.rows.len()).collect();
    let key = |i: usize| {
        let r = &d.rows[i];
        let p = if r.p_adj.is_nan() {
            f64::INFINITY
        } else {
            r.p_adj
        };
        let l = if r.log2_fold_change.is_nan() {
            0.0
        } else {
            r.log2_fold_change.abs()
        };
        (p, l)
    };
    order.sort_by(|&a, &b| {
        let (pa, la) = key(a);
        let (pb, lb) = key(b);
        pa.total_cmp(&pb).then(lb.total_cmp(&la)).then(a.cmp(&b))
    });
    order.truncate(n);
    let mut row_of: HashMap<&str, usize> = HashMap::new();
    let mut interactions = Vec::new();
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for &i in &order {
        let r = &d.rows[i];
        if !row_of.contains_key(r.id.as_str()) {
            row_of.insert(&r.id, interactions.len());
            interactions.push(format!("{} -> {}", r.ligand, r.receptor));
        }
        pairs.push((r.sender, r.receiver));
    }
    pairs.sort_unstable();
    pairs.dedup();
    let top: std::collections::HashSet<usize> = order.iter().copied().collect();
    let mut dots = Vec::new();
    for (i, r) in d.rows.iter().enumerate() {
        let (Some(&row), Ok(col)) = (
            row_of.get(r.id.as_str()),
            pairs.binary_search(&(r.sender, r.receiver)),
        ) else {
            continue;
        };
        dots.push(ChangedDot {
            row,
            col,
            log2_fold_change: r.log2_fold_change,
            p_adj: r.p_adj,
            top: top.contains(&i),
        });
    }
    TopChanged {
        numerator: d.numerator.clone(),
        reference: d.reference.clone(),
        method: d.method,
        n_tested: d.rows.len(),
        n_max: n,
        n_top: order.len(),
        interactions,
        pairs: pairs.iter().map(|(a, b)| format!("{a} -> {b}")).collect(),
        dots,
    }
}

/// Result of [`significance_grid`].
#[derive(Debug, Clone, PartialEq)]
pub struct SignificanceGrid {
    /// Number of clusters `k`.
    pub n_clusters: usize,
    /// Per condition (order of [`InteractionDiff::per_condition`]): its name and the number of
    /// significant interactions per (sender, receiver), sender-major (`a * k + b`).
    pub counts: Vec<(String, Vec<u32>)>,
    /// Numerator condition.
    pub numerator: String,
    /// Reference condition.
    pub reference: String,
    /// Numerator's count minus the reference's, per (sender, receiver).
    pub difference: Vec<i64>,
    /// The p below which an interaction counts ([`InteractionDiff::significance`]).
    pub significance: f64,
}

/// Significant interactions per cluster pair and condition, and their difference (module
/// docs).
pub fn significance_grid(d: &InteractionDiff) -> SignificanceGrid {
    let k = d.per_condition.first().map_or(0, |(_, r)| r.n_clusters);
    let mut counts: Vec<(String, Vec<u32>)> = d
        .per_condition
        .iter()
        .map(|(c, _)| (c.clone(), vec![0; k * k]))
        .collect();
    for s in &d.summary {
        let (a, b) = (s.sender as usize, s.receiver as usize);
        if a >= k || b >= k {
            continue;
        }
        if let Some((_, v)) = counts.iter_mut().find(|(c, _)| *c == s.condition) {
            v[a * k + b] += s.n_significant.iter().sum::<usize>() as u32;
        }
    }
    let of = |name: &str| {
        counts
            .iter()
            .find(|(c, _)| c == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| vec![0; k * k])
    };
    let (num, refc) = (of(&d.numerator), of(&d.reference));
    let difference = num
        .iter()
        .zip(&refc)
        .map(|(&x, &y)| i64::from(x) - i64::from(y))
        .collect();
    SignificanceGrid {
        n_clusters: k,
        counts,
        numerator: d.numerator.clone(),
        reference: d.reference.clone(),
        difference,
        significance: d.significance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interactions::diff::{DiffInteraction, SummaryRow};
    use crate::interactions::SignalKind;

    fn row(id: &str, sender: u32, receiver: u32, lfc: f64, p_adj: f64) -> DiffInteraction {
        DiffInteraction {
            id: id.to_string(),
            ligand: format!("{id}L"),
            receptor: format!("{id}R"),
            sender,
            receiver,
            kind: SignalKind::Secreted,
            classification: String::new(),
            value_reference: 0.0,
            value_numerator: 0.0,
            log2_fold_change: lfc,
            statistic: 0.0,
            p: p_adj,
            p_adj,
            involves_specific_cluster: false,
        }
    }

    fn diff(rows: Vec<DiffInteraction>, summary: Vec<SummaryRow>) -> InteractionDiff {
        InteractionDiff {
            numerator: "res".into(),
            reference: "par".into(),
            method: DiffMethod::ConditionPermutation,
            rows,
            summary,
            per_condition: Vec::new(),
            significance: 0.05,
            notes: Vec::new(),
        }
    }

    #[test]
    fn top_ranks_by_adjusted_p_then_fold_change() {
        let d = diff(
            vec![
                row("a", 0, 1, 0.5, 0.01),
                row("b", 1, 0, -3.0, 0.01),
                row("c", 2, 2, 9.0, 0.5),
                row("a", 2, 2, 0.1, 0.9),
            ],
            Vec::new(),
        );
        let t = top_changed(&d, 2);
        assert_eq!(t.n_top, 2);
        assert_eq!(t.n_tested, 4);
        // b before a: same adjusted p, larger |log2 FC|.
        assert_eq!(t.interactions, vec!["bL -> bR", "aL -> aR"]);
        assert_eq!(t.pairs, vec!["0 -> 1", "1 -> 0"]);
        assert_eq!(t.dots.len(), 2);
        assert!(t.dots.iter().all(|d| d.top));
        // A third top entry brings column 2 -> 2 and its other tested row of a.
        let t = top_changed(&d, 3);
        assert_eq!(t.pairs.len(), 3);
        assert_eq!(t.dots.len(), 4);
        assert_eq!(t.dots.iter().filter(|d| !d.top).count(), 1);
        assert!(top_changed(&diff(Vec::new(), Vec::new()), 30)
            .dots
            .is_empty());
    }

    #[test]
    fn grid_sums_kinds_and_differences() {
        let s = |sender, receiver, condition: &str, n: [usize; 3]| SummaryRow {
            sender,
            receiver,
            condition: condition.to_string(),
            n_significant: n,
            strength: [0.0; 3],
        };
        let mut d = diff(
            Vec::new(),
            vec![s(0, 1, "par", [1, 2, 0]), s(0, 1, "res", [0, 0, 1])],
        );
        let empty = crate::interactions::CellPhoneDb {
            n_clusters: 2,
            interactions: Vec::new(),
            means: Vec::new(),
            expressed: Vec::new(),
            pvalues: Vec::new(),
            partner_a: Vec::new(),
            partner_b: Vec::new(),
            unknown_genes: Vec::new(),
            n_dropped: 0,
        };
        d.per_condition = vec![("par".into(), empty.clone()), ("res".into(), empty)];
        let g = significance_grid(&d);
        assert_eq!(g.n_clusters, 2);
        assert_eq!(g.counts[0].1, vec![0, 3, 0, 0]);
        assert_eq!(g.counts[1].1, vec![0, 1, 0, 0]);
        assert_eq!(g.difference, vec![0, -2, 0, 0]);
    }
}
