//! The NN-descent neighbour lists: sorted, bounded, shared between threads, with a result
//! that does not depend on the order of the insertions.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Marks an empty place in a neighbour list (sorts after every real entry).
pub(super) const EMPTY: u64 = u64::MAX;

/// The sort key of a neighbour at squared distance `d`: the bits of a non-negative `f32`
/// order like the numbers, so `(d bits, j)` as one integer orders by distance, then index.
#[inline(always)]
pub(super) fn key(d: f32, j: u32) -> u64 {
    (d.to_bits() as u64) << 32 | j as u64
}

/// All NN-descent neighbour lists: `cap` keys per cell in one array, each list sorted
/// increasingly with [`EMPTY`] at the end, plus a "new" flag per place.
///
/// Keys are atomics so that an offer can be turned down without locking: a key at least the
/// last of the list, or already in it, cannot enter. The last key only decreases, and a cell
/// that leaves a list is worse than every key that stays, so a decision taken on a value read
/// while another thread inserts is the decision the locked insertion would take. Insertions
/// take the cell's lock and re-check. The final content of a list is the top `cap` of
/// everything offered, whatever the order of the offers.
pub(super) struct Graph {
    keys: Vec<AtomicU64>,
    pub(super) new: Vec<AtomicBool>,
    locks: Vec<Mutex<()>>,
    cap: usize,
}

impl Graph {
    pub(super) fn new(n: usize, cap: usize) -> Self {
        Graph {
            keys: (0..n * cap).map(|_| AtomicU64::new(EMPTY)).collect(),
            new: (0..n * cap).map(|_| AtomicBool::new(false)).collect(),
            locks: (0..n).map(|_| Mutex::new(())).collect(),
            cap,
        }
    }

    #[inline(always)]
    pub(super) fn row(&self, i: usize) -> &[AtomicU64] {
        &self.keys[i * self.cap..(i + 1) * self.cap]
    }

    #[inline(always)]
    pub(super) fn flags(&self, i: usize) -> &[AtomicBool] {
        &self.new[i * self.cap..(i + 1) * self.cap]
    }

    /// The last key of the list of `i` ([`EMPTY`] while the list is short).
    #[inline(always)]
    pub(super) fn last(&self, i: usize) -> u64 {
        self.keys[(i + 1) * self.cap - 1].load(Ordering::Relaxed)
    }

    /// Whether the list of `i` is full.
    pub(super) fn is_full(&self, i: usize) -> bool {
        self.last(i) != EMPTY
    }

    /// Offers `j` at squared distance `d` to the list of `i`; returns whether it entered.
    #[inline(always)]
    pub(super) fn offer(&self, i: usize, j: u32, d: f32) -> bool {
        let k = key(d, j);
        k < self.last(i) && self.insert(i, k)
    }

    /// Inserts key `k` into the list of `i` if it is not there and belongs to the top `cap`.
    #[inline(never)]
    pub(super) fn insert(&self, i: usize, k: u64) -> bool {
        let row = self.row(i);
        // Unlocked look-up: a key seen in the list was in it, so `k` cannot enter.
        let pos = row.partition_point(|s| s.load(Ordering::Relaxed) < k);
        if row.get(pos).is_some_and(|s| s.load(Ordering::Relaxed) == k) {
            return false;
        }
        let Ok(_guard) = self.locks[i].lock() else {
            return false;
        };
        let cap = self.cap;
        if k >= row[cap - 1].load(Ordering::Relaxed) {
            return false;
        }
        let pos = row.partition_point(|s| s.load(Ordering::Relaxed) < k);
        if row[pos].load(Ordering::Relaxed) == k {
            return false;
        }
        let flags = self.flags(i);
        for t in (pos + 1..cap).rev() {
            row[t].store(row[t - 1].load(Ordering::Relaxed), Ordering::Relaxed);
            flags[t].store(flags[t - 1].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        row[pos].store(k, Ordering::Relaxed);
        flags[pos].store(true, Ordering::Relaxed);
        true
    }
}
