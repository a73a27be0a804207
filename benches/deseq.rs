//! DESeq2-method pseudobulk differential expression (`scrna::deseq`).
//!
//! The workload of a per-cluster condition comparison: 10 clusters x 4 samples (2 + 2) x
//! 20,000 genes, i.e. 10 calls on 4-sample matrices, simulated with the recipe of
//! `scripts/reference_deseq.py` (NB counts, means `exp(N(4, 2))`, dispersions
//! `(0.02 + 1.5 / mean) exp(N(0, 0.6))`, size factors `exp(N(0, 0.3))`, 10% DE genes of 2-4x;
//! seeded ChaCha8, so not the same draws as the script). pydeseq2 on the same recipe:
//! `.venv/bin/python scripts/reference_deseq.py --bench`.
//!
//! Criterion times one call (4 x 20,000) and the 10 calls. One-shot mode (no Criterion; the
//! median of 3 runs of the 10 calls, with the current and with a single rayon thread):
//!
//! `DESEQ_BENCH_ONESHOT=1 cargo bench --bench deseq`
//!
//! Measured on the shared 2-core machine (load average 5-14 from other builds): this crate
//! 3.90 s for the 10 calls (median of 3; 3.81 s on one thread); pydeseq2 0.5.4 with
//! `n_cpus=1` took 618.6 s for one call (a single run; its 10 calls and `n_cpus=2` were not
//! timed), i.e. about 1,600 times the time per call.

use criterion::{criterion_group, Criterion};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Normal, Poisson};
use scrna::deseq::{deseq, DeseqOptions};
use std::hint::black_box;
use std::time::Instant;

fn simulate(seed: u64, n_a: usize, n_b: usize, genes: usize) -> (Array2<f64>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = n_a + n_b;
    let norm = Normal::<f64>::new(0.0, 1.0).unwrap();
    let cond: Vec<u32> = (0..n).map(|j| u32::from(j >= n_a)).collect();
    let sf: Vec<f64> = (0..n)
        .map(|_| (0.3 * norm.sample(&mut rng)).exp())
        .collect();
    let mut counts = Array2::zeros((n, genes));
    for g in 0..genes {
        let q = (4.0 + 2.0 * norm.sample(&mut rng)).exp();
        let alpha = (0.02 + 1.5 / q) * (0.6 * norm.sample(&mut rng)).exp();
        let lfc = if rng.gen::<f64>() < 0.1 {
            rng.gen_range(1.0..2.0) * if rng.gen::<bool>() { 1.0 } else { -1.0 }
        } else {
            0.0
        };
        for j in 0..n {
            let mu = sf[j] * q * 2f64.powf(f64::from(cond[j]) * lfc);
            // Gamma-Poisson; rand_distr 0.4 returns -1 for a Poisson mean that rounds e^-mean to 1.
            let lam = Gamma::new(1.0 / alpha, mu * alpha)
                .unwrap()
                .sample(&mut rng);
            counts[[j, g]] = if lam > 1e-10 {
                Poisson::new(lam).unwrap().sample(&mut rng)
            } else {
                0.0
            };
        }
    }
    (counts, cond)
}

fn workload() -> Vec<(Array2<f64>, Vec<u32>)> {
    (0..10).map(|k| simulate(100 + k, 2, 2, 20_000)).collect()
}

fn run_all(mats: &[(Array2<f64>, Vec<u32>)]) -> usize {
    let opts = DeseqOptions::default();
    mats.iter()
        .map(|(c, cond)| {
            let r = deseq(c.view(), cond, None, &opts).unwrap();
            r.rows.iter().filter(|r| r.p_adjusted < 0.05).count()
        })
        .sum()
}

fn bench_deseq(c: &mut Criterion) {
    let mats = workload();
    let mut group = c.benchmark_group("deseq");
    group.sample_size(10);
    group.bench_function("one_call_4x20000", |b| {
        b.iter(|| {
            black_box(deseq(mats[0].0.view(), &mats[0].1, None, &DeseqOptions::default()).unwrap())
        })
    });
    group.bench_function("ten_calls_4x20000", |b| {
        b.iter(|| black_box(run_all(&mats)))
    });
    group.finish();
}

fn median3(mats: &[(Array2<f64>, Vec<u32>)]) -> (Vec<f64>, usize) {
    let mut times = Vec::new();
    let mut sig = 0;
    for _ in 0..3 {
        let t = Instant::now();
        sig = run_all(mats);
        times.push(t.elapsed().as_secs_f64());
    }
    (times, sig)
}

fn one_shot() {
    let mats = workload();
    let threads = rayon::current_num_threads();
    let (times, sig) = median3(&mats);
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    eprintln!(
        "deseq, 10 x (4 samples x 20,000 genes), {threads} threads: runs {times:.3?} s, median {:.3} s \
         ({sig} genes at padj < 0.05 in total)",
        sorted[1]
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (times, _) = pool.install(|| median3(&mats));
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    eprintln!(
        "deseq, same, 1 thread: runs {times:.3?} s, median {:.3} s",
        sorted[1]
    );
}

criterion_group!(benches, bench_deseq);

fn main() {
    if std::env::var_os("DESEQ_BENCH_ONESHOT").is_some() {
        one_shot();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
