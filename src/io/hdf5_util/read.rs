//! Reading a whole 1-D numeric dataset, with the parallel chunk decoder on the common layout
//! and the check that a declared size is backed by the stored chunks.

use super::decode::{ChunkDecoder, Scratch, StoredChunk};
use super::num::{little_endian, Kind, Num};
use super::{dataset, guard, stored_chunks};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::Path;

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
    if fast && filters.is_empty() {
        if let Some(at) = contiguous_address(ds, n, kind) {
            return read_contiguous_parallel(path, name, at, n, kind);
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

/// Elements read and converted per task by [`fill_contiguous`].
pub(super) const CONTIGUOUS_BLOCK: usize = 1 << 20;

/// Byte address of the elements of `ds` when it is stored contiguous, allocated, and exactly
/// `n` elements of `kind` long (the caller checks that it is unfiltered and little-endian).
pub(super) fn contiguous_address(ds: &hdf5_pure::Dataset, n: usize, kind: Kind) -> Option<u64> {
    match ds.layout() {
        Ok(hdf5_pure::Layout::Contiguous {
            address: Some(at),
            size,
        }) if size == (n * kind.size()) as u64 => Some(at),
        _ => None,
    }
}

/// A contiguous (unfiltered, little-endian) dataset of `n` elements of `kind` stored at byte
/// `at`, read whole with [`fill_contiguous`] (anndata writes its arrays this way by default;
/// the crate's reader would hold them as `f64` / `i64` first).
fn read_contiguous_parallel<T: Num>(
    path: &Path,
    name: &str,
    at: u64,
    n: usize,
    kind: Kind,
) -> Result<Vec<T>> {
    let mut out = vec![T::default(); n];
    fill_contiguous(path, name, at, kind, 0, &mut out)?;
    Ok(out)
}

/// Fills `out` with the elements `first..first + out.len()` of the contiguous dataset of
/// `kind` stored at byte `at`: fixed blocks of elements read with positioned reads and
/// converted in parallel, each task into its part of `out`. An element that does not fit `T`
/// is an error naming its position; a range past the end of the file is an error.
pub(super) fn fill_contiguous<T: Num>(
    path: &Path,
    name: &str,
    at: u64,
    kind: Kind,
    first: usize,
    out: &mut [T],
) -> Result<()> {
    let err = |m: String| Error::hdf5(path, name, m);
    let esize = kind.size();
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let start = at + (first * esize) as u64;
    if start
        .checked_add((out.len() * esize) as u64)
        .is_none_or(|end| end > file_len)
    {
        return Err(err(format!(
            "elements {first}..{} at byte {at} lie past the end of the file (truncated file?)",
            first + out.len()
        )));
    }
    out.par_chunks_mut(CONTIGUOUS_BLOCK)
        .enumerate()
        .try_for_each_init(
            || (std::fs::File::open(path), Vec::new()),
            |(fh, raw), (b, dst)| -> Result<()> {
                let fh = fh
                    .as_mut()
                    .map_err(|e| Error::io(path, std::io::Error::new(e.kind(), e.to_string())))?;
                let k = b * CONTIGUOUS_BLOCK;
                raw.resize(dst.len() * esize, 0u8);
                read_at(fh, raw, start + (k * esize) as u64).map_err(|e| Error::io(path, e))?;
                kind.decode(raw, dst).map_err(|i| {
                    err(format!(
                        "element {} is out of range for its use",
                        first + k + i
                    ))
                })
            },
        )
}

/// Fills `buf` from the file at byte `offset`.
fn read_at(fh: &mut std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(fh, buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        fh.seek(SeekFrom::Start(offset))?;
        fh.read_exact(buf)
    }
}

/// Largest expansion of a deflate stream.
pub(super) const MAX_DEFLATE_RATIO: usize = 1032;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::hdf5_util::{chunk_len, open};

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

    /// A contiguous dataset (anndata's default layout) longer than one read block: the
    /// parallel positioned reads give the crate reader's values, and an element that does
    /// not fit the type is an error naming its position.
    #[test]
    fn contiguous_reader_matches_crate_reader() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.h5");
        let n = 2 * CONTIGUOUS_BLOCK + 123;
        let mut v: Vec<i32> = (0..n as i64)
            .map(|i| ((i * 7919) % 60_001) as i32)
            .collect();
        v[CONTIGUOUS_BLOCK + 5] = 70_000;
        let mut fb = hdf5_pure::FileBuilder::new();
        fb.create_dataset("a").with_i32_data(&v);
        fb.create_dataset("f").with_f32_data(&[0.5f32, 2.0, 3.0]);
        fb.write(&p).unwrap();
        let f = open(&p).unwrap();
        let ds = f.dataset("a").unwrap();
        assert!(matches!(
            ds.layout().unwrap(),
            hdf5_pure::Layout::Contiguous {
                address: Some(_),
                ..
            }
        ));
        let a: Vec<u32> = read_numeric(&f, &p, "a").unwrap();
        assert!(a.iter().zip(&v).all(|(x, y)| *x as i64 == *y as i64));
        let e = read_numeric::<u16>(&f, &p, "a").unwrap_err().to_string();
        assert!(
            e.contains(&format!("element {}", CONTIGUOUS_BLOCK + 5)),
            "{e}"
        );
        let b: Vec<f64> = read_numeric(&f, &p, "f").unwrap();
        assert_eq!(b, vec![0.5, 2.0, 3.0]);
        assert!(read_numeric::<u16>(&f, &p, "f").is_err());
    }
}
