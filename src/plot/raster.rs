//! Points of scatter plots drawn straight into an RGB pixel buffer, and the buffer encoded as
//! a PNG (for embedding in an SVG as a base64 data URI).
//!
//! A point is a filled disc: the pixels whose centres lie within the radius of the point's
//! pixel, blended over what is there with the point's opacity (`dst + alpha (src - dst)`,
//! rounded), in drawing order, so the result is the same on every machine and thread count.

use std::io::Write;

/// An RGB image, row-major, 3 bytes per pixel.
pub(super) struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    /// A white canvas of `width` x `height` pixels.
    pub(super) fn white(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            rgb: vec![255; width as usize * height as usize * 3],
        }
    }

    /// Blends a disc of radius `r` pixels centred on pixel `(cx, cy)` in `color` with
    /// opacity `alpha`; the parts outside the canvas are clipped.
    pub(super) fn disc(&mut self, cx: i32, cy: i32, r: f32, color: [u8; 3], alpha: f32) {
        let reach = r.floor() as i32;
        let r2 = r * r;
        let (w, h) = (self.width as i32, self.height as i32);
        for dy in -reach..=reach {
            let y = cy + dy;
            if y < 0 || y >= h {
                continue;
            }
            // Half-width of the disc on this row.
            let half = (r2 - (dy * dy) as f32).max(0.0).sqrt().floor() as i32;
            let (x0, x1) = ((cx - half).max(0), (cx + half).min(w - 1));
            if x0 > x1 {
                continue;
            }
            let row = y as usize * self.width as usize * 3;
            let span = &mut self.rgb[row + x0 as usize * 3..row + (x1 as usize + 1) * 3];
            for px in span.chunks_exact_mut(3) {
                for (d, &c) in px.iter_mut().zip(&color) {
                    let v = *d as f32 + alpha * (c as f32 - *d as f32);
                    *d = v.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }

    /// The pixels, row-major RGB.
    pub(super) fn into_rgb(self) -> Vec<u8> {
        self.rgb
    }
}

/// Encodes `rgb` (`width` x `height`, 8-bit RGB) as a PNG: one IDAT of zlib-compressed rows,
/// each with the `Sub` filter (the difference from the pixel to its left), which suits
/// images of flat colour.
pub(super) fn encode_png(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let stride = width as usize * 3;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    let mut line = Vec::with_capacity(stride + 1);
    for row in rgb.chunks_exact(stride.max(1)).take(height as usize) {
        line.clear();
        line.push(1u8); // filter type Sub
        for (i, &b) in row.iter().enumerate() {
            let left = if i >= 3 { row[i - 3] } else { 0 };
            line.push(b.wrapping_sub(left));
        }
        // Writing into a Vec cannot fail.
        let _ = z.write_all(&line);
    }
    let idat = z.finish().unwrap_or_default();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, filters, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// Appends the standard base64 encoding (RFC 4648, with `=` padding) of `bytes` to `out`
/// (the report's encoder, [`crate::html_report::base64`]).
pub(super) fn base64_into(bytes: &[u8], out: &mut String) {
    out.push_str(&crate::html_report::base64(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disc_covers_its_radius_and_clips() {
        let mut c = Canvas::white(9, 9);
        c.disc(4, 4, 2.0, [0, 0, 0], 1.0);
        let px = |x: usize, y: usize| c.rgb[(y * 9 + x) * 3];
        assert_eq!(px(4, 4), 0);
        assert_eq!(px(6, 4), 0);
        assert_eq!(px(4, 2), 0);
        assert_eq!(px(6, 6), 255, "corner outside the radius");
        let black = c.rgb.iter().filter(|&&v| v == 0).count() / 3;
        assert_eq!(black, 13, "pixels within distance 2 of the centre");
        c.disc(0, 0, 3.0, [255, 0, 0], 0.5);
        assert_eq!(&c.rgb[..3], &[255, 128, 128]);
        c.disc(-50, 100, 3.0, [0, 0, 0], 1.0); // entirely outside: no effect, no panic
    }
}
