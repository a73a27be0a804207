//! Special functions and a root finder shared by the statistics modules (`limma`, `milo`,
//! `deseq`):
//! - [`digamma`], [`trigamma`], [`tetragamma`]: the polygamma functions `psi`, `psi'`, `psi''`
//!   for `x > 0` (the recurrence `psi(x) = psi(x + 1) - 1/x` up to `x >= 10`, then the
//!   asymptotic series in the Bernoulli numbers, Abramowitz and Stegun 6.3.18 and 6.4.11);
//! - [`trigamma_inverse`]: limma's `trigammaInverse` (Smyth 2004), the Newton iteration that
//!   solves `psi'(y) = x`;
//! - [`zeroin`]: Brent's root finder as R's `R_zeroin2` (Brent 1973, *Algorithms for
//!   Minimization without Derivatives*, ch. 4), the engine of R's `uniroot`.
//!
//! The F distribution built on [`crate::stats::beta_inc`] is in [`crate::stats`].

/// The digamma function `psi(x) = d/dx ln Gamma(x)` for `x > 0` (recurrence to `x >= 10`,
/// then the asymptotic series; relative error about `1e-15`). `NaN` for `x <= 0`.
pub fn digamma(x: f64) -> f64 {
    polygamma(
        x,
        f64::INFINITY,
        |x| -(1.0 / x),
        |x, acc| {
            let r = 1.0 / (x * x);
            let series = r
                * (1.0 / 12.0
                    - r * (1.0 / 120.0
                        - r * (1.0 / 252.0
                            - r * (1.0 / 240.0 - r * (1.0 / 132.0 - r * 691.0 / 32760.0)))));
            acc + x.ln() - 0.5 / x - series
        },
    )
}

/// The trigamma function `psi'(x)` for `x > 0` (recurrence and asymptotic series).
pub fn trigamma(x: f64) -> f64 {
    polygamma(
        x,
        0.0,
        |x| 1.0 / (x * x),
        |x, acc| {
            let r = 1.0 / (x * x);
            // 1/x + 1/(2x^2) + sum B_2k / x^(2k+1)
            let series = 1.0 / x
                + 0.5 * r
                + (r / x)
                    * (1.0 / 6.0
                        - r * (1.0 / 30.0
                            - r * (1.0 / 42.0
                                - r * (1.0 / 30.0 - r * (5.0 / 66.0 - r * 691.0 / 2730.0)))));
            acc + series
        },
    )
}

/// The tetragamma function `psi''(x)` for `x > 0` (R's `psigamma(x, 2)`).
pub fn tetragamma(x: f64) -> f64 {
    polygamma(
        x,
        0.0,
        |x| -(2.0 / (x * x * x)),
        |x, acc| {
            let r = 1.0 / (x * x);
            // -1/x^2 - 1/x^3 - sum (2k+1) B_2k / x^(2k+2)
            let series = -r
                - r / x
                - r * r
                    * (0.5
                        - r * (1.0 / 6.0
                            - r * (1.0 / 6.0
                                - r * (3.0 / 10.0 - r * (5.0 / 6.0 - r * 691.0 / 210.0)))));
            acc + series
        },
    )
}

/// The frame of [`digamma`], [`trigamma`] and [`tetragamma`]: `NaN` for NaN or `x <= 0`,
/// `at_infinity` for an infinite `x`; else the recurrence `acc += step(x); x += 1` (from
/// `acc = 0`) while `x < 10`, then `series(x, acc)`, the asymptotic series at the shifted `x`
/// added to the recurrence's sum.
fn polygamma(
    x: f64,
    at_infinity: f64,
    step: impl Fn(f64) -> f64,
    series: impl Fn(f64, f64) -> f64,
) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return at_infinity;
    }
    let mut x = x;
    let mut acc = 0.0;
    while x < 10.0 {
        acc += step(x);
        x += 1.0;
    }
    series(x, acc)
}

/// Inverse of the trigamma function: the `y > 0` with `trigamma(y) = x`, by limma's Newton
/// iteration (`trigammaInverse`: start `0.5 + 1/x`, stop when the relative step is below
/// `1e-8`; `1/sqrt(x)` above `1e7`, `1/x` below `1e-6`). `NaN` for negative or NaN `x`.
pub fn trigamma_inverse(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x > 1e7 {
        return 1.0 / x.sqrt();
    }
    if x < 1e-6 {
        return 1.0 / x;
    }
    let mut y = 0.5 + 1.0 / x;
    for _ in 0..=50 {
        let tri = trigamma(y);
        let dif = tri * (1.0 - tri / x) / tetragamma(y);
        y += dif;
        if -dif / y < 1e-8 {
            break;
        }
    }
    y
}

/// Brent's root finder as R's `R_zeroin2` (the engine of `uniroot`) on `[ax, bx]`, given the
/// function values `fa`, `fb` at both ends (of opposite signs): stops when the bracket is
/// within `2 eps |b| + tol / 2`, after `max_iter` steps, or at an exact zero. Unlike R, a
/// non-finite function value ends the search at the last finite point.
pub fn zeroin(
    ax: f64,
    bx: f64,
    fa: f64,
    fb: f64,
    mut f: impl FnMut(f64) -> f64,
    tol: f64,
    max_iter: usize,
) -> f64 {
    let (mut a, mut b, mut fa, mut fb) = (ax, bx, fa, fb);
    let (mut c, mut fc) = (a, fa);
    if fa == 0.0 {
        return a;
    }
    if fb == 0.0 {
        return b;
    }
    for _ in 0..=max_iter {
        let prev_step = b - a;
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol_act = 2.0 * f64::EPSILON * b.abs() + tol / 2.0;
        let mut new_step = (c - b) / 2.0;
        if new_step.abs() <= tol_act || fb == 0.0 {
            return b;
        }
        if prev_step.abs() >= tol_act && fa.abs() > fb.abs() {
            let cb = c - b;
            let (mut p, mut q);
            if a == c {
                let t1 = fb / fa;
                p = cb * t1;
                q = 1.0 - t1;
            } else {
                let qq = fa / fc;
                let t1 = fb / fc;
                let t2 = fb / fa;
                p = t2 * (cb * qq * (qq - t1) - (b - a) * (t1 - 1.0));
                q = (qq - 1.0) * (t1 - 1.0) * (t2 - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if p < 0.75 * cb * q - (tol_act * q).abs() / 2.0 && p < (prev_step * q / 2.0).abs() {
                new_step = p / q;
            }
        }
        if new_step.abs() < tol_act {
            new_step = if new_step > 0.0 { tol_act } else { -tol_act };
        }
        a = b;
        fa = fb;
        b += new_step;
        fb = f(b);
        if !fb.is_finite() {
            return a;
        }
        if (fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0) {
            c = a;
            fc = fa;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs())
    }

    #[test]
    fn polygamma_known_values() {
        // psi(1) = -gamma (Euler-Mascheroni), psi(1/2) = -gamma - 2 ln 2, psi'(1) = pi^2 / 6,
        // psi'(1/2) = pi^2 / 2, psi''(1) = -2 zeta(3).
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-13);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-13);
        let pi2_6 = std::f64::consts::PI.powi(2) / 6.0;
        assert!((trigamma(1.0) - pi2_6).abs() < 1e-13);
        assert!((trigamma(0.5) - 3.0 * pi2_6).abs() < 1e-12);
        assert!((tetragamma(1.0) + 2.0 * 1.202_056_903_159_594_2).abs() < 1e-11);
        assert!(digamma(0.0).is_nan() && trigamma(-1.0).is_nan() && tetragamma(f64::NAN).is_nan());
    }

    #[test]
    fn polygamma_recurrences_and_inverse() {
        // psi(x + 1) = psi(x) + 1/x, psi'(x + 1) = psi'(x) - 1/x^2, psi''(x + 1) = psi''(x) + 2/x^3,
        // across the switch to the asymptotic series at 10.
        for x in [0.3, 2.5, 9.9, 10.1] {
            assert!(close(digamma(x + 1.0), digamma(x) + 1.0 / x, 1e-13));
            assert!(close(trigamma(x + 1.0), trigamma(x) - 1.0 / (x * x), 1e-13));
            assert!(close(
                tetragamma(x + 1.0),
                tetragamma(x) + 2.0 / (x * x * x),
                1e-12
            ));
        }
        for x in [1e-5, 0.01, 0.3, 1.0, 4.0, 100.0, 1e5] {
            assert!(close(trigamma(trigamma_inverse(x)), x, 1e-8), "{x}");
        }
        for y in [0.3, 1.0, 3.7, 40.0] {
            assert!(close(trigamma_inverse(trigamma(y)), y, 1e-7), "{y}");
        }
        assert!(trigamma_inverse(-1.0).is_nan());
    }

    #[test]
    fn zeroin_finds_roots() {
        let r = zeroin(0.0, 2.0, -2.0, 2.0, |x| x * x - 2.0, 1e-12, 1000);
        assert!((r - 2f64.sqrt()).abs() < 1e-11);
        let r = zeroin(
            -3.0,
            1.0,
            (-3f64).exp() - 0.5,
            1f64.exp() - 0.5,
            |x| x.exp() - 0.5,
            1e-10,
            200,
        );
        assert!((r - 0.5f64.ln()).abs() < 1e-9);
        // A non-finite value stops the search at the last finite point.
        let r = zeroin(0.0, 2.0, -1.0, 1.0, |_| f64::NAN, 1e-10, 200);
        assert!(r.is_finite());
    }
}
