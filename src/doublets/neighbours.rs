//! How many simulated doublets sit among each cell's nearest neighbours (step 7 of [`super`]),
//! by an exact search that keeps counts, not neighbour tables.
//!
//! The result is the one [`crate::neighbors::knn`] with [`crate::neighbors::Method::Exact`]
//! gives (the same candidate rule and the same `f64` re-ranking with ties broken by index),
//! counted: Scrublet only needs the number of simulated cells among the `k` nearest, so the
//! search skips the neighbour tables and is organised for that count:
//! - the dot products of [`QG`] query cells with [`PW`] reference cells are computed in
//!   registers (fused multiply-adds in coordinate order over references packed in panels, see
//!   [`Panels`]) and compared with the queries' bounds at once, so no block of products is
//!   stored and read again; references come a block of [`RB`] at a time (their panels stay in
//!   cache while a block of [`QB`] queries is scanned);
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

/// Query cells per block (one parallel task).
const QB: usize = 64;
/// Reference cells per block (a multiple of [`PW`]).
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
    let panels = Panels::new(x, &sq, n_all, d);
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
            let queries = &x[q0 * d..q1 * d];
            let all: Vec<bool> = vec![true; nq];
            search(&panels, queries, m, &all, &mut bufs, &mut taus);
            // fewer than m values under a sampled bound: search those queries again
            let again: Vec<bool> = bufs.iter().map(|b| b.len() < m).collect();
            if again.contains(&true) {
                for (a, _) in again.iter().enumerate().filter(|p| *p.1) {
                    bufs[a].clear();
                    taus[a] = f32::INFINITY;
                }
                search(&panels, queries, m, &again, &mut bufs, &mut taus);
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

/// Offers every reference to the buffers of the queries (`queries`: rows of `d` values) marked
/// in `which`, a block of [`RB`] references at a time, [`QG`] queries at a time
/// ([`scan_group`]). A query without a bound takes it from its first `4m` references (see
/// [`first_block`]).
fn search(
    panels: &Panels,
    queries: &[f32],
    m: usize,
    which: &[bool],
    bufs: &mut [Vec<(f32, u32)>],
    taus: &mut [f32],
) {
    let (n_all, d) = (panels.n, panels.d);
    let nq = bufs.len();
    let mut head_vals = Vec::with_capacity(4 * m);
    let mut scratch = Vec::with_capacity(4 * m);
    for r0 in (0..n_all).step_by(RB) {
        let r1 = (r0 + RB).min(n_all);
        for g0 in (0..nq).step_by(QG) {
            let g1 = (g0 + QG).min(nq);
            let mut from = [0u32; QG];
            let mut live = [false; QG];
            let mut rows = [&queries[g0 * d..(g0 + 1) * d]; QG];
            for a in g0..g1 {
                rows[a - g0] = &queries[a * d..(a + 1) * d];
                if !which[a] {
                    continue;
                }
                live[a - g0] = true;
                if r0 == 0 && taus[a].is_infinite() {
                    // the bound from the first 4m references, the rest scanned against it
                    let head = (4 * m).min(r1);
                    head_vals.clear();
                    head_vals.extend((0..head).map(|j| panels.value(rows[a - g0], j)));
                    first_block(&head_vals, m, &mut bufs[a], &mut taus[a], &mut scratch);
                    from[a - g0] = head as u32;
                }
            }
            if live.contains(&true) {
                let group = Group { rows, from, live };
                scan_group(
                    panels,
                    r0 / PW..r1.div_ceil(PW),
                    &group,
                    m,
                    &mut bufs[g0..g1],
                    &mut taus[g0..g1],
                );
            }
        }
    }
}

/// References per panel of [`Panels`] (two 8-lane vectors).
const PW: usize = 16;
/// Queries per group of [`scan_group`] (`2 QG` accumulators in registers).
const QG: usize = 6;

/// The references packed for [`scan_group`]: panels of [`PW`] references, each `d` rows of
/// `PW` coordinates, and their squared norms, padded to whole panels with references at
/// infinity (never a candidate).
struct Panels {
    data: Vec<f32>,
    sq: Vec<f32>,
    n: usize,
    d: usize,
}

impl Panels {
    fn new(x: &[f32], sq: &[f32], n: usize, d: usize) -> Panels {
        let np = n.div_ceil(PW);
        let mut data = vec![0f32; np * PW * d];
        for (j, row) in x.chunks_exact(d).take(n).enumerate() {
            let (p, l) = (j / PW, j % PW);
            for (c, &v) in row.iter().enumerate() {
                data[(p * d + c) * PW + l] = v;
            }
        }
        let mut sqp = vec![f32::INFINITY; np * PW];
        sqp[..n].copy_from_slice(&sq[..n]);
        Panels {
            data,
            sq: sqp,
            n,
            d,
        }
    }

    /// `|r|^2 - 2 q.r` of reference `j`, the dot product summed in coordinate order with one
    /// rounding per step (fused multiply-add), as [`scan_group`] computes it.
    fn value(&self, q: &[f32], j: usize) -> f32 {
        let (p, l) = (j / PW, j % PW);
        let panel = &self.data[p * self.d * PW..(p + 1) * self.d * PW];
        let dot = q
            .iter()
            .enumerate()
            .fold(0f32, |acc, (c, &qc)| panel[c * PW + l].mul_add(qc, acc));
        self.sq[j] - 2.0 * dot
    }
}

/// Up to [`QG`] queries scanned together: their rows, the first reference each one takes
/// (those before were offered by [`first_block`]) and which are searched at all.
struct Group<'a> {
    rows: [&'a [f32]; QG],
    from: [u32; QG],
    live: [bool; QG],
}

/// Offers the references of `panels` (panel indices) to the group's live queries: each value
/// `|r|^2 - 2 q.r` (the dot product by fused multiply-adds in coordinate order) below the
/// query's bound enters its buffer, references in increasing index. The dot products are
/// computed in registers, [`PW`] references by [`QG`] queries at a time, and compared with the
/// bounds at once, so no block of products is stored. With AVX2 and FMA eight lanes at a time,
/// else one by one with `f32::mul_add`: the same roundings, so the same values and candidates.
fn scan_group(
    panels: &Panels,
    range: std::ops::Range<usize>,
    g: &Group<'_>,
    m: usize,
    bufs: &mut [Vec<(f32, u32)>],
    taus: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { scan_group_avx2(panels, range, g, m, bufs, taus) };
            crate::cpu::clear_upper_simd_state_here();
            return;
        }
    }
    scan_group_scalar(panels, range, g, m, bufs, taus);
}

/// The bit mask of the lanes `0..PW` of panel `p` at or after reference `from`.
#[inline(always)]
fn from_mask(p: usize, from: u32) -> u32 {
    let first = (p * PW) as u32;
    if from <= first {
        u32::MAX
    } else {
        let skip = (from - first).min(PW as u32);
        !((1u32 << skip) - 1)
    }
}

fn scan_group_scalar(
    panels: &Panels,
    range: std::ops::Range<usize>,
    g: &Group<'_>,
    m: usize,
    bufs: &mut [Vec<(f32, u32)>],
    taus: &mut [f32],
) {
    let mut vals = [0f32; PW];
    for p in range {
        for (j, (buf, tau)) in bufs.iter_mut().zip(taus.iter_mut()).enumerate() {
            if !g.live[j] {
                continue;
            }
            let mut mask = 0u32;
            for (l, v) in vals.iter_mut().enumerate() {
                *v = panels.value(g.rows[j], p * PW + l);
                mask |= u32::from(*v < *tau) << l;
            }
            mask &= from_mask(p, g.from[j]);
            push_marked(&vals, mask, (p * PW) as u32, m, buf, tau);
        }
    }
}

/// [`scan_group_scalar`] with AVX2 and FMA intrinsics.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_group_avx2(
    panels: &Panels,
    range: std::ops::Range<usize>,
    g: &Group<'_>,
    m: usize,
    bufs: &mut [Vec<(f32, u32)>],
    taus: &mut [f32],
) {
    use std::arch::x86_64::*;
    let d = panels.d;
    let two = _mm256_set1_ps(2.0);
    let mut tv = [_mm256_set1_ps(f32::NEG_INFINITY); QG];
    for (j, t) in taus.iter().enumerate() {
        if g.live[j] {
            tv[j] = _mm256_set1_ps(*t);
        }
    }
    let mut vals = [0f32; PW];
    for p in range {
        // SAFETY: panel p holds d * PW values and PW norms (p < the number of panels); every
        // query row holds d values.
        let base = panels.data.as_ptr().add(p * d * PW);
        let mut acc = [[_mm256_setzero_ps(); 2]; QG];
        for c in 0..d {
            let r0 = _mm256_loadu_ps(base.add(c * PW));
            let r1 = _mm256_loadu_ps(base.add(c * PW + 8));
            for (a, row) in acc.iter_mut().zip(&g.rows) {
                let b = _mm256_set1_ps(*row.get_unchecked(c));
                a[0] = _mm256_fmadd_ps(r0, b, a[0]);
                a[1] = _mm256_fmadd_ps(r1, b, a[1]);
            }
        }
        let s0 = _mm256_loadu_ps(panels.sq.as_ptr().add(p * PW));
        let s1 = _mm256_loadu_ps(panels.sq.as_ptr().add(p * PW + 8));
        for j in 0..QG {
            let v0 = _mm256_sub_ps(s0, _mm256_mul_ps(two, acc[j][0]));
            let v1 = _mm256_sub_ps(s1, _mm256_mul_ps(two, acc[j][1]));
            let lo = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(v0, tv[j])) as u32;
            let hi = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(v1, tv[j])) as u32;
            let mask = (lo | hi << 8) & from_mask(p, g.from[j]);
            if mask != 0 {
                _mm256_storeu_ps(vals.as_mut_ptr(), v0);
                _mm256_storeu_ps(vals.as_mut_ptr().add(8), v1);
                push_marked(&vals, mask, (p * PW) as u32, m, &mut bufs[j], &mut taus[j]);
                tv[j] = _mm256_set1_ps(taus[j]);
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

/// The first references (their values `vals`, a few times `m`): the bound is set to the
/// `m`-th smallest of them (an `f32` selection, no pairs), and only the values at or below it
/// enter the buffer, so that they cost one selection over plain values and `m` (plus ties)
/// pushes.
fn first_block(
    vals: &[f32],
    m: usize,
    buf: &mut Vec<(f32, u32)>,
    tau: &mut f32,
    scratch: &mut Vec<f32>,
) {
    if vals.len() > m {
        scratch.clear();
        scratch.extend_from_slice(vals);
        let (_, &mut bound, _) = scratch.select_nth_unstable_by(m - 1, f32::total_cmp);
        for (b, &v) in vals.iter().enumerate() {
            if v <= bound {
                buf.push((v, b as u32));
            }
        }
        *tau = bound;
    } else {
        buf.extend(vals.iter().enumerate().map(|(b, &v)| (v, b as u32)));
    }
}

/// Pushes the values `vals[l]` whose bit `l` is set in `mask` (references `r0 + l`), in
/// increasing `l`, each only if it is still below the bound (a flush within the group may have
/// lowered it).
#[inline(always)]
fn push_marked(
    vals: &[f32],
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
    fn scalar_and_vector_kernels_keep_the_same_candidates() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (n, d) = (1003, 13);
        let x: Vec<f32> = (0..n * d).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
        let sq: Vec<f32> = x.chunks(d).map(|r| r.iter().map(|v| v * v).sum()).collect();
        let panels = Panels::new(&x, &sq, n, d);
        let rows: [&[f32]; QG] = std::array::from_fn(|j| &x[(3 * j + 1) * d..(3 * j + 2) * d]);
        for (m, tau0) in [(5, 1.0f32), (20, 40.0), (3, f32::INFINITY)] {
            let g = Group {
                rows,
                from: std::array::from_fn(|j| if j == 1 { 37 } else { 0 }),
                live: std::array::from_fn(|j| j != 2),
            };
            let run = |vector: bool| {
                let mut bufs = vec![Vec::new(); QG];
                let mut taus = vec![tau0; QG];
                if vector {
                    scan_group(&panels, 0..n.div_ceil(PW), &g, m, &mut bufs, &mut taus);
                } else {
                    scan_group_scalar(&panels, 0..n.div_ceil(PW), &g, m, &mut bufs, &mut taus);
                }
                (bufs, taus.iter().map(|t| t.to_bits()).collect::<Vec<_>>())
            };
            let (a, ta) = run(true);
            let (b, tb) = run(false);
            assert_eq!(a, b, "m = {m}");
            assert_eq!(ta, tb, "m = {m}");
            assert!(!a[0].is_empty() && a[2].is_empty());
            assert!(a[1].iter().all(|p| p.1 >= 37));
            // every candidate's value is the one `Panels::value` gives
            for (j, buf) in a.iter().enumerate() {
                for &(v, r) in buf {
                    assert_eq!(v.to_bits(), panels.value(rows[j], r as usize).to_bits());
                }
            }
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
