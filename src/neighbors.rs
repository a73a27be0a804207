//! k-nearest neighbours of cells in an embedding (usually the PCA coordinates).
//!
//! [`knn`] returns, for every cell, its `n_neighbors` nearest cells **including the cell itself
//! as the first neighbour at distance 0**, exactly as Scanpy's `pp.neighbors` stores them
//! (`n_neighbors = 15` means the cell and its 14 nearest other cells).
//!
//! Two search methods:
//! - [`Method::Exact`]: blocked brute force. Query blocks of cells run in parallel; inside a
//!   block the dot products with every reference block come from one dense matrix product
//!   (`faer`), squared distances are `|q|^2 + |r|^2 - 2 q.r` in `f32`, a short candidate list
//!   of `n_neighbors + 8` cells is kept per query, and the candidates are then re-ranked with
//!   distances recomputed in `f64`. Equal distances are ordered by cell index, so the result is
//!   deterministic. This is Scanpy's method below 4,096 cells (scikit-learn brute force).
//! - [`Method::Approximate`]: NN-descent (Dong, Moses and Li 2011, "Efficient k-nearest
//!   neighbor graph construction for generic similarity measures", as in `pynndescent`, which
//!   Scanpy uses above 4,096 cells) started from a forest of random-projection trees. It is
//!   deterministic for a given `seed` whatever the number of threads: candidates are sampled
//!   with hash-based priorities, and each neighbour list is the top-k of all pairs examined in
//!   an iteration under the total order (distance, index), which does not depend on the order
//!   in which threads insert them. Each list holds [`APPROX_EXTRA_CANDIDATES`] more cells than
//!   asked for, and the best are kept. Final distances are recomputed in `f64`. The search
//!   renumbers the cells in the leaf order of the first tree (neighbours then sit close in
//!   memory, which keeps the rows a local join reads in cache) and computes squared distances
//!   in `f32` over rows padded to a multiple of 8 components, in eight lanes with a fixed
//!   reduction order, so that the 128-bit and 256-bit code give the same bits.
//!
//! [`Method::Auto`] uses the exact search up to [`AUTO_EXACT_MAX_CELLS`] cells.

use crate::error::{Error, Result};
use ndarray::ArrayView2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Largest number of cells for which [`Method::Auto`] runs the exact search (Scanpy's
/// threshold for exact Euclidean search, 8,192, minus one).
///
/// Measured on 2 shared cores with 50 dimensions (benches/neighbors.rs, 10,000 clustered
/// cells): exact search 0.75 s, NN-descent 0.35 s; a `petal-neighbors` ball tree queried in
/// parallel took 9.1 s. The exact search costs `O(n^2 d)`, so the two meet near 5,000 cells;
/// below 8,192 the exact result is preferred for its agreement with Scanpy.
pub const AUTO_EXACT_MAX_CELLS: usize = 8_191;

/// Extra neighbours that NN-descent keeps per cell beyond `n_neighbors - 1`; the best
/// `n_neighbors - 1` of the longer lists are returned. Longer lists let the local joins reach
/// the true neighbours more often. Recall at k = 15 against the exact search, 50,000 cells:
/// - clustered Gaussian points in 50 dimensions (`tests/neighbors_scanpy.rs`,
///   `approximate_recall_50k`): 0.872 with no extra candidates, 0.968 with 7, 0.974 with 8;
/// - the pipeline's 50-component PCA embedding of the simulator's 50,000 x 20,000 counts
///   (`approximate_recall_pipeline_embedding_50k`), whose trailing components are mostly noise
///   and so harder: 0.899 with 8, 0.938 with 12, 0.962 with 16 (this value), at 1.35x the
///   CPU time of 8. umap-learn's NN-descent settings, which Scanpy uses, reach 0.923 there.
pub const APPROX_EXTRA_CANDIDATES: usize = 16;

/// Distance between cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metric {
    /// `sqrt(sum_d (x_d - y_d)^2)` (Scanpy's default).
    #[default]
    Euclidean,
    /// `1 - x.y / (|x| |y|)`, as scikit-learn's and pynndescent's `cosine`; a cell whose
    /// coordinates are all zero is at distance 1 from every cell.
    Cosine,
}

/// Search method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Exact up to [`AUTO_EXACT_MAX_CELLS`] cells, approximate beyond.
    #[default]
    Auto,
    /// Blocked brute force (exact).
    Exact,
    /// NN-descent from random-projection trees.
    Approximate,
}

/// Options of [`knn`].
#[derive(Debug, Clone, PartialEq)]
pub struct KnnOptions {
    /// Neighbours per cell, the cell itself included as the first (Scanpy's convention).
    /// Default 15. Must be between 1 and the number of cells (no automatic reduction: Scanpy
    /// lowers it to `1 + n/2` with a warning, we return an error instead).
    pub n_neighbors: usize,
    /// Distance. Default [`Metric::Euclidean`].
    pub metric: Metric,
    /// Search method. Default [`Method::Auto`].
    pub method: Method,
    /// Seed of the approximate search (random-projection trees and candidate sampling).
    /// Default 0. The exact search does not use it.
    pub seed: u64,
    /// Maximum NN-descent iterations. Default 0 = automatic, `max(5, round(log2(n)))` as
    /// Scanpy passes to pynndescent.
    pub max_iterations: usize,
    /// Number of random-projection trees of the approximate search. Default 0 = automatic,
    /// `min(64, 5 + round(sqrt(n) / 20)) / 2` (half of Scanpy's choice for pynndescent).
    pub n_trees: usize,
}

impl Default for KnnOptions {
    fn default() -> Self {
        KnnOptions {
            n_neighbors: 15,
            metric: Metric::Euclidean,
            method: Method::Auto,
            seed: 0,
            max_iterations: 0,
            n_trees: 0,
        }
    }
}

impl KnnOptions {
    /// Checks the options without data: at least one neighbour. [`knn`] also checks
    /// `n_neighbors` against the number of cells.
    pub fn validate(&self) -> Result<()> {
        if self.n_neighbors == 0 {
            return Err(Error::option("n_neighbors", "must be at least 1"));
        }
        Ok(())
    }
}

/// Result of [`knn`]: `n_cells x n_neighbors` tables in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    /// Neighbours per cell (the cell itself included).
    pub n_neighbors: usize,
    /// Neighbour indices; row `i` starts with `i`, then the other cells by increasing
    /// distance (ties by increasing index).
    pub indices: Vec<u32>,
    /// Distances matching `indices` (the first of each row is 0).
    pub distances: Vec<f32>,
}

impl Knn {
    /// Number of cells (rows).
    pub fn n_cells(&self) -> usize {
        self.indices
            .len()
            .checked_div(self.n_neighbors)
            .unwrap_or(0)
    }

    /// Neighbour indices of cell `i`.
    pub fn row_indices(&self, i: usize) -> &[u32] {
        &self.indices[i * self.n_neighbors..(i + 1) * self.n_neighbors]
    }

    /// Neighbour distances of cell `i`.
    pub fn row_distances(&self, i: usize) -> &[f32] {
        &self.distances[i * self.n_neighbors..(i + 1) * self.n_neighbors]
    }

    /// Checks that the tables are consistent (sizes, indices in range).
    pub fn validate(&self) -> Result<()> {
        let ctx = "kNN table";
        if self.n_neighbors == 0 {
            return Err(Error::data(ctx, "n_neighbors is 0"));
        }
        if self.indices.len() != self.distances.len() || self.indices.len() % self.n_neighbors != 0
        {
            return Err(Error::data(
                ctx,
                format!(
                    "{} indices and {} distances do not form rows of {}",
                    self.indices.len(),
                    self.distances.len(),
                    self.n_neighbors
                ),
            ));
        }
        let n = self.n_cells();
        if let Some(p) = self.indices.iter().position(|&j| j as usize >= n) {
            return Err(Error::data(
                ctx,
                format!(
                    "cell {}: neighbour {} is out of range (n = {n})",
                    p / self.n_neighbors,
                    self.indices[p]
                ),
            ));
        }
        Ok(())
    }
}

/// k-nearest neighbours of every row (cell) of `embedding` (see the module docs).
///
/// Errors: `n_neighbors` of 0 or above the number of cells, an empty embedding, or a
/// non-finite value (the error names the cell and the component).
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// # let log = scrna::normalize::normalize_total_log1p(&data.counts, &Default::default())?.matrix;
/// # let mut h = scrna::hvg::HvgOptions::default();
/// # h.n_top_genes = Some(200);
/// # let hvg = scrna::hvg::highly_variable_genes(&log, None, None, &h)?.selected();
/// # let mut p = scrna::pca::PcaOptions::default();
/// # p.n_comps = 10;
/// # let pca = scrna::pca::pca(&log.select_cols(&hvg)?, &p)?;
/// let knn = scrna::neighbors::knn(pca.embedding.view(), &Default::default())?;
/// assert_eq!(knn.indices.len(), data.n_cells() * knn.n_neighbors);
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn knn(embedding: ArrayView2<f32>, opts: &KnnOptions) -> Result<Knn> {
    let (n, d) = embedding.dim();
    opts.validate()?;
    let k = opts.n_neighbors;
    if n == 0 || d == 0 {
        return Err(Error::data(
            "knn",
            format!("the embedding is empty ({n} cells x {d} dimensions)"),
        ));
    }
    if k > n {
        return Err(Error::option(
            "n_neighbors",
            format!("{k} neighbours (the cell itself included) but only {n} cells"),
        ));
    }
    if n > u32::MAX as usize {
        return Err(Error::data("knn", "more than 2^32 - 1 cells"));
    }
    // Standard-layout copy (also the place where non-finite values are found).
    let data: Vec<f32> = match embedding.as_slice() {
        Some(s) => s.to_vec(),
        None => embedding.iter().copied().collect(),
    };
    if let Some(p) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::data(
            "knn",
            format!(
                "cell {} has a non-finite value ({}) in component {}",
                p / d,
                data[p],
                p % d
            ),
        ));
    }
    let points = Points::new(data, n, d, opts.metric);
    let approximate = match opts.method {
        Method::Exact => false,
        Method::Approximate => true,
        Method::Auto => n > AUTO_EXACT_MAX_CELLS,
    };
    let candidates: Vec<Vec<u32>> = if k == 1 {
        vec![Vec::new(); n]
    } else if approximate {
        nn_descent(&points, (k - 1 + APPROX_EXTRA_CANDIDATES).min(n - 1), opts)
    } else {
        exact_candidates(&points, (k - 1 + 8).min(n - 1))
    };
    Ok(finish(&points, &candidates, k))
}

/// The embedding in row-major `f32`, with what the metric needs.
struct Points {
    /// Coordinates used by the candidate search (unit rows for cosine).
    x: Vec<f32>,
    /// Original coordinates (for the exact re-ranking).
    orig: Vec<f32>,
    /// Squared norms of `x` rows.
    sq: Vec<f32>,
    n: usize,
    d: usize,
    metric: Metric,
}

impl Points {
    fn new(orig: Vec<f32>, n: usize, d: usize, metric: Metric) -> Self {
        let x = match metric {
            Metric::Euclidean => orig.clone(),
            Metric::Cosine => {
                let mut x = orig.clone();
                x.par_chunks_mut(d).for_each(|r| {
                    let nrm = r
                        .iter()
                        .map(|&v| (v as f64) * (v as f64))
                        .sum::<f64>()
                        .sqrt();
                    if nrm > 0.0 {
                        r.iter_mut().for_each(|v| *v = (*v as f64 / nrm) as f32);
                    }
                });
                x
            }
        };
        let sq = x
            .par_chunks(d)
            .map(|r| r.iter().map(|v| v * v).sum())
            .collect();
        Points {
            x,
            orig,
            sq,
            n,
            d,
            metric,
        }
    }

    /// Distance in `f64` from the original coordinates.
    fn exact(&self, i: usize, j: usize) -> f64 {
        let a = &self.orig[i * self.d..(i + 1) * self.d];
        let b = &self.orig[j * self.d..(j + 1) * self.d];
        match self.metric {
            Metric::Euclidean => {
                // Four independent lanes, then a fixed reduction order.
                let mut acc = [0f64; 4];
                let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
                let (ra, rb) = (ca.remainder(), cb.remainder());
                for (x, y) in ca.zip(cb) {
                    for l in 0..4 {
                        let t = x[l] as f64 - y[l] as f64;
                        acc[l] += t * t;
                    }
                }
                let mut s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
                for (&u, &v) in ra.iter().zip(rb) {
                    let t = u as f64 - v as f64;
                    s += t * t;
                }
                s.sqrt()
            }
            Metric::Cosine => {
                let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
                for (&u, &v) in a.iter().zip(b) {
                    ab += u as f64 * v as f64;
                    aa += u as f64 * u as f64;
                    bb += v as f64 * v as f64;
                }
                if aa == 0.0 || bb == 0.0 {
                    1.0
                } else {
                    (1.0 - ab / (aa.sqrt() * bb.sqrt())).max(0.0)
                }
            }
        }
    }
}

/// The search coordinates of the NN-descent, each row padded with zeros to a multiple of 8
/// components so that the distance kernel runs on whole 8-lane blocks.
struct Padded {
    x: Vec<f32>,
    stride: usize,
    n: usize,
    d: usize,
}

impl Padded {
    fn new(points: &Points) -> Self {
        let (n, d) = (points.n, points.d);
        let stride = d.div_ceil(8) * 8;
        let mut x = vec![0f32; n * stride];
        x.par_chunks_mut(stride)
            .zip(points.x.par_chunks(d))
            .for_each(|(dst, src)| dst[..d].copy_from_slice(src));
        Padded { x, stride, n, d }
    }

    /// The rows in the order `order` (row `r` of the result is row `order[r]`).
    fn permuted(&self, order: &[u32]) -> Self {
        let mut x = vec![0f32; self.x.len()];
        x.par_chunks_mut(self.stride)
            .zip(order.par_iter())
            .for_each(|(dst, &o)| dst.copy_from_slice(self.row(o as usize)));
        Padded { x, ..*self }
    }

    #[inline(always)]
    fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.stride..(i + 1) * self.stride]
    }
}

/// Squared Euclidean distance in `f32` between two padded rows: eight lanes each summing
/// every eighth component, then `((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7))`. Symmetric
/// bit for bit (`(a-b)^2 == (b-a)^2`), and [`sqdist_avx`] computes the same bits.
#[inline(always)]
fn sqdist(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            let t = x[l] - y[l];
            acc[l] += t * t;
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// [`sqdist`] or [`sqdist_avx`], whichever the processor runs (the same bits).
fn dist_one(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the processor supports AVX; padded rows have equal lengths, multiples of 8.
        return unsafe { sqdist_avx(a, b) };
    }
    sqdist(a, b)
}

/// [`sqdist`] with 256-bit vectors (no FMA, so every lane rounds as in [`sqdist`]).
///
/// # Safety
/// The processor must support AVX; `a` and `b` must have the same length, a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
unsafe fn sqdist_avx(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let blocks = a.len().min(b.len()) / 8;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm256_setzero_ps();
    for c in 0..blocks {
        // SAFETY: 8 * c + 8 <= len of both slices.
        let (x, y) = unsafe {
            (
                _mm256_loadu_ps(pa.add(8 * c)),
                _mm256_loadu_ps(pb.add(8 * c)),
            )
        };
        let t = _mm256_sub_ps(x, y);
        acc = _mm256_add_ps(acc, _mm256_mul_ps(t, t));
    }
    // (l0 + l4, l1 + l5, l2 + l6, l3 + l7), then ((.0 + .1), (.2 + .3)), then their sum.
    let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let h = _mm_hadd_ps(s, s);
    _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)))
}

/// Re-ranks candidate lists with exact distances: self first, then by (distance, index).
fn finish(points: &Points, candidates: &[Vec<u32>], k: usize) -> Knn {
    let n = points.n;
    let mut indices = vec![0u32; n * k];
    let mut distances = vec![0f32; n * k];
    indices
        .par_chunks_mut(k)
        .zip(distances.par_chunks_mut(k))
        .enumerate()
        .for_each_init(Vec::new, |buf: &mut Vec<(f64, u32)>, (i, (ind, dist))| {
            buf.clear();
            buf.extend(
                candidates[i]
                    .iter()
                    .filter(|&&j| j as usize != i)
                    .map(|&j| (points.exact(i, j as usize), j)),
            );
            buf.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            buf.dedup_by_key(|p| p.1);
            ind[0] = i as u32;
            dist[0] = 0.0;
            for (s, &(dd, j)) in buf.iter().take(k - 1).enumerate() {
                ind[s + 1] = j;
                dist[s + 1] = dd as f32;
            }
        });
    Knn {
        n_neighbors: k,
        indices,
        distances,
    }
}

/// Sorted bounded list of (squared distance, index) kept smallest-first.
#[inline]
fn push_bounded(list: &mut Vec<(f32, u32)>, cap: usize, d: f32, j: u32) {
    if list.len() == cap {
        let last = list[cap - 1];
        if (d, j) >= last {
            return;
        }
        list.pop();
    }
    let pos = list.partition_point(|&(a, b)| (a, b) < (d, j));
    list.insert(pos, (d, j));
}

/// Exact search: the `m` nearest other cells of every cell (unordered within ties at the
/// boundary, re-ranked by [`finish`]).
fn exact_candidates(points: &Points, m: usize) -> Vec<Vec<u32>> {
    const QB: usize = 128;
    const RB: usize = 1024;
    let (n, d) = (points.n, points.d);
    let blocks: Vec<Vec<Vec<u32>>> = (0..n.div_ceil(QB))
        .into_par_iter()
        .map(|qb| {
            let q0 = qb * QB;
            let q1 = (q0 + QB).min(n);
            let nq = q1 - q0;
            let qmat = faer::MatRef::from_row_major_slice(&points.x[q0 * d..q1 * d], nq, d);
            let mut dots = faer::Mat::<f32>::zeros(nq, RB);
            let mut lists: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(m + 1); nq];
            for r0 in (0..n).step_by(RB) {
                let r1 = (r0 + RB).min(n);
                let nr = r1 - r0;
                let rt = faer::MatRef::from_column_major_slice(&points.x[r0 * d..r1 * d], d, nr);
                let mut dst = dots.as_mut().submatrix_mut(0, 0, nq, nr);
                faer::linalg::matmul::matmul(
                    dst.as_mut(),
                    faer::Accum::Replace,
                    qmat,
                    rt,
                    1.0f32,
                    faer::Par::Seq,
                );
                crate::cpu::clear_upper_simd_state_here();
                for (a, list) in lists.iter_mut().enumerate() {
                    let i = q0 + a;
                    let qn = points.sq[i];
                    let row = dst.as_ref().row(a);
                    for b in 0..nr {
                        let j = r0 + b;
                        if j == i {
                            continue;
                        }
                        let d2 = (qn + points.sq[j] - 2.0 * row[b]).max(0.0);
                        if list.len() < m || d2 <= list[m - 1].0 {
                            push_bounded(list, m, d2, j as u32);
                        }
                    }
                }
            }
            lists
                .into_iter()
                .map(|l| l.into_iter().map(|p| p.1).collect())
                .collect()
        })
        .collect();
    blocks.into_iter().flatten().collect()
}

/// A 64-bit mix (splitmix64 finaliser) for hash-based priorities.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Marks an empty place in a neighbour list (sorts after every real entry).
const EMPTY: u64 = u64::MAX;

/// The sort key of a neighbour at squared distance `d`: the bits of a non-negative `f32`
/// order like the numbers, so `(d bits, j)` as one integer orders by distance, then index.
#[inline(always)]
fn key(d: f32, j: u32) -> u64 {
    (d.to_bits() as u64) << 32 | j as u64
}

/// All NN-descent neighbour lists: `cap` keys per cell in one array, each list sorted
/// increasingly with [`EMPTY`] at the end, plus a "new" flag per place.
///
/// Keys are atomics so that an offer can be turned down without locking: a key at least the
/// last of the list, or already in it, cannot enter. The last key only decreases, and a cell
/// that leaves a list is worse than every key that stays, so a decision taken on a value read
/// while another thread inserts is the decision the locked insertion would take. Insertions
/// take the cell's lock and re-check. The final content of a list is the top `cap` of
/// everything offered, whatever the order of the offers.
struct Graph {
    keys: Vec<AtomicU64>,
    new: Vec<AtomicBool>,
    locks: Vec<Mutex<()>>,
    cap: usize,
}

impl Graph {
    fn new(n: usize, cap: usize) -> Self {
        Graph {
            keys: (0..n * cap).map(|_| AtomicU64::new(EMPTY)).collect(),
            new: (0..n * cap).map(|_| AtomicBool::new(false)).collect(),
            locks: (0..n).map(|_| Mutex::new(())).collect(),
            cap,
        }
    }

    #[inline(always)]
    fn row(&self, i: usize) -> &[AtomicU64] {
        &self.keys[i * self.cap..(i + 1) * self.cap]
    }

    #[inline(always)]
    fn flags(&self, i: usize) -> &[AtomicBool] {
        &self.new[i * self.cap..(i + 1) * self.cap]
    }

    /// The last key of the list of `i` ([`EMPTY`] while the list is short).
    #[inline(always)]
    fn last(&self, i: usize) -> u64 {
        self.keys[(i + 1) * self.cap - 1].load(Ordering::Relaxed)
    }

    /// Whether the list of `i` is full.
    fn is_full(&self, i: usize) -> bool {
        self.last(i) != EMPTY
    }

    /// Offers `j` at squared distance `d` to the list of `i`; returns whether it entered.
    #[inline(always)]
    fn offer(&self, i: usize, j: u32, d: f32) -> bool {
        let k = key(d, j);
        k < self.last(i) && self.insert(i, k)
    }

    /// Inserts key `k` into the list of `i` if it is not there and belongs to the top `cap`.
    #[inline(never)]
    fn insert(&self, i: usize, k: u64) -> bool {
        let row = self.row(i);
        // Unlocked look-up: a key seen in the list was in it, so `k` cannot enter.
        let pos = row.partition_point(|s| s.load(Ordering::Relaxed) < k);
        if row.get(pos).is_some_and(|s| s.load(Ordering::Relaxed) == k) {
            return false;
        }
        let Ok(_guard) = self.locks[i].lock() else {
            return false;
        };
        let cap = self.cap;
        if k >= row[cap - 1].load(Ordering::Relaxed) {
            return false;
        }
        let pos = row.partition_point(|s| s.load(Ordering::Relaxed) < k);
        if row[pos].load(Ordering::Relaxed) == k {
            return false;
        }
        let flags = self.flags(i);
        for t in (pos + 1..cap).rev() {
            row[t].store(row[t - 1].load(Ordering::Relaxed), Ordering::Relaxed);
            flags[t].store(flags[t - 1].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        row[pos].store(k, Ordering::Relaxed);
        flags[pos].store(true, Ordering::Relaxed);
        true
    }
}

/// Local join of one cell's sampled candidates: every pair of new candidates and every pair of
/// a new and an old candidate is offered to both lists. Returns the number of insertions.
///
/// The worst keys of the candidates' lists are read once up front and refreshed after each
/// insertion made here: they only decrease, so a stale value lets more pairs through to
/// [`Graph::insert`], which decides with the current list; the result is the same as offering
/// every pair, and most pairs are rejected without touching the other cell's list.
fn local_join(
    points: &Padded,
    graph: &Graph,
    nw: &[u32],
    od: &[u32],
    wn: &mut Vec<u64>,
    wo: &mut Vec<u64>,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the processor supports AVX (checked just above).
        return unsafe { local_join_avx(points, graph, nw, od, wn, wo) };
    }
    local_join_body(points, graph, nw, od, wn, wo, sqdist)
}

/// [`local_join`] with the 256-bit distance kernel [`sqdist_avx`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn local_join_avx(
    points: &Padded,
    graph: &Graph,
    nw: &[u32],
    od: &[u32],
    wn: &mut Vec<u64>,
    wo: &mut Vec<u64>,
) -> usize {
    // SAFETY: AVX is enabled in this function; padded rows have equal lengths, multiples of 8.
    local_join_body(points, graph, nw, od, wn, wo, |a, b| unsafe {
        sqdist_avx(a, b)
    })
}

#[inline(always)]
fn local_join_body(
    points: &Padded,
    graph: &Graph,
    nw: &[u32],
    od: &[u32],
    wn: &mut Vec<u64>,
    wo: &mut Vec<u64>,
    dist: impl Fn(&[f32], &[f32]) -> f32,
) -> usize {
    wn.clear();
    wn.extend(nw.iter().map(|&p| graph.last(p as usize)));
    wo.clear();
    wo.extend(od.iter().map(|&q| graph.last(q as usize)));
    #[cfg(target_arch = "x86_64")]
    for &c in nw.iter().chain(od) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // Prefetching has no effect on the results; it overlaps the cache misses on the
        // candidates' coordinates and lists that the join below would take one at a time.
        let (x, keys) = (points.row(c as usize), graph.row(c as usize));
        for t in (0..x.len()).step_by(16) {
            // SAFETY: `_mm_prefetch` only hints the cache; `t` is inside the row.
            unsafe { _mm_prefetch(x.as_ptr().add(t) as *const i8, _MM_HINT_T0) };
        }
        for t in (0..keys.len()).step_by(8) {
            // SAFETY: as above.
            unsafe { _mm_prefetch(keys.as_ptr().add(t) as *const i8, _MM_HINT_T0) };
        }
    }
    // Offers key `k` to cell `i`'s list when it beats `w`, the list's last key as last read
    // (re-read after an insertion); 1 when inserted.
    let offer = |i: u32, k: u64, w: &mut u64| -> usize {
        if k < *w && graph.insert(i as usize, k) {
            *w = graph.last(i as usize);
            1
        } else {
            0
        }
    };
    let mut local = 0usize;
    for (a, &p) in nw.iter().enumerate() {
        let xp = points.row(p as usize);
        for b in a + 1..nw.len() {
            let q = nw[b];
            let dd = dist(xp, points.row(q as usize));
            local += offer(p, key(dd, q), &mut wn[a]);
            local += offer(q, key(dd, p), &mut wn[b]);
        }
        for (b, &q) in od.iter().enumerate() {
            if q == p {
                continue;
            }
            let dd = dist(xp, points.row(q as usize));
            local += offer(p, key(dd, q), &mut wn[a]);
            local += offer(q, key(dd, p), &mut wo[b]);
        }
    }
    local
}

/// `offset + normal . x_i` for every cell `i` of `idx` (padded `normal`), dot products
/// summed in eight lanes as in [`sqdist`].
fn margins(points: &Padded, normal: &[f32], offset: f32, idx: &[u32], out: &mut Vec<f32>) {
    #[inline(always)]
    fn body(points: &Padded, normal: &[f32], offset: f32, idx: &[u32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(idx.iter().map(|&i| {
            let mut acc = [0f32; 8];
            for (x, y) in normal
                .chunks_exact(8)
                .zip(points.row(i as usize).chunks_exact(8))
            {
                for l in 0..8 {
                    acc[l] += x[l] * y[l];
                }
            }
            offset
                + (((acc[0] + acc[4]) + (acc[1] + acc[5]))
                    + ((acc[2] + acc[6]) + (acc[3] + acc[7])))
        }));
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        unsafe fn avx(
            points: &Padded,
            normal: &[f32],
            offset: f32,
            idx: &[u32],
            out: &mut Vec<f32>,
        ) {
            body(points, normal, offset, idx, out)
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the processor supports AVX (checked just above).
            return unsafe { avx(points, normal, offset, idx, out) };
        }
    }
    body(points, normal, offset, idx, out)
}

/// Random-projection tree leaves (Euclidean hyperplanes between two random points).
fn rp_tree_leaves(points: &Padded, rng: &mut StdRng, leaf_size: usize) -> Vec<Vec<u32>> {
    let d = points.d;
    let mut leaves = Vec::new();
    let mut stack: Vec<Vec<u32>> = vec![(0..points.n as u32).collect()];
    let mut normal = vec![0f32; points.stride];
    let mut margin = Vec::new();
    while let Some(idx) = stack.pop() {
        if idx.len() <= leaf_size {
            leaves.push(idx);
            continue;
        }
        let a = idx[rng.gen_range(0..idx.len())] as usize;
        let mut b = idx[rng.gen_range(0..idx.len())] as usize;
        if a == b {
            b = idx[(idx.iter().position(|&v| v as usize == a).unwrap_or(0) + 1) % idx.len()]
                as usize;
        }
        let (pa, pb) = (points.row(a), points.row(b));
        let mut offset = 0f32;
        for t in 0..d {
            normal[t] = pa[t] - pb[t];
            offset -= normal[t] * (pa[t] + pb[t]) * 0.5;
        }
        let mut left = Vec::with_capacity(idx.len() / 2 + 1);
        let mut right = Vec::with_capacity(idx.len() / 2 + 1);
        margins(points, &normal, offset, &idx, &mut margin);
        for (&i, &s) in idx.iter().zip(&margin) {
            let side = if s == 0.0 { rng.gen::<bool>() } else { s > 0.0 };
            if side {
                left.push(i);
            } else {
                right.push(i);
            }
        }
        if left.is_empty() || right.is_empty() {
            // Degenerate split (duplicates): split at random.
            let mut all = idx;
            for t in (1..all.len()).rev() {
                all.swap(t, rng.gen_range(0..=t));
            }
            let half = all.len() / 2;
            right = all.split_off(half);
            left = all;
        }
        stack.push(right);
        stack.push(left);
    }
    leaves
}

/// NN-descent: the `cap` nearest other cells of every cell (approximately).
fn nn_descent(points: &Points, cap: usize, opts: &KnnOptions) -> Vec<Vec<u32>> {
    let n = points.n;
    let original = Padded::new(points);
    let cap = cap.min(n - 1);
    let graph = Graph::new(n, cap);
    let n_trees = if opts.n_trees > 0 {
        opts.n_trees
    } else {
        (64usize.min(5 + ((n as f64).sqrt() / 20.0).round() as usize) / 2).max(2)
    };
    let max_iter = if opts.max_iterations > 0 {
        opts.max_iterations
    } else {
        5usize.max((n as f64).log2().round() as usize)
    };
    let leaf_size = (2 * cap).max(32);

    // 1. Initial lists from the leaves of the random-projection forest.
    let forest: Vec<Vec<Vec<u32>>> = (0..n_trees)
        .into_par_iter()
        .map(|t| {
            let mut rng = StdRng::seed_from_u64(mix(opts.seed ^ mix(t as u64 + 1)));
            rp_tree_leaves(&original, &mut rng, leaf_size)
        })
        .collect();
    // The search runs on the cells renumbered in the leaf order of the first tree: cells
    // that are close in space are then close in memory, and the rows a local join reads are
    // mostly in cache.
    let order: Vec<u32> = forest[0].concat();
    let mut rank = vec![0u32; n];
    for (new, &old) in order.iter().enumerate() {
        rank[old as usize] = new as u32;
    }
    let points = &original.permuted(&order);
    drop(original);
    let forest: Vec<Vec<Vec<u32>>> = forest
        .into_par_iter()
        .map(|tree| {
            tree.into_iter()
                .map(|leaf| leaf.into_iter().map(|i| rank[i as usize]).collect())
                .collect()
        })
        .collect();
    forest.par_iter().flatten().for_each_init(
        || (Vec::new(), Vec::new()),
        |(wn, wo), leaf| {
            local_join(points, &graph, leaf, &[], wn, wo);
        },
    );
    // Fill lists that are still short with seeded random cells.
    (0..n).into_par_iter().for_each(|i| {
        let mut tries = 0u64;
        loop {
            if graph.is_full(i) {
                break;
            }
            let j = if tries < 4 * cap as u64 {
                (mix(opts.seed ^ mix((i as u64) << 20 ^ tries)) % n as u64) as usize
            } else {
                (i + 1 + (tries as usize - 4 * cap)) % n
            };
            tries += 1;
            if j != i {
                graph.offer(i, j as u32, dist_one(points.row(i), points.row(j)));
            }
        }
    });

    // 2. Iterations of local joins.
    let max_cand = cap.max(10);
    let min_updates = (0.001 * (n * cap) as f64) as usize;
    let mut fwd_new: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut fwd_old: Vec<Vec<u32>> = vec![Vec::new(); n];
    for it in 0..max_iter {
        let salt = mix(opts.seed ^ mix(0xA5A5_0000 + it as u64));
        let prio = |i: usize, j: u32| mix(salt ^ ((i as u64) << 32 | j as u64));
        // Forward candidates; sampled new entries become old.
        fwd_new
            .par_iter_mut()
            .zip(fwd_old.par_iter_mut())
            .enumerate()
            .for_each_init(Vec::new, |cand, (i, (nw, od))| {
                nw.clear();
                od.clear();
                // No insertions run in this phase: plain reads and writes of the own list.
                let (row, flags) = (graph.row(i), graph.flags(i));
                let len = row.partition_point(|s| s.load(Ordering::Relaxed) != EMPTY);
                let j_at = |p: usize| row[p].load(Ordering::Relaxed) as u32;
                cand.clear();
                cand.extend(
                    (0..len)
                        .filter(|&p| flags[p].load(Ordering::Relaxed))
                        .map(|p| (prio(i, j_at(p)), p)),
                );
                cand.sort_unstable();
                cand.truncate(max_cand);
                for &(_, p) in cand.iter() {
                    nw.push(j_at(p));
                    flags[p].store(false, Ordering::Relaxed);
                }
                for (s, f) in row[..len].iter().zip(flags) {
                    let j = s.load(Ordering::Relaxed) as u32;
                    if !f.load(Ordering::Relaxed) && !nw.contains(&j) {
                        od.push(j);
                    }
                }
            });
        // Reverse candidates, in cell order.
        let rev_new = reverse(&fwd_new, n);
        let rev_old = reverse(&fwd_old, n);
        let updates = AtomicUsize::new(0);
        (0..n).into_par_iter().for_each_init(
            || (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            |(nw, od, wn, wo), v| {
                gather(&fwd_new[v], rev_new.row(v), max_cand, |j| prio(v, j), nw);
                if nw.is_empty() {
                    return;
                }
                gather(&fwd_old[v], rev_old.row(v), max_cand, |j| prio(v, j), od);
                let local = local_join(points, &graph, nw, od, wn, wo);
                updates.fetch_add(local, Ordering::Relaxed);
            },
        );
        // The stopping rule counts entries that are new after the iteration: unlike the
        // number of successful insertions, this does not depend on the insertion order.
        if updates.load(Ordering::Relaxed) == 0 {
            break;
        }
        let fresh: usize = graph
            .new
            .par_chunks(cap)
            .map(|f| f.iter().filter(|b| b.load(Ordering::Relaxed)).count())
            .sum();
        if fresh <= min_updates {
            break;
        }
    }
    rank.par_iter()
        .map(|&r| {
            graph
                .row(r as usize)
                .iter()
                .map(|s| s.load(Ordering::Relaxed))
                .filter(|&k| k != EMPTY)
                .map(|k| order[k as u32 as usize])
                .collect()
        })
        .collect()
}

/// Reverse adjacency in CSR form, rows filled in increasing source order.
struct Rev {
    ptr: Vec<usize>,
    idx: Vec<u32>,
}

impl Rev {
    fn row(&self, v: usize) -> &[u32] {
        &self.idx[self.ptr[v]..self.ptr[v + 1]]
    }
}

fn reverse(fwd: &[Vec<u32>], n: usize) -> Rev {
    let mut ptr = vec![0usize; n + 1];
    for l in fwd {
        for &j in l {
            ptr[j as usize + 1] += 1;
        }
    }
    for v in 0..n {
        ptr[v + 1] += ptr[v];
    }
    let mut next = ptr.clone();
    let mut idx = vec![0u32; ptr[n]];
    for (i, l) in fwd.iter().enumerate() {
        for &j in l {
            idx[next[j as usize]] = i as u32;
            next[j as usize] += 1;
        }
    }
    Rev { ptr, idx }
}

/// Union of forward and reverse candidates, at most `cap` of them chosen by priority.
fn gather(fwd: &[u32], rev: &[u32], cap: usize, prio: impl Fn(u32) -> u64, out: &mut Vec<u32>) {
    out.clear();
    out.extend_from_slice(fwd);
    out.extend_from_slice(rev);
    out.sort_unstable();
    out.dedup();
    if out.len() > cap {
        out.sort_unstable_by_key(|&j| (prio(j), j));
        out.truncate(cap);
    }
}
