//! `read_10x_mtx` on a folder whose `matrix.mtx` is the fuzz input (plain or gzip). The
//! harness reads the size line of the input and writes `features.tsv` / `barcodes.tsv` with
//! that many lines (up to 2,000 each, else one line) so that most inputs reach the entries.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};

#[path = "common.rs"]
mod common;

fn sniff_size(data: &[u8]) -> Option<(usize, usize)> {
    let mut text = Vec::new();
    let data: &[u8] = if data.starts_with(&[0x1f, 0x8b]) {
        let _ = flate2::read::MultiGzDecoder::new(data)
            .take(1 << 16)
            .read_to_end(&mut text);
        &text
    } else {
        data
    };
    let s = String::from_utf8_lossy(&data[..data.len().min(1 << 16)]);
    let line = s
        .lines()
        .skip(1)
        .find(|l| !l.starts_with('%') && !l.trim().is_empty())?;
    let f: Vec<usize> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (f.len() >= 2).then(|| (f[0], f[1]))
}

fuzz_target!(|data: &[u8]| {
    let dir = common::scratch().join("mtx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("matrix.mtx"), data).unwrap();
    let (g, c) = sniff_size(data).unwrap_or((1, 1));
    let g = if g <= 2000 { g } else { 1 };
    let c = if c <= 2000 { c } else { 1 };
    let mut f = std::fs::File::create(dir.join("genes.tsv")).unwrap();
    for i in 0..g {
        writeln!(f, "ENSG{i}\tG{i}").unwrap();
    }
    let mut b = std::fs::File::create(dir.join("barcodes.tsv")).unwrap();
    for i in 0..c {
        writeln!(b, "BC{i}-1").unwrap();
    }
    drop((f, b));
    let opts = scrna::io::ReadOptions::default();
    if let Ok(ds) = scrna::io::mtx::read_10x_mtx(&dir, &opts) {
        assert_eq!(ds.counts.n_rows(), ds.cells.barcodes.len());
    }
});
