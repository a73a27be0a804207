//! Readers and writers: 10x Matrix Market folders, 10x HDF5, AnnData `.h5ad`.
//!
//! [`read_10x`] detects the format from the path. Every reader takes [`ReadOptions`].

pub mod h5ad;
pub(crate) mod hdf5_util;
pub mod mtx;
pub mod samples;
pub mod tenx_h5;

pub use mtx::{write_10x_mtx, MtxWriteOptions};
pub use samples::{concat, read_sample_sheet, read_samples, ConcatOptions, Join, SampleSpec};

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Options shared by the readers.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Feature types to keep. Default: `["Gene Expression"]`. Empty: keep every feature.
    pub feature_types: Vec<String>,
    /// Genome to read from a Cell Ranger 1/2 HDF5 file that holds several. Default: `None`
    /// (the only genome; an error lists the genomes when there are several).
    pub genome: Option<String>,
    /// Sample name given to every cell. Default: `"sample"`.
    pub sample: String,
    /// Condition given to every cell. Default: `"none"`.
    pub condition: String,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            feature_types: vec!["Gene Expression".to_string()],
            genome: None,
            sample: "sample".to_string(),
            condition: "none".to_string(),
        }
    }
}

/// The on-disk formats `scrna` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A 10x Matrix Market folder.
    Mtx,
    /// A 10x HDF5 file (`.h5`).
    TenxH5,
    /// An AnnData file (`.h5ad`).
    H5ad,
}

impl Format {
    /// Short name (`mtx`, `10x_h5`, `h5ad`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Mtx => "mtx",
            Format::TenxH5 => "10x_h5",
            Format::H5ad => "h5ad",
        }
    }
}

/// Detects the format of `path`: a folder is a Matrix Market folder; a file ending in `.h5ad`
/// is AnnData; any other file starting with the HDF5 signature is 10x HDF5.
pub fn detect_format(path: impl AsRef<Path>) -> Result<Format> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Ok(Format::Mtx);
    }
    let mut sig = [0u8; 8];
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let n = f.read(&mut sig).map_err(|e| Error::io(path, e))?;
    if n == 8 && &sig == b"\x89HDF\r\n\x1a\n" {
        let is_h5ad = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("h5ad"));
        return Ok(if is_h5ad {
            Format::H5ad
        } else {
            Format::TenxH5
        });
    }
    Err(Error::UnknownFormat {
        path: path.to_path_buf(),
        message: "neither a folder nor an HDF5 file (.h5 / .h5ad)".to_string(),
    })
}

/// Reads a 10x dataset with default options, detecting the format (see [`detect_format`]).
pub fn read_10x(path: impl AsRef<Path>) -> Result<Dataset> {
    read_10x_with(path, &ReadOptions::default())
}

/// Reads a dataset, detecting the format (see [`detect_format`]).
pub fn read_10x_with(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Dataset> {
    let path = path.as_ref();
    match detect_format(path)? {
        Format::Mtx => mtx::read_10x_mtx(path, opts),
        Format::TenxH5 => tenx_h5::read_10x_h5(path, opts),
        Format::H5ad => {
            let h = h5ad::H5adReadOptions {
                sample: opts.sample.clone(),
                condition: opts.condition.clone(),
                ..Default::default()
            };
            h5ad::read_h5ad(path, &h)
        }
    }
}

/// Opens a text file, transparently decompressing gzip (detected by its magic bytes).
pub(crate) fn open_text(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, f));
        Ok(Box::new(BufReader::with_capacity(1 << 20, gz)))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
    }
}

/// Drops features whose type is not in `opts.feature_types` (keeps all when it is empty).
pub(crate) fn keep_feature_types(ds: Dataset, opts: &ReadOptions) -> Result<Dataset> {
    if opts.feature_types.is_empty() {
        return Ok(ds);
    }
    let mask: Vec<bool> = ds
        .genes
        .feature_types
        .iter()
        .map(|t| opts.feature_types.iter().any(|k| k == t))
        .collect();
    if mask.iter().all(|&m| m) {
        return Ok(ds);
    }
    ds.filter_genes(&mask)
}
