//! The per-gene accumulator row: its layout, the groups and comparisons it serves, and how one
//! gene's non-zero entries fill it (counts, sums, sums of squares per group, doubled rank sums
//! and tie terms per comparison).

use super::keys::{decode_key, radix_sort_hi, POSITIVE};

/// One tested comparison: group index `g` (into the present groups) against `other`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Comparison {
    pub(super) g: usize,
    /// `None`: the rest of the cells; `Some(r)`: present group `r`.
    pub(super) other: Option<usize>,
}

/// Per-gene accumulators, laid out as one row of `width()` `f64`s per gene:
/// `[nnz; n_groups] [sum; n_groups] [sumsq; n_groups] [rank2; n_rank] [ties; n_ties]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct GeneRowLayout {
    /// Rank sums against a reference group (one per comparison) instead of against the rest.
    pub(super) pairwise: bool,
    pub(super) n_groups: usize,
    pub(super) n_rank: usize,
    pub(super) n_ties: usize,
}

impl GeneRowLayout {
    pub(super) fn width(&self) -> usize {
        3 * self.n_groups + self.n_rank + self.n_ties
    }
}

/// Group sizes and codes of the cells.
pub(super) struct Groups {
    /// Present labels, increasing.
    pub(super) labels: Vec<u32>,
    /// Cells per present group.
    pub(super) sizes: Vec<usize>,
    /// Per cell: index into `labels`.
    pub(super) codes: Vec<u32>,
}

pub(super) fn index_groups(labels: &[u32]) -> Groups {
    let mut present: Vec<u32> = labels.to_vec();
    present.sort_unstable();
    present.dedup();
    let codes: Vec<u32> = labels
        .iter()
        .map(|l| present.partition_point(|p| p < l) as u32)
        .collect();
    let mut sizes = vec![0usize; present.len()];
    for &c in &codes {
        sizes[c as usize] += 1;
    }
    Groups {
        labels: present,
        sizes,
        codes,
    }
}

/// Scratch space of one worker in the per-gene pass.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) keys: Vec<u64>,
    buf: Vec<u64>,
}

/// Fills one gene's accumulator row from its non-zero entries (in cell order in
/// `s.keys`): counts, sums and sums of squares per group; with `ranks`, the doubled rank sums
/// and the tie term of each comparison.
pub(super) fn gene_row(
    row: &mut [f64],
    s: &mut Scratch,
    lay: GeneRowLayout,
    groups: &Groups,
    comps: &[Comparison],
    ranks: bool,
) {
    let ng = lay.n_groups;
    row.fill(0.0);
    {
        let (nnz, rest) = row.split_at_mut(ng);
        let (sum, rest) = rest.split_at_mut(ng);
        let sumsq = &mut rest[..ng];
        for &k in &s.keys {
            let c = (k & 0xffff_ffff) as usize;
            let v = decode_key((k >> 32) as u32);
            nnz[c] += 1.0;
            sum[c] += v as f64;
            // Squared in f32 and accumulated in f64, as Scanpy's `_get_mean_var` does
            // (numba keeps f32 * f32 in f32): variances with strong cancellation then agree
            // with Scanpy's to about 1e-12 instead of 1e-6.
            sumsq[c] += (v * v) as f64;
        }
    }
    if !ranks {
        return;
    }
    radix_sort_hi(&mut s.keys, &mut s.buf);
    let keys = &s.keys;
    let n = keys.len();
    let n_cells = groups.codes.len();
    let base = 3 * ng;
    if !lay.pairwise {
        // One vs rest: ranks over all cells; rank sums of every group from one walk.
        let n_neg = keys.partition_point(|&k| ((k >> 32) as u32) < POSITIVE);
        let z = n_cells - n;
        let mut ties: u128 = 0;
        let mut i = 0;
        while i < n {
            let v = keys[i] >> 32;
            let mut j = i + 1;
            while j < n && keys[j] >> 32 == v {
                j += 1;
            }
            let t = j - i;
            let start = if i < n_neg { i } else { i + z };
            let r2 = (2 * start + t + 1) as f64;
            for &k in &keys[i..j] {
                row[base + (k & 0xffff_ffff) as usize] += r2;
            }
            if t > 1 {
                let t = t as u128;
                ties += t * t * t - t;
            }
            i = j;
        }
        let r2z = (2 * n_neg + z + 1) as f64;
        for g in 0..ng {
            let zeros = groups.sizes[g] as f64 - row[g];
            row[base + g] += zeros * r2z;
        }
        if z > 1 {
            let z = z as u128;
            ties += z * z * z - z;
        }
        row[base + lay.n_rank] = ties as f64;
    } else {
        // Against a reference group: ranks over the two groups' cells only.
        for (ci, cmp) in comps.iter().enumerate() {
            let (g, r) = match cmp.other {
                Some(r) => (cmp.g as u64, r as u64),
                None => continue,
            };
            let in_pair = |k: u64| {
                let c = k & 0xffff_ffff;
                c == g || c == r
            };
            let n_neg = keys
                .iter()
                .take_while(|&&k| ((k >> 32) as u32) < POSITIVE)
                .filter(|&&k| in_pair(k))
                .count();
            let nnz_pair = row[g as usize] + row[r as usize];
            let n_pair = groups.sizes[g as usize] + groups.sizes[r as usize];
            let z = n_pair - nnz_pair as usize;
            let mut pos = 0usize;
            let mut rsum = 0f64;
            let mut ties: u128 = 0;
            let mut i = 0;
            while i < n {
                let v = keys[i] >> 32;
                let mut j = i;
                let (mut t, mut tg) = (0usize, 0usize);
                while j < n && keys[j] >> 32 == v {
                    if in_pair(keys[j]) {
                        t += 1;
                        if keys[j] & 0xffff_ffff == g {
                            tg += 1;
                        }
                    }
                    j += 1;
                }
                if t > 0 {
                    let start = if pos < n_neg { pos } else { pos + z };
                    rsum += (tg * (2 * start + t + 1)) as f64;
                    if t > 1 {
                        let t = t as u128;
                        ties += t * t * t - t;
                    }
                    pos += t;
                }
                i = j;
            }
            let zeros_g = groups.sizes[g as usize] as f64 - row[g as usize];
            rsum += zeros_g * (2 * n_neg + z + 1) as f64;
            if z > 1 {
                let z = z as u128;
                ties += z * z * z - z;
            }
            row[base + ci] = rsum;
            row[base + lay.n_rank + ci] = ties as f64;
        }
    }
}
