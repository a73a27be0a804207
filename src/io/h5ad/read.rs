//! The `.h5ad` reader.

use super::super::hdf5_util::{self, guard};
use crate::dataset::{make_unique, CellTable, Column, Columns, Dataset, GeneTable};
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use hdf5_pure::{AttrValue, DType};
use std::collections::HashMap;
use std::path::Path;

/// Options of [`read_h5ad`].
#[derive(Debug, Clone, PartialEq)]
pub struct H5adReadOptions {
    /// Read this layer instead of `X`. Default: `None` (read `X`).
    pub layer: Option<String>,
    /// Sample of every cell when `obs` has no `sample` column. Default: `"sample"`.
    pub sample: String,
    /// Condition of every cell when `obs` has no `condition` column. Default: `"none"`.
    pub condition: String,
}

impl Default for H5adReadOptions {
    fn default() -> Self {
        H5adReadOptions {
            layer: None,
            sample: "sample".into(),
            condition: "none".into(),
        }
    }
}

fn attr_string(a: &HashMap<String, AttrValue>, key: &str) -> Option<String> {
    match a.get(key)? {
        AttrValue::String(s) | AttrValue::AsciiString(s) | AttrValue::VarLenString(s) => {
            Some(s.clone())
        }
        AttrValue::StringSized { value, .. } | AttrValue::AsciiStringSized { value, .. } => {
            Some(value.clone())
        }
        _ => None,
    }
}

fn attr_strings(a: &HashMap<String, AttrValue>, key: &str) -> Vec<String> {
    match a.get(key) {
        Some(AttrValue::StringArray(v))
        | Some(AttrValue::AsciiStringArray(v))
        | Some(AttrValue::VarLenStringArray(v))
        | Some(AttrValue::VarLenAsciiCharArray(v)) => v.clone(),
        Some(AttrValue::StringArraySized { values, .. })
        | Some(AttrValue::AsciiStringArraySized { values, .. }) => values.clone(),
        Some(AttrValue::String(s)) | Some(AttrValue::VarLenString(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Reads an `.h5ad` file into a [`Dataset`]: `X` or the layer `opts.layer` (CSR, CSC or dense;
/// converted to CSR), the `obs` index as barcodes, `obs` columns `sample` / `condition` when
/// present (else the values in `opts`) and the other supported columns (floats, integers,
/// booleans, strings, categoricals) as extra columns; the `var` index as symbols (made unique),
/// `gene_ids` (else the index) and `feature_types` (else `Gene Expression`), and the other
/// `var` columns. Columns of other encodings (nullable arrays, nested frames) are skipped.
///
/// The matrix is read as stored (`X` is usually log-normalized in files written by Scanpy;
/// use `layer: Some("counts")` for raw counts when the file has them).
pub fn read_h5ad(path: &Path, opts: &H5adReadOptions) -> Result<Dataset> {
    guard(path, "/", || read_h5ad_inner(path, opts))
}

fn read_h5ad_inner(path: &Path, opts: &H5adReadOptions) -> Result<Dataset> {
    let file = hdf5_util::open(path)?;
    let xname = match &opts.layer {
        Some(l) => format!("/layers/{l}"),
        None => "/X".to_string(),
    };
    let counts = read_matrix(&file, path, &xname)?;
    let (cells, genes) = read_obs_var(&file, path, opts)?;
    if cells.len() != counts.n_rows() || genes.ids.len() != counts.n_cols() {
        return Err(Error::hdf5(
            path,
            xname,
            format!(
                "matrix is {} x {}, but obs has {} rows and var {}",
                counts.n_rows(),
                counts.n_cols(),
                cells.len(),
                genes.ids.len()
            ),
        ));
    }
    Dataset::new(counts, cells, genes).map_err(|e| Error::hdf5(path, "/", e))
}

/// The cell and gene tables of an `.h5ad` file, as [`read_h5ad`] builds them.
pub(crate) fn read_obs_var(
    file: &hdf5_pure::File,
    path: &Path,
    opts: &H5adReadOptions,
) -> Result<(CellTable, GeneTable)> {
    let (mut obs_index, mut obs_cols) = read_dataframe(file, path, "/obs")?;
    let (var_index, mut var_cols) = read_dataframe(file, path, "/var")?;
    let n = obs_index.len();
    let as_strings = |c: Column| -> Vec<String> { (0..c.len()).map(|i| c.format(i)).collect() };
    let sample = obs_cols
        .remove("sample")
        .map(as_strings)
        .unwrap_or_else(|| vec![opts.sample.clone(); n]);
    let condition = obs_cols
        .remove("condition")
        .map(as_strings)
        .unwrap_or_else(|| vec![opts.condition.clone(); n]);
    let cells = CellTable {
        barcodes: std::mem::take(&mut obs_index),
        sample,
        condition,
        columns: obs_cols,
    };
    let m = var_index.len();
    let ids = var_cols
        .remove("gene_ids")
        .map(as_strings)
        .unwrap_or_else(|| var_index.clone());
    let feature_types = var_cols
        .remove("feature_types")
        .map(as_strings)
        .unwrap_or_else(|| vec!["Gene Expression".to_string(); m]);
    let genes = GeneTable {
        ids,
        symbols: make_unique(&var_index),
        feature_types,
        columns: var_cols,
    };
    Ok((cells, genes))
}

/// Encoding (`csr_matrix`, `csc_matrix`, ...) and shape of the sparse matrix group `name`;
/// `None` when `name` is not a group (a dense array).
pub(crate) fn sparse_group(
    file: &hdf5_pure::File,
    path: &Path,
    name: &str,
) -> Result<Option<(String, usize, usize)>> {
    let Ok(g) = file.group(name) else {
        return Ok(None);
    };
    let a = g.attrs().map_err(|e| Error::hdf5(path, name, e))?;
    let ty = attr_string(&a, "encoding-type").unwrap_or_default();
    let shape: Vec<i64> = match a.get("shape") {
        Some(AttrValue::I64Array(v)) => v.clone(),
        Some(AttrValue::I32Array(v)) => v.iter().map(|&x| x as i64).collect(),
        Some(AttrValue::U64Array(v)) => v.iter().map(|&x| x as i64).collect(),
        _ => Vec::new(),
    };
    let [r, c] = shape[..] else {
        return Err(Error::hdf5(
            path,
            name,
            "sparse matrix without a 2-value `shape` attribute",
        ));
    };
    if r < 0 || c < 0 {
        return Err(Error::hdf5(path, name, "negative shape"));
    }
    Ok(Some((ty, r as usize, c as usize)))
}

fn read_matrix(file: &hdf5_pure::File, path: &Path, name: &str) -> Result<CsrMatrix> {
    if let Some((ty, r, c)) = sparse_group(file, path, name)? {
        let data: Vec<f32> = hdf5_util::read_numeric(file, path, &format!("{name}/data"))?;
        let indices: Vec<u32> = hdf5_util::read_numeric(file, path, &format!("{name}/indices"))?;
        let indptr: Vec<usize> = hdf5_util::read_numeric(file, path, &format!("{name}/indptr"))?;
        let bad = |e: Error| Error::hdf5(path, name, e);
        return match ty.as_str() {
            "csr_matrix" => build_csr(r, c, indptr, indices, data).map_err(bad),
            "csc_matrix" => Ok(build_csr(c, r, indptr, indices, data)
                .map_err(bad)?
                .transpose()),
            other => Err(Error::hdf5(
                path,
                name,
                format!("unsupported matrix encoding \"{other}\""),
            )),
        };
    }
    let ds = hdf5_util::dataset(file, path, name)?;
    let shape = ds.shape().map_err(|e| Error::hdf5(path, name, e))?;
    let [r, c] = shape[..] else {
        return Err(Error::hdf5(
            path,
            name,
            format!("expected a 2-D array, found shape {shape:?}"),
        ));
    };
    let (r, c) = (r as usize, c as usize);
    // Dense: read blocks of rows, keep the non-zeros.
    let block = (1 << 22) / c.max(1) + 1;
    let mut indptr = Vec::with_capacity(r + 1);
    indptr.push(0usize);
    let (mut indices, mut data) = (Vec::new(), Vec::new());
    let mut start = 0;
    while start < r {
        let cnt = block.min(r - start);
        let vals = ds
            .read_f32_rows(start as u64, cnt as u64)
            .map_err(|e| Error::hdf5(path, name, e))?;
        if vals.len() != cnt * c {
            return Err(Error::hdf5(path, name, "short read of a dense matrix"));
        }
        for row in vals.chunks_exact(c.max(1)).take(cnt) {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    indices.push(j as u32);
                    data.push(v);
                }
            }
            indptr.push(indices.len());
        }
        start += cnt;
    }
    if c == 0 {
        indptr.resize(r + 1, 0);
    }
    CsrMatrix::try_new(r, c, indptr, indices, data).map_err(|e| Error::hdf5(path, name, e))
}

/// A CSR matrix from arrays whose column indices may be unsorted inside a row (sorted then).
pub(crate) fn build_csr(
    r: usize,
    c: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
) -> Result<CsrMatrix> {
    let sorted = indptr.len() == r + 1
        && indptr.windows(2).all(|w| w[0] <= w[1])
        && indptr.last() == Some(&indices.len())
        && indptr
            .windows(2)
            .all(|w| indices[w[0]..w[1]].windows(2).all(|p| p[0] < p[1]));
    if sorted {
        CsrMatrix::try_new(r, c, indptr, indices, data)
    } else {
        CsrMatrix::from_unsorted_rows(r, c, indptr, indices, data)
    }
}

fn read_dataframe(
    file: &hdf5_pure::File,
    path: &Path,
    name: &str,
) -> Result<(Vec<String>, Columns)> {
    let g = file
        .group(name)
        .map_err(|e| Error::hdf5(path, name, format!("missing group: {e}")))?;
    let a = g.attrs().map_err(|e| Error::hdf5(path, name, e))?;
    let index_name = attr_string(&a, "_index").unwrap_or_else(|| "_index".into());
    let index = hdf5_util::read_strings(file, path, &format!("{name}/{index_name}"))?;
    let n = index.len();
    let mut cols = Columns::default();
    for c in attr_strings(&a, "column-order") {
        let obj = format!("{name}/{c}");
        if let Some(col) = read_column(file, path, &obj)? {
            if col.len() != n {
                return Err(Error::hdf5(
                    path,
                    obj,
                    format!("{} rows, index has {n}", col.len()),
                ));
            }
            cols.insert(&c, n, col)?;
        }
    }
    Ok((index, cols))
}

fn read_column(file: &hdf5_pure::File, path: &Path, obj: &str) -> Result<Option<Column>> {
    if let Ok(g) = file.group(obj) {
        let a = g.attrs().map_err(|e| Error::hdf5(path, obj, e))?;
        if attr_string(&a, "encoding-type").as_deref() != Some("categorical") {
            return Ok(None);
        }
        let mut categories = hdf5_util::read_strings(file, path, &format!("{obj}/categories"))?;
        let raw: Vec<i64> = hdf5_util::read_numeric(file, path, &format!("{obj}/codes"))?;
        let k = categories.len() as i64;
        let mut missing = None;
        let mut codes = Vec::with_capacity(raw.len());
        for (i, &x) in raw.iter().enumerate() {
            if x < 0 {
                // pandas' missing value: an extra category "nan".
                let m = *missing.get_or_insert_with(|| {
                    categories.push("nan".to_string());
                    k as u32
                });
                codes.push(m);
            } else if x >= k {
                return Err(Error::hdf5(
                    path,
                    format!("{obj}/codes"),
                    format!("code {x} at row {i} is past the {k} categories"),
                ));
            } else {
                codes.push(x as u32);
            }
        }
        return Ok(Some(Column::Categorical { codes, categories }));
    }
    let ds = hdf5_util::dataset(file, path, obj)?;
    let dtype = ds.dtype().map_err(|e| Error::hdf5(path, obj, e))?;
    Ok(Some(match dtype {
        DType::String | DType::VariableLengthString => {
            Column::Str(hdf5_util::read_strings(file, path, obj)?)
        }
        DType::F32 | DType::F64 => Column::F64(hdf5_util::read_numeric(file, path, obj)?),
        DType::I8 | DType::I16 | DType::I32 | DType::I64 | DType::U8 | DType::U16 | DType::U32 => {
            Column::I64(hdf5_util::read_numeric(file, path, obj)?)
        }
        DType::U64 => {
            let v: Vec<i64> = hdf5_util::read_numeric(file, path, obj)?;
            Column::I64(v)
        }
        DType::Enum(names) if names.iter().any(|n| n == "TRUE") => {
            let raw = ds.read_raw().map_err(|e| Error::hdf5(path, obj, e))?;
            Column::Bool(raw.iter().map(|&b| b != 0).collect())
        }
        _ => return Ok(None),
    }))
}
