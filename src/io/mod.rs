//! Readers and writers: 10x Matrix Market folders, 10x HDF5, AnnData `.h5ad`.
//!
//! [`read_10x`] detects the format from the path (a Cell Ranger output folder is resolved to
//! its filtered matrix, [`cellranger::resolve`]). Every reader takes [`ReadOptions`] and
//! checks that the matrix holds raw counts ([`counts`]); [`read_counts`] also says which
//! file and matrix the counts came from.

pub mod cellranger;
pub mod counts;
pub mod h5ad;
pub(crate) mod hdf5_util;
pub mod inputs;
pub mod mtx;
pub mod samples;
pub mod tenx_h5;

pub use inputs::{read_inputs, InputOptions, InputReport, Inputs, OnDuplicate};
pub use mtx::{write_10x_mtx, MtxWriteOptions};
pub use samples::{
    concat, concat_report, read_sample_sheet, read_samples, ConcatOptions, Join, JoinReport,
    SampleSpec,
};

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

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
    /// For an `.h5ad` file: the matrix to read (a layer name, or `X`). Default: `None`: the
    /// first of `X`, `layers["counts"]` (and the other [`h5ad::COUNTS_LAYERS`]) and `raw/X`
    /// that holds counts. Ignored by the 10x readers.
    pub layer: Option<String>,
    /// Accept non-integer values as counts (non-negative and finite still required), for
    /// data that really are non-integer counts such as ambient-corrected counts. Default:
    /// `false`: a matrix with non-integer values is an error that says what it holds.
    pub assume_counts: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            feature_types: vec!["Gene Expression".to_string()],
            genome: None,
            sample: "sample".to_string(),
            condition: "none".to_string(),
            layer: None,
            assume_counts: false,
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
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// use scrna::io::{write_10x_mtx, MtxWriteOptions};
/// // A Matrix Market folder written from simulated counts, read back.
/// let dir = std::env::temp_dir().join(format!("scrna-doc-read10x-{}", std::process::id()));
/// write_10x_mtx(&data, &dir, &MtxWriteOptions::default())?;
/// let back = scrna::read_10x(&dir)?;
/// assert_eq!((back.n_cells(), back.n_genes()), (data.n_cells(), data.n_genes()));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn read_10x(path: impl AsRef<Path>) -> Result<Dataset> {
    read_10x_with(path, &ReadOptions::default())
}

/// Reads a dataset, detecting the format (see [`detect_format`]); as [`read_counts`].
pub fn read_10x_with(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Dataset> {
    read_counts(path, opts).map(|r| r.dataset)
}

/// A dataset and where its counts came from.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// The cells and their counts.
    pub dataset: Dataset,
    /// The file or folder read (after resolving a Cell Ranger folder).
    pub path: PathBuf,
    /// How `path` was found in the folder given, when it was (see [`cellranger::Resolved`]).
    pub resolved: Option<String>,
    /// The format read.
    pub format: Format,
    /// The matrix read: `X`, `layers/<name>` or `raw/X` of an `.h5ad`; the HDF5 group of a
    /// 10x HDF5 file (`matrix` or the genome); the matrix file of a Matrix Market folder.
    pub matrix: String,
    /// What the stored values hold.
    pub values: counts::ValueSummary,
}

impl ReadResult {
    /// True when the counts are not all integers (accepted with `assume_counts`).
    pub fn assumed_counts(&self) -> bool {
        !self.values.is_counts()
    }

    /// One line naming the file and matrix, e.g. `pbmc.h5ad: layers/counts (X holds no counts)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{}: {}", self.path.display(), self.matrix);
        if self.assumed_counts() {
            s.push_str(&format!(" (--assume-counts: {})", self.values.describe()));
        }
        s
    }
}

/// Reads a dataset as [`read_10x_with`] does and says where its counts came from: resolves
/// a Cell Ranger folder ([`cellranger::resolve`]), detects the format ([`detect_format`]) and
/// reads it with the matching reader, every one of which applies the integer-count check of
/// [`counts`] (unless `opts.assume_counts`).
pub fn read_counts(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<ReadResult> {
    let r = cellranger::resolve(path.as_ref())?;
    let path = r.path.as_path();
    let format = detect_format(path)?;
    let (dataset, matrix) = match format {
        Format::Mtx => {
            let ds = mtx::read_10x_mtx(path, opts)?;
            let m = mtx::find_files(path)?.matrix;
            let name = m.file_name().map(|f| f.to_string_lossy().into_owned());
            (ds, name.unwrap_or_default())
        }
        Format::TenxH5 => tenx_h5::read_10x_h5_counts(path, opts)?,
        Format::H5ad => {
            let h = h5ad::H5adReadOptions {
                sample: opts.sample.clone(),
                condition: opts.condition.clone(),
                layer: opts.layer.clone(),
                assume_counts: opts.assume_counts,
            };
            h5ad::read_h5ad_counts(path, &h)?
        }
    };
    let values = counts::ValueSummary::of_counts(&dataset.counts);
    Ok(ReadResult {
        dataset,
        path: r.path.clone(),
        resolved: r.note,
        format,
        matrix,
        values,
    })
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
