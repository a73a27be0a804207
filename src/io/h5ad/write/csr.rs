//! The sparse matrices of an `.h5ad` file: declared while the file is built, their large
//! arrays filled once it is written (compressed: appended chunk by chunk; uncompressed:
//! written into contiguous regions, see [`super::contiguous`]).

use super::contiguous::{self, f32_bytes, index_bytes, Placeholder};
use super::direct::RegionFiller;
use super::elements::enc;
use crate::error::Result;
use crate::io::hdf5_util::{self, chunk_len};
use crate::lognorm::{row_values, with_indices, MatrixValues};
use crate::sparse::ColIndex;
use hdf5_pure::{AttrValue, GroupBuilder};
use std::path::Path;

/// The placeholders of a matrix declared uncompressed by [`declare_csr`], still to be
/// filled (none when compressed: [`fill_csr`] appends every array).
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    data: Option<Placeholder>,
    indices: Option<Placeholder>,
    indptr: Option<Placeholder>,
}

impl Pending {
    /// The placeholders still to be filled, with the names of their arrays.
    pub(super) fn placeholders(&self) -> impl Iterator<Item = (&'static str, Placeholder)> {
        [
            ("data", self.data),
            ("indices", self.indices),
            ("indptr", self.indptr),
        ]
        .into_iter()
        .filter_map(|(name, p)| Some((name, p?)))
    }
}

/// Declares the sparse matrix group `g` (encoding attributes, `shape`) with `data`
/// (`float32`), `indices` (`int32`) and `indptr` (`int32`, or `int64` past 2^31 - 1 values).
///
/// Compressed (`level` is `Some`): the three are empty, chunked and appendable, filled by
/// [`fill_csr`]. Uncompressed: contiguous, small ones given their values here and large ones
/// a zero placeholder, filled by [`fill_csr_contiguous`].
pub(super) fn declare_csr(
    g: &mut GroupBuilder,
    m: &dyn MatrixValues,
    level: Option<u32>,
) -> Pending {
    let (n_rows, n_cols) = m.shape();
    enc(g, "csr_matrix", "0.1.0");
    g.set_attr(
        "shape",
        AttrValue::I64Array(vec![n_rows as i64, n_cols as i64]),
    );
    let wide = !indptr_is_i32(m);
    if level.is_some() {
        let nnz = chunk_len(m.nnz());
        hdf5_util::declare_appendable::<f32>(g, "data", &[], nnz, level);
        hdf5_util::declare_appendable::<i32>(g, "indices", &[], nnz, level);
        let np = chunk_len(m.indptr().len());
        if wide {
            hdf5_util::declare_appendable::<i64>(g, "indptr", &[], np, level);
        } else {
            hdf5_util::declare_appendable::<i32>(g, "indptr", &[], np, level);
        }
        return Pending {
            data: None,
            indices: None,
            indptr: None,
        };
    }
    let nnz = m.nnz();
    let data = contiguous::declare(g, "data", hdf5_pure::make_f32_type(), nnz, 4, || {
        let mut vals = Vec::with_capacity(nnz);
        for r in 0..n_rows {
            row_values(m, r, &mut vals);
        }
        f32_bytes(&vals).into_owned()
    });
    let indices = contiguous::declare(g, "indices", hdf5_pure::make_i32_type(), nnz, 4, || {
        let mut ix = Vec::with_capacity(nnz);
        m.indices().extend_into(0..nnz, &mut ix);
        index_bytes(&ix).into_owned()
    });
    let (t, w) = if wide {
        (hdf5_pure::make_i64_type(), 8)
    } else {
        (hdf5_pure::make_i32_type(), 4)
    };
    let indptr = contiguous::declare(g, "indptr", t, m.indptr().len(), w, || indptr_bytes(m));
    Pending {
        data,
        indices,
        indptr,
    }
}

fn indptr_is_i32(m: &dyn MatrixValues) -> bool {
    m.nnz() <= i32::MAX as usize
}

/// The row pointers of `m` as the file stores them (little-endian `int32` or `int64`).
fn indptr_bytes(m: &dyn MatrixValues) -> Vec<u8> {
    if indptr_is_i32(m) {
        m.indptr()
            .iter()
            .flat_map(|&p| (p as i32).to_le_bytes())
            .collect()
    } else {
        m.indptr()
            .iter()
            .flat_map(|&p| (p as i64).to_le_bytes())
            .collect()
    }
}

/// Appends the arrays of `x` to the group `name` declared by [`declare_csr`] with
/// compression, a bounded piece at a time.
pub(super) fn fill_csr(
    file: &hdf5_pure::File,
    path: &Path,
    name: &str,
    m: &dyn MatrixValues,
) -> Result<()> {
    let data = format!("{name}/data");
    hdf5_util::append_values(file, path, &data, m)?;
    let indices = format!("{name}/indices");
    // Column indices are below the number of genes, which `validate` bounds by i32::MAX.
    with_indices!(m.indices(), ix => {
        hdf5_util::append_converted(file, path, &indices, ix, |i| i.ix() as i32)?
    });
    let indptr = format!("{name}/indptr");
    if indptr_is_i32(m) {
        hdf5_util::append_converted(file, path, &indptr, m.indptr(), |p: usize| p as i32)
    } else {
        hdf5_util::append_converted(file, path, &indptr, m.indptr(), |p: usize| p as i64)
    }
}

/// Writes the arrays of `v` that [`declare_csr`] left as placeholders (uncompressed) into
/// their regions of the file: `file` is the written file opened for reading (to locate the
/// regions), `out` the same file opened for writing.
pub(super) fn fill_csr_contiguous(
    file: &hdf5_pure::File,
    out: &mut RegionFiller,
    path: &Path,
    name: &str,
    m: &dyn MatrixValues,
    pending: Pending,
) -> Result<()> {
    if pending.data.is_some() {
        let at = contiguous::region(file, path, &format!("{name}/data"), m.nnz() * 4)?;
        match m.stored_f32() {
            Some(d) => contiguous::write_region(out, at, &f32_bytes(d))?,
            None => contiguous::write_values(out, at, m)?,
        }
    }
    if pending.indices.is_some() {
        let at = contiguous::region(file, path, &format!("{name}/indices"), m.nnz() * 4)?;
        // Column indices are below the number of genes, which `validate` bounds by i32::MAX.
        contiguous::write_indices(out, at, m)?;
    }
    if pending.indptr.is_some() {
        let bytes = indptr_bytes(m);
        let at = contiguous::region(file, path, &format!("{name}/indptr"), bytes.len())?;
        contiguous::write_region(out, at, &bytes)?;
    }
    Ok(())
}
