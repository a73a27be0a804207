//! Principal component analysis of a sparse cells x genes matrix, with implicit centring and
//! scaling (Scanpy's `sc.pp.scale(max_value=10)` followed by `sc.pp.pca(svd_solver="arpack")`),
//! without ever forming a dense cells x genes matrix.
//!
//! # What is decomposed
//! Let `X` be the `n x p` log-normalized matrix (cells x highly variable genes), `mu_j` the mean
//! of gene `j` and `sd_j` its standard deviation with `ddof = 1` (genes with zero variance get
//! `sd_j = 1`, as Scanpy sets `std[std == 0] = 1`). Scanpy's `scale` makes the dense matrix
//! `Z_ij = clip((X_ij - mu_j) / sd_j, -m, m)` (both sides are clipped when `zero_center=True`,
//! `m = max_value`), and sklearn's `PCA` then centres `Z` again (after clipping, the columns of
//! `Z` no longer have mean zero exactly) and takes its truncated SVD.
//!
//! # Clipping without densifying
//! Every zero of column `j` of `X` maps to the same scaled value `z0_j = clip(-mu_j / sd_j, -m, m)`
//! (that value is clipped exactly when `mu_j / sd_j > m`, which happens for highly expressed
//! genes with few zeros). So `Z = S + 1 z0^T`, where `S` has the sparsity pattern of `X` with
//! values `S_ij = clip((X_ij - mu_j) / sd_j, -m, m) - z0_j`. The centred matrix is then
//! `Z - 1 mean(Z)^T = S - 1 c^T` with `c = mean(S)` per column: the constant per-gene zero level
//! cancels in the centring. We keep one `f32` copy of the value array (`S`'s values; the HVG
//! matrix is small) plus `c`, and every product with the centred scaled matrix is
//! `(S - 1 c^T) B = S B - 1 (c^T B)` and `(S - 1 c^T)^T Y = S^T Y - c (1^T Y)`. This reproduces
//! Scanpy's dense result exactly (up to `f32` rounding of the stored values), clipping of
//! stored values and of zeros included.
//!
//! # Products and determinism
//! `S B` runs in parallel over cells (each output row is independent). `S^T Y` accumulates
//! per fixed block of [`BLOCK_ROWS`] cells into a genes x columns buffer; the block results are
//! merged by a binary tree fixed by the block range (not by the thread count), so the result is
//! bitwise identical whatever the number of rayon threads. Every other sum over the cells
//! (column moments, Gram matrices) goes through the same fixed tree ([`RowBlocks`]); the rows
//! can therefore also be spread over several workers ([`pca_on_blocks`]: each adds up the
//! subtrees inside its contiguous range of blocks, the tree is completed in its fixed shape
//! from every worker's subtree sums), with the same bits as on one worker.
//! Inside the power iterations of the randomized solver the products accumulate in `f32`
//! (twice the SIMD width and half the memory traffic of `f64`; an iteration only has to keep
//! the subspace); the final product that gives the singular values and embeddings, and every
//! product of the Lanczos solver, accumulates in `f64`.
//!
//! # Variance
//! `variance_k = sigma_k^2 / (n - 1)` (sklearn's `explained_variance_`), and `variance_ratio_k`
//! divides it by the total variance of the centred, scaled and clipped matrix,
//! `sum_j var(Z_j)` with `ddof = 1`: this is the denominator sklearn's `PCA` uses for the arpack
//! solver (`total_var = var(X, ddof=1).sum()`) and so what Scanpy 1.11 reports.
//!
//! # Signs
//! Each component is oriented so that its largest-absolute loading (first one on ties) is
//! positive. This is sklearn's `svd_flip(u_based_decision=False)` convention used by Scanpy 1.11
//! with sklearn >= 1.5, so signs match Scanpy's except when two loadings tie in absolute value.
use ndarray::Array2;

use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;

mod blocks;
mod krylov;
mod lanczos;
mod operator;
mod randomized;
mod vectors;

pub use blocks::{Alone, Combine, NodeSum, RowBlocks};
use lanczos::irlba;
use operator::{Operator, Sums};
use randomized::randomized_svd;

/// Rows (cells) per block in the transposed product `S^T Y`; fixed so that the reduction tree
/// (and hence the floating-point result) does not depend on the number of threads.
pub const BLOCK_ROWS: usize = 2048;

/// Algorithm for the truncated SVD.
#[derive(Debug, Clone, PartialEq)]
pub enum Solver {
    /// Randomized subspace iteration (Halko, Martinsson and Tropp 2011, "Finding structure with
    /// randomness", algorithm 4.4): a Gaussian start block of `n_comps + n_oversamples` columns
    /// in gene space, at most `n_power_iter + 1` applications of `A^T A` each followed by a QR
    /// re-orthonormalization (modified Gram-Schmidt, twice), and a final Rayleigh-Ritz step on
    /// `A V` (eigen-decomposition of the small Gram matrix with faer). Orthonormalizing only in
    /// gene space (`genes x l`) keeps the dense work independent of the number of cells.
    ///
    /// The iteration stops early once the subspace has converged for the wanted components:
    /// after each application `W = A^T A V` (`V` orthonormal), the Ritz values `theta_1 >= ...`
    /// of `A^T A` on the span of `V` (eigenvalues of the `l x l` matrix `V^T W`, the squared
    /// singular value estimates) are compared with those of the previous iteration, and the
    /// iteration stops when `|theta_i - theta_i'| <= tol * max(theta_i, 1e-6 theta_1)` for
    /// every `i <= n_comps` (the floor keeps components at the rounding level of the `f32`
    /// products from holding the iteration). This is the Ritz-value stopping rule of block
    /// power / subspace iteration (Halko, Martinsson and Tropp 2011, section 4.5; Musco and
    /// Musco 2015, "Randomized block Krylov methods for stronger and faster approximate singular
    /// value decomposition"). The final Rayleigh-Ritz step uses the subspace after one more
    /// orthonormalized application than the last one compared. The test uses only
    /// thread-independent quantities, so the number of iterations does not depend on the
    /// number of threads.
    Randomized {
        /// Extra columns beyond `n_comps` in the random block. Default 30.
        n_oversamples: usize,
        /// Maximum number of power iterations beyond the first application of `A^T A`.
        /// Default 10.
        n_power_iter: usize,
        /// Relative change of the top `n_comps` Ritz values below which the power iterations
        /// stop (see above). Default 1e-4 ([`Solver::RANDOMIZED_TOL`]); 0 always runs all
        /// `n_power_iter` iterations.
        tol: f64,
    },
    /// Randomized block Krylov iteration (Musco and Musco 2015, "Randomized block Krylov
    /// methods for stronger and faster approximate singular value decomposition", algorithm 2):
    /// a Gaussian start block `V_0` of `b = n_comps + n_oversamples` columns, the blocks
    /// `V_i = orth((A^T A) V_{i-1})` for `i = 1..n_iter`, each orthogonalized against all
    /// earlier blocks (block classical Gram-Schmidt, twice, then Cholesky QR, twice), and a
    /// Rayleigh-Ritz step on the whole Krylov basis `[V_0 .. V_n_iter]` (at most
    /// `min(cells, genes)` columns). For the same number of products with `A` it reaches a far
    /// better approximation of the leading subspace than subspace iteration, which keeps only
    /// the last block.
    Krylov {
        /// Extra columns beyond `n_comps` in each block. Default 10.
        n_oversamples: usize,
        /// Applications of `A^T A` (Krylov blocks beyond the start block). Default 5.
        n_iter: usize,
    },
    /// Augmented implicitly restarted Lanczos bidiagonalization (IRLBA; Baglama and Reichel
    /// 2005, as in the `irlba` R package, libscran and Seurat), with full reorthogonalization
    /// and thick restarts keeping `n_comps` Ritz vectors.
    Lanczos {
        /// Lanczos basis size beyond `n_comps` (irlba's `work - nv`). Default 20.
        extra_work: usize,
        /// Convergence: every residual `|beta u_m^T e_i|` below `tol * sigma_1`. Default 1e-6.
        tol: f64,
        /// Maximum number of restarts. Default 200.
        max_restarts: usize,
    },
}

impl Solver {
    /// Default stopping tolerance of the randomized solver's power iterations.
    pub const RANDOMIZED_TOL: f64 = 1e-4;

    /// Randomized SVD with the default oversampling (30), maximum number of power iterations
    /// (10) and stopping tolerance ([`Solver::RANDOMIZED_TOL`]).
    pub fn randomized() -> Self {
        Solver::Randomized {
            n_oversamples: 30,
            n_power_iter: 10,
            tol: Self::RANDOMIZED_TOL,
        }
    }

    /// Block Krylov with the default oversampling (10) and number of iterations (5).
    pub fn krylov() -> Self {
        Solver::Krylov {
            n_oversamples: 10,
            n_iter: 5,
        }
    }

    /// IRLBA with the default extra work (20), tolerance (1e-6) and restarts (200).
    pub fn lanczos() -> Self {
        Solver::Lanczos {
            extra_work: 20,
            tol: 1e-6,
            max_restarts: 200,
        }
    }
}

impl Solver {
    /// Checks the solver's tolerance: positive for Lanczos, zero or positive for the
    /// randomized solver (zero: no early stop); finite in both.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Solver::Lanczos { tol, .. } if !(tol.is_finite() && tol > 0.0) => Err(Error::option(
                "solver.tol",
                format!("must be positive, got {tol}"),
            )),
            Solver::Randomized { tol, .. } if !(tol.is_finite() && tol >= 0.0) => {
                Err(Error::option(
                    "solver.tol",
                    format!("must be zero or positive and finite, got {tol}"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Options of [`pca`].
#[derive(Debug, Clone, PartialEq)]
pub struct PcaOptions {
    /// Number of principal components. Default 50 (Scanpy's default). Must be at most
    /// `min(cells, genes)`; larger values are an error, not silently reduced.
    pub n_comps: usize,
    /// Scale genes to unit variance (Scanpy's `sc.pp.scale`, `zero_center=True`) before PCA.
    /// Default `true`. When `false`, genes are only centred (Scanpy's `pca` without `scale`).
    pub scale: bool,
    /// Clip scaled values to `[-max_value, max_value]` (Scanpy's `scale(max_value=...)`).
    /// Default `Some(10.0)`. Ignored when `scale` is `false`.
    pub max_value: Option<f32>,
    /// SVD algorithm. Default [`Solver::randomized`].
    pub solver: Solver,
    /// Seed of the random start (ChaCha8). Default 0.
    pub seed: u64,
}

impl Default for PcaOptions {
    fn default() -> Self {
        PcaOptions {
            n_comps: 50,
            scale: true,
            max_value: Some(10.0),
            solver: Solver::randomized(),
            seed: 0,
        }
    }
}

impl PcaOptions {
    /// Checks the options without data: at least one component, a positive finite `max_value`
    /// (when scaling), a solver tolerance in range. [`pca`] also checks `n_comps` against the
    /// matrix.
    pub fn validate(&self) -> Result<()> {
        if self.n_comps == 0 {
            return Err(Error::option("n_comps", "must be at least 1, got 0"));
        }
        if let (true, Some(m)) = (self.scale, self.max_value) {
            if !(m.is_finite() && m > 0.0) {
                return Err(Error::option(
                    "max_value",
                    format!("must be positive and finite, got {m}"),
                ));
            }
        }
        self.solver.validate()
    }
}

/// Result of [`pca`].
#[derive(Debug, Clone)]
pub struct Pca {
    /// Cell embeddings, cells x `n_comps` (Scanpy's `obsm["X_pca"]`): `U Sigma`.
    pub embedding: Array2<f32>,
    /// Gene loadings, genes x `n_comps` (Scanpy's `varm["PCs"]`): orthonormal columns.
    pub loadings: Array2<f32>,
    /// Variance explained per component, `sigma_k^2 / (cells - 1)` (`uns["pca"]["variance"]`).
    pub variance: Vec<f64>,
    /// `variance` divided by the total variance of the matrix decomposed
    /// (`uns["pca"]["variance_ratio"]`).
    pub variance_ratio: Vec<f64>,
    /// Per-gene means used for centring (Scanpy's `var["mean"]` after `scale`).
    pub means: Vec<f64>,
    /// Per-gene standard deviations used for scaling (`ddof = 1`, zero replaced by 1; all 1
    /// when `scale` is `false`), Scanpy's `var["std"]`.
    pub stds: Vec<f64>,
    /// Work done by the solver: applications of `A^T A` in the randomized solver's power
    /// iterations (the first one included; at most `n_power_iter + 1`), applications of
    /// `A^T A` of the block Krylov solver (at most `n_iter`, fewer when the basis reaches
    /// `min(cells, genes)` columns), or Lanczos bidiagonalization passes (restarts + 1).
    pub iterations: usize,
}

/// PCA of `x` (cells x genes, log-normalized, already restricted to the highly variable genes).
///
/// Reproduces Scanpy's `sc.pp.scale(adata, max_value=10); sc.pp.pca(adata, n_comps=50)` on the
/// sparse matrix; see the [module documentation](self) for the formula, how clipping is done
/// without densifying, the variance ratio's denominator and the sign convention.
///
/// Errors: `Error::InvalidOption` for `n_comps == 0` or `n_comps > min(cells, genes)`, a
/// non-positive or non-finite `max_value`, zero oversampling + components, a Lanczos `tol`
/// that is not positive, or a randomized `tol` that is negative or not finite; `Error::InvalidData` for fewer than two cells, no genes, or non-finite
/// values.
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// # let log = scrna::normalize::normalize_total_log1p(&data.counts.to_csr(), &Default::default())?.matrix;
/// let mut opts = scrna::pca::PcaOptions::default();
/// opts.n_comps = 10;
/// let pca = scrna::pca::pca(&log, &opts)?;
/// assert_eq!(pca.embedding.dim(), (data.n_cells(), 10));
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn pca(x: &CsrMatrix, opts: &PcaOptions) -> Result<Pca> {
    pca_on_blocks(x, &RowBlocks::all(x.n_rows()), &Alone, opts)
}

/// [`pca`] of a matrix whose rows are spread over several workers: `x` holds the rows
/// `blocks.rows()` of the whole matrix (its columns are all the genes), and every column sum
/// over the rows (moments, `A^T Y`, Gram matrices) is this worker's subtree sums of the fixed
/// block tree completed by `combine` ([`blocks`](RowBlocks)), so the result is bit-identical
/// to [`pca`] of the whole matrix, whatever the split. Each worker calls it with the same
/// options, at the same time; the row products (`A V`, the embedding) stay on the worker, and
/// the small dense steps (orthonormalization with the same seeded generator, Ritz values,
/// the eigen-decompositions) are repeated on every worker from the same sums, so every worker
/// takes the same path and stops after the same iteration.
///
/// The result is [`pca`]'s, except that `embedding` holds the rows `blocks.rows()` only.
/// `pca` is this function with one worker holding every row ([`RowBlocks::all`], [`Alone`]).
///
/// Errors: as [`pca`], on every worker alike (the check for non-finite values is a sum over
/// all rows); `Error::InvalidOption` for a solver other than [`Solver::Randomized`] when the
/// rows are split (the Lanczos and block Krylov solvers orthogonalize in cell space, which
/// would need a reduction per vector; they run on one worker); `Error::InvalidData` when `x`
/// does not have the rows `blocks` says, or when `combine` fails.
pub fn pca_on_blocks(
    x: &CsrMatrix,
    blocks: &RowBlocks,
    combine: &dyn Combine,
    opts: &PcaOptions,
) -> Result<Pca> {
    let (n, p) = (blocks.n_rows(), x.n_cols());
    if n < 2 || p == 0 {
        return Err(Error::data(
            "pca",
            format!("need at least 2 cells and 1 gene, got {n} x {p}"),
        ));
    }
    opts.validate()?;
    let k = opts.n_comps;
    if k > n.min(p) {
        return Err(Error::option(
            "n_comps",
            format!(
                "must be between 1 and min(cells, genes) = {}, got {k}",
                n.min(p)
            ),
        ));
    }
    if !blocks.holds_all() && !matches!(opts.solver, Solver::Randomized { .. }) {
        return Err(Error::option(
            "solver",
            "only the randomized solver runs on rows spread over several workers",
        ));
    }
    let max_value = if opts.scale { opts.max_value } else { None };
    let sums = Sums { blocks, combine };
    // Every worker learns whether any worker holds the wrong rows or non-finite values.
    let wrong_rows = x.n_rows() != blocks.rows().len();
    let bad = sums.reduce(|rows| {
        if wrong_rows {
            return vec![0.0, 1.0];
        }
        let (lo, hi) = (x.indptr()[rows.start], x.indptr()[rows.end]);
        let non_finite = x.data()[lo..hi].iter().filter(|v| !v.is_finite()).count();
        vec![non_finite as f64, 0.0]
    })?;
    if bad.get(1).is_some_and(|&b| b > 0.0) {
        return Err(Error::data(
            "pca",
            "a worker holds a number of rows other than its blocks'",
        ));
    }
    if bad.first().is_some_and(|&b| b > 0.0) {
        return Err(Error::data("pca", "matrix has non-finite values"));
    }

    let (means, stds) = mean_std(x, opts.scale, sums)?;
    let op = Operator::new(x, &means, &stds, max_value.map(f64::from), sums)?;
    let total_var = op.total_variance()?;

    let ((sigma, loadings, embedding), iterations) = match opts.solver {
        Solver::Randomized {
            n_oversamples,
            n_power_iter,
            tol,
        } => randomized_svd(&op, k, n_oversamples, n_power_iter, tol, opts.seed)?,
        Solver::Lanczos {
            extra_work,
            tol,
            max_restarts,
        } => irlba(&op, k, extra_work, tol, max_restarts, opts.seed)?,
        Solver::Krylov {
            n_oversamples,
            n_iter,
        } => krylov::block_krylov(&op, k, n_oversamples, n_iter, opts.seed)?,
    };
    let variance: Vec<f64> = sigma.iter().map(|s| s * s / (n - 1) as f64).collect();
    let variance_ratio = variance
        .iter()
        .map(|v| if total_var > 0.0 { v / total_var } else { 0.0 })
        .collect();
    let mut loadings = loadings;
    let mut embedding = embedding;
    let n_held = x.n_rows();
    fix_signs(&mut loadings, &mut embedding, p, n_held, k);
    let loadings = Array2::from_shape_vec((p, k), loadings.iter().map(|&v| v as f32).collect())
        .map_err(|e| Error::data("pca", e.to_string()))?;
    let embedding =
        Array2::from_shape_vec((n_held, k), embedding.iter().map(|&v| v as f32).collect())
            .map_err(|e| Error::data("pca", e.to_string()))?;
    Ok(Pca {
        embedding,
        loadings,
        variance,
        variance_ratio,
        means,
        stds,
        iterations,
    })
}

/// Orient each component so that its largest-absolute loading is positive (sklearn's
/// `svd_flip(u_based_decision=False)`). `loadings` is `p x k`, `embedding` `n x k`, row-major.
fn fix_signs(loadings: &mut [f64], embedding: &mut [f64], p: usize, n: usize, k: usize) {
    for c in 0..k {
        let mut best = 0.0f64;
        let mut sign = 1.0;
        for j in 0..p {
            let v = loadings[j * k + c];
            if v.abs() > best {
                best = v.abs();
                sign = v.signum();
            }
        }
        if sign < 0.0 {
            for j in 0..p {
                loadings[j * k + c] = -loadings[j * k + c];
            }
            for i in 0..n {
                embedding[i * k + c] = -embedding[i * k + c];
            }
        }
    }
}

/// Per-gene mean and standard deviation (`ddof = 1`, two-pass, zero replaced by 1), as Scanpy's
/// `_get_mean_var` + `std[std == 0] = 1`. With `scale == false` the stds are all 1.
/// `x` holds the rows `sums.blocks.rows()`; the sums are over every row.
fn mean_std(x: &CsrMatrix, scale: bool, sums: Sums<'_>) -> Result<(Vec<f64>, Vec<f64>)> {
    let (n, p) = (sums.blocks.n_rows(), x.n_cols());
    let col_sums = sums.reduce(|rows| {
        let mut acc = vec![0.0f64; p];
        for i in rows {
            let (idx, val) = x.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                acc[j as usize] += v as f64;
            }
        }
        acc
    })?;
    let means: Vec<f64> = col_sums.iter().map(|s| s / n as f64).collect();
    if !scale {
        return Ok((means, vec![1.0; p]));
    }
    // sum over stored entries of (x - mu)^2 and the count of stored entries per gene
    let dev = sums.reduce(|rows| {
        let mut acc = vec![0.0f64; 2 * p];
        for i in rows {
            let (idx, val) = x.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                let j = j as usize;
                let d = v as f64 - means[j];
                acc[j] += d * d;
                acc[p + j] += 1.0;
            }
        }
        acc
    })?;
    let stds = (0..p)
        .map(|j| {
            let zeros = n as f64 - dev[p + j];
            let ss = dev[j] + zeros * means[j] * means[j];
            let sd = (ss / (n - 1) as f64).sqrt();
            if sd == 0.0 || !sd.is_finite() {
                1.0
            } else {
                sd
            }
        })
        .collect();
    Ok((means, stds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense_to_csr(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f32) -> CsrMatrix {
        let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..rows {
            for j in 0..cols {
                let x = f(i, j);
                if x != 0.0 {
                    r.push(i as u32);
                    c.push(j as u32);
                    v.push(x);
                }
            }
        }
        CsrMatrix::from_triplets(rows, cols, &r, &c, &v).unwrap()
    }

    #[test]
    fn operator_matches_dense_clipped_centred_matrix() {
        // gene 0 constant non-zero except one zero: its zeros clip below -max_value
        let n = 150;
        let x = dense_to_csr(n, 4, |i, j| match j {
            0 => {
                if i == 3 {
                    0.0
                } else {
                    5.0 + (i % 2) as f32 * 0.01
                }
            }
            1 => ((i * 7) % 5) as f32,
            2 => 0.0,
            _ => {
                if i == 10 {
                    9.0
                } else {
                    0.0
                }
            }
        });
        let blocks = RowBlocks::all(n);
        let sums = Sums {
            blocks: &blocks,
            combine: &Alone,
        };
        let (means, stds) = mean_std(&x, true, sums).unwrap();
        assert_eq!(stds[2], 1.0);
        let m = 3.0;
        let op = Operator::new(&x, &means, &stds, Some(m), sums).unwrap();
        let dense = x.to_dense();
        let mut z = Array2::<f64>::zeros((n, 4));
        for i in 0..n {
            for j in 0..4 {
                z[[i, j]] = ((dense[[i, j]] as f64 - means[j]) / stds[j]).clamp(-m, m);
            }
        }
        let zm = z.mean_axis(ndarray::Axis(0)).unwrap();
        let a = &z - &zm;
        let b: Vec<f64> = (0..8).map(|t| (t as f64 * 0.37).sin()).collect();
        let mut out = vec![0.0; n * 2];
        op.mul::<f64>(&b, 2, &mut out);
        for i in 0..n {
            for c in 0..2 {
                let want: f64 = (0..4).map(|j| a[[i, j]] * b[j * 2 + c]).sum();
                assert!((out[i * 2 + c] - want).abs() < 1e-5, "{i} {c}");
            }
        }
        let y: Vec<f64> = (0..n).map(|t| (t as f64 * 0.11).cos()).collect();
        let t = op.tmul::<f64>(&y, 1).unwrap();
        for j in 0..4 {
            let want: f64 = (0..n).map(|i| a[[i, j]] * y[i]).sum();
            assert!((t[j] - want).abs() < 1e-4, "{j}: {} vs {want}", t[j]);
        }
        let total: f64 = (0..4)
            .map(|j| (0..n).map(|i| a[[i, j]] * a[[i, j]]).sum::<f64>() / (n - 1) as f64)
            .sum();
        let tv = op.total_variance().unwrap();
        assert!((tv - total).abs() < 1e-5 * total);
    }
}
