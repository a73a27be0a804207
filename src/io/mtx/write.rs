//! Writing a dataset as a Cell Ranger 3 Matrix Market folder.

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

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

    let x = &*ds.counts.to_csr();
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
