//! Harmony: batch integration of an embedding by soft clustering with a diversity penalty and a
//! per-cluster ridge correction.
//!
//! Method: Korsunsky, Millard, Fan, Slowikowski, Zhang, Wei, Baglaenko, Brenner, Loh and
//! Raychaudhuri (2019), "Fast, sensitive and accurate integration of single-cell data with
//! Harmony", Nature Methods 16:1289, in the revised form of the current reference
//! implementations (`harmonypy` 2.1's C++ core and the `harmony` R package 2.0):
//!
//! 1. `Z_cos` = the embedding with each cell scaled to unit length. Initial centroids `Y` come
//!    from k-means on `Z_cos`, scaled to unit length; `d_ik = 2 (1 - y_k·z_i)` and
//!    `R_ik ∝ exp(-d_ik / σ)` (no diversity penalty yet).
//! 2. Each Harmony round runs up to `max_iter_kmeans` steps that update the assignments `R`
//!    with the distances held fixed, in blocks of `block_size · N` cells taken in a random
//!    order: the block's cells are removed from the observed and expected batch counts
//!    `O_kb = Σ_{i∈b} R_ik`, `E_kb = Pr_b Σ_i R_ik`, then
//!    `R_ik ∝ exp(-d_ik / σ) · ((2 E_kb + 1) / (O_kb + E_kb + 1))^θ` for the cell's batch `b`
//!    (normalized over the clusters), and the cells are added back.
//!    The objective is `(Σ R∘d + σ Σ R ln R + σ θ Σ_kb O_kb ln((O_kb+E_kb+1)/(2E_kb+1))) · 2000 / N`;
//!    the steps stop after more than 3 once the sum of the last 3 objectives has changed by
//!    less than `epsilon_cluster` (relative, either way) from the 3 before.
//! 3. Correction (mixture of experts, ridge): for each cluster `k`, with the design
//!    `Φ = [1, one-hot batch]` weighted by `R_k`, `W_k = (Φ diag(R_k) Φᵀ + diag(0, λ_k1, …,
//!    λ_kB))⁻¹ Φ diag(R_k) Z_origᵀ`, where the ridge penalty is estimated per cluster and batch,
//!    `λ_kb = α E_kb` (α = 0.2; the references' default "lambda estimation"), or fixed
//!    (`λ_kb = λ`, the original method's `λ = 1`); the batch rows are removed from the cells,
//!    `z_i ← z_orig,i - Σ_k R_ik W_k[b_i]`, and the intercept row becomes the centroid `y_k`
//!    (scaled to unit length). `Z_cos` is recomputed from the corrected embedding, and the next
//!    round starts from the distances to these centroids and assignments without the penalty.
//! 4. Rounds stop after `max_iter_harmony` or once the objective has fallen by less than
//!    `epsilon_harmony` (relative) over a round. A round whose objective rose does not stop
//!    them (`harmonypy` 2.1's `objective_converged`; stopping there, as `harmonypy` 0.x does,
//!    ended the integration of strong sample effects after two rounds with the batches apart).
//!
//! The original algorithm of the paper (and of `harmonypy` 0.x) differs in three places: the
//! centroids are re-estimated from `R` at every k-means step, the penalty is
//! `(E_kb / (O_kb + E_kb))^θ`, and the cross-entropy term uses `ln((O+E)/E)`.
//!
//! The ridge system has an arrow shape (an intercept row and a diagonal), so it is solved in
//! closed form by its Schur complement instead of a general inverse; the solution is the same.
//!
//! **Why the penalty is estimated by default.** With a fixed `λ = 1` (a few cells' weight) the
//! intercept of a cluster is close to the plain average of its batches' means, however few
//! cells a batch has there. The diversity penalty pulls some cells of every batch into every
//! cluster, including the cluster of a state that some batches do not have (a state found only
//! in the resistant samples); their mean then counts as much as the state's own batches', and
//! the correction moves the state onto whatever those few cells are. On the simulator's study
//! design (2 + 2 samples, a resistant-only state, a sensitive type depleted to a quarter in
//! resistance, 6,000 cells x 20,000 genes, batch sd 0.2, seed 0) the resistant-only state and
//! the depleted type became one cluster with `λ = 1` (and with `harmonypy` 2.1 at `lamb=1`).
//! With `λ_kb = α E_kb` a batch's pull on a cluster's centroid and its correction there are
//! shrunk when it holds fewer cells than expected, and the state stays its own cluster (also at
//! batch sd 0.35 and 12,000 cells; `tests/multi_sample.rs`), while the null designs of
//! `tests/condition_null.rs` (batch sd 0.35, 2 + 2 and 3 + 3 samples, five seeds) call no
//! cluster and at most 2 of 126 Milo neighbourhoods in a run. `lambda: Some(1.0)` gives the
//! original method.
//!
//! Differences from `harmonypy` 2.1:
//! - Other defaults are those of the original method (and of `harmonypy` before 2.0):
//!   `max_iter_kmeans = 20`, `epsilon_cluster = 1e-5`, `epsilon_harmony = 1e-4`;
//!   `harmonypy` 2.x defaults to 4 k-means steps, `1e-3` and `1e-2`.
//! - The initial k-means is our own (k-means++ seeding with one candidate per step, then at most
//!   25 Lloyd steps, stopping when no label changes or the centroids move by less than
//!   scikit-learn's tolerance, `1e-4` times the mean variance of the coordinates);
//!   scikit-learn's k-means++, which `harmonypy` 0.x uses, tries `2 + ln k` candidates per
//!   step. Random numbers (seeding and the block order) come from ChaCha8 seeded by
//!   [`HarmonyOptions::seed`], so the result is not the reference's bit for bit; it agrees in
//!   the clusters it finds and in how well the batches mix (tests/harmony.rs).
//! - The soft assignments are computed as `exp(-(d_ik - min_k d_ik) / σ)` (the same after
//!   normalization, but safe for very small `σ`). A cell whose coordinates are all zero keeps a
//!   zero `Z_cos` row instead of dividing by zero.
//! - Every batch is corrected in every cluster; the references leave out a batch whose share
//!   of a cluster (`O_kb / N_b`) is at most `batch_proportion_cutoff` (default `1e-5`, which
//!   almost never applies).
//!
//! Cells are processed grouped by batch (stable order) and every sum over cells is taken over
//! fixed chunks combined in order, so the result depends only on the input, the options and
//! the seed, not on the number of threads. Memory: a few `cells x PCs` and `cells x clusters`
//! `f32` arrays; nothing larger is formed.

mod cluster;
mod correct;
mod init;
mod kernels;

use super::dense_codes;
use crate::error::{Error, Result};
use ndarray::{Array2, ArrayView2};
use rand_chacha::ChaCha8Rng;

/// Cells per chunk of the parallel kernels (fixed, so sums do not depend on the thread count).
const CHUNK: usize = 512;
/// Objectives compared by the k-means convergence test (the reference's `window_size`).
const WINDOW: usize = 3;
/// Lloyd steps of the initial k-means (`harmonypy`'s `max_iter=25`).
const INIT_MAX_ITER: usize = 25;

/// Options of [`harmony`].
#[derive(Debug, Clone, PartialEq)]
pub struct HarmonyOptions {
    /// Diversity penalty `θ` (the same for every batch); 0 turns the penalty off. Default 2.
    pub theta: f64,
    /// Ridge penalty `λ` of the batch terms of the correction: `Some(λ)` a fixed penalty
    /// (positive; the original method's `λ = 1`), `None` (default) estimated for each cluster
    /// and batch as `alpha · E_kb`, as `harmonypy` 2.x and the `harmony` R package (since
    /// 1.0) do by default (see the module docs).
    pub lambda: Option<f64>,
    /// Factor of the estimated ridge penalty `λ_kb = alpha · E_kb` (used when `lambda` is
    /// `None`); in `(0, 1)`. Default 0.2, the references' default.
    pub alpha: f64,
    /// Width `σ` of the soft k-means kernel; must be positive. Default 0.1.
    pub sigma: f64,
    /// Number of clusters `K`; default `None` = `min(round(N / 30), 100)` (at least 1), as
    /// `harmonypy`. At most the number of cells.
    pub n_clusters: Option<usize>,
    /// Fraction of the cells updated together in one block of the assignment step, in
    /// `(0, 1]`. Default 0.05 (20 blocks).
    pub block_size: f64,
    /// Maximum Harmony rounds (clustering then correction). Default 10.
    pub max_iter_harmony: usize,
    /// Maximum soft k-means steps per round. Default 20.
    pub max_iter_kmeans: usize,
    /// Relative change of the k-means objective (over windows of 3 steps) below which the
    /// clustering of a round stops. Default 1e-5.
    pub epsilon_cluster: f64,
    /// Relative decrease of the objective over a round below which Harmony stops (a round
    /// whose objective rose does not stop it). Default 1e-4.
    pub epsilon_harmony: f64,
    /// Seed of the initial k-means and of the random block order. Default 0.
    pub seed: u64,
}

impl Default for HarmonyOptions {
    fn default() -> Self {
        Self {
            theta: 2.0,
            lambda: None,
            alpha: 0.2,
            sigma: 0.1,
            n_clusters: None,
            block_size: 0.05,
            max_iter_harmony: 10,
            max_iter_kmeans: 20,
            epsilon_cluster: 1e-5,
            epsilon_harmony: 1e-4,
            seed: 0,
        }
    }
}

impl HarmonyOptions {
    /// Checks every field (the error names it, e.g. `harmony.theta`).
    pub fn validate(&self) -> Result<()> {
        if !self.theta.is_finite() || self.theta < 0.0 {
            return Err(Error::option(
                "harmony.theta",
                format!("must be finite and non-negative, got {}", self.theta),
            ));
        }
        if let Some(l) = self.lambda {
            if !l.is_finite() || l <= 0.0 {
                return Err(Error::option(
                    "harmony.lambda",
                    format!("must be finite and positive, got {l}"),
                ));
            }
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Error::option(
                "harmony.alpha",
                format!("must be in (0, 1), got {}", self.alpha),
            ));
        }
        if !self.sigma.is_finite() || self.sigma <= 0.0 {
            return Err(Error::option(
                "harmony.sigma",
                format!("must be finite and positive, got {}", self.sigma),
            ));
        }
        if self.n_clusters == Some(0) {
            return Err(Error::option("harmony.n_clusters", "must be at least 1"));
        }
        if !(self.block_size > 0.0 && self.block_size <= 1.0) {
            return Err(Error::option(
                "harmony.block_size",
                format!("must be in (0, 1], got {}", self.block_size),
            ));
        }
        if self.max_iter_harmony == 0 {
            return Err(Error::option(
                "harmony.max_iter_harmony",
                "must be at least 1",
            ));
        }
        if self.max_iter_kmeans == 0 {
            return Err(Error::option(
                "harmony.max_iter_kmeans",
                "must be at least 1",
            ));
        }
        if !self.epsilon_cluster.is_finite() || self.epsilon_cluster < 0.0 {
            return Err(Error::option(
                "harmony.epsilon_cluster",
                format!(
                    "must be finite and non-negative, got {}",
                    self.epsilon_cluster
                ),
            ));
        }
        if !self.epsilon_harmony.is_finite() || self.epsilon_harmony < 0.0 {
            return Err(Error::option(
                "harmony.epsilon_harmony",
                format!(
                    "must be finite and non-negative, got {}",
                    self.epsilon_harmony
                ),
            ));
        }
        Ok(())
    }
}

/// Result of [`harmony`].
#[derive(Debug, Clone, PartialEq)]
pub struct Harmony {
    /// The corrected embedding, cells x components, cells in the input order.
    pub embedding: Array2<f32>,
    /// Harmony rounds run.
    pub iterations: usize,
    /// Whether the objective test stopped the rounds before `max_iter_harmony` ran out
    /// (it may also pass on the last round).
    pub converged: bool,
    /// The objective after the initial clustering and after each round's clustering
    /// (`iterations + 1` values), as `harmonypy`'s `objective_harmony`.
    pub objective: Vec<f64>,
    /// Soft k-means steps run in each round (`iterations` values), as `harmonypy`'s
    /// `kmeans_rounds`.
    pub kmeans_steps: Vec<usize>,
}

/// Harmony integration of `embedding` (cells x components, e.g. PCA scores) with one batch code
/// per cell (any `u32` values; at least two distinct). See the module docs for the method.
///
/// Errors: bad options (`InvalidOption` naming the field, `harmony.n_clusters` also when above
/// the number of cells); an empty embedding, a batch vector of the wrong length, a single
/// batch ("integration needs at least two batches") or a non-finite value (`InvalidData`).
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
/// # let batch: Vec<u32> = (0..data.n_cells() as u32).map(|i| i % 2).collect();
/// let h = scrna::integrate::harmony(pca.embedding.view(), &batch, &Default::default())?;
/// assert_eq!(h.embedding.dim(), pca.embedding.dim());
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn harmony(
    embedding: ArrayView2<f32>,
    batches: &[u32],
    opts: &HarmonyOptions,
) -> Result<Harmony> {
    opts.validate()?;
    let ctx = "harmony";
    let (n, d) = embedding.dim();
    if n == 0 || d == 0 {
        return Err(Error::data(
            ctx,
            format!("the embedding is empty ({n} cells x {d} components)"),
        ));
    }
    if batches.len() != n {
        return Err(Error::data(
            ctx,
            format!(
                "{} batch codes for {n} cells; give one batch code per cell",
                batches.len()
            ),
        ));
    }
    if let Some(((i, j), x)) = embedding.indexed_iter().find(|(_, x)| !x.is_finite()) {
        return Err(Error::data(
            ctx,
            format!("the embedding has a non-finite value ({x}) at cell {i}, component {j}"),
        ));
    }
    let (codes, distinct) = dense_codes(batches);
    if distinct.len() < 2 {
        return Err(Error::data(
            ctx,
            format!(
                "integration needs at least two batches; all {n} cells are in batch {}",
                distinct.first().copied().unwrap_or_default()
            ),
        ));
    }
    let k = match opts.n_clusters {
        Some(k) => k,
        None => ((n as f64 / 30.0).round() as usize).clamp(1, 100),
    };
    if k > n {
        return Err(Error::option(
            "harmony.n_clusters",
            format!("{k} clusters but only {n} cells"),
        ));
    }

    // Cells grouped by batch (stable), so that per-batch sums are contiguous.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| codes.get(i).copied().unwrap_or_default());
    let batch: Vec<u32> = order
        .iter()
        .map(|&i| codes.get(i).copied().unwrap_or_default())
        .collect();
    let nb = distinct.len();
    let mut z_orig = vec![0.0f32; n * d];
    for (row, &i) in z_orig.chunks_exact_mut(d).zip(&order) {
        for (dst, &x) in row.iter_mut().zip(embedding.row(i)) {
            *dst = x;
        }
    }

    let mut st = State::new(z_orig, batch, nb, d, k, opts);
    st.init_clusters();
    let mut converged = false;
    let mut iterations = 0;
    for _ in 0..opts.max_iter_harmony {
        st.cluster();
        st.correct();
        iterations += 1;
        if st.harmony_converged() {
            converged = true;
            break;
        }
    }

    let mut out = Array2::<f32>::zeros((n, d));
    for (row, &i) in st.z_corr.chunks_exact(d).zip(&order) {
        for (dst, &x) in out.row_mut(i).iter_mut().zip(row) {
            *dst = x;
        }
    }
    Ok(Harmony {
        embedding: out,
        iterations,
        converged,
        objective: st.objective_harmony,
        kmeans_steps: st.kmeans_steps,
    })
}

/// A fixed chunk of consecutive cells, all of one batch.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    start: usize,
    end: usize,
    batch: usize,
}

/// The working state; all cell-indexed arrays are in the batch-grouped order.
struct State {
    n: usize,
    d: usize,
    k: usize,
    nb: usize,
    z_orig: Vec<f32>,
    z_corr: Vec<f32>,
    z_cos: Vec<f32>,
    batch: Vec<u32>,
    chunks: Vec<Chunk>,
    pr_b: Vec<f64>,
    /// Centroids, `k x d` row-major.
    y: Vec<f32>,
    /// `n x k` row-major: distances `d_ik` (also the Lloyd scores of the initial k-means).
    dist: Vec<f32>,
    /// `n x k`: `exp(-d_ik / σ)` normalized per cell.
    scale: Vec<f32>,
    /// `n x k`: soft assignments.
    r: Vec<f32>,
    /// Per cell `m_i - σ ln S_i` of the kernel (`m_i = min_k d_ik`, `S_i` the kernel's sum).
    kernel_term: Vec<f64>,
    /// Per cell `Σ_k R_ik d_ik + σ Σ_k R_ik ln R_ik` (see [`State::objective`]).
    cell_term: Vec<f64>,
    /// `Σ_i R_ik` (`Σ_b O_kb`).
    size: Vec<f64>,
    /// Running `O_kb`, stored `nb x k` (batch-major).
    o: Vec<f64>,
    theta: f64,
    sigma: f64,
    /// The fixed ridge penalty, or `None` for `alpha · E_kb`.
    lambda: Option<f64>,
    alpha: f64,
    block_size: f64,
    max_iter_kmeans: usize,
    epsilon_cluster: f64,
    epsilon_harmony: f64,
    rng: ChaCha8Rng,
    objective_kmeans: Vec<f64>,
    objective_harmony: Vec<f64>,
    kmeans_steps: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// Two cell types x two batches in 5 dimensions; the batch shift is larger than the
    /// distance between types along one axis.
    fn toy(n_per: usize, seed: u64) -> (Array2<f32>, Vec<u32>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0f32, 0.3).unwrap();
        let mut x = Vec::new();
        let (mut types, mut batches) = (Vec::new(), Vec::new());
        for t in 0..2u32 {
            for b in 0..2u32 {
                for _ in 0..n_per {
                    let mut row = [1.0f32; 5];
                    row[1] += 4.0 * t as f32;
                    row[2] += 3.0 * b as f32;
                    for v in row.iter_mut() {
                        *v += noise.sample(&mut rng);
                    }
                    x.extend_from_slice(&row);
                    types.push(t);
                    batches.push(b * 5 + 3); // arbitrary codes
                }
            }
        }
        (
            Array2::from_shape_vec((4 * n_per, 5), x).unwrap(),
            types,
            batches,
        )
    }

    fn batch_gap(z: &Array2<f32>, types: &[u32], batches: &[u32], t: u32) -> f32 {
        // distance between the two batches' means of type t
        let d = z.ncols();
        let mut m = [vec![0.0f32; d], vec![0.0f32; d]];
        let mut c = [0.0f32; 2];
        for i in 0..z.nrows() {
            if types[i] != t {
                continue;
            }
            let g = usize::from(batches[i] != batches[0]);
            c[g] += 1.0;
            for j in 0..d {
                m[g][j] += z[[i, j]];
            }
        }
        (0..d)
            .map(|j| (m[0][j] / c[0] - m[1][j] / c[1]).powi(2))
            .sum::<f32>()
            .sqrt()
    }

    #[test]
    fn removes_a_batch_shift_and_keeps_the_types_apart() {
        let (x, types, batches) = toy(60, 1);
        let h = harmony(
            x.view(),
            &batches,
            &HarmonyOptions {
                n_clusters: Some(8),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(h.embedding.dim(), x.dim());
        assert_eq!(h.objective.len(), h.iterations + 1);
        for t in 0..2 {
            let before = batch_gap(&x, &types, &batches, t);
            let after = batch_gap(&h.embedding, &types, &batches, t);
            assert!(before > 2.5, "before {before}");
            assert!(after < 0.3 * before, "type {t}: {before} -> {after}");
        }
        // the types stay apart: distance between type means in the corrected space
        let d = x.ncols();
        let mut m = [vec![0.0f32; d], vec![0.0f32; d]];
        for (row, &t) in h.embedding.rows().into_iter().zip(&types) {
            for (a, &v) in m[t as usize].iter_mut().zip(row) {
                *a += v / 120.0;
            }
        }
        let sep: f32 = (0..d)
            .map(|j| (m[0][j] - m[1][j]).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!(sep > 3.0, "type separation {sep}");
    }

    #[test]
    fn options_are_checked() {
        let bad = [
            HarmonyOptions {
                theta: -1.0,
                ..Default::default()
            },
            HarmonyOptions {
                lambda: Some(0.0),
                ..Default::default()
            },
            HarmonyOptions {
                sigma: f64::NAN,
                ..Default::default()
            },
            HarmonyOptions {
                n_clusters: Some(0),
                ..Default::default()
            },
            HarmonyOptions {
                block_size: 1.5,
                ..Default::default()
            },
            HarmonyOptions {
                max_iter_harmony: 0,
                ..Default::default()
            },
            HarmonyOptions {
                max_iter_kmeans: 0,
                ..Default::default()
            },
            HarmonyOptions {
                epsilon_cluster: -1.0,
                ..Default::default()
            },
            HarmonyOptions {
                epsilon_harmony: f64::INFINITY,
                ..Default::default()
            },
            HarmonyOptions {
                alpha: 1.0,
                ..Default::default()
            },
        ];
        let names = [
            "harmony.theta",
            "harmony.lambda",
            "harmony.sigma",
            "harmony.n_clusters",
            "harmony.block_size",
            "harmony.max_iter_harmony",
            "harmony.max_iter_kmeans",
            "harmony.epsilon_cluster",
            "harmony.epsilon_harmony",
            "harmony.alpha",
        ];
        for (o, name) in bad.iter().zip(names) {
            match o.validate() {
                Err(Error::InvalidOption { name: got, .. }) => assert_eq!(got, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(HarmonyOptions::default().validate().is_ok());
    }
}
