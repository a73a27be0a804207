//! The embedding as the searches read it (plain and padded rows) and the distances between
//! cells: exact in `f64` for the final ranking, squared Euclidean in `f32` for NN-descent.

use super::Metric;
use rayon::prelude::*;

/// The embedding in row-major `f32`, with what the metric needs.
pub(super) struct Points {
    /// Coordinates used by the candidate search (unit rows for cosine).
    pub(super) x: Vec<f32>,
    /// Original coordinates (for the exact re-ranking).
    orig: Vec<f32>,
    /// Squared norms of `x` rows.
    pub(super) sq: Vec<f32>,
    pub(super) n: usize,
    pub(super) d: usize,
    metric: Metric,
}

impl Points {
    pub(super) fn new(orig: Vec<f32>, n: usize, d: usize, metric: Metric) -> Self {
        let x = match metric {
            Metric::Euclidean => orig.clone(),
            Metric::Cosine => {
                let mut x = orig.clone();
                x.par_chunks_mut(d).for_each(|r| {
                    let nrm = r
                        .iter()
                        .map(|&v| (v as f64) * (v as f64))
                        .sum::<f64>()
                        .sqrt();
                    if nrm > 0.0 {
                        r.iter_mut().for_each(|v| *v = (*v as f64 / nrm) as f32);
                    }
                });
                x
            }
        };
        let sq = x
            .par_chunks(d)
            .map(|r| r.iter().map(|v| v * v).sum())
            .collect();
        Points {
            x,
            orig,
            sq,
            n,
            d,
            metric,
        }
    }

    /// Distance in `f64` from the original coordinates.
    pub(super) fn exact(&self, i: usize, j: usize) -> f64 {
        let a = &self.orig[i * self.d..(i + 1) * self.d];
        let b = &self.orig[j * self.d..(j + 1) * self.d];
        match self.metric {
            Metric::Euclidean => {
                // Four independent lanes, then a fixed reduction order.
                let mut acc = [0f64; 4];
                let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
                let (ra, rb) = (ca.remainder(), cb.remainder());
                for (x, y) in ca.zip(cb) {
                    for l in 0..4 {
                        let t = x[l] as f64 - y[l] as f64;
                        acc[l] += t * t;
                    }
                }
                let mut s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
                for (&u, &v) in ra.iter().zip(rb) {
                    let t = u as f64 - v as f64;
                    s += t * t;
                }
                s.sqrt()
            }
            Metric::Cosine => {
                let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
                for (&u, &v) in a.iter().zip(b) {
                    ab += u as f64 * v as f64;
                    aa += u as f64 * u as f64;
                    bb += v as f64 * v as f64;
                }
                if aa == 0.0 || bb == 0.0 {
                    1.0
                } else {
                    (1.0 - ab / (aa.sqrt() * bb.sqrt())).max(0.0)
                }
            }
        }
    }
}

/// The search coordinates of the NN-descent, each row padded with zeros to a multiple of 8
/// components so that the distance kernel runs on whole 8-lane blocks.
pub(super) struct Padded {
    x: Vec<f32>,
    pub(super) stride: usize,
    pub(super) n: usize,
    pub(super) d: usize,
}

impl Padded {
    pub(super) fn new(points: &Points) -> Self {
        let (n, d) = (points.n, points.d);
        let stride = d.div_ceil(8) * 8;
        let mut x = vec![0f32; n * stride];
        x.par_chunks_mut(stride)
            .zip(points.x.par_chunks(d))
            .for_each(|(dst, src)| dst[..d].copy_from_slice(src));
        Padded { x, stride, n, d }
    }

    /// The rows in the order `order` (row `r` of the result is row `order[r]`).
    pub(super) fn permuted(&self, order: &[u32]) -> Self {
        let mut x = vec![0f32; self.x.len()];
        x.par_chunks_mut(self.stride)
            .zip(order.par_iter())
            .for_each(|(dst, &o)| dst.copy_from_slice(self.row(o as usize)));
        Padded { x, ..*self }
    }

    #[inline(always)]
    pub(super) fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.stride..(i + 1) * self.stride]
    }
}

/// Squared Euclidean distance in `f32` between two padded rows: eight lanes each summing
/// every eighth component, then `((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7))`. Symmetric
/// bit for bit (`(a-b)^2 == (b-a)^2`), and [`sqdist_avx`] computes the same bits.
#[inline(always)]
pub(super) fn sqdist(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            let t = x[l] - y[l];
            acc[l] += t * t;
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// [`sqdist`] or [`sqdist_avx`], whichever the processor runs (the same bits).
pub(super) fn dist_one(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the processor supports AVX; padded rows have equal lengths, multiples of 8.
        return unsafe { sqdist_avx(a, b) };
    }
    sqdist(a, b)
}

/// [`sqdist`] with 256-bit vectors (no FMA, so every lane rounds as in [`sqdist`]).
///
/// # Safety
/// The processor must support AVX; `a` and `b` must have the same length, a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
pub(super) unsafe fn sqdist_avx(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let blocks = a.len().min(b.len()) / 8;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm256_setzero_ps();
    for c in 0..blocks {
        // SAFETY: 8 * c + 8 <= len of both slices.
        let (x, y) = unsafe {
            (
                _mm256_loadu_ps(pa.add(8 * c)),
                _mm256_loadu_ps(pb.add(8 * c)),
            )
        };
        let t = _mm256_sub_ps(x, y);
        acc = _mm256_add_ps(acc, _mm256_mul_ps(t, t));
    }
    // (l0 + l4, l1 + l5, l2 + l6, l3 + l7), then ((.0 + .1), (.2 + .3)), then their sum.
    let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let h = _mm_hadd_ps(s, s);
    _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)))
}
