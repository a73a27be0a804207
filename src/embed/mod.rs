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
//!
//! The steps, one module each: the curve fit (`curve`), the edges kept and their sampling
//! periods (`edges`), the start (`init`, with the spectral eigenvectors in `spectral`, found by the thick-restart Lanczos
//! solver of `lanczos`), the
//! per-epoch sampling schedule (`schedule`), the gradient steps (`kernel`, with the AVX2 lanes
//! in `avx2` and the `x^b` table in `pow`) and the epoch loop (`optimize`).

#[cfg(target_arch = "x86_64")]
mod avx2;
mod curve;
mod edges;
mod init;
mod kernel;
mod lanczos;
mod optimize;
mod pow;
mod rows;
mod schedule;
mod spectral;

pub use curve::{default_n_epochs, find_ab_params};

use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use edges::{build_edges, check_graph};
use init::initial_layout;
use ndarray::{Array2, ArrayView2};
use optimize::optimize;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

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
/// # let log = scrna::normalize::normalize_total_log1p(&data.counts.to_csr(), &Default::default())?.matrix;
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
    let mut rng = ChaCha12Rng::seed_from_u64(opts.seed);
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
