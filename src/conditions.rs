//! Condition comparison: cluster composition by sample and condition, enrichment tests, and
//! condition-specific clusters (for example clusters found only in drug-resistant samples).
//!
//! For each cluster `c` and condition `k`:
//! - the share of condition `k`'s cells that fall in `c`, `p_k(c) = n_{c,k} / n_k`, so unequal
//!   numbers of cells per condition do not mislead;
//! - the normalized share of `c` from `k`: `s_k(c) = p_k(c) / Σ_j p_j(c)` (1 when the cluster
//!   has cells of condition `k` only, `1 / #conditions` when it is spread evenly);
//! - Fisher's exact test on the 2x2 table (in `c` / not in `c`) x (condition `k` / other
//!   conditions), one-sided for enrichment (SciPy's `fisher_exact(alternative="greater")`), with
//!   the sample odds ratio `ad / bc` and its Woolf (logit) confidence interval, computed with
//!   0.5 added to every cell when one is zero (Haldane-Anscombe); Benjamini-Hochberg adjusted
//!   over all (cluster, condition) pairs;
//! - when every condition has at least two samples (replicates), propeller (Phipson et al.
//!   2022; speckle's `propeller` with its defaults: logit-transformed proportions, limma with
//!   robust empirical Bayes, [`crate::propeller`]) on the samples x clusters counts, the samples
//!   of condition `k` against those of the other conditions (two groups, moderated t; with more
//!   than two conditions one call per condition, BH over the clusters of each call).
//!
//! Which test decides ([`DecidedBy`]): with replicates, propeller. A cluster is then called
//! specific to condition `k` when its moderated t is positive (more of `k`), the propeller FDR
//! is at most `max_p_adj`, `s_k(c) >= min_share` and it has at least `min_cells` cells; Fisher's
//! test stays in the table as a description of the cells. Without replicates the samples cannot
//! tell a condition from a sample (batch) effect, and the call is made on the adjusted Fisher
//! p-value instead, flagged by [`Composition::replicates`] = `false`. Fisher's test treats
//! cells as independent, so on designs with replicates it calls clusters that differ between
//! samples (batches) as condition-specific; this is why it does not decide when samples can.

use crate::error::{Error, Result};
use crate::propeller::{propeller, PropellerOptions};
use crate::stats::{benjamini_hochberg, fisher_exact_greater, normal_quantile};
use ndarray::Array2;
use std::collections::BTreeMap;

/// The test that decides the condition-specific calls of a [`Composition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// propeller over the samples (every condition has at least two samples).
    Propeller,
    /// Fisher's exact test over the cells (no replicates).
    FisherCells,
}

impl DecidedBy {
    /// `propeller` or `fisher_cells`, as written in the tables.
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::Propeller => "propeller",
            DecidedBy::FisherCells => "fisher_cells",
        }
    }
}

/// Options of [`composition`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompositionOptions {
    /// Minimum normalized share `s_k(c)` for a cluster to be specific to condition `k`.
    /// Default 0.8.
    pub min_share: f64,
    /// Maximum adjusted p-value of the deciding test (propeller FDR with replicates, BH-adjusted
    /// Fisher p-value without) for a specific cluster. Default 0.05.
    pub max_p_adj: f64,
    /// Minimum cells in a cluster to call it specific. Default 10.
    pub min_cells: usize,
    /// Options of propeller, the sample-level test. Default speckle's (logit transform,
    /// robust empirical Bayes, no trend).
    pub propeller: PropellerOptions,
    /// Confidence level of the odds-ratio interval. Default 0.95.
    pub confidence: f64,
}

impl Default for CompositionOptions {
    fn default() -> Self {
        CompositionOptions {
            min_share: 0.8,
            max_p_adj: 0.05,
            min_cells: 10,
            propeller: PropellerOptions::default(),
            confidence: 0.95,
        }
    }
}

impl CompositionOptions {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.min_share) {
            return Err(Error::option("min_share", "must be within [0, 1]"));
        }
        if !(self.max_p_adj > 0.0 && self.max_p_adj <= 1.0) {
            return Err(Error::option("max_p_adj", "must be within (0, 1]"));
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(Error::option("confidence", "must be within (0, 1)"));
        }
        self.propeller.validate().map_err(|e| e.within("propeller"))
    }
}

/// One (cluster, condition) enrichment test.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrichment {
    /// Cluster label.
    pub cluster: u32,
    /// Condition index (into [`Composition::conditions`]).
    pub condition: usize,
    /// Cells of this condition in the cluster (`a` of the 2x2 table).
    pub in_cluster: usize,
    /// Cells of this condition outside the cluster (`b`).
    pub out_cluster: usize,
    /// Cells of other conditions in the cluster (`c`).
    pub other_in_cluster: usize,
    /// Cells of other conditions outside the cluster (`d`).
    pub other_out_cluster: usize,
    /// Share of this condition's cells in the cluster, `p_k(c)`.
    pub proportion: f64,
    /// Normalized share `s_k(c)` of the cluster from this condition.
    pub share: f64,
    /// Sample odds ratio `ad / bc` (may be 0 or infinite).
    pub odds_ratio: f64,
    /// Lower bound of the odds-ratio confidence interval.
    pub ci_low: f64,
    /// Upper bound of the odds-ratio confidence interval.
    pub ci_high: f64,
    /// One-sided Fisher exact p-value (enrichment).
    pub p: f64,
    /// Benjamini-Hochberg adjusted `p`.
    pub p_adj: f64,
    /// propeller's moderated t of this condition against the others (positive: a larger
    /// proportion in this condition's samples), when there are replicates.
    pub propeller_t: Option<f64>,
    /// propeller's (two-sided) p-value, when there are replicates.
    pub propeller_p: Option<f64>,
    /// propeller's BH-adjusted p-value (over the clusters), when there are replicates.
    pub propeller_fdr: Option<f64>,
    /// The test that decided [`Enrichment::specific`].
    pub decided_by: DecidedBy,
    /// Whether the cluster is called specific to this condition.
    pub specific: bool,
}

/// Cluster composition by sample and by condition, with enrichment tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Composition {
    /// Number of clusters (labels `0..n_clusters`).
    pub n_clusters: usize,
    /// Sample names, in order of first appearance.
    pub samples: Vec<String>,
    /// Condition of each sample.
    pub sample_condition: Vec<usize>,
    /// Condition names, in order of first appearance.
    pub conditions: Vec<String>,
    /// Cells per (cluster, sample): `counts_by_sample[c][s]`.
    pub counts_by_sample: Vec<Vec<usize>>,
    /// Cells per (cluster, condition).
    pub counts_by_condition: Vec<Vec<usize>>,
    /// Cells per sample.
    pub sample_totals: Vec<usize>,
    /// Cells per condition.
    pub condition_totals: Vec<usize>,
    /// One test per (cluster, condition), cluster-major.
    pub tests: Vec<Enrichment>,
    /// Whether every condition has at least two samples (the calls are then decided by
    /// propeller over the samples, otherwise by Fisher's test over the cells).
    pub replicates: bool,
}

impl Composition {
    /// Share of sample `s`'s cells in cluster `c`.
    pub fn sample_proportion(&self, c: usize, s: usize) -> f64 {
        self.counts_by_sample[c][s] as f64 / self.sample_totals[s].max(1) as f64
    }
    /// The clusters called specific to a condition, as `(cluster, condition)`.
    pub fn specific(&self) -> Vec<(u32, usize)> {
        self.tests
            .iter()
            .filter(|t| t.specific)
            .map(|t| (t.cluster, t.condition))
            .collect()
    }
    /// The test of cluster `c` and condition `k`.
    pub fn test(&self, c: u32, k: usize) -> Option<&Enrichment> {
        self.tests.get(c as usize * self.conditions.len() + k)
    }
}

fn index_of(names: &[String]) -> (Vec<String>, Vec<usize>) {
    let mut map: BTreeMap<&str, usize> = BTreeMap::new();
    let mut order = Vec::new();
    let codes = names
        .iter()
        .map(|n| {
            *map.entry(n.as_str()).or_insert_with(|| {
                order.push(n.clone());
                order.len() - 1
            })
        })
        .collect();
    (order, codes)
}

/// Composition of clusters by sample and condition, with enrichment tests (module docs).
///
/// `clusters`, `samples` and `conditions` give one entry per cell. Each sample must belong to
/// one condition.
pub fn composition(
    clusters: &[u32],
    samples: &[String],
    conditions: &[String],
    opts: &CompositionOptions,
) -> Result<Composition> {
    opts.validate()?;
    let n = clusters.len();
    if samples.len() != n || conditions.len() != n {
        return Err(Error::data(
            "composition",
            format!(
                "{n} cluster labels, {} samples and {} conditions: one of each per cell is needed",
                samples.len(),
                conditions.len()
            ),
        ));
    }
    if n == 0 {
        return Err(Error::data("composition", "no cells"));
    }
    let n_clusters = clusters.iter().max().map_or(0, |&m| m as usize + 1);
    let (sample_names, sample_code) = index_of(samples);
    let (cond_names, cond_code) = index_of(conditions);
    let mut sample_condition = vec![usize::MAX; sample_names.len()];
    for i in 0..n {
        let s = sample_code[i];
        if sample_condition[s] == usize::MAX {
            sample_condition[s] = cond_code[i];
        } else if sample_condition[s] != cond_code[i] {
            return Err(Error::data(
                format!("sample \"{}\"", sample_names[s]),
                format!(
                    "cells belong to two conditions (\"{}\" and \"{}\")",
                    cond_names[sample_condition[s]], cond_names[cond_code[i]]
                ),
            ));
        }
    }
    let (ns, nk) = (sample_names.len(), cond_names.len());
    let mut by_sample = vec![vec![0usize; ns]; n_clusters];
    let mut by_cond = vec![vec![0usize; nk]; n_clusters];
    let mut sample_totals = vec![0usize; ns];
    let mut cond_totals = vec![0usize; nk];
    for i in 0..n {
        let c = clusters[i] as usize;
        by_sample[c][sample_code[i]] += 1;
        by_cond[c][cond_code[i]] += 1;
        sample_totals[sample_code[i]] += 1;
        cond_totals[cond_code[i]] += 1;
    }

    let z = normal_quantile(0.5 + opts.confidence / 2.0);
    let samples_per_cond: Vec<usize> = (0..nk)
        .map(|k| sample_condition.iter().filter(|&&x| x == k).count())
        .collect();
    let replicates = nk >= 2 && samples_per_cond.iter().all(|&m| m >= 2);
    // propeller per condition (that condition's samples against the others), with replicates.
    let mut prop_rows: Vec<Vec<(f64, f64, f64)>> = Vec::new();
    if replicates {
        let mut counts = Array2::<f64>::zeros((ns, n_clusters));
        for (c, row) in by_sample.iter().enumerate() {
            for (s, &n) in row.iter().enumerate() {
                counts[[s, c]] = n as f64;
            }
        }
        for k in 0..nk {
            let group: Vec<u32> = sample_condition
                .iter()
                .map(|&x| u32::from(x != k))
                .collect();
            let r = propeller(counts.view(), &group, 2, &opts.propeller)
                .map_err(|e| e.within("propeller"))?;
            let mut rows = vec![(f64::NAN, 1.0, 1.0); n_clusters];
            for row in &r.rows {
                if let Some(slot) = rows.get_mut(row.cluster) {
                    *slot = (row.t_or_f, row.p_value, row.fdr);
                }
            }
            if nk == 2 {
                // One call serves both conditions: the second is the same test, sign flipped.
                let flipped = rows.iter().map(|&(t, p, q)| (-t, p, q)).collect();
                prop_rows.push(rows);
                prop_rows.push(flipped);
                break;
            }
            prop_rows.push(rows);
        }
    }
    let decided_by = if replicates {
        DecidedBy::Propeller
    } else {
        DecidedBy::FisherCells
    };
    let mut tests = Vec::with_capacity(n_clusters * nk);
    for (c, row) in by_cond.iter().enumerate() {
        let props: Vec<f64> = (0..nk)
            .map(|k| row[k] as f64 / cond_totals[k].max(1) as f64)
            .collect();
        let prop_sum: f64 = props.iter().sum();
        let in_c: usize = row.iter().sum();
        for k in 0..nk {
            let a = row[k];
            let b = cond_totals[k] - a;
            let cc = in_c - a;
            let d = n - cond_totals[k] - cc;
            let (or, lo, hi) = odds_ratio_ci(a, b, cc, d, z);
            let pr = prop_rows.get(k).and_then(|r| r.get(c)).copied();
            tests.push(Enrichment {
                cluster: c as u32,
                condition: k,
                in_cluster: a,
                out_cluster: b,
                other_in_cluster: cc,
                other_out_cluster: d,
                proportion: props[k],
                share: if prop_sum > 0.0 {
                    props[k] / prop_sum
                } else {
                    0.0
                },
                odds_ratio: or,
                ci_low: lo,
                ci_high: hi,
                p: fisher_exact_greater(a, b, cc, d),
                p_adj: f64::NAN,
                propeller_t: pr.map(|x| x.0),
                propeller_p: pr.map(|x| x.1),
                propeller_fdr: pr.map(|x| x.2),
                decided_by,
                specific: false,
            });
        }
    }
    let p: Vec<f64> = tests.iter().map(|t| t.p).collect();
    for (t, q) in tests.iter_mut().zip(benjamini_hochberg(&p)) {
        t.p_adj = q;
    }
    for t in &mut tests {
        let size = t.in_cluster + t.other_in_cluster;
        let test_passes = match (decided_by, t.propeller_t, t.propeller_fdr) {
            (DecidedBy::Propeller, Some(tt), Some(q)) => tt > 0.0 && q <= opts.max_p_adj,
            (DecidedBy::Propeller, _, _) => false,
            (DecidedBy::FisherCells, _, _) => t.p_adj <= opts.max_p_adj,
        };
        t.specific = nk >= 2 && size >= opts.min_cells && t.share >= opts.min_share && test_passes;
    }
    Ok(Composition {
        n_clusters,
        samples: sample_names,
        sample_condition,
        conditions: cond_names,
        counts_by_sample: by_sample,
        counts_by_condition: by_cond,
        sample_totals,
        condition_totals: cond_totals,
        tests,
        replicates,
    })
}

/// Sample odds ratio `ad / bc` and its Woolf interval `exp(ln OR ± z sqrt(1/a + 1/b + 1/c + 1/d))`,
/// with 0.5 added to every cell when one is zero.
pub fn odds_ratio_ci(a: usize, b: usize, c: usize, d: usize, z: f64) -> (f64, f64, f64) {
    let or = (a as f64 * d as f64) / (b as f64 * c as f64);
    let or = if or.is_nan() { f64::NAN } else { or };
    let add = if a == 0 || b == 0 || c == 0 || d == 0 {
        0.5
    } else {
        0.0
    };
    let (a2, b2, c2, d2) = (
        a as f64 + add,
        b as f64 + add,
        c as f64 + add,
        d as f64 + add,
    );
    let l = (a2 * d2 / (b2 * c2)).ln();
    let se = (1.0 / a2 + 1.0 / b2 + 1.0 / c2 + 1.0 / d2).sqrt();
    (or, (l - z * se).exp(), (l + z * se).exp())
}
