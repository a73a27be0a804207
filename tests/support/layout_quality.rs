//! Quality measures of a 2-D layout, shared by the UMAP tests and the UMAP benchmark.

use ndarray::ArrayView2;
use rayon::prelude::*;
use scrna::CsrMatrix;

/// Euclidean distance between rows `i` and `j` of a 2-D layout.
pub fn dist(x: ArrayView2<f32>, i: usize, j: usize) -> f32 {
    ((x[[i, 0]] - x[[j, 0]]).powi(2) + (x[[i, 1]] - x[[j, 1]]).powi(2)).sqrt()
}

/// Mean distance between cells of the same cluster / between cells of different clusters,
/// over the pairs `(i, j)` with `i` in steps of `step_i` and `j > i` in steps of `step_j`.
pub fn within_between(x: ArrayView2<f32>, labels: &[u32], step_i: usize, step_j: usize) -> f64 {
    let n = labels.len();
    let (mut w, mut nw, mut b, mut nb) = (0.0f64, 0usize, 0.0f64, 0usize);
    for i in (0..n).step_by(step_i) {
        for j in (i + 1..n).step_by(step_j) {
            let d = dist(x, i, j) as f64;
            if labels[i] == labels[j] {
                w += d;
                nw += 1;
            } else {
                b += d;
                nb += 1;
            }
        }
    }
    (w / nw.max(1) as f64) / (b / nb.max(1) as f64)
}

/// Mean over `cells` of the fraction of each one's `k` strongest graph neighbours that are
/// among its `k` nearest cells in the layout.
pub fn knn_preservation(g: &CsrMatrix, x: ArrayView2<f32>, cells: &[usize], k: usize) -> f64 {
    let n = g.n_rows();
    let total: f64 = cells
        .par_iter()
        .map(|&i| {
            let (idx, val) = g.row(i);
            let mut nb: Vec<(u32, f32)> = idx.iter().copied().zip(val.iter().copied()).collect();
            nb.sort_by(|a, b| b.1.total_cmp(&a.1));
            nb.truncate(k);
            let mut d: Vec<(usize, f32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (j, dist(x, i, j)))
                .collect();
            d.select_nth_unstable_by(k - 1, |a, b| a.1.total_cmp(&b.1));
            let near: std::collections::HashSet<usize> = d[..k].iter().map(|p| p.0).collect();
            let hit = nb.iter().filter(|p| near.contains(&(p.0 as usize))).count();
            hit as f64 / nb.len().max(1) as f64
        })
        .sum();
    total / cells.len().max(1) as f64
}
