//! Doublet detection benchmark: `scrublet_by_sample` on the simulator's counts (4 samples,
//! 8 clusters, 10,000 genes by default).
//!
//! `cargo bench --bench doublets` runs criterion on 10,000 cells x 10,000 genes.
//! One-shot mode (3 timed runs and their median), and the same matrix for Scanpy:
//! ```text
//! SCRNA_BENCH_DOUBLETS_CELLS=10000 cargo bench --bench doublets
//! SCRNA_BENCH_DOUBLETS_CELLS=10000 SCRNA_BENCH_DOUBLETS_DUMP=/tmp/dbl10k cargo bench --bench doublets
//! .venv/bin/python scripts/reference_scrublet.py --time /tmp/dbl10k
//! ```
//! Measured on 2 cores, same session, back to back, medians of 3 runs on 10,000 cells x 10,000
//! genes, 4 samples, 2026-12-05 18:00-18:03 UTC (load 1.0-1.8, commit 1f72980), five pairs:
//! 0.675 s, 0.752 s, 0.648 s, 0.685 s and 0.612 s here against 7.49 s, 7.60 s, 7.38 s, 7.09 s
//! and 6.91 s for Scanpy 1.11.5's `sc.pp.scrublet(adata, batch_key="sample")` (10.1x to
//! 11.4x); earlier (commit 6e06f3e, load 1.4-1.6) 0.742 s, 0.768 s and 0.768 s against
//! 6.66 s, 6.87 s and 8.00 s (8.9x to 10.4x); before the block Krylov PCA: 4.95 s against
//! 39.10 s at load 6.0-7.8 (7.9x), 1.78 s against 7.17 s at load 1.0-1.4.
//! `SCRNA_BENCH_DOUBLETS_GENES=<n>` changes the number of genes. The dump writes
//! `matrix.h5` (10x HDF5) and `samples.csv` (barcode,sample).
use std::io::Write;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use scrna::doublets::{scrublet_by_sample, Doublets, ScrubletOptions};
use scrna::io::tenx_h5::write_10x_h5;
use scrna::simulate::{simulate, SimulateOptions};
use scrna::Dataset;

fn dataset(n_cells: usize, n_genes: usize) -> Dataset {
    simulate(&SimulateOptions {
        n_cells,
        n_genes,
        ..SimulateOptions::default()
    })
    .expect("simulate")
    .dataset
}

fn codes(ds: &Dataset) -> (Vec<u32>, Vec<String>) {
    let mut names = ds.cells.sample.clone();
    names.sort();
    names.dedup();
    let codes = ds
        .cells
        .sample
        .iter()
        .map(|s| names.iter().position(|n| n == s).expect("name") as u32)
        .collect();
    (codes, names)
}

fn run(ds: &Dataset, codes: &[u32], names: &[String]) -> Doublets {
    scrublet_by_sample(&ds.counts, codes, names, &ScrubletOptions::default()).expect("scrublet")
}

fn one_shot(n_cells: usize) {
    let n_genes = std::env::var("SCRNA_BENCH_DOUBLETS_GENES")
        .map(|v| v.parse().expect("SCRNA_BENCH_DOUBLETS_GENES=<genes>"))
        .unwrap_or(10_000);
    let ds = dataset(n_cells, n_genes);
    let (codes, names) = codes(&ds);
    if let Ok(dir) = std::env::var("SCRNA_BENCH_DOUBLETS_DUMP") {
        std::fs::create_dir_all(&dir).expect("dump dir");
        write_10x_h5(&ds, std::path::Path::new(&format!("{dir}/matrix.h5"))).expect("write h5");
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(format!("{dir}/samples.csv")).expect("samples.csv"),
        );
        writeln!(f, "barcode,sample").expect("write");
        for (b, s) in ds.cells.barcodes.iter().zip(&ds.cells.sample) {
            writeln!(f, "{b},{s}").expect("write");
        }
    }
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let d = run(&ds, &codes, &names);
        times.push(t.elapsed().as_secs_f64());
        let per: Vec<String> = d
            .per_sample
            .iter()
            .map(|s| {
                format!(
                    "{} {}/{} (threshold {:?})",
                    s.sample, s.n_predicted, s.n_cells, s.threshold
                )
            })
            .collect();
        println!(
            "scrublet_by_sample: {:.3} s; predicted {}",
            times.last().expect("time"),
            per.join(", ")
        );
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{n_cells} cells x {n_genes} genes, {} samples, {} threads: median {:.3} s",
        names.len(),
        rayon::current_num_threads(),
        times[1]
    );
}

fn bench(c: &mut Criterion) {
    let ds = dataset(10_000, 10_000);
    let (codes, names) = codes(&ds);
    let mut group = c.benchmark_group("doublets");
    group.sample_size(10);
    group.bench_function("scrublet_by_sample/10000x10000", |b| {
        b.iter(|| run(&ds, &codes, &names))
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(n) = std::env::var("SCRNA_BENCH_DOUBLETS_CELLS") {
        one_shot(n.parse().expect("SCRNA_BENCH_DOUBLETS_CELLS=<cells>"));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
