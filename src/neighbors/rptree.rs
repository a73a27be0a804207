//! Random-projection trees, whose leaves start the NN-descent neighbour lists.

use super::points::Padded;
use rand::Rng;
use rand_chacha::ChaCha12Rng;

/// `offset + normal . x_i` for every cell `i` of `idx` (padded `normal`), dot products
/// summed in eight lanes as in [`sqdist`].
///
/// [`sqdist`]: super::points::sqdist
fn margins(points: &Padded, normal: &[f32], offset: f32, idx: &[u32], out: &mut Vec<f32>) {
    #[inline(always)]
    fn body(points: &Padded, normal: &[f32], offset: f32, idx: &[u32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(idx.iter().map(|&i| {
            let mut acc = [0f32; 8];
            for (x, y) in normal
                .chunks_exact(8)
                .zip(points.row(i as usize).chunks_exact(8))
            {
                for l in 0..8 {
                    acc[l] += x[l] * y[l];
                }
            }
            offset
                + (((acc[0] + acc[4]) + (acc[1] + acc[5]))
                    + ((acc[2] + acc[6]) + (acc[3] + acc[7])))
        }));
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        unsafe fn avx(
            points: &Padded,
            normal: &[f32],
            offset: f32,
            idx: &[u32],
            out: &mut Vec<f32>,
        ) {
            body(points, normal, offset, idx, out)
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the processor supports AVX (checked just above).
            return unsafe { avx(points, normal, offset, idx, out) };
        }
    }
    body(points, normal, offset, idx, out)
}

/// Random-projection tree leaves (Euclidean hyperplanes between two random points).
pub(super) fn rp_tree_leaves(
    points: &Padded,
    rng: &mut ChaCha12Rng,
    leaf_size: usize,
) -> Vec<Vec<u32>> {
    let d = points.d;
    let mut leaves = Vec::new();
    let mut stack: Vec<Vec<u32>> = vec![(0..points.n as u32).collect()];
    let mut normal = vec![0f32; points.stride];
    let mut margin = Vec::new();
    while let Some(idx) = stack.pop() {
        if idx.len() <= leaf_size {
            leaves.push(idx);
            continue;
        }
        let a = idx[rng.gen_range(0..idx.len())] as usize;
        let mut b = idx[rng.gen_range(0..idx.len())] as usize;
        if a == b {
            b = idx[(idx.iter().position(|&v| v as usize == a).unwrap_or(0) + 1) % idx.len()]
                as usize;
        }
        let (pa, pb) = (points.row(a), points.row(b));
        let mut offset = 0f32;
        for t in 0..d {
            normal[t] = pa[t] - pb[t];
            offset -= normal[t] * (pa[t] + pb[t]) * 0.5;
        }
        let mut left = Vec::with_capacity(idx.len() / 2 + 1);
        let mut right = Vec::with_capacity(idx.len() / 2 + 1);
        margins(points, &normal, offset, &idx, &mut margin);
        for (&i, &s) in idx.iter().zip(&margin) {
            let side = if s == 0.0 { rng.gen::<bool>() } else { s > 0.0 };
            if side {
                left.push(i);
            } else {
                right.push(i);
            }
        }
        if left.is_empty() || right.is_empty() {
            // Degenerate split (duplicates): split at random.
            let mut all = idx;
            for t in (1..all.len()).rev() {
                all.swap(t, rng.gen_range(0..=t));
            }
            let half = all.len() / 2;
            right = all.split_off(half);
            left = all;
        }
        stack.push(right);
        stack.push(left);
    }
    leaves
}
