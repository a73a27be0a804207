//! CellPhoneDB's statistical analysis (Efremova et al. 2020, Nat. Protoc. 15:1484; the
//! reference implementation is CellphoneDB 5's `cpdb_statistical_analysis_method`, whose
//! `core/methods/cpdb_statistical_analysis_helper.py` this follows rule by rule).
//!
//! On the log-normalized matrix, for every gene of the resource and cluster `c`: the mean
//! `m_g(c)` and the fraction of cells above 0, `f_g(c)`. A complex takes the minimum over its
//! subunits, separately for the mean and for the fraction. For an interaction (partner A,
//! partner B) and clusters (a, b), with `x = m_A(a)` and `y = m_B(b)`:
//!
//! - mean `= (x + y) / 2` when `x > 0` and `y > 0`, else 0 (CellPhoneDB's `means.txt`);
//! - expressed when `f_A(a) > threshold` and `f_B(b) > threshold` (strictly, as CellPhoneDB);
//! - `p = #{permutations whose mean > the observed mean} / n_permutations`, the cluster labels
//!   shuffled over all cells in each permutation; `p = 1` when the mean is 0 or the pair is
//!   not expressed (CellPhoneDB's `build_percent_result`).
//!
//! [`CellPhoneDb::value`] is the mean when expressed and 0 otherwise (the issue's
//! "interaction value"; CellPhoneDB itself keeps the mean and sets only p to 1).
//!
//! Differences from the reference: CellPhoneDB drops genes that are 0 in every cell (and the
//! complexes and interactions that use them); here they stay with mean 0 and p = 1. Each
//! permutation draws from its own ChaCha8 stream (`seed`, permutation number), so results
//! are identical for any thread count (CellPhoneDB's are reproducible only single-threaded).
//! Speed: only the resource's genes are read (one gene-major copy of those columns), and a
//! permutation costs one pass over their non-zeros plus the comparisons of the testable
//! interactions.

use super::expression::{group_sizes, pair_mean, Prepared};
use super::resource::{LrInteraction, Resource, SignalKind};
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Permutations per parallel task (a fixed block; counts are integers, so the result does
/// not depend on how blocks are spread over threads).
const BLOCK: usize = 8;

/// Options of [`statistical_analysis`].
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionOptions {
    /// Label permutations of the test. Default 1,000 (CellPhoneDB's `iterations`).
    pub n_permutations: usize,
    /// A partner counts as expressed in a cluster when the fraction of its cells above 0 is
    /// greater than this. Default 0.1 (CellPhoneDB's `threshold`).
    pub threshold: f64,
    /// Seed of the permutations. Default 0.
    pub seed: u64,
}

impl Default for InteractionOptions {
    fn default() -> Self {
        InteractionOptions {
            n_permutations: 1000,
            threshold: 0.1,
            seed: 0,
        }
    }
}

impl InteractionOptions {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if self.n_permutations == 0 {
            return Err(Error::option("n_permutations", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.threshold) {
            return Err(Error::option("threshold", "must be within [0, 1)"));
        }
        Ok(())
    }
}

/// Result of [`statistical_analysis`]. Arrays are interaction-major, then partner A's cluster,
/// then partner B's cluster: entry `(i, a, b)` is at `i * k * k + a * k + b` ([`Self::index`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CellPhoneDb {
    /// Number of clusters `k` (largest label + 1).
    pub n_clusters: usize,
    /// The interactions tested (the resource's rows whose genes are all in the data).
    pub interactions: Vec<LrInteraction>,
    /// Interaction means (module docs).
    pub means: Vec<f64>,
    /// Whether both partners pass the threshold.
    pub expressed: Vec<bool>,
    /// Permutation p-values.
    pub pvalues: Vec<f64>,
    /// Per partner A / B of each interaction and cluster: (mean, fraction), `i * k + c`.
    pub partner_a: Vec<(f64, f64)>,
    /// See [`CellPhoneDb::partner_a`].
    pub partner_b: Vec<(f64, f64)>,
    /// Resource genes missing from the data (sorted).
    pub unknown_genes: Vec<String>,
    /// Interactions of the resource dropped for a missing gene.
    pub n_dropped: usize,
}

impl CellPhoneDb {
    /// Flat index of interaction `i`, partner A's cluster `a`, partner B's cluster `b`.
    pub fn index(&self, i: usize, a: usize, b: usize) -> usize {
        (i * self.n_clusters + a) * self.n_clusters + b
    }

    /// The interaction value: the mean when expressed, else 0.
    pub fn value(&self, idx: usize) -> f64 {
        if self.expressed[idx] {
            self.means[idx]
        } else {
            0.0
        }
    }

    /// One row per (interaction, sender, receiver), in the order of the arrays.
    pub fn rows(&self) -> Vec<Interaction> {
        let k = self.n_clusters;
        let mut rows = Vec::with_capacity(self.means.len());
        for (i, it) in self.interactions.iter().enumerate() {
            for a in 0..k {
                for b in 0..k {
                    let idx = self.index(i, a, b);
                    rows.push(Interaction {
                        id: it.id.clone(),
                        ligand: it.partner_a.name.clone(),
                        receptor: it.partner_b.name.clone(),
                        sender: a as u32,
                        receiver: b as u32,
                        mean: self.means[idx],
                        expressed: self.expressed[idx],
                        p: self.pvalues[idx],
                        kind: it.kind(),
                        classification: it.classification.clone(),
                    });
                }
            }
        }
        rows
    }
}

/// One (interaction, sender, receiver) of [`CellPhoneDb::rows`].
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// Interaction identifier.
    pub id: String,
    /// Partner A (the ligand of a ligand-receptor interaction; a gene or complex name).
    pub ligand: String,
    /// Partner B (the receptor).
    pub receptor: String,
    /// Cluster of partner A.
    pub sender: u32,
    /// Cluster of partner B.
    pub receiver: u32,
    /// CellPhoneDB's mean.
    pub mean: f64,
    /// Both partners above the threshold fraction.
    pub expressed: bool,
    /// Permutation p-value.
    pub p: f64,
    /// Adhesion, secreted or membrane-bound.
    pub kind: SignalKind,
    /// CellPhoneDB's classification.
    pub classification: String,
}

impl Interaction {
    /// The mean when expressed, else 0.
    pub fn value(&self) -> f64 {
        if self.expressed {
            self.mean
        } else {
            0.0
        }
    }
}

/// Checks the shapes shared by the interaction steps.
pub(crate) fn check_shapes(x: &CsrMatrix, gene_names: &[String], labels: &[u32]) -> Result<()> {
    if labels.len() != x.n_rows() || gene_names.len() != x.n_cols() {
        return Err(Error::data(
            "interactions",
            format!(
                "{} labels and {} gene names for a {} x {} matrix",
                labels.len(),
                gene_names.len(),
                x.n_rows(),
                x.n_cols()
            ),
        ));
    }
    Ok(())
}

/// CellPhoneDB's statistical analysis (module docs) of `resource` on `x` (cells x genes,
/// log-normalized) with cluster `labels` (0-based). An empty resource, or one whose genes are
/// all missing, gives an empty result listing the unknown genes.
pub fn statistical_analysis(
    x: &CsrMatrix,
    gene_names: &[String],
    labels: &[u32],
    resource: &Resource,
    opts: &InteractionOptions,
) -> Result<CellPhoneDb> {
    opts.validate()?;
    check_shapes(x, gene_names, labels)?;
    let k = labels.iter().max().map_or(0, |&m| m as usize + 1);
    analyse(x, gene_names, labels, k, resource, opts)
}

/// [`statistical_analysis`] with `k` clusters (labels below `k`; options checked).
pub(crate) fn analyse(
    x: &CsrMatrix,
    gene_names: &[String],
    labels: &[u32],
    k: usize,
    resource: &Resource,
    opts: &InteractionOptions,
) -> Result<CellPhoneDb> {
    if labels.iter().any(|&l| l as usize >= k) {
        return Err(Error::data(
            "interactions",
            "a label is not below the number of clusters",
        ));
    }
    let usable = resource.usable(gene_names);
    let kept = usable.interactions(resource);
    let prep = Prepared::new(x, gene_names, &kept)?;
    let n = kept.len() * k * k;
    let sizes = group_sizes(labels, k);
    let np = prep.partners.len();
    let mut sums = vec![0.0; prep.n_genes() * k];
    let mut expressing = vec![0.0; prep.n_genes() * k];
    prep.group_sums(labels, k, &mut sums, Some(&mut expressing));
    let mut pmean = vec![0.0; np * k];
    let mut pfrac = vec![0.0; np * k];
    prep.partner_values(&sums, &sizes, &mut pmean);
    prep.partner_values(&expressing, &sizes, &mut pfrac);
    let mut means = vec![0.0; n];
    let mut expressed = vec![false; n];
    // Testable entries: (flat index, partner A slot, partner B slot).
    let mut testable: Vec<(usize, usize, usize)> = Vec::new();
    for (i, &(pa, pb)) in prep.pairs.iter().enumerate() {
        for a in 0..k {
            for b in 0..k {
                let idx = (i * k + a) * k + b;
                let (ia, ib) = (pa * k + a, pb * k + b);
                means[idx] = pair_mean(pmean[ia], pmean[ib]);
                expressed[idx] = pfrac[ia] > opts.threshold && pfrac[ib] > opts.threshold;
                if expressed[idx] && means[idx] > 0.0 {
                    testable.push((idx, ia, ib));
                }
            }
        }
    }
    let exceed = permutation_counts(&prep, labels, &sizes, &testable, &means, opts);
    let mut pvalues = vec![1.0; n];
    for (t, &(idx, _, _)) in testable.iter().enumerate() {
        pvalues[idx] = exceed[t] as f64 / opts.n_permutations as f64;
    }
    let side = |p: usize, a: usize| (pmean[p * k + a], pfrac[p * k + a]);
    let mut partner_a = Vec::with_capacity(kept.len() * k);
    let mut partner_b = Vec::with_capacity(kept.len() * k);
    for &(pa, pb) in &prep.pairs {
        for c in 0..k {
            partner_a.push(side(pa, c));
            partner_b.push(side(pb, c));
        }
    }
    Ok(CellPhoneDb {
        n_clusters: k,
        interactions: kept.into_iter().cloned().collect(),
        means,
        expressed,
        pvalues,
        partner_a,
        partner_b,
        unknown_genes: usable.unknown_genes,
        n_dropped: usable.n_dropped,
    })
}

/// For each testable entry, the number of label permutations whose mean exceeds the
/// observed one. Permutation `p` shuffles with `ChaCha8Rng::seed_from_u64(seed)` on stream
/// `p + 1`.
fn permutation_counts(
    prep: &Prepared,
    labels: &[u32],
    sizes: &[f64],
    testable: &[(usize, usize, usize)],
    observed: &[f64],
    opts: &InteractionOptions,
) -> Vec<u32> {
    if testable.is_empty() {
        return Vec::new();
    }
    let k = sizes.len();
    let n_blocks = opts.n_permutations.div_ceil(BLOCK);
    let blocks: Vec<Vec<u32>> = (0..n_blocks)
        .into_par_iter()
        .map(|blk| {
            let mut lab = labels.to_vec();
            let mut sums = vec![0.0; prep.n_genes() * k];
            let mut pmean = vec![0.0; prep.partners.len() * k];
            let mut count = vec![0u32; testable.len()];
            let end = ((blk + 1) * BLOCK).min(opts.n_permutations);
            for p in blk * BLOCK..end {
                let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
                rng.set_stream(p as u64 + 1);
                lab.copy_from_slice(labels);
                lab.shuffle(&mut rng);
                prep.group_sums(&lab, k, &mut sums, None);
                prep.partner_values(&sums, sizes, &mut pmean);
                for (c, &(idx, ia, ib)) in count.iter_mut().zip(testable) {
                    if pair_mean(pmean[ia], pmean[ib]) > observed[idx] {
                        *c += 1;
                    }
                }
            }
            count
        })
        .collect();
    let mut total = vec![0u32; testable.len()];
    for b in blocks {
        total.iter_mut().zip(b).for_each(|(t, c)| *t += c);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interactions::resource::parse_resource;
    use std::path::Path;

    fn data() -> (CsrMatrix, Vec<String>, Vec<u32>) {
        // Cluster 0: A (1.0 in all cells), B1 (2.0 in all), B2 (0.5 in a quarter);
        // cluster 1: nothing but A (3.0 in one cell out of 20).
        let genes: Vec<String> = ["A", "B1", "B2"].iter().map(|s| s.to_string()).collect();
        let labels: Vec<u32> = (0..40).map(|i| (i / 20) as u32).collect();
        let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..20u32 {
            r.extend([i, i]);
            c.extend([0, 1]);
            v.extend([1.0, 2.0]);
            if i % 4 == 0 {
                r.push(i);
                c.push(2);
                v.push(0.5);
            }
        }
        r.push(20);
        c.push(0);
        v.push(3.0);
        let x = CsrMatrix::from_triplets(40, 3, &r, &c, &v).unwrap();
        (x, genes, labels)
    }

    #[test]
    fn complex_takes_the_minimum_and_threshold_is_strict() {
        let (x, genes, labels) = data();
        let res = parse_resource(Path::new("t"), "ligand,receptor\nA,B1+B2\nA,B1\n").unwrap();
        let opts = InteractionOptions {
            n_permutations: 50,
            ..Default::default()
        };
        let r = statistical_analysis(&x, &genes, &labels, &res, &opts).unwrap();
        assert_eq!(r.n_clusters, 2);
        // Complex B1+B2 in cluster 0: mean min(2.0, 0.125) = 0.125, fraction min(1, 0.25).
        assert_eq!(r.partner_b[0], (0.125, 0.25));
        let i00 = r.index(0, 0, 0);
        assert!((r.means[i00] - (1.0 + 0.125) / 2.0).abs() < 1e-12);
        assert!(r.expressed[i00]);
        // A in cluster 1: mean 0.15, fraction 0.05 <= 0.1: not expressed, p = 1, mean kept.
        let i10 = r.index(1, 1, 0);
        assert!((r.means[i10] - (0.15 + 2.0) / 2.0).abs() < 1e-12);
        assert!(!r.expressed[i10]);
        assert_eq!(r.pvalues[i10], 1.0);
        assert_eq!(r.value(i10), 0.0);
        // A fraction exactly at the threshold does not pass (CellPhoneDB's `>`).
        let at = statistical_analysis(
            &x,
            &genes,
            &labels,
            &res,
            &InteractionOptions {
                threshold: 0.25,
                ..opts.clone()
            },
        )
        .unwrap();
        assert!(!at.expressed[i00]);
        assert!(at.expressed[at.index(1, 0, 0)]);
        // B1, B2 absent from cluster 1: mean 0.
        assert_eq!(r.means[r.index(1, 0, 1)], 0.0);
    }

    #[test]
    fn validate_rejects_bad_options() {
        for o in [
            InteractionOptions {
                n_permutations: 0,
                ..Default::default()
            },
            InteractionOptions {
                threshold: 1.0,
                ..Default::default()
            },
        ] {
            assert!(o.validate().is_err());
        }
    }
}
