//! Empirical Bayes moderation of variances (limma's `squeezeVar`): the scaled inverse
//! chi-square prior fitted by moments of the log-variances (`fitFDist`), optionally with a
//! natural-spline trend on a covariate; the robust fit is in [`super::robust`].

use super::qr::Qr;
use super::robust::fit_f_dist_robustly;
use crate::error::{Error, Result};
use crate::special::{digamma, trigamma, trigamma_inverse};
use crate::stats::{median, quantile_sorted};
use ndarray::Array2;

/// Options of [`squeeze_var`].
#[derive(Debug, Clone, PartialEq)]
pub struct SqueezeVarOptions {
    /// Robust (Winsorized) estimation of the prior, limma's `fitFDistRobustly`, which gives
    /// outlier variances smaller prior degrees of freedom. Default `false` (limma's default).
    pub robust: bool,
    /// Left and right tail proportions of the log-variances Winsorized by the robust fit.
    /// Default `[0.05, 0.1]` (limma's `winsor.tail.p`). Each in `[0, 0.5)`.
    pub winsor_tail_p: [f64; 2],
}

impl Default for SqueezeVarOptions {
    fn default() -> Self {
        SqueezeVarOptions {
            robust: false,
            winsor_tail_p: [0.05, 0.1],
        }
    }
}

impl SqueezeVarOptions {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        for &w in &self.winsor_tail_p {
            if !(0.0..0.5).contains(&w) {
                return Err(Error::option(
                    "winsor_tail_p",
                    format!("each tail proportion must be in [0, 0.5), got {w}"),
                ));
            }
        }
        Ok(())
    }
}

/// Result of [`squeeze_var`].
#[derive(Debug, Clone, PartialEq)]
pub struct SqueezeVar {
    /// Prior degrees of freedom `d0` of each feature (one value repeated unless robust);
    /// `inf` when the variances are no more dispersed than the sampling distribution implies.
    pub df_prior: Vec<f64>,
    /// Prior variance `s0^2` of each feature (one value repeated unless a covariate is given).
    pub var_prior: Vec<f64>,
    /// Posterior variances `(d s^2 + d0 s0^2) / (d + d0)` (`s0^2` when `d0 = inf`).
    pub var_post: Vec<f64>,
}

/// Empirical Bayes moderation of sample variances `var` with `df` degrees of freedom
/// (limma's `squeezeVar`; see the module documentation for the formulas). `covariate`, when
/// given, makes the prior variance a smooth function of it (limma's `trend`).
pub fn squeeze_var(
    var: &[f64],
    df: &[f64],
    covariate: Option<&[f64]>,
    opts: &SqueezeVarOptions,
) -> Result<SqueezeVar> {
    opts.validate()?;
    let n = var.len();
    if n == 0 {
        return Err(Error::data("squeeze_var", "no variances"));
    }
    if df.len() != n {
        return Err(Error::data(
            "squeeze_var",
            format!("{n} variances but {} degrees of freedom", df.len()),
        ));
    }
    if let Some(c) = covariate {
        if c.len() != n {
            return Err(Error::data(
                "squeeze_var",
                format!("{n} variances but {} covariate values", c.len()),
            ));
        }
        if let Some(i) = c.iter().position(|v| !v.is_finite()) {
            return Err(Error::data(
                "squeeze_var",
                format!("covariate of feature {i} is not finite"),
            ));
        }
    }
    if let Some(i) = df.iter().position(|v| v.is_nan() || *v < 0.0) {
        return Err(Error::data(
            "squeeze_var",
            format!("degrees of freedom of feature {i} is {}", df[i]),
        ));
    }
    if n == 1 {
        return Ok(SqueezeVar {
            df_prior: vec![0.0],
            var_prior: var.to_vec(),
            var_post: var.to_vec(),
        });
    }
    let mut var = var.to_vec();
    for (v, &d) in var.iter_mut().zip(df) {
        if d == 0.0 {
            *v = 0.0;
        }
    }
    let (scale, df_prior) = if opts.robust {
        if covariate.is_some() {
            return Err(Error::option(
                "robust",
                "robust estimation together with a trend is not implemented",
            ));
        }
        let f = fit_f_dist_robustly(&var, df, opts.winsor_tail_p)?;
        (vec![f.scale; n], f.df2_shrunk)
    } else {
        let f = fit_f_dist(&var, df, covariate)?;
        (f.scale, vec![f.df2; n])
    };
    if df_prior.iter().any(|d| d.is_nan()) {
        return Err(Error::data(
            "squeeze_var",
            "could not estimate the prior df",
        ));
    }
    let var_post = (0..n)
        .map(|i| {
            let d0 = df_prior[i];
            if d0.is_finite() {
                (df[i] * var[i] + d0 * scale[i]) / (df[i] + d0)
            } else {
                scale[i]
            }
        })
        .collect();
    Ok(SqueezeVar {
        df_prior,
        var_prior: scale,
        var_post,
    })
}

/// A scaled F distribution fitted to variances: `x ~ scale F(df1, df2)`.
pub(super) struct FDistFit {
    /// Per-feature scale (one value repeated without a covariate).
    pub(super) scale: Vec<f64>,
    pub(super) df2: f64,
}

/// limma's `fitFDist`: moment estimation of `scale` and `df2` from `log x`.
pub(super) fn fit_f_dist(x: &[f64], df1: &[f64], covariate: Option<&[f64]>) -> Result<FDistFit> {
    let n = x.len();
    if n == 1 {
        return Ok(FDistFit {
            scale: x.to_vec(),
            df2: 0.0,
        });
    }
    let ok: Vec<bool> = (0..n)
        .map(|i| df1[i].is_finite() && df1[i] > 1e-15 && x[i].is_finite() && x[i] > -1e-15)
        .collect();
    let nok = ok.iter().filter(|&&o| o).count();
    if nok == 0 {
        return Err(Error::data(
            "squeeze_var",
            "no feature has a finite variance and positive degrees of freedom",
        ));
    }
    let idx: Vec<usize> = (0..n).filter(|&i| ok[i]).collect();
    if nok == 1 {
        return Ok(FDistFit {
            scale: vec![x[idx[0]]; n],
            df2: 0.0,
        });
    }
    let mut xs: Vec<f64> = idx.iter().map(|&i| x[i].max(0.0)).collect();
    let d1: Vec<f64> = idx.iter().map(|&i| df1[i]).collect();
    let mut spline = None;
    if let Some(cov) = covariate {
        let cov_ok: Vec<f64> = idx.iter().map(|&i| cov[i]).collect();
        let mut splinedf =
            1 + usize::from(nok >= 3) + usize::from(nok >= 6) + usize::from(nok >= 30);
        let mut uniq = cov_ok.clone();
        uniq.sort_by(f64::total_cmp);
        uniq.dedup();
        splinedf = splinedf.min(uniq.len());
        if splinedf >= 2 {
            spline = Some((NaturalSpline::new(&cov_ok, splinedf), cov_ok));
        }
    }
    let m = median(&xs);
    let m = if m == 0.0 { 1.0 } else { m };
    for v in xs.iter_mut() {
        *v = v.max(1e-5 * m);
    }
    let e: Vec<f64> = xs
        .iter()
        .zip(&d1)
        .map(|(v, d)| v.ln() - digamma(d / 2.0) + (d / 2.0).ln())
        .collect();
    let (emean, evar): (Vec<f64>, f64) = match &spline {
        None => {
            let mean = e.iter().sum::<f64>() / nok as f64;
            let var = e.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (nok - 1) as f64;
            (vec![mean; n], var)
        }
        Some((ns, cov_ok)) => {
            let basis = ns.basis(cov_ok);
            let (fitted, coef, rss, rank) = least_squares(&basis, &e)?;
            let mut emean = vec![0.0; n];
            let cov = covariate.unwrap_or(&[]);
            let mut k = 0;
            for i in 0..n {
                if ok[i] {
                    emean[i] = fitted[k];
                    k += 1;
                } else {
                    let row = ns.basis(&[cov[i]]);
                    emean[i] = row.row(0).iter().zip(&coef).map(|(a, b)| a * b).sum();
                }
            }
            let resid_df = nok.saturating_sub(rank);
            let var = if resid_df > 0 {
                rss / resid_df as f64
            } else {
                f64::NAN
            };
            (emean, var)
        }
    };
    let evar = evar - d1.iter().map(|d| trigamma(d / 2.0)).sum::<f64>() / nok as f64;
    if evar > 0.0 {
        let df2 = 2.0 * trigamma_inverse(evar);
        let adj = digamma(df2 / 2.0) - (df2 / 2.0).ln();
        Ok(FDistFit {
            scale: emean.iter().map(|m| (m + adj).exp()).collect(),
            df2,
        })
    } else {
        let scale = if spline.is_some() {
            emean.iter().map(|m| m.exp()).collect()
        } else {
            vec![xs.iter().sum::<f64>() / nok as f64; n]
        };
        Ok(FDistFit {
            scale,
            df2: f64::INFINITY,
        })
    }
}

/// Least squares of `y` on the columns of `x` (full rank assumed by construction): fitted
/// values, coefficients, residual sum of squares and rank.
fn least_squares(x: &Array2<f64>, y: &[f64]) -> Result<(Vec<f64>, Vec<f64>, f64, usize)> {
    let qr = Qr::new(x.view(), "squeeze_var trend")?;
    let mut eff = y.to_vec();
    qr.qt_apply(&mut eff);
    let p = x.ncols();
    let mut b = vec![0.0; p];
    qr.solve_r(&eff, &mut b);
    let fitted: Vec<f64> = x
        .rows()
        .into_iter()
        .map(|r| r.iter().zip(&b).map(|(a, c)| a * c).sum())
        .collect();
    let rss = eff[p..].iter().map(|v| v * v).sum();
    Ok((fitted, b, rss, p))
}

/// Natural cubic spline basis with an intercept, knots as R's `splines::ns(x, df, intercept =
/// TRUE)`: boundary knots at the range of `x`, `df - 2` interior knots at its quantiles
/// `k / (df - 1)` (type 7). The basis differs from `ns`'s B-spline basis but spans the same
/// space, so fitted values agree. Truncated-power form (Hastie, Tibshirani and Friedman, *The
/// Elements of Statistical Learning*, eq. 5.4-5.5) on `x` rescaled to `[0, 1]`.
struct NaturalSpline {
    knots: Vec<f64>,
    lo: f64,
    width: f64,
}

impl NaturalSpline {
    fn new(x: &[f64], df: usize) -> NaturalSpline {
        let mut sorted = x.to_vec();
        sorted.sort_by(f64::total_cmp);
        let lo = sorted[0];
        let hi = sorted[sorted.len() - 1];
        let width = if hi > lo { hi - lo } else { 1.0 };
        let n_interior = df - 2;
        let mut knots = Vec::with_capacity(df);
        knots.push(0.0);
        for k in 1..=n_interior {
            let q = quantile_sorted(&sorted, k as f64 / (n_interior + 1) as f64);
            knots.push((q - lo) / width);
        }
        knots.push((hi - lo) / width);
        NaturalSpline { knots, lo, width }
    }

    fn basis(&self, x: &[f64]) -> Array2<f64> {
        let k = self.knots.len();
        let mut out = Array2::zeros((x.len(), k));
        let last = self.knots[k - 1];
        let d = |u: f64, j: usize| -> f64 {
            let c = |v: f64| if v > 0.0 { v * v * v } else { 0.0 };
            (c(u - self.knots[j]) - c(u - last)) / (last - self.knots[j])
        };
        for (i, &xv) in x.iter().enumerate() {
            let u = (xv - self.lo) / self.width;
            out[[i, 0]] = 1.0;
            out[[i, 1]] = u;
            for j in 0..k.saturating_sub(2) {
                out[[i, j + 2]] = d(u, j) - d(u, k - 2);
            }
        }
        out
    }
}
