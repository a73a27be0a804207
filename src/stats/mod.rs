//! Distributions and multiple-testing corrections used by the tests of the crate.
//!
//! Everything is in `f64` and accurate in the far tails (relative error about `1e-12` or
//! better wherever the result is a normal `f64`), because marker p-values of `1e-200` are
//! common and their ranking and adjustment must match SciPy's:
//! - [`normal_sf`]: `P(Z > z)` for a standard normal, as `scipy.stats.norm.sf`;
//! - [`t_sf`]: `P(T > t)` for Student's t with `df` (real) degrees of freedom, as
//!   `scipy.stats.t.sf`;
//! - [`beta_inc`]: the regularized incomplete beta function `I_x(a, b)`, as
//!   `scipy.special.betainc`;
//! - [`gamma_p`] / [`gamma_q`]: regularized incomplete gamma functions;
//! - [`ln_gamma`], [`ln_beta`];
//! - [`f_sf`], [`f_cdf`], [`f_density`], [`f_quantile`]: the F distribution (chi-square on
//!   `df1` degrees of freedom, scaled, when `df2 = inf`), as R's `pf`, `df`, `qf`;
//! - [`median`], [`quantile_sorted`] (R's type 7), [`order`], [`average_ranks`]: order
//!   statistics as R computes them;
//! - [`welch_t_test`]: Welch's unequal-variance t-test from summary statistics, as
//!   `scipy.stats.ttest_ind_from_stats(equal_var=False)`;
//! - [`benjamini_hochberg`] and [`bonferroni`], as statsmodels' `multipletests` methods
//!   `fdr_bh` and `bonferroni`.
//!
//! The incomplete gamma and beta functions follow Numerical Recipes (3rd ed., sections 6.2 and
//! 6.4): a power series or a continued fraction evaluated with the modified Lentz method, the
//! prefactor computed in log space.

mod continuous;
mod discrete;
mod incomplete;
mod order;

pub use continuous::{
    f_cdf, f_density, f_quantile, f_sf, normal_quantile, normal_sf, normal_two_sided, t_sf,
    t_two_sided, welch_t_test, TTest,
};
pub use discrete::{fisher_exact_greater, fisher_exact_two_sided, hypergeom_sf};
pub use incomplete::{beta_inc, gamma_p, gamma_q, ln_beta, ln_gamma};
pub use order::{average_ranks, median, median_in_place, order, quantile_sorted};

/// Benjamini-Hochberg adjusted p-values (false discovery rate), as statsmodels'
/// `multipletests(p, method="fdr_bh")`:
/// with `p_(1) <= ... <= p_(n)` sorted, `q_(i) = min_{j >= i} min(1, p_(j) n / j)`, returned in
/// the input order. `NaN` inputs are treated as 1 (as Scanpy does before adjusting).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let n = p.len();
    let clean = |x: f64| if x.is_nan() { 1.0 } else { x };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| clean(p[i]).total_cmp(&clean(p[j])));
    let mut out = vec![0.0; n];
    let nf = n as f64;
    let mut running = f64::INFINITY;
    for (rank0, &i) in order.iter().enumerate().rev() {
        let raw = clean(p[i]) / ((rank0 + 1) as f64 / nf);
        running = running.min(raw);
        out[i] = running.min(1.0);
    }
    out
}

/// Bonferroni adjusted p-values `min(1, p n)` (`NaN` treated as 1).
pub fn bonferroni(p: &[f64]) -> Vec<f64> {
    let nf = p.len() as f64;
    p.iter()
        .map(|&x| if x.is_nan() { 1.0 } else { (x * nf).min(1.0) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::test_support::{close, reference};
    use super::*;

    #[test]
    fn bh_is_monotone_in_p_and_bounded() {
        let p = [0.01, 0.04, 0.03, 0.2, 0.9, 0.0001, 0.5, 0.04];
        let q = benjamini_hochberg(&p);
        let mut idx: Vec<usize> = (0..p.len()).collect();
        idx.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
        for w in idx.windows(2) {
            assert!(q[w[0]] <= q[w[1]]);
        }
        for (pi, qi) in p.iter().zip(&q) {
            assert!(qi >= pi && *qi <= 1.0);
        }
        // Ties get the same adjusted value.
        assert_eq!(q[1], q[7]);
        assert_eq!(benjamini_hochberg(&[]), Vec::<f64>::new());
        assert_eq!(benjamini_hochberg(&[f64::NAN]), vec![1.0]);
    }

    #[test]
    fn bh_and_bonferroni_match_statsmodels() {
        let rows = reference("stats_bh.csv");
        let p: Vec<f64> = rows.iter().map(|r| r[0]).collect();
        let bh = benjamini_hochberg(&p);
        let bonf = bonferroni(&p);
        for (i, r) in rows.iter().enumerate() {
            assert!(close(bh[i], r[1], 1e-12), "{i}: {} vs {}", bh[i], r[1]);
            assert!(close(bonf[i], r[2], 1e-12), "{i}: {} vs {}", bonf[i], r[2]);
        }
    }
}

/// Helpers shared by the unit tests of the sub-modules.
#[cfg(test)]
mod test_support {
    pub(super) fn close(a: f64, b: f64, rel: f64) -> bool {
        if a == b {
            return true;
        }
        (a - b).abs() <= rel * a.abs().max(b.abs())
    }

    /// Rows of a committed reference CSV (written by scripts/reference_markers.py).
    pub(super) fn reference(name: &str) -> Vec<Vec<f64>> {
        let path = format!(
            "{}/fixtures/reference/markers/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        text.lines()
            .skip(1)
            .map(|l| l.split(',').map(|f| f.parse::<f64>().unwrap()).collect())
            .collect()
    }
}
