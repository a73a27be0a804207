//! Compressed sparse row matrices: `f32` values, `u32` column indices, `usize` row pointers;
//! raw counts in a compact layout ([`Counts`]: `u16` values and indices when they fit).
//!
//! This is the one matrix type of the crate. Rows are cells and columns are genes for counts
//! and log-normalized values. The element types are parameters ([`StoredValue`],
//! [`ColIndex`]) with `f32` and `u32` as defaults; raw counts use `u16` for both when the
//! genes and the counts fit (4 bytes per stored count instead of 8), as libscran's matrices
//! are templated on their value and index types. A [`CsrMatrix`] is always *canonical*: row pointers start at 0,
//! never decrease and end at `nnz`; inside a row the column indices are strictly increasing and
//! below `n_cols`. Constructors check this, so code that takes a `&CsrMatrix` can rely on it.

mod build;
mod counts;
mod elements;
mod select;

pub(crate) use build::sort_rows;
pub(crate) use counts::{fits_u16, with_counts};
pub use counts::{Counts, CountsLayout};
pub use elements::{ColIndex, StoredValue};

use crate::error::{Error, Result};
use rayon::prelude::*;

/// Sum of `v` in `f64`: value `i` goes to partial sum `i mod 4` (the tail of fewer than 4
/// values to partial sums 0, 1, 2 in order), and the result is `(s0 + s1) + (s2 + s3)`. Every
/// per-row total of the library (QC metrics, size factors) is this sum, so they agree bit for
/// bit; for integer counts (any total below 2^53) it equals the exact sum. Four independent
/// partial sums let the additions overlap instead of waiting on one another.
#[inline]
pub fn sum_f64(v: &[f32]) -> f64 {
    sum_values(v)
}

/// Copies `src` into a new vector through `f`, in fixed parallel blocks (each block's pages
/// first touched by the thread that fills them).
fn convert<S: Sync, D: Copy + Default + Send>(src: &[S], f: impl Fn(&S) -> D + Sync) -> Vec<D> {
    const BLOCK: usize = 1 << 16;
    let mut out = vec![D::default(); src.len()];
    out.par_chunks_mut(BLOCK)
        .zip(src.par_chunks(BLOCK))
        .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d = f(s)));
    out
}

/// Makes `v` a buffer of `n` elements that the caller then overwrites, one by one: its memory
/// is reused when its capacity suffices (only a tail beyond the old length is zeroed), else it
/// is a fresh zeroed allocation, whose pages the system zeroes as they are first touched
/// rather than in one pass on this thread.
pub(crate) fn resize_for_overwrite<T: Clone + Default>(v: &mut Vec<T>, n: usize) {
    if v.capacity() < n {
        *v = vec![T::default(); n];
    } else {
        v.truncate(n);
        v.resize(n, T::default());
    }
}

/// Whether [`CsrMatrix::try_from_parts`] accepts these arrays (one read of the indices). A
/// reader that can sort rows builds with [`CsrMatrix::from_canonical_parts`] when they are,
/// without reading the indices again.
pub(crate) fn parts_are_canonical<I: ColIndex>(
    n_rows: usize,
    n_cols: usize,
    indptr: &[usize],
    indices: &[I],
    n_data: usize,
) -> bool {
    build::check_parts(n_rows, n_cols, indptr, indices, n_data).is_ok()
}

/// [`sum_values`] of the stored values of a row whose column `keep` accepts, without
/// copying them: the `k`-th kept value goes to lane `k mod 4`, as it would in the copy.
#[inline]
pub(crate) fn sum_values_where(idx: &[u32], val: &[f32], keep: impl Fn(u32) -> bool) -> f64 {
    let mut s = [0f64; 4];
    let mut k = 0usize;
    for (&c, &v) in idx.iter().zip(val) {
        if keep(c) {
            s[k & 3] += v as f64;
            k += 1;
        }
    }
    (s[0] + s[1]) + (s[2] + s[3])
}

/// [`sum_f64`] of stored values of any type (each taken as its `f32` value): the same sum, in
/// the same order, so a count stored as `u16` sums to the bit the `f32` one does.
#[inline]
pub fn sum_values<V: StoredValue>(v: &[V]) -> f64 {
    let mut s = [0f64; 4];
    let chunks = v.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..4 {
            s[k] += c[k].to_f32() as f64;
        }
    }
    for (k, &x) in tail.iter().enumerate() {
        s[k] += x.to_f32() as f64;
    }
    (s[0] + s[1]) + (s[2] + s[3])
}

/// A canonical CSR matrix (see the module docs) with values of type `V` and column indices
/// of type `I`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CsrMatrix<V: StoredValue = f32, I: ColIndex = u32> {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<I>,
    data: Vec<V>,
}

impl<V: StoredValue, I: ColIndex> CsrMatrix<V, I> {
    /// Builds a matrix from its three arrays, checking that it is canonical (errors name the
    /// first offending row or entry); for the default element types this is
    /// [`CsrMatrix::try_new`].
    pub fn try_from_parts(
        n_rows: usize,
        n_cols: usize,
        indptr: Vec<usize>,
        indices: Vec<I>,
        data: Vec<V>,
    ) -> Result<Self> {
        build::check_parts(n_rows, n_cols, &indptr, &indices, data.len())?;
        Ok(CsrMatrix {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }
    /// [`try_from_parts`](Self::try_from_parts) without the check (a pass over every index),
    /// for arrays canonical by construction (a selection of rows and of strictly increasing
    /// columns of a canonical matrix, in order) or just checked
    /// ([`parts_are_canonical`]). Checked in debug builds.
    pub(crate) fn from_canonical_parts(
        n_rows: usize,
        n_cols: usize,
        indptr: Vec<usize>,
        indices: Vec<I>,
        data: Vec<V>,
    ) -> Self {
        debug_assert!(build::check_parts(n_rows, n_cols, &indptr, &indices, data.len()).is_ok());
        CsrMatrix {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        }
    }
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }
    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }
    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.n_rows, self.n_cols)
    }
    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }
    /// Row pointers (`n_rows + 1` entries).
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }
    /// Column indices of all entries.
    pub fn indices(&self) -> &[I] {
        &self.indices
    }
    /// Values of all entries.
    pub fn data(&self) -> &[V] {
        &self.data
    }
    /// Column indices and values of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> (&[I], &[V]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }
    /// Parallel iterator over rows as `(row, indices, values)`.
    pub fn par_rows(&self) -> impl IndexedParallelIterator<Item = (usize, &[I], &[V])> + '_ {
        (0..self.n_rows).into_par_iter().map(move |r| {
            let (i, v) = self.row(r);
            (r, i, v)
        })
    }
    /// Consumes the matrix into `(n_rows, n_cols, indptr, indices, data)`.
    pub fn into_parts(self) -> (usize, usize, Vec<usize>, Vec<I>, Vec<V>) {
        (
            self.n_rows,
            self.n_cols,
            self.indptr,
            self.indices,
            self.data,
        )
    }

    /// Sum of each row, accumulated in `f64` ([`sum_f64`]).
    pub fn row_sums(&self) -> Vec<f64> {
        self.par_rows().map(|(_, _, v)| sum_values(v)).collect()
    }
    /// Number of stored non-zero values of each row.
    pub fn row_nnz(&self) -> Vec<usize> {
        self.par_rows()
            .map(|(_, _, v)| v.iter().filter(|&&x| x.to_f32() != 0.0).count())
            .collect()
    }
    /// Sum of each column, accumulated in `f64` (deterministic: sequential over rows).
    pub fn col_sums(&self) -> Vec<f64> {
        let mut s = vec![0f64; self.n_cols];
        for (&c, &v) in self.indices.iter().zip(&self.data) {
            s[c.ix()] += v.to_f32() as f64;
        }
        s
    }
    /// Sum of all values in `f64`.
    pub fn total(&self) -> f64 {
        self.row_sums().iter().sum()
    }

    /// Value at `(r, c)` (binary search in the row; zero when not stored).
    pub fn get(&self, r: usize, c: usize) -> f32 {
        let (idx, val) = self.row(r);
        if c >= self.n_cols {
            return 0.0;
        }
        match idx.binary_search(&I::from_ix(c)) {
            Ok(k) => val[k].to_f32(),
            Err(_) => 0.0,
        }
    }

    /// Dense row-major copy. Only for small matrices (tests, tiny examples).
    pub fn to_dense(&self) -> ndarray::Array2<f32> {
        let mut a = ndarray::Array2::zeros((self.n_rows, self.n_cols));
        for r in 0..self.n_rows {
            let (idx, val) = self.row(r);
            for (&c, &v) in idx.iter().zip(val) {
                a[(r, c.ix())] = v.to_f32();
            }
        }
        a
    }

    /// Stacks matrices with the same number of columns on top of each other.
    pub fn vstack(parts: &[&CsrMatrix<V, I>]) -> Result<Self> {
        let n_cols = parts.first().map_or(0, |m| m.n_cols);
        if let Some((k, m)) = parts.iter().enumerate().find(|(_, m)| m.n_cols != n_cols) {
            return Err(Error::data(
                "vstack",
                format!("part {k} has {} columns, expected {n_cols}", m.n_cols),
            ));
        }
        let nnz: usize = parts.iter().map(|m| m.nnz()).sum();
        let n_rows: usize = parts.iter().map(|m| m.n_rows).sum();
        let mut indptr = Vec::with_capacity(n_rows + 1);
        indptr.push(0);
        let mut indices = Vec::with_capacity(nnz);
        let mut data = Vec::with_capacity(nnz);
        for m in parts {
            let off = indices.len();
            indptr.extend(m.indptr[1..].iter().map(|&p| p + off));
            indices.extend_from_slice(&m.indices);
            data.extend_from_slice(&m.data);
        }
        Ok(CsrMatrix {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// The same matrix with `f32` values and `u32` indices (a copy, converted in parallel).
    pub fn to_wide(&self) -> CsrMatrix {
        CsrMatrix {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr: self.indptr.clone(),
            indices: convert(&self.indices, |c| c.ix() as u32),
            data: convert(&self.data, |v| v.to_f32()),
        }
    }
}

impl CsrMatrix {
    /// An empty (all-zero) matrix of the given shape.
    pub fn zeros(n_rows: usize, n_cols: usize) -> Self {
        CsrMatrix {
            n_rows,
            n_cols,
            indptr: vec![0; n_rows + 1],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Mutable values (the sparsity pattern cannot change through this).
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
    /// Column indices and mutable values of row `r`.
    #[inline]
    pub fn row_mut(&mut self, r: usize) -> (&[u32], &mut [f32]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &mut self.data[a..b])
    }
    /// Applies `f(row, col, value) -> new value` to every stored entry, in parallel over rows.
    pub fn map_rows_mut<F>(&mut self, f: F)
    where
        F: Fn(usize, &[u32], &mut [f32]) + Sync + Send,
    {
        let indptr = &self.indptr;
        let indices = &self.indices;
        let mut rows: Vec<&mut [f32]> = Vec::with_capacity(self.n_rows);
        let mut rest = &mut self.data[..];
        for r in 0..self.n_rows {
            let (a, b) = std::mem::take(&mut rest).split_at_mut(indptr[r + 1] - indptr[r]);
            rows.push(a);
            rest = b;
        }
        rows.into_par_iter().enumerate().for_each(|(r, vals)| {
            f(r, &indices[indptr[r]..indptr[r + 1]], vals);
        });
    }
    /// A matrix with the same rows and column indices whose stored values are all zero, for a
    /// transform to fill with [`map_rows_mut`](Self::map_rows_mut). The indices are copied in
    /// parallel and the values array is allocated zeroed, so its pages are first touched (and
    /// faulted in) by the threads that fill them rather than by one copying thread.
    pub fn same_pattern(&self) -> Self {
        const BLOCK: usize = 1 << 16;
        let mut indices = vec![0u32; self.indices.len()];
        indices
            .par_chunks_mut(BLOCK)
            .zip(self.indices.par_chunks(BLOCK))
            .for_each(|(d, s)| d.copy_from_slice(s));
        CsrMatrix {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr: self.indptr.clone(),
            indices,
            data: vec![0.0; self.data.len()],
        }
    }
    /// The transpose, again canonical (a CSR of the transpose is a CSC of `self`).
    pub fn transpose(&self) -> Self {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for i in 0..self.n_cols {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        for r in 0..self.n_rows {
            let (idx, val) = self.row(r);
            for (&c, &v) in idx.iter().zip(val) {
                let p = next[c as usize];
                indices[p] = r as u32;
                data[p] = v;
                next[c as usize] += 1;
            }
        }
        CsrMatrix {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            indptr: counts,
            indices,
            data,
        }
    }

    /// Converts into an `sprs` matrix (copies the arrays).
    pub fn to_sprs(&self) -> sprs::CsMatI<f32, u32, usize> {
        sprs::CsMatI::new(
            (self.n_rows, self.n_cols),
            self.indptr.clone(),
            self.indices.clone(),
            self.data.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> CsrMatrix {
        // [[1 0 2], [0 0 0], [0 3 0]]
        CsrMatrix::try_new(3, 3, vec![0, 2, 2, 3], vec![0, 2, 1], vec![1., 2., 3.]).unwrap()
    }

    #[test]
    fn sum_values_where_is_the_sum_of_the_copy() {
        // values of very different sizes, so that another order of the additions would
        // change the bits
        let n = 203;
        let idx: Vec<u32> = (0..n).map(|i| 3 * i as u32).collect();
        let val: Vec<f32> = (0..n)
            .map(|i| (1.37f32 + i as f32).powi(1 + (i % 5) as i32) * [1.0, -0.3][i % 2])
            .collect();
        // the lanes by position in the row, not among the kept values, would give other bits
        let mut by_row_position_differs = false;
        for m in [1u32, 2, 3, 5, 7, 1000] {
            let keep = |c: u32| (c / 3) % m != 1;
            let kept: Vec<f32> = idx
                .iter()
                .zip(&val)
                .filter(|(&c, _)| keep(c))
                .map(|(_, &v)| v)
                .collect();
            for len in [0, 1, 2, 3, 4, 5, 9, 64, n] {
                let copy: Vec<f32> = idx[..len]
                    .iter()
                    .zip(&val)
                    .filter(|(&c, _)| keep(c))
                    .map(|(_, &v)| v)
                    .collect();
                let got = sum_values_where(&idx[..len], &val[..len], keep);
                assert_eq!(
                    got.to_bits(),
                    sum_values(&copy).to_bits(),
                    "m {m}, len {len}"
                );
            }
            let mut lanes = [0f64; 4];
            for (i, (&c, &v)) in idx.iter().zip(&val).enumerate() {
                if keep(c) {
                    lanes[i % 4] += v as f64;
                }
            }
            let by_row = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
            by_row_position_differs |= by_row.to_bits() != sum_values(&kept).to_bits();
        }
        assert!(by_row_position_differs);
    }

    #[test]
    fn same_pattern_keeps_the_structure_with_zero_values() {
        let m = small();
        let z = m.same_pattern();
        assert_eq!(z.shape(), m.shape());
        assert_eq!(z.indptr(), m.indptr());
        assert_eq!(z.indices(), m.indices());
        assert_eq!(z.data(), &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn sum_f64_is_the_four_lane_sum() {
        let v: Vec<f32> = (1..=11).map(|i| i as f32).collect();
        assert_eq!(sum_f64(&v), 66.0);
        assert_eq!(sum_f64(&[]), 0.0);
        let w = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
        let d = |i: usize| w[i] as f64;
        assert_eq!(sum_f64(&w), ((d(0) + d(4)) + (d(1) + d(5))) + (d(2) + d(3)));
    }

    #[test]
    fn select_and_transpose() {
        let m = small();
        let r = m.select_rows(&[2, 0]).unwrap();
        assert_eq!(r.to_dense().row(0).to_vec(), vec![0., 3., 0.]);
        let c = m.select_cols(&[1, 2]).unwrap();
        assert_eq!(c.to_dense().row(0).to_vec(), vec![0., 2.]);
        let t = m.transpose();
        assert_eq!(t.to_dense(), m.to_dense().t().to_owned());
        assert!(m.select_rows(&[3]).is_err());
        assert!(m.select_cols(&[2, 1]).is_err());
        assert_eq!(m.row_sums(), vec![3., 0., 3.]);
        assert_eq!(m.col_sums(), vec![1., 3., 2.]);
        let s = CsrMatrix::vstack(&[&m, &r]).unwrap();
        assert_eq!(s.n_rows(), 5);
        assert_eq!(s.get(4, 0), 1.0);
    }
}
