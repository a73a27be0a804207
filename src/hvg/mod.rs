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

mod bins;
mod dispersion;
mod moments;
mod seurat_v3;

use crate::dataset::{Column, GeneTable};
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
pub use dispersion::highly_variable_from_moments;
use dispersion::{batched, single_batch};
pub use moments::{log1p_moments, normalize_log1p_moments, HvgMoments};
pub(crate) use moments::{mean_var_from_sums, moments_from_col_sums};
use seurat_v3::seurat_v3;

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
/// # let log = scrna::normalize::normalize_total_log1p(&data.counts.to_csr(), &Default::default())?.matrix;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seurat_ties_at_cutoff_all_selected() {
        // genes 0 and 1 identical -> identical dispersions_norm; asking for 1 gene selects both
        // when they are the most variable.
        let m = CsrMatrix::from_dense_rows(&[
            [3.0f32, 3.0, 0.5, 1.0],
            [0.0, 0.0, 0.6, 1.0],
            [2.0, 2.0, 0.4, 1.0],
            [0.0, 0.0, 0.5, 1.1],
        ]);
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
}
