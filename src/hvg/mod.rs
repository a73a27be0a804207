//! Highly variable genes, Scanpy's `sc.pp.highly_variable_genes` (1.11.5) with its three
//! classic flavors, reproduced step by step.
//!
//! * `Seurat` (Satija et al. 2015): on log-normalized data `X`, per gene the mean `m` and
//!   variance `v` (n - 1 denominator) of `expm1(X)`; `dispersion = ln(v / m)` (NaN when
//!   `v = 0`), `means = ln(1 + m)`; genes are put in `n_bins` equal-width bins of `means`
//!   (pandas `pd.cut`), and `dispersions_norm = (dispersion - mean_bin) / sd_bin`; a bin with a
//!   single gene gives that gene `dispersions_norm = 1`.
//! * `CellRanger` (Zheng et al. 2017): mean and variance of `X` itself, `dispersion = v / m`,
//!   bins at the 10th, 15th, ..., 100th percentiles of the means, and
//!   `dispersions_norm = (dispersion - median_bin) / MAD_bin` with `MAD = median|d - median| /
//!   0.6744897501960817` (statsmodels' `mad`).
//! * `SeuratV3` (Stuart et al. 2019): on raw counts, per gene mean and variance, a loess
//!   (degree 2, span 0.3; see [`crate::loess`]) of `log10 variance` on `log10 mean` over the
//!   genes with non-zero variance gives the expected standard deviation `s = sqrt(10^fit)`;
//!   counts are clipped at `mean + s * sqrt(n_cells)`, and `variances_norm` is the variance of
//!   the clipped counts standardized by `s`: `(n m^2 + sum c^2 - 2 m sum c) / ((n - 1) s^2)`.
//!
//! Arithmetic as Scanpy: sums of values in `f64`, squares of `f32` values taken in `f32`
//! (Scanpy's numba kernel multiplies the `float32` values before adding them to `float64`
//! accumulators), zero means replaced by `1e-12`.
//!
//! Selection:
//! * with `n_top_genes` for `Seurat` / `CellRanger`: the `n`-th largest non-NaN
//!   `dispersions_norm` is the cut-off and every gene at or above it is selected, so **ties at
//!   the cut-off are all selected** (more than `n` genes then), as Scanpy;
//! * without `n_top_genes`: `min_mean < means < max_mean` and
//!   `min_disp < dispersions_norm < max_disp` (NaN counted as 0);
//! * `SeuratV3`: genes are ranked by decreasing `variances_norm` (rank 0 first); the first
//!   `n_top_genes` are selected. Scanpy ranks with numpy's unstable `argsort`; here exact ties
//!   are broken by gene order (lower index first).
//!
//! Genes without variance (the same value in every cell, or with batches in every cell of
//! the data) are never selected, whatever the flavor, `n_top_genes` or cut-offs; their
//! variance is exactly 0 (so `dispersions` is NaN for `Seurat`). Scanpy can select them: its
//! variance of a constant `float32` column is often a rounding residue instead of 0, and with
//! `n_top_genes` above the number of variable genes it takes them too. They would only add
//! a constant column to the PCA.
//!
//! Batches (`batch`, Scanpy's `batch_key`): for `Seurat` / `CellRanger` each batch is processed
//! alone after dropping the genes not detected in it (their values count as 0), `means`,
//! `dispersions` and `dispersions_norm` are averaged over batches (NaN skipped),
//! `highly_variable_nbatches` counts the batches that select the gene; with `n_top_genes`
//! genes are sorted by (`nbatches` desc, `dispersions_norm` desc, NaN last) and the first `n`
//! taken, ties broken as Scanpy by gene name when [`HvgOptions::gene_names`] is given (Scanpy
//! sorts the genes by name before this stable sort), otherwise by gene index. Without
//! `n_top_genes` the cut-offs are applied to the averages. For `SeuratV3` each batch gets its
//! own loess and ranks; `highly_variable_rank` is the median over batches of the ranks that are
//! below `n_top_genes` and genes are sorted by (median rank asc, `nbatches` desc), stable.

use crate::dataset::{Column, GeneTable};
use crate::error::{Error, Result};
use crate::loess::{loess, LoessOptions};
use crate::lognorm::{LogCounts, MatrixValues};
use crate::normalize::{normalize_log1p_col_sums, ColSums, NormalizeOptions, Normalized};
use crate::qc::col_reduce;
use crate::sparse::CsrMatrix;

/// Which definition of variability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Scanpy's `flavor="seurat"` (log data, binned z-scores of log dispersion).
    Seurat,
    /// Scanpy's `flavor="cell_ranger"` (log data, percentile bins, median / MAD).
    CellRanger,
    /// Scanpy's `flavor="seurat_v3"` (raw counts, loess variance stabilization).
    SeuratV3,
}

/// Options of [`highly_variable_genes`].
#[derive(Debug, Clone, PartialEq)]
pub struct HvgOptions {
    /// Default [`Flavor::Seurat`].
    pub flavor: Flavor,
    /// Number of genes to select. Default `None`: the cut-offs below for `Seurat` and
    /// `CellRanger`, 2000 for `SeuratV3` (Scanpy's defaults).
    pub n_top_genes: Option<usize>,
    /// Lower bound (exclusive) on `means`. Default `0.0125`.
    pub min_mean: f64,
    /// Upper bound (exclusive) on `means`. Default `3.0`.
    pub max_mean: f64,
    /// Lower bound (exclusive) on `dispersions_norm`. Default `0.5`.
    pub min_disp: f64,
    /// Upper bound (exclusive) on `dispersions_norm`. Default `f64::INFINITY`.
    pub max_disp: f64,
    /// Number of mean bins for `Seurat`. Default `20`.
    pub n_bins: usize,
    /// Loess span for `SeuratV3`. Default `0.3`.
    pub span: f64,
    /// Gene names, only to break exact ties as Scanpy does in the batched `Seurat` /
    /// `CellRanger` selection with `n_top_genes`. Default `None` (ties by gene index).
    pub gene_names: Option<Vec<String>>,
}

impl Default for HvgOptions {
    fn default() -> Self {
        HvgOptions {
            flavor: Flavor::Seurat,
            n_top_genes: None,
            min_mean: 0.0125,
            max_mean: 3.0,
            min_disp: 0.5,
            max_disp: f64::INFINITY,
            n_bins: 20,
            span: 0.3,
            gene_names: None,
        }
    }
}

/// Result of [`highly_variable_genes`]: one value per gene (Scanpy's `adata.var` columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Hvg {
    /// The flavor used.
    pub flavor: Flavor,
    /// `means` (for `Seurat`: `ln(1 + mean(expm1(X)))`).
    pub means: Vec<f64>,
    /// `dispersions` (`Seurat`, `CellRanger`).
    pub dispersions: Option<Vec<f64>>,
    /// `dispersions_norm` (`Seurat`, `CellRanger`).
    pub dispersions_norm: Option<Vec<f64>>,
    /// `variances` of the counts (`SeuratV3`).
    pub variances: Option<Vec<f64>>,
    /// `variances_norm` (`SeuratV3`).
    pub variances_norm: Option<Vec<f64>>,
    /// `highly_variable_rank` (`SeuratV3`; NaN for genes outside the top genes).
    pub highly_variable_rank: Option<Vec<f64>>,
    /// `highly_variable_nbatches` (with batches).
    pub highly_variable_nbatches: Option<Vec<u32>>,
    /// `highly_variable_intersection` (with batches, `Seurat` / `CellRanger`).
    pub highly_variable_intersection: Option<Vec<bool>>,
    /// `highly_variable`.
    pub highly_variable: Vec<bool>,
}

impl Hvg {
    /// Indices of the selected genes, increasing.
    pub fn selected(&self) -> Vec<usize> {
        (0..self.highly_variable.len())
            .filter(|&g| self.highly_variable[g])
            .collect()
    }

    /// Stores the columns in `genes` under Scanpy's names.
    pub fn store_in(&self, genes: &mut GeneTable) -> Result<()> {
        genes.set(
            "highly_variable",
            Column::Bool(self.highly_variable.clone()),
        )?;
        genes.set("means", Column::F64(self.means.clone()))?;
        let f64s = [
            ("dispersions", &self.dispersions),
            ("dispersions_norm", &self.dispersions_norm),
            ("variances", &self.variances),
            ("variances_norm", &self.variances_norm),
            ("highly_variable_rank", &self.highly_variable_rank),
        ];
        for (name, v) in f64s {
            if let Some(v) = v {
                genes.set(name, Column::F64(v.clone()))?;
            }
        }
        if let Some(v) = &self.highly_variable_nbatches {
            genes.set(
                "highly_variable_nbatches",
                Column::I64(v.iter().map(|&x| x as i64).collect()),
            )?;
        }
        if let Some(v) = &self.highly_variable_intersection {
            genes.set("highly_variable_intersection", Column::Bool(v.clone()))?;
        }
        Ok(())
    }
}

impl HvgOptions {
    /// Checks the options without data: at least one bin and one gene, cut-offs not NaN, a loess
    /// span in (0, 1].
    pub fn validate(&self) -> Result<()> {
        check_options(self)
    }
}

fn check(opts: &HvgOptions, n_genes: usize) -> Result<()> {
    check_options(opts)?;
    if let Some(n) = &opts.gene_names {
        if n.len() != n_genes {
            return Err(Error::option(
                "gene_names",
                format!("{} names for {n_genes} genes", n.len()),
            ));
        }
    }
    Ok(())
}

fn check_options(opts: &HvgOptions) -> Result<()> {
    if opts.n_bins == 0 {
        return Err(Error::option("n_bins", "must be at least 1"));
    }
    if opts.n_top_genes == Some(0) {
        return Err(Error::option("n_top_genes", "must be at least 1"));
    }
    if opts.min_mean.is_nan()
        || opts.max_mean.is_nan()
        || opts.min_disp.is_nan()
        || opts.max_disp.is_nan()
    {
        return Err(Error::option("min_mean", "cut-offs must not be NaN"));
    }
    if !(opts.span > 0.0 && opts.span <= 1.0) {
        return Err(Error::option(
            "span",
            format!("must be in (0, 1], got {}", opts.span),
        ));
    }
    Ok(())
}

/// Selects highly variable genes (see the module docs for the formulas).
///
/// `log` is the log-normalized matrix (cells x genes) used by `Seurat` and `CellRanger`;
/// `counts` the raw counts, required by `SeuratV3`; `batch` an optional batch code per cell.
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// # let log = scrna::normalize::normalize_total_log1p(&data.counts, &Default::default())?.matrix;
/// let mut opts = scrna::hvg::HvgOptions::default();
/// opts.n_top_genes = Some(100);
/// let hvg = scrna::hvg::highly_variable_genes(&log, None, None, &opts)?;
/// assert_eq!(hvg.selected().len(), 100);
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn highly_variable_genes(
    log: &CsrMatrix,
    counts: Option<&CsrMatrix>,
    batch: Option<&[u32]>,
    opts: &HvgOptions,
) -> Result<Hvg> {
    let x = match opts.flavor {
        Flavor::SeuratV3 => counts
            .ok_or_else(|| Error::option("flavor", "seurat_v3 needs the raw counts (`counts`)"))?,
        _ => log,
    };
    check(opts, x.n_cols())?;
    if x.n_rows() < 2 {
        return Err(Error::data(
            "highly_variable_genes",
            "need at least 2 cells",
        ));
    }
    let groups = match batch {
        None => None,
        Some(b) => {
            if b.len() != x.n_rows() {
                return Err(Error::data(
                    "highly_variable_genes",
                    format!("{} batch labels for {} cells", b.len(), x.n_rows()),
                ));
            }
            let mut codes: Vec<u32> = b.to_vec();
            codes.sort_unstable();
            codes.dedup();
            let groups: Vec<Vec<usize>> = codes
                .iter()
                .map(|&c| (0..b.len()).filter(|&i| b[i] == c).collect())
                .collect();
            if groups.iter().any(|g| g.len() < 2) {
                return Err(Error::data(
                    "highly_variable_genes",
                    "every batch needs at least 2 cells",
                ));
            }
            Some(groups)
        }
    };
    match opts.flavor {
        Flavor::SeuratV3 => seurat_v3(x, groups.as_deref(), opts),
        _ => match groups {
            None => Ok(single_batch(x, None, opts, false)?.into_hvg(opts.flavor)),
            Some(g) => batched(x, &g, opts),
        },
    }
}

struct Single {
    means: Vec<f64>,
    dispersions: Vec<f64>,
    norm: Vec<f64>,
    hv: Vec<bool>,
}

impl Single {
    /// The result of a selection over one batch, as [`Hvg`].
    fn into_hvg(self, flavor: Flavor) -> Hvg {
        Hvg {
            flavor,
            means: self.means,
            dispersions: Some(self.dispersions),
            dispersions_norm: Some(self.norm),
            variances: None,
            variances_norm: None,
            highly_variable_rank: None,
            highly_variable_nbatches: None,
            highly_variable_intersection: None,
            highly_variable: self.hv,
        }
    }
}

/// Per column over `rows`: whether every cell holds the same value (implicit zeros included).
fn constant_columns(x: &CsrMatrix, rows: Option<&[usize]>) -> Vec<bool> {
    let n = rows.map_or(x.n_rows(), |r| r.len());
    let p = x.n_cols();
    let mut first = vec![0f32; p];
    let mut stored = vec![0usize; p];
    let mut same = vec![true; p];
    for i in 0..n {
        let (idx, val) = x.row(rows.map_or(i, |r| r[i]));
        for (&c, &v) in idx.iter().zip(val) {
            let c = c as usize;
            if stored[c] == 0 {
                first[c] = v;
            } else if v != first[c] {
                same[c] = false;
            }
            stored[c] += 1;
        }
    }
    (0..p)
        .map(|c| same[c] && (stored[c] == 0 || stored[c] == n || first[c] == 0.0))
        .collect()
}

/// Whether column `c` of `x` holds the same value in every one of `rows` (all of them
/// stored), checked row by row until two values differ.
fn same_in_every_row<X: MatrixValues + ?Sized>(x: &X, rows: Option<&[usize]>, c: u32) -> bool {
    let p = x.pattern();
    let n = rows.map_or(p.n_rows(), |r| r.len());
    let mut buf = Vec::with_capacity(1);
    let mut value = |i: usize| {
        let r = rows.map_or(i, |r| r[i]);
        let k = p.row(r).0.binary_search(&c).ok()?;
        let at = p.indptr()[r] + k;
        buf.clear();
        x.values_into(r, at..at + 1, &mut buf);
        buf.first().copied()
    };
    let Some(first) = value(0) else {
        return false;
    };
    (1..n).all(|i| value(i).is_some_and(|v| v == first))
}

/// Mean and variance (n - 1) per column over `rows`, with Scanpy's arithmetic; `f` maps a
/// stored value to the value whose moments are wanted (in `f32`). The variance of a column
/// with the same value in every cell is exactly 0 (the sums of squares would leave a rounding
/// residue).
fn mean_var<F: Fn(f32) -> f32 + Sync>(
    x: &CsrMatrix,
    rows: Option<&[usize]>,
    f: F,
) -> (Vec<f64>, Vec<f64>, Vec<u32>) {
    let s = col_reduce::<3, _>(x, rows, |v| {
        let e = f(v);
        [e as f64, (e * e) as f64, (v != 0.0) as u8 as f64]
    });
    finish_mean_var(&s, x, rows)
}

/// [`mean_var`] from the per-column sums `[sum e, sum e*e, non-zeros of the stored values]`
/// over `rows` of `x`.
///
/// A constant column gets variance 0. Only the columns with a non-zero value in every row
/// need checking: every other constant column holds zeros only, where the sums are exactly 0
/// and so is the variance.
fn finish_mean_var<X: MatrixValues + ?Sized>(
    s: &[[f64; 3]],
    x: &X,
    rows: Option<&[usize]>,
) -> (Vec<f64>, Vec<f64>, Vec<u32>) {
    let n_rows = rows.map_or(x.pattern().n_rows(), |r| r.len());
    let n = n_rows as f64;
    let mut means = Vec::with_capacity(s.len());
    let mut vars = Vec::with_capacity(s.len());
    let mut nnz = Vec::with_capacity(s.len());
    for (c, q) in s.iter().enumerate() {
        let constant =
            n_rows == 0 || (q[2] as usize == n_rows && same_in_every_row(x, rows, c as u32));
        let m = q[0] / n;
        let v = q[1] / n - m * m;
        means.push(m);
        vars.push(if constant {
            0.0
        } else if n != 1.0 {
            v * (n / (n - 1.0))
        } else {
            v
        });
        nnz.push(q[2] as u32);
    }
    (means, vars, nnz)
}

/// Per-gene moments of the log-normalized values for the `Seurat` and `CellRanger` flavors
/// (see [`normalize_log1p_moments`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HvgMoments {
    /// Per gene: mean of `expm1(X)` (`Seurat`) or of `X` (`CellRanger`) over all cells.
    pub means: Vec<f64>,
    /// Per gene: variance (n - 1 denominator) of the same values; exactly 0 for a gene with
    /// the same value in every cell.
    pub variances: Vec<f64>,
}

/// [`normalize_total_log1p`](crate::normalize::normalize_total_log1p) and the per-gene moments
/// of [`highly_variable_genes`] in one pass over the counts: the returned matrix is bit for bit
/// that of `normalize_total_log1p`,
/// and `highly_variable_from_moments(moments.means, &moments.variances, opts)` gives exactly
/// `highly_variable_genes(&matrix, None, None, opts)` for `opts.flavor == flavor`.
///
/// The moments are accumulated while the log values are written, in the same order and with
/// the same `f32` / `f64` arithmetic as [`highly_variable_genes`] (fixed cell blocks, so the
/// result does not depend on the number of threads); for the integer counts from 1 to 63 of a
/// cell, `expm1` is evaluated once per distinct count. This saves the second pass over the
/// log values and most of the `expm1` calls of the two steps run one after the other.
///
/// `cell_totals`: the sum of the counts of every cell in `f64` when already known (the
/// `total_counts` of [`crate::qc::metrics`] or [`crate::qc::filter_with_kept_metrics`] for
/// this same matrix), which saves the pass that sums them; `None` sums them here. Not used with
/// `exclude_highly_expressed` (the totals leave genes out).
///
/// Errors: `flavor` [`Flavor::SeuratV3`] (computed from the counts), fewer than 2 cells,
/// `cell_totals` of the wrong length, and the errors of `normalize_total_log1p`.
pub fn normalize_log1p_moments(
    counts: &CsrMatrix,
    norm: &NormalizeOptions,
    flavor: Flavor,
    cell_totals: Option<&[f64]>,
) -> Result<(Normalized, HvgMoments)> {
    moments(counts, norm, flavor, cell_totals, true)
}

/// [`normalize_log1p_moments`] without storing the log values: the returned `matrix` is empty
/// (0 x 0) and the size factors, totals and moments are the same, bit for bit. The log values
/// are read through [`LogCounts`] (`LogCounts::new(counts, &normalized.size_factors)`), which
/// computes each one when read; this pass then only reads the counts.
pub fn log1p_moments(
    counts: &CsrMatrix,
    norm: &NormalizeOptions,
    flavor: Flavor,
    cell_totals: Option<&[f64]>,
) -> Result<(Normalized, HvgMoments)> {
    moments(counts, norm, flavor, cell_totals, false)
}

fn moments(
    counts: &CsrMatrix,
    norm: &NormalizeOptions,
    flavor: Flavor,
    cell_totals: Option<&[f64]>,
    write: bool,
) -> Result<(Normalized, HvgMoments)> {
    let kind = match flavor {
        Flavor::Seurat => ColSums::Expm1,
        Flavor::CellRanger => ColSums::Log,
        Flavor::SeuratV3 => {
            return Err(Error::option(
                "flavor",
                "seurat_v3 is computed from the counts, not from moments of the log values",
            ))
        }
    };
    if counts.n_rows() < 2 {
        return Err(Error::data(
            "highly_variable_genes",
            "need at least 2 cells",
        ));
    }
    let (normalized, sums) = normalize_log1p_col_sums(counts, norm, kind, cell_totals, write)?;
    let (means, variances, _) = if write {
        finish_mean_var(&sums, &normalized.matrix, None)
    } else {
        let view = LogCounts::new(counts, &normalized.size_factors)?;
        finish_mean_var(&sums, &view, None)
    };
    Ok((normalized, HvgMoments { means, variances }))
}

/// The moments of [`normalize_log1p_moments`] from per-gene `[sum e, sum e*e, non-zeros]`
/// summed as there (fixed cell blocks in order) over the log values that `x` reads.
pub(crate) fn moments_from_col_sums(sums: &[[f64; 3]], x: &LogCounts<'_>) -> HvgMoments {
    let (means, variances, _) = finish_mean_var(sums, x, None);
    HvgMoments { means, variances }
}

/// One batch of `Seurat` / `CellRanger`; with `filter_unexpressed`, genes not detected in the
/// rows get zeros everywhere and take no part in the bins or the selection.
fn single_batch(
    x: &CsrMatrix,
    rows: Option<&[usize]>,
    opts: &HvgOptions,
    filter_unexpressed: bool,
) -> Result<Single> {
    let (means, vars, nnz) = if opts.flavor == Flavor::Seurat {
        mean_var(x, rows, |v| v.exp_m1())
    } else {
        mean_var(x, rows, |v| v)
    };
    select_from_moments(means, &vars, &nnz, opts, filter_unexpressed)
}

/// Selects highly variable genes with the `Seurat` or `CellRanger` flavor from per-gene
/// moments computed elsewhere (for example block by block over a matrix that is never held
/// whole, as [`crate::stream`] does): `means[g]` and `variances[g]` (n - 1 denominator) of
/// `expm1(X)` for `Seurat`, of `X` for `CellRanger`, with `X` the log-normalized values of
/// all cells (see the module docs). Given the same moments, the result is exactly that of
/// [`highly_variable_genes`] without batches. Errors for `SeuratV3` (it needs the counts),
/// mismatched lengths and the option checks of [`highly_variable_genes`].
pub fn highly_variable_from_moments(
    means: Vec<f64>,
    variances: &[f64],
    opts: &HvgOptions,
) -> Result<Hvg> {
    if opts.flavor == Flavor::SeuratV3 {
        return Err(Error::option(
            "flavor",
            "seurat_v3 is computed from the counts, not from moments of the log values",
        ));
    }
    if means.len() != variances.len() {
        return Err(Error::data(
            "highly_variable_from_moments",
            format!("{} means for {} variances", means.len(), variances.len()),
        ));
    }
    check(opts, means.len())?;
    Ok(select_from_moments(means, variances, &[], opts, false)?.into_hvg(opts.flavor))
}

/// The part of [`single_batch`] after the moments (`nnz` is only read with
/// `filter_unexpressed`).
fn select_from_moments(
    mut means: Vec<f64>,
    vars: &[f64],
    nnz: &[u32],
    opts: &HvgOptions,
    filter_unexpressed: bool,
) -> Result<Single> {
    let seurat = opts.flavor == Flavor::Seurat;
    let n_genes = means.len();
    let keep: Vec<usize> = if filter_unexpressed {
        (0..n_genes).filter(|&g| nnz[g] > 0).collect()
    } else {
        (0..n_genes).collect()
    };
    let mut disp = vec![0f64; n_genes];
    for &g in &keep {
        if means[g] == 0.0 {
            means[g] = 1e-12;
        }
        let mut d = vars[g] / means[g];
        if seurat {
            if d == 0.0 {
                d = f64::NAN;
            }
            d = d.ln();
            means[g] = means[g].ln_1p();
        }
        disp[g] = d;
    }
    let km: Vec<f64> = keep.iter().map(|&g| means[g]).collect();
    let kd: Vec<f64> = keep.iter().map(|&g| disp[g]).collect();
    let bins = if seurat {
        equal_width_bins(&km, opts.n_bins)
    } else {
        percentile_bins(&km)?
    };
    let n_b = bins.iter().map(|&b| b + 1).max().unwrap_or(0);
    let mut members: Vec<Vec<f64>> = vec![Vec::new(); n_b];
    for (k, &b) in bins.iter().enumerate() {
        if !(seurat && kd[k].is_nan()) {
            members[b].push(kd[k]);
        }
    }
    let stats: Vec<(f64, f64)> = members
        .iter_mut()
        .map(|m| {
            if seurat {
                let (avg, dev) = mean_sd(m);
                if dev.is_nan() {
                    // one gene (or none) in the bin: Scanpy sets dev = avg, avg = 0
                    (0.0, avg)
                } else {
                    (avg, dev)
                }
            } else {
                let med = median_nan(m);
                let mut dev: Vec<f64> = m.iter().map(|v| (v - med).abs()).collect();
                (med, median_nan(&mut dev) / 0.6744897501960817)
            }
        })
        .collect();
    let mut norm = vec![0f64; n_genes];
    for (k, &g) in keep.iter().enumerate() {
        let (avg, dev) = stats[bins[k]];
        norm[g] = (kd[k] - avg) / dev;
    }
    let kn: Vec<f64> = keep.iter().map(|&g| norm[g]).collect();
    // Genes without variance are never selected (see the module docs).
    let varies = |g: usize| vars[g] > 0.0;
    let mut hv = vec![false; n_genes];
    match opts.n_top_genes {
        Some(n_top) => {
            let mut vals: Vec<f64> = (0..keep.len())
                .filter(|&k| varies(keep[k]) && !kn[k].is_nan())
                .map(|k| kn[k])
                .collect();
            let n = n_top.min(vals.len());
            if n > 0 {
                vals.sort_by(|a, b| b.total_cmp(a));
                let cut = vals[n - 1];
                for (k, &g) in keep.iter().enumerate() {
                    hv[g] = varies(g) && !kn[k].is_nan() && kn[k] >= cut;
                }
            }
        }
        None => {
            for (k, &g) in keep.iter().enumerate() {
                let d = nan_to_num(kn[k]);
                hv[g] = varies(g) && in_bounds(means[g], d, opts);
            }
        }
    }
    // genes dropped as unexpressed: zeros, as Scanpy fills them
    if filter_unexpressed {
        for g in 0..n_genes {
            if nnz[g] == 0 {
                means[g] = 0.0;
                disp[g] = 0.0;
            }
        }
    }
    Ok(Single {
        means,
        dispersions: disp,
        norm,
        hv,
    })
}

fn in_bounds(mean: f64, disp: f64, o: &HvgOptions) -> bool {
    mean > o.min_mean && mean < o.max_mean && disp > o.min_disp && disp < o.max_disp
}

/// numpy's `nan_to_num`: NaN -> 0, infinities -> the largest finite values.
fn nan_to_num(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else if v == f64::INFINITY {
        f64::MAX
    } else if v == f64::NEG_INFINITY {
        f64::MIN
    } else {
        v
    }
}

/// Mean and sample standard deviation (n - 1); NaN when fewer than 2 values (pandas).
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let ss: f64 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
    (mean, (ss / (n - 1) as f64).sqrt())
}

/// `np.median` (NaN if any value is NaN or the slice is empty). Sorts `v`.
fn median_nan(v: &mut [f64]) -> f64 {
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Bin codes of `pd.cut(x, n_bins)` (equal width, right-closed, first edge lowered by 0.1 %
/// of the range). All values are finite here.
fn equal_width_bins(x: &[f64], n_bins: usize) -> Vec<usize> {
    if x.is_empty() {
        return Vec::new();
    }
    let mut mn = x.iter().copied().fold(f64::INFINITY, f64::min);
    let mut mx = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut edges: Vec<f64>;
    if mn == mx {
        let adj = |v: f64| if v != 0.0 { 0.001 * v.abs() } else { 0.001 };
        mn -= adj(mn);
        mx += adj(mx);
        edges = linspace(mn, mx, n_bins + 1);
    } else {
        edges = linspace(mn, mx, n_bins + 1);
        edges[0] -= (mx - mn) * 0.001;
    }
    x.iter().map(|&v| cut_code(&edges, v)).collect()
}

/// `np.linspace(start, stop, num)` with its arithmetic: `i * step + start`, last = stop.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(l) = v.last_mut() {
        *l = stop;
    }
    v
}

/// `searchsorted(edges, v, side="left") - 1`, clamped to a valid bin.
fn cut_code(edges: &[f64], v: f64) -> usize {
    let k = edges.partition_point(|&e| e < v);
    k.saturating_sub(1).min(edges.len() - 2)
}

/// Bin codes for `CellRanger`: edges `[-inf, percentiles 10, 15, ..., 100, inf]`.
fn percentile_bins(x: &[f64]) -> Result<Vec<usize>> {
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let mut s = x.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let mut edges = vec![f64::NEG_INFINITY];
    for q in (10..105).step_by(5) {
        edges.push(percentile_sorted(&s, q as f64));
    }
    edges.push(f64::INFINITY);
    if edges.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::data(
            "highly_variable_genes",
            "cell_ranger: mean percentiles are not distinct (pandas raises the same error)",
        ));
    }
    Ok(x.iter().map(|&v| cut_code(&edges, v)).collect())
}

/// `np.percentile(x, q)` with linear interpolation and numpy's `_lerp`.
fn percentile_sorted(s: &[f64], q: f64) -> f64 {
    let n = s.len();
    let virt = q / 100.0 * (n - 1) as f64;
    let lo = virt.floor();
    let t = virt - lo;
    let lo = lo as usize;
    let hi = (lo + 1).min(n - 1);
    let (a, b) = (s[lo], s[hi]);
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

fn batched(x: &CsrMatrix, groups: &[Vec<usize>], opts: &HvgOptions) -> Result<Hvg> {
    let n_genes = x.n_cols();
    let nb = groups.len();
    let per: Vec<Single> = groups
        .iter()
        .map(|rows| single_batch(x, Some(rows), opts, true))
        .collect::<Result<_>>()?;
    let mean_of = |sel: fn(&Single, usize) -> f64| -> Vec<f64> {
        (0..n_genes)
            .map(|g| {
                let (mut s, mut c) = (0f64, 0usize);
                for p in &per {
                    let v = sel(p, g);
                    if !v.is_nan() {
                        s += v;
                        c += 1;
                    }
                }
                if c == 0 {
                    f64::NAN
                } else {
                    s / c as f64
                }
            })
            .collect()
    };
    let means = mean_of(|p, g| p.means[g]);
    let dispersions = mean_of(|p, g| p.dispersions[g]);
    let norm = mean_of(|p, g| p.norm[g]);
    let nbatches: Vec<u32> = (0..n_genes)
        .map(|g| per.iter().filter(|p| p.hv[g]).count() as u32)
        .collect();
    let intersection: Vec<bool> = nbatches.iter().map(|&c| c as usize == nb).collect();
    let constant = constant_columns(x, None);
    let hv = match opts.n_top_genes {
        Some(n_top) => {
            let mut order: Vec<usize> = (0..n_genes).collect();
            if let Some(names) = &opts.gene_names {
                order.sort_by(|&a, &b| names[a].cmp(&names[b]));
            }
            order.sort_by(|&a, &b| {
                nbatches[b].cmp(&nbatches[a]).then_with(|| {
                    match (norm[a].is_nan(), norm[b].is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ => norm[b]
                            .partial_cmp(&norm[a])
                            .unwrap_or(std::cmp::Ordering::Equal),
                    }
                })
            });
            let mut hv = vec![false; n_genes];
            for &g in order.iter().filter(|&&g| !constant[g]).take(n_top) {
                hv[g] = true;
            }
            hv
        }
        None => (0..n_genes)
            .map(|g| {
                let d = if norm[g].is_nan() { 0.0 } else { norm[g] };
                !constant[g] && in_bounds(means[g], d, opts)
            })
            .collect(),
    };
    Ok(Hvg {
        flavor: opts.flavor,
        means,
        dispersions: Some(dispersions),
        dispersions_norm: Some(norm),
        variances: None,
        variances_norm: None,
        highly_variable_rank: None,
        highly_variable_nbatches: Some(nbatches),
        highly_variable_intersection: Some(intersection),
        highly_variable: hv,
    })
}

fn seurat_v3(x: &CsrMatrix, groups: Option<&[Vec<usize>]>, opts: &HvgOptions) -> Result<Hvg> {
    let n_top = opts.n_top_genes.unwrap_or(2000);
    let n_genes = x.n_cols();
    let (means, variances, _) = mean_var(x, None, |v| v);
    let all: Vec<Vec<usize>>;
    let groups: &[Vec<usize>] = match groups {
        Some(g) => g,
        None => {
            all = vec![(0..x.n_rows()).collect()];
            &all
        }
    };
    let single = groups.len() == 1 && groups[0].len() == x.n_rows();
    let mut norm_vars: Vec<Vec<f64>> = Vec::with_capacity(groups.len());
    for rows in groups {
        let r = if single { None } else { Some(rows.as_slice()) };
        let (mean, var, _) = mean_var(x, r, |v| v);
        let nc: Vec<usize> = (0..n_genes).filter(|&g| var[g] > 0.0).collect();
        let lx: Vec<f64> = nc.iter().map(|&g| mean[g].log10()).collect();
        let ly: Vec<f64> = nc.iter().map(|&g| var[g].log10()).collect();
        let fit = loess(
            &lx,
            &ly,
            &LoessOptions {
                span: opts.span,
                ..Default::default()
            },
        )?;
        let mut est = vec![0f64; n_genes];
        for (k, &g) in nc.iter().enumerate() {
            est[g] = fit[k];
        }
        let reg_std: Vec<f64> = est.iter().map(|e| 10f64.powf(*e).sqrt()).collect();
        let n = rows.len() as f64;
        let vmax = n.sqrt();
        let clip: Vec<f64> = (0..n_genes).map(|g| reg_std[g] * vmax + mean[g]).collect();
        // clipped sums, sequential over rows as Scanpy's (non-parallel) kernel
        let sums = col_reduce_clipped(x, r, &clip);
        let nv: Vec<f64> = (0..n_genes)
            .map(|g| {
                let (s, ss) = (sums[g][0], sums[g][1]);
                (1.0 / ((n - 1.0) * reg_std[g] * reg_std[g]))
                    * ((n * mean[g] * mean[g]) + ss - 2.0 * s * mean[g])
            })
            .collect();
        norm_vars.push(nv);
    }
    // ranks per batch: 0 = most variable; exact ties by gene index
    let mut ranks: Vec<Vec<f64>> = Vec::with_capacity(norm_vars.len());
    for nv in &norm_vars {
        let mut order: Vec<usize> = (0..n_genes).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (-nv[a], -nv[b]);
            x.partial_cmp(&y)
                .unwrap_or_else(|| x.is_nan().cmp(&y.is_nan()))
        });
        let mut r = vec![0f64; n_genes];
        for (k, &g) in order.iter().enumerate() {
            r[g] = k as f64;
        }
        ranks.push(r);
    }
    let mut nbatches = vec![0u32; n_genes];
    let mut median_rank = vec![f64::NAN; n_genes];
    let mut vnorm = vec![0f64; n_genes];
    let mut buf: Vec<f64> = Vec::with_capacity(ranks.len());
    for g in 0..n_genes {
        buf.clear();
        for r in &ranks {
            if r[g] < n_top as f64 {
                buf.push(r[g]);
            }
        }
        nbatches[g] = buf.len() as u32;
        if !buf.is_empty() {
            buf.sort_by(|a, b| a.total_cmp(b));
            let m = buf.len();
            median_rank[g] = if m % 2 == 1 {
                buf[m / 2]
            } else {
                ((buf[m / 2 - 1] as f32 + buf[m / 2] as f32) / 2.0) as f64
            };
        }
        vnorm[g] = norm_vars.iter().map(|v| v[g]).sum::<f64>() / norm_vars.len() as f64;
        if variances[g] <= 0.0 {
            // No variance: never selected, so no rank either.
            nbatches[g] = 0;
            median_rank[g] = f64::NAN;
        }
    }
    let mut order: Vec<usize> = (0..n_genes).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (median_rank[a], median_rank[b]);
        let c = match (ra.is_nan(), rb.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => ra.total_cmp(&rb),
        };
        c.then_with(|| nbatches[b].cmp(&nbatches[a]))
    });
    let mut hv = vec![false; n_genes];
    for &g in order.iter().filter(|&&g| variances[g] > 0.0).take(n_top) {
        hv[g] = true;
    }
    let batched = groups.len() > 1 || !single;
    Ok(Hvg {
        flavor: Flavor::SeuratV3,
        means,
        dispersions: None,
        dispersions_norm: None,
        variances: Some(variances),
        variances_norm: Some(vnorm),
        highly_variable_rank: Some(median_rank),
        highly_variable_nbatches: if batched { Some(nbatches) } else { None },
        highly_variable_intersection: None,
        highly_variable: hv,
    })
}

/// Per column `[sum min(x, clip), sum min(x, clip)^2]` in `f64` over `rows` (fixed-order
/// blocks as [`col_reduce`]).
fn col_reduce_clipped(x: &CsrMatrix, rows: Option<&[usize]>, clip: &[f64]) -> Vec<[f64; 2]> {
    use rayon::prelude::*;
    let n_cols = x.n_cols();
    let n = rows.map_or(x.n_rows(), |r| r.len());
    let block = n.div_ceil(32).max(1);
    let parts: Vec<Vec<[f64; 2]>> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![[0f64; 2]; n_cols];
            for i in b * block..((b + 1) * block).min(n) {
                let r = rows.map_or(i, |rs| rs[i]);
                let (idx, val) = x.row(r);
                for (&c, &v) in idx.iter().zip(val) {
                    let e = (v as f64).min(clip[c as usize]);
                    let a = &mut acc[c as usize];
                    a[0] += e;
                    a[1] += e * e;
                }
            }
            acc
        })
        .collect();
    let mut out = vec![[0f64; 2]; n_cols];
    for p in parts {
        for (o, q) in out.iter_mut().zip(p) {
            o[0] += q[0];
            o[1] += q[1];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pandas_cut_and_percentiles() {
        // pd.cut([0, 1, 2, 3, 4], 4).codes == [0, 0, 1, 2, 3]
        assert_eq!(
            equal_width_bins(&[0.0, 1.0, 2.0, 3.0, 4.0], 4),
            vec![0, 0, 1, 2, 3]
        );
        // np.percentile([1, 2, 3, 4], 10) == 1.3
        assert!((percentile_sorted(&[1.0, 2.0, 3.0, 4.0], 10.0) - 1.3).abs() < 1e-12);
        assert_eq!(percentile_sorted(&[1.0, 2.0, 3.0, 4.0], 100.0), 4.0);
        assert_eq!(linspace(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn seurat_ties_at_cutoff_all_selected() {
        // genes 0 and 1 identical -> identical dispersions_norm; asking for 1 gene selects both
        // when they are the most variable.
        let mut r = vec![];
        let mut c = vec![];
        let mut v = vec![];
        let vals = [
            [3.0f32, 3.0, 0.5, 1.0],
            [0.0, 0.0, 0.6, 1.0],
            [2.0, 2.0, 0.4, 1.0],
            [0.0, 0.0, 0.5, 1.1],
        ];
        for (i, row) in vals.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                if x != 0.0 {
                    r.push(i as u32);
                    c.push(j as u32);
                    v.push(x);
                }
            }
        }
        let m = CsrMatrix::from_triplets(4, 4, &r, &c, &v).unwrap();
        let h = highly_variable_genes(
            &m,
            None,
            None,
            &HvgOptions {
                n_top_genes: Some(1),
                n_bins: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(h.selected(), vec![0, 1]);
        assert!(highly_variable_genes(
            &m,
            None,
            None,
            &HvgOptions {
                flavor: Flavor::SeuratV3,
                ..Default::default()
            }
        )
        .is_err());
        assert!(
            highly_variable_genes(&m, None, Some(&[0u32, 0, 1][..]), &HvgOptions::default())
                .is_err()
        );
    }

    /// Counts with what the fused pass must handle: counts above the per-cell cache (>= 64),
    /// non-integer values, an explicit zero, an empty cell, a gene detected nowhere, a gene
    /// with the same count in every cell, and (rows 40..44, identical) cells whose log values
    /// are equal.
    fn awkward_counts() -> CsrMatrix {
        let sim = crate::simulate::simulate(&crate::simulate::SimulateOptions {
            n_cells: 120,
            n_genes: 300,
            n_markers: 5,
            library_size: 4000.0,
            ..Default::default()
        })
        .unwrap();
        let x = sim.dataset.counts;
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        for i in 0..x.n_rows() {
            if i == 7 {
                continue; // empty cell
            }
            let src = if (40..44).contains(&i) { 40 } else { i };
            let (idx, val) = x.row(src);
            for (k, (&g, &y)) in idx.iter().zip(val).enumerate() {
                if g == 3 || g == 4 {
                    continue;
                }
                let y = match k % 11 {
                    0 => y * 0.37,
                    1 => y + 64.0,
                    _ => y,
                };
                r.push(i as u32);
                c.push(g);
                v.push(y);
            }
            // gene 3: the same count everywhere (not constant after normalization)
            r.push(i as u32);
            c.push(3);
            v.push(2.0);
        }
        // an explicit zero
        r.push(0);
        c.push(4);
        v.push(0.0);
        CsrMatrix::from_triplets(x.n_rows(), x.n_cols(), &r, &c, &v).unwrap()
    }

    #[test]
    fn fused_moments_equal_the_two_steps() {
        let x = awkward_counts();
        for flavor in [Flavor::Seurat, Flavor::CellRanger] {
            for target_sum in [None, Some(1e4)] {
                let norm = NormalizeOptions {
                    target_sum,
                    ..Default::default()
                };
                let opts = HvgOptions {
                    flavor,
                    n_top_genes: Some(50),
                    ..Default::default()
                };
                let two = crate::normalize::normalize_total_log1p(&x, &norm).unwrap();
                let (one, m) = normalize_log1p_moments(&x, &norm, flavor, None).unwrap();
                // with the QC totals: the same, bit for bit
                let no = vec![false; x.n_cols()];
                let t: Vec<f64> = {
                    use rayon::prelude::*;
                    crate::qc::cell_sums(&x, &no, &no).map(|c| c.0).collect()
                };
                let (again, m2) = normalize_log1p_moments(&x, &norm, flavor, Some(&t)).unwrap();
                assert_eq!(format!("{:?}", again.totals), format!("{:?}", one.totals));
                assert_eq!(again.matrix, one.matrix);
                assert_eq!(format!("{m2:?}"), format!("{m:?}"));
                // without storing the log values: the same moments and size factors
                let (lazy, m3) = log1p_moments(&x, &norm, flavor, Some(&t)).unwrap();
                assert_eq!(format!("{m3:?}"), format!("{m:?}"));
                assert_eq!(lazy.size_factors, one.size_factors);
                assert_eq!(lazy.matrix.nnz(), 0);
                assert_eq!(one.matrix.indices(), two.matrix.indices());
                let bits = |v: &[f32]| v.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(one.matrix.data()), bits(two.matrix.data()));
                assert_eq!(one.size_factors, two.size_factors);
                let direct = highly_variable_genes(&two.matrix, None, None, &opts).unwrap();
                let fused = highly_variable_from_moments(m.means, &m.variances, &opts).unwrap();
                // Debug strings: NaN dispersions compare equal, every other value exactly
                assert_eq!(format!("{fused:?}"), format!("{direct:?}"), "{flavor:?}");
            }
        }
        let opts = NormalizeOptions::default();
        assert!(normalize_log1p_moments(&x, &opts, Flavor::SeuratV3, None).is_err());
        let one_cell = x.select_rows(&[0]).unwrap();
        assert!(normalize_log1p_moments(&one_cell, &opts, Flavor::Seurat, None).is_err());
        assert!(normalize_log1p_moments(&x, &opts, Flavor::Seurat, Some(&[1.0])).is_err());
    }

    #[test]
    fn constant_columns_get_zero_variance_as_before() {
        // The previous rule (a full scan for constant columns) against the candidate check of
        // `finish_mean_var`, over all cells and over subsets, including the identical cells
        // 40..44 where every detected gene is constant.
        let x = crate::normalize::normalize_total_log1p(&awkward_counts(), &Default::default())
            .unwrap()
            .matrix;
        let subsets: [Option<Vec<usize>>; 3] = [
            None,
            Some((40..44).collect()),
            Some(vec![40, 41, 0, 43, 42]),
        ];
        let mut zero_by_rule = 0;
        for rows in &subsets {
            let rows = rows.as_deref();
            let (_, vars, _) = mean_var(&x, rows, |v| v.exp_m1());
            let n = rows.map_or(x.n_rows(), |r| r.len()) as f64;
            let s = col_reduce::<3, _>(&x, rows, |v| {
                let e = v.exp_m1();
                [e as f64, (e * e) as f64, (v != 0.0) as u8 as f64]
            });
            let constant = constant_columns(&x, rows);
            for (c, q) in s.iter().enumerate() {
                let m = q[0] / n;
                let v = (q[1] / n - m * m) * (n / (n - 1.0));
                let old = if constant[c] { 0.0 } else { v };
                assert_eq!(
                    vars[c].to_bits(),
                    old.to_bits(),
                    "column {c}, rows {rows:?}"
                );
                zero_by_rule += (constant[c] && v != 0.0) as usize;
            }
        }
        // the rule mattered somewhere (a rounding residue was replaced by 0)
        assert!(zero_by_rule > 0);
    }
}
