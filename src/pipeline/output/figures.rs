//! The figures of the analysis (PNG and SVG), each timed.

use super::super::Analysis;
use super::WrittenFile;
use crate::dataset::Column;
use crate::error::Result;
use crate::plot::{self, PlotOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Writes the figures (PNG and SVG): `umap_clusters`, `umap_sample`, `umap_condition`,
/// `qc_violins`, `markers_dotplot` (top 3 markers per cluster), `pca_elbow`.
pub fn write_plots(a: &Analysis, dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(write_plots_timed(a, dir)?
        .into_iter()
        .map(|f| f.path)
        .collect())
}

/// Collects the files of figures, each timed from the end of the previous one.
struct Timed {
    files: Vec<WrittenFile>,
    since: Instant,
}

impl Timed {
    fn extend(&mut self, paths: Vec<PathBuf>) {
        let seconds = self.since.elapsed().as_secs_f64();
        for p in paths {
            let mut f = WrittenFile::timed(p, self.since);
            f.seconds = seconds;
            self.files.push(f);
        }
        self.since = Instant::now();
    }
}

/// [`write_plots`] with the time of every figure.
pub(super) fn write_plots_timed(a: &Analysis, dir: &Path) -> Result<Vec<WrittenFile>> {
    let d = a.dataset();
    let po = PlotOptions::default();
    let mut files = Timed {
        files: Vec::new(),
        since: Instant::now(),
    };
    let cluster_names: Vec<String> = (0..a.clustering.n_clusters)
        .map(|c| c.to_string())
        .collect();
    if a.umap.nrows() == d.n_cells() {
        files.extend(plot::umap_clusters(
            a.umap.view(),
            &a.clustering.labels,
            &cluster_names,
            &dir.join("umap_clusters"),
            &po,
        )?);
        for (title, values, stem) in [
            ("Sample", &d.cells.sample, "umap_sample"),
            ("Condition", &d.cells.condition, "umap_condition"),
        ] {
            if let Column::Categorical { codes, categories } = Column::categorical_from(values) {
                files.extend(plot::umap_categorical(
                    a.umap.view(),
                    &codes,
                    &categories,
                    title,
                    &dir.join(stem),
                    &po,
                )?);
            }
        }
    }
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let genes_f: Vec<f32> = a.qc.n_genes_by_counts.iter().map(|&x| x as f32).collect();
    let samples = Column::categorical_from(&a.input_cells.sample);
    let groups = match &samples {
        Column::Categorical { codes, categories } if categories.len() > 1 => {
            Some((codes.as_slice(), categories.as_slice()))
        }
        _ => None,
    };
    files.extend(plot::qc_violins(
        &f32s(&a.qc.total_counts),
        &genes_f,
        &f32s(&a.qc.pct_counts_mt),
        groups,
        &dir.join("qc_violins"),
        &po,
    )?);
    // Dot plot of the top 3 markers of each cluster.
    let (genes, dots) = a.marker_dots(3)?;
    if !genes.is_empty() {
        let frac = dots.fractions.mapv(|x| x as f32);
        let mean = dots.means.mapv(|x| x as f32);
        let names: Vec<String> = genes.iter().map(|&g| d.genes.symbols[g].clone()).collect();
        files.extend(plot::dot_plot(
            frac.view(),
            mean.view(),
            &names,
            &cluster_names,
            &dir.join("markers_dotplot"),
            &po,
        )?);
    }
    files.extend(plot::pca_elbow(
        &f32s(&a.pca.variance_ratio),
        &dir.join("pca_elbow"),
        &po,
    )?);
    Ok(files.files)
}
