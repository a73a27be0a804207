//! Building a [`CsrMatrix`] from its arrays or from triplets, with the checks that make it
//! canonical.

use super::{ColIndex, CsrMatrix, StoredValue};
use crate::error::{Error, Result};
use rayon::prelude::*;

impl CsrMatrix {
    /// Builds a matrix from its three arrays, checking that it is canonical.
    ///
    /// Errors name the first offending row or entry.
    pub fn try_new(
        n_rows: usize,
        n_cols: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        data: Vec<f32>,
    ) -> Result<Self> {
        Self::try_from_parts(n_rows, n_cols, indptr, indices, data)
    }

    /// Test matrices written densely: row `i` of `rows` is row `i` of the matrix (all rows of
    /// one length, at least one row), its non-zero values stored.
    #[cfg(test)]
    pub(crate) fn from_dense_rows<R: AsRef<[f32]>>(rows: &[R]) -> Self {
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        for (i, row) in rows.iter().enumerate() {
            for (j, &x) in row.as_ref().iter().enumerate() {
                if x != 0.0 {
                    r.push(i as u32);
                    c.push(j as u32);
                    v.push(x);
                }
            }
        }
        let n_cols = rows.first().map_or(0, |row| row.as_ref().len());
        Self::from_triplets(rows.len(), n_cols, &r, &c, &v).expect("dense test rows")
    }

    /// Builds a matrix from (row, column, value) triplets in any order; duplicate positions are
    /// summed. Triplets must be inside the shape (checked).
    pub fn from_triplets(
        n_rows: usize,
        n_cols: usize,
        rows: &[u32],
        cols: &[u32],
        vals: &[f32],
    ) -> Result<Self> {
        if rows.len() != cols.len() || rows.len() != vals.len() {
            return Err(Error::data(
                "triplets",
                "rows, cols and values differ in length",
            ));
        }
        let mut counts = vec![0usize; n_rows + 1];
        for (k, &r) in rows.iter().enumerate() {
            if r as usize >= n_rows || cols[k] as usize >= n_cols {
                return Err(Error::data(
                    "triplets",
                    format!(
                        "entry {k} at ({r}, {}) is outside {n_rows} x {n_cols}",
                        cols[k]
                    ),
                ));
            }
            counts[r as usize + 1] += 1;
        }
        for i in 0..n_rows {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut idx = vec![0u32; rows.len()];
        let mut val = vec![0f32; rows.len()];
        for k in 0..rows.len() {
            let r = rows[k] as usize;
            idx[next[r]] = cols[k];
            val[next[r]] = vals[k];
            next[r] += 1;
        }
        Self::from_unsorted_rows(n_rows, n_cols, counts, idx, val)
    }

    /// Sorts each row by column and sums duplicates, then checks the result.
    pub fn from_unsorted_rows(
        n_rows: usize,
        n_cols: usize,
        indptr: Vec<usize>,
        mut indices: Vec<u32>,
        mut data: Vec<f32>,
    ) -> Result<Self> {
        if indptr.len() != n_rows + 1 || *indptr.last().unwrap_or(&0) != indices.len() {
            return Err(Error::data(
                "CSR matrix",
                "indptr does not match the entries",
            ));
        }
        if indptr[0] != 0 || data.len() != indices.len() {
            return Err(Error::data(
                "CSR matrix",
                format!(
                    "indptr starts at {} (expected 0), or {} values for {} indices",
                    indptr[0],
                    data.len(),
                    indices.len()
                ),
            ));
        }
        sort_rows(n_rows, &indptr, &mut indices, &mut data)?;
        // Sum duplicates (sequential compaction; rare in practice).
        let has_dup = (0..n_rows).any(|r| {
            indices[indptr[r]..indptr[r + 1]]
                .windows(2)
                .any(|w| w[0] == w[1])
        });
        if !has_dup {
            return Self::try_new(n_rows, n_cols, indptr, indices, data);
        }
        let mut new_ptr = Vec::with_capacity(n_rows + 1);
        new_ptr.push(0);
        let mut w = 0usize;
        for r in 0..n_rows {
            let (a, b) = (indptr[r], indptr[r + 1]);
            let row_start = w;
            for k in a..b {
                if w > row_start && indices[w - 1] == indices[k] {
                    data[w - 1] += data[k];
                } else {
                    indices[w] = indices[k];
                    data[w] = data[k];
                    w += 1;
                }
            }
            new_ptr.push(w);
        }
        indices.truncate(w);
        data.truncate(w);
        Self::try_new(n_rows, n_cols, new_ptr, indices, data)
    }
}

/// Sorts the entries of every row by column index (in parallel over rows), keeping each
/// value with its index; rows already sorted are left as they are. Errors when `indptr`
/// decreases or runs past the entries.
pub(crate) fn sort_rows<V: StoredValue, I: ColIndex>(
    n_rows: usize,
    indptr: &[usize],
    indices: &mut [I],
    data: &mut [V],
) -> Result<()> {
    let mut idx_rows: Vec<&mut [I]> = Vec::with_capacity(n_rows);
    let mut val_rows: Vec<&mut [V]> = Vec::with_capacity(n_rows);
    let n_entries = indices.len();
    let (mut ri, mut rv) = (indices, data);
    for r in 0..n_rows {
        let len = indptr[r + 1]
            .checked_sub(indptr[r])
            .ok_or_else(|| Error::data("CSR matrix", format!("indptr decreases at row {r}")))?;
        // indptr may rise past the entries before it decreases back to their count.
        if len > ri.len() || len > rv.len() {
            return Err(Error::data(
                "CSR matrix",
                format!(
                    "indptr {} at row {} is past the {} entries",
                    indptr[r + 1],
                    r + 1,
                    n_entries
                ),
            ));
        }
        let (a, b) = std::mem::take(&mut ri).split_at_mut(len);
        let (c, d) = std::mem::take(&mut rv).split_at_mut(len);
        idx_rows.push(a);
        val_rows.push(c);
        ri = b;
        rv = d;
    }
    idx_rows
        .par_iter_mut()
        .zip(val_rows.par_iter_mut())
        .for_each(|(ix, vx)| {
            if ix.windows(2).all(|w| w[0] < w[1]) {
                return;
            }
            let mut pairs: Vec<(I, V)> = ix.iter().copied().zip(vx.iter().copied()).collect();
            pairs.sort_by_key(|p| p.0);
            for (k, (i, v)) in pairs.into_iter().enumerate() {
                ix[k] = i;
                vx[k] = v;
            }
        });
    Ok(())
}

/// Whether the indices of a row strictly increase and stay below `n_cols`, in one read of
/// them: the test of every neighbouring pair is folded without a branch per element (a loop
/// with no early return, which the compiler can vectorize), and an increasing row's largest
/// index is its last.
#[inline]
pub(crate) fn canonical_row<I: ColIndex>(idx: &[I], n_cols: usize) -> bool {
    const PAIRS: usize = 512;
    let Some(last) = idx.last() else {
        return true;
    };
    let pairs = idx[..idx.len() - 1]
        .chunks(PAIRS)
        .zip(idx[1..].chunks(PAIRS));
    last.ix() < n_cols
        && pairs
            .into_iter()
            .all(|(a, b)| a.iter().zip(b).fold(true, |ok, (x, y)| ok & (x < y)))
}

/// The checks of [`CsrMatrix::try_from_parts`]: `indptr` has `n_rows + 1` entries from 0 to
/// `nnz`, never decreasing; the indices of each row strictly increase and stay below `n_cols`.
pub(super) fn check_parts<I: ColIndex>(
    n_rows: usize,
    n_cols: usize,
    indptr: &[usize],
    indices: &[I],
    n_data: usize,
) -> Result<()> {
    let ctx = "CSR matrix";
    if indptr.len() != n_rows + 1 {
        return Err(Error::data(
            ctx,
            format!(
                "indptr has {} entries, expected rows + 1 = {}",
                indptr.len(),
                n_rows + 1
            ),
        ));
    }
    if indices.len() != n_data {
        return Err(Error::data(
            ctx,
            format!("{} indices but {} values", indices.len(), n_data),
        ));
    }
    if n_cols > I::LIMIT {
        return Err(Error::data(
            ctx,
            format!("{n_cols} columns exceed the index type"),
        ));
    }
    if indptr[0] != 0 {
        return Err(Error::data(
            ctx,
            format!("indptr[0] is {}, expected 0", indptr[0]),
        ));
    }
    if indptr[n_rows] != indices.len() {
        return Err(Error::data(
            ctx,
            format!(
                "indptr ends at {}, expected nnz = {}",
                indptr[n_rows],
                indices.len()
            ),
        ));
    }
    for r in 0..n_rows {
        let (a, b) = (indptr[r], indptr[r + 1]);
        if b < a {
            return Err(Error::data(
                ctx,
                format!("indptr decreases at row {r} ({a} -> {b})"),
            ));
        }
    }
    let bad_row = (0..n_rows)
        .into_par_iter()
        .find_first(|&r| !canonical_row(&indices[indptr[r]..indptr[r + 1]], n_cols));
    if let Some(r) = bad_row {
        return Err(Error::data(
            ctx,
            format!("row {r}: column indices must be increasing and below {n_cols}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_row_is_the_test_of_every_pair() {
        let plain = |idx: &[u32], n: usize| {
            idx.iter().all(|&c| (c as usize) < n) && idx.windows(2).all(|w| w[0] < w[1])
        };
        for len in [0usize, 1, 2, 3, 511, 512, 513, 1024, 1500] {
            let row: Vec<u32> = (0..len as u32).map(|i| 3 * i + 1).collect();
            let n = 3 * len + 1;
            assert!(canonical_row(&row, n), "{len}");
            let m = n.saturating_sub(3);
            assert_eq!(canonical_row(&row, m), plain(&row, m), "{len}");
            let small: Vec<u16> = row.iter().map(|&c| c as u16).collect();
            assert!(canonical_row(&small, n));
            // one pair out of order, or equal, anywhere (chunk edges included)
            for at in [0, 1, 255, 510, 511, 512, 1023, len.saturating_sub(1)] {
                if at + 1 >= len {
                    continue;
                }
                for v in [row[at + 1], row[at + 1] + 1] {
                    let mut bad = row.clone();
                    bad[at] = v;
                    assert!(!canonical_row(&bad, n), "{len} {at} {v}");
                    assert_eq!(canonical_row(&bad, n), plain(&bad, n));
                }
            }
        }
    }

    #[test]
    fn rejects_non_canonical() {
        assert!(CsrMatrix::try_new(2, 2, vec![0, 2, 1], vec![0, 1], vec![1., 1.]).is_err());
        assert!(CsrMatrix::try_new(1, 2, vec![0, 2], vec![1, 0], vec![1., 1.]).is_err());
        assert!(CsrMatrix::try_new(1, 2, vec![0, 1], vec![2], vec![1.]).is_err());
        assert!(CsrMatrix::try_new(1, 2, vec![0, 3], vec![0, 1], vec![1., 1.]).is_err());
    }

    #[test]
    fn triplets_sum_duplicates() {
        let m = CsrMatrix::from_triplets(2, 3, &[1, 0, 1, 1], &[2, 1, 0, 2], &[1., 5., 2., 4.])
            .unwrap();
        assert_eq!(m.indptr(), &[0, 1, 3]);
        assert_eq!(m.indices(), &[1, 0, 2]);
        assert_eq!(m.data(), &[5., 2., 5.]);
        assert!(CsrMatrix::from_triplets(2, 3, &[2], &[0], &[1.]).is_err());
    }
}
