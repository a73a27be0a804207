//! The negative binomial log-likelihood pieces of the dispersion fits, built on the shared
//! polygamma functions of [`crate::special`].

use crate::special::digamma;
use crate::stats;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digamma_shift_is_a_difference_of_digammas() {
        // Both branches: the finite sum below 32 and the digamma difference above.
        assert!((digamma_shift(5.0, 2.5) - (digamma(7.5) - digamma(2.5))).abs() < 1e-13);
        assert!((digamma_shift(100.0, 2.5) - (digamma(102.5) - digamma(2.5))).abs() < 1e-13);
        assert_eq!(digamma_shift(0.0, 3.0), 0.0);
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
