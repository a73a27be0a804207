//! Continuous distributions: the normal, Student's t and F distributions, and Welch's t-test
//! from summary statistics.

use super::incomplete::{beta_inc, beta_inc_xy, gamma_p, gamma_q, ln_beta, ln_gamma};

/// Survival function of the standard normal distribution, `P(Z > z) = erfc(z / sqrt 2) / 2`,
/// with full relative accuracy in the upper tail (down to the `f64` underflow near `z = 38.5`).
///
/// Computed as `Q(1/2, z^2 / 2) / 2` for `z > 0` ([`gamma_q`]) and `1 - sf(-z)` for `z < 0`.
pub fn normal_sf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z == f64::INFINITY {
        return 0.0;
    }
    if z == f64::NEG_INFINITY {
        return 1.0;
    }
    if z >= 0.0 {
        0.5 * gamma_q(0.5, 0.5 * z * z)
    } else {
        1.0 - 0.5 * gamma_q(0.5, 0.5 * z * z)
    }
}

/// Two-sided normal p-value `2 P(Z > |z|)`.
pub fn normal_two_sided(z: f64) -> f64 {
    2.0 * normal_sf(z.abs())
}

/// Survival function of Student's t distribution with `df > 0` degrees of freedom (real),
/// `P(T > t)`, as `scipy.stats.t.sf(t, df)`.
///
/// For `t > 0`: `sf = I_x(df / 2, 1 / 2) / 2` with `x = df / (df + t^2)` (and `1 - x` computed
/// as `t^2 / (df + t^2)` so the far tail keeps its relative accuracy); `1 - sf(-t)` for
/// `t < 0`. Above `1e10` degrees of freedom the normal survival function is used.
pub fn t_sf(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if df > 1e10 {
        // The t distribution equals the normal one to within 1e-10 here.
        return normal_sf(t);
    }
    if t.is_infinite() {
        return if t > 0.0 { 0.0 } else { 1.0 };
    }
    let t2 = t * t;
    let tail = if t2 == 0.0 {
        0.5
    } else {
        let denom = df + t2;
        0.5 * beta_inc_xy(0.5 * df, 0.5, df / denom, t2 / denom)
    };
    if t >= 0.0 {
        tail
    } else {
        1.0 - tail
    }
}

/// Two-sided Student t p-value `2 P(T > |t|)`.
pub fn t_two_sided(t: f64, df: f64) -> f64 {
    2.0 * t_sf(t.abs(), df)
}

/// Result of [`welch_t_test`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    /// The t statistic `(mean1 - mean2) / sqrt(var1 / n1 + var2 / n2)`; `NaN` when the means
    /// are equal and both variances are zero, `+-inf` when only the variances are zero.
    pub t: f64,
    /// Welch-Satterthwaite degrees of freedom (1 when undefined, as SciPy does).
    pub df: f64,
    /// Two-sided p-value (`NaN` when `t` is `NaN`).
    pub p: f64,
}

/// Welch's unequal-variance t-test from summary statistics (`var` is the unbiased sample
/// variance), as `scipy.stats.ttest_ind_from_stats(..., equal_var=False)`:
///
/// `vn_i = var_i / n_i`, `t = (mean1 - mean2) / sqrt(vn1 + vn2)`,
/// `df = (vn1 + vn2)^2 / (vn1^2 / (n1 - 1) + vn2^2 / (n2 - 1))` (1 when that is `NaN`),
/// `p = 2 t_sf(|t|, df)`.
pub fn welch_t_test(mean1: f64, var1: f64, n1: f64, mean2: f64, var2: f64, n2: f64) -> TTest {
    let vn1 = var1 / n1;
    let vn2 = var2 / n2;
    let mut df = (vn1 + vn2) * (vn1 + vn2) / (vn1 * vn1 / (n1 - 1.0) + vn2 * vn2 / (n2 - 1.0));
    if df.is_nan() {
        df = 1.0;
    }
    let t = (mean1 - mean2) / (vn1 + vn2).sqrt();
    let p = t_two_sided(t, df);
    TTest { t, df, p }
}

/// Standard normal quantile (Acklam's rational approximation refined by one Halley step;
/// relative error below 1e-12).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239e0,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838e0,
        -2.549732539343734e0,
        4.374664141464968e0,
        2.938163982698783e0,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996e0,
        3.754408661907416e0,
    ];
    let pl = 0.02425;
    let x = if p < pl {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - pl {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Halley step on Φ(x) - p.
    let e = 0.5 * erfc_approx(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

fn erfc_approx(x: f64) -> f64 {
    // Φ via the crate's normal survival function: erfc(x) = 2 Φ(-x √2).
    2.0 * normal_sf(x * std::f64::consts::SQRT_2)
}

// F distribution

/// `P(F > f)` for `F ~ F(df1, df2)` (`df2 = inf`: chi-square `df1 f` on `df1`), as R's
/// `pf(f, df1, df2, lower.tail = FALSE)`.
pub fn f_sf(f: f64, df1: f64, df2: f64) -> f64 {
    if f.is_nan() || df1.is_nan() || df2.is_nan() {
        return f64::NAN;
    }
    if f <= 0.0 {
        return 1.0;
    }
    if f.is_infinite() {
        return 0.0;
    }
    if df2.is_infinite() {
        return gamma_q(df1 / 2.0, df1 * f / 2.0);
    }
    if df1 * f > df2 {
        beta_inc(df2 / 2.0, df1 / 2.0, df2 / (df2 + df1 * f))
    } else {
        1.0 - beta_inc(df1 / 2.0, df2 / 2.0, df1 * f / (df2 + df1 * f))
    }
}

/// `P(F <= f)` for `F ~ F(df1, df2)`, as R's `pf(f, df1, df2)`.
pub fn f_cdf(f: f64, df1: f64, df2: f64) -> f64 {
    if f <= 0.0 {
        return 0.0;
    }
    if df2.is_infinite() {
        return gamma_p(df1 / 2.0, df1 * f / 2.0);
    }
    if df1 * f > df2 {
        1.0 - beta_inc(df2 / 2.0, df1 / 2.0, df2 / (df2 + df1 * f))
    } else {
        beta_inc(df1 / 2.0, df2 / 2.0, df1 * f / (df2 + df1 * f))
    }
}

/// Density of `F(df1, df2)` (`df2 = inf`: `df1` times the chi-square density at `df1 x`).
pub fn f_density(x: f64, df1: f64, df2: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let a = df1 / 2.0;
    if df2.is_infinite() {
        // dgamma(x, shape = df1/2, scale = 2/df1)
        let lg = a * a.ln() + (a - 1.0) * x.ln() - a * x - ln_gamma(a);
        return lg.exp();
    }
    let b = df2 / 2.0;
    let l = a * (df1 / df2).ln() + (a - 1.0) * x.ln()
        - (a + b) * (df1 * x / df2).ln_1p()
        - ln_beta(a, b);
    l.exp()
}

/// Quantile of `F(df1, df2)` at lower-tail probability `p`, by bisection on `log f` to full
/// precision; R's `qf` switches to the chi-square quantile for `df2 > 4e5` (when
/// `df1 <= df2`), and so do we.
pub fn f_quantile(p: f64, df1: f64, df2: f64) -> f64 {
    let df2 = if df1 <= df2 && df2 > 4e5 {
        f64::INFINITY
    } else {
        df2
    };
    let (mut lo, mut hi) = (-700.0f64, 700.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f_cdf(mid.exp(), df1, df2) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-16 * mid.abs().max(1.0) {
            break;
        }
    }
    (0.5 * (lo + hi)).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::{close, reference};

    #[test]
    fn normal_sf_symmetry_and_center() {
        assert_eq!(normal_sf(0.0), 0.5);
        for z in [0.3, 1.0, 2.7, 6.0] {
            assert!(close(normal_sf(z) + normal_sf(-z), 1.0, 1e-14));
        }
        assert_eq!(normal_sf(f64::INFINITY), 0.0);
        assert!(normal_sf(f64::NAN).is_nan());
    }

    #[test]
    fn t_sf_limits() {
        // df = 1 is the Cauchy distribution: sf(t) = 1/2 - atan(t)/pi.
        for t in [0.5f64, 1.0, 3.0, 100.0] {
            let want = 0.5 - t.atan() / std::f64::consts::PI;
            assert!(close(t_sf(t, 1.0), want, 1e-12), "{t}");
        }
        assert_eq!(t_sf(0.0, 5.0), 0.5);
        assert!(close(t_sf(4.0, 1e12), normal_sf(4.0), 1e-6));
    }

    #[test]
    fn normal_sf_matches_scipy() {
        let rows = reference("stats_normal.csv");
        assert!(rows.len() > 15);
        for r in rows {
            let got = normal_sf(r[0]);
            assert!(
                close(got, r[1], 1e-12),
                "sf({}) = {got}, scipy {}",
                r[0],
                r[1]
            );
        }
    }

    #[test]
    fn t_sf_matches_scipy() {
        let rows = reference("stats_t.csv");
        assert!(rows.len() > 50);
        for r in rows {
            let got = t_sf(r[0], r[1]);
            // scipy underflows to 0 a little earlier or later than we do
            if r[2] < 1e-300 {
                assert!(got < 1e-290, "t = {}, df = {}: {got}", r[0], r[1]);
                continue;
            }
            assert!(
                close(got, r[2], 1e-10),
                "t = {}, df = {}: {got}, scipy {}",
                r[0],
                r[1],
                r[2]
            );
        }
    }

    #[test]
    fn welch_zero_variances() {
        let r = welch_t_test(1.0, 0.0, 5.0, 1.0, 0.0, 7.0);
        assert!(r.t.is_nan() && r.p.is_nan() && r.df == 1.0);
        let r = welch_t_test(2.0, 0.0, 5.0, 1.0, 0.0, 7.0);
        assert!(r.t.is_infinite() && r.p == 0.0);
    }

    #[test]
    fn f_distribution_round_trips() {
        for (d1, d2) in [(4.0, 10.0), (1.0, 2.5), (2.0, 12.0), (6.0, f64::INFINITY)] {
            for p in [0.05, 0.5, 0.9, 0.99] {
                let q = f_quantile(p, d1, d2);
                assert!(close(f_cdf(q, d1, d2), p, 1e-12), "{d1} {d2} {p}");
                assert!(close(f_sf(q, d1, d2), 1.0 - p, 1e-11), "{d1} {d2} {p}");
            }
        }
        // scipy.stats.f.ppf(0.99, 2, 4) = 18, f.ppf(0.99, 2, 12) = 6.926608140191301.
        assert!((f_quantile(0.99, 2.0, 4.0) - 18.0).abs() < 1e-9);
        assert!((f_quantile(0.99, 2.0, 12.0) - 6.926_608_140_191_301).abs() < 1e-8);
        // The density integrates to the distribution function (midpoint rule on [0, 3]).
        let h = 1e-4;
        let integral: f64 = (0..30_000)
            .map(|i| f_density((i as f64 + 0.5) * h, 4.0, 10.0) * h)
            .sum();
        assert!((integral - f_cdf(3.0, 4.0, 10.0)).abs() < 1e-7);
    }
}
