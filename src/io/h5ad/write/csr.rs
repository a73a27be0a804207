//! The sparse matrices of an `.h5ad` file: declared empty and appendable while the file is
//! built, then filled a bounded piece at a time.

use super::elements::enc;
use crate::error::Result;
use crate::io::hdf5_util::{self, chunk_len};
use crate::lognorm::MatrixValues;
use crate::sparse::CsrMatrix;
use hdf5_pure::{AttrValue, GroupBuilder};
use std::path::Path;

/// Declares the sparse matrix group `g` (encoding attributes, `shape`) with empty, appendable
/// `data` (`float32`), `indices` (`int32`) and `indptr` (`int32`, or `int64` past 2^31 - 1
/// values), filled by [`fill_csr`] once the file is written.
pub(super) fn declare_csr(g: &mut GroupBuilder, m: &CsrMatrix, level: Option<u32>) {
    enc(g, "csr_matrix", "0.1.0");
    g.set_attr(
        "shape",
        AttrValue::I64Array(vec![m.n_rows() as i64, m.n_cols() as i64]),
    );
    let nnz = chunk_len(m.nnz());
    hdf5_util::declare_appendable::<f32>(g, "data", &[], nnz, level);
    hdf5_util::declare_appendable::<i32>(g, "indices", &[], nnz, level);
    let np = chunk_len(m.indptr().len());
    if indptr_is_i32(m) {
        hdf5_util::declare_appendable::<i32>(g, "indptr", &[], np, level);
    } else {
        hdf5_util::declare_appendable::<i64>(g, "indptr", &[], np, level);
    }
}

fn indptr_is_i32(m: &CsrMatrix) -> bool {
    m.nnz() <= i32::MAX as usize
}

/// Appends the arrays of `m` to the group `name` declared by [`declare_csr`], a bounded
/// piece at a time.
pub(super) fn fill_csr(
    file: &hdf5_pure::File,
    path: &Path,
    name: &str,
    x: &dyn MatrixValues,
) -> Result<()> {
    let data = format!("{name}/data");
    hdf5_util::append_values(file, path, &data, x)?;
    let m = x.pattern();
    let indices = format!("{name}/indices");
    // Column indices are below the number of genes, which `validate` bounds by i32::MAX.
    hdf5_util::append_converted(file, path, &indices, m.indices(), |i: u32| i as i32)?;
    let indptr = format!("{name}/indptr");
    if indptr_is_i32(m) {
        hdf5_util::append_converted(file, path, &indptr, m.indptr(), |p: usize| p as i32)
    } else {
        hdf5_util::append_converted(file, path, &indptr, m.indptr(), |p: usize| p as i64)
    }
}
