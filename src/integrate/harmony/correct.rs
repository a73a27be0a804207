//! The ridge (mixture of experts) correction: per-batch weighted sums, the arrow-shaped
//! ridge system solved in closed form, and the corrected embedding.

use super::kernels::{cosine_normalize, normalize_rows};
use super::State;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

impl State {
    /// Per batch `Σ_{i∈b} R_ik z_orig,i` (`nb x k x d`, f64).
    fn weighted_sums(&self) -> Vec<f64> {
        let (k, d, nb) = (self.k, self.d, self.nb);
        let x = &self.z_orig;
        let partials: Vec<Vec<f32>> = self
            .chunks
            .par_iter()
            .map(|ch| {
                let mut out = vec![0.0f32; k * d];
                let nc = ch.end - ch.start;
                let rt = MatRef::from_row_major_slice(&self.r[ch.start * k..ch.end * k], nc, k)
                    .transpose();
                let xm = MatRef::from_row_major_slice(&x[ch.start * d..ch.end * d], nc, d);
                let dst = MatMut::from_row_major_slice_mut(&mut out, k, d);
                faer::linalg::matmul::matmul(dst, Accum::Replace, rt, xm, 1.0f32, Par::Seq);
                crate::cpu::clear_upper_simd_state_here();
                out
            })
            .collect();
        let mut sums = vec![0.0f64; nb * k * d];
        for (ch, p) in self.chunks.iter().zip(&partials) {
            let g = ch.batch;
            for (a, &v) in sums[g * k * d..(g + 1) * k * d].iter_mut().zip(p) {
                *a += v as f64;
            }
        }
        sums
    }

    /// The ridge (mixture of experts) correction of `Z_orig` into `Z_corr`, then `Z_cos`.
    pub(super) fn correct(&mut self) {
        let (k, d, nb) = (self.k, self.d, self.nb);
        self.recount();
        // Per batch and cluster `t = Σ_{i∈b} R_ik z_orig,i` (nb x k x d). Batch coefficients
        // W[b][c] (d values) of each cluster, from the arrow-shaped system
        // [[Σ_b O_b, Oᵀ], [O, diag(O + λ)]] [w0; w] = [Σ_b t_b; t].
        let t = self.weighted_sums();
        let mut lam = vec![self.lambda.unwrap_or(0.0); nb];
        let mut w = vec![0.0f32; nb * k * d];
        let mut ob = vec![0.0f64; nb];
        let mut tj = vec![0.0f64; nb];
        let mut wj = vec![0.0f64; nb];
        for c in 0..k {
            for (b, v) in ob.iter_mut().enumerate() {
                *v = self.o[b * k + c];
            }
            if self.lambda.is_none() {
                // λ_kb = α E_kb (the references' `find_lambda`).
                for (b, l) in lam.iter_mut().enumerate() {
                    *l = self.alpha * self.size[c] * self.pr_b[b];
                }
            }
            for j in 0..d {
                for (b, v) in tj.iter_mut().enumerate() {
                    *v = t[(b * k + c) * d + j];
                }
                let Some(w0) = solve_arrow(&ob, &lam, &tj, &mut wj) else {
                    break; // an empty cluster corrects nothing and keeps its centroid
                };
                // The intercept `w0` becomes the cluster's centroid (scaled to unit length below).
                self.y[c * d + j] = w0 as f32;
                for (b, &v) in wj.iter().enumerate() {
                    w[(b * k + c) * d + j] = v as f32;
                }
            }
        }
        // Z_corr = Z_orig - R W[b] per chunk (one batch per chunk).
        self.z_corr.copy_from_slice(&self.z_orig);
        let r = &self.r;
        let chunks = &self.chunks;
        let w = &w;
        let mut pieces: Vec<&mut [f32]> = Vec::with_capacity(chunks.len());
        let mut rest: &mut [f32] = &mut self.z_corr;
        for ch in chunks {
            let (head, tail) = rest.split_at_mut((ch.end - ch.start) * d);
            pieces.push(head);
            rest = tail;
        }
        pieces
            .into_par_iter()
            .zip(chunks.par_iter())
            .for_each(|(zc, ch)| {
                let nc = ch.end - ch.start;
                let rm = MatRef::from_row_major_slice(&r[ch.start * k..ch.end * k], nc, k);
                let wb = MatRef::from_row_major_slice(
                    &w[ch.batch * k * d..(ch.batch + 1) * k * d],
                    k,
                    d,
                );
                let dst = MatMut::from_row_major_slice_mut(zc, nc, d);
                faer::linalg::matmul::matmul(dst, Accum::Add, rm, wb, -1.0f32, Par::Seq);
                crate::cpu::clear_upper_simd_state_here();
            });
        cosine_normalize(&self.z_corr, &mut self.z_cos, d);
        normalize_rows(&mut self.y, d);
    }
}

/// Batch coefficients of one cluster and one component: solves
/// `[[Σ_b o_b, oᵀ], [o, diag(o + λ)]] [w_0; w] = [Σ_b t_b; t]` (the ridge normal equations of
/// the design `[1, one-hot batch]` weighted by the cluster's assignments, with no penalty on the
/// intercept) through the Schur complement `Σ_b o_b λ / (o_b + λ)` and writes `w` (the
/// intercept `w_0` is not removed from the cells; it is returned, the cluster's centroid).
/// Returns `None`, leaving `w` untouched, when the cluster holds no weight.
fn solve_arrow(o: &[f64], lambda: &[f64], t: &[f64], w: &mut [f64]) -> Option<f64> {
    let schur: f64 = o
        .iter()
        .zip(lambda)
        .map(|(&v, &l)| ratio(v.max(0.0) * l, v.max(0.0) + l))
        .sum();
    if schur <= 1e-12 {
        return None;
    }
    let num: f64 = o
        .iter()
        .zip(lambda)
        .zip(t)
        .map(|((&v, &l), &tb)| tb - ratio(v.max(0.0) * tb, v.max(0.0) + l))
        .sum();
    let w0 = num / schur;
    for (((wb, &v), &l), &tb) in w.iter_mut().zip(o).zip(lambda).zip(t) {
        let v = v.max(0.0);
        *wb = ratio(tb - v * w0, v + l);
    }
    Some(w0)
}

/// `a / b`, 0 when `b` is 0 (a batch with no weight in a cluster and, with the estimated
/// penalty, `λ_kb = 0`: it has nothing to correct there).
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_closed_form_matches_a_dense_solve() {
        // [[a, oᵀ], [o, diag(o + λ)]] [w0; w] = [Σt; t] for 3 batches, by Gauss-Jordan.
        let o = [3.0f64, 0.5, 7.0];
        // A different penalty per batch, as the estimated λ_kb = α E_kb gives.
        let lambda = [1.0f64, 0.3, 2.5];
        let t = [2.0f64, -1.0, 4.0];
        let mut w = [0.0f64; 3];
        assert!(solve_arrow(&o, &lambda, &t, &mut w).is_some());
        let mut m = [[0.0f64; 5]; 4];
        m[0][0] = o.iter().sum();
        m[0][4] = t.iter().sum();
        for b in 0..3 {
            m[0][b + 1] = o[b];
            m[b + 1][0] = o[b];
            m[b + 1][b + 1] = o[b] + lambda[b];
            m[b + 1][4] = t[b];
        }
        for p in 0..4 {
            for r in 0..4 {
                if r != p {
                    let f = m[r][p] / m[p][p];
                    let pivot = m[p];
                    for (a, b) in m[r].iter_mut().zip(pivot) {
                        *a -= f * b;
                    }
                }
            }
        }
        for b in 0..3 {
            let dense = m[b + 1][4] / m[b + 1][b + 1];
            assert!((dense - w[b]).abs() < 1e-12, "{b}: {dense} vs {}", w[b]);
        }
        assert!(solve_arrow(&[0.0; 3], &lambda, &t, &mut w).is_none());
    }
}
