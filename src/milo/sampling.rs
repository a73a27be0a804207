//! Index cells and neighbourhoods of Milo (miloR's `makeNhoods`, refined sampling with
//! `refinement_scheme = "reduced_dim"`; Dann et al. 2022; Gut et al. 2015 for the refinement).
//!
//! 1. `floor(prop n)` cells are drawn at random without replacement (seeded `ChaCha8`; miloR
//!    uses R's `sample`, so the draws differ).
//! 2. Each drawn cell is replaced by the cell nearest (Euclidean, in the embedding) to the
//!    coordinate-wise median of its `k` nearest neighbours (itself excluded, as BiocNeighbors'
//!    `findKNN`). miloR searches all cells for that nearest cell; we search the drawn cell's
//!    neighbours and their neighbours (two steps in the kNN graph), which contains it unless the
//!    median lies far outside the drawn cell's neighbourhood. Ties go to the lower cell index.
//! 3. Duplicates are removed (first occurrence kept, as R's `unique`).
//! 4. A neighbourhood is the index cell and its neighbours in the undirected kNN graph
//!    (miloR builds the graph with `directed = FALSE`): the cells in its kNN row and the cells
//!    that have it in theirs.
//!
//! The k-distance of a neighbourhood (for the spatial FDR) is the distance from its index cell
//! to the last cell of its kNN row, i.e. its `n_neighbors - 1`-th nearest other cell (miloR:
//! the distance to the graph's k-th neighbour, k counted without the cell itself).

use super::{MiloOptions, Neighbourhoods};
use crate::error::{Error, Result};
use crate::neighbors::Knn;
use ndarray::ArrayView2;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Checks that the embedding and the kNN table describe the same cells.
pub(crate) fn check_inputs(embedding: ArrayView2<f32>, knn: &Knn) -> Result<()> {
    knn.validate()?;
    let n = knn.n_cells();
    if embedding.nrows() != n {
        return Err(Error::data(
            "milo",
            format!(
                "the embedding has {} cells but the kNN table {n}",
                embedding.nrows()
            ),
        ));
    }
    if n == 0 || embedding.ncols() == 0 {
        return Err(Error::data("milo", "the embedding is empty"));
    }
    if knn.n_neighbors < 2 {
        return Err(Error::data(
            "milo",
            "the kNN table has no neighbours besides the cells themselves",
        ));
    }
    if let Some(p) = embedding.iter().position(|v| !v.is_finite()) {
        return Err(Error::data(
            "milo",
            format!("cell {} has a non-finite coordinate", p / embedding.ncols()),
        ));
    }
    Ok(())
}

/// Index cells and neighbourhoods (see the module docs); `opts.validate()` is called first.
pub fn make_neighbourhoods(
    embedding: ArrayView2<f32>,
    knn: &Knn,
    opts: &MiloOptions,
) -> Result<Neighbourhoods> {
    opts.validate()?;
    check_inputs(embedding, knn)?;
    let n = knn.n_cells();
    let m = (opts.prop * n as f64).floor() as usize;
    if m == 0 {
        return Err(Error::option(
            "prop",
            format!("{} of {n} cells samples no cell", opts.prop),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..m {
        let j = rng.gen_range(i..n);
        all.swap(i, j);
    }
    let k = if opts.k == 0 {
        knn.n_neighbors - 1
    } else {
        opts.k
    };
    let refined = refine_index_cells(embedding, knn, &all[..m], k)?;
    let mut seen = vec![false; n];
    let index: Vec<usize> = refined
        .into_iter()
        .filter(|&c| !std::mem::replace(&mut seen[c], true))
        .collect();
    neighbourhoods_from_index_cells(knn, &index)
}

/// The other cells of a kNN row (the cell itself removed wherever it is).
fn others(knn: &Knn, c: usize) -> impl Iterator<Item = usize> + '_ {
    knn.row_indices(c)
        .iter()
        .map(|&j| j as usize)
        .filter(move |&j| j != c)
}

/// Refinement of drawn cells (step 2 of the module docs) with `k` neighbours each.
pub fn refine_index_cells(
    embedding: ArrayView2<f32>,
    knn: &Knn,
    sampled: &[usize],
    k: usize,
) -> Result<Vec<usize>> {
    check_inputs(embedding, knn)?;
    let n = knn.n_cells();
    if k == 0 || k > knn.n_neighbors - 1 {
        return Err(Error::option(
            "k",
            format!(
                "{k} neighbours for the refinement; the kNN table has {} per cell",
                knn.n_neighbors - 1
            ),
        ));
    }
    if let Some(&c) = sampled.iter().find(|&&c| c >= n) {
        return Err(Error::data(
            "milo",
            format!("sampled cell {c} is out of range ({n} cells)"),
        ));
    }
    let d = embedding.ncols();
    Ok(sampled
        .par_iter()
        .map(|&s| {
            let nb: Vec<usize> = others(knn, s).take(k).collect();
            let mut median = vec![0.0f64; d];
            let mut col: Vec<f64> = Vec::with_capacity(nb.len());
            for (t, med) in median.iter_mut().enumerate() {
                col.clear();
                col.extend(nb.iter().map(|&j| embedding[[j, t]] as f64));
                col.sort_by(f64::total_cmp);
                let h = col.len() / 2;
                *med = if col.len() % 2 == 1 {
                    col[h]
                } else {
                    (col[h - 1] + col[h]) / 2.0
                };
            }
            let mut cand: Vec<usize> = vec![s];
            for j in others(knn, s) {
                cand.push(j);
                cand.extend(knn.row_indices(j).iter().map(|&c| c as usize));
            }
            cand.sort_unstable();
            cand.dedup();
            let dist = |c: usize| -> f64 {
                (0..d)
                    .map(|t| (embedding[[c, t]] as f64 - median[t]).powi(2))
                    .sum()
            };
            let mut best = (f64::INFINITY, s);
            for c in cand {
                let v = dist(c);
                if v < best.0 {
                    best = (v, c);
                }
            }
            best.1
        })
        .collect())
}

/// Neighbourhoods of given index cells (step 4 of the module docs).
pub fn neighbourhoods_from_index_cells(knn: &Knn, index_cells: &[usize]) -> Result<Neighbourhoods> {
    knn.validate()?;
    let n = knn.n_cells();
    let mut slot = vec![usize::MAX; n];
    for (h, &c) in index_cells.iter().enumerate() {
        if c >= n {
            return Err(Error::data(
                "milo",
                format!("index cell {c} is out of range ({n} cells)"),
            ));
        }
        if slot[c] != usize::MAX {
            return Err(Error::data(
                "milo",
                format!("index cell {c} is listed twice"),
            ));
        }
        slot[c] = h;
    }
    let mut members: Vec<Vec<u32>> = index_cells
        .iter()
        .map(|&c| {
            let mut v: Vec<u32> = knn.row_indices(c).to_vec();
            v.push(c as u32);
            v
        })
        .collect();
    for c in 0..n {
        for &j in knn.row_indices(c) {
            let h = slot[j as usize];
            if h != usize::MAX {
                members[h].push(c as u32);
            }
        }
    }
    for m in &mut members {
        m.sort_unstable();
        m.dedup();
    }
    let kth_distance = index_cells
        .iter()
        .map(|&c| {
            knn.row_distances(c)
                .iter()
                .fold(0.0f64, |a, &v| a.max(v as f64))
        })
        .collect();
    Ok(Neighbourhoods {
        index_cells: index_cells.to_vec(),
        members,
        kth_distance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbourhoods_use_the_undirected_graph() {
        // Cell 3 lists cell 0 among its neighbours, cell 0 does not list cell 3.
        let knn = Knn {
            n_neighbors: 2,
            indices: vec![0, 1, 1, 0, 2, 1, 3, 0],
            distances: vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 2.0],
        };
        let n = neighbourhoods_from_index_cells(&knn, &[0, 2]).unwrap();
        assert_eq!(n.members, vec![vec![0, 1, 3], vec![1, 2]]);
        assert_eq!(n.kth_distance, vec![1.0, 1.0]);
        assert!(neighbourhoods_from_index_cells(&knn, &[0, 0]).is_err());
        assert!(neighbourhoods_from_index_cells(&knn, &[4]).is_err());
    }
}
