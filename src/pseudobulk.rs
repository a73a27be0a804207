//! Pseudobulk differential expression between two conditions within one cluster, when the
//! samples are biological replicates.
//!
//! Cells are not independent replicates, so comparing conditions cell by cell overstates the
//! evidence; summing the raw counts of each (sample, cluster) and testing across samples is
//! the approach that holds up (Squair et al. 2021, "Confronting false discoveries in
//! single-cell differential expression"; muscat's `aggregateData` / `pbDS`).
//!
//! [`pseudobulk_sums`] sums counts per (sample, cluster). [`pseudobulk_de`] takes one cluster,
//! computes per sample `log2(CPM + 1)` with `CPM = 1e6 count / library size` (library size
//! = the pseudobulk sample's total count over all genes) and runs, per gene, Welch's t-test
//! of the test condition's samples against the control condition's samples (as
//! `scipy.stats.ttest_ind(equal_var=False)`), then adjusts the p-values over the genes
//! (Benjamini-Hochberg by default). A condition with fewer than two samples in the cluster is
//! an error: a variance cannot be estimated from one replicate.

use crate::error::{Error, Result};
use crate::lognorm::{with_counts_ref, CountsRef};
use crate::markers::Correction;
use crate::sparse::{ColIndex, CsrMatrix, StoredValue};
use crate::stats;
use std::collections::BTreeMap;

/// Summed counts per (sample, cluster).
#[derive(Debug, Clone, PartialEq)]
pub struct PseudobulkSums {
    /// `(sample, cluster)` of each pseudobulk profile, sorted.
    pub keys: Vec<(u32, u32)>,
    /// Number of cells summed into each profile.
    pub n_cells: Vec<usize>,
    /// Summed counts, one row per profile (profiles x genes, dense: profiles are few).
    pub sums: ndarray::Array2<f64>,
}

/// Sums the raw counts of the cells of each (sample, cluster) pair present.
pub fn pseudobulk_sums<'a>(
    counts: impl Into<CountsRef<'a>>,
    samples: &[u32],
    clusters: &[u32],
) -> Result<PseudobulkSums> {
    let counts = counts.into();
    let (n, n_genes) = counts.shape();
    if samples.len() != n || clusters.len() != n {
        return Err(Error::data(
            "pseudobulk",
            format!(
                "{} sample labels and {} cluster labels for {n} cells",
                samples.len(),
                clusters.len()
            ),
        ));
    }
    let mut index: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for (&s, &c) in samples.iter().zip(clusters) {
        index.entry((s, c)).or_insert(0);
    }
    for (i, v) in index.values_mut().enumerate() {
        *v = i;
    }
    let mut sums = ndarray::Array2::<f64>::zeros((index.len(), n_genes));
    let mut n_cells = vec![0usize; index.len()];
    for r in 0..n {
        let p = index[&(samples[r], clusters[r])];
        n_cells[p] += 1;
        let mut row = sums.row_mut(p);
        with_counts_ref!(counts, m => {
            let (idx, val) = m.row(r);
            for (&c, &v) in idx.iter().zip(val) {
                row[c.ix()] += v.to_f32() as f64;
            }
        });
    }
    Ok(PseudobulkSums {
        keys: index.into_keys().collect(),
        n_cells,
        sums,
    })
}

/// Options of [`pseudobulk_de`].
#[derive(Debug, Clone, PartialEq)]
pub struct PseudobulkOptions {
    /// The cluster to test in. Default: 0.
    pub cluster: u32,
    /// The condition label tested (numerator of the fold change). Default: 1.
    pub test: u32,
    /// The control condition label. Default: 0.
    pub control: u32,
    /// Samples with fewer cells than this in the cluster are left out. Default: 1.
    pub min_cells: usize,
    /// p-value adjustment over genes. Default: Benjamini-Hochberg.
    pub corr_method: Correction,
}

impl Default for PseudobulkOptions {
    fn default() -> Self {
        PseudobulkOptions {
            cluster: 0,
            test: 1,
            control: 0,
            min_cells: 1,
            corr_method: Correction::BenjaminiHochberg,
        }
    }
}

/// Result of [`pseudobulk_de`]: per gene vectors in gene order.
#[derive(Debug, Clone, PartialEq)]
pub struct PseudobulkDe {
    /// The cluster tested.
    pub cluster: u32,
    /// Samples of the test condition used.
    pub test_samples: Vec<u32>,
    /// Samples of the control condition used.
    pub control_samples: Vec<u32>,
    /// Mean `log2(CPM + 1)` over the test samples.
    pub mean_test: Vec<f64>,
    /// Mean `log2(CPM + 1)` over the control samples.
    pub mean_control: Vec<f64>,
    /// `mean_test - mean_control`.
    pub log2fc: Vec<f64>,
    /// Welch t statistic (0 when undefined: equal means and zero variances).
    pub t: Vec<f64>,
    /// Welch-Satterthwaite degrees of freedom.
    pub df: Vec<f64>,
    /// Two-sided p-value (1 when the statistic is undefined).
    pub pval: Vec<f64>,
    /// Adjusted p-value.
    pub pval_adj: Vec<f64>,
}

/// One row of [`PseudobulkDe::table`].
#[derive(Debug, Clone, PartialEq)]
pub struct PseudobulkRow {
    /// Gene name.
    pub gene: String,
    /// Mean log2(CPM + 1), test condition.
    pub mean_test: f64,
    /// Mean log2(CPM + 1), control condition.
    pub mean_control: f64,
    /// Difference of the means.
    pub log2fc: f64,
    /// Welch t statistic.
    pub t: f64,
    /// p-value.
    pub pval: f64,
    /// Adjusted p-value.
    pub pval_adj: f64,
}

impl PseudobulkDe {
    /// One row per gene, by increasing p-value (ties by gene index).
    pub fn table(&self, gene_names: &[String]) -> Result<Vec<PseudobulkRow>> {
        if gene_names.len() != self.pval.len() {
            return Err(Error::data(
                "pseudobulk table",
                format!(
                    "{} gene names for {} genes",
                    gene_names.len(),
                    self.pval.len()
                ),
            ));
        }
        let mut order: Vec<usize> = (0..self.pval.len()).collect();
        order.sort_by(|&a, &b| self.pval[a].total_cmp(&self.pval[b]).then(a.cmp(&b)));
        Ok(order
            .into_iter()
            .map(|i| PseudobulkRow {
                gene: gene_names[i].clone(),
                mean_test: self.mean_test[i],
                mean_control: self.mean_control[i],
                log2fc: self.log2fc[i],
                t: self.t[i],
                pval: self.pval[i],
                pval_adj: self.pval_adj[i],
            })
            .collect())
    }
}

/// Pseudobulk Welch t-test on log CPM between two conditions within one cluster (see the
/// module docs). `counts` are raw counts (cells x genes); `samples`, `conditions` and
/// `clusters` are per-cell labels; every sample must have a single condition.
pub fn pseudobulk_de(
    counts: &CsrMatrix,
    samples: &[u32],
    conditions: &[u32],
    clusters: &[u32],
    opts: &PseudobulkOptions,
) -> Result<PseudobulkDe> {
    if opts.test == opts.control {
        return Err(Error::option(
            "test",
            "the test and control conditions are the same",
        ));
    }
    if conditions.len() != counts.n_rows() {
        return Err(Error::data(
            "pseudobulk",
            format!(
                "{} condition labels for {} cells",
                conditions.len(),
                counts.n_rows()
            ),
        ));
    }
    let mut condition_of: BTreeMap<u32, u32> = BTreeMap::new();
    for (&s, &c) in samples.iter().zip(conditions) {
        if let Some(&prev) = condition_of.get(&s) {
            if prev != c {
                return Err(Error::data(
                    "pseudobulk",
                    format!("sample {s} has cells of conditions {prev} and {c}"),
                ));
            }
        } else {
            condition_of.insert(s, c);
        }
    }
    let pb = pseudobulk_sums(counts, samples, clusters)?;
    let mut test_rows = Vec::new();
    let mut control_rows = Vec::new();
    let (mut test_samples, mut control_samples) = (Vec::new(), Vec::new());
    for (p, &(s, c)) in pb.keys.iter().enumerate() {
        if c != opts.cluster || pb.n_cells[p] < opts.min_cells.max(1) {
            continue;
        }
        let cond = condition_of[&s];
        if cond == opts.test {
            test_rows.push(p);
            test_samples.push(s);
        } else if cond == opts.control {
            control_rows.push(p);
            control_samples.push(s);
        }
    }
    for (name, rows, label) in [
        ("test", &test_rows, opts.test),
        ("control", &control_rows, opts.control),
    ] {
        if rows.len() < 2 {
            return Err(Error::data(
                "pseudobulk",
                format!(
                    "{name} condition {label} has {} sample(s) with cells in cluster {}; \
                     at least 2 replicates are needed for a test across samples",
                    rows.len(),
                    opts.cluster
                ),
            ));
        }
    }
    let n_genes = counts.n_cols();
    let log_cpm = |p: usize| -> Result<Vec<f64>> {
        let row = pb.sums.row(p);
        let lib: f64 = row.sum();
        if lib <= 0.0 {
            return Err(Error::data(
                "pseudobulk",
                format!(
                    "sample {} has no counts in cluster {}",
                    pb.keys[p].0, opts.cluster
                ),
            ));
        }
        Ok(row.iter().map(|&v| (v / lib * 1e6 + 1.0).log2()).collect())
    };
    let a: Vec<Vec<f64>> = test_rows
        .iter()
        .map(|&p| log_cpm(p))
        .collect::<Result<_>>()?;
    let b: Vec<Vec<f64>> = control_rows
        .iter()
        .map(|&p| log_cpm(p))
        .collect::<Result<_>>()?;
    let moments = |m: &[Vec<f64>], g: usize| {
        let n = m.len() as f64;
        let mean = m.iter().map(|r| r[g]).sum::<f64>() / n;
        let var = m.iter().map(|r| (r[g] - mean) * (r[g] - mean)).sum::<f64>() / (n - 1.0);
        (mean, var, n)
    };
    let mut out = PseudobulkDe {
        cluster: opts.cluster,
        test_samples,
        control_samples,
        mean_test: vec![0.0; n_genes],
        mean_control: vec![0.0; n_genes],
        log2fc: vec![0.0; n_genes],
        t: vec![0.0; n_genes],
        df: vec![0.0; n_genes],
        pval: vec![0.0; n_genes],
        pval_adj: Vec::new(),
    };
    for g in 0..n_genes {
        let (ma, va, na) = moments(&a, g);
        let (mb, vb, nb) = moments(&b, g);
        let r = stats::welch_t_test(ma, va, na, mb, vb, nb);
        out.mean_test[g] = ma;
        out.mean_control[g] = mb;
        out.log2fc[g] = ma - mb;
        out.t[g] = if r.t.is_nan() { 0.0 } else { r.t };
        out.df[g] = r.df;
        out.pval[g] = if r.p.is_nan() { 1.0 } else { r.p };
    }
    out.pval_adj = match opts.corr_method {
        Correction::BenjaminiHochberg => stats::benjamini_hochberg(&out.pval),
        Correction::Bonferroni => stats::bonferroni(&out.pval),
    };
    Ok(out)
}
