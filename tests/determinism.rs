//! The whole pipeline gives byte-identical result files whatever the number of threads.

use scrna::pipeline::{output, run, PipelineOptions};
use scrna::simulate::{simulate, SimulateOptions};
use std::path::Path;

/// Runs the pipeline in a pool of `threads` threads and writes its tables into `dir`.
fn run_in_pool(threads: usize, data: &scrna::Dataset, opts: &PipelineOptions, dir: &Path) -> usize {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        assert_eq!(rayon::current_num_threads(), threads);
        let a = run(data, opts, &mut |_| {}).unwrap();
        output::write_tables(&a, opts, dir).unwrap();
        a.clustering.n_clusters
    })
}

/// `clusters.csv` and `markers.csv` in `a` and `b` are the same bytes (and not empty).
fn assert_same_tables(a: &Path, b: &Path) {
    for name in ["clusters.csv", "markers.csv"] {
        let x = std::fs::read(a.join(name)).unwrap();
        let y = std::fs::read(b.join(name)).unwrap();
        assert!(x.len() > 100, "{name} is nearly empty");
        if x != y {
            let (tx, ty) = (String::from_utf8_lossy(&x), String::from_utf8_lossy(&y));
            let first = tx.lines().zip(ty.lines()).position(|(l, m)| l != m);
            panic!(
                "{name} differs between 1 and 2 threads (first differing line {first:?}: {:?} vs {:?})",
                first.and_then(|i| tx.lines().nth(i)),
                first.and_then(|i| ty.lines().nth(i)),
            );
        }
    }
}

#[test]
fn one_and_two_threads_write_identical_clusters_and_markers() {
    let sim = simulate(&SimulateOptions {
        n_cells: 3000,
        n_genes: 2000,
        n_clusters: 6,
        n_markers: 30,
        seed: 7,
        ..Default::default()
    })
    .unwrap();
    // Default options, except fewer UMAP epochs (the layout is still in `clusters.csv`, so
    // its determinism is checked, but the test stays short in the debug profile).
    let opts = PipelineOptions {
        umap: scrna::embed::UmapOptions {
            n_epochs: Some(100),
            ..Default::default()
        },
        ..Default::default()
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let k1 = run_in_pool(1, &sim.dataset, &opts, dirs[0].path());
    let k2 = run_in_pool(2, &sim.dataset, &opts, dirs[1].path());
    assert!(
        k1 >= 2,
        "the data should split into several clusters, got {k1}"
    );
    assert_eq!(k1, k2);
    assert_same_tables(dirs[0].path(), dirs[1].path());
}

#[test]
fn approximate_neighbours_are_identical_with_one_and_two_threads() {
    // The approximate kNN search (the default above 8,191 cells) forced on a smaller dataset.
    let sim = simulate(&SimulateOptions {
        n_cells: 2000,
        n_genes: 2000,
        n_clusters: 5,
        n_markers: 30,
        seed: 11,
        ..Default::default()
    })
    .unwrap();
    let opts = PipelineOptions {
        knn: scrna::neighbors::KnnOptions {
            method: scrna::neighbors::Method::Approximate,
            ..Default::default()
        },
        skip_umap: true,
        ..Default::default()
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    run_in_pool(1, &sim.dataset, &opts, dirs[0].path());
    run_in_pool(2, &sim.dataset, &opts, dirs[1].path());
    assert_same_tables(dirs[0].path(), dirs[1].path());
}
