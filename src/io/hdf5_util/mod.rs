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

use crate::error::{Error, Result};
use crate::lognorm::{row_values, MatrixValues};
use hdf5_pure::{
    DType, Datatype, DatatypeByteOrder, FileAccessProperties, GroupBuilder, H5Element, MaxExtent,
    SyncPolicy,
};
use rayon::prelude::*;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
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
    let p = x.pattern();
    let mut buf: Vec<f32> = Vec::with_capacity(p.nnz().min(APPEND_PIECE));
    for r in 0..p.n_rows() {
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

/// A numeric element type we read into.
pub(crate) trait Num: Copy + Default + Send + Sync + 'static {
    /// Converts an integer; `None` when out of range.
    fn from_i64(v: i64) -> Option<Self>;
    /// Converts an unsigned integer; `None` when out of range.
    fn from_u64(v: u64) -> Option<Self>;
    /// Converts a float; `None` when it cannot be represented (e.g. negative for unsigned).
    fn from_f64(v: f64) -> Option<Self>;
}

impl Num for f32 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f32)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f32)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v as f32)
    }
}
impl Num for f64 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}
macro_rules! int_num {
    ($t:ty) => {
        impl Num for $t {
            fn from_i64(v: i64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_u64(v: u64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_f64(v: f64) -> Option<Self> {
                if v.fract() == 0.0 && v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64 {
                    Some(v as $t)
                } else {
                    None
                }
            }
        }
    };
}
int_num!(u32);
int_num!(i32);
int_num!(i64);
int_num!(u64);
int_num!(usize);

/// Stored element kinds the fast path decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl Kind {
    fn from_dtype(d: &DType) -> Option<Kind> {
        Some(match d {
            DType::I8 => Kind::I8,
            DType::U8 => Kind::U8,
            DType::I16 => Kind::I16,
            DType::U16 => Kind::U16,
            DType::I32 => Kind::I32,
            DType::U32 => Kind::U32,
            DType::I64 => Kind::I64,
            DType::U64 => Kind::U64,
            DType::F32 => Kind::F32,
            DType::F64 => Kind::F64,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Kind::I8 | Kind::U8 => 1,
            Kind::I16 | Kind::U16 => 2,
            Kind::I32 | Kind::U32 | Kind::F32 => 4,
            Kind::I64 | Kind::U64 | Kind::F64 => 8,
        }
    }
    /// Decodes little-endian `bytes` (a whole number of elements) into `out`.
    /// Returns the index of the first element that does not fit `T`.
    fn decode<T: Num>(self, bytes: &[u8], out: &mut [T]) -> std::result::Result<(), usize> {
        macro_rules! go {
            ($n:expr, $ty:ty, $conv:ident, $wide:ty) => {
                for (i, (o, b)) in out.iter_mut().zip(bytes.chunks_exact($n)).enumerate() {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(b);
                    *o = T::$conv(<$ty>::from_le_bytes(a) as $wide).ok_or(i)?;
                }
            };
        }
        match self {
            Kind::I8 => go!(1, i8, from_i64, i64),
            Kind::U8 => go!(1, u8, from_u64, u64),
            Kind::I16 => go!(2, i16, from_i64, i64),
            Kind::U16 => go!(2, u16, from_u64, u64),
            Kind::I32 => go!(4, i32, from_i64, i64),
            Kind::U32 => go!(4, u32, from_u64, u64),
            Kind::I64 => go!(8, i64, from_i64, i64),
            Kind::U64 => go!(8, u64, from_u64, u64),
            Kind::F32 => go!(4, f32, from_f64, f64),
            Kind::F64 => go!(8, f64, from_f64, f64),
        }
        Ok(())
    }
}

fn little_endian(dt: &Datatype) -> bool {
    match dt {
        Datatype::FixedPoint { byte_order, .. } | Datatype::FloatingPoint { byte_order, .. } => {
            *byte_order == DatatypeByteOrder::LittleEndian
        }
        _ => false,
    }
}

/// Reads the 1-D numeric dataset `name` into `Vec<T>`, converting each element (an element
/// that does not fit `T`, such as a negative index, is an error naming its position).
///
/// Chunked datasets compressed with deflate (and optionally shuffle) are decoded in parallel:
/// each rayon task reads a chunk's stored bytes from the file, inflates and unshuffles them in
/// its own buffers and converts straight into its part of the output. Other layouts and
/// filters go through `hdf5-pure`'s own reader.
pub(crate) fn read_numeric<T: Num>(
    file: &hdf5_pure::File,
    path: &Path,
    name: &str,
) -> Result<Vec<T>> {
    let ds = dataset(file, path, name)?;
    guard(path, name, || read_numeric_ds(&ds, path, name))
}

fn read_numeric_ds<T: Num>(ds: &hdf5_pure::Dataset, path: &Path, name: &str) -> Result<Vec<T>> {
    let err = |m: String| Error::hdf5(path, name, m);
    let shape = ds.shape().map_err(|e| err(e.to_string()))?;
    if shape.len() > 1 {
        return Err(err(format!(
            "expected a 1-D dataset, found shape {shape:?}"
        )));
    }
    let n = shape.first().copied().unwrap_or(1) as usize;
    let dtype = ds.dtype().map_err(|e| err(e.to_string()))?;
    let kind = Kind::from_dtype(&dtype)
        .ok_or_else(|| err(format!("expected numbers, found element type {dtype}")))?;
    let filters = ds.filters();
    let chunks = stored_chunks(ds);
    if let Some(chunks) = &chunks {
        let file_len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        check_declared_size::<T>(chunks, n, kind.size(), file_len, &filters)
            .map_err(|m| err(format!("corrupt header: {m}")))?;
    }
    let fast = shape.len() == 1
        && filters.iter().all(|&f| f == 1 || f == 2)
        && ds.datatype().map(|d| little_endian(&d)).unwrap_or(false);
    if let (true, Some(chunks)) = (fast, &chunks) {
        if let Some(v) = read_chunks_parallel(ds, path, name, chunks, n, kind, &filters)? {
            return Ok(v);
        }
    }
    // General path through the crate's reader.
    let conv_err = |i: usize| err(format!("element {i} is out of range for its use"));
    let out: Vec<T> = match kind {
        Kind::F32 | Kind::F64 => {
            let v = ds.read_f64().map_err(|e| err(e.to_string()))?;
            v.into_iter()
                .enumerate()
                .map(|(i, x)| T::from_f64(x).ok_or_else(|| conv_err(i)))
                .collect::<Result<_>>()?
        }
        Kind::U64 => {
            let v = ds.read_u64().map_err(|e| err(e.to_string()))?;
            v.into_iter()
                .enumerate()
                .map(|(i, x)| T::from_u64(x).ok_or_else(|| conv_err(i)))
                .collect::<Result<_>>()?
        }
        _ => {
            let v = ds.read_i64().map_err(|e| err(e.to_string()))?;
            v.into_iter()
                .enumerate()
                .map(|(i, x)| T::from_i64(x).ok_or_else(|| conv_err(i)))
                .collect::<Result<_>>()?
        }
    };
    if out.len() != n {
        return Err(err(format!("read {} elements, shape says {n}", out.len())));
    }
    Ok(out)
}

/// The parallel chunk decoder; `Ok(None)` when the chunk geometry is not the simple regular
/// 1-D grid (the caller then uses the crate's reader).
fn read_chunks_parallel<T: Num>(
    ds: &hdf5_pure::Dataset,
    path: &Path,
    name: &str,
    chunks: &[hdf5_pure::Chunk],
    n: usize,
    kind: Kind,
    filters: &[u16],
) -> Result<Option<Vec<T>>> {
    let err = |m: String| Error::hdf5(path, name, m);
    let clen = match ds.chunk_shape().map_err(|e| err(e.to_string()))? {
        Some(c) if c.len() == 1 && c[0] > 0 => c[0] as usize,
        _ => return Ok(None),
    };
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let n_slots = n.div_ceil(clen);
    let mut slots: Vec<Option<&hdf5_pure::Chunk>> = vec![None; n_slots];
    for c in chunks {
        let off = c.offset.first().copied().unwrap_or(0) as usize;
        if off % clen != 0 || off / clen >= n_slots {
            return Ok(None);
        }
        slots[off / clen] = Some(c);
    }
    let slots: Vec<Option<StoredChunk>> = slots.iter().map(|c| c.map(StoredChunk::from)).collect();
    let dec = ChunkDecoder {
        path,
        name,
        clen,
        kind,
        filters,
        file_len,
    };
    let mut out = vec![T::default(); n];
    out.par_chunks_mut(clen).enumerate().try_for_each_init(
        || (std::fs::File::open(path), Scratch::default()),
        |(fh, scratch), (slot, dst)| -> Result<()> {
            let Some(c) = &slots[slot] else {
                return Ok(()); // never written: the fill value, 0
            };
            let fh = fh
                .as_mut()
                .map_err(|e| Error::io(path, std::io::Error::new(e.kind(), e.to_string())))?;
            dec.decode(fh, c, slot, 0, dst, scratch)
        },
    )?;
    Ok(Some(out))
}

/// Largest expansion of a deflate stream.
const MAX_DEFLATE_RATIO: usize = 1032;

/// Memory the readers allocate for a dataset whose declared size its stored chunks cannot
/// back (HDF5 reads never-written chunks as the fill value, so such files are valid, but a
/// few-byte corrupt header must not make the reader allocate gigabytes).
const MAX_UNBACKED_BYTES: usize = 64 << 20;

/// Checks that `n` declared elements of `esize` bytes can come from the stored `chunks`
/// (each at most its stored size, inflated by at most [`MAX_DEFLATE_RATIO`] when deflated),
/// unless the output for them is small anyway. Filters other than deflate, shuffle and
/// Fletcher-32 have no known bound on their expansion: such datasets are not checked.
fn check_declared_size<T>(
    chunks: &[hdf5_pure::Chunk],
    n: usize,
    esize: usize,
    file_len: u64,
    filters: &[u16],
) -> std::result::Result<(), String> {
    let out_bytes = n.saturating_mul(std::mem::size_of::<T>().max(1));
    if out_bytes <= MAX_UNBACKED_BYTES || filters.iter().any(|f| !matches!(f, 1..=3)) {
        return Ok(());
    }
    let ratio = if filters.contains(&1) {
        MAX_DEFLATE_RATIO as u64
    } else {
        1
    };
    let stored: u64 = chunks
        .iter()
        .map(|c| c.storage_size.min(file_len))
        .fold(0u64, |a, b| a.saturating_add(b));
    let max_elems = stored.saturating_mul(ratio) / esize.max(1) as u64;
    if n as u64 > max_elems {
        return Err(format!(
            "{n} elements declared, but the {} stored chunks ({stored} bytes) hold at most \
             {max_elems}",
            chunks.len()
        ));
    }
    Ok(())
}

/// Where one stored chunk lies in the file.
#[derive(Debug, Clone, Copy)]
struct StoredChunk {
    address: u64,
    size: u64,
    filter_mask: u32,
}

impl From<&hdf5_pure::Chunk> for StoredChunk {
    fn from(c: &hdf5_pure::Chunk) -> Self {
        StoredChunk {
            address: c.address,
            size: c.storage_size,
            filter_mask: c.filter_mask,
        }
    }
}

/// Per-thread buffers of the chunk decoder.
#[derive(Default)]
struct Scratch {
    raw: Vec<u8>,
    inflated: Vec<u8>,
    unshuffled: Vec<u8>,
}

/// Decodes stored chunks of a regular 1-D chunked dataset (deflate and/or shuffle filters).
struct ChunkDecoder<'a> {
    path: &'a Path,
    name: &'a str,
    clen: usize,
    kind: Kind,
    filters: &'a [u16],
    file_len: u64,
}

impl ChunkDecoder<'_> {
    /// Reads chunk `slot` (stored at `c`), undoes its filters and converts its elements
    /// `skip..skip + dst.len()` into `dst`.
    fn decode<T: Num>(
        &self,
        fh: &mut std::fs::File,
        c: &StoredChunk,
        slot: usize,
        skip: usize,
        dst: &mut [T],
        s: &mut Scratch,
    ) -> Result<()> {
        let (clen, esize) = (self.clen, self.kind.size());
        let err = |m: String| Error::hdf5(self.path, self.name, m);
        if c.address
            .checked_add(c.size)
            .is_none_or(|end| end > self.file_len)
        {
            return Err(err(format!(
                "chunk at element {} lies past the end of the file (truncated file?)",
                slot * clen
            )));
        }
        let raw = &mut s.raw;
        raw.resize(c.size as usize, 0);
        fh.seek(SeekFrom::Start(c.address))
            .and_then(|_| fh.read_exact(raw))
            .map_err(|e| Error::io(self.path, e))?;
        // Undo the filters in reverse pipeline order, skipping masked ones.
        for (i, &f) in self.filters.iter().enumerate().rev() {
            if c.filter_mask & (1 << i) != 0 {
                continue;
            }
            if f == 1 {
                // The chunk length comes from the header: reserve no more than the
                // compressed bytes can inflate to.
                let expect = clen
                    .saturating_mul(esize)
                    .min(raw.len().saturating_mul(MAX_DEFLATE_RATIO));
                inflate(raw, expect, &mut s.inflated).map_err(|e| {
                    err(format!(
                        "chunk at element {}: bad deflate data: {e}",
                        slot * clen
                    ))
                })?;
                std::mem::swap(raw, &mut s.inflated);
            } else {
                unshuffle(raw, esize, &mut s.unshuffled);
                std::mem::swap(raw, &mut s.unshuffled);
            }
        }
        let (from, to) = (skip * esize, (skip + dst.len()) * esize);
        if raw.len() < to {
            return Err(err(format!(
                "chunk at element {} decodes to {} bytes, expected at least {to}",
                slot * clen,
                raw.len()
            )));
        }
        self.kind.decode(&raw[from..to], dst).map_err(|i| {
            err(format!(
                "element {} is out of range for its use",
                slot * clen + skip + i
            ))
        })
    }
}

/// A 1-D numeric dataset opened for reading ranges of elements, so that a dataset larger than
/// memory can be read piece by piece.
///
/// For the common layout (chunked, deflate and/or shuffle, little-endian) the chunk index is
/// read once when opening and [`read_range`](Self::read_range) decodes only the chunks the
/// range overlaps, in parallel, straight into the output. Any other layout goes through
/// `hdf5-pure`'s windowed reader (`Dataset::read_*_rows`), which also reads only the storage
/// the window overlaps, on one thread.
pub(crate) struct RangeReader {
    ds: hdf5_pure::Dataset,
    path: std::path::PathBuf,
    name: String,
    len: usize,
    kind: Kind,
    /// Chunk length, stored chunks by slot and the filter ids, on the fast path.
    fast: Option<(usize, Vec<Option<StoredChunk>>, Vec<u16>)>,
    file_len: u64,
}

impl RangeReader {
    /// Opens dataset `name` of `file` (at `path`) for range reads. Errors as [`read_numeric`]
    /// for a missing dataset, more than one dimension or non-numeric elements.
    pub(crate) fn open(file: &hdf5_pure::File, path: &Path, name: &str) -> Result<RangeReader> {
        let ds = dataset(file, path, name)?;
        guard(path, name, || {
            let err = |m: String| Error::hdf5(path, name, m);
            let shape = ds.shape().map_err(|e| err(e.to_string()))?;
            if shape.len() != 1 {
                return Err(err(format!(
                    "expected a 1-D dataset, found shape {shape:?}"
                )));
            }
            let len = shape[0] as usize;
            let dtype = ds.dtype().map_err(|e| err(e.to_string()))?;
            let kind = Kind::from_dtype(&dtype)
                .ok_or_else(|| err(format!("expected numbers, found element type {dtype}")))?;
            let filters = ds.filters();
            let mut fast = None;
            if ds.is_chunked()
                && filters.iter().all(|&f| f == 1 || f == 2)
                && ds.datatype().map(|d| little_endian(&d)).unwrap_or(false)
            {
                if let (Ok(Some(c)), Ok(chunks)) = (ds.chunk_shape(), ds.chunks()) {
                    if c.len() == 1 && c[0] > 0 {
                        let clen = c[0] as usize;
                        let n_slots = len.div_ceil(clen);
                        // The slot table is sized by the declared length; a length far beyond
                        // the stored chunks (mostly unallocated, or a corrupted shape) takes
                        // the general reader instead of allocating a table for it.
                        let mut regular =
                            n_slots <= chunks.len().saturating_mul(2).saturating_add(1024);
                        let mut slots = Vec::new();
                        if regular {
                            slots = vec![None; n_slots];
                            for ch in &chunks {
                                let off = ch.offset.first().copied().unwrap_or(0) as usize;
                                if off % clen != 0 || off / clen > n_slots {
                                    regular = false;
                                    break;
                                }
                                // A chunk past the current extent (after a shrink) is never
                                // read.
                                if off / clen < n_slots {
                                    slots[off / clen] = Some(StoredChunk::from(ch));
                                }
                            }
                        }
                        if regular {
                            fast = Some((clen, slots, filters));
                        }
                    }
                }
            }
            let file_len = std::fs::metadata(path)
                .map_err(|e| Error::io(path, e))?
                .len();
            Ok(RangeReader {
                ds,
                path: path.to_path_buf(),
                name: name.to_string(),
                len,
                kind,
                fast,
                file_len,
            })
        })
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Elements `a..b`, converted to `T` (an element that does not fit `T` is an error naming
    /// its position). Errors when the range is not within the dataset.
    pub(crate) fn read_range<T: Num>(&self, a: usize, b: usize) -> Result<Vec<T>> {
        let (path, name) = (self.path.as_path(), self.name.as_str());
        let err = |m: String| Error::hdf5(path, name, m);
        if a > b || b > self.len {
            return Err(err(format!(
                "range {a}..{b} is outside the {} elements",
                self.len
            )));
        }
        let mut out = vec![T::default(); b - a];
        if a == b {
            return Ok(out);
        }
        guard(path, name, || {
            if let Some((clen, slots, filters)) = &self.fast {
                let clen = *clen;
                // Split the output at chunk boundaries: (slot, offset in chunk, piece).
                let mut pieces = Vec::with_capacity((b - a).div_ceil(clen) + 1);
                let mut rest: &mut [T] = &mut out;
                let mut pos = a;
                while pos < b {
                    let slot = pos / clen;
                    let end = ((slot + 1) * clen).min(b);
                    let (head, tail) = rest.split_at_mut(end - pos);
                    pieces.push((slot, pos - slot * clen, head));
                    rest = tail;
                    pos = end;
                }
                let dec = ChunkDecoder {
                    path,
                    name,
                    clen,
                    kind: self.kind,
                    filters,
                    file_len: self.file_len,
                };
                pieces.into_par_iter().try_for_each_init(
                    || (std::fs::File::open(path), Scratch::default()),
                    |(fh, scratch), (slot, skip, dst)| -> Result<()> {
                        let Some(c) = &slots[slot] else {
                            dst.fill(T::default()); // never written: the fill value, 0
                            return Ok(());
                        };
                        let fh = fh.as_mut().map_err(|e| {
                            Error::io(path, std::io::Error::new(e.kind(), e.to_string()))
                        })?;
                        dec.decode(fh, c, slot, skip, dst, scratch)
                    },
                )?;
                return Ok(());
            }
            let (start, count) = (a as u64, (b - a) as u64);
            let conv_err = |i: usize| err(format!("element {} is out of range for its use", a + i));
            match self.kind {
                Kind::F32 | Kind::F64 => {
                    let v = self
                        .ds
                        .read_f64_rows(start, count)
                        .map_err(|e| err(e.to_string()))?;
                    for (i, (o, x)) in out.iter_mut().zip(v).enumerate() {
                        *o = T::from_f64(x).ok_or_else(|| conv_err(i))?;
                    }
                }
                Kind::U64 => {
                    let v = self
                        .ds
                        .read_u64_rows(start, count)
                        .map_err(|e| err(e.to_string()))?;
                    for (i, (o, x)) in out.iter_mut().zip(v).enumerate() {
                        *o = T::from_u64(x).ok_or_else(|| conv_err(i))?;
                    }
                }
                _ => {
                    let v = self
                        .ds
                        .read_i64_rows(start, count)
                        .map_err(|e| err(e.to_string()))?;
                    for (i, (o, x)) in out.iter_mut().zip(v).enumerate() {
                        *o = T::from_i64(x).ok_or_else(|| conv_err(i))?;
                    }
                }
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// Inflates the zlib stream `src` into `out` (cleared first), reserving `expect` bytes to
/// start with and doubling when the output needs more. Inflates straight into the vector's
/// spare capacity, with no zero-filling of the output first. Errors: corrupt data, or a stream
/// that ends before its end marker.
fn inflate(src: &[u8], expect: usize, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    use flate2::{Decompress, FlushDecompress, Status};
    out.clear();
    out.reserve(expect.max(64));
    let mut z = Decompress::new(true);
    loop {
        let (in_before, out_before) = (z.total_in(), out.len());
        let rest = src.get(in_before as usize..).unwrap_or(&[]);
        let status = z
            .decompress_vec(rest, out, FlushDecompress::Finish)
            .map_err(|e| e.to_string())?;
        match status {
            Status::StreamEnd => return Ok(()),
            _ if out.len() == out.capacity() => out.reserve(out.capacity()),
            _ if z.total_in() == in_before && out.len() == out_before => {
                return Err("the stream ends before its end marker".into())
            }
            _ => {}
        }
    }
}

/// Undoes HDF5's byte shuffle: byte `b` of element `i` is stored at `b * n + i`. The common
/// element sizes (2, 4, 8) go through [`interleave`]; bytes past the last whole element are
/// copied as they are.
fn unshuffle(src: &[u8], esize: usize, dst: &mut Vec<u8>) {
    dst.clear();
    if esize <= 1 {
        dst.extend_from_slice(src);
        return;
    }
    let n = src.len() / esize;
    match esize {
        2 => interleave::<2>(src, n, dst),
        4 => interleave::<4>(src, n, dst),
        8 => interleave::<8>(src, n, dst),
        _ => {
            dst.resize(n * esize, 0);
            for b in 0..esize {
                let plane = &src[b * n..(b + 1) * n];
                for (i, &v) in plane.iter().enumerate() {
                    dst[i * esize + b] = v;
                }
            }
        }
    }
    dst.extend_from_slice(&src[n * esize..]);
}

/// Appends the `n` elements of `E` bytes whose byte planes are `src[b * n..(b + 1) * n]`:
/// groups of 16 elements by SSE2 byte interleaves on x86-64 ([`interleave16`]), the rest one
/// byte at a time.
fn interleave<const E: usize>(src: &[u8], n: usize, dst: &mut Vec<u8>) {
    const L: usize = 16;
    let planes: [&[u8]; E] = std::array::from_fn(|b| &src[b * n..(b + 1) * n]);
    dst.reserve(n * E);
    // elements done in whole groups
    #[cfg(target_arch = "x86_64")]
    let done = {
        let mut block = [[0u8; E]; L];
        for at in (0..n / L * L).step_by(L) {
            let group: [&[u8]; E] = std::array::from_fn(|b| &planes[b][at..at + L]);
            interleave16(&group, &mut block);
            dst.extend_from_slice(block.as_flattened());
        }
        n / L * L
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for i in done..n {
        for plane in &planes {
            dst.push(plane[i]);
        }
    }
}

/// Interleaves the first 16 elements of `E` byte planes into `out`: for `E` of 2, 4 or 8 (and
/// planes of at least 16 bytes) with SSE2 unpacks, bytes pairwise, then 16-bit pairs, then
/// 32-bit quadruples; otherwise one byte at a time.
#[cfg(target_arch = "x86_64")]
#[inline]
fn interleave16<const E: usize>(planes: &[&[u8]; E], out: &mut [[u8; E]; 16]) {
    use std::arch::x86_64::*;
    if planes.iter().any(|p| p.len() < 16) || !matches!(E, 2 | 4 | 8) {
        for (k, e) in out.iter_mut().enumerate() {
            for (b, v) in e.iter_mut().enumerate() {
                *v = planes[b].get(k).copied().unwrap_or(0);
            }
        }
        return;
    }
    // SAFETY: SSE2 is part of the x86-64 baseline; every load reads the first 16 bytes of a
    // plane (each holds at least 16, checked above) and every store writes 16 bytes inside
    // `out`, which holds 16 * E bytes (E is 2, 4 or 8 here, and each arm stores E times).
    unsafe {
        let ld = |b: usize| _mm_loadu_si128(planes[b].as_ptr() as *const __m128i);
        let dst = out.as_mut_ptr() as *mut __m128i;
        match E {
            2 => {
                let (a, b) = (ld(0), ld(1));
                _mm_storeu_si128(dst, _mm_unpacklo_epi8(a, b));
                _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi8(a, b));
            }
            4 => {
                let (ab, cd) = ((ld(0), ld(1)), (ld(2), ld(3)));
                let ab_lo = _mm_unpacklo_epi8(ab.0, ab.1);
                let ab_hi = _mm_unpackhi_epi8(ab.0, ab.1);
                let cd_lo = _mm_unpacklo_epi8(cd.0, cd.1);
                let cd_hi = _mm_unpackhi_epi8(cd.0, cd.1);
                _mm_storeu_si128(dst, _mm_unpacklo_epi16(ab_lo, cd_lo));
                _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi16(ab_lo, cd_lo));
                _mm_storeu_si128(dst.add(2), _mm_unpacklo_epi16(ab_hi, cd_hi));
                _mm_storeu_si128(dst.add(3), _mm_unpackhi_epi16(ab_hi, cd_hi));
            }
            8 => {
                // bytes of planes (0, 1), (2, 3), (4, 5), (6, 7), low and high halves
                let pair = |b: usize| {
                    let (x, y) = (ld(b), ld(b + 1));
                    (_mm_unpacklo_epi8(x, y), _mm_unpackhi_epi8(x, y))
                };
                let (p01, p23, p45, p67) = (pair(0), pair(2), pair(4), pair(6));
                // bytes 0-3 and 4-7 of elements 0-3, 4-7, 8-11, 12-15
                let lo = [
                    _mm_unpacklo_epi16(p01.0, p23.0),
                    _mm_unpackhi_epi16(p01.0, p23.0),
                    _mm_unpacklo_epi16(p01.1, p23.1),
                    _mm_unpackhi_epi16(p01.1, p23.1),
                ];
                let hi = [
                    _mm_unpacklo_epi16(p45.0, p67.0),
                    _mm_unpackhi_epi16(p45.0, p67.0),
                    _mm_unpacklo_epi16(p45.1, p67.1),
                    _mm_unpackhi_epi16(p45.1, p67.1),
                ];
                for q in 0..4 {
                    _mm_storeu_si128(dst.add(2 * q), _mm_unpacklo_epi32(lo[q], hi[q]));
                    _mm_storeu_si128(dst.add(2 * q + 1), _mm_unpackhi_epi32(lo[q], hi[q]));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unshuffle_inverts_shuffle() {
        let vals: Vec<u32> = (0..10).map(|i| i * 1000 + 7).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let n = vals.len();
        let mut shuffled = vec![0u8; bytes.len()];
        for i in 0..n {
            for b in 0..4 {
                shuffled[b * n + i] = bytes[i * 4 + b];
            }
        }
        let mut out = Vec::new();
        unshuffle(&shuffled, 4, &mut out);
        assert_eq!(out, bytes);
        // every element size, element counts around the 16-element groups, a partial tail
        for esize in [1usize, 2, 3, 4, 8] {
            for n in [0usize, 1, 15, 16, 17, 40] {
                let bytes: Vec<u8> = (0..n * esize).map(|i| (i * 37 % 251) as u8).collect();
                let mut shuffled = vec![0u8; bytes.len()];
                for i in 0..n {
                    for b in 0..esize {
                        shuffled[b * n + i] = bytes[i * esize + b];
                    }
                }
                // a partial element (fewer than esize bytes) stays as it is
                shuffled.extend((0..esize - 1).map(|i| 200 + i as u8));
                unshuffle(&shuffled, esize, &mut out);
                assert_eq!(out[..n * esize], bytes[..], "esize {esize}, n {n}");
                assert_eq!(out[n * esize..], shuffled[n * esize..]);
            }
        }
    }

    #[test]
    fn inflate_grows_the_output_and_rejects_bad_streams() {
        use std::io::Write;
        let data: Vec<u8> = (0..100_000u64).map(|i| (i * i % 251) as u8).collect();
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(4));
        enc.write_all(&data).unwrap();
        let z = enc.finish().unwrap();
        let mut out = vec![7u8; 3];
        for expect in [0, 10, data.len(), 10 * data.len()] {
            inflate(&z, expect, &mut out).unwrap();
            assert_eq!(out, data, "expect {expect}");
        }
        let err = inflate(&z[..z.len() / 2], 0, &mut out).unwrap_err();
        assert!(err.contains("end marker"), "{err}");
        let mut bad = z.clone();
        bad[0] ^= 0xFF;
        assert!(inflate(&bad, 0, &mut out).is_err());
    }

    #[test]
    fn parallel_reader_matches_crate_reader() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.h5");
        let v: Vec<i64> = (0..200_000).map(|i| (i * 7919) % 100_003).collect();
        let mut fb = hdf5_pure::FileBuilder::new();
        fb.create_dataset("a")
            .with_i64_data(&v)
            .with_chunks(&[chunk_len(v.len())])
            .with_shuffle()
            .with_deflate(4);
        fb.create_dataset("b").with_i64_data(&v[..10]);
        fb.write(&p).unwrap();
        let f = open(&p).unwrap();
        let a: Vec<u32> = read_numeric(&f, &p, "a").unwrap();
        assert_eq!(a.len(), v.len());
        assert!(a.iter().zip(&v).all(|(x, y)| *x as i64 == *y));
        let b: Vec<f32> = read_numeric(&f, &p, "b").unwrap();
        assert_eq!(b, v[..10].iter().map(|&x| x as f32).collect::<Vec<_>>());
    }
}
