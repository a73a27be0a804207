//! Moderated t and F statistics of a fit (limma's `eBayes` and `classifyTestsF`): the
//! residual variances squeezed towards their prior, t statistics on the pooled degrees of
//! freedom, and the F statistic over all coefficients.

use super::linear_model::{cov2cor, LmFit};
use super::squeeze::{squeeze_var, SqueezeVarOptions};
use crate::error::{Error, Result};
use crate::stats;
use crate::stats::f_sf;
use ndarray::Array2;

/// Options of [`ebayes`].
#[derive(Debug, Clone, PartialEq)]
pub struct EbayesOptions {
    /// Robust estimation of the prior (limma's `robust`, `fitFDistRobustly`). Default `false`
    /// (limma's default; speckle's `propeller` uses `true`).
    pub robust: bool,
    /// Let the prior variance depend on the features' mean (`Amean`) through a natural
    /// cubic spline (limma's `trend`). Default `false`.
    pub trend: bool,
    /// Tail proportions Winsorized by the robust fit. Default `[0.05, 0.1]`.
    pub winsor_tail_p: [f64; 2],
}

impl Default for EbayesOptions {
    fn default() -> Self {
        EbayesOptions {
            robust: false,
            trend: false,
            winsor_tail_p: [0.05, 0.1],
        }
    }
}

impl EbayesOptions {
    /// Checks every field (`robust` and `trend` together are not implemented).
    pub fn validate(&self) -> Result<()> {
        if self.robust && self.trend {
            return Err(Error::option(
                "robust",
                "robust estimation together with trend is not implemented",
            ));
        }
        SqueezeVarOptions {
            robust: self.robust,
            winsor_tail_p: self.winsor_tail_p,
        }
        .validate()
    }
}

/// Result of [`ebayes`].
#[derive(Debug, Clone, PartialEq)]
pub struct Ebayes {
    /// Moderated t statistics, features x coefficients.
    pub t: Array2<f64>,
    /// Two-sided p-values of `t` on `df_total` degrees of freedom.
    pub p_value: Array2<f64>,
    /// Prior degrees of freedom per feature (the same for all unless robust).
    pub df_prior: Vec<f64>,
    /// Prior variance per feature (the same for all unless `trend`).
    pub s2_prior: Vec<f64>,
    /// Posterior (moderated) variances.
    pub s2_post: Vec<f64>,
    /// `min(df_residual + df_prior, sum(df_residual))`.
    pub df_total: Vec<f64>,
    /// Moderated F statistic over all coefficients of the fit.
    pub f: Option<Vec<f64>>,
    /// Its p-value on `(f_df1, df_residual + df_prior)` degrees of freedom (not capped).
    pub f_p_value: Option<Vec<f64>>,
    /// Numerator degrees of freedom of `f` (the rank of the coefficients' correlation).
    pub f_df1: usize,
}

/// Empirical Bayes moderated t and F statistics for a fit (limma's `eBayes`; the formulas are
/// in the module documentation).
pub fn ebayes(fit: &LmFit, opts: &EbayesOptions) -> Result<Ebayes> {
    opts.validate()?;
    let n = fit.n_features();
    let q = fit.n_coefficients();
    if n == 0 || q == 0 {
        return Err(Error::data(
            "ebayes",
            "the fit has no features or no coefficients",
        ));
    }
    if fit.sigma.len() != n || fit.df_residual.len() != n || fit.amean.len() != n {
        return Err(Error::data(
            "ebayes",
            "sigma, df_residual and amean must have one value per feature",
        ));
    }
    if fit.df_residual.iter().all(|&d| d == 0.0) {
        return Err(Error::data(
            "ebayes",
            "no residual degrees of freedom in the linear model fits (as many coefficients as \
             samples)",
        ));
    }
    if !fit.sigma.iter().any(|s| s.is_finite()) {
        return Err(Error::data(
            "ebayes",
            "no finite residual standard deviations",
        ));
    }
    let var: Vec<f64> = fit.sigma.iter().map(|s| s * s).collect();
    let sq = squeeze_var(
        &var,
        &fit.df_residual,
        if opts.trend { Some(&fit.amean) } else { None },
        &SqueezeVarOptions {
            robust: opts.robust,
            winsor_tail_p: opts.winsor_tail_p,
        },
    )?;
    let df_pooled: f64 = fit.df_residual.iter().filter(|d| !d.is_nan()).sum();
    let df_total: Vec<f64> = (0..n)
        .map(|g| (fit.df_residual[g] + sq.df_prior[g]).min(df_pooled))
        .collect();
    let mut t = Array2::zeros((n, q));
    let mut p_value = Array2::zeros((n, q));
    for g in 0..n {
        let s = sq.var_post[g].sqrt();
        for j in 0..q {
            let tv = fit.coefficients[[g, j]] / fit.stdev_unscaled[[g, j]] / s;
            t[[g, j]] = tv;
            p_value[[g, j]] = stats::t_two_sided(tv, df_total[g]);
        }
    }
    // classifyTestsF(fstat.only = TRUE)
    let (f, df1) = if q == 1 {
        (t.column(0).iter().map(|v| v * v).collect::<Vec<f64>>(), 1)
    } else {
        let cor = cov2cor(&fit.cov_coefficients);
        let (vals, vecs) = symmetric_eigen(&cor);
        let vmax = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let keep: Vec<usize> = (0..q).filter(|&k| vals[k] / vmax > 1e-8).collect();
        let r = keep.len();
        let f = (0..n)
            .map(|g| {
                let row = t.row(g);
                keep.iter()
                    .map(|&k| {
                        let proj: f64 = (0..q).map(|i| row[i] * vecs[[i, k]]).sum();
                        proj * proj / vals[k]
                    })
                    .sum::<f64>()
                    / r as f64
            })
            .collect();
        (f, r)
    };
    let f_p: Vec<f64> = (0..n)
        .map(|g| f_sf(f[g], df1 as f64, fit.df_residual[g] + sq.df_prior[g]))
        .collect();
    Ok(Ebayes {
        t,
        p_value,
        df_prior: sq.df_prior,
        s2_prior: sq.var_prior,
        s2_post: sq.var_post,
        df_total,
        f: Some(f),
        f_p_value: Some(f_p),
        f_df1: df1,
    })
}

/// Eigenvalues and eigenvectors (columns) of a small symmetric matrix, cyclic Jacobi.
fn symmetric_eigen(a: &Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut a = a.clone();
    let mut v = Array2::<f64>::eye(n);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]] * a[[i, j]])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in (p + 1)..n {
                let apq = a[[p, q]];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[[k, p]];
                    let akq = a[[k, q]];
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[[p, k]];
                    let aqk = a[[q, k]];
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[[k, p]];
                    let vkq = v[[k, q]];
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[[i, i]]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limma::{close, contrasts_fit, lm_fit};

    #[test]
    fn eigen_and_contrasts() {
        let a = ndarray::arr2(&[[1.0, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 1.0]]);
        let (vals, vecs) = symmetric_eigen(&a);
        let back = vecs
            .dot(&Array2::from_diag(&ndarray::Array1::from(vals)))
            .dot(&vecs.t());
        for (x, y) in back.iter().zip(a.iter()) {
            assert!((x - y).abs() < 1e-12);
        }
        // Contrast of an intercept design equals the direct group difference.
        let y = ndarray::arr2(&[[1.0, 2.0, 4.0, 7.0], [0.0, 1.0, 0.0, 3.0]]);
        let d = ndarray::arr2(&[[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]]);
        let fit = lm_fit(y.view(), d.view()).unwrap();
        let sel = contrasts_fit(&fit, ndarray::arr2(&[[0.0], [1.0]]).view()).unwrap();
        assert!(close(sel.coefficients[[0, 0]], 4.0, 1e-12));
        assert!(close(sel.stdev_unscaled[[0, 0]], 1.0, 1e-12));
        assert!(close(sel.cov_coefficients[[0, 0]], 1.0, 1e-12));
    }
}
