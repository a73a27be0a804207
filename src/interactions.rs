//! Cell-cell interaction between clusters from a ligand-receptor table.
//!
//! For a pair (ligand L, receptor R) and clusters (sender s, receiver r), the score is the
//! product of mean expressions `mean_L(s) * mean_R(r)` on the log-normalized matrix. Its
//! p-value comes from a permutation test of the cluster labels, as CellPhoneDB does
//! (Efremova et al. 2020): the labels are shuffled `n_permutations` times, the score is
//! recomputed, and `p = (1 + #{permuted >= observed}) / (1 + n_permutations)`. Pairs whose
//! ligand or receptor is expressed in less than `min_fraction` of the cells of its cluster
//! get score 0 and p = 1 (CellPhoneDB's 10% threshold).
//!
//! Each permutation has its own seeded random stream, so results do not depend on the number
//! of threads.

use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// A ligand-receptor pair.
#[derive(Debug, Clone, PartialEq)]
pub struct LrPair {
    /// Ligand gene symbol.
    pub ligand: String,
    /// Receptor gene symbol.
    pub receptor: String,
}

/// Reads a CellPhoneDB-style CSV with a header holding `ligand` and `receptor` columns (other
/// columns are ignored; comma or tab separated).
pub fn read_lr_pairs(path: impl AsRef<Path>) -> Result<Vec<LrPair>> {
    use std::io::BufRead;
    let path = path.as_ref();
    let reader = crate::io::open_text(path)?;
    let mut lines = reader.lines().enumerate();
    let header = loop {
        match lines.next() {
            Some((i, l)) => {
                let l = l.map_err(|e| Error::parse(path, i as u64 + 1, e.to_string()))?;
                if !l.trim().is_empty() {
                    break l;
                }
            }
            None => return Err(Error::parse(path, 1, "empty file: expected a header")),
        }
    };
    let sep = if header.contains('\t') { '\t' } else { ',' };
    let cols: Vec<String> = header
        .trim_end_matches('\r')
        .split(sep)
        .map(|c| c.trim().to_lowercase())
        .collect();
    let find = |name: &str| {
        cols.iter()
            .position(|c| c == name)
            .ok_or_else(|| Error::parse(path, 1, format!("header has no `{name}` column")))
    };
    let (li, ri) = (find("ligand")?, find("receptor")?);
    let mut pairs = Vec::new();
    for (i, line) in lines {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| Error::parse(path, line_no, e.to_string()))?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(sep).map(str::trim).collect();
        let get = |k: usize, what: &str| {
            f.get(k)
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string())
                .ok_or_else(|| Error::parse(path, line_no, format!("missing {what}")))
        };
        pairs.push(LrPair {
            ligand: get(li, "ligand")?,
            receptor: get(ri, "receptor")?,
        });
    }
    Ok(pairs)
}

/// Options of [`interactions`].
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionOptions {
    /// Label permutations. Default 1,000.
    pub n_permutations: usize,
    /// Minimum fraction of a cluster's cells expressing the ligand (sender) or receptor
    /// (receiver). Default 0.1.
    pub min_fraction: f64,
    /// Seed. Default 0.
    pub seed: u64,
}

impl Default for InteractionOptions {
    fn default() -> Self {
        InteractionOptions {
            n_permutations: 1000,
            min_fraction: 0.1,
            seed: 0,
        }
    }
}

/// One (pair, sender, receiver) score.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// Ligand symbol.
    pub ligand: String,
    /// Receptor symbol.
    pub receptor: String,
    /// Sending cluster (expresses the ligand).
    pub sender: u32,
    /// Receiving cluster (expresses the receptor).
    pub receiver: u32,
    /// `mean_L(sender) * mean_R(receiver)`.
    pub score: f64,
    /// Permutation p-value.
    pub p: f64,
}

/// Scores every ligand-receptor pair whose genes are in the data for every ordered pair of
/// clusters (module docs). Rows: pair-major, then sender, then receiver.
pub fn interactions(
    x: &CsrMatrix,
    gene_names: &[String],
    labels: &[u32],
    pairs: &[LrPair],
    opts: &InteractionOptions,
) -> Result<Vec<Interaction>> {
    if labels.len() != x.n_rows() || gene_names.len() != x.n_cols() {
        return Err(Error::data(
            "interactions",
            format!(
                "{} labels and {} gene names for a {} x {} matrix",
                labels.len(),
                gene_names.len(),
                x.n_rows(),
                x.n_cols()
            ),
        ));
    }
    if !(0.0..=1.0).contains(&opts.min_fraction) {
        return Err(Error::option("min_fraction", "must be within [0, 1]"));
    }
    let pos: HashMap<&str, usize> = gene_names
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let usable: Vec<(&LrPair, usize, usize)> = pairs
        .iter()
        .filter_map(|p| {
            Some((
                p,
                *pos.get(p.ligand.as_str())?,
                *pos.get(p.receptor.as_str())?,
            ))
        })
        .collect();
    let k = labels.iter().max().map_or(0, |&m| m as usize + 1);
    if usable.is_empty() || k == 0 {
        return Ok(Vec::new());
    }
    // The genes involved, as (cell, value) lists.
    let mut genes: Vec<usize> = usable.iter().flat_map(|&(_, l, r)| [l, r]).collect();
    genes.sort_unstable();
    genes.dedup();
    let slot: HashMap<usize, usize> = genes.iter().enumerate().map(|(i, &g)| (g, i)).collect();
    let sub = x.select_cols(&genes)?.transpose();
    let sizes = {
        let mut s = vec![0usize; k];
        for &l in labels {
            s[l as usize] += 1;
        }
        s
    };
    let cluster_means = |lab: &[u32]| -> Vec<f64> {
        // means[gene_slot * k + cluster]
        let mut m = vec![0f64; genes.len() * k];
        for gi in 0..genes.len() {
            let (cells, vals) = sub.row(gi);
            for (&c, &v) in cells.iter().zip(vals) {
                m[gi * k + lab[c as usize] as usize] += v as f64;
            }
            for c in 0..k {
                m[gi * k + c] /= sizes[c].max(1) as f64;
            }
        }
        m
    };
    let observed = cluster_means(labels);
    let mut frac = vec![0f64; genes.len() * k];
    for gi in 0..genes.len() {
        let (cells, vals) = sub.row(gi);
        for (&c, &v) in cells.iter().zip(vals) {
            if v > 0.0 {
                frac[gi * k + labels[c as usize] as usize] += 1.0;
            }
        }
        for c in 0..k {
            frac[gi * k + c] /= sizes[c].max(1) as f64;
        }
    }
    let score = |m: &[f64], l: usize, r: usize, s: usize, t: usize| {
        m[slot[&l] * k + s] * m[slot[&r] * k + t]
    };
    let n_scores = usable.len() * k * k;
    let exceed: Vec<u32> = (0..opts.n_permutations)
        .into_par_iter()
        .map(|p| {
            let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
            rng.set_stream(p as u64 + 1);
            let mut lab = labels.to_vec();
            lab.shuffle(&mut rng);
            let m = cluster_means(&lab);
            let mut hit = vec![0u32; n_scores];
            let mut i = 0;
            for &(_, l, r) in &usable {
                for s in 0..k {
                    for t in 0..k {
                        if score(&m, l, r, s, t) >= score(&observed, l, r, s, t) {
                            hit[i] = 1;
                        }
                        i += 1;
                    }
                }
            }
            hit
        })
        .reduce(
            || vec![0u32; n_scores],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let mut rows = Vec::with_capacity(n_scores);
    let mut i = 0;
    for &(pair, l, r) in &usable {
        for s in 0..k {
            for t in 0..k {
                let expressed = frac[slot[&l] * k + s] >= opts.min_fraction
                    && frac[slot[&r] * k + t] >= opts.min_fraction;
                let sc = score(&observed, l, r, s, t);
                rows.push(Interaction {
                    ligand: pair.ligand.clone(),
                    receptor: pair.receptor.clone(),
                    sender: s as u32,
                    receiver: t as u32,
                    score: if expressed { sc } else { 0.0 },
                    p: if expressed {
                        (1.0 + exceed[i] as f64) / (1.0 + opts.n_permutations as f64)
                    } else {
                        1.0
                    },
                });
                i += 1;
            }
        }
    }
    Ok(rows)
}
