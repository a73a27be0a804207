//! Per-gene moments (mean and variance, n - 1) of the values `highly_variable_genes` reads,
//! with Scanpy's arithmetic and exactly 0 for a constant gene, including the pass that
//! computes them while the counts are normalized.

use super::Flavor;
use crate::error::{Error, Result};
use crate::lognorm::{with_indices, LogCounts, MatrixValues};
use crate::normalize::{normalize_log1p_col_sums, ColSums, NormalizeOptions, Normalized};
use crate::qc::col_reduce;
use crate::sparse::{ColIndex, CsrMatrix};

/// Per column over `rows`: whether every cell holds the same value (implicit zeros included).
pub(super) fn constant_columns(x: &CsrMatrix, rows: Option<&[usize]>) -> Vec<bool> {
    let n = rows.map_or(x.n_rows(), |r| r.len());
    let p = x.n_cols();
    let mut first = vec![0f32; p];
    let mut stored = vec![0usize; p];
    let mut same = vec![true; p];
    for i in 0..n {
        let (idx, val) = x.row(rows.map_or(i, |r| r[i]));
        for (&c, &v) in idx.iter().zip(val) {
            let c = c as usize;
            if stored[c] == 0 {
                first[c] = v;
            } else if v != first[c] {
                same[c] = false;
            }
            stored[c] += 1;
        }
    }
    (0..p)
        .map(|c| same[c] && (stored[c] == 0 || stored[c] == n || first[c] == 0.0))
        .collect()
}

/// Whether column `c` of `x` holds the same value in every one of `rows` (all of them
/// stored), checked row by row until two values differ.
fn same_in_every_row<X: MatrixValues + ?Sized>(x: &X, rows: Option<&[usize]>, c: u32) -> bool {
    let n = rows.map_or(x.shape().0, |r| r.len());
    let (indptr, indices) = (x.indptr(), x.indices());
    let mut buf = Vec::with_capacity(1);
    let mut value = |i: usize| {
        let r = rows.map_or(i, |r| r[i]);
        let (a, b) = (indptr[r], indptr[r + 1]);
        let k =
            with_indices!(indices, ix => ix[a..b].binary_search_by(|v| v.ix().cmp(&(c as usize))))
                .ok()?;
        let at = a + k;
        buf.clear();
        x.values_into(r, at..at + 1, &mut buf);
        buf.first().copied()
    };
    let Some(first) = value(0) else {
        return false;
    };
    (1..n).all(|i| value(i).is_some_and(|v| v == first))
}

/// Mean and variance (n - 1) per column over `rows`, with Scanpy's arithmetic; `f` maps a
/// stored value to the value whose moments are wanted (in `f32`). The variance of a column
/// with the same value in every cell is exactly 0 (the sums of squares would leave a rounding
/// residue).
pub(super) fn mean_var<F: Fn(f32) -> f32 + Sync>(
    x: &CsrMatrix,
    rows: Option<&[usize]>,
    f: F,
) -> (Vec<f64>, Vec<f64>, Vec<u32>) {
    let s = col_reduce::<3, _>(x, rows, |v| {
        let e = f(v);
        [e as f64, (e * e) as f64, (v != 0.0) as u8 as f64]
    });
    finish_mean_var(&s, x, rows)
}

/// [`mean_var`] from the per-column sums `[sum e, sum e*e, non-zeros of the stored values]`
/// over `rows` of `x`.
///
/// A constant column gets variance 0. Only the columns with a non-zero value in every row
/// need checking: every other constant column holds zeros only, where the sums are exactly 0
/// and so is the variance.
fn finish_mean_var<X: MatrixValues + ?Sized>(
    s: &[[f64; 3]],
    x: &X,
    rows: Option<&[usize]>,
) -> (Vec<f64>, Vec<f64>, Vec<u32>) {
    let n_rows = rows.map_or(x.shape().0, |r| r.len());
    mean_var_from_sums(s, n_rows, |c| same_in_every_row(x, rows, c as u32))
}

/// Mean and variance (n - 1) per gene from the sums `[sum e, sum e*e, non-zeros]` over
/// `n_rows` cells, with Scanpy's arithmetic: `m = sum e / n`, `v = (sum e² / n - m²) n / (n -
/// 1)`, and exactly 0 for a constant gene. `same_everywhere(c)` says whether gene `c` holds the
/// same value in every cell; it is asked only for the genes that are non-zero in every cell
/// (every other constant gene holds zeros only, where the sums and the variance are exactly 0).
pub(crate) fn mean_var_from_sums(
    s: &[[f64; 3]],
    n_rows: usize,
    same_everywhere: impl Fn(usize) -> bool,
) -> (Vec<f64>, Vec<f64>, Vec<u32>) {
    let n = n_rows as f64;
    let mut means = Vec::with_capacity(s.len());
    let mut vars = Vec::with_capacity(s.len());
    let mut nnz = Vec::with_capacity(s.len());
    for (c, q) in s.iter().enumerate() {
        let constant = n_rows == 0 || (q[2] as usize == n_rows && same_everywhere(c));
        let m = q[0] / n;
        let v = q[1] / n - m * m;
        means.push(m);
        vars.push(if constant {
            0.0
        } else if n != 1.0 {
            v * (n / (n - 1.0))
        } else {
            v
        });
        nnz.push(q[2] as u32);
    }
    (means, vars, nnz)
}

/// Per-gene moments of the log-normalized values for the `Seurat` and `CellRanger` flavors
/// (see [`normalize_log1p_moments`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HvgMoments {
    /// Per gene: mean of `expm1(X)` (`Seurat`) or of `X` (`CellRanger`) over all cells.
    pub means: Vec<f64>,
    /// Per gene: variance (n - 1 denominator) of the same values; exactly 0 for a gene with
    /// the same value in every cell.
    pub variances: Vec<f64>,
}

/// [`normalize_total_log1p`](crate::normalize::normalize_total_log1p) and the per-gene moments
/// of [`highly_variable_genes`](super::highly_variable_genes) in one pass over the counts: the returned matrix is bit for bit
/// that of `normalize_total_log1p`,
/// and `highly_variable_from_moments(moments.means, &moments.variances, opts)` gives exactly
/// `highly_variable_genes(&matrix, None, None, opts)` for `opts.flavor == flavor`.
///
/// The moments are accumulated while the log values are written, in the same order and with
/// the same `f32` / `f64` arithmetic as [`highly_variable_genes`](super::highly_variable_genes) (fixed cell blocks, so the
/// result does not depend on the number of threads); for the integer counts from 1 to 63 of a
/// cell, `expm1` is evaluated once per distinct count. This saves the second pass over the
/// log values and most of the `expm1` calls of the two steps run one after the other.
///
/// `cell_totals`: the sum of the counts of every cell in `f64` when already known (the
/// `total_counts` of [`crate::qc::metrics`] or [`crate::qc::filter_with_kept_metrics`] for
/// this same matrix), which saves the pass that sums them; `None` sums them here. Not used with
/// `exclude_highly_expressed` (the totals leave genes out).
///
/// Errors: `flavor` [`Flavor::SeuratV3`] (computed from the counts), fewer than 2 cells,
/// `cell_totals` of the wrong length, and the errors of `normalize_total_log1p`.
pub fn normalize_log1p_moments(
    counts: &CsrMatrix,
    norm: &NormalizeOptions,
    flavor: Flavor,
    cell_totals: Option<&[f64]>,
) -> Result<(Normalized, HvgMoments)> {
    moments(counts, norm, flavor, cell_totals, true)
}

/// [`normalize_log1p_moments`] without storing the log values: the returned `matrix` is empty
/// (0 x 0) and the size factors, totals and moments are the same, bit for bit. The log values
/// are read through [`LogCounts`] (`LogCounts::new(counts, &normalized.size_factors)`), which
/// computes each one when read; this pass then only reads the counts.
pub fn log1p_moments(
    counts: &CsrMatrix,
    norm: &NormalizeOptions,
    flavor: Flavor,
    cell_totals: Option<&[f64]>,
) -> Result<(Normalized, HvgMoments)> {
    moments(counts, norm, flavor, cell_totals, false)
}

fn moments(
    counts: &CsrMatrix,
    norm: &NormalizeOptions,
    flavor: Flavor,
    cell_totals: Option<&[f64]>,
    write: bool,
) -> Result<(Normalized, HvgMoments)> {
    let kind = match flavor {
        Flavor::Seurat => ColSums::Expm1,
        Flavor::CellRanger => ColSums::Log,
        Flavor::SeuratV3 => {
            return Err(Error::option(
                "flavor",
                "seurat_v3 is computed from the counts, not from moments of the log values",
            ))
        }
    };
    if counts.n_rows() < 2 {
        return Err(Error::data(
            "highly_variable_genes",
            "need at least 2 cells",
        ));
    }
    let (normalized, sums) = normalize_log1p_col_sums(counts, norm, kind, cell_totals, write)?;
    let (means, variances, _) = if write {
        finish_mean_var(&sums, &normalized.matrix, None)
    } else {
        let view = LogCounts::new(counts, &normalized.size_factors)?;
        finish_mean_var(&sums, &view, None)
    };
    Ok((normalized, HvgMoments { means, variances }))
}

/// The moments of [`normalize_log1p_moments`] from per-gene `[sum e, sum e*e, non-zeros]`
/// summed as there (fixed cell blocks in order) over the log values that `x` reads.
pub(crate) fn moments_from_col_sums(sums: &[[f64; 3]], x: &LogCounts<'_>) -> HvgMoments {
    let (means, variances, _) = finish_mean_var(sums, x, None);
    HvgMoments { means, variances }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hvg::{highly_variable_from_moments, highly_variable_genes, HvgOptions};

    /// Counts with what the fused pass must handle: counts above the per-cell cache (>= 64),
    /// non-integer values, an explicit zero, an empty cell, a gene detected nowhere, a gene
    /// with the same count in every cell, and (rows 40..44, identical) cells whose log values
    /// are equal.
    fn awkward_counts() -> CsrMatrix {
        let sim = crate::simulate::simulate(&crate::simulate::SimulateOptions {
            n_cells: 120,
            n_genes: 300,
            n_markers: 5,
            library_size: 4000.0,
            ..Default::default()
        })
        .unwrap();
        let x = sim.dataset.counts.into_csr();
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        for i in 0..x.n_rows() {
            if i == 7 {
                continue; // empty cell
            }
            let src = if (40..44).contains(&i) { 40 } else { i };
            let (idx, val) = x.row(src);
            for (k, (&g, &y)) in idx.iter().zip(val).enumerate() {
                if g == 3 || g == 4 {
                    continue;
                }
                let y = match k % 11 {
                    0 => y * 0.37,
                    1 => y + 64.0,
                    _ => y,
                };
                r.push(i as u32);
                c.push(g);
                v.push(y);
            }
            // gene 3: the same count everywhere (not constant after normalization)
            r.push(i as u32);
            c.push(3);
            v.push(2.0);
        }
        // an explicit zero
        r.push(0);
        c.push(4);
        v.push(0.0);
        CsrMatrix::from_triplets(x.n_rows(), x.n_cols(), &r, &c, &v).unwrap()
    }

    #[test]
    fn fused_moments_equal_the_two_steps() {
        let x = awkward_counts();
        for flavor in [Flavor::Seurat, Flavor::CellRanger] {
            for target_sum in [None, Some(1e4)] {
                let norm = NormalizeOptions {
                    target_sum,
                    ..Default::default()
                };
                let opts = HvgOptions {
                    flavor,
                    n_top_genes: Some(50),
                    ..Default::default()
                };
                let two = crate::normalize::normalize_total_log1p(&x, &norm).unwrap();
                let (one, m) = normalize_log1p_moments(&x, &norm, flavor, None).unwrap();
                // with the QC totals: the same, bit for bit
                let sums = crate::qc::QcSums::of_block(&x, &[]);
                let t: Vec<f64> = sums.per_cell.iter().map(|c| c.0).collect();
                let (again, m2) = normalize_log1p_moments(&x, &norm, flavor, Some(&t)).unwrap();
                assert_eq!(format!("{:?}", again.totals), format!("{:?}", one.totals));
                assert_eq!(again.matrix, one.matrix);
                assert_eq!(format!("{m2:?}"), format!("{m:?}"));
                // without storing the log values: the same moments and size factors
                let (lazy, m3) = log1p_moments(&x, &norm, flavor, Some(&t)).unwrap();
                assert_eq!(format!("{m3:?}"), format!("{m:?}"));
                assert_eq!(lazy.size_factors, one.size_factors);
                assert_eq!(lazy.matrix.nnz(), 0);
                assert_eq!(one.matrix.indices(), two.matrix.indices());
                let bits = |v: &[f32]| v.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(one.matrix.data()), bits(two.matrix.data()));
                assert_eq!(one.size_factors, two.size_factors);
                let direct = highly_variable_genes(&two.matrix, None, None, &opts).unwrap();
                let fused = highly_variable_from_moments(m.means, &m.variances, &opts).unwrap();
                // Debug strings: NaN dispersions compare equal, every other value exactly
                assert_eq!(format!("{fused:?}"), format!("{direct:?}"), "{flavor:?}");
            }
        }
        let opts = NormalizeOptions::default();
        assert!(normalize_log1p_moments(&x, &opts, Flavor::SeuratV3, None).is_err());
        let one_cell = x.select_rows(&[0]).unwrap();
        assert!(normalize_log1p_moments(&one_cell, &opts, Flavor::Seurat, None).is_err());
        assert!(normalize_log1p_moments(&x, &opts, Flavor::Seurat, Some(&[1.0])).is_err());
    }

    #[test]
    fn constant_columns_get_zero_variance_as_before() {
        // The previous rule (a full scan for constant columns) against the candidate check of
        // `finish_mean_var`, over all cells and over subsets, including the identical cells
        // 40..44 where every detected gene is constant.
        let x = crate::normalize::normalize_total_log1p(&awkward_counts(), &Default::default())
            .unwrap()
            .matrix;
        let subsets: [Option<Vec<usize>>; 3] = [
            None,
            Some((40..44).collect()),
            Some(vec![40, 41, 0, 43, 42]),
        ];
        let mut zero_by_rule = 0;
        for rows in &subsets {
            let rows = rows.as_deref();
            let (_, vars, _) = mean_var(&x, rows, |v| v.exp_m1());
            let n = rows.map_or(x.n_rows(), |r| r.len()) as f64;
            let s = col_reduce::<3, _>(&x, rows, |v| {
                let e = v.exp_m1();
                [e as f64, (e * e) as f64, (v != 0.0) as u8 as f64]
            });
            let constant = constant_columns(&x, rows);
            for (c, q) in s.iter().enumerate() {
                let m = q[0] / n;
                let v = (q[1] / n - m * m) * (n / (n - 1.0));
                let old = if constant[c] { 0.0 } else { v };
                assert_eq!(
                    vars[c].to_bits(),
                    old.to_bits(),
                    "column {c}, rows {rows:?}"
                );
                zero_by_rule += (constant[c] && v != 0.0) as usize;
            }
        }
        // the rule mattered somewhere (a rounding residue was replaced by 0)
        assert!(zero_by_rule > 0);
    }
}
