//! The block accumulators of the QC step: what a block of cells contributes to the QC metrics
//! and to the gene filter, and how the parts of consecutive blocks add up.
//!
//! [`metrics`](super::metrics) is [`QcSums::of_block`] of the whole matrix, and the gene filter
//! of [`filter`](super::filter) counts the kept cells with [`GeneSums::of_rows`]; the streamed
//! analysis (`crate::stream`) feeds the same accumulators the blocks of cells it reads
//! ([`QcSums::of_block`] of each block, [`QcSums::add`] in block order, [`detected_in`] for the
//! kept cells of a block) and applies the same cell filter to the result
//! ([`FilterOptions::passes_fixed`], [`filter_cells_by_metrics`](super::filter_cells_by_metrics)).
//!
//! Every per-cell sum is [`row_sums`](super::sums) of the cell's row, whatever the blocks, so
//! per-cell metrics agree bit for bit on any blocking. Per-gene detection counts are integers
//! and agree on any blocking. Per-gene totals are `f64` sums taken in the blocks' order: the
//! same numbers for integer counts (exact below 2^53), and to rounding for non-integer counts
//! when the blocks differ (the streamed analysis's blocks are those it reads, not the fixed row
//! blocks of the whole matrix).

use super::measure::{assemble, QcMetrics};
use super::sums::{col_block_len, row_sums_with, CellSums};
use super::FilterOptions;
use crate::error::{Error, Result};
use crate::sparse::{ColIndex, CsrMatrix, StoredValue};
use rayon::prelude::*;
use std::ops::Range;

/// Per gene over some cells: the cells where its count is non-zero and its total count (`f64`,
/// summed in cell order within a block, blocks added in order).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneSums {
    /// Per gene: cells with a non-zero count.
    pub detected: Vec<u32>,
    /// Per gene: sum of the counts.
    pub totals: Vec<f64>,
}

impl GeneSums {
    /// Zero sums over `n_genes` genes.
    pub fn new(n_genes: usize) -> GeneSums {
        GeneSums {
            detected: vec![0; n_genes],
            totals: vec![0.0; n_genes],
        }
    }

    /// One stored value `v` of gene `c`.
    #[inline(always)]
    fn add_value(&mut self, c: usize, v: f32) {
        if let (Some(d), Some(t)) = (self.detected.get_mut(c), self.totals.get_mut(c)) {
            *d += (v != 0.0) as u32;
            *t += v as f64;
        }
    }

    /// The sums of `x` over `rows` (all rows when `None`), in the fixed row blocks of
    /// [`col_block_len`] (summed in parallel, added in block order): the order of every
    /// per-gene sum of the QC step, whatever the number of threads.
    pub fn of_rows<V: StoredValue, I: ColIndex>(
        x: &CsrMatrix<V, I>,
        rows: Option<&[usize]>,
    ) -> GeneSums {
        let n = rows.map_or(x.n_rows(), |r| r.len());
        let block = col_block_len(n);
        let parts: Vec<GeneSums> = (0..n.div_ceil(block))
            .into_par_iter()
            .map(|b| {
                let mut part = GeneSums::new(x.n_cols());
                for i in b * block..((b + 1) * block).min(n) {
                    let (idx, val) = x.row(rows.map_or(i, |r| r[i]));
                    for (&c, &v) in idx.iter().zip(val) {
                        part.add_value(c.ix(), v.to_f32());
                    }
                }
                part
            })
            .collect();
        let mut out = GeneSums::new(x.n_cols());
        for p in parts {
            out.add_same_len(p);
        }
        out
    }

    /// Adds the sums of the next block of cells; an error when they are over another number
    /// of genes.
    pub fn add(&mut self, next: GeneSums) -> Result<()> {
        let n = self.detected.len();
        if next.detected.len() != n || next.totals.len() != n || self.totals.len() != n {
            return Err(Error::data(
                "QC sums",
                format!(
                    "sums over {} genes added to sums over {n}",
                    next.detected.len()
                ),
            ));
        }
        self.add_same_len(next);
        Ok(())
    }

    fn add_same_len(&mut self, next: GeneSums) {
        for (a, b) in self.detected.iter_mut().zip(next.detected) {
            *a += b;
        }
        for (a, b) in self.totals.iter_mut().zip(next.totals) {
            *a += b;
        }
    }
}

/// What a block of cells contributes to the QC metrics: the per-cell sums of its cells in order
/// (total, genes detected, mitochondrial and ribosomal totals) and the per-gene sums over them.
#[derive(Debug, Clone, PartialEq)]
pub struct QcSums {
    /// Per cell, in order: `(total, non-zeros, mito total, ribo total)`.
    pub per_cell: Vec<CellSums>,
    /// Per gene over the cells.
    pub genes: GeneSums,
}

impl QcSums {
    /// Zero sums (no cells) over `n_genes` genes.
    pub fn new(n_genes: usize) -> QcSums {
        QcSums {
            per_cell: Vec::new(),
            genes: GeneSums::new(n_genes),
        }
    }

    /// Adds the cells `rows` of `x` in order, one loop over their values; `flags` per gene: bit
    /// 0 mitochondrial, bit 1 ribosomal (`gene_flags`).
    pub(crate) fn add_rows<V: StoredValue, I: ColIndex>(
        &mut self,
        x: &CsrMatrix<V, I>,
        rows: Range<usize>,
        flags: &[u8],
    ) {
        self.per_cell.reserve(rows.len());
        for r in rows {
            let (idx, val) = x.row(r);
            let genes = &mut self.genes;
            self.per_cell
                .push(row_sums_with(idx, val, flags, |c, v| genes.add_value(c, v)));
        }
    }

    /// The sums of the cells of `x` (a whole matrix or a block of cells read from a file): its
    /// fixed row blocks ([`col_block_len`]) summed in parallel and added in block order.
    pub(crate) fn of_block<V: StoredValue, I: ColIndex>(
        x: &CsrMatrix<V, I>,
        flags: &[u8],
    ) -> QcSums {
        let n = x.n_rows();
        let block = col_block_len(n);
        let parts: Vec<QcSums> = (0..n.div_ceil(block))
            .into_par_iter()
            .map(|b| {
                let mut part = QcSums::new(x.n_cols());
                part.add_rows(x, b * block..((b + 1) * block).min(n), flags);
                part
            })
            .collect();
        let mut out = QcSums::new(x.n_cols());
        out.per_cell.reserve(n);
        for p in parts {
            out.per_cell.extend(p.per_cell);
            out.genes.add_same_len(p.genes);
        }
        out
    }

    /// Adds the sums of the next block of cells (blocks in cell order).
    pub fn add(&mut self, next: QcSums) -> Result<()> {
        self.genes.add(next.genes)?;
        self.per_cell.extend(next.per_cell);
        Ok(())
    }

    /// The QC metrics of all the cells added, with the gene sets `mt` and `ribo`.
    pub fn finish(&self, mt: Vec<bool>, ribo: Vec<bool>) -> QcMetrics {
        assemble(&self.per_cell, &self.genes, mt, ribo)
    }
}

/// Per gene of `x`, the cells of `rows` with a non-zero count (the gene filter's count over
/// the kept cells of a block), counted in parallel over runs of rows (whole numbers: the same
/// counts in any order).
pub fn detected_in<V: StoredValue, I: ColIndex>(x: &CsrMatrix<V, I>, rows: &[usize]) -> Vec<u32> {
    const ROWS: usize = 2048;
    let n = x.n_cols();
    let count = |rows: &[usize]| {
        let mut g = vec![0u32; n];
        for &r in rows {
            let (idx, val) = x.row(r);
            for (&c, &v) in idx.iter().zip(val) {
                if let Some(a) = g.get_mut(c.ix()) {
                    *a += (v.to_f32() != 0.0) as u32;
                }
            }
        }
        g
    };
    rows.par_chunks(ROWS)
        .map(count)
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
            a
        })
        .unwrap_or_else(|| vec![0; n])
}

impl FilterOptions {
    /// Whether a cell with the sums `c` passes the fixed bounds (`min_genes`, `max_genes`,
    /// `min_counts`, `max_counts`, `max_pct_mito`), as in [`filter`](super::filter). The MAD
    /// filter, which needs every cell, is not checked.
    pub(crate) fn passes_fixed(&self, c: &CellSums) -> bool {
        !self
            .fixed_fails(c.0, c.1, c.2 / c.0 * 100.0)
            .contains(&true)
    }

    /// Which fixed bounds a cell with total `t`, `g` genes detected and `pct_mt` % mito fails,
    /// in the order of [`Reason`](super::Reason).
    pub(super) fn fixed_fails(&self, t: f64, g: u32, pct_mt: f64) -> [bool; 5] {
        [
            self.min_genes.is_some_and(|b| g < b),
            self.max_genes.is_some_and(|b| g > b),
            self.min_counts.is_some_and(|b| t < b),
            self.max_counts.is_some_and(|b| t > b),
            self.max_pct_mito.is_some_and(|b| pct_mt > b),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qc::sums::gene_flags;
    use crate::qc::test_data::toy;

    #[test]
    fn blocks_added_in_order_give_the_metrics() {
        let ds = toy();
        let x = &*ds.counts.to_csr();
        let m = crate::qc::metrics(&ds, &Default::default()).unwrap();
        let flags = gene_flags(&m.mt, &m.ribo);
        // one block of every cell, and blocks of 1 and 3 cells added in order
        for cut in [4, 1, 3] {
            let mut acc = QcSums::new(x.n_cols());
            let mut a = 0;
            while a < x.n_rows() {
                let b = (a + cut).min(x.n_rows());
                let block = x.select_rows(&(a..b).collect::<Vec<_>>()).unwrap();
                acc.add(QcSums::of_block(&block, &flags)).unwrap();
                a = b;
            }
            let got = acc.finish(m.mt.clone(), m.ribo.clone());
            assert_eq!(format!("{got:?}"), format!("{m:?}"), "blocks of {cut}");
        }
        assert!(QcSums::new(4).add(QcSums::new(5)).is_err());
    }

    #[test]
    fn gene_sums_and_detection_over_kept_cells() {
        let x = toy().counts.into_csr();
        let s = GeneSums::of_rows(&x, Some(&[0, 2]));
        assert_eq!(s.detected, vec![2, 2, 1, 1, 1]);
        assert_eq!(s.totals, vec![60.0, 6.0, 1.0, 20.0, 15.0]);
        assert_eq!(detected_in(&x, &[0, 2]), s.detected);
        assert_eq!(GeneSums::of_rows(&x, None).detected, vec![2, 2, 1, 2, 1]);
        // many rows: counted in parallel runs, the same counts as gene by gene
        let rows: Vec<Vec<f32>> = (0..5000)
            .map(|i| (0..7).map(|g| ((i * 7 + g * 3) % 5) as f32).collect())
            .collect();
        let big = crate::sparse::CsrMatrix::from_dense_rows(&rows);
        let picked: Vec<usize> = (0..5000).filter(|i| i % 3 != 1).collect();
        let want: Vec<u32> = (0..7)
            .map(|g| picked.iter().filter(|&&i| rows[i][g] != 0.0).count() as u32)
            .collect();
        assert_eq!(detected_in(&big, &picked), want);
        assert_eq!(detected_in(&big, &[]), vec![0; 7]);
    }

    #[test]
    fn fixed_bounds() {
        let o = FilterOptions {
            min_genes: Some(2),
            max_pct_mito: Some(50.0),
            ..Default::default()
        };
        assert!(o.passes_fixed(&(50.0, 4, 10.0, 5.0)));
        assert!(!o.passes_fixed(&(3.0, 1, 0.0, 0.0)));
        assert!(!o.passes_fixed(&(52.0, 3, 50.0, 2.0)));
        // no counts: NaN % mito is not above the bound
        assert!(FilterOptions::default().passes_fixed(&(0.0, 0, 0.0, 0.0)));
    }
}
