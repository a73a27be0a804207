//! The streamed (out-of-core) analysis, for count matrices bigger than memory.
//!
//! [`run`] reads a 10x HDF5 or `.h5ad` file block of cells by block ([`CellChunks`]) and never holds the
//! whole matrix. It computes the same result as [`crate::pipeline::run`] on the same data
//! (same clusters, same markers; see "Agreement" below) in these passes over the file:
//!
//! 1. **QC** (one pass): per cell `total_counts`, `n_genes_by_counts`, mitochondrial and
//!    ribosomal totals; per gene `n_cells_by_counts` and total counts. The cell filters of
//!    [`crate::qc::filter`] are then applied to the per-cell metrics
//!    ([`crate::qc::filter_cells_by_metrics`]). Without the MAD filter the decision of a cell is
//!    local, so the same pass also counts, per gene, the cells that pass; with MAD the
//!    thresholds need every cell first and one more pass counts them. Genes detected in fewer
//!    than `min_cells` kept cells are dropped.
//! 2. **HVG** (one pass, two without `target_sum`): per kept cell the total over the kept
//!    genes `t_i` (f64 sum of the f32 counts, stored as f32), the size factor
//!    `s_i = f32(t_i / target)` (1 when 0), the log-normalized values `y = ln(1 + x / s_i)` in
//!    f32, exactly as `normalize_total` + `log1p`; per kept gene the sums of `e`, `e²` (f32
//!    product) and non-zeros with `e = expm1(y)` (Seurat) or `e = y` (CellRanger), accumulated
//!    in the same fixed row blocks as the in-memory column reduction, so the means and
//!    variances are bit-identical; then [`crate::hvg::highly_variable_from_moments`]. Without a
//!    `target_sum` the median total needs the totals of every kept cell first: one more pass.
//! 3. **Load** (one pass): the log-normalized values of the kept cells in the highly variable
//!    genes only, as a [`CsrMatrix`](crate::sparse::CsrMatrix); the same pass writes the counts of the kept cells in all
//!    kept genes gene-major to a spill file ([`spill`], about 2 bytes per stored value, in
//!    [`StreamOptions::spill_dir`]).
//! 4. **PCA, neighbors, Leiden, UMAP**: the library's functions as they are, on that matrix.
//!    The HVG matrix is dropped after PCA.
//! 5. **Markers** (no pass over the file): the kept genes are cut into blocks sized from the
//!    memory budget; each block's columns are read from the spill (one read per block of
//!    cells), turned into the log-normalized values of those genes for all kept cells and
//!    ranked as they are, gene-major ([`crate::markers::rank_genes_csc`]); the per-gene
//!    results are concatenated and the adjusted p-values and the order recomputed over all
//!    genes. The spill is removed at the end of the run, and on error.
//!
//! # Workers
//!
//! Each pass is a list of units (blocks of cells; for the HVG moments the fixed row blocks of
//! the kept cells; for the markers ranges of genes), each giving a part that is added up in
//! unit order ([`workers`], [`passes`](self) in `passes.rs`). [`run`] computes every unit
//! itself ([`Local`]); [`run_on`] runs the same code as one of several workers (the
//! `distributed` feature), with the same results.
//!
//! # Memory
//!
//! [`StreamOptions::memory_budget_bytes`] bounds what is loaded at once ([`MemoryPlan`]):
//! - per cell, always: barcodes, QC metrics, `indptr`, labels, embeddings (about
//!   `150 + 4 (n_pcs + 2)` bytes per cell; not reducible, counted against the budget);
//! - a block of cells read from the file: cells are taken until the block's stored values
//!   reach `budget / 8` at 16 bytes each (an explicit `chunk_cells` overrides this);
//! - the HVG matrix with PCA, the kNN graph and UMAP working space: estimated from the HVG
//!   non-zeros counted in pass 2, and the run stops with [`Error::InvalidOption`] before
//!   loading it when the estimate exceeds the budget;
//! - marker gene blocks: what remains of the budget after the above, halved for the
//!   ranking's own buffers, at 16 bytes per stored value (the columns read from the spill and
//!   the parts they are assembled from) plus `8 (4 n_groups + 1)` bytes per gene.
//!
//! These are estimates of the data structures, not a hard limit enforced by the allocator;
//! the observed peak resident memory is reported per step ([`StepReport`]) and overall.
//!
//! # Agreement with the in-memory pipeline
//!
//! The QC metrics, filters, normalized values, HVG moments, the HVG matrix and therefore PCA,
//! neighbors, Leiden and UMAP are identical (same arithmetic in the same order). Wilcoxon
//! markers are identical (each gene is ranked on its own, its values in cell order). With the
//! t-test the per-gene sums are taken in cell order here and in row chunks by `rank_genes`, so
//! scores agree to rounding (about 1e-12 relative). Gene totals of non-integer counts (QC output only) are
//! summed in file order and agree to rounding. Not supported here: `seurat_v3` HVG,
//! `exclude_highly_expressed` normalization and HVG batches (errors).

mod markers;
pub mod output;
mod passes;
pub mod reader;
pub mod spill;
pub mod wire;
pub mod workers;
pub mod write;

pub use reader::CellChunks;
pub use workers::{ExchangeReport, Local, Workers};

use crate::cluster::{leiden, Clustering};
use crate::dataset::GeneTable;
use crate::embed::{umap, Init};
use crate::error::{Error, Result};
use crate::graph::umap_connectivities;
use crate::hvg::{highly_variable_from_moments, Flavor, Hvg};
use crate::io::ReadOptions;
use crate::markers::RankGenes;
use crate::neighbors::{knn, Knn};
use crate::pca::{pca, Pca};
use crate::pipeline::runner::StepRunner;
use crate::pipeline::{PipelineOptions, Progress, StepReport};
use crate::qc::{filter_cells_by_metrics, CellFilter, QcMetrics};
use ndarray::Array2;
use passes::{HvgInputs, HvgPart, QcPart, RowsBuilder, RowsPart};
use std::path::{Path, PathBuf};
use wire::Wire;

/// Options of [`run`]: the in-memory pipeline's options plus how to read and how much memory
/// to use. `Default`: [`PipelineOptions::default`], [`ReadOptions::default`], blocks sized
/// from the budget, budget 8 GiB, spill in the system's temporary directory.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Options of every step, as for [`crate::pipeline::run`].
    pub pipeline: PipelineOptions,
    /// Which features to keep (10x HDF5), sample and condition names.
    pub read: ReadOptions,
    /// For an `.h5ad` input: read this layer (for example `counts`) instead of `X`. `X` must
    /// hold raw counts when no layer is given. Ignored for 10x HDF5.
    pub layer: Option<String>,
    /// Cells per block read from the file; `None` sizes blocks from the budget.
    pub chunk_cells: Option<usize>,
    /// Memory budget in bytes (see the module docs for what it bounds).
    pub memory_budget_bytes: u64,
    /// Directory in which the gene-major spill of the counts is written (in a new
    /// sub-directory, removed at the end of the run and on error); it needs about 2 bytes per
    /// stored value of the kept cells and genes (checked before the pass that writes it).
    /// Default `None`: [`std::env::temp_dir`] (the `pipeline` example uses the output
    /// directory).
    pub spill_dir: Option<PathBuf>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            pipeline: PipelineOptions::default(),
            read: ReadOptions::default(),
            layer: None,
            chunk_cells: None,
            memory_budget_bytes: 8 << 30,
            spill_dir: None,
        }
    }
}

/// How the budget was split (bytes), and the blocks it gave.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    /// The budget.
    pub budget_bytes: u64,
    /// Per-cell tables held throughout (estimate).
    pub resident_bytes: u64,
    /// Largest block of cells read at once, at 16 bytes per stored value.
    pub read_block_bytes: u64,
    /// HVG matrix plus PCA, kNN and UMAP working space (estimate).
    pub downstream_bytes: u64,
    /// Target size of one marker gene block.
    pub marker_block_bytes: u64,
    /// Blocks of cells read in each pass (`start..end` input cell ranges).
    pub cell_blocks: Vec<(usize, usize)>,
    /// Blocks of kept genes ranked together for the markers (`start..end` into kept genes).
    pub marker_blocks: Vec<(usize, usize)>,
    /// Bytes of the gene-major spill of the counts.
    pub spill_bytes: u64,
}

/// Everything [`run`] computed.
#[derive(Debug, Clone)]
pub struct StreamAnalysis {
    /// Cells and genes of the input.
    pub input_shape: (usize, usize),
    /// Stored values of the input.
    pub input_nnz: usize,
    /// Barcodes of the input cells.
    pub barcodes: Vec<String>,
    /// The input genes.
    pub genes: GeneTable,
    /// QC metrics of the input cells and genes.
    pub qc: QcMetrics,
    /// Which cells were kept, and why the others were removed.
    pub cells: CellFilter,
    /// Indices of the kept genes (into the input genes), increasing.
    pub kept_genes: Vec<usize>,
    /// Genes removed by `min_cells`.
    pub genes_removed_min_cells: usize,
    /// Size factor of every kept cell (`total / target_sum`, as `normalize_total`).
    pub size_factors: Vec<f32>,
    /// Stored values of every kept gene over the kept cells (sizes the gene blocks).
    pub stored_per_gene: Vec<u64>,
    /// Highly variable gene statistics of the kept genes.
    pub hvg: Hvg,
    /// Indices (into the kept genes) of the highly variable genes, increasing.
    pub hvg_genes: Vec<usize>,
    /// PCA of the highly variable genes.
    pub pca: Pca,
    /// The kNN graph.
    pub knn: Knn,
    /// Leiden clusters of the kept cells.
    pub clustering: Clustering,
    /// UMAP layout (kept cells x 2); empty when skipped.
    pub umap: Array2<f32>,
    /// Marker genes (gene indices into the kept genes).
    pub markers: RankGenes,
    /// Passes made over the file.
    pub passes: usize,
    /// Why the QC and HVG steps read the file separately with these options (see
    /// [`qc_hvg_passes`]).
    pub qc_hvg_passes: String,
    /// The memory plan and blocks used.
    pub plan: MemoryPlan,
    /// Time and peak memory per step.
    pub steps: Vec<StepReport>,
    /// Largest per-step peak resident memory, in bytes (when the system reports it).
    pub peak_rss_bytes: Option<u64>,
    /// Workers that ran the passes (1 for [`run`]).
    pub workers: usize,
    /// Bytes exchanged between workers per pass (empty for [`run`]).
    pub exchange: Vec<ExchangeReport>,
}

impl StreamAnalysis {
    /// Symbols of the kept genes (the gene names for the marker table).
    pub fn kept_symbols(&self) -> Vec<String> {
        self.kept_genes
            .iter()
            .map(|&g| self.genes.symbols[g].clone())
            .collect()
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

/// Parses a byte count with an optional binary suffix: `8G`, `8GB`, `8GiB`, `512M`, `64k`,
/// `1.5G`, or plain bytes. Errors on anything else, or zero.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let stripped = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (num, mult) = match stripped.chars().last() {
        Some('k') => (&stripped[..stripped.len() - 1], 1u64 << 10),
        Some('m') => (&stripped[..stripped.len() - 1], 1 << 20),
        Some('g') => (&stripped[..stripped.len() - 1], 1 << 30),
        Some('t') => (&stripped[..stripped.len() - 1], 1 << 40),
        _ => (stripped, 1),
    };
    let bad = || {
        Error::option(
            "memory_budget",
            format!("cannot read {s:?} as a size (examples: 8G, 512M, 1048576)"),
        )
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes = v * mult as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Bytes counted per stored value of a block read from the file (index and value, plus the
/// copy a row sort may need).
const READ_BYTES_PER_VALUE: u64 = 16;
/// Bytes per input cell held throughout (barcode, QC metrics, indptr, flags).
const RESIDENT_BYTES_PER_CELL: u64 = 150;
/// Same number of fixed row blocks as the in-memory column reductions (`qc::col_reduce`).
const COL_BLOCKS: usize = 32;

/// Runs the streamed analysis on the 10x HDF5 file at `path`, or the `.h5ad` file (by its
/// extension; `X` or [`StreamOptions::layer`], stored as CSR) (see the module docs).
pub fn run(path: &Path, opts: &StreamOptions) -> Result<StreamAnalysis> {
    run_with_progress(path, opts, &mut |_| {})
}

/// [`run`], calling `progress` at the start and end of each step and after every block read.
pub fn run_with_progress(
    path: &Path,
    opts: &StreamOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<StreamAnalysis> {
    run_on(&mut Local, path, opts, progress)?
        .ok_or_else(|| Error::data("streamed analysis", "the only worker is not the leader"))
}

/// The options the streamed analysis cannot run with, checked before the file is opened.
fn check_options(opts: &StreamOptions) -> Result<()> {
    let po = &opts.pipeline;
    po.validate()?;
    if po.doublets == crate::pipeline::Switch::On || po.integration == crate::pipeline::Switch::On {
        return Err(Error::option(
            "pipeline.doublets",
            "the streamed analysis reads one sample and has no doublet or integration step; \
             run the in-memory pipeline for several samples",
        ));
    }
    if po.hvg.flavor == Flavor::SeuratV3 {
        return Err(Error::option(
            "hvg.flavor",
            "the streamed pipeline supports the seurat and cell_ranger flavors",
        ));
    }
    if po.normalize.exclude_highly_expressed {
        return Err(Error::option(
            "normalize.exclude_highly_expressed",
            "not supported by the streamed pipeline",
        ));
    }
    if let Some(t) = po.normalize.target_sum {
        if !t.is_finite() || t <= 0.0 {
            return Err(Error::option(
                "target_sum",
                format!("must be positive and finite, got {t}"),
            ));
        }
    }
    if opts.chunk_cells == Some(0) {
        return Err(Error::option("chunk_cells", "must be at least 1"));
    }
    let qc = &po.filter.qc;
    if qc.mito_prefixes.iter().any(|p| p.is_empty())
        || qc.ribo_prefixes.iter().any(|p| p.is_empty())
    {
        return Err(Error::option(
            "mito_prefixes/ribo_prefixes",
            "empty prefix matches every gene",
        ));
    }
    Ok(())
}

/// Opens the input: `.h5ad` by its extension, else 10x HDF5.
fn open(path: &Path, opts: &StreamOptions) -> Result<CellChunks> {
    let is_h5ad = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("h5ad"));
    if is_h5ad {
        CellChunks::open_h5ad_with(path, opts.layer.as_deref(), opts.read.assume_counts)
    } else {
        CellChunks::open_10x_h5(path, &opts.read)
    }
}

/// The progress callback of a run.
type ProgressFn<'a> = dyn FnMut(&Progress) + 'a;

/// The step runner on the leader; the other workers run the same code untimed.
struct Steps<'a> {
    runner: Option<StepRunner<'a, ProgressFn<'a>>>,
}

impl Steps<'_> {
    fn step<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut dyn FnMut(f64)) -> Result<T>,
    ) -> Result<T> {
        match &mut self.runner {
            Some(r) => r.step(name, f),
            None => f(&mut |_| {}),
        }
    }
}

/// The leader's result shared with every worker as `f` of it: the leader keeps the result,
/// every worker gets `f`'s value; the leader's error becomes every worker's.
fn share_from_leader<W: Workers, T, S: Wire + Clone + Send + 'static>(
    w: &mut W,
    name: &'static str,
    leader: Option<Result<T>>,
    f: impl FnOnce(&T) -> S,
) -> Result<(Option<T>, S)> {
    match leader {
        Some(Ok(t)) => {
            let s = w.share(name, Some(Ok(f(&t))))?;
            Ok((Some(t), s))
        }
        Some(Err(e)) => Err(w.share::<S>(name, Some(Err(e))).err().unwrap_or_else(|| {
            Error::data("streamed analysis", format!("{name}: an error was lost"))
        })),
        None => Ok((None, w.share(name, None)?)),
    }
}

/// A value only the leader has, when the leader needs it.
fn on_leader<T>(v: Option<T>, what: &str) -> Result<T> {
    v.ok_or_else(|| Error::data("streamed analysis", format!("the leader has no {what}")))
}

/// The streamed analysis as worker `w.index()` of `w.peers()` ([`workers`]): every worker
/// reads its blocks, the leader adds the parts up in block order, runs PCA, neighbours,
/// Leiden and UMAP, and returns the analysis; the other workers return `None`. With
/// [`Local`] this is [`run_with_progress`]. `progress` is called on the leader only.
pub fn run_on<W: Workers>(
    w: &mut W,
    path: &Path,
    opts: &StreamOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Option<StreamAnalysis>> {
    let po = &opts.pipeline;
    check_options(opts)?;
    let budget = opts.memory_budget_bytes;
    let reader = open(path, opts);
    let others = w.agree("open", reader.as_ref().err().map(|e| e.to_string()));
    let reader = reader?;
    others?;
    let (n_cells, n_genes) = (reader.n_cells(), reader.n_genes());
    let mut steps = Steps {
        runner: w
            .is_leader()
            .then(|| StepRunner::new(progress, STEPS.to_vec())),
    };
    let resident = n_cells as u64 * (RESIDENT_BYTES_PER_CELL + 4 * (po.pca.n_comps as u64 + 2));
    if resident + (1 << 20) > budget {
        return Err(Error::option(
            "memory_budget",
            format!(
                "{budget} bytes is too small: {n_cells} cells need about {} bytes of per-cell \
                 tables plus room for one block",
                resident + (1 << 20)
            ),
        ));
    }
    let cell_blocks = plan_cell_blocks(&reader, opts.chunk_cells, budget / 8);
    let read_block_bytes = cell_blocks
        .iter()
        .map(|&(a, b)| reader.nnz_of(a, b) as u64 * READ_BYTES_PER_VALUE)
        .max()
        .unwrap_or(0);
    // Fraction of the stored values read once block `u` is folded.
    let total_nnz = reader.nnz().max(1) as f64;
    let mut read_so_far = Vec::with_capacity(cell_blocks.len());
    let mut acc = 0usize;
    for &(a, b) in &cell_blocks {
        acc += reader.nnz_of(a, b);
        read_so_far.push(acc as f64 / total_nnz);
    }
    let n_blocks = cell_blocks.len();
    let mut passes = 0;

    // ---- 1. QC ----
    let qc_opts = &po.filter.qc;
    let symbols = &reader.genes().symbols;
    let has = |s: &str, p: &[String]| p.iter().any(|x| s.starts_with(x.as_str()));
    let mt: Vec<bool> = symbols
        .iter()
        .map(|s| has(s, &qc_opts.mito_prefixes))
        .collect();
    let ribo: Vec<bool> = symbols
        .iter()
        .map(|s| has(s, &qc_opts.ribo_prefixes))
        .collect();
    let fo = &po.filter;
    let local_only = fo.mad.is_none();
    let (leader_qc, keep) = steps.step("qc", |rep| {
        let mut sums = QcPart::empty(n_genes);
        w.pass(
            "qc",
            n_blocks,
            &mut |u| {
                let (a, b) = cell_blocks[u];
                let x = reader.read(a, b)?;
                let p = QcPart::of_block(&x, &mt, &ribo, fo, local_only);
                Ok((p, Vec::<(usize, ())>::new()))
            },
            &mut |u, p| {
                sums.add(p)?;
                rep(read_so_far[u]);
                Ok(())
            },
            &mut |_, ()| Ok(()),
        )?;
        let leader = w.is_leader().then(|| {
            let cols: Vec<[f64; 2]> = sums
                .g_n
                .iter()
                .zip(&sums.g_t)
                .map(|(&n, &t)| [n as f64, t])
                .collect();
            let qc = crate::qc::assemble(&sums.per_cell, &cols, mt.clone(), ribo.clone());
            let samples = reader.samples(&opts.read.sample);
            let cells = filter_cells_by_metrics(&qc, &samples, fo)?;
            let n_kept = cells.keep_cells.len();
            if n_kept < 3 {
                return Err(Error::data(
                    "streamed pipeline",
                    format!("only {n_kept} cells pass the QC filters; at least 3 are needed"),
                ));
            }
            Ok((qc, cells, std::mem::take(&mut sums.g_kept)))
        });
        share_from_leader(w, "kept cells", leader, |(_, c, _)| c.keep_cells.clone())
    })?;
    passes += 1;
    let n_kept = keep.len();
    // Kept-cell position of every input cell (u32::MAX: removed).
    let mut kept_pos = vec![u32::MAX; n_cells];
    for (k, &i) in keep.iter().enumerate() {
        kept_pos[i] = k as u32;
    }
    let (qc, cells, mut gene_ncells) = match leader_qc {
        Some((q, c, g)) => (Some(q), Some(c), Some(g)),
        None => (None, None, None),
    };
    if !local_only {
        // The MAD thresholds needed every cell: count the genes over the kept cells now.
        gene_ncells = steps.step("qc", |rep| {
            let mut g = vec![0u32; n_genes];
            w.pass(
                "qc (kept cells)",
                n_blocks,
                &mut |u| {
                    let (a, b) = cell_blocks[u];
                    let x = reader.read(a, b)?;
                    Ok((
                        passes::kept_detection(a, &x, &kept_pos),
                        Vec::<(usize, ())>::new(),
                    ))
                },
                &mut |u, p: Vec<u32>| {
                    if p.len() != n_genes {
                        return Err(Error::data("streamed pipeline", "a malformed gene count"));
                    }
                    for (a, b) in g.iter_mut().zip(p) {
                        *a += b;
                    }
                    rep(read_so_far[u]);
                    Ok(())
                },
                &mut |_, ()| Ok(()),
            )?;
            Ok(w.is_leader().then_some(g))
        })?;
        passes += 1;
    }
    let leader_genes = gene_ncells.map(|g| {
        let kept: Vec<usize> = match fo.min_cells {
            Some(mc) => (0..n_genes).filter(|&i| g[i] >= mc).collect(),
            None => (0..n_genes).collect(),
        };
        if kept.len() < 2 {
            return Err(Error::data(
                "streamed pipeline",
                format!("only {} genes pass the QC filters", kept.len()),
            ));
        }
        Ok(kept)
    });
    let (_, kept_genes) = share_from_leader(w, "kept genes", leader_genes, |k| k.clone())?;
    let genes_removed_min_cells = n_genes - kept_genes.len();
    let n_kg = kept_genes.len();
    // Kept-gene position of every input gene (u32::MAX: removed).
    let mut gene_pos = vec![u32::MAX; n_genes];
    for (k, &g) in kept_genes.iter().enumerate() {
        gene_pos[g] = k as u32;
    }

    // ---- 2. Normalization factors and HVG ----
    let seurat = po.hvg.flavor == Flavor::Seurat;
    let k_nn = po.knn.n_neighbors.min(n_kept) as u64;
    let (leader_hvg, (size_factors, stored_per_gene, hvg_genes, kept_totals)) =
        steps.step("hvg", |rep| {
            let target: f32 = match po.normalize.target_sum {
                Some(t) => t as f32,
                None => {
                    let mut totals = Vec::with_capacity(n_kept);
                    w.pass(
                        "median total",
                        n_blocks,
                        &mut |u| {
                            let (a, b) = cell_blocks[u];
                            let x = reader.read(a, b)?;
                            let t = passes::kept_totals(a, &x, &kept_pos, &gene_pos);
                            Ok((t, Vec::<(usize, ())>::new()))
                        },
                        &mut |u, t: Vec<f32>| {
                            totals.extend(t);
                            rep(read_so_far[u]);
                            Ok(())
                        },
                        &mut |_, ()| Ok(()),
                    )?;
                    passes += 1;
                    let median = w
                        .is_leader()
                        .then(|| Ok(crate::normalize::median_f32(&totals)));
                    share_from_leader(w, "median total", median, |t| *t)?.1
                }
            };
            if !(target.is_finite() && target > 0.0) {
                return Err(Error::data(
                    "normalize_total",
                    "the median total is zero: set target_sum",
                ));
            }
            // Same blocking as `qc::col_reduce` over the kept cells: block sums added in order.
            let block = n_kept.div_ceil(COL_BLOCKS).max(1);
            let n_units = n_kept.div_ceil(block);
            let inputs = HvgInputs {
                kept_pos: &kept_pos,
                gene_pos: &gene_pos,
                n_kept_genes: n_kg,
                target,
                seurat,
            };
            let mut total = vec![[0f64; 3]; n_kg];
            let mut stored = vec![0u64; n_kg];
            let mut size_factors: Vec<f32> = Vec::with_capacity(n_kept);
            w.pass(
                "hvg",
                n_units,
                &mut |u| {
                    let (lo, hi) = (u * block, ((u + 1) * block).min(n_kept));
                    let cells = (keep[lo], keep[hi - 1] + 1);
                    let p = HvgPart::of_cells(&reader, &cell_blocks, cells, &inputs)?;
                    Ok((p, Vec::<(usize, ())>::new()))
                },
                &mut |u, p| {
                    if p.sums.len() != n_kg || p.stored.len() != n_kg {
                        return Err(Error::data("streamed pipeline", "a malformed HVG part"));
                    }
                    for (t, c) in total.iter_mut().zip(&p.sums) {
                        for k in 0..3 {
                            t[k] += c[k];
                        }
                    }
                    for (s, c) in stored.iter_mut().zip(&p.stored) {
                        *s += c;
                    }
                    size_factors.extend_from_slice(&p.size_factors);
                    rep((u + 1) as f64 / n_units as f64);
                    Ok(())
                },
                &mut |_, ()| Ok(()),
            )?;
            passes += 1;
            let leader = w.is_leader().then(|| {
                if size_factors.len() != n_kept {
                    return Err(Error::data("streamed pipeline", "size factors lost"));
                }
                let n = n_kept as f64;
                let mut means = Vec::with_capacity(n_kg);
                let mut vars = Vec::with_capacity(n_kg);
                for q in &total {
                    let m = q[0] / n;
                    let v = q[1] / n - m * m;
                    means.push(m);
                    vars.push(if n != 1.0 { v * (n / (n - 1.0)) } else { v });
                }
                let hvg = highly_variable_from_moments(means, &vars, &po.hvg)?;
                let hvg_genes = hvg.selected();
                if hvg_genes.len() < 2 {
                    return Err(Error::data(
                        "highly variable genes",
                        format!("{} genes selected; at least 2 are needed", hvg_genes.len()),
                    ));
                }
                let (hvg_nnz, downstream) =
                    downstream_bytes(&hvg_genes, &stored, n_kept, k_nn, po.pca.n_comps);
                if resident + downstream > budget {
                    return Err(Error::option(
                        "memory_budget",
                        format!(
                            "{budget} bytes is too small for the in-memory steps on {n_kept} \
                             cells: the highly variable genes ({hvg_nnz} values), PCA, kNN \
                             graph and UMAP need about {} bytes",
                            resident + downstream
                        ),
                    ));
                }
                let qc = on_leader(qc.as_ref(), "QC metrics")?;
                let kept_totals: Vec<f64> = kept_genes
                    .iter()
                    .map(|&g| qc.gene_total_counts[g])
                    .collect();
                Ok((hvg, size_factors, stored, hvg_genes, kept_totals))
            });
            share_from_leader(w, "hvg", leader, |(_, sf, st, hg, kt)| {
                (sf.clone(), st.clone(), hg.clone(), kt.clone())
            })
        })?;
    let hvg = leader_hvg.map(|(h, ..)| h);
    let (hvg_nnz, downstream) =
        downstream_bytes(&hvg_genes, &stored_per_gene, n_kept, k_nn, po.pca.n_comps);
    let n_comps = po.pca.n_comps.min(n_kept - 1).min(hvg_genes.len());

    // ---- 3. Load the HVG columns of the kept cells; spill the counts by gene ranges ----
    let mut col_of = vec![u32::MAX; n_genes];
    for (k, &g) in hvg_genes.iter().enumerate() {
        col_of[kept_genes[g]] = k as u32;
    }
    let spill_parent = match &opts.spill_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    let ranges = passes::gene_ranges(&stored_per_gene, w.peers());
    let (g0, g1) = ranges[w.index()];
    // Kept-gene position within each worker's range of every input gene.
    let owners: Vec<(usize, usize, Vec<u32>)> = ranges
        .iter()
        .enumerate()
        .filter(|(_, (a, b))| a < b)
        .map(|(o, &(a, b))| {
            let pos = gene_pos
                .iter()
                .map(|&p| {
                    let p = p as usize;
                    if p >= a && p < b {
                        (p - a) as u32
                    } else {
                        u32::MAX
                    }
                })
                .collect();
            (o, b - a, pos)
        })
        .collect();
    let spill_needed = spill::estimate_bytes(
        &stored_per_gene[g0..g1],
        &kept_totals[g0..g1],
        n_kept,
        n_blocks,
        opts.read.assume_counts,
    );
    let spill = spill::Spill::create(&spill_parent, g1 - g0, spill_needed);
    let others = w.agree("spill", spill.as_ref().err().map(|e| e.to_string()));
    let mut spill = spill?;
    others?;
    let x_hvg = steps.step("load", |rep| {
        let mut rows = w
            .is_leader()
            .then(|| RowsBuilder::with_capacity(n_kept, hvg_nnz as usize));
        w.pass(
            "load",
            n_blocks,
            &mut |u| {
                let (a, b) = cell_blocks[u];
                let x = reader.read(a, b)?;
                let r = RowsPart::of_block(a, &x, &kept_pos, &size_factors, &col_of);
                let segments = owners
                    .iter()
                    .filter_map(|(o, n, pos)| {
                        spill::encode_segment(a, &x, &kept_pos, pos, *n).map(|s| (*o, s))
                    })
                    .collect();
                Ok((r, segments))
            },
            &mut |u, r| {
                on_leader(rows.as_mut(), "HVG rows")?.add(r)?;
                rep(read_so_far[u]);
                Ok(())
            },
            &mut |_, s| spill.append_encoded(s),
        )?;
        passes += 1;
        spill.finish()?;
        rows.map(|r| r.finish(hvg_genes.len())).transpose()
    })?;

    // ---- 4. PCA, neighbors, Leiden, UMAP (on the leader) ----
    let leader_down = x_hvg.map(|x_hvg| -> Result<_> {
        let pca_result = steps.step("pca", |_| {
            let mut o = po.pca.clone();
            o.n_comps = n_comps;
            pca(&x_hvg, &o)
        })?;
        drop(x_hvg);
        let (knn_result, connectivities) = steps.step("neighbors", |_| {
            let mut o = po.knn.clone();
            o.n_neighbors = o.n_neighbors.min(n_kept);
            let k = knn(pca_result.embedding.view(), &o)?;
            let c = umap_connectivities(&k, n_kept, &po.graph)?;
            Ok((k, c))
        })?;
        let clustering = steps.step("leiden", |_| leiden(&connectivities, &po.leiden))?;
        let layout = if po.skip_umap {
            Array2::zeros((0, 2))
        } else {
            steps.step("umap", |_| umap(&connectivities, Init::Spectral, &po.umap))?
        };
        Ok((pca_result, knn_result, clustering, layout))
    });
    let (leader_down, (labels, n_groups)) =
        share_from_leader(w, "clusters", leader_down, |(_, _, c, _)| {
            (c.labels.clone(), c.n_clusters)
        })?;

    // ---- 5. Markers: each worker ranks its range of genes, block by block ----
    let held = resident + n_kept as u64 * (k_nn * 8 + 8);
    let avail = budget.saturating_sub(held + read_block_bytes);
    let marker_block_bytes = (avail / 2).max(1);
    let per_gene = 8 * (4 * n_groups as u64 + 1);
    let leader_markers = steps.step("markers", |rep| {
        let (mut blocks, mut spill_bytes, mut parts) = (Vec::new(), 0u64, Vec::new());
        w.pass(
            "markers",
            w.peers(),
            &mut |u| {
                let (a, b) = ranges[u];
                let mine: Vec<(usize, usize)> = markers::plan_gene_blocks(
                    &stored_per_gene[a..b],
                    per_gene,
                    n_kept,
                    marker_block_bytes,
                )
                .into_iter()
                .map(|(x, y)| (x + a, y + a))
                .collect();
                let n = mine.len().max(1) as f64;
                let r = markers::rank_range(
                    &spill,
                    a,
                    &mine,
                    &size_factors,
                    &labels,
                    &po.markers,
                    &mut |done| rep(done as f64 / n),
                )?;
                Ok(((mine, spill.bytes(), r), Vec::<(usize, ())>::new()))
            },
            &mut |_, (b, s, r): MarkerPart| {
                blocks.extend(b);
                spill_bytes += s;
                parts.extend(r);
                Ok(())
            },
            &mut |_, ()| Ok(()),
        )?;
        Ok(w.is_leader().then_some((parts, blocks, spill_bytes)))
    })?;
    drop(spill);
    let exchange = w.exchange_reports()?;
    let Some((parts, marker_blocks, spill_bytes)) = leader_markers else {
        return Ok(None);
    };
    let ranked = markers::concat(parts)?
        .ok_or_else(|| Error::data("markers", "no gene block was ranked"))?;
    let markers = markers::finish(ranked, po.markers.corr_method);
    let (pca_result, knn_result, clustering, layout) = on_leader(leader_down, "clusters")?;
    let steps = on_leader(steps.runner, "steps")?.into_steps();
    let peak = steps.iter().filter_map(|s| s.peak_rss_bytes).max();
    Ok(Some(StreamAnalysis {
        input_shape: (n_cells, n_genes),
        input_nnz: reader.nnz(),
        barcodes: reader.barcodes().to_vec(),
        genes: reader.genes().clone(),
        qc: on_leader(qc, "QC metrics")?,
        cells: on_leader(cells, "cell filter")?,
        kept_genes,
        genes_removed_min_cells,
        size_factors,
        stored_per_gene,
        hvg: on_leader(hvg, "HVG statistics")?,
        hvg_genes,
        pca: pca_result,
        knn: knn_result,
        clustering,
        umap: layout,
        markers,
        passes,
        qc_hvg_passes: qc_hvg_passes(po),
        plan: MemoryPlan {
            budget_bytes: budget,
            resident_bytes: resident,
            read_block_bytes,
            downstream_bytes: downstream,
            marker_block_bytes,
            cell_blocks,
            marker_blocks,
            spill_bytes,
        },
        steps,
        peak_rss_bytes: peak,
        workers: w.peers(),
        exchange,
    }))
}

/// What a worker's range of genes gives the leader: its gene blocks, its spill's bytes and
/// its markers (`None` for an empty range).
type MarkerPart = (Vec<(usize, usize)>, u64, Option<RankGenes>);

/// Stored values of the HVG columns, and the estimate of the HVG matrix plus PCA, kNN and UMAP
/// working space.
fn downstream_bytes(
    hvg_genes: &[usize],
    stored: &[u64],
    n_kept: usize,
    k_nn: u64,
    n_comps: usize,
) -> (u64, u64) {
    let n_comps = n_comps.min(n_kept - 1).min(hvg_genes.len()) as u64;
    let hvg_nnz: u64 = hvg_genes.iter().map(|&g| stored[g]).sum();
    let downstream = hvg_nnz * 8 + n_kept as u64 * (8 + (n_comps + 20) * 32 + k_nn * 64);
    (hvg_nnz, downstream)
}

/// Why the QC pass and the HVG pass are two reads of the file with these options. The size
/// factors of the HVG pass are the totals over the kept genes, and which genes are kept is
/// known only after every cell: with `min_cells` of 2 or more a gene detected in one kept
/// cell is removed and changes that cell's total; summing the totals again without it would
/// not give the in-memory pipeline's `f64` sums bit for bit. The MAD thresholds and the
/// median total (no `target_sum`) need every cell first too. With none of these (no MAD,
/// `target_sum` given, `min_cells` at most 1) the two reads could be one; that sharing is not
/// implemented yet.
pub fn qc_hvg_passes(po: &PipelineOptions) -> String {
    let mut why = Vec::new();
    if po.filter.mad.is_some() {
        why.push("the MAD thresholds need the metrics of every cell first".to_string());
    }
    if po.normalize.target_sum.is_none() {
        why.push("without target_sum the median total needs every kept cell first".to_string());
    }
    if let Some(mc) = po.filter.min_cells.filter(|&m| m >= 2) {
        why.push(format!(
            "min_cells = {mc} removes genes only after every cell, and the size factors are \
             totals over the kept genes"
        ));
    }
    if why.is_empty() {
        "separate reads: sharing one read is possible with these options but not implemented"
            .to_string()
    } else {
        format!("separate reads: {}", why.join("; "))
    }
}

/// Blocks of consecutive cells: `chunk_cells` each when given, else as many cells as fit
/// `block_bytes` at [`READ_BYTES_PER_VALUE`] per stored value (at least one cell).
fn plan_cell_blocks(
    r: &CellChunks,
    chunk_cells: Option<usize>,
    block_bytes: u64,
) -> Vec<(usize, usize)> {
    let n = r.n_cells();
    let mut out = Vec::new();
    let mut a = 0;
    while a < n {
        let b = match chunk_cells {
            Some(c) => (a + c).min(n),
            None => {
                let mut b = a + 1;
                while b < n && (r.nnz_of(a, b + 1) as u64) * READ_BYTES_PER_VALUE <= block_bytes {
                    b += 1;
                }
                b
            }
        };
        out.push((a, b));
        a = b;
    }
    out
}

/// The steps of the streamed analysis, in order.
const STEPS: [&str; 8] = [
    "qc",
    "hvg",
    "load",
    "pca",
    "neighbors",
    "leiden",
    "umap",
    "markers",
];
