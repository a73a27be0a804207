//! The gradient steps of [`apply_samples`](super::kernel::apply_samples) on 256-bit vectors,
//! the same bits as the scalar steps.

use super::kernel::{split_lanes, Lane, Step};
use super::pow::PowTable;

/// 256-bit vectors of [`apply_samples_avx2`] interleaved (8 lanes each).
#[cfg(target_arch = "x86_64")]
const AVX2_VECTORS: usize = 2;

/// The vector loop of [`apply_samples_avx2`] goes on while at least this many of its lanes
/// have samples left (the others' results are dropped); the last lanes finish one by one.
/// When the loop stopped at the first lane out of samples, the scalar steps that finished the
/// other lanes ([`Lane::finish`]) took 4.7% of the CPU samples of `benches/umap.rs` on the
/// pipeline's 50,000-cell embedding against 22.9% for this function (`perf`); with this limit
/// the optimization took 2.74-2.78 s instead of 2.87-3.08 s (the same layout).
#[cfg(target_arch = "x86_64")]
const MIN_ACTIVE_LANES: u32 = 4;

/// [`apply_samples`] with AVX2: `8 * AVX2_VECTORS` lanes, one cell's chain per vector lane,
/// the samples, the other cells' positions and the [`PowTable`] entries read lane by lane
/// ([`load_u32s`], [`load_pairs`]) rather than gathered. Every lane computes what
/// [`Step::apply`] computes, operation for operation (no fused multiply-add, IEEE division,
/// the clamp as `min(4, max(-4, v))`, which keeps a NaN as `f32::clamp` does), so the bits are
/// those of [`apply_samples_scalar`]. A lane out of samples stays in the vectors, its results
/// dropped, until fewer than [`MIN_ACTIVE_LANES`] have samples left; those finish one by one
/// with [`Lane::finish`].
///
/// # Safety
/// The processor must support AVX2.
///
/// [`apply_samples`]: super::kernel::apply_samples
/// [`apply_samples_scalar`]: super::kernel::apply_samples_scalar
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn apply_samples_avx2(
    step: Step<'_>,
    samples: &[u32],
    ends: &[u32],
    snapshot: &[f32],
    pos: &mut [f32],
) {
    use std::arch::x86_64::*;
    const G: usize = AVX2_VECTORS;
    const L: usize = 8 * G;
    let mut lanes: [Lane; L] = split_lanes(ends, pos);
    let n = snapshot.len() / 2;
    // the lanes' indices are i32 (positions at 2 k); the sample reads are below the current
    // cell's end, so the ends must not decrease nor pass the samples (as due_samples makes them)
    let fits = n > 0
        && n <= (i32::MAX / 2) as usize
        && samples.len() <= i32::MAX as usize
        && ends.windows(2).all(|w| w[0] <= w[1])
        && ends.last().is_none_or(|&e| e as usize <= samples.len());
    if fits && lanes.iter().all(|l| l.p < l.stop) {
        let mut p: [i32; L] = lanes.map(|l| l.p as i32);
        let mut end: [i32; L] = lanes.map(|l| ends[l.cell] as i32);
        let mut x: [f32; L] = lanes.map(|l| l.x);
        let mut y: [f32; L] = lanes.map(|l| l.y);
        // -1 for a lane with samples left, 0 for one that has run out (its results dropped)
        let mut act: [i32; L] = [-1; L];
        let mut active = u32::MAX >> (32 - L);
        let k_max = _mm256_set1_epi32((n - 1) as i32);
        let zero = _mm256_setzero_si256();
        let low31 = _mm256_set1_epi32(i32::MAX);
        let mut vp = [zero; G];
        let mut vend = [zero; G];
        let mut vx = [_mm256_setzero_ps(); G];
        let mut vy = [_mm256_setzero_ps(); G];
        let mut vact = [_mm256_set1_epi32(-1); G];
        for g in 0..G {
            // SAFETY: the arrays hold L = 8 G values; vector g reads values 8 g .. 8 g + 8.
            unsafe {
                vp[g] = _mm256_loadu_si256(p[8 * g..].as_ptr().cast());
                vend[g] = _mm256_loadu_si256(end[8 * g..].as_ptr().cast());
                vx[g] = _mm256_loadu_ps(x[8 * g..].as_ptr());
                vy[g] = _mm256_loadu_ps(y[8 * g..].as_ptr());
            }
        }
        loop {
            for g in 0..G {
                // SAFETY: `samples` is not empty (every lane has samples) and n - 1 is the
                // last cell of `snapshot`; the prefetched samples are clamped to the list.
                unsafe {
                    prefetch_ahead(samples, vp[g], snapshot.as_ptr(), n - 1);
                }
                // SAFETY: every active lane has samples left (p < end <= stop <=
                // samples.len()) and every other reads sample 0, so the read is of samples[p];
                // the cell index is at most n - 1, so the position reads are of snapshot[2 k]
                // and snapshot[2 k + 1] with 2 k + 1 < 2 n.
                let (neg, ox, oy) = unsafe {
                    let s = load_u32s(samples.as_ptr(), vp[g]);
                    let k = _mm256_min_epu32(_mm256_and_si256(s, low31), k_max);
                    let neg = _mm256_castsi256_ps(_mm256_cmpgt_epi32(zero, s));
                    let (ox, oy) = load_pairs(snapshot.as_ptr(), _mm256_add_epi32(k, k));
                    (neg, ox, oy)
                };
                // SAFETY: AVX2 is enabled in this function.
                let (nx, ny) = unsafe { step_avx2(&step, vx[g], vy[g], ox, oy, neg) };
                // the lanes that have run out keep their position and their sample
                let on = _mm256_castsi256_ps(vact[g]);
                vx[g] = _mm256_blendv_ps(vx[g], nx, on);
                vy[g] = _mm256_blendv_ps(vy[g], ny, on);
                vp[g] = _mm256_sub_epi32(vp[g], vact[g]);
            }
            let mut done = 0u32;
            for g in 0..G {
                let eq = _mm256_castsi256_ps(_mm256_cmpeq_epi32(vp[g], vend[g]));
                done |= (_mm256_movemask_ps(eq) as u32) << (8 * g);
            }
            if done == 0 {
                continue;
            }
            for g in 0..G {
                // SAFETY: the arrays hold 8 G values; vector g writes values 8 g .. 8 g + 8.
                unsafe {
                    _mm256_storeu_si256(p[8 * g..].as_mut_ptr().cast(), vp[g]);
                    _mm256_storeu_ps(x[8 * g..].as_mut_ptr(), vx[g]);
                    _mm256_storeu_ps(y[8 * g..].as_mut_ptr(), vy[g]);
                }
            }
            for (l, lane) in lanes.iter_mut().enumerate() {
                if done & (1 << l) == 0 {
                    continue;
                }
                lane.p = p[l] as usize;
                lane.x = x[l];
                lane.y = y[l];
                lane.leave(ends, pos);
                if lane.p < lane.stop {
                    end[l] = ends[lane.cell] as i32;
                    x[l] = lane.x;
                    y[l] = lane.y;
                } else {
                    // out of samples: reads sample 0 from now on (p never reaches end -1)
                    active &= !(1 << l);
                    act[l] = 0;
                    p[l] = 0;
                    end[l] = -1;
                }
            }
            if active.count_ones() < MIN_ACTIVE_LANES {
                for (l, lane) in lanes.iter_mut().enumerate() {
                    if active & !done & (1 << l) != 0 {
                        lane.p = p[l] as usize;
                        lane.x = x[l];
                        lane.y = y[l];
                    }
                }
                break;
            }
            for g in 0..G {
                // SAFETY: see the loads above.
                unsafe {
                    vp[g] = _mm256_loadu_si256(p[8 * g..].as_ptr().cast());
                    vact[g] = _mm256_loadu_si256(act[8 * g..].as_ptr().cast());
                    vend[g] = _mm256_loadu_si256(end[8 * g..].as_ptr().cast());
                    vx[g] = _mm256_loadu_ps(x[8 * g..].as_ptr());
                    vy[g] = _mm256_loadu_ps(y[8 * g..].as_ptr());
                }
            }
        }
    }
    for lane in &mut lanes {
        lane.finish(step, samples, ends, snapshot, pos);
    }
}

/// How many samples ahead of its current one each lane prefetches the other cell's position.
/// The samples are random cells (five of six are negative samples, uniform over all cells), so
/// once the positions outgrow the processor's caches every read waits for memory. With the
/// prefetch, the optimization of the pipeline's million-cell layout (`benches/umap.rs`,
/// `SCRNA_UMAP_EMBEDDING`, 2 threads, alternating with the code before it) took 70.1 and
/// 80.1 s instead of 169.0 and 184.8 s; at 200,000 cells 11.9-13.5 s instead of 12.4-15.0 s;
/// at 50,000 cells (positions within the caches) 4.26-4.50 s instead of 4.61-4.68 s (medians
/// of 5, three alternations, on a busy machine). The same layout bit for bit.
#[cfg(target_arch = "x86_64")]
const PREFETCH_AHEAD: usize = 4;

/// Prefetches the positions the 8 lanes will read [`PREFETCH_AHEAD`] samples from now (a
/// lane's later samples may be the next cell's; a prefetch past the list reads its last).
///
/// # Safety
/// The processor must support AVX2; `samples` must not be empty and `2 k_max + 1` must be
/// inside `snapshot`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn prefetch_ahead(
    samples: &[u32],
    idx: std::arch::x86_64::__m256i,
    snapshot: *const f32,
    k_max: usize,
) {
    use std::arch::x86_64::*;
    let mut at = [0i32; 8];
    let last = samples.len() - 1;
    // SAFETY: `at` holds 8 values; the sample read is clamped to the list and the position
    // to cell `k_max`; a prefetch only hints the cache.
    unsafe {
        _mm256_storeu_si256(at.as_mut_ptr().cast(), idx);
        for &a in &at {
            let s = *samples.get_unchecked((a as usize + PREFETCH_AHEAD).min(last));
            let k = ((s & !super::schedule::NEG) as usize).min(k_max);
            _mm_prefetch(snapshot.add(2 * k) as *const i8, _MM_HINT_T0);
        }
    }
}

/// The 32-bit values `base[idx_j]` of the 8 lanes, read one by one: what
/// `_mm256_i32gather_epi32` reads, in fewer cycles where gathers are slow. With six gathers
/// per eight samples (the sample, the position's two coordinates, three table entries), the
/// optimization of the 50,000-cell layout took 3.27-3.32 s on two AMD Zen 3 cores; with these
/// reads, 2.90-2.96 s (`benches/umap.rs`, the same layout).
///
/// # Safety
/// The processor must support AVX2; every `base + idx_j` must be readable (`idx_j >= 0`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load_u32s(
    base: *const u32,
    idx: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let mut at = [0i32; 8];
    // SAFETY: `at` holds 8 values; the caller guarantees the reads.
    unsafe {
        _mm256_storeu_si256(at.as_mut_ptr().cast(), idx);
        let r = |j: usize| *base.add(at[j] as usize) as i32;
        _mm256_setr_epi32(r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7))
    }
}

/// The pairs `(base[idx_j], base[idx_j + 1])` of the 8 lanes as two vectors (the first values
/// and the second values), each pair read as one 64-bit value: what two `f32` gathers read.
///
/// # Safety
/// The processor must support AVX2; every `base + idx_j` and `base + idx_j + 1` must be
/// readable (`idx_j >= 0`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load_pairs(
    base: *const f32,
    idx: std::arch::x86_64::__m256i,
) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    let mut at = [0i32; 8];
    // SAFETY: `at` holds 8 values; the caller guarantees the reads (unaligned 8-byte reads).
    unsafe {
        _mm256_storeu_si256(at.as_mut_ptr().cast(), idx);
        let r = |j: usize| base.add(at[j] as usize).cast::<i64>().read_unaligned();
        // [p0 p1 | p4 p5] and [p2 p3 | p6 p7], each pair (first, second)
        let a = _mm256_castsi256_ps(_mm256_setr_epi64x(r(0), r(1), r(4), r(5)));
        let b = _mm256_castsi256_ps(_mm256_setr_epi64x(r(2), r(3), r(6), r(7)));
        (
            _mm256_shuffle_ps::<0x88>(a, b),
            _mm256_shuffle_ps::<0xDD>(a, b),
        )
    }
}

/// [`Step::apply`] on 8 lanes: moves `(x, y)` by one gradient step towards (attraction) or away
/// from (lanes set in `neg`) `(ox, oy)`, with the same operations in the same order.
///
/// # Safety
/// The processor must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn step_avx2(
    step: &Step<'_>,
    x: std::arch::x86_64::__m256,
    y: std::arch::x86_64::__m256,
    ox: std::arch::x86_64::__m256,
    oy: std::arch::x86_64::__m256,
    neg: std::arch::x86_64::__m256,
) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    let dx = _mm256_sub_ps(x, ox);
    let dy = _mm256_sub_ps(y, oy);
    let d2 = _mm256_add_ps(_mm256_mul_ps(dx, dx), _mm256_mul_ps(dy, dy));
    // PowTable::pow
    let t = step.pow_b;
    let bits = _mm256_castps_si256(d2);
    let e = _mm256_srli_epi32::<23>(bits);
    let m = _mm256_and_si256(bits, _mm256_set1_epi32(0x007F_FFFF));
    const SHIFT: i32 = 23 - PowTable::BITS as i32;
    let i = _mm256_srli_epi32::<SHIFT>(m);
    let frac = _mm256_mul_ps(
        _mm256_cvtepi32_ps(_mm256_and_si256(m, _mm256_set1_epi32((1 << SHIFT) - 1))),
        _mm256_set1_ps(1.0 / (1u32 << SHIFT) as f32),
    );
    // SAFETY: i < 2^BITS, so i and i + 1 index `mant` (2^BITS + 1 values); e & 255 indexes
    // `scale` (256 values).
    let ((lo, hi), sc) = unsafe {
        (
            load_pairs(t.mant.as_ptr(), i),
            _mm256_castsi256_ps(load_u32s(
                t.scale.as_ptr().cast(),
                _mm256_and_si256(e, _mm256_set1_epi32(255)),
            )),
        )
    };
    let mut pb = _mm256_mul_ps(
        _mm256_add_ps(lo, _mm256_mul_ps(_mm256_sub_ps(hi, lo), frac)),
        sc,
    );
    // zero, subnormal, infinite and NaN: powf, as PowTable::pow
    let special = _mm256_or_si256(
        _mm256_cmpeq_epi32(e, _mm256_setzero_si256()),
        _mm256_cmpgt_epi32(e, _mm256_set1_epi32(254)),
    );
    if _mm256_movemask_ps(_mm256_castsi256_ps(special)) != 0 {
        let (mut dv, mut pv) = ([0f32; 8], [0f32; 8]);
        // SAFETY: both arrays hold 8 values.
        unsafe {
            _mm256_storeu_ps(dv.as_mut_ptr(), d2);
            _mm256_storeu_ps(pv.as_mut_ptr(), pb);
        }
        for (d, p) in dv.iter().zip(pv.iter_mut()) {
            *p = t.pow(*d);
        }
        // SAFETY: the array holds 8 values.
        pb = unsafe { _mm256_loadu_ps(pv.as_ptr()) };
    }
    let q = _mm256_add_ps(
        _mm256_mul_ps(_mm256_set1_ps(step.a), pb),
        _mm256_set1_ps(1.0),
    );
    let num = _mm256_blendv_ps(
        _mm256_mul_ps(_mm256_set1_ps(step.att), pb),
        _mm256_set1_ps(step.rep),
        neg,
    );
    let den = _mm256_blendv_ps(
        _mm256_mul_ps(d2, q),
        _mm256_mul_ps(_mm256_add_ps(_mm256_set1_ps(0.001), d2), q),
        neg,
    );
    let gc = _mm256_and_ps(
        _mm256_cmp_ps::<_CMP_GT_OQ>(d2, _mm256_setzero_ps()),
        _mm256_div_ps(num, den),
    );
    // clip: max(-4, v) and min(4, .) return v when v is NaN, as f32::clamp
    let (lo4, hi4) = (_mm256_set1_ps(-4.0), _mm256_set1_ps(4.0));
    let cx = _mm256_min_ps(hi4, _mm256_max_ps(lo4, _mm256_mul_ps(gc, dx)));
    let cy = _mm256_min_ps(hi4, _mm256_max_ps(lo4, _mm256_mul_ps(gc, dy)));
    let alpha = _mm256_set1_ps(step.alpha);
    (
        _mm256_add_ps(x, _mm256_mul_ps(cx, alpha)),
        _mm256_add_ps(y, _mm256_mul_ps(cy, alpha)),
    )
}

#[cfg(test)]
mod tests {
    use super::super::kernel::apply_samples_scalar;
    use super::super::schedule::{splitmix, Xs, NEG};
    use super::*;

    /// A chunk of `m` cells with random sample lists (some empty) over `n` cells placed at
    /// random, with coincident, very close (subnormal squared distance), very far (infinite
    /// squared distance) and NaN positions among them.
    fn random_chunk(n: usize, m: usize, seed: u64) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
        let mut rng = Xs(splitmix(seed) | 1);
        let mut unit = || (rng.next() >> 40) as f32 / (1u64 << 24) as f32;
        let mut snapshot: Vec<f32> = (0..2 * n).map(|_| 10.0 * unit()).collect();
        snapshot[2] = snapshot[0];
        snapshot[3] = snapshot[1];
        snapshot[4] = 0.0;
        snapshot[5] = 0.0;
        snapshot[6] = 1e-21;
        snapshot[7] = 0.0;
        snapshot[8] = 3e19;
        snapshot[9] = -3e19;
        if n > 20 {
            snapshot[2 * 19] = f32::NAN;
        }
        let mut rng = Xs(splitmix(seed ^ 77) | 1);
        let (mut samples, mut ends) = (Vec::new(), Vec::new());
        for _ in 0..m {
            let count = match rng.next() % 8 {
                0 => 0,
                1 => 1,
                _ => (rng.next() % 70) as usize,
            };
            for _ in 0..count {
                let k = (rng.next() % n as u64) as u32;
                samples.push(if rng.next() % 3 == 0 { k } else { k | NEG });
            }
            ends.push(samples.len() as u32);
        }
        (samples, ends, snapshot)
    }

    #[test]
    fn simd_steps_match_scalar_steps_bit_for_bit() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut compared = 0;
            for (b, m, seed) in [
                (1.3339, 0, 1),
                (1.3339, 1, 2),
                (1.3339, 3, 3),
                (1.3339, 17, 4),
                (1.3339, 300, 5),
                (0.8951, 300, 6),
                (1.0, 2000, 7),
            ] {
                let n = 400;
                let (samples, ends, snapshot) = random_chunk(n, m, seed);
                let pow_b = PowTable::new(b);
                for alpha in [1.0f32, 0.37] {
                    let step = Step {
                        pow_b: &pow_b,
                        a: 0.583,
                        att: -2.0 * 0.583 * b,
                        rep: 2.0 * b,
                        alpha,
                    };
                    // the chunk's cells are cells 0..m of the snapshot (m <= n) or fresh ones
                    let own: Vec<f32> = (0..2 * m).map(|i| snapshot[i % (2 * n)]).collect();
                    let mut scalar = own.clone();
                    apply_samples_scalar(step, &samples, &ends, &snapshot, &mut scalar);
                    let mut simd = own.clone();
                    // SAFETY: the processor supports AVX2 (checked above).
                    unsafe { apply_samples_avx2(step, &samples, &ends, &snapshot, &mut simd) };
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&scalar),
                        bits(&simd),
                        "b {b}, {m} cells, alpha {alpha}"
                    );
                    if m > 0 {
                        assert_ne!(bits(&scalar), bits(&own), "nothing moved");
                    }
                    compared += samples.len();
                }
            }
            assert!(compared > 100_000);
        }
    }
}
