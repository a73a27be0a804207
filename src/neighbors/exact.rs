//! The exact search: blocked brute force with the dot products from dense matrix products.

use super::points::Points;
use rayon::prelude::*;

/// Sorted bounded list of (squared distance, index) kept smallest-first.
#[inline]
fn push_bounded(list: &mut Vec<(f32, u32)>, cap: usize, d: f32, j: u32) {
    if list.len() == cap {
        let last = list[cap - 1];
        if (d, j) >= last {
            return;
        }
        list.pop();
    }
    let pos = list.partition_point(|&(a, b)| (a, b) < (d, j));
    list.insert(pos, (d, j));
}

/// Exact search: the `m` nearest other cells of every cell (unordered within ties at the
/// boundary, re-ranked by [`finish`]).
///
/// [`finish`]: super::finish
pub(super) fn exact_candidates(points: &Points, m: usize) -> Vec<Vec<u32>> {
    const QB: usize = 128;
    const RB: usize = 1024;
    let (n, d) = (points.n, points.d);
    let blocks: Vec<Vec<Vec<u32>>> = (0..n.div_ceil(QB))
        .into_par_iter()
        .map(|qb| {
            let q0 = qb * QB;
            let q1 = (q0 + QB).min(n);
            let nq = q1 - q0;
            let qmat = faer::MatRef::from_row_major_slice(&points.x[q0 * d..q1 * d], nq, d);
            let mut dots = faer::Mat::<f32>::zeros(nq, RB);
            let mut lists: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(m + 1); nq];
            for r0 in (0..n).step_by(RB) {
                let r1 = (r0 + RB).min(n);
                let nr = r1 - r0;
                let rt = faer::MatRef::from_column_major_slice(&points.x[r0 * d..r1 * d], d, nr);
                let mut dst = dots.as_mut().submatrix_mut(0, 0, nq, nr);
                faer::linalg::matmul::matmul(
                    dst.as_mut(),
                    faer::Accum::Replace,
                    qmat,
                    rt,
                    1.0f32,
                    faer::Par::Seq,
                );
                crate::cpu::clear_upper_simd_state_here();
                for (a, list) in lists.iter_mut().enumerate() {
                    let i = q0 + a;
                    let qn = points.sq[i];
                    let row = dst.as_ref().row(a);
                    for b in 0..nr {
                        let j = r0 + b;
                        if j == i {
                            continue;
                        }
                        let d2 = (qn + points.sq[j] - 2.0 * row[b]).max(0.0);
                        if list.len() < m || d2 <= list[m - 1].0 {
                            push_bounded(list, m, d2, j as u32);
                        }
                    }
                }
            }
            lists
                .into_iter()
                .map(|l| l.into_iter().map(|p| p.1).collect())
                .collect()
        })
        .collect();
    blocks.into_iter().flatten().collect()
}
