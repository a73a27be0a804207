//! Result files of the standard analysis.
//!
//! | file | content |
//! |---|---|
//! | `clusters.csv` | barcode, sample, condition, cluster, umap1, umap2 (kept cells) |
//! | `markers.csv` | the tidy marker table (group, rank, gene, score, log2 fold change, p, adjusted p, fractions, AUC) |
//! | `qc.csv` | QC metrics of every input cell, whether it passed, and why not |
//! | `hvg.csv` | per kept gene: mean, dispersion, normalized dispersion, highly variable flag |
//! | `pca_variance.csv` | variance and variance ratio per principal component |
//! | `summary.json` | cells and genes before and after QC, cluster sizes, clusters skipped by the marker test and why, options, step times and memory, and (from [`write_all`]) the seconds and bytes of every other output file |
//!
//! Every file is written atomically (temporary name, then rename).
//!
//! [`write_all`] writes `analysis.h5ad` on one thread while the tables and figures are
//! written on another (the `.h5ad` writer is one sequential stream), then `summary.json`
//! last, with the time each file took. [`write_rest_with_report`] writes the other files
//! after [`super::run_owned_with_h5ad`] has written `analysis.h5ad` during the `umap` step.

mod figures;
mod h5ad;
mod summary;
pub(crate) use summary::steps_json;
mod tables;

pub use figures::write_plots;
pub(crate) use h5ad::write_h5ad_file_pending;
pub use h5ad::{rank_genes_groups_uns, write_h5ad_file};
pub use summary::summary_json;
pub(crate) use tables::{write_clusters, write_clusters_csv};

use super::{Analysis, PipelineOptions};
use crate::error::{Error, Result};
use figures::write_plots_timed;
use std::path::{Path, PathBuf};
use std::time::Instant;
use summary::write_summary;
use tables::write_csv_tables;

/// One file written by [`write_all_timed`]: where, how long it took, how large it is.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenFile {
    /// The file's path.
    pub path: PathBuf,
    /// Wall seconds spent writing it. A figure's PNG and SVG are drawn by one call: both
    /// carry the time of that call.
    pub seconds: f64,
    /// Its size in bytes (0 when it cannot be read back).
    pub bytes: u64,
}

impl WrittenFile {
    /// The file at `path`, written since `started`.
    pub(crate) fn timed(path: PathBuf, started: Instant) -> WrittenFile {
        Self::measured(path, started.elapsed().as_secs_f64())
    }

    /// The file at `path`, written in `seconds` (its size read from the file system).
    pub(crate) fn measured(path: PathBuf, seconds: f64) -> WrittenFile {
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        WrittenFile {
            path,
            seconds,
            bytes,
        }
    }
}

/// Writes the CSV files and `summary.json` into `dir` (created if missing); returns their paths.
pub fn write_tables(a: &Analysis, opts: &PipelineOptions, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written: Vec<PathBuf> = write_csv_tables(a, opts, dir)?
        .into_iter()
        .map(|f| f.path)
        .collect();
    written.push(write_summary(a, opts, dir, &[], None)?);
    Ok(written)
}

/// Writes every result file into `dir`: the tables of [`write_tables`], `analysis.h5ad` and
/// the plots. Returns the paths written.
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// # let mut o = scrna::pipeline::PipelineOptions::default();
/// # o.skip_umap = true;
/// # let analysis = scrna::pipeline::run(&data, &o, &mut |_| {})?;
/// let dir = std::env::temp_dir().join(format!("scrna-doc-tables-{}", std::process::id()));
/// let files = scrna::pipeline::output::write_all(&analysis, &o, &dir)?;
/// assert!(files.iter().all(|f| f.exists()));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn write_all(a: &Analysis, opts: &PipelineOptions, dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(write_all_timed(a, opts, dir)?
        .into_iter()
        .map(|f| f.path)
        .collect())
}

/// [`write_all`], returning the time and size of every file (`summary.json` last, whose
/// `outputs` list holds the others' and `write_seconds` their wall time together).
///
/// `analysis.h5ad` is written on one thread (mostly waiting for the disk) while the CSV
/// tables and then the figures are written on another; the files and their bytes are the
/// same as written one after the other.
pub fn write_all_timed(
    a: &Analysis,
    opts: &PipelineOptions,
    dir: &Path,
) -> Result<Vec<WrittenFile>> {
    write_all_with_report(a, opts, dir, None)
}

/// [`write_all_timed`], and with `report` also `report.html`
/// ([`crate::html_report::write_report`], no condition comparison), written on a third
/// thread; `summary.json` lists it after the figures and counts it in `write_seconds`.
pub fn write_all_with_report(
    a: &Analysis,
    opts: &PipelineOptions,
    dir: &Path,
    report: Option<&crate::html_report::ReportOptions>,
) -> Result<Vec<WrittenFile>> {
    write_outputs(a, opts, dir, report, None)
}

/// [`write_all_with_report`] after `analysis.h5ad` was written during the run
/// ([`super::run_owned_with_h5ad`], which returns `h5ad`): the other files, and `summary.json`
/// listing `h5ad` among them.
pub fn write_rest_with_report(
    a: &Analysis,
    opts: &PipelineOptions,
    dir: &Path,
    report: Option<&crate::html_report::ReportOptions>,
    h5ad: WrittenFile,
) -> Result<Vec<WrittenFile>> {
    write_outputs(a, opts, dir, report, Some(h5ad))
}

fn write_outputs(
    a: &Analysis,
    opts: &PipelineOptions,
    dir: &Path,
    report: Option<&crate::html_report::ReportOptions>,
    h5ad_written: Option<WrittenFile>,
) -> Result<Vec<WrittenFile>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let started = Instant::now();
    let h5 = dir.join("analysis.h5ad");
    let failed = |what: &str| {
        Error::data(
            "writing outputs",
            format!("the thread writing {what} failed"),
        )
    };
    let (h5ad, rest, html) = std::thread::scope(|s| {
        let other = s.spawn(|| -> Result<Vec<WrittenFile>> {
            let mut files = write_csv_tables(a, opts, dir)?;
            files.extend(write_plots_timed(a, dir)?);
            Ok(files)
        });
        let html = report.map(|ro| {
            s.spawn(move || -> Result<WrittenFile> {
                let path = dir.join("report.html");
                let t = Instant::now();
                crate::html_report::write_report(a, None, &path, ro)?;
                Ok(WrittenFile::timed(path, t))
            })
        });
        let h5ad = match h5ad_written {
            Some(f) => Ok(f),
            None => {
                let t = Instant::now();
                write_h5ad_file(a, opts, &h5).map(|()| WrittenFile::timed(h5.clone(), t))
            }
        };
        let rest = other
            .join()
            .unwrap_or_else(|_| Err(failed("the tables and figures")));
        let html = html.map(|h| h.join().unwrap_or_else(|_| Err(failed("report.html"))));
        (h5ad, rest, html)
    });
    let mut files = rest?;
    files.insert(files.len().min(5), h5ad?);
    if let Some(html) = html {
        files.push(html?);
    }
    let wall = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let summary = write_summary(a, opts, dir, &files, Some(wall))?;
    files.push(WrittenFile::timed(summary, t));
    Ok(files)
}
