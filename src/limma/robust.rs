//! The robust prior of [`squeeze_var`](super::squeeze_var) (limma's `fitFDistRobustly`,
//! Phipson et al. 2016): Winsorized moments of the log-variances matched to those of a
//! Winsorized `log F`, and per-feature prior degrees of freedom shrunk for outliers.

use super::squeeze::fit_f_dist;
use crate::error::{Error, Result};
use crate::special::zeroin;
use crate::stats;
use crate::stats::{average_ranks, f_density, f_quantile, f_sf, median, order, quantile_sorted};

pub(super) struct RobustFit {
    pub(super) scale: f64,
    df2: f64,
    pub(super) df2_shrunk: Vec<f64>,
}

/// limma's `fitFDistRobustly` without a covariate (Phipson et al. 2016): Winsorized moments of
/// `log x` matched to those of a Winsorized `log F(df1, df2)` (Gauss-Legendre quadrature with
/// 128 nodes, root by Brent's method as R's `uniroot` with `tol = 1e-8`), then per-feature
/// shrunk `df2` from the outlier probabilities.
pub(super) fn fit_f_dist_robustly(x: &[f64], df1: &[f64], winsor: [f64; 2]) -> Result<RobustFit> {
    let n = x.len();
    if n == 2 {
        let f = fit_f_dist(x, df1, None)?;
        return Ok(RobustFit {
            scale: f.scale[0],
            df2: f.df2,
            df2_shrunk: vec![f.df2; n],
        });
    }
    let ok: Vec<bool> = (0..n)
        .map(|i| !x[i].is_nan() && df1[i].is_finite() && df1[i] > 1e-6)
        .collect();
    if ok.iter().any(|o| !o) {
        // limma refits on the usable features; those left out get the unshrunk df2.
        let idx: Vec<usize> = (0..n).filter(|&i| ok[i]).collect();
        if idx.len() < 2 {
            return Err(Error::data(
                "squeeze_var",
                "fewer than two features with usable variances for the robust fit",
            ));
        }
        let xs: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
        let ds: Vec<f64> = idx.iter().map(|&i| df1[i]).collect();
        let sub = fit_f_dist_robustly(&xs, &ds, winsor)?;
        let mut df2_shrunk = vec![sub.df2; n];
        for (k, &i) in idx.iter().enumerate() {
            df2_shrunk[i] = sub.df2_shrunk[k];
        }
        return Ok(RobustFit {
            scale: sub.scale,
            df2: sub.df2,
            df2_shrunk,
        });
    }
    robust_core(x, df1, winsor).map(|(scale, df2, df2_shrunk)| RobustFit {
        scale,
        df2,
        df2_shrunk,
    })
}

/// The robust fit on usable features: returns `(scale, df2, df2_shrunk)`.
fn robust_core(x: &[f64], df1: &[f64], winsor: [f64; 2]) -> Result<(f64, f64, Vec<f64>)> {
    let n = x.len();
    let nf = n as f64;
    let df1v = df1[0];
    if df1
        .iter()
        .any(|&d| (d - df1v).abs() > 1e-14 * df1v.abs().max(1.0))
    {
        return Err(Error::data(
            "squeeze_var",
            "robust estimation needs equal residual degrees of freedom for every feature",
        ));
    }
    let m = median(x);
    if m.is_nan() || m <= 0.0 {
        return Err(Error::data(
            "squeeze_var",
            "robust estimation: most variances are zero or negative",
        ));
    }
    let x: Vec<f64> = x
        .iter()
        .map(|&v| if v < m * 1e-12 { m * 1e-12 } else { v })
        .collect();
    let nonrobust = fit_f_dist(&x, df1, None)?;
    let nr_scale = nonrobust.scale[0];
    if winsor.iter().all(|&w| w < 1.0 / nf) {
        return Ok((nr_scale, nonrobust.df2, vec![nonrobust.df2; n]));
    }
    let z: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ztrend = trimmed_mean(&z, winsor[1]);
    let zresid: Vec<f64> = z.iter().map(|v| v - ztrend).collect();
    let mut sorted = zresid.clone();
    sorted.sort_by(f64::total_cmp);
    let q_lo = quantile_sorted(&sorted, winsor[0]);
    let q_hi = quantile_sorted(&sorted, 1.0 - winsor[1]);
    let zwins: Vec<f64> = zresid.iter().map(|v| v.max(q_lo).min(q_hi)).collect();
    let zwmean = zwins.iter().sum::<f64>() / nf;
    let zwvar = zwins
        .iter()
        .map(|v| (v - zwmean) * (v - zwmean))
        .sum::<f64>()
        / nf
        * nf
        / (nf - 1.0);
    let gl = gauss_legendre_unit(128);
    let moments = |df2: f64| winsorized_moments(df1v, df2, winsor, &gl);
    let mom_inf = moments(f64::INFINITY);
    let funval_inf = (zwvar / mom_inf.1).ln();
    let rank = average_ranks(&z);
    if funval_inf <= 0.0 {
        let ztc = ztrend + zwmean - mom_inf.0;
        let s20 = ztc.exp();
        let df_pooled = nf * df1v;
        let tail_p: Vec<f64> = z
            .iter()
            .map(|zi| stats::gamma_q(df1v / 2.0, (zi - ztc).exp() * df1v / 2.0))
            .collect();
        let mut shrunk = vec![f64::INFINITY; n];
        let mut any = false;
        for i in 0..n {
            let emp = (nf - rank[i] + 0.5) / nf;
            let pno = (tail_p[i] / emp).min(1.0);
            if pno < 1.0 {
                shrunk[i] = pno * df_pooled;
                any = true;
            }
        }
        if any {
            let o = order(&tail_p);
            let mut run = f64::NEG_INFINITY;
            for &i in &o {
                run = run.max(shrunk[i]);
                shrunk[i] = run;
            }
        }
        return Ok((s20, f64::INFINITY, shrunk));
    }
    if nonrobust.df2.is_infinite() {
        return Ok((nr_scale, nonrobust.df2, vec![nonrobust.df2; n]));
    }
    let linkfun = |v: f64| v / (1.0 + v);
    let linkinv = |v: f64| v / (1.0 - v);
    let fun = |u: f64| (zwvar / moments(linkinv(u)).1).ln();
    let rbx = linkfun(nonrobust.df2);
    let funval_low = fun(rbx);
    let df2 = if funval_low >= 0.0 {
        nonrobust.df2
    } else {
        linkinv(zeroin(rbx, 1.0, funval_low, funval_inf, fun, 1e-8, 1000))
    };
    let mom = moments(df2);
    let ztc = ztrend + zwmean - mom.0;
    let s20 = ztc.exp();
    let fstat: Vec<f64> = z.iter().map(|zi| (zi - ztc).exp()).collect();
    let log_tail_p: Vec<f64> = fstat.iter().map(|&f| f_sf(f, df1v, df2).ln()).collect();
    let rank_f = average_ranks(&fstat);
    let log_pno: Vec<f64> = (0..n)
        .map(|i| (log_tail_p[i] - ((nf - rank_f[i] + 0.5).ln() - nf.ln())).min(0.0))
        .collect();
    if log_pno.iter().any(|&v| v < 0.0) {
        let min_log_tail = log_tail_p.iter().copied().fold(f64::INFINITY, f64::min);
        let mut shrunk: Vec<f64>;
        if min_log_tail == f64::NEG_INFINITY {
            shrunk = log_pno.iter().map(|l| l.exp() * df2).collect();
        } else {
            let mut df2_out = 0.5f64.ln() / min_log_tail * df2;
            let fmax = fstat.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let new_log_tail = f_sf(fmax, df1v, df2_out).ln();
            df2_out *= 0.5f64.ln() / new_log_tail;
            shrunk = log_pno
                .iter()
                .map(|&l| l.exp() * df2 + (-l.exp_m1()) * df2_out)
                .collect();
        }
        let o = order(&log_tail_p);
        let mut ordered: Vec<f64> = o.iter().map(|&i| shrunk[i]).collect();
        let mut cum = 0.0;
        let mut imin = 0;
        let mut best = f64::INFINITY;
        for (k, v) in ordered.iter().enumerate() {
            cum += v;
            let mean = cum / (k + 1) as f64;
            if mean < best {
                best = mean;
                imin = k;
            }
        }
        for v in ordered.iter_mut().take(imin + 1) {
            *v = best;
        }
        let mut run = f64::NEG_INFINITY;
        for (k, &i) in o.iter().enumerate() {
            run = run.max(ordered[k]);
            shrunk[i] = run;
        }
        Ok((s20, df2, shrunk))
    } else {
        Ok((s20, df2, vec![df2; n]))
    }
}

/// Mean and variance of `log F(df1, df2)` Winsorized at the `winsor[0]` and `1 - winsor[1]`
/// quantiles (limma's `winsorizedMoments`).
fn winsorized_moments(
    df1: f64,
    df2: f64,
    winsor: [f64; 2],
    gl: &(Vec<f64>, Vec<f64>),
) -> (f64, f64) {
    let fq = [
        f_quantile(winsor[0], df1, df2),
        f_quantile(1.0 - winsor[1], df1, df2),
    ];
    let zq = [fq[0].ln(), fq[1].ln()];
    let q = [fq[0] / (1.0 + fq[0]), fq[1] / (1.0 + fq[1])];
    let q21 = q[1] - q[0];
    let (nodes, weights) = gl;
    let mut fz = Vec::with_capacity(nodes.len());
    for &g in nodes {
        let node = q[0] + q21 * g;
        let fnode = node / (1.0 - node);
        let f = f_density(fnode, df1, df2) / ((1.0 - node) * (1.0 - node));
        fz.push((f, fnode.ln()));
    }
    let m = q21
        * weights
            .iter()
            .zip(&fz)
            .map(|(w, (f, z))| w * f * z)
            .sum::<f64>()
        + zq[0] * winsor[0]
        + zq[1] * winsor[1];
    let v = q21
        * weights
            .iter()
            .zip(&fz)
            .map(|(w, (f, z))| w * f * (z - m) * (z - m))
            .sum::<f64>()
        + (zq[0] - m) * (zq[0] - m) * winsor[0]
        + (zq[1] - m) * (zq[1] - m) * winsor[1];
    (m, v)
}

/// Gauss-Legendre nodes and weights on `[0, 1]` (weights sum to 1), as statmod's
/// `gauss.quad.prob(n, dist = "uniform")`.
fn gauss_legendre_unit(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    let nf = n as f64;
    for i in 0..n.div_ceil(2) {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let kf = k as f64;
                let p2 = ((2.0 * kf - 1.0) * x * p1 - (kf - 1.0) * p0) / kf;
                p0 = p1;
                p1 = p2;
            }
            dp = nf * (x * p1 - p0) / (x * x - 1.0);
            let dx = p1 / dp;
            x -= dx;
            if dx.abs() < 1e-16 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        nodes[i] = (1.0 - x) / 2.0;
        nodes[n - 1 - i] = (1.0 + x) / 2.0;
        weights[i] = w / 2.0;
        weights[n - 1 - i] = w / 2.0;
    }
    (nodes, weights)
}

/// R's trimmed mean `mean(x, trim)`.
fn trimmed_mean(x: &[f64], trim: f64) -> f64 {
    let n = x.len();
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    if trim >= 0.5 {
        return median(x);
    }
    let lo = (n as f64 * trim).floor() as usize;
    let hi = n - lo;
    s[lo..hi].iter().sum::<f64>() / (hi - lo) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limma::close;

    #[test]
    fn quadrature() {
        let (nodes, weights) = gauss_legendre_unit(128);
        assert!(close(weights.iter().sum::<f64>(), 1.0, 1e-14));
        for k in [1, 5, 20, 60] {
            let s: f64 = nodes.iter().zip(&weights).map(|(x, w)| w * x.powi(k)).sum();
            assert!(close(s, 1.0 / (k as f64 + 1.0), 1e-13), "x^{k}");
        }
    }
}
