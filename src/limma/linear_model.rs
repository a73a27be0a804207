//! The per-feature linear model: least-squares fits of one design to every feature
//! ([`lm_fit`], limma's `lm.series`) and their re-expression as contrasts ([`contrasts_fit`],
//! limma's `contrasts.fit`).

use super::qr::Qr;
use crate::error::{Error, Result};
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
pub(super) fn cov2cor(v: &Array2<f64>) -> Array2<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limma::close;

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
}
