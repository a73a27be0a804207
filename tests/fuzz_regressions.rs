//! Inputs found by fuzzing the readers (see `fuzz/README.md`), minimized, each of which once
//! crashed, hung or allocated without bound. Every one must now give a clear `Err` naming
//! the file.

use scrna::io::ReadOptions;
use scrna::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

#[path = "support/largest_alloc.rs"]
mod largest_alloc;
use largest_alloc::LARGEST;

/// A 10x Matrix Market folder with `n_genes` genes, `n_cells` barcodes and `matrix` as
/// `matrix.mtx`.
fn mtx_folder(dir: &Path, n_genes: usize, n_cells: usize, matrix: &[u8]) -> PathBuf {
    let d = dir.join("mtx");
    std::fs::create_dir_all(&d).unwrap();
    let genes: String = (0..n_genes).map(|i| format!("ENSG{i}\tG{i}\n")).collect();
    let cells: String = (0..n_cells).map(|i| format!("BC{i}-1\n")).collect();
    std::fs::write(d.join("genes.tsv"), genes).unwrap();
    std::fs::write(d.join("barcodes.tsv"), cells).unwrap();
    std::fs::write(d.join("matrix.mtx"), matrix).unwrap();
    d
}

/// Size line declaring 500 million entries in a 60-byte file: the reader used to reserve
/// 4 GB for them up front (libFuzzer: malloc limit exceeded).
#[test]
fn mtx_huge_declared_entry_count_reserves_nothing_big() {
    let dir = tempfile::tempdir().unwrap();
    let d = mtx_folder(
        dir.path(),
        2,
        2,
        b"%%MatrixMarket matrix coordinate integer general\n2 2 500000000\n1 1 1\n",
    );
    LARGEST.store(0, Ordering::Relaxed);
    let e = scrna::io::mtx::read_10x_mtx(&d, &ReadOptions::default()).unwrap_err();
    let largest = LARGEST.load(Ordering::Relaxed);
    let msg = e.to_string();
    assert!(matches!(e, Error::Parse { .. }), "{e:?}");
    assert!(
        msg.contains("matrix.mtx") && msg.contains("500000000 declared"),
        "{msg}"
    );
    assert!(
        largest < 64 << 20,
        "largest allocation {largest} bytes for a 60-byte file"
    );
}

/// The Cell Ranger 3 fixture with the declared size of `/matrix/indptr` changed from 1,108 to
/// 17,179,890,688 (the bytes at offset 17,557), written into `dir`.
fn huge_indptr_file(dir: &Path) -> PathBuf {
    const AT: usize = 17_557;
    let mut bad = std::fs::read("fixtures/scanpy_cr300/filtered_feature_bc_matrix.h5").unwrap();
    assert_eq!(bad[AT..AT + 8], 1108u64.to_le_bytes(), "fixture changed");
    bad[AT..AT + 8].copy_from_slice(&0x0004_0000_5400u64.to_le_bytes());
    let p = dir.join("huge_indptr.h5");
    std::fs::write(&p, &bad).unwrap();
    p
}

/// Cell Ranger 3 fixture with the dimension of `/matrix/indptr` (1,108) turned into
/// 17,179,890,688 by the fuzzer (the bytes at offset 17,557). The reader used to allocate
/// 128 GB for it before reading a chunk (out of memory).
#[test]
fn tenx_h5_huge_declared_dataset_size_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = huge_indptr_file(dir.path());
    LARGEST.store(0, Ordering::Relaxed);
    let e = scrna::io::tenx_h5::read_10x_h5(&p, &ReadOptions::default()).unwrap_err();
    let largest = LARGEST.load(Ordering::Relaxed);
    let msg = e.to_string();
    assert!(matches!(e, Error::Hdf5 { .. }), "{e:?}");
    assert!(
        msg.contains("huge_indptr.h5") && msg.contains("/matrix/indptr"),
        "{msg}"
    );
    assert!(largest < 256 << 20, "largest allocation {largest} bytes");
}

/// The same corrupted declared size through the streamed reader: an error naming the file,
/// and no allocation of the declared size.
#[test]
fn streamed_reader_huge_declared_dataset_size_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = huge_indptr_file(dir.path());
    LARGEST.store(0, Ordering::Relaxed);
    let e = match scrna::stream::CellChunks::open_10x_h5(&p, &ReadOptions::default()) {
        Ok(_) => panic!("a corrupted indptr was accepted"),
        Err(e) => e,
    };
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(e.to_string().contains("huge_indptr.h5"), "{e}");
    assert!(largest < 256 << 20, "largest allocation {largest} bytes");
}

/// An `.h5ad` whose sparse `X` has fewer values than indices (found by fuzzing a file
/// written by the library; rebuilt here by hand): the CSR builder used to panic on a slice
/// split ("mid > len"), which the reader's guard reported as a corrupt file.
#[test]
fn h5ad_sparse_x_with_fewer_values_than_indices_is_an_error() {
    use hdf5_pure::{AttrValue, FileBuilder};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("short_data.h5ad");
    let mut fb = FileBuilder::new();
    let mut x = fb.create_group("X");
    x.set_attr("encoding-type", AttrValue::String("csr_matrix".into()));
    x.set_attr("encoding-version", AttrValue::String("0.1.0".into()));
    x.set_attr("shape", AttrValue::I64Array(vec![2, 3]));
    x.create_dataset("data").with_f32_data(&[1.0]);
    x.create_dataset("indices").with_i32_data(&[2, 0, 1]);
    x.create_dataset("indptr").with_i64_data(&[0, 2, 3]);
    fb.add_group(x.finish());
    fb.write(&p).unwrap();

    let silent = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(|| {
        scrna::io::h5ad::read_h5ad(&p, &Default::default()).map(|d| d.n_cells())
    });
    std::panic::set_hook(silent);
    let e = r.expect("no panic").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Hdf5 { .. }), "{e:?}");
    assert!(
        msg.contains("short_data.h5ad") && msg.contains("/X") && msg.contains("1 values"),
        "{msg}"
    );
    assert!(!msg.contains("reader failed"), "a panic was caught: {msg}");

    // The same arrays straight into the CSR builder.
    let e = scrna::CsrMatrix::from_unsorted_rows(2, 3, vec![0, 2, 3], vec![2, 0, 1], vec![1.0])
        .unwrap_err();
    assert!(matches!(e, Error::InvalidData { .. }), "{e:?}");
}

/// An `.h5ad` whose `X` indptr rises past the entries before coming back down to their count
/// (found by fuzzing after the fix above; rebuilt by hand): the CSR builder split the arrays
/// at the first row before noticing the decrease, and panicked.
#[test]
fn h5ad_indptr_rising_past_the_entries_is_an_error() {
    use hdf5_pure::{AttrValue, FileBuilder};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("indptr_overshoot.h5ad");
    let mut fb = FileBuilder::new();
    let mut x = fb.create_group("X");
    x.set_attr("encoding-type", AttrValue::String("csr_matrix".into()));
    x.set_attr("encoding-version", AttrValue::String("0.1.0".into()));
    x.set_attr("shape", AttrValue::I64Array(vec![2, 3]));
    x.create_dataset("data").with_f32_data(&[1.0, 2.0, 3.0]);
    x.create_dataset("indices").with_i32_data(&[2, 0, 1]);
    x.create_dataset("indptr").with_i64_data(&[0, 9, 3]);
    fb.add_group(x.finish());
    fb.write(&p).unwrap();
    let r = std::panic::catch_unwind(|| {
        scrna::io::h5ad::read_h5ad(&p, &Default::default()).map(|d| d.n_cells())
    });
    let e = r.expect("no panic").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("indptr_overshoot.h5ad") && msg.contains("/X"),
        "{msg}"
    );
    assert!(!msg.contains("reader failed"), "a panic was caught: {msg}");

    let e = scrna::CsrMatrix::from_unsorted_rows(2, 3, vec![0, 9, 3], vec![2, 0, 1], vec![1.0; 3])
        .unwrap_err();
    assert!(e.to_string().contains("past the 3 entries"), "{e}");
}

/// anndata's `fixtures/reference/h5/anndata_small.h5ad` with one byte of the chunk B-tree of
/// `/X/data` changed by the fuzzer (offset 6,854, the node's entry count: 1 -> 129), so that
/// the index lists chunk records read from the bytes after the node, one of them 2 GB long in
/// a 52 kB file. `hdf5-pure` allocated a chunk's recorded size before finding it past the
/// end of the file (libFuzzer: malloc(2147483648) from `ChunkSpanReader::chunk_bytes`, the
/// out-of-memory first seen as an RSS of 4.6 GB). Chunks past the end of the file are now
/// refused before `hdf5-pure` reads the dataset.
#[test]
fn h5ad_chunk_index_past_the_end_of_the_file_is_an_error() {
    const AT: usize = 6_854;
    let src = std::fs::read("fixtures/reference/h5/anndata_small.h5ad").unwrap();
    assert_eq!(&src[AT - 6..AT - 2], b"TREE", "fixture changed");
    assert_eq!(src[AT], 1, "fixture changed");
    let mut bad = src.clone();
    bad[AT] = 0x81;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("btree_entries.h5ad");
    std::fs::write(&p, &bad).unwrap();
    LARGEST.store(0, Ordering::Relaxed);
    let e = scrna::io::h5ad::read_h5ad(&p, &Default::default()).unwrap_err();
    let largest = LARGEST.load(Ordering::Relaxed);
    let msg = e.to_string();
    assert!(matches!(e, Error::Hdf5 { .. }), "{e:?}");
    assert!(
        msg.contains("btree_entries.h5ad") && msg.contains("/X/data"),
        "{msg}"
    );
    assert!(msg.contains("past the end of the file"), "{msg}");
    assert!(!msg.contains("reader failed"), "a panic was caught: {msg}");
    assert!(largest < 64 << 20, "largest allocation {largest} bytes");
    // The unmodified file still reads.
    let ok = dir.path().join("ok.h5ad");
    std::fs::write(&ok, &src).unwrap();
    assert!(scrna::io::h5ad::read_h5ad(&ok, &Default::default()).is_ok());
}
