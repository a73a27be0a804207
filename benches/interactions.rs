//! CellPhoneDB's statistical analysis on 10,000 cells: the labelled cells of
//! `fixtures/celltypist_sample` (log1p(count / total * 1e4), Leiden labels of
//! `fixtures/cellphonedb/labels.csv.gz`, 11 clusters) repeated in order, the bundled
//! CellPhoneDB v5 resource. `scripts/cellphonedb_reference.py bench` times CellPhoneDB on the
//! same cells. Prints a one-shot timing with 1,000 permutations, then criterion with 100.
//! With `SCRNA_BENCH_ONESHOT=1` only the one-shot timing, three times, their median and the
//! machine's load (`/proc/loadavg`) before each (the figure the README compares with
//! CellPhoneDB's).

use criterion::{criterion_group, criterion_main, Criterion};
use scrna::interactions::{cellphonedb_v5, statistical_analysis, InteractionOptions, Resource};
use scrna::CsrMatrix;
use std::collections::HashMap;
use std::io::Read;
use std::time::Instant;

fn data(n_cells: usize) -> (CsrMatrix, Vec<String>, Vec<u32>) {
    let ds = scrna::io::read_10x("fixtures/celltypist_sample/filtered_feature_bc_matrix").unwrap();
    let mut s = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open("fixtures/cellphonedb/labels.csv.gz").unwrap(),
    )
    .read_to_string(&mut s)
    .unwrap();
    let pos: HashMap<&str, usize> = ds
        .cells
        .barcodes
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let cells: Vec<(usize, u32)> = s
        .lines()
        .skip(1)
        .map(|l| {
            let (b, c) = l.split_once(',').unwrap();
            (pos[b], c.parse().unwrap())
        })
        .collect();
    let rows: Vec<usize> = (0..n_cells).map(|i| cells[i % cells.len()].0).collect();
    let labels: Vec<u32> = (0..n_cells).map(|i| cells[i % cells.len()].1).collect();
    let mut x = ds.counts.select_rows(&rows).unwrap().into_csr();
    x.map_rows_mut(|_, _, vals| {
        let inv = 1.0 / vals.iter().map(|&v| v as f64).sum::<f64>();
        for v in vals.iter_mut() {
            *v = ((*v as f64 * inv) * 1e4).ln_1p() as f32;
        }
    });
    (x, ds.genes.symbols.clone(), labels)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// One run with 1,000 permutations; prints and returns its seconds.
fn one_shot(x: &CsrMatrix, genes: &[String], labels: &[u32], resource: &Resource) -> f64 {
    let before = load();
    let t = Instant::now();
    let r =
        statistical_analysis(x, genes, labels, resource, &InteractionOptions::default()).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "statistical_analysis 10,000 cells, {} clusters, {} interactions, 1000 permutations, {} threads: {secs:.2} s (load before: {before})",
        r.n_clusters,
        r.interactions.len(),
        rayon::current_num_threads(),
    );
    secs
}

fn bench(c: &mut Criterion) {
    let (x, genes, labels) = data(10_000);
    let resource = cellphonedb_v5().unwrap();
    if std::env::var("SCRNA_BENCH_ONESHOT").is_ok_and(|v| v == "1") {
        let mut t: Vec<f64> = (0..3)
            .map(|_| one_shot(&x, &genes, &labels, &resource))
            .collect();
        t.sort_by(f64::total_cmp);
        println!("median of 3: {:.2} s (load after: {})", t[1], load());
        return;
    }
    one_shot(&x, &genes, &labels, &resource);
    let opts = InteractionOptions {
        n_permutations: 100,
        ..Default::default()
    };
    let mut g = c.benchmark_group("interactions");
    g.sample_size(10);
    g.bench_function("cellphonedb_10k_cells_100_permutations", |b| {
        b.iter(|| statistical_analysis(&x, &genes, &labels, &resource, &opts).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
