//! The Wald test, Cook's distances and independent filtering.
// Loops over the samples index several parallel arrays (counts, means, weights, rows of X),
// as the formulas do.
#![allow(clippy::needless_range_loop)]

use super::glm::{chol_inverse, cholesky, gram, Design, Work, RIDGE};
use crate::stats;

/// Wald test of coefficient 1 (the condition), as pydeseq2's `wald_test`:
/// with `W = mu / (1 + alpha mu)`, `M = X^T W X`, `H = (M + 1e-6 I)^-1`, `SE = sqrt(e^T H M H e)`,
/// `stat = beta_1 / SE`, `p = 2 (1 - Phi(|stat|))`. Returns `(stat, SE, p)` (natural log scale).
pub(crate) fn wald(
    d: &Design,
    beta: &[f64],
    sf: &[f64],
    disp: f64,
    ws: &mut Work,
) -> (f64, f64, f64) {
    let (n, p) = (d.n, d.p);
    for j in 0..n {
        let m = sf[j] * d.eta(j, beta).exp();
        ws.w[j] = m / (1.0 + m * disp);
    }
    gram(&d.x, n, p, Some(&ws.w), &mut ws.mat2);
    ws.mat.copy_from_slice(&ws.mat2);
    for a in 0..p {
        ws.mat[a * p + a] += RIDGE;
    }
    if !cholesky(&mut ws.mat, p) {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    chol_inverse(&ws.mat, p, &mut ws.inv);
    // Hc = H e_1: column 1 of H.
    for a in 0..p {
        ws.vec[a] = ws.inv[a * p + 1];
    }
    let mut var = 0.0;
    for a in 0..p {
        for b in 0..p {
            var += ws.vec[a] * ws.mat2[a * p + b] * ws.vec[b];
        }
    }
    let se = var.sqrt();
    let stat = beta[1] / se;
    (stat, se, stats::normal_two_sided(stat))
}

/// Trimmed mean as pydeseq2's `trimmed_mean`: `floor(n trim)` values cut from each end.
pub(crate) fn trimmed_mean(v: &mut [f64], trim: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let k = (n as f64 * trim).floor() as usize;
    let kept = &v[k..n - k];
    kept.iter().sum::<f64>() / kept.len() as f64
}

/// Dispersion used in Cook's distances (pydeseq2's `robust_method_of_moments_disp`):
/// `max((v - m) / m^2, 0.04)` with `m` the mean normalized count and `v` a trimmed variance:
/// over the design cells with at least 3 samples, the largest of the cells' trimmed
/// variances (`trimmed_cell_variance`), or, when no cell has 3, the trimmed variance of all
/// samples (trim 1/8, scale 1.51).
pub(crate) fn cooks_dispersion(d: &Design, normed: &[f64], buf: &mut Vec<f64>) -> f64 {
    let n = d.n;
    let m = normed.iter().sum::<f64>() / n as f64;
    let big: Vec<usize> = (0..d.cell_size.len())
        .filter(|&c| d.cell_size[c] >= 3)
        .collect();
    let v = if big.is_empty() {
        buf.clear();
        buf.extend_from_slice(normed);
        let rm = trimmed_mean(buf, 0.125);
        buf.clear();
        buf.extend(normed.iter().map(|y| (y - rm) * (y - rm)));
        1.51 * trimmed_mean(buf, 0.125)
    } else {
        let mut best = f64::NEG_INFINITY;
        for &c in &big {
            let size = d.cell_size[c] as f64;
            let (trim, scale) = if size >= 23.5 {
                (1.0 / 8.0, 1.51)
            } else if size >= 3.5 {
                (1.0 / 4.0, 1.86)
            } else {
                (1.0 / 3.0, 2.04)
            };
            buf.clear();
            buf.extend((0..n).filter(|&j| d.cell[j] == c).map(|j| normed[j]));
            let cm = trimmed_mean(buf, trim);
            buf.clear();
            buf.extend(
                (0..n)
                    .filter(|&j| d.cell[j] == c)
                    .map(|j| (normed[j] - cm) * (normed[j] - cm)),
            );
            best = best.max(scale * trimmed_mean(buf, trim));
        }
        best
    };
    ((v - m) / (m * m)).max(0.04)
}

/// Cook's distances of one gene: `(c - mu)^2 / (mu + a mu^2) / p * h / (1 - h)^2` with `a`
/// from [`cooks_dispersion`], `mu` the unthresholded fitted means and `h` the hat diagonals.
pub(crate) fn cooks_distances(
    counts: &[f64],
    mu: &[f64],
    hat: &[f64],
    alpha: f64,
    p: usize,
    out: &mut [f64],
) {
    for j in 0..counts.len() {
        let r = counts[j] - mu[j];
        let v = mu[j] + alpha * mu[j] * mu[j];
        let h = hat[j];
        out[j] = r * r / v / p as f64 * (h / ((1.0 - h) * (1.0 - h)));
    }
}

/// `numpy.quantile(sorted, q)` with the default linear method, on sorted finite values.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    // NumPy's virtual index for method "linear" (alpha = beta = 1).
    let (alpha, beta) = (1.0, 1.0);
    let vi = (n as f64 * q + (alpha + q * (1.0 - alpha - beta))) - 1.0;
    if vi >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    if vi <= 0.0 {
        return sorted[0];
    }
    let prev = vi.floor();
    let t = vi - prev;
    let (a, b) = (sorted[prev as usize], sorted[prev as usize + 1]);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// pydeseq2's `lowess` (tricube weights over the `ceil(frac n)`-th nearest distance, local
/// linear fits, `iter` robustifying passes with bisquare weights).
pub(crate) fn lowess(x: &[f64], y: &[f64], frac: f64, iter: usize) -> Vec<f64> {
    let n = x.len();
    let r = (frac * n as f64).ceil() as usize;
    let mut h = vec![0.0; n];
    let mut dist = vec![0.0; n];
    for i in 0..n {
        for (k, dk) in dist.iter_mut().enumerate() {
            *dk = (x[k] - x[i]).abs();
        }
        dist.sort_by(f64::total_cmp);
        h[i] = dist[r.min(n - 1)].max(1e-12);
    }
    // w[j][i] = tricube(|x_j - x_i| / h_i)
    let mut w = vec![0.0; n * n];
    for j in 0..n {
        for i in 0..n {
            let mut u = (x[j] - x[i]) / h[i];
            if u.is_nan() {
                u = 0.0;
            }
            let u = u.abs().clamp(0.0, 1.0);
            let t = 1.0 - u * u * u;
            w[j * n + i] = t * t * t;
        }
    }
    let mut yest = vec![0.0; n];
    let mut delta = vec![1.0; n];
    for _ in 0..iter {
        for i in 0..n {
            let (mut s0, mut s1, mut s2, mut t0, mut t1) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for j in 0..n {
                let wt = delta[j] * w[j * n + i];
                s0 += wt;
                s1 += wt * x[j];
                s2 += wt * x[j] * x[j];
                t0 += wt * y[j];
                t1 += wt * y[j] * x[j];
            }
            let det = s0 * s2 - s1 * s1;
            yest[i] = if det.abs() > 1e-12 * (s0 * s2).abs().max(f64::MIN_POSITIVE) {
                let b0 = (s2 * t0 - s1 * t1) / det;
                let b1 = (s0 * t1 - s1 * t0) / det;
                b0 + b1 * x[i]
            } else if s0 > 0.0 {
                // Singular local fit (all weighted points at one x): the minimum-norm
                // least-squares solution predicts the weighted mean there.
                let c = s1 / s0;
                let b0 = (t0 / s0) / (1.0 + c * c);
                b0 + b0 * c * x[i]
            } else {
                0.0
            };
        }
        let mut res: Vec<f64> = y.iter().zip(&yest).map(|(a, b)| a - b).collect();
        let mut abs: Vec<f64> = res.iter().map(|v| v.abs()).collect();
        let s = stats::median_in_place(&mut abs);
        for (dk, rk) in delta.iter_mut().zip(res.iter_mut()) {
            let u = if s == 0.0 {
                if rk.abs() > 0.0 {
                    1.0
                } else {
                    0.0
                }
            } else {
                (*rk / (6.0 * s)).clamp(-1.0, 1.0)
            };
            *dk = (1.0 - u * u) * (1.0 - u * u);
        }
    }
    yest
}

/// Independent filtering by mean normalized count (pydeseq2's `_independent_filtering`, after
/// DESeq2's `results`): for 50 quantile levels `theta` from the share of genes with mean 0
/// to 0.95, BH-adjust the p-values of the genes with `base_mean >= quantile(base_mean, theta)`
/// and count rejections at `alpha`; fit pydeseq2's lowess (frac 1/5) to the counts; take the
/// first level whose count exceeds the lowess maximum minus the root mean square residual
/// (the first level when at most 10 rejections). Returns the adjusted p-values (`NaN` for
/// genes filtered out or not tested) and the base-mean cutoff used.
pub(crate) fn independent_filtering(base_mean: &[f64], p: &[f64], alpha: f64) -> (Vec<f64>, f64) {
    let g = base_mean.len();
    let zero = base_mean.iter().filter(|&&m| m == 0.0).count() as f64 / g as f64;
    let upper = if zero < 0.95 { 0.95 } else { 1.0 };
    let n_theta = 50;
    let step = (upper - zero) / (n_theta - 1) as f64;
    let theta: Vec<f64> = (0..n_theta)
        .map(|i| {
            if i == n_theta - 1 {
                upper
            } else {
                i as f64 * step + zero
            }
        })
        .collect();
    let mut sorted = base_mean.to_vec();
    sorted.sort_by(f64::total_cmp);
    let cutoffs: Vec<f64> = theta.iter().map(|&t| quantile_sorted(&sorted, t)).collect();
    // Genes with a p-value, by increasing p.
    let mut order: Vec<usize> = (0..g).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let num_rej: Vec<f64> = cutoffs
        .iter()
        .map(|&cut| {
            let kept: Vec<f64> = order
                .iter()
                .filter(|&&i| base_mean[i] >= cut)
                .map(|&i| p[i])
                .collect();
            let m = kept.len() as f64;
            // BH: q_(k) = min_{l >= k} p_(l) m / l; rejections are the k with q_(k) < alpha.
            let mut running = f64::INFINITY;
            let mut count = 0usize;
            for (k, &pk) in kept.iter().enumerate().rev() {
                running = running.min(pk * m / (k + 1) as f64).min(1.0);
                if running < alpha {
                    count += 1;
                }
            }
            count as f64
        })
        .collect();
    let fit = lowess(&theta, &num_rej, 1.0 / 5.0, 3);
    let max_rej = num_rej.iter().copied().fold(0.0, f64::max);
    let j = if max_rej <= 10.0 {
        0
    } else {
        let res: Vec<f64> = num_rej
            .iter()
            .zip(&fit)
            .filter(|(r, _)| **r > 0.0)
            .map(|(r, f)| r - f)
            .collect();
        let rmse = (res.iter().map(|v| v * v).sum::<f64>() / res.len() as f64).sqrt();
        let thresh = fit.iter().copied().fold(f64::NEG_INFINITY, f64::max) - rmse;
        num_rej.iter().position(|&r| r > thresh).unwrap_or(0)
    };
    let cut = cutoffs[j];
    let used: Vec<usize> = (0..g)
        .filter(|&i| base_mean[i] >= cut && !p[i].is_nan())
        .collect();
    let adj = stats::benjamini_hochberg(&used.iter().map(|&i| p[i]).collect::<Vec<_>>());
    let mut padj = vec![f64::NAN; g];
    for (&i, &q) in used.iter().zip(&adj) {
        padj[i] = q;
    }
    (padj, cut)
}

/// Benjamini-Hochberg over the genes with a p-value (`NaN` elsewhere), pydeseq2's
/// `_p_value_adjustment`.
pub(crate) fn adjust_all(p: &[f64]) -> Vec<f64> {
    let used: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    let adj = stats::benjamini_hochberg(&used.iter().map(|&i| p[i]).collect::<Vec<_>>());
    let mut padj = vec![f64::NAN; p.len()];
    for (&i, &q) in used.iter().zip(&adj) {
        padj[i] = q;
    }
    padj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_is_numpy_linear() {
        let v = [1.0, 2.0, 4.0, 8.0];
        // numpy.quantile([1, 2, 4, 8], [0, 0.5, 0.9, 1]) = [1, 3, 6.8, 8]
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 0.5), 3.0);
        assert!((quantile_sorted(&v, 0.9) - 6.8).abs() < 1e-12);
        assert_eq!(quantile_sorted(&v, 1.0), 8.0);
    }

    #[test]
    fn lowess_reproduces_a_line() {
        let x: Vec<f64> = (0..50).map(|i| i as f64 / 49.0).collect();
        let y: Vec<f64> = x.iter().map(|v| 3.0 + 2.0 * v).collect();
        let fit = lowess(&x, &y, 0.2, 3);
        for (a, b) in fit.iter().zip(&y) {
            assert!((a - b).abs() < 1e-9);
        }
    }

    #[test]
    fn trimmed_mean_cuts_floor_n_trim() {
        assert_eq!(trimmed_mean(&mut [5.0, 1.0, 100.0], 1.0 / 3.0), 5.0);
        assert_eq!(trimmed_mean(&mut [5.0, 1.0, 100.0, 2.0], 0.125), 27.0);
    }
}
