//! The `Seurat` and `CellRanger` selections: binned normalized dispersions from per-gene
//! moments, one batch at a time, and their combination over batches.

use super::bins::{equal_width_bins, percentile_bins};
use super::moments::{constant_columns, mean_var};
use super::{check, Flavor, Hvg, HvgOptions, Single};
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;

/// One batch of `Seurat` / `CellRanger`; with `filter_unexpressed`, genes not detected in the
/// rows get zeros everywhere and take no part in the bins or the selection.
pub(super) fn single_batch(
    x: &CsrMatrix,
    rows: Option<&[usize]>,
    opts: &HvgOptions,
    filter_unexpressed: bool,
) -> Result<Single> {
    let (means, vars, nnz) = if opts.flavor == Flavor::Seurat {
        mean_var(x, rows, |v| v.exp_m1())
    } else {
        mean_var(x, rows, |v| v)
    };
    select_from_moments(means, &vars, &nnz, opts, filter_unexpressed)
}

/// Selects highly variable genes with the `Seurat` or `CellRanger` flavor from per-gene
/// moments computed elsewhere (for example block by block over a matrix that is never held
/// whole, as [`crate::stream`] does): `means[g]` and `variances[g]` (n - 1 denominator) of
/// `expm1(X)` for `Seurat`, of `X` for `CellRanger`, with `X` the log-normalized values of
/// all cells (see the module docs). Given the same moments, the result is exactly that of
/// [`highly_variable_genes`](super::highly_variable_genes) without batches. Errors for `SeuratV3` (it needs the counts),
/// mismatched lengths and the option checks of [`highly_variable_genes`](super::highly_variable_genes).
pub fn highly_variable_from_moments(
    means: Vec<f64>,
    variances: &[f64],
    opts: &HvgOptions,
) -> Result<Hvg> {
    if opts.flavor == Flavor::SeuratV3 {
        return Err(Error::option(
            "flavor",
            "seurat_v3 is computed from the counts, not from moments of the log values",
        ));
    }
    if means.len() != variances.len() {
        return Err(Error::data(
            "highly_variable_from_moments",
            format!("{} means for {} variances", means.len(), variances.len()),
        ));
    }
    check(opts, means.len())?;
    Ok(select_from_moments(means, variances, &[], opts, false)?.into_hvg(opts.flavor))
}

/// The part of [`single_batch`] after the moments (`nnz` is only read with
/// `filter_unexpressed`).
fn select_from_moments(
    mut means: Vec<f64>,
    vars: &[f64],
    nnz: &[u32],
    opts: &HvgOptions,
    filter_unexpressed: bool,
) -> Result<Single> {
    let seurat = opts.flavor == Flavor::Seurat;
    let n_genes = means.len();
    let keep: Vec<usize> = if filter_unexpressed {
        (0..n_genes).filter(|&g| nnz[g] > 0).collect()
    } else {
        (0..n_genes).collect()
    };
    let mut disp = vec![0f64; n_genes];
    for &g in &keep {
        if means[g] == 0.0 {
            means[g] = 1e-12;
        }
        let mut d = vars[g] / means[g];
        if seurat {
            if d == 0.0 {
                d = f64::NAN;
            }
            d = d.ln();
            means[g] = means[g].ln_1p();
        }
        disp[g] = d;
    }
    let km: Vec<f64> = keep.iter().map(|&g| means[g]).collect();
    let kd: Vec<f64> = keep.iter().map(|&g| disp[g]).collect();
    let bins = if seurat {
        equal_width_bins(&km, opts.n_bins)
    } else {
        percentile_bins(&km)?
    };
    let n_b = bins.iter().map(|&b| b + 1).max().unwrap_or(0);
    let mut members: Vec<Vec<f64>> = vec![Vec::new(); n_b];
    for (k, &b) in bins.iter().enumerate() {
        if !(seurat && kd[k].is_nan()) {
            members[b].push(kd[k]);
        }
    }
    let stats: Vec<(f64, f64)> = members
        .iter_mut()
        .map(|m| {
            if seurat {
                let (avg, dev) = mean_sd(m);
                if dev.is_nan() {
                    // one gene (or none) in the bin: Scanpy sets dev = avg, avg = 0
                    (0.0, avg)
                } else {
                    (avg, dev)
                }
            } else {
                let med = median_nan(m);
                let mut dev: Vec<f64> = m.iter().map(|v| (v - med).abs()).collect();
                (med, median_nan(&mut dev) / 0.6744897501960817)
            }
        })
        .collect();
    let mut norm = vec![0f64; n_genes];
    for (k, &g) in keep.iter().enumerate() {
        let (avg, dev) = stats[bins[k]];
        norm[g] = (kd[k] - avg) / dev;
    }
    let kn: Vec<f64> = keep.iter().map(|&g| norm[g]).collect();
    // Genes without variance are never selected (see the module docs).
    let varies = |g: usize| vars[g] > 0.0;
    let mut hv = vec![false; n_genes];
    match opts.n_top_genes {
        Some(n_top) => {
            let mut vals: Vec<f64> = (0..keep.len())
                .filter(|&k| varies(keep[k]) && !kn[k].is_nan())
                .map(|k| kn[k])
                .collect();
            let n = n_top.min(vals.len());
            if n > 0 {
                vals.sort_by(|a, b| b.total_cmp(a));
                let cut = vals[n - 1];
                for (k, &g) in keep.iter().enumerate() {
                    hv[g] = varies(g) && !kn[k].is_nan() && kn[k] >= cut;
                }
            }
        }
        None => {
            for (k, &g) in keep.iter().enumerate() {
                let d = nan_to_num(kn[k]);
                hv[g] = varies(g) && in_bounds(means[g], d, opts);
            }
        }
    }
    // genes dropped as unexpressed: zeros, as Scanpy fills them
    if filter_unexpressed {
        for g in 0..n_genes {
            if nnz[g] == 0 {
                means[g] = 0.0;
                disp[g] = 0.0;
            }
        }
    }
    Ok(Single {
        means,
        dispersions: disp,
        norm,
        hv,
    })
}

fn in_bounds(mean: f64, disp: f64, o: &HvgOptions) -> bool {
    mean > o.min_mean && mean < o.max_mean && disp > o.min_disp && disp < o.max_disp
}

/// numpy's `nan_to_num`: NaN -> 0, infinities -> the largest finite values.
fn nan_to_num(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else if v == f64::INFINITY {
        f64::MAX
    } else if v == f64::NEG_INFINITY {
        f64::MIN
    } else {
        v
    }
}

/// Mean and sample standard deviation (n - 1); NaN when fewer than 2 values (pandas).
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let ss: f64 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
    (mean, (ss / (n - 1) as f64).sqrt())
}

/// `np.median` (NaN if any value is NaN or the slice is empty). Sorts `v`.
fn median_nan(v: &mut [f64]) -> f64 {
    if v.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    crate::stats::median_in_place(v)
}

pub(super) fn batched(x: &CsrMatrix, groups: &[Vec<usize>], opts: &HvgOptions) -> Result<Hvg> {
    let n_genes = x.n_cols();
    let nb = groups.len();
    let per: Vec<Single> = groups
        .iter()
        .map(|rows| single_batch(x, Some(rows), opts, true))
        .collect::<Result<_>>()?;
    let mean_of = |sel: fn(&Single, usize) -> f64| -> Vec<f64> {
        (0..n_genes)
            .map(|g| {
                let (mut s, mut c) = (0f64, 0usize);
                for p in &per {
                    let v = sel(p, g);
                    if !v.is_nan() {
                        s += v;
                        c += 1;
                    }
                }
                if c == 0 {
                    f64::NAN
                } else {
                    s / c as f64
                }
            })
            .collect()
    };
    let means = mean_of(|p, g| p.means[g]);
    let dispersions = mean_of(|p, g| p.dispersions[g]);
    let norm = mean_of(|p, g| p.norm[g]);
    let nbatches: Vec<u32> = (0..n_genes)
        .map(|g| per.iter().filter(|p| p.hv[g]).count() as u32)
        .collect();
    let intersection: Vec<bool> = nbatches.iter().map(|&c| c as usize == nb).collect();
    let constant = constant_columns(x, None);
    let hv = match opts.n_top_genes {
        Some(n_top) => {
            let mut order: Vec<usize> = (0..n_genes).collect();
            if let Some(names) = &opts.gene_names {
                order.sort_by(|&a, &b| names[a].cmp(&names[b]));
            }
            order.sort_by(|&a, &b| {
                nbatches[b].cmp(&nbatches[a]).then_with(|| {
                    match (norm[a].is_nan(), norm[b].is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ => norm[b]
                            .partial_cmp(&norm[a])
                            .unwrap_or(std::cmp::Ordering::Equal),
                    }
                })
            });
            let mut hv = vec![false; n_genes];
            for &g in order.iter().filter(|&&g| !constant[g]).take(n_top) {
                hv[g] = true;
            }
            hv
        }
        None => (0..n_genes)
            .map(|g| {
                let d = if norm[g].is_nan() { 0.0 } else { norm[g] };
                !constant[g] && in_bounds(means[g], d, opts)
            })
            .collect(),
    };
    Ok(Hvg {
        flavor: opts.flavor,
        means,
        dispersions: Some(dispersions),
        dispersions_norm: Some(norm),
        variances: None,
        variances_norm: None,
        highly_variable_rank: None,
        highly_variable_nbatches: Some(nbatches),
        highly_variable_intersection: Some(intersection),
        highly_variable: hv,
    })
}
