//! Raw counts in the most compact layout that holds them exactly.
//!
//! A cells x genes count matrix is most of a run's memory. With at most 65,536 genes and every
//! stored count an integer from 0 to 65,535 (every 10x matrix we have seen), [`Counts`] keeps
//! the gene indices and the counts as `u16`: 4 bytes per stored count instead of 8. Other
//! matrices (non-integer values, larger counts, more features) stay `f32` / `u32`. Every count
//! reads as the same `f32` in both layouts, so results do not depend on the layout.

use super::{convert, ColIndex, CsrMatrix, StoredValue};
use crate::error::Result;
use rayon::prelude::*;
use std::borrow::Cow;

/// Raw counts (see the module docs): one of two layouts of a canonical CSR matrix.
#[derive(Debug, Clone)]
pub enum Counts {
    /// Integer counts below 65,536 of at most 65,536 genes, both stored as `u16`.
    Compact(CsrMatrix<u16, u16>),
    /// Any other matrix, `f32` values and `u32` indices.
    Wide(CsrMatrix),
}

/// Runs `$body` with `$m` bound to the matrix of either layout of `$counts` (a `&Counts`,
/// `&mut Counts` or `Counts`); the body is compiled once per layout.
macro_rules! with_counts {
    ($counts:expr, $m:ident => $body:expr) => {
        match $counts {
            $crate::sparse::Counts::Compact($m) => $body,
            $crate::sparse::Counts::Wide($m) => $body,
        }
    };
}
pub(crate) use with_counts;

impl Default for Counts {
    fn default() -> Self {
        Counts::Wide(CsrMatrix::default())
    }
}

impl From<CsrMatrix> for Counts {
    /// The compact layout when the matrix fits it, else the matrix as it is.
    fn from(m: CsrMatrix) -> Self {
        Counts::new(m)
    }
}

impl PartialEq<CsrMatrix> for Counts {
    /// The same matrix as `other`, whatever the layout.
    fn eq(&self, other: &CsrMatrix) -> bool {
        match self {
            Counts::Wide(m) => m == other,
            Counts::Compact(m) => m.shape() == other.shape() && m.to_wide() == *other,
        }
    }
}

/// Whether `v` is stored exactly as a `u16` count.
#[inline]
pub(crate) fn fits_u16(v: f32) -> bool {
    (0.0..=u16::MAX as f32).contains(&v) && v.fract() == 0.0
}

/// A matrix of one of the two layouts of [`Counts`].
pub trait CountsLayout {
    /// The counts held in this layout.
    fn into_counts(self) -> Counts;
}

impl CountsLayout for CsrMatrix<u16, u16> {
    fn into_counts(self) -> Counts {
        Counts::Compact(self)
    }
}

impl CountsLayout for CsrMatrix {
    fn into_counts(self) -> Counts {
        Counts::Wide(self)
    }
}

impl Counts {
    /// The counts held in `m`'s layout, as they are (no conversion).
    pub fn from_layout<M: CountsLayout>(m: M) -> Counts {
        m.into_counts()
    }

    /// The counts of `m`, compact when `m` has at most 65,536 columns and every stored value
    /// is an integer from 0 to 65,535. The conversion drops each wide array as soon as its
    /// compact copy is made, so at most one extra quarter of the matrix is held meanwhile.
    pub fn new(m: CsrMatrix) -> Self {
        let fits = m.n_cols() <= u16::LIMIT && m.data().par_iter().all(|&v| fits_u16(v));
        if !fits {
            return Counts::Wide(m);
        }
        let (n_rows, n_cols, indptr, indices, data) = m.into_parts();
        let data = {
            let d = convert(&data, |&v| v as u16);
            drop(data);
            d
        };
        let indices = {
            let i = convert(&indices, |&c| c as u16);
            drop(indices);
            i
        };
        Counts::Compact(CsrMatrix {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// Whether the counts are held in the compact (`u16`) layout.
    pub fn is_compact(&self) -> bool {
        matches!(self, Counts::Compact(_))
    }

    /// Number of rows (cells).
    pub fn n_rows(&self) -> usize {
        with_counts!(self, m => m.n_rows())
    }
    /// Number of columns (genes).
    pub fn n_cols(&self) -> usize {
        with_counts!(self, m => m.n_cols())
    }
    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        with_counts!(self, m => m.shape())
    }
    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        with_counts!(self, m => m.nnz())
    }
    /// Row pointers (`n_rows + 1` entries).
    pub fn indptr(&self) -> &[usize] {
        with_counts!(self, m => m.indptr())
    }
    /// Sum of each row in `f64` ([`super::sum_f64`]; the same in both layouts).
    pub fn row_sums(&self) -> Vec<f64> {
        with_counts!(self, m => m.row_sums())
    }
    /// Number of stored non-zero values of each row.
    pub fn row_nnz(&self) -> Vec<usize> {
        with_counts!(self, m => m.row_nnz())
    }
    /// Sum of each column in `f64` (sequential over rows).
    pub fn col_sums(&self) -> Vec<f64> {
        with_counts!(self, m => m.col_sums())
    }
    /// Sum of all counts in `f64`.
    pub fn total(&self) -> f64 {
        with_counts!(self, m => m.total())
    }
    /// Count at `(r, c)` (zero when not stored).
    pub fn get(&self, r: usize, c: usize) -> f32 {
        with_counts!(self, m => m.get(r, c))
    }
    /// Dense row-major copy. Only for small matrices (tests, tiny examples).
    pub fn to_dense(&self) -> ndarray::Array2<f32> {
        with_counts!(self, m => m.to_dense())
    }
    /// Row `r`'s gene indices and counts, written into `idx` and `val` (cleared first).
    pub fn row_into(&self, r: usize, idx: &mut Vec<u32>, val: &mut Vec<f32>) {
        idx.clear();
        val.clear();
        with_counts!(self, m => {
            let (i, v) = m.row(r);
            idx.extend(i.iter().map(|&c| c.ix() as u32));
            val.extend(v.iter().map(|&x| x.to_f32()));
        })
    }
    /// The counts as an `f32` / `u32` matrix: borrowed when stored so, else converted (a
    /// copy of twice the compact size).
    pub fn to_csr(&self) -> Cow<'_, CsrMatrix> {
        match self {
            Counts::Wide(m) => Cow::Borrowed(m),
            Counts::Compact(m) => Cow::Owned(m.to_wide()),
        }
    }
    /// [`to_csr`](Self::to_csr), consuming the counts.
    pub fn into_csr(self) -> CsrMatrix {
        match self {
            Counts::Wide(m) => m,
            Counts::Compact(m) => m.to_wide(),
        }
    }

    /// The rows `rows` (in that order; repeats allowed), in the same layout.
    pub fn select_rows(&self, rows: &[usize]) -> Result<Counts> {
        Ok(match self {
            Counts::Compact(m) => Counts::Compact(m.select_rows(rows)?),
            Counts::Wide(m) => Counts::Wide(m.select_rows(rows)?),
        })
    }
    /// The columns `cols` (strictly increasing), in the same layout.
    pub fn select_cols(&self, cols: &[usize]) -> Result<Counts> {
        Ok(match self {
            Counts::Compact(m) => Counts::Compact(m.select_cols(cols)?),
            Counts::Wide(m) => Counts::Wide(m.select_cols(cols)?),
        })
    }
    /// [`CsrMatrix::retain`] in the counts' own buffers and layout.
    pub fn retain(self, rows: &[usize], cols: Option<&[usize]>) -> Result<Counts> {
        Ok(match self {
            Counts::Compact(m) => Counts::Compact(m.retain(rows, cols)?),
            Counts::Wide(m) => Counts::Wide(m.retain(rows, cols)?),
        })
    }
}

impl PartialEq for Counts {
    /// The same matrix, whatever the layouts.
    fn eq(&self, other: &Self) -> bool {
        if self.shape() != other.shape() || self.indptr() != other.indptr() {
            return false;
        }
        let cols = |c: &Counts| -> Vec<u32> {
            with_counts!(c, m => m.indices().iter().map(|&i| i.ix() as u32).collect())
        };
        let vals = |c: &Counts| -> Vec<u32> {
            with_counts!(c, m => m.data().iter().map(|&v| v.to_f32().to_bits()).collect())
        };
        match (self, other) {
            (Counts::Compact(a), Counts::Compact(b)) => a == b,
            (Counts::Wide(a), Counts::Wide(b)) => a == b,
            _ => cols(self) == cols(other) && vals(self) == vals(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide() -> CsrMatrix {
        CsrMatrix::try_new(
            3,
            4,
            vec![0, 2, 2, 4],
            vec![0, 3, 1, 2],
            vec![1., 65535., 3., 7.],
        )
        .unwrap()
    }

    #[test]
    fn integer_counts_below_65536_are_compact_and_read_the_same() {
        let w = wide();
        let c = Counts::new(w.clone());
        assert!(c.is_compact());
        assert_eq!(c.to_dense(), w.to_dense());
        assert_eq!(c.row_sums(), w.row_sums());
        assert_eq!(c.col_sums(), w.col_sums());
        assert_eq!(*c.to_csr(), w);
        assert_eq!(c, Counts::Wide(w.clone()));
        let (mut i, mut v) = (Vec::new(), Vec::new());
        c.row_into(2, &mut i, &mut v);
        assert_eq!((i, v), (vec![1, 2], vec![3., 7.]));
        assert_eq!(c.get(0, 3), 65535.0);
        assert_eq!(
            c.select_rows(&[2, 0]).unwrap().to_dense(),
            w.select_rows(&[2, 0]).unwrap().to_dense()
        );
    }

    #[test]
    fn other_values_stay_wide() {
        for bad in [65536.0, 0.5, -1.0, f32::NAN] {
            let (n, m, p, i, mut d) = wide().into_parts();
            d[1] = bad;
            let c = Counts::new(CsrMatrix::try_new(n, m, p, i, d).unwrap());
            assert!(!c.is_compact(), "{bad}");
        }
        let many = CsrMatrix::try_new(1, 70_000, vec![0, 1], vec![69_999], vec![1.]).unwrap();
        assert!(!Counts::new(many).is_compact());
    }
}
