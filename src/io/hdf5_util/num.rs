//! Element types: the numbers we read into ([`Num`], with checked conversions) and the stored
//! element kinds the fast path decodes.

use hdf5_pure::{DType, Datatype, DatatypeByteOrder};

/// A numeric element type we read into.
pub(crate) trait Num: Copy + Default + Send + Sync + 'static {
    /// Converts an integer; `None` when out of range.
    fn from_i64(v: i64) -> Option<Self>;
    /// Converts an unsigned integer; `None` when out of range.
    fn from_u64(v: u64) -> Option<Self>;
    /// Converts a float; `None` when it cannot be represented (e.g. negative for unsigned).
    fn from_f64(v: f64) -> Option<Self>;
}

impl Num for f32 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f32)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f32)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v as f32)
    }
}
impl Num for f64 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}
macro_rules! int_num {
    ($t:ty) => {
        impl Num for $t {
            fn from_i64(v: i64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_u64(v: u64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_f64(v: f64) -> Option<Self> {
                if v.fract() == 0.0 && v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64 {
                    Some(v as $t)
                } else {
                    None
                }
            }
        }
    };
}
int_num!(u16);
int_num!(u32);
int_num!(i32);
int_num!(i64);
int_num!(u64);
int_num!(usize);

/// Stored element kinds the fast path decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl Kind {
    pub(super) fn from_dtype(d: &DType) -> Option<Kind> {
        Some(match d {
            DType::I8 => Kind::I8,
            DType::U8 => Kind::U8,
            DType::I16 => Kind::I16,
            DType::U16 => Kind::U16,
            DType::I32 => Kind::I32,
            DType::U32 => Kind::U32,
            DType::I64 => Kind::I64,
            DType::U64 => Kind::U64,
            DType::F32 => Kind::F32,
            DType::F64 => Kind::F64,
            _ => return None,
        })
    }
    pub(super) fn size(self) -> usize {
        match self {
            Kind::I8 | Kind::U8 => 1,
            Kind::I16 | Kind::U16 => 2,
            Kind::I32 | Kind::U32 | Kind::F32 => 4,
            Kind::I64 | Kind::U64 | Kind::F64 => 8,
        }
    }
    /// Decodes little-endian `bytes` (a whole number of elements) into `out`.
    /// Returns the index of the first element that does not fit `T`.
    pub(super) fn decode<T: Num>(
        self,
        bytes: &[u8],
        out: &mut [T],
    ) -> std::result::Result<(), usize> {
        macro_rules! go {
            ($n:expr, $ty:ty, $conv:ident, $wide:ty) => {
                for (i, (o, b)) in out.iter_mut().zip(bytes.chunks_exact($n)).enumerate() {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(b);
                    *o = T::$conv(<$ty>::from_le_bytes(a) as $wide).ok_or(i)?;
                }
            };
        }
        match self {
            Kind::I8 => go!(1, i8, from_i64, i64),
            Kind::U8 => go!(1, u8, from_u64, u64),
            Kind::I16 => go!(2, i16, from_i64, i64),
            Kind::U16 => go!(2, u16, from_u64, u64),
            Kind::I32 => go!(4, i32, from_i64, i64),
            Kind::U32 => go!(4, u32, from_u64, u64),
            Kind::I64 => go!(8, i64, from_i64, i64),
            Kind::U64 => go!(8, u64, from_u64, u64),
            Kind::F32 => go!(4, f32, from_f64, f64),
            Kind::F64 => go!(8, f64, from_f64, f64),
        }
        Ok(())
    }
}

pub(super) fn little_endian(dt: &Datatype) -> bool {
    match dt {
        Datatype::FixedPoint { byte_order, .. } | Datatype::FloatingPoint { byte_order, .. } => {
            *byte_order == DatatypeByteOrder::LittleEndian
        }
        _ => false,
    }
}
