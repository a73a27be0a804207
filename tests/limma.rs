//! limma's linear model, contrasts and empirical Bayes moderation against limma 3.54.1.
//!
//! Reference values: `scripts/reference_limma.R` -> `fixtures/limma/`. Inputs are the Haber et
//! al. 2017 composition table (10 mice, 4 conditions; logit-transformed proportions, 8 cell
//! types) and a seeded random 500 x 6 matrix (3 + 3 samples) with a mean-variance trend, 12
//! outlier variances and 5 constant features.
//!
//! Tolerances: coefficients and unscaled standard errors 1e-10 relative; moderated t,
//! p-values, posterior variances, total df, F and its p-value 1e-6 relative (t also within
//! 1e-9 absolute, for the constant features whose t is rounding noise); df.prior and
//! s2.prior 1e-8 relative.

use ndarray::{Array2, ArrayView2};
use scrna::limma::{
    contrasts_fit, digamma, ebayes, lm_fit, squeeze_var, tetragamma, trigamma, trigamma_inverse,
    EbayesOptions, LmFit, SqueezeVarOptions,
};
use std::io::Read;

struct Table {
    header: Vec<String>,
    rows: Vec<Vec<f64>>,
}

impl Table {
    fn col(&self, name: &str) -> Vec<f64> {
        let j = self
            .header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        self.rows.iter().map(|r| r[j]).collect()
    }

    fn has(&self, name: &str) -> bool {
        self.header.iter().any(|h| h == name)
    }

    fn matrix(&self) -> Array2<f64> {
        let (n, p) = (self.rows.len(), self.header.len());
        Array2::from_shape_fn((n, p), |(i, j)| self.rows[i][j])
    }
}

fn read_table(name: &str) -> Table {
    let path = format!("{}/fixtures/limma/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = if name.ends_with(".gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(bytes).unwrap()
    };
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split(',')
                .map(|f| {
                    if f == "NA" {
                        f64::NAN
                    } else {
                        f.parse().unwrap()
                    }
                })
                .collect()
        })
        .collect();
    Table { header, rows }
}

fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    if a == b || (a.is_nan() && b.is_nan()) {
        return true;
    }
    (a - b).abs() <= rel * a.abs().max(b.abs()) || (a - b).abs() <= abs
}

fn check(what: &str, ours: &[f64], theirs: &[f64], rel: f64, abs: f64) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    let mut worst = 0.0f64;
    for (i, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
        assert!(
            close(a, b, rel, abs),
            "{what}[{i}]: ours {a:e}, limma {b:e} (rel {:e})",
            (a - b).abs() / b.abs()
        );
        if b.is_finite() && b.abs() > 1e-6 {
            worst = worst.max((a - b).abs() / b.abs());
        }
    }
    worst
}

fn haber_fit() -> LmFit {
    let y = read_table("haber_logit_y.csv").matrix();
    let design = read_table("haber_design.csv").matrix();
    let contrasts = read_table("haber_contrasts.csv").matrix();
    let fit = lm_fit(y.view(), design.view()).unwrap();
    contrasts_fit(&fit, contrasts.view()).unwrap()
}

fn random_fit(contrast: bool) -> LmFit {
    let y = read_table("random_y.csv.gz").matrix();
    if contrast {
        let design = read_table("random_design0.csv").matrix();
        let fit = lm_fit(y.view(), design.view()).unwrap();
        contrasts_fit(&fit, ndarray::arr2(&[[-1.0], [1.0]]).view()).unwrap()
    } else {
        let design = read_table("random_design.csv").matrix();
        lm_fit(y.view(), design.view()).unwrap()
    }
}

fn column(a: ArrayView2<f64>, j: usize) -> Vec<f64> {
    a.column(j).to_vec()
}

/// Compares one fit + eBayes with the committed limma output; returns the worst relative
/// differences of (t, p).
fn compare(case: &str, fit: &LmFit, robust: bool, trend: bool) -> (f64, f64) {
    let tag = format!(
        "{}_{}",
        if robust { "robust" } else { "plain" },
        if trend { "trend" } else { "notrend" }
    );
    let name = if case == "haber" {
        format!("limma_haber_{tag}.csv")
    } else {
        format!("limma_{case}_{tag}.csv.gz")
    };
    let r = read_table(&name);
    let opts = EbayesOptions {
        robust,
        trend,
        ..EbayesOptions::default()
    };
    let eb = ebayes(fit, &opts).unwrap();
    let q = fit.n_coefficients();
    let ctx = |s: &str| format!("{name} {s}");
    let (mut wt, mut wp) = (0.0f64, 0.0f64);
    for j in 0..q {
        let k = j + 1;
        check(
            &ctx(&format!("coef_{k}")),
            &column(fit.coefficients.view(), j),
            &r.col(&format!("coef_{k}")),
            1e-10,
            1e-12,
        );
        check(
            &ctx(&format!("stdev_{k}")),
            &column(fit.stdev_unscaled.view(), j),
            &r.col(&format!("stdev_{k}")),
            1e-10,
            0.0,
        );
        wt = wt.max(check(
            &ctx(&format!("t_{k}")),
            &column(eb.t.view(), j),
            &r.col(&format!("t_{k}")),
            1e-6,
            1e-9,
        ));
        wp = wp.max(check(
            &ctx(&format!("p_{k}")),
            &column(eb.p_value.view(), j),
            &r.col(&format!("p_{k}")),
            1e-6,
            0.0,
        ));
    }
    check(&ctx("sigma"), &fit.sigma, &r.col("sigma"), 1e-8, 1e-12);
    check(&ctx("s2_post"), &eb.s2_post, &r.col("s2_post"), 1e-6, 0.0);
    check(
        &ctx("df_prior"),
        &eb.df_prior,
        &r.col("df_prior"),
        1e-8,
        0.0,
    );
    check(
        &ctx("s2_prior"),
        &eb.s2_prior,
        &r.col("s2_prior"),
        1e-8,
        0.0,
    );
    check(
        &ctx("df_total"),
        &eb.df_total,
        &r.col("df_total"),
        1e-8,
        0.0,
    );
    assert!(r.has("F"));
    check(&ctx("F"), eb.f.as_ref().unwrap(), &r.col("F"), 1e-6, 1e-12);
    check(
        &ctx("F_p"),
        eb.f_p_value.as_ref().unwrap(),
        &r.col("F_p"),
        1e-6,
        0.0,
    );
    (wt, wp)
}

#[test]
fn ebayes_matches_limma_on_haber_composition() {
    let fit = haber_fit();
    assert_eq!(fit.n_features(), 8);
    assert_eq!(fit.n_coefficients(), 3);
    for robust in [false, true] {
        for trend in [false, true] {
            if robust && trend {
                continue;
            }
            let (wt, wp) = compare("haber", &fit, robust, trend);
            eprintln!("haber robust={robust} trend={trend}: worst rel t {wt:.2e}, p {wp:.2e}");
        }
    }
}

#[test]
fn ebayes_matches_limma_on_random_matrix() {
    for contrast in [false, true] {
        let fit = random_fit(contrast);
        assert_eq!(fit.n_features(), 500);
        let case = if contrast {
            "random_contrast"
        } else {
            "random"
        };
        for robust in [false, true] {
            for trend in [false, true] {
                if robust && trend {
                    continue;
                }
                let (wt, wp) = compare(case, &fit, robust, trend);
                eprintln!("{case} robust={robust} trend={trend}: worst rel t {wt:.2e}, p {wp:.2e}");
            }
        }
    }
}

#[test]
fn robust_prior_shrinks_outlier_df() {
    // The 12 inflated variances of the random matrix get smaller prior df than the rest.
    let fit = random_fit(false);
    let eb = ebayes(
        &fit,
        &EbayesOptions {
            robust: true,
            ..EbayesOptions::default()
        },
    )
    .unwrap();
    let max = eb.df_prior.iter().copied().fold(0.0, f64::max);
    let below = eb.df_prior.iter().filter(|&&d| d < max).count();
    assert!(below > 0 && below < 100, "{below} features with shrunk df");
}

#[test]
fn squeeze_var_matches_limma() {
    let r = read_table("squeeze_var.csv");
    let sv = squeeze_var(
        &r.col("var"),
        &r.col("df"),
        None,
        &SqueezeVarOptions::default(),
    )
    .unwrap();
    check("var_post", &sv.var_post, &r.col("var_post"), 1e-8, 0.0);
    check("var_prior", &sv.var_prior, &r.col("var_prior"), 1e-8, 0.0);
    check("df_prior", &sv.df_prior, &r.col("df_prior"), 1e-8, 0.0);
}

#[test]
fn polygamma_functions_match_r() {
    let r = read_table("special.csv");
    let x = r.col("x");
    let d: Vec<f64> = x.iter().map(|&v| digamma(v)).collect();
    let t: Vec<f64> = x.iter().map(|&v| trigamma(v)).collect();
    let t2: Vec<f64> = x.iter().map(|&v| tetragamma(v)).collect();
    check("digamma", &d, &r.col("digamma"), 1e-11, 1e-14);
    check("trigamma", &t, &r.col("trigamma"), 1e-11, 0.0);
    check("tetragamma", &t2, &r.col("tetragamma"), 1e-11, 0.0);
    let r = read_table("trigamma_inverse.csv");
    let inv: Vec<f64> = r.col("y").iter().map(|&v| trigamma_inverse(v)).collect();
    check(
        "trigamma_inverse",
        &inv,
        &r.col("trigamma_inverse"),
        1e-10,
        0.0,
    );
}

#[test]
fn bad_input_errors() {
    let y = read_table("haber_logit_y.csv").matrix();
    let design = read_table("haber_design.csv").matrix();
    // Rank-deficient design: a column repeated.
    let mut bad = Array2::zeros((10, 5));
    bad.slice_mut(ndarray::s![.., ..4]).assign(&design);
    bad.column_mut(4).assign(&design.column(0));
    let e = lm_fit(y.view(), bad.view()).unwrap_err().to_string();
    assert!(e.contains("full column rank"), "{e}");
    // Wrong number of design rows.
    let e = lm_fit(y.view(), design.slice(ndarray::s![..9, ..]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("design has 9 rows"), "{e}");
    // NaN in the data names the feature and sample.
    let mut ynan = y.clone();
    ynan[[3, 7]] = f64::NAN;
    let e = lm_fit(ynan.view(), design.view()).unwrap_err().to_string();
    assert!(e.contains("feature 3, sample 7"), "{e}");
    // Contrast matrix with the wrong number of rows.
    let fit = lm_fit(y.view(), design.view()).unwrap();
    let e = contrasts_fit(&fit, Array2::<f64>::zeros((3, 1)).view())
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 rows but the fit has 4 coefficients"), "{e}");
    // No residual degrees of freedom.
    let sq = Array2::<f64>::eye(10);
    let e = ebayes(
        &lm_fit(y.view(), sq.view()).unwrap(),
        &EbayesOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no residual degrees of freedom"), "{e}");
    // Options.
    let e = ebayes(
        &fit,
        &EbayesOptions {
            winsor_tail_p: [0.05, 0.7],
            ..EbayesOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("winsor_tail_p"), "{e}");
    let e = ebayes(
        &fit,
        &EbayesOptions {
            robust: true,
            trend: true,
            ..EbayesOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("robust"), "{e}");
    let e = squeeze_var(&[1.0, 2.0], &[3.0], None, &SqueezeVarOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 variances but 1 degrees of freedom"), "{e}");
}
