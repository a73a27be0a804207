//! kNN + UMAP connectivities on seeded clustered Gaussian data (50 dimensions).
//!
//! `cargo bench --bench neighbors` runs 50,000 cells (the target: at least 3x faster
//! than Scanpy's `neighbors`, about 4.8 s on this machine) and the exact search against a
//! `petal-neighbors` ball tree on 10,000 cells. `SCRNA_BENCH_LARGE=1` adds 200,000 cells.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use petal_neighbors::BallTree;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use scrna::graph::{umap_connectivities, UmapGraphOptions};
use scrna::neighbors::{knn, KnnOptions, Method};
use std::hint::black_box;
use std::time::Duration;

fn clustered(n: usize, d: usize, n_clusters: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    let centres: Vec<Vec<f32>> = (0..n_clusters)
        .map(|_| (0..d).map(|_| 5.0 * normal.sample(&mut rng)).collect())
        .collect();
    let mut x = Array2::zeros((n, d));
    for i in 0..n {
        let c = &centres[rng.gen_range(0..n_clusters)];
        for t in 0..d {
            x[[i, t]] = c[t] + normal.sample(&mut rng);
        }
    }
    x
}

fn pipeline(x: &Array2<f32>, method: Method) {
    let opts = KnnOptions {
        method,
        ..KnnOptions::default()
    };
    let k = knn(x.view(), &opts).unwrap();
    let c = umap_connectivities(&k, x.nrows(), &UmapGraphOptions::default()).unwrap();
    black_box(c);
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("neighbors");
    g.sample_size(10).measurement_time(Duration::from_secs(20));

    let small = clustered(10_000, 50, 20, 1);
    g.bench_function("exact_bruteforce_10k", |b| {
        b.iter(|| {
            black_box(
                knn(
                    small.view(),
                    &KnnOptions {
                        method: Method::Exact,
                        ..KnnOptions::default()
                    },
                )
                .unwrap(),
            )
        })
    });
    let small64 = small.mapv(|v| v as f64);
    g.bench_function("exact_balltree_rayon_10k", |b| {
        b.iter(|| {
            let tree = BallTree::euclidean(small64.view()).unwrap();
            let res: Vec<_> = (0..small64.nrows())
                .into_par_iter()
                .map(|i| tree.query(&small64.row(i), 15))
                .collect();
            black_box(res)
        })
    });
    g.bench_function("approximate_10k", |b| {
        b.iter(|| {
            black_box(
                knn(
                    small.view(),
                    &KnnOptions {
                        method: Method::Approximate,
                        ..KnnOptions::default()
                    },
                )
                .unwrap(),
            )
        })
    });

    let x = clustered(50_000, 50, 30, 11);
    g.bench_function("knn_connectivities_50k", |b| {
        b.iter(|| pipeline(&x, Method::Auto))
    });
    if std::env::var_os("SCRNA_BENCH_LARGE").is_some() {
        let x = clustered(200_000, 50, 30, 12);
        g.bench_function("knn_connectivities_200k", |b| {
            b.iter(|| pipeline(&x, Method::Auto))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
