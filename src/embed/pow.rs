//! `x^b` for a fixed `b` by table lookup, the power of the layout's gradient steps.

/// `x^b` for a fixed `b` by table: `x = m 2^e` with `m` in `[1, 2)`, so `x^b = 2^(b e) m^b`;
/// `2^(b e)` comes from a table over the 254 normal exponents and `m^b` from a table over the
/// top 12 bits of the mantissa with linear interpolation (relative error below 1e-6, see the
/// test). Zero, subnormal, infinite and NaN inputs fall back to `powf`. Several times faster
/// than `powf` in the layout loop, and the same on every machine (no fused multiply-add).
pub(super) struct PowTable {
    b: f32,
    /// `2^(b (e - 127))` for each biased exponent `e`
    pub(super) scale: Box<[f32; 256]>,
    /// `(1 + i / 2^BITS)^b` for `i` in `0..=2^BITS`
    pub(super) mant: Box<[f32; PowTable::MANT]>,
}

impl PowTable {
    pub(super) const BITS: u32 = 12;
    const MANT: usize = (1 << Self::BITS) + 1;

    pub(super) fn new(b: f32) -> PowTable {
        let bd = b as f64;
        let mut scale = Box::new([0f32; 256]);
        for (e, v) in scale.iter_mut().enumerate() {
            *v = (bd * (e as f64 - 127.0)).exp2() as f32;
        }
        let n = 1usize << Self::BITS;
        let mut mant = Box::new([0f32; Self::MANT]);
        for (i, v) in mant.iter_mut().enumerate() {
            *v = (1.0 + i as f64 / n as f64).powf(bd) as f32;
        }
        PowTable { b, scale, mant }
    }

    #[inline]
    pub(super) fn pow(&self, x: f32) -> f32 {
        let bits = x.to_bits();
        let e = (bits >> 23) as usize;
        if e == 0 || e >= 255 {
            return x.powf(self.b);
        }
        let m = bits & 0x007F_FFFF;
        let shift = 23 - Self::BITS;
        let i = (m >> shift) as usize;
        let frac = (m & ((1 << shift) - 1)) as f32 * (1.0 / (1u32 << shift) as f32);
        let lo = self.mant[i];
        let hi = self.mant[i + 1];
        (lo + (hi - lo) * frac) * self.scale[e]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow_table_matches_powf() {
        for b in [0.5f32, 0.79, 0.8951, 1.0, 1.3, 1.93] {
            let t = PowTable::new(b);
            let mut x = 1e-30f32;
            while x < 1e30 {
                let (x0, want) = (x, (x as f64).powf(b as f64));
                let got = t.pow(x) as f64;
                x *= 1.0137;
                if !(1e-36..1e36).contains(&want) {
                    continue;
                }
                assert!(
                    ((got - want) / want).abs() < 1e-6,
                    "{x0}^{b}: {got} vs {want}"
                );
            }
            assert_eq!(t.pow(0.0), 0.0);
            assert!(t.pow(f32::NAN).is_nan());
            let sub = f32::from_bits(5);
            assert_eq!(t.pow(sub), sub.powf(b));
        }
    }
}
