//! One self-contained, interactive HTML page of an analysis (`report.html`): the run
//! summary, QC per sample, an interactive UMAP (pan, zoom, hover, colour by cluster, sample,
//! condition, doublet score or a searched gene), cluster sizes and composition with the
//! abundance tests, marker tables and the dot plot, and, for a condition comparison, the
//! condition-specific clusters, the within-cluster differential expression (volcano per
//! cluster), programs, Milo and the interaction tables. A section appears only when its
//! results exist.
//!
//! The page makes no network request: styles, scripts and data are inline
//! (`assets/report/`). The scatter is a small canvas renderer of our own rather than a
//! charting library: the smallest well-kept libraries that draw 50,000 points smoothly
//! (WebGL ones) weigh several hundred kB minified and would still need our own pan, zoom,
//! hover and gene colouring code; ours is a few kB and writes pixels straight into an
//! `ImageData`. Static figures (box plots, bars, the dot plot) are SVG written here.
//!
//! Data go in one `<script type="application/json">` element (`escape::json_for_script`),
//! per-cell arrays as base64 typed arrays and the expression as a gzip stream
//! (`pack`); every name shown is set as text by the script or escaped here, so names with
//! quotes, `<`, `&` or `</script>` show as written and cannot add markup.

mod escape;
mod pack;
mod page;
mod sections;
mod svg;

pub use pack::{base64, shown_cells};

use crate::comparison::ConditionResult;
use crate::error::{Error, Result};
use crate::pipeline::{Analysis, PipelineOptions};
use std::path::Path;

/// Options of [`write_report`].
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Cells drawn in the UMAP. Above it the scatter draws a uniform sample of this many cells
    /// (seeded by `seed`), and the page says so. Default 200,000.
    pub max_points: usize,
    /// Pack the expression of every kept gene for the gene search, not only the markers and
    /// the highly variable genes. Default `false`.
    pub all_genes: bool,
    /// Bound on the compressed expression data, in bytes: genes past it (in the order
    /// markers, highly variable genes, then the rest with `all_genes`) are left out of the
    /// search and the page says how many. `None`: no bound. Default 8 MiB (base64 makes it
    /// about 11 MB in the file): at 50,000 cells a 10 MiB bound gave a 14.96 MB page, too
    /// close to the 15 MB goal.
    pub max_expression_bytes: Option<usize>,
    /// Marker rows per cluster in the marker table. Default 25.
    pub markers_per_cluster: usize,
    /// Genes per cluster in the dot plot (its best markers). Default 3.
    pub dot_plot_genes: usize,
    /// Rows per cluster of the within-cluster differential expression table (smallest
    /// p-values); the volcano shows every tested gene. Default 200.
    pub de_rows_per_cluster: usize,
    /// Page title. Default `scrna report`.
    pub title: String,
    /// The options the analysis ran with, shown in the run summary when given. Default `None`.
    pub pipeline: Option<PipelineOptions>,
    /// Seed of the subsample above `max_points`. Default 0.
    pub seed: u64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            max_points: 200_000,
            all_genes: false,
            max_expression_bytes: Some(8 << 20),
            markers_per_cluster: 25,
            dot_plot_genes: 3,
            de_rows_per_cluster: 200,
            title: "scrna report".to_string(),
            pipeline: None,
            seed: 0,
        }
    }
}

impl ReportOptions {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if self.max_points == 0 {
            return Err(Error::option("max_points", "must be at least 1"));
        }
        if self.max_expression_bytes == Some(0) {
            return Err(Error::option(
                "max_expression_bytes",
                "must be at least 1 (or None for no bound)",
            ));
        }
        if self.markers_per_cluster == 0 {
            return Err(Error::option("markers_per_cluster", "must be at least 1"));
        }
        if self.dot_plot_genes == 0 {
            return Err(Error::option("dot_plot_genes", "must be at least 1"));
        }
        if self.de_rows_per_cluster == 0 {
            return Err(Error::option("de_rows_per_cluster", "must be at least 1"));
        }
        if self.title.trim().is_empty() {
            return Err(Error::option("title", "must not be empty"));
        }
        if let Some(p) = &self.pipeline {
            p.validate().map_err(|e| e.within("pipeline"))?;
        }
        Ok(())
    }
}

/// The page as text (what [`write_report`] writes).
pub fn render_report(
    analysis: &Analysis,
    comparison: Option<&ConditionResult>,
    opts: &ReportOptions,
) -> Result<String> {
    opts.validate()?;
    let mut p = page::Page::default();
    sections::summary::add(&mut p, analysis, comparison, opts);
    sections::summary::add_qc(&mut p, analysis);
    sections::cells::add_umap(&mut p, analysis, opts)?;
    sections::cells::add_clusters(&mut p, analysis, comparison);
    sections::cells::add_markers(&mut p, analysis, opts)?;
    if let Some(c) = comparison {
        sections::comparison::add(&mut p, analysis, c, opts);
        sections::interactions::add(&mut p, c);
    }
    Ok(p.render(&opts.title))
}

/// Writes the report of `analysis` (and of its condition comparison when given) to `path`
/// as one self-contained HTML file (see the module docs), atomically.
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
/// let page = std::env::temp_dir().join(format!("scrna-doc-report-{}.html", std::process::id()));
/// scrna::html_report::write_report(&analysis, None, &page, &Default::default())?;
/// assert!(std::fs::read_to_string(&page).is_ok_and(|html| html.contains("<html")));
/// # std::fs::remove_file(&page).ok();
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn write_report(
    analysis: &Analysis,
    comparison: Option<&ConditionResult>,
    path: &Path,
    opts: &ReportOptions,
) -> Result<()> {
    let html = render_report(analysis, comparison, opts)?;
    crate::report::write_atomic(path, |w| std::io::Write::write_all(w, html.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        assert!(ReportOptions::default().validate().is_ok());
        for (o, field) in [
            (
                ReportOptions {
                    max_points: 0,
                    ..Default::default()
                },
                "max_points",
            ),
            (
                ReportOptions {
                    max_expression_bytes: Some(0),
                    ..Default::default()
                },
                "max_expression_bytes",
            ),
            (
                ReportOptions {
                    title: " ".into(),
                    ..Default::default()
                },
                "title",
            ),
        ] {
            let e = o.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}
