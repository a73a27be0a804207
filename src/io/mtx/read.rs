//! Reading the matrix file into a cells x genes CSR matrix: one thread decompresses blocks of
//! whole lines, rayon threads parse them, and the entries are gathered in file order.

use super::parse::{line_of_entry, parse_entries, parse_header, Header, LineError, Parsed};
use super::{read_error, MtxFiles};
use crate::error::{Error, Result};
use crate::io::open_text;
use crate::sparse::{fits_u16, sort_rows, ColIndex, Counts, CsrMatrix};
use std::io::BufRead;
use std::path::Path;

/// Size of the decompressed blocks handed to the parsing threads.
const BLOCK: usize = 4 << 20;

/// A block of decompressed text that ends at a line boundary (or at the end of the file).
struct Block {
    data: Vec<u8>,
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

/// Reads the matrix file (genes x cells) into a cells x genes CSR matrix.
///
/// One thread decompresses the file into blocks of whole lines; rayon threads parse batches of
/// blocks; the entries are appended in file order. When the entries are sorted by cell (as
/// 10x writes them) the CSR arrays are filled directly and no (cell, gene, value) triplets are
/// kept: peak memory is the final matrix plus a few blocks. Otherwise the cells are kept too
/// and the matrix is built from triplets at the end. Duplicates are summed either way.
pub(super) fn read_matrix(
    path: &Path,
    n_genes: usize,
    n_cells: usize,
    files: &MtxFiles,
) -> Result<Counts> {
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
) -> Result<Counts> {
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

    // Reserve for the declared entries, but never more than the file can hold.
    let mut entries = Entries::new(rows, nnz.min(max_entries));
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
            entries.extend(&p.genes, &p.vals);
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
            entries.into_rows(cols, rows, row_counts)
        }
        Some(cells) => {
            let (indices, data) = entries.into_wide();
            CsrMatrix::from_triplets(cols, rows, &cells, &indices, &data).map(Counts::new)
        }
    };
    result.map_err(|e| Error::parse(path, lines_done, e.to_string()))
}

/// The entries read so far, in file order: `u16` gene indices and counts while every count is
/// an integer below 65,536 (with at most 65,536 genes), else `u32` indices and `f32` values
/// (the entries so far converted once, when the first other value comes).
enum Entries {
    Compact(Vec<u16>, Vec<u16>),
    Wide(Vec<u32>, Vec<f32>),
}

impl Entries {
    /// No entries yet, with room for `reserve` (none when that much memory is refused).
    fn new(n_genes: usize, reserve: usize) -> Entries {
        fn room<A, B>(reserve: usize) -> (Vec<A>, Vec<B>) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            if a.try_reserve_exact(reserve).is_err() || b.try_reserve_exact(reserve).is_err() {
                return (Vec::new(), Vec::new());
            }
            (a, b)
        }
        if n_genes <= u16::LIMIT {
            let (i, v) = room(reserve);
            Entries::Compact(i, v)
        } else {
            let (i, v) = room(reserve);
            Entries::Wide(i, v)
        }
    }

    /// Appends entries (gene indices below the number of genes, checked by the parser).
    fn extend(&mut self, genes: &[u32], vals: &[f32]) {
        if let Entries::Compact(i, v) = self {
            if vals.iter().all(|&x| fits_u16(x)) {
                i.extend(genes.iter().map(|&g| g as u16));
                v.extend(vals.iter().map(|&x| x as u16));
                return;
            }
            let wide = std::mem::replace(self, Entries::Compact(Vec::new(), Vec::new()));
            let (i, v) = wide.into_wide();
            *self = Entries::Wide(i, v);
        }
        if let Entries::Wide(i, v) = self {
            i.extend_from_slice(genes);
            v.extend_from_slice(vals);
        }
    }

    /// The entries as `u32` indices and `f32` values.
    fn into_wide(self) -> (Vec<u32>, Vec<f32>) {
        match self {
            Entries::Wide(i, v) => (i, v),
            Entries::Compact(i, v) => (
                i.into_iter().map(u32::from).collect(),
                v.into_iter().map(f32::from).collect(),
            ),
        }
    }

    /// The matrix of `n_rows` rows whose entries follow one another row by row as `indptr`
    /// says (each row's genes in any order): compact when every row holds each gene at most
    /// once, else with the repeated entries summed, as `f32` (compacted again when the sums
    /// fit).
    fn into_rows(self, n_rows: usize, n_cols: usize, indptr: Vec<usize>) -> Result<Counts> {
        match self {
            Entries::Compact(mut i, mut v) => {
                if indptr.last() != Some(&i.len()) {
                    return Err(Error::data(
                        "CSR matrix",
                        "indptr does not match the entries",
                    ));
                }
                sort_rows(n_rows, &indptr, &mut i, &mut v)?;
                let repeated = indptr
                    .windows(2)
                    .any(|w| i[w[0]..w[1]].windows(2).any(|p| p[0] == p[1]));
                if !repeated {
                    return Ok(Counts::Compact(CsrMatrix::try_from_parts(
                        n_rows, n_cols, indptr, i, v,
                    )?));
                }
                let (i, v) = Entries::Compact(i, v).into_wide();
                CsrMatrix::from_unsorted_rows(n_rows, n_cols, indptr, i, v).map(Counts::new)
            }
            Entries::Wide(i, v) => {
                CsrMatrix::from_unsorted_rows(n_rows, n_cols, indptr, i, v).map(Counts::new)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two cells x 3 genes from entries in file order (cell by cell, genes in any order).
    fn rows(genes: &[u32], vals: &[f32], split: &[usize]) -> Counts {
        let mut e = Entries::new(3, 0);
        for w in split.windows(2) {
            e.extend(&genes[w[0]..w[1]], &vals[w[0]..w[1]]);
        }
        e.into_rows(2, 3, vec![0, 2, genes.len()]).unwrap()
    }

    #[test]
    fn entries_stay_compact_while_counts_fit() {
        // genes out of order inside cell 0
        let c = rows(&[2, 0, 1, 2], &[5., 65535., 1., 2.], &[0, 2, 4]);
        assert!(c.is_compact());
        assert_eq!(c.to_dense().row(0).to_vec(), vec![65535., 0., 5.]);
        assert_eq!(c.to_dense().row(1).to_vec(), vec![0., 1., 2.]);
        // a non-integer value in the second block: the first block's entries are widened
        let c = rows(&[2, 0, 1, 2], &[5., 3., 0.5, 2.], &[0, 2, 4]);
        assert!(!c.is_compact());
        assert_eq!(c.to_dense().row(0).to_vec(), vec![3., 0., 5.]);
        assert_eq!(c.to_dense().row(1).to_vec(), vec![0., 0.5, 2.]);
        // a gene twice in a cell: summed, compact again when the sum fits, else wide
        let c = rows(&[1, 1, 0, 2], &[4., 5., 1., 1.], &[0, 4]);
        assert!(c.is_compact());
        assert_eq!(c.to_dense().row(0).to_vec(), vec![0., 9., 0.]);
        let c = rows(&[1, 1, 0, 2], &[65535., 5., 1., 1.], &[0, 4]);
        assert!(!c.is_compact());
        assert_eq!(c.get(0, 1), 65540.);
    }
}
