//! Pseudobulk differential expression by DESeq2's method (Love, Huber & Anders 2014,
//! "Moderated estimation of fold change and dispersion for RNA-seq data with DESeq2",
//! Genome Biology 15:550), following its Python implementation pydeseq2 0.5
//! (`DeseqDataSet.deseq2()` then `DeseqStats.summary()`; Muzellec et al. 2023).
//!
//! Counts are **samples x genes** (one row per pseudobulk sample, as
//! [`crate::pseudobulk::PseudobulkSums::sums`]), non-negative integers. The design is
//! `X = [1, condition, covariates...]` (the condition coded 0/1 with 1 the numerator of the
//! fold change; covariates are extra numeric columns, e.g. a batch coded by
//! [`categorical_columns`]); the contrast is the condition coefficient. Steps:
//!
//! 1. size factors by the median of ratios: `s_j = exp(median_g(ln c_jg - mean_j' ln c_j'g))`
//!    over the genes without zeros; normalized counts `c / s`, `base_mean` their mean;
//! 2. gene-wise dispersions: start `min(rough, moments)` estimate (pydeseq2's
//!    `_fit_MoM_dispersions`); means `mu` from the linear regression of the normalized counts
//!    on the design when the design has as many distinct rows as coefficients, else from the
//!    GLM at the start dispersion; then the Cox-Reid adjusted profile likelihood
//!    `nb_nll(c, mu, alpha) + ln det(X^T W X) / 2`, `W = mu / (1 + alpha mu)`, minimized over
//!    `ln alpha` in `[ln 1e-8, ln max(10, n)]`;
//! 3. the trend `alpha(m) = a0 + a1 / m` by a gamma-family GLM with outlier removal, or the
//!    trimmed mean of the dispersions when that fit fails (pydeseq2's fallback);
//! 4. the prior variance of log dispersions `max(MAD(ln alpha_gw - ln alpha_trend)^2 -
//!    psi'((n - p) / 2), 0.25)` and MAP dispersions (the same likelihood plus
//!    `(ln alpha - ln alpha_trend)^2 / (2 prior_var)`); genes whose gene-wise dispersion is
//!    more than two residual standard deviations above the trend keep it;
//! 5. the negative binomial GLM with log link by IRLS (ridge `1e-6`, means floored at
//!    `min_mu` inside the iterations), log fold change = condition coefficient / ln 2;
//! 6. the Wald test `stat = beta / SE`, two-sided normal p-value;
//! 7. Cook's distances; with `refit_cooks` and design cells of at least
//!    `min_replicates_for_refit` samples, counts with a Cook's distance above the 0.99
//!    quantile of `F(p, n - p)` are replaced by the trimmed mean (0.2) of the normalized
//!    counts times the size factor and those genes are refitted with the shared trend and
//!    prior; with `cooks_filter`, genes whose Cook's distance exceeds that quantile in a
//!    sample of a design cell with at least 3 samples (and fewer than 3 samples have a
//!    higher count) get no p-value;
//! 8. Benjamini-Hochberg, after independent filtering by `base_mean` when
//!    `independent_filter` (pydeseq2's `_independent_filtering` at level `alpha`).
//!
//! Genes with only zeros are kept with `base_mean = 0` and `NaN` fold change, statistic and
//! p-values, as DESeq2 reports them.
//!
//! Differences from pydeseq2, all numerical and small (tests/deseq.rs states the agreement):
//! the 1-D dispersion fits use a bounded derivative-bracketing search with Brent's root finder
//! on `ln alpha` instead of L-BFGS-B (keeping L-BFGS-B's first unit-curvature step and its
//! projected-gradient stop, `1e-5`, so genes in the flat Poisson limit stay where pydeseq2
//! leaves them; no grid-search fallback); a few genes whose likelihood has two local minima
//! can still end in the other one; the trend GLM is solved
//! by Fisher scoring instead of L-BFGS-B; when IRLS diverges the bounded fallback is projected
//! Fisher scoring instead of L-BFGS-B; when every gene has a zero this module returns an error
//! instead of switching to iterative size factors.
//!
//! Genes are independent given the size factors, the trend and the prior: the per-gene fits
//! run in parallel (rayon) and each gene's result depends only on its own counts and those
//! shared constants, so the output does not depend on the thread count.

mod dispersion;
mod glm;
mod input;
mod size_factors;
mod special;
mod wald;

pub use dispersion::TrendKind;

use crate::error::{Error, Result};
use dispersion::Prior;
use glm::{Design, Work};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Options of [`deseq`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeseqOptions {
    /// Significance level of independent filtering (the false discovery rate it optimizes
    /// rejections at). Default: 0.05 (pydeseq2's `alpha`).
    pub alpha: f64,
    /// Give no p-value to genes with a Cook's outlier (see the module docs). Default: true.
    pub cooks_filter: bool,
    /// Independent filtering by mean normalized count before Benjamini-Hochberg; when false,
    /// plain Benjamini-Hochberg over all tested genes. Default: true.
    pub independent_filter: bool,
    /// Replace Cook's outliers in design cells with at least `min_replicates_for_refit`
    /// samples and refit those genes. Default: true (pydeseq2's `refit_cooks`).
    pub refit_cooks: bool,
    /// Smallest design cell whose outlier counts are replaced. Default: 7 (DESeq2's
    /// `minReplicatesForReplace`); at least 3.
    pub min_replicates_for_refit: usize,
    /// Floor of the fitted means inside the GLM and dispersion fits. Default: 0.5.
    pub min_mu: f64,
    /// Lower bound of dispersions. Default: `1e-8`.
    pub min_disp: f64,
    /// Upper bound of dispersions; the bound used is `max(max_disp, number of samples)`.
    /// Default: 10.
    pub max_disp: f64,
    /// IRLS stops when the relative change of the deviance is at most this. Default: `1e-8`.
    pub beta_tol: f64,
}

impl Default for DeseqOptions {
    fn default() -> Self {
        DeseqOptions {
            alpha: 0.05,
            cooks_filter: true,
            independent_filter: true,
            refit_cooks: true,
            min_replicates_for_refit: 7,
            min_mu: 0.5,
            min_disp: 1e-8,
            max_disp: 10.0,
            beta_tol: 1e-8,
        }
    }
}

impl DeseqOptions {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Error::option(
                "alpha",
                format!("must be in (0, 1), got {}", self.alpha),
            ));
        }
        if self.min_replicates_for_refit < 3 {
            return Err(Error::option(
                "min_replicates_for_refit",
                format!("must be at least 3, got {}", self.min_replicates_for_refit),
            ));
        }
        if !(self.min_mu > 0.0 && self.min_mu.is_finite()) {
            return Err(Error::option(
                "min_mu",
                format!("must be positive and finite, got {}", self.min_mu),
            ));
        }
        if !(self.min_disp > 0.0 && self.min_disp.is_finite()) {
            return Err(Error::option(
                "min_disp",
                format!("must be positive and finite, got {}", self.min_disp),
            ));
        }
        if !(self.max_disp > self.min_disp && self.max_disp.is_finite()) {
            return Err(Error::option(
                "max_disp",
                format!(
                    "must be finite and above min_disp ({}), got {}",
                    self.min_disp, self.max_disp
                ),
            ));
        }
        if !(self.beta_tol > 0.0 && self.beta_tol < 1.0) {
            return Err(Error::option(
                "beta_tol",
                format!("must be in (0, 1), got {}", self.beta_tol),
            ));
        }
        Ok(())
    }
}

/// One gene of the result (pydeseq2's `results_df` row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeseqRow {
    /// Gene index (column of the counts).
    pub gene: usize,
    /// Mean normalized count over all samples.
    pub base_mean: f64,
    /// log2 fold change, condition 1 over condition 0 (`NaN` for an all-zero gene).
    pub log2_fold_change: f64,
    /// Standard error of `log2_fold_change`.
    pub lfc_se: f64,
    /// Wald statistic.
    pub stat: f64,
    /// Two-sided Wald p-value; `NaN` when not tested (all-zero gene, Cook's outlier).
    pub p_value: f64,
    /// Benjamini-Hochberg adjusted p-value; `NaN` when not tested or filtered out by
    /// independent filtering.
    pub p_adjusted: f64,
}

/// Result of [`deseq`]; per-gene vectors are in gene order.
#[derive(Debug, Clone, PartialEq)]
pub struct Deseq {
    /// One row per gene.
    pub rows: Vec<DeseqRow>,
    /// Median-of-ratios size factor of each sample.
    pub size_factors: Vec<f64>,
    /// Final dispersions used in the test (`NaN` for all-zero genes).
    pub dispersions: Vec<f64>,
    /// Gene-wise (Cox-Reid) dispersions.
    pub genewise_dispersions: Vec<f64>,
    /// Trend dispersions `a0 + a1 / base_mean`.
    pub fitted_dispersions: Vec<f64>,
    /// MAP dispersions (before the outlier rule).
    pub map_dispersions: Vec<f64>,
    /// Trend coefficients `(a0, a1)`; `a1 = 0` for the mean trend.
    pub trend: (f64, f64),
    /// Kind of trend fitted.
    pub trend_kind: TrendKind,
    /// Prior variance of log dispersions.
    pub prior_disp_var: f64,
    /// Squared MAD of the log dispersion residuals.
    pub squared_logres: f64,
    /// Genes whose p-value was removed by the Cook's filter.
    pub cooks_outlier: Vec<bool>,
    /// Genes refitted after outlier replacement.
    pub refitted: Vec<bool>,
    /// Base-mean cutoff chosen by independent filtering (0 without it).
    pub filter_cutoff: f64,
}

/// Dummy coding of a categorical covariate (e.g. batch) as extra design columns for
/// [`deseq`]: one 0/1 column per level after the smallest (the reference), levels in
/// increasing order. Samples x (levels - 1).
pub fn categorical_columns(labels: &[u32]) -> Array2<f64> {
    let mut levels: Vec<u32> = labels.to_vec();
    levels.sort_unstable();
    levels.dedup();
    let mut out = Array2::zeros((labels.len(), levels.len().saturating_sub(1)));
    for (j, l) in labels.iter().enumerate() {
        if let Some(k) = levels.iter().position(|v| v == l) {
            if k > 0 {
                out[[j, k - 1]] = 1.0;
            }
        }
    }
    out
}

/// [`deseq`] on `u32` counts (samples x genes).
pub fn deseq_u32(
    counts: ArrayView2<u32>,
    condition: &[u32],
    covariates: Option<ArrayView2<f64>>,
    opts: &DeseqOptions,
) -> Result<Deseq> {
    let c = counts.mapv(f64::from);
    deseq(c.view(), condition, covariates, opts)
}

/// Per-gene state of the first pass.
struct First {
    base_mean: f64,
    genewise: f64,
    mu_hat: Vec<f64>,
}

/// Per-gene state of the second pass.
struct Second {
    map: f64,
    disp: f64,
    beta: Vec<f64>,
    cooks: Vec<f64>,
    stat: f64,
    se: f64,
    p: f64,
}

/// A refitted gene: first pass, trend dispersion, second pass.
type Refit = (First, f64, Second);

/// Constants shared by the genes.
struct Shared<'a> {
    d: &'a Design,
    sf: &'a [f64],
    mean_inv_sf: f64,
    use_lin: bool,
    min_mu: f64,
    min_disp: f64,
    max_disp: f64,
    beta_tol: f64,
}

/// Steps 1-2 for one gene: base mean, start dispersion, means, gene-wise dispersion.
fn first_pass(s: &Shared, counts: &[f64], ws: &mut Work) -> First {
    let n = s.d.n;
    let normed: Vec<f64> = counts.iter().zip(s.sf).map(|(c, f)| c / f).collect();
    let base_mean = normed.iter().sum::<f64>() / n as f64;
    if counts.iter().all(|&c| c == 0.0) {
        return First {
            base_mean,
            genewise: f64::NAN,
            mu_hat: vec![f64::NAN; n],
        };
    }
    let start = dispersion::moments_dispersion(s.d, &normed, s.mean_inv_sf, s.min_disp, s.max_disp);
    let mut mu_hat = vec![0.0; n];
    if s.use_lin {
        glm::lin_reg_mu(s.d, counts, s.sf, s.min_mu, &mut mu_hat);
    } else {
        let mut hat = vec![0.0; n];
        glm::irls(
            s.d,
            counts,
            s.sf,
            start,
            s.min_mu,
            s.beta_tol,
            ws,
            &mut mu_hat,
            &mut hat,
        );
    }
    let gw = dispersion::fit_alpha(
        s.d, counts, &mu_hat, start, s.min_disp, s.max_disp, None, ws,
    );
    First {
        base_mean,
        genewise: gw.clamp(s.min_disp, s.max_disp),
        mu_hat,
    }
}

/// Steps 4-7 for one gene: MAP dispersion, final dispersion, GLM, Cook's distances, Wald.
fn second_pass(
    s: &Shared,
    counts: &[f64],
    f: &First,
    fitted: f64,
    prior: (f64, f64),
    ws: &mut Work,
) -> Second {
    let (n, p) = (s.d.n, s.d.p);
    if f.genewise.is_nan() {
        return Second {
            map: f64::NAN,
            disp: f64::NAN,
            beta: vec![f64::NAN; p],
            cooks: vec![f64::NAN; n],
            stat: f64::NAN,
            se: f64::NAN,
            p: f64::NAN,
        };
    }
    let (squared_logres, prior_var) = prior;
    let pr: Prior = (fitted.ln(), prior_var);
    let map = dispersion::fit_alpha(
        s.d,
        counts,
        &f.mu_hat,
        fitted,
        s.min_disp,
        s.max_disp,
        Some(pr),
        ws,
    )
    .clamp(s.min_disp, s.max_disp);
    let disp = if f.genewise.ln() > fitted.ln() + 2.0 * squared_logres.sqrt() {
        f.genewise
    } else {
        map
    };
    let (mut mu, mut hat) = (vec![0.0; n], vec![0.0; n]);
    glm::irls(
        s.d, counts, s.sf, disp, s.min_mu, s.beta_tol, ws, &mut mu, &mut hat,
    );
    let beta = ws.beta.clone();
    let normed: Vec<f64> = counts.iter().zip(s.sf).map(|(c, f)| c / f).collect();
    let mut buf = Vec::with_capacity(n);
    let robust = wald::cooks_dispersion(s.d, &normed, &mut buf);
    let mut cooks = vec![0.0; n];
    wald::cooks_distances(counts, &mu, &hat, robust, p, &mut cooks);
    let (stat, se, pv) = wald::wald(s.d, &beta, s.sf, disp, ws);
    Second {
        map,
        disp,
        beta,
        cooks,
        stat,
        se,
        p: pv,
    }
}

/// Differential expression between two conditions by DESeq2's method (see the module docs).
///
/// `counts`: samples x genes, non-negative integers (e.g. pseudobulk sums); `condition`: 0/1
/// per sample (1 = the numerator of the fold change), each with at least 2 samples;
/// `covariates`: extra design columns (samples x k), e.g. [`categorical_columns`] of a batch.
pub fn deseq(
    counts: ArrayView2<f64>,
    condition: &[u32],
    covariates: Option<ArrayView2<f64>>,
    opts: &DeseqOptions,
) -> Result<Deseq> {
    opts.validate()?;
    input::validate_input(&counts, condition, covariates.as_ref())?;
    let d = Design::new(condition, covariates.as_ref())?;
    let (n, g) = counts.dim();
    let p = d.p;
    let sf = size_factors::median_of_ratios(&counts)?;
    let n_cells = d.cell_size.len();
    let shared = Shared {
        d: &d,
        sf: &sf,
        mean_inv_sf: sf.iter().map(|s| 1.0 / s).sum::<f64>() / n as f64,
        use_lin: n_cells == p,
        min_mu: opts.min_mu,
        min_disp: opts.min_disp,
        max_disp: opts.max_disp.max(n as f64),
        beta_tol: opts.beta_tol,
    };
    let column = |gene: usize| -> Vec<f64> { counts.column(gene).to_vec() };

    let first: Vec<First> = (0..g)
        .into_par_iter()
        .map_init(
            || Work::new(n, p),
            |ws, gene| first_pass(&shared, &column(gene), ws),
        )
        .collect();
    let nz: Vec<usize> = (0..g).filter(|&i| !first[i].genewise.is_nan()).collect();
    let nz_mean: Vec<f64> = nz.iter().map(|&i| first[i].base_mean).collect();
    let nz_gw: Vec<f64> = nz.iter().map(|&i| first[i].genewise).collect();
    let (trend_kind, a0, a1) = dispersion::fit_trend(&nz_mean, &nz_gw, opts.min_disp);
    let trend_at = |m: f64| {
        if trend_kind == TrendKind::Mean {
            a0
        } else {
            a0 + a1 / m
        }
    };
    let mut fitted: Vec<f64> = first
        .iter()
        .map(|f| {
            if f.genewise.is_nan() {
                f64::NAN
            } else {
                trend_at(f.base_mean)
            }
        })
        .collect();
    let nz_fit: Vec<f64> = nz.iter().map(|&i| fitted[i]).collect();
    let (squared_logres, prior_disp_var) =
        dispersion::dispersion_prior(&nz_gw, &nz_fit, opts.min_disp, (n - p) as f64);
    let prior = (squared_logres, prior_disp_var);

    let mut second: Vec<Second> = (0..g)
        .into_par_iter()
        .map_init(
            || Work::new(n, p),
            |ws, gene| {
                second_pass(
                    &shared,
                    &column(gene),
                    &first[gene],
                    fitted[gene],
                    prior,
                    ws,
                )
            },
        )
        .collect();
    let mut first = first;

    // Cook's outlier replacement and refit.
    let cutoff = crate::stats::f_quantile(0.99, p as f64, (n - p) as f64);
    let replaceable = d.in_cell_of_at_least(opts.min_replicates_for_refit);
    let mut refitted = vec![false; g];
    let original_cooks: Vec<Vec<f64>> = second.iter().map(|s| s.cooks.clone()).collect();
    if opts.refit_cooks && replaceable.iter().any(|&r| r) {
        let replaced: Vec<usize> = (0..g)
            .filter(|&i| second[i].cooks.iter().any(|&c| c > cutoff))
            .collect();
        let refits: Vec<(usize, Vec<f64>)> = replaced
            .iter()
            .map(|&i| {
                let mut c = column(i);
                let mut normed: Vec<f64> = c.iter().zip(&sf).map(|(x, s)| x / s).collect();
                let tm = wald::trimmed_mean(&mut normed, 0.2);
                for j in 0..n {
                    if replaceable[j] && second[i].cooks[j] > cutoff {
                        c[j] = (tm * sf[j]).trunc();
                    }
                }
                (i, c)
            })
            .collect();
        let results: Vec<(usize, Option<Refit>)> = refits
            .into_par_iter()
            .map_init(
                || Work::new(n, p),
                |ws, (i, c)| {
                    if c.iter().all(|&x| x == 0.0) {
                        return (i, None);
                    }
                    let f = first_pass(&shared, &c, ws);
                    let fit = trend_at(f.base_mean);
                    let s2 = second_pass(&shared, &c, &f, fit, prior, ws);
                    (i, Some((f, fit, s2)))
                },
            )
            .collect();
        for (i, res) in results {
            match res {
                Some((f, fit, s2)) => {
                    refitted[i] = true;
                    first[i] = f;
                    fitted[i] = fit;
                    second[i] = s2;
                }
                None => {
                    // All zero after replacement: pydeseq2 sets the fold change to 0, the
                    // statistic and SE to 0 and the p-value to 1.
                    first[i].base_mean = 0.0;
                    second[i].beta.iter_mut().for_each(|b| *b = 0.0);
                    second[i].se = 0.0;
                    second[i].stat = 0.0;
                    second[i].p = 1.0;
                }
            }
        }
    }
    let any_refit = refitted.iter().any(|&r| r);

    // Cook's filter of p-values.
    let mut cooks_outlier = vec![false; g];
    if opts.cooks_filter {
        let use_for_max = d.in_cell_of_at_least(3);
        for i in 0..g {
            let orig = &original_cooks[i];
            let flagged = (0..n).any(|j| {
                let c = if any_refit && refitted[i] && replaceable[j] {
                    0.0
                } else {
                    orig[j]
                };
                use_for_max[j] && c > cutoff
            });
            if !flagged {
                continue;
            }
            let mut pos = 0;
            for j in 1..n {
                if orig[j] > orig[pos] {
                    pos = j;
                }
            }
            let col = counts.column(i);
            let higher = col.iter().filter(|&&c| c > col[pos]).count();
            cooks_outlier[i] = higher < 3;
        }
    }
    let mut pvals: Vec<f64> = second.iter().map(|s| s.p).collect();
    for i in 0..g {
        if cooks_outlier[i] {
            pvals[i] = f64::NAN;
        }
    }
    let base_mean: Vec<f64> = first.iter().map(|f| f.base_mean).collect();
    let (padj, filter_cutoff) = if opts.independent_filter {
        wald::independent_filtering(&base_mean, &pvals, opts.alpha)
    } else {
        (wald::adjust_all(&pvals), 0.0)
    };
    let ln2 = std::f64::consts::LN_2;
    let rows = (0..g)
        .map(|i| DeseqRow {
            gene: i,
            base_mean: base_mean[i],
            log2_fold_change: second[i].beta[1] / ln2,
            lfc_se: second[i].se / ln2,
            stat: second[i].stat,
            p_value: pvals[i],
            p_adjusted: padj[i],
        })
        .collect();
    Ok(Deseq {
        rows,
        size_factors: sf.clone(),
        dispersions: second.iter().map(|s| s.disp).collect(),
        genewise_dispersions: first.iter().map(|f| f.genewise).collect(),
        fitted_dispersions: fitted,
        map_dispersions: second.iter().map(|s| s.map).collect(),
        trend: (a0, a1),
        trend_kind,
        prior_disp_var,
        squared_logres,
        cooks_outlier,
        refitted,
        filter_cutoff,
    })
}
