//! Colours: Scanpy's categorical palettes and Matplotlib's `Reds` colour map.

use plotters::prelude::*;

pub(super) const DEFAULT_20: [u32; 20] = [
    0x1f77b4, 0xff7f0e, 0x279e68, 0xd62728, 0xaa40fc, 0x8c564b, 0xe377c2, 0xb5bd61, 0x17becf,
    0xaec7e8, 0xffbb78, 0x98df8a, 0xff9896, 0xc5b0d5, 0xc49c94, 0xf7b6d2, 0xdbdb8d, 0x9edae5,
    0xad494a, 0x8c6d31,
];
const DEFAULT_28: [u32; 28] = [
    0x023fa5, 0x7d87b9, 0xbec1d4, 0xd6bcc0, 0xbb7784, 0x8e063b, 0x4a6fe3, 0x8595e1, 0xb5bbe3,
    0xe6afb9, 0xe07b91, 0xd33f6a, 0x11c638, 0x8dd593, 0xc6dec7, 0xead3c6, 0xf0b98d, 0xef9708,
    0x0fcfc0, 0x9cded6, 0xd5eae7, 0xf3e1eb, 0xf6c4e1, 0xf79cd4, 0x7f7f7f, 0xc7c7c7, 0x1ce6ff,
    0x336600,
];
const DEFAULT_102: [u32; 102] = [
    0xFFFF00, 0x1CE6FF, 0xFF34FF, 0xFF4A46, 0x008941, 0x006FA6, 0xA30059, 0xFFDBE5, 0x7A4900,
    0x0000A6, 0x63FFAC, 0xB79762, 0x004D43, 0x8FB0FF, 0x997D87, 0x5A0007, 0x809693, 0x6A3A4C,
    0x1B4400, 0x4FC601, 0x3B5DFF, 0x4A3B53, 0xFF2F80, 0x61615A, 0xBA0900, 0x6B7900, 0x00C2A0,
    0xFFAA92, 0xFF90C9, 0xB903AA, 0xD16100, 0xDDEFFF, 0x000035, 0x7B4F4B, 0xA1C299, 0x300018,
    0x0AA6D8, 0x013349, 0x00846F, 0x372101, 0xFFB500, 0xC2FFED, 0xA079BF, 0xCC0744, 0xC0B9B2,
    0xC2FF99, 0x001E09, 0x00489C, 0x6F0062, 0x0CBD66, 0xEEC3FF, 0x456D75, 0xB77B68, 0x7A87A1,
    0x788D66, 0x885578, 0xFAD09F, 0xFF8A9A, 0xD157A0, 0xBEC459, 0x456648, 0x0086ED, 0x886F4C,
    0x34362D, 0xB4A8BD, 0x00A6AA, 0x452C2C, 0x636375, 0xA3C8C9, 0xFF913F, 0x938A81, 0x575329,
    0x00FECF, 0xB05B6F, 0x8CD0FF, 0x3B9700, 0x04F757, 0xC8A1A1, 0x1E6E00, 0x7900D7, 0xA77500,
    0x6367A9, 0xA05837, 0x6B002C, 0x772600, 0xD790FF, 0x9B9700, 0x549E79, 0xFFF69F, 0x201625,
    0x72418F, 0xBC23FF, 0x99ADC0, 0x3A2465, 0x922329, 0x5B4534, 0xFDE8DC, 0x404E55, 0x0089A3,
    0xCB7E98, 0xA4E804, 0x324E72,
];

pub(super) fn hex(c: u32) -> RGBColor {
    RGBColor((c >> 16) as u8, (c >> 8) as u8, c as u8)
}

/// The categorical palette for `n` categories, as Scanpy chooses it: `default_20` up to 20,
/// `default_28` up to 28, `default_102` beyond (repeated past 102).
pub fn palette(n: usize) -> Vec<RGBColor> {
    let base: &[u32] = if n <= 20 {
        &DEFAULT_20
    } else if n <= 28 {
        &DEFAULT_28
    } else {
        &DEFAULT_102
    };
    (0..n).map(|i| hex(base[i % base.len()])).collect()
}

/// Matplotlib's `Reds` colour map (ColorBrewer, 9 stops) at `t` in [0, 1].
pub(super) fn reds(t: f32) -> RGBColor {
    const STOPS: [u32; 9] = [
        0xfff5f0, 0xfee0d2, 0xfcbba1, 0xfc9272, 0xfb6a4a, 0xef3b2c, 0xcb181d, 0xa50f15, 0x67000d,
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let (a, b) = (hex(STOPS[i]), hex(STOPS[i + 1]));
    let mix = |p: u8, q: u8| (p as f32 + (q as f32 - p as f32) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_follows_scanpy_sizes() {
        assert_eq!(palette(3)[0], RGBColor(0x1f, 0x77, 0xb4));
        assert_eq!(palette(20)[19], hex(0x8c6d31));
        assert_eq!(palette(25)[0], hex(0x023fa5));
        assert_eq!(palette(200).len(), 200);
    }

    #[test]
    fn reds_ends() {
        assert_eq!(reds(0.0), hex(0xfff5f0));
        assert_eq!(reds(1.0), hex(0x67000d));
        assert_eq!(reds(f32::NAN), hex(0xfff5f0));
    }
}
