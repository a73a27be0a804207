//! Numerical pieces of milo's edgeR pipeline that the rest of the crate does not share:
//! edgeR's `maximizeInterpolant` (FMM spline), the local smoother of the dispersion trend, and
//! the small dense linear algebra of the GLM fits (rank, inverse, Cholesky solve). The
//! quasi-likelihood moderation is [`crate::limma::squeeze_var`]; the polygamma functions are in
//! [`crate::special`], quantiles and ranks in [`crate::stats`].

use rayon::prelude::*;

/// `maximizeInterpolant` for one row: the maximum of the FMM cubic spline through `(x, y)`.
pub(crate) fn maximize_interpolant(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    let mut at = 0;
    for i in 1..n {
        if y[i] > y[at] {
            at = i;
        }
    }
    let (b, c, d) = fmm_spline(x, y);
    let (mut best, mut xmax) = (y[at], x[at]);
    let mut side = |k: usize, width: f64| {
        let (a2, b2, c2) = (3.0 * d[k], 2.0 * c[k], b[k]);
        let sol = if a2 == 0.0 {
            (b2 != 0.0).then(|| -c2 / b2)
        } else {
            let disc = b2 * b2 - 4.0 * a2 * c2;
            (disc >= 0.0).then(|| -b2 / (2.0 * a2) - disc.sqrt() / (2.0 * a2))
        };
        if let Some(s) = sol {
            if s > 0.0 && s < width {
                let v = ((d[k] * s + c[k]) * s + b[k]) * s + y[k];
                if v > best {
                    best = v;
                    xmax = x[k] + s;
                }
            }
        }
    };
    if at > 0 {
        side(at - 1, x[at] - x[at - 1]);
    }
    if at + 1 < n {
        side(at, x[at + 1] - x[at]);
    }
    xmax
}

/// R's `fmm_spline` (Forsythe, Malcolm and Moler end conditions); needs `n >= 4`.
fn fmm_spline(x: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = x.len();
    let (mut b, mut c, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    d[0] = x[1] - x[0];
    c[1] = (y[1] - y[0]) / d[0];
    for i in 1..n - 1 {
        d[i] = x[i + 1] - x[i];
        b[i] = 2.0 * (d[i - 1] + d[i]);
        c[i + 1] = (y[i + 1] - y[i]) / d[i];
        c[i] = c[i + 1] - c[i];
    }
    b[0] = -d[0];
    b[n - 1] = -d[n - 2];
    c[0] = c[2] / (x[3] - x[1]) - c[1] / (x[2] - x[0]);
    c[n - 1] = c[n - 2] / (x[n - 1] - x[n - 3]) - c[n - 3] / (x[n - 2] - x[n - 4]);
    c[0] = c[0] * d[0] * d[0] / (x[3] - x[0]);
    c[n - 1] = -c[n - 1] * d[n - 2] * d[n - 2] / (x[n - 1] - x[n - 4]);
    for i in 1..n {
        let t = d[i - 1] / b[i - 1];
        b[i] -= t * d[i - 1];
        c[i] -= t * c[i - 1];
    }
    c[n - 1] /= b[n - 1];
    for i in (0..n - 1).rev() {
        c[i] = (c[i] - d[i] * c[i + 1]) / b[i];
    }
    b[n - 1] = (y[n - 1] - y[n - 2]) / d[n - 2] + d[n - 2] * (c[n - 2] + 2.0 * c[n - 1]);
    for i in 0..n - 1 {
        b[i] = (y[i + 1] - y[i]) / d[i] - d[i] * (c[i + 1] + 2.0 * c[i]);
        d[i] = (c[i + 1] - c[i]) / d[i];
        c[i] *= 3.0;
    }
    c[n - 1] *= 3.0;
    d[n - 1] = d[n - 2];
    (b, c, d)
}

/// Local-constant tricube smoothing of the columns of `l0` (row-major `n x g`) against `x`,
/// bandwidth = distance to the `floor(span n)`-th nearest covariate value.
pub(crate) fn smooth_columns(l0: &[f64], g: usize, x: &[f64], span: f64) -> Vec<f64> {
    let n = x.len();
    if span * n as f64 <= 2.0 || n <= 1 {
        return l0.to_vec();
    }
    let q = ((span * n as f64).floor() as usize).clamp(2, n);
    let mut sx: Vec<f64> = x.to_vec();
    sx.sort_by(f64::total_cmp);
    let rows: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let xi = x[i];
            let pos = sx.partition_point(|&v| v < xi);
            let mut lo = pos.saturating_sub(q - 1).min(n - q);
            while lo + q < n && (xi - sx[lo]) > (sx[lo + q] - xi) {
                lo += 1;
            }
            let h = (xi - sx[lo]).max(sx[lo + q - 1] - xi).max(1e-12);
            let mut acc = vec![0.0; g];
            let mut wsum = 0.0;
            for j in 0..n {
                let u = (x[j] - xi).abs() / h;
                if u < 1.0 {
                    let w = (1.0 - u * u * u).powi(3);
                    wsum += w;
                    for (a, v) in acc.iter_mut().zip(&l0[j * g..(j + 1) * g]) {
                        *a += w * v;
                    }
                }
            }
            acc.iter().map(|a| a / wsum).collect()
        })
        .collect();
    rows.concat()
}

/// Rank by Gaussian elimination with partial pivoting (tolerance `1e-7` relative, as R's `qr`).
pub(crate) fn rank(x: &[f64], n: usize, p: usize) -> usize {
    let mut a = x.to_vec();
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    let (mut r, mut row) = (0, 0);
    for c in 0..p {
        if row >= n {
            break;
        }
        let piv = (row..n).max_by(|&i, &j| a[i * p + c].abs().total_cmp(&a[j * p + c].abs()));
        let Some(piv) = piv else { break };
        if a[piv * p + c].abs() <= 1e-7 * scale {
            continue;
        }
        for k in 0..p {
            a.swap(row * p + k, piv * p + k);
        }
        for i in row + 1..n {
            let f = a[i * p + c] / a[row * p + c];
            for k in c..p {
                a[i * p + k] -= f * a[row * p + k];
            }
        }
        row += 1;
        r += 1;
    }
    r
}

/// Inverse of a small square matrix (Gauss-Jordan); `None` if singular.
pub(crate) fn invert(a: &[f64], p: usize) -> Option<Vec<f64>> {
    let mut m = a.to_vec();
    let mut inv: Vec<f64> = (0..p * p)
        .map(|k| if k / p == k % p { 1.0 } else { 0.0 })
        .collect();
    for c in 0..p {
        let piv = (c..p).max_by(|&i, &j| m[i * p + c].abs().total_cmp(&m[j * p + c].abs()))?;
        if m[piv * p + c].abs() < 1e-12 {
            return None;
        }
        for k in 0..p {
            m.swap(c * p + k, piv * p + k);
            inv.swap(c * p + k, piv * p + k);
        }
        let d = m[c * p + c];
        for k in 0..p {
            m[c * p + k] /= d;
            inv[c * p + k] /= d;
        }
        for i in (0..p).filter(|&i| i != c) {
            let f = m[i * p + c];
            for k in 0..p {
                m[i * p + k] -= f * m[c * p + k];
                inv[i * p + k] -= f * inv[c * p + k];
            }
        }
    }
    Some(inv)
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `(A + ridge I) x = b` for a small symmetric positive definite `A` (Cholesky).
pub(crate) fn solve_spd(a: &[f64], b: &[f64], p: usize, ridge: f64) -> Option<Vec<f64>> {
    let mut l = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..=i {
            let mut s = a[i * p + j] + if i == j { ridge } else { 0.0 };
            for k in 0..j {
                s -= l[i * p + k] * l[j * p + k];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * p + i] = s.sqrt();
            } else {
                l[i * p + j] = s / l[j * p + j];
            }
        }
    }
    let mut z = b.to_vec();
    for i in 0..p {
        for k in 0..i {
            z[i] -= l[i * p + k] * z[k];
        }
        z[i] /= l[i * p + i];
    }
    for i in (0..p).rev() {
        for k in i + 1..p {
            z[i] -= l[k * p + i] * z[k];
        }
        z[i] /= l[i * p + i];
    }
    Some(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spline_maximum_of_a_cubic_is_exact() {
        let x: Vec<f64> = (0..21).map(|i| -10.0 + i as f64).collect();
        // A cubic (the FMM spline reproduces it) with its maximum at 1.3.
        let y: Vec<f64> = x
            .iter()
            .map(|v| -(v - 1.3f64).powi(2) + 0.01 * (v - 1.3f64).powi(3))
            .collect();
        assert!((maximize_interpolant(&x, &y) - 1.3).abs() < 1e-9);
    }
}
