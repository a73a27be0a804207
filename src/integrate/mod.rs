//! Integration of batches in a low-dimensional embedding (usually the PCA scores).
//!
//! - [`harmony`](fn@harmony): Harmony (Korsunsky et al. 2019, "Fast, sensitive and accurate integration of
//!   single-cell data with Harmony", Nature Methods 16:1289), following `harmonypy`'s algorithm
//!   and the defaults of the original method: soft k-means with a diversity penalty on the
//!   cosine-normalized embedding, then a ridge (mixture of experts) correction per cluster.
//! - [`lisi`](fn@lisi): the local inverse Simpson's index of a labelling (integration LISI for batch
//!   labels), as the `lisi` R package and `harmonypy.compute_lisi`.

pub mod harmony;
pub mod lisi;

pub use harmony::{harmony, Harmony, HarmonyOptions};
pub use lisi::lisi;

/// Numbers arbitrary codes `0..m` in increasing order of the code (as `np.unique`'s inverse).
/// Returns the dense codes and the distinct original codes, sorted.
pub(crate) fn dense_codes(codes: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut distinct = codes.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let dense = codes
        .iter()
        .map(|c| distinct.partition_point(|x| x < c) as u32)
        .collect();
    (dense, distinct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_codes_follow_the_sorted_order() {
        let (d, u) = dense_codes(&[7, 3, 7, 100, 3]);
        assert_eq!(u, vec![3, 7, 100]);
        assert_eq!(d, vec![1, 0, 1, 2, 0]);
    }
}
