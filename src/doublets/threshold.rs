//! scikit-image's `threshold_minimum`, the automatic doublet threshold.

use crate::error::{Error, Result};

/// Threshold between the two modes of the histogram of `values`: scikit-image's
/// `threshold_minimum` (Glasbey 1993, "An analysis of histogram-based thresholding
/// algorithms", CVGIP 55:532; Prewitt and Mendelsohn 1966), which Scanpy's Scrublet uses.
///
/// The histogram has 256 equal bins over `[min, max]` (numpy's `histogram` rules: the last bin
/// is closed; `min == max` widens the range by 0.5 each side). It is smoothed by a 3-point
/// moving average (edges reflected: scipy's `uniform_filter1d(size=3)`, a running sum in
/// `f64` stored in `f32`, as there) until it has fewer than 3 local maxima (a maximum is where
/// the histogram starts to decrease after having increased; plateaus count once), at most
/// 10,000 times. With exactly two maxima the threshold is the centre of the lowest bin between
/// them (the first one on ties).
///
/// Errors (`Error::InvalidData`): no values or a non-finite value, a histogram that never
/// becomes bimodal (one maximum left), or 10,000 smoothings without reaching two maxima.
pub fn threshold_minimum(values: &[f64]) -> Result<f64> {
    const NBINS: usize = 256;
    const MAX_ITER: usize = 10_000;
    let ctx = "threshold_minimum";
    if values.is_empty() {
        return Err(Error::data(ctx, "no values"));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(Error::data(ctx, "non-finite value"));
    }
    let mut first = values.iter().copied().fold(f64::INFINITY, f64::min);
    let mut last = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if first == last {
        first -= 0.5;
        last += 0.5;
    }
    // numpy.linspace(first, last, NBINS + 1)
    let step = (last - first) / NBINS as f64;
    let mut edges: Vec<f64> = (0..=NBINS).map(|i| i as f64 * step + first).collect();
    edges[NBINS] = last;
    let mut hist = vec![0f32; NBINS];
    let denom = last - first;
    for &v in values {
        let mut b = ((v - first) / denom * NBINS as f64) as usize;
        if b >= NBINS {
            b = NBINS - 1;
        }
        if v < edges[b] && b > 0 {
            b -= 1;
        } else if v >= edges[b + 1] && b != NBINS - 1 {
            b += 1;
        }
        hist[b] += 1.0;
    }
    let centers: Vec<f64> = (0..NBINS)
        .map(|i| (edges[i] + edges[i + 1]) / 2.0)
        .collect();

    let mut smooth = hist;
    let mut maxima = Vec::new();
    let mut last_iter = 0;
    for it in 0..MAX_ITER {
        last_iter = it;
        smooth = uniform3(&smooth);
        maxima = local_maxima(&smooth);
        if maxima.len() < 3 {
            break;
        }
    }
    if maxima.len() != 2 {
        return Err(Error::data(
            ctx,
            format!(
                "the histogram of simulated doublet scores never has two maxima ({} left \
                 after {} smoothings): give a threshold",
                maxima.len(),
                last_iter + 1
            ),
        ));
    }
    if last_iter == MAX_ITER - 1 {
        return Err(Error::data(
            ctx,
            "maximum number of histogram smoothings reached",
        ));
    }
    let (a, b) = (maxima[0], maxima[1]);
    let mut best = a;
    for i in a..=b {
        if smooth[i] < smooth[best] {
            best = i;
        }
    }
    Ok(centers[best])
}

/// scipy's `uniform_filter1d(x, 3)` (mode `reflect`) on `f32` values: a running sum in `f64`.
fn uniform3(x: &[f32]) -> Vec<f32> {
    let n = x.len();
    let at = |i: isize| -> f64 {
        let i = i.clamp(0, n as isize - 1) as usize;
        x[i] as f64
    };
    let mut out = Vec::with_capacity(n);
    let mut tmp = (at(-1) + at(0)) + at(1);
    tmp /= 3.0;
    out.push(tmp as f32);
    for l in 1..n as isize {
        tmp += (at(l + 1) - at(l - 2)) / 3.0;
        out.push(tmp as f32);
    }
    out
}

/// scikit-image's `find_local_maxima_idx`: positions where the histogram starts to decrease
/// after rising (or from the start).
fn local_maxima(h: &[f32]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rising = true;
    for i in 0..h.len().saturating_sub(1) {
        if rising {
            if h[i + 1] < h[i] {
                rising = false;
                out.push(i);
            }
        } else if h[i + 1] > h[i] {
            rising = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_of_two_separated_groups_lies_between_them() {
        let mut v: Vec<f64> = (0..200).map(|i| 0.1 + 0.0005 * (i % 40) as f64).collect();
        v.extend((0..100).map(|i| 0.6 + 0.001 * (i % 30) as f64));
        let t = threshold_minimum(&v).unwrap();
        assert!(t > 0.12 && t < 0.6, "{t}");
        assert!(threshold_minimum(&[]).is_err());
        assert!(threshold_minimum(&[1.0, f64::NAN]).is_err());
        // a single value: one maximum only
        assert!(threshold_minimum(&[0.3; 50]).is_err());
    }

    #[test]
    fn uniform3_matches_direct_means() {
        let x = [1.0f32, 4.0, 0.0, 2.0, 8.0];
        let y = uniform3(&x);
        let want = [2.0, 5.0 / 3.0, 2.0, 10.0 / 3.0, 6.0];
        for (a, b) in y.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6);
        }
        assert_eq!(local_maxima(&[0.0, 1.0, 1.0, 0.5, 2.0, 0.0]), vec![2, 4]);
    }
}
