//! The end-to-end pipeline on the bundled dataset and on simulated data.

use scrna::cluster::adjusted_rand_index;
use scrna::io::h5ad::{read_h5ad, H5adReadOptions};
use scrna::pipeline::{output, run, PipelineOptions, Switch};
use scrna::simulate::{simulate, SimulateOptions};
use std::collections::HashMap;
use std::path::Path;

const BUNDLED: &str = "fixtures/celltypist_sample/filtered_feature_bc_matrix";

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn bundled_dataset_outputs_are_complete_and_agree_with_scanpy() {
    let data = scrna::read_10x(BUNDLED).unwrap();
    let opts = PipelineOptions::default();
    let mut steps = Vec::new();
    let a = run(&data, &opts, &mut |p| steps.push((p.step, p.fraction))).unwrap();
    assert_eq!(a.steps.len(), 8);
    assert!(steps.contains(&("leiden", 1.0)));
    // every step reports 0 first and 1 last, fractions never go back, and the long steps
    // report fractions in between
    for s in &a.steps {
        let f: Vec<f64> = steps
            .iter()
            .filter(|(n, _)| *n == s.step)
            .map(|p| p.1)
            .collect();
        assert_eq!(f.first(), Some(&0.0), "{}", s.step);
        assert_eq!(f.last(), Some(&1.0), "{}", s.step);
        assert!(f.windows(2).all(|w| w[0] <= w[1]), "{}: {f:?}", s.step);
    }
    for long in ["umap", "markers", "neighbors"] {
        let between = steps
            .iter()
            .filter(|(n, f)| *n == long && *f > 0.0 && *f < 1.0)
            .count();
        assert!(between >= 1, "{long} reports no fraction between 0 and 1");
    }

    // Scanpy 1.11.5, same standard pipeline: 553 cells, 9,809 genes (fixtures/SOURCES.md).
    assert_eq!(a.dataset().n_cells(), 553);
    assert_eq!(a.dataset().n_genes(), 9809);
    // Leiden labels against Scanpy's (committed by scripts/reference_markers.py).
    let reference: HashMap<String, u32> =
        csv_rows(Path::new("fixtures/reference/markers/leiden_labels.csv"))
            .into_iter()
            .skip(1)
            .map(|r| (r[0].clone(), r[1].parse().unwrap()))
            .collect();
    let theirs: Vec<u32> = a
        .dataset()
        .cells
        .barcodes
        .iter()
        .map(|b| reference[b])
        .collect();
    let ari = adjusted_rand_index(&a.clustering.labels, &theirs).unwrap();
    assert!(ari >= 0.9, "ARI with Scanpy's Leiden labels {ari}");

    let dir = tempfile::tempdir().unwrap();
    let files = output::write_all(&a, &opts, dir.path()).unwrap();
    for name in [
        "clusters.csv",
        "markers.csv",
        "qc.csv",
        "hvg.csv",
        "pca_variance.csv",
        "summary.json",
        "analysis.h5ad",
        "umap_clusters.png",
        "umap_clusters.svg",
        "qc_violins.png",
        "markers_dotplot.png",
        "pca_elbow.png",
    ] {
        let p = dir.path().join(name);
        assert!(files.contains(&p), "{name} not reported");
        assert!(std::fs::metadata(&p).unwrap().len() > 0, "{name} empty");
    }
    // No temporary file left behind.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "leftover {name}");
    }

    // The files agree with each other.
    let clusters = csv_rows(&dir.path().join("clusters.csv"));
    assert_eq!(
        clusters[0],
        [
            "barcode",
            "sample",
            "condition",
            "cluster",
            "umap1",
            "umap2"
        ]
    );
    assert_eq!(clusters.len() - 1, 553);
    let qc = csv_rows(&dir.path().join("qc.csv"));
    assert_eq!(qc.len() - 1, 559);
    assert_eq!(qc.iter().skip(1).filter(|r| r[7] == "true").count(), 553);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["cells_after_qc"], 553);
    let sizes: Vec<u64> = summary["cluster_sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), 553);
    for (c, &n) in sizes.iter().enumerate() {
        let rows = clusters
            .iter()
            .skip(1)
            .filter(|r| r[3] == c.to_string())
            .count();
        assert_eq!(rows as u64, n);
        assert!(c == 0 || sizes[c - 1] >= n, "clusters not ordered by size");
    }
    let markers = csv_rows(&dir.path().join("markers.csv"));
    assert_eq!(markers.len() - 1, 25 * sizes.len());
    let pcs = csv_rows(&dir.path().join("pca_variance.csv"));
    assert_eq!(pcs.len() - 1, 50);

    // The .h5ad reads back.
    let back = read_h5ad(
        &dir.path().join("analysis.h5ad"),
        &H5adReadOptions {
            layer: Some("X".to_string()),
            assume_counts: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(back.n_cells(), 553);
    assert_eq!(back.counts, a.log_normalized().unwrap().to_matrix());
    let counts = read_h5ad(
        &dir.path().join("analysis.h5ad"),
        &H5adReadOptions {
            layer: Some("counts".to_string()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(counts.counts, a.dataset().counts);
}

#[test]
fn simulated_clusters_are_recovered() {
    let sim = simulate(&SimulateOptions {
        n_cells: 1500,
        n_genes: 3000,
        n_clusters: 6,
        n_markers: 30,
        condition_specific: 0,
        ..Default::default()
    })
    .unwrap();
    // The single-sample steps only: every simulated cell passes QC.
    let opts = PipelineOptions {
        skip_umap: true,
        doublets: Switch::Off,
        integration: Switch::Off,
        ..Default::default()
    };
    let a = run(&sim.dataset, &opts, &mut |_| {}).unwrap();
    assert_eq!(
        a.dataset().n_cells(),
        1500,
        "no simulated cell should fail QC"
    );
    let ari = adjusted_rand_index(&a.clustering.labels, &sim.truth.cluster).unwrap();
    assert!(ari > 0.9, "ARI against the truth {ari}");
    // Nothing removed: the owned run's normalization rides on the filter's pass, same numbers.
    let same = scrna::pipeline::run_owned(sim.dataset.clone(), &opts, &mut |_| {}).unwrap();
    assert_eq!(same.size_factors, a.size_factors);
    assert_eq!(format!("{:?}", same.hvg), format!("{:?}", a.hvg));
    assert_eq!(same.clustering.labels, a.clustering.labels);

    // Filtering the given-up dataset in place gives the same analysis, also when cells and
    // genes are removed.
    let m = scrna::qc::metrics(&sim.dataset, &Default::default()).unwrap();
    let mut genes = m.n_genes_by_counts.clone();
    genes.sort_unstable();
    let strict = PipelineOptions {
        filter: scrna::qc::FilterOptions {
            min_genes: Some(genes[genes.len() / 5]),
            min_cells: Some(40),
            ..Default::default()
        },
        ..opts.clone()
    };
    let borrowed = run(&sim.dataset, &strict, &mut |_| {}).unwrap();
    let owned = scrna::pipeline::run_owned(sim.dataset.clone(), &strict, &mut |_| {}).unwrap();
    assert!(!borrowed.filtered.removed_cells.is_empty());
    assert!(!borrowed.filtered.removed_genes.is_empty());
    assert_eq!(owned.dataset().counts, borrowed.dataset().counts);
    assert_eq!(owned.size_factors, borrowed.size_factors);
    assert_eq!(format!("{:?}", owned.hvg), format!("{:?}", borrowed.hvg));
    assert_eq!(owned.clustering.labels, borrowed.clustering.labels);
    assert_eq!(
        format!("{:?}", owned.markers),
        format!("{:?}", borrowed.markers)
    );
}

#[test]
fn same_seed_same_files_whatever_the_thread_count() {
    let sim = simulate(&SimulateOptions {
        n_cells: 600,
        n_genes: 2000,
        n_clusters: 4,
        n_markers: 20,
        ..Default::default()
    })
    .unwrap();
    let opts = PipelineOptions {
        umap: scrna::embed::UmapOptions {
            n_epochs: Some(50),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut outputs = Vec::new();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        pool.install(|| {
            let a = run(&sim.dataset, &opts, &mut |_| {}).unwrap();
            output::write_tables(&a, &opts, dir.path()).unwrap();
        });
        let read = |n: &str| std::fs::read(dir.path().join(n)).unwrap();
        outputs.push((read("clusters.csv"), read("markers.csv")));
    }
    assert!(outputs[0].0 == outputs[1].0, "clusters.csv differs");
    assert!(outputs[0].1 == outputs[1].1, "markers.csv differs");
}

/// The `.h5ad` written while the UMAP layout is computed is the file written after the run,
/// byte for byte, and the other outputs written next to it list it; with the layout
/// skipped it is written after the markers. An earlier file at its path is replaced, with
/// nothing left beside it.
#[test]
fn h5ad_written_during_the_layout_is_the_one_written_after() {
    let sim = simulate(&SimulateOptions {
        n_cells: 400,
        n_genes: 1500,
        n_clusters: 3,
        n_markers: 20,
        ..Default::default()
    })
    .unwrap();
    for skip_umap in [false, true] {
        let opts = PipelineOptions {
            umap: scrna::embed::UmapOptions {
                n_epochs: Some(30),
                ..Default::default()
            },
            skip_umap,
            ..Default::default()
        };
        let during = tempfile::tempdir().unwrap();
        let path = during.path().join("analysis.h5ad");
        // an earlier run's file is replaced (moved aside and removed beside the layout)
        std::fs::write(&path, b"an earlier run's analysis.h5ad").unwrap();
        let (a, file) =
            scrna::pipeline::run_owned_with_h5ad(sim.dataset.clone(), &opts, &path, &mut |_| {})
                .unwrap();
        assert_eq!(file.path, path);
        assert_eq!(file.bytes, std::fs::metadata(&path).unwrap().len());
        let n = a.dataset().n_cells();
        assert_eq!(a.umap.nrows(), if skip_umap { 0 } else { n });
        let files = output::write_rest_with_report(&a, &opts, during.path(), None, file).unwrap();
        assert_eq!(
            files
                .iter()
                .filter(|f| f.path.ends_with("analysis.h5ad"))
                .count(),
            1
        );
        // no temporary file left behind
        let names: Vec<String> = std::fs::read_dir(during.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

        let after = tempfile::tempdir().unwrap();
        let b = scrna::pipeline::run_owned(sim.dataset.clone(), &opts, &mut |_| {}).unwrap();
        assert_eq!(a.umap, b.umap);
        output::write_h5ad_file(&b, &opts, &after.path().join("analysis.h5ad")).unwrap();
        let bytes = |d: &Path| std::fs::read(d.join("analysis.h5ad")).unwrap();
        assert!(
            bytes(during.path()) == bytes(after.path()),
            "the .h5ad differs (skip_umap {skip_umap})"
        );
    }
}

/// A bad option is reported before any step starts (no progress call), named by its path.
#[test]
fn bad_options_fail_before_any_step() {
    let sim = simulate(&SimulateOptions {
        n_cells: 200,
        n_genes: 500,
        n_clusters: 2,
        n_markers: 10,
        ..Default::default()
    })
    .unwrap();
    let cases: Vec<(PipelineOptions, &str)> = vec![
        (
            PipelineOptions {
                umap: scrna::embed::UmapOptions {
                    min_dist: -1.0,
                    ..Default::default()
                },
                ..Default::default()
            },
            "umap.min_dist",
        ),
        (
            PipelineOptions {
                threads: Some(0),
                ..Default::default()
            },
            "threads",
        ),
        (
            {
                let mut o = PipelineOptions::default();
                o.hvg.span = 2.0;
                o
            },
            "hvg.span",
        ),
        (
            {
                let mut o = PipelineOptions::default();
                o.filter.qc.mito_prefixes = vec![String::new()];
                o
            },
            "filter.qc.mito_prefixes",
        ),
    ];
    for (opts, name) in cases {
        let mut calls = 0;
        let err = run(&sim.dataset, &opts, &mut |_| calls += 1).unwrap_err();
        assert!(err.to_string().contains(&format!("`{name}`")), "{err}");
        assert_eq!(
            calls, 0,
            "{name}: a step ran before the options were checked"
        );
    }
}

/// `PipelineOptions::threads` runs the analysis in its own pool: the same files as the global
/// pool, and values lowered to fit small data are recorded as warnings.
#[test]
fn threads_option_and_lowered_values() {
    let sim = simulate(&SimulateOptions {
        n_cells: 40,
        n_genes: 800,
        n_clusters: 2,
        n_markers: 20,
        ..Default::default()
    })
    .unwrap();
    let mut opts = PipelineOptions {
        skip_umap: true,
        ..Default::default()
    };
    opts.filter.min_genes = Some(10);
    let a1 = run(&sim.dataset, &opts, &mut |_| {}).unwrap();
    opts.threads = Some(1);
    let a2 = run(&sim.dataset, &opts, &mut |_| {}).unwrap();
    assert_eq!(a1.clustering.labels, a2.clustering.labels);
    assert_eq!(a1.pca.embedding, a2.pca.embedding);
    assert!(
        a1.warnings
            .iter()
            .any(|w| w.contains("pca.n_comps lowered")),
        "{:?}",
        a1.warnings
    );
    assert!(
        a1.warnings.iter().any(|w| w.contains("knn.n_neighbors")) || a1.knn.n_neighbors == 15,
        "{:?}",
        a1.warnings
    );
}

/// The counts' layout (compact `u16` or `f32` / `u32`) changes nothing: every count reads as
/// the same `f32`, so the borrowed and the owned analysis give the same numbers, bit for bit,
/// from either layout.
#[test]
fn compact_and_wide_counts_give_the_same_analysis() {
    let sim = simulate(&SimulateOptions {
        n_cells: 1500,
        n_genes: 1500,
        ..Default::default()
    })
    .unwrap();
    let compact = sim.dataset;
    assert!(compact.counts.is_compact());
    let mut wide = compact.clone();
    wide.counts = scrna::sparse::Counts::Wide(compact.counts.to_csr().into_owned());
    assert!(!wide.counts.is_compact());
    let opts = PipelineOptions::default();
    let same = |a: &scrna::pipeline::Analysis, b: &scrna::pipeline::Analysis, how: &str| {
        assert_eq!(format!("{:?}", a.qc), format!("{:?}", b.qc), "{how}");
        assert_eq!(a.size_factors, b.size_factors, "{how}");
        assert_eq!(a.hvg_genes, b.hvg_genes, "{how}");
        assert_eq!(a.pca.embedding, b.pca.embedding, "{how}");
        assert_eq!(a.clustering.labels, b.clustering.labels, "{how}");
        assert_eq!(a.umap, b.umap, "{how}");
        assert_eq!(
            format!("{:?}", a.markers),
            format!("{:?}", b.markers),
            "{how}"
        );
    };
    let a = run(&compact, &opts, &mut |_| {}).unwrap();
    let b = run(&wide, &opts, &mut |_| {}).unwrap();
    same(&a, &b, "borrowed");
    let c = scrna::pipeline::run_owned(compact, &opts, &mut |_| {}).unwrap();
    let d = scrna::pipeline::run_owned(wide, &opts, &mut |_| {}).unwrap();
    assert!(c.dataset().counts.is_compact());
    same(&c, &d, "owned");
    same(&a, &c, "borrowed and owned");
}
