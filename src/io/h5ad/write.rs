//! The `.h5ad` writer.

use super::super::hdf5_util::{self, chunk_len};
use crate::dataset::{CellTable, Column, GeneTable};
use crate::error::{Error, Result};
use crate::lognorm::MatrixValues;
use crate::sparse::CsrMatrix;
use hdf5_pure::{
    AttrValue, CompoundTypeBuilder, Datatype, EnumTypeBuilder, FileBuilder, GroupBuilder,
};
use ndarray::ArrayView2;
use std::path::Path;
use std::str::FromStr;

/// How [`write_h5ad`] stores the arrays of the sparse matrices (`X`, `layers`, `obsp`) and
/// large categorical codes.
///
/// Measured on the 50,000 x 20,000 simulated run (125 million stored values, 2 cores):
/// uncompressed, the file is about 2 GB and written at the speed of the disk; gzip level 4
/// makes it about 4x smaller but compresses on one thread (`hdf5-pure` encodes appended
/// chunks one after the other under its file lock and has no public entry for chunks
/// compressed elsewhere), many times longer than the analysis' slowest step. anndata's own
/// default is no compression too (`AnnData.write_h5ad(compression=None)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum H5adCompression {
    /// No filter (anndata's default), chunks of up to 65,535 elements (larger chunk
    /// dimensions are written with an encoding HDF5 2.0 / h5py 3.16 reject). The default.
    #[default]
    None,
    /// Byte shuffle then gzip (deflate) at this level, 0-9, in chunks of up to 65,535
    /// elements (anndata's `compression="gzip"` with h5py's shuffle).
    Gzip(u32),
}

impl H5adCompression {
    /// Checks the gzip level (0-9).
    pub fn validate(&self) -> Result<()> {
        match *self {
            H5adCompression::Gzip(l) if l > 9 => Err(Error::option(
                "h5ad_compression",
                format!("gzip level {l} is not in 0..=9"),
            )),
            _ => Ok(()),
        }
    }

    /// The gzip level, `None` when uncompressed.
    pub fn gzip_level(&self) -> Option<u32> {
        match *self {
            H5adCompression::None => None,
            H5adCompression::Gzip(l) => Some(l),
        }
    }
}

impl FromStr for H5adCompression {
    type Err = Error;

    /// Reads `none`, `gzip` (level 4, h5py's default) or `gzip:LEVEL`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::option(
                "h5ad_compression",
                format!("{s:?} is not none, gzip or gzip:LEVEL (0-9)"),
            )
        };
        let c = match s.trim() {
            "none" => H5adCompression::None,
            "gzip" => H5adCompression::Gzip(4),
            t => match t.strip_prefix("gzip:") {
                Some(l) => H5adCompression::Gzip(l.parse().map_err(|_| bad())?),
                None => return Err(bad()),
            },
        };
        c.validate()?;
        Ok(c)
    }
}

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
    /// Storage of the sparse matrices' arrays. Default: [`H5adCompression::None`].
    pub compression: H5adCompression,
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
            compression: H5adCompression::default(),
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
/// through `hdf5-pure`'s buffered appender (compressing chunk by chunk on this thread when
/// [`H5adOutput::compression`] asks for gzip), so no copy of a matrix is made.
///
/// Shapes are checked first (layers like `X`; `obsm` rows = cells; `varm` rows = genes;
/// `obsp` cells x cells; record-array fields of equal length): a mismatch is
/// [`Error::InvalidData`] and nothing is written.
pub fn write_h5ad(out: &H5adOutput, path: &Path) -> Result<()> {
    out.compression.validate()?;
    validate(out)?;
    let fbe = |obj: &str| {
        let obj = obj.to_string();
        move |e: hdf5_pure::FormatError| Error::hdf5(path, obj.clone(), e)
    };
    let mut fb = FileBuilder::new();
    fb.set_attr("encoding-type", AttrValue::String("anndata".into()));
    fb.set_attr("encoding-version", AttrValue::String("0.1.0".into()));
    let level = out.compression.gzip_level();

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
