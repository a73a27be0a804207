//! A seeded clustered cell graph for UMAP tests, benches and examples: Gaussian blobs in a few
//! dimensions, exact kNN inside each blob (plus rare cross-blob neighbours), weights as
//! umap-learn's `fuzzy_simplicial_set` (per-cell `rho`, `sigma` with
//! `sum exp(-(d - rho) / sigma) = log2(k)`, then fuzzy union `w + w' - w w'`).
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use scrna::CsrMatrix;

/// A graph with its ground-truth cluster labels and the points it was built from.
pub struct Clustered {
    pub graph: CsrMatrix,
    pub labels: Vec<u32>,
    pub points: Vec<Vec<f32>>,
}

/// `n` cells in `n_clusters` blobs of dimension `dim` (blob centres `sep` apart on average,
/// unit spread), `k` neighbours; a fraction `cross` of cells get one neighbour in another blob.
pub fn clustered_graph(
    n: usize,
    n_clusters: usize,
    dim: usize,
    k: usize,
    sep: f32,
    cross: f64,
    seed: u64,
) -> Clustered {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    let centres: Vec<Vec<f32>> = (0..n_clusters)
        .map(|_| (0..dim).map(|_| normal.sample(&mut rng) * sep).collect())
        .collect();
    let mut labels = Vec::with_capacity(n);
    let mut points = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % n_clusters;
        labels.push(c as u32);
        // unequal blob shapes: scale one axis
        points.push(
            (0..dim)
                .map(|d| centres[c][d] + normal.sample(&mut rng) * if d == 0 { 2.0 } else { 1.0 })
                .collect::<Vec<f32>>(),
        );
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_clusters];
    for (i, &l) in labels.iter().enumerate() {
        members[l as usize].push(i);
    }
    let cross_pick: Vec<Option<usize>> = (0..n)
        .map(|_| {
            if rng.gen_bool(cross) {
                Some(rng.gen_range(0..n))
            } else {
                None
            }
        })
        .collect();
    // kNN within the blob (brute force), distances
    let knn: Vec<Vec<(usize, f32)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let m = &members[labels[i] as usize];
            let mut d: Vec<(usize, f32)> = m
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| {
                    let s: f32 = points[i]
                        .iter()
                        .zip(&points[j])
                        .map(|(x, y)| (x - y) * (x - y))
                        .sum();
                    (j, s.sqrt())
                })
                .collect();
            let kk = k.min(d.len());
            d.select_nth_unstable_by(kk.saturating_sub(1), |a, b| a.1.total_cmp(&b.1));
            d.truncate(kk);
            d.sort_by(|a, b| a.1.total_cmp(&b.1));
            if let Some(j) = cross_pick[i] {
                if j != i && labels[j] != labels[i] {
                    let s: f32 = points[i]
                        .iter()
                        .zip(&points[j])
                        .map(|(x, y)| (x - y) * (x - y))
                        .sum();
                    // replace the farthest neighbour, at the farthest distance
                    if let Some(last) = d.last_mut() {
                        *last = (j, last.1.max(s.sqrt().min(last.1 * 1.5)));
                    }
                }
            }
            d
        })
        .collect();
    let target = (k as f32).log2();
    let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    for (i, nb) in knn.iter().enumerate() {
        let rho = nb.iter().map(|x| x.1).fold(f32::INFINITY, f32::min);
        let (mut lo, mut hi, mut sigma) = (0.0f32, f32::INFINITY, 1.0f32);
        for _ in 0..64 {
            let s: f32 = nb
                .iter()
                .map(|x| (-(x.1 - rho).max(0.0) / sigma).exp())
                .sum();
            if (s - target).abs() < 1e-5 {
                break;
            }
            if s > target {
                hi = sigma;
                sigma = (lo + hi) / 2.0;
            } else {
                lo = sigma;
                sigma = if hi.is_infinite() {
                    sigma * 2.0
                } else {
                    (lo + hi) / 2.0
                };
            }
        }
        for &(j, d) in nb {
            rows.push(i as u32);
            cols.push(j as u32);
            vals.push((-(d - rho).max(0.0) / sigma).exp());
        }
    }
    let w = CsrMatrix::from_triplets(n, n, &rows, &cols, &vals).unwrap();
    let wt = w.transpose();
    // fuzzy union w + w^T - w .* w^T
    let (mut r2, mut c2, mut v2) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let (ia, va) = w.row(i);
        let (ib, vb) = wt.row(i);
        let (mut p, mut q) = (0, 0);
        while p < ia.len() || q < ib.len() {
            let (c, x, y) = if q >= ib.len() || (p < ia.len() && ia[p] < ib[q]) {
                p += 1;
                (ia[p - 1], va[p - 1], 0.0)
            } else if p >= ia.len() || ib[q] < ia[p] {
                q += 1;
                (ib[q - 1], 0.0, vb[q - 1])
            } else {
                p += 1;
                q += 1;
                (ia[p - 1], va[p - 1], vb[q - 1])
            };
            r2.push(i as u32);
            c2.push(c);
            v2.push(x + y - x * y);
        }
    }
    Clustered {
        graph: CsrMatrix::from_triplets(n, n, &r2, &c2, &v2).unwrap(),
        labels,
        points,
    }
}
