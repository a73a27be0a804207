//! Quality control: per-cell and per-gene metrics, fixed and robust (MAD) cell filters, the gene
//! filter.
//!
//! The metrics are Scanpy's `sc.pp.calculate_qc_metrics(adata, qc_vars=["mt", "ribo"])` with
//! the same column names; the filters are Scanpy's `filter_cells` / `filter_genes` in the order
//! of Scanpy's clustering tutorial (cell filters first, then the gene filter on the remaining
//! cells), plus the robust outlier filter of scuttle's `isOutlier` / `perCellQCFilters` (OSCA).

use crate::dataset::{Column, Dataset};
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;

/// Which genes count as mitochondrial and ribosomal.
#[derive(Debug, Clone, PartialEq)]
pub struct QcOptions {
    /// Gene symbol prefixes of mitochondrial genes (case-sensitive). Default `["MT-", "mt-"]`
    /// (human and mouse), as `adata.var_names.str.startswith("MT-")` in Scanpy's tutorial.
    pub mito_prefixes: Vec<String>,
    /// Gene symbol prefixes of ribosomal protein genes (case-sensitive). Default
    /// `["RPS", "RPL"]`.
    pub ribo_prefixes: Vec<String>,
}

impl Default for QcOptions {
    fn default() -> Self {
        QcOptions {
            mito_prefixes: vec!["MT-".into(), "mt-".into()],
            ribo_prefixes: vec!["RPS".into(), "RPL".into()],
        }
    }
}

/// Per-cell and per-gene QC metrics (Scanpy's `calculate_qc_metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct QcMetrics {
    /// Per cell: sum of counts (`total_counts`).
    pub total_counts: Vec<f64>,
    /// Per cell: number of genes with a non-zero count (`n_genes_by_counts`).
    pub n_genes_by_counts: Vec<u32>,
    /// Per cell: counts in mitochondrial genes (`total_counts_mt`).
    pub total_counts_mt: Vec<f64>,
    /// Per cell: `100 * total_counts_mt / total_counts` (`pct_counts_mt`); NaN for a cell with
    /// no counts, as in Scanpy (0 / 0).
    pub pct_counts_mt: Vec<f64>,
    /// Per cell: counts in ribosomal genes (`total_counts_ribo`).
    pub total_counts_ribo: Vec<f64>,
    /// Per cell: `100 * total_counts_ribo / total_counts` (`pct_counts_ribo`); NaN for a cell
    /// with no counts.
    pub pct_counts_ribo: Vec<f64>,
    /// Per gene: number of cells with a non-zero count (`n_cells_by_counts`).
    pub n_cells_by_counts: Vec<u32>,
    /// Per gene: sum of counts over cells (`total_counts`).
    pub gene_total_counts: Vec<f64>,
    /// Per gene: mean count over all cells (`mean_counts`).
    pub mean_counts: Vec<f64>,
    /// Per gene: `100 * (1 - n_cells_by_counts / n_cells)` (`pct_dropout_by_counts`).
    pub pct_dropout_by_counts: Vec<f64>,
    /// Per gene: mitochondrial flag (`mt`).
    pub mt: Vec<bool>,
    /// Per gene: ribosomal flag (`ribo`).
    pub ribo: Vec<bool>,
}

fn has_prefix(sym: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| sym.starts_with(p.as_str()))
}

/// Number of fixed row blocks for column reductions: fixed so that results never depend on
/// the number of threads.
const COL_BLOCKS: usize = 32;

/// Rows per block of the fixed row blocks of [`col_reduce`] over `n` rows (the last block may
/// be shorter), for other passes that must add per-column sums in the same order.
pub(crate) fn col_block_len(n: usize) -> usize {
    n.div_ceil(COL_BLOCKS).max(1)
}

/// Per-column statistics of `x` in `f64`, accumulated in a fixed order: `n_rows` is split into
/// [`COL_BLOCKS`] contiguous blocks, each block is reduced sequentially, and the block results
/// are added in block order. `f` maps each stored value to the `K` quantities summed per
/// column (for example `[1, x]` or `[x, x^2]`).
pub(crate) fn col_reduce<const K: usize, F>(
    x: &CsrMatrix,
    rows: Option<&[usize]>,
    f: F,
) -> Vec<[f64; K]>
where
    F: Fn(f32) -> [f64; K] + Sync,
{
    let n_cols = x.n_cols();
    let n = rows.map_or(x.n_rows(), |r| r.len());
    let block = n.div_ceil(COL_BLOCKS).max(1);
    let parts: Vec<Vec<[f64; K]>> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![[0f64; K]; n_cols];
            for i in b * block..((b + 1) * block).min(n) {
                let r = rows.map_or(i, |rs| rs[i]);
                let (idx, val) = x.row(r);
                for (&c, &v) in idx.iter().zip(val) {
                    let q = f(v);
                    let a = &mut acc[c as usize];
                    for k in 0..K {
                        a[k] += q[k];
                    }
                }
            }
            acc
        })
        .collect();
    let mut out = vec![[0f64; K]; n_cols];
    for p in parts {
        for (o, q) in out.iter_mut().zip(p) {
            for k in 0..K {
                o[k] += q[k];
            }
        }
    }
    out
}

/// Per cell of `x`, in row order: total counts, genes detected (non-zero values), and the
/// counts in the genes flagged by `mt` and by `ribo` (sums in `f64`).
pub(crate) fn cell_sums<'a>(
    x: &'a CsrMatrix,
    mt: &'a [bool],
    ribo: &'a [bool],
) -> impl IndexedParallelIterator<Item = CellSums> + 'a {
    let flags = gene_flags(mt, ribo);
    x.par_rows()
        .map(move |(_, idx, val)| row_sums(idx, val, &flags))
}

/// Per-cell sums: total counts, genes detected, mitochondrial and ribosomal counts.
pub(crate) type CellSums = (f64, u32, f64, f64);

/// Per gene: bit 0 mitochondrial, bit 1 ribosomal.
fn gene_flags(mt: &[bool], ribo: &[bool]) -> Vec<u8> {
    mt.iter()
        .zip(ribo)
        .map(|(&m, &r)| m as u8 | (r as u8) << 1)
        .collect()
}

/// The per-cell sums of one row: `(total, non-zeros, mito total, ribo total)`, the total by
/// [`crate::sparse::sum_f64`] and the mito and ribo totals in stored order, with the gene
/// sets in `flags` ([`gene_flags`]). Every per-cell sum of this module
/// goes through here, so that they agree bit for bit.
#[inline]
fn row_sums(idx: &[u32], val: &[f32], flags: &[u8]) -> CellSums {
    row_sums_with(idx, val, flags, |_, _| {})
}

/// [`row_sums`], calling `each(column, value)` for every stored value in order on the way (a
/// caller's per-gene sums ride on the same loop).
#[inline(always)]
fn row_sums_with(
    idx: &[u32],
    val: &[f32],
    flags: &[u8],
    mut each: impl FnMut(usize, f32),
) -> CellSums {
    let t = crate::sparse::sum_f64(val);
    let n = val.iter().map(|&v| (v != 0.0) as u32).sum::<u32>();
    let (mut m, mut r) = (0f64, 0f64);
    for (&c, &v) in idx.iter().zip(val) {
        let c = c as usize;
        each(c, v);
        let f = flags.get(c).copied().unwrap_or(0);
        if f != 0 {
            if f & 1 != 0 {
                m += v as f64;
            }
            if f & 2 != 0 {
                r += v as f64;
            }
        }
    }
    (t, n, m, r)
}

/// The QC metrics from the per-cell sums and the per-gene `[non-zeros, total]`.
pub(crate) fn assemble(
    per_cell: &[CellSums],
    cols: &[[f64; 2]],
    mt: Vec<bool>,
    ribo: Vec<bool>,
) -> QcMetrics {
    let n_cells = per_cell.len();
    let pct = |part: f64, tot: f64| part / tot * 100.0;
    QcMetrics {
        total_counts: per_cell.iter().map(|c| c.0).collect(),
        n_genes_by_counts: per_cell.iter().map(|c| c.1).collect(),
        total_counts_mt: per_cell.iter().map(|c| c.2).collect(),
        pct_counts_mt: per_cell.iter().map(|c| pct(c.2, c.0)).collect(),
        total_counts_ribo: per_cell.iter().map(|c| c.3).collect(),
        pct_counts_ribo: per_cell.iter().map(|c| pct(c.3, c.0)).collect(),
        n_cells_by_counts: cols.iter().map(|c| c[0] as u32).collect(),
        gene_total_counts: cols.iter().map(|c| c[1]).collect(),
        mean_counts: cols.iter().map(|c| c[1] / n_cells as f64).collect(),
        pct_dropout_by_counts: cols
            .iter()
            .map(|c| (1.0 - c[0] / n_cells as f64) * 100.0)
            .collect(),
        mt,
        ribo,
    }
}

/// Computes the QC metrics of `ds.counts`, using `ds.genes.symbols` for the gene sets.
///
/// Formulas as Scanpy's `calculate_qc_metrics`: a gene is detected in a cell when its count is
/// non-zero (explicit zeros are ignored, as Scanpy's `eliminate_zeros`). Sums are in `f64`
/// (Scanpy sums `float32` counts in `float32`; integer counts below 2^24 per cell agree
/// exactly, percentages to about 1e-7 relative).
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// let m = scrna::qc::metrics(&data, &Default::default())?;
/// assert_eq!(m.n_genes_by_counts.len(), data.n_cells());
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn metrics(ds: &Dataset, opts: &QcOptions) -> Result<QcMetrics> {
    opts.validate()?;
    let x = &ds.counts;
    if ds.genes.symbols.len() != x.n_cols() {
        return Err(Error::data(
            "qc metrics",
            format!(
                "{} gene symbols for {} matrix columns",
                ds.genes.symbols.len(),
                x.n_cols()
            ),
        ));
    }
    let mt: Vec<bool> = ds
        .genes
        .symbols
        .iter()
        .map(|s| has_prefix(s, &opts.mito_prefixes))
        .collect();
    let ribo: Vec<bool> = ds
        .genes
        .symbols
        .iter()
        .map(|s| has_prefix(s, &opts.ribo_prefixes))
        .collect();
    // One pass: each fixed row block gives its cells' sums and its per-gene partial sums,
    // which are added in block order exactly as `col_reduce` does.
    let flags = gene_flags(&mt, &ribo);
    let n = x.n_rows();
    let n_cols = x.n_cols();
    let block = n.div_ceil(COL_BLOCKS).max(1);
    // Per block: the cells' sums and per gene `[non-zeros, total]` (the non-zeros are exact
    // integers in `f64`, so the block sums equal the sequential ones).
    type Part = (Vec<CellSums>, Vec<[f64; 2]>);
    let parts: Vec<Part> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let rows = b * block..((b + 1) * block).min(n);
            let mut cells = Vec::with_capacity(rows.len());
            let mut cols = vec![[0f64; 2]; n_cols];
            for r in rows {
                let (idx, val) = x.row(r);
                cells.push(row_sums_with(idx, val, &flags, |c, v| {
                    if let Some(a) = cols.get_mut(c) {
                        a[0] += (v != 0.0) as u8 as f64;
                        a[1] += v as f64;
                    }
                }));
            }
            (cells, cols)
        })
        .collect();
    let mut per_cell = Vec::with_capacity(n);
    let mut cols = vec![[0f64; 2]; n_cols];
    for (cells, part) in parts {
        per_cell.extend(cells);
        for (o, q) in cols.iter_mut().zip(part) {
            o[0] += q[0];
            o[1] += q[1];
        }
    }
    Ok(assemble(&per_cell, &cols, mt, ribo))
}

impl QcMetrics {
    /// Puts the metrics into `ds.cells` and `ds.genes` under Scanpy's column names: cells get
    /// `n_genes_by_counts`, `total_counts`, `total_counts_mt`, `pct_counts_mt`,
    /// `total_counts_ribo`, `pct_counts_ribo`; genes get `mt`, `ribo`, `n_cells_by_counts`,
    /// `mean_counts`, `pct_dropout_by_counts`, `total_counts`.
    pub fn store_in(&self, ds: &mut Dataset) -> Result<()> {
        let c = &mut ds.cells;
        c.set(
            "n_genes_by_counts",
            Column::I64(self.n_genes_by_counts.iter().map(|&v| v as i64).collect()),
        )?;
        c.set("total_counts", Column::F64(self.total_counts.clone()))?;
        c.set("total_counts_mt", Column::F64(self.total_counts_mt.clone()))?;
        c.set("pct_counts_mt", Column::F64(self.pct_counts_mt.clone()))?;
        c.set(
            "total_counts_ribo",
            Column::F64(self.total_counts_ribo.clone()),
        )?;
        c.set("pct_counts_ribo", Column::F64(self.pct_counts_ribo.clone()))?;
        let g = &mut ds.genes;
        g.set("mt", Column::Bool(self.mt.clone()))?;
        g.set("ribo", Column::Bool(self.ribo.clone()))?;
        g.set(
            "n_cells_by_counts",
            Column::I64(self.n_cells_by_counts.iter().map(|&v| v as i64).collect()),
        )?;
        g.set("mean_counts", Column::F64(self.mean_counts.clone()))?;
        g.set(
            "pct_dropout_by_counts",
            Column::F64(self.pct_dropout_by_counts.clone()),
        )?;
        g.set("total_counts", Column::F64(self.gene_total_counts.clone()))?;
        Ok(())
    }
}

/// The robust outlier filter (scuttle `perCellQCFilters` / OSCA).
#[derive(Debug, Clone, PartialEq)]
pub struct MadOptions {
    /// Number of scaled MADs beyond the median that makes an outlier. Default 3 (scuttle).
    pub nmads: f64,
    /// Use `ln` of total counts and of genes detected (lower side). Default `true` (scuttle's
    /// `log = TRUE`; the base does not change which cells are outliers).
    pub log: bool,
    /// Also flag cells whose `pct_counts_mt` is above `median + nmads * MAD` (upper side, linear
    /// scale). Default `true`.
    pub mito: bool,
    /// Compute medians and MADs per sample (`cells.sample`) when there are several samples
    /// (scuttle's `batch`). Default `true`.
    pub per_sample: bool,
}

impl Default for MadOptions {
    fn default() -> Self {
        MadOptions {
            nmads: 3.0,
            log: true,
            mito: true,
            per_sample: true,
        }
    }
}

/// Options of [`filter`]. Every bound is inclusive on the kept side, as Scanpy's
/// `filter_cells` / `filter_genes` (a cell with exactly `min_genes` genes is kept).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilterOptions {
    /// Keep cells with at least this many genes detected. Default `None`.
    pub min_genes: Option<u32>,
    /// Keep cells with at most this many genes detected. Default `None`.
    pub max_genes: Option<u32>,
    /// Keep cells with at least this many counts. Default `None`.
    pub min_counts: Option<f64>,
    /// Keep cells with at most this many counts. Default `None`.
    pub max_counts: Option<f64>,
    /// Keep cells with `pct_counts_mt <= max_pct_mito` (Scanpy's tutorial writes
    /// `pct_counts_mt < 5`: use a slightly smaller bound for a strict cut). A cell with no
    /// counts has NaN % mito and is not removed by this criterion. Default `None`.
    pub max_pct_mito: Option<f64>,
    /// Keep genes detected in at least this many of the cells that pass the cell filters.
    /// Default `None`.
    pub min_cells: Option<u32>,
    /// Robust outlier filter (median ± nmads * 1.4826 * MAD). Default `None`.
    pub mad: Option<MadOptions>,
    /// Gene sets used for % mito. Default [`QcOptions::default`].
    pub qc: QcOptions,
}

/// Why a cell or a gene was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Fewer genes than `min_genes`.
    MinGenes,
    /// More genes than `max_genes`.
    MaxGenes,
    /// Fewer counts than `min_counts`.
    MinCounts,
    /// More counts than `max_counts`.
    MaxCounts,
    /// % mito above `max_pct_mito`.
    MaxPctMito,
    /// Total counts below the sample's median minus nmads MADs.
    MadLowCounts,
    /// Genes detected below the sample's median minus nmads MADs.
    MadLowGenes,
    /// % mito above the sample's median plus nmads MADs.
    MadHighMito,
    /// Gene detected in fewer than `min_cells` of the kept cells.
    MinCells,
    /// Predicted doublet (the pipeline's doublet step, after the QC filters).
    Doublet,
}

/// The cell reasons in the order they are checked.
const CELL_REASONS: [Reason; 8] = [
    Reason::MinGenes,
    Reason::MaxGenes,
    Reason::MinCounts,
    Reason::MaxCounts,
    Reason::MaxPctMito,
    Reason::MadLowCounts,
    Reason::MadLowGenes,
    Reason::MadHighMito,
];

/// Thresholds of one sample from the MAD filter, for a report.
#[derive(Debug, Clone, PartialEq)]
pub struct MadThresholds {
    /// Sample name.
    pub sample: String,
    /// Lowest kept total counts (back-transformed from log when `log`).
    pub min_counts: f64,
    /// Lowest kept number of genes (back-transformed from log when `log`).
    pub min_genes: f64,
    /// Highest kept % mito (NaN when `mito` is off).
    pub max_pct_mito: f64,
}

/// Result of [`filter`].
#[derive(Debug, Clone)]
pub struct Filtered {
    /// The kept cells and genes (tables subset accordingly).
    pub dataset: Dataset,
    /// Removed cells as (index in the input, first failed criterion in the order of
    /// [`Reason`]).
    pub removed_cells: Vec<(usize, Reason)>,
    /// Removed genes as (index in the input, reason).
    pub removed_genes: Vec<(usize, Reason)>,
    /// For each cell criterion that removed something: number of cells failing it (a cell can
    /// fail several, as OSCA's table of reasons; `removed_cells` gives the first only).
    pub cell_summary: Vec<(Reason, usize)>,
    /// Number of genes removed by `min_cells`.
    pub genes_removed_min_cells: usize,
    /// Per-sample MAD thresholds (empty without the MAD filter).
    pub mad_thresholds: Vec<MadThresholds>,
}

/// Median as R's `median` (mean of the two middle values for an even count); NaN when empty.
/// Sorts `v`.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
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

/// `(median, 1.4826 * median(|x - median|))`, as R's `mad`. NaN values are dropped (R's
/// `na.rm = TRUE` in scuttle).
fn median_mad(x: &[f64]) -> (f64, f64) {
    let mut v: Vec<f64> = x.iter().copied().filter(|a| !a.is_nan()).collect();
    let med = median(&mut v);
    for a in v.iter_mut() {
        *a = (*a - med).abs();
    }
    (med, 1.4826 * median(&mut v))
}

impl QcOptions {
    /// Checks the options without data: no empty gene-symbol prefix (it would match every gene).
    pub fn validate(&self) -> Result<()> {
        if self.mito_prefixes.iter().any(|p| p.is_empty()) {
            return Err(Error::option(
                "mito_prefixes",
                "empty prefix matches every gene",
            ));
        }
        if self.ribo_prefixes.iter().any(|p| p.is_empty()) {
            return Err(Error::option(
                "ribo_prefixes",
                "empty prefix matches every gene",
            ));
        }
        Ok(())
    }
}

impl FilterOptions {
    /// Checks the options without data: the QC metric definitions (`qc.*`), minimums not above
    /// maximums, finite non-negative count and percentage cut-offs, a positive MAD multiple.
    pub fn validate(&self) -> Result<()> {
        self.qc.validate().map_err(|e| e.within("qc"))?;
        check_filter_options(self)
    }
}

fn check_filter_options(opts: &FilterOptions) -> Result<()> {
    if let (Some(a), Some(b)) = (opts.min_genes, opts.max_genes) {
        if a > b {
            return Err(Error::option(
                "min_genes",
                format!("{a} is above max_genes {b}"),
            ));
        }
    }
    for (name, v) in [
        ("min_counts", opts.min_counts),
        ("max_counts", opts.max_counts),
        ("max_pct_mito", opts.max_pct_mito),
    ] {
        if let Some(v) = v {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::option(
                    match name {
                        "min_counts" => "min_counts",
                        "max_counts" => "max_counts",
                        _ => "max_pct_mito",
                    },
                    format!("must be finite and non-negative, got {v}"),
                ));
            }
        }
    }
    if let (Some(a), Some(b)) = (opts.min_counts, opts.max_counts) {
        if a > b {
            return Err(Error::option(
                "min_counts",
                format!("{a} is above max_counts {b}"),
            ));
        }
    }
    if let Some(m) = &opts.mad {
        if !m.nmads.is_finite() || m.nmads <= 0.0 {
            return Err(Error::option(
                "mad.nmads",
                format!("must be positive, got {}", m.nmads),
            ));
        }
    }
    Ok(())
}

/// Which cells pass the cell filters of [`filter`].
#[derive(Debug, Clone, PartialEq)]
pub struct CellFilter {
    /// Indices of the kept cells, increasing.
    pub keep_cells: Vec<usize>,
    /// Removed cells with the first reason that removed each.
    pub removed_cells: Vec<(usize, Reason)>,
    /// Cells failing each criterion (a cell may count under several).
    pub cell_summary: Vec<(Reason, usize)>,
    /// Per-sample MAD thresholds (empty without `mad`).
    pub mad_thresholds: Vec<MadThresholds>,
}

/// The cell part of [`filter`] from per-cell metrics alone (`m`'s per-cell vectors and the
/// sample of every cell), so that a caller that computed the metrics block by block (the
/// streamed pipeline) applies exactly the same rules. Gene vectors of `m` are not used.
pub fn filter_cells_by_metrics(
    m: &QcMetrics,
    samples: &[String],
    opts: &FilterOptions,
) -> Result<CellFilter> {
    opts.validate()?;
    let n = m.total_counts.len();
    if samples.len() != n {
        return Err(Error::data(
            "cell filter",
            format!("{} sample names for {n} cells", samples.len()),
        ));
    }
    let mut fails: Vec<[bool; 8]> = vec![[false; 8]; n];
    for (i, f) in fails.iter_mut().enumerate() {
        let g = m.n_genes_by_counts[i];
        let t = m.total_counts[i];
        let p = m.pct_counts_mt[i];
        f[0] = opts.min_genes.is_some_and(|b| g < b);
        f[1] = opts.max_genes.is_some_and(|b| g > b);
        f[2] = opts.min_counts.is_some_and(|b| t < b);
        f[3] = opts.max_counts.is_some_and(|b| t > b);
        f[4] = opts.max_pct_mito.is_some_and(|b| p > b);
    }
    let mut mad_thresholds = Vec::new();
    if let Some(mo) = &opts.mad {
        // Group cells by sample, in order of first appearance.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        if mo.per_sample {
            let mut pos: HashMap<&str, usize> = HashMap::new();
            for (i, s) in samples.iter().enumerate() {
                let k = *pos.entry(s.as_str()).or_insert_with(|| {
                    groups.push((s.clone(), Vec::new()));
                    groups.len() - 1
                });
                groups[k].1.push(i);
            }
        }
        if groups.len() <= 1 {
            let name = samples.first().cloned().unwrap_or_default();
            groups = vec![(
                if mo.per_sample { name } else { "all".into() },
                (0..n).collect(),
            )];
        }
        let tr = |v: f64| if mo.log { v.ln() } else { v };
        let back = |v: f64| if mo.log { v.exp() } else { v };
        for (name, idx) in &groups {
            let lt: Vec<f64> = idx.iter().map(|&i| tr(m.total_counts[i])).collect();
            let lg: Vec<f64> = idx
                .iter()
                .map(|&i| tr(m.n_genes_by_counts[i] as f64))
                .collect();
            let (mt_, st) = median_mad(&lt);
            let (mg, sg) = median_mad(&lg);
            let lo_t = mt_ - mo.nmads * st;
            let lo_g = mg - mo.nmads * sg;
            let hi_p = if mo.mito {
                let pm: Vec<f64> = idx.iter().map(|&i| m.pct_counts_mt[i]).collect();
                let (mp, sp) = median_mad(&pm);
                mp + mo.nmads * sp
            } else {
                f64::NAN
            };
            for (k, &i) in idx.iter().enumerate() {
                fails[i][5] = lt[k] < lo_t;
                fails[i][6] = lg[k] < lo_g;
                fails[i][7] = mo.mito && m.pct_counts_mt[i] > hi_p;
            }
            mad_thresholds.push(MadThresholds {
                sample: name.clone(),
                min_counts: back(lo_t),
                min_genes: back(lo_g),
                max_pct_mito: hi_p,
            });
        }
    }
    let mut removed_cells = Vec::new();
    let mut keep_cells = Vec::with_capacity(n);
    let mut counts = [0usize; 8];
    for (i, f) in fails.iter().enumerate() {
        for k in 0..8 {
            counts[k] += f[k] as usize;
        }
        match f.iter().position(|&b| b) {
            Some(k) => removed_cells.push((i, CELL_REASONS[k])),
            None => keep_cells.push(i),
        }
    }
    let cell_summary = CELL_REASONS
        .iter()
        .zip(counts)
        .filter(|(_, c)| *c > 0)
        .map(|(r, c)| (*r, c))
        .collect();

    Ok(CellFilter {
        keep_cells,
        removed_cells,
        cell_summary,
        mad_thresholds,
    })
}

/// Filters cells, then genes, and says what it removed and why.
///
/// Cells: a cell is removed when it fails any of the fixed bounds (`min_genes`, `max_genes`,
/// `min_counts`, `max_counts`, `max_pct_mito`; Scanpy's `filter_cells` semantics) or, with
/// `mad`, when it is an outlier as scuttle's `isOutlier(metric, nmads, type, log, batch)`:
/// with `m = median`, `s = 1.4826 * median(|x - m|)` over the cells of its sample, a cell is an
/// outlier when `ln(total_counts) < m - nmads * s`, when `ln(n_genes_by_counts) < m - nmads * s`
/// (log scale when `log`), or when `pct_counts_mt > m + nmads * s` (linear scale). The MAD
/// statistics are computed on all input cells of the sample (as `perCellQCFilters`), not only
/// on cells passing the fixed bounds.
///
/// Genes: then, as Scanpy's tutorial (`filter_cells` before `filter_genes`), a gene is removed
/// when it is detected in fewer than `min_cells` of the kept cells.
///
/// The new count matrix is built in one pass (one copy of the kept values).
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// let mut opts = scrna::qc::FilterOptions::default();
/// opts.min_genes = Some(50);
/// opts.min_cells = Some(3);
/// let kept = scrna::qc::filter(&data, &opts)?;
/// assert!(kept.dataset.n_cells() <= data.n_cells());
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn filter(ds: &Dataset, opts: &FilterOptions) -> Result<Filtered> {
    opts.validate()?;
    let m = metrics(ds, &opts.qc)?;
    Ok(filter_by::<()>(Cow::Borrowed(ds), opts, &m, None)?.0)
}

/// [`filter`] with the QC metrics of `ds` already computed (by [`metrics`] with `opts.qc`),
/// which saves a pass over the matrix.
pub fn filter_with_metrics(ds: &Dataset, opts: &FilterOptions, m: &QcMetrics) -> Result<Filtered> {
    Ok(filter_with_kept_metrics(ds, opts, m)?.0)
}

/// [`filter_with_metrics`] that also returns the QC metrics of the kept cells and genes: the
/// same values, bit for bit, as [`metrics`] on the filtered dataset, without its pass over the
/// new matrix. `m` must be [`metrics`] of `ds` with `opts.qc` (its per-gene sums are reused
/// when no cell is removed, its per-cell sums when no gene is removed).
///
/// Passes over the counts: none to decide the genes when every cell is kept (the gene counts of
/// `m` are those of the kept cells), otherwise one over the kept cells; then one copy of the
/// kept values that also sums the kept genes of every cell (none when nothing is removed
/// besides the clone of the matrix, and only a row selection when no gene is removed).
pub fn filter_with_kept_metrics(
    ds: &Dataset,
    opts: &FilterOptions,
    m: &QcMetrics,
) -> Result<(Filtered, QcMetrics)> {
    check_metrics(ds, opts, m)?;
    let (f, kept, _) = filter_by::<()>(Cow::Borrowed(ds), opts, m, None)?;
    Ok((f, kept))
}

/// [`filter_with_kept_metrics`] of a dataset given up by the caller: the count matrix is
/// filtered in its own buffers ([`CsrMatrix::retain`]) instead of copied, so no second copy of
/// the counts exists at any time. The same results.
pub fn filter_owned_with_kept_metrics(
    ds: Dataset,
    opts: &FilterOptions,
    m: &QcMetrics,
) -> Result<(Filtered, QcMetrics)> {
    check_metrics(&ds, opts, m)?;
    let (f, kept, _) = filter_by::<()>(Cow::Owned(ds), opts, m, None)?;
    Ok((f, kept))
}

/// Work done on each kept cell while an owned dataset is filtered in place
/// ([`filter_owned_fold`]): blocks of [`col_block_len`] kept cells each start from `init()`,
/// and `visit(state, indices, values, sums)` is called on every kept cell in order, with its
/// compacted row and its QC sums over the kept genes.
pub(crate) struct Fold<'a, S> {
    pub init: &'a (dyn Fn() -> S + Sync),
    pub visit: &'a Visit<'a, S>,
}

/// `visit(state, indices, values, sums)` of a [`Fold`].
pub(crate) type Visit<'a, S> = dyn Fn(&mut S, &[u32], &[f32], &CellSums) + Sync + 'a;

/// [`filter_owned_with_kept_metrics`] that also folds `fold` over the kept cells while it
/// compacts them (one pass even when nothing is removed), returning the block states in
/// order: a later per-cell pass (as the normalization) can ride on the filter's.
pub(crate) fn filter_owned_fold<S: Send>(
    ds: Dataset,
    opts: &FilterOptions,
    m: &QcMetrics,
    fold: Fold<'_, S>,
) -> Result<(Filtered, QcMetrics, Vec<S>)> {
    check_metrics(&ds, opts, m)?;
    filter_by(Cow::Owned(ds), opts, m, Some(fold))
}

fn check_metrics(ds: &Dataset, opts: &FilterOptions, m: &QcMetrics) -> Result<()> {
    opts.validate()?;
    if m.total_counts.len() != ds.n_cells()
        || m.n_cells_by_counts.len() != ds.n_genes()
        || m.gene_total_counts.len() != ds.n_genes()
        || m.mt.len() != ds.n_genes()
        || m.ribo.len() != ds.n_genes()
    {
        return Err(Error::data(
            "qc filter",
            format!(
                "metrics of {} cells x {} genes for a dataset of {} x {}",
                m.total_counts.len(),
                m.n_cells_by_counts.len(),
                ds.n_cells(),
                ds.n_genes()
            ),
        ));
    }
    Ok(())
}

/// The filter of a borrowed dataset (the kept values are copied) or an owned one (filtered in
/// place).
fn filter_by<S: Send>(
    input: Cow<'_, Dataset>,
    opts: &FilterOptions,
    m: &QcMetrics,
    fold: Option<Fold<'_, S>>,
) -> Result<(Filtered, QcMetrics, Vec<S>)> {
    let ds: &Dataset = &input;
    let CellFilter {
        keep_cells,
        removed_cells,
        cell_summary,
        mad_thresholds,
    } = filter_cells_by_metrics(m, &ds.cells.sample, opts)?;
    let all_cells = keep_cells.len() == ds.n_cells();

    // Per gene over the kept cells: [non-zeros, total], in `col_reduce`'s order (what
    // `metrics` of the filtered matrix sums). With every cell kept these are `m`'s.
    let gene_cols: Vec<[f64; 2]> = if all_cells {
        m.n_cells_by_counts
            .iter()
            .zip(&m.gene_total_counts)
            .map(|(&c, &t)| [c as f64, t])
            .collect()
    } else {
        col_reduce::<2, _>(&ds.counts, Some(&keep_cells), |v| {
            [(v != 0.0) as u8 as f64, v as f64]
        })
    };
    let mut keep_genes: Vec<usize> = Vec::with_capacity(ds.n_genes());
    let mut removed_genes = Vec::new();
    match opts.min_cells {
        Some(mc) => {
            for (g, c) in gene_cols.iter().enumerate() {
                if (c[0] as u32) < mc {
                    removed_genes.push((g, Reason::MinCells));
                } else {
                    keep_genes.push(g);
                }
            }
        }
        None => keep_genes.extend(0..ds.n_genes()),
    }
    let all_genes = keep_genes.len() == ds.n_genes();
    let cells = ds.cells.select(&keep_cells);
    let genes = ds.genes.select(&keep_genes);
    let block = col_block_len(keep_cells.len());
    let mut states = Vec::new();
    let (counts_new, per_cell) = if all_genes {
        let per_cell: Vec<CellSums> = keep_cells
            .iter()
            .map(|&i| {
                (
                    m.total_counts[i],
                    m.n_genes_by_counts[i],
                    m.total_counts_mt[i],
                    m.total_counts_ribo[i],
                )
            })
            .collect();
        let counts = match (input, all_cells, fold) {
            (Cow::Owned(ds), _, Some(fold)) => {
                let (x, st) =
                    ds.counts
                        .retain_fold(&keep_cells, None, block, fold.init, |st, k, i, v| {
                            (fold.visit)(st, i, v, &per_cell[k])
                        })?;
                states = st;
                x
            }
            (Cow::Borrowed(ds), true, _) => ds.counts.clone(),
            (Cow::Borrowed(ds), false, _) => ds.counts.select_rows(&keep_cells)?,
            (Cow::Owned(ds), true, None) => ds.counts,
            (Cow::Owned(ds), false, None) => ds.counts.retain(&keep_cells, None)?,
        };
        (counts, per_cell)
    } else {
        let flags: Vec<u8> = keep_genes
            .iter()
            .map(|&g| m.mt[g] as u8 | (m.ribo[g] as u8) << 1)
            .collect();
        match (input, fold) {
            (Cow::Borrowed(ds), _) => subset(&ds.counts, &keep_cells, &keep_genes, &flags)?,
            (Cow::Owned(ds), None) => {
                ds.counts
                    .retain_with(&keep_cells, Some(&keep_genes), |i, v| {
                        row_sums(i, v, &flags)
                    })?
            }
            (Cow::Owned(ds), Some(fold)) => {
                let (x, st) = ds.counts.retain_fold(
                    &keep_cells,
                    Some(&keep_genes),
                    block,
                    || (Vec::with_capacity(block), (fold.init)()),
                    |st, _, i, v| {
                        let c = row_sums(i, v, &flags);
                        (fold.visit)(&mut st.1, i, v, &c);
                        st.0.push(c);
                    },
                )?;
                let mut per_cell = Vec::with_capacity(keep_cells.len());
                for (cells, state) in st {
                    per_cell.extend(cells);
                    states.push(state);
                }
                (x, per_cell)
            }
        }
    };
    let kept_cols: Vec<[f64; 2]> = keep_genes.iter().map(|&g| gene_cols[g]).collect();
    let kept = assemble(
        &per_cell,
        &kept_cols,
        keep_genes.iter().map(|&g| m.mt[g]).collect(),
        keep_genes.iter().map(|&g| m.ribo[g]).collect(),
    );
    let dataset = Dataset::new(counts_new, cells, genes)?;
    Ok((
        Filtered {
            dataset,
            genes_removed_min_cells: removed_genes.len(),
            removed_cells,
            removed_genes,
            cell_summary,
            mad_thresholds,
        },
        kept,
        states,
    ))
}

/// Rows `rows` (any order) and columns `cols` (strictly increasing, fewer than all) of `x`, in
/// one pass, with the per-cell sums of the new rows ([`row_sums`] with `flags`, indexed by the
/// new columns).
fn subset(
    x: &CsrMatrix,
    rows: &[usize],
    cols: &[usize],
    flags: &[u8],
) -> Result<(CsrMatrix, Vec<CellSums>)> {
    let mut map = vec![u32::MAX; x.n_cols()];
    for (new, &old) in cols.iter().enumerate() {
        map[old] = new as u32;
    }
    // Count kept entries per row, then fill in parallel over row blocks.
    let lens: Vec<usize> = rows
        .par_iter()
        .map(|&r| {
            x.row(r)
                .0
                .iter()
                .filter(|&&c| map[c as usize] != u32::MAX)
                .count()
        })
        .collect();
    let mut indptr = Vec::with_capacity(rows.len() + 1);
    indptr.push(0usize);
    for l in &lens {
        indptr.push(indptr[indptr.len() - 1] + l);
    }
    let nnz = *indptr.last().unwrap_or(&0);
    let mut indices = vec![0u32; nnz];
    let mut data = vec![0f32; nnz];
    let per_cell = {
        let mut slices: Vec<(&mut [u32], &mut [f32], usize)> = Vec::with_capacity(rows.len());
        let (mut ri, mut rv) = (&mut indices[..], &mut data[..]);
        for (k, &l) in lens.iter().enumerate() {
            let (a, b) = std::mem::take(&mut ri).split_at_mut(l);
            let (c, d) = std::mem::take(&mut rv).split_at_mut(l);
            slices.push((a, c, rows[k]));
            ri = b;
            rv = d;
        }
        slices
            .into_par_iter()
            .map(|(oi, ov, r)| {
                let (idx, val) = x.row(r);
                let mut w = 0;
                for (&c, &v) in idx.iter().zip(val) {
                    let m = map[c as usize];
                    if m != u32::MAX && w < oi.len() {
                        oi[w] = m;
                        ov[w] = v;
                        w += 1;
                    }
                }
                row_sums(oi, ov, flags)
            })
            .collect()
    };
    Ok((
        CsrMatrix::try_new(rows.len(), cols.len(), indptr, indices, data)?,
        per_cell,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{CellTable, GeneTable};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn toy() -> Dataset {
        // genes: MT-CO1, RPS3, RPL5, ACTB, GAPDH
        let dense = [
            [10.0, 5.0, 0.0, 20.0, 15.0],
            [0.0, 0.0, 0.0, 3.0, 0.0],
            [50.0, 1.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ];
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        for (i, row) in dense.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                if x != 0.0 {
                    r.push(i as u32);
                    c.push(j as u32);
                    v.push(x as f32);
                }
            }
        }
        let m = CsrMatrix::from_triplets(4, 5, &r, &c, &v).unwrap();
        Dataset::new(
            m,
            CellTable::new(s(&["a", "b", "c", "d"]), "s1", "ctl"),
            GeneTable::new(
                s(&["g1", "g2", "g3", "g4", "g5"]),
                s(&["MT-CO1", "RPS3", "RPL5", "ACTB", "GAPDH"]),
            ),
        )
        .unwrap()
    }

    #[test]
    fn filter_with_metrics_matches_filter() {
        let ds = toy();
        let opts = FilterOptions {
            min_genes: Some(2),
            min_cells: Some(1),
            ..Default::default()
        };
        let m = metrics(&ds, &opts.qc).unwrap();
        let a = filter(&ds, &opts).unwrap();
        let b = filter_with_metrics(&ds, &opts, &m).unwrap();
        assert_eq!(a.removed_cells, b.removed_cells);
        assert_eq!(a.removed_genes, b.removed_genes);
        assert_eq!(a.dataset.counts, b.dataset.counts);
        let other = metrics(&ds.select_cells(&[0]).unwrap(), &opts.qc).unwrap();
        assert!(filter_with_metrics(&ds, &opts, &other).is_err());
    }

    #[test]
    fn metrics_by_hand() {
        let mut ds = toy();
        let m = metrics(&ds, &QcOptions::default()).unwrap();
        assert_eq!(m.total_counts, vec![50.0, 3.0, 52.0, 0.0]);
        assert_eq!(m.n_genes_by_counts, vec![4, 1, 3, 0]);
        assert_eq!(m.pct_counts_mt[0], 20.0);
        assert!((m.pct_counts_ribo[2] - 200.0 / 52.0).abs() < 1e-12);
        assert!(m.pct_counts_mt[3].is_nan());
        assert_eq!(m.n_cells_by_counts, vec![2, 2, 1, 2, 1]);
        assert_eq!(m.gene_total_counts, vec![60.0, 6.0, 1.0, 23.0, 15.0]);
        assert_eq!(m.mean_counts[0], 15.0);
        assert_eq!(m.mt, vec![true, false, false, false, false]);
        assert_eq!(m.ribo, vec![false, true, true, false, false]);
        m.store_in(&mut ds).unwrap();
        assert_eq!(
            ds.cells.columns.get("total_counts"),
            Some(&Column::F64(vec![50.0, 3.0, 52.0, 0.0]))
        );
        assert!(ds.genes.columns.get("n_cells_by_counts").is_some());
    }

    #[test]
    fn fixed_filters_then_genes() {
        let ds = toy();
        let opts = FilterOptions {
            min_genes: Some(2),
            max_pct_mito: Some(50.0),
            min_cells: Some(2),
            ..Default::default()
        };
        let f = filter(&ds, &opts).unwrap();
        // b and d have < 2 genes; c has 96% mito.
        assert_eq!(
            f.removed_cells,
            vec![
                (1, Reason::MinGenes),
                (2, Reason::MaxPctMito),
                (3, Reason::MinGenes)
            ]
        );
        assert_eq!(
            f.cell_summary,
            vec![(Reason::MinGenes, 2), (Reason::MaxPctMito, 1)]
        );
        // only cell a remains: every gene is in fewer than 2 cells
        assert_eq!(f.dataset.n_cells(), 1);
        assert_eq!(f.dataset.n_genes(), 0);
        assert_eq!(f.genes_removed_min_cells, 5);

        let f = filter(
            &ds,
            &FilterOptions {
                min_cells: Some(1),
                min_counts: Some(1.0),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(f.dataset.n_cells(), 3);
        assert_eq!(
            f.dataset.genes.symbols,
            s(&["MT-CO1", "RPS3", "RPL5", "ACTB", "GAPDH"])
        );
        let f = filter(
            &ds,
            &FilterOptions {
                min_cells: Some(2),
                min_counts: Some(1.0),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(f.dataset.genes.symbols, s(&["MT-CO1", "RPS3", "ACTB"]));
        assert_eq!(
            f.dataset.counts.to_dense().row(2).to_vec(),
            vec![50.0, 1.0, 0.0]
        );
        assert!(filter(
            &ds,
            &FilterOptions {
                min_genes: Some(3),
                max_genes: Some(2),
                ..Default::default()
            }
        )
        .is_err());
    }

    #[test]
    fn median_and_mad_like_r() {
        // R: median(c(1,2,3,4,100)) = 3; mad = 1.4826 * median(c(2,1,0,1,97)) = 1.4826
        assert_eq!(median_mad(&[1.0, 2.0, 3.0, 4.0, 100.0]), (3.0, 1.4826));
        // even count: median(c(1,2,4,10)) = 3, deviations 2,1,1,7 -> 1.5
        let (m, s) = median_mad(&[10.0, 1.0, 2.0, 4.0]);
        assert_eq!(m, 3.0);
        assert!((s - 1.5 * 1.4826).abs() < 1e-12);
    }

    #[test]
    fn mad_outliers_per_sample() {
        // Two samples with different depth: a cell that is low only relative to its own
        // sample is flagged per sample, not globally.
        let n = 40;
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        let mut samples = Vec::new();
        for i in 0..n {
            let deep = i >= n / 2;
            let base: f32 = if deep { 1000.0 } else { 100.0 };
            let scale = if i == n - 1 {
                0.2
            } else {
                1.0 + (i % 5) as f32 * 0.05
            };
            for g in 0..10u32 {
                r.push(i as u32);
                c.push(g);
                v.push((base * scale / 10.0).round());
            }
            samples.push(if deep { "deep" } else { "shallow" }.to_string());
        }
        let m = CsrMatrix::from_triplets(n, 10, &r, &c, &v).unwrap();
        let mut cells = CellTable::new((0..n).map(|i| format!("c{i}")).collect(), "x", "ctl");
        cells.sample = samples;
        let ds = Dataset::new(m, cells, GeneTable::new(s(&["a"; 10]), s(&["A"; 10]))).unwrap();
        let opts = FilterOptions {
            mad: Some(MadOptions::default()),
            ..Default::default()
        };
        let f = filter(&ds, &opts).unwrap();
        assert_eq!(f.removed_cells, vec![(n - 1, Reason::MadLowCounts)]);
        assert_eq!(f.mad_thresholds.len(), 2);
        // Globally the same cell (200 counts) is well inside the range of the pooled data.
        let opts = FilterOptions {
            mad: Some(MadOptions {
                per_sample: false,
                ..Default::default()
            }),
            ..Default::default()
        };
        let f = filter(&ds, &opts).unwrap();
        assert!(f.removed_cells.is_empty());
    }

    /// Every number of `m`, as bits (NaN compares equal to NaN).
    fn bits(m: &QcMetrics) -> Vec<Vec<u64>> {
        let f = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
        let u = |v: &[u32]| v.iter().map(|&x| x as u64).collect::<Vec<u64>>();
        let b = |v: &[bool]| v.iter().map(|&x| x as u64).collect::<Vec<u64>>();
        vec![
            f(&m.total_counts),
            u(&m.n_genes_by_counts),
            f(&m.total_counts_mt),
            f(&m.pct_counts_mt),
            f(&m.total_counts_ribo),
            f(&m.pct_counts_ribo),
            u(&m.n_cells_by_counts),
            f(&m.gene_total_counts),
            f(&m.mean_counts),
            f(&m.pct_dropout_by_counts),
            b(&m.mt),
            b(&m.ribo),
        ]
    }

    #[test]
    fn kept_metrics_equal_metrics_of_the_filtered_data() {
        let sim = crate::simulate::simulate(&crate::simulate::SimulateOptions {
            n_cells: 300,
            n_genes: 800,
            n_markers: 10,
            library_size: 1500.0,
            ..Default::default()
        })
        .unwrap();
        let mut ds = sim.dataset;
        for g in 20..30 {
            ds.genes.symbols[g] = format!("RPL{g}");
        }
        // Non-integer values, so that the order of the sums matters; one empty cell.
        let (n_rows, n_cols, indptr, indices, mut data) = ds.counts.clone().into_parts();
        for (k, v) in data.iter_mut().enumerate() {
            if k % 7 == 0 {
                *v *= 0.37;
            }
        }
        for v in &mut data[indptr[5]..indptr[6]] {
            *v = 0.0;
        }
        ds.counts = CsrMatrix::try_new(n_rows, n_cols, indptr, indices, data).unwrap();
        let qc = QcOptions::default();
        let m = metrics(&ds, &qc).unwrap();
        let cases = [
            FilterOptions::default(),
            FilterOptions {
                min_genes: Some(60),
                ..Default::default()
            },
            FilterOptions {
                min_cells: Some(40),
                ..Default::default()
            },
            FilterOptions {
                min_genes: Some(60),
                min_cells: Some(40),
                max_pct_mito: Some(30.0),
                ..Default::default()
            },
        ];
        let mut kinds = std::collections::HashSet::new();
        for opts in &cases {
            let (f, kept) = filter_with_kept_metrics(&ds, opts, &m).unwrap();
            kinds.insert((f.removed_cells.is_empty(), f.removed_genes.is_empty()));
            let again = metrics(&f.dataset, &qc).unwrap();
            assert_eq!(bits(&kept), bits(&again), "{opts:?}");
            let plain = filter(&ds, opts).unwrap();
            assert_eq!(plain.dataset.counts, f.dataset.counts);
            assert_eq!(plain.removed_cells, f.removed_cells);
            assert_eq!(plain.removed_genes, f.removed_genes);
            let (owned, kept_owned) = filter_owned_with_kept_metrics(ds.clone(), opts, &m).unwrap();
            assert_eq!(owned.dataset.counts, f.dataset.counts, "{opts:?}");
            assert_eq!(owned.dataset.cells.barcodes, f.dataset.cells.barcodes);
            assert_eq!(owned.dataset.genes.ids, f.dataset.genes.ids);
            assert_eq!(owned.removed_cells, f.removed_cells);
            assert_eq!(bits(&kept_owned), bits(&kept), "{opts:?}");
        }
        // the four cases: nothing removed, cells only, genes only, both
        assert_eq!(kinds.len(), 4, "{kinds:?}");
    }
}
