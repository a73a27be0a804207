//! propeller (speckle) on cluster-composition tables.
//!
//! Reference values: `scripts/reference_limma.R` (speckle's propeller reproduced in R over
//! limma 3.54.1) -> `fixtures/limma/propeller_*.csv`, on the Haber et al. 2017 table: all four
//! conditions (F-test), Control against Salmonella (4 + 2 mice, t-test) and H. polygyrus day 10
//! against day 3 (2 + 2). Tolerance: 1e-6 relative for the statistic, p-value and FDR; 1e-10
//! for the proportions.
//!
//! Also a null simulation (Dirichlet-multinomial samples around the same proportions in both
//! groups) and a planted doubling.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Gamma};
use scrna::propeller::{propeller, PropTransform, PropellerOptions};

struct Table {
    header: Vec<String>,
    names: Vec<String>,
    rows: Vec<Vec<f64>>,
}

impl Table {
    fn col(&self, name: &str) -> Vec<f64> {
        let j = self
            .header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        self.rows.iter().map(|r| r[j - 1]).collect()
    }
}

/// CSV whose first column is a label.
fn read_table(name: &str) -> Table {
    let path = format!("{}/fixtures/limma/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let mut names = Vec::new();
    let mut rows = Vec::new();
    for l in lines.filter(|l| !l.is_empty()) {
        let mut f = l.split(',');
        names.push(f.next().unwrap().to_string());
        rows.push(
            f.map(|v| {
                if v == "NA" {
                    f64::NAN
                } else {
                    v.parse().unwrap()
                }
            })
            .collect(),
        );
    }
    Table {
        header,
        names,
        rows,
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    a == b || (a - b).abs() <= rel * a.abs().max(b.abs())
}

/// The Haber counts (samples x cell types) and each sample's condition code.
fn haber() -> (Array2<f64>, Vec<u32>, Vec<String>) {
    let counts = read_table("haber_counts.csv");
    let groups = read_table("haber_groups.csv");
    assert_eq!(counts.names, groups.names);
    let m = Array2::from_shape_fn((counts.rows.len(), counts.rows[0].len()), |(i, j)| {
        counts.rows[i][j]
    });
    let g = groups.col("group").iter().map(|&v| v as u32).collect();
    (m, g, counts.names)
}

#[test]
fn propeller_matches_speckle_on_haber() {
    let (counts, group, _) = haber();
    let subsets: [(&str, &[u32]); 3] = [
        ("all", &[0, 1, 2, 3]),
        ("control_salm", &[0, 3]),
        ("day3_day10", &[1, 2]),
    ];
    let mut n_compared = 0;
    let mut worst = 0.0f64;
    for (name, keep) in subsets {
        let rows: Vec<usize> = (0..group.len())
            .filter(|&s| keep.contains(&group[s]))
            .collect();
        let sub = counts.select(ndarray::Axis(0), &rows);
        // Group codes renumbered 0.. in the kept groups' order (R's factor level order).
        let g: Vec<u32> = rows
            .iter()
            .map(|&s| keep.iter().position(|&k| k == group[s]).unwrap() as u32)
            .collect();
        for transform in [PropTransform::Logit, PropTransform::Asin] {
            for robust in [true, false] {
                for trend in [false, true] {
                    if robust && trend {
                        continue;
                    }
                    let tag = format!(
                        "propeller_{name}_{}_{}_{}.csv",
                        if transform == PropTransform::Logit {
                            "logit"
                        } else {
                            "asin"
                        },
                        if robust { "robust" } else { "plain" },
                        if trend { "trend" } else { "notrend" }
                    );
                    let r = read_table(&tag);
                    let opts = PropellerOptions {
                        transform,
                        robust,
                        trend,
                    };
                    let out = propeller(sub.view(), &g, keep.len(), &opts).unwrap();
                    assert_eq!(out.t_test, keep.len() == 2);
                    assert_eq!(out.rows.len(), 8);
                    let base = r.col("baseline");
                    let stat = r.col("stat");
                    let p = r.col("p");
                    let fdr = r.col("fdr");
                    let ratio = r.col("ratio");
                    for (c, row) in out.rows.iter().enumerate() {
                        assert_eq!(row.cluster, c);
                        assert!(
                            close(row.baseline_prop, base[c], 1e-10),
                            "{tag} baseline {c}"
                        );
                        for (k, &m) in row.props.iter().enumerate() {
                            let want = r.col(&format!("mean_{}", k + 1))[c];
                            assert!(close(m, want, 1e-10), "{tag} mean {c} {k}: {m} {want}");
                        }
                        match row.prop_ratio {
                            Some(x) => assert!(close(x, ratio[c], 1e-10), "{tag} ratio {c}"),
                            None => assert!(ratio[c].is_nan()),
                        }
                        for (what, ours, theirs) in [
                            ("stat", row.t_or_f, stat[c]),
                            ("p", row.p_value, p[c]),
                            ("fdr", row.fdr, fdr[c]),
                        ] {
                            assert!(
                                close(ours, theirs, 1e-6),
                                "{tag} {what} cluster {c}: ours {ours:e}, speckle {theirs:e}"
                            );
                            worst = worst.max((ours - theirs).abs() / theirs.abs());
                        }
                    }
                    n_compared += 1;
                }
            }
        }
    }
    assert_eq!(n_compared, 18);
    eprintln!("18 propeller tables, worst relative difference {worst:.2e}");
}

/// Samples x clusters counts: per sample `p ~ Dirichlet(alpha * base)`, `n ~ Multinomial(N, p)`
/// with `N` uniform in 800..3000.
fn dirichlet_multinomial(
    rng: &mut ChaCha8Rng,
    base: &[Vec<f64>],
    group: &[u32],
    alpha: f64,
) -> Array2<f64> {
    let k = base[0].len();
    let mut out = Array2::zeros((group.len(), k));
    for (s, &g) in group.iter().enumerate() {
        let mut p: Vec<f64> = base[g as usize]
            .iter()
            .map(|&b| Gamma::new(alpha * b, 1.0).unwrap().sample(rng))
            .collect();
        let total: f64 = p.iter().sum();
        p.iter_mut().for_each(|v| *v /= total);
        let mut left: u64 = rng.gen_range(800..3000);
        let mut rest = 1.0;
        for c in 0..k {
            let n = if c + 1 == k || rest <= 0.0 {
                left
            } else {
                Binomial::new(left, (p[c] / rest).clamp(0.0, 1.0))
                    .unwrap()
                    .sample(rng)
            };
            out[[s, c]] = n as f64;
            left -= n;
            rest -= p[c];
        }
    }
    out
}

/// Dirichlet concentration of the planted designs: a cluster at 10 % varies between samples
/// with a coefficient of variation of about `sqrt(0.9 / (0.1 alpha))`.
const PLANTED_ALPHA: f64 = 300.0;

const BASE: [f64; 8] = [0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02];

#[test]
fn null_designs_keep_the_fdr() {
    let base = vec![BASE.to_vec(), BASE.to_vec()];
    let mut calls = 0usize;
    let mut calls_by_size = [0usize; 2];
    let mut designs_with_call = 0usize;
    let mut tests = 0usize;
    for rep in 0..200u64 {
        let per = if rep < 100 { 2 } else { 3 };
        let group: Vec<u32> = (0..2 * per).map(|s| (s / per) as u32).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + rep);
        let counts = dirichlet_multinomial(&mut rng, &base, &group, 100.0);
        let out = propeller(counts.view(), &group, 2, &PropellerOptions::default()).unwrap();
        let c = out.rows.iter().filter(|r| r.fdr < 0.05).count();
        calls += c;
        calls_by_size[per - 2] += c;
        tests += out.rows.len();
        designs_with_call += usize::from(c > 0);
    }
    let share = calls as f64 / tests as f64;
    eprintln!(
        "null: {calls} calls at FDR 0.05 in {tests} tests ({share:.4}; 2 + 2: {}, 3 + 3: {}); \
         {designs_with_call} of 200 designs with any call",
        calls_by_size[0], calls_by_size[1]
    );
    assert!(share <= 0.05, "share of null calls {share}");
}

#[test]
fn planted_doubling_is_detected() {
    let mut changed = BASE.to_vec();
    changed[3] *= 2.0;
    let total: f64 = changed.iter().sum();
    changed.iter_mut().for_each(|v| *v /= total);
    let base = vec![BASE.to_vec(), changed];
    let group = [0u32, 0, 0, 1, 1, 1];
    let mut detected = 0;
    for rep in 0..20u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(5000 + rep);
        let counts = dirichlet_multinomial(&mut rng, &base, &group, PLANTED_ALPHA);
        let out = propeller(counts.view(), &group, 2, &PropellerOptions::default()).unwrap();
        let row = &out.rows[3];
        assert!(
            row.prop_ratio.unwrap() < 1.0,
            "group 1 has the larger share"
        );
        if row.fdr < 0.05 && row.t_or_f < 0.0 {
            detected += 1;
        }
    }
    eprintln!("planted 2x change (3 + 3 samples): detected in {detected} of 20 designs");
    assert!(detected >= 14, "detected in only {detected} of 20");
}

#[test]
fn bad_input_errors() {
    let (counts, group, _) = haber();
    let opts = PropellerOptions::default();
    // A group with a single sample.
    let mut g = group.clone();
    g[9] = 4;
    let e = propeller(counts.view(), &g, 5, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("group 3") && e.contains("1 sample"), "{e}");
    // A declared group without samples.
    let e = propeller(counts.view(), &group, 5, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("group 4") && e.contains("0 sample"), "{e}");
    // Group code out of range.
    let e = propeller(counts.view(), &group, 3, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sample 8") && e.contains("group code 3"), "{e}");
    // A sample without cells.
    let mut zero = counts.clone();
    zero.row_mut(2).fill(0.0);
    let e = propeller(zero.view(), &group, 4, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sample 2") && e.contains("no cells"), "{e}");
    // NaN and negative counts.
    let mut nan = counts.clone();
    nan[[5, 1]] = f64::NAN;
    let e = propeller(nan.view(), &group, 4, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sample 5") && e.contains("cluster 1"), "{e}");
    nan[[5, 1]] = -1.0;
    assert!(propeller(nan.view(), &group, 4, &opts).is_err());
    // Wrong number of group codes; one group only; robust with trend.
    assert!(propeller(counts.view(), &group[..9], 4, &opts).is_err());
    assert!(propeller(counts.view(), &[0; 10], 1, &opts).is_err());
    let e = propeller(
        counts.view(),
        &group,
        4,
        &PropellerOptions {
            trend: true,
            ..opts
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("trend"), "{e}");
}
