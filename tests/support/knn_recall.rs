//! Recall of an approximate kNN result against the exact one, shared by the neighbour tests
//! and the neighbour benchmark.

use scrna::neighbors::Knn;

/// Fraction of the exact neighbours (the cell itself left out) that the approximate search
/// found.
pub fn recall(approx: &Knn, exact: &Knn) -> f64 {
    let k = exact.n_neighbors;
    let mut hit = 0usize;
    for i in 0..exact.n_cells() {
        let e = &exact.row_indices(i)[1..];
        hit += approx.row_indices(i)[1..]
            .iter()
            .filter(|j| e.contains(j))
            .count();
    }
    hit as f64 / (exact.n_cells() * (k - 1)) as f64
}
