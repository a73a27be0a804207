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

pub mod output;

use crate::cluster::{leiden, Clustering, LeidenOptions};
use crate::dataset::{CellTable, Column, Dataset};
use crate::design::{Codes, Design};
use crate::doublets::{scrublet_by_sample, ScrubletOptions};
use crate::embed::{umap_with_progress, Init, UmapOptions};
use crate::error::{Error, Result};
use crate::graph::{distances_matrix, umap_connectivities, UmapGraphOptions};
use crate::hvg::{
    highly_variable_from_moments, highly_variable_genes, log1p_moments, moments_from_col_sums,
    Flavor, Hvg, HvgOptions,
};
use crate::integrate::{harmony, lisi, Harmony, HarmonyOptions};
use crate::lognorm::LogCounts;
use crate::markers::{rank_genes_with_progress, RankGenes, RankGenesOptions, TableFilter};
use crate::neighbors::{knn, Knn, KnnOptions};
use crate::normalize::{normalize_total_log1p, LogMoments, NormalizeOptions};
use crate::pca::{pca, Pca, PcaOptions};
use crate::qc::{
    filter_owned_fold, filter_owned_with_kept_metrics, filter_with_kept_metrics, metrics, CellSums,
    FilterOptions, Filtered, Fold, QcMetrics, Reason,
};
use crate::report::{peak_rss_bytes, reset_peak_rss};
use crate::sparse::CsrMatrix;
use ndarray::Array2;
use std::borrow::Cow;
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
pub struct DoubletReport {
    /// Doublet score of every input cell (NaN where not scored).
    pub scores: Vec<f64>,
    /// Predicted doublet flag of every input cell.
    pub predicted: Vec<bool>,
    /// Per-sample results (threshold, cells, doublets, why a sample was skipped).
    pub per_sample: Vec<crate::doublets::SampleDoublets>,
    /// Whether the predicted doublets were removed from the analysis.
    pub removed: bool,
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
    steps.extend(["neighbors", "leiden"]);
    if !opts.skip_umap {
        steps.push("umap");
    }
    steps.push("markers");
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

struct Timer<'a> {
    progress: &'a mut (dyn FnMut(&Progress) + Send),
    plan: Vec<&'static str>,
    steps: Vec<StepReport>,
}

impl Timer<'_> {
    /// Runs one step; `f` gets a reporter for the fraction done within the step (values in
    /// (0, 1) are passed on; 0 and 1 are reported here at the start and the end).
    fn step<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut dyn FnMut(f64)) -> Result<T>,
    ) -> Result<T> {
        let index = self
            .plan
            .iter()
            .position(|s| *s == name)
            .map_or(0, |i| i + 1);
        let total = self.plan.len();
        let mut report = |fraction| {
            (self.progress)(&Progress {
                step: name,
                index,
                total,
                fraction,
            })
        };
        report(0.0);
        crate::cpu::clear_upper_simd_state();
        reset_peak_rss();
        let t = Instant::now();
        let out = f(&mut |fraction| {
            if fraction > 0.0 && fraction < 1.0 {
                report(fraction)
            }
        })?;
        let seconds = t.elapsed().as_secs_f64();
        report(1.0);
        self.steps.push(StepReport {
            step: name,
            seconds,
            peak_rss_bytes: peak_rss_bytes(),
        });
        Ok(out)
    }
}

/// Runs the standard analysis on raw counts (see the module docs), calling `progress` at the
/// start and end of every step. The kept cells and genes are copied; [`run_owned`] filters the
/// input in place instead.
pub fn run(
    data: &Dataset,
    opts: &PipelineOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Analysis> {
    in_pool(opts, || run_cow(Cow::Borrowed(data), opts, progress))
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
    in_pool(opts, || run_cow(Cow::Owned(data), opts, progress))
}

fn run_cow(
    data: Cow<'_, Dataset>,
    opts: &PipelineOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Analysis> {
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
    let mut timer = Timer {
        progress,
        plan: plan(&data, opts),
        steps: Vec::new(),
    };
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

    let integration = if timer.plan.contains(&"integrate") {
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
            .map(|i| Codes::from_labels(&i.batch_key, &batch_names(i)))
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

    let layout = if opts.skip_umap {
        Array2::zeros((0, 2))
    } else {
        timer.step("umap", |progress| {
            umap_with_progress(&connectivities, Init::Spectral, &opts.umap, progress)
        })?
    };

    let markers = timer.step("markers", |progress| {
        let x = LogCounts::new(&filtered.dataset.counts, &size_factors)?;
        rank_genes_with_progress(&x, &clustering.labels, &opts.markers, progress)
    })?;

    Ok(Analysis {
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
        umap: layout,
        markers,
        steps: timer.steps,
        doublets,
        integration,
        design_limits,
        warnings,
    })
}

/// The QC, normalization and HVG steps of [`run`]: what [`preprocess`] returns.
#[derive(Debug, Clone)]
pub struct Preprocessed {
    /// QC metrics of the input cells and genes (before filtering).
    pub qc: QcMetrics,
    /// The filter's record; `filtered.dataset` holds the kept cells and genes (raw counts)
    /// with the QC metrics of the kept cells and genes in its tables.
    pub filtered: Filtered,
    /// Size factor of each kept cell: the log-normalized values are `ln(1 + count /
    /// size_factor)`, read through [`Preprocessed::log_normalized`].
    pub size_factors: Vec<f32>,
    /// Highly variable gene statistics for the kept genes (not yet stored in the gene table).
    pub hvg: Hvg,
    /// Indices (into the kept genes) of the highly variable genes, increasing.
    pub hvg_genes: Vec<usize>,
    /// Doublet detection, when it ran.
    pub doublets: Option<DoubletReport>,
}

impl Preprocessed {
    /// The log-normalized values of the kept cells and genes (computed from the counts when
    /// read; `.to_matrix()` stores them).
    pub fn log_normalized(&self) -> Result<LogCounts<'_>> {
        LogCounts::new(&self.filtered.dataset.counts, &self.size_factors)
    }
}

/// The first three steps of [`run`] alone (QC metrics and filters, normalization with
/// `log1p`, highly variable genes), with the same options and results; `steps` receives the
/// time and memory of each.
///
/// QC is one pass over the counts for the metrics plus the filter's copy (none with
/// [`preprocess_owned`]), which also gives the metrics of the kept cells. With the `seurat`
/// and `cell_ranger` flavors the normalization step is one pass over the counts that computes
/// the size factors and sums the per-gene HVG moments of the log values
/// ([`log1p_moments`]) without storing them, so the `hvg` step is only the selection; the
/// log values are computed again where they are read ([`LogCounts`]). With `seurat_v3` the log
/// matrix is made for the HVG step and dropped.
pub fn preprocess(
    data: &Dataset,
    opts: &PipelineOptions,
    steps: &mut Vec<StepReport>,
) -> Result<Preprocessed> {
    preprocess_cow(Cow::Borrowed(data), opts, steps)
}

/// [`preprocess`] on a dataset given up by the caller, filtered in place (see [`run_owned`]).
pub fn preprocess_owned(
    data: Dataset,
    opts: &PipelineOptions,
    steps: &mut Vec<StepReport>,
) -> Result<Preprocessed> {
    preprocess_cow(Cow::Owned(data), opts, steps)
}

fn preprocess_cow(
    data: Cow<'_, Dataset>,
    opts: &PipelineOptions,
    steps: &mut Vec<StepReport>,
) -> Result<Preprocessed> {
    let (out, mut done) = in_pool(opts, || {
        let mut quiet = |_: &Progress| {};
        let mut timer = Timer {
            progress: &mut quiet,
            plan: plan(&data, opts),
            steps: Vec::new(),
        };
        let out = preprocess_timed(data, opts, &mut timer);
        Ok((out, timer.steps))
    })?;
    steps.append(&mut done);
    out
}

fn preprocess_timed(
    data: Cow<'_, Dataset>,
    opts: &PipelineOptions,
    timer: &mut Timer<'_>,
) -> Result<Preprocessed> {
    // With the seurat and cell_ranger flavors the per-gene moments of the HVG step are summed
    // in the pass that computes the size factors, without storing the log values; the hvg
    // step is then the selection from those moments, with the same result. With an owned
    // dataset, a fixed target sum and no excluded genes, that pass rides on the filter's
    // in-place pass over the kept cells (the `qc` step then includes it).
    // With batches to integrate, the highly variable genes are selected within each batch and
    // combined (Scanpy's `highly_variable_genes(batch_key=...)`), so that genes that differ
    // between batches only are not taken for cell-type signal; that needs the log matrix.
    let batched_hvg = integration_wanted(&data, opts);
    let fused = !matches!(opts.hvg.flavor, Flavor::SeuratV3) && !batched_hvg;
    let find_doublets = doublets_wanted(&data, opts);
    let ride = fused
        && !find_doublets
        && matches!(data, Cow::Owned(_))
        && !opts.normalize.exclude_highly_expressed
        && opts.normalize.target_sum.is_some();
    let expm1 = matches!(opts.hvg.flavor, Flavor::Seurat);
    let n_input_genes = data.n_genes();
    let n_input_cells = data.n_cells();
    let (qc, mut filtered, kept_totals, rode) = timer.step("qc", |progress| {
        let qc = metrics(&data, &opts.filter.qc)?;
        progress(0.4);
        // The metrics of the kept cells and genes come with the filter (the same values as
        // `metrics` on the filtered dataset).
        let (mut filtered, kept_qc, rode) = match data {
            Cow::Borrowed(d) => {
                let (f, k) = filter_with_kept_metrics(d, &opts.filter, &qc)?;
                (f, k, None)
            }
            Cow::Owned(d) if ride => {
                let target = opts.normalize.target_sum.unwrap_or(1e4) as f32;
                let init = || (LogMoments::new(n_input_genes), Vec::new());
                let visit = |st: &mut (LogMoments, Vec<f32>),
                             idx: &[u32],
                             vals: &[f32],
                             sums: &CellSums| {
                    // `normalize`'s size factor: the QC total of the kept genes (in f32)
                    let total = if sums.0 != 0.0 {
                        sums.0 as f32
                    } else {
                        crate::sparse::sum_f64(vals) as f32
                    };
                    let s = total / target;
                    st.0.add_row(idx, vals, s, expm1, None);
                    st.1.push(s);
                };
                let (f, k, parts) = filter_owned_fold(
                    d,
                    &opts.filter,
                    &qc,
                    Fold {
                        init: &init,
                        visit: &visit,
                    },
                )?;
                (f, k, Some(parts))
            }
            Cow::Owned(d) => {
                let (f, k) = filter_owned_with_kept_metrics(d, &opts.filter, &qc)?;
                (f, k, None)
            }
        };
        if filtered.dataset.n_cells() >= 3 {
            kept_qc.store_in(&mut filtered.dataset)?;
        }
        Ok((qc, filtered, kept_qc.total_counts, rode))
    })?;
    let n = filtered.dataset.n_cells();
    if n < 3 {
        return Err(Error::data(
            "pipeline",
            format!("only {n} cells pass the QC filters; at least 3 are needed"),
        ));
    }

    let (doublets, kept_totals) = if find_doublets {
        let (report, keep) = timer.step("doublets", |_| {
            find_and_remove_doublets(&mut filtered, n_input_cells, opts)
        })?;
        let totals = match keep {
            Some(keep) => keep.iter().map(|&i| kept_totals[i]).collect(),
            None => kept_totals,
        };
        (Some(report), totals)
    } else {
        (None, kept_totals)
    };
    let n = filtered.dataset.n_cells();
    if n < 3 {
        return Err(Error::data(
            "pipeline",
            format!("only {n} cells are left after removing doublets; at least 3 are needed"),
        ));
    }

    let (size_factors, moments, stored) = timer.step("normalize", |_| {
        let counts = &filtered.dataset.counts;
        if let Some(parts) = rode {
            let mut sf = Vec::with_capacity(n);
            let mut sums_parts = Vec::with_capacity(parts.len());
            for (m, s) in parts {
                sums_parts.push(m);
                sf.extend(s);
            }
            let mut sums = LogMoments::sum(sums_parts, n_input_genes);
            sums.truncate(counts.n_cols());
            let m = moments_from_col_sums(&sums, &LogCounts::new(counts, &sf)?);
            Ok((sf, Some(m), None))
        } else if fused {
            let (norm, m) =
                log1p_moments(counts, &opts.normalize, opts.hvg.flavor, Some(&kept_totals))?;
            Ok((norm.size_factors, Some(m), None))
        } else {
            let norm = normalize_total_log1p(counts, &opts.normalize)?;
            Ok((norm.size_factors, None, Some(norm.matrix)))
        }
    })?;

    let (hvg, hvg_genes) = timer.step("hvg", |_| {
        let hvg = match (moments, stored) {
            (Some(m), _) => highly_variable_from_moments(m.means, &m.variances, &opts.hvg)?,
            (None, Some(log)) => {
                let batch = if batched_hvg {
                    let b = Codes::of(&filtered.dataset.cells, &opts.batch_key)?;
                    (b.len() >= 2).then_some(b.codes)
                } else {
                    None
                };
                highly_variable_genes(
                    &log,
                    Some(&filtered.dataset.counts),
                    batch.as_deref(),
                    &opts.hvg,
                )?
            }
            (None, None) => {
                return Err(Error::data(
                    "pipeline",
                    "the normalize step returned neither moments nor the log matrix",
                ))
            }
        };
        let genes = hvg.selected();
        if genes.len() < 2 {
            return Err(Error::data(
                "highly variable genes",
                format!("{} genes selected; at least 2 are needed", genes.len()),
            ));
        }
        Ok((hvg, genes))
    })?;
    Ok(Preprocessed {
        qc,
        filtered,
        size_factors,
        hvg,
        hvg_genes,
        doublets,
    })
}

/// The batch name of every kept cell of an integration.
fn batch_names(i: &Integration) -> Vec<&str> {
    i.batch_codes
        .iter()
        .map(|&c| i.batches.get(c as usize).map_or("", String::as_str))
        .collect()
}

/// The integration step: Harmony over `opts.batch_key` of the kept cells. Fewer than two
/// batches left after QC is a stated skip (`warnings`), or an error with [`Switch::On`].
fn integrate(
    cells: &CellTable,
    pca: &Pca,
    opts: &PipelineOptions,
    warnings: &mut Vec<String>,
) -> Result<Option<Integration>> {
    let b = Codes::of(cells, &opts.batch_key)?;
    if b.len() < 2 {
        let why = format!(
            "integration over {:?} skipped: the cells that passed QC carry {} value(s) of it; \
             at least two batches are needed",
            opts.batch_key,
            b.len()
        );
        if opts.integration == Switch::On {
            return Err(Error::data("integration", why));
        }
        warnings.push(why);
        return Ok(None);
    }
    let h = harmony(pca.embedding.view(), &b.codes, &opts.harmony)?;
    if !h.converged {
        warnings.push(format!(
            "Harmony did not converge in {} rounds (harmony.max_iter_harmony); the corrected \
             embedding of the last round is used",
            h.iterations
        ));
    }
    let mean_lisi = |e: ndarray::ArrayView2<f32>| -> Result<f64> {
        let l = lisi(e, &b.codes, 30.0)?;
        Ok(l.iter().sum::<f64>() / l.len().max(1) as f64)
    };
    let (lisi_before, lisi_after) = if b.codes.len() > 3 * 30 {
        (
            mean_lisi(pca.embedding.view())?,
            mean_lisi(h.embedding.view())?,
        )
    } else {
        (f64::NAN, f64::NAN)
    };
    Ok(Some(Integration {
        batch_key: b.key,
        batches: b.names,
        batch_codes: b.codes,
        harmony: h,
        lisi_before,
        lisi_after,
    }))
}

/// The doublet step: Scrublet on each sample's cells that passed QC ([`scrublet_by_sample`]);
/// the scores go into the cell table (`doublet_score`, `predicted_doublet`) and, indexed by
/// input cell, into the report. With `remove_doublets` the predicted doublets are removed
/// (recorded as [`Reason::Doublet`]) and the kept rows are returned.
fn find_and_remove_doublets(
    filtered: &mut Filtered,
    n_input_cells: usize,
    opts: &PipelineOptions,
) -> Result<(DoubletReport, Option<Vec<usize>>)> {
    let d = &filtered.dataset;
    let samples = Codes::from_labels("sample", &d.cells.sample);
    let found = scrublet_by_sample(&d.counts, &samples.codes, &samples.names, &opts.scrublet)?;
    // Input index of each kept cell: the input cells not removed by QC, in order.
    let mut removed = vec![false; n_input_cells];
    for &(i, _) in &filtered.removed_cells {
        if let Some(r) = removed.get_mut(i) {
            *r = true;
        }
    }
    let input_index: Vec<usize> = (0..n_input_cells).filter(|&i| !removed[i]).collect();
    if input_index.len() != d.n_cells() || found.scores.len() != d.n_cells() {
        return Err(Error::data(
            "doublets",
            "the QC record and the kept cells disagree in number",
        ));
    }
    let mut scores = vec![f64::NAN; n_input_cells];
    let mut predicted = vec![false; n_input_cells];
    for (k, &i) in input_index.iter().enumerate() {
        scores[i] = found.scores[k];
        predicted[i] = found.predicted[k];
    }
    filtered
        .dataset
        .cells
        .set("doublet_score", Column::F64(found.scores.clone()))?;
    filtered
        .dataset
        .cells
        .set("predicted_doublet", Column::Bool(found.predicted.clone()))?;
    let report = DoubletReport {
        scores,
        predicted,
        per_sample: found.per_sample,
        removed: opts.remove_doublets,
    };
    if !opts.remove_doublets {
        return Ok((report, None));
    }
    let keep: Vec<usize> = (0..found.predicted.len())
        .filter(|&k| !found.predicted[k])
        .collect();
    let n_doublets = found.predicted.len() - keep.len();
    if n_doublets > 0 {
        for (k, &i) in input_index.iter().enumerate() {
            if found.predicted[k] {
                filtered.removed_cells.push((i, Reason::Doublet));
            }
        }
        filtered.removed_cells.sort_unstable_by_key(|&(i, _)| i);
        filtered.cell_summary.push((Reason::Doublet, n_doublets));
        filtered.dataset = filtered.dataset.select_cells(&keep)?;
    }
    Ok((report, Some(keep)))
}
