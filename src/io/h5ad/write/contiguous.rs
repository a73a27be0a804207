//! Uncompressed sparse matrices written at the speed of the disk.
//!
//! `hdf5-pure`'s builder places every object before it emits a byte and then streams the
//! file front to back (one pass, no seeks, no `fsync`), but it takes a dataset's bytes as
//! one owned buffer; its appender, the other way to write a large array, copies every piece
//! several times, writes the file in chunk-sized pieces and `fsync`s the whole file when it
//! is closed. For the uncompressed layout (anndata's default) the large arrays of the sparse
//! matrices are therefore written in three steps:
//!
//! 1. each is declared as a contiguous dataset (the layout h5py gives an uncompressed
//!    dataset) holding a zero placeholder of its size: `vec![0u8; n]`, which the allocator
//!    serves from fresh, untouched zero pages, costing address space but no memory (glibc
//!    does so from 32 MB up; a smaller one may come from reused memory it zeroes, and
//!    then costs its size until the file is written);
//! 2. the builder streams the file through [`HoleWriter`], which leaves every 64 KiB block
//!    of zeros as a hole (read back as zeros) instead of writing it, so the placeholders
//!    cost neither memory nor disk writes;
//! 3. the file is reopened, each dataset's contiguous region located (`Dataset::layout`)
//!    and the real bytes written into it front to back by a [`RegionFiller`] (direct
//!    writes of 8 MB that bypass the page cache, see [`super::direct`]), taken from the
//!    matrices' own arrays where the stored bytes are the file's (`f32` values and `u32`
//!    column indices, which below 2^31 have the bits of `int32`, on a little-endian
//!    machine), or converted a piece at a time into one reusable buffer (the log values of
//!    `X`, row pointers).
//!
//! Arrays smaller than [`PLACEHOLDER_MIN`] bytes are handed to the builder with their
//! values (the builder may store tiny datasets inline in their headers, where no region
//! can be written later). The file is not synchronized to disk, as h5py does not either;
//! [`super::write_h5ad`] renames it into place once complete.

use super::direct::{write_at, RegionFiller};
use crate::error::{Error, Result};
use crate::lognorm::{row_values, Indices, MatrixValues};
use hdf5_pure::{Datatype, GroupBuilder, Layout};
use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

/// Arrays of at least this many bytes are written after the file's layout (smaller ones are
/// given to the builder with their values).
pub(super) const PLACEHOLDER_MIN: usize = 1 << 20;

/// Bytes of `X`'s log values computed per piece.
const PIECE_BYTES: usize = 8 << 20;

/// Runs of zeros [`HoleWriter`] leaves unwritten are whole blocks of this many bytes.
const HOLE_BLOCK: usize = 64 << 10;

/// Where a zero placeholder handed to the builder lives in memory (address and length): the
/// builder moves the buffer and passes that very memory to its writer, which then knows the
/// bytes are zeros without reading them ([`HoleWriter::with_known_zeros`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Placeholder {
    addr: usize,
    len: usize,
}

impl Placeholder {
    /// Its length in bytes.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

/// Declares the 1-D dataset `name` of `n` elements of `dtype` (`esize` bytes each): with the
/// values `small()` gives when it is smaller than [`PLACEHOLDER_MIN`] bytes (`None`
/// returned: nothing left to write), otherwise contiguous with a zero placeholder that
/// `csr::fill_csr_contiguous` overwrites once the file is written (its [`Placeholder`]).
pub(super) fn declare(
    g: &mut GroupBuilder,
    name: &str,
    dtype: Datatype,
    n: usize,
    esize: usize,
    small: impl FnOnce() -> Vec<u8>,
) -> Option<Placeholder> {
    let d = g.create_dataset(name);
    let bytes = n.saturating_mul(esize);
    if n == 0 {
        d.with_dtype(dtype).with_shape(&[0]);
        None
    } else if bytes < PLACEHOLDER_MIN {
        d.with_raw_data(dtype, small(), n as u64);
        None
    } else {
        let zeros = vec![0u8; bytes];
        let at = Placeholder {
            addr: zeros.as_ptr() as usize,
            len: bytes,
        };
        d.with_raw_data(dtype, zeros, n as u64);
        Some(at)
    }
}

/// A file written front to back that leaves every whole, aligned [`HOLE_BLOCK`] of zeros of
/// a large write unwritten (a hole, which reads as zeros). [`HoleWriter::finish`] sets the
/// file's length, which a trailing hole would otherwise leave short.
pub(super) struct HoleWriter {
    file: std::fs::File,
    pos: u64,
    /// Memory known to hold zeros (the placeholders), sorted by address.
    zeros: Vec<Placeholder>,
    /// Writes left unwritten because their memory was a known placeholder.
    skipped: Vec<(u64, usize)>,
}

impl HoleWriter {
    /// A writer into `file`, which must be new (empty): bytes left unwritten read as zeros.
    /// A write of bytes inside one of `zeros` is left unwritten without reading
    /// them (a placeholder's 500 MB of fresh zero pages would otherwise be read through).
    /// That the memory is still the placeholder (not freed and reused by the builder) is
    /// checked afterwards: each such write must be a region that the filling overwrites
    /// (see [`HoleWriter::finish`]).
    pub(super) fn with_known_zeros(file: std::fs::File, mut zeros: Vec<Placeholder>) -> Self {
        zeros.sort_by_key(|z| z.addr);
        HoleWriter {
            file,
            pos: 0,
            zeros,
            skipped: Vec::new(),
        }
    }

    /// Whether the memory of `buf` lies inside a known placeholder.
    fn known_zeros(&self, buf: &[u8]) -> bool {
        let (a, n) = (buf.as_ptr() as usize, buf.len());
        let i = self.zeros.partition_point(|z| z.addr <= a);
        i > 0 && {
            let z = self.zeros[i - 1];
            a + n <= z.addr + z.len
        }
    }

    /// Sets the file's length to the bytes written, holes included.
    /// Returns where the writes left unwritten as known zeros went (file offset, length),
    /// for the caller to check that the filling overwrites every one of them.
    pub(super) fn finish(self) -> std::io::Result<Vec<(u64, usize)>> {
        self.file.set_len(self.pos)?;
        Ok(self.skipped)
    }
}

fn is_zero(b: &[u8]) -> bool {
    // OR-folds of 256 bytes vectorize; the early exit is per fold.
    b.chunks(256)
        .all(|c| c.iter().fold(0u8, |a, &x| a | x) == 0)
}

impl Write for HoleWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.known_zeros(buf) {
            self.skipped.push((self.pos, buf.len()));
            self.pos += buf.len() as u64;
            return Ok(buf.len());
        }
        let mut run = 0; // start of the bytes not yet written
                         // blocks aligned to the file's offsets, so that holes are whole file-system blocks
        let first = (HOLE_BLOCK - (self.pos as usize % HOLE_BLOCK)) % HOLE_BLOCK;
        if buf.len() >= HOLE_BLOCK + first {
            let mut at = first;
            while at + HOLE_BLOCK <= buf.len() {
                let block = &buf[at..at + HOLE_BLOCK];
                if is_zero(block) {
                    if run < at {
                        write_at(&self.file, &buf[run..at], self.pos + run as u64)?;
                    }
                    run = at + HOLE_BLOCK;
                }
                at += HOLE_BLOCK;
            }
        }
        if run < buf.len() {
            write_at(&self.file, &buf[run..], self.pos + run as u64)?;
        }
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The little-endian bytes of `v`: borrowed on a little-endian machine, converted otherwise.
fn le_bytes<T: Copy, const N: usize>(v: &[T], to_le: impl Fn(T) -> [u8; N]) -> Cow<'_, [u8]> {
    #[cfg(target_endian = "little")]
    {
        let _ = &to_le;
        debug_assert_eq!(std::mem::size_of::<T>(), N);
        // SAFETY: `T` is `f32` or `u32` here (see the callers), plain data of `N` = 4 bytes
        // with no padding and no invalid bit patterns as bytes; the slice covers exactly
        // the `v.len() * N` bytes of `v`, borrowed for `v`'s lifetime, and `u8` has
        // alignment 1.
        Cow::Borrowed(unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * N) })
    }
    #[cfg(not(target_endian = "little"))]
    {
        Cow::Owned(v.iter().flat_map(|&x| to_le(x)).collect())
    }
}

/// The stored values of `m` as the file's `float32` bytes.
pub(super) fn f32_bytes(v: &[f32]) -> Cow<'_, [u8]> {
    le_bytes(v, f32::to_le_bytes)
}

/// Column indices as the file's `int32` bytes: below 2^31 (checked by the caller) a `u32`
/// has the bits of the `i32` of the same value.
pub(super) fn index_bytes(v: &[u32]) -> Cow<'_, [u8]> {
    le_bytes(v, u32::to_le_bytes)
}

/// Writes the column indices of `x` as `int32` into the region at `offset`: straight from
/// the array when stored as `u32`, else converted about [`PIECE_BYTES`] at a time.
pub(super) fn write_indices(
    out: &mut RegionFiller,
    offset: u64,
    x: &dyn MatrixValues,
) -> Result<()> {
    out.begin(offset);
    match x.indices() {
        Indices::U32(ix) => out.push(&index_bytes(ix))?,
        Indices::U16(ix) => {
            let mut buf: Vec<u32> = Vec::with_capacity(ix.len().min(PIECE_BYTES / 4));
            for piece in ix.chunks(PIECE_BYTES / 4) {
                buf.clear();
                buf.extend(piece.iter().map(|&c| u32::from(c)));
                out.push(&index_bytes(&buf))?;
            }
        }
    }
    out.finish()
}

/// Where the contiguous dataset `name` of `file` starts, checking that it holds `bytes`.
pub(super) fn region(file: &hdf5_pure::File, path: &Path, name: &str, bytes: usize) -> Result<u64> {
    let err = |m: String| Error::hdf5(path, name, m);
    let ds = file.dataset(name).map_err(|e| err(e.to_string()))?;
    match ds.layout().map_err(|e| err(e.to_string()))? {
        Layout::Contiguous {
            address: Some(a),
            size,
        } if size == bytes as u64 => Ok(a),
        l => Err(err(format!(
            "expected a contiguous region of {bytes} bytes, the writer laid out {l:?}"
        ))),
    }
}

/// Writes `bytes` into the region of the file at `offset`.
pub(super) fn write_region(out: &mut RegionFiller, offset: u64, bytes: &[u8]) -> Result<()> {
    out.begin(offset);
    out.push(bytes)?;
    out.finish()
}

/// Writes the values of `x` (row after row) as `float32` into the region at `offset`,
/// computing about [`PIECE_BYTES`] at a time into one reusable buffer.
pub(super) fn write_values(
    out: &mut RegionFiller,
    offset: u64,
    x: &dyn MatrixValues,
) -> Result<()> {
    let (n_rows, n_cols) = x.shape();
    let piece = PIECE_BYTES / 4;
    let mut buf: Vec<f32> = Vec::with_capacity(x.nnz().min(piece) + n_cols);
    out.begin(offset);
    for r in 0..n_rows {
        row_values(x, r, &mut buf);
        if buf.len() >= piece || r + 1 == n_rows {
            out.push(&f32_bytes(&buf))?;
            buf.clear();
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn hole_writer_keeps_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("holes");
        let mut w = HoleWriter::with_known_zeros(std::fs::File::create(&p).unwrap(), Vec::new());
        let mut expect = Vec::new();
        // small writes, an unaligned large write with zero and non-zero blocks, a trailing
        // run of zeros (the file's length must cover it)
        let mut pieces: Vec<Vec<u8>> = vec![vec![1, 2, 3], vec![0; 10]];
        let mut big = vec![0u8; 5 * HOLE_BLOCK + 123];
        big[7] = 9;
        big[2 * HOLE_BLOCK + 17] = 4;
        big[5 * HOLE_BLOCK + 100] = 5;
        pieces.push(big);
        pieces.push(vec![0u8; 3 * HOLE_BLOCK]);
        for piece in &pieces {
            w.write_all(piece).unwrap();
            expect.extend_from_slice(piece);
        }
        w.finish().unwrap();
        let mut got = Vec::new();
        std::fs::File::open(&p)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got.len(), expect.len());
        assert!(got == expect);
    }

    /// A write of memory inside a known placeholder is left as a hole without being read:
    /// here the "placeholder" holds non-zero bytes, which must not reach the file.
    #[test]
    fn known_zeros_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("known");
        let fake = vec![7u8; 3 * HOLE_BLOCK];
        let known = Placeholder {
            addr: fake.as_ptr() as usize + 10,
            len: 2 * HOLE_BLOCK,
        };
        let mut w = HoleWriter::with_known_zeros(std::fs::File::create(&p).unwrap(), vec![known]);
        w.write_all(&[1, 2]).unwrap();
        w.write_all(&fake[10..10 + 2 * HOLE_BLOCK]).unwrap(); // inside: skipped
        w.write_all(&fake[5..20]).unwrap(); // starts before it: written
        assert_eq!(w.finish().unwrap(), vec![(2, 2 * HOLE_BLOCK)]);
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len(), 2 + 2 * HOLE_BLOCK + 15);
        assert_eq!(&got[..2], &[1, 2]);
        assert!(got[2..2 + 2 * HOLE_BLOCK].iter().all(|&b| b == 0));
        assert!(got[2 + 2 * HOLE_BLOCK..].iter().all(|&b| b == 7));
    }

    #[test]
    fn byte_views_are_little_endian() {
        assert_eq!(
            &*f32_bytes(&[1.5f32, -2.0]),
            &[1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat()[..]
        );
        assert_eq!(
            &*index_bytes(&[7u32, 70_000]),
            &[7i32.to_le_bytes(), 70_000i32.to_le_bytes()].concat()[..]
        );
    }
}
