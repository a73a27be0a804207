//! Special functions used by the dispersion fits: digamma, trigamma, the F quantile, and the
//! negative binomial log-likelihood pieces that need them.

use crate::stats;

/// Digamma `psi(x)` for `x > 0`: the recurrence `psi(x) = psi(x + 1) - 1 / x` up to `x >= 10`,
/// then the asymptotic series (absolute error below `1e-14`).
pub(crate) fn digamma(mut x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let r = 1.0 / x;
    let r2 = r * r;
    let series = r2
        * (1.0 / 12.0
            - r2 * (1.0 / 120.0 - r2 * (1.0 / 252.0 - r2 * (1.0 / 240.0 - r2 * (1.0 / 132.0)))));
    acc + x.ln() - 0.5 * r - series
}

/// Trigamma `psi'(x)` for `x > 0` (recurrence up to `x >= 10`, then the asymptotic series;
/// relative error below `1e-13`).
pub(crate) fn trigamma(mut x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    let mut acc = 0.0;
    while x < 10.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let r = 1.0 / x;
    let r2 = r * r;
    let series = r
        + 0.5 * r2
        + r * r2
            * (1.0 / 6.0
                - r2 * (1.0 / 30.0 - r2 * (1.0 / 42.0 - r2 * (1.0 / 30.0 - r2 * (5.0 / 66.0)))));
    acc + series
}

/// `psi(c + r) - psi(r)` for an integer count `c >= 0` and `r > 0`: the finite sum
/// `sum_{k < c} 1 / (r + k)` for small counts (no cancellation when `r` is large), the
/// difference of digammas otherwise.
#[inline]
pub(crate) fn digamma_shift(c: f64, r: f64) -> f64 {
    if c < 32.0 {
        let mut s = 0.0;
        let mut k = 0.0;
        while k < c {
            s += 1.0 / (r + k);
            k += 1.0;
        }
        s
    } else {
        digamma(c + r) - digamma(r)
    }
}

/// Negative log-likelihood of negative binomial counts with means `mu` and dispersion
/// `alpha` (variance `mu + alpha mu^2`), as pydeseq2's `nb_nll`:
/// `sum_j [ ln Gamma(c_j + 1) + ln Gamma(1/alpha) - ln Gamma(c_j + 1/alpha) + (1/alpha) ln alpha
/// + (c_j + 1/alpha) ln(1/alpha + mu_j) - c_j ln mu_j ]`.
pub(crate) fn nb_nll(counts: &[f64], mu: &[f64], alpha: f64) -> f64 {
    let r = 1.0 / alpha;
    let lg_r = stats::ln_gamma(r);
    let n = counts.len() as f64;
    let mut s = n * r * alpha.ln();
    for (&c, &m) in counts.iter().zip(mu) {
        let logbinom = stats::ln_gamma(c + r) - stats::ln_gamma(c + 1.0) - lg_r;
        s += -logbinom + (c + r) * (r + m).ln() - c * m.ln();
    }
    s
}

/// Derivative of [`nb_nll`] with respect to `alpha`, as pydeseq2's `dnb_nll`:
/// `-(1/alpha)^2 sum_j [ psi(1/alpha) - psi(c_j + 1/alpha) + ln(1 + mu_j alpha)
/// + (c_j - mu_j) / (mu_j + 1/alpha) ]`.
#[inline]
pub(crate) fn dnb_nll(counts: &[f64], mu: &[f64], alpha: f64) -> f64 {
    let r = 1.0 / alpha;
    let mut s = 0.0;
    for (&c, &m) in counts.iter().zip(mu) {
        s += -digamma_shift(c, r) + (m * alpha).ln_1p() + (c - m) / (m + r);
    }
    -r * r * s
}

/// Quantile of the F distribution with `d1` and `d2` degrees of freedom at probability `q`
/// (as `scipy.stats.f.ppf`), by bisection on `I_y(d1/2, d2/2) = q` with
/// `y = d1 x / (d1 x + d2)`.
pub(crate) fn f_quantile(q: f64, d1: f64, d2: f64) -> f64 {
    let (a, b) = (0.5 * d1, 0.5 * d2);
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if stats::beta_inc(a, b, mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let y = 0.5 * (lo + hi);
    d2 * y / (d1 * (1.0 - y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digamma_and_trigamma_known_values() {
        // psi(1) = -Euler-Mascheroni; psi'(1) = pi^2 / 6; psi(0.5) = -gamma - 2 ln 2.
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-13);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-13);
        let pi2_6 = std::f64::consts::PI.powi(2) / 6.0;
        assert!((trigamma(1.0) - pi2_6).abs() < 1e-13);
        // psi'(1/2) = pi^2 / 2.
        assert!((trigamma(0.5) - 3.0 * pi2_6).abs() < 1e-12);
        assert!((digamma_shift(5.0, 2.5) - (digamma(7.5) - digamma(2.5))).abs() < 1e-13);
        assert!((digamma_shift(100.0, 2.5) - (digamma(102.5) - digamma(2.5))).abs() < 1e-13);
    }

    #[test]
    fn f_quantile_matches_scipy() {
        // scipy.stats.f.ppf(0.99, 2, 4) = 17.999999999999993; f.ppf(0.99, 2, 12) = 6.926608140191301
        assert!((f_quantile(0.99, 2.0, 4.0) - 18.0).abs() < 1e-9);
        assert!((f_quantile(0.99, 2.0, 12.0) - 6.926_608_140_191_301).abs() < 1e-8);
    }

    #[test]
    fn nb_gradient_matches_finite_difference() {
        let c = [0.0, 3.0, 17.0, 250.0];
        let mu = [2.0, 5.0, 15.0, 200.0];
        for &alpha in &[1e-3, 0.05, 0.7, 4.0] {
            let h = alpha * 1e-6;
            let fd = (nb_nll(&c, &mu, alpha + h) - nb_nll(&c, &mu, alpha - h)) / (2.0 * h);
            let an = dnb_nll(&c, &mu, alpha);
            assert!(
                (fd - an).abs() < 1e-5 * (1.0 + an.abs()),
                "{alpha}: {fd} vs {an}"
            );
        }
    }
}
