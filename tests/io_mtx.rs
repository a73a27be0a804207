//! The 10x Matrix Market reader against values computed by Scanpy's `read_10x_mtx`
//! (`scripts/reference_io.py` writes `fixtures/reference/io/<fixture>_mtx_*.csv`).

use scrna::io::{mtx::read_10x_mtx, read_10x, ReadOptions};
use scrna::Dataset;
use std::collections::HashMap;

fn read_csv(path: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn summary(key: &str) -> HashMap<String, String> {
    read_csv(&format!("fixtures/reference/io/{key}_mtx_summary.csv"))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
}

/// Checks `ds` against every reference file of `key`.
fn check_against_scanpy(ds: &Dataset, key: &str) {
    let s = summary(key);
    let num = |k: &str| -> usize { s[k].parse().unwrap() };
    assert_eq!(ds.n_cells(), num("n_cells"), "{key}: cells");
    assert_eq!(ds.n_genes(), num("n_genes"), "{key}: genes");
    assert_eq!(ds.counts.nnz(), num("nnz"), "{key}: nnz");
    assert_eq!(ds.counts.total(), s["total_counts"].parse::<f64>().unwrap());
    assert_eq!(ds.cells.barcodes.first(), Some(&s["first_barcode"]));
    assert_eq!(ds.cells.barcodes.last(), Some(&s["last_barcode"]));
    assert_eq!(ds.genes.ids.first(), Some(&s["first_gene_id"]));
    assert_eq!(ds.genes.ids.last(), Some(&s["last_gene_id"]));
    assert_eq!(ds.genes.symbols.first(), Some(&s["first_symbol"]));
    assert_eq!(ds.genes.symbols.last(), Some(&s["last_symbol"]));

    // Every cell: barcode, total counts, number of genes with a count > 0.
    let cells = read_csv(&format!("fixtures/reference/io/{key}_mtx_cells.csv"));
    assert_eq!(cells.len(), ds.n_cells());
    let totals = ds.counts.row_sums();
    let nnz = ds.counts.row_nnz();
    for (i, r) in cells.iter().enumerate() {
        assert_eq!(ds.cells.barcodes[i], r[0], "{key}: barcode of cell {i}");
        assert_eq!(
            totals[i],
            r[1].parse::<f64>().unwrap(),
            "{key}: total of {}",
            r[0]
        );
        assert_eq!(
            nnz[i],
            r[2].parse::<usize>().unwrap(),
            "{key}: genes of {}",
            r[0]
        );
    }

    // Sampled genes and every gene whose symbol was made unique.
    let genes = read_csv(&format!("fixtures/reference/io/{key}_mtx_genes.csv"));
    let gtot = ds.counts.col_sums();
    let mut gcells = vec![0usize; ds.n_genes()];
    let counts = ds.counts.to_csr();
    for (&j, &v) in counts.indices().iter().zip(counts.data()) {
        if v > 0.0 {
            gcells[j as usize] += 1;
        }
    }
    for r in &genes {
        let j: usize = r[0].parse().unwrap();
        assert_eq!(ds.genes.ids[j], r[1], "{key}: id of gene {j}");
        assert_eq!(ds.genes.symbols[j], r[2], "{key}: symbol of gene {j}");
        assert_eq!(
            gtot[j],
            r[3].parse::<f64>().unwrap(),
            "{key}: total of {}",
            r[1]
        );
        assert_eq!(
            gcells[j],
            r[4].parse::<usize>().unwrap(),
            "{key}: cells of {}",
            r[1]
        );
    }
    let symbols: std::collections::HashSet<&String> = ds.genes.symbols.iter().collect();
    assert_eq!(symbols.len(), ds.n_genes(), "{key}: symbols are unique");
}

#[test]
fn celltypist_sample_matches_scanpy() {
    let ds = read_10x_mtx(
        "fixtures/celltypist_sample/filtered_feature_bc_matrix",
        &ReadOptions::default(),
    )
    .unwrap();
    check_against_scanpy(&ds, "celltypist_sample");
    assert!(ds.cells.sample.iter().all(|s| s == "sample"));
    assert!(ds
        .genes
        .feature_types
        .iter()
        .all(|t| t == "Gene Expression"));
}

#[test]
fn cellranger2_plain_text_matches_scanpy() {
    let ds = read_10x_mtx(
        "fixtures/scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21",
        &ReadOptions::default(),
    )
    .unwrap();
    check_against_scanpy(&ds, "scanpy_cr120_hg19_chr21");
}

#[test]
fn cellranger3_gzip_matches_scanpy() {
    let ds = read_10x("fixtures/scanpy_cr300/filtered_feature_bc_matrix").unwrap();
    check_against_scanpy(&ds, "scanpy_cr300");
}

#[test]
fn spaceranger_with_metadata_comment_matches_scanpy() {
    let ds = read_10x("fixtures/visium_cytassist_coexpressdeconvolve/filtered_feature_bc_matrix")
        .unwrap();
    check_against_scanpy(&ds, "visium_cytassist_coexpressdeconvolve");
    // Scanpy made 11 symbols unique here (all listed in the genes file, checked above); the
    // ids stay untouched.
    assert_eq!(
        summary("visium_cytassist_coexpressdeconvolve")["n_renamed_symbols"],
        "11"
    );
    let ids: std::collections::HashSet<&String> = ds.genes.ids.iter().collect();
    assert_eq!(ids.len(), ds.n_genes());
}

#[test]
fn sample_and_condition_come_from_options() {
    let opts = ReadOptions {
        sample: "p1".into(),
        condition: "parental".into(),
        ..Default::default()
    };
    let ds = read_10x_mtx("fixtures/scanpy_cr300/filtered_feature_bc_matrix", &opts).unwrap();
    assert!(ds.cells.sample.iter().all(|s| s == "p1"));
    assert!(ds.cells.condition.iter().all(|s| s == "parental"));
}

#[test]
fn write_then_read_round_trips() {
    use scrna::io::mtx::{write_10x_mtx, MtxWriteOptions};
    for src in [
        "fixtures/visium_cytassist_coexpressdeconvolve/filtered_feature_bc_matrix",
        "fixtures/scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21",
    ] {
        let ds = read_10x(src).unwrap();
        for gzip in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("out");
            let opts = MtxWriteOptions {
                gzip,
                compression_level: 1,
            };
            write_10x_mtx(&ds, &out, &opts).unwrap();
            let mut names: Vec<String> = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            let ext = if gzip { ".gz" } else { "" };
            assert_eq!(
                names,
                [
                    format!("barcodes.tsv{ext}"),
                    format!("features.tsv{ext}"),
                    format!("matrix.mtx{ext}")
                ]
            );
            let back = read_10x(&out).unwrap();
            assert_eq!(back.counts, ds.counts, "{src} gzip={gzip}");
            assert_eq!(back.cells.barcodes, ds.cells.barcodes);
            assert_eq!(back.genes.ids, ds.genes.ids);
            assert_eq!(back.genes.symbols, ds.genes.symbols);
            assert_eq!(back.genes.feature_types, ds.genes.feature_types);
            // The matrix header is Matrix Market integer, genes x cells.
            let first = std::fs::read(out.join(format!("matrix.mtx{ext}"))).unwrap();
            assert_eq!(first.starts_with(&[0x1f, 0x8b]), gzip);
        }
    }
}

#[test]
fn writer_uses_real_header_for_fractional_values_and_checks_options() {
    use scrna::io::mtx::{write_10x_mtx, MtxWriteOptions};
    use scrna::{CellTable, CsrMatrix, GeneTable};
    let m = CsrMatrix::from_triplets(2, 3, &[0, 1, 1], &[2, 0, 1], &[0.25, 3.0, 1e-3]).unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let ds = Dataset::new(
        m,
        CellTable::new(s(&["c1", "c2"]), "s", "ctl"),
        GeneTable::new(s(&["g1", "g2", "g3"]), s(&["A", "B", "A"])),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plain = MtxWriteOptions {
        gzip: false,
        ..Default::default()
    };
    write_10x_mtx(&ds, dir.path(), &plain).unwrap();
    let text = std::fs::read_to_string(dir.path().join("matrix.mtx")).unwrap();
    assert!(text.starts_with("%%MatrixMarket matrix coordinate real general\n"));
    assert!(text.contains("\n3 2 3\n"), "{text}");
    let as_stored = scrna::ReadOptions {
        assume_counts: true,
        ..Default::default()
    };
    let back = scrna::read_10x_with(dir.path(), &as_stored).unwrap();
    assert_eq!(back.counts, ds.counts);
    assert_eq!(back.genes.symbols, s(&["A", "B", "A-1"]));
    let features = std::fs::read_to_string(dir.path().join("features.tsv")).unwrap();
    assert_eq!(features.lines().next(), Some("g1\tA\tGene Expression"));

    let bad = MtxWriteOptions {
        compression_level: 10,
        ..Default::default()
    };
    assert!(matches!(
        write_10x_mtx(&ds, dir.path(), &bad),
        Err(scrna::Error::InvalidOption {
            name: "compression_level",
            ..
        })
    ));
}

// The `inspect` example: its code is compiled into this test and run on fixtures.
#[path = "../examples/inspect.rs"]
mod inspect;

fn run_inspect(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = inspect::run(&args, &mut out, &mut err);
    (
        status,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn prints_one_json_line_per_path() {
    let (status, out, err) = run_inspect(&[
        "fixtures/scanpy_cr300/filtered_feature_bc_matrix",
        "fixtures/scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21",
    ]);
    assert_eq!(status, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    // Figures from fixtures/reference/io/scanpy_cr300_mtx_summary.csv (Scanpy).
    assert_eq!(
        lines[0]["path"],
        "fixtures/scanpy_cr300/filtered_feature_bc_matrix"
    );
    assert_eq!(lines[0]["format"], "mtx");
    assert_eq!(lines[0]["cells"], 1107);
    assert_eq!(lines[0]["genes"], 507);
    assert_eq!(lines[0]["nnz"], 23866);
    assert_eq!(lines[0]["total_counts"].as_f64(), Some(41549.0));
    assert_eq!(lines[1]["cells"], 12);
    assert!(out.starts_with("{\"path\":"), "{out}");
}

#[test]
fn bad_input_prints_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing");
    let (status, out, err) = run_inspect(&[
        missing.to_str().unwrap(),
        "fixtures/scanpy_cr300/filtered_feature_bc_matrix",
    ]);
    assert_eq!(status, 1);
    assert_eq!(out.lines().count(), 1);
    assert_eq!(err.lines().count(), 1);
    assert!(
        err.starts_with("error: ") && err.contains("nothing"),
        "{err}"
    );
    let (status, _, err) = run_inspect(&[]);
    assert_eq!(status, 1);
    assert!(err.starts_with("error: usage"));
}
