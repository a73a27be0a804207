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
//!   renumbers the cells in the leaf order of the first tree and builds the other trees on the
//!   renumbered cells (neighbours then sit close in memory, which keeps the rows a split or a
//!   local join reads in cache) and computes squared distances in `f32` over rows padded to a
//!   multiple of 8 components, in eight lanes with a fixed reduction order, so that the
//!   128-bit and 256-bit code give the same bits.
//!
//! [`Method::Auto`] uses the exact search up to [`AUTO_EXACT_MAX_CELLS`] cells.
//!
//! The parts, one module each: the coordinates and distance kernels (`points`), the exact
//! search (`exact`), the random-projection forest (`rptree`), the NN-descent iterations
//! (`nndescent`) and their shared neighbour lists (`store`).

mod exact;
mod nndescent;
mod points;
mod rptree;
mod store;

use crate::error::{Error, Result};
use exact::exact_candidates;
use ndarray::ArrayView2;
use nndescent::nn_descent;
use points::Points;
use rayon::prelude::*;

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
///   CPU time of 8. umap-learn's `nearest_neighbors` settings (60 candidates) reach 0.923
///   there; Scanpy 1.11.5's `sc.pp.neighbors`, whose `PyNNDescentTransformer` keeps 16
///   candidates, 0.790 (recall of 1,000 evenly spaced cells,
///   `scripts/bench_scanpy_neighbors.py --recall`).
///
/// The recall falls with the number of cells on such embeddings, for both: on the same
/// simulator's counts, 0.906 against Scanpy's 0.661 at 200,000 cells and 0.794 against 0.520
/// at 1,000,000 (`benches/compare/RESULTS.md`, 2026-12-06). At 200,000 cells the search has
/// converged: more iterations do not raise it.
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
/// # let log = scrna::normalize::normalize_total_log1p(&data.counts.to_csr(), &Default::default())?.matrix;
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
