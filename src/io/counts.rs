//! The integer-count check every reader applies: the analysis starts from raw UMI counts
//! (non-negative integers), and a matrix of anything else (log-normalized, scaled, normalized
//! values) run through it would be normalized and logged a second time without a word.
//!
//! A value is an integer when `v.fract() == 0` exactly (f32 as stored; counts written as
//! floats by anndata or Cell Ranger are exact integers). NaN and infinities are never counts.
//! Data that really are non-integer counts (ambient-corrected counts from SoupX or CellBender,
//! expected counts from a pseudo-aligner) are read with `ReadOptions::assume_counts`, which
//! still refuses negative and non-finite values (they are never counts).

use crate::sparse::{with_counts, Counts, StoredValue};
use rayon::prelude::*;

/// Whether the finite `v` has no fractional part (`v.fract() == 0`) in plain arithmetic
/// that vectorizes (no `trunc` call, no saturating conversion): from 2^23 up every `f32` is
/// an integer, and below it adding 2^23 rounds `|v|` to the nearest integer (the result lies
/// in `[2^23, 2^24]`, where the spacing of `f32` is 1), so subtracting it back gives `|v|`
/// exactly when `|v|` is one.
#[inline]
pub(crate) fn is_integer(v: f32) -> bool {
    const TWO_23: f32 = 8_388_608.0;
    let a = v.abs();
    (a >= TWO_23) | ((a + TWO_23) - TWO_23 == a)
}

/// What the stored values of a matrix hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueSummary {
    /// Stored values examined.
    pub n_values: usize,
    /// Values below zero.
    pub n_negative: usize,
    /// Finite values with a fractional part.
    pub n_non_integer: usize,
    /// NaN or infinite values.
    pub n_non_finite: usize,
    /// Smallest finite value (`+inf` when there is none).
    pub min: f32,
    /// Largest finite value (`-inf` when there is none).
    pub max: f32,
}

impl Default for ValueSummary {
    fn default() -> Self {
        ValueSummary {
            n_values: 0,
            n_negative: 0,
            n_non_integer: 0,
            n_non_finite: 0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }
}

impl ValueSummary {
    /// The summary of `values`: fixed pieces summarised in parallel and merged in order, so
    /// the result does not depend on the thread count.
    pub fn of(values: &[f32]) -> ValueSummary {
        Self::of_values(values)
    }

    /// [`of`](Self::of) the stored counts of either layout.
    pub fn of_counts(counts: &Counts) -> ValueSummary {
        with_counts!(counts, m => Self::of_values(m.data()))
    }

    fn of_values<V: StoredValue>(values: &[V]) -> ValueSummary {
        let parts: Vec<ValueSummary> = values.par_chunks(1 << 16).map(Self::of_piece).collect();
        let mut s = ValueSummary::default();
        for p in &parts {
            s.merge(p);
        }
        s
    }

    /// The summary of one piece, without a branch per value: eight lanes of counts and
    /// extremes (counts of at most 2^32 - 1 values), merged at the end (the counts and
    /// extremes do not depend on the order). NaN and infinities count only as non-finite.
    fn of_piece<V: StoredValue>(values: &[V]) -> ValueSummary {
        const L: usize = 8;
        let mut lo = [f32::INFINITY; L];
        let mut hi = [f32::NEG_INFINITY; L];
        let (mut negative, mut fraction, mut non_finite) = ([0u32; L], [0u32; L], [0u32; L]);
        let mut add = |l: usize, v: f32| {
            let finite = v.abs() <= f32::MAX;
            non_finite[l] += u32::from(!finite);
            let low = if finite { v } else { f32::INFINITY };
            let high = if finite { v } else { f32::NEG_INFINITY };
            lo[l] = if low < lo[l] { low } else { lo[l] };
            hi[l] = if high > hi[l] { high } else { hi[l] };
            negative[l] += u32::from(finite & (v < 0.0));
            fraction[l] += u32::from(finite & !is_integer(v));
        };
        let mut chunks = values.chunks_exact(L);
        for c in &mut chunks {
            for (l, &v) in c.iter().enumerate() {
                add(l, v.to_f32());
            }
        }
        for &v in chunks.remainder() {
            add(0, v.to_f32());
        }
        let sum = |c: [u32; L]| c.iter().map(|&k| k as usize).sum::<usize>();
        ValueSummary {
            n_values: values.len(),
            n_negative: sum(negative),
            n_non_integer: sum(fraction),
            n_non_finite: sum(non_finite),
            min: lo.iter().copied().fold(f32::INFINITY, f32::min),
            max: hi.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        }
    }

    /// Adds the values summarised in `other`.
    pub fn merge(&mut self, other: &ValueSummary) {
        self.n_values += other.n_values;
        self.n_negative += other.n_negative;
        self.n_non_integer += other.n_non_integer;
        self.n_non_finite += other.n_non_finite;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// True when every value is a non-negative integer.
    pub fn is_counts(&self) -> bool {
        self.n_negative == 0 && self.n_non_integer == 0 && self.n_non_finite == 0
    }

    /// True when every value is finite and non-negative (what `assume_counts` accepts).
    pub fn is_non_negative(&self) -> bool {
        self.n_negative == 0 && self.n_non_finite == 0
    }

    /// What the values are, in words: for example "non-integer values between 0 and 7.9
    /// (93.1% of 1200 stored values), like log-normalized data". Empty for counts.
    pub fn describe(&self) -> String {
        if self.is_counts() {
            return String::new();
        }
        let share = |k: usize| 100.0 * k as f64 / self.n_values.max(1) as f64;
        let range = if self.min <= self.max {
            format!("between {} and {}", short(self.min), short(self.max))
        } else {
            "with no finite value".to_string()
        };
        if self.n_non_finite > 0 {
            return format!(
                "{} NaN or infinite values ({:.1}% of {} stored values; the finite ones lie {range})",
                self.n_non_finite,
                share(self.n_non_finite),
                self.n_values
            );
        }
        if self.n_negative > 0 {
            return format!(
                "negative values: values lie {range} ({:.1}% of {} stored values are below 0), \
                 like scaled or centred data",
                share(self.n_negative),
                self.n_values
            );
        }
        let like = if self.max <= 20.0 {
            "like log-normalized data"
        } else {
            "like normalized (not logged) data or corrected counts"
        };
        format!(
            "non-integer values {range} ({:.1}% of {} stored values), {like}",
            share(self.n_non_integer),
            self.n_values
        )
    }
}

/// `x` with at most two decimals, trailing zeros dropped (7.9, 0, 1204.25).
fn short(x: f32) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Checks `values` as counts: `Ok(summary)` when they are non-negative integers, or when
/// `assume_counts` and they are non-negative and finite; else `Err` with [`ValueSummary::describe`].
pub(crate) fn check(values: &[f32], assume_counts: bool) -> Result<ValueSummary, String> {
    let s = ValueSummary::of(values);
    if s.is_counts() || (assume_counts && s.is_non_negative()) {
        Ok(s)
    } else {
        Err(s.describe())
    }
}

/// The advice closing an integer-check error.
pub(crate) const HOW_TO_PROCEED: &str = "the analysis needs raw counts: give the matrix \
     that holds them (--layer NAME / ReadOptions::layer for an .h5ad), or --assume-counts \
     (ReadOptions::assume_counts) for data that really are non-integer counts, such as \
     ambient-corrected counts";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_fract_says() {
        for v in [
            0.0f32,
            -0.0,
            1.0,
            2.5,
            -3.0,
            -3.5,
            0.1,
            1e-30,
            8_388_607.5,
            8_388_608.0,
            0.5,
            1.5,
            -2.5,
            1_048_575.5,
            8_388_607.0,
            16_777_218.0,
            1e-45,
            f32::MIN_POSITIVE,
            1e30,
            -1e30,
        ] {
            assert_eq!(is_integer(v), v.fract() == 0.0, "{v}");
        }
        // every 997th bit pattern: all exponents, both signs
        for bits in (0..u32::MAX).step_by(997) {
            let v = f32::from_bits(bits);
            if v.is_finite() {
                assert_eq!(is_integer(v), v.fract() == 0.0, "{v}");
            }
        }
        let big: Vec<f32> = (0..200_000).map(|i| i as f32 * 0.5).collect();
        let s = ValueSummary::of(&big);
        assert_eq!((s.n_values, s.n_non_integer), (200_000, 100_000));
        assert_eq!((s.min, s.max), (0.0, 99_999.5));
    }

    #[test]
    fn counts_pass_and_log_values_are_described() {
        assert!(check(&[0.0, 1.0, 17.0], false).is_ok());
        let log = [0.69, 1.1, 7.9, 2.0];
        let e = check(&log, false).unwrap_err();
        assert!(e.contains("between 0.69 and 7.9"), "{e}");
        assert!(e.contains("75.0% of 4"), "{e}");
        assert!(e.contains("log-normalized"), "{e}");
        assert!(check(&log, true).is_ok());
        let e = check(&[1.0, -0.5], true).unwrap_err();
        assert!(e.contains("negative") && e.contains("-0.5"), "{e}");
        let e = check(&[1.0, f32::NAN], true).unwrap_err();
        assert!(e.contains("NaN"), "{e}");
        let e = check(&[1.5, 300.25], false).unwrap_err();
        assert!(e.contains("normalized (not logged)"), "{e}");
    }

    #[test]
    fn summary_counts_every_kind_of_value() {
        let kinds = [
            3.0f32,
            0.0,
            -0.0,
            2.5,
            -4.0,
            -0.25,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
            8_388_607.5,
            f32::MAX,
            f32::MIN_POSITIVE,
        ];
        for len in [0usize, 1, 7, 8, 9, 63, 1000] {
            let v: Vec<f32> = (0..len)
                .map(|i| kinds[(i * 7 + len) % kinds.len()])
                .collect();
            let s = ValueSummary::of(&v);
            let fin: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
            assert_eq!(s.n_values, len);
            assert_eq!(s.n_non_finite, len - fin.len(), "{len}");
            assert_eq!(s.n_negative, fin.iter().filter(|&&x| x < 0.0).count());
            assert_eq!(
                s.n_non_integer,
                fin.iter().filter(|x| x.fract() != 0.0).count()
            );
            assert_eq!(s.min, fin.iter().copied().fold(f32::INFINITY, f32::min));
            assert_eq!(s.max, fin.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        }
    }

    #[test]
    fn merge_adds_up() {
        let mut a = ValueSummary::of(&[1.0, 2.5]);
        a.merge(&ValueSummary::of(&[-1.0]));
        assert_eq!(a.n_values, 3);
        assert_eq!((a.n_negative, a.n_non_integer), (1, 1));
        assert_eq!((a.min, a.max), (-1.0, 2.5));
        assert_eq!(short(7.0), "7");
        assert_eq!(short(0.0), "0");
    }
}
