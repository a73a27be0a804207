//! Writing result files safely: atomic writes, CSV fields, process memory figures.
//!
//! Every output file is written to a temporary name in the same folder and renamed into place
//! when complete, so an interrupted run never leaves a half-written file that looks complete.

use crate::error::{Error, Result};
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The temporary name used while `path` is being written.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Writes `path` through `f` atomically: to a temporary file first, renamed on success.
/// On failure the temporary file is removed and `path` is left untouched.
pub fn write_atomic<F>(path: &Path, f: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
{
    let tmp = temporary_path(path);
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        f(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Checks, before any work is done, that results can be written into `dir`, without leaving
/// anything behind: an existing `dir` must be a writable folder; a missing one must have a
/// nearest existing ancestor that is a writable folder (the writers create `dir` later).
/// Writability is tested by creating and removing a probe file. The error names the folder.
pub fn check_output_dir(dir: &Path) -> Result<()> {
    let refuse = |p: &Path, why: &str| {
        Error::io(
            p,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string()),
        )
    };
    let mut existing = dir;
    while !existing.as_os_str().is_empty() && !existing.exists() {
        existing = existing.parent().unwrap_or(Path::new(""));
    }
    if existing.as_os_str().is_empty() {
        existing = Path::new(".");
    }
    if !existing.is_dir() {
        return Err(if existing == dir {
            refuse(dir, "the output folder is a file; give a folder")
        } else {
            refuse(
                dir,
                &format!(
                    "cannot create the output folder: {} is a file",
                    existing.display()
                ),
            )
        });
    }
    let probe = existing.join(format!(".scrna-write-check-{}", std::process::id()));
    File::create(&probe).map_err(|e| {
        Error::io(
            dir,
            std::io::Error::new(e.kind(), format!("output folder not writable: {e}")),
        )
    })?;
    std::fs::remove_file(&probe).map_err(|e| Error::io(&probe, e))
}

/// Renames a finished temporary file (or folder) into place, with errors naming `to`.
pub fn commit_temporary(tmp: &Path, to: &Path) -> Result<()> {
    std::fs::rename(tmp, to).map_err(|e| Error::io(to, e))
}

/// A CSV field, quoted when it contains a comma, a quote or a line break (RFC 4180).
pub fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// Writes one CSV record (fields quoted as needed) followed by a newline.
pub fn write_csv_record<W: Write + ?Sized, S: AsRef<str>>(
    w: &mut W,
    fields: &[S],
) -> std::io::Result<()> {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        w.write_all(csv_field(f.as_ref()).as_bytes())?;
    }
    w.write_all(b"\n")
}

/// Writes a CSV file atomically ([`write_atomic`]): the `header` record, then one record per
/// item of `rows` with the fields `fields` gives it.
pub fn write_csv_table<T>(
    path: &Path,
    header: &[&str],
    rows: impl IntoIterator<Item = T>,
    mut fields: impl FnMut(T) -> Vec<String>,
) -> Result<()> {
    write_atomic(path, |w| {
        write_csv_record(w, header)?;
        for row in rows {
            write_csv_record(w, &fields(row))?;
        }
        Ok(())
    })
}

/// Formats a float for CSV output: shortest text that reads back to the same `f64`, in
/// scientific notation when very small or large (`1.25e-60`); `NA` for NaN.
pub fn fmt_f64(x: f64) -> String {
    let a = x.abs();
    if x.is_nan() {
        "NA".to_string()
    } else if x == 0.0 || x.is_infinite() || (1e-4..1e15).contains(&a) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// Peak resident memory of this process in bytes (`VmHWM`), when the system reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kb("VmHWM:").map(|kb| kb * 1024)
}

/// Current resident memory of this process in bytes (`VmRSS`), when the system reports it.
pub fn current_rss_bytes() -> Option<u64> {
    proc_status_kb("VmRSS:").map(|kb| kb * 1024)
}

/// Resets the peak resident memory to the current one (Linux `clear_refs`), so that the
/// next [`peak_rss_bytes`] gives the peak of a single step. Returns false when unsupported.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn proc_status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("abc"), "abc");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let mut v = Vec::new();
        write_csv_record(&mut v, &["x", "1,2"]).unwrap();
        assert_eq!(v, b"x,\"1,2\"\n");
        assert_eq!(fmt_f64(f64::NAN), "NA");
        assert_eq!(fmt_f64(0.25), "0.25");
        assert_eq!(fmt_f64(1.253009e-60), "1.253009e-60");
        assert_eq!(fmt_f64(-3e20).parse::<f64>().unwrap(), -3e20);
    }

    #[test]
    fn atomic_write_leaves_nothing_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.csv");
        write_atomic(&p, |w| w.write_all(b"a\n")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"a\n");
        let err = write_atomic(&p, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("interrupted"))
        });
        assert!(err.is_err());
        // The old complete file is untouched and no temporary file is left.
        assert_eq!(std::fs::read(&p).unwrap(), b"a\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn memory_figures_on_linux() {
        if cfg!(target_os = "linux") {
            // The kernel updates the peak lazily, so the two are only checked to be present.
            assert!(peak_rss_bytes().unwrap() > 0);
            assert!(current_rss_bytes().unwrap() > 0);
        }
    }
}
