//! The initial layout: spectral (component by component), from PCA coordinates, or random,
//! scaled with umap-learn's noise.

use super::edges::Edges;
use super::spectral::component_spectral;
use super::Init;
use crate::error::{Error, Result};
use rand::Rng;
use rand_chacha::ChaCha12Rng;
use rand_distr::{Distribution, Normal};

/// Connected components (union-find), labelled 0.. in order of first cell.
fn components(edges: &Edges) -> (usize, Vec<usize>) {
    let n = edges.n;
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for r in 0..n {
        for e in edges.indptr[r]..edges.indptr[r + 1] {
            let (x, y) = (
                find(&mut parent, r),
                find(&mut parent, edges.tail[e] as usize),
            );
            if x != y {
                parent[x.max(y)] = x.min(y);
            }
        }
    }
    let mut label = vec![usize::MAX; n];
    let mut n_comp = 0;
    for i in 0..n {
        let root = find(&mut parent, i);
        if label[root] == usize::MAX {
            label[root] = n_comp;
            n_comp += 1;
        }
        label[i] = label[root];
    }
    (n_comp, label)
}

pub(super) fn initial_layout(
    edges: &Edges,
    init: Init<'_>,
    rng: &mut ChaCha12Rng,
) -> Result<Vec<f32>> {
    let n = edges.n;
    let mut pos = match init {
        Init::Random => {
            return Ok((0..2 * n).map(|_| rng.gen_range(-10.0f32..10.0)).collect());
        }
        Init::Pca(x) => {
            let mut v = Vec::with_capacity(2 * n);
            for i in 0..n {
                v.push(x[[i, 0]] as f64);
                v.push(x[[i, 1]] as f64);
            }
            v
        }
        Init::Spectral => spectral_init(edges, rng),
    };
    // noisy_scale_coords(max_coord = 10, noise = 1e-4)
    let max = pos.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let expansion = if max > 0.0 { 10.0 / max } else { 1.0 };
    let noise = Normal::new(0.0f64, 1e-4).map_err(|e| Error::data("umap", e.to_string()))?;
    for v in pos.iter_mut() {
        *v = *v * expansion + noise.sample(rng);
    }
    Ok(pos.into_iter().map(|v| v as f32).collect())
}

/// Spectral start (row-major n x 2, f64), by component.
fn spectral_init(edges: &Edges, rng: &mut ChaCha12Rng) -> Vec<f64> {
    let n = edges.n;
    let (n_comp, label) = components(edges);
    if n_comp == 1 {
        let all: Vec<usize> = (0..n).collect();
        return match component_spectral(edges, &all) {
            Some(v) => v,
            None => (0..2 * n).map(|_| rng.gen_range(-10.0..10.0)).collect(),
        };
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_comp];
    for (i, &l) in label.iter().enumerate() {
        members[l].push(i);
    }
    // centres: umap-learn's +-unit vectors for up to 4 components, else a sunflower spiral
    // by decreasing size
    let mut order: Vec<usize> = (0..n_comp).collect();
    order.sort_by_key(|&c| (std::cmp::Reverse(members[c].len()), c));
    let mut centre = vec![[0.0f64; 2]; n_comp];
    for (rank, &c) in order.iter().enumerate() {
        centre[c] = if n_comp <= 4 {
            match rank {
                0 => [1.0, 0.0],
                1 => [0.0, 1.0],
                2 => [-1.0, 0.0],
                _ => [0.0, -1.0],
            }
        } else {
            let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
            let r = ((rank as f64 + 0.5) / n_comp as f64).sqrt();
            let t = rank as f64 * golden;
            [r * t.cos(), r * t.sin()]
        };
    }
    let mut pos = vec![0.0f64; 2 * n];
    for c in 0..n_comp {
        let mut nearest = f64::INFINITY;
        for o in 0..n_comp {
            if o != c {
                let d = ((centre[c][0] - centre[o][0]).powi(2)
                    + (centre[c][1] - centre[o][1]).powi(2))
                .sqrt();
                nearest = nearest.min(d);
            }
        }
        let range = nearest / 2.0;
        let m = &members[c];
        let layout = if m.len() < 4 {
            None
        } else {
            component_spectral(edges, m)
        };
        match layout {
            Some(v) => {
                let max = v.iter().fold(0.0f64, |mx, x| mx.max(x.abs()));
                let s = if max > 0.0 { range / max } else { 0.0 };
                for (li, &i) in m.iter().enumerate() {
                    pos[2 * i] = v[2 * li] * s + centre[c][0];
                    pos[2 * i + 1] = v[2 * li + 1] * s + centre[c][1];
                }
            }
            None => {
                for &i in m {
                    pos[2 * i] = rng.gen_range(-range..range) + centre[c][0];
                    pos[2 * i + 1] = rng.gen_range(-range..range) + centre[c][1];
                }
            }
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::super::edges::build_edges;
    use super::*;
    use crate::sparse::CsrMatrix;

    #[test]
    fn components_of_two_triangles() {
        let rows = [0u32, 1, 1, 2, 3, 4];
        let cols = [1u32, 0, 2, 1, 4, 3];
        let g = CsrMatrix::from_triplets(5, 5, &rows, &cols, &[1.0; 6]).unwrap();
        let e = build_edges(&g, 200).unwrap();
        let (n, l) = components(&e);
        assert_eq!(n, 2);
        assert_eq!(l, vec![0, 0, 0, 1, 1]);
    }
}
