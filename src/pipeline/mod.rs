//! The standard end-to-end analysis: QC, normalization, HVG, PCA, kNN graph, Leiden, UMAP,
//! markers.
//!
//! With two or more samples two more steps run by default, as in Scanpy's multi-sample
//! best practice: doublet detection on each sample separately after QC (Scrublet,
//! [`crate::doublets`]; predicted doublets are removed before normalization) and Harmony
//! integration of the PCA embedding over the samples ([`crate::integrate`]), which then feeds
//! the kNN graph, Leiden and UMAP. With one sample neither runs, and the results are those of
//! the single-sample analysis below.
//!
//! Defaults follow Scanpy's standard clustering tutorial: `filter_cells(min_genes=200)`,
//! `filter_genes(min_cells=3)`, `normalize_total(target_sum=1e4)`, `log1p`,
//! `highly_variable_genes(flavor="seurat", n_top_genes=2000)`, `scale(max_value=10)`,
//! `pca(n_comps=50)`, `neighbors(n_neighbors=15)`, `leiden(resolution=1)`, `umap()`,
//! `rank_genes_groups(method="wilcoxon")`, all with seed 0.
//!
//! [`run`] returns every intermediate result in an [`Analysis`], with the wall time and peak
//! memory of each step; [`output::write_all`] writes the result files.

mod background;
mod multi_sample;
pub mod output;
mod preprocess;
pub(crate) mod runner;

pub use preprocess::{preprocess, preprocess_owned, Preprocessed};

use crate::cluster::{leiden, Clustering, LeidenOptions};
use crate::dataset::{CellTable, Column, Dataset};
use crate::design::{Codes, Design};
use crate::doublets::ScrubletOptions;
use crate::embed::{umap_with_progress, Init, UmapOptions};
use crate::error::{Error, Result};
use crate::graph::{distances_matrix, umap_connectivities, UmapGraphOptions};
use crate::hvg::{Flavor, Hvg, HvgOptions};
use crate::integrate::{Harmony, HarmonyOptions};
use crate::lognorm::LogCounts;
use crate::markers::{
    dot_values, rank_genes_with_progress, DotValues, RankGenes, RankGenesOptions, TableFilter,
};
use crate::neighbors::{knn, Knn, KnnOptions};
use crate::normalize::NormalizeOptions;
use crate::pca::{pca, Pca, PcaOptions};
use crate::qc::{FilterOptions, Filtered, QcMetrics};
use crate::sparse::CsrMatrix;
use multi_sample::integrate;
use ndarray::Array2;
use preprocess::preprocess_timed;
use runner::StepRunner;
use std::borrow::Cow;
use std::path::Path;
use std::time::Instant;

/// Options of every step of [`run`]. `Default` gives Scanpy's standard tutorial settings.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Cell and gene filters (and the QC metric definitions in `filter.qc`). Default:
    /// `min_genes` 200, `min_cells` 3.
    pub filter: FilterOptions,
    /// Library-size normalization. Default: target sum 10,000.
    pub normalize: NormalizeOptions,
    /// Highly variable genes. Default: `seurat` flavor, 2,000 genes.
    pub hvg: HvgOptions,
    /// PCA. Default: 50 components on the scaled matrix clipped at 10, seed 0. [`run`] lowers
    /// `n_comps` to `min(n_comps, cells - 1, highly variable genes)` when the data are smaller
    /// (the result's `pca.variance.len()` is the number used); [`crate::pca::pca`] alone
    /// returns an error instead.
    pub pca: PcaOptions,
    /// kNN graph. Default: 15 neighbors (the cell itself included), Euclidean. [`run`] lowers
    /// `n_neighbors` to the number of cells when fewer cells pass QC (the result's
    /// `knn.n_neighbors` is the number used); [`crate::neighbors::knn`] alone returns an
    /// error instead.
    pub knn: KnnOptions,
    /// Connectivity weights (UMAP fuzzy simplicial set).
    pub graph: UmapGraphOptions,
    /// Leiden clustering. Default: modularity with resolution 1, seed 0.
    pub leiden: LeidenOptions,
    /// UMAP layout. Default: min_dist 0.5, spread 1, spectral start, seed 0.
    pub umap: UmapOptions,
    /// Marker genes. Default: Wilcoxon, each cluster against the rest, BH, with fractions.
    pub markers: RankGenesOptions,
    /// Which markers go into the marker table. Default: the top 25 per cluster.
    pub marker_table: TableFilter,
    /// Skip the UMAP layout. Default false.
    pub skip_umap: bool,
    /// Doublet detection on each sample after QC. Default [`Switch::Auto`]: on when the data
    /// hold two or more samples.
    pub doublets: Switch,
    /// Options of the doublet detection (Scrublet's defaults).
    pub scrublet: ScrubletOptions,
    /// Remove the predicted doublets before normalization. Default `true`; `false` keeps them
    /// (their scores are still reported).
    pub remove_doublets: bool,
    /// Harmony integration of the PCA embedding over `batch_key`; the corrected embedding feeds
    /// the kNN graph, Leiden and UMAP. Default [`Switch::Auto`]: on when the input cells carry
    /// two or more values of the key (a key left with one value after QC is a stated skip;
    /// with [`Switch::On`] it is an error).
    pub integration: Switch,
    /// The cell-table key whose values are the batches: `sample` (the default), `condition`
    /// or a column name.
    pub batch_key: String,
    /// Options of the Harmony integration (harmonypy's defaults).
    pub harmony: HarmonyOptions,
    /// Worker threads of the run: `Some(n)` runs every step in a rayon pool of `n` threads
    /// made for the run; `None` (the default) uses rayon's global pool. Results are the same
    /// for any thread count.
    pub threads: Option<usize>,
    /// Storage of the sparse matrices in `analysis.h5ad` (see
    /// [`crate::io::h5ad::H5adCompression`] for the measurement behind the default).
    /// Default: uncompressed, as anndata.
    pub h5ad_compression: crate::io::h5ad::H5adCompression,
}

impl PipelineOptions {
    /// These options with every step's seed derived from one run seed: the PCA start, the
    /// approximate kNN search, Leiden and UMAP each take `seed` itself (their random streams
    /// are of different kinds, so sharing the value does not correlate them). The default
    /// options are `seeded(0)`.
    pub fn seeded(mut self, seed: u64) -> Self {
        self.pca.seed = seed;
        self.knn.seed = seed;
        self.leiden.seed = seed;
        self.umap.seed = seed;
        self.scrublet.seed = seed;
        self.harmony.seed = seed;
        self
    }

    /// Checks every option before any work, naming a bad field by its path from these options
    /// (for example `umap.min_dist`). Limits that depend on the data (components and
    /// neighbours against the number of cells) are checked when the data are known; values
    /// lowered to fit the data are recorded in [`Analysis::warnings`].
    pub fn validate(&self) -> Result<()> {
        self.filter.validate().map_err(|e| e.within("filter"))?;
        self.normalize
            .validate()
            .map_err(|e| e.within("normalize"))?;
        self.hvg.validate().map_err(|e| e.within("hvg"))?;
        self.pca.validate().map_err(|e| e.within("pca"))?;
        self.knn.validate().map_err(|e| e.within("knn"))?;
        self.graph.validate().map_err(|e| e.within("graph"))?;
        self.leiden.validate().map_err(|e| e.within("leiden"))?;
        if self.doublets != Switch::Off {
            self.scrublet.validate().map_err(|e| e.within("scrublet"))?;
        }
        if self.integration != Switch::Off {
            self.harmony.validate().map_err(|e| e.within("harmony"))?;
            if self.batch_key.is_empty() {
                return Err(Error::option("batch_key", "must name a cell-table key"));
            }
        }
        if !self.skip_umap {
            self.umap.validate().map_err(|e| e.within("umap"))?;
        }
        self.marker_table
            .validate()
            .map_err(|e| e.within("marker_table"))?;
        if self.threads == Some(0) {
            return Err(Error::option("threads", "must be at least 1"));
        }
        self.h5ad_compression.validate()?;
        Ok(())
    }
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            filter: FilterOptions {
                min_genes: Some(200),
                min_cells: Some(3),
                ..Default::default()
            },
            normalize: NormalizeOptions {
                target_sum: Some(1e4),
                ..Default::default()
            },
            hvg: HvgOptions {
                flavor: Flavor::Seurat,
                n_top_genes: Some(2000),
                ..Default::default()
            },
            pca: PcaOptions::default(),
            knn: KnnOptions::default(),
            graph: UmapGraphOptions::default(),
            leiden: LeidenOptions::default(),
            umap: UmapOptions::default(),
            markers: RankGenesOptions {
                pts: true,
                ..Default::default()
            },
            marker_table: TableFilter {
                top_n: Some(25),
                ..Default::default()
            },
            skip_umap: false,
            doublets: Switch::Auto,
            scrublet: ScrubletOptions::default(),
            remove_doublets: true,
            integration: Switch::Auto,
            batch_key: "sample".to_string(),
            harmony: HarmonyOptions::default(),
            threads: None,
            h5ad_compression: Default::default(),
        }
    }
}

/// Whether an optional step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Switch {
    /// When the data call for it (the step's documentation says when).
    #[default]
    Auto,
    /// Always (an error when the data cannot support it).
    On,
    /// Never.
    Off,
}

/// Progress of [`run`], given to the callback at the start and end of each step.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Step name (`qc`, `normalize`, `hvg`, `pca`, `neighbors`, `leiden`, `umap`, `markers`).
    pub step: &'static str,
    /// 1-based index of the step.
    pub index: usize,
    /// Number of steps.
    pub total: usize,
    /// Fraction of the step done: 0 at its start, 1 at its end, and values in between during
    /// the long steps (QC, neighbors, UMAP by epochs, markers by gene blocks).
    pub fraction: f64,
}

/// Wall time and memory of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Step name.
    pub step: &'static str,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Peak resident memory of the process during the step, in bytes (when the system
    /// reports it; per step on Linux, otherwise the process peak so far).
    pub peak_rss_bytes: Option<u64>,
}

/// Everything [`run`] computed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Analysis {
    /// Cells and genes of the input.
    pub input_shape: (usize, usize),
    /// The input cells (barcode, sample, condition), in input order.
    pub input_cells: CellTable,
    /// QC metrics of the input cells and genes (before filtering).
    pub qc: QcMetrics,
    /// The filter's record of what it removed and why; `filtered.dataset` holds the kept
    /// cells and genes (raw counts) with QC metrics and, after the run, `leiden` in the tables.
    pub filtered: Filtered,
    /// Size factor of each kept cell (its total over the target sum): the log-normalized
    /// values (Scanpy's `X` after `log1p`) are `ln(1 + count / size_factor)`, read through
    /// [`Analysis::log_normalized`] and not stored.
    pub size_factors: Vec<f32>,
    /// Highly variable gene statistics for the kept genes.
    pub hvg: Hvg,
    /// Indices (into the kept genes) of the highly variable genes, increasing.
    pub hvg_genes: Vec<usize>,
    /// PCA of the highly variable genes.
    pub pca: Pca,
    /// The kNN graph.
    pub knn: Knn,
    /// kNN distances (Scanpy's `obsp["distances"]`).
    pub distances: CsrMatrix,
    /// Connectivities (Scanpy's `obsp["connectivities"]`).
    pub connectivities: CsrMatrix,
    /// Leiden clusters, numbered by decreasing size.
    pub clustering: Clustering,
    /// UMAP layout (cells x 2); empty when skipped.
    pub umap: Array2<f32>,
    /// Marker genes of each cluster against the rest.
    pub markers: RankGenes,
    /// Time and memory per step, in order.
    pub steps: Vec<StepReport>,
    /// Harmony integration, when it ran: the batches and the corrected embedding that fed
    /// the kNN graph (Scanpy's `obsm["X_pca_harmony"]`).
    pub integration: Option<Integration>,
    /// The limits of the study design in plain words (one sample in a condition, a batch key
    /// that splits the cells as the conditions do); empty when there are none.
    pub design_limits: Vec<String>,
    /// Doublet detection (scores of every input cell; NaN for cells that failed QC or were in
    /// a sample too small to score), when it ran.
    pub doublets: Option<DoubletReport>,
    /// Options lowered to fit the data (for example fewer principal components than asked,
    /// because fewer cells passed QC), in plain words.
    pub warnings: Vec<String>,
}

/// The integration step's result.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Integration {
    /// The batch key.
    pub batch_key: String,
    /// Batch names (in order of first appearance among the kept cells).
    pub batches: Vec<String>,
    /// Batch code of every kept cell.
    pub batch_codes: Vec<u32>,
    /// Harmony's corrected embedding, iterations and convergence.
    pub harmony: Harmony,
    /// Mean integration LISI of the batches (perplexity 30; 1 = each cell's neighbourhood
    /// holds one batch, the number of batches = perfectly mixed) on the PCA embedding ...
    pub lisi_before: f64,
    /// ... and on the corrected one.
    pub lisi_after: f64,
}

/// What the doublet step found, indexed by input cell.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DoubletReport {
    /// Doublet score of every input cell (NaN where not scored).
    pub scores: Vec<f64>,
    /// Predicted doublet flag of every input cell.
    pub predicted: Vec<bool>,
    /// Per-sample results (threshold, cells, doublets, why a sample was skipped).
    pub per_sample: Vec<crate::doublets::SampleDoublets>,
    /// Whether the predicted doublets were removed from the analysis (except those of the
    /// samples in `kept`).
    pub removed: bool,
    /// Samples whose predicted doublets were kept in the analysis although `removed` is set:
    /// their automatic threshold called an implausible share of their cells
    /// ([`crate::doublets::SampleDoublets::implausible`]); a warning says so.
    pub kept: Vec<String>,
}

impl Analysis {
    /// The filtered dataset (raw counts, cell and gene tables with QC and cluster columns).
    pub fn dataset(&self) -> &Dataset {
        &self.filtered.dataset
    }
    /// The log-normalized values of the kept cells and genes (computed from the counts when
    /// read; `.to_matrix()` stores them).
    pub fn log_normalized(&self) -> Result<LogCounts<'_>> {
        LogCounts::new(&self.filtered.dataset.counts, &self.size_factors)
    }
    /// The dot plot of the `per_cluster` best marker genes of each cluster (each gene once,
    /// in the order of the clusters and then of the ranks): the genes and their fractions and
    /// mean log values per cluster ([`crate::markers::dot_values`]).
    pub fn marker_dots(&self, per_cluster: usize) -> Result<(Vec<usize>, DotValues)> {
        let mut genes: Vec<usize> = Vec::new();
        for grp in &self.markers.groups {
            for &g in grp.order.iter().take(per_cluster) {
                if !genes.contains(&(g as usize)) {
                    genes.push(g as usize);
                }
            }
        }
        let dots = dot_values(
            &self.log_normalized()?,
            &self.clustering.labels,
            self.clustering.n_clusters,
            &genes,
        )?;
        Ok((genes, dots))
    }
    /// Number of cells in each cluster, by cluster label.
    pub fn cluster_sizes(&self) -> Vec<usize> {
        let mut s = vec![0; self.clustering.n_clusters];
        for &l in &self.clustering.labels {
            s[l as usize] += 1;
        }
        s
    }
}

/// The steps [`run`] takes on `data` with `opts`, in order.
fn plan(data: &Dataset, opts: &PipelineOptions) -> Vec<&'static str> {
    let mut steps = vec!["qc"];
    if doublets_wanted(data, opts) {
        steps.push("doublets");
    }
    steps.extend(["normalize", "hvg", "pca"]);
    if integration_wanted(data, opts) {
        steps.push("integrate");
    }
    steps.extend(["neighbors", "leiden", "markers"]);
    if !opts.skip_umap {
        steps.push("umap");
    }
    steps
}

fn n_distinct(labels: &[String]) -> usize {
    let mut v: Vec<&String> = labels.iter().collect();
    v.sort();
    v.dedup();
    v.len()
}

fn integration_wanted(data: &Dataset, opts: &PipelineOptions) -> bool {
    match opts.integration {
        Switch::On => true,
        Switch::Off => false,
        Switch::Auto => Codes::of(&data.cells, &opts.batch_key).is_ok_and(|c| c.len() >= 2),
    }
}

fn doublets_wanted(data: &Dataset, opts: &PipelineOptions) -> bool {
    match opts.doublets {
        Switch::On => true,
        Switch::Off => false,
        Switch::Auto => n_distinct(&data.cells.sample) >= 2,
    }
}

/// Runs the standard analysis on raw counts (see the module docs), calling `progress` at the
/// start and end of every step. The kept cells and genes are copied; [`run_owned`] filters the
/// input in place instead.
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// use scrna::pipeline::{run, PipelineOptions};
/// let mut opts = PipelineOptions::default().seeded(1);
/// opts.skip_umap = true;
/// let analysis = run(&data, &opts, &mut |p| eprintln!("{} {:.0}%", p.step, 100.0 * p.fraction))?;
/// assert_eq!(analysis.clustering.labels.len(), analysis.dataset().n_cells());
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn run(
    data: &Dataset,
    opts: &PipelineOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Analysis> {
    in_pool(opts, || run_cow(Cow::Borrowed(data), opts, progress, None)).map(|r| r.0)
}

/// Runs `f` in a rayon pool of `opts.threads` threads (the global pool when `None`), after
/// checking the options.
pub(crate) fn in_pool<T: Send>(
    opts: &PipelineOptions,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    opts.validate()?;
    match opts.threads {
        None => f(),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| Error::option("threads", e.to_string()))?
            .install(f),
    }
}

/// [`run`] on a dataset given up by the caller: the QC filter works in the count matrix's own
/// buffers ([`crate::sparse::CsrMatrix::retain`]), so the analysis holds one copy of the
/// counts, not two. The same results.
pub fn run_owned(
    data: Dataset,
    opts: &PipelineOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Analysis> {
    in_pool(opts, || run_cow(Cow::Owned(data), opts, progress, None)).map(|r| r.0)
}

/// [`run_owned`], writing `analysis.h5ad` ([`output::write_h5ad_file`]) to `h5ad` while the
/// UMAP layout is computed, the last step: every other part of the file is known by then,
/// and its layout depends on the shape of the UMAP coordinates only, so the file is written
/// (the writer mostly waiting for the disk) while the layout keeps the processors busy, and
/// the coordinates go into their place at the end. The file's bytes are those
/// [`output::write_h5ad_file`] writes after the run. Returns the analysis and the file, whose
/// time is the writer's own (most of it during the `umap` step); give it to
/// [`output::write_rest_with_report`] for the other outputs. A file already at `h5ad` is
/// removed while the layout is computed (not freed by the final rename after it), even if the
/// step then fails.
pub fn run_owned_with_h5ad(
    data: Dataset,
    opts: &PipelineOptions,
    h5ad: &Path,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<(Analysis, output::WrittenFile)> {
    let (a, file) = in_pool(opts, || {
        run_cow(Cow::Owned(data), opts, progress, Some(h5ad))
    })?;
    match file {
        Some(f) => Ok((a, f)),
        None => Err(Error::data("pipeline", "the .h5ad writer returned nothing")),
    }
}

fn run_cow(
    data: Cow<'_, Dataset>,
    opts: &PipelineOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
    h5ad: Option<&Path>,
) -> Result<(Analysis, Option<output::WrittenFile>)> {
    if data.n_cells() == 0 || data.n_genes() == 0 {
        return Err(Error::data(
            "pipeline",
            format!(
                "empty input: {} cells x {} genes",
                data.n_cells(),
                data.n_genes()
            ),
        ));
    }
    if opts.integration != Switch::Off {
        // A batch key that is not in the cell table fails before any work.
        Codes::of(&data.cells, &opts.batch_key).map_err(|e| e.within("pipeline"))?;
    }
    let mut timer = StepRunner::new(progress, plan(&data, opts));
    let input_shape = (data.n_cells(), data.n_genes());
    let input_cells = CellTable {
        columns: Default::default(),
        ..data.cells.clone()
    };

    let Preprocessed {
        qc,
        mut filtered,
        size_factors,
        hvg,
        hvg_genes,
        doublets,
    } = preprocess_timed(data, opts, &mut timer)?;
    let n = filtered.dataset.n_cells();
    hvg.store_in(&mut filtered.dataset.genes)?;

    let mut warnings = Vec::new();
    if let Some(d) = &doublets {
        warnings.extend(multi_sample::doublet_rate_warnings(d, opts));
    }
    let pca_result = timer.step("pca", |_| {
        let x = LogCounts::new(&filtered.dataset.counts, &size_factors)?.select_cols(&hvg_genes)?;
        let mut o = opts.pca.clone();
        o.n_comps = o.n_comps.min(n - 1).min(hvg_genes.len());
        if o.n_comps < opts.pca.n_comps {
            warnings.push(format!(
                "pca.n_comps lowered from {} to {}: {n} cells passed QC and {} genes are \
                 highly variable",
                opts.pca.n_comps,
                o.n_comps,
                hvg_genes.len()
            ));
        }
        pca(&x, &o)
    })?;

    let integration = if timer.plans("integrate") {
        timer.step("integrate", |_| {
            integrate(&filtered.dataset.cells, &pca_result, opts, &mut warnings)
        })?
    } else {
        None
    };
    let design_limits = Design::of(&filtered.dataset.cells)?.limits(
        &filtered.dataset.cells,
        integration
            .as_ref()
            .map(|i| Codes {
                key: i.batch_key.clone(),
                codes: i.batch_codes.clone(),
                names: i.batches.clone(),
            })
            .as_ref(),
    );
    let embedding = match &integration {
        Some(i) => i.harmony.embedding.view(),
        None => pca_result.embedding.view(),
    };

    let (knn_result, distances, connectivities) = timer.step("neighbors", |progress| {
        let mut o = opts.knn.clone();
        o.n_neighbors = o.n_neighbors.min(n);
        if o.n_neighbors < opts.knn.n_neighbors {
            warnings.push(format!(
                "knn.n_neighbors lowered from {} to {n}: only {n} cells passed QC",
                opts.knn.n_neighbors
            ));
        }
        let k = knn(embedding, &o)?;
        progress(0.8);
        let d = distances_matrix(&k)?;
        let c = umap_connectivities(&k, n, &opts.graph)?;
        Ok((k, d, c))
    })?;

    let clustering = timer.step("leiden", |_| leiden(&connectivities, &opts.leiden))?;
    let names: Vec<String> = (0..clustering.n_clusters).map(|c| c.to_string()).collect();
    filtered.dataset.cells.set(
        "leiden",
        Column::Categorical {
            codes: clustering.labels.clone(),
            categories: names,
        },
    )?;

    let markers = timer.step("markers", |progress| {
        let x = LogCounts::new(&filtered.dataset.counts, &size_factors)?;
        rank_genes_with_progress(&x, &clustering.labels, &opts.markers, progress)
    })?;

    let mut analysis = Analysis {
        input_shape,
        input_cells,
        qc,
        filtered,
        size_factors,
        hvg,
        hvg_genes,
        pca: pca_result,
        knn: knn_result,
        distances,
        connectivities,
        clustering,
        umap: Array2::zeros((0, 2)),
        markers,
        steps: Vec::new(),
        doublets,
        integration,
        design_limits,
        warnings,
    };
    let (layout, written) = if opts.skip_umap {
        let written = match h5ad {
            Some(path) => {
                let t = Instant::now();
                output::write_h5ad_file(&analysis, opts, path)?;
                Some(output::WrittenFile::timed(path.to_path_buf(), t))
            }
            None => None,
        };
        (Array2::zeros((0, 2)), written)
    } else {
        umap_writing_h5ad(&analysis, opts, &mut timer, h5ad)?
    };
    analysis.umap = layout;
    analysis.steps = timer.into_steps();
    Ok((analysis, written))
}

/// The `umap` step of [`run_cow`], with `analysis.h5ad` written meanwhile on another thread
/// when `h5ad` is given (see [`run_owned_with_h5ad`]). A file already at `h5ad` (an earlier
/// run's) is moved aside first and removed on a third thread: replacing it by the final rename
/// would free its blocks there, after the step (0.9 s for 2 GB on ext4 mounted with `discard`).
/// It is gone even if the step then fails.
fn umap_writing_h5ad<P: FnMut(&Progress) + ?Sized>(
    analysis: &Analysis,
    opts: &PipelineOptions,
    timer: &mut StepRunner<'_, P>,
    h5ad: Option<&Path>,
) -> Result<(Array2<f32>, Option<output::WrittenFile>)> {
    let graph = &analysis.connectivities;
    let layout = |timer: &mut StepRunner<'_, P>| {
        timer.step("umap", |progress| {
            umap_with_progress(graph, Init::Spectral, &opts.umap, progress)
        })
    };
    let Some(path) = h5ad else {
        return Ok((layout(timer)?, None));
    };
    let aside = background::move_aside(path)?;
    std::thread::scope(|s| {
        let remover = aside
            .as_deref()
            .map(|old| s.spawn(move || background::remove_aside(old)));
        let writer = s.spawn(move || {
            let t = Instant::now();
            output::write_h5ad_file_pending(analysis, opts, path).map(|p| (p, t.elapsed()))
        });
        let layout = layout(timer);
        let pending = writer.join().unwrap_or_else(|_| {
            Err(Error::data(
                "writing outputs",
                "the thread writing analysis.h5ad failed",
            ))
        });
        let layout = layout?;
        let (pending, busy) = pending?;
        let t = Instant::now();
        pending.finish(&[("X_umap", layout.view())])?;
        let seconds = (busy + t.elapsed()).as_secs_f64();
        if let Some(remover) = remover {
            remover.join().unwrap_or_else(|_| {
                Err(Error::data(
                    "writing outputs",
                    "the thread removing the earlier analysis.h5ad failed",
                ))
            })?;
        }
        Ok((
            layout,
            Some(output::WrittenFile::measured(path.to_path_buf(), seconds)),
        ))
    })
}
