//! `read_h5ad` on the fuzz input (seeded with small .h5ad files written by the library).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::abort_only_on_own_panics();
    let p = common::write("input.h5ad", data);
    let opts = scrna::io::h5ad::H5adReadOptions::default();
    if let Ok(ds) = scrna::io::h5ad::read_h5ad(&p, &opts) {
        assert_eq!(ds.counts.n_rows(), ds.cells.barcodes.len());
        assert_eq!(ds.counts.n_cols(), ds.genes.ids.len());
    }
});
