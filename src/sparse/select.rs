//! Row and column selection: copies ([`CsrMatrix::select_rows`], [`CsrMatrix::select_cols`])
//! and the in-place filter of an owned matrix ([`CsrMatrix::retain`] and its folds).

use super::{ColIndex, CsrMatrix, StoredValue};
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

impl<V: StoredValue, Idx: ColIndex> CsrMatrix<V, Idx> {
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
        F: Fn(&[Idx], &[V]) -> T + Sync,
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
        F: Fn(&mut S, usize, &[Idx], &[V]) + Sync,
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
                            Some(m) => m[bi[k].ix()],
                            None => bi[k].ix() as u32,
                        };
                        if c != u32::MAX {
                            bi[w] = Idx::from_ix(c as usize);
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
        // fixed blocks of rows in parallel, each into its own buffers (row ends relative to
        // the block), then concatenated in order
        const ROWS: usize = 256;
        let blocks: Vec<(Vec<usize>, Vec<Idx>, Vec<V>)> = (0..self.n_rows.div_ceil(ROWS))
            .into_par_iter()
            .map(|b| {
                let rows = b * ROWS..((b + 1) * ROWS).min(self.n_rows);
                let mut ends = Vec::with_capacity(rows.len());
                let mut i2 = Vec::new();
                let mut v2 = Vec::new();
                for r in rows {
                    let (idx, val) = self.row(r);
                    for (&c, &v) in idx.iter().zip(val) {
                        let m = map[c.ix()];
                        if m != u32::MAX {
                            i2.push(Idx::from_ix(m as usize));
                            v2.push(v);
                        }
                    }
                    ends.push(i2.len());
                }
                (ends, i2, v2)
            })
            .collect();
        let mut indptr = Vec::with_capacity(self.n_rows + 1);
        indptr.push(0);
        let total: usize = blocks.iter().map(|b| b.1.len()).sum();
        let mut indices = Vec::with_capacity(total);
        let mut data = Vec::with_capacity(total);
        for (ends, i, v) in blocks {
            let base = indices.len();
            indptr.extend(ends.iter().map(|e| base + e));
            indices.extend_from_slice(&i);
            data.extend_from_slice(&v);
        }
        Ok(CsrMatrix {
            n_rows: self.n_rows,
            n_cols: cols.len(),
            indptr,
            indices,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
