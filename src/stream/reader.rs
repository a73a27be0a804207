//! [`CellChunks`]: a 10x HDF5 or `.h5ad` count matrix read a block of cells at a time.

use crate::dataset::{make_unique, GeneTable};
use crate::error::{Error, Result};
use crate::io::hdf5_util::{self, guard, RangeReader};
use crate::io::tenx_h5::{kept_features, read_header};
use crate::io::ReadOptions;
use crate::sparse::CsrMatrix;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A 10x HDF5 file (Cell Ranger 1/2 or 3+, as [`crate::io::tenx_h5::read_10x_h5`]) opened for
/// reading its cells block by block.
///
/// Opening reads the barcodes, the features and `indptr` (`n_cells + 1` integers) into memory
/// and the chunk index of `data` and `indices`; [`read`](Self::read) then decodes only the
/// stored chunks of `data` and `indices` that hold the values `indptr[a]..indptr[b]` of cells
/// `a..b`. Memory per block: the block's CSR rows (8 bytes per stored value, as `u32` index
/// and `f32` count) plus one decompressed chunk per thread.
///
/// Features are kept as the in-memory reader keeps them (`ReadOptions::feature_types` and
/// `genome`), and columns are renumbered accordingly.
pub struct CellChunks {
    path: PathBuf,
    group: String,
    n_file_genes: usize,
    indptr: Vec<usize>,
    data: RangeReader,
    indices: RangeReader,
    /// File feature -> kept column, `u32::MAX` when dropped (`None`: every feature kept).
    remap: Option<Vec<u32>>,
    barcodes: Vec<String>,
    /// Sample of every cell (from `obs["sample"]` of an `.h5ad`; else `None`: one sample).
    samples: Option<Vec<String>>,
    genes: GeneTable,
    /// Accept non-integer (non-negative, finite) values ([`ReadOptions::assume_counts`]).
    assume_counts: bool,
    /// Row pointers, indices and values of blocks given back ([`recycle`](Self::recycle)),
    /// whose memory the next reads reuse.
    spare: Mutex<Vec<Buffers>>,
}

/// Row pointers, column indices and values of a block.
pub(crate) type Buffers = (Vec<usize>, Vec<u32>, Vec<f32>);

/// Blocks' buffers kept for reuse at most (the passes read one block at a time, and some
/// copy its kept cells and genes into a second block: [`CellChunks::spare`]).
const SPARE: usize = 2;

/// Stored values of `X` looked at by [`CellChunks::open_h5ad`] to decide whether it holds
/// counts (every block is checked again as it is read).
const PEEK_VALUES: usize = 1 << 16;

impl CellChunks {
    /// Opens a 10x HDF5 file. Errors as [`crate::io::tenx_h5::read_10x_h5`] for a missing or
    /// malformed file (shape, barcodes, features, an `indptr` that does not start at 0,
    /// decreases or does not end at the length of `data` and `indices`).
    pub fn open_10x_h5(path: &Path, opts: &ReadOptions) -> Result<CellChunks> {
        guard(path, "/", || Self::open_inner(path, opts))
    }

    fn open_inner(path: &Path, opts: &ReadOptions) -> Result<CellChunks> {
        let file = hdf5_util::open(path)?;
        let h = read_header(&file, path, opts)?;
        let g = h.group.clone();
        let kept = kept_features(&h, path, opts)?;
        let indptr = read_indptr(&file, path, &format!("{g}/indptr"), h.n_cells)?;
        let nnz = indptr[h.n_cells];
        let data = RangeReader::open(&file, path, &format!("{g}/data"))?;
        let indices = RangeReader::open(&file, path, &format!("{g}/indices"))?;
        check_lengths(path, &g, nnz, &data, &indices)?;
        let remap = (kept.len() != h.n_genes).then(|| {
            let mut m = vec![u32::MAX; h.n_genes];
            for (new, &old) in kept.iter().enumerate() {
                m[old] = new as u32;
            }
            m
        });
        let pick = |v: &[String]| -> Vec<String> { kept.iter().map(|&i| v[i].clone()).collect() };
        let genes = GeneTable {
            ids: pick(&h.ids),
            symbols: make_unique(&pick(&h.names)),
            feature_types: pick(&h.types),
            columns: Default::default(),
        };
        Ok(CellChunks {
            path: path.to_path_buf(),
            group: g,
            n_file_genes: h.n_genes,
            indptr,
            data,
            indices,
            remap,
            barcodes: h.barcodes,
            samples: None,
            genes,
            assume_counts: opts.assume_counts,
            spare: Mutex::default(),
        })
    }

    /// Opens the cells x genes count matrix of an `.h5ad` file: `/layers/<layer>` (`X` for
    /// `X`) when `layer` is given; else `X` when its first stored values (up to 65,536) are
    /// integer counts, else the first of the layers [`crate::io::h5ad::COUNTS_LAYERS`] stored
    /// as CSR whose first values are (`raw/X` is not read here: its genes differ). The matrix
    /// must be stored as CSR (AnnData's `csr_matrix` encoding: `data`, `indices`, `indptr`; the
    /// usual layout for cells x genes). Cells and genes as [`crate::io::h5ad::read_h5ad`]: the
    /// `obs` index as barcodes and `obs["sample"]` as samples when present, the `var` index as
    /// symbols (made unique), `gene_ids` and `feature_types` when present; all features are
    /// kept. Errors for a CSC or dense matrix (they cannot be read by cells without reading
    /// everything), shapes that disagree with `obs` / `var`, and the `indptr` checks of
    /// [`open_10x_h5`](Self::open_10x_h5).
    pub fn open_h5ad(path: &Path, layer: Option<&str>) -> Result<CellChunks> {
        Self::open_h5ad_with(path, layer, false)
    }

    /// [`open_h5ad`](Self::open_h5ad), accepting non-integer values as counts when
    /// `assume_counts` (then `X` is read when no layer is given).
    pub fn open_h5ad_with(
        path: &Path,
        layer: Option<&str>,
        assume_counts: bool,
    ) -> Result<CellChunks> {
        guard(path, "/", || {
            Self::open_h5ad_inner(path, layer, assume_counts)
        })
    }

    fn open_h5ad_inner(path: &Path, layer: Option<&str>, assume: bool) -> Result<CellChunks> {
        use crate::io::h5ad::{read_obs_var, sparse_group, H5adReadOptions};
        let file = hdf5_util::open(path)?;
        let g = match layer {
            Some("X") => "/X".to_string(),
            Some(l) => format!("/layers/{l}"),
            None if assume => "/X".to_string(),
            None => counts_matrix(&file, path)?,
        };
        let (ty, n_cells, n_genes) = match sparse_group(&file, path, &g)? {
            Some((ty, r, c)) if ty == "csr_matrix" => (ty, r, c),
            Some((ty, _, _)) => {
                return Err(Error::hdf5(
                    path,
                    g,
                    format!(
                        "the streamed reader needs a CSR matrix (cells x genes), found \"{ty}\""
                    ),
                ))
            }
            None => {
                return Err(Error::hdf5(
                    path,
                    g,
                    "the streamed reader needs a sparse CSR matrix, found a dense array",
                ))
            }
        };
        let _ = ty;
        let (cells, genes) = read_obs_var(&file, path, &H5adReadOptions::default())?;
        if cells.len() != n_cells || genes.ids.len() != n_genes {
            return Err(Error::hdf5(
                path,
                g,
                format!(
                    "matrix is {n_cells} x {n_genes}, but obs has {} rows and var {}",
                    cells.len(),
                    genes.ids.len()
                ),
            ));
        }
        let has_samples = file.dataset("/obs/sample").is_ok() || file.group("/obs/sample").is_ok();
        let indptr = read_indptr(&file, path, &format!("{g}/indptr"), n_cells)?;
        let nnz = indptr[n_cells];
        let data = RangeReader::open(&file, path, &format!("{g}/data"))?;
        let indices = RangeReader::open(&file, path, &format!("{g}/indices"))?;
        check_lengths(path, &g, nnz, &data, &indices)?;
        Ok(CellChunks {
            path: path.to_path_buf(),
            group: g,
            n_file_genes: n_genes,
            indptr,
            data,
            indices,
            remap: None,
            barcodes: cells.barcodes,
            samples: has_samples.then_some(cells.sample),
            genes: GeneTable {
                columns: Default::default(),
                ..genes
            },
            assume_counts: assume,
            spare: Mutex::default(),
        })
    }

    /// Sample of every cell: `obs["sample"]` of an `.h5ad` that has it, else `default` for
    /// every cell.
    pub fn samples(&self, default: &str) -> Vec<String> {
        match &self.samples {
            Some(s) => s.clone(),
            None => vec![default.to_string(); self.n_cells()],
        }
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.barcodes.len()
    }

    /// Number of (kept) genes.
    pub fn n_genes(&self) -> usize {
        self.genes.ids.len()
    }

    /// Stored values of the whole matrix (before dropping features).
    pub fn nnz(&self) -> usize {
        self.indptr[self.n_cells()]
    }

    /// Stored values of cells `a..b` (before dropping features).
    pub fn nnz_of(&self, a: usize, b: usize) -> usize {
        self.indptr[b.min(self.n_cells())] - self.indptr[a.min(b).min(self.n_cells())]
    }

    /// Barcodes of all cells.
    pub fn barcodes(&self) -> &[String] {
        &self.barcodes
    }

    /// The kept genes (ids, unique symbols, feature types).
    pub fn genes(&self) -> &GeneTable {
        &self.genes
    }

    /// Counts of cells `a..b` (rows in cell order, kept genes as columns, gene indices sorted
    /// within each row). Errors for a range outside the cells and for a gene index past the
    /// features, naming the dataset and the entry.
    pub fn read(&self, a: usize, b: usize) -> Result<CsrMatrix> {
        let n = self.n_cells();
        let g = &self.group;
        if a > b || b > n {
            return Err(Error::hdf5(
                &self.path,
                g.clone(),
                format!("cell range {a}..{b} is outside the {n} cells"),
            ));
        }
        let (lo, hi) = (self.indptr[a], self.indptr[b]);
        let (mut indptr, mut indices, mut data) = self.spare();
        self.indices.read_range_into(lo, hi, &mut indices)?;
        self.data.read_range_into(lo, hi, &mut data)?;
        crate::io::counts::check(&data, self.assume_counts).map_err(|d| {
            let name = |i: usize| self.barcodes.get(i).map(String::as_str).unwrap_or("?");
            Error::hdf5(
                &self.path,
                format!("{g}/data"),
                format!(
                    "cells {a}..{b} (barcodes {} to {}) hold {d}; {}",
                    name(a),
                    name(b.saturating_sub(1)),
                    crate::io::counts::HOW_TO_PROCEED
                ),
            )
        })?;
        indptr.clear();
        indptr.extend(self.indptr[a..=b].iter().map(|&p| p - lo));
        // Without a remap the one read of the indices that checks the block (rows increasing,
        // genes below the features) is the usual case's only one; an index past the features
        // is then looked for only when that check fails, to name it.
        let canonical = self.remap.is_none()
            && crate::sparse::parts_are_canonical(
                b - a,
                self.n_genes(),
                &indptr,
                &indices,
                data.len(),
            );
        if canonical {
            return Ok(CsrMatrix::from_canonical_parts(
                b - a,
                self.n_genes(),
                indptr,
                indices,
                data,
            ));
        }
        if let Some(pos) = first_at_or_above(&indices, self.n_file_genes) {
            return Err(Error::hdf5(
                &self.path,
                format!("{g}/indices"),
                format!(
                    "entry {} is gene {}, past the {} features",
                    lo + pos,
                    indices[pos],
                    self.n_file_genes
                ),
            ));
        }
        if let Some(m) = &self.remap {
            // Drop the values of dropped features and renumber the rest.
            let mut w = 0;
            let mut start = 0;
            for r in 0..b - a {
                let end = indptr[r + 1];
                for k in start..end {
                    let c = m[indices[k] as usize];
                    if c != u32::MAX {
                        indices[w] = c;
                        data[w] = data[k];
                        w += 1;
                    }
                }
                start = end;
                indptr[r + 1] = w;
            }
            indices.truncate(w);
            data.truncate(w);
        }
        crate::io::h5ad::build_csr(b - a, self.n_genes(), indptr, indices, data)
            .map_err(|e| Error::hdf5(&self.path, g.clone(), e))
    }

    /// Gives back a block that [`read`](Self::read) returned, once it is no longer needed: the
    /// next read reuses its memory instead of a new allocation (whose pages are each faulted
    /// in and cleared as they are first written: a tenth of a pass over the file).
    pub fn recycle(&self, block: CsrMatrix) {
        let (_, _, indptr, indices, data) = block.into_parts();
        if let Ok(mut s) = self.spare.lock() {
            if s.len() < SPARE {
                s.push((indptr, indices, data));
            }
        }
    }

    /// Buffers given back by [`recycle`](Self::recycle) (empty ones when there are none), for
    /// a block derived from one read (given back in turn when done with).
    pub(crate) fn spare(&self) -> Buffers {
        self.spare
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_default()
    }

    /// Frees the buffers kept for reuse beyond `n` (after a pass that used more at once).
    pub(crate) fn keep_spare(&self, n: usize) {
        if let Ok(mut s) = self.spare.lock() {
            s.truncate(n);
        }
    }

    /// Frees the buffers kept for reuse (after the last pass over the file).
    pub fn release_spare(&self) {
        if let Ok(mut s) = self.spare.lock() {
            s.clear();
            s.shrink_to_fit();
        }
    }
}

/// The position of the first value at or above `limit`, scanned in parallel over fixed chunks
/// (a test per value inside a chunk, not a parallel task per value).
fn first_at_or_above(values: &[u32], limit: usize) -> Option<usize> {
    const CHUNK: usize = 1 << 16;
    values
        .par_chunks(CHUNK)
        .enumerate()
        .find_map_first(|(c, part)| {
            part.iter()
                .position(|&i| i as usize >= limit)
                .map(|p| c * CHUNK + p)
        })
}

/// The group of the counts in an `.h5ad` without a layer given: `/X` when its first
/// [`PEEK_VALUES`] stored values are counts, else the first CSR layer of
/// [`crate::io::h5ad::COUNTS_LAYERS`] whose first values are; an error saying what `X`
/// holds when there is none.
fn counts_matrix(file: &hdf5_pure::File, path: &Path) -> Result<String> {
    use crate::io::counts::{check, HOW_TO_PROCEED};
    use crate::io::h5ad::{sparse_group, COUNTS_LAYERS};
    let peek = |g: &str| -> Result<Option<std::result::Result<(), String>>> {
        match sparse_group(file, path, g)? {
            Some((ty, _, _)) if ty == "csr_matrix" => {}
            _ => return Ok(None),
        }
        let r = RangeReader::open(file, path, &format!("{g}/data"))?;
        let v: Vec<f32> = r.read_range(0, r.len().min(PEEK_VALUES))?;
        Ok(Some(check(&v, false).map(|_| ())))
    };
    let x = match peek("/X")? {
        Some(Ok(())) | None => return Ok("/X".to_string()),
        Some(Err(d)) => d,
    };
    for l in COUNTS_LAYERS {
        let g = format!("/layers/{l}");
        let exists = file.group(&g).is_ok();
        if exists && matches!(peek(&g)?, Some(Ok(()))) {
            return Ok(g);
        }
    }
    Err(Error::hdf5(
        path,
        "/X",
        format!(
            "X holds {x} (in its first stored values); no CSR layer {} holds counts; \
             {HOW_TO_PROCEED}",
            COUNTS_LAYERS.join(", ")
        ),
    ))
}

/// Reads `indptr` and checks it: `n_cells + 1` entries, starting at 0, never decreasing.
fn read_indptr(
    file: &hdf5_pure::File,
    path: &Path,
    obj: &str,
    n_cells: usize,
) -> Result<Vec<usize>> {
    let indptr: Vec<usize> = hdf5_util::read_numeric(file, path, obj)?;
    crate::io::tenx_h5::check_indptr(path, obj, &indptr, n_cells)?;
    Ok(indptr)
}

/// `data` and `indices` must hold exactly the `nnz` values `indptr` ends at.
fn check_lengths(
    path: &Path,
    g: &str,
    nnz: usize,
    data: &RangeReader,
    indices: &RangeReader,
) -> Result<()> {
    for (r, what) in [(data, "data"), (indices, "indices")] {
        if r.len() != nnz {
            return Err(Error::hdf5(
                path,
                format!("{g}/{what}"),
                format!("{} entries, but indptr ends at {nnz}", r.len()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::first_at_or_above;

    #[test]
    fn first_value_past_the_limit_is_found_in_any_chunk() {
        let mut v = vec![3u32; 200_000];
        assert_eq!(first_at_or_above(&v, 4), None);
        v[150_001] = 4;
        v[199_999] = 9;
        assert_eq!(first_at_or_above(&v, 4), Some(150_001));
        v[65_536] = 5;
        assert_eq!(first_at_or_above(&v, 4), Some(65_536));
        assert_eq!(first_at_or_above(&v, 3), Some(0));
        assert_eq!(first_at_or_above(&[], 0), None);
    }
}
