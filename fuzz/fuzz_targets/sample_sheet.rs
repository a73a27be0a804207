//! `read_sample_sheet` (and `read_lr_pairs`, the other CSV reader) on the fuzz input.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::write("samples.csv", data);
    if let Ok(specs) = scrna::io::read_sample_sheet(&p) {
        for s in &specs {
            assert!(!s.name.is_empty());
        }
    }
    let _ = scrna::interactions::read_lr_pairs(&p);
});
