//! Shared HDF5 helpers for the 10x HDF5 and `.h5ad` readers and writers (through `hdf5-pure`).
//!
//! - [`open`]: opens a file lazily (`File::open_streaming`), turning every failure, a panic of
//!   the parser on a corrupt file included, into [`Error::Hdf5`].
//! - [`read_numeric`]: reads a 1-D numeric dataset into `Vec<T>`, inflating gzip + shuffle
//!   chunks in parallel with rayon (the crate itself decompresses one chunk after another),
//!   converting each element on the fly so that no second copy of the data is ever held.
//! - [`chunk_len`]: the chunk length used when writing (at most 65,535 elements: longer
//!   compressed chunks are written with a size encoding that HDF5 2.0 / h5py 3.16 reject).
//! - [`declare_appendable`], [`open_for_append`], [`append_converted`]: writing large 1-D
//!   arrays piece by piece. The file is first written with those datasets empty (chunked,
//!   unlimited); it is then reopened read-write and each array is appended through
//!   `hdf5-pure`'s buffered appender, which compresses and writes every chunk as it fills,
//!   so no copy of a whole array is ever held.

mod decode;
mod num;
mod range;
mod read;
mod write;

pub(crate) use range::RangeReader;
pub(crate) use read::read_numeric;
pub(crate) use write::{
    append_converted, append_values, chunk_len, declare_appendable, open_for_append, MAX_CHUNK,
};

use crate::error::{Error, Result};
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Runs `f`, turning a panic inside the HDF5 parser into an [`Error::Hdf5`] about `object`.
///
/// A last resort for corrupt files: `hdf5-pure` validates what it parses, but a reader must
/// never bring the process down on bad input.
pub(crate) fn guard<T>(path: &Path, object: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".to_string());
            Err(Error::hdf5(
                path,
                object,
                format!("corrupt file (reader failed: {msg})"),
            ))
        }
    }
}

/// Opens `path` for lazy reading. A missing file is [`Error::Io`]; a file that is not HDF5 or
/// whose superblock cannot be parsed is [`Error::Hdf5`] about `/`.
pub(crate) fn open(path: &Path) -> Result<hdf5_pure::File> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut sig = [0u8; 8];
    let n = f.read(&mut sig).map_err(|e| Error::io(path, e))?;
    if n < 8 || &sig != b"\x89HDF\r\n\x1a\n" {
        return Err(Error::hdf5(
            path,
            "/",
            "not an HDF5 file (no HDF5 signature at the start)",
        ));
    }
    guard(path, "/", || {
        hdf5_pure::File::open_streaming(path).map_err(|e| Error::hdf5(path, "/", e))
    })
}

/// Opens dataset `name` (a full path such as `/matrix/data`), naming it in the error.
pub(crate) fn dataset(
    file: &hdf5_pure::File,
    path: &Path,
    name: &str,
) -> Result<hdf5_pure::Dataset> {
    let ds = guard(path, name, || {
        file.dataset(name)
            .map_err(|e| Error::hdf5(path, name, format!("missing or unreadable dataset: {e}")))
    })?;
    guard(path, name, || check_chunks_in_file(&ds, path, name))?;
    Ok(ds)
}

/// The stored chunks of `ds` when it is chunked and its chunk index can be read.
fn stored_chunks(ds: &hdf5_pure::Dataset) -> Option<Vec<hdf5_pure::Chunk>> {
    if ds.is_chunked() {
        ds.chunks().ok()
    } else {
        None
    }
}

/// Refuses a chunked dataset whose chunk index places a chunk (partly) past the end of the
/// file.
///
/// `hdf5-pure`'s reader allocates a chunk's recorded stored size before reading it and only
/// then finds the bytes missing, so a chunk record whose size field was corrupted (up to
/// 4 GB, from 4 bytes of the index) made it allocate that much for a file of a few kB. Every
/// dataset our readers open goes through this check first. A chunk index that cannot be
/// read at all is left to the reader, which reports it.
fn check_chunks_in_file(ds: &hdf5_pure::Dataset, path: &Path, name: &str) -> Result<()> {
    let Some(chunks) = stored_chunks(ds) else {
        return Ok(());
    };
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if let Some(c) = chunks.iter().find(|c| {
        c.address
            .checked_add(c.storage_size)
            .is_none_or(|end| end > file_len)
    }) {
        return Err(Error::hdf5(
            path,
            name,
            format!(
                "corrupt chunk index: the chunk at element {:?} ({} bytes at byte {}) lies past \
                 the end of the file ({file_len} bytes)",
                c.offset, c.storage_size, c.address
            ),
        ));
    }
    Ok(())
}

/// True when `name` resolves to a group.
pub(crate) fn has_group(file: &hdf5_pure::File, path: &Path, name: &str) -> bool {
    guard(path, name, || Ok(file.group(name).is_ok())).unwrap_or(false)
}

/// Reads a string dataset (fixed or variable length).
pub(crate) fn read_strings(file: &hdf5_pure::File, path: &Path, name: &str) -> Result<Vec<String>> {
    let ds = dataset(file, path, name)?;
    guard(path, name, || {
        ds.read_string()
            .map_err(|e| Error::hdf5(path, name, format!("cannot read strings: {e}")))
    })
}
