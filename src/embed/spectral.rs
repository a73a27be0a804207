//! Eigenvectors 2 and 3 of the normalized Laplacian of one connected component of the graph,
//! the spectral start.

use super::edges::Edges;
use super::lanczos::largest_eigenpairs;
use super::rows::{par_csr, par_rows_mut};
use faer::Mat;
use rayon::prelude::*;

/// Power of the spectral operator (see [`ShiftedNormAdj`]).
const SPECTRAL_POWER: usize = 3;

/// Relative residual at which an eigenpair of the start is converged: `|B^3 x - theta x| <=
/// tol theta`. umap-learn asks `eigsh` for `1e-4` with a Krylov basis of `sqrt(n)` vectors
/// (223 at 50,000 cells), which resolves the close eigenvalues of a graph with several
/// clusters; with the 40 vectors of [`largest_eigenpairs`] a `1e-4` test can stop on a
/// neighbouring eigenvector (on the pipeline's 50,000-cell graph, whose eight smallest
/// Laplacian eigenvalues lie within `2e-3` of each other, a 24-vector basis stops on the fourth
/// instead of the third). At `1e-8` the pairs found there are those of a `1e-10` solve (the
/// vectors' cosines 1 to 1e-12), at 40 or 24 vectors.
const SPECTRAL_TOL: f64 = 1e-8;

/// Restarts of the Krylov basis before the spectral start gives up (a random start then).
const SPECTRAL_RESTARTS: usize = 300;

/// `B^3 x` with `B = (I + D^-1/2 W D^-1/2) / 2` on one component. `B` has the eigenvectors of
/// the normalized Laplacian `L = I - D^-1/2 W D^-1/2` with eigenvalues `1 - l/2` in [0, 1],
/// so the wanted ones (smallest `l`) are the largest, in the same order; the cube widens the
/// relative gaps between them, so the relative residual test tells the close eigenvalues apart
/// with fewer Lanczos steps, for three sparse products per step. With `B` itself and a `1e-4`
/// test the third vector found on the pipeline's 50,000-cell graph was another one (cosine
/// 0.06 with the third).
#[derive(Debug)]
struct ShiftedNormAdj {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f64>,
}

impl ShiftedNormAdj {
    /// Row `i` of the operator times `x`.
    #[inline]
    fn row_times(&self, i: usize, x: impl Fn(usize) -> f64) -> f64 {
        let mut s = x(i);
        for p in self.indptr[i]..self.indptr[i + 1] {
            s += self.values[p] * x(self.indices[p] as usize);
        }
        s
    }
}

impl ShiftedNormAdj {
    /// `dst = B src`, each row in parallel.
    fn half_times(&self, src: &[f64], dst: &mut [f64]) {
        dst.par_iter_mut()
            .enumerate()
            .with_min_len(4096)
            .for_each(|(i, d)| *d = 0.5 * self.row_times(i, |j| src[j]));
    }

    /// `out = B^3 x`, with `tmp` (as long as `x`) as working space: the products alternate
    /// between `out` and `tmp`, copied only when the last one lands in `tmp`.
    fn apply_to(&self, x: &[f64], out: &mut [f64], tmp: &mut [f64]) {
        self.half_times(x, out);
        let mut in_out = true;
        for _ in 1..SPECTRAL_POWER {
            if in_out {
                self.half_times(out, tmp);
            } else {
                self.half_times(tmp, out);
            }
            in_out = !in_out;
        }
        if !in_out {
            out.copy_from_slice(tmp);
        }
    }
}

/// Eigenvectors 2 and 3 of the normalized Laplacian of one connected component (its cells
/// `members`, in increasing order; row-major m x 2), or `None` if the solver does not converge.
pub(super) fn component_spectral(edges: &Edges, members: &[usize]) -> Option<Vec<f64>> {
    let m = members.len();
    let mut local = vec![u32::MAX; edges.n];
    for (li, &i) in members.iter().enumerate() {
        local[i] = li as u32;
    }
    // W + W^T over the stored edges gives the symmetric graph umap-learn's Laplacian uses when
    // the input is symmetric; a stored symmetric graph is used as is. A component holds every
    // tail of its cells' edges (the components join both ends of every edge), so each row is
    // the cell's edges, copied in blocks of members in parallel.
    let (indptr, indices, mut values) = par_csr(
        m,
        |r| edges.indptr[members[r] + 1] - edges.indptr[members[r]],
        |r, ix: &mut [u32], vs: &mut [f64]| {
            let row = edges.indptr[members[r]]..edges.indptr[members[r] + 1];
            for ((x, v), e) in ix.iter_mut().zip(vs.iter_mut()).zip(row) {
                *x = local[edges.tail[e] as usize];
                *v = edges.weight[e] as f64;
            }
        },
    );
    // column sums (umap-learn: graph.sum(axis=0)). When the in-edges are the out-edges (the
    // rows' tails increasing, each edge's reverse with the same weight; a component holds
    // every neighbour of its cells), the sum of column c adds the entries of row c in the
    // same order: the row sums, in parallel, give the same bits.
    let deg: Vec<f64> = if edges.in_edges.is_none() {
        (0..m)
            .into_par_iter()
            .map(|r| {
                values[indptr[r]..indptr[r + 1]]
                    .iter()
                    .fold(0.0f64, |s, &v| s + v)
            })
            .collect()
    } else {
        let mut deg = vec![0.0f64; m];
        for (p, &c) in indices.iter().enumerate() {
            deg[c as usize] += values[p];
        }
        deg
    };
    if deg.iter().any(|&d| d <= 0.0) {
        return None;
    }
    let sqrt_deg: Vec<f64> = deg.iter().map(|d| d.sqrt()).collect();
    par_rows_mut(&indptr, &mut values, |r, row| {
        let cols = &indices[indptr[r]..indptr[r + 1]];
        for (v, &c) in row.iter_mut().zip(cols) {
            *v /= sqrt_deg[r] * sqrt_deg[c as usize];
        }
    });
    let op = ShiftedNormAdj {
        indptr,
        indices,
        values,
    };
    let k = 3.min(m);
    if k < 3 {
        return None;
    }
    if m <= 300 {
        // small component: dense eigendecomposition (eigenvalues ascending)
        let mut dense = Mat::<f64>::zeros(m, m);
        for r in 0..m {
            dense[(r, r)] += 1.0;
            for p in op.indptr[r]..op.indptr[r + 1] {
                dense[(r, op.indices[p] as usize)] += op.values[p];
            }
        }
        let evd = dense.self_adjoint_eigen(faer::Side::Lower);
        crate::cpu::clear_upper_simd_state_here();
        let evd = evd.ok()?;
        let u = evd.U();
        let mut out = Vec::with_capacity(2 * m);
        for i in 0..m {
            out.push(u[(i, m - 2)]);
            out.push(u[(i, m - 3)]);
        }
        return out.iter().all(|v| v.is_finite()).then_some(out);
    }
    let mut tmp = vec![0.0f64; m];
    let mut apply = |x: &[f64], out: &mut [f64]| op.apply_to(x, out, &mut tmp);
    let v0 = vec![1.0 / (m as f64).sqrt(); m];
    let (_, vecs) = largest_eigenpairs(&mut apply, m, k, &v0, SPECTRAL_TOL, SPECTRAL_RESTARTS)?;
    let out: Vec<f64> = vecs[1]
        .iter()
        .zip(&vecs[2])
        .flat_map(|(&x, &y)| [x, y])
        .collect();
    if out.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some(out)
}
