//! edgeR's TMM normalization factors (`calcNormFactors(method = "TMM")`).

use crate::stats::{average_ranks, quantile_sorted};
use ndarray::ArrayView2;

/// TMM normalization factors, as edgeR's `calcNormFactors(method = "TMM")` with its defaults
/// (`logratioTrim = 0.3`, `sumTrim = 0.05`, precision weighting, reference = the sample whose
/// upper-quartile ratio is closest to the mean one), scaled to a geometric mean of 1.
pub fn tmm_factors(counts: ArrayView2<f64>, lib_size: &[f64]) -> Vec<f64> {
    let ns = counts.ncols();
    let rows: Vec<usize> = (0..counts.nrows())
        .filter(|&g| counts.row(g).iter().any(|&v| v > 0.0))
        .collect();
    if rows.is_empty() || ns == 1 {
        return vec![1.0; ns];
    }
    let col = |j: usize| -> Vec<f64> { rows.iter().map(|&g| counts[[g, j]]).collect() };
    let f75: Vec<f64> = (0..ns)
        .map(|j| {
            let mut s = col(j);
            s.sort_by(f64::total_cmp);
            quantile_sorted(&s, 0.75) / lib_size[j]
        })
        .collect();
    let mut sorted = f75.clone();
    sorted.sort_by(f64::total_cmp);
    let med = quantile_sorted(&sorted, 0.5);
    let refc = if med < 1e-20 {
        let sums: Vec<f64> = (0..ns)
            .map(|j| col(j).iter().map(|v| v.sqrt()).sum())
            .collect();
        (0..ns).fold(0, |b, j| if sums[j] > sums[b] { j } else { b })
    } else {
        let mean = f75.iter().sum::<f64>() / ns as f64;
        (0..ns).fold(0, |b, j| {
            if (f75[j] - mean).abs() < (f75[b] - mean).abs() {
                j
            } else {
                b
            }
        })
    };
    let rcol = col(refc);
    let f: Vec<f64> = (0..ns)
        .map(|j| tmm_pair(&col(j), &rcol, lib_size[j], lib_size[refc]))
        .collect();
    let gm = (f.iter().map(|v| v.ln()).sum::<f64>() / ns as f64).exp();
    f.iter().map(|v| v / gm).collect()
}

/// edgeR's `.calcFactorTMM` for one sample against the reference.
fn tmm_pair(obs: &[f64], refr: &[f64], n_o: f64, n_r: f64) -> f64 {
    let (mut lr, mut ae, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for (&o, &r) in obs.iter().zip(refr) {
        let l = ((o / n_o) / (r / n_r)).log2();
        let a = ((o / n_o).log2() + (r / n_r).log2()) / 2.0;
        if l.is_finite() && a.is_finite() && a > -1e10 {
            lr.push(l);
            ae.push(a);
            v.push((n_o - o) / n_o / o + (n_r - r) / n_r / r);
        }
    }
    if lr.iter().fold(0.0f64, |m, x| m.max(x.abs())) < 1e-6 {
        return 1.0;
    }
    let n = lr.len() as f64;
    let lo_l = (n * 0.3).floor() + 1.0;
    let lo_s = (n * 0.05).floor() + 1.0;
    let (rl, ra) = (average_ranks(&lr), average_ranks(&ae));
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..lr.len() {
        if rl[i] >= lo_l && rl[i] <= n + 1.0 - lo_l && ra[i] >= lo_s && ra[i] <= n + 1.0 - lo_s {
            num += lr[i] / v[i];
            den += 1.0 / v[i];
        }
    }
    let f = num / den;
    if f.is_nan() {
        1.0
    } else {
        f.exp2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn tmm_of_proportional_samples_is_one() {
        let c = array![
            [10.0, 20.0, 30.0],
            [5.0, 10.0, 15.0],
            [0.0, 0.0, 0.0],
            [7.0, 14.0, 21.0]
        ];
        let lib = [22.0, 44.0, 66.0];
        for f in tmm_factors(c.view(), &lib) {
            assert!((f - 1.0).abs() < 1e-12);
        }
    }
}
