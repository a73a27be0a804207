//! Filling a file's large regions without the page cache.
//!
//! A buffered write of a fresh 2 GB file first copies every byte into page-cache pages the
//! kernel must allocate (and, on a virtual machine, the host must back) before the disk sees
//! any of it; that copy, not the disk, was most of the `.h5ad`'s writing time (50,000 cells:
//! 5.1 s for 1.96 GB, 16% of the run's CPU samples in the kernel's copy into the page cache).
//! A direct write (`O_DIRECT`, Linux) hands the disk the process' own buffer instead, which
//! needs the buffer's address, the file offset and the length to be multiples of the
//! block size ([`ALIGN`]). [`RegionFiller`] therefore copies a region's bytes, in order, into
//! an aligned window of [`PIECE`] bytes and, whenever it is full, hands it to a thread that
//! writes it directly while the next window is filled (two windows); the region's unaligned
//! first and last bytes go through the ordinary (buffered) descriptor, in pages no direct
//! write touches. Where direct writes are not available (another system, a
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
    use std::io::{Seek, SeekFrom, Write};
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

#[cfg(unix)]
fn einval() -> i32 {
    libc::EINVAL
}

#[cfg(not(unix))]
fn einval() -> i32 {
    22
}

/// A buffer of `PIECE + ALIGN` bytes whose aligned window of [`PIECE`] bytes starts at
/// `start`.
struct Window {
    buf: Vec<u8>,
    start: usize,
}

impl Window {
    fn new() -> Self {
        let buf = vec![0u8; PIECE + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Window { buf, start }
    }

    fn bytes(&self, len: usize) -> &[u8] {
        &self.buf[self.start..self.start + len]
    }
}

/// A window's first `len` bytes to be written at file offset `at`.
struct Job {
    window: Window,
    len: usize,
    at: u64,
}

/// The thread that writes full windows directly while the next one is filled, so that the
/// disk's transfer overlaps the copying (and computing) of the bytes. Windows are written
/// at their own offsets, so the order in which they complete does not matter. A direct
/// write the file system refuses (`EINVAL`: an alignment it does not accept) is written
/// buffered, and so is every later one.
struct Writer {
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    done: std::sync::mpsc::Receiver<(Window, std::io::Result<()>)>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Windows not in flight.
    free: Vec<Window>,
    in_flight: usize,
}

/// Windows per filler: one filled while the other is written.
const WINDOWS: usize = 2;

impl Writer {
    fn spawn(direct: File, buffered: File) -> Self {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(WINDOWS);
        let (tx, done) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut refused = false;
            for job in rx {
                let bytes = job.window.bytes(job.len);
                let mut r = if refused {
                    Err(std::io::Error::from_raw_os_error(einval()))
                } else {
                    write_at(&direct, bytes, job.at)
                };
                if matches!(&r, Err(e) if e.raw_os_error() == Some(einval())) {
                    refused = true;
                    r = write_at(&buffered, bytes, job.at);
                }
                if tx.send((job.window, r)).is_err() {
                    return;
                }
            }
        });
        Writer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            free: (0..WINDOWS).map(|_| Window::new()).collect(),
            in_flight: 0,
        }
    }

    /// Waits for one window in flight to be written.
    fn wait_one(&mut self, path: &Path) -> Result<()> {
        let Ok((w, r)) = self.done.recv() else {
            // the thread is gone (it panicked): nothing more will come back
            self.in_flight = 0;
            return Err(stopped(path));
        };
        self.in_flight -= 1;
        self.free.push(w);
        r.map_err(|e| Error::io(path, e))
    }

    /// A free window, waiting for one in flight if need be.
    fn take(&mut self, path: &Path) -> Result<Window> {
        if self.free.is_empty() {
            self.wait_one(path)?;
        }
        self.free.pop().ok_or_else(|| stopped(path))
    }

    fn send(&mut self, path: &Path, job: Job) -> Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(|| stopped(path))?;
        jobs.send(job).map_err(|_| stopped(path))?;
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for every window in flight; the first error, if any.
    fn drain(&mut self, path: &Path) -> Result<()> {
        let mut first = Ok(());
        while self.in_flight > 0 {
            let r = self.wait_one(path);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn stopped(path: &Path) -> Error {
    Error::io(
        path,
        std::io::Error::other("the thread writing the file stopped"),
    )
}

/// Writes regions of a written file, each front to back (see the module docs).
pub(super) struct RegionFiller<'p> {
    path: &'p Path,
    buffered: File,
    /// The direct writer and the window being filled, when direct writes are used.
    direct: Option<(Writer, Window)>,
    /// Bytes of the window in use.
    len: usize,
    /// File offset of the window's first byte (of the next byte when writing buffered).
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
        let direct = match direct.then(|| open_direct(tmp)).flatten() {
            Some(d) => {
                let b = buffered.try_clone().map_err(|e| Error::io(path, e))?;
                let mut w = Writer::spawn(d, b);
                let window = w.take(path)?;
                Some((w, window))
            }
            None => None,
        };
        Ok(RegionFiller {
            path,
            buffered,
            direct,
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

    fn write_buffered(&mut self, bytes: &[u8]) -> Result<()> {
        write_at(&self.buffered, bytes, self.at).map_err(|e| Error::io(self.path, e))?;
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Appends `bytes` to the region.
    pub(super) fn push(&mut self, mut bytes: &[u8]) -> Result<()> {
        if self.direct.is_none() {
            return self.write_buffered(bytes);
        }
        if self.head > 0 {
            let n = self.head.min(bytes.len());
            self.write_buffered(&bytes[..n])?;
            self.head -= n;
            bytes = &bytes[n..];
        }
        while !bytes.is_empty() {
            let Some((_, window)) = self.direct.as_mut() else {
                return self.write_buffered(bytes);
            };
            let n = (PIECE - self.len).min(bytes.len());
            let w = window.start + self.len;
            window.buf[w..w + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
            if self.len == PIECE {
                self.send_window(PIECE)?;
            }
        }
        Ok(())
    }

    /// Writes the region's last bytes.
    pub(super) fn finish(&mut self) -> Result<()> {
        let Some((_, window)) = &self.direct else {
            return Ok(());
        };
        let aligned = self.len - self.len % ALIGN;
        // the unaligned tail first (buffered), from the window about to be sent
        if self.len > aligned {
            let tail = &window.buf[window.start + aligned..window.start + self.len];
            write_at(&self.buffered, tail, self.at + aligned as u64)
                .map_err(|e| Error::io(self.path, e))?;
        }
        let tail = (self.len - aligned) as u64;
        self.len = aligned;
        if aligned > 0 {
            self.send_window(aligned)?;
        }
        self.at += tail;
        Ok(())
    }

    /// Sends the window's `n` bytes (a multiple of [`ALIGN`], all it holds) to the writer
    /// and takes a free window.
    fn send_window(&mut self, n: usize) -> Result<()> {
        debug_assert_eq!(n, self.len);
        if let Some((writer, window)) = &mut self.direct {
            let next = writer.take(self.path)?;
            let full = std::mem::replace(window, next);
            writer.send(
                self.path,
                Job {
                    window: full,
                    len: n,
                    at: self.at,
                },
            )?;
        }
        self.at += n as u64;
        self.len = 0;
        Ok(())
    }

    /// Waits until every byte is written; the first error of a direct write, if any.
    pub(super) fn close(mut self) -> Result<()> {
        match &mut self.direct {
            Some((writer, _)) => writer.drain(self.path),
            None => Ok(()),
        }
    }
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
            f.close().unwrap();
            assert!(std::fs::read(&tmp).unwrap() == expect);
        }
    }
}
