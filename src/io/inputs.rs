//! A run's inputs, read and checked before any long step: every sample read with
//! [`read_counts`] (Cell Ranger folder resolved, integer counts checked, the matrix named),
//! identical samples found, the genes aligned ([`concat_report`]) and, with
//! [`check_samples_pass_qc`], samples none of whose cells would pass QC reported.

use super::samples::{check_names, concat_report, ConcatOptions, JoinReport, SampleSpec};
use super::{read_counts, ReadOptions, ReadResult};
use crate::dataset::{Column, Dataset};
use crate::error::{Error, Result};
use crate::qc::{filter_cells_by_metrics, metrics, FilterOptions, QcMetrics};
use std::collections::HashMap;

/// The cell-table column [`read_inputs`] adds: per cell, the file and matrix its counts came
/// from ([`ReadResult::describe`]).
pub const COUNTS_SOURCE: &str = "counts_source";

/// What to do with two samples that hold the same barcodes and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDuplicate {
    /// Stop with an error naming both samples. The default: the same matrix given twice is
    /// almost always a mistake in the sample sheet, and its cells pair up in the kNN graph
    /// (every cell's nearest neighbour is its copy), which splits the clusters.
    #[default]
    Error,
    /// Go on, with a warning in [`InputReport::warnings`].
    Warn,
}

/// Options of [`read_inputs`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InputOptions {
    /// How each sample is read (`layer`, `assume_counts`, feature types; the sample and
    /// condition come from each [`SampleSpec`]). Default: [`ReadOptions::default`].
    pub read: ReadOptions,
    /// How the genes of several samples are aligned. Default: [`ConcatOptions::default`]
    /// (strict).
    pub concat: ConcatOptions,
    /// Identical samples. Default: [`OnDuplicate::Error`].
    pub duplicates: OnDuplicate,
}

/// Where one sample's counts came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSource {
    /// The sample name.
    pub name: String,
    /// The file and matrix, as [`ReadResult::describe`].
    pub source: String,
    /// How a Cell Ranger folder was resolved, when it was.
    pub resolved: Option<String>,
    /// True when non-integer values were accepted (`assume_counts`).
    pub assumed_counts: bool,
    /// Cells and genes read.
    pub shape: (usize, usize),
}

/// What [`read_inputs`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct InputReport {
    /// One entry per sample, in order.
    pub samples: Vec<SampleSource>,
    /// The gene alignment (several samples only).
    pub join: Option<JoinReport>,
    /// Genes dropped or filled, identical samples let through, non-integer counts accepted:
    /// in plain words.
    pub warnings: Vec<String>,
}

impl InputReport {
    /// The lines to show: one per sample (`sample "a": path: matrix`, how a folder was
    /// resolved), then the warnings.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.samples {
            out.push(format!(
                "sample {:?}: {} ({} cells x {} genes)",
                s.name, s.source, s.shape.0, s.shape.1
            ));
            if let Some(r) = &s.resolved {
                out.push(format!("sample {:?}: {r}", s.name));
            }
        }
        out.extend(self.warnings.iter().cloned());
        out
    }
}

/// The dataset of a run and what was read.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// All samples' cells; the cell table has the column [`COUNTS_SOURCE`].
    pub dataset: Dataset,
    /// Per sample, the file and matrix read; the gene alignment; warnings.
    pub report: InputReport,
}

/// Reads the samples of a run: each with [`read_counts`] (its name and condition from the
/// spec, the rest of `opts.read`), then checks that no two samples are identical (same
/// barcodes and counts; [`OnDuplicate`]), then, for several samples, concatenates them with
/// [`concat_report`] (barcodes suffixed with `-<sample>`; one sample keeps its barcodes).
/// Adds the cell column [`COUNTS_SOURCE`].
pub fn read_inputs(specs: &[SampleSpec], opts: &InputOptions) -> Result<Inputs> {
    check_names(specs.iter().map(|s| s.name.as_str()))?;
    let mut parts: Vec<ReadResult> = Vec::with_capacity(specs.len());
    for s in specs {
        let o = ReadOptions {
            sample: s.name.clone(),
            condition: s.condition.clone(),
            ..opts.read.clone()
        };
        parts.push(read_counts(&s.path, &o)?);
    }
    let mut warnings = Vec::new();
    for (s, r) in specs.iter().zip(&parts) {
        if r.assumed_counts() {
            warnings.push(format!(
                "sample {:?}: non-integer values taken as counts (--assume-counts): {}",
                s.name,
                r.values.describe()
            ));
        }
    }
    for (a, b) in identical_samples(&parts) {
        let msg = format!(
            "samples {:?} and {:?} are identical (the same {} barcodes and counts): the same \
             matrix given twice? Its cells would pair up in the neighbour graph and split the \
             clusters",
            specs[a].name,
            specs[b].name,
            parts[a].dataset.n_cells()
        );
        match opts.duplicates {
            OnDuplicate::Error => {
                return Err(Error::data(
                    "samples",
                    format!("{msg} (InputOptions::duplicates = Warn reads them anyway)"),
                ))
            }
            OnDuplicate::Warn => warnings.push(msg),
        }
    }
    let samples: Vec<SampleSource> = specs
        .iter()
        .zip(&parts)
        .map(|(s, r)| SampleSource {
            name: s.name.clone(),
            source: r.describe(),
            resolved: r.resolved.clone(),
            assumed_counts: r.assumed_counts(),
            shape: (r.dataset.n_cells(), r.dataset.n_genes()),
        })
        .collect();
    let sizes: Vec<usize> = parts.iter().map(|r| r.dataset.n_cells()).collect();
    let (mut dataset, join) = if parts.len() == 1 {
        (parts.remove(0).dataset, None)
    } else {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let datasets: Vec<Dataset> = parts.into_iter().map(|r| r.dataset).collect();
        let (d, j) = concat_report(&datasets, &names, &opts.concat)?;
        warnings.extend(j.lines(&names));
        (d, Some(j))
    };
    let codes: Vec<u32> = sizes
        .iter()
        .enumerate()
        .flat_map(|(k, &n)| std::iter::repeat_n(k as u32, n))
        .collect();
    dataset.cells.set(
        COUNTS_SOURCE,
        Column::Categorical {
            codes,
            categories: samples.iter().map(|s| s.source.clone()).collect(),
        },
    )?;
    Ok(Inputs {
        dataset,
        report: InputReport {
            samples,
            join,
            warnings,
        },
    })
}

/// The source of each sample's counts from the column [`COUNTS_SOURCE`] of `cells` (sample
/// -> file and matrix, in order of first appearance); empty without the column.
pub fn counts_source_by_sample(cells: &crate::dataset::CellTable) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(col) = cells.columns.get(COUNTS_SOURCE) {
        for i in 0..cells.len() {
            if !out.iter().any(|(s, _)| *s == cells.sample[i]) {
                out.push((cells.sample[i].clone(), col.format(i)));
            }
        }
    }
    out
}

/// Pairs `(a, b)`, `a < b`, of samples with the same barcodes and counts: the shapes and the
/// numbers of stored values first, then the barcodes, and only then the counts are compared,
/// so that distinct samples (and a single one) cost no pass over the counts.
fn identical_samples(parts: &[ReadResult]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut firsts: Vec<usize> = Vec::new();
    for (k, r) in parts.iter().enumerate() {
        let y = &r.dataset;
        let same = firsts.iter().copied().find(|&a| {
            let x = &parts[a].dataset;
            x.counts.shape() == y.counts.shape()
                && x.counts.nnz() == y.counts.nnz()
                && x.cells.barcodes == y.cells.barcodes
                && x.counts == y.counts
        });
        match same {
            Some(a) => out.push((a, k)),
            None => firsts.push(k),
        }
    }
    out
}

/// Cells of one sample that pass the cell filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleQc {
    /// The sample.
    pub sample: String,
    /// Its cells.
    pub n_cells: usize,
    /// Its cells that pass.
    pub n_passing: usize,
}

/// Applies the cell filters of `opts` (QC metrics and [`filter_cells_by_metrics`], as the
/// pipeline's first step does) to count, per sample, the cells that pass; a sample none of
/// whose cells passes is an error naming it, its cells and why they fail (the first failing
/// criterion of each cell), so that a wrong file (a raw matrix of empty droplets, another
/// assay) stops the run before any long step. One pass over the counts; the pipeline's QC
/// step makes the same check on the metrics it computes ([`samples_passing_qc`]).
pub fn check_samples_pass_qc(ds: &Dataset, opts: &FilterOptions) -> Result<Vec<SampleQc>> {
    let m = metrics(ds, &opts.qc)?;
    samples_passing_qc(ds, &m, opts)
}

/// [`check_samples_pass_qc`] on the QC metrics `m` of `ds` already computed (no pass over
/// the counts).
pub fn samples_passing_qc(
    ds: &Dataset,
    m: &QcMetrics,
    opts: &FilterOptions,
) -> Result<Vec<SampleQc>> {
    let f = filter_cells_by_metrics(m, &ds.cells.sample, opts)?;
    let mut order: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for s in &ds.cells.sample {
        index.entry(s.as_str()).or_insert_with(|| {
            order.push(s.as_str());
            order.len() - 1
        });
    }
    let code = |i: usize| index.get(ds.cells.sample[i].as_str()).copied().unwrap_or(0);
    let mut out: Vec<SampleQc> = order
        .iter()
        .map(|s| SampleQc {
            sample: s.to_string(),
            n_cells: 0,
            n_passing: 0,
        })
        .collect();
    for i in 0..ds.n_cells() {
        out[code(i)].n_cells += 1;
    }
    for &i in &f.keep_cells {
        out[code(i)].n_passing += 1;
    }
    if let Some((k, s)) = out.iter().enumerate().find(|(_, s)| s.n_passing == 0) {
        let mut why: Vec<(String, usize)> = Vec::new();
        for (i, r) in &f.removed_cells {
            if code(*i) == k {
                let r = format!("{r:?}");
                match why.iter_mut().find(|(n, _)| *n == r) {
                    Some(e) => e.1 += 1,
                    None => why.push((r, 1)),
                }
            }
        }
        let mut genes: Vec<f64> = (0..ds.n_cells())
            .filter(|&i| code(i) == k)
            .map(|i| m.n_genes_by_counts[i] as f64)
            .collect();
        genes.sort_by(f64::total_cmp);
        let median = genes.get(genes.len() / 2).copied().unwrap_or(0.0);
        return Err(Error::data(
            format!("sample {:?}", s.sample),
            format!(
                "none of its {} cells passes QC ({}; median genes per cell {median}): a raw \
                 matrix of empty droplets, or another assay? Check the file, drop the sample \
                 or lower the QC bounds (--min-genes)",
                s.n_cells,
                why.iter()
                    .map(|(r, n)| format!("{n} fail {r}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{CellTable, GeneTable};
    use crate::sparse::CsrMatrix;

    fn ds(sample: &str, rows: &[(u32, u32, f32)]) -> Dataset {
        let (r, c, v): (Vec<u32>, Vec<u32>, Vec<f32>) = (
            rows.iter().map(|x| x.0).collect(),
            rows.iter().map(|x| x.1).collect(),
            rows.iter().map(|x| x.2).collect(),
        );
        let m = CsrMatrix::from_triplets(3, 3, &r, &c, &v).unwrap();
        let b = (0..3).map(|i| format!("c{i}")).collect();
        let g: Vec<String> = (0..3).map(|i| format!("g{i}")).collect();
        Dataset::new(
            m,
            CellTable::new(b, sample, "x"),
            GeneTable::new(g.clone(), g),
        )
        .unwrap()
    }

    #[test]
    fn qc_failure_names_the_sample() {
        let a = ds("a", &[(0, 0, 1.0), (0, 1, 1.0), (1, 1, 2.0), (2, 2, 1.0)]);
        let opts = FilterOptions {
            min_genes: Some(2),
            ..Default::default()
        };
        let e = check_samples_pass_qc(&a, &FilterOptions::default()).unwrap();
        assert_eq!(e[0].n_passing, 3);
        let one = check_samples_pass_qc(&a, &opts).unwrap();
        assert_eq!((one[0].n_cells, one[0].n_passing), (3, 1));
        let b = ds("b", &[(0, 0, 1.0), (1, 1, 2.0), (2, 2, 1.0)]);
        let both = super::super::concat(&[a, b], &["a", "b"], &Default::default()).unwrap();
        let e = check_samples_pass_qc(&both, &opts).unwrap_err().to_string();
        assert!(
            e.contains("sample \"b\"") && e.contains("none of its 3 cells"),
            "{e}"
        );
        assert!(e.contains("3 fail MinGenes"), "{e}");
    }
}
