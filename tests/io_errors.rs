//! Every bad-input case of the 10x Matrix Market reader gives an error naming the file (and the
//! line where there is one), never a panic. Bad folders are made in temporary directories from
//! the real fixtures.

use scrna::io::{mtx::read_10x_mtx, read_10x, ReadOptions};
use scrna::Error;
use std::io::Write;
use std::path::Path;

const CR2: &str = "fixtures/scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21";
const CR3: &str = "fixtures/scanpy_cr300/filtered_feature_bc_matrix";

/// Copies the files of fixture folder `src` into a new temporary folder.
fn copy_fixture(src: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

/// The Cell Ranger 2 fixture with its matrix.mtx replaced by `edit(original lines)`.
fn cr2_with_matrix(edit: impl FnOnce(&mut Vec<String>)) -> tempfile::TempDir {
    let dir = copy_fixture(CR2);
    let text = std::fs::read_to_string(dir.path().join("matrix.mtx")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    edit(&mut lines);
    std::fs::write(dir.path().join("matrix.mtx"), lines.join("\n") + "\n").unwrap();
    dir
}

fn read(dir: &Path) -> scrna::Result<scrna::Dataset> {
    read_10x_mtx(dir, &ReadOptions::default())
}

/// Asserts a parse error in `file` (a file name inside the folder) at `line`, whose message
/// contains `needle`; returns the message.
#[track_caller]
fn assert_parse(r: scrna::Result<scrna::Dataset>, file: &str, line: u64, needle: &str) -> String {
    match r {
        Err(Error::Parse {
            path,
            line: l,
            message,
        }) => {
            assert_eq!(path.file_name().unwrap(), file, "wrong file: {message}");
            assert_eq!(l, line, "wrong line: {message}");
            assert!(
                message.contains(needle),
                "message {message:?} lacks {needle:?}"
            );
            let shown = Error::Parse {
                path: path.clone(),
                line: l,
                message: message.clone(),
            }
            .to_string();
            assert!(shown.contains(&format!("{file}:{line}")), "{shown}");
            message
        }
        Err(e) => panic!("expected a parse error in {file}, got {e}"),
        Ok(_) => panic!("expected a parse error in {file}, got a dataset"),
    }
}

/// Entry line `k` (0-based) of the Cell Ranger 2 matrix: lines 1-3 are the header, a `%`
/// comment and the size line.
fn entry(k: usize) -> usize {
    3 + k
}

#[test]
fn missing_folder_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no_such_folder");
    for r in [read(&missing), read_10x(&missing)] {
        match r {
            Err(Error::Io { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected Io error, got {other:?}"),
        }
    }
}

#[test]
fn missing_features_file_is_named() {
    let dir = copy_fixture(CR2);
    std::fs::remove_file(dir.path().join("genes.tsv")).unwrap();
    match read(dir.path()) {
        Err(Error::UnknownFormat { path, message }) => {
            assert_eq!(path, dir.path());
            assert!(message.contains("features.tsv") && message.contains("genes.tsv"));
        }
        other => panic!("expected UnknownFormat, got {other:?}"),
    }
}

#[test]
fn empty_folder_is_not_a_10x_folder() {
    let dir = tempfile::tempdir().unwrap();
    match read(dir.path()) {
        Err(Error::UnknownFormat { path, message }) => {
            assert_eq!(path, dir.path());
            assert!(message.contains("matrix.mtx"), "{message}");
        }
        other => panic!("expected UnknownFormat, got {other:?}"),
    }
}

#[test]
fn unsupported_headers_are_rejected_at_line_1() {
    for header in [
        "%%MatrixMarket matrix coordinate pattern general",
        "%%MatrixMarket matrix array integer general",
        "%%MatrixMarket matrix coordinate integer symmetric",
        "%%MatrixMarket matrix coordinate complex general",
        "343 12 12",
    ] {
        let dir = cr2_with_matrix(|l| l[0] = header.to_string());
        assert_parse(read(dir.path()), "matrix.mtx", 1, "header");
    }
    // An empty file has no header either.
    let dir = cr2_with_matrix(|l| l.clear());
    assert_parse(read(dir.path()), "matrix.mtx", 1, "header");
}

#[test]
fn bad_size_line_is_rejected() {
    let dir = cr2_with_matrix(|l| l[2] = "343 12".to_string());
    assert_parse(read(dir.path()), "matrix.mtx", 3, "size line");
    let dir = cr2_with_matrix(|l| l.truncate(2));
    assert_parse(read(dir.path()), "matrix.mtx", 3, "size line");
}

#[test]
fn non_numeric_count_is_rejected() {
    let dir = cr2_with_matrix(|l| l[entry(5)] = "12 6 seven".to_string());
    let msg = assert_parse(read(dir.path()), "matrix.mtx", 9, "not a number");
    assert!(msg.contains("seven"), "{msg}");
}

#[test]
fn negative_count_is_rejected() {
    let dir = cr2_with_matrix(|l| l[entry(0)] = "201 1 -3".to_string());
    assert_parse(read(dir.path()), "matrix.mtx", 4, "negative");
    let dir = cr2_with_matrix(|l| l[entry(1)] = "123 2 -0.5".to_string());
    assert_parse(read(dir.path()), "matrix.mtx", 5, "negative");
}

#[test]
fn non_numeric_index_is_rejected() {
    let dir = cr2_with_matrix(|l| l[entry(2)] = "x 3 1".to_string());
    assert_parse(read(dir.path()), "matrix.mtx", 6, "row index");
    let dir = cr2_with_matrix(|l| l[entry(2)] = "283 3.0 1".to_string());
    assert_parse(read(dir.path()), "matrix.mtx", 6, "column index");
    let dir = cr2_with_matrix(|l| l[entry(2)] = "283 3".to_string());
    assert_parse(read(dir.path()), "matrix.mtx", 6, "three fields");
}

#[test]
fn row_index_zero_or_past_the_size_is_rejected() {
    let dir = cr2_with_matrix(|l| l[entry(0)] = "0 1 1".to_string());
    assert_parse(
        read(dir.path()),
        "matrix.mtx",
        4,
        "row index 0 outside 1..=343",
    );
    let dir = cr2_with_matrix(|l| l[entry(11)] = "344 12 1".to_string());
    assert_parse(
        read(dir.path()),
        "matrix.mtx",
        15,
        "row index 344 outside 1..=343",
    );
}

#[test]
fn column_index_zero_or_past_the_size_is_rejected() {
    let dir = cr2_with_matrix(|l| l[entry(3)] = "318 0 1".to_string());
    assert_parse(
        read(dir.path()),
        "matrix.mtx",
        7,
        "column index 0 outside 1..=12",
    );
    let dir = cr2_with_matrix(|l| l[entry(3)] = "318 13 1".to_string());
    assert_parse(
        read(dir.path()),
        "matrix.mtx",
        7,
        "column index 13 outside 1..=12",
    );
}

#[test]
fn fewer_entries_than_declared_is_rejected() {
    let dir = cr2_with_matrix(|l| {
        l.pop();
    });
    assert_parse(
        read(dir.path()),
        "matrix.mtx",
        14,
        "11 entries, 12 declared",
    );
}

#[test]
fn more_entries_than_declared_is_rejected() {
    let dir = cr2_with_matrix(|l| l.push("1 12 1".to_string()));
    assert_parse(
        read(dir.path()),
        "matrix.mtx",
        16,
        "more entries than the 12 declared",
    );
}

#[test]
fn truncated_gzip_stream_is_rejected() {
    let dir = copy_fixture(CR3);
    let p = dir.path().join("matrix.mtx.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    match read(dir.path()) {
        Err(Error::Parse {
            path,
            line,
            message,
        }) => {
            assert_eq!(path, p);
            assert!(line > 3, "line {line}");
            assert!(message.contains("truncated"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn truncated_gzip_barcodes_are_rejected() {
    let dir = copy_fixture(CR3);
    let p = dir.path().join("barcodes.tsv.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 12]).unwrap();
    match read(dir.path()) {
        Err(Error::Parse { path, message, .. }) => {
            assert_eq!(path, p);
            assert!(message.contains("truncated"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn corrupt_gzip_stream_is_rejected() {
    let dir = copy_fixture(CR3);
    let p = dir.path().join("matrix.mtx.gz");
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&p, &bytes).unwrap();
    match read(dir.path()) {
        Err(Error::Parse { path, message, .. }) => {
            assert_eq!(path, p);
            assert!(
                message.contains("corrupt")
                    || message.contains("row index")
                    || message.contains("column index")
                    || message.contains("number")
                    || message.contains("fields"),
                "{message}"
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    // A gzip header with garbage after it.
    let mut bad = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    bad.extend_from_slice(&[0xff; 100]);
    std::fs::write(&p, &bad).unwrap();
    match read(dir.path()) {
        Err(Error::Parse {
            path,
            line,
            message,
        }) => {
            assert_eq!(path, p);
            assert_eq!(line, 1);
            assert!(message.contains("corrupt"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn feature_count_differing_from_matrix_rows_is_rejected() {
    let dir = copy_fixture(CR2);
    let p = dir.path().join("genes.tsv");
    let text = std::fs::read_to_string(&p).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&p, lines[..342].join("\n") + "\n").unwrap();
    let msg = assert_parse(read(dir.path()), "genes.tsv", 342, "342 features");
    assert!(
        msg.contains("343 rows") && msg.contains("matrix.mtx"),
        "{msg}"
    );
}

#[test]
fn barcode_count_differing_from_matrix_columns_is_rejected() {
    let dir = copy_fixture(CR2);
    let p = dir.path().join("barcodes.tsv");
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    writeln!(f, "TTTTTTTTTTTTTTTT-1").unwrap();
    let msg = assert_parse(read(dir.path()), "barcodes.tsv", 13, "13 barcodes");
    assert!(msg.contains("12 columns"), "{msg}");
}

#[test]
fn gene_line_without_symbol_is_rejected() {
    let dir = copy_fixture(CR2);
    let p = dir.path().join("genes.tsv");
    let text = std::fs::read_to_string(&p).unwrap();
    let text = text.replacen("APP\tAPP", "APP", 1);
    std::fs::write(&p, text).unwrap();
    assert_parse(read(dir.path()), "genes.tsv", 3, "2 tab-separated columns");
}

#[test]
fn empty_matrix_with_zero_cells_is_rejected() {
    let dir = cr2_with_matrix(|l| l.truncate(2));
    let mut m = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("matrix.mtx"))
        .unwrap();
    writeln!(m, "343 0 0").unwrap();
    std::fs::write(dir.path().join("barcodes.tsv"), "").unwrap();
    assert_parse(read(dir.path()), "matrix.mtx", 3, "0 cells");
}

#[test]
fn duplicate_entries_are_summed() {
    // In order (the direct CSR path) and out of order (the triplet path).
    for at_end in [false, true] {
        let dir = cr2_with_matrix(|l| {
            l[2] = "343 12 13".to_string();
            if at_end {
                l.push("201 1 2".to_string());
            } else {
                l.insert(entry(1), "201 1 2".to_string());
            }
        });
        let ds = read(dir.path()).unwrap();
        assert_eq!(ds.counts.nnz(), 12);
        assert_eq!(ds.counts.get(0, 200), 3.0);
        assert_eq!(ds.counts.total(), 14.0);
    }
}

#[test]
fn unsorted_entries_and_real_values_are_read() {
    let dir = cr2_with_matrix(|l| {
        l.swap(entry(0), entry(11));
        l[entry(4)] = "175 5 2.5".to_string();
        l.insert(entry(6), "% a comment between entries".to_string());
        l[0] = "%%MatrixMarket matrix coordinate real general".to_string();
    });
    // Non-integer values are refused unless taken as counts.
    let e = read(dir.path()).unwrap_err();
    assert!(e.to_string().contains("non-integer values"), "{e}");
    let as_stored = ReadOptions {
        assume_counts: true,
        ..Default::default()
    };
    let ds = read_10x_mtx(dir.path(), &as_stored).unwrap();
    assert_eq!(ds.counts.nnz(), 12);
    assert_eq!(ds.counts.get(0, 200), 1.0);
    assert_eq!(ds.counts.get(4, 174), 2.5);
    assert_eq!(ds.counts.total(), 13.5);
}

#[test]
fn crlf_line_endings_are_accepted() {
    let dir = copy_fixture(CR2);
    for name in ["matrix.mtx", "genes.tsv", "barcodes.tsv"] {
        let p = dir.path().join(name);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace('\n', "\r\n")).unwrap();
    }
    let ds = read(dir.path()).unwrap();
    assert_eq!((ds.n_cells(), ds.n_genes(), ds.counts.nnz()), (12, 343, 12));
    assert_eq!(ds.cells.barcodes[0], "AACACGTGTACGCTGC-1");
}
