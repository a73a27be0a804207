//! Inputs found by fuzzing the readers (see `fuzz/README.md`), minimized, each of which once
//! crashed, hung or allocated without bound. Every one must now give a clear `Err` naming
//! the file.

use scrna::io::ReadOptions;
use scrna::Error;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Records the largest single allocation, to check that a size declared in a header is not
/// trusted for memory before the data is there.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

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
