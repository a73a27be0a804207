//! The gradient steps of one epoch: the constants of a step, and a task's cells moved along
//! their listed samples in interleaved lanes (scalar code, or the AVX2 kernel when the processor
//! has it).

#[cfg(target_arch = "x86_64")]
use super::avx2::apply_samples_avx2;
use super::pow::PowTable;
use super::schedule::NEG;

#[inline]
fn clip(v: f32) -> f32 {
    v.clamp(-4.0, 4.0)
}

/// The constants of one epoch's gradient steps.
#[derive(Clone, Copy)]
pub(super) struct Step<'a> {
    pub(super) pow_b: &'a PowTable,
    pub(super) a: f32,
    /// `-2ab`
    pub(super) att: f32,
    /// `2 gamma b`
    pub(super) rep: f32,
    pub(super) alpha: f32,
}

impl Step<'_> {
    /// One gradient step of `(x, y)` towards (attraction) or away from (negative sample)
    /// `other`. Attraction: `-2ab d²^(b-1) / (1 + a d²^b)`, written `-2ab d²^b / (d² (1 + a
    /// d²^b))`; repulsion `2 gamma b / ((0.001 + d²)(1 + a d²^b))`: one division either way.
    /// Nothing moves at distance 0.
    #[inline(always)]
    fn apply(&self, x: &mut f32, y: &mut f32, snapshot: &[f32], sample: u32) {
        let k = (sample & !NEG) as usize;
        let neg = sample & NEG != 0;
        let dx = *x - snapshot[2 * k];
        let dy = *y - snapshot[2 * k + 1];
        let d2 = dx * dx + dy * dy;
        let pb = self.pow_b.pow(d2);
        let q = self.a * pb + 1.0;
        let (num, den) = if neg {
            (self.rep, (0.001 + d2) * q)
        } else {
            (self.att * pb, d2 * q)
        };
        let gc = if d2 > 0.0 { num / den } else { 0.0 };
        *x += clip(gc * dx) * self.alpha;
        *y += clip(gc * dy) * self.alpha;
    }
}
/// One lane of [`apply_samples`]: a run of consecutive cells of a task, each moved along its
/// own samples (a chain: each step reads the position the previous one wrote), one cell after
/// the other.
#[derive(Clone, Copy)]
pub(super) struct Lane {
    /// the current cell (the first with samples left), or `last` once the lane is done
    pub(super) cell: usize,
    /// end of the lane's cells
    pub(super) last: usize,
    /// next sample
    pub(super) p: usize,
    /// end of the lane's samples
    pub(super) stop: usize,
    /// position of the current cell
    pub(super) x: f32,
    pub(super) y: f32,
}

impl Lane {
    /// Cells `first..last` of a task whose samples end at `ends`, at the first cell with samples.
    fn new(first: usize, last: usize, ends: &[u32], pos: &[f32]) -> Lane {
        let start_of = |c: usize| if c == 0 { 0 } else { ends[c - 1] as usize };
        let mut lane = Lane {
            cell: first,
            last,
            p: start_of(first),
            stop: start_of(last),
            x: 0.0,
            y: 0.0,
        };
        lane.enter(ends, pos);
        lane
    }

    /// Moves on from `cell` to the first cell with samples at or after `p` and reads its
    /// position.
    #[inline]
    fn enter(&mut self, ends: &[u32], pos: &[f32]) {
        while self.cell < self.last && ends[self.cell] as usize <= self.p {
            self.cell += 1;
        }
        if self.cell < self.last {
            self.x = pos[2 * self.cell];
            self.y = pos[2 * self.cell + 1];
        }
    }

    /// After the last sample of the current cell: writes its position and moves on.
    #[inline]
    pub(super) fn leave(&mut self, ends: &[u32], pos: &mut [f32]) {
        pos[2 * self.cell] = self.x;
        pos[2 * self.cell + 1] = self.y;
        self.enter(ends, pos);
    }

    /// Applies the lane's remaining samples one by one.
    pub(super) fn finish(
        &mut self,
        step: Step<'_>,
        samples: &[u32],
        ends: &[u32],
        snapshot: &[f32],
        pos: &mut [f32],
    ) {
        while self.p < self.stop {
            step.apply(&mut self.x, &mut self.y, snapshot, samples[self.p]);
            self.p += 1;
            if self.p == ends[self.cell] as usize {
                self.leave(ends, pos);
            }
        }
    }
}

/// Splits a task's cells (their samples ending at `ends`) into `L` lanes of consecutive cells
/// with about as many samples each.
pub(super) fn split_lanes<const L: usize>(ends: &[u32], pos: &[f32]) -> [Lane; L] {
    let m = ends.len();
    let total = ends.last().map_or(0, |&e| e as usize);
    let mut first = 0;
    std::array::from_fn(|l| {
        let last = if l + 1 == L {
            m
        } else {
            let target = total * (l + 1) / L;
            ends.partition_point(|&e| e as usize <= target).min(m)
        };
        let lane = Lane::new(first, last, ends, pos);
        first = last;
        lane
    })
}

/// Applies the listed samples of a chunk's cells (see [`due_samples`]) to their positions in
/// `pos` (which holds their positions at the start of the epoch), reading the other cells'
/// positions in `snapshot`. Each cell's steps are [`Step::apply`] in the order listed, so the
/// result does not depend on how the cells are spread over lanes: the AVX2 kernel
/// ([`apply_samples_avx2`]), used when the processor has AVX2, gives the same bits as the
/// scalar one ([`apply_samples_scalar`]).
///
/// [`due_samples`]: super::schedule::due_samples
pub(super) fn apply_samples(
    step: Step<'_>,
    samples: &[u32],
    ends: &[u32],
    snapshot: &[f32],
    pos: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { apply_samples_avx2(step, samples, ends, snapshot, pos) };
    }
    apply_samples_scalar(step, samples, ends, snapshot, pos)
}

/// Cells moved together by [`apply_samples_scalar`]: interleaving the chains of several cells
/// keeps the processor busy.
const LANES: usize = 4;

/// [`apply_samples`] with scalar code, [`LANES`] chains interleaved.
pub(super) fn apply_samples_scalar(
    step: Step<'_>,
    samples: &[u32],
    ends: &[u32],
    snapshot: &[f32],
    pos: &mut [f32],
) {
    let mut lanes: [Lane; LANES] = split_lanes(ends, pos);
    // all lanes together while each has samples left
    while lanes.iter().all(|l| l.p < l.stop) {
        let run = lanes
            .iter()
            .map(|l| ends[l.cell] as usize - l.p)
            .min()
            .unwrap_or(0);
        let [s0, s1, s2, s3] = std::array::from_fn(|l| &samples[lanes[l].p..lanes[l].p + run]);
        let [mut x0, mut x1, mut x2, mut x3] = lanes.map(|l| l.x);
        let [mut y0, mut y1, mut y2, mut y3] = lanes.map(|l| l.y);
        for (((&a, &b), &c), &d) in s0.iter().zip(s1).zip(s2).zip(s3) {
            step.apply(&mut x0, &mut y0, snapshot, a);
            step.apply(&mut x1, &mut y1, snapshot, b);
            step.apply(&mut x2, &mut y2, snapshot, c);
            step.apply(&mut x3, &mut y3, snapshot, d);
        }
        for (lane, (x, y)) in lanes
            .iter_mut()
            .zip([(x0, y0), (x1, y1), (x2, y2), (x3, y3)])
        {
            lane.x = x;
            lane.y = y;
            lane.p += run;
            if lane.p == ends[lane.cell] as usize {
                lane.leave(ends, pos);
            }
        }
    }
    // the rest lane by lane
    for lane in &mut lanes {
        lane.finish(step, samples, ends, snapshot, pos);
    }
}
