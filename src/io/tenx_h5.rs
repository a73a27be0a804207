//! 10x Genomics HDF5 feature-barcode matrices (`filtered_feature_bc_matrix.h5`).
//!
//! Two layouts exist, both read by [`read_10x_h5`]:
//! - Cell Ranger 1/2: one group per genome (`/<genome>/{data, indices, indptr, shape, barcodes,
//!   genes, gene_names}`); `ReadOptions::genome` picks one, and when a file holds several and
//!   none is chosen the error lists them (Scanpy's `read_10x_h5(genome=...)`).
//! - Cell Ranger 3+: `/matrix/{data, indices, indptr, shape, barcodes}` and
//!   `/matrix/features/{id, name, feature_type, genome}`; only the feature types in
//!   `ReadOptions::feature_types` are kept (Scanpy's `gex_only=True` keeps `Gene Expression`).
//!
//! The file stores genes x cells in compressed sparse columns, which is exactly the cells x
//! genes compressed sparse rows of [`Dataset::counts`]: `indptr` runs over cells, `indices`
//! are gene positions. Nothing is transposed. Symbols are made unique with
//! [`crate::dataset::make_unique`] (Scanpy's `var_names_make_unique`).
//!
//! The three big arrays are read by decoding their gzip chunks in parallel (see
//! `hdf5_util::read_numeric`), straight into `u32` indices and `f32` values, so peak memory
//! is about the final CSR matrix plus one chunk per thread.
//!
//! [`write_10x_h5`] writes the Cell Ranger 3 layout.

use super::hdf5_util::{self, chunk_len, guard};
use super::ReadOptions;
use crate::dataset::{make_unique, CellTable, Dataset, GeneTable};
use crate::error::{Error, Result};
use crate::sparse::{ColIndex, Counts, CsrMatrix};
use hdf5_pure::{AttrValue, FileBuilder};
use std::path::Path;

/// Reads a 10x HDF5 file (Cell Ranger 1/2 or 3+, see the module docs) into a cells x genes
/// [`Dataset`]. Sample and condition of every cell come from `opts`.
///
/// Errors: [`Error::Io`] for a missing file; [`Error::Hdf5`] naming the object for a file that
/// is not HDF5, lacks a group or dataset, or holds inconsistent arrays (an `indptr` that
/// decreases or does not end at the number of stored values, an index past the gene count,
/// a `shape` that disagrees with the barcodes or features, no cells), or `data` values that
/// are not integer counts (the check of [`super::counts`]; `opts.assume_counts` accepts
/// non-integer values).
pub fn read_10x_h5(path: &Path, opts: &ReadOptions) -> Result<Dataset> {
    read_10x_h5_counts(path, opts).map(|(ds, _)| ds)
}

/// [`read_10x_h5`], and the group the counts came from (`matrix` for Cell Ranger 3+, the
/// genome for Cell Ranger 1/2).
pub fn read_10x_h5_counts(path: &Path, opts: &ReadOptions) -> Result<(Dataset, String)> {
    guard(path, "/", || read_inner(path, opts))
}

/// What a 10x HDF5 file says about its matrix before any count is read: the group holding
/// it, its shape, the barcodes and the features (read by [`read_10x_h5`] and by the streamed
/// reader in [`crate::stream`]).
pub(crate) struct Header {
    /// `/matrix` (Cell Ranger 3+) or `/<genome>` (Cell Ranger 1/2).
    pub group: String,
    pub n_cells: usize,
    pub n_genes: usize,
    pub barcodes: Vec<String>,
    pub ids: Vec<String>,
    pub names: Vec<String>,
    pub types: Vec<String>,
    pub genomes: Option<Vec<String>>,
}

/// Reads and checks the [`Header`] of an open 10x HDF5 file.
pub(crate) fn read_header(
    file: &hdf5_pure::File,
    path: &Path,
    opts: &ReadOptions,
) -> Result<Header> {
    // Cell Ranger 3 keeps every genome in one matrix: there `opts.genome` filters features.
    let (group, v3) = if hdf5_util::has_group(file, path, "matrix") {
        ("/matrix".to_string(), true)
    } else {
        (format!("/{}", pick_genome(file, path, opts)?), false)
    };
    let g = group.as_str();

    let shape: Vec<usize> = hdf5_util::read_numeric(file, path, &format!("{g}/shape"))?;
    let [n_genes, n_cells] = shape[..] else {
        return Err(Error::hdf5(
            path,
            format!("{g}/shape"),
            format!("expected 2 values (genes, cells), found {}", shape.len()),
        ));
    };
    if n_cells == 0 {
        return Err(Error::hdf5(
            path,
            format!("{g}/shape"),
            "the matrix has 0 cells",
        ));
    }
    let barcodes = hdf5_util::read_strings(file, path, &format!("{g}/barcodes"))?;
    if barcodes.len() != n_cells {
        return Err(Error::hdf5(
            path,
            format!("{g}/barcodes"),
            format!(
                "{} barcodes, but shape says {n_cells} cells",
                barcodes.len()
            ),
        ));
    }
    let (ids, names, types, genomes) = if v3 {
        let f = format!("{g}/features");
        let ids = hdf5_util::read_strings(file, path, &format!("{f}/id"))?;
        let names = hdf5_util::read_strings(file, path, &format!("{f}/name"))?;
        let types = hdf5_util::read_strings(file, path, &format!("{f}/feature_type"))?;
        let genomes = match file.dataset(&format!("{f}/genome")) {
            Ok(_) => Some(hdf5_util::read_strings(file, path, &format!("{f}/genome"))?),
            Err(_) => None,
        };
        (ids, names, types, genomes)
    } else {
        let ids = hdf5_util::read_strings(file, path, &format!("{g}/genes"))?;
        let names = hdf5_util::read_strings(file, path, &format!("{g}/gene_names"))?;
        let types = vec!["Gene Expression".to_string(); ids.len()];
        (ids, names, types, None)
    };
    for (what, len) in [
        ("id", ids.len()),
        ("name", names.len()),
        ("type", types.len()),
    ] {
        if len != n_genes {
            let obj = if v3 {
                format!("{g}/features")
            } else {
                format!("{g}/genes")
            };
            return Err(Error::hdf5(
                path,
                obj,
                format!("{len} feature {what}s, but shape says {n_genes} features"),
            ));
        }
    }
    if let Some(gs) = &genomes {
        if gs.len() != n_genes {
            return Err(Error::hdf5(
                path,
                format!("{g}/features/genome"),
                format!("{} entries, but shape says {n_genes} features", gs.len()),
            ));
        }
    }

    Ok(Header {
        group,
        n_cells,
        n_genes,
        barcodes,
        ids,
        names,
        types,
        genomes,
    })
}

/// Indices of the features kept by `opts` (genome of a Cell Ranger 3 file, then feature
/// types), in file order; errors when the chosen genome has no feature.
pub(crate) fn kept_features(h: &Header, path: &Path, opts: &ReadOptions) -> Result<Vec<usize>> {
    let g = &h.group;
    let mut keep: Vec<bool> = vec![true; h.n_genes];
    if let (Some(want), Some(gs)) = (&opts.genome, &h.genomes) {
        check_genome(path, g, want, gs)?;
        for (k, x) in keep.iter_mut().zip(gs) {
            *k = x == want;
        }
    }
    if !opts.feature_types.is_empty() {
        for (k, t) in keep.iter_mut().zip(&h.types) {
            *k &= opts.feature_types.iter().any(|f| f == t);
        }
    }
    Ok((0..h.n_genes).filter(|&i| keep[i]).collect())
}

/// Errors when no feature of a Cell Ranger 3 file (group `g`, feature genomes `gs`) is of
/// genome `want`; the message lists the genomes the file holds.
fn check_genome(path: &Path, g: &str, want: &str, gs: &[String]) -> Result<()> {
    if gs.iter().any(|x| x == want) {
        return Ok(());
    }
    let mut all: Vec<&str> = gs.iter().map(|s| s.as_str()).collect();
    all.sort_unstable();
    all.dedup();
    Err(Error::hdf5(
        path,
        format!("{g}/features/genome"),
        format!("no genome \"{want}\"; genomes: {}", all.join(", ")),
    ))
}

fn read_inner(path: &Path, opts: &ReadOptions) -> Result<(Dataset, String)> {
    let file = hdf5_util::open(path)?;
    let Header {
        group,
        n_cells,
        n_genes,
        barcodes,
        ids,
        names,
        types,
        genomes,
    } = read_header(&file, path, opts)?;
    let g = group.as_str();

    let indptr: Vec<usize> = hdf5_util::read_numeric(&file, path, &format!("{g}/indptr"))?;
    check_indptr(path, &format!("{g}/indptr"), &indptr, n_cells)?;
    let compact = if n_genes <= u16::LIMIT {
        read_compact(&file, path, g, &indptr, n_genes)?
    } else {
        None
    };
    let counts = match compact {
        Some(c) => c,
        None => read_wide(&file, path, g, indptr, n_genes, opts)?,
    };
    drop(file);
    let cells = CellTable::new(barcodes, &opts.sample, &opts.condition);
    let genes = GeneTable {
        ids,
        symbols: make_unique(&names),
        feature_types: types,
        columns: Default::default(),
    };
    let mut ds = Dataset::new(counts, cells, genes).map_err(|e| Error::hdf5(path, g, e))?;
    if let (Some(want), Some(gs)) = (&opts.genome, &genomes) {
        check_genome(path, g, want, gs)?;
        let mask: Vec<bool> = gs.iter().map(|x| x == want).collect();
        if !mask.iter().all(|&m| m) {
            ds = ds.filter_genes(&mask)?;
        }
    }
    let name = g.trim_start_matches('/').to_string();
    Ok((super::keep_feature_types(ds, opts)?, name))
}

/// The counts of group `g` in the compact layout ([`Counts::Compact`]): gene indices and
/// counts read straight into `u16` (no wide copy is ever held). `None` when a stored value is
/// not an integer from 0 to 65,535 (the caller then reads the wide layout).
fn read_compact(
    file: &hdf5_pure::File,
    path: &Path,
    g: &str,
    indptr: &[usize],
    n_genes: usize,
) -> Result<Option<Counts>> {
    let n_cells = indptr.len() - 1;
    let nnz = indptr[n_cells];
    // An element that does not fit u16 fails these reads; the wide read then reports the
    // real errors (an index past the genes, a value that is not a count).
    let name = format!("{g}/indices");
    let Ok(indices) = hdf5_util::read_numeric::<u16>(file, path, &name) else {
        return Ok(None);
    };
    check_len(path, &name, indices.len(), nnz, "entries")?;
    let data_name = format!("{g}/data");
    let Ok(data) = hdf5_util::read_numeric::<u16>(file, path, &data_name) else {
        return Ok(None);
    };
    check_len(path, &data_name, data.len(), nnz, "values")?;
    // Every u16 value is a count: nothing for `assume_counts` to allow. Canonical arrays (the
    // usual case) are checked in one read of the indices.
    if crate::sparse::parts_are_canonical(n_cells, n_genes, indptr, &indices, nnz) {
        let m = CsrMatrix::from_canonical_parts(n_cells, n_genes, indptr.to_vec(), indices, data);
        return Ok(Some(Counts::Compact(m)));
    }
    check_indices(path, &name, &indices, n_genes)?;
    let m = super::h5ad::build_compact(n_cells, n_genes, indptr.to_vec(), indices, data)
        .map_err(|e| Error::hdf5(path, g, e))?;
    Ok(Some(m))
}

/// The counts of group `g` as `f32` values and `u32` indices, checked as counts (compacted
/// by [`Counts::new`] when they fit after all).
fn read_wide(
    file: &hdf5_pure::File,
    path: &Path,
    g: &str,
    indptr: Vec<usize>,
    n_genes: usize,
    opts: &ReadOptions,
) -> Result<Counts> {
    let n_cells = indptr.len() - 1;
    let nnz = indptr[n_cells];
    let name = format!("{g}/indices");
    let indices: Vec<u32> = hdf5_util::read_numeric(file, path, &name)?;
    check_len(path, &name, indices.len(), nnz, "entries")?;
    // Canonical arrays (the usual case) are checked in one read of the indices, which then
    // need no check of their own.
    let canonical = crate::sparse::parts_are_canonical(n_cells, n_genes, &indptr, &indices, nnz);
    if !canonical {
        check_indices(path, &name, &indices, n_genes)?;
    }
    let data: Vec<f32> = hdf5_util::read_numeric(file, path, &format!("{g}/data"))?;
    check_len(path, &format!("{g}/data"), data.len(), nnz, "values")?;
    super::counts::check(&data, opts.assume_counts).map_err(|d| {
        Error::hdf5(
            path,
            format!("{g}/data"),
            format!("holds {d}; {}", super::counts::HOW_TO_PROCEED),
        )
    })?;
    // Cell Ranger does not always sort gene indices inside a cell: sort them when needed.
    let m = if canonical {
        CsrMatrix::from_canonical_parts(n_cells, n_genes, indptr, indices, data)
    } else {
        super::h5ad::build_csr(n_cells, n_genes, indptr, indices, data)
            .map_err(|e| Error::hdf5(path, g, e))?
    };
    Ok(Counts::new(m))
}

/// An error naming `name` when it holds `len` elements where `indptr` ends at `nnz`.
fn check_len(path: &Path, name: &str, len: usize, nnz: usize, what: &str) -> Result<()> {
    if len != nnz {
        return Err(Error::hdf5(
            path,
            name,
            format!("{len} {what}, but indptr ends at {nnz}"),
        ));
    }
    Ok(())
}

/// An error naming the first gene index past the `n_genes` features.
fn check_indices<I: ColIndex>(
    path: &Path,
    name: &str,
    indices: &[I],
    n_genes: usize,
) -> Result<()> {
    if let Some(pos) = indices.iter().position(|&i| i.ix() >= n_genes) {
        return Err(Error::hdf5(
            path,
            name,
            format!(
                "entry {pos} is gene {}, past the {n_genes} features",
                indices[pos].ix()
            ),
        ));
    }
    Ok(())
}

/// The genome group of a Cell Ranger 1/2 file.
fn pick_genome(file: &hdf5_pure::File, path: &Path, opts: &ReadOptions) -> Result<String> {
    let root = file.root();
    let groups = root
        .groups()
        .map_err(|e| Error::hdf5(path, "/", format!("cannot list groups: {e}")))?;
    let mut genomes: Vec<String> = groups
        .into_iter()
        .filter(|g| {
            root.group(g)
                .and_then(|gr| gr.datasets())
                .map(|d| d.iter().any(|n| n == "data"))
                .unwrap_or(false)
        })
        .collect();
    genomes.sort();
    if genomes.is_empty() {
        return Err(Error::hdf5(
            path,
            "/matrix",
            "not a 10x HDF5 file: no /matrix group (Cell Ranger 3+) and no genome group with \
             a `data` dataset (Cell Ranger 1/2)",
        ));
    }
    match &opts.genome {
        Some(g) if genomes.iter().any(|x| x == g) => Ok(g.clone()),
        Some(g) => Err(Error::hdf5(
            path,
            format!("/{g}"),
            format!(
                "no such genome; genomes in the file: {}",
                genomes.join(", ")
            ),
        )),
        None if genomes.len() == 1 => Ok(genomes.remove(0)),
        None => Err(Error::hdf5(
            path,
            "/",
            format!(
                "the file holds several genomes ({}); choose one with ReadOptions::genome",
                genomes.join(", ")
            ),
        )),
    }
}

/// Checks a CSR row-pointer array of a 10x HDF5 file: `n_cells + 1` entries, starting at 0,
/// never decreasing; errors name the file and the dataset.
pub(crate) fn check_indptr(path: &Path, obj: &str, indptr: &[usize], n_cells: usize) -> Result<()> {
    if indptr.len() != n_cells + 1 {
        return Err(Error::hdf5(
            path,
            obj,
            format!(
                "{} entries, expected cells + 1 = {}",
                indptr.len(),
                n_cells + 1
            ),
        ));
    }
    if indptr[0] != 0 {
        return Err(Error::hdf5(
            path,
            obj,
            format!("starts at {}, expected 0", indptr[0]),
        ));
    }
    if let Some(c) = indptr.windows(2).position(|w| w[1] < w[0]) {
        return Err(Error::hdf5(
            path,
            obj,
            format!("decreases at cell {c} ({} -> {})", indptr[c], indptr[c + 1]),
        ));
    }
    Ok(())
}

/// A new 10x HDF5 file with Cell Ranger's file attributes (matrix format version 2, one
/// library `library_id`).
pub(crate) fn tenx_file(library_id: &str) -> FileBuilder {
    let mut fb = FileBuilder::new();
    fb.set_attr("filetype", AttrValue::AsciiString("matrix".into()));
    fb.set_attr("version", AttrValue::I64(2));
    fb.set_attr(
        "chemistry_description",
        AttrValue::AsciiString("unknown".into()),
    );
    fb.set_attr(
        "library_ids",
        AttrValue::AsciiStringArray(vec![library_id.to_string()]),
    );
    fb.set_attr("original_gem_groups", AttrValue::I64Array(vec![1]));
    fb
}

/// Writes `ds` as a Cell Ranger 3 HDF5 file (`/matrix` with `features/`), readable by
/// [`read_10x_h5`], Scanpy's `read_10x_h5` and h5py.
///
/// Counts are stored as `int32` when every value is a non-negative integer (as Cell Ranger
/// does), else as `float32`. `data`, `indices` and `indptr` are gzip-compressed (level 4, with
/// shuffle) in chunks of at most 65,535 elements. The file is written under a temporary name
/// in the same folder and renamed into place, so `path` never holds a partial file.
///
/// Note: the HDF5 writer copies the arrays it is given, so peak memory is about twice the
/// matrix; compression runs on one thread.
pub fn write_10x_h5(ds: &Dataset, path: &Path) -> Result<()> {
    let x = &*ds.counts.to_csr();
    let (n_cells, n_genes) = x.shape();
    let library_id = ds
        .cells
        .sample
        .first()
        .cloned()
        .unwrap_or_else(|| "sample".into());
    let mut fb = tenx_file(&library_id);

    let mut m = fb.create_group("matrix");
    put_strings(&mut m, "barcodes", &ds.cells.barcodes)
        .map_err(|e| Error::hdf5(path, "/matrix/barcodes", e))?;
    let integral = x
        .data()
        .iter()
        .all(|&v| v >= 0.0 && v.fract() == 0.0 && v <= i32::MAX as f32);
    if integral {
        let d: Vec<i32> = x.data().iter().map(|&v| v as i32).collect();
        compressed(m.create_dataset("data").with_i32_data(&d), d.len());
    } else {
        compressed(m.create_dataset("data").with_f32_data(x.data()), x.nnz());
    }
    let idx: Vec<i64> = x.indices().iter().map(|&i| i as i64).collect();
    compressed(m.create_dataset("indices").with_i64_data(&idx), idx.len());
    drop(idx);
    let ptr: Vec<i64> = x.indptr().iter().map(|&i| i as i64).collect();
    compressed(m.create_dataset("indptr").with_i64_data(&ptr), ptr.len());
    m.create_dataset("shape")
        .with_i32_data(&[n_genes as i32, n_cells as i32]);

    let mut f = m.create_group("features");
    let obj = "/matrix/features";
    put_strings(&mut f, "_all_tag_keys", &["genome".to_string()])
        .map_err(|e| Error::hdf5(path, obj, e))?;
    put_strings(&mut f, "id", &ds.genes.ids).map_err(|e| Error::hdf5(path, obj, e))?;
    put_strings(&mut f, "name", &ds.genes.symbols).map_err(|e| Error::hdf5(path, obj, e))?;
    put_strings(&mut f, "feature_type", &ds.genes.feature_types)
        .map_err(|e| Error::hdf5(path, obj, e))?;
    let genome = match ds.genes.columns.get("genome") {
        Some(crate::dataset::Column::Str(v)) => v.clone(),
        _ => vec!["unknown".to_string(); n_genes],
    };
    put_strings(&mut f, "genome", &genome).map_err(|e| Error::hdf5(path, obj, e))?;
    m.add_group(f.finish());
    fb.add_group(m.finish());
    write_atomically(fb, path)
}

/// Cell Ranger's storage of a big array of `len` values: chunks of [`chunk_len`] elements,
/// shuffle, gzip level 4.
fn compressed(d: &mut hdf5_pure::DatasetBuilder, len: usize) {
    d.with_chunks(&[chunk_len(len)])
        .with_shuffle()
        .with_deflate(4);
}

/// Fixed-width byte strings, as Cell Ranger writes them (ASCII when possible, else UTF-8).
pub(crate) fn put_strings(
    g: &mut hdf5_pure::GroupBuilder,
    name: &str,
    values: &[String],
) -> std::result::Result<(), hdf5_pure::FormatError> {
    let refs: Vec<&str> = values.iter().map(|s| s.as_str()).collect();
    let width = refs.iter().map(|s| s.len()).max().unwrap_or(0).max(1) as u32;
    let d = g.create_dataset(name);
    if refs.iter().all(|s| s.is_ascii()) {
        d.with_ascii_strings_sized(&refs, width)?;
    } else {
        d.with_strings_sized(&refs, width)?;
    }
    Ok(())
}

/// Writes the builder under [`crate::report::temporary_path`] then renames it to `path`.
pub(crate) fn write_atomically(fb: FileBuilder, path: &Path) -> Result<()> {
    if path.file_name().is_none() {
        return Err(Error::option(
            "path",
            format!("{} has no file name", path.display()),
        ));
    }
    let tmp = crate::report::temporary_path(path);
    if let Err(e) = fb.write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::hdf5(path, "/", format!("write failed: {e}")));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}
