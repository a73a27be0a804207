//! The graph levels Leiden and Louvain work on: level 0 built from the cell graph, and the
//! collapse of a level on a partition into the next, coarser level.

use super::{Objective, Params};
use crate::sparse::CsrMatrix;
use rayon::prelude::*;

/// A graph level: CSR adjacency without self-loops, f64 weights, and node weights (strength
/// for modularity, size for CPM).
pub(super) struct Level {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    weights: Vec<f64>,
    pub(super) node_weight: Vec<f64>,
}

impl Level {
    pub(super) fn n(&self) -> usize {
        self.node_weight.len()
    }

    #[inline]
    pub(super) fn adj(&self, v: usize) -> (&[u32], &[f64]) {
        let (s, e) = (self.indptr[v], self.indptr[v + 1]);
        (&self.indices[s..e], &self.weights[s..e])
    }

    /// Prefetches where node `v`'s row starts and its weight ([`crate::cpu::prefetch`]).
    #[inline]
    pub(super) fn prefetch_node(&self, v: usize) {
        crate::cpu::prefetch(&self.indptr, v);
        crate::cpu::prefetch(&self.node_weight, v);
    }

    /// Prefetches node `v`'s neighbours and edge weights.
    #[inline]
    pub(super) fn prefetch_adj(&self, v: usize) {
        let (cols, w) = self.adj(v);
        crate::cpu::prefetch_all(cols);
        crate::cpu::prefetch_all(w);
    }
}

/// Level 0 of `graph` for objective `p.objective`, and the resolution as used in move gains
/// (`gamma / 2m` for modularity, `gamma` for CPM).
pub(super) fn base_level(graph: &CsrMatrix, p: &Params) -> (Level, f64) {
    let n = graph.n_rows();
    let strength: Vec<f64> = graph.row_sums();
    let two_m: f64 = strength.iter().sum();
    // Level 0 without self-loops (they do not change any move gain).
    let mut indptr = Vec::with_capacity(n + 1);
    let mut indices = Vec::with_capacity(graph.nnz());
    let mut weights = Vec::with_capacity(graph.nnz());
    indptr.push(0);
    for v in 0..n {
        let (cols, vals) = graph.row(v);
        for (&u, &w) in cols.iter().zip(vals) {
            if u as usize != v && w > 0.0 {
                indices.push(u);
                weights.push(w as f64);
            }
        }
        indptr.push(indices.len());
    }
    let (node_weight, res) = match p.objective {
        Objective::Modularity => (
            strength.clone(),
            if two_m > 0.0 {
                p.resolution / two_m
            } else {
                0.0
            },
        ),
        Objective::Cpm => (vec![1.0; n], p.resolution),
    };
    let base = Level {
        indptr,
        indices,
        weights,
        node_weight,
    };
    (base, res)
}

/// Collapses `g` on `labels` (in `0..k`): node weights add up, edges between groups add up,
/// edges inside a group are dropped. Rows are built in parallel, each in a fixed order.
pub(super) fn aggregate(g: &Level, labels: &[u32], k: usize) -> Level {
    let n = g.n();
    // Members of each group (counting sort, stable).
    let mut start = vec![0usize; k + 1];
    for &l in labels {
        start[l as usize + 1] += 1;
    }
    for i in 0..k {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut members = vec![0u32; n];
    for (v, &l) in labels.iter().enumerate() {
        members[fill[l as usize]] = v as u32;
        fill[l as usize] += 1;
    }
    let mut node_weight = vec![0.0f64; k];
    for v in 0..n {
        node_weight[labels[v] as usize] += g.node_weight[v];
    }
    const CHUNK: usize = 512;
    let rows: Vec<(Vec<u32>, Vec<f64>, Vec<usize>)> = (0..k.div_ceil(CHUNK))
        .into_par_iter()
        .map(|chunk| {
            let mut acc = vec![0.0f64; k];
            let mut seen = vec![false; k];
            let mut touched: Vec<u32> = Vec::new();
            let mut idx = Vec::new();
            let mut wts = Vec::new();
            let mut lens = Vec::new();
            for a in chunk * CHUNK..((chunk + 1) * CHUNK).min(k) {
                for &v in &members[start[a]..start[a + 1]] {
                    let (cols, w) = g.adj(v as usize);
                    for (&u, &w) in cols.iter().zip(w) {
                        let b = labels[u as usize] as usize;
                        if b == a {
                            continue;
                        }
                        if !seen[b] {
                            seen[b] = true;
                            touched.push(b as u32);
                        }
                        acc[b] += w;
                    }
                }
                touched.sort_unstable();
                for &b in &touched {
                    idx.push(b);
                    wts.push(acc[b as usize]);
                    acc[b as usize] = 0.0;
                    seen[b as usize] = false;
                }
                lens.push(touched.len());
                touched.clear();
            }
            (idx, wts, lens)
        })
        .collect();
    let nnz: usize = rows.iter().map(|r| r.0.len()).sum();
    let mut indptr = Vec::with_capacity(k + 1);
    let mut indices = Vec::with_capacity(nnz);
    let mut weights = Vec::with_capacity(nnz);
    indptr.push(0);
    for (idx, wts, lens) in rows {
        indices.extend_from_slice(&idx);
        weights.extend_from_slice(&wts);
        for l in lens {
            let last = *indptr.last().unwrap_or(&0);
            indptr.push(last + l);
        }
    }
    Level {
        indptr,
        indices,
        weights,
        node_weight,
    }
}
