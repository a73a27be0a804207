//! Per-cell and per-column sums of a count matrix in a fixed order (fixed row blocks added in
//! block order), so that every QC sum agrees bit for bit whatever the number of threads.

use crate::sparse::{ColIndex, CsrMatrix, StoredValue};
use rayon::prelude::*;

/// Number of fixed row blocks for column reductions: fixed so that results never depend on
/// the number of threads.
pub(super) const COL_BLOCKS: usize = 32;

/// Rows per block of the fixed row blocks of [`col_reduce`] over `n` rows (the last block may
/// be shorter), for other passes that must add per-column sums in the same order.
pub(crate) fn col_block_len(n: usize) -> usize {
    n.div_ceil(COL_BLOCKS).max(1)
}

/// Per-column statistics of `x` in `f64`, accumulated in a fixed order: `n_rows` is split into
/// [`COL_BLOCKS`] contiguous blocks, each block is reduced sequentially, and the block results
/// are added in block order. `f` maps each stored value to the `K` quantities summed per
/// column (for example `[1, x]` or `[x, x^2]`).
pub(crate) fn col_reduce<const K: usize, F>(
    x: &CsrMatrix,
    rows: Option<&[usize]>,
    f: F,
) -> Vec<[f64; K]>
where
    F: Fn(f32) -> [f64; K] + Sync,
{
    let n_cols = x.n_cols();
    let n = rows.map_or(x.n_rows(), |r| r.len());
    let block = n.div_ceil(COL_BLOCKS).max(1);
    let parts: Vec<Vec<[f64; K]>> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![[0f64; K]; n_cols];
            for i in b * block..((b + 1) * block).min(n) {
                let r = rows.map_or(i, |rs| rs[i]);
                let (idx, val) = x.row(r);
                for (&c, &v) in idx.iter().zip(val) {
                    let q = f(v);
                    let a = &mut acc[c as usize];
                    for k in 0..K {
                        a[k] += q[k];
                    }
                }
            }
            acc
        })
        .collect();
    let mut out = vec![[0f64; K]; n_cols];
    for p in parts {
        for (o, q) in out.iter_mut().zip(p) {
            for k in 0..K {
                o[k] += q[k];
            }
        }
    }
    out
}

/// Per-cell sums: total counts, genes detected, mitochondrial and ribosomal counts.
pub(crate) type CellSums = (f64, u32, f64, f64);

/// Per gene: bit 0 mitochondrial, bit 1 ribosomal.
pub(crate) fn gene_flags(mt: &[bool], ribo: &[bool]) -> Vec<u8> {
    mt.iter()
        .zip(ribo)
        .map(|(&m, &r)| m as u8 | (r as u8) << 1)
        .collect()
}

/// The per-cell sums of one row: `(total, non-zeros, mito total, ribo total)`, the total by
/// [`crate::sparse::sum_f64`] and the mito and ribo totals in stored order, with the gene
/// sets in `flags` ([`gene_flags`]). Every per-cell sum of this module
/// goes through here, so that they agree bit for bit.
#[inline]
pub(super) fn row_sums<V: StoredValue, I: ColIndex>(
    idx: &[I],
    val: &[V],
    flags: &[u8],
) -> CellSums {
    row_sums_with(idx, val, flags, |_, _| {})
}

/// [`row_sums`], calling `each(column, value)` for every stored value in order on the way (a
/// caller's per-gene sums ride on the same loop).
#[inline(always)]
pub(super) fn row_sums_with<V: StoredValue, I: ColIndex>(
    idx: &[I],
    val: &[V],
    flags: &[u8],
    mut each: impl FnMut(usize, f32),
) -> CellSums {
    let t = crate::sparse::sum_values(val);
    let n = val.iter().map(|&v| (v.to_f32() != 0.0) as u32).sum::<u32>();
    let (mut m, mut r) = (0f64, 0f64);
    for (&c, &v) in idx.iter().zip(val) {
        let (c, v) = (c.ix(), v.to_f32());
        each(c, v);
        let f = flags.get(c).copied().unwrap_or(0);
        if f != 0 {
            if f & 1 != 0 {
                m += v as f64;
            }
            if f & 2 != 0 {
                r += v as f64;
            }
        }
    }
    (t, n, m, r)
}
