//! Randomized subspace iteration ([`super::Solver::Randomized`]) with its Ritz-value stopping
//! rule, and the Rayleigh-Ritz step it shares with the block Krylov solver.

use std::ops::Range;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::operator::{Acc, Operator};
use super::vectors::{cols_to_rows, normal_vec, orthonormalize, rows_times, rows_to_cols};
use crate::error::{Error, Result};

/// Returns `(sigma, loadings p x k, embedding n x k)`, row-major.
pub(super) type Svd = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Relative floor of the power-iteration stopping test: Ritz values below `RITZ_FLOOR * theta_1`
/// are compared in absolute terms (`f32` products do not resolve them relatively).
pub(super) const RITZ_FLOOR: f64 = 1e-6;

/// The `k` largest Ritz values of `A^T A` on the span of the orthonormal columns `v` (`p x l`,
/// column-major), given `w = A^T A v` (`p x l`, row-major): eigenvalues of the symmetric part
/// of `v^T w`, largest first. Sequential product and eigen-solver, so independent of the
/// thread count.
pub(super) fn ritz_values(v: &[Vec<f64>], w: &[f64], p: usize, k: usize) -> Result<Vec<f64>> {
    let l = v.len();
    let vm = faer::Mat::<f64>::from_fn(p, l, |j, a| v[a][j]);
    let wm = faer::MatRef::from_row_major_slice(w, p, l);
    let mut vw = faer::Mat::<f64>::zeros(l, l);
    faer::linalg::matmul::matmul(
        vw.as_mut(),
        faer::Accum::Replace,
        vm.transpose(),
        wm,
        1.0,
        faer::Par::Seq,
    );
    crate::cpu::clear_upper_simd_state_here();
    let h = faer::Mat::<f64>::from_fn(l, l, |a, b| 0.5 * (vw[(a, b)] + vw[(b, a)]));
    let par = faer::Par::Seq;
    let mut s = faer::diag::Diag::<f64>::zeros(l);
    let mut mem =
        faer::dyn_stack::MemBuffer::new(faer::linalg::evd::self_adjoint_evd_scratch::<f64>(
            l,
            faer::linalg::evd::ComputeEigenvectors::No,
            par,
            Default::default(),
        ));
    let res = faer::linalg::evd::self_adjoint_evd(
        h.as_ref(),
        s.as_mut(),
        None,
        par,
        faer::dyn_stack::MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|e| {
        Error::data(
            "pca",
            format!("eigenvalues of the Ritz matrix failed: {e:?}"),
        )
    });
    crate::cpu::clear_upper_simd_state_here();
    res?;
    let mut vals: Vec<f64> = s.column_vector().iter().copied().collect();
    vals.sort_by(|a, b| b.total_cmp(a));
    vals.truncate(k);
    Ok(vals)
}

/// The stopping test of [`Solver::Randomized`]: every one of the `k` Ritz values changed by at
/// most `tol * max(theta_i, RITZ_FLOOR * theta_1)`.
pub(super) fn ritz_converged(prev: &[f64], cur: &[f64], tol: f64) -> bool {
    let floor = RITZ_FLOOR * cur.first().copied().unwrap_or(0.0).max(0.0);
    prev.iter()
        .zip(cur)
        .all(|(&a, &b)| (b - a).abs() <= tol * b.max(floor))
}

/// One block's part of the lower triangle of `Y^T Y` (`Y`: rows x `l`, row-major),
/// accumulated row by row; the blocks are merged by the fixed tree ([`Operator::sums`]).
pub(super) fn gram_lower(y: &[f64], rows: Range<usize>, l: usize) -> Vec<f64> {
    let mut acc = vec![0.0f64; l * l];
    for i in rows {
        let r = &y[i * l..(i + 1) * l];
        for a in 0..l {
            let ra = r[a];
            for (g, &rb) in acc[a * l..a * l + a + 1].iter_mut().zip(&r[..=a]) {
                *g += ra * rb;
            }
        }
    }
    acc
}

/// Returns the decomposition and the number of applications of `A^T A`.
pub(super) fn randomized_svd(
    op: &Operator<'_>,
    k: usize,
    n_oversamples: usize,
    n_power_iter: usize,
    tol: f64,
    seed: u64,
) -> Result<(Svd, usize)> {
    let (n, p) = (op.n, op.p);
    let l = (k + n_oversamples).min(op.n_total.min(p));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<Vec<f64>> = (0..l).map(|_| normal_vec(p, &mut rng)).collect();
    orthonormalize(&mut v, &mut rng);
    let mut y = vec![0.0f64; n * l];
    let mut prev: Option<Vec<f64>> = None;
    let mut applications = 0;
    for it in 0..=n_power_iter {
        op.mul::<f32>(&cols_to_rows(&v, p), l, &mut y);
        let z = op.tmul::<f32>(&y, l)?;
        applications += 1;
        // no test after the last allowed application: nothing would be saved
        let converged = if tol > 0.0 && it < n_power_iter {
            let theta = ritz_values(&v, &z, p, k)?;
            let done = prev
                .as_deref()
                .is_some_and(|pr| ritz_converged(pr, &theta, tol));
            prev = Some(theta);
            done
        } else {
            false
        };
        v = rows_to_cols(&z, p, l);
        orthonormalize(&mut v, &mut rng);
        if converged {
            break;
        }
    }
    let vr = cols_to_rows(&v, p);
    Ok((
        rayleigh_ritz::<f64>(op, &vr, l, k, &mut y, gram_lower)?,
        applications,
    ))
}

/// Rayleigh-Ritz step on the orthonormal basis `vr` (`p x l`, row-major): `Y = A V` (into `y`,
/// rows held x `l`, accumulated in `T`), the eigen-decomposition `W Theta W^T` of the Gram
/// matrix `Y^T Y` (`gram(y, rows, l)` per block of rows, summed along the fixed tree over every
/// row; its lower triangle is read; the fixed-order reduction and a sequential eigen-solver
/// keep it independent of the thread count), and the `k` leading pairs:
/// `sigma_c = sqrt(theta_c)`, loadings `V W` and embedding `Y W` (`= U Sigma`, rows held).
pub(super) fn rayleigh_ritz<T: Acc>(
    op: &Operator<'_>,
    vr: &[f64],
    l: usize,
    k: usize,
    y: &mut [f64],
    gram: impl Fn(&[f64], Range<usize>, usize) -> Vec<f64> + Sync,
) -> Result<Svd> {
    let n = op.n;
    let p = op.p;
    op.mul::<T>(vr, l, y);
    let y = &*y;
    let gram = op.sums.reduce(|rows| gram(y, rows, l))?;
    let g = faer::Mat::<f64>::from_fn(l, l, |a, b| {
        if b <= a {
            gram[a * l + b]
        } else {
            gram[b * l + a]
        }
    });
    let evd = g
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| Error::data("pca", format!("eigen-decomposition failed: {e:?}")));
    crate::cpu::clear_upper_simd_state_here();
    let evd = evd?;
    let vals: Vec<f64> = (0..l).map(|i| evd.S().column_vector()[i]).collect();
    let mut order: Vec<usize> = (0..l).collect();
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
    let w = faer::Mat::<f64>::from_fn(l, k, |r, c| evd.U()[(r, order[c])]);
    let sigma = order[..k]
        .iter()
        .map(|&i| vals[i].max(0.0).sqrt())
        .collect();
    let loadings = rows_times(vr, p, l, w.as_ref(), k);
    let embedding = rows_times(y, n, l, w.as_ref(), k);
    Ok((sigma, loadings, embedding))
}
