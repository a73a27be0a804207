//! Agreement of `scrna::pca` with Scanpy 1.11.5 (`scale(max_value=10)` then
//! `pca(n_comps=50, svd_solver="arpack")`), plus accuracy, determinism and option checks.
//! Reference values: `scripts/reference_pca.py` -> `fixtures/reference/pca/`.
#[path = "support/correlation.rs"]
mod correlation;
use correlation::corr;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use scrna::io::mtx::read_10x_mtx;
use scrna::pca::{pca, Pca, PcaOptions, Solver};
use scrna::{CsrMatrix, Error, ReadOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

/// Scanpy's normalize_total(target_sum=1e4) followed by log1p, on a CSR count matrix.
fn normalize_log1p(counts: &CsrMatrix) -> CsrMatrix {
    let sums = counts.row_sums();
    let mut x = counts.clone();
    x.map_rows_mut(|i, _idx, vals| {
        let f = if sums[i] > 0.0 { 1e4 / sums[i] } else { 0.0 };
        for v in vals.iter_mut() {
            *v = ((*v as f64 * f).ln_1p()) as f32;
        }
    });
    x
}

/// Log-normalized HVG matrix of the celltypist fixture, built as Scanpy's standard pipeline
/// (filter_cells min_genes=200, filter_genes min_cells=3, normalize_total 1e4, log1p) and
/// restricted to Scanpy's 2,000 highly variable genes (ids from the reference), in that order.
fn celltypist_input() -> CsrMatrix {
    let ds = read_10x_mtx(
        root().join("fixtures/celltypist_sample/filtered_feature_bc_matrix"),
        &ReadOptions::default(),
    )
    .unwrap();
    let cells: Vec<usize> = ds
        .counts
        .row_nnz()
        .iter()
        .enumerate()
        .filter(|(_, &g)| g >= 200)
        .map(|(i, _)| i)
        .collect();
    let ds = ds.select_cells(&cells).unwrap();
    let mut n_cells = vec![0usize; ds.n_genes()];
    for &j in ds.counts.to_csr().indices() {
        n_cells[j as usize] += 1;
    }
    let genes: Vec<usize> = (0..ds.n_genes()).filter(|&j| n_cells[j] >= 3).collect();
    let ds = ds.select_genes(&genes).unwrap();
    let x = normalize_log1p(&ds.counts.to_csr());
    let pos: HashMap<&str, usize> = ds
        .genes
        .ids
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let hvg = std::fs::read_to_string(root().join("fixtures/reference/pca/celltypist/hvg_ids.txt"))
        .unwrap();
    let cols: Vec<usize> = hvg
        .lines()
        .filter(|l| !l.is_empty())
        .map(|g| pos[g])
        .collect();
    assert_eq!(cols.len(), 2000);
    x.select_cols(&cols).unwrap()
}

/// The simulated reference counts (600 x 300), normalize_total 1e4 + log1p, all genes.
fn sim_input() -> CsrMatrix {
    let ds = read_10x_mtx(
        root().join("fixtures/reference/pca/sim/counts"),
        &ReadOptions::default(),
    )
    .unwrap();
    normalize_log1p(&ds.counts.to_csr())
}

/// Compares a result with the reference in `fixtures/reference/pca/<name>/`.
fn check_against_scanpy(name: &str, x: &CsrMatrix, res: &Pca, label: &str) {
    let dir = root().join("fixtures/reference/pca").join(name);
    // scaling parameters
    let (_, scale) = read_csv(&dir.join("scale.csv"));
    assert_eq!(scale.len(), x.n_cols());
    for (j, row) in scale.iter().enumerate() {
        let mean: f64 = row[1].parse().unwrap();
        let std: f64 = row[2].parse().unwrap();
        assert!(
            (res.means[j] - mean).abs() <= 1e-5 * mean.abs().max(1e-3),
            "{label}: mean of gene {j}: {} vs Scanpy {mean}",
            res.means[j]
        );
        assert!(
            (res.stds[j] - std).abs() <= 1e-5 * std,
            "{label}: std of gene {j}: {} vs Scanpy {std}",
            res.stds[j]
        );
    }
    // variance and variance ratio of the first 20 components: 1e-3 relative
    let (_, var) = read_csv(&dir.join("variance.csv"));
    for (k, row) in var.iter().take(20).enumerate() {
        let v: f64 = row[1].parse().unwrap();
        let r: f64 = row[2].parse().unwrap();
        let rel_r = (res.variance_ratio[k] - r).abs() / r;
        let rel_v = (res.variance[k] - v).abs() / v;
        assert!(
            rel_r < 1e-3 && rel_v < 1e-3,
            "{label}: PC{}: ratio {} vs Scanpy {r} (rel {rel_r:.2e}), variance {} vs {v}",
            k + 1,
            res.variance_ratio[k],
            res.variance[k]
        );
    }
    // first 10 embedding columns: |corr| > 0.999 (none of these components has a near-equal
    // neighbour in either data set: the smallest relative gap among the first 11 variances is
    // 1% on celltypist (PC10/PC11) and 7% on the simulation), and the sign convention
    // (largest-absolute loading positive) is sklearn's svd_flip, so signs agree too.
    let (_, emb) = read_csv(&dir.join("embedding.csv"));
    assert_eq!(emb.len(), x.n_rows());
    for k in 0..10 {
        let theirs: Vec<f64> = emb.iter().map(|r| r[k + 1].parse().unwrap()).collect();
        let ours: Vec<f64> = res.embedding.column(k).iter().map(|&v| v as f64).collect();
        let c = corr(&ours, &theirs);
        assert!(
            c > 0.999,
            "{label}: PC{} correlation with Scanpy {c} (sign flipped if near -1)",
            k + 1
        );
    }
    // largest-absolute loading: same gene, same sign, as Scanpy's varm["PCs"]
    let (_, lmax) = read_csv(&dir.join("loadings_max.csv"));
    for (k, row) in lmax.iter().take(10).enumerate() {
        let want: f64 = row[2].parse().unwrap();
        let col = res.loadings.column(k);
        let (jmax, vmax) =
            col.iter().enumerate().fold(
                (0, 0.0f32),
                |b, (j, &v)| if v.abs() > b.1.abs() { (j, v) } else { b },
            );
        assert!(vmax > 0.0, "{label}: PC{}: largest loading negative", k + 1);
        assert!(
            ((vmax as f64) - want).abs() < 1e-3,
            "{label}: PC{}: largest loading {vmax} (gene {jmax}) vs Scanpy {want} ({})",
            k + 1,
            row[1]
        );
    }
}

fn lanczos_opts() -> PcaOptions {
    PcaOptions {
        solver: Solver::lanczos(),
        ..PcaOptions::default()
    }
}

#[test]
fn celltypist_randomized_matches_scanpy() {
    let x = celltypist_input();
    let res = pca(&x, &PcaOptions::default()).unwrap();
    assert_eq!(res.embedding.dim(), (x.n_rows(), 50));
    assert_eq!(res.loadings.dim(), (2000, 50));
    check_against_scanpy("celltypist", &x, &res, "randomized");
}

#[test]
fn celltypist_lanczos_matches_scanpy() {
    let x = celltypist_input();
    let res = pca(&x, &lanczos_opts()).unwrap();
    check_against_scanpy("celltypist", &x, &res, "lanczos");
}

#[test]
fn simulated_matches_scanpy() {
    let x = sim_input();
    for (label, opts) in [
        ("randomized", PcaOptions::default()),
        ("lanczos", lanczos_opts()),
    ] {
        let res = pca(&x, &opts).unwrap();
        check_against_scanpy("sim", &x, &res, label);
    }
}

/// Dense reference: eigenvalues of the centred matrix via faer's SVD.
fn dense_singular_values(x: &CsrMatrix) -> Vec<f64> {
    let d = x.to_dense();
    let (n, p) = d.dim();
    let means: Vec<f64> = (0..p)
        .map(|j| (0..n).map(|i| d[[i, j]] as f64).sum::<f64>() / n as f64)
        .collect();
    let m = faer::Mat::<f64>::from_fn(n, p, |i, j| d[[i, j]] as f64 - means[j]);
    let mut s = m.singular_values().unwrap();
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

fn low_rank(n: usize, p: usize, r: usize) -> CsrMatrix {
    // sum of r sparse non-negative rank-one terms a_t b_t^T with disjoint-ish supports
    let (mut ri, mut ci, mut v) = (Vec::new(), Vec::new(), Vec::new());
    let mut dense = vec![0.0f32; n * p];
    for t in 0..r {
        for i in 0..n {
            let a = ((i * (t + 3) + t) % 7) as f32 * (t + 1) as f32;
            for j in 0..p {
                let b = if (j + t) % (t + 2) == 0 {
                    ((j % 5) + 1) as f32
                } else {
                    0.0
                };
                dense[i * p + j] += a * b;
            }
        }
    }
    for i in 0..n {
        for j in 0..p {
            if dense[i * p + j] != 0.0 {
                ri.push(i as u32);
                ci.push(j as u32);
                v.push(dense[i * p + j]);
            }
        }
    }
    CsrMatrix::from_triplets(n, p, &ri, &ci, &v).unwrap()
}

#[test]
fn rank_r_matrix_is_recovered() {
    let (n, p, r) = (300, 80, 4);
    let x = low_rank(n, p, r);
    let s = dense_singular_values(&x);
    assert!(s[r] < 1e-6 * s[0], "test matrix should have rank <= {r}");
    for solver in [Solver::randomized(), Solver::lanczos(), Solver::krylov()] {
        let opts = PcaOptions {
            n_comps: 10,
            scale: false,
            solver: solver.clone(),
            ..PcaOptions::default()
        };
        let res = pca(&x, &opts).unwrap();
        for (k, sk) in s.iter().enumerate().take(r) {
            let want = sk * sk / (n - 1) as f64;
            assert!(
                (res.variance[k] - want).abs() < 1e-6 * want,
                "{solver:?}: PC{}: {} vs {want}",
                k + 1,
                res.variance[k]
            );
        }
        let ratio: f64 = res.variance_ratio[..r].iter().sum();
        assert!((ratio - 1.0).abs() < 1e-6, "{solver:?}: ratio sum {ratio}");
        for k in r..10 {
            assert!(
                res.variance_ratio[k] < 1e-9,
                "{solver:?}: PC{} not ~0",
                k + 1
            );
        }
        // loadings orthonormal (the first r; the rest span the null space)
        for a in 0..10 {
            for b in 0..=a {
                let d: f64 = (0..p)
                    .map(|j| res.loadings[[j, a]] as f64 * res.loadings[[j, b]] as f64)
                    .sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((d - want).abs() < 1e-5, "{solver:?}: V^T V [{a},{b}] = {d}");
            }
        }
    }
}

#[test]
fn full_spectrum_matches_dense_svd() {
    // every component of a small scaled matrix agrees with the dense SVD (scale=false so the
    // dense reference is just the centred matrix)
    let x = sim_input()
        .select_cols(&(100..140).collect::<Vec<_>>())
        .unwrap();
    let s = dense_singular_values(&x);
    for solver in [Solver::randomized(), Solver::lanczos(), Solver::krylov()] {
        let opts = PcaOptions {
            n_comps: 40,
            scale: false,
            solver: solver.clone(),
            ..PcaOptions::default()
        };
        let res = pca(&x, &opts).unwrap();
        for k in 0..40 {
            let want = s[k] * s[k] / (x.n_rows() - 1) as f64;
            assert!(
                (res.variance[k] - want).abs() < 1e-6 * s[0] * s[0],
                "{solver:?}: PC{}: {} vs {want}",
                k + 1,
                res.variance[k]
            );
        }
        let ratio: f64 = res.variance_ratio.iter().sum();
        assert!(
            (ratio - 1.0).abs() < 1e-6,
            "{solver:?}: all ratios sum {ratio}"
        );
    }
}

#[test]
fn randomized_stops_early_once_the_ritz_values_settle() {
    // the leading components of the simulation are well separated: the power iterations stop
    // before the maximum and the result matches the fixed 11-application run
    let x = sim_input();
    let n_comps = 5;
    let run = |tol: f64| {
        let opts = PcaOptions {
            n_comps,
            solver: Solver::Randomized {
                n_oversamples: 30,
                n_power_iter: 10,
                tol,
            },
            ..PcaOptions::default()
        };
        pca(&x, &opts).unwrap()
    };
    let fixed = run(0.0);
    let early = run(Solver::RANDOMIZED_TOL);
    assert_eq!(fixed.iterations, 11);
    assert!(early.iterations < 11, "{} iterations", early.iterations);
    for k in 0..n_comps {
        let rel =
            (early.variance_ratio[k] - fixed.variance_ratio[k]).abs() / fixed.variance_ratio[k];
        assert!(rel < 1e-6, "PC{}: relative difference {rel:.2e}", k + 1);
        let a: Vec<f64> = early
            .embedding
            .column(k)
            .iter()
            .map(|&v| v as f64)
            .collect();
        let b: Vec<f64> = fixed
            .embedding
            .column(k)
            .iter()
            .map(|&v| v as f64)
            .collect();
        let c = corr(&a, &b);
        assert!(c > 0.99999, "PC{}: correlation {c}", k + 1);
    }
}

#[test]
fn same_seed_same_result_whatever_the_thread_count() {
    let x = sim_input();
    for solver in [Solver::randomized(), Solver::lanczos(), Solver::krylov()] {
        let opts = PcaOptions {
            n_comps: 20,
            solver,
            seed: 7,
            ..PcaOptions::default()
        };
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| pca(&x, &opts).unwrap())
        };
        let a = run(1);
        let b = run(2);
        let c = run(2);
        for other in [&b, &c] {
            assert_eq!(a.embedding, other.embedding, "{:?}", opts.solver);
            assert_eq!(a.loadings, other.loadings);
            assert_eq!(a.variance, other.variance);
            assert_eq!(a.variance_ratio, other.variance_ratio);
            assert_eq!(a.iterations, other.iterations);
        }
    }
}

#[test]
fn bad_options_are_errors() {
    let x = sim_input(); // 600 x 300
    let bad = |opts: PcaOptions, name: &str| match pca(&x, &opts) {
        Err(Error::InvalidOption { name: n, .. }) => assert_eq!(n, name),
        other => panic!(
            "expected InvalidOption({name}), got {:?}",
            other.map(|_| ())
        ),
    };
    bad(
        PcaOptions {
            n_comps: 301,
            ..PcaOptions::default()
        },
        "n_comps",
    );
    bad(
        PcaOptions {
            n_comps: 0,
            ..PcaOptions::default()
        },
        "n_comps",
    );
    bad(
        PcaOptions {
            max_value: Some(-1.0),
            ..PcaOptions::default()
        },
        "max_value",
    );
    bad(
        PcaOptions {
            solver: Solver::Lanczos {
                extra_work: 10,
                tol: 0.0,
                max_restarts: 10,
            },
            ..PcaOptions::default()
        },
        "solver.tol",
    );
    for tol in [-1e-4, f64::NAN, f64::INFINITY] {
        bad(
            PcaOptions {
                solver: Solver::Randomized {
                    n_oversamples: 10,
                    n_power_iter: 5,
                    tol,
                },
                ..PcaOptions::default()
            },
            "solver.tol",
        );
    }
    // n_comps == min(cells, genes) is allowed
    let small = x.select_cols(&(0..30).collect::<Vec<_>>()).unwrap();
    let res = pca(
        &small,
        &PcaOptions {
            n_comps: 30,
            ..PcaOptions::default()
        },
    )
    .unwrap();
    assert_eq!(res.embedding.dim(), (600, 30));
    // one cell is a data error
    let one = x.select_rows(&[0]).unwrap();
    assert!(matches!(
        pca(&one, &PcaOptions::default()),
        Err(Error::InvalidData { .. })
    ));
}
