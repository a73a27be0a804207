//! Mean bins of the dispersion flavors, with pandas' and numpy's arithmetic: `pd.cut`'s equal
//! widths (`Seurat`) and percentile edges (`CellRanger`).

use crate::error::{Error, Result};

/// Bin codes of `pd.cut(x, n_bins)` (equal width, right-closed, first edge lowered by 0.1 %
/// of the range). All values are finite here.
pub(super) fn equal_width_bins(x: &[f64], n_bins: usize) -> Vec<usize> {
    if x.is_empty() {
        return Vec::new();
    }
    let mut mn = x.iter().copied().fold(f64::INFINITY, f64::min);
    let mut mx = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut edges: Vec<f64>;
    if mn == mx {
        let adj = |v: f64| if v != 0.0 { 0.001 * v.abs() } else { 0.001 };
        mn -= adj(mn);
        mx += adj(mx);
        edges = linspace(mn, mx, n_bins + 1);
    } else {
        edges = linspace(mn, mx, n_bins + 1);
        edges[0] -= (mx - mn) * 0.001;
    }
    x.iter().map(|&v| cut_code(&edges, v)).collect()
}

/// `np.linspace(start, stop, num)` with its arithmetic: `i * step + start`, last = stop.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(l) = v.last_mut() {
        *l = stop;
    }
    v
}

/// `searchsorted(edges, v, side="left") - 1`, clamped to a valid bin.
fn cut_code(edges: &[f64], v: f64) -> usize {
    let k = edges.partition_point(|&e| e < v);
    k.saturating_sub(1).min(edges.len() - 2)
}

/// Bin codes for `CellRanger`: edges `[-inf, percentiles 10, 15, ..., 100, inf]`.
pub(super) fn percentile_bins(x: &[f64]) -> Result<Vec<usize>> {
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let mut s = x.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let mut edges = vec![f64::NEG_INFINITY];
    for q in (10..105).step_by(5) {
        edges.push(percentile_sorted(&s, q as f64));
    }
    edges.push(f64::INFINITY);
    if edges.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::data(
            "highly_variable_genes",
            "cell_ranger: mean percentiles are not distinct (pandas raises the same error)",
        ));
    }
    Ok(x.iter().map(|&v| cut_code(&edges, v)).collect())
}

/// `np.percentile(x, q)` with linear interpolation and numpy's `_lerp`.
fn percentile_sorted(s: &[f64], q: f64) -> f64 {
    let n = s.len();
    let virt = q / 100.0 * (n - 1) as f64;
    let lo = virt.floor();
    let t = virt - lo;
    let lo = lo as usize;
    let hi = (lo + 1).min(n - 1);
    let (a, b) = (s[lo], s[hi]);
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pandas_cut_and_percentiles() {
        // pd.cut([0, 1, 2, 3, 4], 4).codes == [0, 0, 1, 2, 3]
        assert_eq!(
            equal_width_bins(&[0.0, 1.0, 2.0, 3.0, 4.0], 4),
            vec![0, 0, 1, 2, 3]
        );
        // np.percentile([1, 2, 3, 4], 10) == 1.3
        assert!((percentile_sorted(&[1.0, 2.0, 3.0, 4.0], 10.0) - 1.3).abs() < 1e-12);
        assert_eq!(percentile_sorted(&[1.0, 2.0, 3.0, 4.0], 100.0), 4.0);
        assert_eq!(linspace(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }
}
