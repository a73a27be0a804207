//! Order statistics as R computes them: median, type-7 quantiles, order and average ranks.

/// Median of `x` (mean of the two middle values for an even count, as R's `median` and NumPy's
/// `median`); `NaN` when empty.
pub fn median(x: &[f64]) -> f64 {
    let mut s = x.to_vec();
    median_in_place(&mut s)
}

/// [`median`] that sorts `v` in place instead of copying it.
pub fn median_in_place(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// R's default (type 7) quantile at probability `prob` in `[0, 1]` of sorted, non-empty data:
/// linear interpolation between the order statistics at `h = (n - 1) prob`.
pub fn quantile_sorted(sorted: &[f64], prob: f64) -> f64 {
    let n = sorted.len();
    let h = (n - 1) as f64 * prob;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = h - lo as f64;
    sorted[lo] + frac * (sorted[hi] - sorted[lo])
}

/// Stable ascending order (R's `order`): the indices that sort `x`.
pub fn order(x: &[f64]) -> Vec<usize> {
    let mut o: Vec<usize> = (0..x.len()).collect();
    o.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    o
}

/// Ranks, 1-based, ties given their average rank (R's `rank(ties.method = "average")`).
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let o = order(x);
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < o.len() {
        let mut j = i;
        while j + 1 < o.len() && x[o[j + 1]] == x[o[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &o[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistics_follow_r() {
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), 2.0);
        assert!(median(&[]).is_nan());
        // R: quantile(c(1, 2, 4, 10), 0.75) = 5.5
        assert!((quantile_sorted(&[1.0, 2.0, 4.0, 10.0], 0.75) - 5.5).abs() < 1e-12);
        assert_eq!(order(&[3.0, 1.0, 3.0, 2.0]), vec![1, 3, 0, 2]);
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
    }
}
