//! Dense kernels over row-major `cells x components` arrays: products over the fixed chunks,
//! row normalization, dot products and distances in a fixed order.

use super::Chunk;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// `out (n x m) = x (n x d) · rowsᵀ` with `rows` `m x d`, over the fixed chunks.
pub(super) fn cells_times_rows(
    x: &[f32],
    d: usize,
    rows: &[f32],
    m: usize,
    out: &mut [f32],
    chunks: &[Chunk],
) {
    let rt = MatRef::from_column_major_slice(rows, d, m);
    let mut pieces: Vec<&mut [f32]> = Vec::with_capacity(chunks.len());
    let mut rest: &mut [f32] = out;
    for ch in chunks {
        let (head, tail) = rest.split_at_mut((ch.end - ch.start) * m);
        pieces.push(head);
        rest = tail;
    }
    pieces
        .into_par_iter()
        .zip(chunks.par_iter())
        .for_each(|(o, ch)| {
            let nc = ch.end - ch.start;
            let xm = MatRef::from_row_major_slice(&x[ch.start * d..ch.end * d], nc, d);
            let dst = MatMut::from_row_major_slice_mut(o, nc, m);
            faer::linalg::matmul::matmul(dst, Accum::Replace, xm, rt, 1.0f32, Par::Seq);
            crate::cpu::clear_upper_simd_state_here();
        });
}

/// Rows of `src` scaled to unit Euclidean length into `dst` (a zero row stays zero).
pub(super) fn cosine_normalize(src: &[f32], dst: &mut [f32], d: usize) {
    dst.par_chunks_mut(d)
        .zip(src.par_chunks(d))
        .for_each(|(o, s)| {
            let norm = dot(s, s).sqrt();
            let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            for (a, &b) in o.iter_mut().zip(s) {
                *a = b * inv;
            }
        });
}

pub(super) fn normalize_rows(x: &mut [f32], d: usize) {
    for row in x.chunks_exact_mut(d) {
        let norm = dot(row, row).sqrt();
        if norm > 0.0 {
            let inv = 1.0 / norm;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// Dot product in a fixed order (8 lanes).
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    acc.iter().sum::<f32>() + s
}

pub(super) fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let t = (x - y) as f64;
            t * t
        })
        .sum()
}

/// Mean over the columns of the (population) variance of each column.
pub(super) fn mean_variance(x: &[f32], n: usize, d: usize) -> f64 {
    let mut mean = vec![0.0f64; d];
    for row in x.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = 0.0f64;
    for row in x.chunks_exact(d) {
        for (m, &v) in mean.iter().zip(row) {
            let t = v as f64 - m;
            var += t * t;
        }
    }
    var / (n as f64 * d as f64)
}
