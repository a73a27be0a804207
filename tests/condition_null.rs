//! The condition comparison on simulated designs with replicates: on a null design (no
//! difference between conditions, gene-wise sample effects) no cluster is called
//! condition-specific and few Milo neighbourhoods are significant; on a planted design the
//! condition-only state is called and its neighbourhoods are significant.
//!
//! Tolerances: null — no call at all, and fewer than 10% of neighbourhoods at spatial FDR
//! 0.1; planted — Jaccard index >= 0.8 between the called cluster's cells and the planted
//! state's cells, and at least 80% of the neighbourhoods indexed in the planted state up at
//! spatial FDR 0.1. The `#[ignore]`d sweeps (5 seeds, stronger sample effects) apply the same
//! rules: `cargo test --release --test condition_null -- --ignored`.

use scrna::comparison::{compare, ConditionOptions, ConditionResult};
use scrna::pipeline::{run, Analysis, PipelineOptions, Switch};
use scrna::simulate::{simulate, SimulateOptions, Simulation};
use scrna::within_cluster::DeMethod;
use std::collections::HashMap;

fn analyse(opts: &SimulateOptions) -> (Simulation, Analysis, ConditionResult) {
    let sim = simulate(opts).unwrap();
    let popts = PipelineOptions {
        skip_umap: true,
        doublets: Switch::Off,
        ..Default::default()
    }
    .seeded(opts.seed);
    let a = run(&sim.dataset, &popts, &mut |_| {}).unwrap();
    let copts = ConditionOptions {
        gene_sets: Some(Vec::new()),
        contrast: Some(("resistant".to_string(), "parental".to_string())),
        seed: opts.seed,
        ..Default::default()
    };
    let r = compare(&a, &copts).unwrap();
    (sim, a, r)
}

fn null(samples_per_condition: usize, batch_sd: f64, seed: u64, n_cells: usize) {
    let opts = SimulateOptions {
        n_cells,
        n_genes: 2_000,
        samples_per_condition,
        batch_sd,
        seed,
        ..SimulateOptions::null_design()
    };
    let (_, a, r) = analyse(&opts);
    assert!(r.replicates);
    let calls = r.composition.specific();
    let fisher_calls = r
        .composition
        .tests
        .iter()
        .filter(|t| t.p_adj <= 0.05 && t.share >= 0.8)
        .count();
    let m = r.milo.as_ref().expect("Milo runs with replicates");
    let share = m.milo.n_significant() as f64 / m.milo.rows.len().max(1) as f64;
    eprintln!(
        "null {samples_per_condition}+{samples_per_condition} sd {batch_sd} seed {seed}: \
         {} clusters, calls {calls:?} (Fisher alone would call {fisher_calls}), \
         {} / {} neighbourhoods significant ({:.1}%)",
        a.clustering.n_clusters,
        m.milo.n_significant(),
        m.milo.rows.len(),
        100.0 * share
    );
    // Pseudobulk DE inside the clusters: at most 1% of the DESeq2 tests at adjusted p < 0.05.
    let w = r.within_cluster.as_ref().expect("two conditions");
    let deseq: Vec<_> =
        w.de.iter()
            .filter(|d| d.method == DeMethod::Deseq2)
            .collect();
    let de_hits = deseq.iter().filter(|d| d.p_adjusted < 0.05).count();
    let de_share = de_hits as f64 / deseq.len().max(1) as f64;
    eprintln!(
        "null {samples_per_condition}+{samples_per_condition} sd {batch_sd} seed {seed}: \
         {de_hits} of {} pseudobulk DE tests at adjusted p < 0.05",
        deseq.len()
    );
    assert!(calls.is_empty(), "null design: clusters called {calls:?}");
    assert!(!deseq.is_empty(), "no pseudobulk DE ran: {:?}", w.notes);
    assert!(de_share <= 0.01, "null design: DE share {de_share}");
    assert!(!m.milo.rows.is_empty());
    assert!(
        share < 0.10,
        "null design: {:.1}% significant",
        100.0 * share
    );
}

fn planted(batch_sd: f64, seed: u64) {
    let opts = SimulateOptions {
        n_cells: 3_000,
        n_genes: 2_000,
        n_clusters: 6,
        condition_specific: 1,
        depleted_share: 1.0,
        batch_sd,
        seed,
        ..SimulateOptions::default()
    };
    let (sim, a, r) = analyse(&opts);
    let state = sim.truth.condition_specific_clusters[0];
    let index: HashMap<&str, usize> = sim
        .dataset
        .cells
        .barcodes
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let truth: Vec<bool> = a
        .dataset()
        .cells
        .barcodes
        .iter()
        .map(|b| sim.truth.cluster[index[b.as_str()]] == state)
        .collect();
    let calls = r.composition.specific();
    assert_eq!(calls.len(), 1, "planted design: calls {calls:?}");
    let (c, k) = calls[0];
    assert_eq!(r.composition.conditions[k], "resistant");
    let called: Vec<bool> = a.clustering.labels.iter().map(|&l| l == c).collect();
    let both = called
        .iter()
        .zip(&truth)
        .filter(|(x, y)| **x && **y)
        .count();
    let either = called
        .iter()
        .zip(&truth)
        .filter(|(x, y)| **x || **y)
        .count();
    let jaccard = both as f64 / either.max(1) as f64;
    let m = r.milo.as_ref().expect("Milo runs with replicates");
    let in_state: Vec<_> = m
        .milo
        .rows
        .iter()
        .filter(|row| truth[row.index_cell])
        .collect();
    let up = in_state
        .iter()
        .filter(|row| row.spatial_fdr < m.milo.alpha && row.log_fc > 0.0)
        .count();
    eprintln!(
        "planted sd {batch_sd} seed {seed}: cluster {c} Jaccard {jaccard:.3}, {up} / {} \
         neighbourhoods of the state up",
        in_state.len()
    );
    assert!(jaccard >= 0.8, "Jaccard {jaccard}");
    assert!(!in_state.is_empty());
    assert!(
        up as f64 >= 0.8 * in_state.len() as f64,
        "{up} / {} significant",
        in_state.len()
    );
    assert!(r.composition.test(c, k).unwrap().propeller_fdr.unwrap() <= 0.05);
}

#[test]
fn null_two_by_two_calls_nothing() {
    for seed in [1, 2] {
        null(2, 0.2, seed, 2_400);
    }
}

#[test]
fn null_three_by_three_calls_nothing() {
    null(3, 0.2, 1, 3_000);
}

#[test]
fn planted_state_is_called_by_samples() {
    planted(0.2, 1);
}

#[test]
#[ignore]
fn null_sweep_five_seeds_strong_batches() {
    for seed in 0..5 {
        null(2, 0.35, seed, 4_000);
        null(3, 0.35, seed, 6_000);
    }
}

#[test]
#[ignore]
fn planted_sweep_five_seeds_strong_batches() {
    for seed in 0..5 {
        planted(0.35, seed);
    }
}
