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

use super::dense_codes;
use crate::error::{Error, Result};
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

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
/// # let log = scrna::normalize::normalize_total_log1p(&data.counts, &Default::default())?.matrix;
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

impl State {
    fn new(
        z_orig: Vec<f32>,
        batch: Vec<u32>,
        nb: usize,
        d: usize,
        k: usize,
        opts: &HarmonyOptions,
    ) -> Self {
        let n = batch.len();
        let mut counts = vec![0usize; nb];
        for &b in &batch {
            counts[b as usize] += 1;
        }
        let mut chunks = Vec::new();
        let mut start = 0;
        for (b, &c) in counts.iter().enumerate() {
            let end = start + c;
            let mut s = start;
            while s < end {
                let e = (s + CHUNK).min(end);
                chunks.push(Chunk {
                    start: s,
                    end: e,
                    batch: b,
                });
                s = e;
            }
            start = end;
        }
        let pr_b = counts.iter().map(|&c| c as f64 / n as f64).collect();
        let mut z_cos = vec![0.0f32; n * d];
        cosine_normalize(&z_orig, &mut z_cos, d);
        State {
            n,
            d,
            k,
            nb,
            z_corr: z_orig.clone(),
            z_orig,
            z_cos,
            batch,
            chunks,
            pr_b,
            y: vec![0.0; k * d],
            dist: vec![0.0; n * k],
            scale: vec![0.0; n * k],
            r: vec![0.0; n * k],
            kernel_term: vec![0.0; n],
            cell_term: vec![0.0; n],
            size: vec![0.0; k],
            o: vec![0.0; k * nb],
            theta: opts.theta,
            sigma: opts.sigma,
            lambda: opts.lambda,
            alpha: opts.alpha,
            block_size: opts.block_size,
            max_iter_kmeans: opts.max_iter_kmeans,
            epsilon_cluster: opts.epsilon_cluster,
            epsilon_harmony: opts.epsilon_harmony,
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            objective_kmeans: Vec::new(),
            objective_harmony: Vec::new(),
            kmeans_steps: Vec::new(),
        }
    }

    /// Initial centroids by k-means on `Z_cos`, then `R`, `O`, `E` and the first objective.
    fn init_clusters(&mut self) {
        self.kmeans_init();
        normalize_rows(&mut self.y, self.d);
        self.assign_without_diversity();
        self.objective();
        if let Some(&last) = self.objective_kmeans.last() {
            self.objective_harmony.push(last);
        }
    }

    /// Distances of `Z_cos` to the centroids, `R` = the kernel without the diversity penalty,
    /// and `O`, `E` from it.
    fn assign_without_diversity(&mut self) {
        self.distances();
        self.scale_from_dist();
        self.r.copy_from_slice(&self.scale);
        // R = the kernel: R_ik ln R_ik = R_ik (-(d_ik - m_i) / σ - ln S_i), and Σ_k R_ik = 1.
        self.cell_term.copy_from_slice(&self.kernel_term);
        self.recount();
    }

    /// k-means++ seeding then Lloyd steps on `Z_cos`; leaves the centroids in `y`.
    fn kmeans_init(&mut self) {
        let (n, d, k) = (self.n, self.d, self.k);
        let x = &self.z_cos;
        // k-means++: the first centre uniformly, then each with probability ∝ D².
        let first = self.rng.gen_range(0..n);
        self.y[..d].copy_from_slice(&x[first * d..(first + 1) * d]);
        let mut closest: Vec<f64> = x
            .par_chunks(d)
            .map(|row| sq_dist(row, &self.y[..d]))
            .collect();
        for c in 1..k {
            let total: f64 = closest.iter().sum();
            let pick = if total > 0.0 {
                let target = self.rng.gen::<f64>() * total;
                let mut acc = 0.0;
                let mut pick = n - 1;
                for (i, &v) in closest.iter().enumerate() {
                    acc += v;
                    if acc > target {
                        pick = i;
                        break;
                    }
                }
                pick
            } else {
                self.rng.gen_range(0..n)
            };
            self.y[c * d..(c + 1) * d].copy_from_slice(&x[pick * d..(pick + 1) * d]);
            let centre = &self.y[c * d..(c + 1) * d];
            closest
                .par_iter_mut()
                .zip(x.par_chunks(d))
                .for_each(|(m, row)| {
                    let v = sq_dist(row, centre);
                    if v < *m {
                        *m = v;
                    }
                });
        }
        // Lloyd steps; stop when no label changes or the centroids move by less than
        // 1e-4 x the mean coordinate variance (scikit-learn's tolerance).
        let tol = 1e-4 * mean_variance(x, n, d);
        let mut labels = vec![u32::MAX; n];
        let mut new_labels = vec![0u32; n];
        for _ in 0..INIT_MAX_ITER {
            let cnorm: Vec<f32> = self.y.chunks_exact(d).map(|c| dot(c, c)).collect();
            cells_times_rows(x, d, &self.y, k, &mut self.dist, &self.chunks);
            new_labels
                .par_iter_mut()
                .zip(self.dist.par_chunks(k))
                .for_each(|(l, dots)| {
                    let mut best = f32::INFINITY;
                    let mut arg = 0;
                    for (c, (&dt, &cn)) in dots.iter().zip(&cnorm).enumerate() {
                        let s = cn - 2.0 * dt;
                        if s < best {
                            best = s;
                            arg = c;
                        }
                    }
                    *l = arg as u32;
                });
            if new_labels == labels {
                break;
            }
            std::mem::swap(&mut labels, &mut new_labels);
            // Means of the clusters, summed over fixed chunks in order.
            let partials: Vec<(Vec<f64>, Vec<f64>)> = self
                .chunks
                .par_iter()
                .map(|ch| {
                    let mut sums = vec![0.0f64; k * d];
                    let mut counts = vec![0.0f64; k];
                    for i in ch.start..ch.end {
                        let l = labels[i] as usize;
                        counts[l] += 1.0;
                        for (s, &v) in sums[l * d..(l + 1) * d]
                            .iter_mut()
                            .zip(&x[i * d..(i + 1) * d])
                        {
                            *s += v as f64;
                        }
                    }
                    (sums, counts)
                })
                .collect();
            let mut sums = vec![0.0f64; k * d];
            let mut counts = vec![0.0f64; k];
            for (s, c) in &partials {
                for (a, b) in sums.iter_mut().zip(s) {
                    *a += b;
                }
                for (a, b) in counts.iter_mut().zip(c) {
                    *a += b;
                }
            }
            let mut shift = 0.0f64;
            for c in 0..k {
                if counts[c] == 0.0 {
                    continue; // an empty cluster keeps its centre
                }
                for j in 0..d {
                    let m = sums[c * d + j] / counts[c];
                    let old = self.y[c * d + j] as f64;
                    shift += (m - old) * (m - old);
                    self.y[c * d + j] = m as f32;
                }
            }
            if shift <= tol {
                break;
            }
        }
    }

    /// `dist = 2 (1 - Z_cos Yᵀ)`.
    fn distances(&mut self) {
        let k = self.k;
        cells_times_rows(
            &self.z_cos,
            self.d,
            &self.y,
            k,
            &mut self.dist,
            &self.chunks,
        );
        self.dist
            .par_chunks_mut(CHUNK * k)
            .for_each(|c| c.iter_mut().for_each(|v| *v = 2.0 * (1.0 - *v)));
    }

    /// `scale_ik = exp(-d_ik / σ)` normalized over the clusters of each cell, and the cell's
    /// `m_i - σ ln S_i` (`m_i = min_k d_ik`, `S_i = Σ_k exp(-(d_ik - m_i) / σ)`).
    fn scale_from_dist(&mut self) {
        let k = self.k;
        let sigma = self.sigma;
        let inv = (1.0 / sigma) as f32;
        self.scale
            .par_chunks_mut(CHUNK * k)
            .zip(self.dist.par_chunks(CHUNK * k))
            .zip(self.kernel_term.par_chunks_mut(CHUNK))
            .for_each(|((sc, dc), kt)| {
                for ((s, dr), kv) in sc.chunks_exact_mut(k).zip(dc.chunks_exact(k)).zip(kt) {
                    let m = dr.iter().copied().fold(f32::INFINITY, f32::min);
                    let mut total = 0.0f32;
                    for (sv, &dv) in s.iter_mut().zip(dr) {
                        let e = (-(dv - m) * inv).exp();
                        *sv = e;
                        total += e;
                    }
                    let t = 1.0 / total;
                    s.iter_mut().for_each(|v| *v *= t);
                    *kv = m as f64 - sigma * (total as f64).ln();
                }
            });
    }

    /// Recomputes `size` and `O` from `R`.
    fn recount(&mut self) {
        let k = self.k;
        let partials: Vec<Vec<f64>> = self
            .chunks
            .par_iter()
            .map(|ch| {
                let mut s = vec![0.0f64; k];
                for row in self.r[ch.start * k..ch.end * k].chunks_exact(k) {
                    for (a, &v) in s.iter_mut().zip(row) {
                        *a += v as f64;
                    }
                }
                s
            })
            .collect();
        self.size.iter_mut().for_each(|v| *v = 0.0);
        self.o.iter_mut().for_each(|v| *v = 0.0);
        for (ch, s) in self.chunks.iter().zip(&partials) {
            for (c, &v) in s.iter().enumerate() {
                self.size[c] += v;
                self.o[ch.batch * k + c] += v;
            }
        }
    }

    /// `size_k = Σ_b O_kb`.
    fn sizes_from_o(&mut self) {
        let k = self.k;
        self.size.iter_mut().for_each(|v| *v = 0.0);
        for ob in self.o.chunks_exact(k) {
            for (a, &v) in self.size.iter_mut().zip(ob) {
                *a += v;
            }
        }
    }

    /// Appends the current objective to `objective_kmeans`.
    ///
    /// The distance and entropy terms need no logarithm per element: with
    /// `R_ik = s_ik p_kb / T_i`, `s_ik = exp(-(d_ik - m_i) / σ) / S_i` and `T_i` the cell's
    /// normalizer, `d_ik + σ ln R_ik = m_i - σ ln S_i + σ ln p_kb - σ ln T_i`, so each cell
    /// contributes `(m_i - σ ln S_i - σ ln T_i) Σ_k R_ik + σ Σ_k R_ik ln p_kb`, computed when
    /// its assignments are updated (`cell_term`).
    fn objective(&mut self) {
        let k = self.k;
        let err_ent: f64 = self.cell_term.iter().sum();
        let mut cross = 0.0;
        for c in 0..k {
            for b in 0..self.nb {
                let o = self.o[b * k + c].max(0.0);
                let e = self.size[c] * self.pr_b[b];
                cross += o * ((o + e + 1.0) / (2.0 * e + 1.0)).ln();
            }
        }
        let norm = 2000.0 / self.n as f64;
        self.objective_kmeans
            .push((err_ent + self.sigma * self.theta * cross) * norm);
    }

    /// One round of soft k-means with the diversity penalty.
    fn cluster(&mut self) {
        if self.objective_harmony.len() > 1 {
            // After a correction: distances of the corrected cells to the centroids the
            // correction estimated, and assignments without the diversity penalty.
            self.assign_without_diversity();
        }
        let mut steps = 0;
        for i in 0..self.max_iter_kmeans {
            steps += 1;
            self.update_r();
            self.objective();
            if i > WINDOW && self.kmeans_converged() {
                break;
            }
        }
        self.kmeans_steps.push(steps);
        if let Some(&last) = self.objective_kmeans.last() {
            self.objective_harmony.push(last);
        }
    }

    fn kmeans_converged(&self) -> bool {
        let o = &self.objective_kmeans;
        if o.len() < WINDOW + 1 {
            return false;
        }
        let m = o.len();
        let new: f64 = o[m - WINDOW..].iter().sum();
        let old: f64 = o[m - WINDOW - 1..m - 1].iter().sum();
        (old - new).abs() / old.abs() < self.epsilon_cluster
    }

    fn harmony_converged(&self) -> bool {
        let o = &self.objective_harmony;
        if o.len() < 2 {
            return false;
        }
        let (old, new) = (o[o.len() - 2], o[o.len() - 1]);
        let delta = (old - new) / old.abs();
        (0.0..self.epsilon_harmony).contains(&delta)
    }

    /// The blockwise update of `R` with the diversity penalty.
    fn update_r(&mut self) {
        let (n, k, nb) = (self.n, self.k, self.nb);
        let mut perm: Vec<u32> = (0..n as u32).collect();
        perm.shuffle(&mut self.rng);
        let n_blocks = (1.0 / self.block_size).ceil() as usize;
        let per_block = n.div_ceil(n_blocks.max(1)).max(1);
        let theta = self.theta;
        let sigma = self.sigma;
        let mut penalty = vec![0.0f32; k * nb];
        let mut ln_penalty = vec![0.0f32; k * nb];
        let mut new_rows = vec![0.0f32; per_block * k];
        let mut new_terms = vec![0.0f64; per_block];
        for block in perm.chunks(per_block) {
            // Remove the block's cells from the counts.
            for &i in block {
                let i = i as usize;
                let b = self.batch[i] as usize;
                let ob = &mut self.o[b * k..(b + 1) * k];
                for (a, &v) in ob.iter_mut().zip(&self.r[i * k..(i + 1) * k]) {
                    *a -= v as f64;
                }
            }
            self.sizes_from_o();
            // ((2E + 1) / (O + E + 1))^θ per cluster and batch.
            for c in 0..k {
                for b in 0..nb {
                    let e = self.size[c] * self.pr_b[b];
                    let o = self.o[b * k + c].max(0.0);
                    let ln_p = theta * ((2.0 * e + 1.0) / (o + e + 1.0)).ln();
                    penalty[b * k + c] = ln_p.exp() as f32;
                    ln_penalty[b * k + c] = ln_p as f32;
                }
            }
            let rows = &mut new_rows[..block.len() * k];
            let terms = &mut new_terms[..block.len()];
            let scale = &self.scale;
            let batch = &self.batch;
            let kernel_term = &self.kernel_term;
            let penalty = &penalty;
            let ln_penalty = &ln_penalty;
            rows.par_chunks_mut(k)
                .zip(terms.par_iter_mut())
                .zip(block.par_iter())
                .for_each(|((row, term), &i)| {
                    let i = i as usize;
                    let b = batch[i] as usize;
                    let p = &penalty[b * k..(b + 1) * k];
                    let lp = &ln_penalty[b * k..(b + 1) * k];
                    let mut total = 0.0f32;
                    for ((rv, &sv), &pv) in row.iter_mut().zip(&scale[i * k..(i + 1) * k]).zip(p) {
                        *rv = sv * pv;
                        total += *rv;
                    }
                    let total = total.max(1e-8);
                    let t = 1.0 / total;
                    let (mut mass, mut cross) = (0.0f32, 0.0f32);
                    for (v, &l) in row.iter_mut().zip(lp) {
                        *v *= t;
                        mass += *v;
                        cross += *v * l;
                    }
                    // Σ_k R_ik d_ik + σ Σ_k R_ik ln R_ik (see `objective`).
                    let kt = kernel_term.get(i).copied().unwrap_or_default();
                    *term = (kt - sigma * (total as f64).ln()) * mass as f64 + sigma * cross as f64;
                });
            // Put the cells back with their new assignments.
            for ((row, &term), &i) in rows.chunks_exact(k).zip(terms.iter()).zip(block) {
                let i = i as usize;
                let b = self.batch[i] as usize;
                self.r[i * k..(i + 1) * k].copy_from_slice(row);
                self.cell_term[i] = term;
                let ob = &mut self.o[b * k..(b + 1) * k];
                for (a, &v) in ob.iter_mut().zip(row) {
                    *a += v as f64;
                }
            }
        }
        self.sizes_from_o();
    }

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
    fn correct(&mut self) {
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

/// `out (n x m) = x (n x d) · rowsᵀ` with `rows` `m x d`, over the fixed chunks.
fn cells_times_rows(
    x: &[f32],
    d: usize,
    rows: &[f32],
    m: usize,
    out: &mut [f32],
    chunks: &[Chunk],
) {
    let rt = MatRef::from_column_major_slice(rows, d, m);
    let mut pieces: Vec<&mut [f32]> = Vec::with_capacity(chunks.len());
    let mut rest: &mut [f32] = out;
    for ch in chunks {
        let (head, tail) = rest.split_at_mut((ch.end - ch.start) * m);
        pieces.push(head);
        rest = tail;
    }
    pieces
        .into_par_iter()
        .zip(chunks.par_iter())
        .for_each(|(o, ch)| {
            let nc = ch.end - ch.start;
            let xm = MatRef::from_row_major_slice(&x[ch.start * d..ch.end * d], nc, d);
            let dst = MatMut::from_row_major_slice_mut(o, nc, m);
            faer::linalg::matmul::matmul(dst, Accum::Replace, xm, rt, 1.0f32, Par::Seq);
            crate::cpu::clear_upper_simd_state_here();
        });
}

/// Rows of `src` scaled to unit Euclidean length into `dst` (a zero row stays zero).
fn cosine_normalize(src: &[f32], dst: &mut [f32], d: usize) {
    dst.par_chunks_mut(d)
        .zip(src.par_chunks(d))
        .for_each(|(o, s)| {
            let norm = dot(s, s).sqrt();
            let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            for (a, &b) in o.iter_mut().zip(s) {
                *a = b * inv;
            }
        });
}

fn normalize_rows(x: &mut [f32], d: usize) {
    for row in x.chunks_exact_mut(d) {
        let norm = dot(row, row).sqrt();
        if norm > 0.0 {
            let inv = 1.0 / norm;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// Dot product in a fixed order (8 lanes).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    acc.iter().sum::<f32>() + s
}

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let t = (x - y) as f64;
            t * t
        })
        .sum()
}

/// Mean over the columns of the (population) variance of each column.
fn mean_variance(x: &[f32], n: usize, d: usize) -> f64 {
    let mut mean = vec![0.0f64; d];
    for row in x.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = 0.0f64;
    for row in x.chunks_exact(d) {
        for (m, &v) in mean.iter().zip(row) {
            let t = v as f64 - m;
            var += t * t;
        }
    }
    var / (n as f64 * d as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
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
