//! The AnnData elements written inside the groups of an `.h5ad` file: encoding attributes,
//! string arrays, data frames and their columns, and the `uns` tree.

use super::{RecField, UnsValue};
use crate::dataset::Column;
use crate::io::hdf5_util::chunk_len;
use hdf5_pure::{AttrValue, CompoundTypeBuilder, Datatype, EnumTypeBuilder, GroupBuilder};

pub(super) fn enc(g: &mut GroupBuilder, ty: &str, version: &str) {
    g.set_attr("encoding-type", AttrValue::String(ty.into()));
    g.set_attr("encoding-version", AttrValue::String(version.into()));
}

pub(super) fn enc_ds(d: &mut hdf5_pure::DatasetBuilder, ty: &str, version: &str) {
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

pub(super) fn write_dataframe(
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

pub(super) fn write_uns(
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
