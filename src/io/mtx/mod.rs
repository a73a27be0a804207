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
    super::counts::check(counts.data(), opts.assume_counts).map_err(|d| {
        Error::data(
            files.matrix.display().to_string(),
            format!("holds {d}; {}", super::counts::HOW_TO_PROCEED),
        )
    })?;
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
/// values are rejected with the reason.
fn parse_value_checked(s: &[u8]) -> std::result::Result<f32, String> {
    if let Some(v) = parse_index(s) {
        return Ok(v as f32);
    }
    let shown = String::from_utf8_lossy(s);
    let v: f64 = std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("value {shown:?} is not a number"))?;
    if !v.is_finite() {
        return Err(format!("value {shown:?} is not a finite number"));
    }
    if v < 0.0 {
        return Err(format!("value {shown:?} is negative: counts must be >= 0"));
    }
    Ok(v as f32)
}

/// Size of the decompressed blocks handed to the parsing threads.
const BLOCK: usize = 4 << 20;

/// A block of decompressed text that ends at a line boundary (or at the end of the file).
struct Block {
    data: Vec<u8>,
}

/// Entries parsed from one block.
#[derive(Default)]
struct Parsed {
    genes: Vec<u32>,
    cells: Vec<u32>,
    vals: Vec<f32>,
    /// Lines in the block (comments and blank lines included).
    lines: u64,
    /// Cells are non-decreasing inside the block.
    sorted: bool,
}

/// Longest line accepted (a file without line breaks is not a Matrix Market file).
const MAX_LINE: usize = 64 << 20;

/// Reads `reader` into [`Block`]s on the calling thread and sends them to `tx`. A read error
/// is sent as the last message, after the complete lines read before it.
fn produce_blocks(
    mut reader: Box<dyn BufRead + Send>,
    tx: std::sync::mpsc::SyncSender<std::io::Result<Block>>,
) {
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut buf = std::mem::take(&mut carry);
        let mut filled = buf.len();
        buf.resize(filled + BLOCK, 0);
        let mut eof = false;
        let mut err = None;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        buf.truncate(filled);
        if err.is_none() && !eof {
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(nl) => {
                    carry = buf[nl + 1..].to_vec();
                    buf.truncate(nl + 1);
                }
                None if buf.len() > MAX_LINE => {
                    err = Some(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("a line longer than {MAX_LINE} bytes"),
                    ));
                    buf.clear();
                }
                None => {
                    carry = buf;
                    continue;
                }
            }
        }
        if let Some(e) = err {
            if let Some(nl) = buf.iter().rposition(|&b| b == b'\n') {
                buf.truncate(nl + 1);
                if tx.send(Ok(Block { data: buf })).is_err() {
                    return;
                }
            }
            let _ = tx.send(Err(e));
            return;
        }
        if !buf.is_empty() && tx.send(Ok(Block { data: buf })).is_err() {
            return;
        }
        if eof {
            return;
        }
    }
}

/// Parses the digits at `buf[*pos..]` (at most 19), advancing `pos`.
#[inline(always)]
fn digits(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let start = *pos;
    let mut v = 0u64;
    while let Some(&c) = buf.get(*pos) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(d as u64);
        *pos += 1;
    }
    let n = *pos - start;
    (n > 0 && n <= 19).then_some(v)
}

/// An error at a line relative to the start of a block.
type LineError = (u64, String);

/// Parses the entry lines of `text` (no header) into `out`. Cells and genes are 0-based.
/// Canonical lines `gene cell count\n` take a fast path; anything else goes through
/// [`parse_line_slow`], which accepts tabs, runs of blanks, `\r`, comments and real values,
/// and explains what is wrong.
fn parse_entries(
    text: &[u8],
    rows: u64,
    cols: u64,
    out: &mut Parsed,
) -> std::result::Result<(), LineError> {
    let n = text.len();
    out.genes.reserve(n / 10);
    out.cells.reserve(n / 10);
    out.vals.reserve(n / 10);
    out.sorted = true;
    let mut last_cell = 0u32;
    let mut pos = 0usize;
    let mut line = 0u64;
    while pos < n {
        line += 1;
        let start = pos;
        // Fast path.
        let fast = (|| {
            let g = digits(text, &mut pos)?;
            if text.get(pos) != Some(&b' ') {
                return None;
            }
            pos += 1;
            let c = digits(text, &mut pos)?;
            if text.get(pos) != Some(&b' ') {
                return None;
            }
            pos += 1;
            let v = digits(text, &mut pos)?;
            match text.get(pos) {
                Some(b'\n') => pos += 1,
                None => {}
                _ => return None,
            }
            (g >= 1 && g <= rows && c >= 1 && c <= cols && v < (1 << 24))
                .then(|| ((g - 1) as u32, (c - 1) as u32, v as f32))
        })();
        let entry = match fast {
            Some(e) => Some(e),
            None => {
                let end = text[start..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(n, |k| start + k);
                pos = (end + 1).min(n);
                parse_line_slow(&text[start..end], rows, cols).map_err(|m| (line, m))?
            }
        };
        if let Some((g, c, v)) = entry {
            if c < last_cell {
                out.sorted = false;
            }
            last_cell = c;
            out.genes.push(g);
            out.cells.push(c);
            out.vals.push(v);
        }
    }
    out.lines = line;
    Ok(())
}

/// Parses one entry line in full; `None` for a comment or blank line.
#[allow(clippy::type_complexity)]
fn parse_line_slow(
    raw: &[u8],
    rows: u64,
    cols: u64,
) -> std::result::Result<Option<(u32, u32, f32)>, String> {
    let line = raw.strip_suffix(b"\r").unwrap_or(raw);
    if line.first() == Some(&b'%') || line.iter().all(|c| c.is_ascii_whitespace()) {
        return Ok(None);
    }
    let mut it = line
        .split(|c| c.is_ascii_whitespace())
        .filter(|s| !s.is_empty());
    let (g, c, v) = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(g), Some(c), Some(v), None) => (g, c, v),
        _ => {
            return Err(format!(
                "expected three fields (row column value), got {:?}",
                String::from_utf8_lossy(line)
            ))
        }
    };
    let index = |s: &[u8], what: &str, max: u64| -> std::result::Result<u32, String> {
        let i = parse_index(s).ok_or_else(|| {
            format!(
                "{what} index {:?} is not a positive integer",
                String::from_utf8_lossy(s)
            )
        })?;
        if i == 0 || i > max {
            return Err(format!("{what} index {i} outside 1..={max}"));
        }
        Ok((i - 1) as u32)
    };
    let g = index(g, "row", rows)?;
    let c = index(c, "column", cols)?;
    let v = parse_value_checked(v)?;
    Ok(Some((g, c, v)))
}

/// Finds the line (relative to the block) of the `k`-th (1-based) entry of `text`.
fn line_of_entry(text: &[u8], k: usize) -> u64 {
    let mut seen = 0usize;
    for (i, l) in text.split(|&b| b == b'\n').enumerate() {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.first() == Some(&b'%') || l.iter().all(|c| c.is_ascii_whitespace()) {
            continue;
        }
        seen += 1;
        if seen == k {
            return i as u64 + 1;
        }
    }
    text.split(|&b| b == b'\n').count() as u64
}

/// The header and size line of a Matrix Market file.
struct Header {
    rows: usize,
    cols: usize,
    nnz: usize,
}

/// Parses the header lines at the start of `text`. Returns the header, the number of lines it
/// took and the byte offset where the entries start, or `Ok(None)` when `text` ends first.
fn parse_header(path: &Path, text: &[u8]) -> Result<Option<(Header, u64, usize)>> {
    let mut pos = 0usize;
    let mut line_no = 0u64;
    let mut header_seen = false;
    while pos < text.len() {
        let end = text[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |k| pos + k);
        let raw = &text[pos..end];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos = (end + 1).min(text.len());
        line_no += 1;
        if !header_seen {
            check_banner(path, line)?;
            header_seen = true;
            continue;
        }
        if line.first() == Some(&b'%') || line.iter().all(|c| c.is_ascii_whitespace()) {
            continue;
        }
        let f: Vec<Option<u64>> = line
            .split(|c| c.is_ascii_whitespace())
            .filter(|s| !s.is_empty())
            .map(parse_index)
            .collect();
        return match f.as_slice() {
            [Some(r), Some(c), Some(n)] => Ok(Some((
                Header {
                    rows: *r as usize,
                    cols: *c as usize,
                    nnz: *n as usize,
                },
                line_no,
                pos,
            ))),
            _ => Err(Error::parse(
                path,
                line_no,
                format!(
                    "size line must be three non-negative integers (genes cells entries), got {:?}",
                    String::from_utf8_lossy(line)
                ),
            )),
        };
    }
    Ok(None)
}

fn check_banner(path: &Path, line: &[u8]) -> Result<()> {
    let header = String::from_utf8_lossy(line).to_lowercase();
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
                String::from_utf8_lossy(line)
            ),
        ));
    }
    Ok(())
}

/// Reads the matrix file (genes x cells) into a cells x genes CSR matrix.
///
/// One thread decompresses the file into blocks of whole lines; rayon threads parse batches of
/// blocks; the entries are appended in file order. When the entries are sorted by cell (as
/// 10x writes them) the CSR arrays are filled directly and no (cell, gene, value) triplets are
/// kept: peak memory is the final matrix plus a few blocks. Otherwise the cells are kept too
/// and the matrix is built from triplets at the end. Duplicates are summed either way.
fn read_matrix(path: &Path, n_genes: usize, n_cells: usize, files: &MtxFiles) -> Result<CsrMatrix> {
    let max_entries = max_entries(path)?;
    let reader = open_text(path)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Block>>(4);
    std::thread::scope(|scope| {
        scope.spawn(move || produce_blocks(reader, tx));
        let r = consume_blocks(path, &rx, n_genes, n_cells, max_entries, files);
        drop(rx); // stops the producer early on error
        r
    })
}

/// Shortest entry line (`1 1 1\n`).
const MIN_ENTRY_BYTES: u64 = 6;
/// Largest expansion of a deflate stream (a gzip file cannot hold more text than this many
/// times its size).
const MAX_DEFLATE_RATIO: u64 = 1032;

/// The most entries the file at `path` can hold given its size on disk: the size line's
/// entry count is only trusted up to this when reserving memory, so that a small file that
/// declares billions of entries fails on its content rather than on a giant allocation.
fn max_entries(path: &Path) -> Result<usize> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
    let text = if n == 2 && magic == [0x1f, 0x8b] {
        len.saturating_mul(MAX_DEFLATE_RATIO)
    } else {
        len
    };
    Ok(usize::try_from(text / MIN_ENTRY_BYTES + 1).unwrap_or(usize::MAX))
}

fn consume_blocks(
    path: &Path,
    rx: &std::sync::mpsc::Receiver<std::io::Result<Block>>,
    n_genes: usize,
    n_cells: usize,
    max_entries: usize,
    files: &MtxFiles,
) -> Result<CsrMatrix> {
    use rayon::prelude::*;
    let mut lines_done = 0u64;
    let io_err = |e: std::io::Error, lines_done: u64| read_error(path, lines_done + 1, e);

    // Header: gather blocks until the size line is complete.
    let mut head: Vec<u8> = Vec::new();
    let (header, header_lines, offset) = loop {
        match rx.recv() {
            Ok(Ok(b)) => {
                if head.is_empty() {
                    head = b.data;
                } else {
                    head.extend_from_slice(&b.data);
                }
                if let Some(h) = parse_header(path, &head)? {
                    break h;
                }
            }
            Ok(Err(e)) => {
                return Err(io_err(
                    e,
                    head.iter().filter(|&&b| b == b'\n').count() as u64,
                ))
            }
            Err(_) => {
                let n = head.iter().filter(|&&b| b == b'\n').count() as u64;
                if head.is_empty() {
                    return Err(Error::parse(path, 1, "empty file: no Matrix Market header"));
                }
                return Err(Error::parse(path, n + 1, "missing size line"));
            }
        }
    };
    let Header { rows, cols, nnz } = header;
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
        return Err(Error::parse(path, header_lines, "empty matrix: 0 cells"));
    }
    if rows > u32::MAX as usize || cols > u32::MAX as usize {
        return Err(Error::parse(
            path,
            header_lines,
            "dimensions exceed 32-bit indices",
        ));
    }
    lines_done += header_lines;
    // A line that the header block cut short? `parse_header` only returns once the size line
    // ended with '\n' or the data ended, so `offset` starts a fresh line.
    let first = head.split_off(offset);
    drop(head);

    let mut indices: Vec<u32> = Vec::new();
    let mut data: Vec<f32> = Vec::new();
    // Reserve for the declared entries, but never more than the file can hold.
    let reserve = nnz.min(max_entries);
    if indices.try_reserve_exact(reserve).is_err() || data.try_reserve_exact(reserve).is_err() {
        indices = Vec::new();
        data = Vec::new();
    }
    let mut row_counts = vec![0usize; cols + 1];
    let mut cells_all: Option<Vec<u32>> = None; // kept once entries turn out unsorted
    let mut last_cell = 0u32;
    let mut seen = 0usize;
    let threads = rayon::current_num_threads().max(1);
    let mut pending: Vec<Block> = Vec::new();
    if !first.is_empty() {
        pending.push(Block { data: first });
    }
    let mut done = false;
    let mut failure: Option<std::io::Error> = None;
    while !done || !pending.is_empty() {
        while !done && failure.is_none() && pending.len() < 2 * threads {
            match rx.recv() {
                Ok(Ok(b)) => pending.push(b),
                Ok(Err(e)) => failure = Some(e),
                Err(_) => done = true,
            }
        }
        if failure.is_some() {
            done = true;
        }
        let parsed: Vec<std::result::Result<Parsed, LineError>> = pending
            .par_iter()
            .map(|b| {
                let mut p = Parsed::default();
                parse_entries(&b.data, rows as u64, cols as u64, &mut p).map(|()| p)
            })
            .collect();
        for (b, p) in pending.iter().zip(parsed) {
            let p = p.map_err(|(l, m)| Error::parse(path, lines_done + l, m))?;
            let k = p.genes.len();
            if seen + k > nnz {
                let l = line_of_entry(&b.data, nnz - seen + 1);
                return Err(Error::parse(
                    path,
                    lines_done + l,
                    format!("more entries than the {nnz} declared"),
                ));
            }
            let in_order = p.sorted && p.cells.first().is_none_or(|&c| c >= last_cell);
            if cells_all.is_none() && !in_order {
                // Rebuild the cells of the entries so far from the per-cell counts.
                let mut v = Vec::with_capacity(seen + k);
                for (c, w) in row_counts[1..].iter().enumerate() {
                    v.extend(std::iter::repeat_n(c as u32, *w));
                }
                cells_all = Some(v);
            }
            match &mut cells_all {
                Some(v) => v.extend_from_slice(&p.cells),
                None => {
                    for &c in &p.cells {
                        row_counts[c as usize + 1] += 1;
                    }
                    if let Some(&c) = p.cells.last() {
                        last_cell = c;
                    }
                }
            }
            indices.extend_from_slice(&p.genes);
            data.extend_from_slice(&p.vals);
            seen += k;
            lines_done += p.lines;
        }
        pending.clear();
    }
    if let Some(e) = failure {
        return Err(io_err(e, lines_done));
    }
    if seen < nnz {
        return Err(Error::parse(
            path,
            lines_done,
            format!("file ends after {seen} entries, {nnz} declared"),
        ));
    }
    let result = match cells_all {
        None => {
            for i in 0..cols {
                row_counts[i + 1] += row_counts[i];
            }
            CsrMatrix::from_unsorted_rows(cols, rows, row_counts, indices, data)
        }
        Some(cells) => CsrMatrix::from_triplets(cols, rows, &cells, &indices, &data),
    };
    result.map_err(|e| Error::parse(path, lines_done, e.to_string()))
}

/// Options of [`write_10x_mtx`].
#[derive(Debug, Clone, PartialEq)]
pub struct MtxWriteOptions {
    /// Gzip the three files (`matrix.mtx.gz`, `features.tsv.gz`, `barcodes.tsv.gz`) as Cell
    /// Ranger 3 does. Default: `true`. When false the files are plain text without `.gz`.
    pub gzip: bool,
    /// Gzip level, 0 (store) to 9 (smallest). Default: 6 (gzip's and Cell Ranger's default).
    pub compression_level: u32,
}

impl Default for MtxWriteOptions {
    fn default() -> Self {
        MtxWriteOptions {
            gzip: true,
            compression_level: 6,
        }
    }
}

/// Cells formatted and compressed per task by [`write_10x_mtx`].
const WRITE_CELLS_PER_TASK: usize = 2048;

/// Writes `ds` as a Cell Ranger 3 Matrix Market folder: `matrix.mtx[.gz]` (genes x cells,
/// entries sorted by cell then gene, `integer` when every count is whole, else `real`),
/// `features.tsv[.gz]` (three columns: id, symbol, feature type) and `barcodes.tsv[.gz]`.
/// `dir` is created if needed.
///
/// Files are written under temporary names (`.<name>.partial`) and renamed when complete,
/// the matrix last, so an interrupted write never leaves a folder that looks complete.
/// The gzip files are written as a series of gzip members compressed in parallel (one per
/// group of cells); every gzip reader (`gzip -d`, Python's `gzip`, Scanpy) reads them as one
/// stream. Symbols are written as they are in the dataset (already made unique).
pub fn write_10x_mtx(ds: &Dataset, dir: &Path, opts: &MtxWriteOptions) -> Result<()> {
    let r = write_10x_mtx_files(ds, dir, opts);
    if r.is_err() {
        // A failed write leaves no temporary file behind (and never a file with a final name
        // that is incomplete: those are only created by renaming a finished file).
        let ext = if opts.gzip { ".gz" } else { "" };
        for name in ["features.tsv", "barcodes.tsv", "matrix.mtx"] {
            let _ = std::fs::remove_file(dir.join(format!(".{name}{ext}.partial")));
        }
    }
    r
}

fn write_10x_mtx_files(ds: &Dataset, dir: &Path, opts: &MtxWriteOptions) -> Result<()> {
    use rayon::prelude::*;
    use std::io::Write;
    if opts.compression_level > 9 {
        return Err(Error::option(
            "compression_level",
            format!("{} is not in 0..=9", opts.compression_level),
        ));
    }
    if ds.cells.len() != ds.n_cells() || ds.genes.len() != ds.n_genes() {
        return Err(Error::data(
            "write_10x_mtx",
            "cell or gene table does not match the matrix",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let ext = if opts.gzip { ".gz" } else { "" };
    let level = flate2::Compression::new(opts.compression_level);
    let compress = |text: Vec<u8>| -> std::io::Result<Vec<u8>> {
        if !opts.gzip {
            return Ok(text);
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(text.len() / 3 + 64), level);
        enc.write_all(&text)?;
        enc.finish()
    };
    // Writes `parts` (produced by `make`, in order) to `name` under a temporary name.
    let write_file = |name: &str,
                      make: &mut dyn FnMut() -> Option<std::io::Result<Vec<u8>>>|
     -> Result<(PathBuf, PathBuf)> {
        let final_path = dir.join(format!("{name}{ext}"));
        let tmp = dir.join(format!(".{name}{ext}.partial"));
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        while let Some(part) = make() {
            let part = part.map_err(|e| Error::io(&tmp, e))?;
            w.write_all(&part).map_err(|e| Error::io(&tmp, e))?;
        }
        let f = w
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        Ok((tmp, final_path))
    };
    let one_shot = |text: Vec<u8>| {
        let mut once = Some(text);
        move || once.take().map(compress)
    };

    let mut features = Vec::new();
    for j in 0..ds.n_genes() {
        for (k, field) in [
            &ds.genes.ids[j],
            &ds.genes.symbols[j],
            &ds.genes.feature_types[j],
        ]
        .into_iter()
        .enumerate()
        {
            if field.contains(['\t', '\n', '\r']) {
                return Err(Error::data(
                    "write_10x_mtx",
                    format!("gene {j}: field {field:?} contains a tab or line break"),
                ));
            }
            features.extend_from_slice(field.as_bytes());
            features.push(if k == 2 { b'\n' } else { b'\t' });
        }
    }
    let feat = write_file("features.tsv", &mut one_shot(features))?;

    let mut barcodes = Vec::new();
    for b in &ds.cells.barcodes {
        if b.contains(['\t', '\n', '\r']) {
            return Err(Error::data(
                "write_10x_mtx",
                format!("barcode {b:?} contains a tab or line break"),
            ));
        }
        barcodes.extend_from_slice(b.as_bytes());
        barcodes.push(b'\n');
    }
    let bc = write_file("barcodes.tsv", &mut one_shot(barcodes))?;

    let x = &ds.counts;
    let integer = x
        .data()
        .par_iter()
        .all(|&v| v >= 0.0 && v.fract() == 0.0 && v < 1e15);
    let header = format!(
        "%%MatrixMarket matrix coordinate {} general\n%metadata_json: {{\"software_version\": \"scrna-{}\", \"format_version\": 2}}\n{} {} {}\n",
        if integer { "integer" } else { "real" },
        env!("CARGO_PKG_VERSION"),
        x.n_cols(),
        x.n_rows(),
        x.nnz()
    );
    let n = x.n_rows();
    let threads = rayon::current_num_threads().max(1);
    let mut next_cell = 0usize;
    let mut queue: std::collections::VecDeque<std::io::Result<Vec<u8>>> =
        std::collections::VecDeque::new();
    queue.push_back(compress(header.into_bytes()));
    let mut make = || {
        if queue.is_empty() && next_cell < n {
            // Format and compress 2 x threads groups of cells in parallel.
            let starts: Vec<usize> = (next_cell..n)
                .step_by(WRITE_CELLS_PER_TASK)
                .take(2 * threads)
                .collect();
            let parts: Vec<std::io::Result<Vec<u8>>> = starts
                .par_iter()
                .map(|&a| {
                    let b = (a + WRITE_CELLS_PER_TASK).min(n);
                    let mut text = Vec::with_capacity((x.indptr()[b] - x.indptr()[a]) * 16);
                    let mut ibuf = itoa_buf();
                    for r in a..b {
                        let (idx, val) = x.row(r);
                        let cell = fmt_u64(&mut ibuf, r as u64 + 1).to_vec();
                        for (&g, &v) in idx.iter().zip(val) {
                            text.extend_from_slice(fmt_u64(&mut ibuf, g as u64 + 1));
                            text.push(b' ');
                            text.extend_from_slice(&cell);
                            text.push(b' ');
                            if integer {
                                text.extend_from_slice(fmt_u64(&mut ibuf, v as u64));
                            } else {
                                text.extend_from_slice(format!("{v}").as_bytes());
                            }
                            text.push(b'\n');
                        }
                    }
                    compress(text)
                })
                .collect();
            next_cell = starts
                .last()
                .map_or(n, |&a| (a + WRITE_CELLS_PER_TASK).min(n));
            queue.extend(parts);
        }
        queue.pop_front()
    };
    let mat = write_file("matrix.mtx", &mut make)?;

    for (tmp, fin) in [feat, bc, mat] {
        std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
    }
    Ok(())
}

fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

/// Formats `v` in decimal into the end of `buf`, returning the digits.
#[inline]
fn fmt_u64(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers() {
        assert_eq!(parse_index(b"123"), Some(123));
        assert_eq!(parse_index(b"-1"), None);
        assert_eq!(parse_index(b""), None);
        assert_eq!(parse_value_checked(b"2.5"), Ok(2.5));
        assert!(parse_value_checked(b"-2").unwrap_err().contains("negative"));
        assert!(parse_value_checked(b"abc")
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_value_checked(b"nan").is_err());
    }
}
