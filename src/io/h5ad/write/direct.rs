//! Filling a file's large regions without the page cache.
//!
//! A buffered write of a fresh 2 GB file first copies every byte into page-cache pages the
//! kernel must allocate (and, on a virtual machine, the host must back) before the disk sees
//! any of it; that copy, not the disk, was most of the `.h5ad`'s writing time (50,000 cells:
//! 5.1 s for 1.96 GB, 16% of the run's CPU samples in the kernel's copy into the page cache).
//! A direct write (`O_DIRECT`, Linux) hands the disk the process' own buffer instead, which
//! needs the buffer's address, the file offset and the length to be multiples of the
//! block size ([`ALIGN`]). [`RegionFiller`] therefore copies a region's bytes, in order, into
//! one aligned buffer of [`PIECE`] bytes and writes it directly whenever it is full; the
//! region's unaligned first and last bytes go through the ordinary (buffered) descriptor, in
//! pages no direct write touches. Where direct writes are not available (another system, a
//! file system that refuses `O_DIRECT` such as tmpfs), every byte is written buffered; the
//! file's bytes are the same either way.

use crate::error::{Error, Result};
use std::fs::File;
use std::path::Path;

/// Alignment of direct writes: buffer address, file offset and length.
const ALIGN: usize = 4096;

/// Bytes per direct write (a multiple of [`ALIGN`]).
const PIECE: usize = 8 << 20;

/// Writes all of `buf` at `offset` of `f` (a positioned write on Unix).
#[cfg(unix)]
pub(super) fn write_at(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, offset)
}

#[cfg(not(unix))]
pub(super) fn write_at(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = f;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(buf)
}

/// The file `tmp` opened for direct writes, if this system and file system allow them.
#[cfg(target_os = "linux")]
fn open_direct(tmp: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(tmp)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_tmp: &Path) -> Option<File> {
    None
}

/// Writes regions of a written file, each front to back (see the module docs).
pub(super) struct RegionFiller<'p> {
    path: &'p Path,
    buffered: File,
    direct: Option<File>,
    /// `PIECE + ALIGN` bytes; the aligned window starts at `start`.
    buf: Vec<u8>,
    start: usize,
    /// Bytes of the window in use.
    len: usize,
    /// File offset of the window's first byte (aligned while direct writes are used).
    at: u64,
    /// Bytes still to be written buffered before the region's first aligned offset.
    head: usize,
}

impl<'p> RegionFiller<'p> {
    /// Opens `tmp` for filling; errors name `path`, the file being written.
    pub(super) fn open(tmp: &Path, path: &'p Path, direct: bool) -> Result<Self> {
        let buffered = std::fs::OpenOptions::new()
            .write(true)
            .open(tmp)
            .map_err(|e| Error::io(path, e))?;
        let direct = if direct { open_direct(tmp) } else { None };
        let buf = vec![0u8; PIECE + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Ok(RegionFiller {
            path,
            buffered,
            direct,
            buf,
            start,
            len: 0,
            at: 0,
            head: 0,
        })
    }

    /// Whether direct writes are in use.
    #[cfg(test)]
    pub(super) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Starts a region at file offset `offset`.
    pub(super) fn begin(&mut self, offset: u64) {
        debug_assert_eq!(self.len, 0, "the previous region was not finished");
        self.at = offset;
        self.len = 0;
        self.head = (ALIGN - (offset % ALIGN as u64) as usize) % ALIGN;
    }

    /// Appends `bytes` to the region.
    pub(super) fn push(&mut self, mut bytes: &[u8]) -> Result<()> {
        if self.direct.is_none() {
            write_at(&self.buffered, bytes, self.at).map_err(|e| Error::io(self.path, e))?;
            self.at += bytes.len() as u64;
            return Ok(());
        }
        if self.head > 0 {
            let n = self.head.min(bytes.len());
            write_at(&self.buffered, &bytes[..n], self.at).map_err(|e| Error::io(self.path, e))?;
            self.at += n as u64;
            self.head -= n;
            bytes = &bytes[n..];
        }
        while !bytes.is_empty() {
            let n = (PIECE - self.len).min(bytes.len());
            let w = self.start + self.len;
            self.buf[w..w + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
            if self.len == PIECE {
                self.write_window(PIECE)?;
            }
        }
        Ok(())
    }

    /// Writes the region's last bytes.
    pub(super) fn finish(&mut self) -> Result<()> {
        let aligned = self.len - self.len % ALIGN;
        if aligned > 0 {
            self.write_window(aligned)?;
        }
        if self.len > 0 {
            let w = &self.buf[self.start..self.start + self.len];
            write_at(&self.buffered, w, self.at).map_err(|e| Error::io(self.path, e))?;
            self.at += self.len as u64;
            self.len = 0;
        }
        Ok(())
    }

    /// Writes the window's first `n` bytes (a multiple of [`ALIGN`]) directly and moves the
    /// rest to its front; a refused direct write (`EINVAL`: an alignment the file system
    /// does not accept) turns direct writes off and writes the whole window buffered.
    fn write_window(&mut self, n: usize) -> Result<()> {
        let w = &self.buf[self.start..self.start + n];
        let refused = match &self.direct {
            Some(direct) => match write_at(direct, w, self.at) {
                Ok(()) => false,
                Err(e) if e.raw_os_error() == Some(einval()) => true,
                Err(e) => return Err(Error::io(self.path, e)),
            },
            None => true,
        };
        if refused {
            // every byte of the window, then the rest of the file, buffered
            self.direct = None;
            let w = &self.buf[self.start..self.start + self.len];
            write_at(&self.buffered, w, self.at).map_err(|e| Error::io(self.path, e))?;
            self.at += self.len as u64;
            self.len = 0;
            return Ok(());
        }
        self.at += n as u64;
        self.buf
            .copy_within(self.start + n..self.start + self.len, self.start);
        self.len -= n;
        Ok(())
    }
}

#[cfg(unix)]
fn einval() -> i32 {
    libc::EINVAL
}

#[cfg(not(unix))]
fn einval() -> i32 {
    22
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regions at unaligned and aligned offsets, filled in pieces of odd sizes, read back
    /// byte for byte, with direct writes (where the temporary directory allows them) and
    /// without.
    #[test]
    fn regions_are_written_exactly() {
        let dir = tempfile::tempdir().unwrap();
        for direct in [true, false] {
            let tmp = dir.path().join(format!("f{direct}"));
            let total = 3 * PIECE + 5 * ALIGN + 77;
            std::fs::write(&tmp, vec![0xAAu8; total]).unwrap();
            let mut expect = vec![0xAAu8; total];
            let mut f = RegionFiller::open(&tmp, &tmp, direct).unwrap();
            if !direct {
                assert!(!f.is_direct());
            }
            let regions = [
                (13usize, PIECE + 3 * ALIGN + 5),
                (2 * PIECE, ALIGN),
                (2 * PIECE + ALIGN + 1, PIECE + 2 * ALIGN),
            ];
            for (k, &(offset, len)) in regions.iter().enumerate() {
                let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + k) as u8).collect();
                f.begin(offset as u64);
                for piece in bytes.chunks(ALIGN + 1000 * k + 1) {
                    f.push(piece).unwrap();
                }
                f.finish().unwrap();
                expect[offset..offset + len].copy_from_slice(&bytes);
            }
            drop(f);
            assert!(std::fs::read(&tmp).unwrap() == expect);
        }
    }
}
