//! Harmony benchmark: a seeded Gaussian mixture in a 50-component "PCA" space (12 cell types,
//! 4 batches with unequal sizes and cell-type proportions, batch shifts larger than the
//! distances between types), integrated with the default options.
//!
//! `cargo bench --bench harmony` runs criterion on 50,000 cells x 50 PCs x 4 batches.
//! One run of a given size, and the same input for `harmonypy`:
//! ```text
//! cargo bench --bench harmony --no-run            # prints the bench executable path
//! SCRNA_HARMONY_ONESHOT=50000 target/release/deps/harmony-<hash>
//! SCRNA_HARMONY_DUMP=/tmp/harmony9k.csv SCRNA_HARMONY_ONESHOT=9244 target/release/deps/harmony-<hash>
//! .venv/bin/python scripts/bench_harmonypy.py /tmp/harmony9k.csv
//! ```
//! The one-shot mode prints the time, the rounds and the mean batch LISI before and after (on
//! 9,244 cells or fewer; above 8,191 cells LISI uses the approximate kNN search). `SCRNA_HARMONY_RUNS=<n>`
//! repeats the one-shot run and prints the median.

use criterion::{criterion_group, Criterion};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use scrna::integrate::{harmony, lisi, HarmonyOptions};
use std::io::Write;
use std::time::{Duration, Instant};

const DIM: usize = 50;
const TYPES: usize = 12;
const BATCHES: usize = 4;

/// The mixture: component `j` of a type mean has standard deviation `4 / sqrt(1 + j / 4)`
/// (decaying like PCA variances); batch shifts are 1.5x the type spread; noise N(0, 1).
fn simulate(n: usize, seed: u64) -> (Array2<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sd: Vec<f32> = (0..DIM)
        .map(|j| 4.0 / (1.0 + j as f32 / 4.0).sqrt())
        .collect();
    let std = Normal::new(0.0f32, 1.0).unwrap();
    let means: Vec<f32> = (0..TYPES * DIM)
        .map(|i| sd[i % DIM] * std.sample(&mut rng))
        .collect();
    let shifts: Vec<f32> = (0..BATCHES * DIM)
        .map(|i| 1.5 * sd[i % DIM] * std.sample(&mut rng))
        .collect();
    // Batch sizes 40%, 30%, 20%, 10%; type weights differ per batch.
    let batch_w = [0.4f64, 0.3, 0.2, 0.1];
    let type_w: Vec<f64> = (0..BATCHES * TYPES)
        .map(|_| rng.gen_range(0.5..1.5))
        .collect();
    let mut x = Vec::with_capacity(n * DIM);
    let mut batches = Vec::with_capacity(n);
    for _ in 0..n {
        let mut u: f64 = rng.gen();
        let mut b = BATCHES - 1;
        for (i, &w) in batch_w.iter().enumerate() {
            if u < w {
                b = i;
                break;
            }
            u -= w;
        }
        let tw = &type_w[b * TYPES..(b + 1) * TYPES];
        let mut v = rng.gen::<f64>() * tw.iter().sum::<f64>();
        let mut t = TYPES - 1;
        for (i, &w) in tw.iter().enumerate() {
            if v < w {
                t = i;
                break;
            }
            v -= w;
        }
        for j in 0..DIM {
            x.push(means[t * DIM + j] + shifts[b * DIM + j] + std.sample(&mut rng));
        }
        batches.push(b as u32);
    }
    (Array2::from_shape_vec((n, DIM), x).unwrap(), batches)
}

fn dump(path: &str, x: &Array2<f32>, batches: &[u32]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("dump file"));
    let header: Vec<String> = (1..=DIM).map(|j| format!("PC{j}")).collect();
    writeln!(f, "batch,{}", header.join(",")).unwrap();
    for (row, b) in x.rows().into_iter().zip(batches) {
        let vals: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        writeln!(f, "{b},{}", vals.join(",")).unwrap();
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn one_shot(n: usize) {
    let (x, batches) = simulate(n, 42);
    if let Ok(path) = std::env::var("SCRNA_HARMONY_DUMP") {
        dump(&path, &x, &batches);
        println!("wrote {path}");
    }
    let runs: usize = std::env::var("SCRNA_HARMONY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let opts = HarmonyOptions::default();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let h = harmony(x.view(), &batches, &opts).expect("harmony");
        times.push(t.elapsed().as_secs_f64());
        last = Some(h);
    }
    let h = last.expect("at least one run");
    times.sort_by(f64::total_cmp);
    println!(
        "harmony {n} x {DIM}, {BATCHES} batches: times {:?} s, median {:.3} s; {} rounds, \
         converged {}; k-means steps {:?}; objective {:?}",
        times,
        times[times.len() / 2],
        h.iterations,
        h.converged,
        h.kmeans_steps,
        h.objective
    );
    if n <= 9_244 {
        let before = mean(&lisi(x.view(), &batches, 30.0).expect("lisi"));
        let after = mean(&lisi(h.embedding.view(), &batches, 30.0).expect("lisi"));
        println!("mean batch LISI {before:.4} -> {after:.4}");
    }
    if let Ok(path) = std::env::var("SCRNA_HARMONY_SAVE") {
        let b = vec![0u32; n];
        dump(&path, &h.embedding, &b);
        println!("wrote {path}");
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("harmony");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    let n = 50_000;
    let (x, batches) = simulate(n, 42);
    let opts = HarmonyOptions::default();
    group.bench_function(format!("{n}x{DIM}x{BATCHES}"), |b| {
        b.iter(|| harmony(x.view(), &batches, &opts).expect("harmony"))
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(n) = std::env::var("SCRNA_HARMONY_ONESHOT") {
        one_shot(n.parse().expect("SCRNA_HARMONY_ONESHOT=<cells>"));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
