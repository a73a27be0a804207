//! The curve `q(d) = 1 / (1 + a d^(2b))` of the layout's low-dimensional similarities, fitted
//! to `min_dist` and `spread`, and the default number of epochs.

use crate::error::{Error, Result};

/// Fits `a`, `b` of `q(d) = 1 / (1 + a d^(2b))` by least squares to the target `1` for
/// `d < min_dist` and `exp(-(d - min_dist) / spread)` otherwise, at 300 evenly spaced `d` in
/// `[0, 3 spread]` (umap-learn's `find_ab_params`, which uses scipy's `curve_fit`:
/// Levenberg-Marquardt from `a = b = 1`; the same here). Scanpy's defaults (`min_dist` 0.5,
/// `spread` 1) give `a ≈ 0.583`, `b ≈ 1.334`.
pub fn find_ab_params(spread: f64, min_dist: f64) -> Result<(f64, f64)> {
    if !(spread.is_finite() && spread > 0.0) {
        return Err(Error::option("spread", "must be a positive number"));
    }
    if !(min_dist.is_finite() && min_dist >= 0.0) {
        return Err(Error::option("min_dist", "must be a number >= 0"));
    }
    let n = 300;
    let xs: Vec<f64> = (0..n)
        .map(|i| spread * 3.0 * i as f64 / (n - 1) as f64)
        .collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    // residuals and Jacobian of f(x) = 1 / (1 + a x^(2b))
    let eval = |a: f64, b: f64| -> (f64, [f64; 3], [f64; 2]) {
        let (mut sse, mut jtj, mut jtr) = (0.0, [0.0; 3], [0.0; 2]);
        for (&x, &y) in xs.iter().zip(&ys) {
            let (u, lnx2) = if x > 0.0 {
                (x.powf(2.0 * b), 2.0 * x.ln())
            } else {
                (0.0, 0.0)
            };
            let den = 1.0 + a * u;
            let f = 1.0 / den;
            let r = f - y;
            let da = -u / (den * den);
            let db = -a * u * lnx2 / (den * den);
            sse += r * r;
            jtj[0] += da * da;
            jtj[1] += da * db;
            jtj[2] += db * db;
            jtr[0] += da * r;
            jtr[1] += db * r;
        }
        (sse, jtj, jtr)
    };
    let (mut a, mut b) = (1.0f64, 1.0f64);
    let (mut sse, mut jtj, mut jtr) = eval(a, b);
    let mut lambda = 1e-3;
    for _ in 0..500 {
        // Levenberg-Marquardt step with Marquardt's diagonal scaling
        let m00 = jtj[0] * (1.0 + lambda);
        let m11 = jtj[2] * (1.0 + lambda);
        let det = m00 * m11 - jtj[1] * jtj[1];
        if !(det.is_finite() && det.abs() > 0.0) {
            break;
        }
        let da = -(m11 * jtr[0] - jtj[1] * jtr[1]) / det;
        let db = -(m00 * jtr[1] - jtj[1] * jtr[0]) / det;
        let (na, nb) = (a + da, b + db);
        let (nsse, njtj, njtr) = eval(na, nb);
        if nsse.is_finite() && nsse <= sse && na > 0.0 && nb > 0.0 {
            let done = (sse - nsse) <= 1e-15 * sse.max(1e-300)
                && da.abs() <= 1e-12 * a.abs()
                && db.abs() <= 1e-12 * b.abs();
            a = na;
            b = nb;
            sse = nsse;
            jtj = njtj;
            jtr = njtr;
            lambda = (lambda / 10.0).max(1e-12);
            if done {
                break;
            }
        } else {
            lambda *= 10.0;
            if lambda > 1e12 {
                break;
            }
        }
    }
    if !(a.is_finite() && b.is_finite() && a > 0.0 && b > 0.0) {
        return Err(Error::data(
            "umap",
            format!("curve fit for spread {spread}, min_dist {min_dist} failed"),
        ));
    }
    Ok((a, b))
}

/// The number of epochs umap-learn and Scanpy use when none is given: 500 for at most 10,000
/// cells, else 200.
pub fn default_n_epochs(n_cells: usize) -> usize {
    if n_cells <= 10_000 {
        500
    } else {
        200
    }
}
