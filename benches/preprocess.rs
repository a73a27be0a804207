//! QC + filter + normalize_total + log1p + HVG (seurat) on simulated counts.
//!
//! Default size: 10,000 cells x 20,000 genes (criterion needs many runs). The size
//! (50,000 x 20,000) is measured once with `SCRNA_BENCH_CELLS=50000 cargo bench --bench
//! preprocess`, which also prints a one-run timing of each step before the criterion loop.
//!
//! `SCRNA_BENCH_H5=PATH` reads a 10x HDF5 file instead (for example the comparison harness'
//! `sim_50000.h5`) and times the pipeline's own first three steps
//! ([`scrna::pipeline::preprocess_owned`] on a copy made before the timer starts, as the
//! pipeline example runs them; the tutorial options) `SCRNA_BENCH_RUNS` times (default 3),
//! printing each run's step seconds and the medians, before the criterion loop.

use criterion::{criterion_group, criterion_main, Criterion};
use scrna::hvg::{highly_variable_from_moments, normalize_log1p_moments, Flavor, HvgOptions};
use scrna::normalize::NormalizeOptions;
use scrna::pipeline::{self, PipelineOptions};
use scrna::qc::{self, FilterOptions, QcOptions};
use scrna::simulate::{simulate, SimulateOptions};
use scrna::Dataset;
use std::hint::black_box;
use std::time::Instant;

fn data() -> Dataset {
    let n_cells = std::env::var("SCRNA_BENCH_CELLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    simulate(&SimulateOptions {
        n_cells,
        n_genes: 20_000,
        seed: 1,
        ..Default::default()
    })
    .expect("simulate")
    .dataset
}

/// The pipeline of the tutorial: metrics, filters (min_genes 200, min_cells 3, 20 % mito),
/// normalize to 1e4, log1p, seurat HVG (2,000 genes), with the library's one-pass functions
/// (what `pipeline::preprocess` calls).
fn pipeline(ds: &Dataset, report: bool) -> usize {
    let t = Instant::now();
    let lap = |name: &str, t: &mut Instant| {
        if report {
            eprintln!("  {name:<10} {:>8.3} s", t.elapsed().as_secs_f64());
        }
        *t = Instant::now();
    };
    let mut t0 = t;
    let m = qc::metrics(ds, &QcOptions::default()).expect("qc");
    black_box(&m);
    lap("qc", &mut t0);
    let (f, kept) = qc::filter_with_kept_metrics(
        ds,
        &FilterOptions {
            min_genes: Some(200),
            min_cells: Some(3),
            max_pct_mito: Some(20.0),
            ..Default::default()
        },
        &m,
    )
    .expect("filter");
    lap("filter", &mut t0);
    let (n, moments) = normalize_log1p_moments(
        &f.dataset.counts.to_csr(),
        &NormalizeOptions {
            target_sum: Some(1e4),
            ..Default::default()
        },
        Flavor::Seurat,
        Some(&kept.total_counts),
    )
    .expect("normalize");
    black_box(&n);
    lap("normalize+log1p+moments", &mut t0);
    let h = highly_variable_from_moments(
        moments.means,
        &moments.variances,
        &HvgOptions {
            n_top_genes: Some(2000),
            ..Default::default()
        },
    )
    .expect("hvg");
    lap("hvg", &mut t0);
    if report {
        eprintln!("  total      {:>8.3} s", t.elapsed().as_secs_f64());
    }
    h.selected().len()
}

/// Times `pipeline::preprocess` on the file at `path`; returns the data read.
fn bench_file(path: &str) -> Dataset {
    let ds = scrna::read_10x_with(std::path::Path::new(path), &Default::default()).expect("read");
    eprintln!(
        "preprocess bench on {path}: {} cells x {} genes, {} non-zeros, {} threads",
        ds.n_cells(),
        ds.n_genes(),
        ds.counts.nnz(),
        rayon::current_num_threads()
    );
    let runs: usize = std::env::var("SCRNA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let opts = PipelineOptions::default();
    let mut per_step: Vec<(&'static str, Vec<f64>)> = Vec::new();
    for run in 0..runs {
        let mut steps = Vec::new();
        let owned = ds.clone();
        let cpu0 = cpu_seconds();
        let p = pipeline::preprocess_owned(owned, &opts, &mut steps).expect("preprocess");
        let cpu = cpu_seconds() - cpu0;
        black_box(&p);
        drop(p);
        let total: f64 = steps.iter().map(|s| s.seconds).sum();
        let line: Vec<String> = steps
            .iter()
            .map(|s| format!("{} {:.3}", s.step, s.seconds))
            .collect();
        eprintln!(
            "  run {run}: {}, total {total:.3} s (process CPU {cpu:.2} s)",
            line.join(", ")
        );
        for s in &steps {
            match per_step.iter_mut().find(|(n, _)| *n == s.step) {
                Some((_, v)) => v.push(s.seconds),
                None => per_step.push((s.step, vec![s.seconds])),
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let mut total = 0.0;
    for (name, v) in per_step.iter_mut() {
        let m = median(v);
        total += m;
        eprintln!("  median {name:<10} {m:>8.3} s");
    }
    eprintln!("  median sum   {total:>8.3} s");
    ds
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, in clock ticks
/// of 10 ms; 0 elsewhere): less sensitive than wall time to other processes on the machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name (which is in parentheses): utime is the 12th, stime 13th
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn bench(c: &mut Criterion) {
    if let Ok(path) = std::env::var("SCRNA_BENCH_H5") {
        let ds = bench_file(&path);
        let opts = PipelineOptions::default();
        let mut g = c.benchmark_group("preprocess");
        g.sample_size(10);
        g.bench_function("pipeline_preprocess_file", |b| {
            b.iter(|| black_box(pipeline::preprocess(&ds, &opts, &mut Vec::new()).is_ok()))
        });
        g.finish();
        return;
    }
    let ds = data();
    eprintln!(
        "preprocess bench: {} cells x {} genes, {} non-zeros; one run:",
        ds.n_cells(),
        ds.n_genes(),
        ds.counts.nnz()
    );
    if let Ok(dir) = std::env::var("SCRNA_BENCH_DUMP") {
        dump(&ds, std::path::Path::new(&dir));
    }
    pipeline(&ds, true);
    let mut g = c.benchmark_group("preprocess");
    g.sample_size(10);
    g.bench_function("qc_filter_normalize_log1p_hvg", |b| {
        b.iter(|| black_box(pipeline(&ds, false)))
    });
    g.finish();
}

/// Writes the counts as raw arrays (indptr u64, indices u32, data f32, little-endian) and the
/// gene symbols, for timing Scanpy on the same matrix
/// (`scripts/reference_preprocess.py --bench DIR`).
fn dump(ds: &Dataset, dir: &std::path::Path) {
    use std::io::Write;
    std::fs::create_dir_all(dir).expect("dump dir");
    let x = &*ds.counts.to_csr();
    let w = |name: &str, bytes: Vec<u8>| {
        std::fs::File::create(dir.join(name))
            .and_then(|mut f| f.write_all(&bytes))
            .expect("write dump");
    };
    w(
        "indptr.u64",
        x.indptr()
            .iter()
            .flat_map(|&v| (v as u64).to_le_bytes())
            .collect(),
    );
    w(
        "indices.u32",
        x.indices().iter().flat_map(|&v| v.to_le_bytes()).collect(),
    );
    w(
        "data.f32",
        x.data().iter().flat_map(|&v| v.to_le_bytes()).collect(),
    );
    w(
        "shape.txt",
        format!("{} {}\n", x.n_rows(), x.n_cols()).into_bytes(),
    );
    w("genes.txt", ds.genes.symbols.join("\n").into_bytes());
}

criterion_group!(benches, bench);
criterion_main!(benches);
