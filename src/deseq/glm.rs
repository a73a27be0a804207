//! The design matrix, small dense linear algebra, and the negative binomial GLM fit by
//! iteratively reweighted least squares (pydeseq2's `irls_solver`).
// Loops over the samples index several parallel arrays (counts, means, weights, rows of X),
// as the formulas do.
#![allow(clippy::needless_range_loop)]

use super::special::nb_nll;
use crate::error::{Error, Result};

/// Ridge added to the diagonal of `X^T W X` in every GLM solve (pydeseq2's `ridge_factor`).
pub(crate) const RIDGE: f64 = 1e-6;
/// Bound on the absolute value of a coefficient (natural log scale), as pydeseq2's
/// `min_beta` / `max_beta`.
const MAX_BETA: f64 = 30.0;
/// Iteration limit of IRLS, as pydeseq2's `maxiter`.
const MAX_ITER: usize = 250;

/// The design matrix `X` (samples x coefficients, row-major) with the constants every gene
/// shares.
#[derive(Debug, Clone)]
pub(crate) struct Design {
    /// Number of samples.
    pub n: usize,
    /// Number of coefficients (intercept, condition, covariates).
    pub p: usize,
    /// `X`, row-major `n x p`.
    pub x: Vec<f64>,
    /// `(X^T X)^-1 X^T`, row-major `p x n`: the least-squares coefficients of a response.
    pub ls: Vec<f64>,
    /// `X (X^T X)^-1 X^T`, row-major `n x n`: the least-squares fitted values.
    pub proj: Vec<f64>,
    /// Design cell (distinct row of `X`) of each sample, numbered in order of appearance.
    pub cell: Vec<usize>,
    /// Number of samples in each cell.
    pub cell_size: Vec<usize>,
}

impl Design {
    /// Builds `X = [1, condition, covariates...]`; an error when `X` has no full column rank
    /// or leaves no residual degree of freedom.
    pub fn new(condition: &[u32], covariates: Option<&ndarray::ArrayView2<f64>>) -> Result<Self> {
        let n = condition.len();
        let k = covariates.map_or(0, |c| c.ncols());
        let p = 2 + k;
        let mut x = vec![0.0; n * p];
        for j in 0..n {
            x[j * p] = 1.0;
            x[j * p + 1] = f64::from(condition[j]);
            if let Some(cov) = covariates {
                for (c, &v) in cov.row(j).iter().enumerate() {
                    x[j * p + 2 + c] = v;
                }
            }
        }
        if n <= p {
            return Err(Error::data(
                "deseq",
                format!(
                    "{n} samples for {p} design coefficients: no residual degree of freedom to \
                     estimate dispersions (DESeq2 needs replicates)"
                ),
            ));
        }
        let mut xtx = vec![0.0; p * p];
        gram(&x, n, p, None, &mut xtx);
        let mut inv = vec![0.0; p * p];
        if !cholesky(&mut xtx, p) || !rank_ok(&xtx, p) {
            return Err(Error::data(
                "deseq",
                "the design matrix [intercept, condition, covariates] is not of full column rank \
                 (a covariate is constant or repeats the condition or another covariate)",
            ));
        }
        chol_inverse(&xtx, p, &mut inv);
        let mut ls = vec![0.0; p * n];
        for a in 0..p {
            for j in 0..n {
                ls[a * n + j] = (0..p).map(|b| inv[a * p + b] * x[j * p + b]).sum();
            }
        }
        let mut proj = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                proj[i * n + j] = (0..p).map(|a| x[i * p + a] * ls[a * n + j]).sum();
            }
        }
        let mut cell = vec![0usize; n];
        let mut cell_size: Vec<usize> = Vec::new();
        let mut reps: Vec<usize> = Vec::new();
        for j in 0..n {
            let row = &x[j * p..(j + 1) * p];
            match reps.iter().position(|&r| &x[r * p..(r + 1) * p] == row) {
                Some(c) => {
                    cell[j] = c;
                    cell_size[c] += 1;
                }
                None => {
                    cell[j] = reps.len();
                    reps.push(j);
                    cell_size.push(1);
                }
            }
        }
        Ok(Design {
            n,
            p,
            x,
            ls,
            proj,
            cell,
            cell_size,
        })
    }

    /// Row `j` of `X`.
    #[inline]
    pub fn row(&self, j: usize) -> &[f64] {
        &self.x[j * self.p..(j + 1) * self.p]
    }

    /// `x_j . beta`.
    #[inline]
    pub fn eta(&self, j: usize, beta: &[f64]) -> f64 {
        self.row(j).iter().zip(beta).map(|(a, b)| a * b).sum()
    }

    /// Whether each sample lies in a design cell with at least `k` samples (pydeseq2's
    /// `n_or_more_replicates`).
    pub fn in_cell_of_at_least(&self, k: usize) -> Vec<bool> {
        self.cell.iter().map(|&c| self.cell_size[c] >= k).collect()
    }
}

/// Rejects a Cholesky factor whose pivots collapse relative to the largest one (a rank
/// deficient `X^T X` that rounding left barely positive).
fn rank_ok(l: &[f64], p: usize) -> bool {
    let d: Vec<f64> = (0..p).map(|i| l[i * p + i]).collect();
    let max = d.iter().copied().fold(0.0, f64::max);
    d.iter().all(|&v| v > max * 1e-7)
}

/// `out = X^T diag(w) X` (`w = None`: identity), row-major `p x p`.
pub(crate) fn gram(x: &[f64], n: usize, p: usize, w: Option<&[f64]>, out: &mut [f64]) {
    out.iter_mut().for_each(|v| *v = 0.0);
    for j in 0..n {
        let wj = w.map_or(1.0, |w| w[j]);
        let row = &x[j * p..(j + 1) * p];
        for a in 0..p {
            let ra = row[a] * wj;
            if ra == 0.0 {
                continue;
            }
            for b in 0..=a {
                out[a * p + b] += ra * row[b];
            }
        }
    }
    for a in 0..p {
        for b in 0..a {
            out[b * p + a] = out[a * p + b];
        }
    }
}

/// In-place Cholesky factorisation `A = L L^T` of a symmetric `p x p` matrix (lower triangle
/// of `a` overwritten by `L`); false when `A` is not positive definite.
pub(crate) fn cholesky(a: &mut [f64], p: usize) -> bool {
    for j in 0..p {
        let mut d = a[j * p + j];
        for k in 0..j {
            d -= a[j * p + k] * a[j * p + k];
        }
        if d.is_nan() || d <= 0.0 {
            return false;
        }
        let d = d.sqrt();
        a[j * p + j] = d;
        for i in j + 1..p {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= a[i * p + k] * a[j * p + k];
            }
            a[i * p + j] = s / d;
        }
    }
    true
}

/// Solves `L L^T x = b` in place.
pub(crate) fn chol_solve(l: &[f64], p: usize, b: &mut [f64]) {
    for i in 0..p {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * p + k] * b[k];
        }
        b[i] = s / l[i * p + i];
    }
    for i in (0..p).rev() {
        let mut s = b[i];
        for k in i + 1..p {
            s -= l[k * p + i] * b[k];
        }
        b[i] = s / l[i * p + i];
    }
}

/// `out = (L L^T)^-1`, row-major `p x p`.
pub(crate) fn chol_inverse(l: &[f64], p: usize, out: &mut [f64]) {
    let mut col = vec![0.0; p];
    for c in 0..p {
        col.iter_mut().for_each(|v| *v = 0.0);
        col[c] = 1.0;
        chol_solve(l, p, &mut col);
        for r in 0..p {
            out[r * p + c] = col[r];
        }
    }
}

/// Scratch buffers of one worker thread.
#[derive(Debug, Clone)]
pub(crate) struct Work {
    pub w: Vec<f64>,
    pub z: Vec<f64>,
    pub mu: Vec<f64>,
    pub mat: Vec<f64>,
    pub mat2: Vec<f64>,
    pub inv: Vec<f64>,
    pub vec: Vec<f64>,
    pub beta: Vec<f64>,
    pub beta_init: Vec<f64>,
}

impl Work {
    pub fn new(n: usize, p: usize) -> Self {
        Work {
            w: vec![0.0; n],
            z: vec![0.0; n],
            mu: vec![0.0; n],
            mat: vec![0.0; p * p],
            mat2: vec![0.0; p * p],
            inv: vec![0.0; p * p],
            vec: vec![0.0; p],
            beta: vec![0.0; p],
            beta_init: vec![0.0; p],
        }
    }
}

/// Fitted means of the linear regression of normalized counts on the design, as pydeseq2's
/// `fit_lin_mu`: `mu_j = max(s_j (P (c / s))_j, min_mu)` with `P` the least-squares projection.
pub(crate) fn lin_reg_mu(d: &Design, counts: &[f64], sf: &[f64], min_mu: f64, mu: &mut [f64]) {
    let n = d.n;
    for i in 0..n {
        let fit: f64 = (0..n).map(|j| d.proj[i * n + j] * counts[j] / sf[j]).sum();
        mu[i] = (sf[i] * fit).max(min_mu);
    }
}

/// Penalized negative log-likelihood of the fallback: `nb_nll(c, max(s e^{X beta}, min_mu))
/// + ridge |beta|^2 / 2`.
fn penalized_nll(
    d: &Design,
    counts: &[f64],
    sf: &[f64],
    disp: f64,
    min_mu: f64,
    beta: &[f64],
    mu: &mut [f64],
) -> f64 {
    for j in 0..d.n {
        mu[j] = (sf[j] * d.eta(j, beta).exp()).max(min_mu);
    }
    nb_nll(counts, mu, disp) + 0.5 * RIDGE * beta.iter().map(|b| b * b).sum::<f64>()
}

/// Negative binomial GLM with log link and offsets `ln s_j` by IRLS, as pydeseq2's
/// `irls_solver`: start from the least-squares fit of `ln(c / s + 0.1)`; iterate
/// `beta = (X^T W X + 1e-6 I)^-1 X^T W z` with `W = mu / (1 + alpha mu)`,
/// `z = ln(mu / s) + (c - mu) / mu`, `mu = max(s e^{X beta}, min_mu)`, until the relative
/// change of the deviance `-2 nb_nll` is at most `beta_tol`. Hat diagonals
/// `h_j = W_j x_j^T (X^T W X + 1e-6 I)^-1 x_j` at the final (thresholded) means; the returned
/// means are unthresholded, as DESeq2 does.
///
/// When a coefficient leaves `[-30, 30]` or 250 iterations pass, pydeseq2 restarts with
/// L-BFGS-B on the penalized likelihood within the bounds; here the fallback is projected
/// Fisher scoring with step halving on the same objective and bounds.
///
/// Coefficients in `ws.beta`, unthresholded means in `mu_out`, hat diagonals in `hat_out`;
/// returns whether IRLS (or the fallback) converged.
#[allow(clippy::too_many_arguments)]
pub(crate) fn irls(
    d: &Design,
    counts: &[f64],
    sf: &[f64],
    disp: f64,
    min_mu: f64,
    beta_tol: f64,
    ws: &mut Work,
    mu_out: &mut [f64],
    hat_out: &mut [f64],
) -> bool {
    let (n, p) = (d.n, d.p);
    for (j, zj) in ws.z.iter_mut().enumerate() {
        *zj = (counts[j] / sf[j] + 0.1).ln();
    }
    for a in 0..p {
        ws.beta[a] = (0..n).map(|j| d.ls[a * n + j] * ws.z[j]).sum();
    }
    ws.beta_init.copy_from_slice(&ws.beta);
    let mut dev = 1000.0f64;
    let mut dev_ratio = 1.0f64;
    for j in 0..n {
        ws.mu[j] = (sf[j] * d.eta(j, &ws.beta).exp()).max(min_mu);
    }
    let mut converged = true;
    let mut iter = 0usize;
    while dev_ratio > beta_tol {
        for j in 0..n {
            let m = ws.mu[j];
            ws.w[j] = m / (1.0 + m * disp);
            ws.z[j] = (m / sf[j]).ln() + (counts[j] - m) / m;
        }
        gram(&d.x, n, p, Some(&ws.w), &mut ws.mat);
        for a in 0..p {
            ws.mat[a * p + a] += RIDGE;
            ws.vec[a] = (0..n).map(|j| d.x[j * p + a] * ws.w[j] * ws.z[j]).sum();
        }
        let ok = cholesky(&mut ws.mat, p);
        if ok {
            chol_solve(&ws.mat, p, &mut ws.vec);
        }
        iter += 1;
        if !ok || ws.vec.iter().any(|b| !b.is_finite() || b.abs() > MAX_BETA) || iter >= MAX_ITER {
            converged = fallback(d, counts, sf, disp, min_mu, ws);
            for j in 0..n {
                ws.mu[j] = (sf[j] * d.eta(j, &ws.beta).exp()).max(min_mu);
            }
            break;
        }
        ws.beta.copy_from_slice(&ws.vec);
        for j in 0..n {
            ws.mu[j] = (sf[j] * d.eta(j, &ws.beta).exp()).max(min_mu);
        }
        let old = dev;
        dev = -2.0 * nb_nll(counts, &ws.mu, disp);
        dev_ratio = (dev - old).abs() / (dev.abs() + 0.1);
    }
    hat_diagonals(d, disp, ws, hat_out);
    for j in 0..n {
        mu_out[j] = sf[j] * d.eta(j, &ws.beta).exp();
    }
    converged
}

/// `h_j = W_j x_j^T (X^T W X + ridge)^-1 x_j` with `W = mu / (1 + alpha mu)` at `ws.mu`.
pub(crate) fn hat_diagonals(d: &Design, disp: f64, ws: &mut Work, hat_out: &mut [f64]) {
    let (n, p) = (d.n, d.p);
    for j in 0..n {
        let m = ws.mu[j];
        ws.w[j] = m / (1.0 + m * disp);
    }
    gram(&d.x, n, p, Some(&ws.w), &mut ws.mat);
    for a in 0..p {
        ws.mat[a * p + a] += RIDGE;
    }
    if !cholesky(&mut ws.mat, p) {
        hat_out.iter_mut().for_each(|h| *h = f64::NAN);
        return;
    }
    chol_inverse(&ws.mat, p, &mut ws.inv);
    for j in 0..n {
        let row = d.row(j);
        let mut q = 0.0;
        for a in 0..p {
            for b in 0..p {
                q += row[a] * ws.inv[a * p + b] * row[b];
            }
        }
        hat_out[j] = ws.w[j] * q;
    }
}

/// Bounded fallback of [`irls`]: projected Fisher scoring from the initial coefficients on
/// the penalized likelihood, coefficients kept in `[-30, 30]`; the result is in `ws.beta`.
fn fallback(d: &Design, counts: &[f64], sf: &[f64], disp: f64, min_mu: f64, ws: &mut Work) -> bool {
    let (n, p) = (d.n, d.p);
    ws.beta.copy_from_slice(&ws.beta_init);
    let mut mu = vec![0.0; n];
    let mut trial = vec![0.0; p];
    let mut f = penalized_nll(d, counts, sf, disp, min_mu, &ws.beta, &mut mu);
    for _ in 0..200 {
        // Gradient (pydeseq2's `df`) and Fisher information at the current coefficients.
        let mut grad = vec![0.0; p];
        for j in 0..n {
            let m = (sf[j] * d.eta(j, &ws.beta).exp()).max(min_mu);
            let g = -counts[j] + (1.0 / disp + counts[j]) * m / (1.0 / disp + m);
            ws.w[j] = m / (1.0 + m * disp);
            for a in 0..p {
                grad[a] += g * d.x[j * p + a];
            }
        }
        for a in 0..p {
            grad[a] += RIDGE * ws.beta[a];
        }
        gram(&d.x, n, p, Some(&ws.w), &mut ws.mat);
        for a in 0..p {
            ws.mat[a * p + a] += RIDGE;
        }
        if !cholesky(&mut ws.mat, p) {
            return false;
        }
        let mut step = grad.clone();
        chol_solve(&ws.mat, p, &mut step);
        let mut t = 1.0;
        let mut improved = false;
        for _ in 0..40 {
            for a in 0..p {
                trial[a] = (ws.beta[a] - t * step[a]).clamp(-MAX_BETA, MAX_BETA);
            }
            let ft = penalized_nll(d, counts, sf, disp, min_mu, &trial, &mut mu);
            if ft <= f {
                improved = (f - ft) > 1e-12 * (f.abs() + 1.0);
                f = ft;
                ws.beta.copy_from_slice(&trial);
                break;
            }
            t *= 0.5;
        }
        if !improved {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_inverse_and_logdet() {
        let mut a = vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let orig = a.clone();
        assert!(cholesky(&mut a, 3));
        let mut inv = vec![0.0; 9];
        chol_inverse(&a, 3, &mut inv);
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| orig[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        // det = 4(15 - 1) - 2(6 - 0.6) + 0.6(2 - 3) = 44.6 = (product of the pivots)^2
        let det: f64 = (0..3).map(|i| a[i * 3 + i]).product::<f64>().powi(2);
        assert!((det - 44.6).abs() < 1e-12);
    }

    #[test]
    fn design_rejects_rank_deficiency_and_finds_cells() {
        let cond = [0, 0, 1, 1];
        let cov = ndarray::array![[1.0], [1.0], [0.0], [0.0]];
        assert!(Design::new(&cond, Some(&cov.view())).is_err());
        let d = Design::new(&[0, 0, 0, 1, 1, 1], None).unwrap();
        assert_eq!(d.cell, vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(d.cell_size, vec![3, 3]);
    }

    #[test]
    fn irls_recovers_group_means_at_low_dispersion() {
        let d = Design::new(&[0, 0, 0, 1, 1, 1], None).unwrap();
        let counts = [100.0, 110.0, 90.0, 400.0, 380.0, 420.0];
        let sf = [1.0; 6];
        let mut ws = Work::new(6, 2);
        let (mut mu, mut hat) = (vec![0.0; 6], vec![0.0; 6]);
        assert!(irls(
            &d, &counts, &sf, 1e-8, 0.5, 1e-8, &mut ws, &mut mu, &mut hat
        ));
        assert!((ws.beta[0] - 100f64.ln()).abs() < 1e-5);
        assert!((ws.beta[1] - 4f64.ln()).abs() < 1e-5);
        // The hat diagonals of a saturated two-group model sum to the rank.
        assert!((hat.iter().sum::<f64>() - 2.0).abs() < 1e-4);
    }
}
