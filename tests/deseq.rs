//! `scrna::deseq` against pydeseq2 0.5.4 on committed pseudobulk counts
//! (`scripts/reference_deseq.py` -> `fixtures/deseq/`), a null test on seeded simulated
//! counts, and the errors on bad input.
//!
//! Tolerances (pydeseq2 fits dispersions with L-BFGS-B, this crate with a bracketing root
//! finder; see the module docs):
//! - size factors: absolute `1e-6`;
//! - log2 fold changes: absolute `0.01` for every gene;
//! - p-values: Spearman correlation at least 0.999 over the genes both test, and the same
//!   untested genes (all-zero genes and Cook's outliers);
//! - genes at adjusted p < 0.05: the same sets, except the boundary genes listed in
//!   `BOUNDARY` with both adjusted p-values;
//! - final dispersions: among genes whose pydeseq2 dispersion is above `1e-4`, at most 1%
//!   differ by more than 1% relative (below `1e-4` the likelihood is flat in the dispersion
//!   and both fits stop anywhere in the Poisson limit; the few genes beyond are those where
//!   L-BFGS-B and the bracketing search reach different local minima of the gene-wise
//!   likelihood, e.g. one at the lower bound `1e-8`);
//! - trend coefficients: relative `1e-2` (those local-minimum genes move the trend fit by up
//!   to 0.4%); prior variance: relative `1e-3`.

use flate2::read::GzDecoder;
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Normal, Poisson};
use scrna::deseq::{categorical_columns, deseq, deseq_u32, Deseq, DeseqOptions};
use scrna::Error;
use std::collections::HashMap;
use std::io::Read;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/deseq");
const DISP_REL: f64 = 0.01;
/// Share of genes (dispersion above 1e-4) allowed to differ by more than `DISP_REL`.
const DISP_FAR_SHARE: f64 = 0.01;
/// Relative tolerance of the trend coefficients.
const TREND_REL: f64 = 1e-2;

/// Genes whose adjusted p-value is on the other side of 0.05 in the two implementations:
/// (case, gene). None at present: with the committed fixtures the sets are identical; a gene
/// listed here must have both adjusted p-values within 0.01 of 0.05.
const BOUNDARY: &[(&str, usize)] = &[];

fn read_gz(name: &str) -> String {
    let bytes = std::fs::read(format!("{DIR}/{name}")).unwrap();
    let mut s = String::new();
    GzDecoder::new(&bytes[..]).read_to_string(&mut s).unwrap();
    s
}

struct Case {
    counts: Array2<f64>,
    condition: Vec<u32>,
    batch: Vec<u32>,
    results: Vec<HashMap<String, f64>>,
    summary: HashMap<String, f64>,
}

fn load(name: &str) -> Case {
    let text = read_gz(&format!("{name}_counts.csv.gz"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let g = header.len() - 2;
    let (mut condition, mut batch, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        condition.push(f[0].parse().unwrap());
        batch.push(f[1].parse().unwrap());
        vals.extend(f[2..].iter().map(|v| v.parse::<f64>().unwrap()));
    }
    let counts = Array2::from_shape_vec((condition.len(), g), vals).unwrap();
    let text = read_gz(&format!("{name}_results.csv.gz"));
    let mut lines = text.lines();
    let cols: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let results = lines
        .map(|l| {
            cols.iter()
                .cloned()
                .zip(l.split(',').map(|v| v.parse::<f64>().unwrap()))
                .collect()
        })
        .collect();
    let text = std::fs::read_to_string(format!("{DIR}/{name}_summary.csv")).unwrap();
    let summary = text
        .lines()
        .skip(1)
        .map(|l| {
            let (k, v) = l.split_once(',').unwrap();
            (k.to_string(), v.parse::<f64>().unwrap())
        })
        .collect();
    Case {
        counts,
        condition,
        batch,
        results,
        summary,
    }
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma) * (x - ma)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb) * (y - mb)).sum();
    cov / (va * vb).sqrt()
}

fn run(case: &Case, batch: bool) -> Deseq {
    let cov = batch.then(|| categorical_columns(&case.batch));
    deseq(
        case.counts.view(),
        &case.condition,
        cov.as_ref().map(|c| c.view()),
        &DeseqOptions::default(),
    )
    .unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

fn check(name: &str, batch: bool) {
    let case = load(name);
    let ours = run(&case, batch);
    let g = case.results.len();
    assert_eq!(ours.rows.len(), g);
    for (j, &s) in ours.size_factors.iter().enumerate() {
        let r = case.summary[&format!("size_factor_{j}")];
        assert!((s - r).abs() < 1e-6, "{name}: size factor {j}: {s} vs {r}");
    }

    let (mut max_lfc, mut max_disp) = (0.0f64, 0.0f64);
    let (mut n_disp, mut far_disp) = (0usize, 0usize);
    let (mut pa, mut pb) = (Vec::new(), Vec::new());
    let mut mismatched = Vec::new();
    for (i, (row, r)) in ours.rows.iter().zip(&case.results).enumerate() {
        assert!(
            (row.base_mean - r["baseMean"]).abs() <= 1e-6 * r["baseMean"].max(1.0),
            "{name}: gene {i} base mean"
        );
        let l = r["log2FoldChange"];
        assert_eq!(
            row.log2_fold_change.is_nan(),
            l.is_nan(),
            "{name}: gene {i} lfc {} vs {l}",
            row.log2_fold_change
        );
        if !l.is_nan() {
            max_lfc = max_lfc.max((row.log2_fold_change - l).abs());
        }
        let d = r["dispersion"];
        if d > 1e-4 {
            n_disp += 1;
            let e = rel(ours.dispersions[i], d);
            max_disp = max_disp.max(e);
            if e > DISP_REL {
                far_disp += 1;
            }
        }
        assert_eq!(
            row.p_value.is_nan(),
            r["pvalue"].is_nan(),
            "{name}: gene {i} tested: {} vs {}",
            row.p_value,
            r["pvalue"]
        );
        assert_eq!(
            ours.cooks_outlier[i],
            r["cooks_outlier"] == 1.0,
            "{name}: gene {i} Cook's outlier"
        );
        assert_eq!(
            ours.refitted[i],
            r["refitted"] == 1.0,
            "{name}: gene {i} refitted"
        );
        if !row.p_value.is_nan() {
            pa.push(row.p_value);
            pb.push(r["pvalue"]);
        }
        let (so, sr) = (row.p_adjusted < 0.05, r["padj"] < 0.05);
        if so != sr {
            mismatched.push((i, row.p_adjusted, r["padj"]));
        }
    }
    let rho = spearman(&pa, &pb);
    let n_sig = ours.rows.iter().filter(|r| r.p_adjusted < 0.05).count();
    eprintln!(
        "{name}: {g} genes, max |dlog2fc| {max_lfc:.2e}, max rel ddisp {max_disp:.2e}, p Spearman {rho:.6}, \
         {far_disp} of {n_disp} dispersions off by > {DISP_REL}, {n_sig} significant, mismatched {mismatched:?}"
    );
    if std::env::var_os("DESEQ_DEBUG").is_some() {
        let mut v: Vec<(f64, usize)> = (0..g)
            .filter(|&i| case.results[i]["genewise"] > 0.0)
            .map(|i| {
                (
                    (ours.genewise_dispersions[i] / case.results[i]["genewise"])
                        .ln()
                        .abs(),
                    i,
                )
            })
            .collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        for &(d, i) in v.iter().take(15) {
            eprintln!(
                "  gene {i}: gw {} vs {} ({d:.2e}), mean {}, counts {:?}",
                ours.genewise_dispersions[i],
                case.results[i]["genewise"],
                case.results[i]["baseMean"],
                case.counts.column(i).to_vec()
            );
        }
        eprintln!(
            "  trend {:?} vs {} {}",
            ours.trend, case.summary["trend_a0"], case.summary["trend_a1"]
        );
    }
    let (a0, a1) = ours.trend;
    assert!(
        rel(a0, case.summary["trend_a0"]) < TREND_REL,
        "{name}: a0 {a0} vs {}",
        case.summary["trend_a0"]
    );
    assert!(
        rel(a1, case.summary["trend_a1"]) < TREND_REL,
        "{name}: a1 {a1} vs {}",
        case.summary["trend_a1"]
    );
    let pv = case.summary["prior_disp_var"];
    assert!(
        rel(ours.prior_disp_var, pv) < 1e-3,
        "{name}: prior var {} vs {pv}",
        ours.prior_disp_var
    );
    assert!(
        max_lfc <= 0.01,
        "{name}: max |log2 fold change difference| {max_lfc}"
    );
    assert!(
        far_disp as f64 <= DISP_FAR_SHARE * n_disp as f64,
        "{name}: {far_disp} of {n_disp} dispersions differ by more than {DISP_REL} (max {max_disp})"
    );
    assert!(rho >= 0.999, "{name}: p-value Spearman {rho}");
    for (i, o, r) in &mismatched {
        assert!(
            BOUNDARY.contains(&(name, *i)) && (o - 0.05).abs() < 0.01 && (r - 0.05).abs() < 0.01,
            "{name}: gene {i} significant in one only: ours {o}, pydeseq2 {r}"
        );
    }
}

#[test]
fn agrees_with_pydeseq2_3_vs_3() {
    check("c33", false);
}

#[test]
fn agrees_with_pydeseq2_2_vs_2() {
    check("c22", false);
}

#[test]
fn agrees_with_pydeseq2_with_batch_covariate() {
    check("batch", true);
}

#[test]
fn agrees_with_pydeseq2_with_cooks_refit() {
    check("refit", false);
}

#[test]
fn agrees_with_pydeseq2_on_real_pseudobulk() {
    check("real", false);
}

/// Seeded null pseudobulk: NB counts with sample-level variation (size factors and a
/// per-sample, per-gene log-normal effect of sd 0.1) and no DE.
fn null_counts(seed: u64, n: usize, genes: usize) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let norm = Normal::<f64>::new(0.0, 1.0).unwrap();
    let sf: Vec<f64> = (0..n)
        .map(|_| (0.3 * norm.sample(&mut rng)).exp())
        .collect();
    let mut counts = Array2::zeros((n, genes));
    for g in 0..genes {
        let q = (4.0 + 2.0 * norm.sample(&mut rng)).exp();
        let alpha = (0.02 + 1.5 / q) * (0.6 * norm.sample(&mut rng)).exp();
        for j in 0..n {
            let mu = sf[j] * q * (0.1 * norm.sample(&mut rng)).exp();
            // Gamma-Poisson; rand_distr 0.4 returns -1 for a Poisson mean that rounds e^-mean to 1.
            let lam = Gamma::new(1.0 / alpha, mu * alpha)
                .unwrap()
                .sample(&mut rng);
            counts[[j, g]] = if lam > 1e-10 {
                Poisson::new(lam).unwrap().sample(&mut rng)
            } else {
                0.0
            };
        }
    }
    counts
}

#[test]
fn null_pseudobulk_has_few_discoveries() {
    for (seed, n) in [(11u64, 4usize), (12, 6), (13, 4), (14, 6)] {
        let counts = null_counts(seed, n, 2000);
        let cond: Vec<u32> = (0..n).map(|j| u32::from(j >= n / 2)).collect();
        let res = deseq(counts.view(), &cond, None, &DeseqOptions::default()).unwrap();
        let tested = res.rows.iter().filter(|r| !r.p_value.is_nan()).count();
        let sig = res.rows.iter().filter(|r| r.p_adjusted < 0.05).count();
        let share = sig as f64 / res.rows.len() as f64;
        eprintln!(
            "null seed {seed}, {n} samples: {sig} of {} genes at padj < 0.05 ({tested} tested)",
            res.rows.len()
        );
        assert!(tested > 1900, "most genes are tested");
        assert!(share <= 0.01, "seed {seed}: {sig} false discoveries");
    }
}

#[test]
fn same_result_whatever_the_thread_count() {
    let counts = null_counts(21, 6, 500);
    let cond = [0, 0, 0, 1, 1, 1];
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let a = one.install(|| deseq(counts.view(), &cond, None, &DeseqOptions::default()).unwrap());
    let b = two.install(|| deseq(counts.view(), &cond, None, &DeseqOptions::default()).unwrap());
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let u = counts.mapv(|v| v as u32);
    let c = deseq_u32(u.view(), &cond, None, &DeseqOptions::default()).unwrap();
    assert_eq!(format!("{a:?}"), format!("{c:?}"));
}

fn data_message(r: Result<Deseq, Error>) -> String {
    match r {
        Err(Error::InvalidData { message, .. }) => message,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn bad_input_gives_clear_errors() {
    let mut counts = null_counts(31, 4, 50);
    let cond = [0, 0, 1, 1];
    let opts = DeseqOptions::default();
    counts[[1, 7]] = 2.5;
    let m = data_message(deseq(counts.view(), &cond, None, &opts));
    assert!(
        m.contains("sample 1, gene 7") && m.contains("non-negative integers"),
        "{m}"
    );
    counts[[1, 7]] = -1.0;
    let m = data_message(deseq(counts.view(), &cond, None, &opts));
    assert!(m.contains("sample 1, gene 7"), "{m}");
    counts[[1, 7]] = f64::NAN;
    assert!(data_message(deseq(counts.view(), &cond, None, &opts)).contains("gene 7"));
    counts[[1, 7]] = 3.0;
    let m = data_message(deseq(counts.view(), &[0, 1, 1, 1], None, &opts));
    assert!(
        m.contains("needs replicates") && m.contains("condition 0 has 1"),
        "{m}"
    );
    let m = data_message(deseq(counts.view(), &[0, 0, 1], None, &opts));
    assert!(m.contains("3 condition labels for 4 samples"), "{m}");
    let m = data_message(deseq(counts.view(), &[0, 0, 2, 2], None, &opts));
    assert!(m.contains("0 or 1"), "{m}");
    let cov = Array2::<f64>::zeros((3, 1));
    let m = data_message(deseq(counts.view(), &cond, Some(cov.view()), &opts));
    assert!(m.contains("covariates have 3 rows for 4 samples"), "{m}");
    let cov = ndarray::array![[0.0], [0.0], [1.0], [1.0]];
    let m = data_message(deseq(counts.view(), &cond, Some(cov.view()), &opts));
    assert!(m.contains("full column rank"), "{m}");
    let cov = ndarray::array![[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
    let m = data_message(deseq(counts.view(), &cond, Some(cov.view()), &opts));
    assert!(m.contains("no residual degree of freedom"), "{m}");
    let bad = DeseqOptions {
        alpha: 1.5,
        ..DeseqOptions::default()
    };
    assert!(matches!(
        deseq(counts.view(), &cond, None, &bad),
        Err(Error::InvalidOption { name: "alpha", .. })
    ));
    let bad = DeseqOptions {
        max_disp: 1e-9,
        ..DeseqOptions::default()
    };
    assert!(matches!(
        deseq(counts.view(), &cond, None, &bad),
        Err(Error::InvalidOption {
            name: "max_disp",
            ..
        })
    ));
}

#[test]
fn all_zero_genes_are_kept_untested() {
    let mut counts = null_counts(41, 6, 300);
    counts.column_mut(5).fill(0.0);
    counts.column_mut(77).fill(0.0);
    let res = deseq(
        counts.view(),
        &[0, 0, 0, 1, 1, 1],
        None,
        &DeseqOptions::default(),
    )
    .unwrap();
    for g in [5, 77] {
        let r = res.rows[g];
        assert_eq!(r.base_mean, 0.0);
        assert!(r.log2_fold_change.is_nan() && r.p_value.is_nan() && r.p_adjusted.is_nan());
        assert!(res.dispersions[g].is_nan());
    }
    assert!(res.rows.iter().filter(|r| !r.p_value.is_nan()).count() >= 290);
}
