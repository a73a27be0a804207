//! NN-descent: neighbour lists started from a random-projection forest and improved by local
//! joins of sampled candidates until few entries change.

#[cfg(target_arch = "x86_64")]
use super::points::sqdist_avx;
use super::points::{dist_one, sqdist, Padded, Points};
use super::rptree::rp_tree_leaves;
use super::store::{key, Graph, EMPTY};
use super::KnnOptions;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// A 64-bit mix (splitmix64 finaliser) for hash-based priorities.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Local join of one cell's sampled candidates: every pair of new candidates and every pair of
/// a new and an old candidate is offered to both lists. Returns the number of insertions.
///
/// The worst keys of the candidates' lists are read once up front and refreshed after each
/// insertion made here: they only decrease, so a stale value lets more pairs through to
/// [`Graph::insert`], which decides with the current list; the result is the same as offering
/// every pair, and most pairs are rejected without touching the other cell's list.
fn local_join(
    points: &Padded,
    graph: &Graph,
    nw: &[u32],
    od: &[u32],
    wn: &mut Vec<u64>,
    wo: &mut Vec<u64>,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the processor supports AVX (checked just above).
        return unsafe { local_join_avx(points, graph, nw, od, wn, wo) };
    }
    local_join_body(points, graph, nw, od, wn, wo, sqdist)
}

/// [`local_join`] with the 256-bit distance kernel [`sqdist_avx`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn local_join_avx(
    points: &Padded,
    graph: &Graph,
    nw: &[u32],
    od: &[u32],
    wn: &mut Vec<u64>,
    wo: &mut Vec<u64>,
) -> usize {
    // SAFETY: AVX is enabled in this function; padded rows have equal lengths, multiples of 8.
    local_join_body(points, graph, nw, od, wn, wo, |a, b| unsafe {
        sqdist_avx(a, b)
    })
}

#[inline(always)]
fn local_join_body(
    points: &Padded,
    graph: &Graph,
    nw: &[u32],
    od: &[u32],
    wn: &mut Vec<u64>,
    wo: &mut Vec<u64>,
    dist: impl Fn(&[f32], &[f32]) -> f32,
) -> usize {
    wn.clear();
    wn.extend(nw.iter().map(|&p| graph.last(p as usize)));
    wo.clear();
    wo.extend(od.iter().map(|&q| graph.last(q as usize)));
    #[cfg(target_arch = "x86_64")]
    for &c in nw.iter().chain(od) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // Prefetching has no effect on the results; it overlaps the cache misses on the
        // candidates' coordinates and lists that the join below would take one at a time.
        let (x, keys) = (points.row(c as usize), graph.row(c as usize));
        for t in (0..x.len()).step_by(16) {
            // SAFETY: `_mm_prefetch` only hints the cache; `t` is inside the row.
            unsafe { _mm_prefetch(x.as_ptr().add(t) as *const i8, _MM_HINT_T0) };
        }
        for t in (0..keys.len()).step_by(8) {
            // SAFETY: as above.
            unsafe { _mm_prefetch(keys.as_ptr().add(t) as *const i8, _MM_HINT_T0) };
        }
    }
    // Offers key `k` to cell `i`'s list when it beats `w`, the list's last key as last read
    // (re-read after an insertion); 1 when inserted.
    let offer = |i: u32, k: u64, w: &mut u64| -> usize {
        if k < *w && graph.insert(i as usize, k) {
            *w = graph.last(i as usize);
            1
        } else {
            0
        }
    };
    let mut local = 0usize;
    for (a, &p) in nw.iter().enumerate() {
        let xp = points.row(p as usize);
        for b in a + 1..nw.len() {
            let q = nw[b];
            let dd = dist(xp, points.row(q as usize));
            local += offer(p, key(dd, q), &mut wn[a]);
            local += offer(q, key(dd, p), &mut wn[b]);
        }
        for (b, &q) in od.iter().enumerate() {
            if q == p {
                continue;
            }
            let dd = dist(xp, points.row(q as usize));
            local += offer(p, key(dd, q), &mut wn[a]);
            local += offer(q, key(dd, p), &mut wo[b]);
        }
    }
    local
}

/// NN-descent: the `cap` nearest other cells of every cell (approximately).
pub(super) fn nn_descent(points: &Points, cap: usize, opts: &KnnOptions) -> Vec<Vec<u32>> {
    let n = points.n;
    let original = Padded::new(points);
    let cap = cap.min(n - 1);
    let graph = Graph::new(n, cap);
    let n_trees = if opts.n_trees > 0 {
        opts.n_trees
    } else {
        (64usize.min(5 + ((n as f64).sqrt() / 20.0).round() as usize) / 2).max(2)
    };
    let max_iter = if opts.max_iterations > 0 {
        opts.max_iterations
    } else {
        5usize.max((n as f64).log2().round() as usize)
    };
    let leaf_size = (2 * cap).max(32);

    // 1. Initial lists from the leaves of the random-projection forest. The first tree is
    // built on the cells as given; the search then runs on the cells renumbered in its leaf
    // order: cells that are close in space are then close in memory, so the other trees'
    // splits and the local joins read rows that are mostly in cache.
    let tree_rng = |t: usize| ChaCha12Rng::seed_from_u64(mix(opts.seed ^ mix(t as u64 + 1)));
    let first = rp_tree_leaves(&original, &mut tree_rng(0), leaf_size);
    let order: Vec<u32> = first.concat();
    let mut rank = vec![0u32; n];
    for (new, &old) in order.iter().enumerate() {
        rank[old as usize] = new as u32;
    }
    let points = &original.permuted(&order);
    drop(original);
    let mut forest: Vec<Vec<Vec<u32>>> = (1..n_trees)
        .into_par_iter()
        .map(|t| rp_tree_leaves(points, &mut tree_rng(t), leaf_size))
        .collect();
    // the first tree's leaves in the new numbering are consecutive runs
    let mut at = 0u32;
    forest.push(
        first
            .iter()
            .map(|leaf| {
                at += leaf.len() as u32;
                (at - leaf.len() as u32..at).collect()
            })
            .collect(),
    );
    forest.par_iter().flatten().for_each_init(
        || (Vec::new(), Vec::new()),
        |(wn, wo), leaf| {
            local_join(points, &graph, leaf, &[], wn, wo);
        },
    );
    // Fill lists that are still short with seeded random cells.
    (0..n).into_par_iter().for_each(|i| {
        let mut tries = 0u64;
        loop {
            if graph.is_full(i) {
                break;
            }
            let j = if tries < 4 * cap as u64 {
                (mix(opts.seed ^ mix((i as u64) << 20 ^ tries)) % n as u64) as usize
            } else {
                (i + 1 + (tries as usize - 4 * cap)) % n
            };
            tries += 1;
            if j != i {
                graph.offer(i, j as u32, dist_one(points.row(i), points.row(j)));
            }
        }
    });

    // 2. Iterations of local joins.
    let max_cand = cap.max(10);
    let min_updates = (0.001 * (n * cap) as f64) as usize;
    let mut fwd_new: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut fwd_old: Vec<Vec<u32>> = vec![Vec::new(); n];
    for it in 0..max_iter {
        let salt = mix(opts.seed ^ mix(0xA5A5_0000 + it as u64));
        let prio = |i: usize, j: u32| mix(salt ^ ((i as u64) << 32 | j as u64));
        // Forward candidates; sampled new entries become old.
        fwd_new
            .par_iter_mut()
            .zip(fwd_old.par_iter_mut())
            .enumerate()
            .for_each_init(Vec::new, |cand, (i, (nw, od))| {
                nw.clear();
                od.clear();
                // No insertions run in this phase: plain reads and writes of the own list.
                let (row, flags) = (graph.row(i), graph.flags(i));
                let len = row.partition_point(|s| s.load(Ordering::Relaxed) != EMPTY);
                let j_at = |p: usize| row[p].load(Ordering::Relaxed) as u32;
                cand.clear();
                cand.extend(
                    (0..len)
                        .filter(|&p| flags[p].load(Ordering::Relaxed))
                        .map(|p| (prio(i, j_at(p)), p)),
                );
                cand.sort_unstable();
                cand.truncate(max_cand);
                for &(_, p) in cand.iter() {
                    nw.push(j_at(p));
                    flags[p].store(false, Ordering::Relaxed);
                }
                for (s, f) in row[..len].iter().zip(flags) {
                    let j = s.load(Ordering::Relaxed) as u32;
                    if !f.load(Ordering::Relaxed) && !nw.contains(&j) {
                        od.push(j);
                    }
                }
            });
        // Reverse candidates, in cell order.
        let rev_new = reverse(&fwd_new, n);
        let rev_old = reverse(&fwd_old, n);
        let updates = AtomicUsize::new(0);
        (0..n).into_par_iter().for_each_init(
            || (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            |(nw, od, wn, wo), v| {
                gather(&fwd_new[v], rev_new.row(v), max_cand, |j| prio(v, j), nw);
                if nw.is_empty() {
                    return;
                }
                gather(&fwd_old[v], rev_old.row(v), max_cand, |j| prio(v, j), od);
                let local = local_join(points, &graph, nw, od, wn, wo);
                updates.fetch_add(local, Ordering::Relaxed);
            },
        );
        // The stopping rule counts entries that are new after the iteration: unlike the
        // number of successful insertions, this does not depend on the insertion order.
        if updates.load(Ordering::Relaxed) == 0 {
            break;
        }
        let fresh: usize = graph
            .new
            .par_chunks(cap)
            .map(|f| f.iter().filter(|b| b.load(Ordering::Relaxed)).count())
            .sum();
        if fresh <= min_updates {
            break;
        }
    }
    rank.par_iter()
        .map(|&r| {
            graph
                .row(r as usize)
                .iter()
                .map(|s| s.load(Ordering::Relaxed))
                .filter(|&k| k != EMPTY)
                .map(|k| order[k as u32 as usize])
                .collect()
        })
        .collect()
}

/// Reverse adjacency in CSR form (the sources of each row in no particular order).
struct Rev {
    ptr: Vec<usize>,
    idx: Vec<u32>,
}

impl Rev {
    fn row(&self, v: usize) -> &[u32] {
        &self.idx[self.ptr[v]..self.ptr[v + 1]]
    }
}

fn reverse(fwd: &[Vec<u32>], n: usize) -> Rev {
    // Counted and filled in parallel with atomic cursors: the order of a row's sources then
    // depends on the threads, which does not matter, as `gather` sorts each row's union.
    let count: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
    fwd.par_iter().flatten().for_each(|&j| {
        count[j as usize].fetch_add(1, Ordering::Relaxed);
    });
    let mut ptr = vec![0usize; n + 1];
    for v in 0..n {
        ptr[v + 1] = ptr[v] + count[v].load(Ordering::Relaxed) as usize;
    }
    let next: Vec<AtomicUsize> = ptr[..n].iter().map(|&p| AtomicUsize::new(p)).collect();
    let idx: Vec<AtomicU32> = (0..ptr[n])
        .into_par_iter()
        .map(|_| AtomicU32::new(0))
        .collect();
    fwd.par_iter().enumerate().for_each(|(i, l)| {
        for &j in l {
            let at = next[j as usize].fetch_add(1, Ordering::Relaxed);
            idx[at].store(i as u32, Ordering::Relaxed);
        }
    });
    let idx = idx.into_iter().map(AtomicU32::into_inner).collect();
    Rev { ptr, idx }
}

/// Union of forward and reverse candidates, at most `cap` of them chosen by priority.
fn gather(fwd: &[u32], rev: &[u32], cap: usize, prio: impl Fn(u32) -> u64, out: &mut Vec<u32>) {
    out.clear();
    out.extend_from_slice(fwd);
    out.extend_from_slice(rev);
    out.sort_unstable();
    out.dedup();
    if out.len() > cap {
        out.sort_unstable_by_key(|&j| (prio(j), j));
        out.truncate(cap);
    }
}
