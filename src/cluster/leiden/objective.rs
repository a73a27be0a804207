//! The objective values of a finished partition: modularity `Q` and the CPM value `H` (see
//! the [module docs](super) for the formulas).

use crate::sparse::CsrMatrix;

/// Modularity `Q` of `labels` (in `0..k`) on `graph` (see module docs).
pub(crate) fn modularity_value(graph: &CsrMatrix, labels: &[u32], k: usize, gamma: f64) -> f64 {
    let mut internal = vec![0.0f64; k];
    let mut tot = vec![0.0f64; k];
    let mut two_m = 0.0f64;
    for (i, &li) in labels.iter().enumerate() {
        let (cols, vals) = graph.row(i);
        for (&j, &w) in cols.iter().zip(vals) {
            let w = w as f64;
            two_m += w;
            tot[li as usize] += w;
            if labels[j as usize] == li {
                internal[li as usize] += w;
            }
        }
    }
    if two_m <= 0.0 {
        return 0.0;
    }
    let mut q = 0.0;
    for c in 0..k {
        q += internal[c] - gamma * tot[c] * tot[c] / two_m;
    }
    q / two_m
}

pub(crate) fn cpm_value(graph: &CsrMatrix, labels: &[u32], k: usize, gamma: f64) -> f64 {
    let mut internal = vec![0.0f64; k];
    let mut size = vec![0.0f64; k];
    for (i, &li) in labels.iter().enumerate() {
        size[li as usize] += 1.0;
        let (cols, vals) = graph.row(i);
        for (&j, &w) in cols.iter().zip(vals) {
            if labels[j as usize] == li {
                internal[li as usize] += w as f64;
            }
        }
    }
    (0..k)
        .map(|c| internal[c] - gamma * size[c] * (size[c] - 1.0))
        .sum()
}
