//! `read_10x_h5` on the fuzz input (seeded with the fixture .h5 files).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::abort_only_on_own_panics();
    let p = common::write("input.h5", data);
    let mut opts = scrna::io::ReadOptions::default();
    let _ = scrna::io::tenx_h5::read_10x_h5(&p, &opts);
    // Keep every feature type: exercises the other branch of the filter.
    opts.feature_types.clear();
    if let Ok(ds) = scrna::io::tenx_h5::read_10x_h5(&p, &opts) {
        assert_eq!(ds.counts.n_rows(), ds.cells.barcodes.len());
        assert_eq!(ds.counts.n_cols(), ds.genes.ids.len());
    }
});
