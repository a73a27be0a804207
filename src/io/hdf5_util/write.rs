//! Writing: the chunk length of compressed 1-D datasets and the piecewise append of large
//! arrays to a file written with those datasets empty.

use crate::error::{Error, Result};
use crate::lognorm::{row_values, MatrixValues};
use hdf5_pure::{FileAccessProperties, GroupBuilder, H5Element, MaxExtent, SyncPolicy};
use std::path::Path;

/// Largest chunk (in elements) written for a compressed 1-D dataset.
pub(crate) const MAX_CHUNK: usize = 65_535;

/// Chunk length for a compressed 1-D dataset of `n` elements: `min(n, 65,535)`, at least 1.
pub(crate) fn chunk_len(n: usize) -> u64 {
    n.clamp(1, MAX_CHUNK) as u64
}

/// Elements converted and handed to an appender per call by [`append_converted`] (4 MB of
/// `f32`): the memory a piecewise write holds besides the appender's own chunk buffer.
pub(crate) const APPEND_PIECE: usize = 1 << 20;

/// Declares dataset `name` in `g` as a 1-D dataset of `T` holding `first` (often empty),
/// extendable without limit along its one axis and chunked by `chunk` elements, with shuffle
/// and gzip at `level` when `level` is `Some` (no filter otherwise). The rest of the array
/// is appended after the file is written: [`open_for_append`], then [`append_converted`] or
/// the dataset's `buffered_appender`.
pub(crate) fn declare_appendable<T: H5Element>(
    g: &mut GroupBuilder,
    name: &str,
    first: &[T],
    chunk: u64,
    level: Option<u32>,
) {
    let d = g.create_dataset(name);
    d.with_data(first)
        .with_shape(&[first.len() as u64])
        .with_maxshape(&[MaxExtent::Unlimited])
        .with_chunks(&[chunk.max(1)]);
    if let Some(l) = level {
        d.with_shuffle().with_deflate(l);
    }
}

/// Reopens the file just written at `tmp` read-write for appending (synchronized once, when
/// closed). Errors name `path`, the file the caller is producing.
pub(crate) fn open_for_append(tmp: &Path, path: &Path) -> Result<hdf5_pure::File> {
    hdf5_pure::File::open_rw_with_options(
        tmp,
        FileAccessProperties::new().with_sync_policy(SyncPolicy::OnClose),
    )
    .map_err(|e| Error::hdf5(path, "/", format!("cannot reopen for writing: {e}")))
}

/// Appends `src` to the dataset `name` of `file` (declared by [`declare_appendable`] with
/// element type `T`), converting [`APPEND_PIECE`] elements at a time through `conv` into one
/// reusable buffer, and writes the last partial chunk. Errors name `path` and `name`.
pub(crate) fn append_converted<S: Copy, T: H5Element + Default>(
    file: &hdf5_pure::File,
    path: &Path,
    name: &str,
    src: &[S],
    conv: impl Fn(S) -> T,
) -> Result<()> {
    let err = |e: hdf5_pure::Error| Error::hdf5(path, name, format!("append failed: {e}"));
    let mut ds = file.dataset(name).map_err(err)?;
    let mut app = ds.buffered_appender().map_err(err)?;
    let mut buf: Vec<T> = Vec::with_capacity(src.len().min(APPEND_PIECE));
    for piece in src.chunks(APPEND_PIECE) {
        buf.clear();
        buf.extend(piece.iter().map(|&x| conv(x)));
        app.append(&buf).map_err(err)?;
    }
    app.finish().map_err(err)
}

/// Appends the values of `x` (row after row, as [`MatrixValues`] gives them) to the dataset
/// `name`, about [`APPEND_PIECE`] values at a time.
pub(crate) fn append_values(
    file: &hdf5_pure::File,
    path: &Path,
    name: &str,
    x: &dyn MatrixValues,
) -> Result<()> {
    let err = |e: hdf5_pure::Error| Error::hdf5(path, name, format!("append failed: {e}"));
    let mut ds = file.dataset(name).map_err(err)?;
    let mut app = ds.buffered_appender().map_err(err)?;
    let mut buf: Vec<f32> = Vec::with_capacity(x.nnz().min(APPEND_PIECE));
    for r in 0..x.shape().0 {
        row_values(x, r, &mut buf);
        if buf.len() >= APPEND_PIECE {
            app.append(&buf).map_err(err)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        app.append(&buf).map_err(err)?;
    }
    app.finish().map_err(err)
}
