//! Doublet detection with Scrublet (Wolock, Lopez and Klein 2019, "Scrublet: computational
//! identification of cell doublets in single-cell transcriptomic data", Cell Systems 8:281),
//! run as Scanpy 1.11's `sc.pp.scrublet` runs it (`scanpy/preprocessing/_scrublet/`), one
//! sample at a time.
//!
//! # Steps (one sample, raw counts)
//! 1. Filtering as Scanpy: genes detected (count > 0) in fewer than
//!    [`ScrubletOptions::min_gene_cells`] cells (3) are dropped, then cells with fewer than
//!    [`ScrubletOptions::min_cell_genes`] detected genes (3) among the kept genes. Dropped cells
//!    get a NaN score and are never predicted doublets.
//! 2. Highly variable genes: `normalize_total` to the median total, `log1p`, and
//!    [`crate::hvg`] with [`ScrubletOptions::hvg`] (Scanpy's `highly_variable_genes` defaults:
//!    flavor `seurat`, `min_mean = 0.0125`, `max_mean = 3`, `min_disp = 0.5`). Everything after
//!    this uses the raw counts of these genes only.
//! 3. Simulated doublets: `n_sim = floor(n_obs * sim_doublet_ratio)` distinct ordered pairs
//!    `(a, b)` drawn without replacement from the `n_obs x n_obs` grid (Scanpy's
//!    `sample_comb`, so `a = b` is possible), each doublet the sum of the two cells' raw
//!    counts. Random numbers: ChaCha8 seeded with [`ScrubletOptions::seed`] (Floyd's sampling
//!    of flat indices `a * n_obs + b`, then sorted).
//! 4. Normalization: every observed cell is scaled to a total of `1e6` over the selected genes,
//!    `x_ij = 1e6 c_ij / t_i` with `t_i = sum_j c_ij`, and every simulated doublet likewise with
//!    the summed totals of its parents, `1e6 (c_aj + c_bj) / (t_a + t_b)` (a total of zero
//!    leaves the cell at zero, as Scanpy's `normalize_total`).
//! 5. z-score of every gene with the observed cells' mean `mu_j` and standard deviation `sd_j`
//!    (`ddof = 1`), for observed and simulated cells alike (Scanpy's defaults
//!    `mean_center=True, normalize_variance=True, log_transform=False`; no clipping).
//! 6. PCA with [`ScrubletOptions::n_comps`] components fitted on the observed cells
//!    ([`crate::pca::pca`] on the sparse normalized matrix, implicit centring and scaling), and
//!    both observed and simulated cells projected on the loadings `L`:
//!    `e_i = sum_j (x_ij - mu_j) / sd_j L_j`. Scanpy densifies the z-scored matrices and runs
//!    scikit-learn's `PCA(svd_solver="arpack")`, whose `transform` is the same projection (the
//!    z-scored observed cells have mean zero, so its re-centring changes nothing); here the
//!    projection is computed from the sparse raw counts as
//!    `e_i = s_i sum_j c_ij L_j / sd_j - sum_j mu_j L_j / sd_j` with `s_i = 1e6 / t_i`, and a
//!    doublet's sum over its parents' counts is the sum of the parents' sums, so no dense
//!    matrix and no doublet count matrix is ever formed. The PCA solver is the crate's
//!    (block Krylov by default, [`crate::pca::Solver::krylov`]), not ARPACK: components agree to
//!    the solver's tolerance.
//! 7. kNN over observed + simulated cells with `k = round(0.5 sqrt(n_obs))` (or
//!    [`ScrubletOptions::n_neighbors`]) and `k_adj = round(k (1 + n_sim / n_obs))` neighbours,
//!    the cell itself included as the first one (Scanpy's `Neighbors` table; Python's `round`,
//!    halves to even). Only the number of simulated cells among them is needed, so the exact
//!    search (Scanpy's brute-force route below 8,192 cells, see
//!    [`ScrubletOptions::knn_method`]) counts them without building neighbour tables (module
//!    `neighbours`: blocked dot products, a buffered selection of the `k_adj + 8` best
//!    candidates, their `f64` re-ranking with ties broken by index; the same neighbours as
//!    [`crate::neighbors::knn`]'s exact search). Above that size [`crate::neighbors::knn`]'s
//!    NN-descent is used.
//! 8. Score (Scrublet's Bayesian correction of the share of simulated neighbours): with
//!    `n_d` simulated cells among the `k_adj` neighbours, `rho = expected_doublet_rate`,
//!    `r = n_sim / n_obs`, `q = (n_d + 1) / (k_adj + 2)`,
//!    `score = q rho / r / (1 - rho - q (1 - rho - rho / r))`, and its standard error
//!    `se = q rho / r / (1 - rho - q (1 - rho - rho / r))^2
//!    sqrt((se_q / q (1 - rho))^2 + (stdev_doublet_rate / rho (1 - q))^2)` with
//!    `se_q = sqrt(q (1 - q) / (k_adj + 3))`.
//! 9. Threshold: [`ScrubletOptions::threshold`] or, when `None`, [`threshold_minimum`] of the
//!    simulated doublets' scores (scikit-image's `threshold_minimum`, which Scanpy calls).
//!    When that histogram never becomes bimodal there is no threshold: as Scanpy, no cell is
//!    predicted a doublet and [`Scrublet::threshold_failure`] says why. Cells with
//!    `score > threshold` are predicted doublets; `z = (score - threshold) / se`.
//!
//! # Differences from Scanpy
//! The simulated pairs come from another random generator, so scores are not identical to
//! Scanpy's for the same seed (the test compares their ranks and their accuracy on known
//! doublets). Genes with zero variance among the observed cells get `sd = 1` (Scanpy divides by
//! zero; such a gene is never highly variable with the default flavor). Only Scanpy's default
//! preprocessing (z-score, no log, PCA) is implemented, and no UMI subsampling of doublets.
//!
//! # Samples
//! [`scrublet_by_sample`] runs each sample alone (Scrublet's assumption: doublets form within
//! one capture), in parallel; sample `s` uses the seed `opts.seed + s` (wrapping). Results do
//! not depend on the number of threads.

mod by_sample;
mod neighbours;
mod score;
mod simulate;
mod threshold;

use rayon::prelude::*;

pub use by_sample::{scrublet_by_sample, Doublets, SampleDoublets, IMPLAUSIBLE_RATE_FACTOR};
pub use threshold::threshold_minimum;

use neighbours::simulated_neighbour_counts;
use score::score;
use simulate::sample_pairs;

use crate::error::{Error, Result};
use crate::hvg::{highly_variable_from_moments, highly_variable_genes, log1p_moments};
use crate::hvg::{Flavor, HvgOptions};
use crate::neighbors::{knn, KnnOptions, Method, AUTO_EXACT_MAX_CELLS};
use crate::normalize::NormalizeOptions;
use crate::pca::{pca, PcaOptions, Solver};
use crate::sparse::CsrMatrix;

/// Total of every cell after Scrublet's normalization (Scanpy's `target_sum=1e6`).
const TARGET_SUM: f64 = 1e6;

/// Options of [`scrublet`] and [`scrublet_by_sample`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScrubletOptions {
    /// Simulated doublets per observed cell. Default 2.0 (Scanpy's `sim_doublet_ratio`).
    /// Must be positive, finite, and give at least one and at most `n_obs^2` doublets.
    pub sim_doublet_ratio: f64,
    /// Expected doublet rate of the experiment. Default 0.05. Must be in (0, 1).
    pub expected_doublet_rate: f64,
    /// Uncertainty of the expected doublet rate. Default 0.02. Must be in (0, 1).
    pub stdev_doublet_rate: f64,
    /// Neighbours `k` before the adjustment for the simulated cells. Default `None`:
    /// `round(0.5 sqrt(n_obs))` (Python rounding, halves to even). Must be at least 1.
    pub n_neighbors: Option<usize>,
    /// Principal components. Default 30 (Scanpy's `n_prin_comps`). Must be at least 1 and at
    /// most the number of cells and of selected genes.
    pub n_comps: usize,
    /// Score above which a cell is a predicted doublet. Default `None`: automatic
    /// ([`threshold_minimum`] of the simulated scores). Must be finite when given.
    pub threshold: Option<f64>,
    /// Samples with fewer cells than this are skipped by [`scrublet_by_sample`] (with the reason
    /// in [`SampleDoublets::skipped`]) and refused by [`scrublet`]. Default 100; must be at
    /// least 2.
    pub min_cells: usize,
    /// Genes detected in fewer cells than this are left out (Scanpy's
    /// `filter_genes(min_cells=3)`). Default 3.
    pub min_gene_cells: usize,
    /// Cells with fewer detected genes than this (after the gene filter) are left out and get
    /// a NaN score (Scanpy's `filter_cells(min_genes=3)`). Default 3.
    pub min_cell_genes: usize,
    /// Highly variable gene selection. Default [`HvgOptions::default`] (Scanpy's defaults,
    /// flavor `seurat`, no `n_top_genes`).
    pub hvg: HvgOptions,
    /// PCA solver. Default [`Solver::krylov`]: on the mixture of `tests/doublets.rs` its
    /// scores agree with Scanpy's (ARPACK) as well as an exact decomposition's do, with about
    /// half the products of [`Solver::randomized`].
    pub solver: Solver,
    /// kNN search. Default [`Method::Auto`] (exact up to 8,191 observed + simulated cells).
    pub knn_method: Method,
    /// Seed of the doublet simulation, the PCA start and the approximate kNN. Default 0.
    pub seed: u64,
}

impl Default for ScrubletOptions {
    fn default() -> Self {
        ScrubletOptions {
            sim_doublet_ratio: 2.0,
            expected_doublet_rate: 0.05,
            stdev_doublet_rate: 0.02,
            n_neighbors: None,
            n_comps: 30,
            threshold: None,
            min_cells: 100,
            min_gene_cells: 3,
            min_cell_genes: 3,
            hvg: HvgOptions::default(),
            solver: Solver::krylov(),
            knn_method: Method::Auto,
            seed: 0,
        }
    }
}

impl ScrubletOptions {
    /// Checks every field (see their docs); errors name the field.
    pub fn validate(&self) -> Result<()> {
        let r = self.sim_doublet_ratio;
        if !(r.is_finite() && r > 0.0) {
            return Err(Error::option(
                "sim_doublet_ratio",
                format!("must be positive and finite, got {r}"),
            ));
        }
        let unit = |name: &'static str, v: f64| {
            if v > 0.0 && v < 1.0 {
                Ok(())
            } else {
                Err(Error::option(name, format!("must be in (0, 1), got {v}")))
            }
        };
        unit("expected_doublet_rate", self.expected_doublet_rate)?;
        unit("stdev_doublet_rate", self.stdev_doublet_rate)?;
        if self.n_neighbors == Some(0) {
            return Err(Error::option("n_neighbors", "must be at least 1"));
        }
        if self.n_comps == 0 {
            return Err(Error::option("n_comps", "must be at least 1"));
        }
        if let Some(t) = self.threshold {
            if !t.is_finite() {
                return Err(Error::option(
                    "threshold",
                    format!("must be finite, got {t}"),
                ));
            }
        }
        if self.min_cells < 2 {
            return Err(Error::option(
                "min_cells",
                format!("must be at least 2, got {}", self.min_cells),
            ));
        }
        if self.hvg.n_bins == 0 {
            return Err(Error::option("hvg.n_bins", "must be at least 1"));
        }
        if self.hvg.n_top_genes == Some(0) {
            return Err(Error::option("hvg.n_top_genes", "must be at least 1"));
        }
        self.solver.validate()
    }
}

/// Result of [`scrublet`] on one sample. Per-cell vectors follow the rows of the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrublet {
    /// Doublet score of every input cell (NaN for cells left out by the gene-count filter).
    pub scores: Vec<f64>,
    /// Standard error of every score (NaN for left-out cells).
    pub errors: Vec<f64>,
    /// Scores of the simulated doublets.
    pub scores_sim: Vec<f64>,
    /// Standard errors of the simulated doublets' scores.
    pub errors_sim: Vec<f64>,
    /// Threshold used: the given one, the automatic one, or `None` when the automatic one could
    /// not be found (then no cell is predicted).
    pub threshold: Option<f64>,
    /// Why the automatic threshold could not be found.
    pub threshold_failure: Option<String>,
    /// `score > threshold` for every input cell (false for left-out cells and without a
    /// threshold).
    pub predicted: Vec<bool>,
    /// `(score - threshold) / error` (NaN without a threshold and for left-out cells).
    pub z_scores: Vec<f64>,
    /// Parents of every simulated doublet (input row indices).
    pub parents: Vec<(u32, u32)>,
    /// Input columns (genes) used after filtering and HVG selection, increasing.
    pub genes: Vec<usize>,
    /// Number of cells scored (input cells minus those left out).
    pub n_scored: usize,
    /// `k` (before the adjustment).
    pub n_neighbors: usize,
    /// Neighbours per cell in the kNN over observed + simulated cells (the cell included).
    pub k_adj: usize,
    /// Share of scored cells predicted doublets (`None` without a threshold).
    pub detected_doublet_rate: Option<f64>,
    /// Share of simulated doublets above the threshold (`None` without a threshold).
    pub detectable_doublet_fraction: Option<f64>,
    /// `detected_doublet_rate / detectable_doublet_fraction` (`None` without a threshold).
    pub overall_doublet_rate: Option<f64>,
}

/// Scrublet on the raw counts of one sample (cells x genes); see the module docs for the
/// steps and formulas.
///
/// Errors: invalid options (named); fewer than `min_cells` cells, fewer selected genes than
/// `n_comps`, non-finite or negative counts, too few cells left after filtering.
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// let s = scrna::doublets::scrublet(&data.counts.to_csr(), &Default::default())?;
/// assert_eq!(s.scores.len(), data.n_cells());
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn scrublet(counts: &CsrMatrix, opts: &ScrubletOptions) -> Result<Scrublet> {
    scrublet_rows(counts, None, opts)
}

/// [`scrublet`] on the rows `rows` of `counts` (all rows when `None`), without copying them
/// first: per-cell results follow `rows`, and parents are positions in `rows`.
///
/// Bit for bit what [`scrublet`] gives on `counts.select_rows(rows)`: the filters read the
/// rows in place; the moments for the highly variable genes are computed on the kept cells
/// with every gene (the dropped genes' columns are computed and left out; each gene's sums run
/// over the same cells in the same order, and the cells' totals are summed over the kept genes
/// as [`log1p_moments`] would on the filtered matrix), and the selected genes' counts are taken
/// from that same copy, so the sample is copied once, not three times.
pub(super) fn scrublet_rows(
    counts: &CsrMatrix,
    rows: Option<&[usize]>,
    opts: &ScrubletOptions,
) -> Result<Scrublet> {
    opts.validate()?;
    let ctx = "scrublet";
    let n_genes_in = counts.n_cols();
    let n_in = rows.map_or(counts.n_rows(), <[usize]>::len);
    let row_of = |i: usize| rows.map_or(i, |r| r[i]);
    if n_in < opts.min_cells {
        return Err(Error::data(
            ctx,
            format!("{n_in} cells, fewer than min_cells = {}", opts.min_cells),
        ));
    }

    // 1. filters (genes first, then cells on the kept genes); the counts are checked in the
    // same pass
    let mut gene_cells = vec![0usize; n_genes_in];
    for i in 0..n_in {
        let (idx, val) = counts.row(row_of(i));
        for (&c, &v) in idx.iter().zip(val) {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::data(ctx, "counts must be finite and non-negative"));
            }
            if v > 0.0 {
                gene_cells[c as usize] += 1;
            }
        }
    }
    let kept_genes: Vec<usize> = (0..n_genes_in)
        .filter(|&g| gene_cells[g] >= opts.min_gene_cells)
        .collect();
    let mut gene_kept = vec![false; n_genes_in];
    for &g in &kept_genes {
        gene_kept[g] = true;
    }
    // per cell: detected kept genes, and the total over the kept genes (summed as
    // `sparse::sum_f64` sums the filtered matrix's row)
    let per_cell: Vec<(usize, f64)> = (0..n_in)
        .into_par_iter()
        .map_init(Vec::new, |kept, i| {
            let (idx, val) = counts.row(row_of(i));
            kept.clear();
            let mut detected = 0;
            for (&c, &v) in idx.iter().zip(val) {
                if gene_kept[c as usize] {
                    kept.push(v);
                    detected += (v > 0.0) as usize;
                }
            }
            (detected, crate::sparse::sum_f64(kept))
        })
        .collect();
    let kept_cells: Vec<usize> = (0..n_in)
        .filter(|&i| per_cell[i].0 >= opts.min_cell_genes)
        .collect();
    let n = kept_cells.len();
    if n < 2 || kept_genes.is_empty() {
        return Err(Error::data(
            ctx,
            format!(
                "{n} cells and {} genes left after filtering (min_cell_genes = {}, \
                 min_gene_cells = {})",
                kept_genes.len(),
                opts.min_cell_genes,
                opts.min_gene_cells
            ),
        ));
    }
    // the kept cells with every gene
    let cells = counts.select_rows(&kept_cells.iter().map(|&i| row_of(i)).collect::<Vec<_>>())?;

    // 2. highly variable genes on log1p(normalize_total(median)) of the kept genes
    let hvg = match opts.hvg.flavor {
        Flavor::SeuratV3 => {
            let filtered = cells.select_cols(&kept_genes)?;
            highly_variable_genes(&filtered, Some(&filtered), None, &opts.hvg)?
        }
        flavor => {
            let totals: Vec<f64> = kept_cells.iter().map(|&i| per_cell[i].1).collect();
            let norm = NormalizeOptions::default();
            if totals.iter().all(|&t| t != 0.0) {
                let (_, moments) = log1p_moments(&cells, &norm, flavor, Some(&totals))?;
                let pick = |v: &[f64]| kept_genes.iter().map(|&g| v[g]).collect::<Vec<_>>();
                highly_variable_from_moments(
                    pick(&moments.means),
                    &pick(&moments.variances),
                    &opts.hvg,
                )?
            } else {
                // a kept cell without counts in the kept genes (`min_cell_genes = 0`): a known
                // total of 0 would be summed again over all its genes, so the filtered matrix
                let filtered = cells.select_cols(&kept_genes)?;
                let (_, moments) = log1p_moments(&filtered, &norm, flavor, None)?;
                highly_variable_from_moments(moments.means, &moments.variances, &opts.hvg)?
            }
        }
    };
    let hv_local = hvg.selected();
    if hv_local.len() < opts.n_comps {
        return Err(Error::data(
            ctx,
            format!(
                "{} highly variable genes, fewer than n_comps = {}",
                hv_local.len(),
                opts.n_comps
            ),
        ));
    }
    if n < opts.n_comps {
        return Err(Error::data(
            ctx,
            format!("{n} cells left, fewer than n_comps = {}", opts.n_comps),
        ));
    }
    let genes: Vec<usize> = hv_local.iter().map(|&g| kept_genes[g]).collect();
    let raw = cells.select_cols(&genes)?;
    drop(cells);
    let totals: Vec<f64> = raw.row_sums();

    // 3. doublet pairs
    let n_sim = (n as f64 * opts.sim_doublet_ratio).floor();
    let grid = (n as f64) * (n as f64);
    if !(n_sim >= 1.0 && n_sim <= grid) {
        return Err(Error::data(
            ctx,
            format!(
                "sim_doublet_ratio {} gives {n_sim} doublets for {n} cells (need 1 to {grid})",
                opts.sim_doublet_ratio
            ),
        ));
    }
    let n_sim = n_sim as usize;
    let pairs = sample_pairs(n, n_sim, opts.seed);

    // 4-6. normalization, z-score and PCA of the observed cells, projection of all cells
    let mut cpm = raw.clone();
    cpm.map_rows_mut(|i, _, vals| {
        let s = scale(totals[i]);
        for v in vals.iter_mut() {
            *v = (*v as f64 * s) as f32;
        }
    });
    let fit = pca(
        &cpm,
        &PcaOptions {
            n_comps: opts.n_comps,
            scale: true,
            max_value: None,
            solver: opts.solver.clone(),
            seed: opts.seed,
        },
    )?;
    drop(cpm);
    let k = opts.n_comps;
    let p = raw.n_cols();
    // loadings divided by the gene's sd, and the offset sum_j mu_j / sd_j L_j
    let mut w = vec![0f64; p * k];
    let mut offset = vec![0f64; k];
    for j in 0..p {
        for c in 0..k {
            let l = fit.loadings[[j, c]] as f64 / fit.stds[j];
            w[j * k + c] = l;
            offset[c] += fit.means[j] * l;
        }
    }
    // per observed cell: sum_j c_ij w_j (unnormalized raw projection)
    let mut proj = vec![0f64; n * k];
    proj.par_chunks_mut(k).enumerate().for_each(|(i, out)| {
        let (idx, val) = raw.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            let row = &w[j as usize * k..(j as usize + 1) * k];
            for (o, &l) in out.iter_mut().zip(row) {
                *o += v as f64 * l;
            }
        }
    });
    let n_all = n + n_sim;
    let mut emb = vec![0f32; n_all * k];
    emb.par_chunks_mut(k).enumerate().for_each(|(i, out)| {
        if i < n {
            let s = scale(totals[i]);
            let pi = &proj[i * k..(i + 1) * k];
            for c in 0..k {
                out[c] = (s * pi[c] - offset[c]) as f32;
            }
        } else {
            let (a, b) = pairs[i - n];
            let (a, b) = (a as usize, b as usize);
            let s = scale(totals[a] + totals[b]);
            let (pa, pb) = (&proj[a * k..(a + 1) * k], &proj[b * k..(b + 1) * k]);
            for c in 0..k {
                out[c] = (s * (pa[c] + pb[c]) - offset[c]) as f32;
            }
        }
    });
    drop(proj);

    // 7. kNN
    let k_base = match opts.n_neighbors {
        Some(v) => v,
        None => ((0.5 * (n as f64).sqrt()).round_ties_even() as usize).max(1),
    };
    let r = n_sim as f64 / n as f64;
    let k_adj = (k_base as f64 * (1.0 + r)).round_ties_even() as usize;
    if k_adj == 0 || k_adj > n_all {
        return Err(Error::option(
            "n_neighbors",
            format!("{k_base} neighbours give {k_adj} after adjustment, for {n_all} cells"),
        ));
    }
    if let Some(p) = emb.iter().position(|v| !v.is_finite()) {
        return Err(Error::data(
            ctx,
            format!("non-finite PCA coordinate of cell {}", p / k),
        ));
    }
    let exact = match opts.knn_method {
        Method::Exact => true,
        Method::Approximate => false,
        Method::Auto => n_all <= AUTO_EXACT_MAX_CELLS,
    };
    let counts_sim: Vec<u32> = if exact {
        simulated_neighbour_counts(&emb, n_all, k, n, k_adj)
    } else {
        let view = ndarray::ArrayView2::from_shape((n_all, k), &emb)
            .map_err(|e| Error::data(ctx, e.to_string()))?;
        let nn = knn(
            view,
            &KnnOptions {
                n_neighbors: k_adj,
                method: Method::Approximate,
                seed: opts.seed,
                ..KnnOptions::default()
            },
        )?;
        (0..n_all)
            .map(|i| {
                nn.row_indices(i)
                    .iter()
                    .filter(|&&j| j as usize >= n)
                    .count() as u32
            })
            .collect()
    };
    drop(emb);

    // 8. scores
    let (rho, se_rho) = (opts.expected_doublet_rate, opts.stdev_doublet_rate);
    let nk = k_adj as f64;
    let (all_scores, all_errors): (Vec<f64>, Vec<f64>) = counts_sim
        .iter()
        .map(|&nd| score(nd as f64, nk, rho, r, se_rho))
        .unzip();
    let scores_sim = all_scores[n..].to_vec();
    let errors_sim = all_errors[n..].to_vec();

    // 9. threshold
    let (threshold, threshold_failure) = match opts.threshold {
        Some(t) => (Some(t), None),
        None => match threshold_minimum(&scores_sim) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };

    let mut scores = vec![f64::NAN; n_in];
    let mut errors = vec![f64::NAN; n_in];
    let mut predicted = vec![false; n_in];
    let mut z_scores = vec![f64::NAN; n_in];
    for (local, &cell) in kept_cells.iter().enumerate() {
        scores[cell] = all_scores[local];
        errors[cell] = all_errors[local];
        if let Some(t) = threshold {
            predicted[cell] = all_scores[local] > t;
            z_scores[cell] = (all_scores[local] - t) / all_errors[local];
        }
    }
    let (detected, detectable, overall) = match threshold {
        Some(t) => {
            let d = all_scores[..n].iter().filter(|&&s| s > t).count() as f64 / n as f64;
            let f = scores_sim.iter().filter(|&&s| s > t).count() as f64 / n_sim as f64;
            (Some(d), Some(f), Some(d / f))
        }
        None => (None, None, None),
    };
    let parents = pairs
        .iter()
        .map(|&(a, b)| (kept_cells[a as usize] as u32, kept_cells[b as usize] as u32))
        .collect();
    Ok(Scrublet {
        scores,
        errors,
        scores_sim,
        errors_sim,
        threshold,
        threshold_failure,
        predicted,
        z_scores,
        parents,
        genes,
        n_scored: n,
        n_neighbors: k_base,
        k_adj,
        detected_doublet_rate: detected,
        detectable_doublet_fraction: detectable,
        overall_doublet_rate: overall,
    })
}

/// `1e6 / total`, or 0 for a cell without counts (left at zero, as Scanpy's `normalize_total`).
fn scale(total: f64) -> f64 {
    if total > 0.0 {
        TARGET_SUM / total
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let bad = |f: fn(&mut ScrubletOptions), name: &str| {
            let mut o = ScrubletOptions::default();
            f(&mut o);
            match o.validate() {
                Err(Error::InvalidOption { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        };
        bad(|o| o.sim_doublet_ratio = 0.0, "sim_doublet_ratio");
        bad(|o| o.expected_doublet_rate = 1.0, "expected_doublet_rate");
        bad(|o| o.stdev_doublet_rate = -0.1, "stdev_doublet_rate");
        bad(|o| o.n_comps = 0, "n_comps");
        bad(|o| o.n_neighbors = Some(0), "n_neighbors");
        bad(|o| o.threshold = Some(f64::INFINITY), "threshold");
        bad(|o| o.min_cells = 1, "min_cells");
        assert!(ScrubletOptions::default().validate().is_ok());
    }

    /// Genes dropped by the gene filter change nothing, also for a cell whose only counts are
    /// in such a gene (kept with `min_cell_genes = 0`, its total over the kept genes 0), and
    /// a sample's rows scored in place equal the same rows copied out.
    #[test]
    fn dropped_genes_and_rows_in_place_change_nothing() {
        let sim = crate::simulate::simulate(&crate::simulate::SimulateOptions {
            n_cells: 300,
            n_genes: 500,
            n_clusters: 3,
            ..Default::default()
        })
        .unwrap();
        let x = &*sim.dataset.counts.to_csr();
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        for i in 0..x.n_rows() {
            if i == 5 {
                continue; // cell 5 keeps only the rare gene
            }
            let (idx, val) = x.row(i);
            r.extend(std::iter::repeat_n(i as u32, idx.len()));
            c.extend_from_slice(idx);
            v.extend_from_slice(val);
        }
        let without = CsrMatrix::from_triplets(x.n_rows(), 500, &r, &c, &v).unwrap();
        // gene 500, detected in 2 cells (dropped), the only gene of cell 5
        for (i, y) in [(5u32, 4.0f32), (9, 1.0)] {
            r.push(i);
            c.push(500);
            v.push(y);
        }
        let with = CsrMatrix::from_triplets(x.n_rows(), 501, &r, &c, &v).unwrap();
        let opts = ScrubletOptions {
            min_cell_genes: 0,
            ..Default::default()
        };
        let a = scrublet(&without, &opts).unwrap();
        let b = scrublet(&with, &opts).unwrap();
        let bits = |s: &Scrublet| s.scores.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(a.genes, b.genes);
        assert_eq!(a.predicted, b.predicted);
        let rows: Vec<usize> = (0..with.n_rows()).rev().step_by(2).collect();
        let copied = scrublet(&with.select_rows(&rows).unwrap(), &opts).unwrap();
        let in_place = scrublet_rows(&with, Some(&rows), &opts).unwrap();
        assert_eq!(bits(&copied), bits(&in_place));
        assert_eq!(copied.parents, in_place.parents);
    }
}
