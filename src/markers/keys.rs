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

/// LSD radix sort of `keys` by their upper 32 bits (the value), 8 bits per pass, skipping
/// passes where every key has the same byte. `buf` is scratch space.
pub(super) fn radix_sort_hi(keys: &mut Vec<u64>, buf: &mut Vec<u64>) {
    let n = keys.len();
    if n < 64 {
        keys.sort_unstable_by_key(|k| k >> 32);
        return;
    }
    let mut hist = [[0usize; 256]; 4];
    for &k in keys.iter() {
        let h = (k >> 32) as u32;
        hist[0][(h & 0xff) as usize] += 1;
        hist[1][((h >> 8) & 0xff) as usize] += 1;
        hist[2][((h >> 16) & 0xff) as usize] += 1;
        hist[3][(h >> 24) as usize] += 1;
    }
    buf.clear();
    buf.resize(n, 0);
    for (pass, h) in hist.iter_mut().enumerate() {
        if h.contains(&n) {
            continue;
        }
        let mut sum = 0;
        for c in h.iter_mut() {
            let t = *c;
            *c = sum;
            sum += t;
        }
        let shift = 32 + 8 * pass as u32;
        for &k in keys.iter() {
            let b = ((k >> shift) & 0xff) as usize;
            buf[h[b]] = k;
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
}
