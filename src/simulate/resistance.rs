//! A simulated parental / resistant study whose resistant-only cluster carries cell-cell
//! adhesion and cytokine signaling genes, for the condition comparison
//! ([`crate::comparison`]).

use super::{simulate, SimulateOptions, Simulation, Truth};
use crate::comparison::PROGRAMS;
use crate::dataset::GeneTable;
use crate::error::{Error, Result};
use crate::genesets::go_biological_process_human;

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

/// The planted interaction of [`simulate_resistance`]: the chemokine CCL2 (a marker of the
/// resistant-only cluster, in [`PLANTED_CYTOKINE`]) and its receptor CCR2 (the first marker
/// of the first shared cluster), a secreted interaction of CellPhoneDB v5
/// (`CCL2_CCR2`, Signaling by Chemokines).
pub const PLANTED_INTERACTION: (&str, &str) = ("CCL2", "CCR2");

/// Simulates two parental and two resistant samples (4,000 cells x 6,000 genes, 6 clusters)
/// in which one cluster exists only in the resistant samples (the others are shared evenly) and up-regulates [`PLANTED_ADHESION`] and
/// [`PLANTED_CYTOKINE`]. The other genes take symbols of the bundled GO library that are in
/// none of the planted programs' sets, so enrichment results are meaningful.
pub fn simulate_resistance(seed: u64) -> Result<Simulation> {
    simulate_resistance_with(&SimulateOptions {
        n_cells: 4_000,
        n_genes: 6_000,
        n_clusters: 6,
        n_markers: 40,
        depleted_share: 1.0,
        seed,
        ..Default::default()
    })
}

/// [`simulate`] with `opts` (which should plant a condition-specific cluster with at least 40
/// markers, e.g. [`SimulateOptions::study`], or be its null version: see
/// [`name_study_genes`]), its genes renamed as in [`simulate_resistance`]:
/// the first 40 markers of the condition-specific cluster take the symbols of
/// [`PLANTED_ADHESION`] and [`PLANTED_CYTOKINE`], the other genes symbols of the bundled GO
/// library outside the condition programs ([`crate::comparison::PROGRAMS`]), then `GeneN`;
/// the first marker of the first shared cluster is the receptor of [`PLANTED_INTERACTION`].
pub fn simulate_resistance_with(opts: &SimulateOptions) -> Result<Simulation> {
    let mut sim = simulate(opts)?;
    name_study_genes(&sim.truth, &mut sim.dataset.genes)?;
    Ok(sim)
}

/// Renames the simulated `genes` (as [`super::Simulator::genes`] makes them) of a simulation
/// with `truth` as [`simulate_resistance_with`] does; only the symbols change, so the counts
/// of [`super::Simulator::counts`] with these genes are that function's dataset. In a design
/// with no condition-specific cluster (a null design,
/// [`SimulateOptions::without_condition_effects`]) the last cluster, the one a study plants as
/// resistant-only, takes the planted symbols: the same programs, in a cell type both
/// conditions share. Errors: a `truth` with no cluster.
pub fn name_study_genes(truth: &Truth, genes: &mut GeneTable) -> Result<()> {
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
        .chain([PLANTED_INTERACTION.1])
        .collect();
    let mut pool: Vec<&str> = sets
        .iter()
        .flat_map(|s| s.genes.iter().map(String::as_str))
        .filter(|g| !excluded.contains(g))
        .collect();
    pool.sort_unstable();
    pool.dedup();
    let last = truth
        .markers
        .len()
        .checked_sub(1)
        .ok_or_else(|| Error::data("simulate resistance", "the simulation has no cluster"))?;
    let spec = truth
        .condition_specific_clusters
        .first()
        .copied()
        .unwrap_or(last as u32);
    let spec_markers = &truth.markers[spec as usize];
    let receptor_gene = (0..truth.markers.len() as u32)
        .find(|&c| c != spec && !truth.condition_specific_clusters.contains(&c))
        .and_then(|c| truth.markers[c as usize].first().copied());
    let mut next = 0;
    for g in 0..genes.len() {
        if genes.symbols[g].starts_with("MT-") {
            continue;
        }
        let sym = match spec_markers.iter().position(|&m| m == g) {
            Some(k) if k < planted.len() => planted[k].to_string(),
            _ if receptor_gene == Some(g) => PLANTED_INTERACTION.1.to_string(),
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
    Ok(())
}
