//! Milo against the R reference (`scripts/reference_milo.R`, committed outputs in
//! `fixtures/milo/`), null and planted designs, bad input and determinism.
//!
//! Tolerances: neighbourhood counts and refined index cells identical; TMM factors `1e-6`;
//! log fold changes `0.01`; p-values Spearman `>= 0.99` against edgeR's robust QL F-test;
//! spatial FDR `1e-9` against miloR's weighted BH on the same p-values and weights; k-distances
//! `1e-5` relative (our kNN distances are `f32`).

#[path = "support/correlation.rs"]
mod correlation;

use ndarray::Array2;
use scrna::milo::{self, edger, spatial_fdr::spatial_fdr, MiloOptions};
use scrna::neighbors::{knn, Knn, KnnOptions};
use std::path::Path;

fn read_csv(name: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/milo")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let numeric = first.split(',').all(|f| f.parse::<f64>().is_ok());
    let header: Vec<String> = if numeric {
        Vec::new()
    } else {
        first.split(',').map(String::from).collect()
    };
    let parse = |l: &str| {
        l.split(',')
            .map(|f| f.parse::<f64>().unwrap_or(f64::NAN))
            .collect::<Vec<f64>>()
    };
    let mut rows: Vec<Vec<f64>> = if numeric {
        vec![parse(first)]
    } else {
        Vec::new()
    };
    rows.extend(lines.filter(|l| !l.is_empty()).map(parse));
    (header, rows)
}

fn column(h: &[String], rows: &[Vec<f64>], name: &str) -> Vec<f64> {
    let j = h
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    rows.iter().map(|r| r[j]).collect()
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut o: Vec<usize> = (0..v.len()).collect();
    o.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < o.len() {
        let mut j = i;
        while j + 1 < o.len() && v[o[j + 1]] == v[o[i]] {
            j += 1;
        }
        for &k in &o[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    correlation::corr(&ranks(a), &ranks(b))
}

struct Fixture {
    embedding: Array2<f32>,
    knn: Knn,
    sample: Vec<u32>,
}

fn fixture() -> Fixture {
    let (_, e) = read_csv("embedding.csv");
    let d = e[0].len();
    let embedding = Array2::from_shape_vec(
        (e.len(), d),
        e.iter().flatten().map(|&v| v as f32).collect(),
    )
    .unwrap();
    let (_, k) = read_csv("knn.csv");
    let lists: Vec<Vec<u32>> = k
        .iter()
        .map(|r| r.iter().map(|&v| v as u32).collect())
        .collect();
    let knn = milo::knn_from_indices(embedding.view(), &lists).unwrap();
    let (h, c) = read_csv("cells.csv");
    let sample = column(&h, &c, "sample").iter().map(|&v| v as u32).collect();
    Fixture {
        embedding,
        knn,
        sample,
    }
}

#[test]
fn index_cells_and_counts_match_r() {
    let f = fixture();
    let (h, s) = read_csv("sampling.csv");
    let random: Vec<usize> = column(&h, &s, "random")
        .iter()
        .map(|&v| v as usize)
        .collect();
    let want: Vec<usize> = column(&h, &s, "refined")
        .iter()
        .map(|&v| v as usize)
        .collect();
    let got = milo::refine_index_cells(f.embedding.view(), &f.knn, &random, 14).unwrap();
    let same = got.iter().zip(&want).filter(|(a, b)| a == b).count();
    eprintln!(
        "refined index cells identical to R: {same} of {}",
        want.len()
    );
    assert_eq!(got, want);

    let (h, c) = read_csv("counts.csv");
    let index: Vec<usize> = column(&h, &c, "index_cell")
        .iter()
        .map(|&v| v as usize)
        .collect();
    let nh = milo::neighbourhoods_from_index_cells(&f.knn, &index).unwrap();
    let counts = milo::count_cells(&nh, &f.sample, 6);
    for (i, row) in c.iter().enumerate() {
        assert_eq!(
            nh.members[i].len() as f64,
            column(&h, &c, "size")[i],
            "size of nhood {i}"
        );
        for s in 0..6 {
            assert_eq!(counts[[i, s]], row[2 + s], "nhood {i} sample {s}");
        }
    }
    let (hr, r) = read_csv("results_condition.csv");
    for (a, b) in nh.kth_distance.iter().zip(column(&hr, &r, "kdist")) {
        assert!((a - b).abs() <= 1e-5 * b, "k-distance {a} vs {b}");
    }
}

fn check_design(name: &str) {
    let (_, c) = read_csv("counts.csv");
    let counts = Array2::from_shape_vec(
        (c.len(), 6),
        c.iter().flat_map(|r| r[2..8].to_vec()).collect(),
    )
    .unwrap();
    let (hd, d) = read_csv(&format!("design_{name}.csv"));
    let p = hd.len() - 1;
    let design =
        Array2::from_shape_vec((6, p), d.iter().flat_map(|r| r[1..].to_vec()).collect()).unwrap();
    let t = edger::ql_test(counts.view(), design.view()).unwrap();
    for (a, b) in t.norm_factors.iter().zip(column(&hd, &d, "norm_factors")) {
        assert!((a - b).abs() < 1e-6, "{name}: TMM factor {a} vs {b}");
    }
    let (hr, r) = read_csv(&format!("results_{name}.csv"));
    let lfc = column(&hr, &r, "logFC");
    let max_lfc = t
        .log_fc
        .iter()
        .zip(&lfc)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let trend = column(&hr, &r, "trended");
    let max_trend = t
        .trended_dispersion
        .iter()
        .zip(&trend)
        .map(|(a, b)| (a / b - 1.0).abs())
        .fold(0.0, f64::max);
    let p = column(&hr, &r, "PValue");
    let rho = spearman(&t.p_value, &p);
    let rho_nr = spearman(&t.p_value, &column(&hr, &r, "PValue_nonrobust"));
    let max_lp = t
        .p_value
        .iter()
        .zip(&p)
        .map(|(a, b)| (a.log10() - b.log10()).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "{name}: {} nhoods, max |logFC diff| {max_lfc:.2e}, max trended dispersion rel. diff {max_trend:.3}, \
         p Spearman {rho:.5} (robust), {rho_nr:.5} (non-robust), max |log10 p diff| {max_lp:.3}, df.prior {}",
        lfc.len(),
        t.df_prior
    );
    assert!(max_lfc < 0.01, "{name}: logFC differs by {max_lfc}");
    assert!(rho >= 0.99, "{name}: Spearman {rho}");
    // Spatial FDR on R's own p-values and weights.
    let q = spatial_fdr(&p, &column(&hr, &r, "kdist"));
    for (a, b) in q.iter().zip(column(&hr, &r, "SpatialFDR")) {
        assert!((a - b).abs() < 1e-9, "{name}: spatial FDR {a} vs {b}");
    }
}

#[test]
fn edger_condition_design_matches_r() {
    check_design("condition");
}

#[test]
fn edger_batch_plus_condition_design_matches_r() {
    check_design("batch");
}

/// Cells in a Gaussian mixture (6 clusters, 10 dimensions); `extra` cells of a seventh
/// cluster go to the samples of condition 1 only.
fn simulate(
    n_per_sample: usize,
    conditions: &[u32],
    extra: usize,
    seed: u64,
) -> (Array2<f32>, Vec<u32>, Vec<u32>) {
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let d = 10;
    let centres: Vec<f64> = (0..7 * d).map(|_| 5.0 * normal.sample(&mut rng)).collect();
    let (mut x, mut sample, mut cluster) = (Vec::new(), Vec::new(), Vec::new());
    for (s, &c) in conditions.iter().enumerate() {
        let n = n_per_sample + if c == 1 { extra } else { 0 };
        for i in 0..n {
            let k = if i >= n_per_sample {
                6
            } else {
                rng.gen_range(0..6)
            };
            x.extend((0..d).map(|t| (centres[k * d + t] + normal.sample(&mut rng)) as f32));
            sample.push(s as u32);
            cluster.push(k as u32);
        }
    }
    (
        Array2::from_shape_vec((sample.len(), d), x).unwrap(),
        sample,
        cluster,
    )
}

fn graph(e: &Array2<f32>) -> Knn {
    knn(
        e.view(),
        &KnnOptions {
            n_neighbors: 15,
            ..KnnOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn null_designs_give_few_discoveries() {
    for (conds, seed) in [
        (vec![0, 0, 1, 1], 1u64),
        (vec![0, 0, 0, 1, 1, 1], 2),
        (vec![0, 1, 0, 1], 3),
    ] {
        let (e, s, _) = simulate(500, &conds, 0, seed);
        let k = graph(&e);
        let m = milo::milo(
            e.view(),
            &k,
            &s,
            &conds,
            None,
            &MiloOptions {
                seed,
                ..MiloOptions::default()
            },
        )
        .unwrap();
        let frac = m.n_significant() as f64 / m.rows.len() as f64;
        eprintln!(
            "null {conds:?}: {} of {} neighbourhoods at spatial FDR < 0.1",
            m.n_significant(),
            m.rows.len()
        );
        assert!(frac < 0.1, "null design {conds:?}: {frac}");
    }
}

#[test]
fn planted_condition_only_group_is_found() {
    let conds = [0, 0, 0, 1, 1, 1];
    let (e, s, cl) = simulate(400, &conds, 60, 5);
    let k = graph(&e);
    let m = milo::milo(e.view(), &k, &s, &conds, None, &MiloOptions::default()).unwrap();
    let sum = milo::summarize_by_cluster(&m, &cl, 7, 0.1);
    eprintln!("planted: {sum:?}");
    assert!(sum[6].n_nhoods > 0);
    assert!(sum[6].frac_up > 0.8, "planted group: {:?}", sum[6]);
    let others_up: f64 = sum[..6].iter().map(|c| c.frac_up).fold(0.0, f64::max);
    assert!(others_up < 0.2, "unplanted clusters up: {others_up}");
    // A batch covariate crossed with the condition keeps the group.
    let m2 = milo::milo(
        e.view(),
        &k,
        &s,
        &conds,
        Some(&[0, 1, 0, 1, 0, 1]),
        &MiloOptions::default(),
    )
    .unwrap();
    let sum2 = milo::summarize_by_cluster(&m2, &cl, 7, 0.1);
    assert!(sum2[6].frac_up > 0.8, "with covariate: {:?}", sum2[6]);
}

#[test]
fn bad_input_is_an_error() {
    let (e, s, _) = simulate(100, &[0, 0, 1, 1], 0, 9);
    let k = graph(&e);
    let o = MiloOptions::default();
    let err = milo::milo(e.view(), &k, &s, &[0, 0, 1, 1], Some(&[0, 0, 1, 1]), &o);
    assert!(err.is_err(), "covariate confounded with the condition");
    let no_rep = milo::milo(e.view(), &k, &s, &[0, 1, 1, 1], None, &o).unwrap_err();
    assert!(no_rep.to_string().contains("no replicates"), "{no_rep}");
    assert!(milo::milo(e.view(), &k, &s, &[0, 0, 2, 1], None, &o).is_err());
    assert!(milo::milo(e.view(), &k, &s[1..], &[0, 0, 1, 1], None, &o).is_err());
    assert!(
        milo::milo(e.view(), &k, &s, &[0, 0, 1], None, &o).is_err(),
        "sample code without condition"
    );
    for bad in [
        MiloOptions {
            prop: 0.0,
            ..o.clone()
        },
        MiloOptions {
            prop: 1.5,
            ..o.clone()
        },
        MiloOptions {
            alpha: 1.0,
            ..o.clone()
        },
        MiloOptions {
            min_samples_per_condition: 1,
            ..o.clone()
        },
        MiloOptions { k: 15, ..o.clone() },
    ] {
        assert!(
            milo::milo(e.view(), &k, &s, &[0, 0, 1, 1], None, &bad).is_err(),
            "{bad:?}"
        );
    }
    let small = e.slice(ndarray::s![..10, ..]).to_owned();
    assert!(milo::milo(small.view(), &k, &s, &[0, 0, 1, 1], None, &o).is_err());
    let mut nan = e.clone();
    nan[[3, 2]] = f32::NAN;
    assert!(milo::milo(nan.view(), &k, &s, &[0, 0, 1, 1], None, &o).is_err());
    let counts = Array2::<f64>::zeros((3, 4));
    let design = milo::design_matrix(&[0, 0, 1, 1], None, 2).unwrap();
    assert!(
        edger::ql_test(counts.view(), design.view()).is_err(),
        "all-zero counts"
    );
}

#[test]
fn same_result_whatever_the_thread_count() {
    let conds = [0, 0, 1, 1];
    let (e, s, _) = simulate(300, &conds, 30, 11);
    let k = graph(&e);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                milo::milo(e.view(), &k, &s, &conds, None, &MiloOptions::default()).unwrap()
            })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}
