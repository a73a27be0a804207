//! The spill: a gene-major copy of the kept counts on disk, written once block of cells by
//! block, so that the markers read any block of genes for all kept cells without another pass
//! over the input file.
//!
//! # Layout
//! One file in a directory of its own (created next to the output, or in
//! [`super::StreamOptions::spill_dir`]; removed when the [`Spill`] is dropped, on success and on
//! error). Every block of cells appends one *segment*: the block's kept cells transposed to
//! gene-major order, every kept gene in turn as
//!
//! `varint(n)` then `n` entries `varint(cell delta) value`,
//!
//! where the cell delta is the kept-cell index minus the previous entry's (the first entry's
//! minus the block's first kept cell) and the value is `varint(count)` when every value of the
//! segment is an integer in `0..2^32` (raw counts), else the 4 bytes of the `f32`
//! (little-endian). Explicit zeros are kept, as the matrix loaded from the file keeps them.
//! At the usual 10x densities both varints take one byte: about 2 bytes per stored value
//! against 8 in memory. The byte offset of every [`GENES_PER_MARK`]-th gene of every segment
//! is kept in memory, so a block of genes is read with one contiguous read per segment and
//! the segments, concatenated in cell order, give the genes' columns (CSC).

use super::wire::{Reader, Wire};
use crate::error::{Error, Result};
use crate::lognorm::LogTable;
use crate::sparse::{resize_for_overwrite, CsrMatrix};
use rayon::prelude::*;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Genes between two offsets kept in memory (a read of a block of genes decodes at most this
/// many genes too many at either end, per segment).
pub const GENES_PER_MARK: usize = 64;

/// Ranges of genes transposed and encoded in parallel per block of cells.
const RANGES: usize = 16;

/// One block of cells in the spill file.
#[derive(Debug, Clone)]
struct Segment {
    /// Kept-cell index the first delta is taken from.
    base: u32,
    /// Per range of `per_range` marks: values stored as `f32` bits rather than varint counts.
    raw: Vec<bool>,
    /// Marks per range (the ranges are encoded in parallel, each after a flag byte).
    per_range: usize,
    /// Absolute byte offsets of genes `0, GENES_PER_MARK, 2 GENES_PER_MARK, ...` and the end.
    marks: Vec<u64>,
}

/// A gene-major spill of the kept counts (see the module docs). Writing: [`Spill::create`],
/// [`Spill::append`] per block of cells, [`Spill::finish`]; reading: [`Spill::columns`].
#[derive(Debug)]
pub struct Spill {
    /// The directory created for the spill (removed on drop).
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
    n_genes: usize,
    segments: Vec<Segment>,
    written: u64,
}

/// Gene-major columns of a block of genes: the entries of gene `j` are
/// `cells[ptr[j]..ptr[j + 1]]` (kept-cell indices, increasing) and the counts `values[..]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    /// Column pointers (`n_genes + 1`).
    pub ptr: Vec<usize>,
    /// Kept-cell index of each entry.
    pub cells: Vec<u32>,
    /// Count of each entry.
    pub values: Vec<f32>,
}

/// The memory [`Spill::columns_into`] reuses from one block of genes to the next: per segment,
/// the bytes read and the columns decoded from them.
#[derive(Debug, Default)]
pub struct ColumnScratch {
    parts: Vec<(Columns, Vec<u8>)>,
}

impl Spill {
    /// Creates a new directory under `parent` (which must exist) and the spill file in it, for
    /// `n_genes` kept genes. Refuses, naming the directory and the sizes, when the file system
    /// has fewer than `needed_bytes` available (on Unix; elsewhere the check is skipped).
    pub fn create(parent: &Path, n_genes: usize, needed_bytes: u64) -> Result<Spill> {
        if let Some(avail) = available_bytes(parent) {
            check_space(parent, needed_bytes, avail)?;
        }
        let io = |e: std::io::Error, what: &Path| {
            Error::data("spill", format!("cannot create {}: {e}", what.display()))
        };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut k = 0u32;
        let dir = loop {
            let d = parent.join(format!(".scrna-spill-{}-{stamp}-{k}", std::process::id()));
            match std::fs::create_dir(&d) {
                Ok(()) => break d,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 100 => k += 1,
                Err(e) => return Err(io(e, &d)),
            }
        };
        let path = dir.join("counts.spill");
        let file = match File::create(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(io(e, &path));
            }
        };
        Ok(Spill {
            dir,
            path,
            file: Some(file),
            n_genes,
            segments: Vec::new(),
            written: 0,
        })
    }

    /// The directory holding the spill (removed when `self` is dropped).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.written
    }

    /// Appends the kept cells of a block read from the file: `x` holds input cells
    /// `a..a + x.n_rows()`, `kept_pos[cell]` is the kept-cell index (`u32::MAX`: removed) and
    /// `gene_pos[column]` the kept-gene index (`u32::MAX`: removed). Blocks may come in any
    /// order ([`finish`](Self::finish) puts them in cell order).
    pub fn append(
        &mut self,
        a: usize,
        x: &CsrMatrix,
        kept_pos: &[u32],
        gene_pos: &[u32],
    ) -> Result<()> {
        match encode_segment(a, x, kept_pos, gene_pos, self.n_genes) {
            Some(s) => self.append_encoded(s),
            None => Ok(()),
        }
    }

    /// Appends a segment made by [`encode_segment`] for this spill's genes (in any order of
    /// the blocks of cells).
    pub fn append_encoded(&mut self, seg: EncodedSegment) -> Result<()> {
        let EncodedSegment {
            base,
            per_range,
            ranges: encoded,
        } = seg;
        let n_marks = self.n_genes.div_ceil(GENES_PER_MARK);
        if encoded.iter().map(|(_, m)| m.len()).sum::<usize>() != n_marks {
            return Err(Error::data(
                "spill",
                format!(
                    "a segment for another number of genes than the {}",
                    self.n_genes
                ),
            ));
        }
        let mut marks = Vec::with_capacity(n_marks + 1);
        let mut raw = Vec::with_capacity(encoded.len());
        let file = self.file.as_mut().ok_or_else(|| {
            Error::data("spill", "append after the spill was finished".to_string())
        })?;
        for (bytes, rel) in &encoded {
            raw.push(bytes.first() == Some(&1));
            marks.extend(rel.iter().map(|&m| self.written + 1 + m));
            file.write_all(bytes).map_err(|e| {
                Error::data(
                    "spill",
                    format!(
                        "writing {} (after {} bytes): {e}",
                        self.path.display(),
                        self.written
                    ),
                )
            })?;
            self.written += bytes.len() as u64;
        }
        marks.push(self.written);
        self.segments.push(Segment {
            base,
            raw,
            per_range,
            marks,
        });
        Ok(())
    }

    /// Ends writing (flushes and closes the file); [`columns`](Self::columns) reads after.
    pub fn finish(&mut self) -> Result<()> {
        self.file.take();
        self.segments.sort_by_key(|s| s.base);
        Ok(())
    }

    /// The columns of kept genes `g0..g1` over all kept cells (entries in cell order).
    pub fn columns(&self, g0: usize, g1: usize) -> Result<Columns> {
        let mut out = Columns::default();
        self.columns_into(g0, g1, &mut out, &mut ColumnScratch::default())?;
        Ok(out)
    }

    /// [`columns`](Self::columns) into `out`, reusing its memory and that of `scratch` (the
    /// per-segment reads and parts): the blocks of genes of one run are of similar sizes, so
    /// from the second block on no new memory is touched (a fresh allocation of this size
    /// costs a page fault per 4 KB page as it is first written; at 200,000 cells a quarter of
    /// the markers step).
    pub fn columns_into(
        &self,
        g0: usize,
        g1: usize,
        out: &mut Columns,
        scratch: &mut ColumnScratch,
    ) -> Result<()> {
        if g0 > g1 || g1 > self.n_genes {
            return Err(Error::data(
                "spill",
                format!("gene range {g0}..{g1} outside the {} genes", self.n_genes),
            ));
        }
        let file = File::open(&self.path).map_err(|e| {
            Error::data("spill", format!("cannot open {}: {e}", self.path.display()))
        })?;
        let bg = g1 - g0;
        let m0 = g0 / GENES_PER_MARK;
        let m1 = g1.div_ceil(GENES_PER_MARK);
        scratch
            .parts
            .resize_with(self.segments.len(), Default::default);
        // Decode every segment's part in parallel, then concatenate per gene.
        self.segments
            .par_iter()
            .zip(scratch.parts.par_iter_mut())
            .try_for_each(|(s, (part, bytes))| -> Result<()> {
                let corrupt = || Error::data("spill", "corrupt spill segment".to_string());
                part.ptr.clear();
                part.ptr.push(0);
                part.cells.clear();
                part.values.clear();
                // One read per range of marks (ranges start with their flag byte).
                let mut m = m0;
                while m < m1 {
                    let range = m / s.per_range;
                    let end = ((range + 1) * s.per_range).min(m1);
                    let lo = *s.marks.get(m).ok_or_else(corrupt)?;
                    let hi = match s.marks.get(end) {
                        Some(&h) if end % s.per_range != 0 || end == s.marks.len() - 1 => h,
                        Some(&h) => h - 1,
                        None => return Err(corrupt()),
                    };
                    resize_for_overwrite(bytes, (hi - lo) as usize);
                    read_at(&file, bytes, lo).map_err(|e| {
                        Error::data(
                            "spill",
                            format!("reading {} at {lo}: {e}", self.path.display()),
                        )
                    })?;
                    let raw = *s.raw.get(range).ok_or_else(corrupt)?;
                    let first = m * GENES_PER_MARK;
                    let last = (end * GENES_PER_MARK).min(g1);
                    decode(bytes, s.base, raw, first, g0.max(first), last, part)
                        .ok_or_else(corrupt)?;
                    m = end;
                }
                Ok(())
            })?;
        let parts = &scratch.parts[..self.segments.len()];
        let Columns { ptr, cells, values } = out;
        ptr.clear();
        ptr.resize(bg + 1, 0);
        for j in 0..bg {
            let n = parts.iter().map(|(p, _)| p.ptr[j + 1] - p.ptr[j]);
            ptr[j + 1] = ptr[j] + n.sum::<usize>();
        }
        let nnz = ptr[bg];
        // Every entry is written below.
        resize_for_overwrite(cells, nnz);
        resize_for_overwrite(values, nnz);
        let mut slices: Vec<(usize, &mut [u32], &mut [f32])> = Vec::with_capacity(bg);
        let (mut rc, mut rv) = (&mut cells[..], &mut values[..]);
        for j in 0..bg {
            let n = ptr[j + 1] - ptr[j];
            let (hc, tc) = rc.split_at_mut(n);
            let (hv, tv) = rv.split_at_mut(n);
            slices.push((j, hc, hv));
            rc = tc;
            rv = tv;
        }
        slices.into_par_iter().for_each(|(j, oc, ov)| {
            let mut w = 0;
            for (p, _) in parts {
                let (lo, hi) = (p.ptr[j], p.ptr[j + 1]);
                oc[w..w + hi - lo].copy_from_slice(&p.cells[lo..hi]);
                ov[w..w + hi - lo].copy_from_slice(&p.values[lo..hi]);
                w += hi - lo;
            }
        });
        Ok(())
    }
}

/// A block of cells transposed to gene-major order and encoded (see the module docs), for a
/// spill of `n_genes` genes; `None` when the block has no kept cell. What
/// [`Spill::append`] writes; made apart so that the worker reading the block and the worker
/// writing the spill of those genes can differ.
pub fn encode_segment(
    a: usize,
    x: &CsrMatrix,
    kept_pos: &[u32],
    gene_pos: &[u32],
    n_genes: usize,
) -> Option<EncodedSegment> {
    let ng = n_genes;
    let rows: Vec<(usize, u32)> = (0..x.n_rows())
        .filter_map(|r| {
            let k = *kept_pos.get(a + r)?;
            (k != u32::MAX).then_some((r, k))
        })
        .collect();
    let &(_, base) = rows.first()?;
    // First input column of every kept gene (kept genes are increasing in the columns).
    let mut first_col = vec![u32::MAX; ng + 1];
    for (c, &g) in gene_pos.iter().enumerate().rev() {
        if let Some(f) = first_col.get_mut(g as usize) {
            *f = c as u32;
        }
    }
    // Fixed ranges of gene groups (independent of the thread count), each transposed
    // (counting sort by gene; cells stay in order) and encoded on its own.
    let n_marks = ng.div_ceil(GENES_PER_MARK);
    let per_task = n_marks.div_ceil(RANGES).max(1);
    let tasks: Vec<(usize, usize)> = (0..n_marks)
        .step_by(per_task)
        .map(|m| (m, (m + per_task).min(n_marks)))
        .collect();
    // Where each task's input columns start in every kept row (the columns of a row increase):
    // one scan of each row instead of two binary searches per task and pass, which on large
    // blocks missed the cache at every step.
    let bounds: Vec<u32> = tasks
        .iter()
        .map(|&(m0, _)| first_col[m0 * GENES_PER_MARK])
        .chain(std::iter::once(u32::MAX))
        .collect();
    let stride = bounds.len();
    let mut cuts = vec![0u32; rows.len() * stride];
    cuts.par_chunks_mut(stride * 256)
        .zip(rows.par_chunks(256))
        .for_each(|(out, rows)| {
            for (cut, &(r, _)) in out.chunks_exact_mut(stride).zip(rows) {
                let idx = x.row(r).0;
                let mut t = 0;
                for (p, &c) in idx.iter().enumerate() {
                    while t < stride && c >= bounds[t] {
                        cut[t] = p as u32;
                        t += 1;
                    }
                }
                cut[t..].fill(idx.len() as u32);
            }
        });
    let encoded: Vec<(Vec<u8>, Vec<u64>)> = tasks
        .par_iter()
        .enumerate()
        .map(|(t, &(m0, m1))| {
            let g0 = m0 * GENES_PER_MARK;
            let g1 = (m1 * GENES_PER_MARK).min(ng);
            let entries = RangeEntries {
                x,
                rows: &rows,
                cuts: &cuts,
                stride,
                task: t,
                gene_pos,
                g0: g0 as u32,
            };
            let sizes = GeneSizes::of(g1 - g0, base, &entries);
            let (mut out, marks) = sizes.layout();
            sizes.fill(&mut out, base, &entries);
            (out, marks)
        })
        .collect();
    Some(EncodedSegment {
        base,
        per_range: per_task,
        ranges: encoded,
    })
}

/// One block of cells of the spill, encoded: the first kept cell, the marks per range, and
/// per range its bytes (flag byte first) and the offsets of its marks within them.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedSegment {
    base: u32,
    per_range: usize,
    ranges: Vec<(Vec<u8>, Vec<u64>)>,
}

/// The entries of one range of genes of a block of cells: the kept rows' values in the
/// range's input columns (`cuts[i * stride + task]..cuts[i * stride + task + 1]` of kept row
/// `i`) whose columns are kept genes.
struct RangeEntries<'a> {
    x: &'a CsrMatrix,
    /// (row of `x`, kept cell), cells increasing.
    rows: &'a [(usize, u32)],
    cuts: &'a [u32],
    stride: usize,
    task: usize,
    gene_pos: &'a [u32],
    /// The range's first kept gene.
    g0: u32,
}

impl RangeEntries<'_> {
    /// Calls `f(gene - g0, kept cell, value)` for every entry, row after row (so the cells of
    /// each gene increase).
    #[inline(always)]
    fn each(&self, mut f: impl FnMut(usize, u32, f32)) {
        for (i, &(r, k)) in self.rows.iter().enumerate() {
            let at = i * self.stride + self.task;
            let sp = self.cuts[at] as usize..self.cuts[at + 1] as usize;
            let (idx, val) = self.x.row(r);
            for (&c, &v) in idx[sp.clone()].iter().zip(&val[sp]) {
                let g = self.gene_pos[c as usize];
                if g != u32::MAX {
                    f((g - self.g0) as usize, k, v);
                }
            }
        }
    }
}

/// The encoded sizes of one range of genes of a segment, counted in a first pass over its
/// entries so that the second pass writes every entry's bytes straight to their place in the
/// range's output (no gene-major copy of the entries in between).
struct GeneSizes {
    genes: Vec<GeneSize>,
    /// Some value of the range is not a count: every value is stored as `f32` bits.
    raw: bool,
}

/// What the first pass counts of one gene, kept together: an entry reads and writes one place.
#[derive(Clone, Copy)]
struct GeneSize {
    /// Entries.
    n: u32,
    /// Kept cell of the last entry seen (the base before the first).
    last: u32,
    /// Bytes of the cell deltas.
    delta_bytes: u64,
    /// Bytes of the values as varint counts (meaningless when the range is `raw`).
    count_bytes: u64,
}

impl GeneSizes {
    /// Counts the range's entries (the first delta of each gene is taken from `base`).
    fn of(n_genes: usize, base: u32, entries: &RangeEntries<'_>) -> Self {
        let zero = GeneSize {
            n: 0,
            last: base,
            delta_bytes: 0,
            count_bytes: 0,
        };
        let mut genes = vec![zero; n_genes];
        let mut not_count = false;
        entries.each(|j, k, v| {
            let s = &mut genes[j];
            s.n += 1;
            s.delta_bytes += varint_len32(k - s.last);
            s.last = k;
            // a value from 2^32 on is not a count: its length is not used
            s.count_bytes += varint_len32(v as u32);
            not_count |= !is_count(v);
        });
        GeneSizes {
            genes,
            raw: not_count,
        }
    }

    /// Bytes of gene `j`: its length, its deltas and its values.
    fn gene_bytes(&self, j: usize) -> u64 {
        let s = &self.genes[j];
        let n = s.n as u64;
        let values = if self.raw { 4 * n } else { s.count_bytes };
        varint_len(n) + s.delta_bytes + values
    }

    /// The range's output, sized and holding its flag byte, and the offsets of its marks
    /// (every [`GENES_PER_MARK`]-th gene, counted after the flag byte).
    fn layout(&self) -> (Vec<u8>, Vec<u64>) {
        let mut marks = Vec::with_capacity(self.genes.len().div_ceil(GENES_PER_MARK));
        let mut at = 0u64;
        for j in 0..self.genes.len() {
            if j % GENES_PER_MARK == 0 {
                marks.push(at);
            }
            at += self.gene_bytes(j);
        }
        let mut out = vec![0u8; 1 + at as usize];
        out[0] = self.raw as u8;
        (out, marks)
    }

    /// Writes every gene's length and then, in a second visit of the entries, each entry's
    /// delta and value at its gene's cursor: the bytes the module docs describe.
    fn fill(&self, out: &mut [u8], base: u32, entries: &RangeEntries<'_>) {
        // per gene: where its next entry goes, and the kept cell of its last entry
        let mut cursor: Vec<(usize, u32)> = Vec::with_capacity(self.genes.len());
        let mut at = 1usize;
        for (j, s) in self.genes.iter().enumerate() {
            let len = put_varint_at(out, at, s.n as u64);
            cursor.push((len, base));
            at += self.gene_bytes(j) as usize;
        }
        let raw = self.raw;
        entries.each(|j, k, v| {
            let (c, last) = &mut cursor[j];
            let mut p = put_varint_at(out, *c, (k - *last) as u64);
            *last = k;
            p = if raw {
                out[p..p + 4].copy_from_slice(&v.to_le_bytes());
                p + 4
            } else {
                put_varint_at(out, p, v as u64)
            };
            *c = p;
        });
    }
}

impl Wire for EncodedSegment {
    fn put(&self, out: &mut Vec<u8>) {
        self.base.put(out);
        self.per_range.put(out);
        self.ranges.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let (base, per_range, ranges) = <(u32, usize, Vec<(Vec<u8>, Vec<u64>)>)>::get(r)?;
        if per_range == 0 {
            return Err(Error::data("spill", "a segment with no marks per range"));
        }
        Ok(EncodedSegment {
            base,
            per_range,
            ranges,
        })
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        self.file.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Columns {
    /// Replaces the counts by the log-normalized values `ln(1 + x / s)` of their cells
    /// (`size_factors[cell]`, `s = 1` where it is 0), as the matrix loaded from the file.
    pub fn lognormalize(&mut self, size_factors: &[f32]) -> Result<()> {
        self.lognormalize_with(&LogTable::new(size_factors))
    }

    /// [`lognormalize`](Self::lognormalize) with the size factors and log values of `logs`
    /// (made once for every block of genes).
    pub(crate) fn lognormalize_with(&mut self, logs: &LogTable<'_>) -> Result<()> {
        let n = logs.size_factors().len();
        if self.cells.iter().any(|&k| k as usize >= n) {
            return Err(Error::data("spill", "cell index past the kept cells"));
        }
        self.values
            .par_chunks_mut(1 << 16)
            .zip(self.cells.par_chunks(1 << 16))
            .for_each(|(v, c)| {
                for (v, &k) in v.iter_mut().zip(c) {
                    *v = logs.value(k as usize, *v);
                }
            });
        Ok(())
    }
}

/// Decodes genes `first..g1` from `bytes` (which start at gene `first` of a segment whose
/// first delta is from `base`), appending genes `g0..g1` to `out`. Not inlined: inlined into
/// [`Spill::columns_into`]'s parallel closure its loop took twice the time (50,000 cells,
/// `perf`).
#[inline(never)]
fn decode(
    bytes: &[u8],
    base: u32,
    raw: bool,
    first: usize,
    g0: usize,
    g1: usize,
    out: &mut Columns,
) -> Option<()> {
    let mut at = 0usize;
    for g in first..g1 {
        let n = get_varint(bytes, &mut at)? as usize;
        let keep = g >= g0;
        let mut prev = base;
        for _ in 0..n {
            let d = get_varint(bytes, &mut at)? as u32;
            prev = prev.checked_add(d)?;
            let v = if raw {
                let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
                at += 4;
                f32::from_le_bytes(b)
            } else {
                get_varint(bytes, &mut at)? as f32
            };
            if keep {
                out.cells.push(prev);
                out.values.push(v);
            }
        }
        if keep {
            out.ptr.push(out.cells.len());
        }
    }
    Some(())
}

/// An integer count that the varint encoding holds exactly.
#[inline(always)]
fn is_count(v: f32) -> bool {
    // no branch, no conversion (NaN fails the range test)
    (0.0..4_294_967_296.0).contains(&v) & crate::io::counts::is_integer(v)
}

/// Writes the varint of `v` at `out[at..]`; returns the position after it.
#[inline(always)]
fn put_varint_at(out: &mut [u8], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        out[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    out[at] = v as u8;
    at + 1
}

#[inline]
fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Bytes of the varint of `v`.
fn varint_len(v: u64) -> u64 {
    (64 - v.max(1).leading_zeros() as u64).div_ceil(7).max(1)
}

/// [`varint_len`] of a 32-bit value, without a branch or a bit scan.
#[inline(always)]
fn varint_len32(v: u32) -> u64 {
    1 + u64::from(v >= 1 << 7)
        + u64::from(v >= 1 << 14)
        + u64::from(v >= 1 << 21)
        + u64::from(v >= 1 << 28)
}

/// Estimated size of the spill: for each kept gene with `stored` values over `n_cells` kept
/// cells and a total `total` (of its counts), the entries at the varint length of the mean
/// cell gap and of the mean count (4 bytes per value when `raw`), plus one length per gene and
/// segment; 10% and 1 MiB added for the spread around the means.
pub fn estimate_bytes(
    stored: &[u64],
    totals: &[f64],
    n_cells: usize,
    n_segments: usize,
    raw: bool,
) -> u64 {
    let mut b = 0u64;
    for (&s, &t) in stored.iter().zip(totals) {
        if s == 0 {
            continue;
        }
        let gap = varint_len(n_cells as u64 / s + 1);
        let val = if raw {
            4
        } else {
            varint_len((t.max(0.0) / s as f64).ceil() as u64 + 1)
        };
        b += s * (gap + val) + n_segments as u64 * varint_len(s);
    }
    b + b / 10 + (1 << 20)
}

/// Refuses a spill of `needed` bytes in `dir` when only `available` are free.
pub fn check_space(dir: &Path, needed: u64, available: u64) -> Result<()> {
    if needed > available {
        return Err(Error::data(
            "spill",
            format!(
                "{} has {:.1} MB free, the gene-major copy of the counts needs about {:.1} MB \
                 ({needed} bytes): free space there or give another directory (spill_dir)",
                dir.display(),
                available as f64 / 1e6,
                needed as f64 / 1e6
            ),
        ));
    }
    Ok(())
}

/// Bytes available to an unprivileged user on the file system of `dir` (`None` when unknown).
#[cfg(unix)]
fn available_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(not(unix))]
fn available_bytes(_dir: &Path) -> Option<u64> {
    None
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(not(unix))]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = f.try_clone()?;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    #[test]
    fn varints_round_trip() {
        let mut b = Vec::new();
        let vals = [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ];
        for &v in &vals {
            put_varint(&mut b, v);
            assert_eq!(varint_len(v), {
                let mut t = Vec::new();
                put_varint(&mut t, v);
                t.len() as u64
            });
        }
        for v in (0..32)
            .flat_map(|s| [(1u64 << s) - 1, 1 << s])
            .chain([u32::MAX as u64])
        {
            assert_eq!(varint_len32(v as u32), varint_len(v), "{v}");
        }
        let mut at = 0;
        for &v in &vals {
            assert_eq!(get_varint(&b, &mut at), Some(v));
        }
        assert_eq!(get_varint(&b, &mut at), None);
    }

    fn matrix() -> CsrMatrix {
        // 5 cells x 4 genes; cell 2 removed, gene 1 removed; one non-integer value.
        CsrMatrix::from_triplets(
            5,
            4,
            &[0, 0, 1, 2, 3, 3, 4, 4],
            &[0, 2, 3, 0, 1, 3, 0, 2],
            &[3.0, 1.0, 200.0, 7.0, 2.0, 0.0, 1.0, 5.0],
        )
        .unwrap()
    }

    #[test]
    fn round_trip_by_blocks_and_gene_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let x = matrix();
        let kept_pos = [0, 1, u32::MAX, 2, 3];
        let gene_pos = [0, u32::MAX, 1, 2];
        let mut s = Spill::create(dir.path(), 3, 0).unwrap();
        let spill_dir = s.dir().to_path_buf();
        for (a, b) in [(0, 2), (2, 3), (3, 5)] {
            let rows: Vec<usize> = (a..b).collect();
            s.append(a, &x.select_rows(&rows).unwrap(), &kept_pos, &gene_pos)
                .unwrap();
        }
        s.finish().unwrap();
        assert!(s.bytes() > 0);
        let all = s.columns(0, 3).unwrap();
        assert_eq!(all.ptr, vec![0, 2, 4, 6]);
        assert_eq!(all.cells, vec![0, 3, 0, 3, 1, 2]);
        assert_eq!(all.values, vec![3.0, 1.0, 1.0, 5.0, 200.0, 0.0]);
        let mid = s.columns(1, 2).unwrap();
        assert_eq!(mid.ptr, vec![0, 2]);
        assert_eq!(mid.cells, vec![0, 3]);
        // Buffers reused from a larger block, then from a smaller one, give the same columns.
        let (mut out, mut scratch) = (Columns::default(), ColumnScratch::default());
        for (a, b, want) in [(0, 3, &all), (1, 2, &mid), (0, 3, &all)] {
            s.columns_into(a, b, &mut out, &mut scratch).unwrap();
            assert_eq!(&out, want, "{a}..{b}");
        }
        assert!(s.columns(2, 4).is_err());
        // The log-normalized values.
        let sf = [2.0f32, 1.0, 0.0, 4.0];
        let mut l = all.clone();
        l.lognormalize(&sf).unwrap();
        let want: Vec<f32> = [1.5f32, 0.25, 0.5, 1.25, 200.0, 0.0]
            .iter()
            .map(|v| v.ln_1p())
            .collect();
        assert_eq!(l.values, want);
        assert!(l.lognormalize(&sf[..2]).is_err());
        drop(s);
        assert!(!spill_dir.exists());
    }

    #[test]
    fn many_genes_any_range() {
        // 40 cells x 3000 genes (47 marks in 16 ranges), every 7th gene removed, values by an
        // LCG, one range with a non-integer value.
        let (n, g) = (40usize, 3000usize);
        let mut state = 12345u64;
        let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            for j in 0..g {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if (state >> 33) % 5 == 0 {
                    r.push(i as u32);
                    c.push(j as u32);
                    v.push(((state >> 40) % 300) as f32 + if j == 2500 { 0.5 } else { 0.0 });
                }
            }
        }
        let x = CsrMatrix::from_triplets(n, g, &r, &c, &v).unwrap();
        let mut gene_pos = vec![u32::MAX; g];
        let mut kept = Vec::new();
        for j in (0..g).filter(|j| j % 7 != 3) {
            gene_pos[j] = kept.len() as u32;
            kept.push(j);
        }
        let kept_pos: Vec<u32> = (0..n as u32).collect();
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spill::create(dir.path(), kept.len(), 0).unwrap();
        for a in (0..n).step_by(15) {
            let rows: Vec<usize> = (a..(a + 15).min(n)).collect();
            s.append(a, &x.select_rows(&rows).unwrap(), &kept_pos, &gene_pos)
                .unwrap();
        }
        s.finish().unwrap();
        for (g0, g1) in [
            (0, kept.len()),
            (0, 1),
            (63, 65),
            (100, 900),
            (2000, kept.len()),
        ] {
            let col = s.columns(g0, g1).unwrap();
            assert_eq!(col.ptr.len(), g1 - g0 + 1);
            for (jj, &j) in kept[g0..g1].iter().enumerate() {
                let want: Vec<(u32, f32)> = (0..n)
                    .filter_map(|i| {
                        let (idx, val) = x.row(i);
                        idx.iter()
                            .position(|&c| c as usize == j)
                            .map(|p| (i as u32, val[p]))
                    })
                    .collect();
                let (lo, hi) = (col.ptr[jj], col.ptr[jj + 1]);
                let got: Vec<(u32, f32)> = col.cells[lo..hi]
                    .iter()
                    .copied()
                    .zip(col.values[lo..hi].iter().copied())
                    .collect();
                assert_eq!(got, want, "gene {j} in {g0}..{g1}");
            }
        }
    }

    /// The module docs' encoding, written plainly: per range of genes the flag byte, then per
    /// gene `varint(n)` and its entries `varint(cell delta) value` in cell order.
    fn plain_segment(
        x: &CsrMatrix,
        kept_pos: &[u32],
        gene_pos: &[u32],
        ng: usize,
    ) -> EncodedSegment {
        let mut cols: Vec<Vec<(u32, f32)>> = vec![Vec::new(); ng];
        for (r, &k) in kept_pos.iter().enumerate() {
            if k == u32::MAX {
                continue;
            }
            let (idx, val) = x.row(r);
            for (&c, &v) in idx.iter().zip(val) {
                if gene_pos[c as usize] != u32::MAX {
                    cols[gene_pos[c as usize] as usize].push((k, v));
                }
            }
        }
        let base = *kept_pos.iter().find(|&&k| k != u32::MAX).unwrap();
        let n_marks = ng.div_ceil(GENES_PER_MARK);
        let per = n_marks.div_ceil(RANGES).max(1);
        let mut ranges = Vec::new();
        for m0 in (0..n_marks).step_by(per) {
            let genes = m0 * GENES_PER_MARK..((m0 + per) * GENES_PER_MARK).min(ng);
            let raw = genes
                .clone()
                .any(|g| cols[g].iter().any(|&(_, v)| !is_count(v)));
            let (mut out, mut marks) = (vec![raw as u8], Vec::new());
            for g in genes.clone() {
                if (g - genes.start) % GENES_PER_MARK == 0 {
                    marks.push(out.len() as u64 - 1);
                }
                put_varint(&mut out, cols[g].len() as u64);
                let mut prev = base;
                for &(k, v) in &cols[g] {
                    put_varint(&mut out, (k - prev) as u64);
                    prev = k;
                    if raw {
                        out.extend_from_slice(&v.to_le_bytes());
                    } else {
                        put_varint(&mut out, v as u64);
                    }
                }
            }
            ranges.push((out, marks));
        }
        EncodedSegment {
            base,
            per_range: per,
            ranges,
        }
    }

    #[test]
    fn segments_are_encoded_as_documented() {
        // 300 cells x 2500 genes: sparse genes (cell gaps past one varint byte),
        // counts past 127 and 16,383, removed cells and genes, one gene with a non-integer
        // value (its range stored as f32 bits).
        let (n, g) = (300usize, 2500usize);
        let mut state = 99u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            for j in 0..g {
                let p = if j % 10 == 0 { 3 } else { 150 };
                if next() % p == 0 {
                    r.push(i as u32);
                    c.push(j as u32);
                    let big = [1.0, 127.0, 128.0, 20_000.0][(next() % 4) as usize];
                    let frac = if j == 1778 { 0.25 } else { 0.0 };
                    v.push((next() % 5) as f32 * big + frac);
                }
            }
        }
        let x = CsrMatrix::from_triplets(n, g, &r, &c, &v).unwrap();
        let mut kept_pos = vec![u32::MAX; n];
        let mut k = 7u32;
        for (i, p) in kept_pos.iter_mut().enumerate() {
            if i % 13 != 5 {
                *p = k;
                k += 1;
            }
        }
        let mut gene_pos = vec![u32::MAX; g];
        let mut ng = 0;
        for (j, p) in gene_pos.iter_mut().enumerate() {
            if j % 9 != 4 {
                *p = ng;
                ng += 1;
            }
        }
        let seg = encode_segment(0, &x, &kept_pos, &gene_pos, ng as usize).unwrap();
        let want = plain_segment(&x, &kept_pos, &gene_pos, ng as usize);
        assert_eq!((seg.base, seg.per_range), (want.base, want.per_range));
        assert_eq!(seg.ranges.len(), want.ranges.len());
        let flags: Vec<u8> = want.ranges.iter().map(|(b, _)| b[0]).collect();
        assert!(flags.contains(&1) && flags.contains(&0), "{flags:?}");
        for (t, (got, want)) in seg.ranges.iter().zip(&want.ranges).enumerate() {
            assert_eq!(got, want, "range {t}");
        }
    }

    #[test]
    fn is_count_is_the_round_trip_test() {
        let plain = |v: f32| (0.0..4_294_967_296.0).contains(&v) && (v as u64) as f32 == v;
        let mut vals = vec![
            0.0f32,
            -0.0,
            0.5,
            1.0,
            -1.0,
            8_388_607.5,
            8_388_608.0,
            16_777_217.0,
            4_294_967_040.0,
            4_294_967_296.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
        ];
        vals.extend((0..u32::MAX).step_by(997).map(f32::from_bits));
        for v in vals {
            assert_eq!(is_count(v), plain(v), "{v} ({:#x})", v.to_bits());
        }
    }

    #[test]
    fn non_integer_values_are_kept_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let x = CsrMatrix::from_triplets(2, 2, &[0, 1], &[1, 0], &[0.3, 2.0]).unwrap();
        let mut s = Spill::create(dir.path(), 2, 0).unwrap();
        s.append(0, &x, &[0, 1], &[0, 1]).unwrap();
        s.finish().unwrap();
        let c = s.columns(0, 2).unwrap();
        assert_eq!(c.values, vec![2.0, 0.3]);
    }

    #[test]
    fn refuses_without_space() {
        let e = check_space(Path::new("/some/dir"), 2_000_000, 1_000_000).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/some/dir") && msg.contains("2000000"),
            "{msg}"
        );
        assert!(check_space(Path::new("/x"), 10, 10).is_ok());
        let dir = tempfile::tempdir().unwrap();
        assert!(Spill::create(dir.path(), 1, u64::MAX / 2).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Integer counts: about two bytes per value at these gaps and counts.
        let est = estimate_bytes(&[1000], &[3000.0], 8000, 1, false);
        assert_eq!(est, 1000 * 2 + 2 + 200 + (1 << 20));
    }
}
