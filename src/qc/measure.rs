//! The QC metrics (Scanpy's `calculate_qc_metrics`): the gene sets, the per-cell and per-gene
//! values, and the one pass over the counts that computes them (the block accumulator of
//! [`super::parts`] fed the whole matrix).

use super::parts::{GeneSums, QcSums};
use super::sums::{gene_flags, CellSums};
use crate::dataset::{Column, Dataset};
use crate::error::{Error, Result};
use crate::sparse::with_counts;

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

/// The QC metrics from the per-cell sums and the per-gene sums over the same cells.
pub(crate) fn assemble(
    per_cell: &[CellSums],
    genes: &GeneSums,
    mt: Vec<bool>,
    ribo: Vec<bool>,
) -> QcMetrics {
    let n_cells = per_cell.len() as f64;
    let pct = |part: f64, tot: f64| part / tot * 100.0;
    QcMetrics {
        total_counts: per_cell.iter().map(|c| c.0).collect(),
        n_genes_by_counts: per_cell.iter().map(|c| c.1).collect(),
        total_counts_mt: per_cell.iter().map(|c| c.2).collect(),
        pct_counts_mt: per_cell.iter().map(|c| pct(c.2, c.0)).collect(),
        total_counts_ribo: per_cell.iter().map(|c| c.3).collect(),
        pct_counts_ribo: per_cell.iter().map(|c| pct(c.3, c.0)).collect(),
        n_cells_by_counts: genes.detected.clone(),
        gene_total_counts: genes.totals.clone(),
        mean_counts: genes.totals.iter().map(|t| t / n_cells).collect(),
        pct_dropout_by_counts: genes
            .detected
            .iter()
            .map(|&d| (1.0 - d as f64 / n_cells) * 100.0)
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
    // One pass: the fixed row blocks' sums, added in block order.
    let flags = gene_flags(&mt, &ribo);
    Ok(with_counts!(x, m => QcSums::of_block(m, &flags)).finish(mt, ribo))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qc::test_data::toy;

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
}
