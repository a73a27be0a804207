//! Dispersions: the method-of-moments start, the Cox-Reid adjusted profile likelihood fit
//! (gene-wise and MAP), the parametric trend and the prior variance of log dispersions.
// Loops over the samples index several parallel arrays (counts, means, weights, rows of X),
// as the formulas do.
#![allow(clippy::needless_range_loop)]

use super::glm::{chol_inverse, cholesky, gram, Design, Work};
use super::special::{dnb_nll, nb_nll};
use crate::special::{trigamma, zeroin};
use crate::stats::median_in_place as median;

/// Initial dispersion of a gene (pydeseq2's `_fit_MoM_dispersions`): the smaller of the rough
/// estimate `max(0, sum_j ((y_j - yhat_j)^2 - yhat_j) / ((n - p) yhat_j^2))` with `y = c / s`,
/// `yhat = max(P y, 1)` (`P` the least-squares projection on the design), and the moments
/// estimate `(var(y) - mean(1 / s) mean(y)) / mean(y)^2` (sample variance, `NaN` as 0),
/// clipped to `[min_disp, max_disp]`.
pub(crate) fn moments_dispersion(
    d: &Design,
    normed: &[f64],
    mean_inv_sf: f64,
    min_disp: f64,
    max_disp: f64,
) -> f64 {
    let n = d.n;
    let mut rough = 0.0;
    for i in 0..n {
        let fit: f64 = (0..n).map(|j| d.proj[i * n + j] * normed[j]).sum();
        let yhat = fit.max(1.0);
        let r = normed[i] - yhat;
        rough += (r * r - yhat) / ((n - d.p) as f64 * yhat * yhat);
    }
    let rough = rough.max(0.0);
    let mean = normed.iter().sum::<f64>() / n as f64;
    let var = normed.iter().map(|y| (y - mean) * (y - mean)).sum::<f64>() / (n as f64 - 1.0);
    let mut moments = (var - mean_inv_sf * mean) / (mean * mean);
    if moments.is_nan() {
        moments = 0.0;
    }
    rough.min(moments).clamp(min_disp, max_disp)
}

/// Prior on `ln alpha` of the MAP fit: `(ln alpha_trend, prior variance)`.
pub(crate) type Prior = (f64, f64);

/// The Cox-Reid term's matrix, shared by [`grad`] and [`loss`]: fills `ws.w` with the
/// negative binomial weights `W = mu / (1 + alpha mu)` and `ws.mat` with the Cholesky factor
/// of `X^T W X`; false when that matrix is not positive definite (the term is then 0).
fn weighted_gram_factor(d: &Design, mu: &[f64], alpha: f64, ws: &mut Work) -> bool {
    let (n, p) = (d.n, d.p);
    for j in 0..n {
        ws.w[j] = mu[j] / (1.0 + mu[j] * alpha);
    }
    gram(&d.x, n, p, Some(&ws.w), &mut ws.mat);
    cholesky(&mut ws.mat, p)
}

/// Derivative with respect to `ln alpha` of the Cox-Reid adjusted negative log-likelihood
/// `nb_nll(c, mu, alpha) + ln det(X^T W X) / 2` with `W = mu / (1 + alpha mu)`, plus
/// `(ln alpha - ln alpha_trend)^2 / (2 var)` with a prior (pydeseq2's `fit_alpha_mle` loss).
fn grad(
    d: &Design,
    counts: &[f64],
    mu: &[f64],
    log_alpha: f64,
    prior: Option<Prior>,
    ws: &mut Work,
) -> f64 {
    let (n, p) = (d.n, d.p);
    let alpha = log_alpha.exp();
    let factored = weighted_gram_factor(d, mu, alpha, ws);
    for j in 0..n {
        ws.z[j] = -ws.w[j] * ws.w[j];
    }
    let cr = if factored {
        chol_inverse(&ws.mat, p, &mut ws.inv);
        gram(&d.x, n, p, Some(&ws.z), &mut ws.mat2);
        let tr: f64 = ws.inv.iter().zip(&ws.mat2).map(|(a, b)| a * b).sum();
        0.5 * tr * alpha
    } else {
        0.0
    };
    let mut g = alpha * dnb_nll(counts, mu, alpha) + cr;
    if let Some((center, var)) = prior {
        g += (log_alpha - center) / var;
    }
    g
}

/// The Cox-Reid adjusted negative log-likelihood whose derivative [`grad`] is.
fn loss(
    d: &Design,
    counts: &[f64],
    mu: &[f64],
    log_alpha: f64,
    prior: Option<Prior>,
    ws: &mut Work,
) -> f64 {
    let p = d.p;
    let alpha = log_alpha.exp();
    let cr = if weighted_gram_factor(d, mu, alpha, ws) {
        (0..p).map(|i| ws.mat[i * p + i].ln()).sum::<f64>()
    } else {
        0.0
    };
    let mut f = nb_nll(counts, mu, alpha) + cr;
    if let Some((center, var)) = prior {
        f += (log_alpha - center).powi(2) / (2.0 * var);
    }
    f
}

/// Projected-gradient tolerance of scipy's L-BFGS-B (`pgtol`), in `ln alpha` units.
const PGTOL: f64 = 1e-5;

/// Minimizes the Cox-Reid adjusted profile likelihood over `ln alpha` in
/// `[ln min_disp, ln max_disp]`, from `ln alpha_start`.
///
/// pydeseq2 runs L-BFGS-B on the same objective and bounds; here, after L-BFGS-B's first
/// step (`x0 - g0` within the bounds, kept when the objective decreases by the Armijo rule),
/// a 1-D bounded minimizer on `ln alpha` follows the descent direction from the start (steps doubling from 0.5 until the
/// derivative changes sign or a bound is reached: a bound is the answer) and then finds the
/// zero of the derivative inside the bracket with Brent's root finder (tolerance `1e-10` in
/// `ln alpha`). As L-BFGS-B's projected-gradient test (`pgtol = 1e-5`), the start or a
/// bracketing step whose derivative is at most `1e-5` in absolute value (or points out of
/// the bounds at a bound) is taken as is: where the likelihood is flat in `ln alpha` (the
/// Poisson limit) both stop where they are. Returns `alpha` (not clipped).
#[allow(clippy::too_many_arguments)]
pub(crate) fn fit_alpha(
    d: &Design,
    counts: &[f64],
    mu: &[f64],
    alpha_start: f64,
    min_disp: f64,
    max_disp: f64,
    prior: Option<Prior>,
    ws: &mut Work,
) -> f64 {
    let (lo, hi) = (min_disp.ln(), max_disp.ln());
    let mut a = alpha_start.ln().clamp(lo, hi);
    let mut ga = grad(d, counts, mu, a, prior, ws);
    // L-BFGS-B's projected-gradient stop (pgtol 1e-5): in the Poisson limit the likelihood
    // is flat in ln alpha and pydeseq2 keeps the start.
    let outward = (a <= lo && ga > 0.0) || (a >= hi && ga < 0.0);
    if outward || ga.abs() <= PGTOL || !ga.is_finite() {
        return a.exp();
    }
    // L-BFGS-B's first iteration: the bounded step of the model with unit curvature,
    // x0 - g0, kept when it decreases the objective enough (Armijo, 1e-3); it can jump over
    // a nearby local minimum, as pydeseq2's fit does.
    let x1 = (a - ga).clamp(lo, hi);
    let f0 = loss(d, counts, mu, a, prior, ws);
    let f1 = loss(d, counts, mu, x1, prior, ws);
    if f1 <= f0 + 1e-3 * ga * (x1 - a) {
        let g1 = grad(d, counts, mu, x1, prior, ws);
        let outward = (x1 <= lo && g1 > 0.0) || (x1 >= hi && g1 < 0.0);
        if outward || g1.abs() <= PGTOL || !g1.is_finite() {
            return x1.exp();
        }
        a = x1;
        ga = g1;
    }
    let dir = if ga < 0.0 { 1.0 } else { -1.0 };
    let mut step = 0.5;
    let (mut b, mut gb);
    loop {
        b = (a + dir * step).clamp(lo, hi);
        gb = grad(d, counts, mu, b, prior, ws);
        if !gb.is_finite() {
            return a.exp();
        }
        if gb.abs() <= PGTOL {
            return b.exp();
        }
        if gb == 0.0 || (gb > 0.0) != (ga > 0.0) {
            break;
        }
        if b == lo || b == hi {
            return b.exp();
        }
        a = b;
        ga = gb;
        step *= 2.0;
    }
    if gb == 0.0 {
        return b.exp();
    }
    zeroin(
        a,
        b,
        ga,
        gb,
        |x| grad(d, counts, mu, x, prior, ws),
        1e-10,
        200,
    )
    .exp()
}

/// Kind of dispersion trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendKind {
    /// `alpha(mu) = a0 + a1 / mu`, a gamma-family GLM (DESeq2's `fitType = "parametric"`).
    Parametric,
    /// The trimmed mean of the gene-wise dispersions (pydeseq2's fallback when the
    /// parametric fit fails); `a1 = 0`.
    Mean,
}

/// Gamma-family GLM with identity link `t ~ a0 + a1 x`: minimizes `mean(t / mu + ln mu)`
/// (pydeseq2's `dispersion_trend_gamma_glm` objective) from `(1, 1)` by Fisher scoring with
/// step halving (keeping every `mu > 0`). Returns `None` when it does not converge or a
/// coefficient is at most `1e-10` (pydeseq2 bounds the coefficients below by `1e-12` and then
/// falls back to the mean trend).
fn gamma_glm(x: &[f64], t: &[f64]) -> Option<(f64, f64)> {
    let n = x.len() as f64;
    let loss = |a0: f64, a1: f64| -> f64 {
        let mut s = 0.0;
        for (&xi, &ti) in x.iter().zip(t) {
            let m = a0 + a1 * xi;
            if m.is_nan() || m <= 0.0 {
                return f64::INFINITY;
            }
            s += ti / m + m.ln();
        }
        s / n
    };
    let (mut a0, mut a1) = (1.0, 1.0);
    let mut f = loss(a0, a1);
    for _ in 0..500 {
        let (mut g0, mut g1, mut i00, mut i01, mut i11) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&xi, &ti) in x.iter().zip(t) {
            let m = a0 + a1 * xi;
            let r = (1.0 - ti / m) / m;
            g0 += r;
            g1 += r * xi;
            let w = 1.0 / (m * m);
            i00 += w;
            i01 += w * xi;
            i11 += w * xi * xi;
        }
        let det = i00 * i11 - i01 * i01;
        if det.is_nan() || det <= 0.0 {
            return None;
        }
        let d0 = (i11 * g0 - i01 * g1) / det;
        let d1 = (i00 * g1 - i01 * g0) / det;
        let mut step = 1.0;
        let mut accepted = false;
        for _ in 0..60 {
            let (b0, b1) = (a0 - step * d0, a1 - step * d1);
            let fb = loss(b0, b1);
            if fb <= f {
                let done = (f - fb) <= 1e-15 * f.abs().max(1.0)
                    && (b0 - a0).abs() <= 1e-10 * a0.abs().max(1e-300)
                    && (b1 - a1).abs() <= 1e-10 * a1.abs().max(1e-300);
                a0 = b0;
                a1 = b1;
                f = fb;
                accepted = true;
                if done {
                    return (a0 > 1e-10 && a1 > 1e-10).then_some((a0, a1));
                }
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            // No descent left along the scoring direction: at the optimum to rounding.
            return (a0 > 1e-10 && a1 > 1e-10).then_some((a0, a1));
        }
    }
    None
}

/// Fits the dispersion trend (pydeseq2's `_fit_parametric_dispersion_trend`): over the genes
/// given (`base_mean > 0`), repeat the gamma GLM of the gene-wise dispersions on `1 / base_mean`,
/// dropping genes whose dispersion over prediction is below `1e-4` or at least 15, until
/// `sum(ln(coef / old_coef)^2) < 1e-6`. On failure: the mean trend ([`mean_trend`]).
pub(crate) fn fit_trend(
    base_mean: &[f64],
    genewise: &[f64],
    min_disp: f64,
) -> (TrendKind, f64, f64) {
    let mut x: Vec<f64> = base_mean.iter().map(|m| 1.0 / m).collect();
    let mut t: Vec<f64> = genewise.to_vec();
    let keep: Vec<bool> = x
        .iter()
        .zip(&t)
        .map(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    retain(&mut x, &mut t, &keep);
    let (mut old0, mut old1) = (0.1f64, 0.1f64);
    let (mut c0, mut c1) = (1.0f64, 1.0f64);
    for _ in 0..100 {
        let change = (c0 / old0).abs().ln().powi(2) + (c1 / old1).abs().ln().powi(2);
        if !(c0 > 1e-10 && c1 > 1e-10 && change >= 1e-6) {
            return (TrendKind::Parametric, c0, c1);
        }
        old0 = c0;
        old1 = c1;
        if x.len() < 2 {
            break;
        }
        match gamma_glm(&x, &t) {
            Some((a0, a1)) => {
                c0 = a0;
                c1 = a1;
            }
            None => break,
        }
        let keep: Vec<bool> = x
            .iter()
            .zip(&t)
            .map(|(&xi, &ti)| {
                let ratio = ti / (c0 + c1 * xi);
                (1e-4..15.0).contains(&ratio)
            })
            .collect();
        retain(&mut x, &mut t, &keep);
    }
    (TrendKind::Mean, mean_trend(genewise, min_disp), 0.0)
}

fn retain(x: &mut Vec<f64>, t: &mut Vec<f64>, keep: &[bool]) {
    let mut k = keep.iter();
    x.retain(|_| *k.next().unwrap_or(&false));
    let mut k = keep.iter();
    t.retain(|_| *k.next().unwrap_or(&false));
}

/// Mean trend (pydeseq2's `_fit_mean_dispersion_trend`): `scipy.stats.trim_mean` with
/// proportion 0.001 of the gene-wise dispersions above `10 min_disp`.
pub(crate) fn mean_trend(genewise: &[f64], min_disp: f64) -> f64 {
    let mut v: Vec<f64> = genewise
        .iter()
        .copied()
        .filter(|&a| a > 10.0 * min_disp)
        .collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let cut = (0.001 * v.len() as f64) as usize;
    let kept = &v[cut..v.len() - cut];
    kept.iter().sum::<f64>() / kept.len() as f64
}

/// Prior of the MAP fit (pydeseq2's `fit_dispersion_prior`): with the residuals
/// `r = ln(genewise) - ln(fitted)` of the genes whose gene-wise dispersion is at least
/// `100 min_disp`, `squared_logres = MAD(r)^2` (median absolute deviation divided by
/// `Phi^-1(3/4)`) and `prior_var = max(squared_logres - psi'((n - p) / 2), 0.25)`.
/// Returns `(squared_logres, prior_var)`; with no such gene, `(0, 0.25)`.
pub(crate) fn dispersion_prior(
    genewise: &[f64],
    fitted: &[f64],
    min_disp: f64,
    df: f64,
) -> (f64, f64) {
    let mut r: Vec<f64> = genewise
        .iter()
        .zip(fitted)
        .filter(|(g, _)| **g >= 100.0 * min_disp)
        .map(|(g, f)| g.ln() - f.ln())
        .collect();
    if r.is_empty() {
        return (0.0, 0.25);
    }
    let center = median(&mut r);
    let mut dev: Vec<f64> = r.iter().map(|v| (v - center).abs()).collect();
    let mad = median(&mut dev) / 0.674_489_750_196_081_7;
    let sq = mad * mad;
    (sq, (sq - trigamma(0.5 * df)).max(0.25))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_glm_recovers_exact_trend() {
        let x: Vec<f64> = (1..200).map(|i| 1.0 / (i as f64)).collect();
        let t: Vec<f64> = x.iter().map(|xi| 0.05 + 2.0 * xi).collect();
        let (a0, a1) = gamma_glm(&x, &t).unwrap();
        assert!(
            (a0 - 0.05).abs() < 1e-8 && (a1 - 2.0).abs() < 1e-7,
            "{a0} {a1}"
        );
    }

    #[test]
    fn alpha_fit_finds_a_stationary_point() {
        let d = Design::new(&[0, 0, 0, 1, 1, 1], None).unwrap();
        let counts = [80.0, 130.0, 95.0, 300.0, 520.0, 410.0];
        let mu = [101.7, 101.7, 101.7, 410.0, 410.0, 410.0];
        let mut ws = Work::new(6, 2);
        let a = fit_alpha(&d, &counts, &mu, 0.01, 1e-8, 10.0, None, &mut ws);
        assert!(a > 1e-3 && a < 1.0);
        assert!(grad(&d, &counts, &mu, a.ln(), None, &mut ws).abs() < 1e-7);
    }
}
