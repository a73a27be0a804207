//! Linear models with empirical Bayes moderated t and F statistics, as the limma package
//! (Smyth 2004, "Linear models and empirical Bayes methods for assessing differential
//! expression in microarray experiments", *Stat. Appl. Genet. Mol. Biol.* 3(1), article 3;
//! Phipson et al. 2016, "Robust hyperparameter estimation protects against hypervariable genes
//! and improves power to detect differential expression", *Ann. Appl. Stat.* 10(2)). The
//! formulas follow limma 3.54.1's R code (`lm.series`, `contrasts.fit`, `eBayes`, `squeezeVar`,
//! `fitFDist`, `fitFDistRobustly`, `trigammaInverse`, `classifyTestsF`).
//!
//! - [`lm_fit`]: per feature (row of `y`), the least-squares fit `y = X b + e` of the design `X`
//!   (samples x coefficients, full column rank) through one Householder QR of `X`; `sigma^2 =
//!   RSS / (n - p)`, `stdev_unscaled_j = sqrt((X'X)^-1_jj)`, `cov_coefficients = (X'X)^-1`.
//! - [`contrasts_fit`]: coefficients `B C`, `cov = C' V C`, and `stdev_unscaled` from the
//!   coefficients' correlation matrix (the plain `sqrt(s^2 C^2)` when they are orthogonal).
//! - [`squeeze_var`]: the prior `s0^2, d0` of the scaled inverse chi-square model
//!   `1/sigma^2 ~ chi^2_d0 / (d0 s0^2)` fitted to the sample variances by moments of
//!   `log s^2` (`fitFDist`): with `e = log s^2 - digamma(d/2) + log(d/2)`,
//!   `trigamma(d0/2) = var(e) - mean(trigamma(d/2))` (no solution: `d0 = inf`),
//!   `s0^2 = exp(mean(e) + digamma(d0/2) - log(d0/2))`; posterior
//!   `s~^2 = (d s^2 + d0 s0^2) / (d + d0)`. With `trend`, `mean(e)` is a natural cubic spline
//!   regression on the features' mean (`Amean`), so `s0^2` depends on the feature. With
//!   `robust`, the Winsorized fit of Phipson et al. 2016 (`fitFDistRobustly`) gives each
//!   feature its own `d0` (outlier variances get a smaller one).
//! - [`ebayes`]: moderated `t = b / (stdev_unscaled s~)` on `df_total = min(d + d0,
//!   sum(d))` degrees of freedom, two-sided p-values, and the moderated F statistic over all
//!   coefficients (`classifyTestsF`: `F = t' R^+ t / r` with `R` the coefficients' correlation
//!   and `r` its rank) on `(r, d + d0)` degrees of freedom.
//!
//! Differences from limma: no missing values or observation weights (NaN is an error), no
//! duplicate spots or blocks, the design must have full column rank (limma drops aliased
//! coefficients), B-statistics (log-odds) are not computed; `robust` together with `trend`
//! is not implemented (limma uses a lowess trend there).

use crate::error::{Error, Result};
use crate::special::zeroin;
pub use crate::special::{digamma, tetragamma, trigamma, trigamma_inverse};
use crate::stats;
pub use crate::stats::f_sf;
use crate::stats::{average_ranks, f_density, f_quantile, median, order, quantile_sorted};
use ndarray::{Array2, ArrayView2};

/// A linear model fitted to every feature ([`lm_fit`]) or its contrasts ([`contrasts_fit`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LmFit {
    /// Estimated coefficients (or contrasts), features x coefficients.
    pub coefficients: Array2<f64>,
    /// Unscaled standard errors: the standard error of a coefficient is `stdev_unscaled *
    /// sigma`. Features x coefficients.
    pub stdev_unscaled: Array2<f64>,
    /// Residual standard deviation of each feature (`NaN` when `df_residual` is 0).
    pub sigma: Vec<f64>,
    /// Residual degrees of freedom of each feature, `n_samples - n_coefficients`.
    pub df_residual: Vec<f64>,
    /// Unscaled covariance of the coefficients, `(X'X)^-1` (after contrasts `C' (X'X)^-1 C`).
    pub cov_coefficients: Array2<f64>,
    /// Mean of each feature over the samples (the covariate of the `trend` option).
    pub amean: Vec<f64>,
}

impl LmFit {
    /// Number of features (rows).
    pub fn n_features(&self) -> usize {
        self.coefficients.nrows()
    }

    /// Number of coefficients or contrasts (columns).
    pub fn n_coefficients(&self) -> usize {
        self.coefficients.ncols()
    }
}

/// Householder QR of a tall matrix (column-major copy), enough for small designs.
struct Qr {
    n: usize,
    p: usize,
    /// Householder vectors, column k in `v[k]` (length n, zero above k).
    v: Vec<Vec<f64>>,
    /// Upper-triangular R, row-major p x p.
    r: Vec<f64>,
}

impl Qr {
    /// Factorises `x` (n x p). Errors when a column is (numerically) a linear combination of
    /// the previous ones (relative tolerance 1e-7 on the column norm, as R's `lm.fit`).
    fn new(x: ArrayView2<f64>, context: &str) -> Result<Qr> {
        let (n, p) = x.dim();
        let mut a: Vec<Vec<f64>> = (0..p).map(|j| x.column(j).to_vec()).collect();
        let norms: Vec<f64> = a
            .iter()
            .map(|c| c.iter().map(|v| v * v).sum::<f64>().sqrt())
            .collect();
        let mut v = Vec::with_capacity(p);
        let mut r = vec![0.0; p * p];
        for k in 0..p {
            let col = &a[k];
            let alpha_norm = col[k..].iter().map(|t| t * t).sum::<f64>().sqrt();
            if alpha_norm.is_nan() || alpha_norm <= 1e-7 * norms[k] || norms[k] == 0.0 {
                return Err(Error::data(
                    context,
                    format!(
                        "design matrix is not of full column rank: column {k} is a linear \
                         combination of the columns before it (or zero)"
                    ),
                ));
            }
            let alpha = if col[k] > 0.0 {
                -alpha_norm
            } else {
                alpha_norm
            };
            let mut hv = vec![0.0; n];
            hv[k] = col[k] - alpha;
            hv[(k + 1)..n].copy_from_slice(&col[(k + 1)..n]);
            let hn2: f64 = hv[k..].iter().map(|t| t * t).sum();
            // Apply H = I - 2 v v' / (v'v) to the remaining columns.
            for col in a.iter_mut().skip(k) {
                let dot: f64 = (k..n).map(|i| hv[i] * col[i]).sum();
                let f = 2.0 * dot / hn2;
                for i in k..n {
                    col[i] -= f * hv[i];
                }
            }
            for (j, col) in a.iter().enumerate().skip(k) {
                r[k * p + j] = col[k];
            }
            // Normalise so that H = I - 2 u u' with |u| = 1.
            let s = hn2.sqrt();
            for t in hv.iter_mut() {
                *t /= s;
            }
            v.push(hv);
        }
        Ok(Qr { n, p, v, r })
    }

    /// Replaces `y` (length n) by `Q' y` (the "effects" of R's `lm.fit`).
    fn qt_apply(&self, y: &mut [f64]) {
        for (k, u) in self.v.iter().enumerate() {
            let dot: f64 = (k..self.n).map(|i| u[i] * y[i]).sum();
            for i in k..self.n {
                y[i] -= 2.0 * dot * u[i];
            }
        }
    }

    /// Solves `R b = e[..p]` by back substitution.
    fn solve_r(&self, e: &[f64], b: &mut [f64]) {
        let p = self.p;
        for i in (0..p).rev() {
            let s: f64 = self.r[(i * p + i + 1)..((i + 1) * p)]
                .iter()
                .zip(&b[(i + 1)..p])
                .map(|(r, x)| r * x)
                .sum();
            b[i] = (e[i] - s) / self.r[i * p + i];
        }
    }

    /// `(R'R)^-1 = R^-1 R^-T` (R's `chol2inv`), p x p.
    fn chol2inv(&self) -> Array2<f64> {
        let p = self.p;
        // Rinv: upper triangular inverse of R.
        let mut rinv = vec![0.0; p * p];
        for j in 0..p {
            rinv[j * p + j] = 1.0 / self.r[j * p + j];
            for i in (0..j).rev() {
                let mut s = 0.0;
                for k in (i + 1)..=j {
                    s += self.r[i * p + k] * rinv[k * p + j];
                }
                rinv[i * p + j] = -s / self.r[i * p + i];
            }
        }
        let mut out = Array2::zeros((p, p));
        for i in 0..p {
            for j in 0..p {
                let mut s = 0.0;
                for k in i.max(j)..p {
                    s += rinv[i * p + k] * rinv[j * p + k];
                }
                out[[i, j]] = s;
            }
        }
        out
    }
}

/// Fits the linear model `y_g = X b_g + e_g` to every feature `g` (limma's `lmFit` by least
/// squares, `lm.series` without weights).
///
/// `y` is features x samples, `design` samples x coefficients with full column rank. With
/// `Q R = X`, the effects are `Q' y`; `b = R^-1 (Q'y)[..p]` and `sigma^2` is the mean square
/// of the last `n - p` effects (`NaN` when `n = p`).
pub fn lm_fit(y: ArrayView2<f64>, design: ArrayView2<f64>) -> Result<LmFit> {
    let (n_features, n_samples) = y.dim();
    let (n_rows, p) = design.dim();
    if n_features == 0 {
        return Err(Error::data(
            "lm_fit",
            "the data matrix has no features (rows)",
        ));
    }
    if n_rows != n_samples {
        return Err(Error::data(
            "lm_fit",
            format!("design has {n_rows} rows but the data have {n_samples} samples (columns)"),
        ));
    }
    if p == 0 {
        return Err(Error::data("lm_fit", "design has no columns"));
    }
    if n_samples < p {
        return Err(Error::data(
            "lm_fit",
            format!("{n_samples} samples cannot estimate {p} coefficients"),
        ));
    }
    if let Some(((i, j), _)) = design.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::data(
            "lm_fit",
            format!("design[{i}, {j}] is not a finite number"),
        ));
    }
    if let Some(((g, s), v)) = y.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::data(
            "lm_fit",
            format!("feature {g}, sample {s}: value {v} is not a finite number"),
        ));
    }
    let qr = Qr::new(design, "lm_fit")?;
    let cov = qr.chol2inv();
    let stdev: Vec<f64> = (0..p).map(|j| cov[[j, j]].sqrt()).collect();
    let df = (n_samples - p) as f64;
    let mut coefficients = Array2::zeros((n_features, p));
    let mut stdev_unscaled = Array2::zeros((n_features, p));
    let mut sigma = vec![f64::NAN; n_features];
    let mut amean = vec![0.0; n_features];
    let mut buf = vec![0.0; n_samples];
    let mut b = vec![0.0; p];
    for g in 0..n_features {
        for (t, v) in buf.iter_mut().zip(y.row(g)) {
            *t = *v;
        }
        amean[g] = buf.iter().sum::<f64>() / n_samples as f64;
        qr.qt_apply(&mut buf);
        qr.solve_r(&buf, &mut b);
        for j in 0..p {
            coefficients[[g, j]] = b[j];
            stdev_unscaled[[g, j]] = stdev[j];
        }
        if n_samples > p {
            let ss: f64 = buf[p..].iter().map(|e| e * e).sum();
            sigma[g] = (ss / df).sqrt();
        }
    }
    Ok(LmFit {
        coefficients,
        stdev_unscaled,
        sigma,
        df_residual: vec![df; n_features],
        cov_coefficients: cov,
        amean,
    })
}

/// Re-expresses a fit in terms of contrasts of its coefficients (limma's `contrasts.fit`).
///
/// `contrasts` is coefficients x contrasts; each column gives the weights of one contrast.
/// New coefficients `B C`, `cov = C' V C`; the unscaled standard error of contrast `c` for a
/// feature with unscaled standard errors `s` is `sqrt(c' diag(s) R diag(s) c)` with `R` the
/// coefficients' correlation matrix (`sqrt(sum s_j^2 c_j^2)` when the coefficients are
/// orthogonal, as limma decides with the tolerance 1e-14). Selecting coefficients is a
/// contrast matrix with one 1 per column (limma's `fit[, j]`).
pub fn contrasts_fit(fit: &LmFit, contrasts: ArrayView2<f64>) -> Result<LmFit> {
    let p = fit.n_coefficients();
    let (rows, q) = contrasts.dim();
    if rows != p {
        return Err(Error::data(
            "contrasts_fit",
            format!("the contrast matrix has {rows} rows but the fit has {p} coefficients"),
        ));
    }
    if q == 0 {
        return Err(Error::data(
            "contrasts_fit",
            "the contrast matrix has no columns",
        ));
    }
    if fit.cov_coefficients.dim() != (p, p) || fit.stdev_unscaled.dim() != fit.coefficients.dim() {
        return Err(Error::data(
            "contrasts_fit",
            "the fit's coefficients, stdev_unscaled and cov_coefficients disagree in shape",
        ));
    }
    if let Some(((i, j), _)) = contrasts.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::data(
            "contrasts_fit",
            format!("contrasts[{i}, {j}] is not a finite number"),
        ));
    }
    let v = &fit.cov_coefficients;
    let cor = cov2cor(v);
    let mut orthog = true;
    for i in 0..p {
        for j in 0..i {
            if cor[[i, j]].is_nan() || cor[[i, j]].abs() >= 1e-14 {
                orthog = false;
            }
        }
    }
    let coefficients = fit.coefficients.dot(&contrasts);
    let cov_new = contrasts.t().dot(v).dot(&contrasts);
    let n = fit.n_features();
    let mut stdev_unscaled = Array2::zeros((n, q));
    for g in 0..n {
        let s = fit.stdev_unscaled.row(g);
        for c in 0..q {
            let col = contrasts.column(c);
            let var = if orthog {
                (0..p).map(|j| s[j] * s[j] * col[j] * col[j]).sum::<f64>()
            } else {
                let mut acc = 0.0;
                for a in 0..p {
                    for b in 0..p {
                        acc += col[a] * s[a] * cor[[a, b]] * s[b] * col[b];
                    }
                }
                acc
            };
            stdev_unscaled[[g, c]] = var.max(0.0).sqrt();
        }
    }
    Ok(LmFit {
        coefficients,
        stdev_unscaled,
        sigma: fit.sigma.clone(),
        df_residual: fit.df_residual.clone(),
        cov_coefficients: cov_new,
        amean: fit.amean.clone(),
    })
}

/// R's `cov2cor`, with zero variances treated as 1 (as `classifyTestsF`).
fn cov2cor(v: &Array2<f64>) -> Array2<f64> {
    let p = v.nrows();
    let d: Vec<f64> = (0..p)
        .map(|i| {
            let x = v[[i, i]];
            if x == 0.0 {
                1.0
            } else {
                x.sqrt()
            }
        })
        .collect();
    let mut out = v.clone();
    for i in 0..p {
        for j in 0..p {
            out[[i, j]] = v[[i, j]] / (d[i] * d[j]);
        }
        out[[i, i]] = 1.0;
    }
    out
}

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
struct FDistFit {
    /// Per-feature scale (one value repeated without a covariate).
    scale: Vec<f64>,
    df2: f64,
}

/// limma's `fitFDist`: moment estimation of `scale` and `df2` from `log x`.
fn fit_f_dist(x: &[f64], df1: &[f64], covariate: Option<&[f64]>) -> Result<FDistFit> {
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

// ---------------------------------------------------------------------------------------------
// Robust prior (limma's fitFDistRobustly)
// ---------------------------------------------------------------------------------------------

struct RobustFit {
    scale: f64,
    df2: f64,
    df2_shrunk: Vec<f64>,
}

/// limma's `fitFDistRobustly` without a covariate (Phipson et al. 2016): Winsorized moments of
/// `log x` matched to those of a Winsorized `log F(df1, df2)` (Gauss-Legendre quadrature with
/// 128 nodes, root by Brent's method as R's `uniroot` with `tol = 1e-8`), then per-feature
/// shrunk `df2` from the outlier probabilities.
fn fit_f_dist_robustly(x: &[f64], df1: &[f64], winsor: [f64; 2]) -> Result<RobustFit> {
    let n = x.len();
    if n == 2 {
        let f = fit_f_dist(x, df1, None)?;
        return Ok(RobustFit {
            scale: f.scale[0],
            df2: f.df2,
            df2_shrunk: vec![f.df2; n],
        });
    }
    let ok: Vec<bool> = (0..n)
        .map(|i| !x[i].is_nan() && df1[i].is_finite() && df1[i] > 1e-6)
        .collect();
    if ok.iter().any(|o| !o) {
        // limma refits on the usable features; those left out get the unshrunk df2.
        let idx: Vec<usize> = (0..n).filter(|&i| ok[i]).collect();
        if idx.len() < 2 {
            return Err(Error::data(
                "squeeze_var",
                "fewer than two features with usable variances for the robust fit",
            ));
        }
        let xs: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
        let ds: Vec<f64> = idx.iter().map(|&i| df1[i]).collect();
        let sub = fit_f_dist_robustly(&xs, &ds, winsor)?;
        let mut df2_shrunk = vec![sub.df2; n];
        for (k, &i) in idx.iter().enumerate() {
            df2_shrunk[i] = sub.df2_shrunk[k];
        }
        return Ok(RobustFit {
            scale: sub.scale,
            df2: sub.df2,
            df2_shrunk,
        });
    }
    robust_core(x, df1, winsor).map(|(scale, df2, df2_shrunk)| RobustFit {
        scale,
        df2,
        df2_shrunk,
    })
}

/// The robust fit on usable features: returns `(scale, df2, df2_shrunk)`.
fn robust_core(x: &[f64], df1: &[f64], winsor: [f64; 2]) -> Result<(f64, f64, Vec<f64>)> {
    let n = x.len();
    let nf = n as f64;
    let df1v = df1[0];
    if df1
        .iter()
        .any(|&d| (d - df1v).abs() > 1e-14 * df1v.abs().max(1.0))
    {
        return Err(Error::data(
            "squeeze_var",
            "robust estimation needs equal residual degrees of freedom for every feature",
        ));
    }
    let m = median(x);
    if m.is_nan() || m <= 0.0 {
        return Err(Error::data(
            "squeeze_var",
            "robust estimation: most variances are zero or negative",
        ));
    }
    let x: Vec<f64> = x
        .iter()
        .map(|&v| if v < m * 1e-12 { m * 1e-12 } else { v })
        .collect();
    let nonrobust = fit_f_dist(&x, df1, None)?;
    let nr_scale = nonrobust.scale[0];
    if winsor.iter().all(|&w| w < 1.0 / nf) {
        return Ok((nr_scale, nonrobust.df2, vec![nonrobust.df2; n]));
    }
    let z: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ztrend = trimmed_mean(&z, winsor[1]);
    let zresid: Vec<f64> = z.iter().map(|v| v - ztrend).collect();
    let mut sorted = zresid.clone();
    sorted.sort_by(f64::total_cmp);
    let q_lo = quantile_sorted(&sorted, winsor[0]);
    let q_hi = quantile_sorted(&sorted, 1.0 - winsor[1]);
    let zwins: Vec<f64> = zresid.iter().map(|v| v.max(q_lo).min(q_hi)).collect();
    let zwmean = zwins.iter().sum::<f64>() / nf;
    let zwvar = zwins
        .iter()
        .map(|v| (v - zwmean) * (v - zwmean))
        .sum::<f64>()
        / nf
        * nf
        / (nf - 1.0);
    let gl = gauss_legendre_unit(128);
    let moments = |df2: f64| winsorized_moments(df1v, df2, winsor, &gl);
    let mom_inf = moments(f64::INFINITY);
    let funval_inf = (zwvar / mom_inf.1).ln();
    let rank = average_ranks(&z);
    if funval_inf <= 0.0 {
        let ztc = ztrend + zwmean - mom_inf.0;
        let s20 = ztc.exp();
        let df_pooled = nf * df1v;
        let tail_p: Vec<f64> = z
            .iter()
            .map(|zi| stats::gamma_q(df1v / 2.0, (zi - ztc).exp() * df1v / 2.0))
            .collect();
        let mut shrunk = vec![f64::INFINITY; n];
        let mut any = false;
        for i in 0..n {
            let emp = (nf - rank[i] + 0.5) / nf;
            let pno = (tail_p[i] / emp).min(1.0);
            if pno < 1.0 {
                shrunk[i] = pno * df_pooled;
                any = true;
            }
        }
        if any {
            let o = order(&tail_p);
            let mut run = f64::NEG_INFINITY;
            for &i in &o {
                run = run.max(shrunk[i]);
                shrunk[i] = run;
            }
        }
        return Ok((s20, f64::INFINITY, shrunk));
    }
    if nonrobust.df2.is_infinite() {
        return Ok((nr_scale, nonrobust.df2, vec![nonrobust.df2; n]));
    }
    let linkfun = |v: f64| v / (1.0 + v);
    let linkinv = |v: f64| v / (1.0 - v);
    let fun = |u: f64| (zwvar / moments(linkinv(u)).1).ln();
    let rbx = linkfun(nonrobust.df2);
    let funval_low = fun(rbx);
    let df2 = if funval_low >= 0.0 {
        nonrobust.df2
    } else {
        linkinv(zeroin(rbx, 1.0, funval_low, funval_inf, fun, 1e-8, 1000))
    };
    let mom = moments(df2);
    let ztc = ztrend + zwmean - mom.0;
    let s20 = ztc.exp();
    let fstat: Vec<f64> = z.iter().map(|zi| (zi - ztc).exp()).collect();
    let log_tail_p: Vec<f64> = fstat.iter().map(|&f| f_sf(f, df1v, df2).ln()).collect();
    let rank_f = average_ranks(&fstat);
    let log_pno: Vec<f64> = (0..n)
        .map(|i| (log_tail_p[i] - ((nf - rank_f[i] + 0.5).ln() - nf.ln())).min(0.0))
        .collect();
    if log_pno.iter().any(|&v| v < 0.0) {
        let min_log_tail = log_tail_p.iter().copied().fold(f64::INFINITY, f64::min);
        let mut shrunk: Vec<f64>;
        if min_log_tail == f64::NEG_INFINITY {
            shrunk = log_pno.iter().map(|l| l.exp() * df2).collect();
        } else {
            let mut df2_out = 0.5f64.ln() / min_log_tail * df2;
            let fmax = fstat.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let new_log_tail = f_sf(fmax, df1v, df2_out).ln();
            df2_out *= 0.5f64.ln() / new_log_tail;
            shrunk = log_pno
                .iter()
                .map(|&l| l.exp() * df2 + (-l.exp_m1()) * df2_out)
                .collect();
        }
        let o = order(&log_tail_p);
        let mut ordered: Vec<f64> = o.iter().map(|&i| shrunk[i]).collect();
        let mut cum = 0.0;
        let mut imin = 0;
        let mut best = f64::INFINITY;
        for (k, v) in ordered.iter().enumerate() {
            cum += v;
            let mean = cum / (k + 1) as f64;
            if mean < best {
                best = mean;
                imin = k;
            }
        }
        for v in ordered.iter_mut().take(imin + 1) {
            *v = best;
        }
        let mut run = f64::NEG_INFINITY;
        for (k, &i) in o.iter().enumerate() {
            run = run.max(ordered[k]);
            shrunk[i] = run;
        }
        Ok((s20, df2, shrunk))
    } else {
        Ok((s20, df2, vec![df2; n]))
    }
}

/// Mean and variance of `log F(df1, df2)` Winsorized at the `winsor[0]` and `1 - winsor[1]`
/// quantiles (limma's `winsorizedMoments`).
fn winsorized_moments(
    df1: f64,
    df2: f64,
    winsor: [f64; 2],
    gl: &(Vec<f64>, Vec<f64>),
) -> (f64, f64) {
    let fq = [
        f_quantile(winsor[0], df1, df2),
        f_quantile(1.0 - winsor[1], df1, df2),
    ];
    let zq = [fq[0].ln(), fq[1].ln()];
    let q = [fq[0] / (1.0 + fq[0]), fq[1] / (1.0 + fq[1])];
    let q21 = q[1] - q[0];
    let (nodes, weights) = gl;
    let mut fz = Vec::with_capacity(nodes.len());
    for &g in nodes {
        let node = q[0] + q21 * g;
        let fnode = node / (1.0 - node);
        let f = f_density(fnode, df1, df2) / ((1.0 - node) * (1.0 - node));
        fz.push((f, fnode.ln()));
    }
    let m = q21
        * weights
            .iter()
            .zip(&fz)
            .map(|(w, (f, z))| w * f * z)
            .sum::<f64>()
        + zq[0] * winsor[0]
        + zq[1] * winsor[1];
    let v = q21
        * weights
            .iter()
            .zip(&fz)
            .map(|(w, (f, z))| w * f * (z - m) * (z - m))
            .sum::<f64>()
        + (zq[0] - m) * (zq[0] - m) * winsor[0]
        + (zq[1] - m) * (zq[1] - m) * winsor[1];
    (m, v)
}

/// Gauss-Legendre nodes and weights on `[0, 1]` (weights sum to 1), as statmod's
/// `gauss.quad.prob(n, dist = "uniform")`.
fn gauss_legendre_unit(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    let nf = n as f64;
    for i in 0..n.div_ceil(2) {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let kf = k as f64;
                let p2 = ((2.0 * kf - 1.0) * x * p1 - (kf - 1.0) * p0) / kf;
                p0 = p1;
                p1 = p2;
            }
            dp = nf * (x * p1 - p0) / (x * x - 1.0);
            let dx = p1 / dp;
            x -= dx;
            if dx.abs() < 1e-16 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        nodes[i] = (1.0 - x) / 2.0;
        nodes[n - 1 - i] = (1.0 + x) / 2.0;
        weights[i] = w / 2.0;
        weights[n - 1 - i] = w / 2.0;
    }
    (nodes, weights)
}

/// R's trimmed mean `mean(x, trim)`.
fn trimmed_mean(x: &[f64], trim: f64) -> f64 {
    let n = x.len();
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    if trim >= 0.5 {
        return median(x);
    }
    let lo = (n as f64 * trim).floor() as usize;
    let hi = n - lo;
    s[lo..hi].iter().sum::<f64>() / (hi - lo) as f64
}

// ---------------------------------------------------------------------------------------------
// eBayes
// ---------------------------------------------------------------------------------------------

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

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs())
    }

    #[test]
    fn lm_fit_simple_regression() {
        // y = 1 + 2 x + e with residuals e = (1, -1, -1, 1): RSS = 4 on 2 df.
        let x = [0.0, 1.0, 2.0, 3.0];
        let e = [1.0, -1.0, -1.0, 1.0];
        let y = Array2::from_shape_fn((1, 4), |(_, s)| 1.0 + 2.0 * x[s] + e[s]);
        let design = Array2::from_shape_fn((4, 2), |(s, j)| if j == 0 { 1.0 } else { x[s] });
        let fit = lm_fit(y.view(), design.view()).unwrap();
        assert!(close(fit.coefficients[[0, 0]], 1.0, 1e-12));
        assert!(close(fit.coefficients[[0, 1]], 2.0, 1e-12));
        assert!(close(fit.sigma[0], 2f64.sqrt(), 1e-12));
        assert_eq!(fit.df_residual, vec![2.0]);
        // (X'X)^-1 for x = 0..3: [[7/10, -3/10], [-3/10, 1/5]].
        assert!(close(fit.cov_coefficients[[0, 0]], 0.7, 1e-12));
        assert!(close(fit.cov_coefficients[[0, 1]], -0.3, 1e-12));
        assert!(close(fit.stdev_unscaled[[0, 1]], 0.2f64.sqrt(), 1e-12));
        assert!(close(fit.amean[0], 4.0, 1e-12));
    }

    #[test]
    fn quadrature() {
        let (nodes, weights) = gauss_legendre_unit(128);
        assert!(close(weights.iter().sum::<f64>(), 1.0, 1e-14));
        for k in [1, 5, 20, 60] {
            let s: f64 = nodes.iter().zip(&weights).map(|(x, w)| w * x.powi(k)).sum();
            assert!(close(s, 1.0 / (k as f64 + 1.0), 1e-13), "x^{k}");
        }
    }

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
