//! UMAP layout of a seeded clustered graph (5,000 cells, 12 clusters, k = 15, 200 epochs).
//! The 50,000-cell figure in the report comes from
//! `cargo run --release --example plots_demo -- --cells 50000`.

#[path = "../tests/support/clustered_graph.rs"]
mod clustered_graph;

use criterion::{criterion_group, criterion_main, Criterion};
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
criterion_main!(benches);
