//! The condition comparison of a finished [`Analysis`]: composition and condition-specific
//! clusters, their differential genes, the gene programs they carry, gene-set scores, and
//! ligand-receptor interactions; plus a simulated parental / resistant example
//! ([`simulate_resistance`]).
//!
//! Which clusters are condition-specific is decided by samples when the design has replicates
//! (every condition with at least two samples): propeller on the per-sample cluster counts
//! ([`crate::conditions`]), and Milo ([`crate::milo`]) on the kNN graph of the analysis for
//! differential abundance below the cluster level. Without replicates the calls fall back to
//! Fisher's test over cells (cells of one sample are not independent replicates, so such calls
//! may be sample effects), Milo is skipped, and [`ConditionResult::notes`] says so.
//!
//! Files: [`write_all`] (`output.rs`) and [`write_plots`] (`plots.rs`).

mod output;
mod plots;

pub use crate::simulate::resistance::{
    simulate_resistance, simulate_resistance_with, PLANTED_ADHESION, PLANTED_CYTOKINE,
    PLANTED_INTERACTION,
};
pub use output::write_all;
pub(crate) use plots::diverging;
pub use plots::write_plots;

use crate::conditions::{composition, Composition, CompositionOptions};
use crate::design::Design;
use crate::error::{Error, Result};
use crate::genesets::{
    enrich, go_biological_process_human, score_set_or_skip, EnrichOptions, EnrichmentRow, GeneSet,
};
use crate::interactions::{
    cellphonedb_v5, differential_interactions, statistical_analysis, DiffInput, DiffOptions,
    Interaction, InteractionDiff, InteractionOptions, LrPair, Resource,
};
use crate::markers::{rank_genes, MarkerRow, RankGenesOptions, Reference, TableFilter};
use crate::milo::{milo, summarize_by_cluster, ClusterDa, Milo, MiloOptions};
use crate::pipeline::Analysis;
use crate::within_cluster::{within_cluster, DeMethod, WithinCluster, WithinClusterOptions};

/// Gene programs of the condition comparison, scored per cell when present in the gene sets.
pub const PROGRAMS: [&str; 7] = [
    "GO:0098609", // cell-cell adhesion
    "GO:0007267", // cell-cell signaling
    "GO:0006959", // humoral immune response
    "GO:0019221", // cytokine-mediated signaling pathway
    "GO:0070098", // chemokine-mediated signaling pathway
    "GO:0060337", // type I interferon-mediated signaling pathway
    "GO:0097193", // intrinsic apoptotic signaling pathway
];

/// Options of [`compare`].
#[derive(Debug, Clone)]
pub struct ConditionOptions {
    /// Composition tests and the thresholds of condition-specific clusters.
    pub composition: CompositionOptions,
    /// Up-regulated genes used for enrichment: adjusted p at most this. Default 0.05.
    pub max_p_adj: f64,
    /// ... and log2 fold change at least this. Default 1.
    pub min_log2_fold_change: f64,
    /// Marker rows kept per comparison in the output table. Default 50.
    pub top_markers: usize,
    /// Gene sets; `None` = the bundled human GO biological-process library.
    pub gene_sets: Option<Vec<GeneSet>>,
    /// Over-representation test options.
    pub enrich: EnrichOptions,
    /// Ligand-receptor interactions; `None` = the bundled CellPhoneDB v5 resource
    /// ([`crate::interactions::cellphonedb_v5`]).
    pub lr_pairs: Option<Vec<LrPair>>,
    /// CellPhoneDB's statistical analysis (its `seed` is replaced by
    /// [`ConditionOptions::seed`]); its `n_permutations` also sets the condition-label
    /// permutations of the between-condition test without replicates.
    pub interactions: InteractionOptions,
    /// Milo options (its `seed` is replaced by [`ConditionOptions::seed`]). Default miloR's
    /// (`prop = 0.1`, `k` of the kNN graph, spatial FDR threshold 0.1).
    pub milo: MiloOptions,
    /// The two conditions Milo compares, `(numerator, reference)`: log fold changes are of
    /// the first over the second. `None` = the second condition (order of first appearance
    /// among the cells) over the first. Milo needs exactly two conditions. Default `None`.
    pub contrast: Option<(String, String)>,
    /// Seed for gene-set score controls, permutations and Milo's sampling. Default 0.
    pub seed: u64,
}

impl ConditionOptions {
    /// Checks every field (the gene sets and pairs are checked by their steps).
    pub fn validate(&self) -> Result<()> {
        self.composition
            .validate()
            .map_err(|e| e.within("composition"))?;
        if !(self.max_p_adj > 0.0 && self.max_p_adj <= 1.0) {
            return Err(Error::option("max_p_adj", "must be within (0, 1]"));
        }
        if !self.min_log2_fold_change.is_finite() {
            return Err(Error::option("min_log2_fold_change", "must be finite"));
        }
        self.milo.validate().map_err(|e| e.within("milo"))?;
        if let Some((a, b)) = &self.contrast {
            if a == b {
                return Err(Error::option(
                    "contrast",
                    format!("names {a:?} twice; two different conditions are needed"),
                ));
            }
        }
        Ok(())
    }
}

impl Default for ConditionOptions {
    fn default() -> Self {
        ConditionOptions {
            composition: CompositionOptions::default(),
            max_p_adj: 0.05,
            min_log2_fold_change: 1.0,
            top_markers: 50,
            gene_sets: None,
            enrich: EnrichOptions::default(),
            lr_pairs: None,
            interactions: InteractionOptions::default(),
            milo: MiloOptions::default(),
            contrast: None,
            seed: 0,
        }
    }
}

/// An enrichment row of one condition-specific cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterEnrichment {
    /// The cluster.
    pub cluster: u32,
    /// The term.
    pub row: EnrichmentRow,
}

/// Marker rows of a condition-specific cluster against a reference.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecificMarkers {
    /// The cluster.
    pub cluster: u32,
    /// `rest` (all other cells) or `other_condition` (cells of the other conditions).
    pub reference: &'static str,
    /// The rows.
    pub rows: Vec<MarkerRow>,
}

/// Mean gene-set score of the cells of one (cluster, condition).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreSummary {
    /// Gene-set id.
    pub set: String,
    /// Gene-set name.
    pub name: String,
    /// Cluster.
    pub cluster: u32,
    /// Condition name.
    pub condition: String,
    /// Cells in the group.
    pub n_cells: usize,
    /// Mean score.
    pub mean_score: f64,
}

/// Everything [`compare`] found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConditionResult {
    /// Composition by sample and condition, with tests and specific clusters.
    pub composition: Composition,
    /// Differential genes of each condition-specific cluster.
    pub markers: Vec<SpecificMarkers>,
    /// Terms over-represented among the up-regulated genes of each specific cluster (sorted by
    /// p within a cluster).
    pub enrichment: Vec<ClusterEnrichment>,
    /// Gene-set scores summarized by cluster and condition.
    pub scores: Vec<ScoreSummary>,
    /// CellPhoneDB's statistical analysis over all cells, one row per (interaction, sender,
    /// receiver), with a flag telling whether the sender or receiver is a condition-specific
    /// cluster.
    pub interactions: Vec<(Interaction, bool)>,
    /// Interactions between the two conditions of the contrast and the per cluster pair
    /// summaries; `None` with fewer than two conditions.
    pub interaction_diff: Option<InteractionDiff>,
    /// Whether every condition has at least two samples (calls decided by propeller, Milo
    /// run); `false`: calls on Fisher's test over cells, Milo skipped.
    pub replicates: bool,
    /// Samples per condition (in the order of [`Composition::conditions`]).
    pub samples_per_condition: Vec<usize>,
    /// Plain-words notes: the design limits of the analysis ([`Analysis::design_limits`])
    /// first, then the fallbacks taken (calls without replicates, Milo skipped and why).
    pub notes: Vec<String>,
    /// Milo's neighbourhood test, when it ran.
    pub milo: Option<MiloResult>,
    /// What changes inside each cluster between the two conditions of the contrast:
    /// pseudobulk DESeq2 per cluster (or the cell-level Wilcoxon fallback, noted), the
    /// over-representation of the up- and down-regulated genes, the programs' per-sample
    /// scores. `None` with fewer than two conditions.
    pub within_cluster: Option<WithinCluster>,
}

/// Milo on the analysis: the test, the conditions it compared and the per-cluster summary.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MiloResult {
    /// The neighbourhood test (fold changes of `numerator` over `reference`).
    pub milo: Milo,
    /// The numerator condition.
    pub numerator: String,
    /// The reference condition.
    pub reference: String,
    /// Per cluster (of the index cells): neighbourhoods and shares up / down at spatial FDR
    /// below [`Milo::alpha`].
    pub clusters: Vec<ClusterDa>,
}

/// Compares conditions on a finished analysis (see the module docs).
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
/// use scrna::comparison::{compare, ConditionOptions};
/// let mut opts = ConditionOptions::default();
/// opts.gene_sets = Some(Vec::new()); // skips the enrichment against the bundled GO library
/// let result = compare(&analysis, &opts)?;
/// assert_eq!(result.composition.conditions, ["parental", "resistant"]);
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn compare(a: &Analysis, opts: &ConditionOptions) -> Result<ConditionResult> {
    opts.validate()?;
    let d = a.dataset();
    let design = Design::of(&d.cells)?;
    // The log values, stored for the gene scores and interactions (the analysis keeps only the
    // counts and size factors).
    let log_normalized = a.log_normalized()?.to_matrix();
    let labels = &a.clustering.labels;
    let comp = composition(
        labels,
        &d.cells.sample,
        &d.cells.condition,
        &opts.composition,
    )?;
    let specific = comp.specific();
    let mut notes = a.design_limits.clone();
    if !comp.replicates && comp.conditions.len() >= 2 {
        notes.push(
            "Without replicates (a condition has a single sample) the condition-specific \
             clusters are called on Fisher's test over cells, which cannot tell a condition \
             from a sample effect."
                .to_string(),
        );
    }
    let milo_result = run_milo(a, &design, opts, &mut notes)?;
    let names = &d.genes.symbols;
    let loaded;
    let sets: &[GeneSet] = match &opts.gene_sets {
        Some(s) => s,
        None => {
            loaded = go_biological_process_human()?;
            &loaded
        }
    };
    let within = if comp.conditions.len() >= 2 {
        let wo = WithinClusterOptions {
            contrast: opts.contrast.clone(),
            enrich: opts.enrich.clone(),
            seed: opts.seed,
            ..Default::default()
        };
        let w = within_cluster(a, sets, &wo)?;
        if w.de.iter().any(|r| r.method == DeMethod::WilcoxonCells) {
            notes.push(
                "Some clusters lack two pseudobulk samples per condition: their differential \
                 expression is the cell-level Wilcoxon test (method wilcoxon_cells in \
                 condition_de.csv), whose p-values treat cells as replicates."
                    .to_string(),
            );
        }
        Some(w)
    } else {
        None
    };
    // Universe: genes detected in the kept cells.
    let detected = d.detected_gene_symbols();

    let mut markers = Vec::new();
    let mut enrichment = Vec::new();
    let table = TableFilter {
        top_n: Some(opts.top_markers),
        ..Default::default()
    };
    let top_rows = a.markers.table(names, &table)?;
    let up_rows = a.markers.table(
        names,
        &TableFilter {
            max_pvals_adj: Some(opts.max_p_adj),
            min_fold_change: Some(opts.min_log2_fold_change),
            ..Default::default()
        },
    )?;
    for &(c, k) in &specific {
        let vs_rest: Vec<MarkerRow> = top_rows.iter().filter(|r| r.group == c).cloned().collect();
        // Against the cells of the other conditions: groups 0 = cluster, 1 = other conditions.
        let cond = &comp.conditions[k];
        let groups: Vec<u32> = (0..d.n_cells())
            .map(|i| {
                if labels[i] == c {
                    0
                } else if &d.cells.condition[i] != cond {
                    1
                } else {
                    2
                }
            })
            .collect();
        let vs_other = if groups.contains(&1) {
            let r = rank_genes(
                &log_normalized,
                &groups,
                &RankGenesOptions {
                    reference: Reference::Group(1),
                    groups: Some(vec![0]),
                    pts: true,
                    ..Default::default()
                },
            )?;
            r.table(names, &table)?
        } else {
            Vec::new()
        };
        // Up-regulated genes against the rest, for enrichment.
        let up: Vec<String> = up_rows
            .iter()
            .filter(|r| r.group == c && r.logfoldchange >= opts.min_log2_fold_change)
            .map(|r| r.gene.clone())
            .collect();
        for row in enrich(&up, &detected, sets, &opts.enrich)? {
            enrichment.push(ClusterEnrichment { cluster: c, row });
        }
        markers.push(SpecificMarkers {
            cluster: c,
            reference: "rest",
            rows: vs_rest,
        });
        markers.push(SpecificMarkers {
            cluster: c,
            reference: "other_condition",
            rows: vs_other,
        });
    }

    // Scores of the programs (and of the top term of each specific cluster).
    let mut to_score: Vec<&GeneSet> = PROGRAMS
        .iter()
        .filter_map(|id| sets.iter().find(|s| s.id == *id))
        .collect();
    for &(c, _) in &specific {
        if let Some(top) = enrichment.iter().find(|e| e.cluster == c) {
            if let Some(s) = sets.iter().find(|s| s.id == top.row.id) {
                if !to_score.iter().any(|t| t.id == s.id) {
                    to_score.push(s);
                }
            }
        }
    }
    let mut scores = Vec::new();
    for s in to_score {
        let Some(sc) = score_set_or_skip(&log_normalized, names, &s.genes, opts.seed)? else {
            continue; // no gene of the set in the data
        };
        for c in 0..a.clustering.n_clusters as u32 {
            for cond in &comp.conditions {
                let cells: Vec<usize> = (0..d.n_cells())
                    .filter(|&i| labels[i] == c && &d.cells.condition[i] == cond)
                    .collect();
                if cells.is_empty() {
                    continue;
                }
                let mean = cells.iter().map(|&i| sc.scores[i]).sum::<f64>() / cells.len() as f64;
                scores.push(ScoreSummary {
                    set: s.id.clone(),
                    name: s.name.clone(),
                    cluster: c,
                    condition: cond.clone(),
                    n_cells: cells.len(),
                    mean_score: mean,
                });
            }
        }
    }

    let spec: Vec<u32> = specific.iter().map(|s| s.0).collect();
    let resource = match &opts.lr_pairs {
        Some(pairs) => Resource {
            name: "custom".to_string(),
            interactions: pairs.clone(),
        },
        None => cellphonedb_v5()?,
    };
    let io = InteractionOptions {
        seed: opts.seed,
        ..opts.interactions.clone()
    };
    let cpdb = statistical_analysis(&log_normalized, names, labels, &resource, &io)
        .map_err(|e| e.within("interactions"))?;
    let inter = cpdb
        .rows()
        .into_iter()
        .map(|r| {
            let flag = spec.contains(&r.sender) || spec.contains(&r.receiver);
            (r, flag)
        })
        .collect();
    let interaction_diff = if design.conditions.len() >= 2 {
        let (num, refc) = contrast_indices(&design, opts)?;
        let input = DiffInput {
            labels,
            samples: &d.cells.sample,
            conditions: &d.cells.condition,
            numerator: &design.conditions[num],
            reference: &design.conditions[refc],
            specific_clusters: &spec,
        };
        let dopts = DiffOptions {
            n_permutations: io.n_permutations,
            cellphonedb: io,
            ..Default::default()
        };
        let diff = differential_interactions(&log_normalized, names, &input, &resource, &dopts)
            .map_err(|e| e.within("interactions"))?;
        notes.extend(diff.notes.iter().cloned());
        Some(diff)
    } else {
        None
    };
    let replicates = comp.replicates;
    Ok(ConditionResult {
        composition: comp,
        markers,
        enrichment,
        scores,
        interactions: inter,
        interaction_diff,
        replicates,
        samples_per_condition: design.samples_per_condition.clone(),
        notes,
        milo: milo_result,
        within_cluster: within,
    })
}

/// Runs Milo with replicates and two conditions on the analysis' kNN graph and the embedding
/// that built it (Harmony's when integration ran, else the PCA); otherwise `None` with the
/// reason pushed to `notes`.
fn run_milo(
    a: &Analysis,
    design: &Design,
    opts: &ConditionOptions,
    notes: &mut Vec<String>,
) -> Result<Option<MiloResult>> {
    if design.conditions.len() < 2 {
        return Ok(None);
    }
    let (num, refc) = contrast_indices(design, opts)?;
    if design.conditions.len() > 2 {
        notes.push(format!(
            "Milo skipped: it compares two conditions and the data have {}.",
            design.conditions.len()
        ));
        return Ok(None);
    }
    if !design.has_replicates() {
        notes.push(
            "Milo skipped: it needs at least two samples in each condition (replicates)."
                .to_string(),
        );
        return Ok(None);
    }
    let embedding = match &a.integration {
        Some(i) => i.harmony.embedding.view(),
        None => a.pca.embedding.view(),
    };
    let d = a.dataset();
    let samples = crate::design::Codes::from_labels("sample", &d.cells.sample);
    let cond_of_sample: Vec<u32> = design
        .condition_of_sample
        .iter()
        .map(|&c| u32::from(c as usize == num))
        .collect();
    let mo = MiloOptions {
        seed: opts.seed,
        ..opts.milo.clone()
    };
    let m = milo(
        embedding,
        &a.knn,
        &samples.codes,
        &cond_of_sample,
        None,
        &mo,
    )
    .map_err(|e| e.within("milo"))?;
    let clusters =
        summarize_by_cluster(&m, &a.clustering.labels, a.clustering.n_clusters, mo.alpha);
    Ok(Some(MiloResult {
        milo: m,
        numerator: design.conditions[num].clone(),
        reference: design.conditions[refc].clone(),
        clusters,
    }))
}

/// `(numerator, reference)` condition indices of the contrast (default: the second condition
/// over the first).
fn contrast_indices(design: &Design, opts: &ConditionOptions) -> Result<(usize, usize)> {
    Ok(match &opts.contrast {
        Some((x, y)) => {
            let pos = |name: &str| {
                design
                    .conditions
                    .iter()
                    .position(|c| c == name)
                    .ok_or_else(|| {
                        Error::option(
                            "contrast",
                            format!(
                                "condition {name:?} is not in the data (conditions: {})",
                                design.conditions.join(", ")
                            ),
                        )
                    })
            };
            (pos(x)?, pos(y)?)
        }
        None => (1, 0),
    })
}
