//! Differences in cell-type (cluster) proportions between conditions with biological
//! replicates: propeller (Phipson et al. 2022, "propeller: testing for differences in cell type
//! proportions in single cell data", *Bioinformatics* 38(20); the speckle R package,
//! github.com/phipsonlab/speckle, functions `getTransformedProps`, `propeller`,
//! `propeller.ttest` and `propeller.anova`).
//!
//! For every sample the cluster proportions `p_sc = n_sc / N_s` are transformed:
//! - `Logit`: `log(q / (1 - q))` with `q = (n_sc + 0.5) / (N_s + 0.5 K)` (`K` clusters; the 0.5
//!   pseudo-count is added to every cell of the table before the row sums, as speckle's
//!   `getTransformedProps`), so empty clusters stay finite;
//! - `Asin`: `asin(sqrt(p_sc))`, the arcsine-square-root variance stabiliser.
//!
//! Each cluster's transformed proportions are fitted by limma ([`crate::limma`]) with one
//! indicator column per group. Two groups: the contrast group 0 minus group 1, moderated t
//! (`propeller.ttest`). More groups: the design's first column is replaced by an intercept
//! and the moderated F statistic of the other group columns is the test (`propeller.anova`).
//! The empirical Bayes options are speckle's defaults: `robust = true` (turned off, as
//! speckle does, when there are at most 2 clusters) and `trend = false`. P-values are adjusted
//! over the clusters by Benjamini-Hochberg. The reported group proportions are the mean of
//! the untransformed proportions over each group's samples (speckle's `PropMean`) and, for two
//! groups, `prop_ratio = mean_0 / mean_1` (`PropRatio`).
//!
//! Differences from speckle: the input is the samples x clusters count table rather than
//! per-cell labels; extra covariates in the design are not supported; rows come in cluster
//! order (speckle sorts by p-value); `robust` together with `trend` is not implemented.

use crate::error::{Error, Result};
use crate::limma::{contrasts_fit, ebayes, lm_fit, EbayesOptions};
use crate::stats;
use ndarray::{Array2, ArrayView2};

/// Transformation of the proportions before the linear model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropTransform {
    /// `log(q / (1 - q))` of the proportions with a 0.5 pseudo-count (speckle's default).
    Logit,
    /// `asin(sqrt(p))`.
    Asin,
}

/// Options of [`propeller`].
#[derive(Debug, Clone, PartialEq)]
pub struct PropellerOptions {
    /// Transformation of the proportions. Default [`PropTransform::Logit`] (speckle's
    /// `propeller` default).
    pub transform: PropTransform,
    /// Robust empirical Bayes estimation of the prior (limma `eBayes(robust = TRUE)`).
    /// Default `true` (speckle's default); ignored with at most 2 clusters, as speckle does.
    pub robust: bool,
    /// Mean-variance trend in the prior variance (limma `eBayes(trend = TRUE)`). Default
    /// `false` (speckle's default). Not available together with `robust`.
    pub trend: bool,
}

impl Default for PropellerOptions {
    fn default() -> Self {
        PropellerOptions {
            transform: PropTransform::Logit,
            robust: true,
            trend: false,
        }
    }
}

impl PropellerOptions {
    /// Checks every field (`robust` and `trend` cannot both be set).
    pub fn validate(&self) -> Result<()> {
        if self.robust && self.trend {
            return Err(Error::option(
                "trend",
                "trend together with robust is not implemented; set robust = false to use trend",
            ));
        }
        Ok(())
    }
}

/// One cluster's result.
#[derive(Debug, Clone, PartialEq)]
pub struct PropellerRow {
    /// Cluster index (column of the count table).
    pub cluster: usize,
    /// Share of all cells (all samples pooled) in this cluster (speckle's `BaselineProp`).
    pub baseline_prop: f64,
    /// Mean proportion over the samples of each group, in group-code order.
    pub props: Vec<f64>,
    /// Two groups: `props[0] / props[1]`; `None` with more groups.
    pub prop_ratio: Option<f64>,
    /// Moderated t (two groups; group 0 minus group 1) or moderated F (more groups).
    pub t_or_f: f64,
    /// P-value of `t_or_f`.
    pub p_value: f64,
    /// Benjamini-Hochberg adjusted p-value over the clusters.
    pub fdr: f64,
}

/// Result of [`propeller`].
#[derive(Debug, Clone, PartialEq)]
pub struct Propeller {
    /// One row per cluster, in cluster order.
    pub rows: Vec<PropellerRow>,
    /// Number of samples in each group.
    pub n_samples_per_group: Vec<usize>,
    /// `true` for the moderated t-test (two groups), `false` for the F-test.
    pub t_test: bool,
    /// Whether the robust prior was used (speckle turns it off with at most 2 clusters).
    pub robust_used: bool,
    /// Prior degrees of freedom per cluster from limma's empirical Bayes step.
    pub df_prior: Vec<f64>,
    /// Prior variance per cluster.
    pub s2_prior: Vec<f64>,
}

/// Tests every cluster for a difference in proportion between the groups (speckle's
/// `propeller`; see the module documentation).
///
/// `counts` is samples x clusters (cell counts; non-negative, finite, every sample with at
/// least one cell), `group` the group code (`0..n_groups`) of each sample. Every group needs at
/// least 2 samples.
pub fn propeller(
    counts: ArrayView2<f64>,
    group: &[u32],
    n_groups: usize,
    opts: &PropellerOptions,
) -> Result<Propeller> {
    opts.validate()?;
    let (n_samples, n_clusters) = counts.dim();
    if n_clusters == 0 {
        return Err(Error::data(
            "propeller",
            "the count table has no clusters (columns)",
        ));
    }
    if group.len() != n_samples {
        return Err(Error::data(
            "propeller",
            format!("{} group codes for {n_samples} samples", group.len()),
        ));
    }
    if n_groups < 2 {
        return Err(Error::data(
            "propeller",
            format!("n_groups is {n_groups}: at least 2 groups are needed"),
        ));
    }
    let mut n_per_group = vec![0usize; n_groups];
    for (s, &g) in group.iter().enumerate() {
        match n_per_group.get_mut(g as usize) {
            Some(c) => *c += 1,
            None => {
                return Err(Error::data(
                    format!("propeller: sample {s}"),
                    format!("group code {g} is not below n_groups = {n_groups}"),
                ))
            }
        }
    }
    if let Some((g, &c)) = n_per_group.iter().enumerate().find(|(_, &c)| c < 2) {
        return Err(Error::data(
            format!("propeller: group {g}"),
            format!("{c} sample(s); propeller needs at least 2 biological replicates per group"),
        ));
    }
    let mut totals = vec![0.0; n_samples];
    for s in 0..n_samples {
        for c in 0..n_clusters {
            let v = counts[[s, c]];
            if !v.is_finite() || v < 0.0 {
                return Err(Error::data(
                    format!("propeller: sample {s}"),
                    format!("count {v} in cluster {c} is not a finite non-negative number"),
                ));
            }
            totals[s] += v;
        }
        if totals[s] <= 0.0 {
            return Err(Error::data(
                format!("propeller: sample {s}"),
                "the sample has no cells (all counts are zero)",
            ));
        }
    }
    // Proportions and transformed proportions, clusters x samples (limma's features x samples).
    let k = n_clusters as f64;
    let mut prop = Array2::zeros((n_clusters, n_samples));
    let mut y = Array2::zeros((n_clusters, n_samples));
    for s in 0..n_samples {
        for c in 0..n_clusters {
            let n = counts[[s, c]];
            let p = n / totals[s];
            prop[[c, s]] = p;
            y[[c, s]] = match opts.transform {
                PropTransform::Asin => p.sqrt().asin(),
                PropTransform::Logit => {
                    let q = (n + 0.5) / (totals[s] + 0.5 * k);
                    (q / (1.0 - q)).ln()
                }
            };
        }
    }
    let grand: f64 = totals.iter().sum();
    let baseline: Vec<f64> = (0..n_clusters)
        .map(|c| counts.column(c).sum() / grand)
        .collect();
    let props: Vec<Vec<f64>> = (0..n_clusters)
        .map(|c| {
            let mut sums = vec![0.0; n_groups];
            for s in 0..n_samples {
                sums[group[s] as usize] += prop[[c, s]];
            }
            sums.iter()
                .zip(&n_per_group)
                .map(|(t, &n)| t / n as f64)
                .collect()
        })
        .collect();
    let robust = opts.robust && n_clusters > 2;
    let eb_opts = EbayesOptions {
        robust,
        trend: opts.trend,
        ..EbayesOptions::default()
    };
    let mut design = Array2::zeros((n_samples, n_groups));
    for (s, &g) in group.iter().enumerate() {
        design[[s, g as usize]] = 1.0;
    }
    let t_test = n_groups == 2;
    let (stat, p, eb) = if t_test {
        let fit = lm_fit(y.view(), design.view())?;
        let contrast = ndarray::arr2(&[[1.0], [-1.0]]);
        let fit = contrasts_fit(&fit, contrast.view())?;
        let eb = ebayes(&fit, &eb_opts)?;
        (eb.t.column(0).to_vec(), eb.p_value.column(0).to_vec(), eb)
    } else {
        for s in 0..n_samples {
            design[[s, 0]] = 1.0;
        }
        let fit = lm_fit(y.view(), design.view())?;
        let mut select = Array2::zeros((n_groups, n_groups - 1));
        for j in 1..n_groups {
            select[[j, j - 1]] = 1.0;
        }
        let fit = contrasts_fit(&fit, select.view())?;
        let eb = ebayes(&fit, &eb_opts)?;
        let f = eb.f.clone().unwrap_or_default();
        let fp = eb.f_p_value.clone().unwrap_or_default();
        (f, fp, eb)
    };
    let fdr = stats::benjamini_hochberg(&p);
    let rows = (0..n_clusters)
        .map(|c| PropellerRow {
            cluster: c,
            baseline_prop: baseline[c],
            prop_ratio: if t_test {
                Some(props[c][0] / props[c][1])
            } else {
                None
            },
            props: props[c].clone(),
            t_or_f: stat[c],
            p_value: p[c],
            fdr: fdr[c],
        })
        .collect();
    Ok(Propeller {
        rows,
        n_samples_per_group: n_per_group,
        t_test,
        robust_used: robust,
        df_prior: eb.df_prior,
        s2_prior: eb.s2_prior,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_groups_give_zero_t_and_equal_props() {
        // Groups 0 and 1 hold the same samples in a different order.
        let counts = ndarray::arr2(&[
            [10.0, 30.0, 60.0],
            [20.0, 20.0, 60.0],
            [20.0, 20.0, 60.0],
            [10.0, 30.0, 60.0],
        ]);
        let out = propeller(
            counts.view(),
            &[0, 0, 1, 1],
            2,
            &PropellerOptions::default(),
        )
        .unwrap();
        assert!(out.t_test);
        assert_eq!(out.n_samples_per_group, vec![2, 2]);
        for row in &out.rows {
            assert!(row.t_or_f.abs() < 1e-10, "{row:?}");
            assert!((row.props[0] - row.props[1]).abs() < 1e-15);
            assert!((row.prop_ratio.unwrap() - 1.0).abs() < 1e-12);
        }
        assert!((out.rows[0].baseline_prop - 0.15).abs() < 1e-15);
    }

    #[test]
    fn options_validate() {
        assert!(PropellerOptions::default().validate().is_ok());
        let bad = PropellerOptions {
            trend: true,
            ..PropellerOptions::default()
        };
        assert!(bad.validate().is_err());
    }
}
