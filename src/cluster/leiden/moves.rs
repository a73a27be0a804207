//! One Leiden (or Louvain) iteration: fast local moving, refinement and aggregation over
//! successive levels, with the scratch buffers they share.

use super::level::{aggregate, Level};
use super::{Params, SplitMix64};
use std::collections::VecDeque;

/// One Leiden (or Louvain) iteration starting from `membership`; returns whether any node
/// changed community during local moving.
pub(super) fn iterate(
    base: &Level,
    membership: &mut [u32],
    res: f64,
    p: &Params,
    rng: &mut SplitMix64,
) -> bool {
    let n0 = base.n();
    let mut changed = false;
    // Aggregate node of each original node.
    let mut agg_of: Vec<u32> = (0..n0 as u32).collect();
    let mut memb: Vec<u32> = membership.to_vec();
    let mut owned: Option<Level> = None;
    let mut ws = Workspace::new(n0);
    loop {
        let g: &Level = owned.as_ref().unwrap_or(base);
        changed |= fast_move(g, &mut memb, res, rng, &mut ws);
        let nc = renumber(&mut memb, &mut ws.map);
        if nc == g.n() {
            break;
        }
        let mut refined = if p.refine {
            refine(g, &memb, nc, res, p.beta, rng, &mut ws)
        } else {
            memb.clone()
        };
        let mut nr = renumber(&mut refined, &mut ws.map);
        if nr == g.n() {
            // Refinement merged nothing: aggregate on the moved partition instead.
            refined.copy_from_slice(&memb);
            nr = nc;
        }
        let next = aggregate(g, &refined, nr);
        let mut next_memb = vec![0u32; nr];
        for v in 0..g.n() {
            next_memb[refined[v] as usize] = memb[v];
        }
        for a in agg_of.iter_mut() {
            *a = refined[*a as usize];
        }
        memb = next_memb;
        owned = Some(next);
    }
    for (m, &a) in membership.iter_mut().zip(&agg_of) {
        *m = memb[a as usize];
    }
    changed
}

/// Scratch buffers reused across levels.
struct Workspace {
    edge_w: Vec<f64>,
    is_neigh: Vec<bool>,
    neigh: Vec<u32>,
    map: Vec<u32>,
    cum: Vec<f64>,
}

impl Workspace {
    fn new(n: usize) -> Self {
        Self {
            edge_w: vec![0.0; n],
            is_neigh: vec![false; n],
            neigh: Vec::new(),
            map: vec![u32::MAX; n],
            cum: Vec::new(),
        }
    }
}

/// Renumbers labels to `0..k` in order of first appearance; returns `k`.
fn renumber(labels: &mut [u32], map: &mut [u32]) -> usize {
    let mut k = 0u32;
    for l in labels.iter_mut() {
        let m = &mut map[*l as usize];
        if *m == u32::MAX {
            *m = k;
            k += 1;
        }
        *l = *m;
    }
    // Reset the touched map entries (labels are now in 0..k, old labels unknown): clear all
    // entries that could have been set, i.e. scan the map once.
    for m in map.iter_mut() {
        *m = u32::MAX;
    }
    k as usize
}

/// Fast local moving (igraph's `fastmovenodes`). `memb` holds labels in `0..n`.
fn fast_move(
    g: &Level,
    memb: &mut [u32],
    res: f64,
    rng: &mut SplitMix64,
    ws: &mut Workspace,
) -> bool {
    let n = g.n();
    let mut cl_weight = vec![0.0f64; n];
    let mut cl_size = vec![0u32; n];
    for v in 0..n {
        cl_weight[memb[v] as usize] += g.node_weight[v];
        cl_size[memb[v] as usize] += 1;
    }
    let mut empty: Vec<u32> = (0..n as u32)
        .rev()
        .filter(|&c| cl_size[c as usize] == 0)
        .collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    let mut queue: VecDeque<u32> = order.into();
    let mut in_queue = vec![true; n];
    let mut changed = false;
    let Workspace {
        edge_w,
        is_neigh,
        neigh,
        ..
    } = ws;
    while let Some(v) = queue.pop_front() {
        prefetch_queue(g, &queue, memb, &in_queue, &cl_weight, edge_w, is_neigh);
        let v = v as usize;
        in_queue[v] = false;
        let cv = memb[v] as usize;
        let wv = g.node_weight[v];
        cl_weight[cv] -= wv;
        cl_size[cv] -= 1;
        if cl_size[cv] == 0 {
            empty.push(cv as u32);
        }
        neigh.clear();
        neigh.push(cv as u32);
        is_neigh[cv] = true;
        if let Some(&e) = empty.last() {
            if !is_neigh[e as usize] {
                neigh.push(e);
                is_neigh[e as usize] = true;
            }
        }
        let (cols, ws_) = g.adj(v);
        for (&u, &w) in cols.iter().zip(ws_) {
            let c = memb[u as usize] as usize;
            if !is_neigh[c] {
                is_neigh[c] = true;
                neigh.push(c as u32);
            }
            edge_w[c] += w;
        }
        let mut best = cv;
        let mut max_diff = edge_w[cv] - wv * cl_weight[cv] * res;
        for &c in neigh.iter() {
            let c = c as usize;
            let diff = edge_w[c] - wv * cl_weight[c] * res;
            if diff > max_diff {
                max_diff = diff;
                best = c;
            }
        }
        for &c in neigh.iter() {
            edge_w[c as usize] = 0.0;
            is_neigh[c as usize] = false;
        }
        if cl_size[best] == 0 {
            // `best` is the empty cluster on top of the stack.
            empty.pop();
        }
        cl_weight[best] += wv;
        cl_size[best] += 1;
        if best != cv {
            memb[v] = best as u32;
            changed = true;
            for &u in cols {
                let u = u as usize;
                if !in_queue[u] && memb[u] as usize != best {
                    in_queue[u] = true;
                    queue.push_back(u as u32);
                }
            }
        }
    }
    changed
}

/// How many nodes ahead in the queue of [`fast_move`] each stage of [`prefetch_queue`] works:
/// the node's row start, its neighbours, their labels, their communities' sums. Each stage
/// reads what the stage before it brought in.
const AHEAD_NODE: usize = 8;
const AHEAD_ROW: usize = 4;
const AHEAD_LABELS: usize = 2;
const AHEAD_SUMS: usize = 0;

/// Prefetches ([`crate::cpu::prefetch`]) what the local moving of the nodes waiting in
/// `queue` will read: the moves visit the nodes in random order, so each node's row, its
/// neighbours' labels and their communities' sums are misses that come one after the other
/// (one node's reads depend on the last); brought in a few nodes ahead, they overlap. It
/// changes no value. On the graph of the pipeline's million-cell embedding (`benches/umap.rs`,
/// `SCRNA_UMAP_LEIDEN_REPEAT=3`, one build after the other) Leiden took 43.8-49.8 s (median
/// 44.2) instead of 58.3-65.8 s (median 60.3), the same clusters. The same prefetching in the
/// refinement's visit of the nodes was tried and measured no faster (46.2 and 49.2 s against
/// 44.1 and 48.3 s), and is not done.
fn prefetch_queue(
    g: &Level,
    queue: &VecDeque<u32>,
    memb: &[u32],
    in_queue: &[bool],
    cl_weight: &[f64],
    edge_w: &[f64],
    is_neigh: &[bool],
) {
    use crate::cpu::prefetch;
    if let Some(&v) = queue.get(AHEAD_NODE) {
        g.prefetch_node(v as usize);
        prefetch(memb, v as usize);
        prefetch(in_queue, v as usize);
    }
    if let Some(&v) = queue.get(AHEAD_ROW) {
        g.prefetch_adj(v as usize);
    }
    if let Some(&v) = queue.get(AHEAD_LABELS) {
        for &u in g.adj(v as usize).0 {
            prefetch(memb, u as usize);
        }
    }
    if let Some(&v) = queue.get(AHEAD_SUMS) {
        for &u in g.adj(v as usize).0 {
            let c = memb[u as usize] as usize;
            prefetch(edge_w, c);
            prefetch(cl_weight, c);
            prefetch(is_neigh, c);
        }
    }
}

/// Refinement (igraph's `mergenodes`): returns the refined labels (in `0..n`, not
/// consecutive) of the nodes of `g`, each refined community inside one community of `memb`.
fn refine(
    g: &Level,
    memb: &[u32],
    nc: usize,
    res: f64,
    beta: f64,
    rng: &mut SplitMix64,
    ws: &mut Workspace,
) -> Vec<u32> {
    let n = g.n();
    let mut refined: Vec<u32> = (0..n as u32).collect();
    let mut ref_weight = g.node_weight.clone();
    let mut ref_size = vec![1u32; n];
    let mut cl_total = vec![0.0f64; nc];
    for v in 0..n {
        cl_total[memb[v] as usize] += g.node_weight[v];
    }
    // Weight from each refined community to the rest of its community.
    let mut external: Vec<f64> = (0..n)
        .map(|v| {
            let (cols, w) = g.adj(v);
            cols.iter()
                .zip(w)
                .filter(|&(&u, _)| memb[u as usize] == memb[v])
                .map(|(_, &w)| w)
                .sum()
        })
        .collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    let Workspace {
        edge_w,
        is_neigh,
        neigh,
        cum,
        ..
    } = ws;
    for &v in &order {
        let v = v as usize;
        let r = refined[v] as usize;
        let c = memb[v];
        let wv = g.node_weight[v];
        let total = cl_total[c as usize];
        if ref_size[r] != 1 || external[r] < wv * (total - wv) * res {
            continue;
        }
        ref_weight[r] = 0.0;
        ref_size[r] = 0;
        external[r] = 0.0;
        neigh.clear();
        neigh.push(r as u32);
        is_neigh[r] = true;
        let (cols, ws_) = g.adj(v);
        for (&u, &w) in cols.iter().zip(ws_) {
            if memb[u as usize] != c {
                continue;
            }
            let rc = refined[u as usize] as usize;
            if !is_neigh[rc] {
                is_neigh[rc] = true;
                neigh.push(rc as u32);
            }
            edge_w[rc] += w;
        }
        let mut chosen = r;
        let mut max_diff = 0.0f64;
        let mut sum = 0.0f64;
        cum.clear();
        for &rc in neigh.iter() {
            let rc = rc as usize;
            if external[rc] >= ref_weight[rc] * (total - ref_weight[rc]) * res {
                let diff = edge_w[rc] - wv * ref_weight[rc] * res;
                if diff >= 0.0 {
                    sum += (diff / beta).exp();
                }
                if diff > max_diff {
                    max_diff = diff;
                    chosen = rc;
                }
            }
            cum.push(sum);
        }
        if sum.is_finite() && sum > 0.0 {
            let x = rng.uniform() * sum;
            if let Some(i) = cum.iter().position(|&s| s > x) {
                chosen = neigh[i] as usize;
            }
        }
        for &rc in neigh.iter() {
            edge_w[rc as usize] = 0.0;
            is_neigh[rc as usize] = false;
        }
        refined[v] = chosen as u32;
        ref_weight[chosen] += wv;
        ref_size[chosen] += 1;
        for (&u, &w) in cols.iter().zip(ws_) {
            if memb[u as usize] == c {
                if refined[u as usize] as usize == chosen {
                    external[chosen] -= w;
                } else {
                    external[chosen] += w;
                }
            }
        }
    }
    refined
}
