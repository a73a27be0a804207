//! UMAP layout of a cell graph (Scanpy's `sc.tl.umap`, `obsm["X_umap"]`).
//!
//! [`umap`] lays out the symmetric fuzzy connectivities graph (Scanpy's
//! `obsp["connectivities"]`) in two dimensions the way umap-learn's
//! `simplicial_set_embedding` does when Scanpy calls it (McInnes, Healy & Melville 2018,
//! arXiv:1802.03426):
//!
//! 1. the curve `q(d) = 1 / (1 + a d^(2b))` is fitted to the target
//!    `1` for `d < min_dist`, `exp(-(d - min_dist) / spread)` otherwise ([`find_ab_params`]);
//! 2. edges lighter than `max(w) / n_epochs` are dropped; edge `e` is sampled every
//!    `epochs_per_sample[e] = max(w) / w[e]` epochs, with `negative_sample_rate` negative
//!    samples per positive sample;
//! 3. the initial layout (spectral or PCA, scaled so its largest coordinate is 10, plus
//!    N(0, 1e-4) noise, then each axis rescaled to [0, 10]) is optimized by stochastic gradient
//!    descent on the fuzzy set cross-entropy: attraction
//!    `-2ab d²^(b-1) / (1 + a d²^b) (y_i - y_j)`, repulsion
//!    `2 gamma b / ((0.001 + d²)(1 + a d²^b)) (y_i - y_k)`, each coordinate of a gradient clipped
//!    to [-4, 4], learning rate decaying linearly from `learning_rate` to 0.
//!
//! **Difference from umap-learn.** umap-learn runs the SGD "Hogwild" over edges in parallel, so
//! its result depends on thread timing. Here each epoch is parallel over cells with a fixed
//! scheme, so the result is identical for a seed whatever the thread count: a cell moves only
//! itself, reading the other cells' positions as they were at the start of the epoch; it applies
//! the attraction of each of its due out-edges and of each due in-edge (umap-learn's
//! `move_other`), and the negative samples of its out-edges, drawn from a random stream seeded by
//! `(seed, epoch, cell)`. On processors with AVX2 the gradient steps of 16 cells run together
//! in 256-bit vectors, with the same operations as the scalar steps, so the layout is the same
//! bit for bit with or without AVX2. The sampling schedule is umap-learn's. The random numbers
//! differ from umap-learn's, so layouts agree in structure, not coordinate by coordinate.

use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::matrix_free::eigen::{
    partial_self_adjoint_eigen, partial_self_adjoint_eigen_scratch, PartialEigenParams,
};
use faer::matrix_free::LinOp;
use faer::{Mat, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

/// How the layout starts.
#[derive(Debug, Clone, Copy)]
pub enum Init<'a> {
    /// Eigenvectors 2 and 3 of the symmetric normalized Laplacian `I - D^-1/2 W D^-1/2` of the
    /// graph (umap-learn's `spectral_layout`, Scanpy's default `init_pos="spectral"`). A graph
    /// with several connected components is laid out component by component around fixed
    /// centres (as umap-learn's `multi_component_layout`, except that the centres are placed
    /// on a spiral by component size, as there is no data matrix to place them by). If the
    /// eigensolver fails, the start is uniform in [-10, 10], as umap-learn falls back.
    Spectral,
    /// The first two columns of a cells x components matrix (e.g. `obsm["X_pca"]`), scaled so
    /// the largest absolute coordinate is 10, plus N(0, 1e-4) noise (umap-learn's
    /// `noisy_scale_coords`).
    Pca(ArrayView2<'a, f32>),
    /// Uniform in [-10, 10] (umap-learn's `init="random"`).
    Random,
}

/// Options of [`umap`]; the defaults are Scanpy's `sc.tl.umap`.
#[derive(Debug, Clone, PartialEq)]
pub struct UmapOptions {
    /// Effective minimum distance between embedded points. Default 0.5 (Scanpy's; umap-learn's
    /// own default is 0.1). Must be in [0, `spread`].
    pub min_dist: f32,
    /// Effective scale of embedded points. Default 1.0. Must be positive.
    pub spread: f32,
    /// Number of epochs; `None` = 500 for graphs of at most 10,000 cells, else 200 (umap-learn's
    /// and Scanpy's rule). Default `None`.
    pub n_epochs: Option<usize>,
    /// Negative samples per positive sample. Default 5.
    pub negative_sample_rate: usize,
    /// Initial learning rate (`alpha`), decaying linearly to 0. Default 1.0. Must be positive.
    pub learning_rate: f32,
    /// Weight of the repulsion (`gamma`, umap-learn's `repulsion_strength`). Default 1.0.
    pub repulsion_strength: f32,
    /// Seed of every random draw (initial noise, negative samples). Default 0 (Scanpy's
    /// `random_state=0`).
    pub seed: u64,
}

impl Default for UmapOptions {
    fn default() -> Self {
        UmapOptions {
            min_dist: 0.5,
            spread: 1.0,
            n_epochs: None,
            negative_sample_rate: 5,
            learning_rate: 1.0,
            repulsion_strength: 1.0,
            seed: 0,
        }
    }
}

impl UmapOptions {
    /// Checks the options: positive `spread`, `min_dist` in [0, spread], positive
    /// `learning_rate`, non-negative `repulsion_strength`.
    pub fn validate(&self) -> Result<()> {
        if !(self.spread.is_finite() && self.spread > 0.0) {
            return Err(Error::option("spread", "must be a positive number"));
        }
        if !(self.min_dist.is_finite() && self.min_dist >= 0.0) {
            return Err(Error::option("min_dist", "must be a number >= 0"));
        }
        if self.min_dist > self.spread {
            return Err(Error::option(
                "min_dist",
                format!(
                    "must be at most spread ({}), got {}",
                    self.spread, self.min_dist
                ),
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::option("learning_rate", "must be a positive number"));
        }
        if !(self.repulsion_strength.is_finite() && self.repulsion_strength >= 0.0) {
            return Err(Error::option("repulsion_strength", "must be a number >= 0"));
        }
        Ok(())
    }
}

/// Fits `a`, `b` of `q(d) = 1 / (1 + a d^(2b))` by least squares to the target `1` for
/// `d < min_dist` and `exp(-(d - min_dist) / spread)` otherwise, at 300 evenly spaced `d` in
/// `[0, 3 spread]` (umap-learn's `find_ab_params`, which uses scipy's `curve_fit`:
/// Levenberg-Marquardt from `a = b = 1`; the same here). Scanpy's defaults (`min_dist` 0.5,
/// `spread` 1) give `a ≈ 0.583`, `b ≈ 1.334`.
pub fn find_ab_params(spread: f64, min_dist: f64) -> Result<(f64, f64)> {
    if !(spread.is_finite() && spread > 0.0) {
        return Err(Error::option("spread", "must be a positive number"));
    }
    if !(min_dist.is_finite() && min_dist >= 0.0) {
        return Err(Error::option("min_dist", "must be a number >= 0"));
    }
    let n = 300;
    let xs: Vec<f64> = (0..n)
        .map(|i| spread * 3.0 * i as f64 / (n - 1) as f64)
        .collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    // residuals and Jacobian of f(x) = 1 / (1 + a x^(2b))
    let eval = |a: f64, b: f64| -> (f64, [f64; 3], [f64; 2]) {
        let (mut sse, mut jtj, mut jtr) = (0.0, [0.0; 3], [0.0; 2]);
        for (&x, &y) in xs.iter().zip(&ys) {
            let (u, lnx2) = if x > 0.0 {
                (x.powf(2.0 * b), 2.0 * x.ln())
            } else {
                (0.0, 0.0)
            };
            let den = 1.0 + a * u;
            let f = 1.0 / den;
            let r = f - y;
            let da = -u / (den * den);
            let db = -a * u * lnx2 / (den * den);
            sse += r * r;
            jtj[0] += da * da;
            jtj[1] += da * db;
            jtj[2] += db * db;
            jtr[0] += da * r;
            jtr[1] += db * r;
        }
        (sse, jtj, jtr)
    };
    let (mut a, mut b) = (1.0f64, 1.0f64);
    let (mut sse, mut jtj, mut jtr) = eval(a, b);
    let mut lambda = 1e-3;
    for _ in 0..500 {
        // Levenberg-Marquardt step with Marquardt's diagonal scaling
        let m00 = jtj[0] * (1.0 + lambda);
        let m11 = jtj[2] * (1.0 + lambda);
        let det = m00 * m11 - jtj[1] * jtj[1];
        if !(det.is_finite() && det.abs() > 0.0) {
            break;
        }
        let da = -(m11 * jtr[0] - jtj[1] * jtr[1]) / det;
        let db = -(m00 * jtr[1] - jtj[1] * jtr[0]) / det;
        let (na, nb) = (a + da, b + db);
        let (nsse, njtj, njtr) = eval(na, nb);
        if nsse.is_finite() && nsse <= sse && na > 0.0 && nb > 0.0 {
            let done = (sse - nsse) <= 1e-15 * sse.max(1e-300)
                && da.abs() <= 1e-12 * a.abs()
                && db.abs() <= 1e-12 * b.abs();
            a = na;
            b = nb;
            sse = nsse;
            jtj = njtj;
            jtr = njtr;
            lambda = (lambda / 10.0).max(1e-12);
            if done {
                break;
            }
        } else {
            lambda *= 10.0;
            if lambda > 1e12 {
                break;
            }
        }
    }
    if !(a.is_finite() && b.is_finite() && a > 0.0 && b > 0.0) {
        return Err(Error::data(
            "umap",
            format!("curve fit for spread {spread}, min_dist {min_dist} failed"),
        ));
    }
    Ok((a, b))
}

/// The number of epochs umap-learn and Scanpy use when none is given: 500 for at most 10,000
/// cells, else 200.
pub fn default_n_epochs(n_cells: usize) -> usize {
    if n_cells <= 10_000 {
        500
    } else {
        200
    }
}

/// Graph edges kept for the optimization, as CSR (out-edges) with the transpose (in-edges).
struct Edges {
    n: usize,
    indptr: Vec<usize>,
    tail: Vec<u32>,
    weight: Vec<f32>,
    /// epochs between two samples of each out-edge (`max(w) / w`)
    eps: Vec<f64>,
    t_indptr: Vec<usize>,
    t_head: Vec<u32>,
    t_eps: Vec<f64>,
    /// whether the in-edges of each cell are its out-edges with the same weights, in the same
    /// order (a symmetric graph, as Scanpy's connectivities are)
    symmetric: bool,
}

fn check_graph(graph: &CsrMatrix) -> Result<()> {
    let (r, c) = graph.shape();
    if r != c {
        return Err(Error::data(
            "umap",
            format!("the graph must be square, got {r} x {c}"),
        ));
    }
    if r < 2 {
        return Err(Error::data(
            "umap",
            format!("needs at least 2 cells, got {r}"),
        ));
    }
    if r >= NEG as usize {
        return Err(Error::data(
            "umap",
            format!("at most {} cells, got {r}", NEG - 1),
        ));
    }
    if let Some(v) = graph.data().iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
        return Err(Error::data(
            "umap",
            format!("graph weights must be finite and >= 0, found {v}"),
        ));
    }
    Ok(())
}

fn build_edges(graph: &CsrMatrix, n_epochs: usize) -> Result<Edges> {
    let n = graph.n_rows();
    let max = graph.data().iter().fold(0.0f32, |m, &v| m.max(v));
    if max <= 0.0 {
        return Err(Error::data("umap", "the graph has no edge with weight > 0"));
    }
    let threshold_epochs = if n_epochs > 10 {
        n_epochs
    } else {
        default_n_epochs(n)
    };
    let threshold = max / threshold_epochs as f32;
    let mut indptr = Vec::with_capacity(n + 1);
    indptr.push(0);
    let mut tail = Vec::new();
    let mut weight = Vec::new();
    for r in 0..n {
        let (idx, val) = graph.row(r);
        for (&c, &w) in idx.iter().zip(val) {
            if w >= threshold && w > 0.0 {
                tail.push(c);
                weight.push(w);
            }
        }
        indptr.push(tail.len());
    }
    let eps: Vec<f64> = weight.iter().map(|&w| max as f64 / w as f64).collect();
    // transpose
    let mut t_indptr = vec![0usize; n + 1];
    for &c in &tail {
        t_indptr[c as usize + 1] += 1;
    }
    for i in 0..n {
        t_indptr[i + 1] += t_indptr[i];
    }
    let mut next = t_indptr.clone();
    let mut t_head = vec![0u32; tail.len()];
    let mut t_eps = vec![0f64; tail.len()];
    for r in 0..n {
        for e in indptr[r]..indptr[r + 1] {
            let c = tail[e] as usize;
            t_head[next[c]] = r as u32;
            t_eps[next[c]] = eps[e];
            next[c] += 1;
        }
    }
    let symmetric = t_indptr == indptr
        && t_head == tail
        && t_eps
            .iter()
            .zip(&eps)
            .all(|(x, y)| x.to_bits() == y.to_bits());
    Ok(Edges {
        symmetric,
        n,
        indptr,
        tail,
        weight,
        eps,
        t_indptr,
        t_head,
        t_eps,
    })
}

/// Lays out the cells of a symmetric fuzzy connectivities graph in two dimensions with UMAP
/// (see the [module documentation](self) for the method and how it differs from umap-learn).
///
/// `graph` is cells x cells with weights in [0, 1] (Scanpy's `obsp["connectivities"]`).
/// Returns cells x 2 (Scanpy's `obsm["X_umap"]`). Errors: a graph that is not square, has
/// fewer than 2 cells, a weight that is negative or not finite, or no edge; a PCA start with
/// the wrong number of rows, fewer than 2 columns or a value that is not finite; bad options.
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
/// let layout = scrna::embed::umap(&graph, scrna::embed::Init::Spectral, &Default::default())?;
/// assert_eq!(layout.dim(), (data.n_cells(), 2));
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn umap(graph: &CsrMatrix, init: Init<'_>, opts: &UmapOptions) -> Result<Array2<f32>> {
    umap_with_progress(graph, init, opts, &mut |_| {})
}

/// [`umap`], calling `progress` with the fraction of epochs done (from 0 to 1): once with 0
/// when the initial layout is ready and the optimization starts, then every few epochs.
pub fn umap_with_progress(
    graph: &CsrMatrix,
    init: Init<'_>,
    opts: &UmapOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<Array2<f32>> {
    opts.validate()?;
    check_graph(graph)?;
    let n = graph.n_rows();
    if let Init::Pca(x) = &init {
        if x.nrows() != n || x.ncols() < 2 {
            return Err(Error::data(
                "umap",
                format!(
                    "the PCA start must be {n} x >= 2, got {} x {}",
                    x.nrows(),
                    x.ncols()
                ),
            ));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(Error::data(
                "umap",
                "the PCA start holds a value that is not finite",
            ));
        }
    }
    let (a, b) = find_ab_params(opts.spread as f64, opts.min_dist as f64)?;
    let n_epochs = opts.n_epochs.unwrap_or_else(|| default_n_epochs(n));
    let edges = build_edges(graph, n_epochs)?;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut pos = initial_layout(&edges, init, &mut rng)?;
    // each axis to [0, 10]
    for d in 0..2 {
        let (lo, hi) = pos
            .chunks_exact(2)
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p[d]), hi.max(p[d]))
            });
        let range = if hi > lo { hi - lo } else { 1.0 };
        for p in pos.chunks_exact_mut(2) {
            p[d] = 10.0 * (p[d] - lo) / range;
        }
    }
    optimize(
        &edges, &mut pos, a as f32, b as f32, n_epochs, opts, progress,
    );
    Array2::from_shape_vec((n, 2), pos).map_err(|e| Error::data("umap", e.to_string()))
}

#[inline]
fn clip(v: f32) -> f32 {
    v.clamp(-4.0, 4.0)
}

/// SplitMix64 step, used to derive per-(epoch, cell) random streams.
#[inline]
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64* generator for negative samples.
struct Xs(u64);
impl Xs {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Whether an edge sampled every `eps` epochs is due at epoch `n`, umap-learn's schedule:
/// due when `next <= n`, and then `next += eps` (`next` starts at `eps`).
#[inline]
fn due(next: &mut f64, eps: f64, n: usize) -> bool {
    if *next <= n as f64 {
        *next += eps;
        true
    } else {
        false
    }
}

/// `x^b` for a fixed `b` by table: `x = m 2^e` with `m` in `[1, 2)`, so `x^b = 2^(b e) m^b`;
/// `2^(b e)` comes from a table over the 254 normal exponents and `m^b` from a table over the
/// top 12 bits of the mantissa with linear interpolation (relative error below 1e-6, see the
/// test). Zero, subnormal, infinite and NaN inputs fall back to `powf`. Several times faster
/// than `powf` in the layout loop, and the same on every machine (no fused multiply-add).
struct PowTable {
    b: f32,
    /// `2^(b (e - 127))` for each biased exponent `e`
    scale: Box<[f32; 256]>,
    /// `(1 + i / 2^BITS)^b` for `i` in `0..=2^BITS`
    mant: Box<[f32; PowTable::MANT]>,
}

impl PowTable {
    const BITS: u32 = 12;
    const MANT: usize = (1 << Self::BITS) + 1;

    fn new(b: f32) -> PowTable {
        let bd = b as f64;
        let mut scale = Box::new([0f32; 256]);
        for (e, v) in scale.iter_mut().enumerate() {
            *v = (bd * (e as f64 - 127.0)).exp2() as f32;
        }
        let n = 1usize << Self::BITS;
        let mut mant = Box::new([0f32; Self::MANT]);
        for (i, v) in mant.iter_mut().enumerate() {
            *v = (1.0 + i as f64 / n as f64).powf(bd) as f32;
        }
        PowTable { b, scale, mant }
    }

    #[inline]
    fn pow(&self, x: f32) -> f32 {
        let bits = x.to_bits();
        let e = (bits >> 23) as usize;
        if e == 0 || e >= 255 {
            return x.powf(self.b);
        }
        let m = bits & 0x007F_FFFF;
        let shift = 23 - Self::BITS;
        let i = (m >> shift) as usize;
        let frac = (m & ((1 << shift) - 1)) as f32 * (1.0 / (1u32 << shift) as f32);
        let lo = self.mant[i];
        let hi = self.mant[i + 1];
        (lo + (hi - lo) * frac) * self.scale[e]
    }
}

/// Cells per parallel task of the optimization.
const CHUNK: usize = 2048;
/// Marks a negative sample in a task's list of samples (cell indices are below 2^31).
const NEG: u32 = 1 << 31;

/// The cells of one parallel task with their part of the schedule state.
struct Chunk<'a> {
    /// first cell
    first: usize,
    /// next epoch at which each out-edge is sampled
    out_next: &'a mut [f64],
    /// next epoch at which each out-edge draws negative samples
    neg_next: &'a mut [f64],
    /// next epoch at which each in-edge is sampled
    in_next: &'a mut [f64],
}

/// The constants of one epoch's gradient steps.
#[derive(Clone, Copy)]
struct Step<'a> {
    pow_b: &'a PowTable,
    a: f32,
    /// `-2ab`
    att: f32,
    /// `2 gamma b`
    rep: f32,
    alpha: f32,
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

/// Lists the samples of the chunk's cells due at `epoch` (umap-learn's schedule): per cell, its
/// due out-edges each followed by its negative samples, then its due in-edges (umap-learn's
/// `move_other`). `ends[c]` is the end of cell `first + c`'s samples. In a symmetric graph
/// the in-edges of a cell are its out-edges, with the same schedule: they are the due
/// out-edges again, with no second schedule to keep.
#[allow(clippy::too_many_arguments)]
fn due_samples(
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
    let (e0, t0) = (edges.indptr[ch.first], edges.t_indptr[ch.first]);
    let now = epoch as f64;
    for j in ch.first..ch.first + n_cells {
        let mut rng = Xs(splitmix(epoch_seed ^ splitmix(j as u64)) | 1);
        due_out.clear();
        for e in edges.indptr[j]..edges.indptr[j + 1] {
            let eps = edges.eps[e];
            if !due(&mut ch.out_next[e - e0], eps, epoch) {
                continue;
            }
            samples.push(edges.tail[e]);
            due_out.push(edges.tail[e]);
            if nsr <= 0.0 {
                continue;
            }
            let slot = &mut ch.neg_next[e - e0];
            let epn = eps / nsr;
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
        if edges.symmetric {
            samples.extend_from_slice(due_out);
        } else {
            for t in edges.t_indptr[j]..edges.t_indptr[j + 1] {
                if due(&mut ch.in_next[t - t0], edges.t_eps[t], epoch) {
                    samples.push(edges.t_head[t]);
                }
            }
        }
        ends.push(samples.len() as u32);
    }
}

/// One lane of [`apply_samples`]: a run of consecutive cells of a task, each moved along its
/// own samples (a chain: each step reads the position the previous one wrote), one cell after
/// the other.
#[derive(Clone, Copy)]
struct Lane {
    /// the current cell (the first with samples left), or `last` once the lane is done
    cell: usize,
    /// end of the lane's cells
    last: usize,
    /// next sample
    p: usize,
    /// end of the lane's samples
    stop: usize,
    /// position of the current cell
    x: f32,
    y: f32,
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
    fn leave(&mut self, ends: &[u32], pos: &mut [f32]) {
        pos[2 * self.cell] = self.x;
        pos[2 * self.cell + 1] = self.y;
        self.enter(ends, pos);
    }

    /// Applies the lane's remaining samples one by one.
    fn finish(
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
fn split_lanes<const L: usize>(ends: &[u32], pos: &[f32]) -> [Lane; L] {
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
fn apply_samples(step: Step<'_>, samples: &[u32], ends: &[u32], snapshot: &[f32], pos: &mut [f32]) {
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
fn apply_samples_scalar(
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

/// 256-bit vectors of [`apply_samples_avx2`] interleaved (8 lanes each).
#[cfg(target_arch = "x86_64")]
const AVX2_VECTORS: usize = 2;

/// [`apply_samples`] with AVX2: `8 * AVX2_VECTORS` lanes, one cell's chain per vector lane,
/// the other cells' positions and the [`PowTable`] entries gathered. Every lane computes what
/// [`Step::apply`] computes, operation for operation (no fused multiply-add, IEEE division,
/// the clamp as `min(4, max(-4, v))`, which keeps a NaN as `f32::clamp` does), so the bits are
/// those of [`apply_samples_scalar`]. When the first lane runs out of samples, the lanes
/// finish one by one with [`Lane::finish`].
///
/// # Safety
/// The processor must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn apply_samples_avx2(
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
    // gather indices are i32; the sample gathers read below the current cell's end, so the
    // ends must not decrease nor pass the samples (as due_samples makes them)
    let fits = n > 0
        && n <= i32::MAX as usize
        && samples.len() <= i32::MAX as usize
        && ends.windows(2).all(|w| w[0] <= w[1])
        && ends.last().is_none_or(|&e| e as usize <= samples.len());
    if fits && lanes.iter().all(|l| l.p < l.stop) {
        let mut p: [i32; L] = lanes.map(|l| l.p as i32);
        let mut end: [i32; L] = lanes.map(|l| ends[l.cell] as i32);
        let mut x: [f32; L] = lanes.map(|l| l.x);
        let mut y: [f32; L] = lanes.map(|l| l.y);
        let k_max = _mm256_set1_epi32((n - 1) as i32);
        let one = _mm256_set1_epi32(1);
        let zero = _mm256_setzero_si256();
        let low31 = _mm256_set1_epi32(i32::MAX);
        let mut vp = [zero; G];
        let mut vend = [zero; G];
        let mut vx = [_mm256_setzero_ps(); G];
        let mut vy = [_mm256_setzero_ps(); G];
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
                // SAFETY: every lane has samples left (p < end <= stop <= samples.len()), so
                // the gather reads samples[p]; the cell index is at most n - 1, so the position
                // gathers read snapshot[2 k] and snapshot[2 k + 1] with 2 k + 1 < 2 n.
                let (neg, ox, oy) = unsafe {
                    let s = _mm256_i32gather_epi32::<4>(samples.as_ptr().cast(), vp[g]);
                    let k = _mm256_min_epu32(_mm256_and_si256(s, low31), k_max);
                    let neg = _mm256_castsi256_ps(_mm256_cmpgt_epi32(zero, s));
                    let ox = _mm256_i32gather_ps::<8>(snapshot.as_ptr(), k);
                    let oy = _mm256_i32gather_ps::<8>(snapshot.as_ptr().add(1), k);
                    (neg, ox, oy)
                };
                // SAFETY: AVX2 is enabled in this function.
                (vx[g], vy[g]) = unsafe { step_avx2(&step, vx[g], vy[g], ox, oy, neg) };
                vp[g] = _mm256_add_epi32(vp[g], one);
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
            let mut out = false;
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
                    out = true;
                }
            }
            if out {
                for (l, lane) in lanes.iter_mut().enumerate() {
                    if done & (1 << l) == 0 {
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
    let (lo, hi, sc) = unsafe {
        (
            _mm256_i32gather_ps::<4>(t.mant.as_ptr(), i),
            _mm256_i32gather_ps::<4>(t.mant.as_ptr().add(1), i),
            _mm256_i32gather_ps::<4>(
                t.scale.as_ptr(),
                _mm256_and_si256(e, _mm256_set1_epi32(255)),
            ),
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

fn optimize(
    edges: &Edges,
    pos: &mut Vec<f32>,
    a: f32,
    b: f32,
    n_epochs: usize,
    opts: &UmapOptions,
    progress: &mut dyn FnMut(f64),
) {
    let n = edges.n;
    let nsr = opts.negative_sample_rate as f64;
    let gamma = opts.repulsion_strength;
    // umap-learn: epochs_per_negative_sample = eps / rate, next negative sample at that epoch
    let mut neg_next: Vec<f64> = if nsr > 0.0 {
        edges.eps.iter().map(|&e| e / nsr).collect()
    } else {
        vec![f64::INFINITY; edges.eps.len()]
    };
    // next epoch at which each out-edge and each in-edge is sampled
    let mut out_next = edges.eps.clone();
    let mut in_next = if edges.symmetric {
        Vec::new()
    } else {
        edges.t_eps.clone()
    };
    let mut next = pos.clone();
    let mut chunks = Vec::with_capacity(n.div_ceil(CHUNK));
    {
        let (mut o, mut g, mut t) = (&mut out_next[..], &mut neg_next[..], &mut in_next[..]);
        for first in (0..n).step_by(CHUNK) {
            let last = (first + CHUNK).min(n);
            let ne = edges.indptr[last] - edges.indptr[first];
            let nt = if edges.symmetric {
                0
            } else {
                edges.t_indptr[last] - edges.t_indptr[first]
            };
            let (o1, o2) = std::mem::take(&mut o).split_at_mut(ne);
            let (g1, g2) = std::mem::take(&mut g).split_at_mut(ne);
            let (t1, t2) = std::mem::take(&mut t).split_at_mut(nt);
            chunks.push(Chunk {
                first,
                out_next: o1,
                neg_next: g1,
                in_next: t1,
            });
            (o, g, t) = (o2, g2, t2);
        }
    }
    let seed = splitmix(opts.seed ^ 0x005E_ED0F_0A11);
    let pow_b = PowTable::new(b);
    progress(0.0);
    for epoch in 0..n_epochs {
        let step = Step {
            pow_b: &pow_b,
            a,
            att: -2.0 * a * b,
            rep: 2.0 * gamma * b,
            alpha: opts.learning_rate * (1.0 - epoch as f32 / n_epochs as f32),
        };
        let snapshot: &[f32] = pos;
        let epoch_seed = splitmix(seed ^ splitmix(epoch as u64));
        next.par_chunks_mut(2 * CHUNK)
            .zip(chunks.par_iter_mut())
            .for_each_init(
                || (Vec::new(), Vec::new(), Vec::new()),
                |(samples, ends, due_out), (out, ch)| {
                    let m = out.len() / 2;
                    due_samples(edges, ch, m, epoch, nsr, epoch_seed, samples, ends, due_out);
                    out.copy_from_slice(&snapshot[2 * ch.first..2 * (ch.first + m)]);
                    apply_samples(step, samples, ends, snapshot, out);
                },
            );
        std::mem::swap(pos, &mut next);
        if (epoch + 1) % 10 == 0 || epoch + 1 == n_epochs {
            progress((epoch + 1) as f64 / n_epochs as f64);
        }
    }
}

/// Connected components (union-find), labelled 0.. in order of first cell.
fn components(edges: &Edges) -> (usize, Vec<usize>) {
    let n = edges.n;
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for r in 0..n {
        for e in edges.indptr[r]..edges.indptr[r + 1] {
            let (x, y) = (
                find(&mut parent, r),
                find(&mut parent, edges.tail[e] as usize),
            );
            if x != y {
                parent[x.max(y)] = x.min(y);
            }
        }
    }
    let mut label = vec![usize::MAX; n];
    let mut n_comp = 0;
    for i in 0..n {
        let root = find(&mut parent, i);
        if label[root] == usize::MAX {
            label[root] = n_comp;
            n_comp += 1;
        }
        label[i] = label[root];
    }
    (n_comp, label)
}

fn initial_layout(edges: &Edges, init: Init<'_>, rng: &mut StdRng) -> Result<Vec<f32>> {
    let n = edges.n;
    let mut pos = match init {
        Init::Random => {
            return Ok((0..2 * n).map(|_| rng.gen_range(-10.0f32..10.0)).collect());
        }
        Init::Pca(x) => {
            let mut v = Vec::with_capacity(2 * n);
            for i in 0..n {
                v.push(x[[i, 0]] as f64);
                v.push(x[[i, 1]] as f64);
            }
            v
        }
        Init::Spectral => spectral_init(edges, rng),
    };
    // noisy_scale_coords(max_coord = 10, noise = 1e-4)
    let max = pos.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let expansion = if max > 0.0 { 10.0 / max } else { 1.0 };
    let noise = Normal::new(0.0f64, 1e-4).map_err(|e| Error::data("umap", e.to_string()))?;
    for v in pos.iter_mut() {
        *v = *v * expansion + noise.sample(rng);
    }
    Ok(pos.into_iter().map(|v| v as f32).collect())
}

/// Spectral start (row-major n x 2, f64), by component.
fn spectral_init(edges: &Edges, rng: &mut StdRng) -> Vec<f64> {
    let n = edges.n;
    let (n_comp, label) = components(edges);
    if n_comp == 1 {
        let all: Vec<usize> = (0..n).collect();
        return match component_spectral(edges, &all, &label) {
            Some(v) => v,
            None => (0..2 * n).map(|_| rng.gen_range(-10.0..10.0)).collect(),
        };
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_comp];
    for (i, &l) in label.iter().enumerate() {
        members[l].push(i);
    }
    // centres: umap-learn's +-unit vectors for up to 4 components, else a sunflower spiral
    // by decreasing size
    let mut order: Vec<usize> = (0..n_comp).collect();
    order.sort_by_key(|&c| (std::cmp::Reverse(members[c].len()), c));
    let mut centre = vec![[0.0f64; 2]; n_comp];
    for (rank, &c) in order.iter().enumerate() {
        centre[c] = if n_comp <= 4 {
            match rank {
                0 => [1.0, 0.0],
                1 => [0.0, 1.0],
                2 => [-1.0, 0.0],
                _ => [0.0, -1.0],
            }
        } else {
            let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
            let r = ((rank as f64 + 0.5) / n_comp as f64).sqrt();
            let t = rank as f64 * golden;
            [r * t.cos(), r * t.sin()]
        };
    }
    let mut pos = vec![0.0f64; 2 * n];
    for c in 0..n_comp {
        let mut nearest = f64::INFINITY;
        for o in 0..n_comp {
            if o != c {
                let d = ((centre[c][0] - centre[o][0]).powi(2)
                    + (centre[c][1] - centre[o][1]).powi(2))
                .sqrt();
                nearest = nearest.min(d);
            }
        }
        let range = nearest / 2.0;
        let m = &members[c];
        let layout = if m.len() < 4 {
            None
        } else {
            component_spectral(edges, m, &label)
        };
        match layout {
            Some(v) => {
                let max = v.iter().fold(0.0f64, |mx, x| mx.max(x.abs()));
                let s = if max > 0.0 { range / max } else { 0.0 };
                for (li, &i) in m.iter().enumerate() {
                    pos[2 * i] = v[2 * li] * s + centre[c][0];
                    pos[2 * i + 1] = v[2 * li + 1] * s + centre[c][1];
                }
            }
            None => {
                for &i in m {
                    pos[2 * i] = rng.gen_range(-range..range) + centre[c][0];
                    pos[2 * i + 1] = rng.gen_range(-range..range) + centre[c][1];
                }
            }
        }
    }
    pos
}

/// Power of the spectral operator (see [`ShiftedNormAdj`]).
const SPECTRAL_POWER: usize = 3;

/// `B^3 x` with `B = (I + D^-1/2 W D^-1/2) / 2` on one component. `B` has the eigenvectors of
/// the normalized Laplacian `L = I - D^-1/2 W D^-1/2` with eigenvalues `1 - l/2` in [0, 1],
/// so the wanted ones (smallest `l`) are the largest, in the same order; the cube widens the
/// relative gaps between them, and the Krylov solver needs fewer restarts (each of which
/// re-orthogonalizes its whole basis, the solver's main cost here) for three sparse products
/// per step. On the pipeline's 50,000-cell graph the start takes 1.8 s instead of 2.6 s with
/// `B` itself, and the eigenvectors found with powers 3, 4 and 6 give the same layout, while
/// `B` itself stops at tolerance 1e-4 on a slightly different pair.
#[derive(Debug)]
struct ShiftedNormAdj {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f64>,
}

impl ShiftedNormAdj {
    /// Row `i` of the operator times `x`.
    #[inline]
    fn row_times(&self, i: usize, x: impl Fn(usize) -> f64) -> f64 {
        let mut s = x(i);
        for p in self.indptr[i]..self.indptr[i + 1] {
            s += self.values[p] * x(self.indices[p] as usize);
        }
        s
    }
}

impl LinOp<f64> for ShiftedNormAdj {
    fn apply_scratch(&self, _rhs_ncols: usize, _par: Par) -> StackReq {
        StackReq::EMPTY
    }
    fn nrows(&self) -> usize {
        self.indptr.len() - 1
    }
    fn ncols(&self) -> usize {
        self.indptr.len() - 1
    }
    fn apply(&self, mut out: MatMut<'_, f64>, rhs: MatRef<'_, f64>, _par: Par, _: &mut MemStack) {
        let n = self.nrows();
        let mut a = vec![0.0f64; n];
        let mut b = vec![0.0f64; n];
        for c in 0..rhs.ncols() {
            let x = rhs.col(c);
            for (i, ai) in a.iter_mut().enumerate() {
                *ai = x[i];
            }
            for _ in 0..SPECTRAL_POWER {
                let src = &a;
                b.par_iter_mut()
                    .enumerate()
                    .with_min_len(4096)
                    .for_each(|(i, bi)| *bi = 0.5 * self.row_times(i, |j| src[j]));
                std::mem::swap(&mut a, &mut b);
            }
            let mut y = out.as_mut().col_mut(c);
            for (i, &ai) in a.iter().enumerate() {
                y[i] = ai;
            }
        }
    }
    fn conj_apply(&self, out: MatMut<'_, f64>, rhs: MatRef<'_, f64>, par: Par, s: &mut MemStack) {
        self.apply(out, rhs, par, s)
    }
}

/// Eigenvectors 2 and 3 of the normalized Laplacian of one connected component (row-major
/// m x 2), or `None` if the solver does not converge.
fn component_spectral(edges: &Edges, members: &[usize], label: &[usize]) -> Option<Vec<f64>> {
    let m = members.len();
    let mut local = vec![u32::MAX; edges.n];
    for (li, &i) in members.iter().enumerate() {
        local[i] = li as u32;
    }
    let comp = label[members[0]];
    // W + W^T over the stored edges gives the symmetric graph umap-learn's Laplacian uses when
    // the input is symmetric; a stored symmetric graph is used as is.
    let mut indptr = Vec::with_capacity(m + 1);
    indptr.push(0);
    let mut indices = Vec::new();
    let mut values = Vec::new();
    for &i in members {
        for e in edges.indptr[i]..edges.indptr[i + 1] {
            let c = edges.tail[e] as usize;
            if label[c] == comp {
                indices.push(local[c]);
                values.push(edges.weight[e] as f64);
            }
        }
        indptr.push(indices.len());
    }
    // column sums (umap-learn: graph.sum(axis=0))
    let mut deg = vec![0.0f64; m];
    for (p, &c) in indices.iter().enumerate() {
        deg[c as usize] += values[p];
    }
    if deg.iter().any(|&d| d <= 0.0) {
        return None;
    }
    let sqrt_deg: Vec<f64> = deg.iter().map(|d| d.sqrt()).collect();
    for r in 0..m {
        for p in indptr[r]..indptr[r + 1] {
            values[p] /= sqrt_deg[r] * sqrt_deg[indices[p] as usize];
        }
    }
    let op = ShiftedNormAdj {
        indptr,
        indices,
        values,
    };
    let k = 3.min(m);
    if k < 3 {
        return None;
    }
    if m <= 300 {
        // small component: dense eigendecomposition (eigenvalues ascending)
        let mut dense = Mat::<f64>::zeros(m, m);
        for r in 0..m {
            dense[(r, r)] += 1.0;
            for p in op.indptr[r]..op.indptr[r + 1] {
                dense[(r, op.indices[p] as usize)] += op.values[p];
            }
        }
        let evd = dense.self_adjoint_eigen(faer::Side::Lower);
        crate::cpu::clear_upper_simd_state_here();
        let evd = evd.ok()?;
        let u = evd.U();
        let mut out = Vec::with_capacity(2 * m);
        for i in 0..m {
            out.push(u[(i, m - 2)]);
            out.push(u[(i, m - 3)]);
        }
        return out.iter().all(|v| v.is_finite()).then_some(out);
    }
    let params = PartialEigenParams {
        max_restarts: 300,
        ..Default::default()
    };
    let mut mem = MemBuffer::new(partial_self_adjoint_eigen_scratch(&op, k, Par::Seq, params));
    let mut vecs = Mat::<f64>::zeros(m, k);
    let mut vals = vec![0.0f64; k];
    let v0 = faer::Col::<f64>::from_fn(m, |_| 1.0 / (m as f64).sqrt());
    // the solver asserts on degenerate Krylov spaces; treat that as a failed solve
    let info = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        partial_self_adjoint_eigen(
            vecs.as_mut(),
            &mut vals,
            &op,
            v0.as_ref(),
            1e-4,
            Par::Seq,
            MemStack::new(&mut mem),
            params,
        )
    }))
    .ok();
    crate::cpu::clear_upper_simd_state_here();
    let info = info?;
    if info.n_converged_eigen < k || vals.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&x, &y| vals[y].total_cmp(&vals[x]));
    let mut out = Vec::with_capacity(2 * m);
    for i in 0..m {
        out.push(vecs[(i, order[1])]);
        out.push(vecs[(i, order[2])]);
    }
    if out.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow_table_matches_powf() {
        for b in [0.5f32, 0.79, 0.8951, 1.0, 1.3, 1.93] {
            let t = PowTable::new(b);
            let mut x = 1e-30f32;
            while x < 1e30 {
                let (x0, want) = (x, (x as f64).powf(b as f64));
                let got = t.pow(x) as f64;
                x *= 1.0137;
                if !(1e-36..1e36).contains(&want) {
                    continue;
                }
                assert!(
                    ((got - want) / want).abs() < 1e-6,
                    "{x0}^{b}: {got} vs {want}"
                );
            }
            assert_eq!(t.pow(0.0), 0.0);
            assert!(t.pow(f32::NAN).is_nan());
            let sub = f32::from_bits(5);
            assert_eq!(t.pow(sub), sub.powf(b));
        }
    }

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

    #[test]
    fn components_of_two_triangles() {
        let rows = [0u32, 1, 1, 2, 3, 4];
        let cols = [1u32, 0, 2, 1, 4, 3];
        let g = CsrMatrix::from_triplets(5, 5, &rows, &cols, &[1.0; 6]).unwrap();
        let e = build_edges(&g, 200).unwrap();
        let (n, l) = components(&e);
        assert_eq!(n, 2);
        assert_eq!(l, vec![0, 0, 0, 1, 1]);
    }
}
