//! The log-normalized matrix without storing it.
//!
//! Scanpy's `normalize_total` followed by `log1p` gives `y_ij = ln(1 + x_ij / s_i)` for the
//! counts `x` and the size factors `s` (the cell's total over the target sum). [`LogCounts`]
//! holds only a borrow of the counts and the size factors and computes `y` when read, with the
//! same `f32` arithmetic as [`crate::normalize::normalize_total_log1p`], so every value is the
//! one the stored matrix would hold, bit for bit. The analysis steps that read the values
//! (markers, the PCA input, the `.h5ad` writer) take any [`MatrixValues`]: a stored
//! [`CsrMatrix`] or a [`LogCounts`].
//!
//! This keeps one copy of the data in memory (the counts, which differential expression and
//! pseudobulk need anyway) instead of two; libscran's delayed operations on count matrices
//! follow the same idea.

use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use rayon::prelude::*;
use std::ops::Range;

/// Read access to a matrix whose rows, columns and stored entries are those of a
/// [`CsrMatrix`] (the pattern) and whose values are the stored ones or computed from them.
pub trait MatrixValues: Sync + std::fmt::Debug {
    /// The stored matrix: shape, row pointers, column indices and stored values.
    fn pattern(&self) -> &CsrMatrix;
    /// Appends to `out` the values of the stored entries `range` (positions in
    /// `pattern().data()`), which all belong to row `row`.
    fn values_into(&self, row: usize, range: Range<usize>, out: &mut Vec<f32>);
}

impl MatrixValues for CsrMatrix {
    fn pattern(&self) -> &CsrMatrix {
        self
    }
    #[inline]
    fn values_into(&self, _row: usize, range: Range<usize>, out: &mut Vec<f32>) {
        out.extend_from_slice(&self.data()[range]);
    }
}

/// Counts up to this value (exclusive) have their log value looked up in a per-cell table.
const TABLE: usize = 32;

/// `ln(1 + c / s)` in `f32`, with a zero size factor taken as 1 (an empty cell is left
/// unscaled): the value of [`crate::normalize::normalize_total_log1p`].
#[inline]
pub(crate) fn log_value(c: f32, s: f32) -> f32 {
    let s = if s == 0.0 { 1.0 } else { s };
    (c / s).ln_1p()
}

/// The log values `ln(1 + c / s_i)` of every cell's integer counts below 32, looked up
/// (128 bytes per cell, filled when made), and the size factors for the other values: what
/// [`LogCounts`] and the streamed markers read, bit for bit [`log_value`].
#[derive(Debug, Clone)]
pub(crate) struct LogTable<'a> {
    size_factors: &'a [f32],
    table: Vec<[f32; TABLE]>,
}

impl<'a> LogTable<'a> {
    /// Bytes per cell of the table.
    pub(crate) const BYTES_PER_CELL: u64 = 4 * TABLE as u64;

    /// The table of cells with these size factors.
    pub(crate) fn new(size_factors: &'a [f32]) -> Self {
        let table = size_factors
            .par_iter()
            .map(|&s| std::array::from_fn(|c| log_value(c as f32, s)))
            .collect();
        LogTable {
            size_factors,
            table,
        }
    }

    /// The size factors, one per cell.
    pub(crate) fn size_factors(&self) -> &'a [f32] {
        self.size_factors
    }

    /// The log value of count `c` in cell `cell` (`cell < size_factors().len()`).
    #[inline]
    pub(crate) fn value(&self, cell: usize, c: f32) -> f32 {
        self.of_cell(cell)(c)
    }

    /// The log values of cell `cell`'s counts, the cell's table row looked up once.
    #[inline]
    pub(crate) fn of_cell(&self, cell: usize) -> impl Fn(f32) -> f32 + '_ {
        let (table, s) = (&self.table[cell], self.size_factors[cell]);
        move |c| {
            let k = c as usize;
            if k < TABLE && k as f32 == c {
                table[k]
            } else {
                log_value(c, s)
            }
        }
    }
}

/// The log-normalized values `ln(1 + x_ij / s_i)` of `counts`, computed when read (see the
/// module docs). Integer counts below 32 are looked up in a per-cell table (128
/// bytes per cell) filled when the view is made.
#[derive(Debug, Clone)]
pub struct LogCounts<'a> {
    counts: &'a CsrMatrix,
    table: LogTable<'a>,
}

impl<'a> LogCounts<'a> {
    /// The view of `counts` with one size factor per cell (`Normalized::size_factors`).
    pub fn new(counts: &'a CsrMatrix, size_factors: &'a [f32]) -> Result<Self> {
        if size_factors.len() != counts.n_rows() {
            return Err(Error::data(
                "log-normalized values",
                format!(
                    "{} size factors for {} cells",
                    size_factors.len(),
                    counts.n_rows()
                ),
            ));
        }
        Ok(LogCounts {
            counts,
            table: LogTable::new(size_factors),
        })
    }

    /// The counts.
    pub fn counts(&self) -> &'a CsrMatrix {
        self.counts
    }

    /// The size factors, one per cell.
    pub fn size_factors(&self) -> &'a [f32] {
        self.table.size_factors()
    }

    /// Rewrites the values of row `row` (counts) into log values in place.
    #[inline]
    fn transform_row(&self, row: usize, vals: &mut [f32]) {
        let log = self.table.of_cell(row);
        for v in vals {
            *v = log(*v);
        }
    }

    /// The stored matrix of the log values: bit for bit
    /// `normalize_total_log1p(counts, ..).matrix` for these size factors.
    pub fn to_matrix(&self) -> CsrMatrix {
        let mut m = self.counts.clone();
        m.map_rows_mut(|r, _, vals| self.transform_row(r, vals));
        m
    }

    /// The log values of the columns `cols` (strictly increasing), as a stored matrix: the
    /// same as `to_matrix().select_cols(cols)` without the full matrix.
    pub fn select_cols(&self, cols: &[usize]) -> Result<CsrMatrix> {
        let mut m = self.counts.select_cols(cols)?;
        m.map_rows_mut(|r, _, vals| self.transform_row(r, vals));
        Ok(m)
    }
}

impl MatrixValues for LogCounts<'_> {
    fn pattern(&self) -> &CsrMatrix {
        self.counts
    }
    #[inline]
    fn values_into(&self, row: usize, range: Range<usize>, out: &mut Vec<f32>) {
        let log = self.table.of_cell(row);
        out.extend(self.counts.data()[range].iter().map(|&c| log(c)));
    }
}

/// The values of row `row` of `x` (all of its stored entries), appended to `out`.
pub fn row_values<X: MatrixValues + ?Sized>(x: &X, row: usize, out: &mut Vec<f32>) {
    let p = x.pattern().indptr();
    x.values_into(row, p[row]..p[row + 1], out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{normalize_total_log1p, NormalizeOptions};

    #[test]
    fn values_are_those_of_the_stored_log_matrix() {
        let sim = crate::simulate::simulate(&crate::simulate::SimulateOptions {
            n_cells: 200,
            n_genes: 300,
            n_markers: 10,
            ..Default::default()
        })
        .unwrap();
        // Non-integer and large counts take the direct path; an empty cell keeps factor 0.
        let (n, m, indptr, indices, mut data) = sim.dataset.counts.into_parts();
        for (k, v) in data.iter_mut().enumerate() {
            match k % 11 {
                0 => *v *= 0.37,
                1 => *v += 100.0,
                _ => {}
            }
        }
        for v in &mut data[indptr[3]..indptr[4]] {
            *v = 0.0;
        }
        let counts = CsrMatrix::try_new(n, m, indptr, indices, data).unwrap();
        let norm = normalize_total_log1p(&counts, &NormalizeOptions::default()).unwrap();
        let view = LogCounts::new(&counts, &norm.size_factors).unwrap();
        let bits = |x: &CsrMatrix| x.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let full = view.to_matrix();
        assert_eq!(full.indptr(), norm.matrix.indptr());
        assert_eq!(bits(&full), bits(&norm.matrix));
        let cols: Vec<usize> = (0..m).filter(|c| c % 3 == 0).collect();
        let sub = view.select_cols(&cols).unwrap();
        assert_eq!(sub, norm.matrix.select_cols(&cols).unwrap());
        let mut out = Vec::new();
        for r in 0..n {
            out.clear();
            row_values(&view, r, &mut out);
            assert_eq!(out.as_slice(), norm.matrix.row(r).1);
        }
        assert!(LogCounts::new(&counts, &norm.size_factors[1..]).is_err());
    }

    #[test]
    fn markers_of_the_view_are_those_of_the_stored_matrix() {
        use crate::markers::{rank_genes, Method, RankGenesOptions};
        let sim = crate::simulate::simulate(&crate::simulate::SimulateOptions {
            n_cells: 300,
            n_genes: 200,
            n_markers: 10,
            ..Default::default()
        })
        .unwrap();
        let counts = &sim.dataset.counts;
        let norm = normalize_total_log1p(counts, &NormalizeOptions::default()).unwrap();
        let view = LogCounts::new(counts, &norm.size_factors).unwrap();
        let labels: Vec<u32> = (0..counts.n_rows()).map(|i| (i % 4) as u32).collect();
        for method in [Method::Wilcoxon, Method::TTest] {
            let opts = RankGenesOptions {
                method,
                pts: true,
                ..Default::default()
            };
            let a = rank_genes(&view, &labels, &opts).unwrap();
            let b = rank_genes(&norm.matrix, &labels, &opts).unwrap();
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{method:?}");
        }
    }
}
