//! Cell Ranger output folders resolved to the filtered count matrix.
//!
//! Cell Ranger writes (`cellranger count`, version 3 and later)
//! `SAMPLE/outs/filtered_feature_bc_matrix.h5` and `.../filtered_feature_bc_matrix/` next to
//! the `raw_` ones; version 2 writes `filtered_gene_bc_matrices_h5.h5` and
//! `filtered_gene_bc_matrices/GENOME/`; `cellranger multi` writes one folder per sample,
//! `outs/per_sample_outs/NAME/count/sample_filtered_feature_bc_matrix.h5` (and the folder of
//! the same name). [`resolve`] takes any of these folders (the run folder, its `outs/`, a
//! `per_sample_outs/NAME/` or its `count/`) to the filtered matrix, the HDF5 file preferred to
//! the Matrix Market folder (they hold the same counts; the HDF5 file reads faster).
//! The filtered matrix is the one an analysis starts from (cells called by Cell Ranger);
//! a raw matrix (every barcode, mostly empty droplets) is never chosen on its own.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// File names of a filtered matrix in HDF5, most recent Cell Ranger layout first.
pub const FILTERED_H5: [&str; 3] = [
    "filtered_feature_bc_matrix.h5",
    "sample_filtered_feature_bc_matrix.h5",
    "filtered_gene_bc_matrices_h5.h5",
];
/// Folder names of a filtered matrix in Matrix Market format.
pub const FILTERED_MTX: [&str; 3] = [
    "filtered_feature_bc_matrix",
    "sample_filtered_feature_bc_matrix",
    "filtered_gene_bc_matrices",
];
/// Names of raw matrices (listed in errors, never chosen).
const RAW: [&str; 5] = [
    "raw_feature_bc_matrix.h5",
    "raw_feature_bc_matrix",
    "raw_gene_bc_matrices_h5.h5",
    "raw_gene_bc_matrices",
    "sample_raw_feature_bc_matrix",
];

/// A path resolved by [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The file or Matrix Market folder to read.
    pub path: PathBuf,
    /// How it was found, when it differs from the path given (for example "Cell Ranger
    /// folder: chose outs/filtered_feature_bc_matrix.h5 (filtered, HDF5; also present:
    /// outs/filtered_feature_bc_matrix)"); `None` when the path was taken as given.
    pub note: Option<String>,
}

/// True when `dir` holds a Matrix Market matrix (`matrix.mtx[.gz]`).
fn is_mtx_dir(dir: &Path) -> bool {
    ["matrix.mtx.gz", "matrix.mtx"]
        .iter()
        .any(|f| dir.join(f).is_file())
}

fn rel(p: &Path, base: &Path) -> String {
    p.strip_prefix(base).unwrap_or(p).display().to_string()
}

/// Resolves `path` to the matrix to read: a file, or a folder that holds `matrix.mtx[.gz]`,
/// is returned as given; a Cell Ranger folder (see the module docs) is searched in this
/// order: the folder itself, its `outs/`, its `count/`; at the first of these that holds a
/// filtered matrix the HDF5 file is chosen, else the Matrix Market folder (for Cell Ranger 2,
/// the one genome folder inside it). A folder of `cellranger multi` with one sample under
/// `per_sample_outs/` resolves to that sample.
///
/// Errors ([`Error::UnknownFormat`], listing the candidates): several samples under
/// `per_sample_outs/` (give one), several filtered HDF5 files or genome folders, and a
/// folder with raw matrices only. A folder with none of these is returned as given (the
/// Matrix Market reader then says which files it lacks).
pub fn resolve(path: &Path) -> Result<Resolved> {
    let as_given = Resolved {
        path: path.to_path_buf(),
        note: None,
    };
    if !path.is_dir() || is_mtx_dir(path) {
        return Ok(as_given);
    }
    let mut levels = vec![path.to_path_buf()];
    for sub in ["outs", "count"] {
        let d = path.join(sub);
        if d.is_dir() {
            levels.push(d);
        }
    }
    let mut raw = Vec::new();
    for d in &levels {
        let h5: Vec<PathBuf> = FILTERED_H5
            .iter()
            .map(|f| d.join(f))
            .filter(|p| p.is_file())
            .collect();
        let mtx: Vec<PathBuf> = FILTERED_MTX
            .iter()
            .map(|f| d.join(f))
            .filter(|p| p.is_dir())
            .collect();
        let also = |chosen: &Path| -> String {
            let others: Vec<String> = h5
                .iter()
                .chain(&mtx)
                .filter(|p| p.as_path() != chosen)
                .map(|p| rel(p, path))
                .collect();
            if others.is_empty() {
                String::new()
            } else {
                format!("; also present: {}", others.join(", "))
            }
        };
        match (h5.as_slice(), mtx.as_slice()) {
            ([one], _) => {
                return Ok(Resolved {
                    note: Some(format!(
                        "Cell Ranger folder: chose {} (filtered matrix, HDF5{})",
                        rel(one, path),
                        also(one)
                    )),
                    path: one.clone(),
                })
            }
            ([_, _, ..], _) => return Err(ambiguous(path, "filtered HDF5 files", &h5)),
            ([], [one, ..]) => {
                let dir = mtx_folder(one, path)?;
                return Ok(Resolved {
                    note: Some(format!(
                        "Cell Ranger folder: chose {} (filtered matrix, Matrix Market{})",
                        rel(&dir, path),
                        also(one)
                    )),
                    path: dir,
                });
            }
            ([], []) => {}
        }
        let per_sample = d.join("per_sample_outs");
        if per_sample.is_dir() {
            let samples = subfolders(&per_sample)?;
            match samples.as_slice() {
                [one] => {
                    let r = resolve(one)?;
                    if r.path != *one {
                        return Ok(Resolved {
                            note: Some(format!(
                                "Cell Ranger multi folder, one sample: chose {}",
                                rel(&r.path, path)
                            )),
                            path: r.path,
                        });
                    }
                }
                [] => {}
                many => {
                    return Err(ambiguous(
                        path,
                        "samples under per_sample_outs/ (give one sample's folder, for \
                         example in a sample sheet with one row per sample)",
                        many,
                    ))
                }
            }
        }
        raw.extend(RAW.iter().map(|f| d.join(f)).filter(|p| p.exists()));
    }
    if !raw.is_empty() {
        return Err(Error::UnknownFormat {
            path: path.to_path_buf(),
            message: format!(
                "Cell Ranger folder with raw matrices only ({}): a raw matrix holds every \
                 barcode, mostly empty droplets; give its path explicitly to read it anyway",
                raw.iter()
                    .map(|p| rel(p, path))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(as_given)
}

/// A filtered Matrix Market folder: itself, or (Cell Ranger 2) its one genome folder.
fn mtx_folder(dir: &Path, base: &Path) -> Result<PathBuf> {
    if is_mtx_dir(dir) {
        return Ok(dir.to_path_buf());
    }
    let genomes: Vec<PathBuf> = subfolders(dir)?
        .into_iter()
        .filter(|g| is_mtx_dir(g))
        .collect();
    match genomes.as_slice() {
        [one] => Ok(one.clone()),
        [] => Ok(dir.to_path_buf()),
        many => Err(ambiguous(base, "genome folders", many)),
    }
}

fn subfolders(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn ambiguous(path: &Path, what: &str, candidates: &[PathBuf]) -> Error {
    Error::UnknownFormat {
        path: path.to_path_buf(),
        message: format!(
            "ambiguous Cell Ranger folder: {} {what}: {}",
            candidates.len(),
            candidates
                .iter()
                .map(|p| rel(p, path))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn layouts() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        touch(&run.join("outs/filtered_feature_bc_matrix/matrix.mtx.gz"));
        touch(&run.join("outs/raw_feature_bc_matrix.h5"));
        // Matrix Market only: the folder.
        let r = resolve(&run).unwrap();
        assert_eq!(r.path, run.join("outs/filtered_feature_bc_matrix"));
        // HDF5 preferred.
        touch(&run.join("outs/filtered_feature_bc_matrix.h5"));
        for p in [run.clone(), run.join("outs")] {
            let r = resolve(&p).unwrap();
            assert_eq!(r.path, run.join("outs/filtered_feature_bc_matrix.h5"));
            assert!(r.note.unwrap().contains("also present"));
        }
        // Files and Matrix Market folders are taken as given.
        let f = run.join("outs/filtered_feature_bc_matrix");
        assert_eq!(resolve(&f).unwrap().note, None);
        // Raw only.
        let rawonly = t.path().join("rawonly");
        touch(&rawonly.join("outs/raw_feature_bc_matrix.h5"));
        let e = resolve(&rawonly).unwrap_err().to_string();
        assert!(e.contains("raw matrices only") && e.contains("raw_feature_bc_matrix.h5"));
        // Cell Ranger 2: genome folder.
        let v2 = t.path().join("v2");
        touch(&v2.join("outs/filtered_gene_bc_matrices/hg19/matrix.mtx"));
        assert_eq!(
            resolve(&v2).unwrap().path,
            v2.join("outs/filtered_gene_bc_matrices/hg19")
        );
        touch(&v2.join("outs/filtered_gene_bc_matrices/mm10/matrix.mtx"));
        let e = resolve(&v2).unwrap_err().to_string();
        assert!(e.contains("hg19") && e.contains("mm10"), "{e}");
    }

    #[test]
    fn multi() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("multi");
        let a = m.join("outs/per_sample_outs/A/count/sample_filtered_feature_bc_matrix.h5");
        touch(&a);
        assert_eq!(resolve(&m).unwrap().path, a);
        touch(&m.join("outs/per_sample_outs/B/count/sample_filtered_feature_bc_matrix.h5"));
        let e = resolve(&m).unwrap_err().to_string();
        assert!(
            e.contains("per_sample_outs/A") && e.contains("per_sample_outs/B"),
            "{e}"
        );
        assert_eq!(resolve(&m.join("outs/per_sample_outs/A")).unwrap().path, a);
        assert_eq!(
            resolve(&m.join("outs/per_sample_outs/A/count"))
                .unwrap()
                .path,
            a
        );
    }
}
