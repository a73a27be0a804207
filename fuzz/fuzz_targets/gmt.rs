//! `read_gmt` (and `read_gene_set_table`) on the fuzz input (plain or gzip).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::write("sets.gmt", data);
    let _ = scrna::genesets::read_gmt(&p);
    let _ = scrna::genesets::read_gene_set_table(&p);
});
