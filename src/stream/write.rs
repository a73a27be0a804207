//! Writing a 10x HDF5 file block of cells by block, without holding the matrix.

use crate::dataset::GeneTable;
use crate::error::{Error, Result};
use crate::io::hdf5_util::{declare_appendable, open_for_append, MAX_CHUNK};
use crate::io::tenx_h5::put_strings;
use crate::simulate::{SimulateOptions, Simulator};
use crate::sparse::CsrMatrix;
use std::path::Path;
use std::time::Instant;

/// What [`write_10x_h5_blocks`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteReport {
    /// Cells written.
    pub n_cells: usize,
    /// Genes (features).
    pub n_genes: usize,
    /// Stored values.
    pub nnz: u64,
    /// Size of the file in bytes.
    pub file_bytes: u64,
    /// Wall-clock seconds, producing the blocks included.
    pub seconds: f64,
}

/// Writes a Cell Ranger 3 HDF5 file (the layout of [`crate::io::tenx_h5::write_10x_h5`]:
/// `/matrix/{barcodes, data, indices, indptr, shape, features/...}`, `data` as `int32`,
/// `indices` and `indptr` as `int64`, gzip level 4 with shuffle, chunks of 65,535 elements)
/// whose counts come from `block(a..b)`, called on consecutive ranges of at most
/// `chunk_cells` cells, each returning the rows of those cells (all `genes` as columns).
///
/// How: the file is first written with `data`, `indices` and `indptr` as empty, chunked,
/// unlimited datasets (the 10x barcodes and features, which are small, are written in full),
/// then reopened read-write and every block is appended to the three datasets through
/// `hdf5-pure`'s buffered appenders, which compress and write whole chunks as they fill.
/// Memory: two blocks of rows (the next one is produced on another thread while the current
/// one is compressed and written) plus the appenders' buffers; the matrix is never held.
/// Compression runs on one thread (inside `hdf5-pure`).
///
/// The file is written under a temporary name in the same folder and renamed into place at
/// the end. Errors: a block of the wrong shape or with a count that is not a non-negative
/// integer below 2^31 (naming the cell), and any write failure.
pub fn write_10x_h5_blocks(
    path: &Path,
    barcodes: &[String],
    genes: &GeneTable,
    library_id: &str,
    chunk_cells: usize,
    mut block: impl FnMut(std::ops::Range<usize>) -> Result<CsrMatrix> + Send,
) -> Result<WriteReport> {
    let t0 = Instant::now();
    let n_cells = barcodes.len();
    let n_genes = genes.ids.len();
    if chunk_cells == 0 {
        return Err(Error::option("chunk_cells", "must be at least 1"));
    }
    if path.file_name().is_none() {
        return Err(Error::option(
            "path",
            format!("{} has no file name", path.display()),
        ));
    }
    let tmp = crate::report::temporary_path(path);
    let result = write_inner(
        path,
        &tmp,
        barcodes,
        genes,
        library_id,
        chunk_cells,
        &mut block,
    );
    let nnz = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })?;
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    Ok(WriteReport {
        n_cells,
        n_genes,
        nnz,
        file_bytes,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn write_inner(
    path: &Path,
    tmp: &Path,
    barcodes: &[String],
    genes: &GeneTable,
    library_id: &str,
    chunk_cells: usize,
    block: &mut (dyn FnMut(std::ops::Range<usize>) -> Result<CsrMatrix> + Send),
) -> Result<u64> {
    let n_cells = barcodes.len();
    let n_genes = genes.ids.len();
    let h5err = |obj: &str, e: &dyn std::fmt::Display| Error::hdf5(path, obj, e.to_string());
    let mut fb = crate::io::tenx_h5::tenx_file(library_id);
    let mut m = fb.create_group("matrix");
    put_strings(&mut m, "barcodes", barcodes).map_err(|e| h5err("/matrix/barcodes", &e))?;
    let c = MAX_CHUNK as u64;
    declare_appendable::<i32>(&mut m, "data", &[], c, Some(4));
    declare_appendable::<i64>(&mut m, "indices", &[], c, Some(4));
    declare_appendable::<i64>(&mut m, "indptr", &[0], c, Some(4));
    m.create_dataset("shape")
        .with_i32_data(&[n_genes as i32, n_cells as i32]);
    let mut f = m.create_group("features");
    let obj = "/matrix/features";
    put_strings(&mut f, "_all_tag_keys", &["genome".to_string()]).map_err(|e| h5err(obj, &e))?;
    put_strings(&mut f, "id", &genes.ids).map_err(|e| h5err(obj, &e))?;
    put_strings(&mut f, "name", &genes.symbols).map_err(|e| h5err(obj, &e))?;
    put_strings(&mut f, "feature_type", &genes.feature_types).map_err(|e| h5err(obj, &e))?;
    let genome = match genes.columns.get("genome") {
        Some(crate::dataset::Column::Str(v)) => v.clone(),
        _ => vec!["unknown".to_string(); n_genes],
    };
    put_strings(&mut f, "genome", &genome).map_err(|e| h5err(obj, &e))?;
    m.add_group(f.finish());
    fb.add_group(m.finish());
    fb.write(tmp).map_err(|e| h5err("/", &e))?;

    let file = open_for_append(tmp, path)?;
    let mut d_data = file
        .dataset("/matrix/data")
        .map_err(|e| h5err("/matrix/data", &e))?;
    let mut d_indices = file
        .dataset("/matrix/indices")
        .map_err(|e| h5err("/matrix/indices", &e))?;
    let mut d_indptr = file
        .dataset("/matrix/indptr")
        .map_err(|e| h5err("/matrix/indptr", &e))?;
    let mut a_data = d_data
        .buffered_appender()
        .map_err(|e| h5err("/matrix/data", &e))?;
    let mut a_indices = d_indices
        .buffered_appender()
        .map_err(|e| h5err("/matrix/indices", &e))?;
    let mut a_indptr = d_indptr
        .buffered_appender()
        .map_err(|e| h5err("/matrix/indptr", &e))?;
    // The next block is produced (and converted) on another thread while this one
    // compresses and writes the current block: at most two blocks are alive at once.
    let mut nnz: u64 = 0;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Encoded>>(1);
    std::thread::scope(|scope| -> Result<()> {
        // Owned here so that an early error drops it, which stops the producer.
        let rx = rx;
        scope.spawn(move || {
            let mut a = 0;
            let mut offset: u64 = 0;
            while a < n_cells {
                let b = (a + chunk_cells).min(n_cells);
                let enc = block(a..b).and_then(|x| encode(&x, a, b, n_genes, offset));
                let stop = enc.is_err();
                if let Ok(e) = &enc {
                    offset += e.data.len() as u64;
                }
                if tx.send(enc).is_err() || stop {
                    return;
                }
                a = b;
            }
        });
        for enc in rx {
            let e = enc?;
            a_data
                .append(&e.data)
                .map_err(|err| h5err("/matrix/data", &err))?;
            a_indices
                .append(&e.indices)
                .map_err(|err| h5err("/matrix/indices", &err))?;
            a_indptr
                .append(&e.indptr)
                .map_err(|err| h5err("/matrix/indptr", &err))?;
            nnz += e.data.len() as u64;
        }
        Ok(())
    })?;
    a_data.finish().map_err(|e| h5err("/matrix/data", &e))?;
    a_indices
        .finish()
        .map_err(|e| h5err("/matrix/indices", &e))?;
    a_indptr.finish().map_err(|e| h5err("/matrix/indptr", &e))?;
    drop((d_data, d_indices, d_indptr));
    file.close().map_err(|e| h5err("/", &e))?;
    Ok(nnz)
}

/// One block in the file's element types.
struct Encoded {
    data: Vec<i32>,
    indices: Vec<i64>,
    /// `indptr` of the block's cells, offset by the values written before it.
    indptr: Vec<i64>,
}

/// Checks the block of cells `a..b` and converts it (counts to `i32`, indices and row ends
/// to `i64`, row ends offset by `offset`).
fn encode(x: &CsrMatrix, a: usize, b: usize, n_genes: usize, offset: u64) -> Result<Encoded> {
    if x.shape() != (b - a, n_genes) {
        return Err(Error::data(
            "write 10x HDF5",
            format!(
                "block of cells {a}..{b} is {} x {}, expected {} x {n_genes}",
                x.n_rows(),
                x.n_cols(),
                b - a
            ),
        ));
    }
    let mut data = Vec::with_capacity(x.nnz());
    for r in 0..x.n_rows() {
        for &v in x.row(r).1 {
            if !(v >= 0.0 && v.fract() == 0.0 && v <= i32::MAX as f32) {
                return Err(Error::data(
                    "write 10x HDF5",
                    format!("cell {} has count {v}, not a non-negative integer", a + r),
                ));
            }
            data.push(v as i32);
        }
    }
    Ok(Encoded {
        data,
        indices: x.indices().iter().map(|&i| i as i64).collect(),
        indptr: x.indptr()[1..]
            .iter()
            .map(|&p| (offset + p as u64) as i64)
            .collect(),
    })
}

/// Simulates `opts` (see [`crate::simulate`]) straight into a 10x HDF5 file, `chunk_cells`
/// cells at a time (cells generated in parallel, one random stream per cell): the file holds
/// exactly the counts, barcodes and genes of [`crate::simulate::simulate`]`(opts)`, whatever
/// `chunk_cells`. The sample and condition of the cells are not stored (10x files have no
/// such columns).
pub fn simulate_10x_h5(
    opts: &SimulateOptions,
    path: &Path,
    chunk_cells: usize,
) -> Result<WriteReport> {
    let sim = Simulator::new(opts)?;
    write_simulated_cells(&sim, &sim.genes(), 0..sim.n_cells(), path, chunk_cells)
}

/// Writes the cells `cells` of a drawn [`Simulator`] to a 10x HDF5 file, `chunk_cells` cells
/// at a time, as [`simulate_10x_h5`] writes all of them: the counts and barcodes of those
/// cells in [`crate::simulate::simulate`]'s dataset (one sample's file of a sample sheet is
/// the range of its cells), with `genes` as the features (the simulator's own,
/// [`Simulator::genes`], or the same renamed, as
/// [`crate::simulate::resistance::name_study_genes`] does). The file's library id is the
/// sample of the first cell, as [`crate::io::tenx_h5::write_10x_h5`] names it. Errors: a range
/// past the simulated cells, or `genes` of another length (`Error::InvalidOption`, before the
/// file is created).
pub fn write_simulated_cells(
    sim: &Simulator,
    genes: &GeneTable,
    cells: std::ops::Range<usize>,
    path: &Path,
    chunk_cells: usize,
) -> Result<WriteReport> {
    let n = sim.n_cells();
    if cells.start > cells.end || cells.end > n {
        return Err(Error::option(
            "cells",
            format!(
                "cells {}..{} are not among the {n} simulated",
                cells.start, cells.end
            ),
        ));
    }
    if genes.len() != sim.n_genes() {
        return Err(Error::option(
            "genes",
            format!(
                "{} genes given for the {} simulated",
                genes.len(),
                sim.n_genes()
            ),
        ));
    }
    let barcodes = &sim.barcodes()[cells.clone()];
    let library_id = sim
        .sample_names()
        .get(sim.sample_of(cells.start).unwrap_or(0))
        .cloned()
        .unwrap_or_else(|| "sample".into());
    let start = cells.start;
    write_10x_h5_blocks(path, barcodes, genes, &library_id, chunk_cells, |r| {
        sim.counts(start + r.start..start + r.end)
    })
}
