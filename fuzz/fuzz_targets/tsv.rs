//! `read_features` and `read_barcodes` on the fuzz input (plain or gzip).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::write("features.tsv", data);
    if let Ok(g) = scrna::io::mtx::read_features(&p) {
        assert_eq!(g.ids.len(), g.symbols.len());
        assert_eq!(g.ids.len(), g.feature_types.len());
    }
    let _ = scrna::io::mtx::read_barcodes(&p);
});
