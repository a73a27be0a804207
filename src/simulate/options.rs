//! Options of the simulator, their validation and two ready-made designs.

use crate::error::{Error, Result};

/// Options of [`super::simulate`] and [`super::Simulator::new`].
///
/// The multi-sample features (`batch_sd`, `batch_library_sd`, `doublet_rate`, `shift`,
/// `composition_concentration`) are all off by default, and with them off the output is exactly
/// that of the simulator without them.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulateOptions {
    /// Number of cells. Default 5,000.
    pub n_cells: usize,
    /// Number of genes. Default 20,000.
    pub n_genes: usize,
    /// Number of clusters (cell types). Default 8.
    pub n_clusters: usize,
    /// Marker genes up-regulated per cluster. Default 40.
    pub n_markers: usize,
    /// Median fold change of marker genes. Default 4 (an easy setting; 1.5 is hard).
    pub marker_fold: f64,
    /// Median library size (UMIs per cell). Default 8,000.
    pub library_size: f64,
    /// Standard deviation of log library size. Default 0.35.
    pub library_log_sd: f64,
    /// Standard deviation of log baseline gene expression. Default 2.3 (about 12% non-zero).
    pub gene_log_sd: f64,
    /// Negative-binomial dispersion φ. Default 0.2.
    pub dispersion: f64,
    /// Condition names. Default `["parental", "resistant"]`.
    pub conditions: Vec<String>,
    /// Samples per condition. Default 2.
    pub samples_per_condition: usize,
    /// Clusters found only in the last condition. Default 1.
    pub condition_specific: usize,
    /// Relative share, in the last condition, of the cluster just before the
    /// condition-specific ones (1 = not depleted). Default 0.1.
    pub depleted_share: f64,
    /// Mitochondrial genes (symbols `MT-…`, moderately high expression). Default 13.
    pub n_mito: usize,
    /// Per-sample gene-wise batch effect: every sample draws a factor `exp(N(0, batch_sd²))`
    /// per gene, which multiplies the relative expression of that gene in all the sample's
    /// cells (then renormalised to sum 1). Default 0 (no batch effect); 0.2–0.5 is a realistic
    /// range between 10x lanes.
    pub batch_sd: f64,
    /// Per-sample library-size batch effect: every sample draws a factor
    /// `exp(N(0, batch_library_sd²))` that multiplies the library size of all its cells.
    /// Default 0 (none).
    pub batch_library_sd: f64,
    /// Share of the cells of each sample that are heterotypic doublets: `round(doublet_rate ×
    /// cells in the sample)` cells, chosen at random, whose counts are the sum of two cells of
    /// different cell types of that sample. Must be in `[0, 0.5)`. Default 0 (no doublets).
    pub doublet_rate: f64,
    /// A gene program up-regulated in one shared cell type in the last condition only (e.g. a
    /// resistance program). Default `None`.
    pub shift: Option<ProgramShift>,
    /// Sample-to-sample variation of composition: when set to `a`, the cell-type proportions of
    /// each sample are drawn from `Dirichlet(a π)`, with `π` its condition's proportions, so
    /// that replicates differ (variance of a proportion `π(1 − π)/(a + 1)`; larger = less
    /// variation). Default `None` (every sample has its condition's proportions).
    pub composition_concentration: Option<f64>,
    /// Random seed. Default 0.
    pub seed: u64,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        SimulateOptions {
            n_cells: 5_000,
            n_genes: 20_000,
            n_clusters: 8,
            n_markers: 40,
            marker_fold: 4.0,
            library_size: 8_000.0,
            library_log_sd: 0.35,
            gene_log_sd: 2.3,
            dispersion: 0.2,
            conditions: vec!["parental".to_string(), "resistant".to_string()],
            samples_per_condition: 2,
            condition_specific: 1,
            depleted_share: 0.1,
            n_mito: 13,
            batch_sd: 0.0,
            batch_library_sd: 0.0,
            doublet_rate: 0.0,
            shift: None,
            composition_concentration: None,
            seed: 0,
        }
    }
}

/// A condition-wide shift of a gene program in one shared cell type (see
/// [`SimulateOptions::shift`]).
///
/// `n_genes` genes are drawn among the moderately expressed genes that are neither markers nor
/// mitochondrial (ranked by baseline expression among the non-mitochondrial genes, between the
/// top 1% and the top 10%: at the default library size, means of about 1 to 6 counts per cell).
/// Each gets a fold uniform in `[fold.0, fold.1]`, which multiplies its relative expression in
/// the cells of `cluster` in the last condition (the profile is then renormalised, which lowers
/// every gene of those cells by the same small factor, about 0.3% with the defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramShift {
    /// The shifted cell type; must be shared by all conditions. Default 0.
    pub cluster: usize,
    /// Genes in the program. Default 25.
    pub n_genes: usize,
    /// Range of the folds `(low, high)`, `0 < low <= high`. Default `(2.0, 3.0)`.
    pub fold: (f64, f64),
}

impl Default for ProgramShift {
    fn default() -> Self {
        ProgramShift {
            cluster: 0,
            n_genes: 25,
            fold: (2.0, 3.0),
        }
    }
}

impl SimulateOptions {
    /// A null design: the defaults without any difference between conditions — no
    /// condition-specific cluster (`condition_specific = 0`), no depletion
    /// (`depleted_share = 1`), no program shift — so every condition has the same expected
    /// proportions (equal over the 8 clusters) and the same expression.
    pub fn null_design() -> SimulateOptions {
        SimulateOptions::default().without_condition_effects()
    }

    /// These options without any difference between conditions (as in
    /// [`SimulateOptions::null_design`]); batch effects, doublets and composition variation are
    /// kept, e.g. `SimulateOptions::study(0.35, 1).without_condition_effects()` is the null
    /// version of the study design.
    pub fn without_condition_effects(self) -> SimulateOptions {
        SimulateOptions {
            condition_specific: 0,
            depleted_share: 1.0,
            shift: None,
            ..self
        }
    }

    /// A drug-resistance study: parental against resistant cells, two samples of each.
    ///
    /// Values (the others are the defaults):
    /// - `conditions = ["parental", "resistant"]`, `samples_per_condition = 2`;
    /// - `n_cells = 12,000` (3,000 per sample, a typical 10x lane after QC), `n_genes = 20,000`;
    /// - `n_clusters = 7`: 6 cell types shared by both conditions and `condition_specific = 1`
    ///   resistant-only state (cluster 6);
    /// - `depleted_share = 0.25`: the shared type just before it (cluster 5, a sensitive
    ///   population) keeps a quarter of its share in resistant samples;
    /// - `doublet_rate = 0.06` (heterotypic doublets of a 10x lane loaded for ~10,000 cells);
    /// - `batch_sd = batch_sd` (gene-wise sample effects; 0 for none, 0.35 is strong) and
    ///   `batch_library_sd = 0.15` (sequencing depth varies by ~15% between samples);
    /// - `shift`: a program of 25 genes up 2–3 fold in cluster 0 of the resistant samples;
    /// - `composition_concentration = 100`: sample proportions `Dirichlet(100 π)`, a
    ///   coefficient of variation of about 25% for a type at 1/7 between replicates;
    /// - `seed = seed`.
    pub fn study(batch_sd: f64, seed: u64) -> SimulateOptions {
        SimulateOptions {
            n_cells: 12_000,
            n_genes: 20_000,
            n_clusters: 7,
            conditions: vec!["parental".to_string(), "resistant".to_string()],
            samples_per_condition: 2,
            condition_specific: 1,
            depleted_share: 0.25,
            doublet_rate: 0.06,
            batch_sd,
            batch_library_sd: 0.15,
            shift: Some(ProgramShift {
                cluster: 0,
                n_genes: 25,
                fold: (2.0, 3.0),
            }),
            composition_concentration: Some(100.0),
            seed,
            ..SimulateOptions::default()
        }
    }

    /// Number of samples (`conditions × samples_per_condition`).
    pub fn n_samples(&self) -> usize {
        self.conditions
            .len()
            .saturating_mul(self.samples_per_condition)
    }

    /// Number of clusters found only in the last condition (0 with a single condition).
    pub(crate) fn n_specific(&self) -> usize {
        if self.conditions.len() > 1 {
            self.condition_specific
        } else {
            0
        }
    }

    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let pos = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::option(
                    name,
                    format!("must be positive and finite, got {v}"),
                ))
            }
        };
        let non_neg = |name: &'static str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::option(
                    name,
                    format!("must be finite and >= 0, got {v}"),
                ))
            }
        };
        if self.n_cells == 0 || self.n_genes == 0 || self.n_clusters == 0 {
            return Err(Error::option(
                "n_cells/n_genes/n_clusters",
                "must all be at least 1",
            ));
        }
        if self.conditions.is_empty() || self.samples_per_condition == 0 {
            return Err(Error::option(
                "conditions",
                "need at least one condition and one sample per condition",
            ));
        }
        if self.condition_specific >= self.n_clusters && self.conditions.len() > 1 {
            return Err(Error::option(
                "condition_specific",
                "must leave at least one cluster shared by all conditions",
            ));
        }
        if self.n_mito > self.n_genes {
            return Err(Error::option(
                "n_mito",
                format!(
                    "{} mitochondrial genes among {} genes",
                    self.n_mito, self.n_genes
                ),
            ));
        }
        // Markers are drawn, without replacement, among the more highly expressed half of the
        // non-mitochondrial genes.
        let marker_genes = self.n_clusters.saturating_mul(self.n_markers);
        if marker_genes > (self.n_genes - self.n_mito) / 2 {
            return Err(Error::option(
                "n_markers",
                "markers of all clusters must fit in half of the non-mitochondrial genes",
            ));
        }
        pos("marker_fold", self.marker_fold)?;
        pos("library_size", self.library_size)?;
        pos("dispersion", self.dispersion)?;
        pos("depleted_share", self.depleted_share)?;
        if !(self.library_log_sd >= 0.0 && self.gene_log_sd >= 0.0) {
            return Err(Error::option("library_log_sd/gene_log_sd", "must be >= 0"));
        }
        non_neg("batch_sd", self.batch_sd)?;
        non_neg("batch_library_sd", self.batch_library_sd)?;
        if !(self.doublet_rate >= 0.0 && self.doublet_rate < 0.5) {
            return Err(Error::option(
                "doublet_rate",
                format!("must be in [0, 0.5), got {}", self.doublet_rate),
            ));
        }
        if self.doublet_rate > 0.0 && self.n_clusters < 2 {
            return Err(Error::option(
                "doublet_rate",
                "heterotypic doublets need at least two clusters",
            ));
        }
        if let Some(a) = self.composition_concentration {
            pos("composition_concentration", a)?;
        }
        if let Some(s) = &self.shift {
            if self.conditions.len() < 2 {
                return Err(Error::option(
                    "shift",
                    "a shift between conditions needs at least two conditions",
                ));
            }
            let shared = self.n_clusters - self.n_specific();
            if s.cluster >= shared {
                return Err(Error::option(
                    "shift.cluster",
                    format!(
                        "must be one of the {shared} clusters shared by all conditions \
                         (0..{shared}), got {}",
                        s.cluster
                    ),
                ));
            }
            if s.n_genes == 0 {
                return Err(Error::option("shift.n_genes", "must be at least 1"));
            }
            let (lo, hi) = s.fold;
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
                return Err(Error::option(
                    "shift.fold",
                    format!("must be finite with 0 < low <= high, got ({lo}, {hi})"),
                ));
            }
        }
        Ok(())
    }
}
