//! Decoding stored chunks: reading a chunk's bytes, undoing deflate and shuffle and
//! converting its elements. A shuffle undone last (the usual filter order: shuffle, then
//! deflate) is undone by the conversion, which reads each element's bytes from the byte
//! planes ([`Kind::decode_shuffled`]); a shuffle with another filter after it is undone
//! first, by SSE2 byte interleaves on x86-64.

use super::num::{Kind, Num};
use super::read::MAX_DEFLATE_RATIO;
use crate::error::{Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Where one stored chunk lies in the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct StoredChunk {
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
pub(super) struct Scratch {
    raw: Vec<u8>,
    inflated: Vec<u8>,
    unshuffled: Vec<u8>,
}

/// Decodes stored chunks of a regular 1-D chunked dataset (deflate and/or shuffle filters).
pub(super) struct ChunkDecoder<'a> {
    pub(super) path: &'a Path,
    pub(super) name: &'a str,
    pub(super) clen: usize,
    pub(super) kind: Kind,
    pub(super) filters: &'a [u16],
    pub(super) file_len: u64,
}

impl ChunkDecoder<'_> {
    /// Reads chunk `slot` (stored at `c`), undoes its filters and converts its elements
    /// `skip..skip + dst.len()` into `dst`.
    pub(super) fn decode<T: Num>(
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
        // Undo the filters in reverse pipeline order, skipping masked ones. A shuffle undone
        // last is undone while converting (`Kind::decode_shuffled`).
        let mut planes = false;
        for (i, &f) in self.filters.iter().enumerate().rev() {
            if c.filter_mask & (1 << i) != 0 {
                continue;
            }
            if f == 2 && i == 0 {
                planes = true;
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
        let decoded = if planes {
            self.kind.decode_shuffled(raw, raw.len() / esize, skip, dst)
        } else {
            self.kind.decode(&raw[from..to], dst)
        };
        decoded.map_err(|i| {
            err(format!(
                "element {} is out of range for its use",
                slot * clen + skip + i
            ))
        })
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
}
