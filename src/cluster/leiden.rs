//! Leiden and Louvain community detection on a weighted, undirected cell graph.
//!
//! The algorithm is that of Traag, Waltman and van Eck (2019), "From Louvain to Leiden:
//! guaranteeing well-connected communities", Sci. Rep. 9:5233, in the form of igraph's
//! `igraph_community_leiden` (the `flavor="igraph"` backend of `sc.tl.leiden`):
//!
//! 1. **Fast local moving.** Nodes are visited from a queue that starts as a random permutation;
//!    a node moves to the neighbouring (or an empty) community with the largest strictly
//!    positive gain, and its neighbours outside that community are queued again.
//! 2. **Refinement.** Inside each community, every node that is still a singleton and is
//!    well connected to its community may merge into a well-connected sub-community of the
//!    same community with non-negative gain `dQ`, chosen at random with probability
//!    proportional to `exp(dQ / beta)` (`beta = 0.01`, igraph's default randomness).
//! 3. **Aggregation.** The graph is collapsed on the *refined* partition; each aggregate node
//!    starts in the community of the (non-refined) partition that contains it, and the three
//!    phases repeat until every community is a single aggregate node.
//!
//! One such pass is an *iteration*; further iterations start from the previous partition.
//!
//! **Restarts.** Leiden is randomized and ends in a local optimum that depends on the seed:
//! on the test graphs the quality reached by leidenalg and by this implementation varies by
//! about 1 % (modularity) and 2 to 4 % (CPM at resolution 0.2) from seed to seed, with about
//! the same mean for both. [`leiden`] therefore runs `n_restarts` independent optimizations (in
//! parallel; restart 0 uses `seed` itself, restart `r` the `r`-th output of a SplitMix64
//! stream seeded with `seed`) and keeps the partition of the highest quality, the lowest
//! restart index winning ties. Each restart is sequential, so the result does not depend on
//! the thread count. `n_restarts = 1` is a single Leiden run, like leidenalg's
//! `find_partition`.
//!
//! Objectives (with `A` the weighted adjacency matrix, `k_i = sum_j A_ij`, `2m = sum_ij A_ij`):
//! - [`Objective::Modularity`]: `Q = 1/(2m) sum_ij (A_ij - gamma k_i k_j / 2m) delta(c_i, c_j)`,
//!   Reichardt-Bornholdt with the configuration null model; this is leidenalg's
//!   `RBConfigurationVertexPartition` (Scanpy's default `partition_type`) whose `quality()` is
//!   `2m * Q`, and igraph's `Graph.modularity(membership, weights, resolution)` equals `Q`.
//! - [`Objective::Cpm`]: `H = sum_c [ sum_{i,j in c} A_ij - gamma n_c (n_c - 1) ]`, the Constant
//!   Potts Model with unit node sizes; for graphs without self-loops this equals leidenalg's
//!   `CPMVertexPartition.quality()`.
//!
//! Differences from Scanpy: none in the objective; `sc.tl.leiden` runs leidenalg or igraph, whose
//! random streams differ from ours, so labels agree up to the usual seed-to-seed variation of
//! Leiden (the tests require ARI >= 0.9 with Scanpy's labels and modularity at least as high).
//! Scanpy runs one optimization; the default here keeps the best of 2 (see Restarts), run in
//! parallel: on 2 threads about the time of one run, on 1 thread twice it (0.93 s against
//! 0.51 s for the 50,000-cell pipeline graph, where leidenalg takes 13 s). leidenalg's refinement
//! (`merge_nodes_constrained` with a random neighbour community) was compared with igraph's
//! used here: over 16 seeds it reaches a lower mean quality on every test graph.

use super::{relabel_by_size, validate_graph, Clustering, SplitMix64};
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use rayon::prelude::*;
use std::collections::VecDeque;

/// The objective Leiden and Louvain maximize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Objective {
    /// Modularity with a resolution parameter (leidenalg's `RBConfigurationVertexPartition`,
    /// igraph's `objective_function="modularity"`): Scanpy's default.
    #[default]
    Modularity,
    /// Constant Potts Model (leidenalg's `CPMVertexPartition`, igraph's
    /// `objective_function="CPM"`) with unit node sizes.
    Cpm,
}

/// Options of [`leiden`].
#[derive(Debug, Clone, PartialEq)]
pub struct LeidenOptions {
    /// Resolution `gamma`; higher gives more, smaller clusters. Default 1.0 (Scanpy's).
    pub resolution: f64,
    /// Objective. Default [`Objective::Modularity`] (Scanpy's).
    pub objective: Objective,
    /// Number of iterations; negative means "until an iteration changes nothing" (at most
    /// 1,000). Default -1, as `sc.tl.leiden` in Scanpy 1.11 (for both flavors; Scanpy's
    /// suggested future igraph default is 2). Zero is invalid.
    pub n_iterations: i32,
    /// Seed of the random visiting orders and refinement choices. Default 0 (Scanpy's
    /// `random_state`).
    pub seed: u64,
    /// Randomness of the refinement step (`beta` in igraph, `theta` in the paper); must be
    /// positive. Default 0.01 (igraph's default).
    pub beta: f64,
    /// Number of independent optimizations whose best partition is returned (see the
    /// [module docs](self)); at least 1. Default 2: on the CPM test graph at resolution 0.2,
    /// 9 of 16 seeds then reach leidenalg's seed-0 quality, 14 of 16 with 4 restarts, 4 of 16
    /// with 1; the time grows linearly with it beyond the thread count.
    pub n_restarts: usize,
}

impl Default for LeidenOptions {
    fn default() -> Self {
        Self {
            resolution: 1.0,
            objective: Objective::Modularity,
            n_iterations: -1,
            seed: 0,
            beta: 0.01,
            n_restarts: 2,
        }
    }
}

/// Options of [`louvain`].
#[derive(Debug, Clone, PartialEq)]
pub struct LouvainOptions {
    /// Resolution `gamma`. Default 1.0.
    pub resolution: f64,
    /// Objective. Default [`Objective::Modularity`].
    pub objective: Objective,
    /// Number of iterations; negative means until stable (at most 1,000). Default -1.
    pub n_iterations: i32,
    /// Seed of the random visiting orders. Default 0.
    pub seed: u64,
}

impl Default for LouvainOptions {
    fn default() -> Self {
        Self {
            resolution: 1.0,
            objective: Objective::Modularity,
            n_iterations: -1,
            seed: 0,
        }
    }
}

const MAX_ITERATIONS: usize = 1000;

/// Leiden clustering of a symmetric weighted graph (for example Scanpy's
/// `obsp["connectivities"]`), as described in the [module docs](self).
///
/// `quality` of the result is the objective of the returned labels: modularity `Q` (igraph's
/// convention, leidenalg's `quality() / 2m`) or the CPM value `H`.
///
/// Errors: a non-square, empty, asymmetric graph or one with negative or non-finite weights
/// (`InvalidData`), and out-of-range options (`InvalidOption`).
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// # let log = scrna::normalize::normalize_total_log1p(&data.counts, &Default::default())?.matrix;
/// # let mut h = scrna::hvg::HvgOptions::default();
/// # h.n_top_genes = Some(200);
/// # let hvg = scrna::hvg::highly_variable_genes(&log, None, None, &h)?.selected();
/// # let mut p = scrna::pca::PcaOptions::default();
/// # p.n_comps = 10;
/// # let pca = scrna::pca::pca(&log.select_cols(&hvg)?, &p)?;
/// # let knn = scrna::neighbors::knn(pca.embedding.view(), &Default::default())?;
/// # let graph = scrna::graph::umap_connectivities(&knn, data.n_cells(), &Default::default())?;
/// let c = scrna::cluster::leiden(&graph, &Default::default())?;
/// assert!(c.n_clusters >= 2);
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn leiden(graph: &CsrMatrix, opts: &LeidenOptions) -> Result<Clustering> {
    opts.validate()?;
    validate_graph(graph, "leiden")?;
    let params = Params {
        resolution: opts.resolution,
        objective: opts.objective,
        n_iterations: opts.n_iterations,
        seed: opts.seed,
        beta: opts.beta,
        refine: true,
    };
    let mut stream = SplitMix64::new(opts.seed);
    let seeds: Vec<u64> = (0..opts.n_restarts)
        .map(|r| if r == 0 { opts.seed } else { stream.next_u64() })
        .collect();
    let (base, res) = base_level(graph, &params);
    let runs: Vec<Clustering> = seeds
        .par_iter()
        .map(|&seed| optimise(graph, &base, res, &params, seed))
        .collect();
    let mut best: Option<Clustering> = None;
    for c in runs {
        if best.as_ref().is_none_or(|b| c.quality > b.quality) {
            best = Some(c);
        }
    }
    best.ok_or_else(|| Error::option("n_restarts", "must be at least 1"))
}

/// Louvain clustering (Blondel et al. 2008): the same local moving and aggregation as
/// [`leiden`] but aggregating on the moved partition without refinement, so communities can be
/// badly connected. Offered for comparison with `sc.tl.louvain`; prefer [`leiden`].
pub fn louvain(graph: &CsrMatrix, opts: &LouvainOptions) -> Result<Clustering> {
    check_common(opts.resolution, opts.n_iterations)?;
    validate_graph(graph, "louvain")?;
    let params = Params {
        resolution: opts.resolution,
        objective: opts.objective,
        n_iterations: opts.n_iterations,
        seed: opts.seed,
        beta: 0.01,
        refine: false,
    };
    let (base, res) = base_level(graph, &params);
    Ok(optimise(graph, &base, res, &params, params.seed))
}

impl LeidenOptions {
    /// Checks the options: a finite non-negative resolution, a non-zero iteration count, a
    /// positive finite `beta`, at least one restart.
    pub fn validate(&self) -> Result<()> {
        check_common(self.resolution, self.n_iterations)?;
        if !(self.beta.is_finite() && self.beta > 0.0) {
            return Err(Error::option(
                "beta",
                format!("must be finite and positive, got {}", self.beta),
            ));
        }
        if self.n_restarts == 0 {
            return Err(Error::option("n_restarts", "must be at least 1"));
        }
        Ok(())
    }
}

fn check_common(resolution: f64, n_iterations: i32) -> Result<()> {
    if !(resolution.is_finite() && resolution >= 0.0) {
        return Err(Error::option(
            "resolution",
            format!("must be finite and non-negative, got {resolution}"),
        ));
    }
    if n_iterations == 0 {
        return Err(Error::option(
            "n_iterations",
            "must be positive, or negative for until stable",
        ));
    }
    Ok(())
}

struct Params {
    resolution: f64,
    objective: Objective,
    n_iterations: i32,
    seed: u64,
    beta: f64,
    refine: bool,
}

/// A graph level: CSR adjacency without self-loops, f64 weights, and node weights (strength
/// for modularity, size for CPM).
struct Level {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    weights: Vec<f64>,
    node_weight: Vec<f64>,
}

impl Level {
    fn n(&self) -> usize {
        self.node_weight.len()
    }

    #[inline]
    fn adj(&self, v: usize) -> (&[u32], &[f64]) {
        let (s, e) = (self.indptr[v], self.indptr[v + 1]);
        (&self.indices[s..e], &self.weights[s..e])
    }
}

/// Level 0 of `graph` for objective `p.objective`, and the resolution as used in move gains
/// (`gamma / 2m` for modularity, `gamma` for CPM).
fn base_level(graph: &CsrMatrix, p: &Params) -> (Level, f64) {
    let n = graph.n_rows();
    let strength: Vec<f64> = graph.row_sums();
    let two_m: f64 = strength.iter().sum();
    // Level 0 without self-loops (they do not change any move gain).
    let mut indptr = Vec::with_capacity(n + 1);
    let mut indices = Vec::with_capacity(graph.nnz());
    let mut weights = Vec::with_capacity(graph.nnz());
    indptr.push(0);
    for v in 0..n {
        let (cols, vals) = graph.row(v);
        for (&u, &w) in cols.iter().zip(vals) {
            if u as usize != v && w > 0.0 {
                indices.push(u);
                weights.push(w as f64);
            }
        }
        indptr.push(indices.len());
    }
    let (node_weight, res) = match p.objective {
        Objective::Modularity => (
            strength.clone(),
            if two_m > 0.0 {
                p.resolution / two_m
            } else {
                0.0
            },
        ),
        Objective::Cpm => (vec![1.0; n], p.resolution),
    };
    let base = Level {
        indptr,
        indices,
        weights,
        node_weight,
    };
    (base, res)
}

/// One optimization of `base` (level 0 of `graph`) from singletons with the given seed.
fn optimise(graph: &CsrMatrix, base: &Level, res: f64, p: &Params, seed: u64) -> Clustering {
    let n = base.n();
    let mut rng = SplitMix64::new(seed);
    let mut membership: Vec<u32> = (0..n as u32).collect();
    let max_iter = if p.n_iterations < 0 {
        MAX_ITERATIONS
    } else {
        p.n_iterations as usize
    };
    for _ in 0..max_iter {
        let changed = iterate(base, &mut membership, res, p, &mut rng);
        if p.n_iterations < 0 && !changed {
            break;
        }
    }
    let (labels, n_clusters) = relabel_by_size(&membership);
    let quality = match p.objective {
        Objective::Modularity => modularity_value(graph, &labels, n_clusters, p.resolution),
        Objective::Cpm => cpm_value(graph, &labels, n_clusters, p.resolution),
    };
    Clustering {
        labels,
        n_clusters,
        quality,
    }
}

/// Modularity `Q` of `labels` (in `0..k`) on `graph` (see module docs).
pub(crate) fn modularity_value(graph: &CsrMatrix, labels: &[u32], k: usize, gamma: f64) -> f64 {
    let mut internal = vec![0.0f64; k];
    let mut tot = vec![0.0f64; k];
    let mut two_m = 0.0f64;
    for (i, &li) in labels.iter().enumerate() {
        let (cols, vals) = graph.row(i);
        for (&j, &w) in cols.iter().zip(vals) {
            let w = w as f64;
            two_m += w;
            tot[li as usize] += w;
            if labels[j as usize] == li {
                internal[li as usize] += w;
            }
        }
    }
    if two_m <= 0.0 {
        return 0.0;
    }
    let mut q = 0.0;
    for c in 0..k {
        q += internal[c] - gamma * tot[c] * tot[c] / two_m;
    }
    q / two_m
}

pub(crate) fn cpm_value(graph: &CsrMatrix, labels: &[u32], k: usize, gamma: f64) -> f64 {
    let mut internal = vec![0.0f64; k];
    let mut size = vec![0.0f64; k];
    for (i, &li) in labels.iter().enumerate() {
        size[li as usize] += 1.0;
        let (cols, vals) = graph.row(i);
        for (&j, &w) in cols.iter().zip(vals) {
            if labels[j as usize] == li {
                internal[li as usize] += w as f64;
            }
        }
    }
    (0..k)
        .map(|c| internal[c] - gamma * size[c] * (size[c] - 1.0))
        .sum()
}

/// One Leiden (or Louvain) iteration starting from `membership`; returns whether any node
/// changed community during local moving.
fn iterate(
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

/// Collapses `g` on `labels` (in `0..k`): node weights add up, edges between groups add up,
/// edges inside a group are dropped. Rows are built in parallel, each in a fixed order.
fn aggregate(g: &Level, labels: &[u32], k: usize) -> Level {
    let n = g.n();
    // Members of each group (counting sort, stable).
    let mut start = vec![0usize; k + 1];
    for &l in labels {
        start[l as usize + 1] += 1;
    }
    for i in 0..k {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut members = vec![0u32; n];
    for (v, &l) in labels.iter().enumerate() {
        members[fill[l as usize]] = v as u32;
        fill[l as usize] += 1;
    }
    let mut node_weight = vec![0.0f64; k];
    for v in 0..n {
        node_weight[labels[v] as usize] += g.node_weight[v];
    }
    const CHUNK: usize = 512;
    let rows: Vec<(Vec<u32>, Vec<f64>, Vec<usize>)> = (0..k.div_ceil(CHUNK))
        .into_par_iter()
        .map(|chunk| {
            let mut acc = vec![0.0f64; k];
            let mut seen = vec![false; k];
            let mut touched: Vec<u32> = Vec::new();
            let mut idx = Vec::new();
            let mut wts = Vec::new();
            let mut lens = Vec::new();
            for a in chunk * CHUNK..((chunk + 1) * CHUNK).min(k) {
                for &v in &members[start[a]..start[a + 1]] {
                    let (cols, w) = g.adj(v as usize);
                    for (&u, &w) in cols.iter().zip(w) {
                        let b = labels[u as usize] as usize;
                        if b == a {
                            continue;
                        }
                        if !seen[b] {
                            seen[b] = true;
                            touched.push(b as u32);
                        }
                        acc[b] += w;
                    }
                }
                touched.sort_unstable();
                for &b in &touched {
                    idx.push(b);
                    wts.push(acc[b as usize]);
                    acc[b as usize] = 0.0;
                    seen[b as usize] = false;
                }
                lens.push(touched.len());
                touched.clear();
            }
            (idx, wts, lens)
        })
        .collect();
    let nnz: usize = rows.iter().map(|r| r.0.len()).sum();
    let mut indptr = Vec::with_capacity(k + 1);
    let mut indices = Vec::with_capacity(nnz);
    let mut weights = Vec::with_capacity(nnz);
    indptr.push(0);
    for (idx, wts, lens) in rows {
        indices.extend_from_slice(&idx);
        weights.extend_from_slice(&wts);
        for l in lens {
            let last = *indptr.last().unwrap_or(&0);
            indptr.push(last + l);
        }
    }
    Level {
        indptr,
        indices,
        weights,
        node_weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two 4-cliques joined by one weak edge.
    fn two_cliques() -> CsrMatrix {
        let mut r = Vec::new();
        let mut c = Vec::new();
        let mut v = Vec::new();
        for base in [0u32, 4] {
            for i in 0..4 {
                for j in 0..4 {
                    if i != j {
                        r.push(base + i);
                        c.push(base + j);
                        v.push(1.0);
                    }
                }
            }
        }
        r.extend([3, 4]);
        c.extend([4, 3]);
        v.extend([0.1, 0.1]);
        CsrMatrix::from_triplets(8, 8, &r, &c, &v).unwrap()
    }

    #[test]
    fn finds_two_cliques() {
        let g = two_cliques();
        let res = leiden(&g, &LeidenOptions::default()).unwrap();
        assert_eq!(res.n_clusters, 2);
        assert_eq!(res.labels, vec![0, 0, 0, 0, 1, 1, 1, 1]);
        // Q by hand: each clique has 6 edges (12 stored entries), K = 12.1 per side, 2m = 24.2.
        let two_m = 24.2;
        let q = (24.0 - 2.0 * 12.1 * 12.1 / two_m) / two_m;
        assert!((res.quality - q).abs() < 1e-7);
        let lv = louvain(&g, &LouvainOptions::default()).unwrap();
        assert_eq!(lv.labels, res.labels);
    }

    #[test]
    fn cpm_high_resolution_gives_singletons() {
        let g = two_cliques();
        let opts = LeidenOptions {
            objective: Objective::Cpm,
            resolution: 2.0,
            ..Default::default()
        };
        let res = leiden(&g, &opts).unwrap();
        assert_eq!(res.n_clusters, 8);
        let opts = LeidenOptions {
            objective: Objective::Cpm,
            resolution: 0.5,
            ..Default::default()
        };
        let res = leiden(&g, &opts).unwrap();
        assert_eq!(res.n_clusters, 2);
        // H = sum_c (sum_{i,j in c} A_ij - gamma n_c (n_c - 1)) = 2 * (12 - 0.5 * 4 * 3).
        assert!((res.quality - 2.0 * (12.0 - 0.5 * 12.0)).abs() < 1e-9);
    }

    #[test]
    fn bad_options_are_errors() {
        let g = two_cliques();
        for o in [
            LeidenOptions {
                resolution: -1.0,
                ..Default::default()
            },
            LeidenOptions {
                resolution: f64::NAN,
                ..Default::default()
            },
            LeidenOptions {
                beta: 0.0,
                ..Default::default()
            },
            LeidenOptions {
                n_iterations: 0,
                ..Default::default()
            },
            LeidenOptions {
                n_restarts: 0,
                ..Default::default()
            },
        ] {
            assert!(matches!(leiden(&g, &o), Err(Error::InvalidOption { .. })));
        }
    }

    #[test]
    fn isolated_nodes_and_empty_edges() {
        let g = CsrMatrix::zeros(3, 3);
        let res = leiden(&g, &LeidenOptions::default()).unwrap();
        assert_eq!(res.labels, vec![0, 1, 2]);
        assert_eq!(res.quality, 0.0);
    }
}
