//! The sample-level parts of the model: composition of each sample, the cells of the program
//! shift, the doublets, and the sum of a doublet's two cells.

use super::{
    normalised, rng_for, ProgramShift, ShiftTruth, SimulateOptions, COMPOSITION_STREAM,
    DOUBLET_STREAM, SHIFT_STREAM,
};
use crate::error::{Error, Result};
use rand::distributions::WeightedIndex;
use rand::Rng;
use rand_distr::{Distribution, Gamma};

/// The sum of two sparse rows with ascending indices.
pub(super) fn merge_rows(ia: &[u32], va: &[f32], ib: &[u32], vb: &[f32]) -> (Vec<u32>, Vec<f32>) {
    let mut idx = Vec::with_capacity(ia.len() + ib.len());
    let mut val = Vec::with_capacity(ia.len() + ib.len());
    let (mut a, mut b) = (0, 0);
    while a < ia.len() || b < ib.len() {
        let take_a = b >= ib.len() || (a < ia.len() && ia[a] <= ib[b]);
        let take_b = a >= ia.len() || (b < ib.len() && ib[b] <= ia[a]);
        let (g, v) = match (take_a, take_b) {
            (true, true) => (ia[a], va[a] + vb[b]),
            (true, false) => (ia[a], va[a]),
            _ => (ib[b], vb[b]),
        };
        idx.push(g);
        val.push(v);
        a += take_a as usize;
        b += take_b as usize;
    }
    (idx, val)
}

/// Cluster weights of every sample: its condition's (unnormalised, as given), or a draw of
/// `Dirichlet(a π_c)` over the clusters present in the condition.
pub(super) fn sample_weights(
    opts: &SimulateOptions,
    condition_weights: &[Vec<f64>],
) -> Result<Vec<Vec<f64>>> {
    let n_samples = opts.n_samples();
    let cond_of = |s: usize| &condition_weights[s / opts.samples_per_condition];
    let Some(a) = opts.composition_concentration else {
        return Ok((0..n_samples).map(|s| cond_of(s).clone()).collect());
    };
    let mut r = rng_for(opts.seed, COMPOSITION_STREAM);
    (0..n_samples)
        .map(|s| {
            let pi = normalised(cond_of(s));
            let w: Vec<f64> = pi
                .iter()
                .map(|&p| {
                    if p > 0.0 {
                        Gamma::new(a * p, 1.0)
                            .map(|g| g.sample(&mut r))
                            .map_err(|e| Error::option("composition_concentration", e.to_string()))
                    } else {
                        Ok(0.0)
                    }
                })
                .collect::<Result<_>>()?;
            let total: f64 = w.iter().sum();
            if total > 0.0 && total.is_finite() {
                Ok(normalised(&w))
            } else {
                Err(Error::option(
                    "composition_concentration",
                    format!("too small: the proportions of sample {s} are all zero"),
                ))
            }
        })
        .collect()
}

/// The program of a [`ProgramShift`]: `n_genes` genes among the non-marker genes ranked, by
/// baseline expression among the non-mitochondrial genes (`order`, descending), between the
/// top 1% and the top 10%; folds uniform in the range.
pub(super) fn draw_shift(
    opts: &SimulateOptions,
    sh: &ProgramShift,
    order: &[usize],
    markers: &[Vec<usize>],
) -> Result<ShiftTruth> {
    let mut is_marker = vec![false; opts.n_genes];
    for &g in markers.iter().flatten() {
        is_marker[g] = true;
    }
    let (lo, hi) = (order.len() / 100, order.len() / 10);
    let mut candidates: Vec<usize> = order[lo..hi]
        .iter()
        .copied()
        .filter(|&g| !is_marker[g])
        .collect();
    if candidates.len() < sh.n_genes {
        return Err(Error::option(
            "shift.n_genes",
            format!(
                "{} genes asked but only {} moderately expressed non-marker genes \
                 (top 1% to 10% of {} genes)",
                sh.n_genes,
                candidates.len(),
                order.len()
            ),
        ));
    }
    let mut r = rng_for(opts.seed, SHIFT_STREAM);
    for j in 0..sh.n_genes {
        let t = r.gen_range(j..candidates.len());
        candidates.swap(j, t);
    }
    let mut genes = candidates[..sh.n_genes].to_vec();
    genes.sort_unstable();
    let (f_lo, f_hi) = sh.fold;
    let folds = genes
        .iter()
        .map(|_| f_lo + (f_hi - f_lo) * r.gen::<f64>())
        .collect();
    Ok(ShiftTruth {
        cluster: sh.cluster as u32,
        condition: (opts.conditions.len() - 1) as u32,
        genes,
        folds,
    })
}

/// The type of the second cell of every doublet (`None` for singlets; empty without doublets).
/// In each sample, `round(doublet_rate n_s)` cells are chosen at random; the second type is drawn
/// from the sample's weights without the first cell's type.
pub(super) fn draw_doublets(
    opts: &SimulateOptions,
    sample_of: &[usize],
    cluster: &[u32],
    sample_weights: &[Vec<f64>],
) -> Result<Vec<Option<u32>>> {
    if opts.doublet_rate <= 0.0 {
        return Ok(Vec::new());
    }
    let mut partner = vec![None; opts.n_cells];
    let mut r = rng_for(opts.seed, DOUBLET_STREAM);
    let mut start = 0;
    while start < sample_of.len() {
        let s = sample_of[start];
        let end = start + sample_of[start..].iter().take_while(|&&x| x == s).count();
        let mut cells: Vec<usize> = (start..end).collect();
        let m = (opts.doublet_rate * cells.len() as f64).round() as usize;
        for j in 0..m {
            let t = r.gen_range(j..cells.len());
            cells.swap(j, t);
        }
        let mut chosen = cells[..m].to_vec();
        chosen.sort_unstable();
        for i in chosen {
            let mut w = sample_weights[s].clone();
            w[cluster[i] as usize] = 0.0;
            let second = WeightedIndex::new(&w).map_err(|_| {
                Error::option(
                    "doublet_rate",
                    format!("sample {s} has a single cell type: heterotypic doublets need two"),
                )
            })?;
            partner[i] = Some(second.sample(&mut r) as u32);
        }
        start = end;
    }
    Ok(partner)
}
