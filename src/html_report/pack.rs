//! Typed arrays for the page, packed as little-endian bytes in base64 (a number in JSON text
//! costs 8 to 20 bytes; an `f32` in base64 costs 5.3), and the cells' expression packed
//! sparsely and gzip-compressed.
//!
//! The page decodes them with `atob` into `Float32Array` / `Uint8Array` / `Uint16Array` and
//! the expression with the browser's `DecompressionStream("gzip")`.

use crate::error::{Error, Result};
use crate::lognorm::{with_counts_ref, CountsRef, LogTable};
use crate::sparse::{ColIndex, StoredValue};
use flate2::{Compress, Compression, Crc, FlushCompress};
use rand::SeedableRng;
use rayon::prelude::*;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `values` as base64 of little-endian `f32`.
pub fn f32_base64(values: impl Iterator<Item = f32>) -> String {
    let bytes: Vec<u8> = values.flat_map(f32::to_le_bytes).collect();
    base64(&bytes)
}

/// Category codes as `{"bits": 8|16, "data": base64}`: one byte per cell when there are at
/// most 256 categories, two (little-endian) otherwise.
pub fn codes_json(codes: impl Iterator<Item = u32>, n_categories: usize) -> serde_json::Value {
    let (bits, bytes): (u32, Vec<u8>) = if n_categories <= 256 {
        (8, codes.map(|c| c.min(255) as u8).collect())
    } else {
        (
            16,
            codes
                .flat_map(|c| (c.min(u32::from(u16::MAX)) as u16).to_le_bytes())
                .collect(),
        )
    };
    serde_json::json!({"bits": bits, "data": base64(&bytes)})
}

/// The cells the scatter draws: all `n` when `n <= max_points`, else a uniform sample of
/// `max_points` cells without replacement (ChaCha8 seeded with `seed`), in increasing order.
pub fn shown_cells(n: usize, max_points: usize, seed: u64) -> Vec<usize> {
    if n <= max_points {
        return (0..n).collect();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v = rand::seq::index::sample(&mut rng, n, max_points).into_vec();
    v.sort_unstable();
    v
}

/// Expression of some genes on the shown cells, as the page reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedExpression {
    /// Gene indices (into the kept genes) that fitted, in the order they were packed.
    pub genes: Vec<usize>,
    /// Largest log-normalized value of each packed gene on the shown cells.
    pub max: Vec<f32>,
    /// Byte offset of each gene's record in the uncompressed stream, plus the total length.
    pub offsets: Vec<usize>,
    /// The gzip stream.
    pub gzip: Vec<u8>,
    /// Genes asked for that were left out by the byte budget.
    pub left_out: usize,
}

fn push_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes one gene's record (see [`pack_expression`]) into `record`, its entries given as the
/// parts held by consecutive blocks of cells; returns the maximum.
fn encode_record(parts: &[&[(u32, f32)]], record: &mut Vec<u8>) -> f32 {
    record.clear();
    let entries = || parts.iter().flat_map(|p| p.iter());
    let max = entries().fold(0f32, |m, &(_, v)| m.max(v));
    let count: usize = parts.iter().map(|p| p.len()).sum();
    push_varint(record, count as u32);
    let mut prev: i64 = -1;
    for &(p, _) in entries() {
        push_varint(record, (i64::from(p) - prev) as u32);
        prev = i64::from(p);
    }
    for &(_, v) in entries() {
        let q = if max > 0.0 {
            (255.0 * v / max).round().clamp(1.0, 255.0)
        } else {
            1.0
        };
        record.push(q as u8);
    }
    max
}

/// Shown cells per block of [`pack_expression`]'s transposition: a fixed size, so the blocks
/// (and the records, read block after block) do not depend on the number of threads.
const PACK_BLOCK: usize = 4096;

/// Packs the log-normalized expression `ln(1 + count / size_factor)` of `genes` (in priority
/// order) on the `shown` cells (increasing row indices of `counts`).
///
/// Each gene's record is: the number of non-zero shown cells (LEB128 varint), their
/// positions among the shown cells as varint gaps from the previous position (the first from
/// -1), then one byte per cell, `round(255 v / max)` clamped to 1..=255 (so a non-zero value
/// never reads as zero; the page maps byte `q` back to `q / 255 * max`). Records are
/// concatenated and gzip-compressed, one sync flush after each; a gene whose record would
/// take the compressed stream past `max_bytes` is cut off at the previous flush point and
/// left out together with every later gene (counted in `left_out`), so the whole member,
/// with its 2-byte final block and 8-byte trailer, is at most `max_bytes + 10` bytes (or
/// holds the first gene alone). The values are the analysis' own (`ln_1p(count / s)` in `f32`,
/// small counts looked up per cell as [`crate::lognorm::LogCounts`] does).
pub fn pack_expression<'a>(
    counts: impl Into<CountsRef<'a>>,
    size_factors: &[f32],
    shown: &[usize],
    genes: &[usize],
    max_bytes: Option<usize>,
) -> Result<PackedExpression> {
    pack_blocked(
        counts.into(),
        size_factors,
        shown,
        genes,
        max_bytes,
        PACK_BLOCK,
    )
}

/// [`pack_expression`] with the shown cells transposed in blocks of `block` cells.
fn pack_blocked(
    counts: CountsRef<'_>,
    size_factors: &[f32],
    shown: &[usize],
    genes: &[usize],
    max_bytes: Option<usize>,
    block: usize,
) -> Result<PackedExpression> {
    let (n_rows, n_genes) = counts.shape();
    if size_factors.len() != n_rows {
        return Err(Error::data(
            "html_report",
            format!("{} size factors for {n_rows} cells", size_factors.len()),
        ));
    }
    let mut slot = vec![u32::MAX; n_genes];
    for (k, &g) in genes.iter().enumerate() {
        match slot.get_mut(g) {
            Some(s) if *s == u32::MAX => *s = k as u32,
            Some(_) => return Err(Error::data("html_report", format!("gene {g} listed twice"))),
            None => {
                return Err(Error::data(
                    "html_report",
                    format!("gene index {g} out of range ({n_genes} genes)"),
                ))
            }
        }
    }
    if let Some(&cell) = shown.iter().find(|&&c| c >= n_rows) {
        return Err(Error::data(
            "html_report",
            format!("cell {cell} out of range"),
        ));
    }
    // Transpose the selected columns: per block of shown cells and gene, (position among
    // shown cells, value), blocks in parallel. A gene's record reads its blocks' parts in
    // order, so no second copy of the values is made to join them.
    let log = LogTable::new(size_factors);
    let slot = &slot;
    let block = block.max(1);
    let blocks: Vec<Vec<Vec<(u32, f32)>>> = shown
        .par_chunks(block)
        .enumerate()
        .map(|(b, cells)| {
            let mut cols: Vec<Vec<(u32, f32)>> = vec![Vec::new(); genes.len()];
            for (i, &cell) in cells.iter().enumerate() {
                let pos = (b * block + i) as u32;
                with_counts_ref!(counts, m => {
                    let value = log.of_cell_stored(cell);
                    let (idx, val) = m.row(cell);
                    for (&j, &v) in idx.iter().zip(val) {
                        let s = slot[j.ix()];
                        if s != u32::MAX && v.to_f32() != 0.0 {
                            cols[s as usize].push((pos, value(v)));
                        }
                    }
                });
            }
            cols
        })
        .collect();
    // Level 3: on the 50,000-cell run's records (12.9 MB of quantized bytes and varints, one
    // sync flush per gene) the 8 MB budget holds 1,078 genes against 1,087 at the default
    // level 6, compressed in 0.24 s against 0.33 s; level 1 (static codes) holds 924.
    let mut deflate = Compress::new(Compression::new(3), false);
    let mut gzip = GZIP_HEADER.to_vec();
    let mut crc = Crc::new();
    let mut out = PackedExpression {
        genes: Vec::new(),
        max: Vec::new(),
        offsets: vec![0],
        gzip: Vec::new(),
        left_out: 0,
    };
    let mut record = Vec::new();
    let mut total = 0usize;
    let mut parts: Vec<&[(u32, f32)]> = Vec::with_capacity(blocks.len());
    for k in 0..genes.len() {
        parts.clear();
        parts.extend(blocks.iter().map(|b| b[k].as_slice()));
        let max = encode_record(&parts, &mut record);
        let kept = gzip.len();
        deflate_sync(&mut deflate, &record, &mut gzip)?;
        if max_bytes.is_some_and(|b| gzip.len() > b) && !out.genes.is_empty() {
            // The stream up to the previous flush point is whole: cut this record off.
            gzip.truncate(kept);
            out.left_out = genes.len() - k;
            break;
        }
        crc.update(&record);
        total += record.len();
        out.genes.push(genes[k]);
        out.max.push(max);
        out.offsets.push(total);
    }
    // The final (empty, fixed-code) block, then the CRC-32 and length of the records kept.
    gzip.extend_from_slice(&[0x03, 0x00]);
    gzip.extend_from_slice(&crc.sum().to_le_bytes());
    gzip.extend_from_slice(&(total as u32).to_le_bytes());
    out.gzip = gzip;
    Ok(out)
}

/// A gzip member's header (RFC 1952): deflate, no flags, no time, unknown system.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Compresses `input` into `out` and ends with a sync flush, so that `out` then holds a
/// whole prefix of the deflate stream that ends on a byte boundary.
fn deflate_sync(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    loop {
        out.reserve(input.len() / 2 + 4096);
        let before = c.total_in();
        c.compress_vec(input, out, FlushCompress::Sync)
            .map_err(|e| Error::data("html_report", e.to_string()))?;
        input = &input[(c.total_in() - before) as usize..];
        // Spare room left behind: the compressor had nothing more to give.
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::CsrMatrix;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn subsample_is_seeded_sorted_and_complete_below_the_limit() {
        assert_eq!(shown_cells(5, 10, 0), vec![0, 1, 2, 3, 4]);
        let a = shown_cells(1000, 100, 7);
        assert_eq!(a, shown_cells(1000, 100, 7));
        assert_ne!(a, shown_cells(1000, 100, 8));
        assert_eq!(a.len(), 100);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
    }

    fn decode(p: &PackedExpression, k: usize, n: usize) -> Vec<f32> {
        use std::io::Read;
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&p.gzip[..])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(Some(&raw.len()), p.offsets.last());
        let mut at = p.offsets[k];
        let varint = |at: &mut usize| {
            let (mut v, mut shift) = (0u32, 0);
            loop {
                let b = raw[*at];
                *at += 1;
                v |= u32::from(b & 0x7f) << shift;
                if b < 0x80 {
                    return v;
                }
                shift += 7;
            }
        };
        let count = varint(&mut at) as usize;
        let mut pos = Vec::new();
        let mut prev: i64 = -1;
        for _ in 0..count {
            prev += i64::from(varint(&mut at));
            pos.push(prev as usize);
        }
        let mut out = vec![0f32; n];
        for (i, &q) in pos.iter().zip(&raw[at..at + count]) {
            out[*i] = f32::from(q) / 255.0 * p.max[k];
        }
        out
    }

    #[test]
    fn expression_round_trips_within_quantization_and_respects_the_budget() {
        // 300 cells x 3 genes; gene 1 is never expressed.
        let mut indptr = vec![0];
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        for c in 0..300u32 {
            if c % 3 != 0 {
                indices.push(0);
                data.push((c % 7 + 1) as f32);
            }
            indices.push(2);
            data.push(((c * 13) % 200 + 1) as f32);
            indptr.push(indices.len());
        }
        let m = CsrMatrix::try_new(300, 3, indptr, indices, data).unwrap();
        let sf = vec![1.5f32; 300];
        let shown: Vec<usize> = (0..300).step_by(2).collect();
        let p = pack_expression(&m, &sf, &shown, &[2, 0, 1], None).unwrap();
        assert_eq!(p.genes, vec![2, 0, 1]);
        for (k, &g) in p.genes.iter().enumerate() {
            let got = decode(&p, k, shown.len());
            for (pos, &cell) in shown.iter().enumerate() {
                let (idx, val) = m.row(cell);
                let want = idx
                    .iter()
                    .position(|&j| j as usize == g)
                    .map_or(0.0, |t| (1.0f32 + val[t] / 1.5).ln());
                // Quantization to 1/255 of the gene's maximum (half a step when rounding).
                assert!((got[pos] - want).abs() <= 0.5 / 255.0 * p.max[k] + 1e-6);
                assert_eq!(got[pos] == 0.0, want == 0.0);
            }
        }
        let small = pack_expression(&m, &sf, &shown, &[2, 0, 1], Some(60)).unwrap();
        assert!(small.left_out > 0 && small.genes.len() + small.left_out == 3);
        // A budget that the first two genes fit and the third does not: the cut stream is a
        // whole gzip member (CRC and length checked) of the kept records, within the bound.
        let all = pack_expression(&m, &sf, &shown, &[0, 1, 2], None).unwrap();
        let budget = all.gzip.len() - 30;
        let cut = pack_expression(&m, &sf, &shown, &[0, 1, 2], Some(budget)).unwrap();
        assert_eq!((cut.genes.clone(), cut.left_out), (vec![0, 1], 1));
        assert!(cut.gzip.len() <= budget + 10);
        for k in 0..2 {
            assert_eq!(cut.max[k], all.max[k]);
            assert_eq!(decode(&cut, k, shown.len()), decode(&all, k, shown.len()));
        }
        assert!(pack_expression(&m, &sf, &shown, &[2, 2], None).is_err());
        assert!(pack_expression(&m, &sf, &shown, &[3], None).is_err());
    }

    /// 500 cells x 1,000 genes, about 30% of the entries stored, and size factors.
    fn hashed_counts() -> (CsrMatrix, Vec<f32>) {
        let (n, g) = (500usize, 1000usize);
        let mut indptr = vec![0];
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        for c in 0..n {
            for j in 0..g {
                let h = (c * 7919 + j * 104_729) % 1000;
                if h < 300 {
                    indices.push(j as u32);
                    data.push((h % 40 + 1) as f32);
                }
            }
            indptr.push(indices.len());
        }
        let m = CsrMatrix::try_new(n, g, indptr, indices, data).unwrap();
        let sf: Vec<f32> = (0..n).map(|c| 0.5 + (c % 9) as f32 / 4.0).collect();
        (m, sf)
    }

    #[test]
    fn the_stream_does_not_depend_on_the_blocks_of_cells() {
        let (m, sf) = hashed_counts();
        let shown: Vec<usize> = (0..m.n_rows()).filter(|c| c % 3 != 1).collect();
        let genes: Vec<usize> = (0..m.n_cols()).step_by(3).rev().collect();
        let whole = pack_blocked((&m).into(), &sf, &shown, &genes, None, 4096).unwrap();
        for budget in [None, Some(whole.gzip.len() * 2 / 3)] {
            let one = pack_blocked((&m).into(), &sf, &shown, &genes, budget, shown.len()).unwrap();
            assert!(one.genes.len() > 10);
            assert_eq!(
                one.left_out > 0,
                budget.is_some(),
                "the budget cuts the stream"
            );
            for block in [1, 7, 64, 4096] {
                let p = pack_blocked((&m).into(), &sf, &shown, &genes, budget, block).unwrap();
                assert_eq!(p, one, "blocks of {block} cells, budget {budget:?}");
            }
        }
    }

    #[test]
    fn budget_cut_is_the_cut_of_the_whole_stream() {
        let (m, sf) = hashed_counts();
        let (n, g) = (m.n_rows(), m.n_cols());
        let shown: Vec<usize> = (0..n).step_by(2).collect();
        let genes: Vec<usize> = (0..g).rev().collect();
        let all = pack_expression(&m, &sf, &shown, &genes, None).unwrap();
        assert_eq!(all.genes, genes);
        let budget = all.gzip.len() * 2 / 3;
        let cut = pack_expression(&m, &sf, &shown, &genes, Some(budget)).unwrap();
        let kept = cut.genes.len();
        assert!(kept > 1 && kept < g, "{kept} genes kept");
        assert_eq!(cut.genes, all.genes[..kept]);
        assert_eq!(cut.left_out, g - kept);
        assert!(cut.gzip.len() <= budget + 10);
        // the kept stream is a prefix of the whole one, and the next gene would not have fit
        let body = cut.gzip.len() - 10;
        assert_eq!(cut.gzip[..body], all.gzip[..body]);
        let one_more = pack_expression(&m, &sf, &shown, &genes[..kept + 1], None).unwrap();
        assert!(one_more.gzip.len() - 10 > budget);
        for k in [0, kept / 2, kept - 1] {
            assert_eq!(decode(&cut, k, shown.len()), decode(&all, k, shown.len()));
        }
    }
}
