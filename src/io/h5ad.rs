//! AnnData `.h5ad` files: a writer that anndata 0.12 and Scanpy 1.11 open without warnings,
//! and a reader for X (or a layer), obs and var.
//!
//! The on-disk layout follows the AnnData specification
//! (<https://anndata.readthedocs.io/en/stable/fileformat-prose.html>): every group and dataset
//! carries `encoding-type` / `encoding-version` attributes; sparse matrices are groups with
//! `data`, `indices`, `indptr` and a `shape` attribute; data frames are groups with an `_index`
//! attribute naming the index dataset and a `column-order` attribute; categoricals are groups
//! with `codes`, `categories` and `ordered`; record arrays (Scanpy's `rank_genes_groups`
//! `names` / `scores` / `pvals` / ...) are HDF5 compound datasets with one field per group.
//!
//! Differences from what anndata itself writes: string fields of record arrays are fixed-width
//! byte strings (anndata reads them back as unicode, as it does for files of older anndata
//! versions; non-ASCII text there is not supported); boolean columns are stored as the same
//! HDF5 enum that h5py uses, but the categorical `ordered` flag is a `uint8` 0/1 attribute.

use super::hdf5_util::{self, chunk_len, guard};
use crate::dataset::{make_unique, CellTable, Column, Columns, Dataset, GeneTable};
use crate::error::{Error, Result};
use crate::lognorm::MatrixValues;
use crate::sparse::CsrMatrix;
use hdf5_pure::{
    AttrValue, CompoundTypeBuilder, DType, Datatype, EnumTypeBuilder, FileBuilder, GroupBuilder,
};
use ndarray::ArrayView2;
use std::collections::HashMap;
use std::path::Path;

/// A value of the unstructured annotation `uns` (a tree, like a Python dict).
#[derive(Debug, Clone, PartialEq)]
pub enum UnsValue {
    /// A string scalar.
    Str(String),
    /// A float scalar.
    F64(f64),
    /// An integer scalar.
    I64(i64),
    /// A boolean scalar.
    Bool(bool),
    /// An array of strings (e.g. `leiden_colors`).
    StrArray(Vec<String>),
    /// An array of floats.
    F64Array(Vec<f64>),
    /// An array of integers.
    I64Array(Vec<i64>),
    /// A record array: every field has the same number of rows (Scanpy's `rank_genes_groups`
    /// `names`, `scores`, ... with one field per group).
    RecArray(Vec<(String, RecField)>),
    /// A nested dictionary, in insertion order.
    Dict(Vec<(String, UnsValue)>),
}

/// One field of a [`UnsValue::RecArray`].
#[derive(Debug, Clone, PartialEq)]
pub enum RecField {
    /// Strings (stored fixed-width).
    Str(Vec<String>),
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
}

impl RecField {
    fn len(&self) -> usize {
        match self {
            RecField::Str(v) => v.len(),
            RecField::F32(v) => v.len(),
            RecField::F64(v) => v.len(),
        }
    }
}

/// Everything [`write_h5ad`] writes. Build it with [`H5adOutput::new`] and push the optional
/// parts onto its vectors.
#[derive(Debug, Clone)]
pub struct H5adOutput<'a> {
    /// `X`, cells x genes: a stored matrix or values computed when written (e.g.
    /// [`crate::lognorm::LogCounts`]).
    pub x: &'a dyn MatrixValues,
    /// `layers` (e.g. `counts`), each the shape of `x`.
    pub layers: Vec<(String, &'a CsrMatrix)>,
    /// `obs`: index = barcodes, columns `sample`, `condition` (categorical) and every extra
    /// column of the table.
    pub obs: &'a CellTable,
    /// `var`: index = symbols, columns `gene_ids`, `feature_types` and every extra column.
    pub var: &'a GeneTable,
    /// `obsm` (e.g. `X_pca`, `X_umap`), one row per cell.
    pub obsm: Vec<(String, ArrayView2<'a, f32>)>,
    /// `varm` (e.g. `PCs`), one row per gene.
    pub varm: Vec<(String, ArrayView2<'a, f32>)>,
    /// `obsp` (e.g. `connectivities`, `distances`), cells x cells.
    pub obsp: Vec<(String, &'a CsrMatrix)>,
    /// `uns`, top-level keys in order.
    pub uns: Vec<(String, UnsValue)>,
    /// gzip level for the sparse matrices (0-9). Default: `Some(4)`. `None`: uncompressed.
    pub compression: Option<u32>,
}

impl<'a> H5adOutput<'a> {
    /// An output with `X`, `obs` and `var` only.
    pub fn new(x: &'a dyn MatrixValues, obs: &'a CellTable, var: &'a GeneTable) -> Self {
        H5adOutput {
            x,
            layers: Vec::new(),
            obs,
            var,
            obsm: Vec::new(),
            varm: Vec::new(),
            obsp: Vec::new(),
            uns: Vec::new(),
            compression: Some(4),
        }
    }
}

fn enc(g: &mut GroupBuilder, ty: &str, version: &str) {
    g.set_attr("encoding-type", AttrValue::String(ty.into()));
    g.set_attr("encoding-version", AttrValue::String(version.into()));
}

fn enc_ds(d: &mut hdf5_pure::DatasetBuilder, ty: &str, version: &str) {
    d.set_attr("encoding-type", AttrValue::String(ty.into()));
    d.set_attr("encoding-version", AttrValue::String(version.into()));
}

/// h5py's boolean type: an `int8` enum with members `FALSE` = 0 and `TRUE` = 1.
fn bool_type() -> std::result::Result<Datatype, hdf5_pure::FormatError> {
    EnumTypeBuilder::with_base(hdf5_pure::make_i8_type())
        .value("FALSE", 0)
        .value("TRUE", 1)
        .build()
}

/// Writes `out` as an `.h5ad` file (AnnData 0.12 layout; see the module docs), under a
/// temporary name in the same folder, renamed into place when complete.
///
/// Memory: the file is first written with everything but the arrays of the sparse matrices
/// (`X`, `layers`, `obsp`), which are declared empty (chunked by up to 65,535 elements,
/// extendable); it is then reopened and each array is appended a bounded piece at a time
/// through `hdf5-pure`'s buffered appender (compressing chunk by chunk on this thread), so
/// no copy of a matrix is made.
///
/// Shapes are checked first (layers like `X`; `obsm` rows = cells; `varm` rows = genes;
/// `obsp` cells x cells; record-array fields of equal length): a mismatch is
/// [`Error::InvalidData`] and nothing is written.
pub fn write_h5ad(out: &H5adOutput, path: &Path) -> Result<()> {
    validate(out)?;
    let fbe = |obj: &str| {
        let obj = obj.to_string();
        move |e: hdf5_pure::FormatError| Error::hdf5(path, obj.clone(), e)
    };
    let mut fb = FileBuilder::new();
    fb.set_attr("encoding-type", AttrValue::String("anndata".into()));
    fb.set_attr("encoding-version", AttrValue::String("0.1.0".into()));
    let level = out.compression;

    // The sparse matrices are declared empty here and appended once the rest is written.
    let mut sparse: Vec<(String, &dyn MatrixValues)> = vec![("/X".to_string(), out.x)];
    let mut g = fb.create_group("X");
    declare_csr(&mut g, out.x.pattern(), level);
    fb.add_group(g.finish());

    let mut layers = fb.create_group("layers");
    enc(&mut layers, "dict", "0.1.0");
    for (name, m) in &out.layers {
        let mut g = layers.create_group(name);
        declare_csr(&mut g, m, level);
        layers.add_group(g.finish());
        sparse.push((format!("/layers/{name}"), *m));
    }
    fb.add_group(layers.finish());

    // obs
    let mut obs = fb.create_group("obs");
    let mut cols: Vec<(String, Column)> = vec![
        ("sample".into(), Column::categorical_from(&out.obs.sample)),
        (
            "condition".into(),
            Column::categorical_from(&out.obs.condition),
        ),
    ];
    cols.extend(
        out.obs
            .columns
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone())),
    );
    write_dataframe(&mut obs, &out.obs.barcodes, &cols, level).map_err(fbe("/obs"))?;
    fb.add_group(obs.finish());

    // var
    let mut var = fb.create_group("var");
    let mut cols: Vec<(String, Column)> = vec![
        ("gene_ids".into(), Column::Str(out.var.ids.clone())),
        (
            "feature_types".into(),
            Column::categorical_from(&out.var.feature_types),
        ),
    ];
    cols.extend(
        out.var
            .columns
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone())),
    );
    write_dataframe(&mut var, &out.var.symbols, &cols, level).map_err(fbe("/var"))?;
    fb.add_group(var.finish());

    for (gname, items) in [("obsm", &out.obsm), ("varm", &out.varm)] {
        let mut g = fb.create_group(gname);
        enc(&mut g, "dict", "0.1.0");
        for (name, a) in items.iter() {
            let data: Vec<f32> = a.iter().copied().collect(); // row-major
            let d = g.create_dataset(name);
            d.with_f32_data(&data)
                .with_shape(&[a.nrows() as u64, a.ncols() as u64]);
            enc_ds(d, "array", "0.2.0");
        }
        fb.add_group(g.finish());
    }
    let mut obsp = fb.create_group("obsp");
    enc(&mut obsp, "dict", "0.1.0");
    for (name, m) in &out.obsp {
        let mut g = obsp.create_group(name);
        declare_csr(&mut g, m, level);
        obsp.add_group(g.finish());
        sparse.push((format!("/obsp/{name}"), *m));
    }
    fb.add_group(obsp.finish());
    let mut varp = fb.create_group("varp");
    enc(&mut varp, "dict", "0.1.0");
    fb.add_group(varp.finish());

    let mut uns = fb.create_group("uns");
    enc(&mut uns, "dict", "0.1.0");
    for (k, v) in &out.uns {
        write_uns(&mut uns, k, v).map_err(fbe(&format!("/uns/{k}")))?;
    }
    fb.add_group(uns.finish());

    if path.file_name().is_none() {
        return Err(Error::option(
            "path",
            format!("{} has no file name", path.display()),
        ));
    }
    let tmp = crate::report::temporary_path(path);
    let written = fb
        .write(&tmp)
        .map_err(|e| Error::hdf5(path, "/", format!("write failed: {e}")))
        .and_then(|()| {
            let file = hdf5_util::open_for_append(&tmp, path)?;
            for (name, m) in &sparse {
                fill_csr(&file, path, name, *m)?;
            }
            file.close()
                .map_err(|e| Error::hdf5(path, "/", format!("write failed: {e}")))
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

fn validate(out: &H5adOutput) -> Result<()> {
    let (n, m) = out.x.pattern().shape();
    let ctx = "h5ad output";
    if n > i32::MAX as usize || m > i32::MAX as usize {
        return Err(Error::data(
            ctx,
            format!(
                "X is {n} x {m}; indices are stored as int32, at most 2^31 - 1 rows and columns"
            ),
        ));
    }
    if out.obs.len() != n || out.var.len() != m {
        return Err(Error::data(
            ctx,
            format!(
                "X is {n} x {m} but obs has {} rows and var {}",
                out.obs.len(),
                out.var.len()
            ),
        ));
    }
    for (k, l) in &out.layers {
        if l.shape() != (n, m) {
            return Err(Error::data(
                ctx,
                format!("layer {k} is {:?}, X is {n} x {m}", l.shape()),
            ));
        }
    }
    for (k, a) in &out.obsm {
        if a.nrows() != n {
            return Err(Error::data(
                ctx,
                format!("obsm {k} has {} rows, X has {n}", a.nrows()),
            ));
        }
    }
    for (k, a) in &out.varm {
        if a.nrows() != m {
            return Err(Error::data(
                ctx,
                format!("varm {k} has {} rows, X has {m} columns", a.nrows()),
            ));
        }
    }
    for (k, p) in &out.obsp {
        if p.shape() != (n, n) {
            return Err(Error::data(
                ctx,
                format!("obsp {k} is {:?}, expected {n} x {n}", p.shape()),
            ));
        }
    }
    fn check_uns(k: &str, v: &UnsValue) -> Result<()> {
        match v {
            UnsValue::RecArray(fields) => {
                let len = fields.first().map(|f| f.1.len()).unwrap_or(0);
                if let Some((f, _)) = fields.iter().find(|f| f.1.len() != len) {
                    return Err(Error::data(
                        format!("uns {k}"),
                        format!("record field {f} has a different length from the first field"),
                    ));
                }
                Ok(())
            }
            UnsValue::Dict(items) => items
                .iter()
                .try_for_each(|(kk, vv)| check_uns(&format!("{k}/{kk}"), vv)),
            _ => Ok(()),
        }
    }
    for (k, v) in &out.uns {
        check_uns(k, v)?;
    }
    for (table, names) in [
        (
            "obs",
            out.obs.columns.iter().map(|c| c.0).collect::<Vec<_>>(),
        ),
        (
            "var",
            out.var.columns.iter().map(|c| c.0).collect::<Vec<_>>(),
        ),
    ] {
        let fixed: &[&str] = if table == "obs" {
            &["sample", "condition", "_index"]
        } else {
            &["gene_ids", "feature_types", "_index"]
        };
        if let Some(c) = names.iter().find(|c| fixed.contains(c)) {
            return Err(Error::data(
                ctx,
                format!("{table} column name \"{c}\" is reserved"),
            ));
        }
    }
    Ok(())
}

/// Declares the sparse matrix group `g` (encoding attributes, `shape`) with empty, appendable
/// `data` (`float32`), `indices` (`int32`) and `indptr` (`int32`, or `int64` past 2^31 - 1
/// values), filled by [`fill_csr`] once the file is written.
fn declare_csr(g: &mut GroupBuilder, m: &CsrMatrix, level: Option<u32>) {
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
fn fill_csr(file: &hdf5_pure::File, path: &Path, name: &str, x: &dyn MatrixValues) -> Result<()> {
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

fn string_array(
    g: &mut GroupBuilder,
    name: &str,
    v: &[String],
) -> std::result::Result<(), hdf5_pure::FormatError> {
    let refs: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
    let d = g.create_dataset(name);
    if refs.is_empty() {
        d.with_dtype(Datatype::String {
            size: 1,
            padding: hdf5_pure::StringPadding::NullPad,
            charset: hdf5_pure::CharacterSet::Utf8,
        })
        .with_shape(&[0]);
    } else {
        d.with_vlen_strings(&refs);
    }
    enc_ds(d, "string-array", "0.2.0");
    Ok(())
}

fn write_column(
    g: &mut GroupBuilder,
    name: &str,
    col: &Column,
    level: Option<u32>,
) -> std::result::Result<(), hdf5_pure::FormatError> {
    match col {
        Column::F64(v) => {
            let d = g.create_dataset(name);
            if v.is_empty() {
                d.with_dtype(hdf5_pure::make_f64_type()).with_shape(&[0]);
            } else {
                d.with_f64_data(v);
            }
            enc_ds(d, "array", "0.2.0");
        }
        Column::I64(v) => {
            let d = g.create_dataset(name);
            if v.is_empty() {
                d.with_dtype(hdf5_pure::make_i64_type()).with_shape(&[0]);
            } else {
                d.with_i64_data(v);
            }
            enc_ds(d, "array", "0.2.0");
        }
        Column::Bool(v) => {
            let t = bool_type()?;
            let d = g.create_dataset(name);
            if v.is_empty() {
                d.with_dtype(t).with_shape(&[0]);
            } else {
                let bytes: Vec<u8> = v.iter().map(|&b| b as u8).collect();
                d.with_enum_u8_data(t, &bytes);
            }
            enc_ds(d, "array", "0.2.0");
        }
        Column::Str(v) => string_array(g, name, v)?,
        Column::Categorical { codes, categories } => {
            let mut c = g.create_group(name);
            enc(&mut c, "categorical", "0.2.0");
            c.set_attr("ordered", AttrValue::U8(0));
            string_array(&mut c, "categories", categories)?;
            let d = c.create_dataset("codes");
            if categories.len() <= i8::MAX as usize {
                let v: Vec<i8> = codes.iter().map(|&x| x as i8).collect();
                if v.is_empty() {
                    d.with_dtype(hdf5_pure::make_i8_type()).with_shape(&[0]);
                } else {
                    d.with_i8_data(&v);
                }
            } else if categories.len() <= i16::MAX as usize {
                let v: Vec<i16> = codes.iter().map(|&x| x as i16).collect();
                if v.is_empty() {
                    d.with_dtype(hdf5_pure::make_i16_type()).with_shape(&[0]);
                } else {
                    d.with_i16_data(&v);
                }
            } else {
                let v: Vec<i32> = codes.iter().map(|&x| x as i32).collect();
                d.with_i32_data(&v);
                if let Some(l) = level {
                    d.with_chunks(&[chunk_len(v.len())]).with_deflate(l);
                }
            }
            enc_ds(d, "array", "0.2.0");
            g.add_group(c.finish());
        }
    }
    Ok(())
}

fn write_dataframe(
    g: &mut GroupBuilder,
    index: &[String],
    cols: &[(String, Column)],
    level: Option<u32>,
) -> std::result::Result<(), hdf5_pure::FormatError> {
    enc(g, "dataframe", "0.2.0");
    g.set_attr("_index", AttrValue::String("_index".into()));
    if cols.is_empty() {
        g.set_attr("column-order", AttrValue::F64Array(vec![]));
    } else {
        g.set_attr(
            "column-order",
            AttrValue::VarLenStringArray(cols.iter().map(|c| c.0.clone()).collect()),
        );
    }
    string_array(g, "_index", index)?;
    for (name, col) in cols {
        write_column(g, name, col, level)?;
    }
    Ok(())
}

fn write_uns(
    g: &mut GroupBuilder,
    key: &str,
    v: &UnsValue,
) -> std::result::Result<(), hdf5_pure::FormatError> {
    match v {
        UnsValue::Str(s) => {
            let d = g.create_dataset(key);
            d.with_vlen_strings(&[s.as_str()]).with_shape(&[]);
            enc_ds(d, "string", "0.2.0");
        }
        UnsValue::F64(x) => {
            let d = g.create_dataset(key);
            d.with_f64_data(&[*x]).with_shape(&[]);
            enc_ds(d, "numeric-scalar", "0.2.0");
        }
        UnsValue::I64(x) => {
            let d = g.create_dataset(key);
            d.with_i64_data(&[*x]).with_shape(&[]);
            enc_ds(d, "numeric-scalar", "0.2.0");
        }
        UnsValue::Bool(b) => {
            let t = bool_type()?;
            let d = g.create_dataset(key);
            d.with_enum_u8_data(t, &[*b as u8]).with_shape(&[]);
            enc_ds(d, "numeric-scalar", "0.2.0");
        }
        UnsValue::StrArray(v) => string_array(g, key, v)?,
        UnsValue::F64Array(v) => {
            let d = g.create_dataset(key);
            if v.is_empty() {
                d.with_dtype(hdf5_pure::make_f64_type()).with_shape(&[0]);
            } else {
                d.with_f64_data(v);
            }
            enc_ds(d, "array", "0.2.0");
        }
        UnsValue::I64Array(v) => {
            let d = g.create_dataset(key);
            if v.is_empty() {
                d.with_dtype(hdf5_pure::make_i64_type()).with_shape(&[0]);
            } else {
                d.with_i64_data(v);
            }
            enc_ds(d, "array", "0.2.0");
        }
        UnsValue::RecArray(fields) => {
            let n = fields.first().map(|f| f.1.len()).unwrap_or(0);
            let mut tb = CompoundTypeBuilder::new();
            let mut widths = Vec::with_capacity(fields.len());
            for (name, f) in fields {
                let (t, w) = match f {
                    RecField::Str(v) => {
                        let w = v.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
                        (
                            Datatype::String {
                                size: w as u32,
                                padding: hdf5_pure::StringPadding::NullPad,
                                charset: hdf5_pure::CharacterSet::Ascii,
                            },
                            w,
                        )
                    }
                    RecField::F32(_) => (hdf5_pure::make_f32_type(), 4),
                    RecField::F64(_) => (hdf5_pure::make_f64_type(), 8),
                };
                tb = tb.field(name, t);
                widths.push(w);
            }
            let t = tb.build()?;
            let rec: usize = widths.iter().sum();
            let mut raw = Vec::with_capacity(rec * n);
            for i in 0..n {
                for ((_, f), &w) in fields.iter().zip(&widths) {
                    match f {
                        RecField::Str(v) => {
                            let b = v[i].as_bytes();
                            raw.extend_from_slice(b);
                            raw.extend(std::iter::repeat_n(0u8, w - b.len()));
                        }
                        RecField::F32(v) => raw.extend_from_slice(&v[i].to_le_bytes()),
                        RecField::F64(v) => raw.extend_from_slice(&v[i].to_le_bytes()),
                    }
                }
            }
            let d = g.create_dataset(key);
            d.with_compound_data(t, raw, n as u64);
            enc_ds(d, "rec-array", "0.2.0");
        }
        UnsValue::Dict(items) => {
            let mut c = g.create_group(key);
            enc(&mut c, "dict", "0.1.0");
            for (k, v) in items {
                write_uns(&mut c, k, v)?;
            }
            g.add_group(c.finish());
        }
    }
    Ok(())
}

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
