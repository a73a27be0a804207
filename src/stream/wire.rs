//! The byte encoding of what the workers of a streamed analysis send each other: partial sums of
//! a block of cells, encoded spill segments, shared tables. Little-endian, lengths as `u64`,
//! no padding. Decoding checks every length against the bytes left and fails with
//! [`Error::InvalidData`] on a short or malformed message rather than panicking.
//!
//! The single-process run ([`super::workers::Local`]) hands the values over without encoding;
//! only a run over several workers (`crate::distributed`, feature `distributed`) encodes.

use crate::error::{Error, Result};

/// A value that can be sent to another worker.
pub trait Wire: Sized {
    /// Appends the encoding of `self` to `out`.
    fn put(&self, out: &mut Vec<u8>);
    /// Decodes a value from the front of `r`.
    fn get(r: &mut Reader<'_>) -> Result<Self>;

    /// The name under which the bytes of this value are reported when it is sent as an
    /// addressed part of a pass ([`super::ExchangeReport`]); `None`: the pass's name.
    fn report_as(&self) -> Option<&'static str> {
        None
    }

    /// The encoding of `self` as a new buffer.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.put(&mut out);
        out
    }

    /// Decodes a whole message (every byte must be used).
    fn from_bytes(b: &[u8]) -> Result<Self> {
        let mut r = Reader { b, at: 0 };
        let v = Self::get(&mut r)?;
        if r.at != b.len() {
            return Err(malformed(format!(
                "{} bytes left over after a message",
                b.len() - r.at
            )));
        }
        Ok(v)
    }
}

/// Reads a message front to back.
#[derive(Debug)]
pub struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                malformed(format!(
                    "{n} bytes wanted at {} of a {}-byte message",
                    self.at,
                    self.b.len()
                ))
            })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A length, checked against the bytes left (each element takes at least `min_size`).
    fn len(&mut self, min_size: usize) -> Result<usize> {
        let n = u64::get(self)?;
        let left = (self.b.len() - self.at) as u64;
        if n.saturating_mul(min_size as u64) > left {
            return Err(malformed(format!(
                "length {n} exceeds the {left} bytes left"
            )));
        }
        Ok(n as usize)
    }
}

fn malformed(msg: String) -> Error {
    Error::data("message between workers", msg)
}

macro_rules! wire_number {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(r: &mut Reader<'_>) -> Result<Self> {
                Ok(<$t>::from_le_bytes(r.array()?))
            }
        }
    )*};
}
wire_number!(u8, u32, u64, f32, f64);

impl Wire for usize {
    fn put(&self, out: &mut Vec<u8>) {
        (*self as u64).put(out)
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        usize::try_from(u64::get(r)?).map_err(|_| malformed("index too large".into()))
    }
}

impl Wire for bool {
    fn put(&self, out: &mut Vec<u8>) {
        (*self as u8).put(out)
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        match u8::get(r)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(malformed(format!("{b} is not a boolean"))),
        }
    }
}

impl Wire for () {
    fn put(&self, _: &mut Vec<u8>) {}
    fn get(_: &mut Reader<'_>) -> Result<Self> {
        Ok(())
    }
}

impl Wire for String {
    fn put(&self, out: &mut Vec<u8>) {
        self.len().put(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let n = r.len(1)?;
        String::from_utf8(r.take(n)?.to_vec()).map_err(|e| malformed(e.to_string()))
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        self.len().put(out);
        for v in self {
            v.put(out);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        // Each element takes at least one byte unless it is zero-sized.
        let n = r.len(usize::from(std::mem::size_of::<T>() > 0))?;
        let mut v = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            v.push(T::get(r)?);
        }
        Ok(v)
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => 0u8.put(out),
            Some(v) => {
                1u8.put(out);
                v.put(out)
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        Ok(if bool::get(r)? {
            Some(T::get(r)?)
        } else {
            None
        })
    }
}

impl<T: Wire + Copy + Default, const N: usize> Wire for [T; N] {
    fn put(&self, out: &mut Vec<u8>) {
        for v in self {
            v.put(out);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let mut a = [T::default(); N];
        for v in a.iter_mut() {
            *v = T::get(r)?;
        }
        Ok(a)
    }
}

macro_rules! wire_tuple {
    ($($n:ident),*) => {
        impl<$($n: Wire),*> Wire for ($($n,)*) {
            #[allow(non_snake_case)]
            fn put(&self, out: &mut Vec<u8>) {
                let ($($n,)*) = self;
                $($n.put(out);)*
            }
            fn get(r: &mut Reader<'_>) -> Result<Self> {
                Ok(($($n::get(r)?,)*))
            }
        }
    };
}
wire_tuple!(A, B);
wire_tuple!(A, B, C);
wire_tuple!(A, B, C, D);
wire_tuple!(A, B, C, D, E);

#[cfg(test)]
mod tests {
    use super::*;

    type Sample = (
        Vec<(f64, u32, f64, f64)>,
        Vec<[f64; 3]>,
        Option<String>,
        bool,
    );

    #[test]
    fn round_trips_and_rejects_short_messages() {
        let v: Sample = (
            vec![(1.5, 7, -0.0, f64::MAX)],
            vec![[1.0, 2.0, 3.0], [f64::MIN_POSITIVE, 0.0, -1.0]],
            Some("gène".to_string()),
            true,
        );
        let b = v.to_bytes();
        assert_eq!(Wire::from_bytes(&b).ok(), Some(v.clone()));
        for cut in 0..b.len() {
            assert!(Sample::from_bytes(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(Sample::from_bytes(&long).is_err());
        // A huge length is refused before any allocation.
        let mut huge = Vec::new();
        u64::MAX.put(&mut huge);
        assert!(Vec::<u64>::from_bytes(&huge).is_err());
    }
}
