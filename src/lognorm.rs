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
use crate::sparse::{with_counts, ColIndex, Counts, CsrMatrix, StoredValue};
use rayon::prelude::*;
use std::ops::Range;

/// The column indices of a matrix, in the index type it stores.
#[derive(Debug, Clone, Copy)]
pub enum Indices<'a> {
    /// `u16` indices (compact counts).
    U16(&'a [u16]),
    /// `u32` indices.
    U32(&'a [u32]),
}

/// Runs `$body` with `$ix` bound to the index slice of either type of `$indices` (an
/// [`Indices`]); the body is compiled once per type.
macro_rules! with_indices {
    ($indices:expr, $ix:ident => $body:expr) => {
        match $indices {
            $crate::lognorm::Indices::U16($ix) => $body,
            $crate::lognorm::Indices::U32($ix) => $body,
        }
    };
}
pub(crate) use with_indices;

impl<'a> Indices<'a> {
    /// Number of indices.
    pub fn len(&self) -> usize {
        with_indices!(*self, ix => ix.len())
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The indices at positions `range` appended to `out` as `u32`.
    pub fn extend_into(&self, range: Range<usize>, out: &mut Vec<u32>) {
        with_indices!(*self, ix => out.extend(ix[range].iter().map(|&c| c.ix() as u32)))
    }
}

/// Read access to a sparse matrix whose rows, columns and stored entries are those of a CSR
/// matrix (the pattern) and whose values are the stored ones or computed from them.
pub trait MatrixValues: Sync + std::fmt::Debug {
    /// `(rows, columns)`.
    fn shape(&self) -> (usize, usize);
    /// Row pointers (`rows + 1` entries).
    fn indptr(&self) -> &[usize];
    /// The column indices of all stored entries.
    fn indices(&self) -> Indices<'_>;
    /// Number of stored entries.
    fn nnz(&self) -> usize {
        self.indptr().last().copied().unwrap_or(0)
    }
    /// Appends to `out` the values of the stored entries `range` (positions in the stored
    /// arrays), which all belong to row `row`.
    fn values_into(&self, row: usize, range: Range<usize>, out: &mut Vec<f32>);
    /// The values of all stored entries when they are stored as `f32` (written as they are).
    fn stored_f32(&self) -> Option<&[f32]> {
        None
    }
}

impl MatrixValues for CsrMatrix {
    fn shape(&self) -> (usize, usize) {
        CsrMatrix::shape(self)
    }
    fn indptr(&self) -> &[usize] {
        CsrMatrix::indptr(self)
    }
    fn indices(&self) -> Indices<'_> {
        Indices::U32(CsrMatrix::indices(self))
    }
    #[inline]
    fn values_into(&self, _row: usize, range: Range<usize>, out: &mut Vec<f32>) {
        out.extend_from_slice(&self.data()[range]);
    }
    fn stored_f32(&self) -> Option<&[f32]> {
        Some(self.data())
    }
}

/// The counts themselves (as `f32`).
impl MatrixValues for Counts {
    fn shape(&self) -> (usize, usize) {
        Counts::shape(self)
    }
    fn indptr(&self) -> &[usize] {
        Counts::indptr(self)
    }
    fn indices(&self) -> Indices<'_> {
        CountsRef::from(self).indices()
    }
    #[inline]
    fn values_into(&self, _row: usize, range: Range<usize>, out: &mut Vec<f32>) {
        with_counts!(self, m => out.extend(m.data()[range].iter().map(|&v| v.to_f32())))
    }
    fn stored_f32(&self) -> Option<&[f32]> {
        match self {
            Counts::Wide(m) => Some(m.data()),
            Counts::Compact(_) => None,
        }
    }
}

/// A borrowed count matrix of either layout: a [`Counts`] or a plain [`CsrMatrix`].
#[derive(Debug, Clone, Copy)]
pub enum CountsRef<'a> {
    /// Compact counts.
    Compact(&'a CsrMatrix<u16, u16>),
    /// `f32` / `u32` counts.
    Wide(&'a CsrMatrix),
}

impl<'a> From<&'a Counts> for CountsRef<'a> {
    fn from(c: &'a Counts) -> Self {
        match c {
            Counts::Compact(m) => CountsRef::Compact(m),
            Counts::Wide(m) => CountsRef::Wide(m),
        }
    }
}

impl<'a> From<&'a CsrMatrix> for CountsRef<'a> {
    fn from(m: &'a CsrMatrix) -> Self {
        CountsRef::Wide(m)
    }
}

/// [`with_counts`] for a [`CountsRef`].
macro_rules! with_counts_ref {
    ($counts:expr, $m:ident => $body:expr) => {
        match $counts {
            $crate::lognorm::CountsRef::Compact($m) => $body,
            $crate::lognorm::CountsRef::Wide($m) => $body,
        }
    };
}
pub(crate) use with_counts_ref;

impl<'a> CountsRef<'a> {
    /// `(rows, columns)`.
    pub fn shape(&self) -> (usize, usize) {
        with_counts_ref!(*self, m => m.shape())
    }
    /// Row pointers.
    pub fn indptr(&self) -> &'a [usize] {
        with_counts_ref!(*self, m => m.indptr())
    }
    /// Column indices.
    pub fn indices(&self) -> Indices<'a> {
        match *self {
            CountsRef::Compact(m) => Indices::U16(m.indices()),
            CountsRef::Wide(m) => Indices::U32(m.indices()),
        }
    }
    /// The counts as an `f32` / `u32` matrix (converted when compact).
    pub fn to_csr(&self) -> std::borrow::Cow<'a, CsrMatrix> {
        match *self {
            CountsRef::Compact(m) => std::borrow::Cow::Owned(m.to_wide()),
            CountsRef::Wide(m) => std::borrow::Cow::Borrowed(m),
        }
    }
    /// The columns `cols` (strictly increasing) as an `f32` / `u32` matrix.
    pub fn select_cols(&self, cols: &[usize]) -> Result<CsrMatrix> {
        Ok(match *self {
            CountsRef::Compact(m) => m.select_cols(cols)?.to_wide(),
            CountsRef::Wide(m) => m.select_cols(cols)?,
        })
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
///
/// The table is stored count by count (`table[c * n + i]`, one row of `n` cells per count):
/// a walk over the cells of a gene in ascending order, as the streamed markers make, then
/// reads each count's row forward, where a row per cell would cost a cache line per value
/// once the table outgrows the cache (128 MB at a million cells).
#[derive(Debug, Clone)]
pub(crate) struct LogTable<'a> {
    size_factors: &'a [f32],
    table: Vec<f32>,
}

impl<'a> LogTable<'a> {
    /// Bytes per cell of the table.
    pub(crate) const BYTES_PER_CELL: u64 = 4 * TABLE as u64;

    /// The table of cells with these size factors.
    pub(crate) fn new(size_factors: &'a [f32]) -> Self {
        let n = size_factors.len();
        let mut table = vec![0f32; TABLE * n];
        if n > 0 {
            table.par_chunks_mut(n).enumerate().for_each(|(c, row)| {
                for (t, &s) in row.iter_mut().zip(size_factors) {
                    *t = log_value(c as f32, s);
                }
            });
        }
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

    /// The log values of cell `cell`'s counts.
    #[inline]
    pub(crate) fn of_cell(&self, cell: usize) -> impl Fn(f32) -> f32 + '_ {
        self.of_cell_stored(cell)
    }

    /// [`of_cell`](Self::of_cell) of stored values of any type (an integer type needs no
    /// check that the value is one).
    #[inline]
    pub(crate) fn of_cell_stored<V: StoredValue>(&self, cell: usize) -> impl Fn(V) -> f32 + '_ {
        let (n, s) = (self.size_factors.len(), self.size_factors[cell]);
        let table = &self.table[..];
        move |c: V| {
            let k = c.count_index();
            if k < TABLE {
                table[k * n + cell]
            } else {
                log_value(c.to_f32(), s)
            }
        }
    }
}

/// The log-normalized values `ln(1 + x_ij / s_i)` of `counts`, computed when read (see the
/// module docs). Integer counts below 32 are looked up in a per-cell table (128
/// bytes per cell) filled when the view is made.
#[derive(Debug, Clone)]
pub struct LogCounts<'a> {
    counts: CountsRef<'a>,
    table: LogTable<'a>,
}

impl<'a> LogCounts<'a> {
    /// The view of `counts` with one size factor per cell (`Normalized::size_factors`).
    pub fn new(counts: impl Into<CountsRef<'a>>, size_factors: &'a [f32]) -> Result<Self> {
        let counts = counts.into();
        let n_rows = counts.shape().0;
        if size_factors.len() != n_rows {
            return Err(Error::data(
                "log-normalized values",
                format!("{} size factors for {} cells", size_factors.len(), n_rows),
            ));
        }
        Ok(LogCounts {
            counts,
            table: LogTable::new(size_factors),
        })
    }

    /// The counts.
    pub fn counts(&self) -> CountsRef<'a> {
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
        let mut m = self.counts.to_csr().into_owned();
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
    fn shape(&self) -> (usize, usize) {
        self.counts.shape()
    }
    fn indptr(&self) -> &[usize] {
        self.counts.indptr()
    }
    fn indices(&self) -> Indices<'_> {
        self.counts.indices()
    }
    #[inline]
    fn values_into(&self, row: usize, range: Range<usize>, out: &mut Vec<f32>) {
        with_counts_ref!(self.counts, m => {
            let log = self.table.of_cell_stored(row);
            out.extend(m.data()[range].iter().map(|&c| log(c)))
        })
    }
}

/// The values of row `row` of `x` (all of its stored entries), appended to `out`.
pub fn row_values<X: MatrixValues + ?Sized>(x: &X, row: usize, out: &mut Vec<f32>) {
    let p = x.indptr();
    x.values_into(row, p[row]..p[row + 1], out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{normalize_total_log1p, NormalizeOptions};

    #[test]
    fn table_gives_every_cell_its_own_log_values() {
        let factors = [0.0f32, 1.0, 0.5, 3.7, 1e-3, 250.0, 1.0];
        let t = LogTable::new(&factors);
        for (cell, &s) in factors.iter().enumerate() {
            for c in (0..40).map(|c| c as f32).chain([0.25, 31.5, 1e6]) {
                assert_eq!(
                    t.value(cell, c).to_bits(),
                    log_value(c, s).to_bits(),
                    "cell {cell}, count {c}"
                );
            }
        }
        assert_eq!(
            t.value(0, 3.0),
            3.0f32.ln_1p(),
            "a zero factor is taken as 1"
        );
        assert!(LogTable::new(&[]).size_factors().is_empty());
    }

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
        let (n, m, indptr, indices, mut data) = sim.dataset.counts.into_csr().into_parts();
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
        let counts = &*sim.dataset.counts.to_csr();
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
