//! Sort keys of the values: an `f32` encoded so that integer order is numeric order, and the
//! radix sort of packed (value, group) keys by value.

/// Encodes an `f32` so that unsigned integer order is numeric order (negatives flipped).
#[inline]
pub(super) fn order_key(v: f32) -> u32 {
    let b = v.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

#[inline]
pub(super) fn decode_key(k: u32) -> f32 {
    if k & 0x8000_0000 != 0 {
        f32::from_bits(k & 0x7fff_ffff)
    } else {
        f32::from_bits(!k)
    }
}

/// Key of a positive (or +0) value: top bit set.
pub(super) const POSITIVE: u32 = 0x8000_0000;

/// Bits of the value sorted per pass of [`radix_sort_hi`]: three passes.
const RADIX_BITS: [u32; 3] = [11, 11, 10];

/// LSD radix sort of `keys` by their upper 32 bits (the value), 11, 11 and 10 bits per pass,
/// skipping passes where every key has the same digit. `buf` is scratch space.
///
/// Three passes of 11 bits instead of four of 8: one scatter of every key less, for digit
/// tables of 2,048 counts (24 KB together). On the 50,000 x 20,000 Wilcoxon run of
/// `benches/markers.rs` (`MARKERS_BENCH_FULL=1`, 2 threads, six runs of each alternating):
/// 1.72-2.07 s against 2.08-2.21 s.
pub(super) fn radix_sort_hi(keys: &mut Vec<u64>, buf: &mut Vec<u64>) {
    let n = keys.len();
    if n < 64 || n > u32::MAX as usize {
        keys.sort_unstable_by_key(|k| k >> 32);
        return;
    }
    let mut hist = [[0u32; 1 << 11]; 3];
    for &k in keys.iter() {
        let h = (k >> 32) as u32;
        hist[0][(h & 0x7ff) as usize] += 1;
        hist[1][((h >> 11) & 0x7ff) as usize] += 1;
        hist[2][(h >> 22) as usize] += 1;
    }
    buf.clear();
    buf.resize(n, 0);
    let mut shift = 32;
    for (h, bits) in hist.iter_mut().zip(RADIX_BITS) {
        let digits = 1usize << bits;
        let s = shift;
        shift += bits;
        let h = &mut h[..digits];
        if h.iter().any(|&c| c as usize == n) {
            continue;
        }
        let mut sum = 0u32;
        for c in h.iter_mut() {
            let t = *c;
            *c = sum;
            sum += t;
        }
        let mask = (digits - 1) as u64;
        for &k in keys.iter() {
            let b = ((k >> s) & mask) as usize;
            buf[h[b] as usize] = k;
            h[b] += 1;
        }
        std::mem::swap(keys, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn radix_sort_orders_values() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let vals: Vec<f32> = (0..5000)
            .map(|_| (rng.gen_range(-3.0f32..8.0) * 4.0).round() / 4.0)
            .filter(|&v| v != 0.0)
            .collect();
        let mut keys: Vec<u64> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| ((order_key(v) as u64) << 32) | i as u64)
            .collect();
        radix_sort_hi(&mut keys, &mut Vec::new());
        let sorted: Vec<f32> = keys.iter().map(|&k| decode_key((k >> 32) as u32)).collect();
        let mut want = vals.clone();
        want.sort_by(f32::total_cmp);
        assert_eq!(sorted, want);
    }

    #[test]
    fn radix_sort_orders_any_values_over_every_digit() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for n in [10, 63, 64, 65, 3000, 20_000] {
            // any bits of an f32 but NaN, some of them repeated, with the input position
            let mut keys: Vec<u64> = (0..n)
                .map(|i| {
                    let v = loop {
                        let v = f32::from_bits(rng.gen::<u32>());
                        if !v.is_nan() {
                            break if i % 5 == 0 { v.round() } else { v };
                        }
                    };
                    ((order_key(v) as u64) << 32) | i as u64
                })
                .collect();
            let mut want = keys.clone();
            want.sort_by_key(|k| k >> 32);
            radix_sort_hi(&mut keys, &mut Vec::new());
            // ordered by value, every key kept (the order within ties is free)
            let values = |k: &[u64]| k.iter().map(|&k| k >> 32).collect::<Vec<_>>();
            assert_eq!(values(&keys), values(&want), "{n} keys");
            keys.sort_unstable();
            want.sort_unstable();
            assert_eq!(keys, want, "{n} keys");
        }
    }
}
