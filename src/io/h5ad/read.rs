//! The `.h5ad` reader.

use super::super::counts::{check, HOW_TO_PROCEED};
use super::super::hdf5_util::{self, guard};
use crate::dataset::{make_unique, CellTable, Column, Columns, Dataset, GeneTable};
use crate::error::{Error, Result};
use crate::sparse::{ColIndex, Counts, CsrMatrix};
use hdf5_pure::{AttrValue, DType};
use std::collections::HashMap;
use std::path::Path;

/// Options of [`read_h5ad`].
#[derive(Debug, Clone, PartialEq)]
pub struct H5adReadOptions {
    /// Read this matrix: a layer name, or `X`. Default: `None`: the first of `X`, the layers
    /// [`COUNTS_LAYERS`] and `raw/X` that holds counts (see [`read_h5ad`]).
    pub layer: Option<String>,
    /// Sample of every cell when `obs` has no `sample` column. Default: `"sample"`.
    pub sample: String,
    /// Condition of every cell when `obs` has no `condition` column. Default: `"none"`.
    pub condition: String,
    /// Accept non-integer (non-negative, finite) values as counts: `X` (or `layer`) is read
    /// as stored. Default: `false` (the matrix must hold non-negative integers).
    pub assume_counts: bool,
}

/// The layers tried, in this order, when `X` does not hold counts: the names Scanpy's
/// tutorials, scvi-tools and Seurat's conversions use for the raw counts.
pub const COUNTS_LAYERS: [&str; 4] = ["counts", "raw_counts", "umi_counts", "raw"];

impl Default for H5adReadOptions {
    fn default() -> Self {
        H5adReadOptions {
            layer: None,
            assume_counts: false,
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

/// Reads an `.h5ad` file into a [`Dataset`] of raw counts, as [`read_h5ad_counts`] (without
/// the name of the matrix read).
pub fn read_h5ad(path: &Path, opts: &H5adReadOptions) -> Result<Dataset> {
    read_h5ad_counts(path, opts).map(|(ds, _)| ds)
}

/// Reads an `.h5ad` file into a [`Dataset`] and names the matrix its counts came from
/// (`X`, `layers/<name>` or `raw/X`).
///
/// The matrix (CSR, CSC or dense; converted to CSR) is, with `opts.layer` given, that layer
/// (`X` for `X`); else the first that holds non-negative integers of: `X`; the layers
/// [`COUNTS_LAYERS`] (`counts`, `raw_counts`, `umi_counts`, `raw`); `raw/X` (its genes are
/// then `raw/var`'s; it must have a row per cell). Files written by Scanpy after
/// normalization keep log values in `X` and the counts in `layers["counts"]` or `raw`.
/// With `opts.assume_counts`, `X` (or the layer) is taken as stored when its values are
/// non-negative and finite. With none of these, the error says what `X` holds (range, share
/// of non-integer values, what it looks like), which candidates were found and how to proceed.
///
/// Cells and genes: the `obs` index as barcodes, `obs` columns `sample` / `condition` when
/// present (else the values in `opts`) and the other supported columns (floats, integers,
/// booleans, strings, categoricals) as extra columns; the `var` index as symbols (made
/// unique), `gene_ids` (else the index) and `feature_types` (else `Gene Expression`), and the
/// other `var` columns. Columns of other encodings (nullable arrays, nested frames) are skipped.
pub fn read_h5ad_counts(path: &Path, opts: &H5adReadOptions) -> Result<(Dataset, String)> {
    guard(path, "/", || read_h5ad_inner(path, opts))
}

fn read_h5ad_inner(path: &Path, opts: &H5adReadOptions) -> Result<(Dataset, String)> {
    let file = hdf5_util::open(path)?;
    let (counts, name) = pick_matrix(&file, path, opts)?;
    let (cells, mut genes) = read_obs_var(&file, path, opts)?;
    if name == "raw/X" {
        genes = read_raw_var(&file, path)?;
    }
    if cells.len() != counts.n_rows() || genes.ids.len() != counts.n_cols() {
        return Err(Error::hdf5(
            path,
            format!("/{name}"),
            format!(
                "matrix is {} x {}, but obs has {} rows and var {}",
                counts.n_rows(),
                counts.n_cols(),
                cells.len(),
                genes.ids.len()
            ),
        ));
    }
    let ds = Dataset::new(counts, cells, genes).map_err(|e| Error::hdf5(path, "/", e))?;
    Ok((ds, name))
}

/// The matrix [`read_h5ad_counts`] reads, and its name (`X`, `layers/<name>`, `raw/X`).
fn pick_matrix(
    file: &hdf5_pure::File,
    path: &Path,
    opts: &H5adReadOptions,
) -> Result<(Counts, String)> {
    let assume = opts.assume_counts;
    // The matrix `name` as counts, or what it holds instead.
    let candidate = |name: &str| -> Result<std::result::Result<Counts, String>> {
        if let Some(c) = read_compact(file, path, name)? {
            return Ok(Ok(c));
        }
        // A sparse matrix's values alone first: log values are described (and left) without
        // their indices being read.
        if sparse_group(file, path, name)?.is_some() {
            let data: Vec<f32> = hdf5_util::read_numeric(file, path, &format!("{name}/data"))?;
            if let Err(d) = check(&data, assume) {
                return Ok(Err(d));
            }
        }
        let m = read_matrix(file, path, name)?;
        Ok(check(m.data(), assume).map(|_| Counts::new(m)))
    };
    if let Some(l) = &opts.layer {
        let name = if l == "X" {
            "X".to_string()
        } else {
            format!("layers/{l}")
        };
        let m = candidate(&format!("/{name}"))?.map_err(|d| {
            Error::hdf5(
                path,
                format!("/{name}"),
                format!("holds {d}; {HOW_TO_PROCEED}"),
            )
        })?;
        return Ok((m, name));
    }
    let xs = match candidate("/X")? {
        Ok(x) => return Ok((x, "X".to_string())),
        Err(d) => d,
    };
    let mut tried = Vec::new();
    let exists = |name: &str| file.group(name).is_ok() || file.dataset(name).is_ok();
    for l in COUNTS_LAYERS {
        let name = format!("layers/{l}");
        if !exists(&format!("/{name}")) {
            continue;
        }
        match candidate(&format!("/{name}"))? {
            Ok(m) => return Ok((m, name)),
            Err(d) => tried.push(format!("{name} holds {d}")),
        }
    }
    if exists("/raw/X") {
        match candidate("/raw/X")? {
            Ok(m) => return Ok((m, "raw/X".to_string())),
            Err(d) => tried.push(format!("raw/X holds {d}")),
        }
    }
    let layers: Vec<String> = file
        .group("/layers")
        .and_then(|g| {
            let mut v = g.datasets()?;
            v.extend(g.groups()?);
            Ok(v)
        })
        .unwrap_or_default();
    let found = if tried.is_empty() {
        format!(
            "no counts layer found (looked for layers {} and raw/X; the file's layers: {})",
            COUNTS_LAYERS.join(", "),
            if layers.is_empty() {
                "none".to_string()
            } else {
                layers.join(", ")
            }
        )
    } else {
        format!("and no candidate holds counts: {}", tried.join("; "))
    };
    Err(Error::hdf5(
        path,
        "/X",
        format!("X holds {xs}; {found}; {HOW_TO_PROCEED}"),
    ))
}

/// The gene table of `raw/var` (the genes of `raw/X`).
fn read_raw_var(file: &hdf5_pure::File, path: &Path) -> Result<GeneTable> {
    let (var_index, var_cols) = read_dataframe(file, path, "/raw/var")?;
    Ok(gene_table(var_index, var_cols))
}

fn as_strings(c: Column) -> Vec<String> {
    (0..c.len()).map(|i| c.format(i)).collect()
}

/// Genes from a `var` frame: the index as symbols (made unique), `gene_ids` (else the index)
/// and `feature_types` (else `Gene Expression`); the other columns kept.
fn gene_table(var_index: Vec<String>, mut var_cols: Columns) -> GeneTable {
    let m = var_index.len();
    GeneTable {
        ids: var_cols
            .remove("gene_ids")
            .map(as_strings)
            .unwrap_or_else(|| var_index.clone()),
        feature_types: var_cols
            .remove("feature_types")
            .map(as_strings)
            .unwrap_or_else(|| vec!["Gene Expression".to_string(); m]),
        symbols: make_unique(&var_index),
        columns: var_cols,
    }
}

/// The cell and gene tables of an `.h5ad` file, as [`read_h5ad`] builds them.
pub(crate) fn read_obs_var(
    file: &hdf5_pure::File,
    path: &Path,
    opts: &H5adReadOptions,
) -> Result<(CellTable, GeneTable)> {
    let (mut obs_index, mut obs_cols) = read_dataframe(file, path, "/obs")?;
    let (var_index, var_cols) = read_dataframe(file, path, "/var")?;
    let n = obs_index.len();
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
    let genes = gene_table(var_index, var_cols);
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
    // anndata before 0.8 marked sparse matrices with `h5sparse_format` (`csr` / `csc`) and
    // `h5sparse_shape` instead of `encoding-type` and `shape`.
    let ty = attr_string(&a, "encoding-type")
        .or_else(|| attr_string(&a, "h5sparse_format").map(|f| format!("{f}_matrix")))
        .unwrap_or_default();
    let shape: Vec<i64> = match a.get("shape").or_else(|| a.get("h5sparse_shape")) {
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

/// The CSR matrix `name` in the compact counts layout, read straight into `u16` (no `f32`
/// copy): `None` when it is not a CSR group of at most 65,536 columns whose values are all
/// integers from 0 to 65,535 (the caller then reads it with [`read_matrix`], which reports
/// what is wrong with it, if anything).
fn read_compact(file: &hdf5_pure::File, path: &Path, name: &str) -> Result<Option<Counts>> {
    let Some((ty, r, c)) = sparse_group(file, path, name)? else {
        return Ok(None);
    };
    if ty != "csr_matrix" || c > u16::LIMIT {
        return Ok(None);
    }
    // The values first: log-normalized values fail at once, before the indices are read.
    let Ok(data) = hdf5_util::read_numeric::<u16>(file, path, &format!("{name}/data")) else {
        return Ok(None);
    };
    let Ok(indices) = hdf5_util::read_numeric::<u16>(file, path, &format!("{name}/indices")) else {
        return Ok(None);
    };
    let indptr: Vec<usize> = hdf5_util::read_numeric(file, path, &format!("{name}/indptr"))?;
    if indices.len() != data.len() || indices.iter().any(|&i| usize::from(i) >= c) {
        return Ok(None);
    }
    build_compact(r, c, indptr, indices, data)
        .map(Some)
        .map_err(|e| Error::hdf5(path, name, e))
}

pub(crate) fn read_matrix(file: &hdf5_pure::File, path: &Path, name: &str) -> Result<CsrMatrix> {
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
/// Canonical arrays, the usual case, are checked in one read of the indices and kept as they
/// are; any other goes through [`CsrMatrix::from_unsorted_rows`], which sorts the rows and
/// gives the error of whatever else is wrong.
pub(crate) fn build_csr(
    r: usize,
    c: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
) -> Result<CsrMatrix> {
    if crate::sparse::parts_are_canonical(r, c, &indptr, &indices, data.len()) {
        Ok(CsrMatrix::from_canonical_parts(r, c, indptr, indices, data))
    } else {
        CsrMatrix::from_unsorted_rows(r, c, indptr, indices, data)
    }
}

/// [`build_csr`] of compact counts: kept compact when the arrays are canonical, else sorted
/// (and duplicates summed) as `f32` and compacted again when the sums fit ([`Counts::new`]).
pub(crate) fn build_compact(
    r: usize,
    c: usize,
    indptr: Vec<usize>,
    indices: Vec<u16>,
    data: Vec<u16>,
) -> Result<Counts> {
    if crate::sparse::parts_are_canonical(r, c, &indptr, &indices, data.len()) {
        return Ok(Counts::Compact(CsrMatrix::from_canonical_parts(
            r, c, indptr, indices, data,
        )));
    }
    let indices = indices.into_iter().map(u32::from).collect();
    let data = data.into_iter().map(f32::from).collect();
    Ok(Counts::new(CsrMatrix::from_unsorted_rows(
        r, c, indptr, indices, data,
    )?))
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
        let categories = hdf5_util::read_strings(file, path, &format!("{obj}/categories"))?;
        let raw: Vec<i64> = hdf5_util::read_numeric(file, path, &format!("{obj}/codes"))?;
        return categorical(path, &format!("{obj}/codes"), raw, categories).map(Some);
    }
    let ds = hdf5_util::dataset(file, path, obj)?;
    let dtype = ds.dtype().map_err(|e| Error::hdf5(path, obj, e))?;
    // anndata before 0.8: a categorical column is its integer codes, the categories in
    // `<frame>/__categories/<column>`.
    if let Some((frame, col)) = obj.rsplit_once('/') {
        let cats = format!("{frame}/__categories/{col}");
        if file.dataset(&cats).is_ok() {
            let categories = hdf5_util::read_strings(file, path, &cats)?;
            let codes: Vec<i64> = hdf5_util::read_numeric(file, path, obj)?;
            return categorical(path, obj, codes, categories).map(Some);
        }
    }
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

/// A categorical column from pandas codes (`-1`: missing, an extra category "nan").
fn categorical(
    path: &Path,
    obj: &str,
    raw: Vec<i64>,
    mut categories: Vec<String>,
) -> Result<Column> {
    let k = categories.len() as i64;
    let mut missing = None;
    let mut codes = Vec::with_capacity(raw.len());
    for (i, &x) in raw.iter().enumerate() {
        if x < 0 {
            let m = *missing.get_or_insert_with(|| {
                categories.push("nan".to_string());
                k as u32
            });
            codes.push(m);
        } else if x >= k {
            return Err(Error::hdf5(
                path,
                obj,
                format!("code {x} at row {i} is past the {k} categories"),
            ));
        } else {
            codes.push(x as u32);
        }
    }
    Ok(Column::Categorical { codes, categories })
}
