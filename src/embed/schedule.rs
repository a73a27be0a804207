//! Which samples each cell applies in an epoch: umap-learn's edge schedule and the negative
//! samples, drawn from random streams seeded by `(seed, epoch, cell)`.

use super::edges::Edges;

/// SplitMix64 step, used to derive per-(epoch, cell) random streams.
#[inline]
pub(super) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64* generator for negative samples.
pub(super) struct Xs(pub(super) u64);
impl Xs {
    #[inline]
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Whether an edge sampled every `eps` epochs is due at epoch `n`, umap-learn's schedule:
/// due when `next <= n`, and then `next += eps` (`next` starts at `eps`). (The out-edges keep
/// [`due_epoch`] of `next` beside it and test that.)
#[inline]
fn due(next: &mut f64, eps: f64, n: usize) -> bool {
    if *next <= n as f64 {
        *next += eps;
        true
    } else {
        false
    }
}

/// The first whole epoch at which an edge whose next sample is at `next` is due: `ceil(next)`,
/// so that `next <= n` exactly when `due_epoch(next) <= n` for every whole `n` below
/// `u32::MAX` (an epoch too far to count is `u32::MAX`, never reached).
#[inline]
pub(super) fn due_epoch(next: f64) -> u32 {
    // `ceil` without the library call it is on processors without SSE4.1
    if next <= 0.0 {
        0
    } else if next < (u32::MAX - 1) as f64 {
        let t = next as u32;
        t + u32::from((t as f64) < next)
    } else {
        u32::MAX
    }
}

/// Marks a negative sample in a task's list of samples (cell indices are below 2^31).
pub(super) const NEG: u32 = 1 << 31;

/// The cells of one parallel task with their part of the schedule state.
pub(super) struct Chunk<'a> {
    /// first cell
    pub(super) first: usize,
    /// next epoch at which each out-edge is sampled
    pub(super) out_next: &'a mut [f64],
    /// [`due_epoch`] of `out_next`: the test of each edge reads 4 bytes
    pub(super) out_due: &'a mut [u32],
    /// next epoch at which each out-edge draws negative samples
    pub(super) neg_next: &'a mut [f64],
    /// epochs between two negative samplings of each out-edge (`eps / negative_sample_rate`)
    pub(super) eps_neg: &'a [f64],
    /// next epoch at which each in-edge is sampled
    pub(super) in_next: &'a mut [f64],
}

/// Lists the samples of the chunk's cells due at `epoch` (umap-learn's schedule): per cell, its
/// due out-edges each followed by its negative samples, then its due in-edges (umap-learn's
/// `move_other`). `ends[c]` is the end of cell `first + c`'s samples. In a symmetric graph
/// the in-edges of a cell are its out-edges, with the same schedule: they are the due
/// out-edges again, with no second schedule to keep.
#[allow(clippy::too_many_arguments)]
pub(super) fn due_samples(
    edges: &Edges,
    ch: &mut Chunk<'_>,
    n_cells: usize,
    epoch: usize,
    nsr: f64,
    epoch_seed: u64,
    samples: &mut Vec<u32>,
    ends: &mut Vec<u32>,
    due_out: &mut Vec<u32>,
) {
    samples.clear();
    ends.clear();
    let n = edges.n;
    let e0 = edges.indptr[ch.first];
    let t0 = edges.in_edges.as_ref().map_or(0, |t| t.indptr[ch.first]);
    let now = epoch as f64;
    let epoch32 = u32::try_from(epoch).unwrap_or(u32::MAX);
    for j in ch.first..ch.first + n_cells {
        let mut rng = Xs(splitmix(epoch_seed ^ splitmix(j as u64)) | 1);
        let (a, b) = (edges.indptr[j], edges.indptr[j + 1]);
        // The due out-edges (offsets from `a`), listed without a branch per edge: whether an
        // edge is due changes from epoch to epoch and is hard to predict.
        due_out.clear();
        due_out.resize(b - a, 0);
        let mut m = 0;
        for (o, &d) in ch.out_due[a - e0..b - e0].iter().enumerate() {
            due_out[m] = o as u32;
            m += usize::from(d <= epoch32);
        }
        due_out.truncate(m);
        for &o in due_out.iter() {
            let e = a + o as usize;
            let eps = edges.eps[e];
            // due: `next <= epoch` exactly when `due_epoch(next) <= epoch`
            let next = &mut ch.out_next[e - e0];
            debug_assert!(*next <= now);
            *next += eps;
            ch.out_due[e - e0] = due_epoch(*next);
            samples.push(edges.tail[e]);
            if nsr <= 0.0 {
                continue;
            }
            let slot = &mut ch.neg_next[e - e0];
            let epn = ch.eps_neg[e - e0];
            let q = (now - *slot) / epn;
            if q.is_nan() || q < 1.0 {
                continue;
            }
            // q >= 1: truncation is floor
            let n_neg = q as u64;
            *slot += n_neg as f64 * epn;
            for _ in 0..n_neg {
                // uniform in 0..n by multiply-shift (n < 2^31), no division
                let k = (((rng.next() >> 32) * n as u64) >> 32) as usize;
                if k != j {
                    samples.push(k as u32 | NEG);
                }
            }
        }
        match &edges.in_edges {
            None => samples.extend(due_out.iter().map(|&o| edges.tail[a + o as usize])),
            Some(tr) => {
                for t in tr.indptr[j]..tr.indptr[j + 1] {
                    if due(&mut ch.in_next[t - t0], tr.eps[t], epoch) {
                        samples.push(tr.head[t]);
                    }
                }
            }
        }
        ends.push(samples.len() as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_epoch_is_the_test_of_the_schedule() {
        let mut nexts = vec![0.0, 1.0, 2.0, 1e-300, f64::NAN, f64::INFINITY, 4e9, 1e20];
        for k in 0..400 {
            let x = k as f64 * 0.137;
            nexts.extend([x, x.next_up(), x.next_down().max(0.0)]);
        }
        for &next in &nexts {
            for n in 0..60usize {
                assert_eq!(
                    due_epoch(next) <= n as u32,
                    next <= n as f64,
                    "{next} at {n}"
                );
            }
        }
        assert_eq!(due_epoch(f64::NAN), u32::MAX);
        assert_eq!(due_epoch(7.0), 7);
        assert_eq!(due_epoch(7.0f64.next_up()), 8);
    }
}
