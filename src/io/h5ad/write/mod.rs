//! The `.h5ad` writer.

mod contiguous;
mod csr;
mod direct;
mod elements;

use super::super::hdf5_util;
use crate::dataset::{CellTable, Column, GeneTable};
use crate::error::{Error, Result};
use crate::lognorm::MatrixValues;
use crate::sparse::CsrMatrix;
use contiguous::HoleWriter;
use csr::{declare_csr, fill_csr, fill_csr_contiguous};
use direct::RegionFiller;
use elements::{enc, enc_ds, write_dataframe, write_uns};
use hdf5_pure::{AttrValue, FileBuilder};
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
    /// No filter (anndata's default): the arrays of the sparse matrices are contiguous
    /// datasets (as h5py stores an uncompressed dataset), written in place. The default.
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
    pub layers: Vec<(String, &'a dyn MatrixValues)>,
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

/// Writes `out` as an `.h5ad` file (AnnData 0.12 layout; see the module docs), under a
/// temporary name in the same folder, renamed into place when complete.
///
/// Memory: no copy of a matrix is made. Uncompressed (the default), the arrays of the
/// sparse matrices (`X`, `layers`, `obsp`) are contiguous datasets: the file is streamed
/// out with zero placeholders in their place (left as holes, costing neither memory nor
/// writes) and their bytes are then written into those regions with positioned writes of
/// about 8 MB, straight from the matrices' arrays (the log values of `X` computed a piece
/// at a time); see the `contiguous` module. The file is not synchronized to disk (h5py does
/// not either). With gzip, the arrays are declared empty (chunked by up to 65,535
/// elements, extendable), the file is reopened and each array appended a bounded piece at
/// a time through `hdf5-pure`'s buffered appender, compressing chunk by chunk on this
/// thread.
///
/// Shapes are checked first (layers like `X`; `obsm` rows = cells; `varm` rows = genes;
/// `obsp` cells x cells; record-array fields of equal length): a mismatch is
/// [`Error::InvalidData`] and nothing is written.
pub fn write_h5ad(out: &H5adOutput, path: &Path) -> Result<()> {
    let tmp = write_temporary(out, path)?;
    rename_into_place(&tmp, path)
}

/// An `.h5ad` file written by [`write_h5ad_pending`] but for the values of some `obsm` arrays,
/// under its temporary name until [`finish`](Self::finish) writes them and renames it into
/// place (the temporary file is removed if it is dropped unfinished).
#[derive(Debug)]
pub struct PendingH5ad {
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    /// name, offset of its values in the file, rows, columns
    slots: Vec<(String, u64, usize, usize)>,
    done: bool,
}

/// [`write_h5ad`] with the values of the `obsm` arrays named in `later` left for
/// [`PendingH5ad::finish`]: `out` holds placeholders of their final shape (zeros, say), and
/// the file's layout depends only on shapes, so the finished file has the bytes
/// [`write_h5ad`] writes with the final values. The rest of the file can then be written
/// while those values are still being computed. Errors as [`write_h5ad`], and for a name
/// in `later` that is not in `out.obsm`.
pub fn write_h5ad_pending(out: &H5adOutput, path: &Path, later: &[&str]) -> Result<PendingH5ad> {
    let mut shapes = Vec::with_capacity(later.len());
    for &name in later {
        match out.obsm.iter().find(|(n, _)| n == name) {
            Some((_, a)) => shapes.push((name, a.nrows(), a.ncols())),
            None => {
                return Err(Error::option(
                    "later",
                    format!("obsm {name:?} is not among the arrays to write"),
                ))
            }
        }
    }
    let tmp = write_temporary(out, path)?;
    let mut pending = PendingH5ad {
        tmp,
        path: path.to_path_buf(),
        slots: Vec::new(),
        done: false,
    };
    let file = hdf5_util::open(&pending.tmp)?;
    for (name, rows, cols) in shapes {
        let at = contiguous::region(&file, path, &format!("obsm/{name}"), 4 * rows * cols)?;
        pending.slots.push((name.to_string(), at, rows, cols));
    }
    Ok(pending)
}

impl PendingH5ad {
    /// Writes the values of the arrays left for later (each name once, each of the shape it was
    /// declared with, as `float32` row after row) and renames the file into place.
    pub fn finish(mut self, values: &[(&str, ArrayView2<f32>)]) -> Result<()> {
        let err = |m: String| Error::data("h5ad output", m);
        if values.len() != self.slots.len() {
            return Err(err(format!(
                "{} arrays given for the {} left to write",
                values.len(),
                self.slots.len()
            )));
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.tmp)
            .map_err(|e| Error::io(&self.path, e))?;
        for (name, at, rows, cols) in &self.slots {
            let a = match values.iter().find(|(n, _)| n == name) {
                Some((_, a)) if a.dim() == (*rows, *cols) => a,
                Some((_, a)) => {
                    return Err(err(format!(
                        "obsm {name} is {:?}, declared {rows} x {cols}",
                        a.dim()
                    )))
                }
                None => return Err(err(format!("no values for obsm {name}"))),
            };
            let bytes: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
            direct::write_at(&f, &bytes, *at).map_err(|e| Error::io(&self.path, e))?;
        }
        drop(f);
        self.done = true;
        rename_into_place(&self.tmp, &self.path)
    }
}

impl Drop for PendingH5ad {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Renames the finished temporary file into place (removed on failure).
fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        Error::io(path, e)
    })
}

/// Writes `out` under the temporary name of `path` and returns that name (see [`write_h5ad`]).
fn write_temporary(out: &H5adOutput, path: &Path) -> Result<std::path::PathBuf> {
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

    // The large arrays of the sparse matrices are filled once the rest is written.
    let mut g = fb.create_group("X");
    let x = out.x;
    let mut sparse = vec![("/X".to_string(), x, declare_csr(&mut g, x, level))];
    fb.add_group(g.finish());

    let mut layers = fb.create_group("layers");
    enc(&mut layers, "dict", "0.1.0");
    for (name, m) in &out.layers {
        let mut g = layers.create_group(name);
        let v: &dyn MatrixValues = *m;
        let pending = declare_csr(&mut g, v, level);
        layers.add_group(g.finish());
        sparse.push((format!("/layers/{name}"), v, pending));
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
        let v: &dyn MatrixValues = *m;
        let pending = declare_csr(&mut g, v, level);
        obsp.add_group(g.finish());
        sparse.push((format!("/obsp/{name}"), v, pending));
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
    let written = if level.is_some() {
        fb.write(&tmp)
            .map_err(|e| Error::hdf5(path, "/", format!("write failed: {e}")))
            .and_then(|()| {
                let file = hdf5_util::open_for_append(&tmp, path)?;
                for (name, v, _) in &sparse {
                    fill_csr(&file, path, name, *v)?;
                }
                file.close()
                    .map_err(|e| Error::hdf5(path, "/", format!("write failed: {e}")))
            })
    } else {
        write_contiguous(fb, &tmp, path, &sparse)
    };
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// The uncompressed file: streamed through a [`HoleWriter`] with the large arrays as
/// placeholders, which are then written in place (see [`contiguous`]).
fn write_contiguous(
    fb: FileBuilder,
    tmp: &Path,
    path: &Path,
    sparse: &[(String, &dyn MatrixValues, csr::Pending)],
) -> Result<()> {
    let f = std::fs::File::create(tmp).map_err(|e| Error::io(path, e))?;
    let zeros = sparse.iter().flat_map(|(_, _, p)| p.placeholders());
    let mut w = HoleWriter::with_known_zeros(f, zeros.map(|(_, z)| z).collect());
    fb.finish_to(&mut w)
        .map_err(|e| Error::hdf5(path, "/", format!("write failed: {e}")))?;
    let skipped = w.finish().map_err(|e| Error::io(path, e))?;
    let file = hdf5_util::open(tmp)?;
    // Every write left unwritten as a placeholder must lie in a region filled below.
    let mut regions = Vec::new();
    for (name, _, pending) in sparse {
        for (array, z) in pending.placeholders() {
            let at = contiguous::region(&file, path, &format!("{name}/{array}"), z.len())?;
            regions.push((at, z.len()));
        }
    }
    let filled = |&(at, n): &(u64, usize)| {
        regions
            .iter()
            .any(|&(r, m)| at >= r && at + n as u64 <= r + m as u64)
    };
    if let Some(&(at, n)) = skipped.iter().find(|s| !filled(s)) {
        return Err(Error::hdf5(
            path,
            "/",
            format!("{n} bytes at offset {at} were left unwritten outside the arrays to fill"),
        ));
    }
    let mut out = RegionFiller::open(tmp, path, true)?;
    for (name, v, pending) in sparse {
        fill_csr_contiguous(&file, &mut out, path, name, *v, *pending)?;
    }
    out.close()
}

fn validate(out: &H5adOutput) -> Result<()> {
    let (n, m) = out.x.shape();
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
