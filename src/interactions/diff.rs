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

use super::cellphonedb::{analyse, check_shapes, CellPhoneDb, InteractionOptions};
use super::expression::{group_sizes, pair_mean, Prepared};
use super::resource::{LrInteraction, Resource, SignalKind};
use crate::error::{Error, Result};
use crate::limma::{ebayes, lm_fit, EbayesOptions};
use crate::sparse::CsrMatrix;
use crate::stats::benjamini_hochberg;
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Permutations per parallel task (integer counts: any spread over threads gives the same).
const BLOCK: usize = 8;

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
    let kept: Vec<&LrInteraction> = usable
        .kept
        .iter()
        .map(|&i| &resource.interactions[i])
        .collect();
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

struct Tested {
    interaction: usize,
    sender: u32,
    receiver: u32,
    v_ref: f64,
    v_num: f64,
    statistic: f64,
    p: f64,
}

/// Interaction values per group: `values[(i * k + a) * k + b) * n_groups_used + j]` for the
/// groups `g = j * k + cluster` (j < n_groups_used).
fn group_values(prep: &Prepared, groups: &[u32], n: usize, k: usize, thr: f64, out: &mut Vec<f64>) {
    let ng = n * k;
    let mut sums = vec![0.0; prep.n_genes() * ng];
    let mut expressing = vec![0.0; prep.n_genes() * ng];
    prep.group_sums(groups, ng, &mut sums, Some(&mut expressing));
    let sizes = group_sizes(groups, ng);
    let np = prep.partners.len();
    let (mut pm, mut pf) = (vec![0.0; np * ng], vec![0.0; np * ng]);
    prep.partner_values(&sums, &sizes, &mut pm);
    prep.partner_values(&expressing, &sizes, &mut pf);
    out.clear();
    out.resize(prep.pairs.len() * k * k * n, 0.0);
    for (i, &(pa, pb)) in prep.pairs.iter().enumerate() {
        for a in 0..k {
            for b in 0..k {
                let base = ((i * k + a) * k + b) * n;
                for j in 0..n {
                    let (ia, ib) = (pa * ng + j * k + a, pb * ng + j * k + b);
                    if pf[ia] > thr && pf[ib] > thr {
                        out[base + j] = pair_mean(pm[ia], pm[ib]);
                    }
                }
            }
        }
    }
}

fn limma_rows(
    prep: &Prepared,
    sample_index: &[u32],
    sample_condition: &[String],
    k: usize,
    thr: f64,
    input: &DiffInput,
) -> Result<Vec<Tested>> {
    let ns = sample_condition.len();
    let groups: Vec<u32> = sample_index
        .iter()
        .zip(input.labels)
        .map(|(&s, &l)| s * k as u32 + l)
        .collect();
    let mut values = Vec::new();
    group_values(prep, &groups, ns, k, thr, &mut values);
    let used: Vec<usize> = (0..ns)
        .filter(|&s| {
            sample_condition[s] == input.numerator || sample_condition[s] == input.reference
        })
        .collect();
    let is_num: Vec<bool> = used
        .iter()
        .map(|&s| sample_condition[s] == input.numerator)
        .collect();
    let n_num = is_num.iter().filter(|&&b| b).count() as f64;
    let n_ref = used.len() as f64 - n_num;
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for r in 0..prep.pairs.len() * k * k {
        let v: Vec<f64> = used.iter().map(|&s| values[r * ns + s]).collect();
        if v.iter().all(|&x| x == 0.0) {
            continue;
        }
        let mut mean = [0.0, 0.0];
        for (x, &num) in v.iter().zip(&is_num) {
            mean[num as usize] += x;
        }
        let (i, a, b) = (r / (k * k), (r / k) % k, r % k);
        rows.push(Tested {
            interaction: i,
            sender: a as u32,
            receiver: b as u32,
            v_ref: mean[0] / n_ref,
            v_num: mean[1] / n_num,
            statistic: 0.0,
            p: 1.0,
        });
        y.extend(v);
    }
    if rows.is_empty() {
        return Ok(rows);
    }
    let y = Array2::from_shape_vec((rows.len(), used.len()), y)
        .map_err(|e| Error::data("interactions between conditions", e.to_string()))?;
    let mut design = Array2::zeros((used.len(), 2));
    for (j, &num) in is_num.iter().enumerate() {
        design[[j, 0]] = 1.0;
        design[[j, 1]] = if num { 1.0 } else { 0.0 };
    }
    let fit = lm_fit(y.view(), design.view())?;
    let eb = ebayes(&fit, &EbayesOptions::default())?;
    for (j, r) in rows.iter_mut().enumerate() {
        r.statistic = eb.t[[j, 1]];
        r.p = if eb.p_value[[j, 1]].is_finite() {
            eb.p_value[[j, 1]]
        } else {
            1.0
        };
    }
    Ok(rows)
}

fn permutation_rows(
    prep: &Prepared,
    input: &DiffInput,
    k: usize,
    thr: f64,
    opts: &DiffOptions,
) -> Vec<Tested> {
    // Condition code: 0 reference, 1 numerator, u32::MAX other conditions.
    let code: Vec<u32> = input
        .conditions
        .iter()
        .map(|c| {
            if c == input.reference {
                0
            } else if c == input.numerator {
                1
            } else {
                u32::MAX
            }
        })
        .collect();
    let groups = |code: &[u32]| -> Vec<u32> {
        code.iter()
            .zip(input.labels)
            .map(|(&c, &l)| if c == u32::MAX { c } else { c * k as u32 + l })
            .collect()
    };
    let mut observed = Vec::new();
    group_values(prep, &groups(&code), 2, k, thr, &mut observed);
    let n_rows = prep.pairs.len() * k * k;
    let tested: Vec<usize> = (0..n_rows)
        .filter(|&r| observed[2 * r] != 0.0 || observed[2 * r + 1] != 0.0)
        .collect();
    let obs_d: Vec<f64> = tested
        .iter()
        .map(|&r| (observed[2 * r + 1] - observed[2 * r]).abs())
        .collect();
    // Cells of the two conditions in each cluster.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, (&c, &l)) in code.iter().zip(input.labels).enumerate() {
        if c != u32::MAX {
            members[l as usize].push(i);
        }
    }
    let n_blocks = opts.n_permutations.div_ceil(BLOCK);
    let blocks: Vec<Vec<u32>> = (0..n_blocks)
        .into_par_iter()
        .map(|blk| {
            let mut count = vec![0u32; tested.len()];
            let mut perm = code.clone();
            let mut shuffled = Vec::new();
            let mut vals = Vec::new();
            for p in blk * BLOCK..((blk + 1) * BLOCK).min(opts.n_permutations) {
                let mut rng = ChaCha8Rng::seed_from_u64(opts.cellphonedb.seed);
                rng.set_stream(p as u64 + 1);
                for m in &members {
                    shuffled.clear();
                    shuffled.extend(m.iter().map(|&i| code[i]));
                    shuffled.shuffle(&mut rng);
                    for (&i, &v) in m.iter().zip(&shuffled) {
                        perm[i] = v;
                    }
                }
                group_values(prep, &groups(&perm), 2, k, thr, &mut vals);
                for ((c, &r), &o) in count.iter_mut().zip(&tested).zip(&obs_d) {
                    if (vals[2 * r + 1] - vals[2 * r]).abs() >= o - 1e-12 {
                        *c += 1;
                    }
                }
            }
            count
        })
        .collect();
    let mut exceed = vec![0u32; tested.len()];
    for b in blocks {
        exceed.iter_mut().zip(b).for_each(|(t, c)| *t += c);
    }
    tested
        .iter()
        .enumerate()
        .map(|(t, &r)| {
            let hits = exceed[t];
            Tested {
                interaction: r / (k * k),
                sender: ((r / k) % k) as u32,
                receiver: (r % k) as u32,
                v_ref: observed[2 * r],
                v_num: observed[2 * r + 1],
                statistic: observed[2 * r + 1] - observed[2 * r],
                p: (1.0 + hits as f64) / (1.0 + opts.n_permutations as f64),
            }
        })
        .collect()
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

/// Writes `interactions_diff.csv` (one row per tested interaction, sorted by p, with the
/// `method` column) and `interactions_summary.csv` (per sender, receiver and condition: the
/// number and total mean of significant secreted, adhesion and membrane-bound interactions)
/// into `dir`; returns their paths.
pub fn write_tables(d: &InteractionDiff, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    use crate::report::{fmt_f64, write_atomic, write_csv_record};
    let p = dir.join("interactions_diff.csv");
    write_atomic(&p, |w| {
        write_csv_record(
            w,
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
        )?;
        for r in &d.rows {
            write_csv_record(
                w,
                &[
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
                ],
            )?;
        }
        Ok(())
    })?;
    let q = dir.join("interactions_summary.csv");
    write_atomic(&q, |w| {
        write_csv_record(
            w,
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
        )?;
        for r in &d.summary {
            let (s, a, m) = (
                SignalKind::Secreted as usize,
                SignalKind::Adhesion as usize,
                SignalKind::Membrane as usize,
            );
            write_csv_record(
                w,
                &[
                    r.sender.to_string(),
                    r.receiver.to_string(),
                    r.condition.clone(),
                    r.n_significant[s].to_string(),
                    fmt_f64(r.strength[s]),
                    r.n_significant[a].to_string(),
                    fmt_f64(r.strength[a]),
                    r.n_significant[m].to_string(),
                    fmt_f64(r.strength[m]),
                ],
            )?;
        }
        Ok(())
    })?;
    Ok(vec![p, q])
}
