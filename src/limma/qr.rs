//! Householder QR of a small design matrix (samples x coefficients): the least-squares core
//! of [`lm_fit`](super::lm_fit) and of the trend regression of
//! [`squeeze_var`](super::squeeze_var).

use crate::error::{Error, Result};
use ndarray::{Array2, ArrayView2};

/// Householder QR of a tall matrix (column-major copy), enough for small designs.
pub(super) struct Qr {
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
    pub(super) fn new(x: ArrayView2<f64>, context: &str) -> Result<Qr> {
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
    pub(super) fn qt_apply(&self, y: &mut [f64]) {
        for (k, u) in self.v.iter().enumerate() {
            let dot: f64 = (k..self.n).map(|i| u[i] * y[i]).sum();
            for i in k..self.n {
                y[i] -= 2.0 * dot * u[i];
            }
        }
    }

    /// Solves `R b = e[..p]` by back substitution.
    pub(super) fn solve_r(&self, e: &[f64], b: &mut [f64]) {
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
    pub(super) fn chol2inv(&self) -> Array2<f64> {
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
