//! The epochs of stochastic gradient descent, parallel over fixed chunks of cells.

use super::edges::Edges;
use super::kernel::{apply_samples, Step};
use super::pow::PowTable;
use super::schedule::{due_epoch, due_samples, splitmix, Chunk};
use super::UmapOptions;
use rayon::prelude::*;

/// Cells per parallel task of the optimization.
const CHUNK: usize = 2048;

pub(super) fn optimize(
    edges: &Edges,
    pos: &mut Vec<f32>,
    a: f32,
    b: f32,
    n_epochs: usize,
    opts: &UmapOptions,
    progress: &mut dyn FnMut(f64),
) {
    let n = edges.n;
    let nsr = opts.negative_sample_rate as f64;
    let gamma = opts.repulsion_strength;
    // umap-learn: epochs_per_negative_sample = eps / rate, next negative sample at that epoch
    let eps_neg: Vec<f64> = edges.eps.iter().map(|&e| e / nsr).collect();
    let mut neg_next: Vec<f64> = if nsr > 0.0 {
        eps_neg.clone()
    } else {
        vec![f64::INFINITY; edges.eps.len()]
    };
    // next epoch at which each out-edge and each in-edge is sampled
    let mut out_next = edges.eps.clone();
    let mut out_due: Vec<u32> = out_next.iter().map(|&x| due_epoch(x)).collect();
    let mut in_next = match &edges.in_edges {
        None => Vec::new(),
        Some(t) => t.eps.clone(),
    };
    let mut next = pos.clone();
    let mut chunks = Vec::with_capacity(n.div_ceil(CHUNK));
    {
        let (mut o, mut g, mut t) = (&mut out_next[..], &mut neg_next[..], &mut in_next[..]);
        let mut d = &mut out_due[..];
        for first in (0..n).step_by(CHUNK) {
            let last = (first + CHUNK).min(n);
            let ne = edges.indptr[last] - edges.indptr[first];
            let nt = match &edges.in_edges {
                None => 0,
                Some(t) => t.indptr[last] - t.indptr[first],
            };
            let (o1, o2) = std::mem::take(&mut o).split_at_mut(ne);
            let (d1, d2) = std::mem::take(&mut d).split_at_mut(ne);
            let (g1, g2) = std::mem::take(&mut g).split_at_mut(ne);
            let (t1, t2) = std::mem::take(&mut t).split_at_mut(nt);
            chunks.push(Chunk {
                first,
                out_next: o1,
                out_due: d1,
                neg_next: g1,
                eps_neg: &eps_neg[edges.indptr[first]..edges.indptr[last]],
                in_next: t1,
            });
            (o, g, t, d) = (o2, g2, t2, d2);
        }
    }
    let seed = splitmix(opts.seed ^ 0x005E_ED0F_0A11);
    let pow_b = PowTable::new(b);
    progress(0.0);
    for epoch in 0..n_epochs {
        let step = Step {
            pow_b: &pow_b,
            a,
            att: -2.0 * a * b,
            rep: 2.0 * gamma * b,
            alpha: opts.learning_rate * (1.0 - epoch as f32 / n_epochs as f32),
        };
        let snapshot: &[f32] = pos;
        let epoch_seed = splitmix(seed ^ splitmix(epoch as u64));
        next.par_chunks_mut(2 * CHUNK)
            .zip(chunks.par_iter_mut())
            .for_each_init(
                || (Vec::new(), Vec::new(), Vec::new()),
                |(samples, ends, due_out), (out, ch)| {
                    let m = out.len() / 2;
                    due_samples(edges, ch, m, epoch, nsr, epoch_seed, samples, ends, due_out);
                    out.copy_from_slice(&snapshot[2 * ch.first..2 * (ch.first + m)]);
                    apply_samples(step, samples, ends, snapshot, out);
                },
            );
        std::mem::swap(pos, &mut next);
        if (epoch + 1) % 10 == 0 || epoch + 1 == n_epochs {
            progress((epoch + 1) as f64 / n_epochs as f64);
        }
    }
}
