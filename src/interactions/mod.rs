//! Cell-cell interactions between clusters from a curated ligand-receptor resource.
//!
//! - [`resource`]: the bundled CellPhoneDB v5 database ([`cellphonedb_v5`]) with heteromeric
//!   complexes and each interaction's classification, and custom resources
//!   ([`read_resource`]);
//! - [`cellphonedb`]: CellPhoneDB's statistical analysis ([`statistical_analysis`]): cluster
//!   means and fractions, the complex minimum, the threshold, the label permutation test;
//! - [`diff`]: interactions that change between conditions ([`differential_interactions`]) and
//!   the per cluster pair summaries of secreted and adhesion signalling;
//! - [`figures`]: the numbers of the interaction figures ([`top_changed`],
//!   [`significance_grid`]; drawn by [`crate::plot::interactions`]).

pub mod cellphonedb;
pub mod diff;
mod expression;
pub mod figures;
pub mod resource;

pub use cellphonedb::{statistical_analysis, CellPhoneDb, Interaction, InteractionOptions};
pub use diff::{
    differential_interactions, DiffInput, DiffInteraction, DiffMethod, DiffOptions,
    InteractionDiff, SummaryRow,
};
pub use figures::{significance_grid, top_changed, ChangedDot, SignificanceGrid, TopChanged};
pub use resource::{
    cellphonedb_v5, read_resource, LrInteraction, Partner, Resource, SignalKind, UsableResource,
};

use crate::error::Result;
use crate::sparse::CsrMatrix;
use std::path::Path;

/// An interaction of a resource (the name of the earlier pair-only API).
pub type LrPair = LrInteraction;

/// The interactions of a resource file ([`read_resource`]).
pub fn read_lr_pairs(path: impl AsRef<Path>) -> Result<Vec<LrPair>> {
    Ok(read_resource(path)?.interactions)
}

/// [`statistical_analysis`] of `pairs` as rows ([`CellPhoneDb::rows`]): interaction-major,
/// then sender, then receiver.
pub fn interactions(
    x: &CsrMatrix,
    gene_names: &[String],
    labels: &[u32],
    pairs: &[LrPair],
    opts: &InteractionOptions,
) -> Result<Vec<Interaction>> {
    let resource = Resource {
        name: "pairs".to_string(),
        interactions: pairs.to_vec(),
    };
    Ok(statistical_analysis(x, gene_names, labels, &resource, opts)?.rows())
}
