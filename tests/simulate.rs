//! The simulator's multi-sample features: batch effects, doublets, a condition-wide program
//! shift, sample-to-sample composition, the null and study designs; and the default output,
//! which must not change.

use scrna::simulate::{simulate, SimulateOptions, Simulation};

/// FNV-1a over the counts (shape, indptr, indices, value bits), the cell table (barcodes,
/// sample, condition) and the true clusters and conditions.
fn checksum(s: &Simulation) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let c = &s.dataset.counts;
    eat(&(c.n_rows() as u64).to_le_bytes());
    eat(&(c.n_cols() as u64).to_le_bytes());
    for &p in c.indptr() {
        eat(&(p as u64).to_le_bytes());
    }
    for &j in c.indices() {
        eat(&j.to_le_bytes());
    }
    for &v in c.data() {
        eat(&v.to_bits().to_le_bytes());
    }
    let cells = &s.dataset.cells;
    for i in 0..cells.barcodes.len() {
        eat(cells.barcodes[i].as_bytes());
        eat(cells.sample[i].as_bytes());
        eat(cells.condition[i].as_bytes());
    }
    for (&k, &c) in s.truth.cluster.iter().zip(&s.truth.condition) {
        eat(&k.to_le_bytes());
        eat(&c.to_le_bytes());
    }
    for m in &s.truth.markers {
        for &g in m {
            eat(&(g as u64).to_le_bytes());
        }
    }
    h
}

/// The default model (only smaller) and two variants; the checksums were computed with the
/// simulator as it was before batch effects, doublets, shifts and composition variation were
/// added, and every new option is off by default, so they must not change. (The checksums
/// depend on the platform's `exp` and `ln_1p` being correctly rounded or the same as on
/// x86-64 Linux.)
#[test]
fn default_output_is_unchanged() {
    let cases: [(&str, SimulateOptions, u64); 3] = [
        (
            "default, 600 cells x 3,000 genes",
            SimulateOptions {
                n_cells: 600,
                n_genes: 3_000,
                ..Default::default()
            },
            0x1907_0467_f018_56c1,
        ),
        (
            "one condition, 3 samples, seed 7",
            SimulateOptions {
                n_cells: 500,
                n_genes: 2_000,
                n_clusters: 5,
                n_markers: 20,
                conditions: vec!["a".into()],
                samples_per_condition: 3,
                seed: 7,
                ..Default::default()
            },
            0x63ce_87d7_1005_011d,
        ),
        (
            "three conditions, 2 specific clusters, seed 3",
            SimulateOptions {
                n_cells: 700,
                n_genes: 2_500,
                n_clusters: 6,
                n_markers: 30,
                conditions: vec!["x".into(), "y".into(), "z".into()],
                condition_specific: 2,
                depleted_share: 0.3,
                dispersion: 0.5,
                seed: 3,
                ..Default::default()
            },
            0x7a31_ed5f_2666_8b31,
        ),
    ];
    let all: Vec<u64> = cases
        .iter()
        .map(|(_, opts, _)| checksum(&simulate(opts).unwrap()))
        .collect();
    for ((name, _, expected), got) in cases.iter().zip(&all) {
        assert_eq!(
            got, expected,
            "{name}: checksum {got:#018x}, all {all:#018x?}"
        );
    }
}
