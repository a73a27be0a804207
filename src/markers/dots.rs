//! The values a dot plot of marker genes shows: per group and gene, the fraction of the group's
//! cells in which the gene is detected and the mean of its values over all of the group's
//! cells (zeros included), as Scanpy's `sc.pl.rank_genes_groups_dotplot` computes them from
//! the log-normalized values.

use crate::error::{Error, Result};
use crate::lognorm::{with_indices, MatrixValues};
use crate::sparse::ColIndex;
use ndarray::Array2;
use rayon::prelude::*;

/// Rows per parallel block; the blocks' sums are added in block order, so the result does not
/// depend on the number of threads.
const ROWS: usize = 2048;

/// Fractions and means of a dot plot, groups x genes.
#[derive(Debug, Clone, PartialEq)]
pub struct DotValues {
    /// Fraction of the group's cells with a non-zero value of the gene.
    pub fractions: Array2<f64>,
    /// Mean value of the gene over the group's cells.
    pub means: Array2<f64>,
}

/// The dot plot values of `genes` (columns of `x`, in the plot's order, each at most once) for
/// the groups `labels` (one per row of `x`, each below `n_groups`): for group `g` and gene `j`,
/// `fraction = #{i in g : x_ij != 0} / |g|` and `mean = sum_{i in g} x_ij / |g|` (0 for an
/// empty group). Only the stored entries of the listed genes are read, so `x` can be a
/// [`crate::lognorm::LogCounts`] view without computing its other values.
pub fn dot_values<X: MatrixValues + ?Sized>(
    x: &X,
    labels: &[u32],
    n_groups: usize,
    genes: &[usize],
) -> Result<DotValues> {
    let (n_rows, n_cols) = x.shape();
    let (indptr, indices) = (x.indptr(), x.indices());
    if labels.len() != n_rows {
        return Err(Error::data(
            "dot plot",
            format!("{} labels for {n_rows} cells", labels.len()),
        ));
    }
    if let Some(l) = labels.iter().find(|&&l| l as usize >= n_groups) {
        return Err(Error::data(
            "dot plot",
            format!("label {l} is not below the {n_groups} groups"),
        ));
    }
    // The listed genes in column order with their place in the plot: each row's stored
    // entries of them are found by binary search (a few dozen genes among thousands of
    // stored entries per row), not by looking at every entry.
    let mut sorted: Vec<(usize, u32)> = genes
        .iter()
        .enumerate()
        .map(|(j, &g)| (g, j as u32))
        .collect();
    sorted.sort_unstable();
    if let Some(&(g, _)) = sorted.last().filter(|(g, _)| *g >= n_cols) {
        return Err(Error::data(
            "dot plot",
            format!("gene {g} is not below the {n_cols} genes"),
        ));
    }
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::data(
            "dot plot",
            format!("gene {} is listed twice", w[0].0),
        ));
    }
    let k = genes.len();
    let cells = n_groups * k;
    // per block: [detected; groups x genes] then [sum; groups x genes]
    let partials: Vec<Vec<f64>> = (0..n_rows.div_ceil(ROWS))
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![0f64; 2 * cells];
            let mut v = Vec::with_capacity(1);
            let rows = b * ROWS..((b + 1) * ROWS).min(n_rows);
            for (r, &label) in rows.clone().zip(&labels[rows]) {
                let (a, e) = (indptr[r], indptr[r + 1]);
                let base = label as usize * k;
                let mut lo = 0;
                for &(g, j) in &sorted {
                    let (at, found) = with_indices!(indices, ix => {
                        let idx = &ix[a..e];
                        let at = lo + idx[lo..].partition_point(|&c| c.ix() < g);
                        (at, at < idx.len() && idx[at].ix() == g)
                    });
                    lo = at;
                    if lo == e - a {
                        break;
                    }
                    if !found {
                        continue;
                    }
                    v.clear();
                    x.values_into(r, a + lo..a + lo + 1, &mut v);
                    if v[0] != 0.0 {
                        acc[base + j as usize] += 1.0;
                        acc[cells + base + j as usize] += f64::from(v[0]);
                    }
                    lo += 1;
                }
            }
            acc
        })
        .collect();
    let mut total = vec![0f64; 2 * cells];
    for part in &partials {
        for (t, &x) in total.iter_mut().zip(part) {
            *t += x;
        }
    }
    let mut sizes = vec![0usize; n_groups];
    for &l in labels {
        sizes[l as usize] += 1;
    }
    let per = |offset: usize| {
        Array2::from_shape_fn((n_groups, k), |(g, j)| {
            total[offset + g * k + j] / sizes[g].max(1) as f64
        })
    };
    Ok(DotValues {
        fractions: per(0),
        means: per(cells),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::CsrMatrix;

    #[test]
    fn fractions_and_means_of_each_group() {
        // 5 cells x 4 genes; groups 0 (cells 0, 2, 4) and 1 (cells 1, 3); group 2 empty
        let x = CsrMatrix::from_triplets(
            5,
            4,
            &[0, 1, 2, 3, 4],
            &[1, 1, 3, 0, 1],
            &[2.0, 4.0, 1.0, 5.0, 1.0],
        )
        .unwrap();
        let labels = [0, 1, 0, 1, 0];
        let d = dot_values(&x, &labels, 3, &[3, 1]).unwrap();
        assert_eq!(d.fractions.row(0).to_vec(), vec![1.0 / 3.0, 2.0 / 3.0]);
        assert_eq!(d.means.row(0).to_vec(), vec![1.0 / 3.0, 1.0]);
        assert_eq!(d.fractions.row(1).to_vec(), vec![0.0, 0.5]);
        assert_eq!(d.means.row(1).to_vec(), vec![0.0, 2.0]);
        assert_eq!(d.means.row(2).to_vec(), vec![0.0, 0.0]);
        assert!(dot_values(&x, &labels, 3, &[1, 1]).is_err());
        assert!(dot_values(&x, &labels, 3, &[4]).is_err());
        assert!(dot_values(&x, &labels, 1, &[1]).is_err());
        assert!(dot_values(&x, &labels[1..], 3, &[1]).is_err());
    }
}
