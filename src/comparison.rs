//! The condition comparison of a finished [`Analysis`]: composition and condition-specific
//! clusters, their differential genes, the gene programs they carry, gene-set scores, and
//! ligand-receptor interactions; plus a simulated parental / resistant example.

use crate::conditions::{composition, Composition, CompositionOptions};
use crate::error::{Error, Result};
use crate::genesets::{
    enrich, go_biological_process_human, score_genes, EnrichOptions, EnrichmentRow, GeneSet,
    ScoreOptions,
};
use crate::interactions::{interactions, Interaction, InteractionOptions, LrPair};
use crate::markers::{rank_genes, MarkerRow, RankGenesOptions, Reference, TableFilter};
use crate::pipeline::Analysis;
use crate::plot::{self, PlotOptions};
use crate::report::{fmt_f64, write_atomic, write_csv_record};
use crate::simulate::{simulate, SimulateOptions, Simulation};
use std::path::{Path, PathBuf};

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
    /// Ligand-receptor pairs; `None` = no interaction analysis.
    pub lr_pairs: Option<Vec<LrPair>>,
    /// Permutation test options of the interaction analysis.
    pub interactions: InteractionOptions,
    /// Seed for gene-set score controls and permutations. Default 0.
    pub seed: u64,
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
    /// Ligand-receptor scores (empty without pairs), with a flag per row telling whether the
    /// sender or receiver is a condition-specific cluster.
    pub interactions: Vec<(Interaction, bool)>,
}

/// Compares conditions on a finished analysis (see the module docs).
pub fn compare(a: &Analysis, opts: &ConditionOptions) -> Result<ConditionResult> {
    let d = a.dataset();
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
    let names = &d.genes.symbols;
    let loaded;
    let sets: &[GeneSet] = match &opts.gene_sets {
        Some(s) => s,
        None => {
            loaded = go_biological_process_human()?;
            &loaded
        }
    };
    // Universe: genes detected in the kept cells.
    let detected: Vec<String> = d
        .counts
        .col_sums()
        .iter()
        .zip(names)
        .filter(|(s, _)| **s > 0.0)
        .map(|(_, g)| g.clone())
        .collect();

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
        let sc = match score_genes(
            &log_normalized,
            names,
            &s.genes,
            &ScoreOptions {
                seed: opts.seed,
                ..Default::default()
            },
        ) {
            Ok(sc) => sc,
            Err(Error::InvalidData { .. }) => continue, // no gene of the set in the data
            Err(e) => return Err(e),
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

    let inter = match &opts.lr_pairs {
        Some(pairs) => {
            let mut io = opts.interactions.clone();
            io.seed = opts.seed;
            let spec: Vec<u32> = specific.iter().map(|s| s.0).collect();
            interactions(&log_normalized, names, labels, pairs, &io)?
                .into_iter()
                .map(|r| {
                    let flag = spec.contains(&r.sender) || spec.contains(&r.receiver);
                    (r, flag)
                })
                .collect()
        }
        None => Vec::new(),
    };
    Ok(ConditionResult {
        composition: comp,
        markers,
        enrichment,
        scores,
        interactions: inter,
    })
}

/// Writes `composition.csv`, `condition_specific_clusters.csv`,
/// `markers_condition_specific.csv`, `enrichment.csv`, `gene_set_scores.csv`,
/// `interactions.csv` and the plots of [`write_plots`] into `dir`.
pub fn write_all(a: &Analysis, r: &ConditionResult, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    let comp = &r.composition;

    let p = dir.join("composition.csv");
    write_atomic(&p, |w| {
        write_csv_record(
            w,
            &[
                "cluster",
                "sample",
                "condition",
                "cells",
                "sample_cells",
                "proportion",
            ],
        )?;
        for c in 0..comp.n_clusters {
            for (s, name) in comp.samples.iter().enumerate() {
                write_csv_record(
                    w,
                    &[
                        c.to_string(),
                        name.clone(),
                        comp.conditions[comp.sample_condition[s]].clone(),
                        comp.counts_by_sample[c][s].to_string(),
                        comp.sample_totals[s].to_string(),
                        fmt_f64(comp.sample_proportion(c, s)),
                    ],
                )?;
            }
        }
        Ok(())
    })?;
    files.push(p);

    let p = dir.join("condition_specific_clusters.csv");
    write_atomic(&p, |w| {
        write_csv_record(
            w,
            &[
                "cluster",
                "condition",
                "cells_in_condition",
                "cells_other_conditions",
                "proportion_of_condition",
                "normalized_share",
                "odds_ratio",
                "ci_low",
                "ci_high",
                "p",
                "p_adj",
                "sample_p",
                "sample_p_adj",
                "specific",
            ],
        )?;
        for t in &comp.tests {
            let opt = |x: Option<f64>| x.map_or("NA".to_string(), fmt_f64);
            write_csv_record(
                w,
                &[
                    t.cluster.to_string(),
                    comp.conditions[t.condition].clone(),
                    t.in_cluster.to_string(),
                    t.other_in_cluster.to_string(),
                    fmt_f64(t.proportion),
                    fmt_f64(t.share),
                    fmt_f64(t.odds_ratio),
                    fmt_f64(t.ci_low),
                    fmt_f64(t.ci_high),
                    fmt_f64(t.p),
                    fmt_f64(t.p_adj),
                    opt(t.sample_p),
                    opt(t.sample_p_adj),
                    t.specific.to_string(),
                ],
            )?;
        }
        Ok(())
    })?;
    files.push(p);

    let p = dir.join("markers_condition_specific.csv");
    write_atomic(&p, |w| {
        write_csv_record(
            w,
            &[
                "cluster",
                "reference",
                "rank",
                "gene",
                "score",
                "log2_fold_change",
                "p",
                "p_adj",
                "fraction_in",
                "fraction_out",
                "auc",
            ],
        )?;
        for m in &r.markers {
            for row in &m.rows {
                write_csv_record(
                    w,
                    &[
                        m.cluster.to_string(),
                        m.reference.to_string(),
                        row.rank.to_string(),
                        row.gene.clone(),
                        fmt_f64(row.score),
                        fmt_f64(row.logfoldchange),
                        fmt_f64(row.pval),
                        fmt_f64(row.pval_adj),
                        fmt_f64(row.pct_in),
                        fmt_f64(row.pct_out),
                        fmt_f64(row.auc),
                    ],
                )?;
            }
        }
        Ok(())
    })?;
    files.push(p);

    let p = dir.join("enrichment.csv");
    write_atomic(&p, |w| {
        write_csv_record(
            w,
            &[
                "cluster", "term_id", "name", "overlap", "set_size", "p", "p_adj", "genes",
            ],
        )?;
        for e in &r.enrichment {
            write_csv_record(
                w,
                &[
                    e.cluster.to_string(),
                    e.row.id.clone(),
                    e.row.name.clone(),
                    e.row.overlap.to_string(),
                    e.row.set_size.to_string(),
                    fmt_f64(e.row.p),
                    fmt_f64(e.row.p_adj),
                    e.row.genes.join(";"),
                ],
            )?;
        }
        Ok(())
    })?;
    files.push(p);

    let p = dir.join("gene_set_scores.csv");
    write_atomic(&p, |w| {
        write_csv_record(
            w,
            &[
                "set",
                "name",
                "cluster",
                "condition",
                "n_cells",
                "mean_score",
            ],
        )?;
        for s in &r.scores {
            write_csv_record(
                w,
                &[
                    s.set.clone(),
                    s.name.clone(),
                    s.cluster.to_string(),
                    s.condition.clone(),
                    s.n_cells.to_string(),
                    fmt_f64(s.mean_score),
                ],
            )?;
        }
        Ok(())
    })?;
    files.push(p);

    let p = dir.join("interactions.csv");
    write_atomic(&p, |w| {
        write_csv_record(
            w,
            &[
                "ligand",
                "receptor",
                "sender",
                "receiver",
                "score",
                "p",
                "involves_specific_cluster",
            ],
        )?;
        for (i, flag) in &r.interactions {
            write_csv_record(
                w,
                &[
                    i.ligand.clone(),
                    i.receptor.clone(),
                    i.sender.to_string(),
                    i.receiver.to_string(),
                    fmt_f64(i.score),
                    fmt_f64(i.p),
                    flag.to_string(),
                ],
            )?;
        }
        Ok(())
    })?;
    files.push(p);
    files.extend(write_plots(a, r, dir)?);
    Ok(files)
}

/// Plots of the comparison: `composition_bars` (cluster proportions per sample),
/// `umap_<condition>` (the UMAP split by condition: each condition's cells coloured by
/// cluster) and `enrichment_cluster<c>` (top 10 terms of each condition-specific cluster,
/// `-log10` adjusted p).
pub fn write_plots(a: &Analysis, r: &ConditionResult, dir: &Path) -> Result<Vec<PathBuf>> {
    let comp = &r.composition;
    let po = PlotOptions::default();
    let mut files = Vec::new();
    let clusters: Vec<String> = (0..comp.n_clusters).map(|c| c.to_string()).collect();
    let props: Vec<Vec<f64>> = (0..comp.n_clusters)
        .map(|c| {
            (0..comp.samples.len())
                .map(|s| comp.sample_proportion(c, s))
                .collect()
        })
        .collect();
    files.extend(plot::stacked_bars(
        &props,
        &clusters,
        &comp.samples,
        &dir.join("composition_bars"),
        &po,
    )?);
    let d = a.dataset();
    if a.umap.nrows() == d.n_cells() {
        for cond in &comp.conditions {
            let cells: Vec<usize> = (0..d.n_cells())
                .filter(|&i| &d.cells.condition[i] == cond)
                .collect();
            let emb = a.umap.select(ndarray::Axis(0), &cells);
            let labels: Vec<u32> = cells.iter().map(|&i| a.clustering.labels[i]).collect();
            let safe: String = cond
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                .collect();
            files.extend(plot::umap_clusters(
                emb.view(),
                &labels,
                &clusters,
                &dir.join(format!("umap_{safe}")),
                &PlotOptions {
                    title: Some(format!("Clusters in {cond} cells")),
                    ..Default::default()
                },
            )?);
        }
    }
    for &(c, k) in &comp.specific() {
        let top: Vec<&ClusterEnrichment> = r
            .enrichment
            .iter()
            .filter(|e| e.cluster == c)
            .take(10)
            .collect();
        if top.is_empty() {
            continue;
        }
        let labels: Vec<String> = top
            .iter()
            .map(|e| format!("{} {}", e.row.id, e.row.name))
            .collect();
        let values: Vec<f64> = top
            .iter()
            .map(|e| -e.row.p_adj.max(1e-300).log10())
            .collect();
        files.extend(plot::bar_chart(
            &labels,
            &values,
            "-log10 adjusted p",
            &dir.join(format!("enrichment_cluster{c}")),
            &PlotOptions {
                title: Some(format!(
                    "Cluster {c} ({}-specific): top enriched terms",
                    comp.conditions[k]
                )),
                width: 1400,
                ..Default::default()
            },
        )?);
    }
    Ok(files)
}

/// Genes planted in the resistant-only cluster of [`simulate_resistance`]: cell-cell adhesion
/// and cytokine signaling genes (GO:0098609, GO:0019221), ligands first.
pub const PLANTED_ADHESION: [&str; 20] = [
    "ICAM1", "VCAM1", "CDH1", "CDH2", "ITGB1", "ITGA4", "CD44", "SELL", "PECAM1", "NCAM1",
    "CEACAM1", "ALCAM", "CADM1", "CLDN1", "DSG2", "JAM3", "NECTIN2", "PCDH1", "EPCAM", "CD58",
];
/// See [`PLANTED_ADHESION`].
pub const PLANTED_CYTOKINE: [&str; 20] = [
    "IL6", "CXCL8", "CXCL12", "CCL2", "CCL5", "TNF", "IL1B", "IL10", "CSF1", "IFNG", "IL6R",
    "IL1R1", "CXCR4", "CCR5", "TNFRSF1A", "IL10RA", "CSF1R", "IFNGR1", "JAK1", "STAT3",
];

/// Simulates two parental and two resistant samples (4,000 cells x 6,000 genes, 6 clusters)
/// in which one cluster exists only in the resistant samples (the others are shared evenly) and up-regulates [`PLANTED_ADHESION`] and
/// [`PLANTED_CYTOKINE`]. The other genes take symbols of the bundled GO library that are in
/// none of the planted programs' sets, so enrichment results are meaningful.
pub fn simulate_resistance(seed: u64) -> Result<Simulation> {
    let opts = SimulateOptions {
        n_cells: 4_000,
        n_genes: 6_000,
        n_clusters: 6,
        n_markers: 40,
        depleted_share: 1.0,
        seed,
        ..Default::default()
    };
    let mut sim = simulate(&opts)?;
    let sets = go_biological_process_human()?;
    let planted: Vec<&str> = PLANTED_ADHESION
        .iter()
        .chain(PLANTED_CYTOKINE.iter())
        .copied()
        .collect();
    let excluded: std::collections::HashSet<&str> = sets
        .iter()
        .filter(|s| PROGRAMS.contains(&s.id.as_str()))
        .flat_map(|s| s.genes.iter().map(String::as_str))
        .chain(planted.iter().copied())
        .collect();
    let mut pool: Vec<&str> = sets
        .iter()
        .flat_map(|s| s.genes.iter().map(String::as_str))
        .filter(|g| !excluded.contains(g))
        .collect();
    pool.sort_unstable();
    pool.dedup();
    let spec = *sim
        .truth
        .condition_specific_clusters
        .first()
        .ok_or_else(|| Error::data("simulate resistance", "no condition-specific cluster"))?;
    let spec_markers = &sim.truth.markers[spec as usize];
    let genes = &mut sim.dataset.genes;
    let mut next = 0;
    for g in 0..genes.len() {
        if genes.symbols[g].starts_with("MT-") {
            continue;
        }
        let sym = match spec_markers.iter().position(|&m| m == g) {
            Some(k) if k < planted.len() => planted[k].to_string(),
            _ => {
                let s = pool
                    .get(next)
                    .map_or(format!("Gene{}", g + 1), |s| s.to_string());
                next += 1;
                s
            }
        };
        genes.symbols[g] = sym;
    }
    genes.symbols = crate::dataset::make_unique(&genes.symbols);
    Ok(sim)
}
