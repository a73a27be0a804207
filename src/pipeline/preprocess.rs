//! The first steps of a run: QC metrics and filters, doublets (with several samples),
//! normalization and highly variable genes.

use super::multi_sample::find_and_remove_doublets;
use super::runner::StepRunner;
use super::{
    doublets_wanted, in_pool, integration_wanted, plan, DoubletReport, PipelineOptions, Progress,
    StepReport,
};
use crate::dataset::Dataset;
use crate::design::Codes;
use crate::error::{Error, Result};
use crate::hvg::{
    highly_variable_from_moments, highly_variable_genes, log1p_moments, moments_from_col_sums,
    Flavor, Hvg,
};
use crate::io::inputs::samples_passing_qc;
use crate::lognorm::LogCounts;
use crate::normalize::{cell_total, normalize_total_log1p, LogMoments};
use crate::qc::{
    filter_owned_fold, filter_owned_with_kept_metrics, filter_with_kept_metrics, metrics, CellSums,
    Filtered, Fold, QcMetrics, Visit,
};
use crate::sparse::{ColIndex, StoredValue};
use std::borrow::Cow;

/// The QC, normalization and HVG steps of [`run`](super::run): what [`preprocess`] returns.
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

/// The first three steps of [`run`](super::run) alone (QC metrics and filters, normalization with
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

/// [`preprocess`] on a dataset given up by the caller, filtered in place (see [`run_owned`](super::run_owned)).
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
        let mut timer = StepRunner::new(&mut quiet, plan(&data, opts));
        let out = preprocess_timed(data, opts, &mut timer);
        Ok((out, timer.into_steps()))
    })?;
    steps.append(&mut done);
    out
}

/// The normalization's pass riding on the filter's compaction of the kept cells: each kept
/// cell's size factor (its QC total over the kept genes / `target`, in `f32`, as `normalize`)
/// and its terms of the per-gene HVG moments.
struct NormalizeVisit {
    target: f32,
    expm1: bool,
}

impl Visit<(LogMoments, Vec<f32>)> for NormalizeVisit {
    fn visit<V: StoredValue, I: ColIndex>(
        &self,
        st: &mut (LogMoments, Vec<f32>),
        idx: &[I],
        vals: &[V],
        sums: &CellSums,
    ) {
        let s = cell_total(sums.0, vals) / self.target;
        st.0.add_row(idx, vals, s, self.expm1, None);
        st.1.push(s);
    }
}

pub(super) fn preprocess_timed<P: FnMut(&Progress) + ?Sized>(
    data: Cow<'_, Dataset>,
    opts: &PipelineOptions,
    timer: &mut StepRunner<'_, P>,
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
        // A sample none of whose cells passes stops the run here, named, with the reasons.
        samples_passing_qc(&data, &qc, &opts.filter)?;
        progress(0.4);
        // The metrics of the kept cells and genes come with the filter (the same values as
        // `metrics` on the filtered dataset).
        let (mut filtered, kept_qc, rode) = match data {
            Cow::Borrowed(d) => {
                let (f, k) = filter_with_kept_metrics(d, &opts.filter, &qc)?;
                (f, k, None)
            }
            Cow::Owned(d) if ride => {
                let visit = NormalizeVisit {
                    target: opts.normalize.target_sum.unwrap_or(1e4) as f32,
                    expm1,
                };
                let init = || (LogMoments::new(n_input_genes), Vec::new());
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
            let mut sums = LogMoments::sum(sums_parts, n_input_genes)?;
            sums.truncate(counts.n_cols());
            let m = moments_from_col_sums(&sums, &LogCounts::new(counts, &sf)?);
            Ok((sf, Some(m), None))
        } else if fused {
            let (norm, m) = log1p_moments(
                &counts.to_csr(),
                &opts.normalize,
                opts.hvg.flavor,
                Some(&kept_totals),
            )?;
            Ok((norm.size_factors, Some(m), None))
        } else {
            let norm = normalize_total_log1p(&counts.to_csr(), &opts.normalize)?;
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
                    Some(&*filtered.dataset.counts.to_csr()),
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
