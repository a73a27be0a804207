//! One tested group's statistics from the accumulator rows: means and variances, the Wilcoxon
//! z-score and AUC or the Welch t statistic, p-values, their adjustment and the gene order.

use super::gene_rows::{Comparison, GeneRowLayout, Groups};
use super::{Correction, GroupMarkers, Method, RankGenesOptions};
use crate::stats;

/// Mean and unbiased variance from a count, a sum and a sum of squares, as Scanpy's
/// `_get_mean_var`: `var = (E[x^2] - mean^2) n / (n - 1)` (not rescaled when n = 1).
fn mean_var(n: f64, sum: f64, sumsq: f64) -> (f64, f64) {
    let mean = sum / n;
    let mut var = sumsq / n - mean * mean;
    if n != 1.0 {
        var *= n / (n - 1.0);
    }
    (mean, var)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn finish(
    acc: &[f64],
    w: usize,
    lay: GeneRowLayout,
    gi: &Groups,
    ci: usize,
    cmp: Comparison,
    n_cells: usize,
    n_genes: usize,
    opts: &RankGenesOptions,
) -> GroupMarkers {
    let ng = lay.n_groups;
    let g = cmp.g;
    let n1 = gi.sizes[g];
    let n2 = match cmp.other {
        None => n_cells - n1,
        Some(r) => gi.sizes[r],
    };
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let nf = n1f + n2f;
    let mut scores = vec![0f64; n_genes];
    let mut lfc = vec![0f64; n_genes];
    let mut pvals = vec![0f64; n_genes];
    let mut pct_in = vec![0f64; n_genes];
    let mut pct_out = vec![0f64; n_genes];
    let mut auc = if opts.method == Method::Wilcoxon {
        Some(vec![0f64; n_genes])
    } else {
        None
    };
    for j in 0..n_genes {
        let row = &acc[j * w..(j + 1) * w];
        let (nnz1, sum1, sq1) = (row[g], row[ng + g], row[2 * ng + g]);
        let (nnz2, sum2, sq2) = match cmp.other {
            Some(r) => (row[r], row[ng + r], row[2 * ng + r]),
            None => {
                let mut t = (0.0, 0.0, 0.0);
                for k in 0..ng {
                    t.0 += row[k];
                    t.1 += row[ng + k];
                    t.2 += row[2 * ng + k];
                }
                (t.0 - nnz1, t.1 - sum1, t.2 - sq1)
            }
        };
        let (m1, v1) = mean_var(n1f, sum1, sq1);
        let (m2, v2) = mean_var(n2f, sum2, sq2);
        pct_in[j] = nnz1 / n1f;
        pct_out[j] = nnz2 / n2f;
        lfc[j] = ((m1.exp_m1() + 1e-9) / (m2.exp_m1() + 1e-9)).log2();
        let (score, p) = match opts.method {
            Method::Wilcoxon => {
                let base = 3 * ng;
                let (r2, ties) = match cmp.other {
                    None => (row[base + g], row[base + lay.n_rank]),
                    Some(_) => (row[base + ci], row[base + lay.n_rank + ci]),
                };
                let rank_sum = r2 / 2.0;
                let tc = if opts.tie_correct {
                    1.0 - ties / (nf * nf * nf - nf)
                } else {
                    1.0
                };
                let sd = (tc * n1f * n2f * (nf + 1.0) / 12.0).sqrt();
                let mut z = (rank_sum - n1f * (nf + 1.0) / 2.0) / sd;
                if z.is_nan() {
                    z = 0.0;
                }
                if let Some(a) = auc.as_mut() {
                    a[j] = (rank_sum - n1f * (n1f + 1.0) / 2.0) / (n1f * n2f);
                }
                (z, stats::normal_two_sided(z))
            }
            Method::TTest | Method::TTestOverestimVar => {
                let n_other = if opts.method == Method::TTest {
                    n2f
                } else {
                    n1f
                };
                // Scanpy passes standard deviations: a (rounding) negative variance gives NaN.
                let (s1, s2) = (v1.sqrt(), v2.sqrt());
                let r = stats::welch_t_test(m1, s1 * s1, n1f, m2, s2 * s2, n_other);
                let t = if r.t.is_nan() { 0.0 } else { r.t };
                let p = if r.p.is_nan() { 1.0 } else { r.p };
                (t, p)
            }
        };
        scores[j] = score;
        pvals[j] = p;
    }
    let pvals_adj = match opts.corr_method {
        Correction::BenjaminiHochberg => stats::benjamini_hochberg(&pvals),
        Correction::Bonferroni => stats::bonferroni(&pvals),
    };
    let mut order: Vec<u32> = (0..n_genes as u32).collect();
    order.sort_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(a.cmp(&b))
    });
    GroupMarkers {
        group: gi.labels[g],
        n_cells: n1,
        n_other: n2,
        scores,
        logfoldchanges: lfc,
        pvals,
        pvals_adj,
        pct_in: opts.pts.then_some(pct_in),
        pct_out: opts.pts.then_some(pct_out),
        auc,
        order,
    }
}
