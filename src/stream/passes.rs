//! The passes over the file, each written as what one unit of cells contributes (its *part*)
//! and how the leader adds the parts up in unit order ([`super::workers`]).
//!
//! The parts are the steps' own block accumulators, fed the blocks this module reads: the QC
//! step's [`QcSums`] and [`detected_in`] (`crate::qc::parts`), the normalization's totals of
//! the kept cells over the kept genes (the sums of the filter's copy of them, taken from the
//! block through a map of the kept genes, in the copy's order), and the normalization's
//! per-gene moments [`LogMoments`] (the kernel of the in-memory step, with its per-cell cache
//! of the log values of small counts). What is left here is the streaming glue:
//! which cells a unit reads, the wire encoding of the parts ([`Wire`]), and which parts go to
//! which worker.
//!
//! | pass | unit | part | added up |
//! |---|---|---|---|
//! | QC | a block of cells read | [`QcSums`] of the block (per-cell sums; per gene the cells detecting it and its total); per gene the cells passing the fixed filters detecting it | [`QcSums::add`], counts added |
//! | QC again (MAD only) | a block of cells | per gene the kept cells detecting it | added |
//! | median total (no `target_sum`) | a block of cells | the totals of its kept cells | concatenated |
//! | HVG | one of the fixed row blocks of the kept cells (`COL_BLOCKS`, as the in-memory normalization) | the size factors of its cells; [`LogMoments`] of its cells over the kept genes; per kept gene the stored values | added in block order: bit-identical to the in-memory moments |
//! | load | a block of cells (computed by the worker holding the PCA row of its middle kept cell) | the HVG rows of its kept cells, cut by the workers holding them ([`crate::pca::RowBlocks::split`] of the kept cells); its counts in gene-major order, one encoded spill segment per worker's range of genes | rows put in order by the worker holding them ([`RowsCollector`]); segments written by the worker owning the genes |
//!
//! Where the streamed sums still differ from the in-memory ones:
//! - the per-gene QC totals are `f64` sums in the fixed row blocks of each block read, not of
//!   the whole matrix: the same numbers for integer counts, to rounding for non-integer ones
//!   (a sum cannot be continued across blocks that different workers compute);
//! - a kept gene with the same non-zero log value in every kept cell gets its variance from
//!   the sums (a rounding residue) where the in-memory step sets it to exactly 0, because
//!   the in-memory check reads the values again after the sums, which here would be another
//!   pass over the file.

use super::reader::CellChunks;
use super::spill::EncodedSegment;
use super::wire::{Reader, Wire};
use crate::error::Result;
use crate::normalize::{LogMoments, RowLogs};
use crate::qc::{detected_in, FilterOptions, GeneSums, QcSums};
use crate::sparse::{sum_values_where, CsrMatrix};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::ops::Range;

/// What a block of cells contributes to the QC step: the step's own block accumulator
/// ([`QcSums`]) and, per gene, the cells passing the fixed filters with a non-zero value
/// (exact when there is no MAD filter).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct QcPart {
    pub sums: QcSums,
    pub kept: Vec<u32>,
}

impl Wire for QcPart {
    fn put(&self, out: &mut Vec<u8>) {
        self.sums.per_cell.put(out);
        self.sums.genes.detected.put(out);
        self.sums.genes.totals.put(out);
        self.kept.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let per_cell = Wire::get(r)?;
        let genes = GeneSums {
            detected: Wire::get(r)?,
            totals: Wire::get(r)?,
        };
        Ok(QcPart {
            sums: QcSums { per_cell, genes },
            kept: Wire::get(r)?,
        })
    }
}

impl QcPart {
    /// An empty sum over `n_genes` genes.
    pub fn empty(n_genes: usize) -> QcPart {
        QcPart {
            sums: QcSums::new(n_genes),
            kept: vec![0; n_genes],
        }
    }

    /// The part of the block `x` (its cells in file order); `flags` per gene as
    /// [`crate::qc::gene_flags`]; the cells passing the fixed filters are counted when
    /// `local_only` (no MAD filter).
    pub fn of_block(x: &CsrMatrix, flags: &[u8], fo: &FilterOptions, local_only: bool) -> QcPart {
        let sums = QcSums::of_block(x, flags);
        let kept = if local_only {
            let passing = sums.per_cell.iter().enumerate();
            let rows: Vec<usize> = passing
                .filter(|(_, c)| fo.passes_fixed(c))
                .map(|(r, _)| r)
                .collect();
            detected_in(x, &rows)
        } else {
            vec![0; x.n_cols()]
        };
        QcPart { sums, kept }
    }

    /// Adds the next block's part (blocks in cell order).
    pub fn add(&mut self, p: QcPart) -> Result<()> {
        same_len("QC part", self.kept.len(), p.kept.len())?;
        self.sums.add(p.sums)?;
        for (a, b) in self.kept.iter_mut().zip(p.kept) {
            *a += b;
        }
        Ok(())
    }
}

/// Per input gene, the kept cells of block `x` (input cells `a..`) with a non-zero value.
pub(super) fn kept_detection(a: usize, x: &CsrMatrix, kept_pos: &[u32]) -> Vec<u32> {
    detected_in(x, &kept_rows(a, x, kept_pos))
}

/// The rows of block `x` (input cells `a..`) that hold kept cells.
fn kept_rows(a: usize, x: &CsrMatrix, kept_pos: &[u32]) -> Vec<usize> {
    (0..x.n_rows())
        .filter(|&r| kept_pos.get(a + r).is_some_and(|&k| k != u32::MAX))
        .collect()
}

/// Which cells and genes are kept, and how the HVG pass transforms.
pub(super) struct HvgInputs<'a> {
    /// Kept-cell position of every input cell (`u32::MAX`: removed).
    pub kept_pos: &'a [u32],
    /// The kept genes (input indices, increasing).
    pub kept_genes: &'a [usize],
    /// `normalize_total`'s target.
    pub target: f32,
    /// Seurat flavor: moments of `expm1(y)`; else of `y`.
    pub seurat: bool,
}

impl HvgInputs<'_> {
    /// Kept-gene position of every input gene (`u32::MAX`: removed).
    fn gene_map(&self, n_genes: usize) -> Vec<u32> {
        let mut map = vec![u32::MAX; n_genes];
        for (k, &g) in self.kept_genes.iter().enumerate() {
            if let Some(m) = map.get_mut(g) {
                *m = k as u32;
            }
        }
        map
    }

    /// The kept rows of block `x` (input cells `a..`) and the total of each over the kept
    /// genes: the in-memory normalization's `cell_total` of the filter's per-cell sums,
    /// [`sum_values_where`] being the sum of the filter's copy of the row, in the same order,
    /// without the copy (`cell_total` of a zero sum sums the same values again: zero too).
    fn kept_rows_totals(&self, a: usize, x: &CsrMatrix, map: &[u32]) -> (Vec<usize>, Vec<f32>) {
        let rows = kept_rows(a, x, self.kept_pos);
        let totals = rows
            .par_iter()
            .map(|&r| {
                let (idx, val) = x.row(r);
                let kept = |c: u32| map.get(c as usize).is_some_and(|&k| k != u32::MAX);
                sum_values_where(idx, val, kept) as f32
            })
            .collect();
        (rows, totals)
    }

    /// The totals over the kept genes of the kept cells of block `x` (input cells `a..`).
    pub fn kept_totals(&self, a: usize, x: &CsrMatrix) -> Vec<f32> {
        self.kept_rows_totals(a, x, &self.gene_map(x.n_cols())).1
    }
}

/// What one fixed row block of the kept cells contributes to the HVG moments: the
/// normalization's own block accumulator ([`LogMoments`]) fed the block's kept cells and genes,
/// with their size factors and stored values.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HvgPart {
    /// Per kept gene: sums of `e`, `e²` and non-zeros, in cell order.
    pub moments: LogMoments,
    /// Per kept gene: stored values.
    pub stored: Vec<u64>,
    /// Size factors of the block's kept cells, in order.
    pub size_factors: Vec<f32>,
}

impl Wire for HvgPart {
    fn put(&self, out: &mut Vec<u8>) {
        self.moments.acc.put(out);
        self.moments.nz.put(out);
        self.stored.put(out);
        self.size_factors.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        Ok(HvgPart {
            moments: LogMoments {
                acc: Wire::get(r)?,
                nz: Wire::get(r)?,
            },
            stored: Wire::get(r)?,
            size_factors: Wire::get(r)?,
        })
    }
}

impl HvgPart {
    /// The part of the kept cells in input cells `c0..c1` (one fixed row block), read in the
    /// pieces that `cell_blocks` cut that range into. The cells are added in order, as the
    /// in-memory normalization adds the cells of a fixed row block.
    pub fn of_cells(
        reader: &CellChunks,
        cell_blocks: &[(usize, usize)],
        (c0, c1): (usize, usize),
        inp: &HvgInputs<'_>,
    ) -> Result<HvgPart> {
        let n_kg = inp.kept_genes.len();
        let mut part = HvgPart {
            moments: LogMoments::new(n_kg),
            stored: vec![0u64; n_kg],
            size_factors: Vec::new(),
        };
        // the blocks `reader` reads have its genes as columns
        let map = &inp.gene_map(reader.n_genes())[..];
        // Ranges of kept genes summed in parallel, each over every cell in order: the sums of
        // a gene do not depend on the ranges, so neither on the thread count. The kept cells'
        // entries are read in the block as read, each input gene mapped to its kept position
        // (the in-memory filter's copy of the kept cells and genes, and its order, without the
        // copy).
        let per = n_kg.div_ceil(rayon::current_num_threads().max(1)).max(1);
        for &(a, b) in cell_blocks {
            let (a, b) = (a.max(c0), b.min(c1));
            if a < b {
                let x = reader.read(a, b)?;
                let (rows, totals) = inp.kept_rows_totals(a, &x, map);
                let sf: Vec<f32> = totals.iter().map(|&t| t / inp.target).collect();
                part.moments
                    .acc
                    .par_chunks_mut(per)
                    .zip(part.moments.nz.par_chunks_mut(per))
                    .zip(part.stored.par_chunks_mut(per))
                    .enumerate()
                    .for_each(|(t, ((acc, nz), stored))| {
                        let g0 = t * per;
                        // this task's kept genes lie in the input genes `lo..hi`
                        let (lo, hi) = (inp.kept_genes[g0], inp.kept_genes[g0 + acc.len() - 1] + 1);
                        let at = |c: u32| (map[c as usize] as usize).wrapping_sub(g0);
                        for (&r, &s) in rows.iter().zip(&sf) {
                            // The row's entries in this task's genes (column indices are
                            // strictly increasing in a row): the other tasks' entries are
                            // not even scanned.
                            let (idx, val) = x.row(r);
                            let i0 = idx.partition_point(|&c| (c as usize) < lo);
                            let n = idx[i0..].partition_point(|&c| (c as usize) < hi);
                            let (idx, val) = (&idx[i0..i0 + n], &val[i0..i0 + n]);
                            LogMoments::add_row_part(acc, nz, idx, val, s, inp.seurat, at);
                            for &c in idx {
                                if let Some(n) = stored.get_mut(at(c)) {
                                    *n += 1;
                                }
                            }
                        }
                    });
                part.size_factors.extend(sf);
                reader.recycle(x);
            }
        }
        Ok(part)
    }
}

/// The HVG rows (log-normalized values, renumbered columns) of the kept cells of a block.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct RowsPart {
    /// Values per kept row.
    pub lens: Vec<u32>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Wire for RowsPart {
    fn put(&self, out: &mut Vec<u8>) {
        self.lens.put(out);
        self.indices.put(out);
        self.data.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        Ok(RowsPart {
            lens: Wire::get(r)?,
            indices: Wire::get(r)?,
            data: Wire::get(r)?,
        })
    }
}

impl RowsPart {
    /// The log-normalized values `ln(1 + x / s)` of the kept cells of block `x` (input cells
    /// `a..`) in the columns `col_of[input gene] != u32::MAX` (renumbered `col_of[g]`).
    pub fn of_block(
        a: usize,
        x: &CsrMatrix,
        kept_pos: &[u32],
        size_factors: &[f32],
        col_of: &[u32],
    ) -> RowsPart {
        let rows: Vec<(usize, u32)> = (0..x.n_rows())
            .filter_map(|r| {
                let k = kept_pos[a + r];
                (k != u32::MAX).then_some((r, k))
            })
            .collect();
        // Two phases, no per-row buffers: count the picked values of every row, then fill
        // each row's slice of the output in parallel.
        let lens: Vec<u32> = rows
            .par_iter()
            .map(|&(r, _)| {
                x.row(r)
                    .0
                    .iter()
                    .filter(|&&c| col_of[c as usize] != u32::MAX)
                    .count() as u32
            })
            .collect();
        let added: usize = lens.iter().map(|&n| n as usize).sum();
        let mut indices = vec![0u32; added];
        let mut data = vec![0f32; added];
        let mut parts = Vec::with_capacity(rows.len());
        let (mut ri, mut rd) = (&mut indices[..], &mut data[..]);
        for (&(r, k), &n) in rows.iter().zip(&lens) {
            let (hi, ti) = ri.split_at_mut(n as usize);
            let (hd, td) = rd.split_at_mut(n as usize);
            parts.push((r, k, hi, hd));
            ri = ti;
            rd = td;
        }
        parts.into_par_iter().for_each(|(r, k, oi, od)| {
            let mut logs = RowLogs::new(size_factors[k as usize], false);
            let (idx, val) = x.row(r);
            let mut w = 0;
            for (&c, &v) in idx.iter().zip(val) {
                let j = col_of[c as usize];
                if j != u32::MAX {
                    oi[w] = j;
                    od[w] = logs.get(v).0;
                    w += 1;
                }
            }
        });
        RowsPart {
            lens,
            indices,
            data,
        }
    }
}

impl RowsPart {
    /// The part cut by the workers holding its rows: `first` is the kept position of its
    /// first row, `held[w]` the kept rows worker `w` holds (contiguous, in order). Returns
    /// (worker, kept position of the piece's first row, piece) for every non-empty piece.
    pub fn cut(self, first: usize, held: &[Range<usize>]) -> Vec<(usize, usize, RowsPart)> {
        let end = first + self.lens.len();
        let pieces: Vec<(usize, Range<usize>)> = held
            .iter()
            .enumerate()
            .filter_map(|(w, r)| {
                let (a, b) = (r.start.max(first), r.end.min(end));
                (a < b).then_some((w, a..b))
            })
            .collect();
        if let [(w, r)] = pieces.as_slice() {
            if r.len() == self.lens.len() {
                return vec![(*w, first, self)];
            }
        }
        let mut at = Vec::with_capacity(self.lens.len() + 1);
        at.push(0usize);
        for &n in &self.lens {
            at.push(at[at.len() - 1] + n as usize);
        }
        pieces
            .into_iter()
            .map(|(w, r)| {
                let (a, b) = (r.start - first, r.end - first);
                let part = RowsPart {
                    lens: self.lens[a..b].to_vec(),
                    indices: self.indices[at[a]..at[b]].to_vec(),
                    data: self.data[at[a]..at[b]].to_vec(),
                };
                (w, r.start, part)
            })
            .collect()
    }
}

/// The worker that reads each block of cells in the load pass: the one holding (`held[w]`:
/// the kept rows of worker `w`) the PCA row of the block's middle kept cell, so that only
/// the rows of blocks straddling two workers' ranges move; `u mod peers` for a block without
/// kept cells.
pub(super) fn load_owners(
    cell_blocks: &[(usize, usize)],
    kept_pos: &[u32],
    held: &[Range<usize>],
) -> Vec<usize> {
    cell_blocks
        .iter()
        .enumerate()
        .map(|(u, &(a, b))| {
            let kept = &kept_pos[a..b];
            let first = kept.iter().find(|&&k| k != u32::MAX);
            let last = kept.iter().rev().find(|&&k| k != u32::MAX);
            let middle = first
                .zip(last)
                .map(|(&f, &l)| (f as usize + l as usize) / 2);
            middle
                .and_then(|k| held.iter().position(|r| r.contains(&k)))
                .unwrap_or(u % held.len().max(1))
        })
        .collect()
}

/// What a block of cells of the load pass sends to a given worker.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum LoadPart {
    /// HVG rows the worker holds for the PCA: the kept position of the first, and the rows.
    Rows(usize, RowsPart),
    /// The counts of the worker's range of genes.
    Segment(EncodedSegment),
}

impl Wire for LoadPart {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            LoadPart::Rows(first, rows) => {
                0u8.put(out);
                first.put(out);
                rows.put(out);
            }
            LoadPart::Segment(s) => {
                1u8.put(out);
                s.put(out);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        match u8::get(r)? {
            0 => Ok(LoadPart::Rows(Wire::get(r)?, Wire::get(r)?)),
            1 => Ok(LoadPart::Segment(Wire::get(r)?)),
            k => Err(crate::error::Error::data(
                "message between workers",
                format!("{k} is not a kind of load part"),
            )),
        }
    }
    fn report_as(&self) -> Option<&'static str> {
        Some(match self {
            LoadPart::Rows(..) => "pca rows",
            LoadPart::Segment(_) => "spill segments",
        })
    }
}

/// This worker's rows of the HVG matrix, assembled from the pieces of the blocks (which may
/// arrive in any order) in kept-cell order.
#[derive(Debug)]
pub(super) struct RowsCollector {
    next: usize,
    end: usize,
    pending: BTreeMap<usize, RowsPart>,
    rows: RowsBuilder,
}

impl RowsCollector {
    /// For the kept rows `rows`, with room for about `nnz` values.
    pub fn new(rows: Range<usize>, nnz: usize) -> RowsCollector {
        RowsCollector {
            next: rows.start,
            end: rows.end,
            pending: BTreeMap::new(),
            rows: RowsBuilder::with_capacity(rows.len(), nnz),
        }
    }

    /// Takes the piece whose first row is `first`; appends every piece that is next in order.
    pub fn add(&mut self, first: usize, part: RowsPart) -> Result<()> {
        let n = part.lens.len();
        if first < self.next || first + n > self.end || self.pending.contains_key(&first) {
            return Err(crate::error::Error::data(
                "message between workers",
                format!(
                    "HVG rows {first}..{} where rows {}..{} are awaited",
                    first + n,
                    self.next,
                    self.end
                ),
            ));
        }
        self.pending.insert(first, part);
        while let Some(p) = self.pending.remove(&self.next) {
            self.next += p.lens.len();
            self.rows.add(p)?;
        }
        Ok(())
    }

    /// The rows as a matrix of `n_cols` columns; an error if some did not arrive.
    pub fn finish(self, n_cols: usize) -> Result<CsrMatrix> {
        if self.next != self.end || !self.pending.is_empty() {
            return Err(crate::error::Error::data(
                "streamed pipeline",
                format!("HVG rows from {} on did not arrive", self.next),
            ));
        }
        self.rows.finish(n_cols)
    }
}

/// The HVG matrix assembled from the rows of the blocks, in cell order.
#[derive(Debug, Default)]
pub(super) struct RowsBuilder {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
}

impl RowsBuilder {
    pub fn with_capacity(n_rows: usize, nnz: usize) -> RowsBuilder {
        let mut indptr = Vec::with_capacity(n_rows + 1);
        indptr.push(0);
        RowsBuilder {
            indptr,
            indices: Vec::with_capacity(nnz),
            data: Vec::with_capacity(nnz),
        }
    }

    /// Appends the next block's rows.
    pub fn add(&mut self, p: RowsPart) -> Result<()> {
        let total: usize = p.lens.iter().map(|&n| n as usize).sum();
        same_len("rows part", total, p.indices.len())?;
        same_len("rows part", total, p.data.len())?;
        for n in p.lens {
            let last = self.indptr[self.indptr.len() - 1];
            self.indptr.push(last + n as usize);
        }
        self.indices.extend_from_slice(&p.indices);
        self.data.extend_from_slice(&p.data);
        Ok(())
    }

    pub fn finish(self, n_cols: usize) -> Result<CsrMatrix> {
        CsrMatrix::try_new(
            self.indptr.len() - 1,
            n_cols,
            self.indptr,
            self.indices,
            self.data,
        )
    }
}

fn same_len(what: &str, want: usize, got: usize) -> Result<()> {
    if want != got {
        return Err(crate::error::Error::data(
            "message between workers",
            format!("a {what} of {got} entries where {want} were expected"),
        ));
    }
    Ok(())
}

/// Contiguous ranges of the kept genes, one per worker, with about equal stored values (the
/// spill and the markers of a range are the owning worker's).
pub(super) fn gene_ranges(stored: &[u64], peers: usize) -> Vec<(usize, usize)> {
    let total: u64 = stored.iter().sum();
    let mut out = Vec::with_capacity(peers);
    let (mut g0, mut acc) = (0usize, 0u64);
    for w in 0..peers {
        let goal = (total as u128 * (w as u128 + 1) / peers as u128) as u64;
        let mut g1 = g0;
        while g1 < stored.len() && (acc < goal || w + 1 == peers) {
            acc += stored[g1];
            g1 += 1;
        }
        out.push((g0, g1));
        g0 = g1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gene_ranges_cover_every_gene_once_and_balance() {
        let stored: Vec<u64> = (0..100).map(|g| (g * 37 % 11) as u64).collect();
        for peers in 1..8 {
            let r = gene_ranges(&stored, peers);
            assert_eq!(r.len(), peers);
            assert_eq!(r[0].0, 0);
            assert_eq!(r[peers - 1].1, 100);
            for w in 1..peers {
                assert_eq!(r[w].0, r[w - 1].1);
            }
            let total: u64 = stored.iter().sum();
            for &(a, b) in &r {
                let s: u64 = stored[a..b].iter().sum();
                assert!(s <= total / peers as u64 + 10, "{peers}: {r:?}");
            }
        }
        // More workers than genes: empty ranges at the end.
        let r = gene_ranges(&[5, 5], 4);
        assert_eq!(r.iter().map(|(a, b)| b - a).sum::<usize>(), 2);
    }

    /// Rows `first..first + n` with `i % 3` values each, valued by row and column.
    fn rows(first: usize, n: usize) -> RowsPart {
        let mut p = RowsPart::default();
        for i in first..first + n {
            p.lens.push((i % 3) as u32);
            for c in 0..i % 3 {
                p.indices.push(c as u32);
                p.data.push(i as f32 + c as f32 / 10.0);
            }
        }
        p
    }

    #[test]
    fn rows_cut_by_workers_reassemble_in_any_order() {
        let held = [0..5, 5..5, 5..12, 12..20];
        // blocks of cells covering rows 0..20, cut by the workers holding them
        let mut pieces: Vec<(usize, usize, RowsPart)> = [(0, 4), (4, 9), (13, 7)]
            .into_iter()
            .flat_map(|(a, n)| rows(a, n).cut(a, &held))
            .collect();
        let workers: Vec<usize> = pieces.iter().map(|p| p.0).collect();
        assert_eq!(workers, vec![0, 0, 2, 3, 3]);
        pieces.reverse();
        let mut got = Vec::new();
        for (w, r) in held.iter().enumerate() {
            let mut c = RowsCollector::new(r.clone(), 0);
            for (_, first, p) in pieces.iter().filter(|p| p.0 == w) {
                c.add(*first, p.clone()).unwrap();
            }
            let m = c.finish(3).unwrap();
            assert_eq!(m.n_rows(), r.len());
            for i in 0..m.n_rows() {
                got.push(m.row(i).1.to_vec());
            }
        }
        let want = rows(0, 20);
        let mut at = 0;
        for (i, &n) in want.lens.iter().enumerate() {
            assert_eq!(got[i], want.data[at..at + n as usize], "row {i}");
            at += n as usize;
        }
        // a missing piece, or a piece given twice, is an error
        let mut c = RowsCollector::new(5..12, 0);
        c.add(9, rows(9, 3)).unwrap();
        assert!(c.add(9, rows(9, 3)).is_err());
        assert!(c.finish(3).is_err());
    }
}
