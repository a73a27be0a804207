//! k-means on an embedding (typically the PCA scores, cells x components), through
//! `linfa-clustering`: Lloyd iterations from k-means++ seeds, the best of `n_runs` starts by
//! inertia. This is the baseline for a user who wants a fixed number of clusters; it is the
//! same method as `sklearn.cluster.KMeans(init="k-means++")` but not the same random stream.

use super::{relabel_by_size, Clustering};
use crate::error::{Error, Result};
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

/// Options of [`kmeans`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansOptions {
    /// Number of clusters; at least 1 and at most the number of points. Default 8 (sklearn's).
    pub k: usize,
    /// Seed of the k-means++ initialization (`rand_chacha::ChaCha12Rng`). Default 0.
    pub seed: u64,
    /// Number of independent starts; the one with the lowest inertia is kept. Default 10
    /// (linfa's).
    pub n_runs: usize,
    /// Maximum Lloyd iterations per start. Default 300 (linfa's and sklearn's).
    pub max_iter: u64,
}

impl Default for KMeansOptions {
    fn default() -> Self {
        Self {
            k: 8,
            seed: 0,
            n_runs: 10,
            max_iter: 300,
        }
    }
}

/// k-means clustering of the rows of `embedding` (points x dimensions).
///
/// Labels are numbered by decreasing cluster size (ties by smallest member index);
/// `quality` is the inertia, the total within-cluster sum of squared Euclidean distances to the
/// cluster means (lower is better). Deterministic for a given seed whatever the thread count
/// (linfa parallelizes only the per-point assignment).
///
/// Errors: `k` of 0 or above the number of points, `n_runs` or `max_iter` of 0
/// (`InvalidOption`); an empty or non-finite embedding (`InvalidData`).
pub fn kmeans(embedding: ArrayView2<f32>, opts: &KMeansOptions) -> Result<Clustering> {
    let (n, d) = embedding.dim();
    if n == 0 || d == 0 {
        return Err(Error::data(
            "kmeans",
            format!("embedding is empty ({n} x {d})"),
        ));
    }
    if opts.k == 0 || opts.k > n {
        return Err(Error::option(
            "k",
            format!("must be in 1..={n} (the number of points), got {}", opts.k),
        ));
    }
    if opts.n_runs == 0 {
        return Err(Error::option("n_runs", "must be at least 1"));
    }
    if opts.max_iter == 0 {
        return Err(Error::option("max_iter", "must be at least 1"));
    }
    if embedding.iter().any(|x| !x.is_finite()) {
        return Err(Error::data("kmeans", "embedding has non-finite values"));
    }
    let records: Array2<f64> = embedding.mapv(|x| x as f64);
    let dataset = DatasetBase::from(records);
    let model = KMeans::params_with_rng(opts.k, ChaCha12Rng::seed_from_u64(opts.seed))
        .n_runs(opts.n_runs)
        .max_n_iterations(opts.max_iter)
        .tolerance(1e-4)
        .fit(&dataset)
        .map_err(|e| Error::data("kmeans", e.to_string()))?;
    let assigned = model.predict(dataset.records());
    let raw: Vec<u32> = assigned.iter().map(|&c| c as u32).collect();
    let (labels, n_clusters) = relabel_by_size(&raw);
    // Inertia about the means of the final clusters.
    let mut sums = vec![0.0f64; n_clusters * d];
    let mut counts = vec![0.0f64; n_clusters];
    for (i, &l) in labels.iter().enumerate() {
        counts[l as usize] += 1.0;
        for j in 0..d {
            sums[l as usize * d + j] += embedding[[i, j]] as f64;
        }
    }
    let mut inertia = 0.0;
    for (i, &l) in labels.iter().enumerate() {
        for j in 0..d {
            let m = sums[l as usize * d + j] / counts[l as usize];
            let x = embedding[[i, j]] as f64 - m;
            inertia += x * x;
        }
    }
    Ok(Clustering {
        labels,
        n_clusters,
        quality: inertia,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn separates_three_blobs_and_orders_by_size() {
        let mut pts = Vec::new();
        // sizes 5, 20, 10 at x = 0, 10, 20 with a small deterministic jitter
        for (c, size) in [(0.0f32, 5), (10.0, 20), (20.0, 10)] {
            for i in 0..size {
                pts.push(c + (i as f32 * 0.37).sin() * 0.5);
                pts.push((i as f32 * 0.71).cos() * 0.5);
            }
        }
        let x = Array2::from_shape_vec((35, 2), pts).unwrap();
        let opts = KMeansOptions {
            k: 3,
            ..Default::default()
        };
        let r = kmeans(x.view(), &opts).unwrap();
        assert_eq!(r.n_clusters, 3);
        assert!(r.labels[..5].iter().all(|&l| l == 2));
        assert!(r.labels[5..25].iter().all(|&l| l == 0));
        assert!(r.labels[25..].iter().all(|&l| l == 1));
        assert!(kmeans(
            x.view(),
            &KMeansOptions {
                k: 0,
                ..opts.clone()
            }
        )
        .is_err());
        assert!(kmeans(x.view(), &KMeansOptions { k: 36, ..opts }).is_err());
    }
}
