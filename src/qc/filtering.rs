//! Filtering a dataset: the cell filter's verdict, then the gene filter on the kept cells, the
//! new count matrix (copied, or compacted in place for an owned dataset) and the QC metrics of
//! what is kept.

use super::cell_filter::{filter_cells_by_metrics, CellFilter, MadOptions, MadThresholds, Reason};
use super::measure::{assemble, metrics, QcMetrics, QcOptions};
use super::parts::GeneSums;
use super::sums::{col_block_len, row_sums, CellSums};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::sparse::{with_counts, ColIndex, Counts, CsrMatrix, StoredValue};
use rayon::prelude::*;
use std::borrow::Cow;

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
    Ok(filter_by::<(), NoVisit>(Cow::Borrowed(ds), opts, &m, None)?.0)
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
    let (f, kept, _) = filter_by::<(), NoVisit>(Cow::Borrowed(ds), opts, m, None)?;
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
    let (f, kept, _) = filter_by::<(), NoVisit>(Cow::Owned(ds), opts, m, None)?;
    Ok((f, kept))
}

/// Work done on each kept cell while an owned dataset is filtered in place
/// ([`filter_owned_fold`]): blocks of [`col_block_len`] kept cells each start from `init()`,
/// and `visit(state, indices, values, sums)` is called on every kept cell in order, with its
/// compacted row and its QC sums over the kept genes.
pub(crate) struct Fold<'a, S, F: Visit<S>> {
    pub init: &'a (dyn Fn() -> S + Sync),
    pub visit: &'a F,
}

/// `visit(state, indices, values, sums)` of a [`Fold`], for rows of either layout of
/// [`crate::sparse::Counts`].
pub(crate) trait Visit<S>: Sync {
    /// Visits one kept cell: its compacted row and its QC sums over the kept genes.
    fn visit<V: StoredValue, I: ColIndex>(
        &self,
        st: &mut S,
        idx: &[I],
        vals: &[V],
        sums: &CellSums,
    );
}

/// The visit of no fold.
pub(crate) struct NoVisit;

impl Visit<()> for NoVisit {
    fn visit<V: StoredValue, I: ColIndex>(&self, _: &mut (), _: &[I], _: &[V], _: &CellSums) {}
}

/// [`filter_owned_with_kept_metrics`] that also folds `fold` over the kept cells while it
/// compacts them (one pass even when nothing is removed), returning the block states in
/// order: a later per-cell pass (as the normalization) can ride on the filter's.
pub(crate) fn filter_owned_fold<S: Send, F: Visit<S>>(
    ds: Dataset,
    opts: &FilterOptions,
    m: &QcMetrics,
    fold: Fold<'_, S, F>,
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
fn filter_by<S: Send, F: Visit<S>>(
    input: Cow<'_, Dataset>,
    opts: &FilterOptions,
    m: &QcMetrics,
    fold: Option<Fold<'_, S, F>>,
) -> Result<(Filtered, QcMetrics, Vec<S>)> {
    let ds: &Dataset = &input;
    let CellFilter {
        keep_cells,
        removed_cells,
        cell_summary,
        mad_thresholds,
    } = filter_cells_by_metrics(m, &ds.cells.sample, opts)?;
    let all_cells = keep_cells.len() == ds.n_cells();

    // Per gene over the kept cells: non-zeros and total, in the fixed row blocks of the kept
    // cells (what `metrics` of the filtered matrix sums). With every cell kept these are `m`'s.
    let gene_sums = if all_cells {
        GeneSums {
            detected: m.n_cells_by_counts.clone(),
            totals: m.gene_total_counts.clone(),
        }
    } else {
        with_counts!(&ds.counts, x => GeneSums::of_rows(x, Some(&keep_cells)))
    };
    let mut keep_genes: Vec<usize> = Vec::with_capacity(ds.n_genes());
    let mut removed_genes = Vec::new();
    match opts.min_cells {
        Some(mc) => {
            for (g, &c) in gene_sums.detected.iter().enumerate() {
                if c < mc {
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
    let plan = Plan {
        keep_cells: &keep_cells,
        keep_genes: (!all_genes).then_some(&keep_genes[..]),
        all_cells,
        block: col_block_len(keep_cells.len()),
        flags: keep_genes
            .iter()
            .map(|&g| m.mt[g] as u8 | (m.ribo[g] as u8) << 1)
            .collect(),
        m,
    };
    let mut states = Vec::new();
    let (counts_new, per_cell) = match input {
        Cow::Borrowed(ds) => with_counts!(&ds.counts, x => {
            let (y, per_cell) = plan.copy(x)?;
            (Counts::from_layout(y), per_cell)
        }),
        Cow::Owned(ds) => with_counts!(ds.counts, x => {
            let (y, per_cell, st) = plan.in_place(x, fold)?;
            states = st;
            (Counts::from_layout(y), per_cell)
        }),
    };
    let kept_cols = GeneSums {
        detected: keep_genes.iter().map(|&g| gene_sums.detected[g]).collect(),
        totals: keep_genes.iter().map(|&g| gene_sums.totals[g]).collect(),
    };
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

/// The kept matrix, the kept cells' QC sums and the fold's block states.
type Kept<V, I, S> = (CsrMatrix<V, I>, Vec<CellSums>, Vec<S>);

/// The kept cells and genes of a filter, and how to make the kept matrix of either layout.
struct Plan<'a> {
    keep_cells: &'a [usize],
    /// `None`: every gene is kept.
    keep_genes: Option<&'a [usize]>,
    all_cells: bool,
    /// Kept cells per fold block.
    block: usize,
    /// Per kept gene: bit 0 mitochondrial, bit 1 ribosomal.
    flags: Vec<u8>,
    m: &'a QcMetrics,
}

impl Plan<'_> {
    /// The per-cell sums of the kept cells when every gene is kept (those of the metrics).
    fn kept_sums(&self) -> Vec<CellSums> {
        let m = self.m;
        self.keep_cells
            .iter()
            .map(|&i| {
                (
                    m.total_counts[i],
                    m.n_genes_by_counts[i],
                    m.total_counts_mt[i],
                    m.total_counts_ribo[i],
                )
            })
            .collect()
    }

    /// The kept part of a borrowed matrix (copied).
    fn copy<V: StoredValue, I: ColIndex>(
        &self,
        x: &CsrMatrix<V, I>,
    ) -> Result<(CsrMatrix<V, I>, Vec<CellSums>)> {
        match self.keep_genes {
            None if self.all_cells => Ok((x.clone(), self.kept_sums())),
            None => Ok((x.select_rows(self.keep_cells)?, self.kept_sums())),
            Some(genes) => subset(x, self.keep_cells, genes, &self.flags),
        }
    }

    /// The kept part of an owned matrix, compacted in its own buffers, with `fold` over the
    /// kept cells.
    fn in_place<V: StoredValue, I: ColIndex, S: Send, F: Visit<S>>(
        &self,
        x: CsrMatrix<V, I>,
        fold: Option<Fold<'_, S, F>>,
    ) -> Result<Kept<V, I, S>> {
        let (cells, block, flags) = (self.keep_cells, self.block, &self.flags);
        match (self.keep_genes, fold) {
            (None, Some(fold)) => {
                let per_cell = self.kept_sums();
                let (y, st) = x.retain_fold(cells, None, block, fold.init, |st, k, i, v| {
                    fold.visit.visit(st, i, v, &per_cell[k])
                })?;
                Ok((y, per_cell, st))
            }
            (None, None) if self.all_cells => Ok((x, self.kept_sums(), Vec::new())),
            (None, None) => Ok((x.retain(cells, None)?, self.kept_sums(), Vec::new())),
            (Some(genes), None) => {
                let (y, per_cell) =
                    x.retain_with(cells, Some(genes), |i, v| row_sums(i, v, flags))?;
                Ok((y, per_cell, Vec::new()))
            }
            (Some(genes), Some(fold)) => {
                let (y, st) = x.retain_fold(
                    cells,
                    Some(genes),
                    block,
                    || (Vec::with_capacity(block), (fold.init)()),
                    |st, _, i, v| {
                        let c = row_sums(i, v, flags);
                        fold.visit.visit(&mut st.1, i, v, &c);
                        st.0.push(c);
                    },
                )?;
                let mut per_cell = Vec::with_capacity(cells.len());
                let mut states = Vec::with_capacity(st.len());
                for (c, state) in st {
                    per_cell.extend(c);
                    states.push(state);
                }
                Ok((y, per_cell, states))
            }
        }
    }
}

/// Rows `rows` (any order) and columns `cols` (strictly increasing) of `x`, in one pass, with
/// the per-cell sums of the new rows ([`row_sums`] with `flags`, indexed by the new columns):
/// the filter's copy of the kept cells and genes.
fn subset<V: StoredValue, I: ColIndex>(
    x: &CsrMatrix<V, I>,
    rows: &[usize],
    cols: &[usize],
    flags: &[u8],
) -> Result<(CsrMatrix<V, I>, Vec<CellSums>)> {
    // What makes the result canonical without checking it afterwards.
    let increasing = cols.windows(2).all(|w| w[0] < w[1]);
    if !increasing || cols.last().is_some_and(|&c| c >= x.n_cols()) {
        return Err(Error::data(
            "subset",
            format!(
                "columns must be strictly increasing and below {}",
                x.n_cols()
            ),
        ));
    }
    if let Some(&r) = rows.iter().find(|&&r| r >= x.n_rows()) {
        return Err(Error::data(
            "subset",
            format!("row {r} is past the {} rows", x.n_rows()),
        ));
    }
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
                .filter(|&&c| map[c.ix()] != u32::MAX)
                .count()
        })
        .collect();
    let mut indptr = Vec::with_capacity(rows.len() + 1);
    indptr.push(0usize);
    for l in &lens {
        indptr.push(indptr[indptr.len() - 1] + l);
    }
    let nnz = *indptr.last().unwrap_or(&0);
    // Every entry is written below (row `k` gets exactly `lens[k]` values).
    let mut indices = vec![I::default(); nnz];
    let mut data = vec![V::default(); nnz];
    let per_cell = {
        let mut slices: Vec<(&mut [I], &mut [V], usize)> = Vec::with_capacity(rows.len());
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
                    let m = map[c.ix()];
                    if m != u32::MAX && w < oi.len() {
                        oi[w] = I::from_ix(m as usize);
                        ov[w] = v;
                        w += 1;
                    }
                }
                row_sums(oi, ov, flags)
            })
            .collect()
    };
    // Canonical: the rows of a canonical matrix, each keeping its entries in order under a
    // strictly increasing renumbering of the columns.
    Ok((
        CsrMatrix::from_canonical_parts(rows.len(), cols.len(), indptr, indices, data),
        per_cell,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{CellTable, GeneTable};
    use crate::qc::test_data::{s, toy};

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
        let (n_rows, n_cols, indptr, indices, mut data) = ds.counts.clone().into_csr().into_parts();
        for (k, v) in data.iter_mut().enumerate() {
            if k % 7 == 0 {
                *v *= 0.37;
            }
        }
        for v in &mut data[indptr[5]..indptr[6]] {
            *v = 0.0;
        }
        ds.counts = CsrMatrix::try_new(n_rows, n_cols, indptr, indices, data)
            .unwrap()
            .into();
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
