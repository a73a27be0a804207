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

use super::{open_text, ReadOptions};
use crate::dataset::{make_unique, CellTable, Dataset, GeneTable};
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
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
/// cell are set from `opts`.
pub fn read_10x_mtx(dir: impl AsRef<Path>, opts: &ReadOptions) -> Result<Dataset> {
    let files = find_files(dir.as_ref())?;
    let genes = read_features(&files.features)?;
    let barcodes = read_barcodes(&files.barcodes)?;
    let counts = read_matrix(&files.matrix, genes.len(), barcodes.len(), &files)?;
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
        std::io::ErrorKind::InvalidData => Error::parse(
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

/// Parses an unsigned decimal integer (no sign, no spaces).
#[inline]
fn parse_index(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u64;
    }
    Some(v)
}

/// Parses a count: integers on a fast path, otherwise a float. Negative and non-finite
/// values are rejected.
#[inline]
fn parse_value(s: &[u8]) -> Option<f32> {
    if let Some(v) = parse_index(s) {
        return Some(v as f32);
    }
    let t = std::str::from_utf8(s).ok()?;
    let v: f64 = t.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v as f32)
}

/// Reads the matrix file (genes x cells) into a cells x genes CSR matrix.
fn read_matrix(path: &Path, n_genes: usize, n_cells: usize, files: &MtxFiles) -> Result<CsrMatrix> {
    let mut reader = open_text(path)?;
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut line_no = 0u64;
    let mut next_line = |line: &mut Vec<u8>, line_no: &mut u64| -> Result<bool> {
        line.clear();
        let n = reader
            .read_until(b'\n', line)
            .map_err(|e| read_error(path, *line_no + 1, e))?;
        if n == 0 {
            return Ok(false);
        }
        *line_no += 1;
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(true)
    };

    // Header.
    if !next_line(&mut line, &mut line_no)? {
        return Err(Error::parse(path, 1, "empty file: no Matrix Market header"));
    }
    let header = String::from_utf8_lossy(&line).to_lowercase();
    let words: Vec<&str> = header.split_whitespace().collect();
    if words.len() != 5
        || words[0] != "%%matrixmarket"
        || words[1] != "matrix"
        || words[2] != "coordinate"
        || !(words[3] == "integer" || words[3] == "real")
        || words[4] != "general"
    {
        return Err(Error::parse(
            path,
            1,
            format!(
                "unsupported header {:?}: expected `%%MatrixMarket matrix coordinate integer|real general`",
                String::from_utf8_lossy(&line)
            ),
        ));
    }
    // Size line, after comments.
    let (rows, cols, nnz) = loop {
        if !next_line(&mut line, &mut line_no)? {
            return Err(Error::parse(path, line_no + 1, "missing size line"));
        }
        if line.first() == Some(&b'%') || line.iter().all(|c| c.is_ascii_whitespace()) {
            continue;
        }
        let f: Vec<Option<u64>> = line
            .split(|c| c.is_ascii_whitespace())
            .filter(|s| !s.is_empty())
            .map(parse_index)
            .collect();
        match f.as_slice() {
            [Some(r), Some(c), Some(n)] => break (*r as usize, *c as usize, *n as usize),
            _ => {
                return Err(Error::parse(
                    path,
                    line_no,
                    "size line must be three non-negative integers: genes cells entries",
                ))
            }
        }
    };
    if rows != n_genes {
        return Err(Error::parse(
            &files.features,
            n_genes as u64,
            format!(
                "{n_genes} features but the matrix {} declares {rows} rows",
                path.display()
            ),
        ));
    }
    if cols != n_cells {
        return Err(Error::parse(
            &files.barcodes,
            n_cells as u64,
            format!(
                "{n_cells} barcodes but the matrix {} declares {cols} columns",
                path.display()
            ),
        ));
    }
    if n_cells == 0 {
        return Err(Error::parse(path, line_no, "empty matrix: 0 cells"));
    }
    if rows > u32::MAX as usize || cols > u32::MAX as usize {
        return Err(Error::parse(
            path,
            line_no,
            "dimensions exceed 32-bit indices",
        ));
    }

    // Entries. 10x files are sorted by cell; then the CSR is built directly. Otherwise the
    // entries are kept as triplets and sorted at the end.
    let cap = nnz.min(1 << 28);
    let mut cell_of: Vec<u32> = Vec::with_capacity(cap);
    let mut gene_of: Vec<u32> = Vec::with_capacity(cap);
    let mut vals: Vec<f32> = Vec::with_capacity(cap);
    let mut sorted_by_cell = true;
    let mut last_cell = 0u32;
    let mut seen = 0usize;
    while next_line(&mut line, &mut line_no)? {
        if line.first() == Some(&b'%') || line.is_empty() {
            continue;
        }
        let mut it = line
            .split(|&c| c == b' ' || c == b'\t')
            .filter(|s| !s.is_empty());
        let (g, c, v) = match (it.next(), it.next(), it.next(), it.next()) {
            (Some(g), Some(c), Some(v), None) => (g, c, v),
            _ => {
                return Err(Error::parse(
                    path,
                    line_no,
                    "expected three fields: row column value",
                ))
            }
        };
        let g = parse_index(g)
            .ok_or_else(|| Error::parse(path, line_no, "row index is not a positive integer"))?;
        let c = parse_index(c)
            .ok_or_else(|| Error::parse(path, line_no, "column index is not a positive integer"))?;
        if g == 0 || g as usize > rows {
            return Err(Error::parse(
                path,
                line_no,
                format!("row index {g} outside 1..={rows}"),
            ));
        }
        if c == 0 || c as usize > cols {
            return Err(Error::parse(
                path,
                line_no,
                format!("column index {c} outside 1..={cols}"),
            ));
        }
        let v = parse_value(v).ok_or_else(|| {
            Error::parse(
                path,
                line_no,
                format!(
                    "value {:?} is not a non-negative number",
                    String::from_utf8_lossy(v)
                ),
            )
        })?;
        seen += 1;
        if seen > nnz {
            return Err(Error::parse(
                path,
                line_no,
                format!("more entries than the {nnz} declared"),
            ));
        }
        let cell = (c - 1) as u32;
        if cell < last_cell {
            sorted_by_cell = false;
        }
        last_cell = cell;
        cell_of.push(cell);
        gene_of.push((g - 1) as u32);
        vals.push(v);
    }
    if seen < nnz {
        return Err(Error::parse(
            path,
            line_no,
            format!("file ends after {seen} entries, {nnz} declared"),
        ));
    }
    let result = if sorted_by_cell {
        let mut indptr = vec![0usize; cols + 1];
        for &c in &cell_of {
            indptr[c as usize + 1] += 1;
        }
        for i in 0..cols {
            indptr[i + 1] += indptr[i];
        }
        drop(cell_of);
        CsrMatrix::from_unsorted_rows(cols, rows, indptr, gene_of, vals)
    } else {
        CsrMatrix::from_triplets(cols, rows, &cell_of, &gene_of, &vals)
    };
    result.map_err(|e| Error::parse(path, line_no, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers() {
        assert_eq!(parse_index(b"123"), Some(123));
        assert_eq!(parse_index(b"-1"), None);
        assert_eq!(parse_index(b""), None);
        assert_eq!(parse_value(b"2.5"), Some(2.5));
        assert_eq!(parse_value(b"-2"), None);
        assert_eq!(parse_value(b"abc"), None);
        assert_eq!(parse_value(b"nan"), None);
    }
}
