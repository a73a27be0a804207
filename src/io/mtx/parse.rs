//! Parsing the text of a Matrix Market file: numbers, entry lines (a fast path for canonical
//! lines and a full parser that explains what is wrong) and the header.

use crate::error::{Error, Result};
use std::path::Path;

/// Parses an unsigned decimal integer (no sign, no spaces).
#[inline]
fn parse_index(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u64;
    }
    Some(v)
}

/// Parses a count: integers on a fast path, otherwise a float. Negative and non-finite
/// values are rejected with the reason.
fn parse_value_checked(s: &[u8]) -> std::result::Result<f32, String> {
    if let Some(v) = parse_index(s) {
        return Ok(v as f32);
    }
    let shown = String::from_utf8_lossy(s);
    let v: f64 = std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("value {shown:?} is not a number"))?;
    if !v.is_finite() {
        return Err(format!("value {shown:?} is not a finite number"));
    }
    if v < 0.0 {
        return Err(format!("value {shown:?} is negative: counts must be >= 0"));
    }
    Ok(v as f32)
}

/// Entries parsed from one block.
#[derive(Default)]
pub(super) struct Parsed {
    pub(super) genes: Vec<u32>,
    pub(super) cells: Vec<u32>,
    pub(super) vals: Vec<f32>,
    /// Lines in the block (comments and blank lines included).
    pub(super) lines: u64,
    /// Cells are non-decreasing inside the block.
    pub(super) sorted: bool,
}

/// Parses the digits at `buf[*pos..]` (at most 19), advancing `pos`.
#[inline(always)]
fn digits(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let start = *pos;
    let mut v = 0u64;
    while let Some(&c) = buf.get(*pos) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(d as u64);
        *pos += 1;
    }
    let n = *pos - start;
    (n > 0 && n <= 19).then_some(v)
}

/// An error at a line relative to the start of a block.
pub(super) type LineError = (u64, String);

/// Parses the entry lines of `text` (no header) into `out`. Cells and genes are 0-based.
/// Canonical lines `gene cell count\n` take a fast path; anything else goes through
/// [`parse_line_slow`], which accepts tabs, runs of blanks, `\r`, comments and real values,
/// and explains what is wrong.
pub(super) fn parse_entries(
    text: &[u8],
    rows: u64,
    cols: u64,
    out: &mut Parsed,
) -> std::result::Result<(), LineError> {
    let n = text.len();
    out.genes.reserve(n / 10);
    out.cells.reserve(n / 10);
    out.vals.reserve(n / 10);
    out.sorted = true;
    let mut last_cell = 0u32;
    let mut pos = 0usize;
    let mut line = 0u64;
    while pos < n {
        line += 1;
        let start = pos;
        // Fast path.
        let fast = (|| {
            let g = digits(text, &mut pos)?;
            if text.get(pos) != Some(&b' ') {
                return None;
            }
            pos += 1;
            let c = digits(text, &mut pos)?;
            if text.get(pos) != Some(&b' ') {
                return None;
            }
            pos += 1;
            let v = digits(text, &mut pos)?;
            match text.get(pos) {
                Some(b'\n') => pos += 1,
                None => {}
                _ => return None,
            }
            (g >= 1 && g <= rows && c >= 1 && c <= cols && v < (1 << 24))
                .then(|| ((g - 1) as u32, (c - 1) as u32, v as f32))
        })();
        let entry = match fast {
            Some(e) => Some(e),
            None => {
                let end = text[start..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(n, |k| start + k);
                pos = (end + 1).min(n);
                parse_line_slow(&text[start..end], rows, cols).map_err(|m| (line, m))?
            }
        };
        if let Some((g, c, v)) = entry {
            if c < last_cell {
                out.sorted = false;
            }
            last_cell = c;
            out.genes.push(g);
            out.cells.push(c);
            out.vals.push(v);
        }
    }
    out.lines = line;
    Ok(())
}

/// Parses one entry line in full; `None` for a comment or blank line.
#[allow(clippy::type_complexity)]
fn parse_line_slow(
    raw: &[u8],
    rows: u64,
    cols: u64,
) -> std::result::Result<Option<(u32, u32, f32)>, String> {
    let line = raw.strip_suffix(b"\r").unwrap_or(raw);
    if line.first() == Some(&b'%') || line.iter().all(|c| c.is_ascii_whitespace()) {
        return Ok(None);
    }
    let mut it = line
        .split(|c| c.is_ascii_whitespace())
        .filter(|s| !s.is_empty());
    let (g, c, v) = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(g), Some(c), Some(v), None) => (g, c, v),
        _ => {
            return Err(format!(
                "expected three fields (row column value), got {:?}",
                String::from_utf8_lossy(line)
            ))
        }
    };
    let index = |s: &[u8], what: &str, max: u64| -> std::result::Result<u32, String> {
        let i = parse_index(s).ok_or_else(|| {
            format!(
                "{what} index {:?} is not a positive integer",
                String::from_utf8_lossy(s)
            )
        })?;
        if i == 0 || i > max {
            return Err(format!("{what} index {i} outside 1..={max}"));
        }
        Ok((i - 1) as u32)
    };
    let g = index(g, "row", rows)?;
    let c = index(c, "column", cols)?;
    let v = parse_value_checked(v)?;
    Ok(Some((g, c, v)))
}

/// Finds the line (relative to the block) of the `k`-th (1-based) entry of `text`.
pub(super) fn line_of_entry(text: &[u8], k: usize) -> u64 {
    let mut seen = 0usize;
    for (i, l) in text.split(|&b| b == b'\n').enumerate() {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.first() == Some(&b'%') || l.iter().all(|c| c.is_ascii_whitespace()) {
            continue;
        }
        seen += 1;
        if seen == k {
            return i as u64 + 1;
        }
    }
    text.split(|&b| b == b'\n').count() as u64
}

/// The header and size line of a Matrix Market file.
pub(super) struct Header {
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) nnz: usize,
}

/// Parses the header lines at the start of `text`. Returns the header, the number of lines it
/// took and the byte offset where the entries start, or `Ok(None)` when `text` ends first.
pub(super) fn parse_header(path: &Path, text: &[u8]) -> Result<Option<(Header, u64, usize)>> {
    let mut pos = 0usize;
    let mut line_no = 0u64;
    let mut header_seen = false;
    while pos < text.len() {
        let end = text[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |k| pos + k);
        let raw = &text[pos..end];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos = (end + 1).min(text.len());
        line_no += 1;
        if !header_seen {
            check_banner(path, line)?;
            header_seen = true;
            continue;
        }
        if line.first() == Some(&b'%') || line.iter().all(|c| c.is_ascii_whitespace()) {
            continue;
        }
        let f: Vec<Option<u64>> = line
            .split(|c| c.is_ascii_whitespace())
            .filter(|s| !s.is_empty())
            .map(parse_index)
            .collect();
        return match f.as_slice() {
            [Some(r), Some(c), Some(n)] => Ok(Some((
                Header {
                    rows: *r as usize,
                    cols: *c as usize,
                    nnz: *n as usize,
                },
                line_no,
                pos,
            ))),
            _ => Err(Error::parse(
                path,
                line_no,
                format!(
                    "size line must be three non-negative integers (genes cells entries), got {:?}",
                    String::from_utf8_lossy(line)
                ),
            )),
        };
    }
    Ok(None)
}

fn check_banner(path: &Path, line: &[u8]) -> Result<()> {
    let header = String::from_utf8_lossy(line).to_lowercase();
    let words: Vec<&str> = header.split_whitespace().collect();
    if words.len() != 5
        || words[0] != "%%matrixmarket"
        || words[1] != "matrix"
        || words[2] != "coordinate"
        || !(words[3] == "integer" || words[3] == "real")
        || words[4] != "general"
    {
        return Err(Error::parse(
            path,
            1,
            format!(
                "unsupported header {:?}: expected `%%MatrixMarket matrix coordinate integer|real general`",
                String::from_utf8_lossy(line)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers() {
        assert_eq!(parse_index(b"123"), Some(123));
        assert_eq!(parse_index(b"-1"), None);
        assert_eq!(parse_index(b""), None);
        assert_eq!(parse_value_checked(b"2.5"), Ok(2.5));
        assert!(parse_value_checked(b"-2").unwrap_err().contains("negative"));
        assert!(parse_value_checked(b"abc")
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_value_checked(b"nan").is_err());
    }
}
