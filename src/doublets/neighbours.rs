//! How many simulated doublets sit among each cell's nearest neighbours (step 7 of [`super`]),
//! by an exact search that keeps counts, not neighbour tables.
//!
//! The result is the one [`crate::neighbors::knn`] with [`crate::neighbors::Method::Exact`]
//! gives (the same candidate rule and the same `f64` re-ranking with ties broken by index),
//! counted: Scrublet only needs the number of simulated cells among the `k` nearest, so the
//! search skips the neighbour tables and is organised for that count:
//! - the dot products of a block of query cells with a block of reference cells come from one
//!   dense product (`faer`) laid out reference-major, so that each query's values are
//!   contiguous;
//! - a query's candidates are ranked by `|r|^2 - 2 q.r`, which orders references as the
//!   squared distance `|q|^2 + |r|^2 - 2 q.r` does (the query's norm is the same for all);
//! - the `m = k + 8` best candidates (self included) are kept with a buffered selection: values
//!   below the current `m`-th best go to a buffer of `2m`, which is cut back to the `m` best
//!   (under the total order (value, index)) when full, so a reference costs one comparison;
//! - the candidates are re-ranked by their distance recomputed in `f64`, equal distances by
//!   index, the cell itself first, and the simulated cells among the first `k` are counted.
//!
//! Every block has a fixed shape and every reduction a fixed order, so the counts do not depend
//! on the number of threads.

use rayon::prelude::*;

/// Query cells per block (columns of the dot-product block).
const QB: usize = 64;
/// Reference cells per block (rows of the dot-product block, contiguous per query).
const RB: usize = 1024;
/// Candidates kept beyond the `k` neighbours before the `f64` re-ranking (as
/// [`crate::neighbors::knn`]'s exact search).
const EXTRA: usize = 8;

/// For each of the `n_all` rows of `x` (row-major, `d` columns), the number of rows with index
/// `>= n_obs` among its `k` nearest rows (Euclidean), the row itself included as the first.
/// Requires `1 <= k <= n_all`, `d >= 1` and finite values (checked by the caller).
pub(super) fn simulated_neighbour_counts(
    x: &[f32],
    n_all: usize,
    d: usize,
    n_obs: usize,
    k: usize,
) -> Vec<u32> {
    let sq: Vec<f32> = x
        .par_chunks(d)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect();
    // candidates, self included: k - 1 others + EXTRA + the cell itself
    let m = (k + EXTRA).min(n_all);
    let blocks: Vec<Vec<u32>> = (0..n_all.div_ceil(QB))
        .into_par_iter()
        .map(|qb| {
            let q0 = qb * QB;
            let q1 = (q0 + QB).min(n_all);
            let nq = q1 - q0;
            // d x nq view of the queries (their rows, read column-major)
            let qt = faer::MatRef::from_column_major_slice(&x[q0 * d..q1 * d], d, nq);
            let mut dots = faer::Mat::<f32>::zeros(RB, nq);
            let mut bufs: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(RB + 2 * m); nq];
            let mut taus = vec![f32::INFINITY; nq];
            for r0 in (0..n_all).step_by(RB) {
                let r1 = (r0 + RB).min(n_all);
                let nr = r1 - r0;
                let refs = faer::MatRef::from_row_major_slice(&x[r0 * d..r1 * d], nr, d);
                faer::linalg::matmul::matmul(
                    dots.as_mut().submatrix_mut(0, 0, nr, nq),
                    faer::Accum::Replace,
                    refs,
                    qt,
                    1.0f32,
                    faer::Par::Seq,
                );
                crate::cpu::clear_upper_simd_state_here();
                let sqr = &sq[r0..r1];
                for (a, (buf, tau)) in bufs.iter_mut().zip(taus.iter_mut()).enumerate() {
                    scan(&dots.col_as_slice(a)[..nr], sqr, r0 as u32, m, buf, tau);
                    if buf.len() > m {
                        flush(buf, m, tau);
                    }
                }
            }
            bufs.into_iter()
                .enumerate()
                .map(|(a, mut buf)| {
                    keep_best(&mut buf, m);
                    count(x, d, q0 + a, &buf, n_obs, k)
                })
                .collect()
        })
        .collect();
    blocks.into_iter().flatten().collect()
}

/// Offers the references `r0 + b` with values `sqr[b] - 2 col[b]` to the query's buffer.
#[inline]
fn scan(col: &[f32], sqr: &[f32], r0: u32, m: usize, buf: &mut Vec<(f32, u32)>, tau: &mut f32) {
    const W: usize = 8;
    let n = col.len().min(sqr.len());
    let mut b = 0;
    while b + W <= n {
        let mut v = [0f32; W];
        let mut any = false;
        for l in 0..W {
            v[l] = sqr[b + l] - 2.0 * col[b + l];
            any |= v[l] < *tau;
        }
        if any {
            for (l, &vl) in v.iter().enumerate() {
                if vl < *tau {
                    push(buf, m, tau, vl, r0 + (b + l) as u32);
                }
            }
        }
        b += W;
    }
    while b < n {
        let v = sqr[b] - 2.0 * col[b];
        if v < *tau {
            push(buf, m, tau, v, r0 + b as u32);
        }
        b += 1;
    }
}

/// Adds a candidate; once a bound is set (after the first reference block), a full buffer
/// (`2m`) is cut back to the `m` best. References arrive in increasing index, so a later one
/// equal to the bound loses to the kept one and a strict comparison is exact.
#[inline]
fn push(buf: &mut Vec<(f32, u32)>, m: usize, tau: &mut f32, v: f32, j: u32) {
    buf.push((v, j));
    if buf.len() >= 2 * m && tau.is_finite() {
        flush(buf, m, tau);
    }
}

/// Cuts the buffer back to its `m` best and lowers the bound to the worst of them.
fn flush(buf: &mut Vec<(f32, u32)>, m: usize, tau: &mut f32) {
    keep_best(buf, m);
    *tau = buf.iter().map(|p| p.0).fold(f32::NEG_INFINITY, f32::max);
}

/// Keeps the `m` smallest entries under the order (value, index).
fn keep_best(buf: &mut Vec<(f32, u32)>, m: usize) {
    if buf.len() > m {
        buf.select_nth_unstable_by(m - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        buf.truncate(m);
    }
}

/// Simulated cells (index `>= n_obs`) among the `k` nearest of cell `i`: the cell itself, then
/// the candidates by `f64` distance, equal distances by index.
fn count(x: &[f32], d: usize, i: usize, cand: &[(f32, u32)], n_obs: usize, k: usize) -> u32 {
    let a = &x[i * d..(i + 1) * d];
    let mut ranked: Vec<(f64, u32)> = cand
        .iter()
        .filter(|p| p.1 as usize != i)
        .map(|&(_, j)| {
            let b = &x[j as usize * d..(j as usize + 1) * d];
            let s: f64 = a
                .iter()
                .zip(b)
                .map(|(&u, &v)| {
                    let t = u as f64 - v as f64;
                    t * t
                })
                .sum();
            (s, j)
        })
        .collect();
    ranked.sort_unstable_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
    let others = ranked
        .iter()
        .take(k - 1)
        .filter(|p| p.1 as usize >= n_obs)
        .count();
    (others + usize::from(i >= n_obs)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Brute force: all distances in f64, sorted by (distance, index), self first.
    fn brute(x: &[f32], n: usize, d: usize, n_obs: usize, k: usize) -> Vec<u32> {
        (0..n)
            .map(|i| {
                let mut all: Vec<(f64, usize)> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| {
                        let s: f64 = (0..d)
                            .map(|c| (x[i * d + c] as f64 - x[j * d + c] as f64).powi(2))
                            .sum();
                        (s, j)
                    })
                    .collect();
                all.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
                let c = all[..k - 1].iter().filter(|p| p.1 >= n_obs).count();
                (c + usize::from(i >= n_obs)) as u32
            })
            .collect()
    }

    #[test]
    fn counts_match_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // 2,500 points (several blocks, a partial last one), 7 dimensions, three clusters
        let (n, d, n_obs) = (2500, 7, 900);
        let x: Vec<f32> = (0..n * d)
            .map(|t| {
                let centre = ((t / d) % 3) as f32 * 2.0;
                centre + rng.gen_range(-1.0f32..1.0)
            })
            .collect();
        for k in [1, 2, 15, 40] {
            assert_eq!(
                simulated_neighbour_counts(&x, n, d, n_obs, k),
                brute(&x, n, d, n_obs, k),
                "k = {k}"
            );
        }
        // duplicated points: ties are broken by index
        let mut y = x[..200 * d].to_vec();
        y.extend_from_slice(&x[..200 * d]);
        assert_eq!(
            simulated_neighbour_counts(&y, 400, d, 150, 9),
            brute(&y, 400, d, 150, 9)
        );
    }
}
