//! Spatial FDR of Milo (miloR's `graphSpatialFDR`, weighting `"k-distance"`): a weighted
//! Benjamini-Hochberg adjustment in which each neighbourhood counts with weight
//! `w_i = 1 / d_i`, `d_i` the distance from its index cell to its k-th nearest neighbour, so
//! neighbourhoods in dense regions (which overlap more) count less (Lun, Richard and Marioni
//! 2017, cydar; Dann et al. 2022).
//!
//! With the p-values sorted increasingly (ties in index order, as R's `order`) and the weights
//! in the same order: `q_(i) = min_{j >= i} (sum(w) p_(j) / sum_{l <= j} w_(l))`, capped at 1.
//! An infinite weight (distance 0) becomes 1, as in miloR. `NaN` p-values are left out and get
//! a `NaN` spatial FDR.

/// Weighted BH adjustment of `p` with weights `1 / kth_distance` (see the module docs).
pub fn spatial_fdr(p: &[f64], kth_distance: &[f64]) -> Vec<f64> {
    let keep: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    let mut out = vec![f64::NAN; p.len()];
    let w: Vec<f64> = keep
        .iter()
        .map(|&i| {
            let w = 1.0 / kth_distance.get(i).copied().unwrap_or(f64::NAN);
            if w.is_infinite() {
                1.0
            } else {
                w
            }
        })
        .collect();
    let mut o: Vec<usize> = (0..keep.len()).collect();
    o.sort_by(|&a, &b| p[keep[a]].total_cmp(&p[keep[b]]));
    let total: f64 = w.iter().sum();
    let mut cum = 0.0;
    let raw: Vec<f64> = o
        .iter()
        .map(|&k| {
            cum += w[k];
            total * p[keep[k]] / cum
        })
        .collect();
    let mut running = f64::INFINITY;
    for (r, &k) in raw.iter().zip(&o).rev() {
        running = running.min(*r);
        out[keep[k]] = running.min(1.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_give_benjamini_hochberg() {
        let p = [0.01, 0.04, 0.03, 0.5, 0.2];
        let q = spatial_fdr(&p, &[2.0; 5]);
        let bh = crate::stats::benjamini_hochberg(&p);
        for (a, b) in q.iter().zip(&bh) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn nan_p_values_stay_nan() {
        let q = spatial_fdr(&[0.01, f64::NAN, 0.5], &[1.0, 1.0, 0.0]);
        assert!(q[1].is_nan());
        assert!(q[0] <= q[2]);
    }
}
