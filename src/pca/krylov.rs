//! Randomized block Krylov iteration for the truncated SVD ([`super::Solver::Krylov`]).
//!
//! Musco and Musco (2015), "Randomized block Krylov methods for stronger and faster
//! approximate singular value decomposition" (NeurIPS), algorithm 2, on the gene side: with a
//! Gaussian `p x b` start block `G` the Krylov space is
//! `span[G, (A^T A) G, ..., (A^T A)^q G]`; its leading Ritz vectors approximate the top right
//! singular vectors of `A` to a relative error that falls like `exp(-q / sqrt(gap))` (subspace
//! iteration: `exp(-q * gap)`), so a few products reach what subspace iteration needs many
//! for.
//!
//! Each block is orthonormalized against all earlier ones as it is made, so the basis stays
//! orthonormal in floating point (the monomial basis `(A^T A)^i G` alone loses the small
//! directions after a few steps):
//! - block classical Gram-Schmidt, twice: `W <- W - Q_j (Q_j^T W)` for every earlier block
//!   `Q_j`;
//! - Cholesky QR, twice: `R^T R = W^T W`, `W <- W R^{-1}`. When `W^T W` is not numerically
//!   positive definite (the Krylov space has stopped growing, or the matrix has low rank), the
//!   block falls back to Gram-Schmidt column by column against the whole basis, with a seeded
//!   random unit vector for a column in the span of the others (as the randomized solver does).
//!
//! Every product with `A` accumulates in `f32`, the final one too (the basis is several times
//! wider than the components, so that product is the largest; the embedding is stored in
//! `f32` anyway); the Gram matrix of the Rayleigh-Ritz step and everything after it is `f64`. Every small
//! product runs sequentially and every reduction has a fixed order, so the result does not
//! depend on the number of threads.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::operator::Operator;
use super::randomized::{rayleigh_ritz, Svd};
use super::vectors::{normal_vec, orth_normalize};
use crate::error::Result;

/// A block of the basis: `p x width` row-major.
struct Block {
    rows: Vec<f64>,
    width: usize,
}

/// Returns the decomposition and the number of applications of `A^T A`.
pub(super) fn block_krylov(
    op: &Operator<'_>,
    k: usize,
    n_oversamples: usize,
    n_iter: usize,
    seed: u64,
) -> Result<(Svd, usize)> {
    let (n, p) = (op.n, op.p);
    let cap = op.n_total.min(p);
    let b = (k + n_oversamples).min(cap);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut start = vec![0.0f64; p * b];
    for c in 0..b {
        for (r, v) in normal_vec(p, &mut rng).into_iter().enumerate() {
            start[r * b + c] = v;
        }
    }
    let mut basis: Vec<Block> = Vec::with_capacity(n_iter + 1);
    orthonormalize_block(&basis, &mut start, p, b, &mut rng);
    basis.push(Block {
        rows: start,
        width: b,
    });
    let mut total = b;
    let mut y = vec![0.0f64; n * b];
    let mut applications = 0;
    for _ in 0..n_iter {
        if total >= cap {
            break;
        }
        let Some(last) = basis.last() else {
            break;
        };
        let width = last.width;
        op.mul::<f32>(&last.rows, width, &mut y[..n * width]);
        let z = op.tmul::<f32>(&y[..n * width], width)?;
        applications += 1;
        let keep = width.min(cap - total);
        let mut w = if keep == width {
            z
        } else {
            z.chunks(width)
                .flat_map(|r| r[..keep].iter().copied())
                .collect()
        };
        orthonormalize_block(&basis, &mut w, p, keep, &mut rng);
        basis.push(Block {
            rows: w,
            width: keep,
        });
        total += keep;
    }
    // the whole basis, p x total row-major
    let mut vr = vec![0.0f64; p * total];
    vr.par_chunks_mut(total).enumerate().for_each(|(r, out)| {
        let mut c0 = 0;
        for blk in &basis {
            out[c0..c0 + blk.width].copy_from_slice(&blk.rows[r * blk.width..(r + 1) * blk.width]);
            c0 += blk.width;
        }
    });
    drop(basis);
    let mut y = vec![0.0f64; n * total];
    Ok((
        rayleigh_ritz::<f32>(op, &vr, total, k, &mut y, gram_blocked)?,
        applications,
    ))
}

/// One block's part of `Y^T Y` (`Y`: rows x `l`, row-major): one sequential dense product per
/// fixed block of rows, merged by the fixed tree ([`Operator::sums`]; the Krylov basis is
/// wide, so the product is worth a matrix kernel).
fn gram_blocked(y: &[f64], rows: std::ops::Range<usize>, l: usize) -> Vec<f64> {
    let m = rows.len();
    let ym = faer::MatRef::from_row_major_slice(&y[rows.start * l..rows.end * l], m, l);
    let mut g = faer::Mat::<f64>::zeros(l, l);
    faer::linalg::matmul::matmul(
        g.as_mut(),
        faer::Accum::Replace,
        ym.transpose(),
        ym,
        1.0,
        faer::Par::Seq,
    );
    crate::cpu::clear_upper_simd_state_here();
    let mut out = vec![0.0f64; l * l];
    for a in 0..l {
        for b in 0..l {
            out[a * l + b] = g[(a, b)];
        }
    }
    out
}

/// Makes the columns of `w` (`p x width`, row-major) orthonormal and orthogonal to every block
/// of `basis` (see the module documentation).
fn orthonormalize_block(
    basis: &[Block],
    w: &mut [f64],
    p: usize,
    width: usize,
    rng: &mut ChaCha8Rng,
) {
    let original = w.to_vec();
    let before = column_norms(w, width);
    for _ in 0..2 {
        for q in basis {
            project_out(&q.rows, q.width, w, width, p);
        }
    }
    // a column (nearly) in the span of the basis keeps only rounding noise: not a direction
    let independent = column_norms(w, width)
        .iter()
        .zip(&before)
        .all(|(&after, &b)| after > 1e-8 * b && after > 0.0);
    let ok = independent && cholesky_qr(w, p, width) && cholesky_qr(w, p, width);
    if !ok {
        w.copy_from_slice(&original);
        gram_schmidt_fallback(basis, w, p, width, rng);
    }
}

/// Euclidean norm of each column of a row-major matrix with `width` columns.
fn column_norms(w: &[f64], width: usize) -> Vec<f64> {
    let mut sq = vec![0.0f64; width];
    for row in w.chunks(width) {
        for (s, &v) in sq.iter_mut().zip(row) {
            *s += v * v;
        }
    }
    sq.into_iter().map(f64::sqrt).collect()
}

/// `W <- W - Q (Q^T W)`, sequential products.
fn project_out(q: &[f64], qw: usize, w: &mut [f64], width: usize, p: usize) {
    let qm = faer::MatRef::from_row_major_slice(q, p, qw);
    let mut c = faer::Mat::<f64>::zeros(qw, width);
    {
        let wm = faer::MatRef::from_row_major_slice(w, p, width);
        faer::linalg::matmul::matmul(
            c.as_mut(),
            faer::Accum::Replace,
            qm.transpose(),
            wm,
            1.0,
            faer::Par::Seq,
        );
    }
    let wm = faer::MatMut::from_row_major_slice_mut(w, p, width);
    faer::linalg::matmul::matmul(wm, faer::Accum::Add, qm, c.as_ref(), -1.0, faer::Par::Seq);
    crate::cpu::clear_upper_simd_state_here();
}

/// One Cholesky QR step: `G = W^T W = R^T R`, `W <- W R^{-1}`. Returns `false` (leaving `w`
/// unchanged) when a pivot of `G` is not above `1e-10` of its largest diagonal entry.
fn cholesky_qr(w: &mut [f64], p: usize, width: usize) -> bool {
    let mut g = faer::Mat::<f64>::zeros(width, width);
    {
        let wm = faer::MatRef::from_row_major_slice(w, p, width);
        faer::linalg::matmul::matmul(
            g.as_mut(),
            faer::Accum::Replace,
            wm.transpose(),
            wm,
            1.0,
            faer::Par::Seq,
        );
    }
    crate::cpu::clear_upper_simd_state_here();
    // upper-triangular R, row-major, by the Cholesky-Banachiewicz recurrence on G
    let big = (0..width).map(|i| g[(i, i)]).fold(0.0f64, f64::max);
    if !(big > 0.0 && big.is_finite()) {
        return false;
    }
    let mut r = vec![0.0f64; width * width];
    for i in 0..width {
        let mut d = g[(i, i)];
        for t in 0..i {
            d -= r[t * width + i] * r[t * width + i];
        }
        if d.is_nan() || d <= 1e-10 * big {
            return false;
        }
        let rii = d.sqrt();
        r[i * width + i] = rii;
        for j in i + 1..width {
            let mut s = g[(i, j)];
            for t in 0..i {
                s -= r[t * width + i] * r[t * width + j];
            }
            r[i * width + j] = s / rii;
        }
    }
    // each row x of W solves x_new R = x (forward substitution over columns)
    w.par_chunks_mut(width).with_min_len(256).for_each(|row| {
        for j in 0..width {
            let mut s = row[j];
            for t in 0..j {
                s -= row[t] * r[t * width + j];
            }
            row[j] = s / r[j * width + j];
        }
    });
    true
}

/// Column-by-column Gram-Schmidt (twice) against the whole basis and the block's earlier
/// columns, a seeded random unit vector for a column in their span.
fn gram_schmidt_fallback(
    basis: &[Block],
    w: &mut [f64],
    p: usize,
    width: usize,
    rng: &mut ChaCha8Rng,
) {
    let mut cols: Vec<Vec<f64>> = basis
        .iter()
        .flat_map(|blk| {
            (0..blk.width).map(move |c| (0..p).map(|r| blk.rows[r * blk.width + c]).collect())
        })
        .collect();
    let before = cols.len();
    for c in 0..width {
        let mut v: Vec<f64> = (0..p).map(|r| w[r * width + c]).collect();
        orth_normalize(&mut v, &cols, rng);
        cols.push(v);
    }
    for (c, col) in cols[before..].iter().enumerate() {
        for (r, &v) in col.iter().enumerate() {
            w[r * width + c] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_off_orthonormal(blocks: &[Block], p: usize) -> f64 {
        let cols: Vec<Vec<f64>> = blocks
            .iter()
            .flat_map(|b| {
                (0..b.width).map(move |c| (0..p).map(|r| b.rows[r * b.width + c]).collect())
            })
            .collect();
        let mut worst = 0.0f64;
        for (a, u) in cols.iter().enumerate() {
            for (bi, v) in cols.iter().enumerate() {
                let d: f64 = u.iter().zip(v).map(|(x, y)| x * y).sum();
                let target = if a == bi { 1.0 } else { 0.0 };
                worst = worst.max((d - target).abs());
            }
        }
        worst
    }

    #[test]
    fn blocks_are_orthonormal_also_when_dependent() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let p = 40;
        let mut blocks = Vec::new();
        // first block random, second a copy of the first plus a little (nearly dependent),
        // third an exact copy (dependent: the fallback must give new directions)
        let mut first: Vec<f64> = (0..p * 6).map(|_| normal_vec(1, &mut rng)[0]).collect();
        orthonormalize_block(&blocks, &mut first, p, 6, &mut rng);
        let mut second: Vec<f64> = first
            .iter()
            .map(|v| v + 1e-3 * normal_vec(1, &mut rng)[0])
            .collect();
        let copy = first.clone();
        blocks.push(Block {
            rows: first,
            width: 6,
        });
        orthonormalize_block(&blocks, &mut second, p, 6, &mut rng);
        blocks.push(Block {
            rows: second,
            width: 6,
        });
        let mut third = copy;
        orthonormalize_block(&blocks, &mut third, p, 6, &mut rng);
        blocks.push(Block {
            rows: third,
            width: 6,
        });
        let off = max_off_orthonormal(&blocks, p);
        assert!(off < 1e-12, "deviation from orthonormality {off}");
    }
}
