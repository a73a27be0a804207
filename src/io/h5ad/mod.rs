//! AnnData `.h5ad` files: a writer that anndata 0.12 and Scanpy 1.11 open without warnings,
//! and a reader for X (or a layer), obs and var.
//!
//! The on-disk layout follows the AnnData specification
//! (<https://anndata.readthedocs.io/en/stable/fileformat-prose.html>): every group and dataset
//! carries `encoding-type` / `encoding-version` attributes; sparse matrices are groups with
//! `data`, `indices`, `indptr` and a `shape` attribute; data frames are groups with an `_index`
//! attribute naming the index dataset and a `column-order` attribute; categoricals are groups
//! with `codes`, `categories` and `ordered`; record arrays (Scanpy's `rank_genes_groups`
//! `names` / `scores` / `pvals` / ...) are HDF5 compound datasets with one field per group.
//!
//! Differences from what anndata itself writes: string fields of record arrays are fixed-width
//! byte strings (anndata reads them back as unicode, as it does for files of older anndata
//! versions; non-ASCII text there is not supported); boolean columns are stored as the same
//! HDF5 enum that h5py uses, but the categorical `ordered` flag is a `uint8` 0/1 attribute.

mod read;
mod write;

pub use read::*;
pub use write::*;
