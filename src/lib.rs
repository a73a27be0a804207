//! # scrna
//!
//! Single-cell RNA-seq clustering in Rust: read 10x Genomics count matrices, run quality
//! control, normalization, highly variable gene selection and sparse PCA, build a kNN graph,
//! cluster it with Leiden, find marker genes, and compare conditions (for example parental
//! versus drug-resistant samples).
//!
//! Where a method is the same, the numbers agree with Scanpy's (tests against committed
//! reference values state the tolerances).
#![warn(missing_docs)]
// Library code returns errors instead of panicking; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cluster;
pub mod comparison;
pub mod conditions;
pub mod cpu;
pub mod dataset;
pub mod deseq;
pub mod design;
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
pub mod report;
pub mod simulate;
pub mod sparse;
pub mod special;
pub mod stats;
pub mod stream;
pub mod within_cluster;

pub use dataset::{CellTable, Column, Dataset, GeneTable};
pub use error::{Error, Result};
pub use io::{read_10x, read_10x_with, ReadOptions};
pub use sparse::CsrMatrix;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
