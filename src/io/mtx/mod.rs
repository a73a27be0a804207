//! 10x Genomics Matrix Market folders.
//!
//! Cell Ranger 2 writes `matrix.mtx`, `genes.tsv` (two columns: id, symbol) and `barcodes.tsv`;
//! Cell Ranger 3+ and Space Ranger write `matrix.mtx.gz`, `features.tsv.gz` (three columns: id,
//! symbol, feature type) and `barcodes.tsv.gz`. Either may be plain or gzipped (detected from the
//! content, not the name). The matrix file is genes x cells; the [`Dataset`] is cells x genes.
//!
//! The header must be `%%MatrixMarket matrix coordinate integer|real general`; later lines
//! starting with `%` (such as Space Ranger's `%metadata_json`) are comments. Duplicate
//! (gene, cell) entries are summed, as `scipy.io.mmread` followed by `tocsr()` does.

mod parse;
mod read;
mod write;

pub use write::{write_10x_mtx, MtxWriteOptions};

use read::read_matrix;

use super::{open_text, ReadOptions};
use crate::dataset::{make_unique, CellTable, Dataset, GeneTable};
use crate::error::{Error, Result};
use crate::sparse::Counts;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The three files of a 10x Matrix Market folder.
#[derive(Debug, Clone, PartialEq)]
pub struct MtxFiles {
    /// `matrix.mtx[.gz]`.
    pub matrix: PathBuf,
    /// `features.tsv[.gz]` or `genes.tsv[.gz]`.
    pub features: PathBuf,
    /// `barcodes.tsv[.gz]`.
    pub barcodes: PathBuf,
}

fn find_one(dir: &Path, names: &[&str]) -> Result<PathBuf> {
    for n in names {
        let p = dir.join(n);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::UnknownFormat {
        path: dir.to_path_buf(),
        message: format!(
            "not a 10x Matrix Market folder: none of {} found",
            names.join(", ")
        ),
    })
}

/// Locates the matrix, features and barcodes files in `dir`.
pub fn find_files(dir: &Path) -> Result<MtxFiles> {
    if !dir.exists() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    Ok(MtxFiles {
        matrix: find_one(dir, &["matrix.mtx.gz", "matrix.mtx"])?,
        features: find_one(
            dir,
            &[
                "features.tsv.gz",
                "features.tsv",
                "genes.tsv.gz",
                "genes.tsv",
            ],
        )?,
        barcodes: find_one(dir, &["barcodes.tsv.gz", "barcodes.tsv"])?,
    })
}

/// Reads a 10x Matrix Market folder into a cells x genes [`Dataset`].
///
/// Features whose type is not in `opts.feature_types` are dropped (Cell Ranger 2 files have no
/// type column: all their features are `Gene Expression`). The sample and condition of every
/// cell are set from `opts`. Duplicate (gene, cell) entries are summed; explicit zeros are
/// kept as stored entries (as in Scanpy).
///
/// Errors: [`Error::Io`] for a missing folder or unreadable file, [`Error::UnknownFormat`]
/// when one of the three files is missing, and [`Error::Parse`] with the file and line for
/// bad content: an unsupported header, a non-numeric or negative count, an index of 0 or past
/// the declared size, fewer or more entries than declared, a truncated or corrupt gzip
/// stream, feature or barcode counts that differ from the matrix size, and a matrix with 0
/// cells; [`Error::InvalidData`] naming the matrix file when its values are not integer
/// counts (the check of [`super::counts`]; `opts.assume_counts` accepts non-integer values).
///
/// The matrix is decompressed on one thread and parsed on the rayon pool; the result does not
/// depend on the number of threads.
pub fn read_10x_mtx(dir: impl AsRef<Path>, opts: &ReadOptions) -> Result<Dataset> {
    let files = find_files(dir.as_ref())?;
    let genes = read_features(&files.features)?;
    let barcodes = read_barcodes(&files.barcodes)?;
    let counts = read_matrix(&files.matrix, genes.len(), barcodes.len(), &files)?;
    // Compact counts are integers below 65,536: only the other layout needs the check.
    if let Counts::Wide(m) = &counts {
        super::counts::check(m.data(), opts.assume_counts).map_err(|d| {
            Error::data(
                files.matrix.display().to_string(),
                format!("holds {d}; {}", super::counts::HOW_TO_PROCEED),
            )
        })?;
    }
    let cells = CellTable::new(barcodes, &opts.sample, &opts.condition);
    let ds = Dataset::new(counts, cells, genes)?;
    super::keep_feature_types(ds, opts)
}

/// Reads `features.tsv` (3 columns) or `genes.tsv` (2 columns); symbols are made unique.
pub fn read_features(path: &Path) -> Result<GeneTable> {
    let mut ids = Vec::new();
    let mut symbols = Vec::new();
    let mut types = Vec::new();
    for_each_line(path, |line_no, line| {
        let mut f = line.split('\t');
        let id = f.next().unwrap_or("");
        if id.is_empty() {
            return Err(Error::parse(path, line_no, "empty feature id"));
        }
        let symbol = f.next().ok_or_else(|| {
            Error::parse(
                path,
                line_no,
                "expected at least 2 tab-separated columns (id, symbol)",
            )
        })?;
        let ftype = f.next().unwrap_or("Gene Expression");
        ids.push(id.to_string());
        symbols.push(symbol.to_string());
        types.push(ftype.to_string());
        Ok(())
    })?;
    Ok(GeneTable {
        ids,
        symbols: make_unique(&symbols),
        feature_types: types,
        columns: Default::default(),
    })
}

/// Reads `barcodes.tsv` (first column).
pub fn read_barcodes(path: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for_each_line(path, |line_no, line| {
        let b = line.split('\t').next().unwrap_or("");
        if b.is_empty() {
            return Err(Error::parse(path, line_no, "empty barcode"));
        }
        out.push(b.to_string());
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f(line_number, line)` for each non-empty line (trailing `\r` removed).
fn for_each_line(path: &Path, mut f: impl FnMut(u64, &str) -> Result<()>) -> Result<()> {
    let mut reader = open_text(path)?;
    let mut buf = String::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_line(&mut buf)
            .map_err(|e| read_error(path, line_no + 1, e))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let line = buf.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            continue;
        }
        f(line_no, line)?;
    }
}

fn read_error(path: &Path, line: u64, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => Error::parse(
            path,
            line,
            format!("not valid text or corrupt gzip stream: {e}"),
        ),
        std::io::ErrorKind::UnexpectedEof => Error::parse(
            path,
            line,
            format!("truncated file (gzip stream ends early): {e}"),
        ),
        _ => Error::io(path, e),
    }
}
