//! `scrna::pseudobulk` against pandas/SciPy/statsmodels on seeded simulated counts
//! (`scripts/reference_markers.py` -> `fixtures/reference/markers/pseudobulk_*.csv`).

use scrna::pseudobulk::{pseudobulk_de, pseudobulk_sums, PseudobulkOptions};
use scrna::{CsrMatrix, Error};
use std::collections::HashMap;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/reference/markers");

struct Data {
    counts: CsrMatrix,
    samples: Vec<u32>,
    conditions: Vec<u32>,
    clusters: Vec<u32>,
    sample_names: Vec<String>,
}

fn code(map: &mut HashMap<String, u32>, names: &mut Vec<String>, key: &str) -> u32 {
    if let Some(&c) = map.get(key) {
        return c;
    }
    let c = names.len() as u32;
    names.push(key.to_string());
    map.insert(key.to_string(), c);
    c
}

fn load() -> Data {
    let text = std::fs::read_to_string(format!("{DIR}/pseudobulk_counts.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "cell,sample,condition,cluster,gene,count"
    );
    let (mut cell_map, mut cell_names) = (HashMap::new(), Vec::new());
    let (mut sample_map, mut sample_names) = (HashMap::new(), Vec::new());
    let (mut samples, mut conditions, mut clusters) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let before = cell_names.len();
        let cell = code(&mut cell_map, &mut cell_names, f[0]);
        if cell_names.len() > before {
            samples.push(code(&mut sample_map, &mut sample_names, f[1]));
            conditions.push(match f[2] {
                "ctrl" => 0,
                "treat" => 1,
                other => panic!("condition {other}"),
            });
            clusters.push(f[3].trim_start_matches('c').parse().unwrap());
        }
        rows.push(cell);
        cols.push(f[4].trim_start_matches('g').parse::<u32>().unwrap());
        vals.push(f[5].parse::<f32>().unwrap());
    }
    let counts = CsrMatrix::from_triplets(cell_names.len(), 20, &rows, &cols, &vals).unwrap();
    Data {
        counts,
        samples,
        conditions,
        clusters,
        sample_names,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-7 * a.abs().max(b.abs()) || (a - b).abs() < 1e-9
}

#[test]
fn welch_on_log_cpm_matches_scipy() {
    let d = load();
    let text = std::fs::read_to_string(format!("{DIR}/pseudobulk_expected.csv")).unwrap();
    let mut checked = 0;
    for cluster in [0u32, 1] {
        let opts = PseudobulkOptions {
            cluster,
            test: 1,
            control: 0,
            ..Default::default()
        };
        let res = pseudobulk_de(&d.counts, &d.samples, &d.conditions, &d.clusters, &opts).unwrap();
        assert_eq!(res.test_samples.len(), 2);
        assert_eq!(res.control_samples.len(), 3);
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split(',').collect();
            if f[0] != format!("c{cluster}") {
                continue;
            }
            let g: usize = f[1].trim_start_matches('g').parse().unwrap();
            let want: Vec<f64> = f[2..].iter().map(|v| v.parse().unwrap()).collect();
            let got = [
                res.mean_test[g],
                res.mean_control[g],
                res.log2fc[g],
                res.t[g],
                res.df[g],
                res.pval[g],
                res.pval_adj[g],
            ];
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    close(*a, *b),
                    "cluster {cluster} gene {g} column {k}: {a} vs {b}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 40);
    // The simulated effect (3x in the first five genes) is found.
    let res = pseudobulk_de(
        &d.counts,
        &d.samples,
        &d.conditions,
        &d.clusters,
        &PseudobulkOptions::default(),
    )
    .unwrap();
    let names: Vec<String> = (0..20).map(|g| format!("g{g}")).collect();
    let table = res.table(&names).unwrap();
    assert!(table[0].log2fc > 1.0, "{:?}", table[0]);
}

#[test]
fn sums_per_sample_and_cluster() {
    let d = load();
    let pb = pseudobulk_sums(&d.counts, &d.samples, &d.clusters).unwrap();
    assert_eq!(pb.keys.len(), d.sample_names.len() * 2);
    let total: f64 = pb.sums.sum();
    let want: f64 = d.counts.data().iter().map(|&v| v as f64).sum();
    assert_eq!(total, want);
    assert_eq!(pb.n_cells.iter().sum::<usize>(), d.counts.n_rows());
}

#[test]
fn one_replicate_is_an_error() {
    let d = load();
    // Drop all but one treated sample.
    let first_treated = d
        .samples
        .iter()
        .zip(&d.conditions)
        .find(|(_, &c)| c == 1)
        .map(|(&s, _)| s)
        .unwrap();
    let keep: Vec<usize> = (0..d.counts.n_rows())
        .filter(|&i| d.conditions[i] == 0 || d.samples[i] == first_treated)
        .collect();
    let x = d.counts.select_rows(&keep).unwrap();
    let pick = |v: &[u32]| keep.iter().map(|&i| v[i]).collect::<Vec<u32>>();
    let err = pseudobulk_de(
        &x,
        &pick(&d.samples),
        &pick(&d.conditions),
        &pick(&d.clusters),
        &PseudobulkOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidData { .. }));
    assert!(err.to_string().contains("at least 2"), "{err}");
}

#[test]
fn sample_with_two_conditions_is_an_error() {
    let d = load();
    let mut cond = d.conditions.clone();
    cond[0] = 1 - cond[0];
    let err = pseudobulk_de(
        &d.counts,
        &d.samples,
        &cond,
        &d.clusters,
        &PseudobulkOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("conditions"), "{err}");
}
