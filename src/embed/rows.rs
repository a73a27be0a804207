//! Sparse rows built and updated in parallel, in fixed blocks of rows.

use rayon::prelude::*;

/// Rows per parallel task.
const ROWS: usize = 4096;

/// A CSR of `n` rows, row `r` with `count(r)` entries written by `fill(r, indices, values)`
/// (slices of exactly that length): the counts first, then the rows, both in blocks of
/// [`ROWS`] rows in parallel. Returns `(indptr, indices, values)`.
pub(super) fn par_csr<I, V>(
    n: usize,
    count: impl Fn(usize) -> usize + Sync,
    fill: impl Fn(usize, &mut [I], &mut [V]) + Sync,
) -> (Vec<usize>, Vec<I>, Vec<V>)
where
    I: Copy + Default + Send + Sync,
    V: Copy + Default + Send + Sync,
{
    let counts: Vec<usize> = (0..n).into_par_iter().map(&count).collect();
    let mut indptr = Vec::with_capacity(n + 1);
    indptr.push(0);
    for c in counts {
        indptr.push(indptr[indptr.len() - 1] + c);
    }
    let mut indices = vec![I::default(); indptr[n]];
    let mut values = vec![V::default(); indptr[n]];
    let mut blocks = Vec::with_capacity(n.div_ceil(ROWS));
    {
        let (mut ix, mut vs) = (&mut indices[..], &mut values[..]);
        for r0 in (0..n).step_by(ROWS) {
            let r1 = (r0 + ROWS).min(n);
            let len = indptr[r1] - indptr[r0];
            let (i1, i2) = std::mem::take(&mut ix).split_at_mut(len);
            let (v1, v2) = std::mem::take(&mut vs).split_at_mut(len);
            blocks.push((r0..r1, i1, v1));
            (ix, vs) = (i2, v2);
        }
    }
    let at = &indptr;
    blocks.into_par_iter().for_each(|(rows, ix, vs)| {
        let base = at[rows.start];
        for r in rows {
            let (a, b) = (at[r] - base, at[r + 1] - base);
            fill(r, &mut ix[a..b], &mut vs[a..b]);
        }
    });
    (indptr, indices, values)
}

/// Calls `f(r, row)` with the values of every row `r` of a CSR (`indptr`, `values`), in
/// blocks of [`ROWS`] rows in parallel.
pub(super) fn par_rows_mut<V: Send>(
    indptr: &[usize],
    values: &mut [V],
    f: impl Fn(usize, &mut [V]) + Sync,
) {
    let n = indptr.len() - 1;
    let mut blocks = Vec::with_capacity(n.div_ceil(ROWS));
    let mut vs = values;
    for r0 in (0..n).step_by(ROWS) {
        let r1 = (r0 + ROWS).min(n);
        let (v1, v2) = std::mem::take(&mut vs).split_at_mut(indptr[r1] - indptr[r0]);
        blocks.push((r0..r1, v1));
        vs = v2;
    }
    blocks.into_par_iter().for_each(|(rows, vs)| {
        let base = indptr[rows.start];
        for r in rows {
            f(r, &mut vs[indptr[r] - base..indptr[r + 1] - base]);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_land_in_their_places() {
        // row r holds r % 7 entries (r, r + 1, ...), over more than one block
        let n = 3 * ROWS + 17;
        let (indptr, ix, mut vs) = par_csr::<u32, f64>(
            n,
            |r| r % 7,
            |r, ix, vs| {
                for (k, (i, v)) in ix.iter_mut().zip(vs.iter_mut()).enumerate() {
                    *i = (r + k) as u32;
                    *v = r as f64;
                }
            },
        );
        assert_eq!(indptr.len(), n + 1);
        par_rows_mut(&indptr, &mut vs, |r, row| {
            for v in row.iter_mut() {
                *v = *v * 2.0 + r as f64;
            }
        });
        for r in 0..n {
            let (a, b) = (indptr[r], indptr[r + 1]);
            assert_eq!(b - a, r % 7);
            assert!(ix[a..b]
                .iter()
                .enumerate()
                .all(|(k, &i)| i as usize == r + k));
            assert!(vs[a..b].iter().all(|&v| v == 3.0 * r as f64));
        }
    }
}
