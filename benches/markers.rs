//! Marker gene ranking: Wilcoxon and t-test, one group against the rest, for all groups.
//!
//! Criterion runs on 10,000 cells x 5,000 genes (about 10% non-zero, 10 groups).
//! With `MARKERS_BENCH_FULL=1` the bench also times one run of each method on the issue's
//! size, 50,000 cells x 20,000 genes, and reports the peak extra heap memory against the
//! matrix size:
//!
//! `MARKERS_BENCH_FULL=1 cargo bench --bench markers`

use criterion::{criterion_group, Criterion};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use scrna::markers::{rank_genes, Method, RankGenesOptions};
use scrna::CsrMatrix;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts live heap bytes and their peak.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Seeded log-normalized-like sparse data: each cell expresses about `density` of the genes
/// with small geometric counts (so values tie often), group `k` has three times the counts
/// in genes `100 k .. 100 k + 100`; values are `ln(1 + 1e4 count / total)`.
fn simulate(n_cells: usize, n_genes: usize, density: f64, n_groups: u32) -> (CsrMatrix, Vec<u32>) {
    let labels: Vec<u32> = (0..n_cells as u32).map(|i| i % n_groups).collect();
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n_cells)
        .into_par_iter()
        .map(|c| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed ^ c as u64);
            let group = labels[c] as usize;
            let mut idx = Vec::with_capacity((n_genes as f64 * density * 1.2) as usize);
            let mut cnt = Vec::with_capacity(idx.capacity());
            let ln_q = (1.0 - density).ln();
            let mut g = 0usize;
            loop {
                let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
                g += (u.ln() / ln_q).floor() as usize;
                if g >= n_genes {
                    break;
                }
                let v: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
                let mut k = 1.0 + (v.ln() / 0.6f64.ln()).floor();
                if g / 100 == group {
                    k *= 3.0;
                }
                idx.push(g as u32);
                cnt.push(k as f32);
                g += 1;
            }
            let total: f32 = cnt.iter().sum();
            let vals = cnt.iter().map(|&k| (k * 1e4 / total).ln_1p()).collect();
            (idx, vals)
        })
        .collect();
    let nnz: usize = rows.iter().map(|r| r.0.len()).sum();
    let mut indptr = Vec::with_capacity(n_cells + 1);
    let mut indices = Vec::with_capacity(nnz);
    let mut data = Vec::with_capacity(nnz);
    indptr.push(0);
    for (i, v) in rows {
        indices.extend_from_slice(&i);
        data.extend_from_slice(&v);
        indptr.push(indices.len());
    }
    let x = CsrMatrix::try_new(n_cells, n_genes, indptr, indices, data).unwrap();
    (x, labels)
}

fn opts(method: Method) -> RankGenesOptions {
    RankGenesOptions {
        method,
        ..Default::default()
    }
}

fn bench_markers(c: &mut Criterion) {
    let (x, labels) = simulate(10_000, 5_000, 0.1, 10);
    let mut group = c.benchmark_group("rank_genes_10k_x_5k");
    group.sample_size(10);
    group.bench_function("wilcoxon", |b| {
        b.iter(|| black_box(rank_genes(&x, &labels, &opts(Method::Wilcoxon)).unwrap()))
    });
    group.bench_function("wilcoxon_tie_correct", |b| {
        let o = RankGenesOptions {
            tie_correct: true,
            ..opts(Method::Wilcoxon)
        };
        b.iter(|| black_box(rank_genes(&x, &labels, &o).unwrap()))
    });
    group.bench_function("t-test", |b| {
        b.iter(|| black_box(rank_genes(&x, &labels, &opts(Method::TTest)).unwrap()))
    });
    group.finish();
}

fn full_run() {
    let t = Instant::now();
    let (x, labels) = simulate(50_000, 20_000, 0.1, 10);
    let matrix_bytes = x.nnz() * 8 + (x.n_rows() + 1) * 8;
    eprintln!(
        "simulated 50,000 x 20,000, nnz {} ({:.1}% dense, {:.0} MB) in {:.1} s",
        x.nnz(),
        100.0 * x.nnz() as f64 / (50_000.0 * 20_000.0),
        matrix_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    for (name, method) in [("wilcoxon", Method::Wilcoxon), ("t-test", Method::TTest)] {
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t = Instant::now();
        let res = rank_genes(&x, &labels, &opts(method)).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let extra = PEAK.load(Ordering::Relaxed) - base;
        eprintln!(
            "50k x 20k {name}: {secs:.2} s, peak extra heap {:.0} MB ({:.2} x the matrix), \
             {} groups",
            extra as f64 / 1e6,
            extra as f64 / matrix_bytes as f64,
            res.groups.len()
        );
        drop(res);
    }
}

criterion_group!(benches, bench_markers);

fn main() {
    benches();
    if std::env::var_os("MARKERS_BENCH_FULL").is_some() {
        full_run();
    }
    Criterion::default().configure_from_args().final_summary();
}
