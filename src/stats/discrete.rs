//! Discrete distributions: the hypergeometric survival function and Fisher's exact tests on
//! 2x2 tables.

use super::incomplete::ln_gamma;

fn ln_choose(n: f64, k: f64) -> f64 {
    ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
}

/// Log-probability of `x` under the hypergeometric distribution of the top-left cell of a
/// 2x2 table with row sums `r1`, `r2` and first column sum `c1`.
fn ln_hypergeom(x: usize, r1: usize, r2: usize, c1: usize) -> f64 {
    ln_choose(r1 as f64, x as f64) + ln_choose(r2 as f64, (c1 - x) as f64)
        - ln_choose((r1 + r2) as f64, c1 as f64)
}

/// One-sided Fisher exact test for the table `[[a, b], [c, d]]`: P(X >= a) for X
/// hypergeometric with the table's margins (SciPy's `fisher_exact(alternative="greater")`).
pub fn fisher_exact_greater(a: usize, b: usize, c: usize, d: usize) -> f64 {
    let (r1, r2, c1) = (a + b, c + d, a + c);
    let hi = r1.min(c1);
    let terms: Vec<f64> = (a..=hi).map(|x| ln_hypergeom(x, r1, r2, c1)).collect();
    sum_exp(&terms).min(1.0)
}

/// Two-sided Fisher exact test for `[[a, b], [c, d]]`: the total probability of the tables
/// with the same margins that are no more likely than the observed one (relative tolerance
/// 1e-7, as SciPy's `fisher_exact`).
pub fn fisher_exact_two_sided(a: usize, b: usize, c: usize, d: usize) -> f64 {
    let (r1, r2, c1) = (a + b, c + d, a + c);
    let lo = c1.saturating_sub(r2);
    let hi = r1.min(c1);
    let obs = ln_hypergeom(a, r1, r2, c1);
    let terms: Vec<f64> = (lo..=hi)
        .map(|x| ln_hypergeom(x, r1, r2, c1))
        .filter(|&l| l <= obs + 1e-7f64.ln_1p())
        .collect();
    sum_exp(&terms).min(1.0)
}

/// Hypergeometric survival function P(X >= k) when drawing `n` items from a population of
/// `total` with `successes` successes (SciPy's `hypergeom.sf(k - 1, total, successes, n)`).
pub fn hypergeom_sf(k: usize, total: usize, successes: usize, n: usize) -> f64 {
    if successes > total || n > total {
        return f64::NAN;
    }
    let hi = successes.min(n);
    let lo = n.saturating_sub(total - successes);
    let start = k.max(lo);
    if start > hi {
        return 0.0;
    }
    let terms: Vec<f64> = (start..=hi)
        .map(|x| ln_hypergeom(x, successes, total - successes, n))
        .collect();
    sum_exp(&terms).min(1.0)
}

fn sum_exp(terms: &[f64]) -> f64 {
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return 0.0;
    }
    m.exp() * terms.iter().map(|t| (t - m).exp()).sum::<f64>()
}
