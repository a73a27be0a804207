//! The centred, scaled and clipped matrix as an operator: its products with dense blocks
//! (`A B` and `A^T Y`, accumulated in `f32` or `f64`, with AVX kernels), computed without
//! forming it (see the [module documentation](super)), and its column sums along the fixed
//! tree of [`super::blocks`] that keeps every sum independent of the thread count (and of how
//! the rows are spread over workers).

use std::ops::Range;

use rayon::prelude::*;

use super::blocks::{Combine, RowBlocks};
use super::BLOCK_ROWS;
use crate::error::Result;
use crate::sparse::CsrMatrix;

/// Sums over the rows of the whole matrix: this worker's subtree sums
/// ([`RowBlocks::subtrees`]) completed by `combine` into the fixed tree's root.
#[derive(Clone, Copy)]
pub(super) struct Sums<'a> {
    pub(super) blocks: &'a RowBlocks,
    pub(super) combine: &'a dyn Combine,
}

impl Sums<'_> {
    /// The sum over every row of the whole matrix of `leaf`, which maps a block of this
    /// worker's rows (numbered from its first row) to a vector.
    pub(super) fn reduce<F>(&self, leaf: F) -> Result<Vec<f64>>
    where
        F: Fn(Range<usize>) -> Vec<f64> + Sync,
    {
        self.combine
            .combine(self.blocks, self.blocks.subtrees(leaf))
    }
}

/// The centred, scaled and clipped matrix `A = S - 1 c^T` (see the module documentation),
/// restricted to the rows this worker holds (all of them for the in-memory [`super::pca`]).
pub(super) struct Operator<'a> {
    /// Rows held here.
    pub(super) n: usize,
    /// Rows of the whole matrix.
    pub(super) n_total: usize,
    pub(super) p: usize,
    m: Rows<'a>,
    pub(super) sums: Sums<'a>,
}

/// The stored values of `S` on the rows held and the column means `c` (what the threads of
/// the products share).
pub(super) struct Rows<'a> {
    p: usize,
    indptr: &'a [usize],
    indices: &'a [u32],
    values: Vec<f32>,
    col_means: Vec<f64>,
}

impl<'a> Operator<'a> {
    /// `x` holds the rows `sums.blocks.rows()` of the whole matrix.
    pub(super) fn new(
        x: &'a CsrMatrix,
        means: &[f64],
        stds: &[f64],
        max_value: Option<f64>,
        sums: Sums<'a>,
    ) -> Result<Self> {
        let (n, p) = x.shape();
        let n_total = sums.blocks.n_rows();
        let clip = |z: f64| match max_value {
            Some(m) => z.clamp(-m, m),
            None => z,
        };
        let zero_level: Vec<f64> = (0..p).map(|j| clip(-means[j] / stds[j])).collect();
        let mut values = vec![0.0f32; x.nnz()];
        let indptr = x.indptr();
        values
            .par_chunks_mut(BLOCK_ROWS * 8)
            .enumerate()
            .for_each(|(c, out)| {
                let start = c * BLOCK_ROWS * 8;
                let idx = &x.indices()[start..start + out.len()];
                let val = &x.data()[start..start + out.len()];
                for ((o, &j), &v) in out.iter_mut().zip(idx).zip(val) {
                    let j = j as usize;
                    *o = (clip((v as f64 - means[j]) / stds[j]) - zero_level[j]) as f32;
                }
            });
        let col_sums = sums.reduce(|rows| {
            let mut acc = vec![0.0f64; p];
            for i in rows {
                for k in indptr[i]..indptr[i + 1] {
                    acc[x.indices()[k] as usize] += values[k] as f64;
                }
            }
            acc
        })?;
        let col_means = col_sums.iter().map(|s| s / n_total as f64).collect();
        Ok(Operator {
            n,
            n_total,
            p,
            m: Rows {
                p,
                indptr,
                indices: x.indices(),
                values,
                col_means,
            },
            sums,
        })
    }

    /// `sum_j var(A_j)` with `ddof = 1` (two-pass around the column means).
    pub(super) fn total_variance(&self) -> Result<f64> {
        let (p, m) = (self.p, &self.m);
        let acc = self.sums.reduce(|rows| {
            let mut acc = vec![0.0f64; 2 * p];
            for i in rows {
                for k in m.indptr[i]..m.indptr[i + 1] {
                    let j = m.indices[k] as usize;
                    let d = m.values[k] as f64 - m.col_means[j];
                    acc[j] += d * d;
                    acc[p + j] += 1.0;
                }
            }
            acc
        })?;
        let n = self.n_total as f64;
        let c = &m.col_means;
        Ok((0..p)
            .map(|j| acc[j] + (n - acc[p + j]) * c[j] * c[j])
            .sum::<f64>()
            / (n - 1.0))
    }

    /// `out = A b` with `b` genes x `l` and `out` (rows held) x `l`, both row-major,
    /// accumulated in `T` (`f64` for results, `f32` inside the power iterations of the
    /// randomized solver, where a product only needs to keep the subspace, not the digits).
    pub(super) fn mul<T: Acc>(&self, b: &[f64], l: usize, out: &mut [f64]) {
        let mut cb = vec![0.0f64; l];
        for (j, &c) in self.m.col_means.iter().enumerate() {
            if c != 0.0 {
                for (acc, &bv) in cb.iter_mut().zip(&b[j * l..(j + 1) * l]) {
                    *acc += c * bv;
                }
            }
        }
        let bt: Vec<T> = b.iter().map(|&v| T::of(v)).collect();
        let m = &self.m;
        out.par_chunks_mut(l * MUL_ROWS)
            .enumerate()
            .for_each(|(c, o)| {
                let first = c * MUL_ROWS;
                let rows = first..first + o.len() / l;
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx") {
                    // SAFETY: the processor supports AVX (checked just above).
                    unsafe { m.mul_rows_avx(rows, &bt, &cb, l, o) };
                    return;
                }
                m.mul_rows(rows, &bt, &cb, l, o);
            });
    }

    /// `A^T y` with `y` (rows held) x `l` row-major, summed over the rows of the whole matrix;
    /// returns genes x `l` row-major. Each block of [`BLOCK_ROWS`] cells accumulates in `T`
    /// (see [`Operator::mul`]); blocks are summed in `f64`.
    pub(super) fn tmul<T: Acc>(&self, y: &[f64], l: usize) -> Result<Vec<f64>> {
        let (p, m) = (self.p, &self.m);
        let mut acc = self.sums.reduce(|rows| {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx") {
                // SAFETY: the processor supports AVX (checked just above).
                return unsafe { m.tmul_block_avx::<T>(rows, y, l) };
            }
            m.tmul_block::<T>(rows, y, l)
        })?;
        let (head, colsum) = acc.split_at_mut(p * l);
        for (j, row) in head.chunks_mut(l).enumerate() {
            let c = m.col_means[j];
            if c != 0.0 {
                for (a, &s) in row.iter_mut().zip(colsum.iter()) {
                    *a -= c * s;
                }
            }
        }
        acc.truncate(p * l);
        Ok(acc)
    }
}

impl Rows<'_> {
    /// Rows `rows` of `A b` into `out` (`rows.len() x l`), given `bt` (`b` in `T`) and
    /// `cb = c^T b`. Each output element sums its row's stored entries in storage order, so the
    /// result does not depend on how rows are split among threads.
    #[inline(always)]
    pub(super) fn mul_rows<T: Acc>(
        &self,
        rows: Range<usize>,
        bt: &[T],
        cb: &[f64],
        l: usize,
        out: &mut [f64],
    ) {
        let mut row = vec![T::default(); l];
        for (i, o) in rows.zip(out.chunks_mut(l)) {
            let ks = self.indptr[i]..self.indptr[i + 1];
            gather(&mut row, &self.indices[ks.clone()], &self.values[ks], bt, l);
            for ((ov, &r), &c) in o.iter_mut().zip(row.iter()).zip(cb) {
                *ov = r.f64() - c;
            }
        }
    }

    /// [`Rows::mul_rows`] compiled for 256-bit vectors (no FMA: every lane rounds as in
    /// `mul_rows`, so the bits are the same).
    ///
    /// # Safety
    /// The processor must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn mul_rows_avx<T: Acc>(
        &self,
        rows: Range<usize>,
        bt: &[T],
        cb: &[f64],
        l: usize,
        out: &mut [f64],
    ) {
        self.mul_rows(rows, bt, cb, l, out)
    }

    /// One block of [`Operator::tmul`]: `S^T y` over the cells `rows` (genes x `l`, then the
    /// `l` column sums of `y` over these cells). Contributions to each element are added in
    /// cell order.
    #[inline(always)]
    pub(super) fn tmul_block<T: Acc>(&self, rows: Range<usize>, y: &[f64], l: usize) -> Vec<f64> {
        let p = self.p;
        let mut acc = vec![T::default(); p * l];
        let mut colsum = vec![0.0f64; l];
        let mut yrow = vec![T::default(); l];
        for i in rows {
            let y64 = &y[i * l..(i + 1) * l];
            for ((t, &v), cs) in yrow.iter_mut().zip(y64).zip(colsum.iter_mut()) {
                *t = T::of(v);
                *cs += v;
            }
            let ks = self.indptr[i]..self.indptr[i + 1];
            scatter(
                &mut acc,
                &self.indices[ks.clone()],
                &self.values[ks],
                &yrow,
                l,
            );
        }
        let mut out: Vec<f64> = acc.iter().map(|a| a.f64()).collect();
        out.extend_from_slice(&colsum);
        out
    }

    /// [`Rows::tmul_block`] compiled for 256-bit vectors (no FMA, the same bits).
    ///
    /// # Safety
    /// The processor must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn tmul_block_avx<T: Acc>(
        &self,
        rows: Range<usize>,
        y: &[f64],
        l: usize,
    ) -> Vec<f64> {
        self.tmul_block::<T>(rows, y, l)
    }
}

/// Rows per task of [`Operator::mul`] (each row is computed independently, so the split does
/// not change the result).
pub(super) const MUL_ROWS: usize = 64;

/// `row = sum_t vals[t] * bt[idx[t], :]` (`bt` genes x `l` row-major), summed in `t` order
/// for every column. Columns are processed in register-sized chunks (one pass over the
/// entries per chunk), which does not change any column's order of summation.
#[inline(always)]
pub(super) fn gather<T: Acc>(row: &mut [T], idx: &[u32], vals: &[f32], bt: &[T], l: usize) {
    #[inline(always)]
    fn chunk<T: Acc, const W: usize>(
        row: &mut [T],
        idx: &[u32],
        vals: &[f32],
        bt: &[T],
        l: usize,
        c0: usize,
    ) {
        let mut acc = [T::default(); W];
        for (&j, &s) in idx.iter().zip(vals) {
            let s = T::of(s as f64);
            let b = &bt[j as usize * l + c0..][..W];
            for w in 0..W {
                acc[w] += s * b[w];
            }
        }
        row[c0..c0 + W].copy_from_slice(&acc);
    }
    let mut c0 = 0;
    while c0 + 32 <= l {
        chunk::<T, 32>(row, idx, vals, bt, l, c0);
        c0 += 32;
    }
    while c0 + 8 <= l {
        chunk::<T, 8>(row, idx, vals, bt, l, c0);
        c0 += 8;
    }
    while c0 < l {
        chunk::<T, 1>(row, idx, vals, bt, l, c0);
        c0 += 1;
    }
}

/// `acc[idx[t], :] += vals[t] * yrow` for every stored entry `t` (`acc` genes x `l`
/// row-major). Columns are processed in register-sized chunks; each element still receives
/// its contributions in the same order.
#[inline(always)]
pub(super) fn scatter<T: Acc>(acc: &mut [T], idx: &[u32], vals: &[f32], yrow: &[T], l: usize) {
    #[inline(always)]
    fn chunk<T: Acc, const W: usize>(
        acc: &mut [T],
        idx: &[u32],
        vals: &[f32],
        yrow: &[T],
        l: usize,
        c0: usize,
    ) {
        let mut y = [T::default(); W];
        y.copy_from_slice(&yrow[c0..c0 + W]);
        for (&j, &s) in idx.iter().zip(vals) {
            let s = T::of(s as f64);
            let a = &mut acc[j as usize * l + c0..][..W];
            for w in 0..W {
                a[w] += s * y[w];
            }
        }
    }
    let mut c0 = 0;
    while c0 + 32 <= l {
        chunk::<T, 32>(acc, idx, vals, yrow, l, c0);
        c0 += 32;
    }
    while c0 + 8 <= l {
        chunk::<T, 8>(acc, idx, vals, yrow, l, c0);
        c0 += 8;
    }
    while c0 < l {
        chunk::<T, 1>(acc, idx, vals, yrow, l, c0);
        c0 += 1;
    }
}

/// The accumulator type of the sparse products: `f32` or `f64`.
pub(super) trait Acc:
    Copy + Default + Send + Sync + std::ops::AddAssign + std::ops::Mul<Output = Self>
{
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
}

impl Acc for f32 {
    #[inline]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Acc for f64 {
    #[inline]
    fn of(v: f64) -> Self {
        v
    }
    #[inline]
    fn f64(self) -> f64 {
        self
    }
}
