//! Clustering of cells: Leiden and Louvain on a cell graph, k-means on an embedding, and
//! clustering quality measures (modularity, ARI, NMI).
//!
//! Every clustering returns a [`Clustering`] whose labels are numbered `0..K` by decreasing
//! cluster size (ties broken by the smallest member index), as Scanpy numbers Leiden clusters.
//! All randomness comes from the `seed` option; the algorithms are sequential where order
//! matters, so results do not depend on the rayon thread count.

pub mod kmeans;
pub mod leiden;
pub mod quality;

pub use kmeans::{kmeans, KMeansOptions};
pub use leiden::{leiden, louvain, LeidenOptions, LouvainOptions, Objective};
pub use quality::{adjusted_rand_index, modularity, normalized_mutual_info};

use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;

/// The result of a clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// One label per node (cell), in `0..n_clusters`; label 0 is the largest cluster, ties
    /// broken by the smallest member index.
    pub labels: Vec<u32>,
    /// Number of clusters `K`.
    pub n_clusters: usize,
    /// The value of the optimized objective for the returned labels (see each function).
    pub quality: f64,
}

/// Renumbers arbitrary labels to `0..K` by decreasing cluster size, ties broken by the
/// smallest member index. Returns the new labels and `K`.
pub(crate) fn relabel_by_size(labels: &[u32]) -> (Vec<u32>, usize) {
    let max = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut size = vec![0usize; max];
    let mut first = vec![usize::MAX; max];
    for (i, &l) in labels.iter().enumerate() {
        let l = l as usize;
        size[l] += 1;
        if first[l] == usize::MAX {
            first[l] = i;
        }
    }
    let mut present: Vec<usize> = (0..max).filter(|&l| size[l] > 0).collect();
    present.sort_by(|&a, &b| size[b].cmp(&size[a]).then(first[a].cmp(&first[b])));
    let mut map = vec![0u32; max];
    for (new, &old) in present.iter().enumerate() {
        map[old] = new as u32;
    }
    (
        labels.iter().map(|&l| map[l as usize]).collect(),
        present.len(),
    )
}

/// Checks that `graph` can be clustered: square, non-empty, non-negative finite weights, and
/// symmetric (each stored `a_ij` matches `a_ji` to a relative tolerance of 1e-5; a missing
/// counterpart counts as 0).
pub(crate) fn validate_graph(graph: &CsrMatrix, context: &str) -> Result<()> {
    use rayon::prelude::*;
    let (r, c) = graph.shape();
    if r != c {
        return Err(Error::data(
            context,
            format!("graph must be square, got {r} x {c}"),
        ));
    }
    if r == 0 {
        return Err(Error::data(context, "graph has no nodes"));
    }
    let bad = graph.par_rows().find_map_first(|(i, cols, vals)| {
        for (&j, &a) in cols.iter().zip(vals) {
            if !a.is_finite() || a < 0.0 {
                return Some(format!(
                    "weight at ({i}, {j}) is {a}; weights must be finite and non-negative"
                ));
            }
            let (cj, vj) = graph.row(j as usize);
            let b = match cj.binary_search(&(i as u32)) {
                Ok(p) => vj[p],
                Err(_) => 0.0,
            };
            let tol = 1e-5 * a.abs().max(b.abs());
            if (a - b).abs() > tol {
                return Some(format!(
                    "graph is not symmetric: a[{i},{j}] = {a} but a[{j},{i}] = {b}"
                ));
            }
        }
        None
    });
    match bad {
        Some(msg) => Err(Error::data(context, msg)),
        None => Ok(()),
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small, portable, seeded generator whose stream
/// never changes across versions or platforms.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform integer in `0..n` (`n > 0`), by Lemire's multiply-shift.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Fisher-Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relabel_orders_by_size_then_first_member() {
        let (l, k) = relabel_by_size(&[5, 2, 2, 7, 5, 9]);
        // sizes: 5 -> 2 (first 0), 2 -> 2 (first 1), 7 -> 1 (first 3), 9 -> 1 (first 5)
        assert_eq!(k, 4);
        assert_eq!(l, vec![0, 1, 1, 2, 0, 3]);
    }

    #[test]
    fn splitmix_matches_reference_stream() {
        // First outputs for seed 1234567 from the published reference implementation.
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
    }

    #[test]
    fn validate_rejects_bad_graphs() {
        let ns = CsrMatrix::from_triplets(2, 2, &[0], &[1], &[1.0]).unwrap();
        assert!(validate_graph(&ns, "t").is_err());
        let rect = CsrMatrix::from_triplets(2, 3, &[0, 1], &[1, 0], &[1.0, 1.0]).unwrap();
        assert!(validate_graph(&rect, "t").is_err());
        let neg = CsrMatrix::from_triplets(2, 2, &[0, 1], &[1, 0], &[-1.0, -1.0]).unwrap();
        assert!(validate_graph(&neg, "t").is_err());
        let nan = CsrMatrix::from_triplets(2, 2, &[0, 1], &[1, 0], &[f32::NAN, f32::NAN]).unwrap();
        assert!(validate_graph(&nan, "t").is_err());
        assert!(validate_graph(&CsrMatrix::zeros(0, 0), "t").is_err());
        let ok = CsrMatrix::from_triplets(2, 2, &[0, 1], &[1, 0], &[1.0, 1.0]).unwrap();
        assert!(validate_graph(&ok, "t").is_ok());
    }
}
