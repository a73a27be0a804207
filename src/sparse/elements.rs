//! The element types a [`CsrMatrix`](super::CsrMatrix) stores: column indices
//! ([`ColIndex`]: `u32`, or `u16` for at most 65,536 columns) and values ([`StoredValue`]:
//! `f32`, or `u16` for integer counts below 65,536).

use std::fmt::Debug;

/// A column index type.
pub trait ColIndex: Copy + Ord + Send + Sync + Debug + Default + 'static {
    /// Number of columns the type can index (its largest value plus one).
    const LIMIT: usize;
    /// The index as `usize`.
    fn ix(self) -> usize;
    /// The index `c` (`c < LIMIT`, not checked in release builds).
    fn from_ix(c: usize) -> Self;
}

macro_rules! col_index {
    ($t:ty) => {
        impl ColIndex for $t {
            const LIMIT: usize = <$t>::MAX as usize + 1;
            #[inline(always)]
            fn ix(self) -> usize {
                self as usize
            }
            #[inline(always)]
            fn from_ix(c: usize) -> Self {
                debug_assert!(c < Self::LIMIT);
                c as $t
            }
        }
    };
}
col_index!(u32);
col_index!(u16);

/// A stored value type; every value is read as the `f32` it stands for (exactly, for `u16`).
pub trait StoredValue: Copy + PartialEq + Send + Sync + Debug + Default + 'static {
    /// The value as `f32`.
    fn to_f32(self) -> f32;
    /// The value as an index into a table of the values of small integer counts: the integer
    /// when the value is one (as `f32`, equal to it), else `usize::MAX`.
    fn count_index(self) -> usize;
}

impl StoredValue for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn count_index(self) -> usize {
        let k = self as usize;
        if k as f32 == self {
            k
        } else {
            usize::MAX
        }
    }
}

impl StoredValue for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn count_index(self) -> usize {
        self as usize
    }
}
