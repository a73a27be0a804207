//! Writes the seeds that the library itself produces: a small `.h5ad` (with and without
//! compression) and a small 10x HDF5 file, from the Cell Ranger 1.2 chr21 fixture.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example write_seeds -- OUT_DIR`
//! (run by `fuzz/make_seeds.sh`).
use scrna::io::h5ad::{write_h5ad, H5adOutput};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: write_seeds OUT_DIR")?);
    std::fs::create_dir_all(&out)?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let ds = scrna::read_10x(
        root.join("fixtures/scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21"),
    )?;
    // Keep it tiny: the first 8 cells and the genes seen in them or the first 16.
    let cells: Vec<bool> = (0..ds.counts.n_rows()).map(|i| i < 8).collect();
    let ds = ds.filter_cells(&cells)?;
    let genes: Vec<bool> = (0..ds.counts.n_cols()).map(|j| j < 16).collect();
    let ds = ds.filter_genes(&genes)?;
    let mut h = H5adOutput::new(&ds.counts, &ds.cells, &ds.genes);
    write_h5ad(&h, &out.join("small_gzip.h5ad"))?;
    h.compression = None;
    write_h5ad(&h, &out.join("small_plain.h5ad"))?;
    scrna::io::tenx_h5::write_10x_h5(&ds, &out.join("small_v3.h5"))?;
    Ok(())
}
