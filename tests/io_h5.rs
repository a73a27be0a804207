//! 10x HDF5 reader and writer: agreement with Scanpy's `read_10x_h5` (reference CSVs written by
//! scripts/reference_h5.py), agreement with the Matrix Market folder of the same cells, every
//! bad-input error, and a write/read round trip.

use scrna::error::Error;
use scrna::io::tenx_h5::{read_10x_h5, write_10x_h5};
use scrna::io::{mtx::read_10x_mtx, read_10x, ReadOptions};
use std::path::{Path, PathBuf};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(p)
}

/// Parses a small CSV without quoting (the reference files have none).
fn csv(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(fixture("reference/h5").join(name)).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(|s| s.to_string()).collect())
        .collect()
}

fn check_against_reference(ds: &scrna::dataset::Dataset, name: &str) {
    let cells = csv(&format!("{name}_cells.csv"));
    let genes = csv(&format!("{name}_genes.csv"));
    assert_eq!(ds.n_cells(), cells.len(), "{name}: cells");
    assert_eq!(ds.n_genes(), genes.len(), "{name}: genes");
    let totals = ds.counts.row_sums();
    let nnz = ds.counts.row_nnz();
    for (i, row) in cells.iter().enumerate() {
        assert_eq!(ds.cells.barcodes[i], row[0], "{name}: barcode {i}");
        assert_eq!(
            totals[i],
            row[1].parse::<f64>().unwrap(),
            "{name}: total of cell {i}"
        );
        assert_eq!(
            nnz[i],
            row[2].parse::<usize>().unwrap(),
            "{name}: genes of cell {i}"
        );
    }
    for (j, row) in genes.iter().enumerate() {
        assert_eq!(ds.genes.ids[j], row[0], "{name}: id {j}");
        assert_eq!(ds.genes.symbols[j], row[1], "{name}: symbol {j}");
        assert_eq!(ds.genes.feature_types[j], row[2], "{name}: type {j}");
    }
}

#[test]
fn cellranger2_h5_matches_scanpy() {
    let p = fixture("scanpy_cr120_h5/filtered_gene_bc_matrices_h5.h5");
    let ds = read_10x_h5(&p, &ReadOptions::default()).unwrap();
    check_against_reference(&ds, "cr120");
    assert!(ds.cells.sample.iter().all(|s| s == "sample"));
}

#[test]
fn cellranger2_h5_equals_its_matrix_market_folder() {
    let h5 = read_10x_h5(
        &fixture("scanpy_cr120_h5/filtered_gene_bc_matrices_h5.h5"),
        &ReadOptions::default(),
    )
    .unwrap();
    let mtx = read_10x_mtx(
        fixture("scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21"),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(h5.counts, mtx.counts);
    assert_eq!(h5.cells.barcodes, mtx.cells.barcodes);
    assert_eq!(h5.genes.ids, mtx.genes.ids);
    assert_eq!(h5.genes.symbols, mtx.genes.symbols);
}

#[test]
fn multiple_genomes_need_a_choice() {
    let p = fixture("scanpy_cr120_h5/multiple_genomes.h5");
    let err = read_10x_h5(&p, &ReadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Hdf5 { .. }), "{msg}");
    assert!(
        msg.contains("another_genome") && msg.contains("hg19_chr21"),
        "{msg}"
    );

    let opts = ReadOptions {
        genome: Some("another_genome".into()),
        ..Default::default()
    };
    let ds = read_10x_h5(&p, &opts).unwrap();
    check_against_reference(&ds, "multi_another_genome");

    let opts = ReadOptions {
        genome: Some("hg19_chr21".into()),
        ..Default::default()
    };
    let ds = read_10x_h5(&p, &opts).unwrap();
    check_against_reference(&ds, "cr120");

    let opts = ReadOptions {
        genome: Some("mm10".into()),
        ..Default::default()
    };
    let msg = read_10x_h5(&p, &opts).unwrap_err().to_string();
    assert!(
        msg.contains("mm10") && msg.contains("another_genome"),
        "{msg}"
    );
}

#[test]
fn cellranger3_h5_matches_scanpy_and_matrix_market() {
    let p = fixture("scanpy_cr300/filtered_feature_bc_matrix.h5");
    let ds = read_10x_h5(&p, &ReadOptions::default()).unwrap();
    check_against_reference(&ds, "cr300");
    let mtx = read_10x_mtx(
        fixture("scanpy_cr300/filtered_feature_bc_matrix"),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(ds, mtx);
    // The same through the format-detecting entry point.
    let auto = read_10x(&p).unwrap();
    assert_eq!(auto, ds);
}

#[test]
fn cellranger3_feature_type_filter() {
    let p = fixture("scanpy_cr300/filtered_feature_bc_matrix.h5");
    let all = read_10x_h5(
        &p,
        &ReadOptions {
            feature_types: vec![],
            ..Default::default()
        },
    )
    .unwrap();
    let n_gex = all
        .genes
        .feature_types
        .iter()
        .filter(|t| *t == "Gene Expression")
        .count();
    let gex = read_10x_h5(&p, &ReadOptions::default()).unwrap();
    assert_eq!(gex.n_genes(), n_gex);
    let none = read_10x_h5(
        &p,
        &ReadOptions {
            feature_types: vec!["Antibody Capture".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(none.n_genes(), all.n_genes() - n_gex);
}

#[test]
fn write_then_read_round_trip() {
    let p = fixture("scanpy_cr300/filtered_feature_bc_matrix.h5");
    let ds = read_10x_h5(&p, &ReadOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.h5");
    write_10x_h5(&ds, &out).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary file left"
    );
    let back = read_10x_h5(&out, &ReadOptions::default()).unwrap();
    assert_eq!(back, ds);
    // Non-integer values are stored as float32.
    let mut frac = ds.clone();
    let mut m = std::mem::take(&mut frac.counts).into_csr();
    m.data_mut()[0] = 0.5;
    frac.counts = m.into();
    write_10x_h5(&frac, &out).unwrap();
    let as_stored = ReadOptions {
        assume_counts: true,
        ..Default::default()
    };
    assert_eq!(read_10x_h5(&out, &as_stored).unwrap(), frac);
    // Without assume_counts the reader refuses non-integer values, naming the dataset.
    let e = read_10x_h5(&out, &ReadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("/matrix/data"), "{e}");
}

/// Writes a Cell Ranger 3 style file with the given arrays (no validation), for error tests.
fn write_raw(
    path: &Path,
    shape: [i32; 2],
    indptr: &[i64],
    indices: &[i64],
    data: &[i32],
    n_barcodes: usize,
    n_features: usize,
) {
    use hdf5_pure::FileBuilder;
    let mut fb = FileBuilder::new();
    let mut m = fb.create_group("matrix");
    let bc: Vec<String> = (0..n_barcodes).map(|i| format!("BC{i}")).collect();
    let bc: Vec<&str> = bc.iter().map(|s| s.as_str()).collect();
    if !bc.is_empty() {
        m.create_dataset("barcodes")
            .with_ascii_strings(&bc)
            .unwrap();
    } else {
        m.create_dataset("barcodes")
            .with_dtype(hdf5_pure::make_u8_type())
            .with_shape(&[0]);
    }
    m.create_dataset("shape").with_i32_data(&shape);
    m.create_dataset("indptr").with_i64_data(indptr);
    if indices.is_empty() {
        m.create_dataset("indices")
            .with_dtype(hdf5_pure::make_i64_type())
            .with_shape(&[0]);
        m.create_dataset("data")
            .with_dtype(hdf5_pure::make_i32_type())
            .with_shape(&[0]);
    } else {
        m.create_dataset("indices").with_i64_data(indices);
        m.create_dataset("data").with_i32_data(data);
    }
    let mut f = m.create_group("features");
    let ids: Vec<String> = (0..n_features).map(|i| format!("G{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    let types = vec!["Gene Expression"; n_features];
    f.create_dataset("id").with_ascii_strings(&ids).unwrap();
    f.create_dataset("name").with_ascii_strings(&ids).unwrap();
    f.create_dataset("feature_type")
        .with_ascii_strings(&types)
        .unwrap();
    m.add_group(f.finish());
    fb.add_group(m.finish());
    fb.write(path).unwrap();
}

fn err_of(path: &Path) -> (String, Error) {
    let e = read_10x_h5(path, &ReadOptions::default()).unwrap_err();
    (e.to_string(), e)
}

#[test]
fn a_valid_hand_written_file_reads() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ok.h5");
    write_raw(&p, [3, 2], &[0, 2, 3], &[0, 2, 1], &[1, 2, 3], 2, 3);
    let ds = read_10x_h5(&p, &ReadOptions::default()).unwrap();
    assert_eq!(ds.counts.row_sums(), vec![3.0, 3.0]);
}

#[test]
fn error_missing_file() {
    let (msg, e) = err_of(Path::new("/nonexistent/x.h5"));
    assert!(matches!(e, Error::Io { .. }), "{msg}");
    assert!(msg.contains("/nonexistent/x.h5"));
}

#[test]
fn error_not_hdf5() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.h5");
    std::fs::write(&p, b"barcode\tgene\n").unwrap();
    let (msg, e) = err_of(&p);
    assert!(
        matches!(e, Error::Hdf5 { .. }) && msg.contains("not an HDF5 file"),
        "{msg}"
    );
}

#[test]
fn error_truncated_file_does_not_panic() {
    let bytes = std::fs::read(fixture("scanpy_cr300/filtered_feature_bc_matrix.h5")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for frac in [0.05, 0.3, 0.6, 0.9, 0.99] {
        let p = dir.path().join("t.h5");
        std::fs::write(&p, &bytes[..(bytes.len() as f64 * frac) as usize]).unwrap();
        let (msg, e) = err_of(&p);
        assert!(
            matches!(e, Error::Hdf5 { .. } | Error::Io { .. }),
            "{frac}: {msg}"
        );
    }
}

#[test]
fn error_corrupt_deflate_chunk_names_the_dataset() {
    // A compressed copy (gzip with shuffle, as Cell Ranger writes), then one of its stored
    // chunks damaged: the read fails with an error naming the file, the dataset and the
    // chunk, never a panic or silently wrong counts.
    let ds = read_10x_h5(
        &fixture("scanpy_cr300/filtered_feature_bc_matrix.h5"),
        &ReadOptions::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.h5");
    write_10x_h5(&ds, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let f = hdf5_pure::File::open(&good).unwrap();
    for name in ["matrix/indices", "matrix/data"] {
        let d = f.dataset(name).unwrap();
        assert_eq!(d.filters(), vec![2, 1], "{name}: shuffle, then deflate");
        let c = &d.chunks().unwrap()[0];
        let (at, len) = (c.address as usize, c.storage_size as usize);
        // the checksum at the end of the zlib stream; a byte of the compressed bits
        let checksum = (
            at + len - 1,
            "bad deflate data: deflate decompression error: incorrect data check",
        );
        for (pos, want) in [checksum, (at + len / 2, "bad deflate data")] {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x5A;
            let p = dir.path().join("bad.h5");
            std::fs::write(&p, &bad).unwrap();
            let (msg, e) = err_of(&p);
            assert!(
                matches!(e, Error::Hdf5 { .. })
                    && msg.contains(&format!("/{name}"))
                    && msg.contains("bad.h5")
                    && msg.contains("chunk at element 0")
                    && msg.contains(want),
                "{name} at {pos}: {msg}"
            );
        }
    }
}

#[test]
fn error_missing_groups_names_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.h5");
    let mut fb = hdf5_pure::FileBuilder::new();
    fb.create_dataset("something").with_i32_data(&[1, 2]);
    fb.write(&p).unwrap();
    let (msg, e) = err_of(&p);
    assert!(
        matches!(e, Error::Hdf5 { .. }) && msg.contains("/matrix"),
        "{msg}"
    );

    // /matrix present but without indptr.
    let p = dir.path().join("noindptr.h5");
    let mut fb = hdf5_pure::FileBuilder::new();
    let mut m = fb.create_group("matrix");
    m.create_dataset("shape").with_i32_data(&[1, 1]);
    m.create_dataset("barcodes")
        .with_ascii_strings(&["A"])
        .unwrap();
    let mut f = m.create_group("features");
    for k in ["id", "name", "feature_type"] {
        f.create_dataset(k).with_ascii_strings(&["G"]).unwrap();
    }
    m.add_group(f.finish());
    fb.add_group(m.finish());
    fb.write(&p).unwrap();
    let (msg, _) = err_of(&p);
    assert!(msg.contains("/matrix/indptr"), "{msg}");
}

#[test]
fn error_indptr_decreasing_or_not_ending_at_nnz() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dec.h5");
    write_raw(&p, [3, 2], &[0, 3, 2], &[0, 2, 1], &[1, 2, 3], 2, 3);
    let (msg, _) = err_of(&p);
    assert!(
        msg.contains("/matrix/indptr") && msg.contains("decreases"),
        "{msg}"
    );

    let p = dir.path().join("end.h5");
    write_raw(&p, [3, 2], &[0, 2, 2], &[0, 2, 1], &[1, 2, 3], 2, 3);
    let (msg, _) = err_of(&p);
    assert!(
        msg.contains("/matrix/indices") && msg.contains("indptr ends at 2"),
        "{msg}"
    );
}

#[test]
fn error_index_past_gene_count() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("idx.h5");
    write_raw(&p, [3, 2], &[0, 2, 3], &[0, 7, 1], &[1, 2, 3], 2, 3);
    let (msg, _) = err_of(&p);
    assert!(
        msg.contains("/matrix/indices") && msg.contains("gene 7"),
        "{msg}"
    );
    let p = dir.path().join("neg.h5");
    write_raw(&p, [3, 2], &[0, 2, 3], &[0, -1, 1], &[1, 2, 3], 2, 3);
    let (msg, _) = err_of(&p);
    assert!(msg.contains("/matrix/indices"), "{msg}");
}

#[test]
fn block_reader_sorts_rows_and_names_a_gene_past_the_features() {
    use scrna::stream::CellChunks;
    let dir = tempfile::tempdir().unwrap();
    // cell 0 stores genes 2, 0 (unsorted, as some Cell Ranger files do); cell 1 gene 1
    let p = dir.path().join("unsorted.h5");
    write_raw(&p, [3, 2], &[0, 2, 3], &[2, 0, 1], &[5, 4, 3], 2, 3);
    let r = CellChunks::open_10x_h5(&p, &ReadOptions::default()).unwrap();
    let x = r.read(0, 2).unwrap();
    assert_eq!(x.row(0), (&[0u32, 2][..], &[4f32, 5.][..]));
    assert_eq!(x.row(1), (&[1u32][..], &[3f32][..]));
    assert_eq!(
        x,
        read_10x_h5(&p, &ReadOptions::default())
            .unwrap()
            .counts
            .to_csr()
            .into_owned()
    );
    // gene 7 of 3, in a row that is otherwise increasing
    let p = dir.path().join("idx.h5");
    write_raw(&p, [3, 2], &[0, 2, 3], &[0, 7, 1], &[1, 2, 3], 2, 3);
    let r = CellChunks::open_10x_h5(&p, &ReadOptions::default()).unwrap();
    assert!(
        r.read(1, 2).is_ok(),
        "the cells before and after the bad entry read"
    );
    let msg = r.read(0, 2).unwrap_err().to_string();
    assert!(
        msg.contains("idx.h5")
            && msg.contains("/matrix/indices")
            && msg.contains("entry 1 is gene 7, past the 3 features"),
        "{msg}"
    );
}

#[test]
fn error_shape_disagrees_with_barcodes_or_features() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bc.h5");
    write_raw(&p, [3, 2], &[0, 2, 3], &[0, 2, 1], &[1, 2, 3], 5, 3);
    let (msg, _) = err_of(&p);
    assert!(
        msg.contains("/matrix/barcodes") && msg.contains("5 barcodes"),
        "{msg}"
    );
    let p = dir.path().join("ft.h5");
    write_raw(&p, [3, 2], &[0, 2, 3], &[0, 2, 1], &[1, 2, 3], 2, 4);
    let (msg, _) = err_of(&p);
    assert!(
        msg.contains("/matrix/features") && msg.contains("4 feature"),
        "{msg}"
    );
}

#[test]
fn error_zero_cells() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("zero.h5");
    write_raw(&p, [3, 0], &[0], &[], &[], 0, 3);
    let (msg, _) = err_of(&p);
    assert!(msg.contains("0 cells"), "{msg}");
}

/// The simulator's 50,000 x 20,000 dataset as a 10x HDF5 file, made once under target/.
fn big_file() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sim50k.h5");
    if !p.exists() {
        let sim = scrna::simulate::simulate(&scrna::simulate::SimulateOptions {
            n_cells: 50_000,
            ..Default::default()
        })
        .unwrap();
        eprintln!("simulated: nnz {}", sim.dataset.counts.nnz());
        write_10x_h5(&sim.dataset, &p).unwrap();
    }
    p
}

/// Makes target/sim50k.h5 (run once before `read_big_h5`, so that the measured process only
/// reads): `cargo test --release --test io_h5 -- --ignored make_big_h5`.
#[test]
#[ignore]
fn make_big_h5() {
    eprintln!("{}", big_file().display());
}

/// Speed and memory of reading the 50,000-cell file:
/// `/usr/bin/time -v cargo test --release --test io_h5 -- --ignored read_big_h5 --nocapture`
/// (compare "Maximum resident set size" with the CSR size printed here).
#[test]
#[ignore]
fn read_big_h5() {
    let p = big_file();
    let t = std::time::Instant::now();
    let ds = read_10x_h5(&p, &ReadOptions::default()).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let csr_bytes = ds.counts.nnz() * 8 + (ds.n_cells() + 1) * 8;
    eprintln!(
        "read {} x {} nnz {} in {secs:.2} s; CSR {:.0} MB",
        ds.n_cells(),
        ds.n_genes(),
        ds.counts.nnz(),
        csr_bytes as f64 / 1e6
    );
}
