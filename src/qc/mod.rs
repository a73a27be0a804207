//! Quality control: per-cell and per-gene metrics, fixed and robust (MAD) cell filters, the gene
//! filter.
//!
//! The metrics are Scanpy's `sc.pp.calculate_qc_metrics(adata, qc_vars=["mt", "ribo"])` with
//! the same column names; the filters are Scanpy's `filter_cells` / `filter_genes` in the order
//! of Scanpy's clustering tutorial (cell filters first, then the gene filter on the remaining
//! cells), plus the robust outlier filter of scuttle's `isOutlier` / `perCellQCFilters` (OSCA).
//!
//! Sub-modules: `sums` (per-cell and per-column sums in a fixed order), `parts` (the step's
//! block accumulators: what a block of cells adds to the metrics and to the gene filter, used by
//! the in-memory step and by the streamed analysis alike), `measure` (the metrics),
//! `cell_filter` (the fixed and MAD cell filters) and `filtering` (cells then genes, the new
//! matrix and the kept cells' metrics).

mod cell_filter;
mod filtering;
mod measure;
mod parts;
mod sums;

pub use cell_filter::{filter_cells_by_metrics, CellFilter, MadOptions, MadThresholds, Reason};
pub use filtering::{
    filter, filter_owned_with_kept_metrics, filter_with_kept_metrics, filter_with_metrics,
    FilterOptions, Filtered,
};
pub(crate) use filtering::{filter_owned_fold, Fold, Visit};
pub use measure::{metrics, QcMetrics, QcOptions};
pub(crate) use parts::{detected_in, GeneSums, QcSums};
pub(crate) use sums::{col_block_len, col_reduce, gene_flags, CellSums};

/// A small dataset for the unit tests of the sub-modules.
#[cfg(test)]
mod test_data {
    use crate::dataset::{CellTable, Dataset, GeneTable};
    use crate::sparse::CsrMatrix;

    pub(super) fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    pub(super) fn toy() -> Dataset {
        // genes: MT-CO1, RPS3, RPL5, ACTB, GAPDH
        let m = CsrMatrix::from_dense_rows(&[
            [10.0, 5.0, 0.0, 20.0, 15.0],
            [0.0, 0.0, 0.0, 3.0, 0.0],
            [50.0, 1.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]);
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
}
