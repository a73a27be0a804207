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
//!   below the current bound go to a buffer of `2m`, which is cut back to the `m` best (under
//!   the total order (value, index)) when full, lowering the bound to the `m`-th best, so a
//!   reference costs one comparison;
//! - the first bound of a query comes from a sample of about `8m` references (every `n / 8m`-th
//!   one, their products with the block's queries in one small dense product): the value of
//!   rank `1.5 m (sample / n) + 4` of the sample, so that about `2m` references enter the
//!   buffer (165 to 169 per query for m = 83 among 7,500 cells), not the 424 to 441 of a bound
//!   taken from the first references.
//!   When fewer than `m` values lie under it (the sample was unlucky), the query is searched
//!   again with the bound from its first `4m` references; the result is the same either way;
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
    let sample = Sample::new(x, &sq, n_all, d, m);
    let blocks: Vec<Vec<u32>> = (0..n_all.div_ceil(QB))
        .into_par_iter()
        .map(|qb| {
            let q0 = qb * QB;
            let q1 = (q0 + QB).min(n_all);
            let nq = q1 - q0;
            // d x nq view of the queries (their rows, read column-major)
            let qt = faer::MatRef::from_column_major_slice(&x[q0 * d..q1 * d], d, nq);
            let mut taus = sample.bounds(qt);
            let mut bufs: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(2 * m + 8); nq];
            let mut dots = faer::Mat::<f32>::zeros(RB, nq);
            let all: Vec<bool> = vec![true; nq];
            search(x, &sq, d, qt, m, &all, &mut dots, &mut bufs, &mut taus);
            // fewer than m values under a sampled bound: search those queries again
            let again: Vec<bool> = bufs.iter().map(|b| b.len() < m).collect();
            if again.contains(&true) {
                for (a, _) in again.iter().enumerate().filter(|p| *p.1) {
                    bufs[a].clear();
                    taus[a] = f32::INFINITY;
                }
                search(x, &sq, d, qt, m, &again, &mut dots, &mut bufs, &mut taus);
            }
            let mut ranked = Vec::with_capacity(m);
            bufs.into_iter()
                .enumerate()
                .map(|(a, mut buf)| {
                    keep_best(&mut buf, m);
                    count(x, d, q0 + a, &buf, n_obs, k, &mut ranked)
                })
                .collect()
        })
        .collect();
    blocks.into_iter().flatten().collect()
}

/// Offers every reference to the buffers of the queries `qt` (`d x nq`) marked in `which`,
/// a block of [`RB`] references at a time (their dot products with the queries in `dots`). A
/// query without a bound takes it from its first `4m` references (see [`first_block`]).
#[allow(clippy::too_many_arguments)]
fn search(
    x: &[f32],
    sq: &[f32],
    d: usize,
    qt: faer::MatRef<'_, f32>,
    m: usize,
    which: &[bool],
    dots: &mut faer::Mat<f32>,
    bufs: &mut [Vec<(f32, u32)>],
    taus: &mut [f32],
) {
    let n_all = sq.len();
    let nq = qt.ncols();
    let mut scratch = Vec::with_capacity(4 * m);
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
            if !which[a] {
                continue;
            }
            let col = &dots.col_as_slice(a)[..nr];
            if r0 == 0 && tau.is_infinite() {
                // the bound from the first 4m references, the rest scanned against it
                let head = (4 * m).min(nr);
                first_block(&col[..head], &sqr[..head], m, buf, tau, &mut scratch);
                scan(&col[head..], &sqr[head..nr], head as u32, m, buf, tau);
            } else {
                scan(col, sqr, r0 as u32, m, buf, tau);
            }
        }
    }
}

/// First bounds for the queries' scans from a sample of the references: every `stride`-th one
/// (about `8m` of them), and for each query the `rank`-th smallest of its values over the
/// sample, chosen so that about `1.5m` (plus the sample's granularity, about `2m` in all) of
/// all values lie below it. A query with fewer than `m`
/// values under its bound is searched again without it (the caller checks), so the bound only
/// saves work and never changes the result. No sample is taken when the references are too few
/// for it to help (`stride < 4`).
struct Sample {
    /// The sampled rows (`size x d`, row-major) and their squared norms.
    rows: Vec<f32>,
    sq: Vec<f32>,
    d: usize,
    rank: usize,
}

impl Sample {
    fn new(x: &[f32], sq: &[f32], n_all: usize, d: usize, m: usize) -> Sample {
        let stride = n_all / (8 * m).max(1);
        if stride < 4 {
            return Sample {
                rows: Vec::new(),
                sq: Vec::new(),
                d,
                rank: 0,
            };
        }
        let picked: Vec<usize> = (0..n_all).step_by(stride).collect();
        let size = picked.len();
        let rank = ((3 * m * size).div_ceil(2 * n_all) + 4).min(size);
        let mut rows = Vec::with_capacity(size * d);
        for &j in &picked {
            rows.extend_from_slice(&x[j * d..(j + 1) * d]);
        }
        Sample {
            rows,
            sq: picked.iter().map(|&j| sq[j]).collect(),
            d,
            rank,
        }
    }

    /// The bound of every query of `qt` (`d x nq`): the `rank`-th smallest of
    /// `|r|^2 - 2 q.r` over the sampled `r`, or infinity without a sample.
    fn bounds(&self, qt: faer::MatRef<'_, f32>) -> Vec<f32> {
        let nq = qt.ncols();
        let size = self.sq.len();
        if size == 0 {
            return vec![f32::INFINITY; nq];
        }
        let mut dots = faer::Mat::<f32>::zeros(size, nq);
        let rows = faer::MatRef::from_row_major_slice(&self.rows, size, self.d);
        faer::linalg::matmul::matmul(
            dots.as_mut(),
            faer::Accum::Replace,
            rows,
            qt,
            1.0f32,
            faer::Par::Seq,
        );
        crate::cpu::clear_upper_simd_state_here();
        let mut vals: Vec<f32> = Vec::with_capacity(size);
        (0..nq)
            .map(|a| {
                vals.clear();
                let col = dots.col_as_slice(a);
                vals.extend(col.iter().zip(&self.sq).map(|(&c, &s)| s - 2.0 * c));
                *vals.select_nth_unstable_by(self.rank - 1, f32::total_cmp).1
            })
            .collect()
    }
}

/// The first references (`0..col.len()`, a few times `m`): the bound is set to the `m`-th
/// smallest of their values (an `f32` selection, no pairs), and only the values at or below it
/// enter the buffer, so that they cost one selection over plain values and `m` (plus ties)
/// pushes.
fn first_block(
    col: &[f32],
    sqr: &[f32],
    m: usize,
    buf: &mut Vec<(f32, u32)>,
    tau: &mut f32,
    scratch: &mut Vec<f32>,
) {
    let n = col.len().min(sqr.len());
    scratch.clear();
    scratch.extend(sqr[..n].iter().zip(&col[..n]).map(|(&s, &c)| s - 2.0 * c));
    if n > m {
        let (_, &mut bound, _) = scratch.select_nth_unstable_by(m - 1, f32::total_cmp);
        for (b, (&s, &c)) in sqr[..n].iter().zip(&col[..n]).enumerate() {
            let v = s - 2.0 * c;
            if v <= bound {
                buf.push((v, b as u32));
            }
        }
        *tau = bound;
    } else {
        buf.extend(scratch.iter().enumerate().map(|(b, &v)| (v, b as u32)));
    }
}

/// Offers the references `r0 + b` with values `sqr[b] - 2 col[b]` to the query's buffer.
/// Eight values at a time are compared with the bound into a bit mask (one vector compare
/// when the target has it); only the set bits are pushed, in increasing index.
#[inline]
fn scan(col: &[f32], sqr: &[f32], r0: u32, m: usize, buf: &mut Vec<(f32, u32)>, tau: &mut f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { scan_avx2(col, sqr, r0, m, buf, tau) };
            crate::cpu::clear_upper_simd_state_here();
            return;
        }
    }
    scan_body(col, sqr, r0, m, buf, tau);
}

/// [`scan_body`] with AVX2 intrinsics: eight values per step, the comparison with the bound as
/// one vector compare and a move-mask; the same `f32` operations (`sqr - 2 col`, no fused
/// multiply-add), so the same values and candidates as the scalar body.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_avx2(
    col: &[f32],
    sqr: &[f32],
    r0: u32,
    m: usize,
    buf: &mut Vec<(f32, u32)>,
    tau: &mut f32,
) {
    use std::arch::x86_64::*;
    const W: usize = 8;
    let n = col.len().min(sqr.len());
    let mut t = *tau;
    let two = _mm256_set1_ps(2.0);
    let mut tv = _mm256_set1_ps(t);
    let mut vals = [0f32; W];
    let mut b = 0;
    while b + W <= n {
        // SAFETY: b + 8 <= n <= the length of both slices.
        let c = _mm256_loadu_ps(col.as_ptr().add(b));
        let q = _mm256_loadu_ps(sqr.as_ptr().add(b));
        let v = _mm256_sub_ps(q, _mm256_mul_ps(two, c));
        let mask = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(v, tv)) as u32;
        if mask != 0 {
            _mm256_storeu_ps(vals.as_mut_ptr(), v);
            push_marked(&vals, mask, r0 + b as u32, m, buf, &mut t);
            tv = _mm256_set1_ps(t);
        }
        b += W;
    }
    *tau = t;
    scan_body(&col[b..n], &sqr[b..n], r0 + b as u32, m, buf, tau);
}

#[inline(always)]
fn scan_body(
    col: &[f32],
    sqr: &[f32],
    r0: u32,
    m: usize,
    buf: &mut Vec<(f32, u32)>,
    tau: &mut f32,
) {
    const W: usize = 8;
    let n = col.len().min(sqr.len());
    let (col, sqr) = (&col[..n], &sqr[..n]);
    let mut t = *tau;
    let mut b = 0;
    for (cc, sc) in col.chunks_exact(W).zip(sqr.chunks_exact(W)) {
        let mut v = [0f32; W];
        let mut mask = 0u32;
        for l in 0..W {
            v[l] = sc[l] - 2.0 * cc[l];
            mask |= u32::from(v[l] < t) << l;
        }
        push_marked(&v, mask, r0 + b as u32, m, buf, &mut t);
        b += W;
    }
    while b < n {
        let v = sqr[b] - 2.0 * col[b];
        if v < t {
            push(buf, m, &mut t, v, r0 + b as u32);
        }
        b += 1;
    }
    *tau = t;
}

/// Pushes the values `vals[l]` whose bit `l` is set in `mask` (references `r0 + l`), in
/// increasing `l`, each only if it is still below the bound (a flush within the group may have
/// lowered it).
#[inline(always)]
fn push_marked(
    vals: &[f32; 8],
    mut mask: u32,
    r0: u32,
    m: usize,
    buf: &mut Vec<(f32, u32)>,
    t: &mut f32,
) {
    while mask != 0 {
        let l = mask.trailing_zeros();
        mask &= mask - 1;
        let v = vals[l as usize];
        if v < *t {
            push(buf, m, t, v, r0 + l);
        }
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
fn count(
    x: &[f32],
    d: usize,
    i: usize,
    cand: &[(f32, u32)],
    n_obs: usize,
    k: usize,
    ranked: &mut Vec<(f64, u32)>,
) -> u32 {
    let a = &x[i * d..(i + 1) * d];
    ranked.clear();
    ranked.extend(
        cand.iter()
            .filter(|p| p.1 as usize != i)
            .map(|&(_, j)| (0.0, j)),
    );
    // four candidates at a time (independent sums, each in the order of the coordinates)
    let row = |j: u32| &x[j as usize * d..(j as usize + 1) * d];
    let mut quads = ranked.chunks_exact_mut(4);
    for q in &mut quads {
        let rows = [row(q[0].1), row(q[1].1), row(q[2].1), row(q[3].1)];
        let mut acc = [0f64; 4];
        for (c, &u) in a.iter().enumerate() {
            for (s, r) in acc.iter_mut().zip(&rows) {
                let t = u as f64 - r[c] as f64;
                *s += t * t;
            }
        }
        for (p, s) in q.iter_mut().zip(acc) {
            p.0 = s;
        }
    }
    for p in quads.into_remainder() {
        p.0 = a
            .iter()
            .zip(row(p.1))
            .map(|(&u, &v)| {
                let t = u as f64 - v as f64;
                t * t
            })
            .sum();
    }
    // the k - 1 nearest others under (distance, index): a selection, their order is not needed
    let take = (k - 1).min(ranked.len());
    if take > 0 && take < ranked.len() {
        ranked.select_nth_unstable_by(take - 1, |p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
    }
    let others = ranked[..take]
        .iter()
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
    fn scalar_and_vector_scans_keep_the_same_candidates() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let n = 1003;
        let col: Vec<f32> = (0..n).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
        let sqr: Vec<f32> = (0..n).map(|_| rng.gen_range(0.0f32..2.0)).collect();
        for (m, tau0) in [(5, 1.0f32), (20, 4.0), (3, f32::INFINITY)] {
            let (mut a, mut ta) = (Vec::new(), tau0);
            let (mut b, mut tb) = (Vec::new(), tau0);
            scan(&col, &sqr, 40, m, &mut a, &mut ta);
            scan_body(&col, &sqr, 40, m, &mut b, &mut tb);
            assert_eq!(a, b, "m = {m}");
            assert_eq!(ta.to_bits(), tb.to_bits(), "m = {m}");
            assert!(!a.is_empty());
        }
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
        // every tenth point near the origin, the others far: the sampled bound (every tenth
        // reference) leaves fewer than m candidates and the search starts again
        let (n, d) = (2000, 5);
        let z: Vec<f32> = (0..n * d)
            .map(|t| {
                let far = if (t / d) % 10 == 0 { 0.0 } else { 50.0 };
                far + rng.gen_range(-1.0f32..1.0)
            })
            .collect();
        assert_eq!(
            simulated_neighbour_counts(&z, n, d, 700, 15),
            brute(&z, n, d, 700, 15)
        );
        // duplicated points: ties are broken by index
        let mut y = x[..200 * d].to_vec();
        y.extend_from_slice(&x[..200 * d]);
        assert_eq!(
            simulated_neighbour_counts(&y, 400, d, 150, 9),
            brute(&y, 400, d, 150, 9)
        );
    }
}
