//! UMAP layout of a seeded clustered graph (5,000 cells, 12 clusters, k = 15, 200 epochs).
//! The 50,000-cell figure in the report comes from
//! `cargo run --release --example plots_demo -- --cells 50000`.
//! `SCRNA_UMAP_ONESHOT=N` times one layout of an N-cell graph instead (for profilers);
//! `SCRNA_UMAP_EPOCHS` sets its number of epochs.

#[path = "../tests/support/clustered_graph.rs"]
mod clustered_graph;

use criterion::{criterion_group, Criterion};
use scrna::embed::{umap, Init, UmapOptions};

fn bench(c: &mut Criterion) {
    let g = clustered_graph::clustered_graph(5000, 12, 10, 15, 5.0, 0.02, 42);
    let opts = UmapOptions {
        n_epochs: Some(200),
        ..Default::default()
    };
    let mut group = c.benchmark_group("umap");
    group.sample_size(10);
    group.bench_function("5000_cells_200_epochs", |b| {
        b.iter(|| umap(&g.graph, Init::Spectral, &opts).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(n) = std::env::var("SCRNA_UMAP_ONESHOT") {
        let n: usize = n.parse().expect("SCRNA_UMAP_ONESHOT=<cells>");
        let g = clustered_graph::clustered_graph(n, 12, 10, 15, 5.0, 0.02, 42);
        let t = std::time::Instant::now();
        let opts = UmapOptions {
            n_epochs: std::env::var("SCRNA_UMAP_EPOCHS")
                .ok()
                .map(|e| e.parse().unwrap()),
            ..Default::default()
        };
        let layout = umap(&g.graph, Init::Spectral, &opts).unwrap();
        let sum: f64 = layout.iter().map(|v| *v as f64).sum();
        println!(
            "umap {n} cells: {:.3} s (coordinate sum {sum:.3})",
            t.elapsed().as_secs_f64()
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
