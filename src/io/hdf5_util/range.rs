//! Reading ranges of a 1-D numeric dataset, so that a dataset larger than memory can be read
//! piece by piece.

use super::decode::{ChunkDecoder, Scratch, StoredChunk};
use super::num::{little_endian, Kind, Num};
use super::read::{contiguous_address, fill_contiguous};
use super::{dataset, guard};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::Path;

/// A 1-D numeric dataset opened for reading ranges of elements, so that a dataset larger than
/// memory can be read piece by piece.
///
/// For the common layout (chunked, deflate and/or shuffle, little-endian) the chunk index is
/// read once when opening and [`read_range`](Self::read_range) decodes only the chunks the
/// range overlaps, in parallel, straight into the output; a contiguous unfiltered dataset
/// (anndata's default) is read with parallel positioned reads of the range. Any other layout
/// goes through
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
    /// Byte address of a contiguous, unfiltered, little-endian dataset's elements.
    contiguous: Option<u64>,
    file_len: u64,
}

impl RangeReader {
    /// Opens dataset `name` of `file` (at `path`) for range reads. Errors as [`read_numeric`](super::read_numeric)
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
            let unfiltered = filters.is_empty();
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
            let contiguous = (unfiltered
                && ds.datatype().map(|d| little_endian(&d)).unwrap_or(false))
            .then(|| contiguous_address(&ds, len, kind))
            .flatten();
            Ok(RangeReader {
                ds,
                path: path.to_path_buf(),
                name: name.to_string(),
                len,
                kind,
                fast,
                contiguous,
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
        let mut out = Vec::new();
        self.read_range_into(a, b, &mut out)?;
        Ok(out)
    }

    /// [`read_range`](Self::read_range) into `out` (its old contents dropped, its memory reused:
    /// a large new allocation costs a page fault per page as it is first written).
    pub(crate) fn read_range_into<T: Num>(
        &self,
        a: usize,
        b: usize,
        out: &mut Vec<T>,
    ) -> Result<()> {
        let (path, name) = (self.path.as_path(), self.name.as_str());
        let err = |m: String| Error::hdf5(path, name, m);
        if a > b || b > self.len {
            return Err(err(format!(
                "range {a}..{b} is outside the {} elements",
                self.len
            )));
        }
        // Every element is written below (each chunk piece decoded or filled with the fill
        // value; the rows read otherwise checked to be `b - a`).
        crate::sparse::resize_for_overwrite(out, b - a);
        if a == b {
            return Ok(());
        }
        guard(path, name, || {
            if let Some((clen, slots, filters)) = &self.fast {
                let clen = *clen;
                // Split the output at chunk boundaries: (slot, offset in chunk, piece).
                let mut pieces = Vec::with_capacity((b - a).div_ceil(clen) + 1);
                let mut rest: &mut [T] = out;
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
            if let Some(at) = self.contiguous {
                return fill_contiguous(path, name, at, self.kind, a, out);
            }
            let (start, count) = (a as u64, (b - a) as u64);
            // The rows read, converted to `T`; as many as asked, else an error.
            fn convert<S, T>(
                out: &mut [T],
                v: Vec<S>,
                f: impl Fn(S) -> Option<T>,
                bad: impl Fn(String) -> Error,
                a: usize,
            ) -> Result<()> {
                if v.len() != out.len() {
                    return Err(bad(format!(
                        "{} elements read from {a}, {} asked",
                        v.len(),
                        out.len()
                    )));
                }
                for (i, (o, x)) in out.iter_mut().zip(v).enumerate() {
                    *o = f(x).ok_or_else(|| {
                        bad(format!("element {} is out of range for its use", a + i))
                    })?;
                }
                Ok(())
            }
            let read_err = |e: hdf5_pure::Error| err(e.to_string());
            match self.kind {
                Kind::F32 | Kind::F64 => {
                    let v = self.ds.read_f64_rows(start, count).map_err(read_err)?;
                    convert(out, v, T::from_f64, err, a)?;
                }
                Kind::U64 => {
                    let v = self.ds.read_u64_rows(start, count).map_err(read_err)?;
                    convert(out, v, T::from_u64, err, a)?;
                }
                _ => {
                    let v = self.ds.read_i64_rows(start, count).map_err(read_err)?;
                    convert(out, v, T::from_i64, err, a)?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::hdf5_util::open;
    use crate::io::hdf5_util::read::CONTIGUOUS_BLOCK;

    /// Ranges of a contiguous dataset (anndata's default layout) across read blocks: the
    /// positioned reads give the stored values, name an element that does not fit, and refuse
    /// a range outside the dataset.
    #[test]
    fn contiguous_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.h5");
        let n = CONTIGUOUS_BLOCK + 1000;
        let mut v: Vec<i64> = (0..n as i64).map(|i| (i * 31) % 50_000).collect();
        v[n - 3] = -1;
        let mut fb = hdf5_pure::FileBuilder::new();
        fb.create_dataset("a").with_i64_data(&v);
        fb.write(&p).unwrap();
        let f = open(&p).unwrap();
        let r = RangeReader::open(&f, &p, "a").unwrap();
        assert!(r.contiguous.is_some() && r.fast.is_none());
        for (a, b) in [
            (0, 10),
            (CONTIGUOUS_BLOCK - 5, CONTIGUOUS_BLOCK + 7),
            (7, 7),
        ] {
            let got: Vec<u32> = r.read_range(a, b).unwrap();
            let want: Vec<u32> = v[a..b].iter().map(|&x| x as u32).collect();
            assert_eq!(got, want, "{a}..{b}");
        }
        let e = r.read_range::<u32>(n - 10, n).unwrap_err().to_string();
        assert!(e.contains(&format!("element {}", n - 3)), "{e}");
        assert!(r.read_range::<i64>(n - 10, n).is_ok());
        assert!(r.read_range::<u32>(0, n + 1).is_err());
    }
}
