//! Library-size normalization (Scanpy's `normalize_total`) and `log1p`.
//!
//! The arithmetic follows Scanpy 1.11.5 on a `float32` CSR matrix step by step, so that values
//! agree to a few ulps:
//! 1. `total_i = sum_j x_ij` accumulated in `f64`, stored as `f32` (Scanpy's numba kernel);
//! 2. `target = target_sum` or, when `None`, `median(total)` over **all** cells, in `f32`
//!    (Scanpy's CSR path calls `np.median(counts_per_cell)`; only its dense path takes the
//!    median of the non-zero totals);
//! 3. size factor `s_i = f32(total_i / target)`; a zero size factor is replaced by 1 (cells
//!    with no counts stay zero, no NaN);
//! 4. `y_ij = f32(x_ij / s_i)`.

use crate::error::{Error, Result};
use crate::sparse::{ColIndex, CsrMatrix, StoredValue};
use rayon::prelude::*;

/// Options of [`normalize_total`].
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizeOptions {
    /// Total of every cell after normalization. Default `None`: the median of the cells'
    /// totals (Scanpy's default); `Some(1e4)` is the usual "counts per 10k".
    pub target_sum: Option<f64>,
    /// Leave out genes that make up more than `max_fraction` of some cell's total from every
    /// cell's total (Scanpy's `exclude_highly_expressed`). Default `false`.
    pub exclude_highly_expressed: bool,
    /// See `exclude_highly_expressed`. Default `0.05`; must be in `[0, 1]`.
    pub max_fraction: f64,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions {
            target_sum: None,
            exclude_highly_expressed: false,
            max_fraction: 0.05,
        }
    }
}

impl NormalizeOptions {
    /// Checks the options: `max_fraction` in [0, 1], a positive finite `target_sum`.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.max_fraction) {
            return Err(Error::option(
                "max_fraction",
                format!("must be in [0, 1], got {}", self.max_fraction),
            ));
        }
        if let Some(t) = self.target_sum {
            if !t.is_finite() || t <= 0.0 {
                return Err(Error::option(
                    "target_sum",
                    format!("must be positive and finite, got {t}"),
                ));
            }
        }
        Ok(())
    }
}

/// Result of [`normalize_total`].
#[derive(Debug, Clone)]
pub struct Normalized {
    /// Normalized values (same sparsity pattern as the counts).
    pub matrix: CsrMatrix,
    /// Per cell: the total used for the size factor (without the excluded genes when
    /// `exclude_highly_expressed`).
    pub totals: Vec<f32>,
    /// Per cell: `totals / target_sum` (Scanpy's `norm_factor`); zero for a cell with no
    /// counts, which is left unscaled.
    pub size_factors: Vec<f32>,
    /// The target sum used.
    pub target_sum: f32,
    /// Genes excluded from the totals (empty unless `exclude_highly_expressed`).
    pub excluded_genes: Vec<usize>,
}

/// Library-size normalization: every cell is scaled to the same total, as Scanpy's
/// `sc.pp.normalize_total` (formula and float32 arithmetic in the module docs).
///
/// With `exclude_highly_expressed`, a gene is excluded when in at least one cell
/// `x_ij > max_fraction * total_i` (compared in `f64`), and the totals are recomputed
/// without the excluded genes; all genes are still scaled.
///
/// The input is borrowed; the output holds one new values array (indices and row pointers
/// are copied too, as Scanpy does).
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// let n = scrna::normalize::normalize_total(&data.counts.to_csr(), &Default::default())?;
/// assert_eq!(n.totals.len(), data.n_cells());
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn normalize_total(counts: &CsrMatrix, opts: &NormalizeOptions) -> Result<Normalized> {
    normalize(counts, opts, false)
}

/// [`normalize_total`] followed by [`log1p`], in one pass over the values: the result is
/// bit-for-bit the same, `ln(1 + f32(x_ij / s_i))`. For integer counts from 1 to 63 the logarithm
/// is computed once per distinct count in each cell (most counts are small integers), which
/// makes this several times faster than the two steps one after the other.
pub fn normalize_total_log1p(counts: &CsrMatrix, opts: &NormalizeOptions) -> Result<Normalized> {
    normalize(counts, opts, true)
}

/// Totals, size factors and target of [`normalize_total`] (the matrix left empty).
///
/// `known`: the per-cell sums of the counts in `f64` when already computed (as the QC
/// metrics' `total_counts`), used for every cell whose sum is not zero (summed from the first
/// value on, a non-zero sum is the same number in either order of zeros); the others are
/// summed here.
fn size_factors(
    counts: &CsrMatrix,
    opts: &NormalizeOptions,
    known: Option<&[f64]>,
) -> Result<Normalized> {
    opts.validate()?;
    let row_total = |v: &[f32]| crate::sparse::sum_f64(v) as f32;
    let mut totals: Vec<f32> = match known {
        Some(k) if !opts.exclude_highly_expressed => {
            if k.len() != counts.n_rows() {
                return Err(Error::data(
                    "normalize_total",
                    format!("{} cell totals for {} cells", k.len(), counts.n_rows()),
                ));
            }
            k.iter()
                .enumerate()
                .map(|(r, &t)| cell_total(t, counts.row(r).1))
                .collect()
        }
        _ => counts.par_rows().map(|(_, _, v)| row_total(v)).collect(),
    };
    let mut excluded_genes = Vec::new();
    if opts.exclude_highly_expressed {
        let mf = opts.max_fraction;
        let n_cols = counts.n_cols();
        let tot = &totals;
        let flags = counts
            .par_rows()
            .fold(
                || vec![false; n_cols],
                |mut acc, (r, idx, val)| {
                    let lim = mf * tot[r] as f64;
                    for (&c, &v) in idx.iter().zip(val) {
                        if v as f64 > lim {
                            acc[c as usize] = true;
                        }
                    }
                    acc
                },
            )
            .reduce(
                || vec![false; n_cols],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x |= y;
                    }
                    a
                },
            );
        excluded_genes = (0..n_cols).filter(|&c| flags[c]).collect();
        totals = counts
            .par_rows()
            .map(|(_, idx, v)| {
                idx.iter()
                    .zip(v)
                    .filter(|(c, _)| !flags[**c as usize])
                    .map(|(_, &x)| x as f64)
                    .sum::<f64>() as f32
            })
            .collect();
    }
    let target: f32 = match opts.target_sum {
        Some(t) => t as f32,
        None => median_f32(&totals),
    };
    if !(target.is_finite() && target > 0.0) {
        return Err(Error::data(
            "normalize_total",
            "the median total is zero: set target_sum",
        ));
    }
    let size_factors: Vec<f32> = totals.iter().map(|&t| t / target).collect();
    Ok(Normalized {
        matrix: CsrMatrix::zeros(0, 0),
        totals,
        size_factors,
        target_sum: target,
        excluded_genes,
    })
}

/// A cell's total for its size factor (step 1 of the module docs): `known`, the `f64` sum of
/// its counts over the same genes computed earlier (the QC total), when it is not zero, else
/// the sum of its stored `values`; stored as `f32`. A non-zero sum is the same number in either
/// order of zeros, so this is the total that `normalize_total` sums itself.
#[inline]
pub(crate) fn cell_total<V: StoredValue>(known: f64, values: &[V]) -> f32 {
    if known != 0.0 {
        known as f32
    } else {
        crate::sparse::sum_values(values) as f32
    }
}

fn normalize(counts: &CsrMatrix, opts: &NormalizeOptions, log: bool) -> Result<Normalized> {
    let mut out = size_factors(counts, opts, None)?;
    let size_factors = &out.size_factors;
    let mut matrix = counts.same_pattern();
    matrix.map_rows_mut(|r, _, vals| {
        let s = size_factors[r];
        let s = if s == 0.0 { 1.0 } else { s };
        vals.copy_from_slice(counts.row(r).1);
        if !log {
            for v in vals.iter_mut() {
                *v /= s;
            }
            return;
        }
        // ln(1 + c / s) of the integer counts c in 1..64, filled in on first use (NaN = not yet)
        let mut cache = [f32::NAN; 64];
        for v in vals.iter_mut() {
            let c = *v;
            *v = if is_small_count(c) {
                let slot = &mut cache[c as usize];
                if slot.is_nan() {
                    *slot = (c / s).ln_1p();
                }
                *slot
            } else {
                (c / s).ln_1p()
            };
        }
    });
    out.matrix = matrix;
    Ok(out)
}

/// An integer count from 1 to 63, whose transformed values are cached per cell.
#[inline]
fn is_small_count(c: f32) -> bool {
    (1.0..64.0).contains(&c) && c == (c as u32) as f32
}

/// Which per-gene sums [`normalize_log1p_col_sums`] accumulates from the log values `y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColSums {
    /// `e = expm1(y)` (the `seurat` HVG flavor).
    Expm1,
    /// `e = y` (the `cell_ranger` flavor).
    Log,
}

/// [`normalize_total_log1p`] that also returns, per gene, `[sum e, sum e*e, non-zeros]` over
/// all cells (`e * e` in `f32`, sums in `f64`), added in exactly the order of
/// `qc::col_reduce` over the log values (cells in its fixed row blocks, each block summed in
/// row order, the block sums added in block order): the same numbers, bit for bit, as that
/// reduction over the returned matrix, without a second pass over it. For integer counts from
/// 1 to 63, `y`, `e` and `e * e` are computed once per distinct count in each cell.
///
/// `totals`: the per-cell sums of `counts` when known (see `size_factors`).
///
/// `write`: false leaves `matrix` of the result empty (0 x 0) and only sums (the log values
/// are then read through [`crate::lognorm::LogCounts`]).
pub(crate) fn normalize_log1p_col_sums(
    counts: &CsrMatrix,
    opts: &NormalizeOptions,
    kind: ColSums,
    totals: Option<&[f64]>,
    write: bool,
) -> Result<(Normalized, Vec<[f64; 3]>)> {
    let mut out = size_factors(counts, opts, totals)?;
    let sf = &out.size_factors;
    let n = counts.n_rows();
    let n_cols = counts.n_cols();
    let block = crate::qc::col_block_len(n);
    let mut matrix = if write {
        counts.same_pattern()
    } else {
        CsrMatrix::zeros(0, 0)
    };
    let ptr = counts.indptr();
    // The values of each row block, as disjoint slices (none when not writing).
    let mut blocks: Vec<(usize, usize, Option<&mut [f32]>)> = Vec::with_capacity(n.div_ceil(block));
    let mut rest: &mut [f32] = matrix.data_mut();
    for b in 0..n.div_ceil(block) {
        let (lo, hi) = (b * block, ((b + 1) * block).min(n));
        if write {
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(ptr[hi] - ptr[lo]);
            blocks.push((lo, hi, Some(mine)));
            rest = tail;
        } else {
            blocks.push((lo, hi, None));
        }
    }
    let expm1 = kind == ColSums::Expm1;
    // Per block: per gene [sum e, sum e*e] and the number of non-zero log values (an exact
    // integer, so counting it in u32 gives the same sums).
    let parts: Vec<LogMoments> = blocks
        .into_par_iter()
        .map(|(lo, hi, mut vals)| {
            let mut part = LogMoments::new(n_cols);
            let mut off = 0;
            for (r, &s) in sf.iter().enumerate().take(hi).skip(lo) {
                let (idx, cv) = counts.row(r);
                let out = match vals.as_deref_mut() {
                    Some(v) => match v.get_mut(off..off + cv.len()) {
                        Some(o) => Some(o),
                        None => break,
                    },
                    None => None,
                };
                off += cv.len();
                part.add_row(idx, cv, s, expm1, out);
            }
            part
        })
        .collect();
    let sums = LogMoments::sum(parts, n_cols)?;
    out.matrix = matrix;
    Ok((out, sums))
}

/// The block accumulator of the normalization's per-gene moments: what a block of cells adds
/// to `[sum e, sum e*e]` and to the non-zero log values of every gene, where
/// `y = ln(1 + c / s)` and `e = expm1(y)` or `y`, and how the blocks add up (in block order).
///
/// Every path that sums these moments feeds it: [`normalize_log1p_col_sums`] (the fixed row
/// blocks of the matrix, in parallel), the pipeline's pass that folds the normalization into
/// the filter's compaction of the kept cells (`pipeline::preprocess`), and the streamed
/// analysis's HVG pass (the same fixed row blocks of the kept cells, read from the file), so
/// the three give the same sums, bit for bit, with the same per-cell cache of the log values
/// of small integer counts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogMoments {
    /// Per gene: `[sum e, sum e*e]` (`e * e` in `f32`, sums in `f64`).
    pub(crate) acc: Vec<[f64; 2]>,
    /// Per gene: the non-zero log values.
    pub(crate) nz: Vec<u32>,
}

impl LogMoments {
    pub(crate) fn new(n_cols: usize) -> Self {
        LogMoments {
            acc: vec![[0f64; 2]; n_cols],
            nz: vec![0u32; n_cols],
        }
    }

    /// Adds one cell (its stored counts `cv` at columns `idx`, size factor `s`; 0 is taken
    /// as 1), writing its log values to `out` when given. For the integer counts 1..64 of the
    /// cell, `y` and `e` are computed once per distinct count.
    #[inline]
    pub(crate) fn add_row<V: StoredValue, I: ColIndex>(
        &mut self,
        idx: &[I],
        cv: &[V],
        s: f32,
        expm1: bool,
        out: Option<&mut [f32]>,
    ) {
        match out {
            Some(o) => self.add_row_with(idx, cv, s, expm1, |j, y| {
                if let Some(o) = o.get_mut(j) {
                    *o = y;
                }
            }),
            None => self.add_row_with(idx, cv, s, expm1, |_, _| {}),
        }
    }

    /// [`add_row`](Self::add_row), handing each log value to `put(position, y)`.
    #[inline(always)]
    fn add_row_with<V: StoredValue, I: ColIndex>(
        &mut self,
        idx: &[I],
        cv: &[V],
        s: f32,
        expm1: bool,
        mut put: impl FnMut(usize, f32),
    ) {
        let mut logs = RowLogs::new(s, expm1);
        for (j, (&c, &g)) in cv.iter().zip(idx).enumerate() {
            let (y, e) = logs.get(c.to_f32());
            put(j, y);
            let g = g.ix();
            if let (Some(a), Some(n)) = (self.acc.get_mut(g), self.nz.get_mut(g)) {
                a[0] += e[0];
                a[1] += e[1];
                *n += (y != 0.0) as u32;
            }
        }
    }

    /// [`add_row`](Self::add_row) for a range of genes alone, into their sums `acc` and `nz`
    /// (slices of a [`LogMoments`]): the entry at column `g` goes to position `at(g)` of the
    /// slices (for the genes `g0..g0 + acc.len()`, `g - g0`; the streamed pass maps the file's
    /// genes to the kept ones), and an entry whose position is out of range is skipped before
    /// any logarithm. Each gene gets the same terms in the same order as from `add_row`, so
    /// tasks holding disjoint ranges of genes of one block give its sums bit for bit.
    #[inline]
    pub(crate) fn add_row_part(
        acc: &mut [[f64; 2]],
        nz: &mut [u32],
        idx: &[u32],
        cv: &[f32],
        s: f32,
        expm1: bool,
        at: impl Fn(u32) -> usize,
    ) {
        let mut logs = RowLogs::new(s, expm1);
        for (&c, &g) in cv.iter().zip(idx) {
            let k = at(g);
            if let (Some(a), Some(n)) = (acc.get_mut(k), nz.get_mut(k)) {
                let (y, e) = logs.get(c);
                a[0] += e[0];
                a[1] += e[1];
                *n += (y != 0.0) as u32;
            }
        }
    }

    /// Adds the sums of the next block (blocks in order); an error when they are over another
    /// number of genes.
    pub(crate) fn add(&mut self, next: &LogMoments) -> Result<()> {
        let n = self.acc.len();
        if next.acc.len() != n || next.nz.len() != n || self.nz.len() != n {
            return Err(Error::data(
                "normalization moments",
                format!("sums over {} genes added to sums over {n}", next.acc.len()),
            ));
        }
        for ((a, n), (b, m)) in self
            .acc
            .iter_mut()
            .zip(&mut self.nz)
            .zip(next.acc.iter().zip(&next.nz))
        {
            a[0] += b[0];
            a[1] += b[1];
            *n += m;
        }
        Ok(())
    }

    /// Per gene `[sum e, sum e*e, non-zeros]`.
    pub(crate) fn finish(&self) -> Vec<[f64; 3]> {
        self.acc
            .iter()
            .zip(&self.nz)
            .map(|(a, &n)| [a[0], a[1], n as f64])
            .collect()
    }

    /// Per gene `[sum e, sum e*e, non-zeros]` over the blocks, added in block order.
    pub(crate) fn sum(parts: Vec<LogMoments>, n_cols: usize) -> Result<Vec<[f64; 3]>> {
        let mut total = LogMoments::new(n_cols);
        for p in &parts {
            total.add(p)?;
        }
        Ok(total.finish())
    }
}

/// The log values of one cell: `y = ln(1 + c / s)` (a size factor of 0 taken as 1, bit for bit
/// [`crate::lognorm::log_value`]) and `[e, e * e]` with `e = expm1(y)` or `y`, computed once
/// per distinct integer count 1..64 (the streamed load pass takes `y` alone).
pub(crate) struct RowLogs {
    s: f32,
    expm1: bool,
    filled: u64,
    cy: [f32; 64],
    ce: [[f64; 2]; 64],
}

impl RowLogs {
    #[inline(always)]
    pub(crate) fn new(s: f32, expm1: bool) -> Self {
        RowLogs {
            s: if s == 0.0 { 1.0 } else { s },
            expm1,
            filled: 0,
            cy: [0f32; 64],
            ce: [[0f64; 2]; 64],
        }
    }

    #[inline(always)]
    fn compute(&self, c: f32) -> (f32, [f64; 2]) {
        let y = (c / self.s).ln_1p();
        let e = if self.expm1 { y.exp_m1() } else { y };
        (y, [e as f64, (e * e) as f64])
    }

    #[inline(always)]
    pub(crate) fn get(&mut self, c: f32) -> (f32, [f64; 2]) {
        let k = c as u32;
        if k.wrapping_sub(1) < 63 && k as f32 == c {
            let k = k as usize & 63;
            if (self.filled >> k) & 1 == 0 {
                (self.cy[k], self.ce[k]) = self.compute(c);
                self.filled |= 1 << k;
            }
            (self.cy[k], self.ce[k])
        } else {
            self.compute(c)
        }
    }
}

/// `np.median` of a float32 array: the middle value, or for an even count the mean of the two
/// middle values computed in `f32`. NaN when empty.
pub(crate) fn median_f32(v: &[f32]) -> f32 {
    if v.is_empty() {
        return f32::NAN;
    }
    let mut s = v.to_vec();
    let n = s.len();
    let (_, hi, _) = s.select_nth_unstable_by(n / 2, |a, b| a.total_cmp(b));
    let hi = *hi;
    if n % 2 == 1 {
        return hi;
    }
    let lo = s[..n / 2]
        .iter()
        .copied()
        .max_by(|a, b| a.total_cmp(b))
        .unwrap_or(hi);
    // numpy's mean of two float32 values: (lo + hi) / 2 in float32.
    (lo + hi) / 2.0
}

/// Natural `ln(1 + x)` of every stored value, in place (Scanpy's `sc.pp.log1p`; zeros stay
/// zero, so the sparsity pattern is kept).
pub fn log1p(x: &mut CsrMatrix) {
    x.data_mut().par_iter_mut().for_each(|v| *v = v.ln_1p());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(dense: &[&[f32]]) -> CsrMatrix {
        CsrMatrix::from_dense_rows(dense)
    }

    #[test]
    fn moments_by_gene_ranges_equal_whole_rows() {
        // 50 cells x 23 genes: small counts (cached), large and non-integer ones, zeros
        let rows: Vec<Vec<f32>> = (0..50)
            .map(|i| {
                (0..23)
                    .map(|j| match (i * 7 + j * 3) % 11 {
                        0..=2 => 0.0,
                        3 => 0.5 + j as f32,
                        4 => 200.0 + i as f32,
                        k => k as f32,
                    })
                    .collect()
            })
            .collect();
        let x = CsrMatrix::from_dense_rows(&rows);
        for expm1 in [true, false] {
            let mut whole = LogMoments::new(23);
            for r in 0..50 {
                let (idx, cv) = x.row(r);
                whole.add_row(idx, cv, 0.37 + r as f32, expm1, None);
            }
            for per in [1, 5, 23, 40] {
                let mut parts = LogMoments::new(23);
                for (t, (acc, nz)) in parts
                    .acc
                    .chunks_mut(per)
                    .zip(parts.nz.chunks_mut(per))
                    .enumerate()
                {
                    for r in 0..50 {
                        let (idx, cv) = x.row(r);
                        let g0 = t * per;
                        let at = |g: u32| (g as usize).wrapping_sub(g0);
                        LogMoments::add_row_part(acc, nz, idx, cv, 0.37 + r as f32, expm1, at);
                    }
                }
                assert_eq!(parts, whole, "ranges of {per} genes, expm1 {expm1}");
            }
        }
    }

    #[test]
    fn row_logs_are_log_value_bit_for_bit() {
        use crate::lognorm::log_value;
        for s in [0.0f32, 0.37, 1.0, 2.5e3] {
            let mut logs = RowLogs::new(s, false);
            // each count twice: computed, then remembered
            for c in (0..70)
                .chain(0..70)
                .map(|c| c as f32)
                .chain([2.5, 63.5, 1e6, 0.0])
            {
                assert_eq!(
                    logs.get(c).0.to_bits(),
                    log_value(c, s).to_bits(),
                    "{c} / {s}"
                );
            }
        }
    }

    #[test]
    fn scanpy_docstring_examples() {
        let x = m(&[
            &[3., 3., 3., 6., 6.],
            &[1., 1., 1., 2., 2.],
            &[1., 22., 1., 2., 2.],
        ]);
        let n = normalize_total(
            &x,
            &NormalizeOptions {
                target_sum: Some(1.0),
                ..Default::default()
            },
        )
        .unwrap();
        let d = n.matrix.to_dense();
        assert!((d[(0, 3)] - 6.0 / 21.0).abs() < 1e-7);
        assert!((d[(2, 1)] - 22.0 / 28.0).abs() < 1e-7);
        // exclude_highly_expressed, max_fraction 0.2: genes 1, 3, 4 are excluded
        let n = normalize_total(
            &x,
            &NormalizeOptions {
                target_sum: Some(1.0),
                exclude_highly_expressed: true,
                max_fraction: 0.2,
            },
        )
        .unwrap();
        assert_eq!(n.excluded_genes, vec![1, 3, 4]);
        let d = n.matrix.to_dense();
        assert_eq!(d.row(0).to_vec(), vec![0.5, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(d.row(2).to_vec(), vec![0.5, 11.0, 0.5, 1.0, 1.0]);
    }

    #[test]
    fn fused_log1p_is_bit_identical() {
        let x = m(&[
            &[3., 0., 1., 70.5, 6.],
            &[1., 1., 1., 2., 200.],
            &[0., 0., 0., 0., 0.],
            &[1., 22., 1., 2.5, 2.],
        ]);
        for target_sum in [None, Some(1e4)] {
            let opts = NormalizeOptions {
                target_sum,
                ..Default::default()
            };
            let mut two = normalize_total(&x, &opts).unwrap().matrix;
            log1p(&mut two);
            let one = normalize_total_log1p(&x, &opts).unwrap().matrix;
            assert_eq!(one.indices(), two.indices());
            let a: Vec<u32> = one.data().iter().map(|v| v.to_bits()).collect();
            let b: Vec<u32> = two.data().iter().map(|v| v.to_bits()).collect();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn median_target_and_zero_cells() {
        let x = m(&[&[1., 3.], &[0., 0.], &[5., 5.], &[2., 0.]]);
        // totals 4, 0, 10, 2 -> median over all cells (Scanpy CSR path) = (2 + 4) / 2 = 3
        let n = normalize_total(&x, &NormalizeOptions::default()).unwrap();
        assert_eq!(n.target_sum, 3.0);
        assert_eq!(n.size_factors[1], 0.0);
        let sums = n.matrix.row_sums();
        assert!((sums[0] - 3.0).abs() < 1e-6 && (sums[2] - 3.0).abs() < 1e-6);
        assert_eq!(sums[1], 0.0);
        let mut l = n.matrix.clone();
        log1p(&mut l);
        assert!(l.data().iter().all(|v| v.is_finite()));
        assert!((l.get(3, 0) - 4.0f32.ln()).abs() < 1e-6);
        assert!(normalize_total(
            &x,
            &NormalizeOptions {
                max_fraction: 2.0,
                ..Default::default()
            }
        )
        .is_err());
        assert!(normalize_total(
            &x,
            &NormalizeOptions {
                target_sum: Some(-1.0),
                ..Default::default()
            }
        )
        .is_err());
    }
}
