//! Compressed sparse row matrices: `f32` values, `u32` column indices, `usize` row pointers.
//!
//! This is the one matrix type of the crate. Rows are cells and columns are genes for counts
//! and log-normalized values. A [`CsrMatrix`] is always *canonical*: row pointers start at 0,
//! never decrease and end at `nnz`; inside a row the column indices are strictly increasing and
//! below `n_cols`. Constructors check this, so code that takes a `&CsrMatrix` can rely on it.

use crate::error::{Error, Result};
use rayon::prelude::*;

/// Moves block `b`'s `lens[b]` entries from `starts[b]` to `at_b = lens[0] + .. + lens[b - 1]`
/// (so the blocks end up next to each other, in order; `at_b <= starts[b]` and `starts` is
/// increasing, as after an in-place compaction), returning the total length.
///
/// With `d_b = starts[b] - at_b`, block `b`'s destination `[at_b, at_b + lens[b])` holds its
/// own entries except its last `min(d_b, lens[b])`, which lie past it where block `b + 1`'s
/// destination begins. Those are copied aside first (a read-only parallel pass); then every
/// block moves inside its own destination and writes its saved entries after them, all blocks
/// in parallel on disjoint stretches. When the saved entries would exceed 1/16 of the buffer
/// (many rows dropped early on), the blocks are moved one after another instead.
fn close_gaps<T: Copy + Send + Sync>(buf: &mut [T], starts: &[usize], lens: &[usize]) -> usize {
    let mut at = Vec::with_capacity(lens.len());
    let mut total = 0;
    for &l in lens {
        at.push(total);
        total += l;
    }
    let saved_len = |b: usize| (starts[b] - at[b]).min(lens[b]);
    let side: usize = (0..lens.len()).map(saved_len).sum();
    if side > buf.len() / 16 {
        for b in 0..lens.len() {
            buf.copy_within(starts[b]..starts[b] + lens[b], at[b]);
        }
        return total;
    }
    let view: &[T] = buf;
    let saved: Vec<Vec<T>> = (0..lens.len())
        .into_par_iter()
        .map(|b| {
            let end = starts[b] + lens[b];
            view[end - saved_len(b)..end].to_vec()
        })
        .collect();
    let mut regions = Vec::with_capacity(lens.len());
    let mut rest = &mut buf[..total];
    for &l in lens {
        let (r, t) = std::mem::take(&mut rest).split_at_mut(l);
        regions.push(r);
        rest = t;
    }
    regions
        .into_par_iter()
        .zip(saved)
        .enumerate()
        .for_each(|(b, (r, s))| {
            let (l, d) = (r.len(), starts[b] - at[b]);
            if d > 0 && s.len() < l {
                // here s.len() == d: the entries at offsets d..l go to 0..l - d
                r.copy_within(d..l, 0);
            }
            r[l - s.len()..].copy_from_slice(&s);
        });
    total
}

/// Sum of `v` in `f64`: value `i` goes to partial sum `i mod 4` (the tail of fewer than 4
/// values to partial sums 0, 1, 2 in order), and the result is `(s0 + s1) + (s2 + s3)`. Every
/// per-row total of the library (QC metrics, size factors) is this sum, so they agree bit for
/// bit; for integer counts (any total below 2^53) it equals the exact sum. Four independent
/// partial sums let the additions overlap instead of waiting on one another.
#[inline]
pub fn sum_f64(v: &[f32]) -> f64 {
    let mut s = [0f64; 4];
    let chunks = v.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..4 {
            s[k] += c[k] as f64;
        }
    }
    for (k, &x) in tail.iter().enumerate() {
        s[k] += x as f64;
    }
    (s[0] + s[1]) + (s[2] + s[3])
}

/// A canonical CSR matrix (see the module docs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CsrMatrix {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
}

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
        if indices.len() != data.len() {
            return Err(Error::data(
                ctx,
                format!("{} indices but {} values", indices.len(), data.len()),
            ));
        }
        if n_cols > u32::MAX as usize {
            return Err(Error::data(
                ctx,
                format!("{n_cols} columns exceed u32 indices"),
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
        let bad_row = (0..n_rows).into_par_iter().find_first(|&r| {
            let idx = &indices[indptr[r]..indptr[r + 1]];
            idx.iter().any(|&c| c as usize >= n_cols) || idx.windows(2).any(|w| w[0] >= w[1])
        });
        if let Some(r) = bad_row {
            return Err(Error::data(
                ctx,
                format!("row {r}: column indices must be increasing and below {n_cols}"),
            ));
        }
        Ok(CsrMatrix {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
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
        // Sort rows in parallel: split the arrays at row boundaries.
        {
            let mut idx_rows: Vec<&mut [u32]> = Vec::with_capacity(n_rows);
            let mut val_rows: Vec<&mut [f32]> = Vec::with_capacity(n_rows);
            let n_entries = indices.len();
            let (mut ri, mut rv) = (&mut indices[..], &mut data[..]);
            for r in 0..n_rows {
                let len = indptr[r + 1].checked_sub(indptr[r]).ok_or_else(|| {
                    Error::data("CSR matrix", format!("indptr decreases at row {r}"))
                })?;
                // indptr may rise past the entries before it decreases back to their count.
                if len > ri.len() {
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
                    let mut pairs: Vec<(u32, f32)> =
                        ix.iter().copied().zip(vx.iter().copied()).collect();
                    pairs.sort_by_key(|p| p.0);
                    for (k, (i, v)) in pairs.into_iter().enumerate() {
                        ix[k] = i;
                        vx[k] = v;
                    }
                });
        }
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
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }
    /// Values of all entries.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// Mutable values (the sparsity pattern cannot change through this).
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
    /// Column indices and values of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }
    /// Column indices and mutable values of row `r`.
    #[inline]
    pub fn row_mut(&mut self, r: usize) -> (&[u32], &mut [f32]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &mut self.data[a..b])
    }
    /// Parallel iterator over rows as `(row, indices, values)`.
    pub fn par_rows(&self) -> impl IndexedParallelIterator<Item = (usize, &[u32], &[f32])> + '_ {
        (0..self.n_rows).into_par_iter().map(move |r| {
            let (i, v) = self.row(r);
            (r, i, v)
        })
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
    /// Consumes the matrix into `(n_rows, n_cols, indptr, indices, data)`.
    pub fn into_parts(self) -> (usize, usize, Vec<usize>, Vec<u32>, Vec<f32>) {
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
        self.par_rows().map(|(_, _, v)| sum_f64(v)).collect()
    }
    /// Number of stored non-zero values of each row.
    pub fn row_nnz(&self) -> Vec<usize> {
        self.par_rows()
            .map(|(_, _, v)| v.iter().filter(|&&x| x != 0.0).count())
            .collect()
    }
    /// Sum of each column, accumulated in `f64` (deterministic: sequential over rows).
    pub fn col_sums(&self) -> Vec<f64> {
        let mut s = vec![0f64; self.n_cols];
        for (&c, &v) in self.indices.iter().zip(&self.data) {
            s[c as usize] += v as f64;
        }
        s
    }
    /// Sum of all values in `f64`.
    pub fn total(&self) -> f64 {
        self.row_sums().iter().sum()
    }

    /// The rows `rows` (in that order; repeats allowed).
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.n_rows) {
            return Err(Error::data(
                "select rows",
                format!("row {r} out of range (matrix has {} rows)", self.n_rows),
            ));
        }
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        indptr.push(0);
        let mut n = 0;
        for &r in rows {
            n += self.indptr[r + 1] - self.indptr[r];
            indptr.push(n);
        }
        let mut indices = Vec::with_capacity(n);
        let mut data = Vec::with_capacity(n);
        for &r in rows {
            let (i, v) = self.row(r);
            indices.extend_from_slice(i);
            data.extend_from_slice(v);
        }
        Ok(CsrMatrix {
            n_rows: rows.len(),
            n_cols: self.n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// The rows `rows` and the columns `cols` (`None`: all), both strictly increasing, in the
    /// matrix's own buffers: no second copy of the values exists at any time, so an owned
    /// matrix can be filtered at the memory cost of the result alone. The same matrix as
    /// `select_rows(rows)` then `select_cols(cols)`.
    ///
    /// The entries move left only. Fixed blocks of rows are compacted in parallel, each inside
    /// its own stretch of the buffers, then the blocks are moved next to each other
    /// (`close_gaps`).
    pub fn retain(self, rows: &[usize], cols: Option<&[usize]>) -> Result<Self> {
        Ok(self.retain_with(rows, cols, |_, _| ())?.0)
    }

    /// [`retain`](Self::retain) that also calls `f(indices, values)` on every kept row once it
    /// is compacted (new column indices), returning the results in row order: per-row sums
    /// come with the filter instead of another pass over the result.
    pub fn retain_with<T, F>(
        self,
        rows: &[usize],
        cols: Option<&[usize]>,
        f: F,
    ) -> Result<(Self, Vec<T>)>
    where
        T: Send,
        F: Fn(&[u32], &[f32]) -> T + Sync,
    {
        let per_block = rows.len().div_ceil(64).max(1);
        let (m, parts) = self.retain_fold(rows, cols, per_block, Vec::new, |out, _, i, v| {
            out.push(f(i, v))
        })?;
        Ok((m, parts.into_iter().flatten().collect()))
    }

    /// [`retain`](Self::retain) in blocks of `block_rows` kept rows: each block starts from
    /// `init()` and folds `f(state, kept row index, indices, values)` over its rows in order,
    /// once each is compacted; the states come back in block order. Fixed blocks make a
    /// reduction over the states independent of the thread count.
    pub fn retain_fold<S, I, F>(
        self,
        rows: &[usize],
        cols: Option<&[usize]>,
        block_rows: usize,
        init: I,
        f: F,
    ) -> Result<(Self, Vec<S>)>
    where
        S: Send,
        I: Fn() -> S + Sync,
        F: Fn(&mut S, usize, &[u32], &[f32]) + Sync,
    {
        let increasing = |v: &[usize]| v.windows(2).all(|w| w[0] < w[1]);
        if !increasing(rows) || !cols.is_none_or(increasing) {
            return Err(Error::data(
                "retain",
                "row and column lists must be strictly increasing",
            ));
        }
        if rows.last().is_some_and(|&r| r >= self.n_rows) {
            return Err(Error::data(
                "retain",
                format!("row out of range (matrix has {} rows)", self.n_rows),
            ));
        }
        if let Some(&c) = cols.and_then(|c| c.last()) {
            if c >= self.n_cols {
                return Err(Error::data(
                    "retain",
                    format!(
                        "column {c} out of range (matrix has {} columns)",
                        self.n_cols
                    ),
                ));
            }
        }
        let map: Option<Vec<u32>> = cols.map(|cols| {
            let mut map = vec![u32::MAX; self.n_cols];
            for (new, &old) in cols.iter().enumerate() {
                map[old] = new as u32;
            }
            map
        });
        let n_cols = cols.map_or(self.n_cols, |c| c.len());
        let CsrMatrix {
            indptr,
            mut indices,
            mut data,
            ..
        } = self;
        // Blocks of kept rows; block b owns the buffers from its first row's start to the next
        // block's first row's start (the last block: to the end).
        let per_block = block_rows.max(1);
        let starts: Vec<usize> = rows.chunks(per_block).map(|b| indptr[b[0]]).collect();
        let mut pieces = Vec::with_capacity(starts.len());
        {
            let (mut ri, mut rv) = (&mut indices[..], &mut data[..]);
            let mut at = 0;
            for (b, block) in rows.chunks(per_block).enumerate() {
                let end = starts.get(b + 1).copied().unwrap_or(indptr[self.n_rows]);
                let (_, i) = std::mem::take(&mut ri).split_at_mut(starts[b] - at);
                let (_, v) = std::mem::take(&mut rv).split_at_mut(starts[b] - at);
                let (bi, i) = i.split_at_mut(end - starts[b]);
                let (bv, v) = v.split_at_mut(end - starts[b]);
                pieces.push((block, starts[b], bi, bv));
                (ri, rv, at) = (i, v, end);
            }
        }
        let done: Vec<(Vec<usize>, S)> = pieces
            .into_par_iter()
            .enumerate()
            .map(|(b, (block, base, bi, bv))| {
                let mut w = 0;
                let mut lens = Vec::with_capacity(block.len());
                let mut state = init();
                for (k, &r) in block.iter().enumerate() {
                    let before = w;
                    for k in indptr[r] - base..indptr[r + 1] - base {
                        let c = match &map {
                            Some(m) => m[bi[k] as usize],
                            None => bi[k],
                        };
                        if c != u32::MAX {
                            bi[w] = c;
                            bv[w] = bv[k];
                            w += 1;
                        }
                    }
                    lens.push(w - before);
                    f(
                        &mut state,
                        b * per_block + k,
                        &bi[before..w],
                        &bv[before..w],
                    );
                }
                (lens, state)
            })
            .collect();
        let mut results = Vec::with_capacity(done.len());
        let mut new_indptr = Vec::with_capacity(rows.len() + 1);
        new_indptr.push(0usize);
        let mut lens = Vec::with_capacity(done.len());
        for (l, state) in done {
            results.push(state);
            lens.push(l.iter().sum::<usize>());
            for x in l {
                new_indptr.push(new_indptr[new_indptr.len() - 1] + x);
            }
        }
        let at = close_gaps(&mut indices, &starts, &lens);
        close_gaps(&mut data, &starts, &lens);
        indices.truncate(at);
        data.truncate(at);
        indices.shrink_to_fit();
        data.shrink_to_fit();
        Ok((
            CsrMatrix {
                n_rows: rows.len(),
                n_cols,
                indptr: new_indptr,
                indices,
                data,
            },
            results,
        ))
    }

    /// The columns `cols`, which must be strictly increasing (this keeps rows sorted).
    pub fn select_cols(&self, cols: &[usize]) -> Result<Self> {
        if cols.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::data(
                "select columns",
                "column list must be strictly increasing",
            ));
        }
        if let Some(&c) = cols.last() {
            if c >= self.n_cols {
                return Err(Error::data(
                    "select columns",
                    format!(
                        "column {c} out of range (matrix has {} columns)",
                        self.n_cols
                    ),
                ));
            }
        }
        let mut map = vec![u32::MAX; self.n_cols];
        for (new, &old) in cols.iter().enumerate() {
            map[old] = new as u32;
        }
        let per_row: Vec<(Vec<u32>, Vec<f32>)> = self
            .par_rows()
            .map(|(_, idx, val)| {
                let mut i2 = Vec::new();
                let mut v2 = Vec::new();
                for (&c, &v) in idx.iter().zip(val) {
                    let m = map[c as usize];
                    if m != u32::MAX {
                        i2.push(m);
                        v2.push(v);
                    }
                }
                (i2, v2)
            })
            .collect();
        let mut indptr = Vec::with_capacity(self.n_rows + 1);
        indptr.push(0);
        let total: usize = per_row.iter().map(|r| r.0.len()).sum();
        let mut indices = Vec::with_capacity(total);
        let mut data = Vec::with_capacity(total);
        for (i, v) in per_row {
            indices.extend_from_slice(&i);
            data.extend_from_slice(&v);
            indptr.push(indices.len());
        }
        Ok(CsrMatrix {
            n_rows: self.n_rows,
            n_cols: cols.len(),
            indptr,
            indices,
            data,
        })
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

    /// Stacks matrices with the same number of columns on top of each other.
    pub fn vstack(parts: &[&CsrMatrix]) -> Result<Self> {
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

    /// Value at `(r, c)` (binary search in the row; zero when not stored).
    pub fn get(&self, r: usize, c: usize) -> f32 {
        let (idx, val) = self.row(r);
        match idx.binary_search(&(c as u32)) {
            Ok(k) => val[k],
            Err(_) => 0.0,
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

    /// Dense row-major copy. Only for small matrices (tests, tiny examples).
    pub fn to_dense(&self) -> ndarray::Array2<f32> {
        let mut a = ndarray::Array2::zeros((self.n_rows, self.n_cols));
        for r in 0..self.n_rows {
            let (idx, val) = self.row(r);
            for (&c, &v) in idx.iter().zip(val) {
                a[(r, c as usize)] = v;
            }
        }
        a
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
    fn same_pattern_keeps_the_structure_with_zero_values() {
        let m = small();
        let z = m.same_pattern();
        assert_eq!(z.shape(), m.shape());
        assert_eq!(z.indptr(), m.indptr());
        assert_eq!(z.indices(), m.indices());
        assert_eq!(z.data(), &[0.0, 0.0, 0.0]);
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

    #[test]
    fn retain_is_select_rows_then_select_cols() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (n, m) = (300, 40);
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        for i in 0..n {
            for j in 0..m {
                if rng.gen_bool(0.2) {
                    r.push(i as u32);
                    c.push(j as u32);
                    v.push(rng.gen_range(1..20) as f32);
                }
            }
        }
        let x = CsrMatrix::from_triplets(n, m, &r, &c, &v).unwrap();
        let rows: Vec<usize> = (0..n).filter(|i| i % 7 != 3 && *i != 0).collect();
        let cols: Vec<usize> = (0..m).filter(|j| j % 5 != 1).collect();
        let expected = x.select_rows(&rows).unwrap().select_cols(&cols).unwrap();
        assert_eq!(x.clone().retain(&rows, Some(&cols)).unwrap(), expected);
        let all: Vec<usize> = (0..n).collect();
        assert_eq!(x.clone().retain(&all, None).unwrap(), x);
        assert_eq!(
            x.clone().retain(&rows, None).unwrap(),
            x.select_rows(&rows).unwrap()
        );
        assert_eq!(x.clone().retain(&[], None).unwrap().shape(), (0, m));
        assert!(x.clone().retain(&[2, 1], None).is_err());
        assert!(x.clone().retain(&[n], None).is_err());
        assert!(x.retain(&[0], Some(&[m])).is_err());
    }

    /// `close_gaps` against moving the blocks one by one, with small gaps (the parallel
    /// moves), gaps larger than whole blocks, and gaps past the side-buffer limit.
    #[test]
    fn close_gaps_moves_blocks_next_to_each_other() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for max_gap in [0usize, 1, 3, 40, 400] {
            for _ in 0..20 {
                let n_blocks = rng.gen_range(1..12);
                let (mut starts, mut lens) = (Vec::new(), Vec::new());
                let mut end = 0;
                for _ in 0..n_blocks {
                    end += rng.gen_range(0..=max_gap);
                    let l = rng.gen_range(0..50);
                    starts.push(end);
                    lens.push(l);
                    end += l + rng.gen_range(0..=max_gap);
                }
                let buf: Vec<u32> = (0..end as u32 + 5).collect();
                let mut want = buf.clone();
                let mut at = 0;
                for (&s, &l) in starts.iter().zip(&lens) {
                    want.copy_within(s..s + l, at);
                    at += l;
                }
                let mut got = buf.clone();
                assert_eq!(close_gaps(&mut got, &starts, &lens), at);
                assert_eq!(got[..at], want[..at], "starts {starts:?} lens {lens:?}");
            }
        }
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
