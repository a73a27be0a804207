//! Many samples: reading, concatenation, gene alignment and sample sheets.

use scrna::io::{
    read_10x, read_sample_sheet, read_samples, ConcatOptions, Join, ReadOptions, SampleSpec,
};
use scrna::Error;
use std::path::PathBuf;

const CT: &str = "fixtures/celltypist_sample/filtered_feature_bc_matrix";
const CR3: &str = "fixtures/scanpy_cr300/filtered_feature_bc_matrix";

fn spec(name: &str, condition: &str, path: &str) -> SampleSpec {
    SampleSpec {
        name: name.into(),
        condition: condition.into(),
        path: PathBuf::from(path),
    }
}

#[test]
fn same_sample_twice_as_parental_and_resistant() {
    let one = read_10x(CT).unwrap();
    let ds = read_samples(
        &[spec("p1", "parental", CT), spec("r1", "resistant", CT)],
        &ReadOptions::default(),
        &ConcatOptions::default(),
    )
    .unwrap();
    let n = one.n_cells();
    assert_eq!(ds.n_cells(), 2 * n);
    assert_eq!(ds.n_genes(), one.n_genes());
    assert_eq!(ds.counts.nnz(), 2 * one.counts.nnz());
    assert_eq!(ds.genes.ids, one.genes.ids);
    // Barcodes suffixed as anndata.concat(..., index_unique="-").
    assert_eq!(
        ds.cells.barcodes[0],
        format!("{}-p1", one.cells.barcodes[0])
    );
    assert_eq!(
        ds.cells.barcodes[n],
        format!("{}-r1", one.cells.barcodes[0])
    );
    let unique: std::collections::HashSet<_> = ds.cells.barcodes.iter().collect();
    assert_eq!(unique.len(), 2 * n);
    assert!(ds.cells.sample[..n].iter().all(|s| s == "p1"));
    assert!(ds.cells.sample[n..].iter().all(|s| s == "r1"));
    assert!(ds.cells.condition[..n].iter().all(|s| s == "parental"));
    assert!(ds.cells.condition[n..].iter().all(|s| s == "resistant"));
    // Both halves carry the original counts.
    let t1 = one.counts.row_sums();
    let t = ds.counts.row_sums();
    assert_eq!(&t[..n], &t1[..]);
    assert_eq!(&t[n..], &t1[..]);
}

/// A copy of the Cell Ranger 3 fixture whose features are permuted or cut, matrix rows
/// adjusted accordingly, written with the crate's writer.
fn modified_cr3(f: impl FnOnce(&scrna::Dataset) -> scrna::Dataset) -> tempfile::TempDir {
    let ds = read_10x(CR3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    scrna::io::write_10x_mtx(&f(&ds), dir.path(), &Default::default()).unwrap();
    dir
}

#[test]
fn genes_in_another_order_are_aligned_by_id() {
    let dir = modified_cr3(|ds| {
        // Reverse the gene order: a permutation of the columns.
        let n = ds.n_genes();
        let rev: Vec<u32> = (0..n as u32).rev().collect();
        let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
        let counts = ds.counts.to_csr();
        for i in 0..ds.n_cells() {
            let (idx, val) = counts.row(i);
            for (&j, &x) in idx.iter().zip(val) {
                r.push(i as u32);
                c.push(rev[j as usize]);
                v.push(x);
            }
        }
        let m = scrna::CsrMatrix::from_triplets(ds.n_cells(), n, &r, &c, &v).unwrap();
        let idx: Vec<usize> = (0..n).rev().collect();
        scrna::Dataset::new(m, ds.cells.clone(), ds.genes.select(&idx)).unwrap()
    });
    let p = dir.path().to_str().unwrap();
    let ds = read_samples(
        &[spec("a", "x", CR3), spec("b", "y", p)],
        &ReadOptions::default(),
        &ConcatOptions::default(),
    )
    .unwrap();
    let one = read_10x(CR3).unwrap();
    assert_eq!(ds.genes.ids, one.genes.ids);
    let n = one.n_cells();
    for i in [0, 17, n - 1] {
        for j in [0, 100, 506] {
            assert_eq!(ds.counts.get(n + i, j), one.counts.get(i, j));
        }
    }
    assert_eq!(
        ds.counts.col_sums().iter().sum::<f64>(),
        2.0 * one.counts.total()
    );
}

#[test]
fn missing_gene_is_an_error_naming_it_and_both_samples() {
    let one = read_10x(CR3).unwrap();
    let dropped = one.genes.ids[10].clone();
    let dir = modified_cr3(|ds| {
        let keep: Vec<usize> = (0..ds.n_genes()).filter(|&j| j != 10).collect();
        ds.select_genes(&keep).unwrap()
    });
    let p = dir.path().to_str().unwrap();
    let specs = [spec("full", "x", CR3), spec("cut", "y", p)];
    match read_samples(&specs, &ReadOptions::default(), &ConcatOptions::default()) {
        Err(Error::InvalidData { message, .. }) => {
            assert!(message.contains(&dropped), "{message}");
            assert!(
                message.contains("\"full\"") && message.contains("\"cut\""),
                "{message}"
            );
        }
        other => panic!("expected InvalidData, got {other:?}"),
    }
    // Intersection keeps the 506 shared genes, in the first sample's order.
    let opts = ConcatOptions {
        join: Join::Intersection,
    };
    let ds = read_samples(&specs, &ReadOptions::default(), &opts).unwrap();
    assert_eq!(ds.n_genes(), 506);
    assert!(!ds.genes.ids.contains(&dropped));
    assert_eq!(ds.genes.ids[10], one.genes.ids[11]);
    let n = one.n_cells();
    assert_eq!(ds.counts.get(3, 10), one.counts.get(3, 11));
    assert_eq!(ds.counts.get(n + 3, 10), one.counts.get(3, 11));
}

#[test]
fn sample_names_must_be_unique_and_present() {
    let r = read_samples(
        &[spec("a", "x", CR3), spec("a", "y", CR3)],
        &ReadOptions::default(),
        &ConcatOptions::default(),
    );
    assert!(
        matches!(
            r,
            Err(Error::InvalidOption {
                name: "samples",
                ..
            })
        ),
        "{r:?}"
    );
    let r = read_samples(&[], &ReadOptions::default(), &ConcatOptions::default());
    assert!(matches!(r, Err(Error::InvalidOption { .. })));
    // A bad path names the path.
    let r = read_samples(
        &[spec("a", "x", "fixtures/no_such_sample")],
        &ReadOptions::default(),
        &ConcatOptions::default(),
    );
    assert!(matches!(r, Err(Error::Io { ref path, .. }) if path.ends_with("no_such_sample")));
}

fn sheet(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("samples.csv");
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

#[test]
fn sample_sheet_paths_are_relative_to_its_folder() {
    let root = std::env::current_dir().unwrap();
    let ct = root.join(CT);
    // The sheet lives in a temporary folder; the fixture is linked next to it.
    let (dir, p) = sheet(&format!(
        "sample,condition,path\n# comment\np1,parental,data/ct\nr1,resistant,\"{}\"\n\n",
        ct.display()
    ));
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::os::unix::fs::symlink(&ct, dir.path().join("data/ct")).unwrap();
    let specs = read_sample_sheet(&p).unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].name, "p1");
    assert_eq!(specs[0].condition, "parental");
    assert_eq!(specs[0].path, dir.path().join("data/ct"));
    assert_eq!(specs[1].path, ct);
    let ds = read_samples(&specs, &ReadOptions::default(), &ConcatOptions::default()).unwrap();
    assert_eq!(ds.n_cells(), 2 * 559);
    // Column order is free; extra columns are ignored.
    let (_d, p) = sheet("path,batch,condition,sample\n/x,b1,ctl,s1\n");
    let specs = read_sample_sheet(&p).unwrap();
    assert_eq!(specs[0].name, "s1");
    assert_eq!(specs[0].path, PathBuf::from("/x"));
}

#[track_caller]
fn assert_sheet_error(text: &str, line: u64, needle: &str) {
    let (_d, p) = sheet(text);
    match read_sample_sheet(&p) {
        Err(Error::Parse {
            path,
            line: l,
            message,
        }) => {
            assert_eq!(path, p);
            assert_eq!(l, line, "{message}");
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn sample_sheet_errors_name_line_and_column() {
    assert_sheet_error("sample,path\na,/x\n", 1, "missing column `condition`");
    assert_sheet_error("p1,parental,/x\n", 1, "missing column `sample`");
    assert_sheet_error("", 1, "empty sample sheet");
    assert_sheet_error("sample,condition,path\n", 1, "no samples");
    assert_sheet_error(
        "sample,condition,path\na,ctl,/x\nb,,/y\n",
        3,
        "empty `condition` (column 2)",
    );
    assert_sheet_error(
        "sample,condition,path\na,ctl\n",
        2,
        "column 3 (`path`) is missing",
    );
    assert_sheet_error(
        "sample,condition,path\na,ctl,/x\nb,ctl,/y\na,trt,/z\n",
        4,
        "duplicate sample name \"a\" (column 1, first on line 2)",
    );
    assert_sheet_error("sample,condition,path\na,\"ctl,/x\n", 2, "unterminated");
    let missing = read_sample_sheet("fixtures/no_such_sheet.csv");
    assert!(matches!(missing, Err(Error::Io { .. })));
}
