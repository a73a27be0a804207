//! Clustering accuracy on simulated data with known clusters, against Scanpy's on the same
//! data: the standard pipeline's Leiden labels must reach an adjusted Rand index with the truth
//! at least as high as Scanpy's (values from scripts/reference_simulated_clusters.py, which
//! runs Scanpy's standard pipeline on the simulator's output for the same settings).

use scrna::cluster::adjusted_rand_index;
use scrna::pipeline::{run, PipelineOptions, Switch};
use scrna::simulate::{simulate, SimulateOptions};
use std::collections::HashMap;

const REFERENCE: &str = "fixtures/reference/cluster/simulated_ari.csv";

#[test]
fn ari_against_the_truth_is_at_least_scanpys() {
    let text = std::fs::read_to_string(REFERENCE).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let mut settings = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let sim = simulate(&SimulateOptions {
            n_cells: f[col("n_cells")].parse().unwrap(),
            n_genes: f[col("n_genes")].parse().unwrap(),
            marker_fold: f[col("marker_fold")].parse().unwrap(),
            seed: f[col("seed")].parse().unwrap(),
            ..Default::default()
        })
        .unwrap();
        // Scanpy's standard single-sample run: no doublet or integration step.
        let opts = PipelineOptions {
            skip_umap: true,
            doublets: Switch::Off,
            integration: Switch::Off,
            ..Default::default()
        };
        let a = run(&sim.dataset, &opts, &mut |_| {}).unwrap();
        let n_kept = a.dataset().n_cells();
        assert_eq!(
            n_kept,
            f[col("scanpy_cells_after_qc")].parse::<usize>().unwrap(),
            "{}: cells after QC",
            f[0]
        );
        // truth of the kept cells, by barcode
        let index: HashMap<&str, usize> = sim
            .dataset
            .cells
            .barcodes
            .iter()
            .enumerate()
            .map(|(i, b)| (b.as_str(), i))
            .collect();
        let truth: Vec<u32> = a
            .dataset()
            .cells
            .barcodes
            .iter()
            .map(|b| sim.truth.cluster[index[b.as_str()]])
            .collect();
        let ours = adjusted_rand_index(&a.clustering.labels, &truth).unwrap();
        let scanpy: f64 = f[col("scanpy_ari")].parse().unwrap();
        eprintln!(
            "{}: ARI with the truth {ours:.4} ({} clusters); Scanpy {scanpy:.4} ({} clusters)",
            f[0],
            a.clustering.n_clusters,
            f[col("scanpy_n_clusters")]
        );
        assert!(
            ours >= scanpy - 1e-6,
            "{}: ARI {ours} below Scanpy's {scanpy}",
            f[0]
        );
        settings += 1;
    }
    assert_eq!(settings, 2);
}
