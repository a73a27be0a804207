//! Interactions that change between two conditions, and per cluster pair summaries of
//! secreted (humoral) and adhesion signalling.
//!
//! The value of an interaction (partner A in sender cluster `a`, partner B in receiver `b`)
//! in a group of cells is CellPhoneDB's ([`super::cellphonedb`]): `(x + y) / 2` of the
//! partners' means (complexes: minimum over subunits) when both are expressed in more than
//! `threshold` of their cluster's cells in that group, else 0.
//!
//! - **With replicates** (at least two samples in each of the two conditions): the value per
//!   sample, then limma's moderated t (Smyth 2004; [`crate::limma`]) of the condition
//!   coefficient in `value ~ condition` over the samples, as done for cluster proportions by
//!   propeller. `method = limma_samples`.
//! - **Without**: the values per condition (all its cells), and a permutation test of the
//!   condition labels within each cluster (cluster sizes per condition kept), statistic
//!   `|v_numerator - v_reference|`, `p = (1 + #{permuted >= observed}) / (1 + n)`.
//!   `method = condition_permutation`; cells are not independent replicates, so a call can
//!   be a sample effect (said in [`InteractionDiff::notes`]).
//!
//! Rows with a value of 0 everywhere are not tested. `log2_fold_change = log2((v_num + pc) /
//! (v_ref + pc))` of the conditions' values (the mean over samples with replicates) with
//! pseudocount `pc`; adjusted p by Benjamini-Hochberg over the tested rows.
//!
//! Summaries: CellPhoneDB's statistical analysis within each condition; per (sender,
//! receiver, condition) the number of significant interactions (expressed, `p <
//! significance`) of each [`SignalKind`] and their total mean ("strength").

mod change;
mod tables;

pub use tables::write_tables;

use super::cellphonedb::{analyse, check_shapes, CellPhoneDb, InteractionOptions};
use super::expression::Prepared;
use super::resource::{LrInteraction, Resource, SignalKind};
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use crate::stats::benjamini_hochberg;
use change::{limma_rows, permutation_rows};

/// Options of [`differential_interactions`].
#[derive(Debug, Clone, PartialEq)]
pub struct DiffOptions {
    /// CellPhoneDB's analysis within each condition (threshold, permutations, seed); its
    /// `threshold` also defines the values compared. Default [`InteractionOptions::default`].
    pub cellphonedb: InteractionOptions,
    /// Condition-label permutations of the test without replicates. Default 1,000.
    pub n_permutations: usize,
    /// Pseudocount of the log2 fold change. Default 0.01.
    pub pseudocount: f64,
    /// p below which an interaction of a condition's CellPhoneDB analysis counts as
    /// significant in the summaries. Default 0.05.
    pub significance: f64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            cellphonedb: InteractionOptions::default(),
            n_permutations: 1000,
            pseudocount: 0.01,
            significance: 0.05,
        }
    }
}

impl DiffOptions {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        self.cellphonedb
            .validate()
            .map_err(|e| e.within("cellphonedb"))?;
        if self.n_permutations == 0 {
            return Err(Error::option("n_permutations", "must be at least 1"));
        }
        if !(self.pseudocount > 0.0 && self.pseudocount.is_finite()) {
            return Err(Error::option("pseudocount", "must be positive and finite"));
        }
        if !(self.significance > 0.0 && self.significance <= 1.0) {
            return Err(Error::option("significance", "must be within (0, 1]"));
        }
        Ok(())
    }
}

/// The cells of [`differential_interactions`]: clusters, samples, conditions, the contrast
/// and the condition-specific clusters to flag.
#[derive(Debug, Clone, Copy)]
pub struct DiffInput<'a> {
    /// Cluster of each cell (0-based).
    pub labels: &'a [u32],
    /// Sample of each cell.
    pub samples: &'a [String],
    /// Condition of each cell (one per sample).
    pub conditions: &'a [String],
    /// Condition in the numerator of the fold changes.
    pub numerator: &'a str,
    /// Reference condition.
    pub reference: &'a str,
    /// Condition-specific clusters: rows whose sender or receiver is one are flagged.
    pub specific_clusters: &'a [u32],
}

/// The test used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffMethod {
    /// limma's moderated t over per-sample values.
    LimmaSamples,
    /// Permutation of the condition labels within clusters.
    ConditionPermutation,
}

impl DiffMethod {
    /// `limma_samples` or `condition_permutation`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffMethod::LimmaSamples => "limma_samples",
            DiffMethod::ConditionPermutation => "condition_permutation",
        }
    }
}

/// One tested (interaction, sender, receiver).
#[derive(Debug, Clone, PartialEq)]
pub struct DiffInteraction {
    /// Interaction identifier.
    pub id: String,
    /// Partner A (ligand).
    pub ligand: String,
    /// Partner B (receptor).
    pub receptor: String,
    /// Cluster of partner A.
    pub sender: u32,
    /// Cluster of partner B.
    pub receiver: u32,
    /// Adhesion, secreted or membrane-bound.
    pub kind: SignalKind,
    /// CellPhoneDB's classification.
    pub classification: String,
    /// Value in the reference condition (mean over its samples with replicates).
    pub value_reference: f64,
    /// Value in the numerator condition.
    pub value_numerator: f64,
    /// `log2((v_num + pc) / (v_ref + pc))`.
    pub log2_fold_change: f64,
    /// Moderated t, or `v_num - v_ref` for the permutation test.
    pub statistic: f64,
    /// p-value.
    pub p: f64,
    /// Benjamini-Hochberg adjusted p over the tested rows.
    pub p_adj: f64,
    /// Whether the sender or receiver is a condition-specific cluster.
    pub involves_specific_cluster: bool,
}

/// Per (sender, receiver, condition): significant interactions by kind.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// Sender cluster.
    pub sender: u32,
    /// Receiver cluster.
    pub receiver: u32,
    /// Condition.
    pub condition: String,
    /// Per [`SignalKind`] (adhesion, secreted, membrane): number significant.
    pub n_significant: [usize; 3],
    /// Per kind: sum of the significant interactions' means.
    pub strength: [f64; 3],
}

/// Result of [`differential_interactions`].
#[derive(Debug, Clone)]
pub struct InteractionDiff {
    /// Numerator condition.
    pub numerator: String,
    /// Reference condition.
    pub reference: String,
    /// The test used.
    pub method: DiffMethod,
    /// Tested rows, sorted by p.
    pub rows: Vec<DiffInteraction>,
    /// Summaries, sender-major then receiver then condition (conditions in order of first
    /// appearance).
    pub summary: Vec<SummaryRow>,
    /// CellPhoneDB within each condition, in order of first appearance.
    pub per_condition: Vec<(String, CellPhoneDb)>,
    /// The p below which the summaries count an interaction as significant
    /// ([`DiffOptions::significance`]).
    pub significance: f64,
    /// Plain-words notes (the method when it is the fallback, unknown genes).
    pub notes: Vec<String>,
}

/// Interactions between conditions and their summaries (module docs).
pub fn differential_interactions(
    x: &CsrMatrix,
    gene_names: &[String],
    input: &DiffInput,
    resource: &Resource,
    opts: &DiffOptions,
) -> Result<InteractionDiff> {
    opts.validate()?;
    let labels = input.labels;
    check_shapes(x, gene_names, labels)?;
    if input.samples.len() != labels.len() || input.conditions.len() != labels.len() {
        return Err(Error::data(
            "interactions between conditions",
            "one sample and one condition per cell are needed",
        ));
    }
    let k = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let conds = distinct(input.conditions);
    for c in [input.numerator, input.reference] {
        if !conds.iter().any(|x| x == c) {
            return Err(Error::data(
                "interactions between conditions",
                format!("no cell has condition {c:?}"),
            ));
        }
    }
    let usable = resource.usable(gene_names);
    let kept = usable.interactions(resource);
    // The resource's genes only, once.
    let pos = super::resource::gene_positions(gene_names);
    let mut cols: Vec<usize> = kept
        .iter()
        .flat_map(|i| i.partner_a.genes.iter().chain(&i.partner_b.genes))
        .filter_map(|g| pos.get(g.as_str()).copied())
        .collect();
    cols.sort_unstable();
    cols.dedup();
    let names: Vec<String> = cols.iter().map(|&c| gene_names[c].clone()).collect();
    let xr = x.select_cols(&cols)?;
    let sub = Resource {
        name: resource.name.clone(),
        interactions: kept.iter().map(|&i| i.clone()).collect(),
    };
    let mut per_condition = Vec::new();
    for c in &conds {
        let cells: Vec<usize> = (0..labels.len())
            .filter(|&i| &input.conditions[i] == c)
            .collect();
        let lab: Vec<u32> = cells.iter().map(|&i| labels[i]).collect();
        let xc = xr.select_rows(&cells)?;
        per_condition.push((
            c.clone(),
            analyse(&xc, &names, &lab, k, &sub, &opts.cellphonedb)?,
        ));
    }
    let summary = summarize(&per_condition, k, opts.significance);
    let kept_refs: Vec<&LrInteraction> = sub.interactions.iter().collect();
    let prep = Prepared::new(&xr, &names, &kept_refs)?;

    let samples = distinct(input.samples);
    let mut sample_condition = vec![String::new(); samples.len()];
    let sample_index: Vec<u32> = input
        .samples
        .iter()
        .map(|s| samples.iter().position(|x| x == s).unwrap_or(0) as u32)
        .collect();
    for (i, &s) in sample_index.iter().enumerate() {
        let sc = &mut sample_condition[s as usize];
        if sc.is_empty() {
            sc.clone_from(&input.conditions[i]);
        } else if sc != &input.conditions[i] {
            return Err(Error::data(
                "interactions between conditions",
                format!("sample {} has cells of two conditions", samples[s as usize]),
            ));
        }
    }
    let count = |c: &str| sample_condition.iter().filter(|x| *x == c).count();
    let replicates = count(input.numerator) >= 2 && count(input.reference) >= 2;
    let mut notes = Vec::new();
    if !usable.unknown_genes.is_empty() {
        notes.push(format!(
            "{} of the resource's {} interactions were left out: {} of its genes are not in \
             the data.",
            usable.n_dropped,
            resource.interactions.len(),
            usable.unknown_genes.len()
        ));
    }
    let thr = opts.cellphonedb.threshold;
    let (method, tested) = if replicates {
        (
            DiffMethod::LimmaSamples,
            limma_rows(&prep, &sample_index, &sample_condition, k, thr, input)?,
        )
    } else {
        notes.push(format!(
            "Interactions between conditions: a condition has a single sample, so values are \
             compared by permuting the condition labels of the cells within each cluster \
             ({} permutations); cells of one sample are not independent replicates and a \
             change may be a sample effect.",
            opts.n_permutations
        ));
        (
            DiffMethod::ConditionPermutation,
            permutation_rows(&prep, input, k, thr, opts),
        )
    };
    let padj = benjamini_hochberg(&tested.iter().map(|t| t.p).collect::<Vec<_>>());
    let mut rows: Vec<DiffInteraction> = tested
        .into_iter()
        .zip(padj)
        .map(|(t, p_adj)| {
            let it = kept[t.interaction];
            let pc = opts.pseudocount;
            DiffInteraction {
                id: it.id.clone(),
                ligand: it.partner_a.name.clone(),
                receptor: it.partner_b.name.clone(),
                sender: t.sender,
                receiver: t.receiver,
                kind: it.kind(),
                classification: it.classification.clone(),
                value_reference: t.v_ref,
                value_numerator: t.v_num,
                log2_fold_change: ((t.v_num + pc) / (t.v_ref + pc)).log2(),
                statistic: t.statistic,
                p: t.p,
                p_adj,
                involves_specific_cluster: input.specific_clusters.contains(&t.sender)
                    || input.specific_clusters.contains(&t.receiver),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.p.total_cmp(&b.p));
    Ok(InteractionDiff {
        numerator: input.numerator.to_string(),
        reference: input.reference.to_string(),
        method,
        rows,
        summary,
        per_condition,
        significance: opts.significance,
        notes,
    })
}

/// Distinct values in order of first appearance.
fn distinct(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in v {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

fn summarize(per: &[(String, CellPhoneDb)], k: usize, alpha: f64) -> Vec<SummaryRow> {
    let mut out = Vec::with_capacity(k * k * per.len());
    for a in 0..k {
        for b in 0..k {
            for (cond, r) in per {
                let mut row = SummaryRow {
                    sender: a as u32,
                    receiver: b as u32,
                    condition: cond.clone(),
                    n_significant: [0; 3],
                    strength: [0.0; 3],
                };
                for (i, it) in r.interactions.iter().enumerate() {
                    let idx = r.index(i, a, b);
                    if r.expressed[idx] && r.pvalues[idx] < alpha {
                        let kind = it.kind() as usize;
                        row.n_significant[kind] += 1;
                        row.strength[kind] += r.means[idx];
                    }
                }
                out.push(row);
            }
        }
    }
    out
}
