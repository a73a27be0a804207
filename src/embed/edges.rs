//! The graph's edges kept for the optimization (out-edges and their transpose) with the
//! epochs between two samples of each, after the graph is checked.

use super::curve::default_n_epochs;
use super::rows::par_csr;
use super::schedule::NEG;
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use rayon::prelude::*;

/// Graph edges kept for the optimization, as CSR (out-edges), with the in-edges when they are
/// not the out-edges themselves.
pub(super) struct Edges {
    pub(super) n: usize,
    pub(super) indptr: Vec<usize>,
    pub(super) tail: Vec<u32>,
    pub(super) weight: Vec<f32>,
    /// epochs between two samples of each out-edge (`max(w) / w`)
    pub(super) eps: Vec<f64>,
    /// the in-edges (the transpose), `None` when the in-edges of each cell are its out-edges
    /// with the same weights, in the same order (a symmetric graph, as Scanpy's connectivities
    /// are)
    pub(super) in_edges: Option<InEdges>,
}

/// The in-edges of every cell, as CSR: the transpose of the out-edges.
pub(super) struct InEdges {
    pub(super) indptr: Vec<usize>,
    pub(super) head: Vec<u32>,
    /// epochs between two samples of each in-edge
    pub(super) eps: Vec<f64>,
}

pub(super) fn check_graph(graph: &CsrMatrix) -> Result<()> {
    let (r, c) = graph.shape();
    if r != c {
        return Err(Error::data(
            "umap",
            format!("the graph must be square, got {r} x {c}"),
        ));
    }
    if r < 2 {
        return Err(Error::data(
            "umap",
            format!("needs at least 2 cells, got {r}"),
        ));
    }
    if r >= NEG as usize {
        return Err(Error::data(
            "umap",
            format!("at most {} cells, got {r}", NEG - 1),
        ));
    }
    if let Some(v) = graph.data().iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
        return Err(Error::data(
            "umap",
            format!("graph weights must be finite and >= 0, found {v}"),
        ));
    }
    Ok(())
}

pub(super) fn build_edges(graph: &CsrMatrix, n_epochs: usize) -> Result<Edges> {
    let n = graph.n_rows();
    let max = graph.data().iter().fold(0.0f32, |m, &v| m.max(v));
    if max <= 0.0 {
        return Err(Error::data("umap", "the graph has no edge with weight > 0"));
    }
    let threshold_epochs = if n_epochs > 10 {
        n_epochs
    } else {
        default_n_epochs(n)
    };
    let threshold = max / threshold_epochs as f32;
    let keep = |w: f32| w >= threshold && w > 0.0;
    // the kept edges of each row, counted and then copied in blocks of rows in parallel
    let (indptr, tail, weight) = par_csr(
        n,
        |r| graph.row(r).1.iter().filter(|&&w| keep(w)).count(),
        |r, t: &mut [u32], w: &mut [f32]| {
            let (idx, val) = graph.row(r);
            let kept = idx.iter().zip(val).filter(|(_, &v)| keep(v));
            for ((t, w), (&c, &v)) in t.iter_mut().zip(w.iter_mut()).zip(kept) {
                (*t, *w) = (c, v);
            }
        },
    );
    let eps: Vec<f64> = weight.par_iter().map(|&w| max as f64 / w as f64).collect();
    let in_edges = if out_edges_are_in_edges(&indptr, &tail, &weight) {
        None
    } else {
        Some(transpose(n, &indptr, &tail, &eps))
    };
    Ok(Edges {
        n,
        indptr,
        tail,
        weight,
        eps,
        in_edges,
    })
}

/// Whether the transpose of the kept edges is the same CSR (indices, order and weights, bit
/// for bit), tested without building it: each row's tails strictly increase (the transpose
/// lists a cell's in-edges by increasing source) and every edge `r -> c` has its reverse
/// `c -> r` with the same weight bits (so the same `eps`). Each edge then pairs with its
/// reverse, every cell has as many in-edges as out-edges, and the in-edges of `c`, by
/// increasing source, are its out-edges. Rows in parallel.
fn out_edges_are_in_edges(indptr: &[usize], tail: &[u32], weight: &[f32]) -> bool {
    let n = indptr.len() - 1;
    (0..n).into_par_iter().all(|r| {
        let (a, b) = (indptr[r], indptr[r + 1]);
        let row = &tail[a..b];
        row.windows(2).all(|p| p[0] < p[1])
            && row.iter().zip(&weight[a..b]).all(|(&c, &w)| {
                let c = c as usize;
                let (ca, cb) = (indptr[c], indptr[c + 1]);
                tail[ca..cb]
                    .binary_search(&(r as u32))
                    .is_ok_and(|k| weight[ca + k].to_bits() == w.to_bits())
            })
    })
}

/// The in-edges of every cell (the transpose of the out-edges), listed by increasing source.
fn transpose(n: usize, indptr: &[usize], tail: &[u32], eps: &[f64]) -> InEdges {
    let mut t_indptr = vec![0usize; n + 1];
    for &c in tail {
        t_indptr[c as usize + 1] += 1;
    }
    for i in 0..n {
        t_indptr[i + 1] += t_indptr[i];
    }
    let mut next = t_indptr.clone();
    let mut head = vec![0u32; tail.len()];
    let mut t_eps = vec![0f64; tail.len()];
    for r in 0..n {
        for e in indptr[r]..indptr[r + 1] {
            let c = tail[e] as usize;
            head[next[c]] = r as u32;
            t_eps[next[c]] = eps[e];
            next[c] += 1;
        }
    }
    InEdges {
        indptr: t_indptr,
        head,
        eps: t_eps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of `n` cells, each joined to the next two on both sides, with the weight of
    /// the edge `{i, j}` given by `weight(i, j)` for `i -> j`.
    fn ring(n: usize, weight: impl Fn(usize, usize) -> f32) -> CsrMatrix {
        let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            for d in [n - 2, n - 1, 1, 2] {
                let j = (i + d) % n;
                rows.push(i as u32);
                cols.push(j as u32);
                vals.push(weight(i, j));
            }
        }
        CsrMatrix::from_triplets(n, n, &rows, &cols, &vals).unwrap()
    }

    #[test]
    fn in_edges_are_kept_only_when_they_differ_from_the_out_edges() {
        let n = 9_000;
        let sym = |i: usize, j: usize| 0.2 + ((i * j) % 7) as f32 / 10.0;
        let e = build_edges(&ring(n, sym), 200).unwrap();
        assert!(e.in_edges.is_none());
        assert_eq!(e.indptr[n], 4 * n);
        // one reverse edge a little lighter: the transpose is kept, and is the transpose
        let asym =
            |i: usize, j: usize| sym(i, j) - if (i, j) == (4_500, 4_501) { 0.01 } else { 0.0 };
        let e = build_edges(&ring(n, asym), 200).unwrap();
        let t = e
            .in_edges
            .as_ref()
            .expect("an asymmetric graph keeps its in-edges");
        let mut pairs: Vec<(u32, u32, u64)> = (0..n)
            .flat_map(|r| {
                let e = &e;
                (e.indptr[r]..e.indptr[r + 1])
                    .map(move |k| (e.tail[k], r as u32, e.eps[k].to_bits()))
            })
            .collect();
        pairs.sort_unstable();
        let mut tpairs: Vec<(u32, u32, u64)> = (0..n)
            .flat_map(|c| {
                (t.indptr[c]..t.indptr[c + 1])
                    .map(move |k| (c as u32, t.head[k], t.eps[k].to_bits()))
            })
            .collect();
        assert!(
            tpairs.windows(2).all(|w| w[0] < w[1]),
            "in-edges by increasing source"
        );
        tpairs.sort_unstable();
        assert_eq!(pairs, tpairs);
        // edges below max / 200 are dropped from both
        let light = |i: usize, j: usize| if (i + j) % 5 == 0 { 1e-4 } else { 1.0 };
        let e = build_edges(&ring(n, light), 200).unwrap();
        assert!(e.in_edges.is_none());
        assert!(e.indptr[n] < 4 * n && e.weight.iter().all(|&w| w == 1.0));
    }
}
