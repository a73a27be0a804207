//! Inputs as other tools write them: the `.h5ad` compatibility set of
//! `scripts/make_h5ad_compat.py` (expected matrix, shape, totals or error in
//! `fixtures/h5ad_compat/expected.json`), a processed `.h5ad` run on its counts layer, Cell
//! Ranger folders, samples with different genes (`--join` on the command line), identical
//! samples and a sample whose cells all fail QC.
//!
//! Tolerances: matrix totals of integer counts are exact (f64 sums of f32 integers); the total
//! of the non-integer `ambient_float.h5ad` within 1e-3 (f32 values against numpy's f64 sum of
//! the same f32 values).

use scrna::io::cellranger::resolve;
use scrna::io::h5ad::{write_h5ad, H5adOutput};
use scrna::io::inputs::{check_samples_pass_qc, read_inputs, InputOptions, OnDuplicate};
use scrna::io::samples::{read_sample_sheet, resolve_inputs};
use scrna::io::{read_counts, Join, ReadOptions, SampleSpec};
use scrna::lognorm::LogCounts;
use scrna::pipeline::{self, PipelineOptions, Switch};
use scrna::simulate::{simulate, SimulateOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const CR300: &str = "fixtures/scanpy_cr300";
const CELLTYPIST: &str = "fixtures/celltypist_sample/filtered_feature_bc_matrix";

#[test]
fn compatibility_set() {
    let dir = root().join("fixtures/h5ad_compat");
    let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = expected.as_object().unwrap();
    assert!(cases.len() >= 14, "{} cases", cases.len());
    for (file, e) in cases {
        let p = dir.join(file);
        let got = read_counts(&p, &ReadOptions::default());
        if let Some(pieces) = e.get("error") {
            let msg = match &got {
                Ok(r) => panic!("{file}: read {} instead of an error", r.matrix),
                Err(err) => err.to_string(),
            };
            for piece in pieces.as_array().unwrap() {
                assert!(msg.contains(piece.as_str().unwrap()), "{file}: {msg}");
            }
            if e.get("assume_counts").is_none() {
                continue;
            }
        }
        let r = if e.get("assume_counts").is_some() {
            let o = ReadOptions {
                assume_counts: true,
                ..Default::default()
            };
            let r = read_counts(&p, &o).unwrap();
            assert!(r.assumed_counts() && r.describe().contains("--assume-counts"));
            r
        } else {
            got.unwrap_or_else(|err| panic!("{file}: {err}"))
        };
        let ds = &r.dataset;
        assert_eq!(r.matrix, e["matrix"].as_str().unwrap(), "{file}");
        assert_eq!(
            ds.n_cells() as u64,
            e["n_cells"].as_u64().unwrap(),
            "{file}"
        );
        assert_eq!(
            ds.n_genes() as u64,
            e["n_genes"].as_u64().unwrap(),
            "{file}"
        );
        let total: f64 = ds.counts.total();
        let want = e["total"].as_f64().unwrap();
        assert!(
            (total - want).abs() <= 1e-3,
            "{file}: total {total} vs {want}"
        );
        let nnz: usize = ds.counts.row_nnz().iter().sum();
        assert_eq!(nnz as u64, e["nnz"].as_u64().unwrap(), "{file}");
        if let Some(obs) = e.get("obs") {
            let last = ds.n_cells() - 1;
            for (col, vals) in obs.as_object().unwrap() {
                let v: Vec<&str> = vals
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect();
                let (a, b) = if col == "sample" {
                    (ds.cells.sample[0].clone(), ds.cells.sample[last].clone())
                } else {
                    let c = ds
                        .cells
                        .columns
                        .get(col)
                        .unwrap_or_else(|| panic!("{file}: no column {col}"));
                    (c.format(0), c.format(last))
                };
                assert_eq!([a.as_str(), b.as_str()], [v[0], v[1]], "{file} {col}");
            }
            assert_eq!(ds.genes.ids[0], "ENSG00000", "{file}");
        }
    }
}

fn small_sim() -> SimulateOptions {
    SimulateOptions {
        n_cells: 600,
        n_genes: 2_000,
        n_clusters: 4,
        n_markers: 25,
        library_size: 3_000.0,
        ..Default::default()
    }
}

fn quick_options() -> PipelineOptions {
    let mut o = PipelineOptions::default();
    o.hvg.n_top_genes = Some(500);
    o.pca.n_comps = 20;
    o.skip_umap = true;
    o.doublets = Switch::Off;
    o.integration = Switch::Off;
    o
}

/// A file saved after normalization (log values in X, counts in `layers["counts"]`) is read
/// from its counts layer and gives the clusters of the original counts; without the layer it
/// is an error that says X looks log-normalized.
#[test]
fn processed_h5ad_runs_on_its_counts_layer() {
    let data = simulate(&small_sim()).unwrap().dataset;
    let sf: Vec<f32> = data
        .counts
        .row_sums()
        .iter()
        .map(|&t| (t / 1e4).max(1e-12) as f32)
        .collect();
    let log = LogCounts::new(&data.counts, &sf).unwrap().to_matrix();
    let dir = tempfile::tempdir().unwrap();
    let processed = dir.path().join("processed.h5ad");
    let mut out = H5adOutput::new(&log, &data.cells, &data.genes);
    out.layers.push(("counts".into(), &data.counts));
    write_h5ad(&out, &processed).unwrap();
    let log_only = dir.path().join("log_only.h5ad");
    write_h5ad(&H5adOutput::new(&log, &data.cells, &data.genes), &log_only).unwrap();

    let r = read_counts(&processed, &ReadOptions::default()).unwrap();
    assert_eq!(r.matrix, "layers/counts");
    assert_eq!(r.dataset.counts, data.counts);
    let e = read_counts(&log_only, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("like log-normalized data") && e.contains("no counts layer found"),
        "{e}"
    );

    let o = quick_options();
    let a = pipeline::run(&data, &o, &mut |_| {}).unwrap();
    let b = pipeline::run(&r.dataset, &o, &mut |_| {}).unwrap();
    assert!(a.clustering.n_clusters >= 3, "{}", a.clustering.n_clusters);
    assert_eq!(a.clustering.labels, b.clustering.labels);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn cell_ranger_layouts_resolve() {
    let cr = root().join(CR300);
    let want = read_counts(
        cr.join("filtered_feature_bc_matrix.h5"),
        &Default::default(),
    )
    .unwrap()
    .dataset;
    let t = tempfile::tempdir().unwrap();
    // cellranger count: run/outs/{filtered,raw}_feature_bc_matrix{.h5,/}
    let run = t.path().join("run");
    let outs = run.join("outs");
    copy_dir(
        &cr.join("filtered_feature_bc_matrix"),
        &outs.join("filtered_feature_bc_matrix"),
    );
    copy_dir(
        &cr.join("filtered_feature_bc_matrix"),
        &outs.join("raw_feature_bc_matrix"),
    );
    // Matrix Market only: the folder is read.
    let r = read_counts(&run, &Default::default()).unwrap();
    assert_eq!(r.path, outs.join("filtered_feature_bc_matrix"));
    assert_eq!(r.dataset, want);
    std::fs::copy(
        cr.join("filtered_feature_bc_matrix.h5"),
        outs.join("filtered_feature_bc_matrix.h5"),
    )
    .unwrap();
    for p in [&run, &outs] {
        let r = read_counts(p, &Default::default()).unwrap();
        assert_eq!(r.path, outs.join("filtered_feature_bc_matrix.h5"));
        assert!(r.resolved.as_deref().unwrap().contains("HDF5"));
        assert_eq!(r.dataset, want);
    }
    // cellranger multi: one sample resolves, two are an error listing both.
    let multi = t.path().join("multi");
    let a = multi.join("outs/per_sample_outs/A/count");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::copy(
        cr.join("filtered_feature_bc_matrix.h5"),
        a.join("sample_filtered_feature_bc_matrix.h5"),
    )
    .unwrap();
    assert_eq!(
        resolve(&multi).unwrap().path,
        a.join("sample_filtered_feature_bc_matrix.h5")
    );
    let b = multi.join("outs/per_sample_outs/B/count");
    std::fs::create_dir_all(&b).unwrap();
    copy_dir(
        &cr.join("filtered_feature_bc_matrix"),
        &b.join("sample_filtered_feature_bc_matrix"),
    );
    let e = read_counts(&multi, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ambiguous")
            && e.contains("per_sample_outs/A")
            && e.contains("per_sample_outs/B"),
        "{e}"
    );
    // A sample sheet and plain inputs resolve the same way.
    let sheet = t.path().join("sheet.csv");
    std::fs::write(
        &sheet,
        "sample,condition,path\nA,x,multi/outs/per_sample_outs/A\nB,y,multi/outs/per_sample_outs/B/count\n",
    )
    .unwrap();
    let specs = read_sample_sheet(&sheet).unwrap();
    assert_eq!(
        specs[0].path,
        a.join("sample_filtered_feature_bc_matrix.h5")
    );
    assert_eq!(specs[1].path, b.join("sample_filtered_feature_bc_matrix"));
    std::fs::write(&sheet, "sample,condition,path\nM,x,multi\n").unwrap();
    let e = read_sample_sheet(&sheet).unwrap_err().to_string();
    assert!(e.contains("sheet.csv:2") && e.contains("ambiguous"), "{e}");
    let specs = resolve_inputs(std::slice::from_ref(&run), None, None).unwrap();
    assert_eq!(specs[0].path, outs.join("filtered_feature_bc_matrix.h5"));
}

fn spec(name: &str, path: &Path) -> SampleSpec {
    SampleSpec {
        name: name.into(),
        condition: "c".into(),
        path: path.to_path_buf(),
    }
}

/// A copy of the celltypist sample without its last `drop` genes (another reference).
fn fewer_genes(dir: &Path, drop: usize) -> PathBuf {
    let ds = scrna::read_10x(root().join(CELLTYPIST)).unwrap();
    let keep: Vec<usize> = (0..ds.n_genes() - drop).collect();
    let sub = ds.select_genes(&keep).unwrap();
    let p = dir.join("fewer");
    std::fs::create_dir_all(&p).unwrap();
    scrna::io::write_10x_mtx(&sub, &p, &Default::default()).unwrap();
    p
}

#[test]
fn joins_count_genes_and_duplicates_are_reported() {
    let t = tempfile::tempdir().unwrap();
    let full = root().join(CELLTYPIST);
    let fewer = fewer_genes(t.path(), 100);
    let specs = [spec("full", &full), spec("fewer", &fewer)];
    let e = read_inputs(&specs, &InputOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--join intersection") && e.contains("--join union"),
        "{e}"
    );
    let mut o = InputOptions::default();
    o.concat.join = Join::Intersection;
    let r = read_inputs(&specs, &o).unwrap();
    let n = r.dataset.n_genes();
    assert_eq!(r.report.join.as_ref().unwrap().dropped, vec![100, 0]);
    assert!(r.report.warnings.iter().any(|w| w.contains("100 genes")));
    o.concat.join = Join::Union;
    let u = read_inputs(&specs, &o).unwrap();
    assert_eq!(u.dataset.n_genes(), n + 100);
    assert_eq!(u.report.join.as_ref().unwrap().filled, vec![0, 100]);
    // Union keeps every count: totals equal those of the two inputs.
    let total = |d: &scrna::Dataset| d.counts.total();
    let parts: f64 = [&full, &fewer]
        .iter()
        .map(|p| total(&scrna::read_10x(p).unwrap()))
        .sum();
    assert_eq!(total(&u.dataset), parts);
    // The source of each sample's counts is in the cell table.
    let src = scrna::io::inputs::counts_source_by_sample(&u.dataset.cells);
    assert_eq!(src.len(), 2);
    assert!(src[1].1.contains("matrix.mtx.gz"), "{:?}", src);

    // The same matrix twice.
    let twice = [spec("a", &full), spec("b", &full)];
    let e = read_inputs(&twice, &InputOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"a\" and \"b\" are identical"), "{e}");
    let w = InputOptions {
        duplicates: OnDuplicate::Warn,
        ..Default::default()
    };
    let r = read_inputs(&twice, &w).unwrap();
    assert!(r.report.warnings.iter().any(|l| l.contains("identical")));
}

#[test]
fn a_sample_whose_cells_all_fail_qc_is_named() {
    // The Cell Ranger 3 test data keep few genes per cell: none reaches 200.
    let specs = [
        spec("blood", &root().join(CELLTYPIST)),
        spec(
            "tiny",
            &root().join(CR300).join("filtered_feature_bc_matrix"),
        ),
    ];
    let mut o = InputOptions::default();
    o.concat.join = Join::Union;
    let r = read_inputs(&specs, &o).unwrap();
    let filter = PipelineOptions::default().filter;
    let e = check_samples_pass_qc(&r.dataset, &filter)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sample \"tiny\"") && e.contains("none of its 1107 cells"),
        "{e}"
    );
    let mut low = filter.clone();
    low.min_genes = Some(1);
    let per = check_samples_pass_qc(&r.dataset, &low).unwrap();
    assert!(per.iter().all(|s| s.n_passing > 0));
    // The pipeline's QC step stops with the same error, before any later step.
    let e = pipeline::run(&r.dataset, &PipelineOptions::default(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sample \"tiny\"") && e.contains("none of its 1107 cells"),
        "{e}"
    );
}

/// The example binary `name` (built by `cargo build --example` when missing or older than
/// its source), as tests/cli_errors.rs finds it.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join(name);
    let src = root().join("examples").join(format!("{name}.rs"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if !matches!((modified(&bin), modified(&src)), (Some(b), Some(s)) if b >= s) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root())
            .args(["build", "--quiet", "--example", name]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "cargo build --example {name}"
        );
    }
    bin
}

#[test]
fn join_and_duplicates_from_the_command_line() {
    let t = tempfile::tempdir().unwrap();
    let fewer = fewer_genes(t.path(), 100);
    let full = root().join(CELLTYPIST);
    let bin = example("pipeline");
    let run = |extra: &[&str], out: &str| {
        let mut cmd = Command::new(&bin);
        cmd.current_dir(root())
            .arg("--input")
            .arg(&full)
            .arg("--input")
            .arg(&fewer)
            .arg("--out")
            .arg(t.path().join(out))
            .args([
                "--no-doublets",
                "--no-integration",
                "--n-pcs",
                "10",
                "--threads",
                "2",
            ])
            .args(extra);
        cmd.output().unwrap()
    };
    let strict = run(&[], "strict");
    let err = String::from_utf8_lossy(&strict.stderr);
    assert_eq!(strict.status.code(), Some(1), "{err}");
    assert!(err.contains("--join intersection"), "{err}");

    let ok = run(&["--join", "intersection"], "inter");
    let err = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{err}");
    assert!(
        err.contains("100 genes not in every sample dropped"),
        "{err}"
    );
    assert!(err.contains("matrix.mtx.gz"), "{err}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("inter/summary.json")).unwrap(),
    )
    .unwrap();
    let src = summary["counts_source"].as_object().unwrap();
    assert_eq!(src.len(), 2, "{src:?}");
    assert!(summary["warnings"].as_array().unwrap().iter().any(|w| w
        .as_str()
        .unwrap()
        .contains("genes not in every sample dropped")));
    assert_eq!(
        summary["genes_before_qc"].as_u64().unwrap(),
        32_786 - 100,
        "intersection keeps the shared genes"
    );

    let bad = run(&["--join", "outer-ish"], "bad");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1));
    assert!(err.contains("strict, intersection, union"), "{err}");

    // The same matrix twice: one line, before any analysis step.
    let out = Command::new(&bin)
        .current_dir(root())
        .arg("--input")
        .arg(&full)
        .arg("--input")
        .arg(&full)
        .arg("--out")
        .arg(t.path().join("dup"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("are identical"), "{err}");
    assert!(!err.contains("[1/"), "a step started: {err}");
}

/// The streamed reader checks each block as it reads it (the error names the block's cells)
/// and finds the counts layer of a processed `.h5ad`.
#[test]
fn streamed_reader_checks_every_block() {
    use scrna::stream::CellChunks;
    let data = simulate(&SimulateOptions {
        n_cells: 40,
        n_genes: 300,
        ..small_sim()
    })
    .unwrap()
    .dataset;
    let dir = tempfile::tempdir().unwrap();
    let mut frac = data.clone();
    let (lo, _) = (frac.counts.indptr()[25], frac.counts.indptr()[26]);
    let mut m = std::mem::take(&mut frac.counts).into_csr();
    m.data_mut()[lo] = 0.5;
    frac.counts = m.into();
    let h5 = dir.path().join("frac.h5");
    scrna::io::tenx_h5::write_10x_h5(&frac, &h5).unwrap();
    let r = CellChunks::open_10x_h5(&h5, &ReadOptions::default()).unwrap();
    assert_eq!(
        r.read(0, 20).unwrap(),
        data.counts
            .select_rows(&(0..20).collect::<Vec<_>>())
            .unwrap()
            .into_csr()
    );
    let e = r.read(20, 40).unwrap_err().to_string();
    assert!(
        e.contains("cells 20..40") && e.contains(&data.cells.barcodes[20]),
        "{e}"
    );
    assert!(e.contains("non-integer"), "{e}");
    let o = ReadOptions {
        assume_counts: true,
        ..Default::default()
    };
    assert!(CellChunks::open_10x_h5(&h5, &o)
        .unwrap()
        .read(20, 40)
        .is_ok());

    let sf: Vec<f32> = data
        .counts
        .row_sums()
        .iter()
        .map(|&t| (t / 1e4) as f32)
        .collect();
    let log = LogCounts::new(&data.counts, &sf).unwrap().to_matrix();
    let processed = dir.path().join("processed.h5ad");
    let mut out = H5adOutput::new(&log, &data.cells, &data.genes);
    out.layers.push(("counts".into(), &data.counts));
    write_h5ad(&out, &processed).unwrap();
    let r = CellChunks::open_h5ad(&processed, None).unwrap();
    assert_eq!(data.counts, r.read(0, 40).unwrap());
    let log_only = dir.path().join("log_only.h5ad");
    write_h5ad(&H5adOutput::new(&log, &data.cells, &data.genes), &log_only).unwrap();
    let e = CellChunks::open_h5ad(&log_only, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("like log-normalized data"), "{e}");
    let e = CellChunks::open_h5ad(&log_only, Some("X"))
        .unwrap()
        .read(0, 10);
    assert!(e.unwrap_err().to_string().contains("cells 0..10"));
}
