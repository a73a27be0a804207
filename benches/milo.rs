//! Milo (index-cell sampling + neighbourhood counting + edgeR QL test + spatial FDR) on
//! 50,000 seeded cells: a 30-dimensional Gaussian mixture (15 clusters, sample-specific
//! cluster proportions), 4 samples (2 per condition), kNN graph with k = 15 (not timed).
//!
//! `cargo bench --bench milo` runs criterion. `SCRNA_BENCH_QUICK=<runs>` skips criterion and
//! prints the median of `<runs>` timed runs with the current rayon thread count.
//! `SCRNA_BENCH_WRITE=<dir>` also writes the embedding (`embedding.f32`, row-major
//! little-endian), the kNN indices (`knn.u32`, 15 per cell, the cell first) and the sample of
//! each cell (`samples.u32`) for `scripts/bench_pertpy_milo.py`.

use criterion::{criterion_group, Criterion};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use scrna::milo::{milo, MiloOptions};
use scrna::neighbors::{knn, Knn, KnnOptions};
use std::hint::black_box;
use std::time::{Duration, Instant};

const CONDITIONS: [u32; 4] = [0, 0, 1, 1];

fn data(n: usize, d: usize, seed: u64) -> (Array2<f32>, Vec<u32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f64, 1.0).unwrap();
    let nc = 15;
    let centres: Vec<f64> = (0..nc * d).map(|_| 4.0 * normal.sample(&mut rng)).collect();
    // Cluster weights per sample: log-normal noise, cluster 0 doubled in condition 1.
    let weights: Vec<Vec<f64>> = CONDITIONS
        .iter()
        .map(|&c| {
            (0..nc)
                .map(|k| {
                    (0.3 * normal.sample(&mut rng)).exp() * if k == 0 && c == 1 { 2.0 } else { 1.0 }
                })
                .collect()
        })
        .collect();
    let mut x = Array2::zeros((n, d));
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let s = rng.gen_range(0..CONDITIONS.len());
        let total: f64 = weights[s].iter().sum();
        let mut u = rng.gen::<f64>() * total;
        let mut k = 0;
        while k + 1 < nc && u >= weights[s][k] {
            u -= weights[s][k];
            k += 1;
        }
        for t in 0..d {
            x[[i, t]] = (centres[k * d + t] + normal.sample(&mut rng)) as f32;
        }
        samples.push(s as u32);
    }
    (x, samples)
}

fn setup() -> (Array2<f32>, Knn, Vec<u32>) {
    let (x, s) = data(50_000, 30, 7);
    let k = knn(
        x.view(),
        &KnnOptions {
            n_neighbors: 15,
            ..KnnOptions::default()
        },
    )
    .unwrap();
    (x, k, s)
}

fn run(x: &Array2<f32>, k: &Knn, s: &[u32]) -> usize {
    let m = milo(x.view(), k, s, &CONDITIONS, None, &MiloOptions::default()).unwrap();
    m.n_significant()
}

fn bench(c: &mut Criterion) {
    let (x, k, s) = setup();
    let mut g = c.benchmark_group("milo");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("milo_50k", |b| b.iter(|| black_box(run(&x, &k, &s))));
    g.finish();
}

fn write(dir: &str, x: &Array2<f32>, k: &Knn, s: &[u32]) {
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).unwrap();
    let f32s: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("embedding.f32"), f32s).unwrap();
    let idx: Vec<u8> = k.indices.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("knn.u32"), idx).unwrap();
    let sm: Vec<u8> = s.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("samples.u32"), sm).unwrap();
}

fn quick(runs: usize) {
    let (x, k, s) = setup();
    if let Ok(dir) = std::env::var("SCRNA_BENCH_WRITE") {
        write(&dir, &x, &k, &s);
    }
    let mut times = Vec::new();
    let mut sig = 0;
    for _ in 0..runs {
        let t = Instant::now();
        sig = run(&x, &k, &s);
        times.push(t.elapsed().as_secs_f64());
    }
    let m = milo(x.view(), &k, &s, &CONDITIONS, None, &MiloOptions::default()).unwrap();
    times.sort_by(f64::total_cmp);
    eprintln!(
        "milo, 50,000 cells x 30 dims, k = 15, 4 samples, {} threads: {:.3} s (median of {runs}; all {:?}); {} neighbourhoods, {sig} at spatial FDR < 0.1",
        rayon::current_num_threads(),
        times[times.len() / 2],
        times.iter().map(|t| (t * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        m.rows.len()
    );
}

criterion_group!(benches, bench);

fn main() {
    match std::env::var("SCRNA_BENCH_QUICK") {
        Ok(r) => quick(r.parse().unwrap_or(3).max(1)),
        Err(_) => benches(),
    }
}
