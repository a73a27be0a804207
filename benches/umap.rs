//! UMAP layout of a seeded clustered graph (5,000 cells, 12 clusters, k = 15, 200 epochs).
//!
//! One-shot modes (for profilers and before/after comparisons), each printing the time of the
//! spectral start (up to the first progress call, which comes before the first epoch), the
//! time of the optimization, and two measures of the layout's quality: the kNN preservation
//! (mean over 2,000 sampled cells of the fraction of its 15 strongest graph neighbours among
//! its 15 nearest cells in the layout) and the within / between ratio (mean distance between
//! cells of the same cluster / of different clusters, over sampled pairs).
//!
//! - `SCRNA_UMAP_ONESHOT=N`: an N-cell clustered graph (12 clusters; the clusters are the
//!   ground truth); `SCRNA_UMAP_EPOCHS` sets its number of epochs.
//! - `SCRNA_UMAP_EMBEDDING=<file>`: a cells x 50 embedding (raw little-endian f32, row-major,
//!   e.g. the pipeline's PCA); the graph is `neighbors::knn` (default options, 15 neighbours)
//!   then `graph::umap_connectivities` (default options), the layout uses the default
//!   `UmapOptions` as the pipeline does, and the clusters are Leiden's (default options).
//!   `SCRNA_UMAP_DIMS` sets the number of columns (default 50).
//!
//! `SCRNA_UMAP_REPEAT=R` times the layout R times and prints each run and the medians (wall
//! time, and on Linux the process's CPU time, which other work on a shared machine disturbs
//! less; `R = 0` skips the layout); with an embedding, `SCRNA_UMAP_LEIDEN_REPEAT=R` times
//! Leiden on its graph R times (default 1);
//! `SCRNA_UMAP_SEED` sets the layout's seed (default 0), to see how much the quality measures
//! vary from seed to seed. `SCRNA_UMAP_LAYOUT_OUT=<file>` writes the last layout (raw
//! little-endian f32, cells x 2, row-major), to compare layouts bit for bit.

#[path = "../tests/support/clustered_graph.rs"]
mod clustered_graph;
#[path = "../tests/support/layout_quality.rs"]
mod layout_quality;

use criterion::{criterion_group, Criterion};
use ndarray::Array2;
use scrna::cluster::{leiden, LeidenOptions};
use scrna::embed::{umap, umap_with_progress, Init, UmapOptions};
use scrna::graph::{umap_connectivities, UmapGraphOptions};
use scrna::neighbors::{knn, KnnOptions};
use scrna::CsrMatrix;
use std::time::Instant;

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

/// CPU time of the process (all threads, user + system) in seconds, from `/proc/self/stat`
/// (Linux; clock ticks taken as 1/100 s); `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the command name (which may hold spaces) end with ')'
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn one_shot(name: &str, graph: &CsrMatrix, labels: &[u32], opts: &UmapOptions) {
    let opts = &UmapOptions {
        seed: std::env::var("SCRNA_UMAP_SEED")
            .ok()
            .map_or(0, |s| s.parse().expect("SCRNA_UMAP_SEED=<seed>")),
        ..opts.clone()
    };
    let repeat: usize = std::env::var("SCRNA_UMAP_REPEAT")
        .ok()
        .map_or(1, |r| r.parse().expect("SCRNA_UMAP_REPEAT=<runs>"));
    let (mut starts, mut sgds) = (Vec::new(), Vec::new());
    let (mut cpu_starts, mut cpu_sgds) = (Vec::new(), Vec::new());
    let mut layout = None;
    for _ in 0..repeat {
        let t = Instant::now();
        let c0 = cpu_seconds();
        let mut start = None;
        let mut cpu_start = None;
        let x = umap_with_progress(graph, Init::Spectral, opts, &mut |_| {
            start.get_or_insert_with(|| t.elapsed().as_secs_f64());
            cpu_start.get_or_insert_with(cpu_seconds);
        })
        .unwrap();
        let total = t.elapsed().as_secs_f64();
        let start = start.unwrap_or(total);
        print!(
            "umap {name}: spectral start {start:.3} s, optimization {:.3} s, total {total:.3} s",
            total - start
        );
        if let (Some(c0), Some(Some(c1)), Some(c2)) = (c0, cpu_start, cpu_seconds()) {
            print!(
                " (CPU: spectral start {:.2} s, optimization {:.2} s)",
                c1 - c0,
                c2 - c1
            );
            cpu_starts.push(c1 - c0);
            cpu_sgds.push(c2 - c1);
        }
        println!();
        starts.push(start);
        sgds.push(total - start);
        layout = Some(x);
    }
    let Some(x) = layout else {
        return;
    };
    if let Ok(path) = std::env::var("SCRNA_UMAP_LAYOUT_OUT") {
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&path, bytes).expect("SCRNA_UMAP_LAYOUT_OUT=<writable file>");
    }
    if repeat > 1 {
        println!(
            "medians of {repeat}: spectral start {:.3} s, optimization {:.3} s",
            median(&mut starts),
            median(&mut sgds)
        );
        if cpu_sgds.len() == repeat {
            println!(
                "CPU medians of {repeat}: spectral start {:.2} s, optimization {:.2} s",
                median(&mut cpu_starts),
                median(&mut cpu_sgds)
            );
        }
    }
    let sum: f64 = x.iter().map(|v| *v as f64).sum();
    // 2,000 evenly spaced cells
    let sample: Vec<usize> = (0..graph.n_rows())
        .step_by((graph.n_rows() / 2000).max(1))
        .collect();
    println!(
        "quality: kNN preservation {:.4}, within/between {:.4} (coordinate sum {sum:.3})",
        layout_quality::knn_preservation(graph, x.view(), &sample, 15),
        layout_quality::within_between(x.view(), labels, 37, 53)
    );
}

fn main() {
    if let Ok(path) = std::env::var("SCRNA_UMAP_EMBEDDING") {
        let dims: usize = std::env::var("SCRNA_UMAP_DIMS")
            .ok()
            .map_or(50, |d| d.parse().expect("SCRNA_UMAP_DIMS=<columns>"));
        let bytes = std::fs::read(&path).expect("SCRNA_UMAP_EMBEDDING=<f32 file>");
        let vals: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let n = vals.len() / dims;
        let x = Array2::from_shape_vec((n, dims), vals).unwrap();
        let t = Instant::now();
        let k = knn(x.view(), &KnnOptions::default()).unwrap();
        let graph = umap_connectivities(&k, n, &UmapGraphOptions::default()).unwrap();
        println!(
            "{n} x {dims} embedding: kNN + connectivities {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let leiden_repeat: usize = std::env::var("SCRNA_UMAP_LEIDEN_REPEAT")
            .ok()
            .map_or(1, |r| r.parse().expect("SCRNA_UMAP_LEIDEN_REPEAT=<runs>"));
        let mut times = Vec::new();
        let mut labels = None;
        for _ in 0..leiden_repeat.max(1) {
            let t = Instant::now();
            let l = leiden(&graph, &LeidenOptions::default()).unwrap();
            times.push(t.elapsed().as_secs_f64());
            println!(
                "Leiden: {} clusters, {:.3} s",
                l.n_clusters,
                times.last().unwrap()
            );
            labels = Some(l);
        }
        let labels = labels.unwrap();
        if times.len() > 1 {
            println!(
                "Leiden: median of {} {:.3} s",
                times.len(),
                median(&mut times)
            );
        }
        one_shot(
            &format!("{n} cells"),
            &graph,
            &labels.labels,
            &UmapOptions::default(),
        );
        return;
    }
    if let Ok(n) = std::env::var("SCRNA_UMAP_ONESHOT") {
        let n: usize = n.parse().expect("SCRNA_UMAP_ONESHOT=<cells>");
        let g = clustered_graph::clustered_graph(n, 12, 10, 15, 5.0, 0.02, 42);
        let opts = UmapOptions {
            n_epochs: std::env::var("SCRNA_UMAP_EPOCHS")
                .ok()
                .map(|e| e.parse().unwrap()),
            ..Default::default()
        };
        one_shot(&format!("{n} cells"), &g.graph, &g.labels, &opts);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
