//! The passes over the cells x genes matrix that fill every gene's accumulator row: a blocked
//! partial transpose (gene by gene, for the rank sums) or, without ranks, one pass over the
//! rows in fixed chunks.

use super::gene_rows::{gene_row, Comparison, GeneRowLayout, Groups, Scratch};
use super::keys::order_key;
use crate::error::{Error, Result};
use crate::lognorm::{row_values, with_indices, MatrixValues};
use crate::sparse::ColIndex;
use rayon::prelude::*;

/// A block of rows that is transposed piece by piece: for the current gene block, `ptr` and
/// `keys` hold the block's non-zero entries of these rows, gene-major, each entry packed as
/// `order_key(value) << 32 | group code`.
struct Segment {
    rows: std::ops::Range<usize>,
    cursor: Vec<usize>,
    ptr: Vec<usize>,
    keys: Vec<u64>,
    /// The values of the segment's entries in the current gene block, row after row.
    vals: Vec<f32>,
    nan: bool,
}

impl Segment {
    fn fill<X: MatrixValues + ?Sized>(&mut self, x: &X, codes: &[u32], g0: usize, g1: usize) {
        with_indices!(x.indices(), ix => self.fill_from(x, ix, codes, g0, g1))
    }

    /// [`fill`](Self::fill) with the matrix's column indices in their stored type.
    fn fill_from<X: MatrixValues + ?Sized, I: ColIndex>(
        &mut self,
        x: &X,
        indices: &[I],
        codes: &[u32],
        g0: usize,
        g1: usize,
    ) {
        let indptr = x.indptr();
        let bg = g1 - g0;
        self.ptr.clear();
        self.ptr.resize(bg + 1, 0);
        self.vals.clear();
        for (ci, r) in self.rows.clone().enumerate() {
            let end = indptr[r + 1];
            let start = self.cursor[ci];
            let mut k = start;
            while k < end && indices[k].ix() < g1 {
                k += 1;
            }
            let at = self.vals.len();
            x.values_into(r, start..k, &mut self.vals);
            for (&g, &v) in indices[start..k].iter().zip(&self.vals[at..]) {
                if v != 0.0 {
                    self.ptr[g.ix() - g0 + 1] += 1;
                }
            }
        }
        for i in 0..bg {
            self.ptr[i + 1] += self.ptr[i];
        }
        self.keys.clear();
        self.keys.resize(self.ptr[bg], 0);
        let mut next: Vec<usize> = self.ptr[..bg].to_vec();
        let mut at = 0;
        for (ci, r) in self.rows.clone().enumerate() {
            let start = self.cursor[ci];
            let code = codes[r] as u64;
            let mut k = start;
            while k < indptr[r + 1] && indices[k].ix() < g1 {
                let v = self.vals[at + k - start];
                if v != 0.0 {
                    if v.is_nan() {
                        self.nan = true;
                    }
                    let slot = &mut next[indices[k].ix() - g0];
                    self.keys[*slot] = ((order_key(v) as u64) << 32) | code;
                    *slot += 1;
                }
                k += 1;
            }
            at += k - start;
            self.cursor[ci] = k;
        }
    }
}

/// Target number of entries held in one transposed gene block.
fn block_target(nnz: usize) -> usize {
    (nnz / 16).clamp(1 << 16, 1 << 23)
}

/// Reads the matrix gene by gene (in blocks) and fills the accumulator rows of all genes.
pub(super) fn gene_pass<X: MatrixValues + ?Sized>(
    x: &X,
    groups: &Groups,
    comps: &[Comparison],
    lay: GeneRowLayout,
    ranks: bool,
    progress: &mut dyn FnMut(f64),
) -> Result<Vec<f64>> {
    if !ranks {
        return row_pass(x, groups, lay);
    }
    let (n_rows, n_genes) = x.shape();
    let w = lay.width();
    let mut acc = vec![0f64; n_genes * w];
    // Stored entries per gene (an upper bound of the non-zeros), to size the blocks.
    let mut col_nnz = vec![0usize; n_genes];
    with_indices!(x.indices(), ix => {
        for &c in ix {
            col_nnz[c.ix()] += 1;
        }
    });
    // Fixed segments of rows (independent of the thread count).
    let seg_rows = n_rows.div_ceil(32).max(256);
    let mut segments: Vec<Segment> = (0..n_rows)
        .step_by(seg_rows)
        .map(|a| {
            let b = (a + seg_rows).min(n_rows);
            Segment {
                rows: a..b,
                cursor: x.indptr()[a..b].to_vec(),
                ptr: Vec::new(),
                keys: Vec::new(),
                vals: Vec::new(),
                nan: false,
            }
        })
        .collect();
    let target = block_target(x.nnz());
    let mut g0 = 0;
    while g0 < n_genes {
        let mut g1 = g0;
        let mut in_block = 0;
        while g1 < n_genes && (g1 == g0 || in_block + col_nnz[g1] <= target) {
            in_block += col_nnz[g1];
            g1 += 1;
        }
        segments
            .par_iter_mut()
            .for_each(|s| s.fill(x, &groups.codes, g0, g1));
        if segments.iter().any(|s| s.nan) {
            return Err(Error::data(
                "rank_genes",
                "the matrix holds NaN values".to_string(),
            ));
        }
        let segs = &segments;
        acc[g0 * w..g1 * w]
            .par_chunks_mut(w)
            .enumerate()
            .for_each_init(Scratch::default, |s, (bi, row)| {
                s.keys.clear();
                for seg in segs {
                    s.keys
                        .extend_from_slice(&seg.keys[seg.ptr[bi]..seg.ptr[bi + 1]]);
                }
                gene_row(row, s, lay, groups, comps, ranks);
            });
        g0 = g1;
        progress(g1 as f64 / n_genes as f64);
    }
    Ok(acc)
}

/// Counts, sums and sums of squares per (gene, group) without ranks, straight from the rows:
/// a fixed number of row chunks (independent of the thread count) accumulate group-major
/// partial sums, added up in chunk order, so the result is deterministic.
fn row_pass<X: MatrixValues + ?Sized>(
    x: &X,
    groups: &Groups,
    lay: GeneRowLayout,
) -> Result<Vec<f64>> {
    let (n_rows, n_genes) = x.shape();
    let ng = lay.n_groups;
    let w = lay.width();
    let per_chunk = 3 * ng * n_genes;
    // At most 8 chunks, and their partial sums at most a quarter of the matrix's size.
    let n_chunks = (x.nnz() * 2 / per_chunk.max(1))
        .clamp(1, 8)
        .min(n_rows.max(1));
    let chunk_rows = n_rows.div_ceil(n_chunks).max(1);
    let starts: Vec<usize> = (0..n_rows).step_by(chunk_rows).collect();
    let partials: Vec<(Vec<f64>, bool)> = starts
        .into_par_iter()
        .map(|a| {
            // Layout: [nnz | sum | sumsq] x group x gene.
            let mut p = vec![0f64; per_chunk];
            let mut nan = false;
            let mut val = Vec::new();
            let mut idx = Vec::new();
            let indices = x.indices();
            for r in a..(a + chunk_rows).min(n_rows) {
                let c = groups.codes[r] as usize;
                idx.clear();
                indices.extend_into(x.indptr()[r]..x.indptr()[r + 1], &mut idx);
                val.clear();
                row_values(x, r, &mut val);
                let (nnz, rest) = p.split_at_mut(ng * n_genes);
                let (sum, sumsq) = rest.split_at_mut(ng * n_genes);
                let off = c * n_genes;
                let (nnz, sum, sumsq) = (
                    &mut nnz[off..off + n_genes],
                    &mut sum[off..off + n_genes],
                    &mut sumsq[off..off + n_genes],
                );
                for (&j, &v) in idx.iter().zip(&val) {
                    if v != 0.0 {
                        nan |= v.is_nan();
                        let j = j as usize;
                        nnz[j] += 1.0;
                        sum[j] += v as f64;
                        // f32 square, as in `gene_row`.
                        sumsq[j] += (v * v) as f64;
                    }
                }
            }
            (p, nan)
        })
        .collect();
    if partials.iter().any(|p| p.1) {
        return Err(Error::data("rank_genes", "the matrix holds NaN values"));
    }
    let mut acc = vec![0f64; n_genes * w];
    acc.par_chunks_mut(w).enumerate().for_each(|(j, row)| {
        for (p, _) in &partials {
            for k in 0..3 {
                for c in 0..ng {
                    row[k * ng + c] += p[(k * ng + c) * n_genes + j];
                }
            }
        }
    });
    Ok(acc)
}
