//! What every worker of a streamed analysis does before and around the passes: the options
//! checked before the file is opened, the input opened, the step runner (on the leader only)
//! and the values the leader shares with every worker.

use super::wire::Wire;
use super::workers::Workers;
use super::{CellChunks, StreamOptions};
use crate::error::{Error, Result};
use crate::hvg::Flavor;
use crate::pipeline::runner::StepRunner;
use crate::pipeline::Progress;
use std::path::Path;

/// The options the streamed analysis cannot run with, checked before the file is opened.
pub(super) fn check_options(opts: &StreamOptions) -> Result<()> {
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
pub(super) fn open(path: &Path, opts: &StreamOptions) -> Result<CellChunks> {
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
pub(super) struct Steps<'a> {
    pub(super) runner: Option<StepRunner<'a, ProgressFn<'a>>>,
}

impl Steps<'_> {
    pub(super) fn step<T>(
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
pub(super) fn share_from_leader<W: Workers, T, S: Wire + Clone + Send + 'static>(
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
pub(super) fn on_leader<T>(v: Option<T>, what: &str) -> Result<T> {
    v.ok_or_else(|| Error::data("streamed analysis", format!("the leader has no {what}")))
}
