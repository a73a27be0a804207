//! The `SeuratV3` flavor: loess-stabilized variances of the clipped raw counts, ranked per
//! batch.

use super::moments::mean_var;
use super::{Flavor, Hvg, HvgOptions};
use crate::error::Result;
use crate::loess::{loess, LoessOptions};
use crate::sparse::CsrMatrix;

pub(super) fn seurat_v3(
    x: &CsrMatrix,
    groups: Option<&[Vec<usize>]>,
    opts: &HvgOptions,
) -> Result<Hvg> {
    let n_top = opts.n_top_genes.unwrap_or(2000);
    let n_genes = x.n_cols();
    let (means, variances, _) = mean_var(x, None, |v| v);
    let all: Vec<Vec<usize>>;
    let groups: &[Vec<usize>] = match groups {
        Some(g) => g,
        None => {
            all = vec![(0..x.n_rows()).collect()];
            &all
        }
    };
    let single = groups.len() == 1 && groups[0].len() == x.n_rows();
    let mut norm_vars: Vec<Vec<f64>> = Vec::with_capacity(groups.len());
    for rows in groups {
        let r = if single { None } else { Some(rows.as_slice()) };
        let (mean, var, _) = mean_var(x, r, |v| v);
        let nc: Vec<usize> = (0..n_genes).filter(|&g| var[g] > 0.0).collect();
        let lx: Vec<f64> = nc.iter().map(|&g| mean[g].log10()).collect();
        let ly: Vec<f64> = nc.iter().map(|&g| var[g].log10()).collect();
        let fit = loess(
            &lx,
            &ly,
            &LoessOptions {
                span: opts.span,
                ..Default::default()
            },
        )?;
        let mut est = vec![0f64; n_genes];
        for (k, &g) in nc.iter().enumerate() {
            est[g] = fit[k];
        }
        let reg_std: Vec<f64> = est.iter().map(|e| 10f64.powf(*e).sqrt()).collect();
        let n = rows.len() as f64;
        let vmax = n.sqrt();
        let clip: Vec<f64> = (0..n_genes).map(|g| reg_std[g] * vmax + mean[g]).collect();
        // clipped sums, sequential over rows as Scanpy's (non-parallel) kernel
        let sums = col_reduce_clipped(x, r, &clip);
        let nv: Vec<f64> = (0..n_genes)
            .map(|g| {
                let (s, ss) = (sums[g][0], sums[g][1]);
                (1.0 / ((n - 1.0) * reg_std[g] * reg_std[g]))
                    * ((n * mean[g] * mean[g]) + ss - 2.0 * s * mean[g])
            })
            .collect();
        norm_vars.push(nv);
    }
    // ranks per batch: 0 = most variable; exact ties by gene index
    let mut ranks: Vec<Vec<f64>> = Vec::with_capacity(norm_vars.len());
    for nv in &norm_vars {
        let mut order: Vec<usize> = (0..n_genes).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (-nv[a], -nv[b]);
            x.partial_cmp(&y)
                .unwrap_or_else(|| x.is_nan().cmp(&y.is_nan()))
        });
        let mut r = vec![0f64; n_genes];
        for (k, &g) in order.iter().enumerate() {
            r[g] = k as f64;
        }
        ranks.push(r);
    }
    let mut nbatches = vec![0u32; n_genes];
    let mut median_rank = vec![f64::NAN; n_genes];
    let mut vnorm = vec![0f64; n_genes];
    let mut buf: Vec<f64> = Vec::with_capacity(ranks.len());
    for g in 0..n_genes {
        buf.clear();
        for r in &ranks {
            if r[g] < n_top as f64 {
                buf.push(r[g]);
            }
        }
        nbatches[g] = buf.len() as u32;
        if !buf.is_empty() {
            buf.sort_by(|a, b| a.total_cmp(b));
            let m = buf.len();
            median_rank[g] = if m % 2 == 1 {
                buf[m / 2]
            } else {
                ((buf[m / 2 - 1] as f32 + buf[m / 2] as f32) / 2.0) as f64
            };
        }
        vnorm[g] = norm_vars.iter().map(|v| v[g]).sum::<f64>() / norm_vars.len() as f64;
        if variances[g] <= 0.0 {
            // No variance: never selected, so no rank either.
            nbatches[g] = 0;
            median_rank[g] = f64::NAN;
        }
    }
    let mut order: Vec<usize> = (0..n_genes).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (median_rank[a], median_rank[b]);
        let c = match (ra.is_nan(), rb.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => ra.total_cmp(&rb),
        };
        c.then_with(|| nbatches[b].cmp(&nbatches[a]))
    });
    let mut hv = vec![false; n_genes];
    for &g in order.iter().filter(|&&g| variances[g] > 0.0).take(n_top) {
        hv[g] = true;
    }
    let batched = groups.len() > 1 || !single;
    Ok(Hvg {
        flavor: Flavor::SeuratV3,
        means,
        dispersions: None,
        dispersions_norm: None,
        variances: Some(variances),
        variances_norm: Some(vnorm),
        highly_variable_rank: Some(median_rank),
        highly_variable_nbatches: if batched { Some(nbatches) } else { None },
        highly_variable_intersection: None,
        highly_variable: hv,
    })
}

/// Per column `[sum min(x, clip), sum min(x, clip)^2]` in `f64` over `rows` (fixed-order
/// blocks as [`col_reduce`](crate::qc::col_reduce)).
fn col_reduce_clipped(x: &CsrMatrix, rows: Option<&[usize]>, clip: &[f64]) -> Vec<[f64; 2]> {
    use rayon::prelude::*;
    let n_cols = x.n_cols();
    let n = rows.map_or(x.n_rows(), |r| r.len());
    let block = n.div_ceil(32).max(1);
    let parts: Vec<Vec<[f64; 2]>> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![[0f64; 2]; n_cols];
            for i in b * block..((b + 1) * block).min(n) {
                let r = rows.map_or(i, |rs| rs[i]);
                let (idx, val) = x.row(r);
                for (&c, &v) in idx.iter().zip(val) {
                    let e = (v as f64).min(clip[c as usize]);
                    let a = &mut acc[c as usize];
                    a[0] += e;
                    a[1] += e * e;
                }
            }
            acc
        })
        .collect();
    let mut out = vec![[0f64; 2]; n_cols];
    for p in parts {
        for (o, q) in out.iter_mut().zip(p) {
            o[0] += q[0];
            o[1] += q[1];
        }
    }
    out
}
