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
//! bitwise identical whatever the number of rayon threads.
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
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;

mod krylov;

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
    /// iterations (the first one included; at most `n_power_iter + 1`), or Lanczos
    /// bidiagonalization passes (restarts + 1).
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
/// # let log = scrna::normalize::normalize_total_log1p(&data.counts, &Default::default())?.matrix;
/// let mut opts = scrna::pca::PcaOptions::default();
/// opts.n_comps = 10;
/// let pca = scrna::pca::pca(&log, &opts)?;
/// assert_eq!(pca.embedding.dim(), (data.n_cells(), 10));
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn pca(x: &CsrMatrix, opts: &PcaOptions) -> Result<Pca> {
    let (n, p) = x.shape();
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
    let max_value = if opts.scale { opts.max_value } else { None };
    if x.data().iter().any(|v| !v.is_finite()) {
        return Err(Error::data("pca", "matrix has non-finite values"));
    }

    let (means, stds) = mean_std(x, opts.scale);
    let op = Operator::new(x, &means, &stds, max_value.map(f64::from));
    let total_var = op.total_variance();

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
    fix_signs(&mut loadings, &mut embedding, p, n, k);
    let loadings = Array2::from_shape_vec((p, k), loadings.iter().map(|&v| v as f32).collect())
        .map_err(|e| Error::data("pca", e.to_string()))?;
    let embedding = Array2::from_shape_vec((n, k), embedding.iter().map(|&v| v as f32).collect())
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
fn mean_std(x: &CsrMatrix, scale: bool) -> (Vec<f64>, Vec<f64>) {
    let (n, p) = x.shape();
    let sums = block_reduce(n, |rows| {
        let mut acc = vec![0.0f64; p];
        for i in rows {
            let (idx, val) = x.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                acc[j as usize] += v as f64;
            }
        }
        acc
    });
    let means: Vec<f64> = sums.iter().map(|s| s / n as f64).collect();
    if !scale {
        return (means, vec![1.0; p]);
    }
    // sum over stored entries of (x - mu)^2 and the count of stored entries per gene
    let dev = block_reduce(n, |rows| {
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
    });
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
    (means, stds)
}

/// Deterministic parallel reduction over fixed blocks of [`BLOCK_ROWS`] rows: `leaf` maps a
/// block of rows to a vector, blocks are summed element-wise along a binary tree fixed by the
/// block range, so the result does not depend on the thread count.
fn block_reduce<F>(n_rows: usize, leaf: F) -> Vec<f64>
where
    F: Fn(std::ops::Range<usize>) -> Vec<f64> + Sync,
{
    fn tree<F>(lo: usize, hi: usize, n_rows: usize, leaf: &F) -> Vec<f64>
    where
        F: Fn(std::ops::Range<usize>) -> Vec<f64> + Sync,
    {
        if hi - lo <= 1 {
            let start = lo * BLOCK_ROWS;
            let end = (start + BLOCK_ROWS).min(n_rows);
            return leaf(start..end);
        }
        let mid = lo + (hi - lo) / 2;
        let (mut a, b) = rayon::join(
            || tree(lo, mid, n_rows, leaf),
            || tree(mid, hi, n_rows, leaf),
        );
        for (x, y) in a.iter_mut().zip(&b) {
            *x += y;
        }
        a
    }
    let blocks = n_rows.div_ceil(BLOCK_ROWS).max(1);
    tree(0, blocks, n_rows, &leaf)
}

/// The centred, scaled and clipped matrix `A = S - 1 c^T` (see the module documentation).
struct Operator<'a> {
    n: usize,
    p: usize,
    indptr: &'a [usize],
    indices: &'a [u32],
    values: Vec<f32>,
    col_means: Vec<f64>,
}

impl<'a> Operator<'a> {
    fn new(x: &'a CsrMatrix, means: &[f64], stds: &[f64], max_value: Option<f64>) -> Self {
        let (n, p) = x.shape();
        let clip = |z: f64| match max_value {
            Some(m) => z.clamp(-m, m),
            None => z,
        };
        let zero_level: Vec<f64> = (0..p).map(|j| clip(-means[j] / stds[j])).collect();
        let mut values = vec![0.0f32; x.nnz()];
        let indptr = x.indptr();
        values
            .par_chunks_mut(BLOCK_ROWS * 8)
            .enumerate()
            .for_each(|(c, out)| {
                let start = c * BLOCK_ROWS * 8;
                let idx = &x.indices()[start..start + out.len()];
                let val = &x.data()[start..start + out.len()];
                for ((o, &j), &v) in out.iter_mut().zip(idx).zip(val) {
                    let j = j as usize;
                    *o = (clip((v as f64 - means[j]) / stds[j]) - zero_level[j]) as f32;
                }
            });
        let sums = block_reduce(n, |rows| {
            let mut acc = vec![0.0f64; p];
            for i in rows {
                for k in indptr[i]..indptr[i + 1] {
                    acc[x.indices()[k] as usize] += values[k] as f64;
                }
            }
            acc
        });
        let col_means = sums.iter().map(|s| s / n as f64).collect();
        Operator {
            n,
            p,
            indptr,
            indices: x.indices(),
            values,
            col_means,
        }
    }

    /// `sum_j var(A_j)` with `ddof = 1` (two-pass around the column means).
    fn total_variance(&self) -> f64 {
        let p = self.p;
        let acc = block_reduce(self.n, |rows| {
            let mut acc = vec![0.0f64; 2 * p];
            for i in rows {
                for k in self.indptr[i]..self.indptr[i + 1] {
                    let j = self.indices[k] as usize;
                    let d = self.values[k] as f64 - self.col_means[j];
                    acc[j] += d * d;
                    acc[p + j] += 1.0;
                }
            }
            acc
        });
        let n = self.n as f64;
        (0..p)
            .map(|j| acc[j] + (n - acc[p + j]) * self.col_means[j] * self.col_means[j])
            .sum::<f64>()
            / (n - 1.0)
    }

    /// `out = A b` with `b` genes x `l` and `out` cells x `l`, both row-major, accumulated in
    /// `T` (`f64` for results, `f32` inside the power iterations of the randomized solver,
    /// where a product only needs to keep the subspace, not the digits).
    fn mul<T: Acc>(&self, b: &[f64], l: usize, out: &mut [f64]) {
        let mut cb = vec![0.0f64; l];
        for (j, &c) in self.col_means.iter().enumerate() {
            if c != 0.0 {
                for (acc, &bv) in cb.iter_mut().zip(&b[j * l..(j + 1) * l]) {
                    *acc += c * bv;
                }
            }
        }
        let bt: Vec<T> = b.iter().map(|&v| T::of(v)).collect();
        out.par_chunks_mut(l * MUL_ROWS)
            .enumerate()
            .for_each(|(c, o)| {
                let first = c * MUL_ROWS;
                let rows = first..first + o.len() / l;
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx") {
                    // SAFETY: the processor supports AVX (checked just above).
                    unsafe { self.mul_rows_avx(rows, &bt, &cb, l, o) };
                    return;
                }
                self.mul_rows(rows, &bt, &cb, l, o);
            });
    }

    /// Rows `rows` of `A b` into `out` (`rows.len() x l`), given `bt` (`b` in `T`) and
    /// `cb = c^T b`. Each output element sums its row's stored entries in storage order, so the
    /// result does not depend on how rows are split among threads.
    #[inline(always)]
    fn mul_rows<T: Acc>(
        &self,
        rows: std::ops::Range<usize>,
        bt: &[T],
        cb: &[f64],
        l: usize,
        out: &mut [f64],
    ) {
        let mut row = vec![T::default(); l];
        for (i, o) in rows.zip(out.chunks_mut(l)) {
            let ks = self.indptr[i]..self.indptr[i + 1];
            gather(&mut row, &self.indices[ks.clone()], &self.values[ks], bt, l);
            for ((ov, &r), &c) in o.iter_mut().zip(row.iter()).zip(cb) {
                *ov = r.f64() - c;
            }
        }
    }

    /// [`Operator::mul_rows`] compiled for 256-bit vectors (no FMA: every lane rounds as in
    /// `mul_rows`, so the bits are the same).
    ///
    /// # Safety
    /// The processor must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn mul_rows_avx<T: Acc>(
        &self,
        rows: std::ops::Range<usize>,
        bt: &[T],
        cb: &[f64],
        l: usize,
        out: &mut [f64],
    ) {
        self.mul_rows(rows, bt, cb, l, out)
    }

    /// `A^T y` with `y` cells x `l` row-major; returns genes x `l` row-major. Each block of
    /// [`BLOCK_ROWS`] cells accumulates in `T` (see [`Operator::mul`]); blocks are summed in
    /// `f64`.
    fn tmul<T: Acc>(&self, y: &[f64], l: usize) -> Vec<f64> {
        let p = self.p;
        let mut acc = block_reduce(self.n, |rows| {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx") {
                // SAFETY: the processor supports AVX (checked just above).
                return unsafe { self.tmul_block_avx::<T>(rows, y, l) };
            }
            self.tmul_block::<T>(rows, y, l)
        });
        let (head, colsum) = acc.split_at_mut(p * l);
        for (j, row) in head.chunks_mut(l).enumerate() {
            let c = self.col_means[j];
            if c != 0.0 {
                for (a, &s) in row.iter_mut().zip(colsum.iter()) {
                    *a -= c * s;
                }
            }
        }
        acc.truncate(p * l);
        acc
    }

    /// One block of [`Operator::tmul`]: `S^T y` over the cells `rows` (genes x `l`, then the
    /// `l` column sums of `y` over these cells). Contributions to each element are added in
    /// cell order.
    #[inline(always)]
    fn tmul_block<T: Acc>(&self, rows: std::ops::Range<usize>, y: &[f64], l: usize) -> Vec<f64> {
        let p = self.p;
        let mut acc = vec![T::default(); p * l];
        let mut colsum = vec![0.0f64; l];
        let mut yrow = vec![T::default(); l];
        for i in rows {
            let y64 = &y[i * l..(i + 1) * l];
            for ((t, &v), cs) in yrow.iter_mut().zip(y64).zip(colsum.iter_mut()) {
                *t = T::of(v);
                *cs += v;
            }
            let ks = self.indptr[i]..self.indptr[i + 1];
            scatter(
                &mut acc,
                &self.indices[ks.clone()],
                &self.values[ks],
                &yrow,
                l,
            );
        }
        let mut out: Vec<f64> = acc.iter().map(|a| a.f64()).collect();
        out.extend_from_slice(&colsum);
        out
    }

    /// [`Operator::tmul_block`] compiled for 256-bit vectors (no FMA, the same bits).
    ///
    /// # Safety
    /// The processor must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn tmul_block_avx<T: Acc>(
        &self,
        rows: std::ops::Range<usize>,
        y: &[f64],
        l: usize,
    ) -> Vec<f64> {
        self.tmul_block::<T>(rows, y, l)
    }
}

/// Rows per task of [`Operator::mul`] (each row is computed independently, so the split does
/// not change the result).
const MUL_ROWS: usize = 64;

/// `row = sum_t vals[t] * bt[idx[t], :]` (`bt` genes x `l` row-major), summed in `t` order
/// for every column. Columns are processed in register-sized chunks (one pass over the
/// entries per chunk), which does not change any column's order of summation.
#[inline(always)]
fn gather<T: Acc>(row: &mut [T], idx: &[u32], vals: &[f32], bt: &[T], l: usize) {
    #[inline(always)]
    fn chunk<T: Acc, const W: usize>(
        row: &mut [T],
        idx: &[u32],
        vals: &[f32],
        bt: &[T],
        l: usize,
        c0: usize,
    ) {
        let mut acc = [T::default(); W];
        for (&j, &s) in idx.iter().zip(vals) {
            let s = T::of(s as f64);
            let b = &bt[j as usize * l + c0..][..W];
            for w in 0..W {
                acc[w] += s * b[w];
            }
        }
        row[c0..c0 + W].copy_from_slice(&acc);
    }
    let mut c0 = 0;
    while c0 + 32 <= l {
        chunk::<T, 32>(row, idx, vals, bt, l, c0);
        c0 += 32;
    }
    while c0 + 8 <= l {
        chunk::<T, 8>(row, idx, vals, bt, l, c0);
        c0 += 8;
    }
    while c0 < l {
        chunk::<T, 1>(row, idx, vals, bt, l, c0);
        c0 += 1;
    }
}

/// `acc[idx[t], :] += vals[t] * yrow` for every stored entry `t` (`acc` genes x `l`
/// row-major). Columns are processed in register-sized chunks; each element still receives
/// its contributions in the same order.
#[inline(always)]
fn scatter<T: Acc>(acc: &mut [T], idx: &[u32], vals: &[f32], yrow: &[T], l: usize) {
    #[inline(always)]
    fn chunk<T: Acc, const W: usize>(
        acc: &mut [T],
        idx: &[u32],
        vals: &[f32],
        yrow: &[T],
        l: usize,
        c0: usize,
    ) {
        let mut y = [T::default(); W];
        y.copy_from_slice(&yrow[c0..c0 + W]);
        for (&j, &s) in idx.iter().zip(vals) {
            let s = T::of(s as f64);
            let a = &mut acc[j as usize * l + c0..][..W];
            for w in 0..W {
                a[w] += s * y[w];
            }
        }
    }
    let mut c0 = 0;
    while c0 + 32 <= l {
        chunk::<T, 32>(acc, idx, vals, yrow, l, c0);
        c0 += 32;
    }
    while c0 + 8 <= l {
        chunk::<T, 8>(acc, idx, vals, yrow, l, c0);
        c0 += 8;
    }
    while c0 < l {
        chunk::<T, 1>(acc, idx, vals, yrow, l, c0);
        c0 += 1;
    }
}

/// The accumulator type of the sparse products: `f32` or `f64`.
trait Acc: Copy + Default + Send + Sync + std::ops::AddAssign + std::ops::Mul<Output = Self> {
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
}

impl Acc for f32 {
    #[inline]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Acc for f64 {
    #[inline]
    fn of(v: f64) -> Self {
        v
    }
    #[inline]
    fn f64(self) -> f64 {
        self
    }
}

fn normal_vec(len: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..len).map(|_| StandardNormal.sample(rng)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(y: &mut [f64], alpha: f64, x: &[f64]) {
    for (a, b) in y.iter_mut().zip(x) {
        *a += alpha * b;
    }
}

/// Orthogonalize `v` against the orthonormal vectors `basis` (classical Gram-Schmidt, twice).
fn reorthogonalize(v: &mut [f64], basis: &[Vec<f64>]) {
    for _ in 0..2 {
        for q in basis {
            let h = dot(q, v);
            axpy(v, -h, q);
        }
    }
}

/// Orthogonalize `v` against the orthonormal `basis` and normalize it; returns its norm after
/// orthogonalization. If `v` is numerically in the span of `basis` (norm below `1e-8` of its
/// norm before), it is replaced by a seeded random unit vector orthogonal to `basis` and the
/// returned norm is 0 (an exact breakdown: the new direction is decoupled).
fn orth_normalize(v: &mut [f64], basis: &[Vec<f64>], rng: &mut ChaCha8Rng) -> f64 {
    let norm0 = dot(v, v).sqrt();
    reorthogonalize(v, basis);
    let norm = dot(v, v).sqrt();
    if norm > 1e-8 * norm0 && norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
        return norm;
    }
    for _ in 0..4 {
        let fresh = normal_vec(v.len(), rng);
        v.copy_from_slice(&fresh);
        let n0 = dot(v, v).sqrt();
        reorthogonalize(v, basis);
        let nr = dot(v, v).sqrt();
        if nr > 1e-8 * n0 {
            v.iter_mut().for_each(|x| *x /= nr);
            break;
        }
    }
    0.0
}

/// Orthonormalize the columns of `cols` in place (Gram-Schmidt, twice per column, see
/// [`orth_normalize`] for columns in the span of the previous ones).
fn orthonormalize(cols: &mut [Vec<f64>], rng: &mut ChaCha8Rng) {
    for c in 0..cols.len() {
        let (done, rest) = cols.split_at_mut(c);
        orth_normalize(&mut rest[0], done, rng);
    }
}

fn cols_to_rows(cols: &[Vec<f64>], len: usize) -> Vec<f64> {
    let l = cols.len();
    let mut out = vec![0.0; len * l];
    for (c, col) in cols.iter().enumerate() {
        for (r, &v) in col.iter().enumerate() {
            out[r * l + c] = v;
        }
    }
    out
}

fn rows_to_cols(rows: &[f64], len: usize, l: usize) -> Vec<Vec<f64>> {
    (0..l)
        .map(|c| (0..len).map(|r| rows[r * l + c]).collect())
        .collect()
}

/// `rows` (`len x l`, row-major) times `m` (`l x k`, faer) -> `len x k` row-major, parallel
/// over rows.
fn rows_times(rows: &[f64], len: usize, l: usize, m: faer::MatRef<'_, f64>, k: usize) -> Vec<f64> {
    // the columns of `m` made contiguous; each output is the same left-to-right sum
    let mt: Vec<f64> = (0..k)
        .flat_map(|c| (0..l).map(move |t| m[(t, c)]))
        .collect();
    let mut out = vec![0.0; len * k];
    out.par_chunks_mut(k)
        .enumerate()
        .with_min_len(256)
        .for_each(|(i, o)| {
            let r = &rows[i * l..(i + 1) * l];
            for (ov, col) in o.iter_mut().zip(mt.chunks_exact(l)) {
                *ov = r.iter().zip(col).map(|(&a, &b)| a * b).sum();
            }
        });
    debug_assert_eq!(out.len(), len * k);
    out
}

/// Returns `(sigma, loadings p x k, embedding n x k)`, row-major.
type Svd = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Relative floor of the power-iteration stopping test: Ritz values below `RITZ_FLOOR * theta_1`
/// are compared in absolute terms (`f32` products do not resolve them relatively).
const RITZ_FLOOR: f64 = 1e-6;

/// The `k` largest Ritz values of `A^T A` on the span of the orthonormal columns `v` (`p x l`,
/// column-major), given `w = A^T A v` (`p x l`, row-major): eigenvalues of the symmetric part
/// of `v^T w`, largest first. Sequential product and eigen-solver, so independent of the
/// thread count.
fn ritz_values(v: &[Vec<f64>], w: &[f64], p: usize, k: usize) -> Result<Vec<f64>> {
    let l = v.len();
    let vm = faer::Mat::<f64>::from_fn(p, l, |j, a| v[a][j]);
    let wm = faer::MatRef::from_row_major_slice(w, p, l);
    let mut vw = faer::Mat::<f64>::zeros(l, l);
    faer::linalg::matmul::matmul(
        vw.as_mut(),
        faer::Accum::Replace,
        vm.transpose(),
        wm,
        1.0,
        faer::Par::Seq,
    );
    crate::cpu::clear_upper_simd_state_here();
    let h = faer::Mat::<f64>::from_fn(l, l, |a, b| 0.5 * (vw[(a, b)] + vw[(b, a)]));
    let par = faer::Par::Seq;
    let mut s = faer::diag::Diag::<f64>::zeros(l);
    let mut mem =
        faer::dyn_stack::MemBuffer::new(faer::linalg::evd::self_adjoint_evd_scratch::<f64>(
            l,
            faer::linalg::evd::ComputeEigenvectors::No,
            par,
            Default::default(),
        ));
    let res = faer::linalg::evd::self_adjoint_evd(
        h.as_ref(),
        s.as_mut(),
        None,
        par,
        faer::dyn_stack::MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|e| {
        Error::data(
            "pca",
            format!("eigenvalues of the Ritz matrix failed: {e:?}"),
        )
    });
    crate::cpu::clear_upper_simd_state_here();
    res?;
    let mut vals: Vec<f64> = s.column_vector().iter().copied().collect();
    vals.sort_by(|a, b| b.total_cmp(a));
    vals.truncate(k);
    Ok(vals)
}

/// The stopping test of [`Solver::Randomized`]: every one of the `k` Ritz values changed by at
/// most `tol * max(theta_i, RITZ_FLOOR * theta_1)`.
fn ritz_converged(prev: &[f64], cur: &[f64], tol: f64) -> bool {
    let floor = RITZ_FLOOR * cur.first().copied().unwrap_or(0.0).max(0.0);
    prev.iter()
        .zip(cur)
        .all(|(&a, &b)| (b - a).abs() <= tol * b.max(floor))
}

/// Lower triangle of `Y^T Y` (`Y`: `n x l`, row-major) by fixed blocks of rows, each
/// accumulated row by row, merged by [`block_reduce`]'s fixed tree.
fn gram_lower(y: &[f64], n: usize, l: usize) -> Vec<f64> {
    block_reduce(n, |rows| {
        let mut acc = vec![0.0f64; l * l];
        for i in rows {
            let r = &y[i * l..(i + 1) * l];
            for a in 0..l {
                let ra = r[a];
                for (g, &rb) in acc[a * l..a * l + a + 1].iter_mut().zip(&r[..=a]) {
                    *g += ra * rb;
                }
            }
        }
        acc
    })
}

/// Returns the decomposition and the number of applications of `A^T A`.
fn randomized_svd(
    op: &Operator<'_>,
    k: usize,
    n_oversamples: usize,
    n_power_iter: usize,
    tol: f64,
    seed: u64,
) -> Result<(Svd, usize)> {
    let (n, p) = (op.n, op.p);
    let l = (k + n_oversamples).min(n.min(p));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<Vec<f64>> = (0..l).map(|_| normal_vec(p, &mut rng)).collect();
    orthonormalize(&mut v, &mut rng);
    let mut y = vec![0.0f64; n * l];
    let mut prev: Option<Vec<f64>> = None;
    let mut applications = 0;
    for it in 0..=n_power_iter {
        op.mul::<f32>(&cols_to_rows(&v, p), l, &mut y);
        let z = op.tmul::<f32>(&y, l);
        applications += 1;
        // no test after the last allowed application: nothing would be saved
        let converged = if tol > 0.0 && it < n_power_iter {
            let theta = ritz_values(&v, &z, p, k)?;
            let done = prev
                .as_deref()
                .is_some_and(|pr| ritz_converged(pr, &theta, tol));
            prev = Some(theta);
            done
        } else {
            false
        };
        v = rows_to_cols(&z, p, l);
        orthonormalize(&mut v, &mut rng);
        if converged {
            break;
        }
    }
    let vr = cols_to_rows(&v, p);
    Ok((
        rayleigh_ritz::<f64>(op, &vr, l, k, &mut y, gram_lower)?,
        applications,
    ))
}

/// Rayleigh-Ritz step on the orthonormal basis `vr` (`p x l`, row-major): `Y = A V` (into `y`,
/// `n x l`, accumulated in `T`), the eigen-decomposition `W Theta W^T` of the Gram matrix
/// `Y^T Y` (`gram(y, n, l)`, whose lower triangle is read; a fixed-order reduction and a
/// sequential eigen-solver keep it independent of the thread count), and the `k` leading
/// pairs: `sigma_c = sqrt(theta_c)`, loadings `V W` and embedding `Y W` (`= U Sigma`).
fn rayleigh_ritz<T: Acc>(
    op: &Operator<'_>,
    vr: &[f64],
    l: usize,
    k: usize,
    y: &mut [f64],
    gram: impl Fn(&[f64], usize, usize) -> Vec<f64>,
) -> Result<Svd> {
    let n = op.n;
    let p = op.p;
    op.mul::<T>(vr, l, y);
    let y = &*y;
    let gram = gram(y, n, l);
    let g = faer::Mat::<f64>::from_fn(l, l, |a, b| {
        if b <= a {
            gram[a * l + b]
        } else {
            gram[b * l + a]
        }
    });
    let evd = g
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| Error::data("pca", format!("eigen-decomposition failed: {e:?}")));
    crate::cpu::clear_upper_simd_state_here();
    let evd = evd?;
    let vals: Vec<f64> = (0..l).map(|i| evd.S().column_vector()[i]).collect();
    let mut order: Vec<usize> = (0..l).collect();
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
    let w = faer::Mat::<f64>::from_fn(l, k, |r, c| evd.U()[(r, order[c])]);
    let sigma = order[..k]
        .iter()
        .map(|&i| vals[i].max(0.0).sqrt())
        .collect();
    let loadings = rows_times(vr, p, l, w.as_ref(), k);
    let embedding = rows_times(y, n, l, w.as_ref(), k);
    Ok((sigma, loadings, embedding))
}

fn irlba(
    op: &Operator<'_>,
    k: usize,
    extra_work: usize,
    tol: f64,
    max_restarts: usize,
    seed: u64,
) -> Result<(Svd, usize)> {
    let (n, p) = (op.n, op.p);
    let m = (k + extra_work.max(1)).min(n.min(p));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(m);
    let mut ws: Vec<Vec<f64>> = Vec::with_capacity(m);
    let mut start = normal_vec(p, &mut rng);
    let nrm = dot(&start, &start).sqrt();
    start.iter_mut().for_each(|x| *x /= nrm);
    vs.push(start);
    let mut bmat = vec![0.0f64; m * m]; // row-major m x m
    let mut kk = 0usize;
    let mut wbuf = vec![0.0f64; n];
    for restart in 0..=max_restarts {
        // Lanczos bidiagonalization from column kk to m - 1.
        let mut j = kk;
        op.mul::<f64>(&vs[j], 1, &mut wbuf);
        let mut w = wbuf.clone();
        let mut alpha = orth_normalize(&mut w, &ws[..j], &mut rng);
        bmat[j * m + j] = alpha;
        ws.truncate(j);
        ws.push(w);
        let (f, beta) = loop {
            let mut f = op.tmul::<f64>(&ws[j], 1);
            axpy(&mut f, -alpha, &vs[j]);
            let beta = orth_normalize(&mut f, &vs[..=j], &mut rng);
            if j + 1 == m {
                break (f, beta);
            }
            let vnext = f;
            vs.truncate(j + 1);
            vs.push(vnext);
            bmat[j * m + j + 1] = beta;
            op.mul::<f64>(&vs[j + 1], 1, &mut wbuf);
            let mut w = wbuf.clone();
            axpy(&mut w, -beta, &ws[j]);
            alpha = orth_normalize(&mut w, &ws[..=j], &mut rng);
            ws.push(w);
            j += 1;
            bmat[j * m + j] = alpha;
        };
        let b = faer::Mat::<f64>::from_fn(m, m, |r, c| bmat[r * m + c]);
        let svd = b
            .thin_svd()
            .map_err(|e| Error::data("pca", format!("SVD of the bidiagonal failed: {e:?}")));
        crate::cpu::clear_upper_simd_state_here();
        let svd = svd?;
        let s: Vec<f64> = (0..m).map(|i| svd.S().column_vector()[i]).collect();
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        let ub = svd.U();
        let vb = svd.V();
        let smax = s[order[0]].max(f64::MIN_POSITIVE);
        let converged = order[..k]
            .iter()
            .all(|&i| (beta * ub[(m - 1, i)]).abs() <= tol * smax)
            || m == n.min(p);
        let kept = if converged || restart == max_restarts {
            k
        } else {
            k.min(m - 1)
        };
        // Ritz vectors: V Vb[:, i], W Ub[:, i].
        let new_v: Vec<Vec<f64>> = order[..kept]
            .par_iter()
            .map(|&i| {
                let mut out = vec![0.0; p];
                for (t, vt) in vs.iter().enumerate() {
                    axpy(&mut out, vb[(t, i)], vt);
                }
                out
            })
            .collect();
        let new_w: Vec<Vec<f64>> = order[..kept]
            .par_iter()
            .map(|&i| {
                let mut out = vec![0.0; n];
                for (t, wt) in ws.iter().enumerate() {
                    axpy(&mut out, ub[(t, i)], wt);
                }
                out
            })
            .collect();
        if converged || restart == max_restarts {
            let sigma: Vec<f64> = order[..k].iter().map(|&i| s[i]).collect();
            let mut loadings = vec![0.0; p * k];
            let mut embedding = vec![0.0; n * k];
            for c in 0..k {
                for r in 0..p {
                    loadings[r * k + c] = new_v[c][r];
                }
                for r in 0..n {
                    embedding[r * k + c] = new_w[c][r] * sigma[c];
                }
            }
            return Ok(((sigma, loadings, embedding), restart + 1));
        }
        // Thick restart: keep `kept` Ritz pairs, continue from the residual direction.
        bmat.iter_mut().for_each(|x| *x = 0.0);
        for (r, &i) in order[..kept].iter().enumerate() {
            bmat[r * m + r] = s[i];
            bmat[r * m + kept] = beta * ub[(m - 1, i)];
        }
        vs = new_v;
        ws = new_w;
        // `f` is already a unit vector orthogonal to the old basis, hence to the Ritz vectors;
        // one more pass keeps it orthogonal to them in floating point.
        let mut vnext = f;
        orth_normalize(&mut vnext, &vs, &mut rng);
        vs.push(vnext);
        kk = kept;
    }
    Err(Error::data("pca", "Lanczos iteration did not finish"))
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
        let (means, stds) = mean_std(&x, true);
        assert_eq!(stds[2], 1.0);
        let m = 3.0;
        let op = Operator::new(&x, &means, &stds, Some(m));
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
        let t = op.tmul::<f64>(&y, 1);
        for j in 0..4 {
            let want: f64 = (0..n).map(|i| a[[i, j]] * y[i]).sum();
            assert!((t[j] - want).abs() < 1e-4, "{j}: {} vs {want}", t[j]);
        }
        let total: f64 = (0..4)
            .map(|j| (0..n).map(|i| a[[i, j]] * a[[i, j]]).sum::<f64>() / (n - 1) as f64)
            .sum();
        assert!((op.total_variance() - total).abs() < 1e-5 * total);
    }
}
