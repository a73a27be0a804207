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
//!    The HVG matrix is dropped after PCA. With several workers each keeps the HVG rows of its
//!    share of the PCA's row blocks, the PCA's column sums meet along the same fixed block tree
//!    ([`crate::pca::pca_on_blocks`]) and the embedding is gathered to worker 0, which runs
//!    neighbors, Leiden and UMAP.
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
//! - the markers' table of log values (128 bytes per kept cell: `ln(1 + c / s)` of its
//!   integer counts below 32, so that the values read gene by gene need no logarithm);
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
//! scores agree to rounding (about 1e-12 relative). Gene totals of non-integer counts (QC output
//! only) are summed in the fixed row blocks of each block read, not of the whole matrix, and
//! agree to rounding; a kept gene with the same non-zero log value in every kept cell gets a
//! rounding residue as its variance where the in-memory step sets exactly 0 (see
//! `passes`). Not supported here: `seurat_v3` HVG,
//! `exclude_highly_expressed` normalization and HVG batches (errors).

mod markers;
pub mod output;
mod passes;
mod prepare;
pub mod reader;
mod run;
pub mod spill;
pub mod wire;
pub mod workers;
pub mod write;

pub use reader::CellChunks;
pub use run::{run, run_on, run_with_progress};
pub use workers::{ExchangeReport, Local, Workers};

use crate::cluster::Clustering;
use crate::dataset::GeneTable;
use crate::error::{Error, Result};
use crate::hvg::Hvg;
use crate::io::ReadOptions;
use crate::markers::RankGenes;
use crate::neighbors::Knn;
use crate::pca::Pca;
use crate::pipeline::{PipelineOptions, StepReport};
use crate::qc::{CellFilter, QcMetrics};
use ndarray::Array2;
use std::path::PathBuf;

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
