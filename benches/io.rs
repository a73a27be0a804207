//! Reading speed of the 10x Matrix Market reader on a simulated 50,000-cell x 20,000-gene
//! dataset (about 120 million non-zeros, the simulator's defaults otherwise), gzipped as Cell
//! Ranger 3 writes it.
//!
//! `cargo bench --bench io`. The folder is made once (seed 0) under
//! `target/bench-data/mtx_50k` (or `$SCRNA_BENCH_DIR`) and reused;
//! `benches/scanpy_read_mtx.py` times Scanpy's `read_10x_mtx` on the same folder.
//! `SCRNA_BENCH_CELLS` changes the number of cells (for a quick run).

use criterion::{criterion_group, criterion_main, Criterion};
use scrna::io::{read_10x, write_10x_mtx, MtxWriteOptions};
use scrna::simulate::{simulate, SimulateOptions};
use std::path::PathBuf;
use std::time::Instant;

fn data_dir() -> PathBuf {
    let cells: usize = std::env::var("SCRNA_BENCH_CELLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    let dir = std::env::var_os("SCRNA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("target/bench-data/mtx_{}k", cells / 1000)));
    if !dir.join("matrix.mtx.gz").is_file() {
        let t = Instant::now();
        let sim = simulate(&SimulateOptions {
            n_cells: cells,
            n_genes: 20_000,
            seed: 0,
            ..Default::default()
        })
        .expect("simulate");
        eprintln!(
            "simulated {} cells x {} genes, {} non-zeros in {:.1} s",
            sim.dataset.n_cells(),
            sim.dataset.n_genes(),
            sim.dataset.counts.nnz(),
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        write_10x_mtx(&sim.dataset, &dir, &MtxWriteOptions::default()).expect("write");
        eprintln!(
            "wrote {} in {:.1} s",
            dir.display(),
            t.elapsed().as_secs_f64()
        );
    }
    dir
}

fn bench_read_mtx(c: &mut Criterion) {
    let dir = data_dir();
    let mut g = c.benchmark_group("io");
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(60));
    g.bench_function("read_10x_mtx_gz_50k", |b| {
        b.iter(|| {
            let ds = read_10x(&dir).expect("read");
            std::hint::black_box(ds.counts.nnz())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_read_mtx);
criterion_main!(benches);
