//! Augmented implicitly restarted Lanczos bidiagonalization ([`super::Solver::Lanczos`]).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::operator::Operator;
use super::randomized::Svd;
use super::vectors::{axpy, dot, normal_vec, orth_normalize};
use crate::error::{Error, Result};

pub(super) fn irlba(
    op: &Operator<'_>,
    k: usize,
    extra_work: usize,
    tol: f64,
    max_restarts: usize,
    seed: u64,
) -> Result<(Svd, usize)> {
    let (n, p) = (op.n, op.p);
    let m = (k + extra_work.max(1)).min(op.n_total.min(p));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(m);
    let mut ws: Vec<Vec<f64>> = Vec::with_capacity(m);
    let mut start = normal_vec(p, &mut rng);
    let nrm = dot(&start, &start).sqrt();
    start.iter_mut().for_each(|x| *x /= nrm);
    vs.push(start);
    let mut bmat = vec![0.0f64; m * m]; // row-major m x m
    let mut kk = 0usize;
    let mut wbuf = vec![0.0f64; n];
    for restart in 0..=max_restarts {
        // Lanczos bidiagonalization from column kk to m - 1.
        let mut j = kk;
        op.mul::<f64>(&vs[j], 1, &mut wbuf);
        let mut w = wbuf.clone();
        let mut alpha = orth_normalize(&mut w, &ws[..j], &mut rng);
        bmat[j * m + j] = alpha;
        ws.truncate(j);
        ws.push(w);
        let (f, beta) = loop {
            let mut f = op.tmul::<f64>(&ws[j], 1)?;
            axpy(&mut f, -alpha, &vs[j]);
            let beta = orth_normalize(&mut f, &vs[..=j], &mut rng);
            if j + 1 == m {
                break (f, beta);
            }
            let vnext = f;
            vs.truncate(j + 1);
            vs.push(vnext);
            bmat[j * m + j + 1] = beta;
            op.mul::<f64>(&vs[j + 1], 1, &mut wbuf);
            let mut w = wbuf.clone();
            axpy(&mut w, -beta, &ws[j]);
            alpha = orth_normalize(&mut w, &ws[..=j], &mut rng);
            ws.push(w);
            j += 1;
            bmat[j * m + j] = alpha;
        };
        let b = faer::Mat::<f64>::from_fn(m, m, |r, c| bmat[r * m + c]);
        let svd = b
            .thin_svd()
            .map_err(|e| Error::data("pca", format!("SVD of the bidiagonal failed: {e:?}")));
        crate::cpu::clear_upper_simd_state_here();
        let svd = svd?;
        let s: Vec<f64> = (0..m).map(|i| svd.S().column_vector()[i]).collect();
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        let ub = svd.U();
        let vb = svd.V();
        let smax = s[order[0]].max(f64::MIN_POSITIVE);
        let converged = order[..k]
            .iter()
            .all(|&i| (beta * ub[(m - 1, i)]).abs() <= tol * smax)
            || m == op.n_total.min(p);
        let kept = if converged || restart == max_restarts {
            k
        } else {
            k.min(m - 1)
        };
        // Ritz vectors: V Vb[:, i], W Ub[:, i].
        let new_v: Vec<Vec<f64>> = order[..kept]
            .par_iter()
            .map(|&i| {
                let mut out = vec![0.0; p];
                for (t, vt) in vs.iter().enumerate() {
                    axpy(&mut out, vb[(t, i)], vt);
                }
                out
            })
            .collect();
        let new_w: Vec<Vec<f64>> = order[..kept]
            .par_iter()
            .map(|&i| {
                let mut out = vec![0.0; n];
                for (t, wt) in ws.iter().enumerate() {
                    axpy(&mut out, ub[(t, i)], wt);
                }
                out
            })
            .collect();
        if converged || restart == max_restarts {
            let sigma: Vec<f64> = order[..k].iter().map(|&i| s[i]).collect();
            let mut loadings = vec![0.0; p * k];
            let mut embedding = vec![0.0; n * k];
            for c in 0..k {
                for r in 0..p {
                    loadings[r * k + c] = new_v[c][r];
                }
                for r in 0..n {
                    embedding[r * k + c] = new_w[c][r] * sigma[c];
                }
            }
            return Ok(((sigma, loadings, embedding), restart + 1));
        }
        // Thick restart: keep `kept` Ritz pairs, continue from the residual direction.
        bmat.iter_mut().for_each(|x| *x = 0.0);
        for (r, &i) in order[..kept].iter().enumerate() {
            bmat[r * m + r] = s[i];
            bmat[r * m + kept] = beta * ub[(m - 1, i)];
        }
        vs = new_v;
        ws = new_w;
        // `f` is already a unit vector orthogonal to the old basis, hence to the Ritz vectors;
        // one more pass keeps it orthogonal to them in floating point.
        let mut vnext = f;
        orth_normalize(&mut vnext, &vs, &mut rng);
        vs.push(vnext);
        kk = kept;
    }
    Err(Error::data("pca", "Lanczos iteration did not finish"))
}
