//! The largest eigenpairs of a symmetric operator by thick-restart Lanczos (Wu and Simon 2000,
//! "Thick-restart Lanczos method for large symmetric eigenvalue problems", SIAM J. Matrix
//! Anal. Appl. 22(2)), the solver of the spectral start.
//!
//! With an orthonormal basis `V = [v_0 .. v_{m-1}]` of a Krylov space and
//! `A V = V T + beta_m v_m e_m^T`, the Ritz pairs `(theta_i, V y_i)` of the `m x m` projection
//! `T` have residual norms `|beta_m y_i[m-1]|`. A pair is converged when that norm is at most
//! `tol |theta_i|` (ARPACK's test, which `scipy.sparse.linalg.eigsh` and so umap-learn's
//! spectral layout use). Until the `k` largest pairs are converged, the basis restarts from the
//! `keep` largest Ritz vectors and `v_m`: `T` becomes the arrowhead matrix
//! `diag(theta) + s e_keep^T + e_keep s^T` with `s_i = beta_m y_i[m-1]`, and the Lanczos steps
//! go on from `v_m`. Every new vector is orthogonalized against the whole basis twice
//! (classical Gram-Schmidt, twice), so the basis stays orthonormal to rounding.
//!
//! Each sum over the rows is taken over fixed blocks of [`BLOCK`] rows and the block sums are
//! added in block order, and every other product is row by row: the result has the same bits
//! whatever the number of threads.

use faer::Mat;
use rayon::prelude::*;

/// Rows per block of the sums over the rows.
const BLOCK: usize = 4096;

/// Basis vectors of a Krylov cycle (at least `2 k + 2`). On the pipeline's 50,000-cell graph
/// (three pairs, tolerance `1e-8`): 0.46 s with 40, 0.50 s with 24, 0.42 s at `1e-4` with 64.
const MAX_BASIS: usize = 40;

/// `out = A x` for the operator whose eigenpairs are sought.
pub(super) type Apply<'a> = dyn FnMut(&[f64], &mut [f64]) + 'a;

/// The `k` largest eigenvalues (descending) and their unit eigenvectors, each with its largest
/// absolute entry positive (the first on ties), or `None` when they are not converged after
/// `max_restarts` restarts or the Krylov space of `v0` has fewer than `k` dimensions.
pub(super) fn largest_eigenpairs(
    apply: &mut Apply<'_>,
    n: usize,
    k: usize,
    v0: &[f64],
    tol: f64,
    max_restarts: usize,
) -> Option<(Vec<f64>, Vec<Vec<f64>>)> {
    let m = MAX_BASIS.max(2 * k + 2).min(n);
    if k == 0 || k > m || v0.len() != n {
        return None;
    }
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(m + 1);
    let mut first = v0.to_vec();
    let norm = dot(&first, &first).sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return None;
    }
    first.iter_mut().for_each(|x| *x /= norm);
    basis.push(first);
    // the projection, row-major m x m
    let mut t = vec![0.0f64; m * m];
    let mut kept = 0;
    let mut w = vec![0.0f64; n];
    for _ in 0..=max_restarts {
        let mut beta = 0.0;
        for j in kept..m {
            apply(&basis[j], &mut w);
            let h = orthogonalize(&mut w, &basis);
            t[j * m + j] = h[j];
            beta = dot(&w, &w).sqrt();
            if !beta.is_finite() {
                return None;
            }
            let scale = h.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            if beta <= 1e-12 * scale.max(f64::MIN_POSITIVE) {
                // the Krylov space is invariant: its Ritz pairs are exact
                return ritz(&t, m, j + 1, &basis, k, 0.0, tol, true).map(|(v, x, _)| (v, x));
            }
            w.iter_mut().for_each(|x| *x /= beta);
            basis.push(std::mem::replace(&mut w, vec![0.0f64; n]));
            if j + 1 < m {
                t[(j + 1) * m + j] = beta;
                t[j * m + j + 1] = beta;
            }
        }
        let (vals, vecs, restart) = ritz(&t, m, m, &basis, k, beta, tol, false)?;
        if restart.is_none() {
            return Some((vals, vecs));
        }
        let (theta, s, new_basis) = restart?;
        kept = theta.len();
        let last = basis.pop()?;
        basis = new_basis;
        basis.push(last);
        t.iter_mut().for_each(|x| *x = 0.0);
        for i in 0..kept {
            t[i * m + i] = theta[i];
            t[i * m + kept] = s[i];
            t[kept * m + i] = s[i];
        }
    }
    None
}

/// What [`ritz`] gives: the `k` largest Ritz values and vectors (when converged), and
/// otherwise the values, coupling and basis vectors to restart from.
type Ritz = (
    Vec<f64>,
    Vec<Vec<f64>>,
    Option<(Vec<f64>, Vec<f64>, Vec<Vec<f64>>)>,
);

/// The Ritz pairs of the leading `d x d` part of `t` (row-major, `m` wide) on the first `d`
/// basis vectors; converged pairs are returned as the result, otherwise the restart data.
#[allow(clippy::too_many_arguments)]
fn ritz(
    t: &[f64],
    m: usize,
    d: usize,
    basis: &[Vec<f64>],
    k: usize,
    beta: f64,
    tol: f64,
    invariant: bool,
) -> Option<Ritz> {
    if d < k {
        return None;
    }
    let small = Mat::<f64>::from_fn(d, d, |r, c| t[r * m + c]);
    let evd = small.self_adjoint_eigen(faer::Side::Lower);
    crate::cpu::clear_upper_simd_state_here();
    let evd = evd.ok()?;
    let vals: Vec<f64> = (0..d).map(|i| evd.S().column_vector()[i]).collect();
    if vals.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]).then(a.cmp(&b)));
    let u = evd.U();
    let converged = invariant
        || order[..k]
            .iter()
            .all(|&i| (beta * u[(d - 1, i)]).abs() <= tol * vals[i].abs());
    let n = basis[0].len();
    let combine = |cols: &[usize]| -> Vec<Vec<f64>> {
        // row-major n x cols.len(), each row independent
        let c = cols.len();
        let coef: Vec<f64> = (0..d)
            .flat_map(|r| cols.iter().map(move |&j| u[(r, j)]))
            .collect();
        let mut rows = vec![0.0f64; n * c];
        rows.par_chunks_mut(BLOCK * c)
            .enumerate()
            .for_each(|(b, chunk)| {
                for (li, row) in chunk.chunks_exact_mut(c).enumerate() {
                    let r = b * BLOCK + li;
                    for (q, y) in basis[..d].iter().zip(coef.chunks_exact(c)) {
                        let v = q[r];
                        for (x, &yc) in row.iter_mut().zip(y) {
                            *x += yc * v;
                        }
                    }
                }
            });
        (0..c)
            .map(|j| rows.iter().skip(j).step_by(c).copied().collect())
            .collect()
    };
    if converged {
        let mut vecs = combine(&order[..k]);
        for v in vecs.iter_mut() {
            orient(v);
        }
        return Some((order[..k].iter().map(|&i| vals[i]).collect(), vecs, None));
    }
    let keep = (k + (d - k) / 2).min(d - 1);
    let cols = &order[..keep];
    let theta = cols.iter().map(|&i| vals[i]).collect();
    let s = cols.iter().map(|&i| beta * u[(d - 1, i)]).collect();
    Some((Vec::new(), Vec::new(), Some((theta, s, combine(cols)))))
}

/// Makes the largest absolute entry of `v` positive (the first on ties).
fn orient(v: &mut [f64]) {
    let mut best = 0usize;
    for (i, x) in v.iter().enumerate() {
        if x.abs() > v[best].abs() {
            best = i;
        }
    }
    if v.get(best).is_some_and(|&x| x < 0.0) {
        v.iter_mut().for_each(|x| *x = -*x);
    }
}

/// Removes from `w` its components along the orthonormal `basis` (classical Gram-Schmidt,
/// twice) and returns them (`basis^T w` before the removal, to rounding).
fn orthogonalize(w: &mut [f64], basis: &[Vec<f64>]) -> Vec<f64> {
    let mut h = block_dots(w, basis);
    subtract(w, basis, &h);
    let h2 = block_dots(w, basis);
    subtract(w, basis, &h2);
    for (a, b) in h.iter_mut().zip(&h2) {
        *a += b;
    }
    h
}

/// `basis^T w`, summed over fixed row blocks in block order.
fn block_dots(w: &[f64], basis: &[Vec<f64>]) -> Vec<f64> {
    let parts: Vec<Vec<f64>> = w
        .par_chunks(BLOCK)
        .enumerate()
        .map(|(b, wb)| {
            let r0 = b * BLOCK;
            basis
                .iter()
                .map(|q| dot(wb, &q[r0..r0 + wb.len()]))
                .collect()
        })
        .collect();
    let mut h = vec![0.0f64; basis.len()];
    for p in &parts {
        for (a, b) in h.iter_mut().zip(p) {
            *a += b;
        }
    }
    h
}

/// `w -= basis h`, row by row.
fn subtract(w: &mut [f64], basis: &[Vec<f64>], h: &[f64]) {
    w.par_chunks_mut(BLOCK).enumerate().for_each(|(b, wb)| {
        let (r0, len) = (b * BLOCK, wb.len());
        for (q, &c) in basis.iter().zip(h) {
            for (x, &v) in wb.iter_mut().zip(&q[r0..r0 + len]) {
                *x -= c * v;
            }
        }
    });
}

/// Dot product in four interleaved sums (a fixed order).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            s[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A random sparse symmetric matrix (dense storage) with eigenvalues spread in [0, 1] and
    /// a cluster of three close ones at the top.
    fn test_matrix(n: usize) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut a = vec![0.0f64; n * n];
        for i in 0..n {
            a[i * n + i] = rng.gen_range(0.0..0.8);
        }
        a[0] = 1.0;
        a[n + 1] = 0.999;
        a[2 * n + 2] = 0.998;
        for _ in 0..3 * n {
            let (i, j) = (rng.gen_range(0..n), rng.gen_range(0..n));
            if i != j {
                let v = rng.gen_range(-0.01..0.01);
                a[i * n + j] += v;
                a[j * n + i] += v;
            }
        }
        a
    }

    fn times(a: &[f64], n: usize, x: &[f64], out: &mut [f64]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = (0..n).map(|j| a[i * n + j] * x[j]).sum();
        }
    }

    #[test]
    fn largest_pairs_are_those_of_the_dense_decomposition() {
        let n = 400;
        let a = test_matrix(n);
        let mut apply = |x: &[f64], out: &mut [f64]| times(&a, n, x, out);
        let v0 = vec![1.0 / (n as f64).sqrt(); n];
        let (vals, vecs) = largest_eigenpairs(&mut apply, n, 3, &v0, 1e-10, 300).unwrap();
        let dense = Mat::<f64>::from_fn(n, n, |r, c| a[r * n + c]);
        let evd = dense.self_adjoint_eigen(faer::Side::Lower).unwrap();
        for (i, (&val, vec)) in vals.iter().zip(&vecs).enumerate() {
            let want = evd.S().column_vector()[n - 1 - i];
            assert!((val - want).abs() < 1e-9, "eigenvalue {i}: {val} vs {want}");
            // the eigenvector up to its sign
            let d: f64 = (0..n).map(|r| vec[r] * evd.U()[(r, n - 1 - i)]).sum();
            assert!(
                (d.abs() - 1.0).abs() < 1e-6,
                "eigenvector {i}: |cos| = {}",
                d.abs()
            );
            let mut av = vec![0.0; n];
            apply(vec, &mut av);
            let res: f64 = av.iter().zip(vec).map(|(x, y)| (x - val * y).powi(2)).sum();
            assert!(res.sqrt() < 1e-8, "residual {i}: {}", res.sqrt());
        }
    }

    #[test]
    fn invariant_start_gives_its_pairs_or_none() {
        let n = 100;
        let diag: Vec<f64> = (0..n).map(|i| 1.0 / (1.0 + i as f64)).collect();
        let mut apply = |x: &[f64], out: &mut [f64]| {
            for i in 0..n {
                out[i] = diag[i] * x[i];
            }
        };
        // the start spans two eigenvectors only: fewer than the three asked
        let mut v0 = vec![0.0; n];
        v0[3] = 1.0;
        v0[5] = 1.0;
        assert!(largest_eigenpairs(&mut apply, n, 3, &v0, 1e-8, 50).is_none());
        let (vals, vecs) = largest_eigenpairs(&mut apply, n, 2, &v0, 1e-8, 50).unwrap();
        assert!((vals[0] - 0.25).abs() < 1e-12 && (vals[1] - 1.0 / 6.0).abs() < 1e-12);
        assert!((vecs[0][3] - 1.0).abs() < 1e-12 && (vecs[1][5] - 1.0).abs() < 1e-12);
        assert!(largest_eigenpairs(&mut apply, n, 2, &vec![0.0; n], 1e-8, 50).is_none());
    }
}
