//! The graph's edges kept for the optimization (out-edges and their transpose) with the
//! epochs between two samples of each, after the graph is checked.

use super::curve::default_n_epochs;
use super::schedule::NEG;
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;

/// Graph edges kept for the optimization, as CSR (out-edges) with the transpose (in-edges).
pub(super) struct Edges {
    pub(super) n: usize,
    pub(super) indptr: Vec<usize>,
    pub(super) tail: Vec<u32>,
    pub(super) weight: Vec<f32>,
    /// epochs between two samples of each out-edge (`max(w) / w`)
    pub(super) eps: Vec<f64>,
    pub(super) t_indptr: Vec<usize>,
    pub(super) t_head: Vec<u32>,
    pub(super) t_eps: Vec<f64>,
    /// whether the in-edges of each cell are its out-edges with the same weights, in the same
    /// order (a symmetric graph, as Scanpy's connectivities are)
    pub(super) symmetric: bool,
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
    let mut indptr = Vec::with_capacity(n + 1);
    indptr.push(0);
    let mut tail = Vec::new();
    let mut weight = Vec::new();
    for r in 0..n {
        let (idx, val) = graph.row(r);
        for (&c, &w) in idx.iter().zip(val) {
            if w >= threshold && w > 0.0 {
                tail.push(c);
                weight.push(w);
            }
        }
        indptr.push(tail.len());
    }
    let eps: Vec<f64> = weight.iter().map(|&w| max as f64 / w as f64).collect();
    // transpose
    let mut t_indptr = vec![0usize; n + 1];
    for &c in &tail {
        t_indptr[c as usize + 1] += 1;
    }
    for i in 0..n {
        t_indptr[i + 1] += t_indptr[i];
    }
    let mut next = t_indptr.clone();
    let mut t_head = vec![0u32; tail.len()];
    let mut t_eps = vec![0f64; tail.len()];
    for r in 0..n {
        for e in indptr[r]..indptr[r + 1] {
            let c = tail[e] as usize;
            t_head[next[c]] = r as u32;
            t_eps[next[c]] = eps[e];
            next[c] += 1;
        }
    }
    let symmetric = t_indptr == indptr
        && t_head == tail
        && t_eps
            .iter()
            .zip(&eps)
            .all(|(x, y)| x.to_bits() == y.to_bits());
    Ok(Edges {
        symmetric,
        n,
        indptr,
        tail,
        weight,
        eps,
        t_indptr,
        t_head,
        t_eps,
    })
}
