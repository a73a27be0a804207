//! Small dense helpers of the solvers: Gaussian vectors, Gram-Schmidt orthonormalization with a
//! seeded restart for dependent columns, and conversions between column lists and row-major
//! blocks.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

pub(super) fn normal_vec(len: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..len).map(|_| StandardNormal.sample(rng)).collect()
}

pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub(super) fn axpy(y: &mut [f64], alpha: f64, x: &[f64]) {
    for (a, b) in y.iter_mut().zip(x) {
        *a += alpha * b;
    }
}

/// Orthogonalize `v` against the orthonormal vectors `basis` (classical Gram-Schmidt, twice).
pub(super) fn reorthogonalize(v: &mut [f64], basis: &[Vec<f64>]) {
    for _ in 0..2 {
        for q in basis {
            let h = dot(q, v);
            axpy(v, -h, q);
        }
    }
}

/// Orthogonalize `v` against the orthonormal `basis` and normalize it; returns its norm after
/// orthogonalization. If `v` is numerically in the span of `basis` (norm below `1e-8` of its
/// norm before), it is replaced by a seeded random unit vector orthogonal to `basis` and the
/// returned norm is 0 (an exact breakdown: the new direction is decoupled).
pub(super) fn orth_normalize(v: &mut [f64], basis: &[Vec<f64>], rng: &mut ChaCha8Rng) -> f64 {
    let norm0 = dot(v, v).sqrt();
    reorthogonalize(v, basis);
    let norm = dot(v, v).sqrt();
    if norm > 1e-8 * norm0 && norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
        return norm;
    }
    for _ in 0..4 {
        let fresh = normal_vec(v.len(), rng);
        v.copy_from_slice(&fresh);
        let n0 = dot(v, v).sqrt();
        reorthogonalize(v, basis);
        let nr = dot(v, v).sqrt();
        if nr > 1e-8 * n0 {
            v.iter_mut().for_each(|x| *x /= nr);
            break;
        }
    }
    0.0
}

/// Orthonormalize the columns of `cols` in place (Gram-Schmidt, twice per column, see
/// [`orth_normalize`] for columns in the span of the previous ones).
pub(super) fn orthonormalize(cols: &mut [Vec<f64>], rng: &mut ChaCha8Rng) {
    for c in 0..cols.len() {
        let (done, rest) = cols.split_at_mut(c);
        orth_normalize(&mut rest[0], done, rng);
    }
}

pub(super) fn cols_to_rows(cols: &[Vec<f64>], len: usize) -> Vec<f64> {
    let l = cols.len();
    let mut out = vec![0.0; len * l];
    for (c, col) in cols.iter().enumerate() {
        for (r, &v) in col.iter().enumerate() {
            out[r * l + c] = v;
        }
    }
    out
}

pub(super) fn rows_to_cols(rows: &[f64], len: usize, l: usize) -> Vec<Vec<f64>> {
    (0..l)
        .map(|c| (0..len).map(|r| rows[r * l + c]).collect())
        .collect()
}

/// `rows` (`len x l`, row-major) times `m` (`l x k`, faer) -> `len x k` row-major, parallel
/// over rows.
pub(super) fn rows_times(
    rows: &[f64],
    len: usize,
    l: usize,
    m: faer::MatRef<'_, f64>,
    k: usize,
) -> Vec<f64> {
    // groups of G columns of `m`, each group stored `t`-major (`l x G`, the last padded with
    // zeros); each output is its own left-to-right sum from -0.0 (as `Iterator::sum`), the G
    // outputs of a group accumulated side by side (independent lanes, so the compiler can
    // vectorize across them without reordering any sum)
    const G: usize = 8;
    let groups = k.div_ceil(G);
    let mut mg = vec![0.0f64; groups * l * G];
    for (g, block) in mg.chunks_exact_mut(l * G).enumerate() {
        for (t, row) in block.chunks_exact_mut(G).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let c = g * G + j;
                if c < k {
                    *v = m[(t, c)];
                }
            }
        }
    }
    let mut out = vec![0.0; len * k];
    out.par_chunks_mut(k)
        .enumerate()
        .with_min_len(256)
        .for_each(|(i, o)| {
            let r = &rows[i * l..(i + 1) * l];
            for (oc, block) in o.chunks_mut(G).zip(mg.chunks_exact(l * G)) {
                let mut acc = [-0.0f64; G];
                for (&a, mrow) in r.iter().zip(block.chunks_exact(G)) {
                    for (s, &b) in acc.iter_mut().zip(mrow) {
                        *s += a * b;
                    }
                }
                oc.copy_from_slice(&acc[..oc.len()]);
            }
        });
    debug_assert_eq!(out.len(), len * k);
    out
}
