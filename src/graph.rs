//! Weighted cell graphs from a kNN table: Scanpy's UMAP connectivities and distances, and
//! Seurat's shared-nearest-neighbour (SNN) graph.

use crate::error::{Error, Result};
use crate::neighbors::Knn;
use crate::sparse::CsrMatrix;
use rayon::prelude::*;

/// Options of [`umap_connectivities`] (umap-learn's `fuzzy_simplicial_set` parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct UmapGraphOptions {
    /// Number of nearest neighbours assumed connected at distance `rho` (umap-learn's
    /// `local_connectivity`). Default 1.0. Must be positive.
    pub local_connectivity: f32,
    /// Mix between fuzzy union (1.0) and fuzzy intersection (0.0) when symmetrizing
    /// (`set_op_mix_ratio`). Default 1.0 (Scanpy's). Must be in [0, 1].
    pub set_op_mix_ratio: f32,
}

impl Default for UmapGraphOptions {
    fn default() -> Self {
        UmapGraphOptions {
            local_connectivity: 1.0,
            set_op_mix_ratio: 1.0,
        }
    }
}

const SMOOTH_K_TOLERANCE: f64 = 1e-5;
const MIN_K_DIST_SCALE: f32 = 1e-3;
const N_ITER: usize = 64;

fn check_knn(knn: &Knn, n_cells: usize) -> Result<()> {
    knn.validate()?;
    if knn.n_cells() != n_cells {
        return Err(Error::data(
            "kNN table",
            format!("{} rows but n_cells = {n_cells}", knn.n_cells()),
        ));
    }
    Ok(())
}

/// Per-cell `(sigma, rho)` of umap-learn's `smooth_knn_dist`, in the same `f32` arithmetic.
///
/// `rho` is the distance to the `local_connectivity`-th nearest cell at a positive distance
/// (interpolated for fractional values); `sigma` is found by binary search (64 steps,
/// tolerance 1e-5) so that `sum_{j >= 1} exp(-max(0, d_j - rho) / sigma) = log2(k)`,
/// the sum running over all columns but the first (the cell itself), and is floored at
/// `1e-3 * mean(d_i)` (`1e-3 * mean(all distances)` when `rho = 0`).
pub fn smooth_knn_dist(knn: &Knn, local_connectivity: f32) -> (Vec<f32>, Vec<f32>) {
    let k = knn.n_neighbors;
    let target = (k as f64).log2();
    let mean_all = if knn.distances.is_empty() {
        0.0
    } else {
        (knn.distances.iter().map(|&v| v as f64).sum::<f64>() / knn.distances.len() as f64) as f32
    };
    let index = local_connectivity.floor() as usize;
    let interpolation = local_connectivity - index as f32;
    knn.distances
        .par_chunks(k)
        .map(|row| {
            let nz: Vec<f32> = row.iter().copied().filter(|&v| v > 0.0).collect();
            let mut rho = 0f32;
            if nz.len() as f32 >= local_connectivity {
                if index > 0 {
                    rho = nz[index - 1];
                    if interpolation as f64 > SMOOTH_K_TOLERANCE {
                        rho += interpolation * (nz[index] - nz[index - 1]);
                    }
                } else {
                    rho = interpolation * nz[0];
                }
            } else if let Some(m) = nz.iter().copied().reduce(f32::max) {
                rho = m;
            }
            let (mut lo, mut hi, mut mid) = (0f32, f32::MAX, 1f32);
            for _ in 0..N_ITER {
                let mut psum = 0f32;
                for &dj in &row[1..] {
                    let d = dj - rho;
                    psum += if d > 0.0 { (-(d / mid)).exp() } else { 1.0 };
                }
                if (psum as f64 - target).abs() < SMOOTH_K_TOLERANCE {
                    break;
                }
                if psum as f64 > target {
                    hi = mid;
                    mid = (lo + hi) / 2.0;
                } else {
                    lo = mid;
                    if hi >= f32::MAX {
                        mid *= 2.0;
                    } else {
                        mid = (lo + hi) / 2.0;
                    }
                }
            }
            let mut sigma = mid;
            if rho > 0.0 {
                let mean_i = (row.iter().map(|&v| v as f64).sum::<f64>() / k as f64) as f32;
                if sigma < MIN_K_DIST_SCALE * mean_i {
                    sigma = MIN_K_DIST_SCALE * mean_i;
                }
            } else if sigma < MIN_K_DIST_SCALE * mean_all {
                sigma = MIN_K_DIST_SCALE * mean_all;
            }
            (sigma, rho)
        })
        .unzip()
}

impl UmapGraphOptions {
    /// Checks the options: a positive finite `local_connectivity`, `set_op_mix_ratio` in [0, 1].
    pub fn validate(&self) -> Result<()> {
        if !(self.local_connectivity > 0.0 && self.local_connectivity.is_finite()) {
            return Err(Error::option(
                "local_connectivity",
                format!("must be positive, got {}", self.local_connectivity),
            ));
        }
        if !(0.0..=1.0).contains(&self.set_op_mix_ratio) {
            return Err(Error::option(
                "set_op_mix_ratio",
                format!("must be in [0, 1], got {}", self.set_op_mix_ratio),
            ));
        }
        Ok(())
    }
}

/// Scanpy's default `obsp["connectivities"]`: umap-learn's fuzzy simplicial set
/// (McInnes, Healy and Melville 2018), as `scanpy.neighbors._connectivity.umap` computes it
/// through `umap.umap_.fuzzy_simplicial_set` (Scanpy 1.11 calls umap-learn's code).
///
/// With `(sigma_i, rho_i)` from [`smooth_knn_dist`], the directed weight of neighbour `j` of
/// cell `i` is `a_ij = exp(-(d_ij - rho_i) / sigma_i)` (1 if `d_ij <= rho_i`, 0 for the cell
/// itself), computed in `f32`; zero weights (underflow) are dropped. The symmetric result is
/// `r (a + a^T - a∘a^T) + (1 - r) a∘a^T` with `r = set_op_mix_ratio` (fuzzy union for r = 1).
/// `knn` must list the cell itself first, as [`crate::neighbors::knn`] does.
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
/// let graph = scrna::graph::umap_connectivities(&knn, data.n_cells(), &Default::default())?;
/// assert_eq!(graph.n_rows(), data.n_cells());
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn umap_connectivities(
    knn: &Knn,
    n_cells: usize,
    opts: &UmapGraphOptions,
) -> Result<CsrMatrix> {
    opts.validate()?;
    check_knn(knn, n_cells)?;
    if knn.distances.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return Err(Error::data(
            "kNN table",
            "distances must be finite and non-negative",
        ));
    }
    let (sigmas, rhos) = smooth_knn_dist(knn, opts.local_connectivity);
    // Directed memberships, row by row (CSR, sorted by column).
    let rows: Vec<Vec<(u32, f32)>> = (0..n_cells)
        .into_par_iter()
        .map(|i| {
            let (sigma, rho) = (sigmas[i], rhos[i]);
            let mut r: Vec<(u32, f32)> = knn
                .row_indices(i)
                .iter()
                .zip(knn.row_distances(i))
                .filter(|(&j, _)| j as usize != i)
                .map(|(&j, &d)| {
                    let v = if d - rho <= 0.0 || sigma == 0.0 {
                        1.0
                    } else {
                        (-((d - rho) / sigma)).exp()
                    };
                    (j, v)
                })
                .filter(|p| p.1 != 0.0)
                .collect();
            r.sort_unstable_by_key(|p| p.0);
            r.dedup_by(|b, a| {
                // Duplicate neighbour entries are summed, as scipy's COO -> CSR does.
                if a.0 == b.0 {
                    a.1 += b.1;
                    true
                } else {
                    false
                }
            });
            r
        })
        .collect();
    let mut ptr = Vec::with_capacity(n_cells + 1);
    ptr.push(0usize);
    let mut idx = Vec::new();
    let mut val = Vec::new();
    for r in &rows {
        for &(j, v) in r {
            idx.push(j);
            val.push(v);
        }
        ptr.push(idx.len());
    }
    let a = CsrMatrix::try_new(n_cells, n_cells, ptr, idx, val)?;
    let at = a.transpose();
    let ratio = opts.set_op_mix_ratio;
    let merged: Vec<(Vec<u32>, Vec<f32>)> = (0..n_cells)
        .into_par_iter()
        .map(|i| {
            let (ai, av) = a.row(i);
            let (bi, bv) = at.row(i);
            let mut oi = Vec::with_capacity(ai.len() + bi.len());
            let mut ov = Vec::with_capacity(ai.len() + bi.len());
            let (mut p, mut q) = (0, 0);
            while p < ai.len() || q < bi.len() {
                let (j, x, y) = if q >= bi.len() || (p < ai.len() && ai[p] < bi[q]) {
                    p += 1;
                    (ai[p - 1], av[p - 1], 0f32)
                } else if p >= ai.len() || bi[q] < ai[p] {
                    q += 1;
                    (bi[q - 1], 0f32, bv[q - 1])
                } else {
                    p += 1;
                    q += 1;
                    (ai[p - 1], av[p - 1], bv[q - 1])
                };
                let prod = x * y;
                let v = ratio * ((x + y) - prod) + (1.0 - ratio) * prod;
                if v != 0.0 {
                    oi.push(j);
                    ov.push(v);
                }
            }
            (oi, ov)
        })
        .collect();
    assemble(n_cells, merged)
}

fn assemble(n: usize, rows: Vec<(Vec<u32>, Vec<f32>)>) -> Result<CsrMatrix> {
    let nnz = rows.iter().map(|r| r.0.len()).sum();
    let mut ptr = Vec::with_capacity(n + 1);
    ptr.push(0usize);
    let mut idx = Vec::with_capacity(nnz);
    let mut val = Vec::with_capacity(nnz);
    for (i, v) in rows {
        idx.extend_from_slice(&i);
        val.extend_from_slice(&v);
        ptr.push(idx.len());
    }
    CsrMatrix::try_new(n, n, ptr, idx, val)
}

/// Scanpy's `obsp["distances"]`: row `i` holds the distances to its `n_neighbors - 1`
/// nearest other cells (the first column of the kNN table, the cell itself, is dropped).
/// Zero distances to duplicate cells are stored explicitly, as Scanpy does.
pub fn distances_matrix(knn: &Knn) -> Result<CsrMatrix> {
    knn.validate()?;
    let n = knn.n_cells();
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut r: Vec<(u32, f32)> = knn.row_indices(i)[1..]
                .iter()
                .copied()
                .zip(knn.row_distances(i)[1..].iter().copied())
                .collect();
            r.sort_unstable_by_key(|p| p.0);
            r.dedup_by_key(|p| p.0);
            r.into_iter().unzip()
        })
        .collect();
    assemble(n, rows)
}

/// Seurat's shared-nearest-neighbour graph (`FindNeighbors`, `ComputeSNN`).
///
/// With `N(i)` the kNN set of cell `i` (the cell itself included, `k = n_neighbors`) and
/// `s = |N(i) ∩ N(j)|`, the weight is the Jaccard index `s / (2k - s)`; weights below
/// `prune` (Seurat's `prune.SNN`, 1/15 by default) are removed. The diagonal is 1.
pub fn snn_graph(knn: &Knn, prune: f64) -> Result<CsrMatrix> {
    if !(0.0..=1.0).contains(&prune) {
        return Err(Error::option(
            "prune",
            format!("must be in [0, 1], got {prune}"),
        ));
    }
    knn.validate()?;
    let n = knn.n_cells();
    let k = knn.n_neighbors;
    // members[m] = cells whose kNN set contains m.
    let mut ptr = vec![0usize; n + 1];
    for &j in &knn.indices {
        ptr[j as usize + 1] += 1;
    }
    for v in 0..n {
        ptr[v + 1] += ptr[v];
    }
    let mut next = ptr.clone();
    let mut members = vec![0u32; ptr[n]];
    for i in 0..n {
        for &j in knn.row_indices(i) {
            members[next[j as usize]] = i as u32;
            next[j as usize] += 1;
        }
    }
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
        .into_par_iter()
        .map_init(
            || (vec![0u32; n], Vec::<u32>::new()),
            |(count, touched), i| {
                let mut own: Vec<u32> = knn.row_indices(i).to_vec();
                own.sort_unstable();
                own.dedup();
                for &m in &own {
                    for &j in &members[ptr[m as usize]..ptr[m as usize + 1]] {
                        if count[j as usize] == 0 {
                            touched.push(j);
                        }
                        count[j as usize] += 1;
                    }
                }
                touched.sort_unstable();
                let mut oi = Vec::new();
                let mut ov = Vec::new();
                for &j in touched.iter() {
                    let s = count[j as usize] as f64;
                    count[j as usize] = 0;
                    let w = s / (2.0 * k as f64 - s);
                    if w >= prune {
                        oi.push(j);
                        ov.push(w as f32);
                    }
                }
                touched.clear();
                (oi, ov)
            },
        )
        .collect();
    assemble(n, rows)
}
