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
//!    genes only, as a [`CsrMatrix`]; the same pass writes the counts of the kept cells in all
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

pub mod output;
pub mod reader;
pub mod spill;
pub mod write;

pub use reader::CellChunks;

use crate::cluster::{leiden, Clustering};
use crate::dataset::GeneTable;
use crate::embed::{umap, Init};
use crate::error::{Error, Result};
use crate::graph::umap_connectivities;
use crate::hvg::{highly_variable_from_moments, Flavor, Hvg};
use crate::io::ReadOptions;
use crate::markers::{rank_genes_csc, Correction, GroupMarkers, RankGenes};
use crate::neighbors::{knn, Knn};
use crate::pca::{pca, Pca};
use crate::pipeline::runner::StepRunner;
use crate::pipeline::{PipelineOptions, Progress, StepReport};
use crate::qc::{filter_cells_by_metrics, CellFilter, QcMetrics};
use crate::sparse::CsrMatrix;
use ndarray::Array2;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

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
    let budget = opts.memory_budget_bytes;
    let is_h5ad = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("h5ad"));
    let reader = if is_h5ad {
        CellChunks::open_h5ad_with(path, opts.layer.as_deref(), opts.read.assume_counts)?
    } else {
        CellChunks::open_10x_h5(path, &opts.read)?
    };
    let (n_cells, n_genes) = (reader.n_cells(), reader.n_genes());
    let mut steps = StepRunner::new(progress, STEPS.to_vec());
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
    let mut passes = 0;

    // ---- 1. QC ----
    let qc_opts = &po.filter.qc;
    let symbols = &reader.genes().symbols;
    let has = |s: &str, p: &[String]| p.iter().any(|x| s.starts_with(x.as_str()));
    if qc_opts.mito_prefixes.iter().any(|p| p.is_empty())
        || qc_opts.ribo_prefixes.iter().any(|p| p.is_empty())
    {
        return Err(Error::option(
            "mito_prefixes/ribo_prefixes",
            "empty prefix matches every gene",
        ));
    }
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
    let (qc, cells, mut gene_ncells) = steps.step("qc", |rep| {
        let mut per_cell: Vec<(f64, u32, f64, f64)> = Vec::with_capacity(n_cells);
        let mut g_n = vec![0u32; n_genes];
        let mut g_t = vec![0f64; n_genes];
        // Genes counted over the cells passing the fixed bounds (exact when there is no MAD).
        let mut g_kept = vec![0u32; n_genes];
        for_blocks(&reader, &cell_blocks, &mut *rep, |_, x| {
            let first = per_cell.len();
            per_cell.par_extend(crate::qc::cell_sums(x, &mt, &ribo));
            for r in 0..x.n_rows() {
                let (t, n, m, _) = per_cell[first + r];
                let pass = local_only && passes_fixed(fo, t, n, m / t * 100.0);
                let (idx, val) = x.row(r);
                for (&c, &v) in idx.iter().zip(val) {
                    let c = c as usize;
                    let nz = (v != 0.0) as u32;
                    g_n[c] += nz;
                    g_t[c] += v as f64;
                    if pass {
                        g_kept[c] += nz;
                    }
                }
            }
            Ok(())
        })?;
        let cols: Vec<[f64; 2]> = g_n.iter().zip(&g_t).map(|(&n, &t)| [n as f64, t]).collect();
        let qc = crate::qc::assemble(&per_cell, &cols, mt.clone(), ribo.clone());
        let samples = reader.samples(&opts.read.sample);
        let cells = filter_cells_by_metrics(&qc, &samples, fo)?;
        Ok((qc, cells, g_kept))
    })?;
    passes += 1;
    let keep = &cells.keep_cells;
    let n_kept = keep.len();
    if n_kept < 3 {
        return Err(Error::data(
            "streamed pipeline",
            format!("only {n_kept} cells pass the QC filters; at least 3 are needed"),
        ));
    }
    // Kept-cell position of every input cell (u32::MAX: removed).
    let mut kept_pos = vec![u32::MAX; n_cells];
    for (k, &i) in keep.iter().enumerate() {
        kept_pos[i] = k as u32;
    }
    if !local_only {
        // The MAD thresholds needed every cell: count the genes over the kept cells now.
        gene_ncells = steps.step("qc", |rep| {
            let mut g = vec![0u32; n_genes];
            for_blocks(&reader, &cell_blocks, &mut *rep, |a, x| {
                for r in 0..x.n_rows() {
                    if kept_pos[a + r] == u32::MAX {
                        continue;
                    }
                    let (idx, val) = x.row(r);
                    for (&c, &v) in idx.iter().zip(val) {
                        g[c as usize] += (v != 0.0) as u32;
                    }
                }
                Ok(())
            })?;
            Ok(g)
        })?;
        passes += 1;
    }
    let kept_genes: Vec<usize> = match fo.min_cells {
        Some(mc) => (0..n_genes).filter(|&g| gene_ncells[g] >= mc).collect(),
        None => (0..n_genes).collect(),
    };
    let genes_removed_min_cells = n_genes - kept_genes.len();
    let n_kg = kept_genes.len();
    if n_kg < 2 {
        return Err(Error::data(
            "streamed pipeline",
            format!("only {n_kg} genes pass the QC filters"),
        ));
    }
    // Kept-gene position of every input gene (u32::MAX: removed).
    let mut gene_pos = vec![u32::MAX; n_genes];
    for (k, &g) in kept_genes.iter().enumerate() {
        gene_pos[g] = k as u32;
    }

    // ---- 2. Normalization factors and HVG ----
    let kept_total = |idx: &[u32], val: &[f32]| -> f32 {
        idx.iter()
            .zip(val)
            .filter(|(c, _)| gene_pos[**c as usize] != u32::MAX)
            .map(|(_, &x)| x as f64)
            .sum::<f64>() as f32
    };
    let seurat = po.hvg.flavor == Flavor::Seurat;
    let (size_factors, hvg, stored_per_gene) = steps.step("hvg", |rep| {
        let target: f32 = match po.normalize.target_sum {
            Some(t) => t as f32,
            None => {
                let mut totals = Vec::with_capacity(n_kept);
                for_blocks(&reader, &cell_blocks, &mut *rep, |a, x| {
                    for r in 0..x.n_rows() {
                        if kept_pos[a + r] != u32::MAX {
                            let (idx, val) = x.row(r);
                            totals.push(kept_total(idx, val));
                        }
                    }
                    Ok(())
                })?;
                passes += 1;
                crate::normalize::median_f32(&totals)
            }
        };
        if !(target.is_finite() && target > 0.0) {
            return Err(Error::data(
                "normalize_total",
                "the median total is zero: set target_sum",
            ));
        }
        let mut size_factors: Vec<f32> = Vec::with_capacity(n_kept);
        // Same blocking as `qc::col_reduce` over the kept cells: block sums added in order.
        let block = n_kept.div_ceil(COL_BLOCKS).max(1);
        let mut total = vec![[0f64; 3]; n_kg];
        let mut cur = vec![[0f64; 3]; n_kg];
        let mut stored = vec![0u64; n_kg];
        let mut done = 0usize; // kept cells accumulated so far
        let mut e_buf: Vec<f32> = Vec::new();
        for_blocks(&reader, &cell_blocks, &mut *rep, |a, x| {
            // Size factors, then the transformed values of every stored entry, in parallel.
            let rows: Vec<usize> = (0..x.n_rows())
                .filter(|&r| kept_pos[a + r] != u32::MAX)
                .collect();
            let sf: Vec<f32> = rows
                .par_iter()
                .map(|&r| {
                    let (idx, val) = x.row(r);
                    kept_total(idx, val) / target
                })
                .collect();
            e_buf.clear();
            e_buf.resize(x.nnz(), 0.0);
            let ptr = x.indptr();
            let mut parts: Vec<(usize, f32, &mut [f32])> = Vec::with_capacity(rows.len());
            let mut rest: &mut [f32] = &mut e_buf;
            let mut pos = 0;
            for (k, &r) in rows.iter().enumerate() {
                let (lo, hi) = (ptr[r], ptr[r + 1]);
                let (_, tail) = rest.split_at_mut(lo - pos);
                let (mine, tail) = tail.split_at_mut(hi - lo);
                parts.push((r, sf[k], mine));
                rest = tail;
                pos = hi;
            }
            parts.into_par_iter().for_each(|(r, s, out)| {
                let s = if s == 0.0 { 1.0 } else { s };
                for (o, &v) in out.iter_mut().zip(x.row(r).1) {
                    let y = (v / s).ln_1p();
                    *o = if seurat { y.exp_m1() } else { y };
                }
            });
            for &r in &rows {
                let (idx, _) = x.row(r);
                let es = &e_buf[ptr[r]..ptr[r + 1]];
                for (&c, &e) in idx.iter().zip(es) {
                    let g = gene_pos[c as usize];
                    if g == u32::MAX {
                        continue;
                    }
                    let q = &mut cur[g as usize];
                    q[0] += e as f64;
                    q[1] += (e * e) as f64;
                    q[2] += (e != 0.0) as u8 as f64;
                    stored[g as usize] += 1;
                }
                done += 1;
                if done % block == 0 || done == n_kept {
                    for (t, c) in total.iter_mut().zip(cur.iter_mut()) {
                        for k in 0..3 {
                            t[k] += c[k];
                        }
                        *c = [0.0; 3];
                    }
                }
            }
            size_factors.extend_from_slice(&sf);
            Ok(())
        })?;
        passes += 1;
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
        Ok((size_factors, hvg, stored))
    })?;
    let hvg_genes = hvg.selected();
    if hvg_genes.len() < 2 {
        return Err(Error::data(
            "highly variable genes",
            format!("{} genes selected; at least 2 are needed", hvg_genes.len()),
        ));
    }

    // ---- Budget check for the in-memory part ----
    let n_comps = po.pca.n_comps.min(n_kept - 1).min(hvg_genes.len());
    let k_nn = po.knn.n_neighbors.min(n_kept) as u64;
    let hvg_nnz: u64 = hvg_genes.iter().map(|&g| stored_per_gene[g]).sum();
    let downstream = hvg_nnz * 8 + n_kept as u64 * (8 + (n_comps as u64 + 20) * 32 + k_nn * 64);
    if resident + downstream > budget {
        return Err(Error::option(
            "memory_budget",
            format!(
                "{budget} bytes is too small for the in-memory steps on {n_kept} cells: the \
                 highly variable genes ({hvg_nnz} values), PCA, kNN graph and UMAP need about \
                 {} bytes",
                resident + downstream
            ),
        ));
    }

    // ---- 3. Load the HVG columns of the kept cells ----
    let mut col_of = vec![u32::MAX; n_genes];
    for (k, &g) in hvg_genes.iter().enumerate() {
        col_of[kept_genes[g]] = k as u32;
    }
    let spill_parent = match &opts.spill_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    let kept_totals: Vec<f64> = kept_genes
        .iter()
        .map(|&g| qc.gene_total_counts[g])
        .collect();
    let spill_needed = spill::estimate_bytes(
        &stored_per_gene,
        &kept_totals,
        n_kept,
        cell_blocks.len(),
        opts.read.assume_counts,
    );
    let mut spill = spill::Spill::create(&spill_parent, n_kg, spill_needed)?;
    let x_hvg = steps.step("load", |rep| {
        let m = load_columns(
            &reader,
            &cell_blocks,
            &kept_pos,
            &size_factors,
            &col_of,
            hvg_genes.len(),
            hvg_nnz as usize,
            rep,
            &mut |a, x| spill.append(a, x, &kept_pos, &gene_pos),
        );
        passes += 1;
        spill.finish()?;
        m
    })?;
    let spill_bytes = spill.bytes();

    // ---- 4. PCA, neighbors, Leiden, UMAP ----
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
    drop(connectivities);

    // ---- 5. Markers, gene block by gene block ----
    let n_groups = clustering.n_clusters as u64;
    let held = resident + n_kept as u64 * (k_nn * 8 + 8);
    let avail = budget.saturating_sub(held + read_block_bytes);
    let marker_block_bytes = (avail / 2).max(1);
    let per_gene = 8 * (4 * n_groups + 1);
    let marker_blocks = plan_gene_blocks(&stored_per_gene, per_gene, n_kept, marker_block_bytes);
    let markers = steps.step("markers", |rep| {
        let mut parts: Vec<RankGenes> = Vec::with_capacity(marker_blocks.len());
        let n_blocks = marker_blocks.len() as f64;
        for (bi, &(g0, g1)) in marker_blocks.iter().enumerate() {
            let mut c = spill.columns(g0, g1)?;
            c.lognormalize(&size_factors)?;
            parts.push(rank_genes_csc(
                n_kept,
                &c.ptr,
                &c.cells,
                &c.values,
                &clustering.labels,
                &po.markers,
            )?);
            rep((bi + 1) as f64 / n_blocks);
        }
        merge_rank_genes(parts, po.markers.corr_method)
    })?;
    drop(spill);

    let peak = steps.steps().iter().filter_map(|s| s.peak_rss_bytes).max();
    Ok(StreamAnalysis {
        input_shape: (n_cells, n_genes),
        input_nnz: reader.nnz(),
        barcodes: reader.barcodes().to_vec(),
        genes: reader.genes().clone(),
        qc,
        cells,
        kept_genes,
        genes_removed_min_cells,
        size_factors,
        stored_per_gene,
        hvg,
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
        steps: steps.into_steps(),
        peak_rss_bytes: peak,
    })
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

/// The fixed bounds of the cell filter (`min_genes`, `max_genes`, `min_counts`, `max_counts`,
/// `max_pct_mito`), as in [`crate::qc::filter`].
fn passes_fixed(o: &crate::qc::FilterOptions, t: f64, g: u32, pct_mt: f64) -> bool {
    !(o.min_genes.is_some_and(|b| g < b)
        || o.max_genes.is_some_and(|b| g > b)
        || o.min_counts.is_some_and(|b| t < b)
        || o.max_counts.is_some_and(|b| t > b)
        || o.max_pct_mito.is_some_and(|b| pct_mt > b))
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

/// Bytes per stored value of a marker gene block: the columns read from the spill (cell and
/// value) and the per-block-of-cells parts they are assembled from.
const MARKER_BYTES_PER_VALUE: u64 = 16;

/// Blocks of consecutive kept genes whose columns ([`MARKER_BYTES_PER_VALUE`], plus
/// `per_gene` bytes of ranking state per gene and the row pointers) fit `block_bytes`; a gene
/// that alone exceeds it is a block of its own.
fn plan_gene_blocks(
    stored: &[u64],
    per_gene: u64,
    n_rows: usize,
    block_bytes: u64,
) -> Vec<(usize, usize)> {
    let fixed = 8 * (n_rows as u64 + 1);
    let mut out = Vec::new();
    let mut g0 = 0;
    while g0 < stored.len() {
        let mut size = fixed + stored[g0] * MARKER_BYTES_PER_VALUE + per_gene;
        let mut g1 = g0 + 1;
        while g1 < stored.len()
            && size + stored[g1] * MARKER_BYTES_PER_VALUE + per_gene <= block_bytes
        {
            size += stored[g1] * MARKER_BYTES_PER_VALUE + per_gene;
            g1 += 1;
        }
        out.push((g0, g1));
        g0 = g1;
    }
    out
}

/// Loads the log-normalized values `ln(1 + x / s)` of the kept cells in the columns
/// `col_of[input gene] != u32::MAX` (renumbered `col_of[g]`), one pass over the file; every
/// block read is also handed to `each_block` (first cell, counts).
#[allow(clippy::too_many_arguments)]
fn load_columns(
    reader: &CellChunks,
    blocks: &[(usize, usize)],
    kept_pos: &[u32],
    size_factors: &[f32],
    col_of: &[u32],
    n_cols: usize,
    nnz_hint: usize,
    rep: &mut dyn FnMut(f64),
    each_block: &mut dyn FnMut(usize, &CsrMatrix) -> Result<()>,
) -> Result<CsrMatrix> {
    let n_rows = size_factors.len();
    let mut indptr = Vec::with_capacity(n_rows + 1);
    indptr.push(0usize);
    let mut indices: Vec<u32> = Vec::with_capacity(nnz_hint);
    let mut data: Vec<f32> = Vec::with_capacity(nnz_hint);
    for_blocks(reader, blocks, rep, |a, x| {
        each_block(a, x)?;
        let rows: Vec<(usize, u32)> = (0..x.n_rows())
            .filter_map(|r| {
                let k = kept_pos[a + r];
                (k != u32::MAX).then_some((r, k))
            })
            .collect();
        // Two phases, no per-row buffers: count the picked values of every row, then fill
        // each row's slice of the output in parallel.
        let counts: Vec<usize> = rows
            .par_iter()
            .map(|&(r, _)| {
                x.row(r)
                    .0
                    .iter()
                    .filter(|&&c| col_of[c as usize] != u32::MAX)
                    .count()
            })
            .collect();
        let start = indices.len();
        let added: usize = counts.iter().sum();
        indices.resize(start + added, 0);
        data.resize(start + added, 0.0);
        let mut parts = Vec::with_capacity(rows.len());
        let (mut ri, mut rd) = (&mut indices[start..], &mut data[start..]);
        for (&(r, k), &n) in rows.iter().zip(&counts) {
            let (hi, ti) = ri.split_at_mut(n);
            let (hd, td) = rd.split_at_mut(n);
            parts.push((r, k, hi, hd));
            ri = ti;
            rd = td;
            indptr.push(indptr[indptr.len() - 1] + n);
        }
        parts.into_par_iter().for_each(|(r, k, oi, od)| {
            let s = size_factors[k as usize];
            let s = if s == 0.0 { 1.0 } else { s };
            let (idx, val) = x.row(r);
            let mut w = 0;
            for (&c, &v) in idx.iter().zip(val) {
                let j = col_of[c as usize];
                if j != u32::MAX {
                    oi[w] = j;
                    od[w] = (v / s).ln_1p();
                    w += 1;
                }
            }
        });
        Ok(())
    })?;
    CsrMatrix::try_new(n_rows, n_cols, indptr, indices, data)
}

/// Reads every block of cells in order and hands `(first cell, counts)` to `f`; reports the
/// fraction of stored values read after each block.
fn for_blocks(
    reader: &CellChunks,
    blocks: &[(usize, usize)],
    rep: &mut dyn FnMut(f64),
    mut f: impl FnMut(usize, &CsrMatrix) -> Result<()>,
) -> Result<()> {
    let total = reader.nnz().max(1) as f64;
    let mut done = 0usize;
    for &(a, b) in blocks {
        let x = reader.read(a, b)?;
        f(a, &x)?;
        done += reader.nnz_of(a, b);
        rep(done as f64 / total);
    }
    Ok(())
}

/// Concatenates per-gene-block marker results (same groups, in gene-block order) and
/// recomputes the adjusted p-values and the gene order over all genes, as `rank_genes` does.
fn merge_rank_genes(parts: Vec<RankGenes>, corr: Correction) -> Result<RankGenes> {
    let mut it = parts.into_iter();
    let Some(first) = it.next() else {
        return Err(Error::data("markers", "no gene block was ranked"));
    };
    let mut out = first;
    let ext = |a: &mut Option<Vec<f64>>, b: Option<Vec<f64>>| {
        if let (Some(a), Some(b)) = (a.as_mut(), b) {
            a.extend(b);
        }
    };
    for p in it {
        if p.groups.len() != out.groups.len() {
            return Err(Error::data(
                "markers",
                "gene blocks ranked different groups",
            ));
        }
        out.n_genes += p.n_genes;
        for (o, g) in out.groups.iter_mut().zip(p.groups) {
            o.scores.extend(g.scores);
            o.logfoldchanges.extend(g.logfoldchanges);
            o.pvals.extend(g.pvals);
            ext(&mut o.pct_in, g.pct_in);
            ext(&mut o.pct_out, g.pct_out);
            ext(&mut o.auc, g.auc);
        }
    }
    for g in out.groups.iter_mut() {
        finish_group(g, corr);
    }
    Ok(out)
}

fn finish_group(g: &mut GroupMarkers, corr: Correction) {
    g.pvals_adj = match corr {
        Correction::BenjaminiHochberg => crate::stats::benjamini_hochberg(&g.pvals),
        Correction::Bonferroni => crate::stats::bonferroni(&g.pvals),
    };
    let scores = &g.scores;
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(a.cmp(&b))
    });
    g.order = order;
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
