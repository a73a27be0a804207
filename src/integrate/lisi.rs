//! Local inverse Simpson's index (LISI; Korsunsky et al. 2019, "Fast, sensitive and accurate
//! integration of single-cell data with Harmony", Nature Methods 16:1289), as the `lisi` R
//! package and `harmonypy.compute_lisi`.
//!
//! For each cell, its `floor(3 · perplexity)` nearest other cells (Euclidean) get the weights
//! `p_j ∝ exp(-β d_j)`, where `β` is found by bisection (at most 50 steps, from `β = 1`, doubling
//! or halving until bracketed) so that the entropy `H = ln Σ e^{-β d} + β Σ d p` is within
//! `1e-5` of `ln(perplexity)`; the LISI is `1 / Σ_c (Σ_{j: label c} p_j)²`, the effective number
//! of labels around the cell (1 to the number of labels). As in the references, a cell whose
//! weights all vanish (entropy exactly 0) gets `1 / (Σ_c P_c² - 1)`.
//!
//! The neighbours come from [`crate::neighbors::knn`] with its default method: exact up to
//! [`crate::neighbors::AUTO_EXACT_MAX_CELLS`] cells, NN-descent (approximate) beyond; the
//! references use exact search (`harmonypy` 2.x) or an approximate one (`RANN` in R).

use super::dense_codes;
use crate::error::{Error, Result};
use crate::neighbors::{knn, KnnOptions};
use ndarray::ArrayView2;
use rayon::prelude::*;

const TOL: f64 = 1e-5;
const MAX_TRIES: usize = 50;

/// Integration LISI (Korsunsky et al. 2019): the inverse Simpson's index of `labels` over each
/// cell's `floor(3 · perplexity)` nearest neighbours weighted by a Gaussian kernel of the given
/// perplexity (30 in the references), as the `lisi` R package and `harmonypy`'s
/// `compute_lisi`; returns one value per cell (see the module docs).
///
/// Errors: `perplexity` not finite or below 1 (`InvalidOption` `lisi.perplexity`); an empty or
/// non-finite embedding, labels of the wrong length, or no more cells than
/// `floor(3 · perplexity)` (`InvalidData`).
pub fn lisi(embedding: ArrayView2<f32>, labels: &[u32], perplexity: f64) -> Result<Vec<f64>> {
    let ctx = "lisi";
    if !perplexity.is_finite() || perplexity < 1.0 {
        return Err(Error::option(
            "lisi.perplexity",
            format!("must be finite and at least 1, got {perplexity}"),
        ));
    }
    let (n, d) = embedding.dim();
    if n == 0 || d == 0 {
        return Err(Error::data(
            ctx,
            format!("the embedding is empty ({n} cells x {d} components)"),
        ));
    }
    if labels.len() != n {
        return Err(Error::data(
            ctx,
            format!("{} labels for {n} cells", labels.len()),
        ));
    }
    let k = (3.0 * perplexity).floor() as usize;
    if k + 1 > n {
        return Err(Error::data(
            ctx,
            format!(
                "{n} cells: perplexity {perplexity} uses {k} neighbours per cell, so at least {} \
                 cells are needed",
                k + 1
            ),
        ));
    }
    // knn reports non-finite values, naming the cell.
    let nn = knn(
        embedding,
        &KnnOptions {
            n_neighbors: k + 1,
            ..Default::default()
        },
    )
    .map_err(|e| Error::data(ctx, e.to_string()))?;
    let (codes, distinct) = dense_codes(labels);
    let m = distinct.len();
    let log_u = perplexity.ln();
    let out: Vec<f64> = (0..n)
        .into_par_iter()
        .map_init(
            || (vec![0.0f64; k], vec![0.0f64; m]),
            |(p, mass), i| {
                let idx = &nn.row_indices(i)[1..];
                let dist = &nn.row_distances(i)[1..];
                simpson(dist, idx, &codes, log_u, p, mass)
            },
        )
        .collect();
    Ok(out)
}

/// `(H, p)` for one `β`: writes the normalized weights into `p` and returns `H` (0 when every
/// weight vanishes, then `p` is all zero).
fn entropy(dist: &[f32], beta: f64, p: &mut [f64]) -> f64 {
    let mut sum = 0.0;
    let mut dsum = 0.0;
    for (pv, &dv) in p.iter_mut().zip(dist) {
        let e = (-(dv as f64) * beta).exp();
        *pv = e;
        sum += e;
        dsum += dv as f64 * e;
    }
    if sum == 0.0 {
        p.iter_mut().for_each(|v| *v = 0.0);
        return 0.0;
    }
    p.iter_mut().for_each(|v| *v /= sum);
    sum.ln() + beta * dsum / sum
}

/// The inverse Simpson's index of one cell from its neighbours' distances and labels.
fn simpson(
    dist: &[f32],
    idx: &[u32],
    codes: &[u32],
    log_u: f64,
    p: &mut [f64],
    mass: &mut [f64],
) -> f64 {
    let mut beta = 1.0f64;
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut h = entropy(dist, beta, p);
    let mut diff = h - log_u;
    for _ in 0..MAX_TRIES {
        if diff.abs() < TOL {
            break;
        }
        if diff > 0.0 {
            lo = beta;
            beta = if hi.is_finite() {
                (beta + hi) / 2.0
            } else {
                beta * 2.0
            };
        } else {
            hi = beta;
            beta = if lo.is_finite() {
                (beta + lo) / 2.0
            } else {
                beta / 2.0
            };
        }
        h = entropy(dist, beta, p);
        diff = h - log_u;
    }
    mass.iter_mut().for_each(|v| *v = 0.0);
    for (&j, &pv) in idx.iter().zip(p.iter()) {
        if let Some(c) = codes.get(j as usize) {
            if let Some(mv) = mass.get_mut(*c as usize) {
                *mv += pv;
            }
        }
    }
    let mut s: f64 = mass.iter().map(|v| v * v).sum();
    if h == 0.0 {
        s -= 1.0;
    }
    1.0 / s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn mixed_labels_give_near_two_and_separated_labels_give_one() {
        // A 20 x 20 grid with every point twice (0.01 apart), once per label (mixed); the
        // split labelling gives the two halves of the grid, placed far apart, one label each.
        let mut x = Vec::new();
        let mut mixed = Vec::new();
        let mut split = Vec::new();
        for a in 0..20 {
            for b in 0..20 {
                for copy in 0..2u32 {
                    let far = if a < 10 { 0.0 } else { 1000.0 };
                    x.push(a as f32 + far + 0.01 * copy as f32);
                    x.push(b as f32);
                    mixed.push(copy);
                    split.push(u32::from(a >= 10));
                }
            }
        }
        let x = Array2::from_shape_vec((800, 2), x).unwrap();
        let m = lisi(x.view(), &mixed, 10.0).unwrap();
        let s = lisi(x.view(), &split, 10.0).unwrap();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        // Each cell's twin (the closest cell) has the other label, so the mass leans that way.
        assert!(mean(&m) > 1.5, "mixed {}", mean(&m));
        assert!(m.iter().all(|&v| (1.0..=2.0 + 1e-12).contains(&v)), "mixed");
        assert!(s.iter().all(|&v| (v - 1.0).abs() < 1e-9), "split");
        assert!(lisi(x.view(), &mixed[..10], 10.0).is_err());
        assert!(lisi(x.view(), &mixed, 0.5).is_err());
        assert!(lisi(x.view(), &mixed, 300.0).is_err());
    }
}
