//! Leiden on a kNN graph of seeded clustered points (k = 15, weights 1 / (1 + d^2), the
//! graph of `scripts/reference_cluster.py`).
//!
//! `cargo bench --bench cluster` runs 50,000 nodes; `SCRNA_BENCH_LARGE=1` adds 200,000.
//! `SCRNA_BENCH_WRITE_GRAPH=1` writes each graph to `target/cluster_bench/knn_<n>.tsv` for
//! `python scripts/reference_cluster.py bench target/cluster_bench/knn_<n>.tsv` (leidenalg on
//! the same graph).

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use petal_neighbors::BallTree;
use rayon::prelude::*;
use scrna::cluster::{leiden, LeidenOptions};
use scrna::CsrMatrix;
use std::io::Write;
use std::time::Duration;

struct SplitMix64(u64);
impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

fn knn_graph(n: usize) -> CsrMatrix {
    let (dim, k, clusters, spread) = (10, 15, 12, 1.5);
    let mut rng = SplitMix64(20240601);
    let centers: Vec<f64> = (0..clusters * dim)
        .map(|_| (2.0 * rng.uniform() - 1.0) * spread)
        .collect();
    let mut pts = Array2::<f64>::zeros((n, dim));
    for i in 0..n {
        let c = (rng.uniform() * clusters as f64) as usize;
        for d in 0..dim {
            pts[[i, d]] = centers[c * dim + d] + rng.normal();
        }
    }
    let tree = BallTree::euclidean(pts.view()).expect("ball tree");
    let nbrs: Vec<(Vec<usize>, Vec<f64>)> = (0..n)
        .into_par_iter()
        .map(|i| tree.query(&pts.row(i), k + 1))
        .collect();
    let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (idx, dist)) in nbrs.iter().enumerate() {
        for (&j, &d) in idx.iter().zip(dist) {
            if j != i {
                let w = (1.0 / (1.0 + d * d)) as f32;
                r.extend([i as u32, j as u32]);
                c.extend([j as u32, i as u32]);
                v.extend([w, w]);
            }
        }
    }
    // Duplicates (mutual neighbours) were summed by from_triplets: halve them back to the
    // symmetric maximum (both copies carry the same weight).
    let g = CsrMatrix::from_triplets(n, n, &r, &c, &v).expect("graph");
    let mut counts = CsrMatrix::from_triplets(n, n, &r, &c, &vec![1.0; v.len()]).expect("graph");
    let (_, _, indptr, indices, mut data) = g.into_parts();
    for (x, m) in data.iter_mut().zip(counts.data_mut().iter()) {
        *x /= *m;
    }
    CsrMatrix::try_new(n, n, indptr, indices, data).expect("graph")
}

fn write_graph(g: &CsrMatrix) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/cluster_bench");
    std::fs::create_dir_all(dir).expect("dir");
    let path = format!("{dir}/knn_{}.tsv", g.n_rows());
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("file"));
    writeln!(f, "{}\t0\t0", g.n_rows()).expect("write");
    for i in 0..g.n_rows() {
        let (cols, vals) = g.row(i);
        for (&j, &w) in cols.iter().zip(vals) {
            if (i as u32) < j {
                writeln!(f, "{i}\t{j}\t{w}").expect("write");
            }
        }
    }
    eprintln!("wrote {path}");
}

fn bench(c: &mut Criterion) {
    let mut sizes = vec![50_000];
    if std::env::var_os("SCRNA_BENCH_LARGE").is_some() {
        sizes.push(200_000);
    }
    let mut group = c.benchmark_group("leiden");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for n in sizes {
        let g = knn_graph(n);
        if std::env::var_os("SCRNA_BENCH_WRITE_GRAPH").is_some() {
            write_graph(&g);
        }
        let r = leiden(&g, &LeidenOptions::default()).expect("leiden");
        eprintln!(
            "n = {n}: {} edges, {} clusters, modularity {:.6}",
            g.nnz() / 2,
            r.n_clusters,
            r.quality
        );
        group.bench_function(format!("modularity_res1_{n}"), |b| {
            b.iter(|| leiden(&g, &LeidenOptions::default()).expect("leiden"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
