//! What changes inside each cluster between two conditions: pseudobulk differential
//! expression per cluster, over-represented gene sets among its up and down genes, and the
//! shift of the condition-comparison gene programs ([`crate::comparison::PROGRAMS`]) tested
//! across samples.
//!
//! Cells of one sample are not independent replicates, so a comparison of conditions inside a
//! cluster is made over samples wherever the design allows it (Squair et al. 2021,
//! "Confronting false discoveries in single-cell differential expression", Nat. Commun.
//! 12:5692; muscat's `pbDS`, Crowell et al. 2020):
//!
//! 1. **Differential expression** (`de`): the raw counts of each (sample, cluster) are summed
//!    ([`crate::pseudobulk::pseudobulk_sums`]); pseudobulk samples with fewer than
//!    `min_cells` cells are dropped, and only the samples of the two contrast conditions are
//!    kept. Genes with a zero total over the kept pseudobulk samples of the cluster are not
//!    tested (DESeq2 reports them with `NaN` statistics; here they get no row). When both
//!    conditions keep at least two pseudobulk samples, DESeq2's method
//!    ([`crate::deseq::deseq`], design `~ condition`, the numerator coded 1) gives the log2
//!    fold changes and Wald p-values, adjusted by Benjamini-Hochberg within the cluster after
//!    DESeq2's independent filtering. Otherwise the cluster falls back to the cell-level
//!    Wilcoxon rank-sum test ([`crate::markers::rank_genes`] on the log-normalized values of
//!    the cluster's cells, numerator cells against denominator cells), with a note saying
//!    that its p-values treat cells as replicates. A cluster without cells in one of the two
//!    conditions is skipped with a note: it is condition-specific and the composition tests
//!    ([`crate::conditions`]) report it.
//! 2. **Enrichment**: over-representation ([`crate::genesets::enrich`]) of each cluster's up
//!    genes (`p_adjusted < max_p_adj`, `log2FC >= min_log2_fold_change`) and down genes
//!    (`log2FC <= -min_log2_fold_change`), universe = the genes detected in the kept cells.
//! 3. **Programs** (`programs`): for each set of [`crate::comparison::PROGRAMS`] present in
//!    the gene sets, Scanpy's per-cell `score_genes`; the mean score of each (sample,
//!    cluster) with at least `min_cells` cells; per cluster, numerator samples against
//!    denominator samples by the ordinary t of limma's `lmFit` (rows = the cluster's
//!    programs, columns = its samples, design `[1, numerator]`; not the moderated t, whose
//!    prior a handful of programs cannot estimate: see `programs.rs`) when each side has at
//!    least two samples, Benjamini-Hochberg over all (cluster, program) rows tested; without
//!    replicates the means are reported with `NaN` t and p and `replicates = false`.
//!
//! Every step is deterministic and does not depend on the thread count.

mod de;
mod output;
mod programs;

pub use output::write_within_cluster;

use crate::deseq::DeseqOptions;
use crate::design::{Codes, Design};
use crate::error::{Error, Result};
use crate::genesets::{enrich, EnrichOptions, EnrichmentRow, GeneSet};
use crate::pipeline::Analysis;

/// Options of [`within_cluster`].
#[derive(Debug, Clone, PartialEq)]
pub struct WithinClusterOptions {
    /// `(numerator, denominator)` condition names. Default `None`: the last condition (in
    /// order of first appearance among the kept cells) against the first.
    pub contrast: Option<(String, String)>,
    /// Pseudobulk samples (sample x cluster) with fewer cells are dropped, for the DE test and
    /// the program means. Default 10; at least 1.
    pub min_cells: usize,
    /// Options of the DESeq2 test. Default: [`DeseqOptions::default`] (pydeseq2's).
    pub deseq: DeseqOptions,
    /// Genes with an adjusted p-value below this (and `|log2FC| >= min_log2_fold_change`) go
    /// to the enrichment. Default 0.05; in (0, 1].
    pub max_p_adj: f64,
    /// Smallest absolute log2 fold change of the genes that go to the enrichment. Default 0.5;
    /// finite and >= 0.
    pub min_log2_fold_change: f64,
    /// Over-representation test options. Default: [`EnrichOptions::default`].
    pub enrich: EnrichOptions,
    /// Seed of the control-gene draw of the program scores. Default 0.
    pub seed: u64,
}

impl Default for WithinClusterOptions {
    fn default() -> Self {
        WithinClusterOptions {
            contrast: None,
            min_cells: 10,
            deseq: DeseqOptions::default(),
            max_p_adj: 0.05,
            min_log2_fold_change: 0.5,
            enrich: EnrichOptions::default(),
            seed: 0,
        }
    }
}

impl WithinClusterOptions {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if let Some((num, den)) = &self.contrast {
            if num == den {
                return Err(Error::option(
                    "contrast",
                    format!("numerator and denominator are the same condition ({num:?})"),
                ));
            }
        }
        if self.min_cells == 0 {
            return Err(Error::option("min_cells", "must be at least 1"));
        }
        self.deseq.validate().map_err(|e| e.within("deseq"))?;
        if !(self.max_p_adj > 0.0 && self.max_p_adj <= 1.0) {
            return Err(Error::option(
                "max_p_adj",
                format!("must be in (0, 1], got {}", self.max_p_adj),
            ));
        }
        if !(self.min_log2_fold_change.is_finite() && self.min_log2_fold_change >= 0.0) {
            return Err(Error::option(
                "min_log2_fold_change",
                format!("must be finite and >= 0, got {}", self.min_log2_fold_change),
            ));
        }
        if self.enrich.min_set_size > self.enrich.max_set_size {
            return Err(Error::option(
                "enrich.min_set_size",
                "must not exceed enrich.max_set_size",
            ));
        }
        Ok(())
    }
}

/// The test that produced a [`DeRow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeMethod {
    /// DESeq2's Wald test over pseudobulk samples.
    Deseq2,
    /// The Wilcoxon rank-sum test over cells (p-values treat cells as replicates).
    WilcoxonCells,
}

impl DeMethod {
    /// `"deseq2"` or `"wilcoxon_cells"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeMethod::Deseq2 => "deseq2",
            DeMethod::WilcoxonCells => "wilcoxon_cells",
        }
    }
}

/// One gene of one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct DeRow {
    /// Cluster label.
    pub cluster: u32,
    /// Gene symbol.
    pub gene: String,
    /// DESeq2: mean of the size-factor-normalized pseudobulk counts over the kept samples.
    /// Wilcoxon: mean normalized count per cell (`count / size_factor`, the scale of the
    /// log-normalized values before `log1p`) over the cluster's cells of both conditions.
    pub base_mean: f64,
    /// log2 fold change, numerator over denominator. DESeq2: the Wald coefficient. Wilcoxon:
    /// Scanpy's `log2((expm1 mean_num + 1e-9) / (expm1 mean_den + 1e-9))`.
    pub log2_fold_change: f64,
    /// Standard error of the log2 fold change (DESeq2); `NaN` for the Wilcoxon test.
    pub lfc_se: f64,
    /// Two-sided p-value (`NaN` when DESeq2 leaves the gene untested, e.g. a Cook's outlier).
    pub p_value: f64,
    /// Benjamini-Hochberg adjusted p-value within the cluster (`NaN` when untested or removed
    /// by independent filtering).
    pub p_adjusted: f64,
    /// The test.
    pub method: DeMethod,
    /// Numerator samples: pseudobulk samples kept (DESeq2) or samples with cells in the
    /// cluster (Wilcoxon).
    pub samples_numerator: usize,
    /// Denominator samples, counted as `samples_numerator`.
    pub samples_denominator: usize,
}

/// Why a cluster was skipped, or a warning about the test used for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterNote {
    /// Cluster label.
    pub cluster: u32,
    /// The test used (`None` when the cluster was skipped).
    pub method: Option<DeMethod>,
    /// The note, in plain words.
    pub note: String,
}

/// One program in one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramRow {
    /// Cluster label.
    pub cluster: u32,
    /// Gene-set id (a GO id of [`crate::comparison::PROGRAMS`]).
    pub set: String,
    /// Gene-set name.
    pub name: String,
    /// Mean over the numerator samples of the per-sample mean score.
    pub mean_numerator: f64,
    /// Mean over the denominator samples of the per-sample mean score.
    pub mean_denominator: f64,
    /// `mean_numerator - mean_denominator`.
    pub difference: f64,
    /// The ordinary t of the linear model over the cluster's samples (`NaN` without
    /// replicates).
    pub t: f64,
    /// Its two-sided p-value (`NaN` without replicates).
    pub p_value: f64,
    /// Benjamini-Hochberg over all (cluster, program) rows tested (`NaN` without replicates).
    pub p_adjusted: f64,
    /// Numerator samples with at least `min_cells` cells in the cluster.
    pub samples_numerator: usize,
    /// Denominator samples with at least `min_cells` cells in the cluster.
    pub samples_denominator: usize,
    /// True when both sides have at least two samples (the test was run).
    pub replicates: bool,
}

/// Result of [`within_cluster`].
#[derive(Debug, Clone, PartialEq)]
pub struct WithinCluster {
    /// Numerator condition.
    pub numerator: String,
    /// Denominator condition.
    pub denominator: String,
    /// Tested genes, by cluster then gene index.
    pub de: Vec<DeRow>,
    /// Skipped clusters and fallback warnings, by cluster.
    pub notes: Vec<ClusterNote>,
    /// Enrichment rows: (cluster, `"up"` or `"down"`, row), by cluster, direction, then p.
    pub enrichment: Vec<(u32, &'static str, EnrichmentRow)>,
    /// Program rows, by cluster then program (in the order of
    /// [`crate::comparison::PROGRAMS`]).
    pub programs: Vec<ProgramRow>,
}

/// The design facts shared by the steps: codes of samples, the two conditions of the
/// contrast and the condition of each sample.
pub(crate) struct Contrast {
    /// Sample code of each cell.
    pub sample: Vec<u32>,
    /// Sample names.
    pub sample_names: Vec<String>,
    /// Per sample: `Some(true)` numerator, `Some(false)` denominator, `None` another condition.
    pub side: Vec<Option<bool>>,
    /// Numerator and denominator condition names.
    pub numerator: String,
    /// See `numerator`.
    pub denominator: String,
}

fn contrast(a: &Analysis, opts: &WithinClusterOptions) -> Result<Contrast> {
    let cells = &a.dataset().cells;
    let design = Design::of(cells)?;
    let (num, den) = match &opts.contrast {
        Some((n, d)) => {
            for c in [n, d] {
                if !design.conditions.contains(c) {
                    return Err(Error::option(
                        "contrast",
                        format!(
                            "{c:?} is not a condition of the kept cells (conditions: {})",
                            design.conditions.join(", ")
                        ),
                    ));
                }
            }
            (n.clone(), d.clone())
        }
        None => match (design.conditions.first(), design.conditions.last()) {
            (Some(first), Some(last)) if design.conditions.len() >= 2 => {
                (last.clone(), first.clone())
            }
            _ => {
                return Err(Error::data(
                    "within-cluster comparison",
                    format!(
                        "the kept cells carry {} condition(s); two are needed",
                        design.conditions.len()
                    ),
                ))
            }
        },
    };
    let samples = Codes::from_labels("sample", &cells.sample);
    let side = design
        .condition_of_sample
        .iter()
        .map(|&c| {
            let name = design.conditions.get(c as usize)?;
            if *name == num {
                Some(true)
            } else if *name == den {
                Some(false)
            } else {
                None
            }
        })
        .collect();
    Ok(Contrast {
        sample: samples.codes,
        sample_names: samples.names,
        side,
        numerator: num,
        denominator: den,
    })
}

/// Pseudobulk DE, enrichment of up and down genes, and program shifts inside each cluster of
/// `a`, numerator condition against denominator (see the module docs for the method).
///
/// `sets` are the gene sets of the enrichment and the source of the programs (those of
/// [`crate::comparison::PROGRAMS`] present; none present gives no program rows). Errors: bad
/// options, fewer than two conditions among the kept cells, a contrast naming a condition
/// that is not there, labels that do not match the cells.
pub fn within_cluster(
    a: &Analysis,
    sets: &[GeneSet],
    opts: &WithinClusterOptions,
) -> Result<WithinCluster> {
    opts.validate()?;
    let d = a.dataset();
    let labels = &a.clustering.labels;
    if labels.len() != d.n_cells() || a.size_factors.len() != d.n_cells() {
        return Err(Error::data(
            "within-cluster comparison",
            format!(
                "{} cluster labels and {} size factors for {} cells",
                labels.len(),
                a.size_factors.len(),
                d.n_cells()
            ),
        ));
    }
    let con = contrast(a, opts)?;
    let n_clusters = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let tested = de::cluster_de(a, &con, n_clusters, opts)?;

    // Universe: genes detected in the kept cells.
    let detected = d.detected_gene_symbols();
    let mut enrichment = Vec::new();
    let mut clusters: Vec<u32> = tested.de.iter().map(|r| r.cluster).collect();
    clusters.dedup();
    for c in clusters {
        let rows = tested.de.iter().filter(|r| r.cluster == c);
        let (up, down) = selected_genes(rows, opts);
        for (dir, query) in [("up", up), ("down", down)] {
            if query.is_empty() {
                continue;
            }
            for row in enrich(&query, &detected, sets, &opts.enrich)? {
                enrichment.push((c, dir, row));
            }
        }
    }

    let programs = programs::program_shifts(a, sets, &con, n_clusters, opts)?;
    Ok(WithinCluster {
        numerator: con.numerator,
        denominator: con.denominator,
        de: tested.de,
        notes: tested.notes,
        enrichment,
        programs,
    })
}

/// The up and down genes of one cluster's rows that go to the enrichment.
fn selected_genes<'a>(
    rows: impl Iterator<Item = &'a DeRow>,
    opts: &WithinClusterOptions,
) -> (Vec<String>, Vec<String>) {
    let mut up = Vec::new();
    let mut down = Vec::new();
    for r in rows {
        // NaN (untested) fails the comparison and is left out.
        if r.p_adjusted.is_nan() || r.p_adjusted >= opts.max_p_adj {
            continue;
        }
        if r.log2_fold_change >= opts.min_log2_fold_change {
            up.push(r.gene.clone());
        } else if r.log2_fold_change <= -opts.min_log2_fold_change {
            down.push(r.gene.clone());
        }
    }
    (up, down)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(gene: &str, lfc: f64, padj: f64) -> DeRow {
        DeRow {
            cluster: 0,
            gene: gene.to_string(),
            base_mean: 1.0,
            log2_fold_change: lfc,
            lfc_se: 0.1,
            p_value: padj,
            p_adjusted: padj,
            method: DeMethod::Deseq2,
            samples_numerator: 2,
            samples_denominator: 2,
        }
    }

    #[test]
    fn options_are_checked() {
        assert!(WithinClusterOptions::default().validate().is_ok());
        let bad = [
            WithinClusterOptions {
                min_cells: 0,
                ..Default::default()
            },
            WithinClusterOptions {
                max_p_adj: 0.0,
                ..Default::default()
            },
            WithinClusterOptions {
                min_log2_fold_change: f64::NAN,
                ..Default::default()
            },
            WithinClusterOptions {
                contrast: Some(("a".into(), "a".into())),
                ..Default::default()
            },
        ];
        for o in bad {
            assert!(o.validate().is_err(), "{o:?}");
        }
    }

    #[test]
    fn up_and_down_genes_use_both_thresholds() {
        let rows = [
            row("A", 1.0, 0.01),
            row("B", -0.7, 0.01),
            row("C", 0.2, 0.001),
            row("D", 2.0, 0.2),
            row("E", 2.0, f64::NAN),
        ];
        let (up, down) = selected_genes(rows.iter(), &WithinClusterOptions::default());
        assert_eq!(up, vec!["A".to_string()]);
        assert_eq!(down, vec!["B".to_string()]);
    }

    #[test]
    fn method_names() {
        assert_eq!(DeMethod::Deseq2.as_str(), "deseq2");
        assert_eq!(DeMethod::WilcoxonCells.as_str(), "wilcoxon_cells");
    }
}
