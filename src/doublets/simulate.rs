//! Simulated doublets: the random parent pairs.

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `m` distinct ordered pairs `(a, b)` of `0..n` (possibly `a == b`), as flat indices
/// `a * n + b` sampled without replacement by Floyd's algorithm from ChaCha8(`seed`), sorted.
/// Requires `1 <= m <= n^2`.
pub(super) fn sample_pairs(n: usize, m: usize, seed: u64) -> Vec<(u32, u32)> {
    let total = (n as u64) * (n as u64);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chosen: HashSet<u64> = HashSet::with_capacity(m);
    for j in total - m as u64..total {
        let t = rng.gen_range(0..=j);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    let mut flat: Vec<u64> = chosen.into_iter().collect();
    flat.sort_unstable();
    flat.into_iter()
        .map(|f| ((f / n as u64) as u32, (f % n as u64) as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_distinct_and_in_range() {
        let p = sample_pairs(10, 60, 3);
        assert_eq!(p.len(), 60);
        let set: HashSet<_> = p.iter().collect();
        assert_eq!(set.len(), 60);
        assert!(p.iter().all(|&(a, b)| a < 10 && b < 10));
        // every pair of the grid when m = n^2
        assert_eq!(sample_pairs(4, 16, 0).len(), 16);
        assert_eq!(sample_pairs(10, 60, 3), p);
        assert_ne!(sample_pairs(10, 60, 4), p);
    }
}
