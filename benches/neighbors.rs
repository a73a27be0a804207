//! kNN + UMAP connectivities on seeded clustered Gaussian data (50 dimensions).
//!
//! `cargo bench --bench neighbors` runs 50,000 cells (the target: at least 3x faster
//! than Scanpy's `neighbors`, about 4.8 s on this machine) and the exact search against a
//! `petal-neighbors` ball tree on 10,000 cells. `SCRNA_BENCH_LARGE=1` adds 200,000 cells.
//!
//! `SCRNA_BENCH_QUICK=<runs>` skips criterion and prints the median of `<runs>` timed runs of
//! kNN + connectivities (and of the kNN alone) at 50,000 cells (200,000 too with
//! `SCRNA_BENCH_LARGE=1`), with the current rayon thread count. `SCRNA_BENCH_WRITE_EMBEDDING=1`
//! writes each embedding to `target/neighbors_bench/clustered_<n>x50.f32` (row-major
//! little-endian `f32`) for `scripts/bench_scanpy_neighbors.py`; `SCRNA_BENCH_EMBEDDING=<file>`
//! times that embedding (50 columns) instead, `SCRNA_BENCH_CELLS=<n>` only its first `n` rows;
//! `SCRNA_BENCH_RECALL=1` also prints the recall at k = 15 against the exact search;
//! `SCRNA_BENCH_RECALL_SAMPLE=<m>` the recall of `m` evenly spaced cells only (each against
//! every cell by brute force), for sizes where the whole exact search takes too long.
//! `SCRNA_BENCH_TREES=<t>` sets the number of random-projection trees.

#[path = "../tests/support/knn_recall.rs"]
mod knn_recall;
use criterion::{criterion_group, Criterion};
use knn_recall::recall;
use ndarray::Array2;
use petal_neighbors::BallTree;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use scrna::graph::{umap_connectivities, UmapGraphOptions};
use scrna::neighbors::{knn, KnnOptions, Method};
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

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

fn write_embedding(x: &Array2<f32>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/neighbors_bench");
    std::fs::create_dir_all(dir).expect("dir");
    let path = format!("{dir}/clustered_{}x{}.f32", x.nrows(), x.ncols());
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("file"));
    for v in x.iter() {
        f.write_all(&v.to_le_bytes()).expect("write");
    }
    eprintln!("wrote {path}");
}

/// CPU seconds used so far by this process, all threads (`/proc/self/stat`, Linux only; 0
/// elsewhere). On a shared machine this is steadier than the wall time.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|p| p.1) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f
        .get(11..13)
        .map(|t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn read_embedding(path: &str, d: usize) -> Array2<f32> {
    let bytes = std::fs::read(path).expect("embedding file");
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Array2::from_shape_vec((v.len() / d, d), v).expect("shape")
}

/// The recall at k = 15 of `m` evenly spaced cells: each cell's 14 nearest other cells by
/// brute force (`f64` distances, ties by index) against the approximate result's row.
fn sampled_recall(x: &Array2<f32>, approx: &scrna::neighbors::Knn, m: usize) -> f64 {
    let n = x.nrows();
    let k = approx.n_neighbors;
    let queries: Vec<usize> = (0..m.min(n)).map(|q| q * n / m.min(n)).collect();
    let hits: usize = queries
        .par_iter()
        .map(|&i| {
            let xi = x.row(i);
            let mut d: Vec<(f64, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let s = xi
                        .iter()
                        .zip(x.row(j))
                        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                        .sum::<f64>();
                    (s, j)
                })
                .collect();
            d.select_nth_unstable_by(k - 2, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let exact: Vec<u32> = d[..k - 1].iter().map(|&(_, j)| j as u32).collect();
            approx.row_indices(i)[1..]
                .iter()
                .filter(|j| exact.contains(j))
                .count()
        })
        .sum();
    hits as f64 / (queries.len() * (k - 1)) as f64
}

fn quick(runs: usize) {
    let mut sets: Vec<(String, Array2<f32>)> = Vec::new();
    if let Ok(path) = std::env::var("SCRNA_BENCH_EMBEDDING") {
        sets.push((path.clone(), read_embedding(&path, 50)));
    } else {
        sets.push(("clustered".into(), clustered(50_000, 50, 30, 11)));
        if std::env::var_os("SCRNA_BENCH_LARGE").is_some() {
            sets.push(("clustered".into(), clustered(200_000, 50, 30, 12)));
        }
    }
    let limit: Option<usize> = std::env::var("SCRNA_BENCH_CELLS")
        .ok()
        .and_then(|v| v.parse().ok());
    for (name, mut x) in sets {
        if let Some(m) = limit {
            x = x.slice(ndarray::s![..m.min(x.nrows()), ..]).to_owned();
        }
        let n = x.nrows();
        if std::env::var_os("SCRNA_BENCH_WRITE_EMBEDDING").is_some() {
            write_embedding(&x);
        }
        let exact = std::env::var_os("SCRNA_BENCH_RECALL").map(|_| {
            knn(
                x.view(),
                &KnnOptions {
                    method: Method::Exact,
                    ..KnnOptions::default()
                },
            )
            .unwrap()
        });
        let sample: Option<usize> = std::env::var("SCRNA_BENCH_RECALL_SAMPLE")
            .ok()
            .and_then(|v| v.parse().ok());
        let opts = KnnOptions {
            n_trees: std::env::var("SCRNA_BENCH_TREES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            ..KnnOptions::default()
        };
        let (mut t_knn, mut t_all, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let c0 = cpu_seconds();
            let t = Instant::now();
            let k = knn(x.view(), &opts).unwrap();
            t_knn.push(t.elapsed().as_secs_f64());
            if let Some(e) = &exact {
                eprintln!(
                    "recall at k = 15 against the exact search: {:.4}",
                    recall(&k, e)
                );
            }
            let c = umap_connectivities(&k, n, &UmapGraphOptions::default()).unwrap();
            t_all.push(t.elapsed().as_secs_f64());
            cpu.push(cpu_seconds() - c0);
            black_box(c);
            // after the timings: the brute force takes longer than the search
            if let Some(m) = sample {
                eprintln!(
                    "recall at k = 15 of {m} evenly spaced cells: {:.4}",
                    sampled_recall(&x, &k, m)
                );
            }
        }
        eprintln!(
            "{name}, n = {n}, {} threads: kNN {:.3} s, kNN + connectivities {:.3} s, CPU {:.2} s (median of {runs}; all: {:?})",
            rayon::current_num_threads(),
            median(t_knn),
            median(t_all.clone()),
            median(cpu),
            t_all.iter().map(|t| (t * 1000.0).round() / 1000.0).collect::<Vec<_>>()
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    match std::env::var("SCRNA_BENCH_QUICK") {
        Ok(r) => quick(r.parse().unwrap_or(5).max(1)),
        Err(_) => benches(),
    }
}
