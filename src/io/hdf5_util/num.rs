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
    /// `v` as `Self` (an `as` cast) and whether [`Num::from_i64`] accepts it, without a branch,
    /// so that a loop over many values vectorizes; the cast is `from_i64(v)` when accepted.
    fn cast_i64(v: i64) -> (Self, bool);
    /// [`Num::cast_i64`] for [`Num::from_u64`].
    fn cast_u64(v: u64) -> (Self, bool);
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
    fn cast_i64(v: i64) -> (Self, bool) {
        (v as f32, true)
    }
    fn cast_u64(v: u64) -> (Self, bool) {
        (v as f32, true)
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
    fn cast_i64(v: i64) -> (Self, bool) {
        (v as f64, true)
    }
    fn cast_u64(v: u64) -> (Self, bool) {
        (v as f64, true)
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
            fn cast_i64(v: i64) -> (Self, bool) {
                // in range exactly when the value survives the round trip
                (v as $t, v as $t as i64 == v && (v >= 0 || <$t>::MIN != 0))
            }
            fn cast_u64(v: u64) -> (Self, bool) {
                (v as $t, v as $t as u64 == v && (v as $t >= <$t>::default()))
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
        // Integers: every value cast and its range test folded into one flag, with no branch
        // in the loop (which then vectorizes); the first value out of range is looked for only
        // when the flag says there is one.
        macro_rules! cast {
            ($n:expr, $ty:ty, $conv:ident, $wide:ty) => {{
                let mut ok = true;
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact($n)) {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(b);
                    let (v, fits) = T::$conv(<$ty>::from_le_bytes(a) as $wide);
                    *o = v;
                    ok &= fits;
                }
                if !ok {
                    let first = bytes.chunks_exact($n).position(|b| {
                        let mut a = [0u8; $n];
                        a.copy_from_slice(b);
                        !T::$conv(<$ty>::from_le_bytes(a) as $wide).1
                    });
                    return Err(first.unwrap_or(0));
                }
            }};
        }
        macro_rules! go {
            ($n:expr, $ty:ty) => {
                for (i, (o, b)) in out.iter_mut().zip(bytes.chunks_exact($n)).enumerate() {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(b);
                    *o = T::from_f64(<$ty>::from_le_bytes(a) as f64).ok_or(i)?;
                }
            };
        }
        match self {
            Kind::I8 => cast!(1, i8, cast_i64, i64),
            Kind::U8 => cast!(1, u8, cast_u64, u64),
            Kind::I16 => cast!(2, i16, cast_i64, i64),
            Kind::U16 => cast!(2, u16, cast_u64, u64),
            Kind::I32 => cast!(4, i32, cast_i64, i64),
            Kind::U32 => cast!(4, u32, cast_u64, u64),
            Kind::I64 => cast!(8, i64, cast_i64, i64),
            Kind::U64 => cast!(8, u64, cast_u64, u64),
            Kind::F32 => go!(4, f32),
            Kind::F64 => go!(8, f64),
        }
        Ok(())
    }

    /// [`Kind::decode`] of elements `skip..skip + out.len()` of the `n` elements whose bytes
    /// the HDF5 shuffle filter stored as byte planes (byte `b` of element `i` at
    /// `bytes[b * n + i]`), read from the planes directly: the same values and errors as
    /// undoing the shuffle first, without writing the reordered bytes. `bytes` holds at least
    /// `n * self.size()` bytes and `skip + out.len() <= n`.
    pub(super) fn decode_shuffled<T: Num>(
        self,
        bytes: &[u8],
        n: usize,
        skip: usize,
        out: &mut [T],
    ) -> std::result::Result<(), usize> {
        let len = out.len();
        // Element `i` of `E` bytes from the planes, converted by `conv` (the value and whether
        // it is accepted); as in `decode`, one flag for the whole slice.
        macro_rules! planes {
            ($e:expr, $conv:expr) => {{
                let p: [&[u8]; $e] =
                    std::array::from_fn(|b| &bytes[b * n + skip..b * n + skip + len]);
                let conv = $conv;
                let value = |i: usize| -> (T, bool) {
                    let mut v = 0u64;
                    for (b, plane) in p.iter().enumerate() {
                        v |= u64::from(plane[i]) << (8 * b);
                    }
                    conv(v)
                };
                let mut ok = true;
                for (i, o) in out.iter_mut().enumerate() {
                    let (v, fits) = value(i);
                    *o = v;
                    ok &= fits;
                }
                if !ok {
                    return Err((0..len).position(|i| !value(i).1).unwrap_or(0));
                }
                Ok(())
            }};
        }
        let float = |x: f64| T::from_f64(x).map_or((T::default(), false), |t| (t, true));
        match self {
            Kind::I8 => planes!(1, |v: u64| T::cast_i64(v as u8 as i8 as i64)),
            Kind::U8 => planes!(1, T::cast_u64),
            Kind::I16 => planes!(2, |v: u64| T::cast_i64(v as u16 as i16 as i64)),
            Kind::U16 => planes!(2, T::cast_u64),
            Kind::I32 => planes!(4, |v: u64| T::cast_i64(v as u32 as i32 as i64)),
            Kind::U32 => planes!(4, T::cast_u64),
            Kind::I64 => planes!(8, |v: u64| T::cast_i64(v as i64)),
            Kind::U64 => planes!(8, T::cast_u64),
            Kind::F32 => planes!(4, |v: u64| float(f32::from_bits(v as u32) as f64)),
            Kind::F64 => planes!(8, |v: u64| float(f64::from_bits(v))),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The element-by-element conversion [`Kind::decode`] stands for.
    fn one_by_one<T: Num>(kind: Kind, bytes: &[u8]) -> std::result::Result<Vec<T>, usize> {
        let n = kind.size();
        bytes
            .chunks_exact(n)
            .enumerate()
            .map(|(i, b)| {
                let mut a = [0u8; 8];
                a[..n].copy_from_slice(b);
                let signed = |bits: u32| {
                    let s = 64 - bits;
                    (i64::from_le_bytes(a) << s) >> s
                };
                let v = match kind {
                    Kind::I8 => T::from_i64(signed(8)),
                    Kind::I16 => T::from_i64(signed(16)),
                    Kind::I32 => T::from_i64(signed(32)),
                    Kind::I64 => T::from_i64(signed(64)),
                    Kind::U8 | Kind::U16 | Kind::U32 | Kind::U64 => {
                        T::from_u64(u64::from_le_bytes(a))
                    }
                    Kind::F32 => T::from_f64(f32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64),
                    Kind::F64 => T::from_f64(f64::from_le_bytes(a)),
                };
                v.ok_or(i)
            })
            .collect()
    }

    fn check<T: Num + PartialEq + std::fmt::Debug>(kind: Kind, bytes: &[u8]) {
        let mut out = vec![T::default(); bytes.len() / kind.size()];
        let got = kind.decode(bytes, &mut out).map(|()| out);
        assert_eq!(got, one_by_one::<T>(kind, bytes), "{kind:?}");
    }

    /// `bytes` (whole elements of `e` bytes) as the shuffle filter stores them: byte planes.
    fn shuffled(bytes: &[u8], e: usize) -> Vec<u8> {
        let n = bytes.len() / e;
        let mut out = vec![0u8; bytes.len()];
        for i in 0..n {
            for b in 0..e {
                out[b * n + i] = bytes[i * e + b];
            }
        }
        out
    }

    fn check_shuffled<T: Num + PartialEq + std::fmt::Debug>(kind: Kind, bytes: &[u8]) {
        let e = kind.size();
        let n = bytes.len() / e;
        let planes = shuffled(bytes, e);
        for (skip, len) in [(0, n), (0, n / 2), (n / 3, n - n / 3), (n / 4, n / 2)] {
            let mut want = vec![T::default(); len];
            let want = kind
                .decode(&bytes[skip * e..(skip + len) * e], &mut want)
                .map(|()| want);
            let mut got = vec![T::default(); len];
            let got = kind
                .decode_shuffled(&planes, n, skip, &mut got)
                .map(|()| got);
            assert_eq!(got, want, "{kind:?} skip {skip} len {len}");
        }
    }

    #[test]
    fn decode_and_decode_shuffled_convert_and_find_the_first_value_out_of_range() {
        // Values at and around every type's limits, in each stored width; each list also with
        // its elements in reverse so that a bad value is sometimes first, sometimes last.
        let edges: Vec<i128> = vec![
            0,
            1,
            -1,
            255,
            256,
            -128,
            -129,
            65_535,
            65_536,
            -32_768,
            i32::MAX as i128,
            i32::MIN as i128,
            u32::MAX as i128,
            u32::MAX as i128 + 1,
            i64::MAX as i128,
            i64::MIN as i128,
            u64::MAX as i128,
        ];
        for kind in [
            Kind::I8,
            Kind::U8,
            Kind::I16,
            Kind::U16,
            Kind::I32,
            Kind::U32,
            Kind::I64,
            Kind::U64,
            Kind::F32,
            Kind::F64,
        ] {
            let n = kind.size();
            let mut bytes: Vec<u8> = Vec::new();
            for &e in &edges {
                let b = match kind {
                    Kind::F32 => (e as f32).to_le_bytes().to_vec(),
                    Kind::F64 => (e as f64).to_le_bytes().to_vec(),
                    _ => e.to_le_bytes()[..n].to_vec(),
                };
                bytes.extend(b);
            }
            let elems: Vec<&[u8]> = bytes.chunks_exact(n).collect();
            for cut in 0..=elems.len() {
                for list in [
                    elems[..cut].concat(),
                    elems[..cut]
                        .iter()
                        .rev()
                        .copied()
                        .collect::<Vec<_>>()
                        .concat(),
                ] {
                    check_shuffled::<u16>(kind, &list);
                    check_shuffled::<u32>(kind, &list);
                    check_shuffled::<i64>(kind, &list);
                    check_shuffled::<f32>(kind, &list);
                    check::<u16>(kind, &list);
                    check::<u32>(kind, &list);
                    check::<i32>(kind, &list);
                    check::<i64>(kind, &list);
                    check::<u64>(kind, &list);
                    check::<usize>(kind, &list);
                    check::<f32>(kind, &list);
                    check::<f64>(kind, &list);
                }
            }
        }
    }
}
