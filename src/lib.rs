#![doc = include_str!("../README.crates.md")]
//!
//! ## The crate's map
//!
//! - Reading: [`read_10x`] (Matrix Market folder, 10x HDF5 or AnnData `.h5ad`, detected from
//!   the path), [`io::read_samples`] and [`io::read_sample_sheet`] for many samples, each with a
//!   sample name and a condition; [`Dataset`] holds the counts ([`Counts`]: a [`CsrMatrix`] of
//!   `u16` counts and gene indices when they fit, else of `f32` values and `u32` indices) with
//!   the cell and gene tables.
//! - The main job: [`pipeline::run`] (or [`pipeline::run_owned`]) with [`pipeline::PipelineOptions`],
//!   returning a [`pipeline::Analysis`]; [`comparison::compare`] on it; the files:
//!   [`pipeline::output::write_all`], [`comparison::write_all`] and the one-page HTML report
//!   [`html_report::write_report`].
//! - Each step on its own, a plain function over borrowed data with an options struct:
//!   [`qc::metrics`], [`qc::filter`], [`normalize::normalize_total`],
//!   [`hvg::highly_variable_genes`], [`pca::pca`], [`neighbors::knn`],
//!   [`graph::umap_connectivities`], [`cluster::leiden`](fn@cluster::leiden), [`embed::umap`],
//!   [`markers::rank_genes`], [`doublets::scrublet`], [`integrate::harmony`](fn@integrate::harmony),
//!   and for conditions [`conditions::composition`], [`propeller::propeller`], [`milo::milo`],
//!   [`deseq::deseq`], [`pseudobulk::pseudobulk_de`], [`genesets::enrich`],
//!   [`interactions::statistical_analysis`].
//! - Test data of any size: [`simulate::simulate`].
//!
//! [`prelude`] re-exports what the main job needs: `use scrna::prelude::*;`.
//!
//! ## Options: the idiom
//!
//! Every step takes an options struct whose `Default` is the reference tool's default (each
//! field's documentation gives it). Build options from `Default` (or a named preset such as
//! [`simulate::SimulateOptions::study`]) and set the public fields, as in
//!
//! ```
//! let mut o = scrna::hvg::HvgOptions::default();
//! o.n_top_genes = Some(3000);
//! o.validate()?; // every step checks its options first; errors name the field
//! # Ok::<(), scrna::Error>(())
//! ```
//!
//! or with the builder-style methods where a struct has them
//! ([`pipeline::PipelineOptions::seeded`]). A new option is a new field with a default, so
//! code written this way keeps compiling when options are added; a struct literal that names
//! every field would not (the options structs are to become `#[non_exhaustive]`, which
//! enforces the idiom). The results of the main job ([`pipeline::Analysis`],
//! [`comparison::ConditionResult`], [`simulate::Simulation`]) and [`Error`] are
//! `#[non_exhaustive]`: read their fields, use `..` when destructuring them, and end a `match`
//! on the error with a `_` arm.
//!
//! ## Stability
//!
//! Items hidden from this documentation (`#[doc(hidden)]`: file-writing and memory helpers,
//! the loess smoother) are public only for the repository's own tests and examples and may
//! change in any release. Results are deterministic: the same input, options and seed give the
//! same output whatever the number of threads.
#![deny(missing_docs)]
// Library code returns errors instead of panicking; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cluster;
pub mod comparison;
pub mod conditions;
pub(crate) mod cpu;
pub mod dataset;
pub mod deseq;
pub mod design;
#[cfg(feature = "distributed")]
pub mod distributed;
pub mod doublets;
pub mod embed;
pub mod error;
pub mod genesets;
pub mod graph;
pub mod html_report;
pub mod hvg;
pub mod integrate;
pub mod interactions;
pub mod io;
pub mod limma;
#[doc(hidden)]
pub mod loess;
pub mod lognorm;
pub mod markers;
pub mod milo;
pub mod neighbors;
pub mod normalize;
pub mod pca;
pub mod pipeline;
pub mod plot;
pub mod propeller;
pub mod pseudobulk;
pub mod qc;
#[doc(hidden)]
pub mod report;
pub mod simulate;
pub mod sparse;
pub(crate) mod special;
pub mod stats;
pub mod stream;
pub mod within_cluster;

pub use dataset::{CellTable, Column, Dataset, GeneTable};
pub use error::{Error, Result};
pub use io::{read_10x, read_10x_with, ReadOptions};
pub use sparse::{Counts, CsrMatrix};

pub mod prelude {
    //! What the main job needs, in one import: `use scrna::prelude::*;`.
    //!
    //! The data ([`Dataset`], its tables and counts), the readers, the simulator, the
    //! standard analysis and its options, the condition comparison and the report.

    pub use crate::comparison::{compare, ConditionOptions, ConditionResult};
    pub use crate::dataset::{CellTable, Dataset, GeneTable};
    pub use crate::error::{Error, Result};
    pub use crate::html_report::{write_report, ReportOptions};
    pub use crate::io::{read_10x, read_10x_with, read_sample_sheet, read_samples, ReadOptions};
    pub use crate::pipeline::{run, run_owned, Analysis, PipelineOptions, Progress, Switch};
    pub use crate::simulate::{simulate, SimulateOptions, Simulation};
    pub use crate::sparse::{Counts, CsrMatrix};
}

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
