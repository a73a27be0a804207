//! The test of each interaction row for a change between the two conditions: limma's
//! moderated t over the samples' values, or a permutation of the condition labels within
//! each cluster (see the [module docs](super)).

use super::{DiffInput, DiffOptions};
use crate::error::{Error, Result};
use crate::interactions::expression::{group_sizes, pair_mean, Prepared};
use crate::limma::{ebayes, lm_fit, EbayesOptions};
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Permutations per parallel task (integer counts: any spread over threads gives the same).
const BLOCK: usize = 8;

/// One tested interaction row: its values in the two conditions, statistic and p-value.
pub(super) struct Tested {
    pub(super) interaction: usize,
    pub(super) sender: u32,
    pub(super) receiver: u32,
    pub(super) v_ref: f64,
    pub(super) v_num: f64,
    pub(super) statistic: f64,
    pub(super) p: f64,
}

/// Interaction values per group: `values[(i * k + a) * k + b) * n_groups_used + j]` for the
/// groups `g = j * k + cluster` (j < n_groups_used).
fn group_values(prep: &Prepared, groups: &[u32], n: usize, k: usize, thr: f64, out: &mut Vec<f64>) {
    let ng = n * k;
    let mut sums = vec![0.0; prep.n_genes() * ng];
    let mut expressing = vec![0.0; prep.n_genes() * ng];
    prep.group_sums(groups, ng, &mut sums, Some(&mut expressing));
    let sizes = group_sizes(groups, ng);
    let np = prep.partners.len();
    let (mut pm, mut pf) = (vec![0.0; np * ng], vec![0.0; np * ng]);
    prep.partner_values(&sums, &sizes, &mut pm);
    prep.partner_values(&expressing, &sizes, &mut pf);
    out.clear();
    out.resize(prep.pairs.len() * k * k * n, 0.0);
    for (i, &(pa, pb)) in prep.pairs.iter().enumerate() {
        for a in 0..k {
            for b in 0..k {
                let base = ((i * k + a) * k + b) * n;
                for j in 0..n {
                    let (ia, ib) = (pa * ng + j * k + a, pb * ng + j * k + b);
                    if pf[ia] > thr && pf[ib] > thr {
                        out[base + j] = pair_mean(pm[ia], pm[ib]);
                    }
                }
            }
        }
    }
}

pub(super) fn limma_rows(
    prep: &Prepared,
    sample_index: &[u32],
    sample_condition: &[String],
    k: usize,
    thr: f64,
    input: &DiffInput,
) -> Result<Vec<Tested>> {
    let ns = sample_condition.len();
    let groups: Vec<u32> = sample_index
        .iter()
        .zip(input.labels)
        .map(|(&s, &l)| s * k as u32 + l)
        .collect();
    let mut values = Vec::new();
    group_values(prep, &groups, ns, k, thr, &mut values);
    let used: Vec<usize> = (0..ns)
        .filter(|&s| {
            sample_condition[s] == input.numerator || sample_condition[s] == input.reference
        })
        .collect();
    let is_num: Vec<bool> = used
        .iter()
        .map(|&s| sample_condition[s] == input.numerator)
        .collect();
    let n_num = is_num.iter().filter(|&&b| b).count() as f64;
    let n_ref = used.len() as f64 - n_num;
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for r in 0..prep.pairs.len() * k * k {
        let v: Vec<f64> = used.iter().map(|&s| values[r * ns + s]).collect();
        if v.iter().all(|&x| x == 0.0) {
            continue;
        }
        let mut mean = [0.0, 0.0];
        for (x, &num) in v.iter().zip(&is_num) {
            mean[num as usize] += x;
        }
        let (i, a, b) = (r / (k * k), (r / k) % k, r % k);
        rows.push(Tested {
            interaction: i,
            sender: a as u32,
            receiver: b as u32,
            v_ref: mean[0] / n_ref,
            v_num: mean[1] / n_num,
            statistic: 0.0,
            p: 1.0,
        });
        y.extend(v);
    }
    if rows.is_empty() {
        return Ok(rows);
    }
    let y = Array2::from_shape_vec((rows.len(), used.len()), y)
        .map_err(|e| Error::data("interactions between conditions", e.to_string()))?;
    let mut design = Array2::zeros((used.len(), 2));
    for (j, &num) in is_num.iter().enumerate() {
        design[[j, 0]] = 1.0;
        design[[j, 1]] = if num { 1.0 } else { 0.0 };
    }
    let fit = lm_fit(y.view(), design.view())?;
    let eb = ebayes(&fit, &EbayesOptions::default())?;
    for (j, r) in rows.iter_mut().enumerate() {
        r.statistic = eb.t[[j, 1]];
        r.p = if eb.p_value[[j, 1]].is_finite() {
            eb.p_value[[j, 1]]
        } else {
            1.0
        };
    }
    Ok(rows)
}

pub(super) fn permutation_rows(
    prep: &Prepared,
    input: &DiffInput,
    k: usize,
    thr: f64,
    opts: &DiffOptions,
) -> Vec<Tested> {
    // Condition code: 0 reference, 1 numerator, u32::MAX other conditions.
    let code: Vec<u32> = input
        .conditions
        .iter()
        .map(|c| {
            if c == input.reference {
                0
            } else if c == input.numerator {
                1
            } else {
                u32::MAX
            }
        })
        .collect();
    let groups = |code: &[u32]| -> Vec<u32> {
        code.iter()
            .zip(input.labels)
            .map(|(&c, &l)| if c == u32::MAX { c } else { c * k as u32 + l })
            .collect()
    };
    let mut observed = Vec::new();
    group_values(prep, &groups(&code), 2, k, thr, &mut observed);
    let n_rows = prep.pairs.len() * k * k;
    let tested: Vec<usize> = (0..n_rows)
        .filter(|&r| observed[2 * r] != 0.0 || observed[2 * r + 1] != 0.0)
        .collect();
    let obs_d: Vec<f64> = tested
        .iter()
        .map(|&r| (observed[2 * r + 1] - observed[2 * r]).abs())
        .collect();
    // Cells of the two conditions in each cluster.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, (&c, &l)) in code.iter().zip(input.labels).enumerate() {
        if c != u32::MAX {
            members[l as usize].push(i);
        }
    }
    let n_blocks = opts.n_permutations.div_ceil(BLOCK);
    let blocks: Vec<Vec<u32>> = (0..n_blocks)
        .into_par_iter()
        .map(|blk| {
            let mut count = vec![0u32; tested.len()];
            let mut perm = code.clone();
            let mut shuffled = Vec::new();
            let mut vals = Vec::new();
            for p in blk * BLOCK..((blk + 1) * BLOCK).min(opts.n_permutations) {
                let mut rng = ChaCha8Rng::seed_from_u64(opts.cellphonedb.seed);
                rng.set_stream(p as u64 + 1);
                for m in &members {
                    shuffled.clear();
                    shuffled.extend(m.iter().map(|&i| code[i]));
                    shuffled.shuffle(&mut rng);
                    for (&i, &v) in m.iter().zip(&shuffled) {
                        perm[i] = v;
                    }
                }
                group_values(prep, &groups(&perm), 2, k, thr, &mut vals);
                for ((c, &r), &o) in count.iter_mut().zip(&tested).zip(&obs_d) {
                    if (vals[2 * r + 1] - vals[2 * r]).abs() >= o - 1e-12 {
                        *c += 1;
                    }
                }
            }
            count
        })
        .collect();
    let mut exceed = vec![0u32; tested.len()];
    for b in blocks {
        exceed.iter_mut().zip(b).for_each(|(t, c)| *t += c);
    }
    tested
        .iter()
        .enumerate()
        .map(|(t, &r)| {
            let hits = exceed[t];
            Tested {
                interaction: r / (k * k),
                sender: ((r / k) % k) as u32,
                receiver: (r % k) as u32,
                v_ref: observed[2 * r],
                v_num: observed[2 * r + 1],
                statistic: observed[2 * r + 1] - observed[2 * r],
                p: (1.0 + hits as f64) / (1.0 + opts.n_permutations as f64),
            }
        })
        .collect()
}
