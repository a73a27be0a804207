//! Bad input, end to end, for every example binary: each case must print exactly one line on
//! stderr naming the problem (the file or the option), nothing on stdout, no panic message,
//! and exit with status 1.
//!
//! The binaries are the ones `cargo test` builds into `target/<profile>/examples/` (found from
//! this test's own path). When one is missing or older than its source (for example after
//! `cargo test --test cli_errors`, which builds no example), it is built with
//! `cargo build --example NAME` first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const CR120: &str = "fixtures/scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21";
const CR300: &str = "fixtures/scanpy_cr300/filtered_feature_bc_matrix";
const H5AD: &str = "fixtures/reference/h5/anndata_small.h5ad";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Serialises the builds of missing examples (tests run on several threads).
static BUILD: Mutex<()> = Mutex::new(());

/// The example binary `name`, built if it is missing or stale.
fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/cli_errors-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let src = root().join("examples").join(format!("{name}.rs"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (modified(&bin), modified(&src)) {
        (Some(b), Some(s)) => b < s,
        _ => true,
    };
    if stale {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root())
            .args(["build", "--quiet", "--example", name]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    assert!(bin.is_file(), "no example binary at {}", bin.display());
    bin
}

/// Bad inputs shared by the cases, made once per test in a temporary folder.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("empty_folder")).unwrap();

        // A copy of a 10x folder whose matrix.mtx.gz is cut in the middle.
        let cut = d.join("truncated_gz");
        std::fs::create_dir(&cut).unwrap();
        for f in ["barcodes.tsv.gz", "features.tsv.gz", "matrix.mtx.gz"] {
            std::fs::copy(root().join(CR300).join(f), cut.join(f)).unwrap();
        }
        let m = std::fs::read(cut.join("matrix.mtx.gz")).unwrap();
        std::fs::write(cut.join("matrix.mtx.gz"), &m[..m.len() / 2]).unwrap();

        // A Cell Ranger 3 file whose indptr has 2 entries for 2 cells (3 expected).
        write_bad_indptr_h5(&d.join("bad_indptr.h5"));
        // An HDF5 file that is not a 10x file at all.
        std::fs::copy(root().join(H5AD), d.join("not_10x.h5")).unwrap();

        // Sample sheets.
        std::fs::write(
            d.join("sheet_no_path.csv"),
            "sample,condition\nctrl_1,control\n",
        )
        .unwrap();
        let sheet = |name: &str, data: &Path| {
            std::fs::write(
                d.join(name),
                format!("sample,condition,path\ns1,ctrl,{}\n", data.display()),
            )
            .unwrap();
        };
        sheet("sheet_missing.csv", &d.join("missing_input"));
        sheet("sheet_empty.csv", &d.join("empty_folder"));
        sheet("sheet_gz.csv", &cut);
        sheet("sheet_h5.csv", &d.join("bad_indptr.h5"));
        sheet("sheet_not10x.csv", &d.join("not_10x.h5"));
        sheet("sheet_ok.csv", &root().join(CR120));
        std::fs::write(d.join("a_file"), "not a folder").unwrap();
        Inputs { dir }
    }

    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn write_bad_indptr_h5(path: &Path) {
    let mut fb = hdf5_pure::FileBuilder::new();
    let mut m = fb.create_group("matrix");
    m.create_dataset("barcodes")
        .with_ascii_strings(&["AAAC-1", "AAAG-1"])
        .unwrap();
    m.create_dataset("shape").with_i32_data(&[3, 2]);
    m.create_dataset("indptr").with_i64_data(&[0, 3]);
    m.create_dataset("indices").with_i64_data(&[0, 1, 2]);
    m.create_dataset("data").with_i32_data(&[1, 2, 3]);
    let mut f = m.create_group("features");
    f.create_dataset("id")
        .with_ascii_strings(&["G0", "G1", "G2"])
        .unwrap();
    f.create_dataset("name")
        .with_ascii_strings(&["A", "B", "C"])
        .unwrap();
    f.create_dataset("feature_type")
        .with_ascii_strings(&["Gene Expression"; 3])
        .unwrap();
    m.add_group(f.finish());
    fb.add_group(m.finish());
    fb.write(path).unwrap();
}

/// Runs `name args` and checks the one-line error; returns the line.
fn fails(name: &str, args: &[&str], inputs: &Inputs, expect: &[&str]) -> String {
    let out = Command::new(example(name))
        .args(args)
        .current_dir(inputs.dir.path())
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run example");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let what = format!("{name} {args:?}:\nstdout: {stdout}\nstderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic in {what}");
    assert_eq!(out.status.code(), Some(1), "exit status of {what}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stderr: {what}"
    );
    assert!(stdout.is_empty(), "nothing expected on stdout: {what}");
    for e in expect {
        assert!(lines[0].contains(e), "{e:?} not named in {what}");
    }
    lines[0].to_string()
}

#[test]
fn pipeline_bad_input() {
    let i = Inputs::new();
    let out = i.p("out");
    let run = |extra: &[&str], expect: &[&str]| {
        let mut a = vec!["--out", out.as_str()];
        a.extend_from_slice(extra);
        fails("pipeline", &a, &i, expect)
    };
    run(&["--input", &i.p("missing_input")], &["missing_input"]);
    run(
        &["--input", &i.p("empty_folder")],
        &["empty_folder", "matrix.mtx"],
    );
    let l = run(
        &["--input", &i.p("truncated_gz")],
        &["truncated_gz", "matrix.mtx.gz"],
    );
    assert!(l.contains("truncated") || l.contains("corrupt"), "{l}");
    run(
        &["--input", &i.p("bad_indptr.h5")],
        &["bad_indptr.h5", "/matrix/indptr"],
    );
    run(&["--input", &i.p("not_10x.h5")], &["not_10x.h5"]);
    run(&["--bogus"], &["--bogus"]);
    run(&["--n-pcs", "many"], &["--n-pcs", "many"]);
    run(&["--input"], &["--input"]);
    run(
        &["--sample-sheet", &i.p("sheet_no_path.csv")],
        &["sheet_no_path.csv", "path"],
    );
    run(
        &["--sample-sheet", &i.p("missing_sheet.csv")],
        &["missing_sheet.csv"],
    );
    run(
        &["--sample-sheet", &i.p("sheet_gz.csv")],
        &["matrix.mtx.gz"],
    );
    assert!(
        !i.dir.path().join("out").exists(),
        "no output folder may be created on bad input"
    );
}

/// Options and the output folder are checked before the input is read: with a missing input
/// as well, the error is about the option or the folder, and no folder is left behind.
#[test]
fn pipeline_checks_options_and_output_before_input() {
    let i = Inputs::new();
    let missing = i.p("missing_input");
    let run = |args: &[&str], expect: &[&str]| fails("pipeline", args, &i, expect);
    let l = run(
        &["--input", &missing, "--out", &i.p("a_file")],
        &["a_file", "is a file"],
    );
    assert!(!l.contains("missing_input"), "{l}");
    let nested = format!("{}/sub/out", i.p("a_file"));
    run(&["--input", &missing, "--out", &nested], &["a_file"]);
    let out = i.p("out");
    let l = run(
        &["--input", &missing, "--out", &out, "--n-pcs", "0"],
        &["pca.n_comps"],
    );
    assert!(!l.contains("missing_input"), "{l}");
    run(
        &["--input", &missing, "--out", &out, "--resolution", "-1"],
        &["leiden.resolution"],
    );
    run(
        &["--input", &missing, "--out", &out, "--threads", "0"],
        &["threads"],
    );
    assert!(!i.dir.path().join("out").exists());
}

#[test]
fn resistance_bad_input() {
    let i = Inputs::new();
    let out = i.p("out");
    let run = |extra: &[&str], expect: &[&str]| {
        let mut a = vec!["--out", out.as_str()];
        a.extend_from_slice(extra);
        fails("resistance", &a, &i, expect)
    };
    let sheet = |name: &str| i.p(name);
    run(
        &["--sample-sheet", &sheet("missing_sheet.csv")],
        &["missing_sheet.csv"],
    );
    run(
        &["--sample-sheet", &sheet("sheet_missing.csv")],
        &["missing_input"],
    );
    run(
        &["--sample-sheet", &sheet("sheet_empty.csv")],
        &["empty_folder", "matrix.mtx"],
    );
    run(
        &["--sample-sheet", &sheet("sheet_gz.csv")],
        &["truncated_gz", "matrix.mtx.gz"],
    );
    run(
        &["--sample-sheet", &sheet("sheet_h5.csv")],
        &["bad_indptr.h5", "/matrix/indptr"],
    );
    run(
        &["--sample-sheet", &sheet("sheet_not10x.csv")],
        &["not_10x.h5"],
    );
    run(
        &["--sample-sheet", &sheet("sheet_no_path.csv")],
        &["sheet_no_path.csv", "path"],
    );
    run(&["--bogus"], &["--bogus"]);
    run(&["--seed", "x"], &["--seed"]);
    run(&["--threads"], &["--threads"]);
    // Gene sets and pairs are read before the analysis: a bad one fails at once.
    run(
        &[
            "--sample-sheet",
            &sheet("sheet_ok.csv"),
            "--gmt",
            &i.p("missing.gmt"),
        ],
        &["missing.gmt"],
    );
    run(
        &[
            "--sample-sheet",
            &sheet("sheet_ok.csv"),
            "--lr-pairs",
            &i.p("sheet_no_path.csv"),
        ],
        &["sheet_no_path.csv"],
    );
    assert!(!i.dir.path().join("out").exists());
}

#[test]
fn inspect_bad_input() {
    let i = Inputs::new();
    fails("inspect", &[&i.p("missing_input")], &i, &["missing_input"]);
    fails(
        "inspect",
        &[&i.p("empty_folder")],
        &i,
        &["empty_folder", "matrix.mtx"],
    );
    fails(
        "inspect",
        &[&i.p("truncated_gz")],
        &i,
        &["truncated_gz", "matrix.mtx.gz"],
    );
    fails(
        "inspect",
        &[&i.p("bad_indptr.h5")],
        &i,
        &["bad_indptr.h5", "/matrix/indptr"],
    );
    fails("inspect", &[&i.p("not_10x.h5")], &i, &["not_10x.h5"]);
    fails("inspect", &["--bogus"], &i, &["--bogus"]);
    fails("inspect", &[], &i, &["usage"]);
    // A sample sheet is not an input of `inspect`: it is rejected as an unknown format.
    fails(
        "inspect",
        &[&i.p("sheet_no_path.csv")],
        &i,
        &["sheet_no_path.csv"],
    );
}

#[test]
fn plots_demo_bad_options() {
    // plots_demo reads no input file: only its options and its output folder can be bad.
    let i = Inputs::new();
    fails("plots_demo", &["--bogus"], &i, &["--bogus"]);
    fails("plots_demo", &["--cells", "lots"], &i, &["--cells", "lots"]);
    fails("plots_demo", &["--clusters"], &i, &["--clusters"]);
    fails("plots_demo", &["--cells", "0"], &i, &["--cells"]);
    let under_a_file = format!("{}/sub", i.p("a_file"));
    fails("plots_demo", &["--out", &under_a_file], &i, &["a_file"]);
}

// ---------------------------------------------------------------------------------------
// Interrupted writes: a failing write never leaves a file with the final name.
// ---------------------------------------------------------------------------------------

/// Files in `dir` (names only, sorted).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn small_dataset() -> scrna::Dataset {
    scrna::read_10x(root().join(CR120)).unwrap()
}

#[test]
fn write_atomic_failing_midway_leaves_nothing() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("table.csv");
    let e = scrna::report::write_atomic(&p, |w| {
        w.write_all(&[b'x'; 3 << 20])?; // past the buffer: bytes reach the temporary file
        Err(std::io::Error::other("disk full"))
    })
    .unwrap_err();
    assert!(e.to_string().contains("table.csv"), "{e}");
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));

    // A complete earlier file is left as it was.
    std::fs::write(&p, "old,complete\n").unwrap();
    scrna::report::write_atomic(&p, |w| {
        w.write_all(b"new,half")?;
        Err(std::io::Error::other("interrupted"))
    })
    .unwrap_err();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "old,complete\n");
    assert_eq!(listing(dir.path()), ["table.csv"]);
}

#[test]
fn writers_fail_cleanly_when_the_output_cannot_be_placed() {
    use scrna::io::h5ad::{write_h5ad, H5adOutput};
    let ds = small_dataset();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a_file"), "x").unwrap();

    // The output folder is a file.
    let under_file = d.join("a_file").join("out.h5ad");
    let out = H5adOutput::new(&ds.counts, &ds.cells, &ds.genes);
    assert!(write_h5ad(&out, &under_file).is_err());
    assert!(scrna::io::tenx_h5::write_10x_h5(&ds, &d.join("a_file").join("x.h5")).is_err());
    let e = scrna::io::write_10x_mtx(&ds, &d.join("a_file"), &Default::default()).unwrap_err();
    assert!(e.to_string().contains("a_file"), "{e}");

    // The final name is taken by a folder: the complete temporary file cannot be renamed
    // into place, and it is removed.
    for name in ["out.h5ad", "out.h5"] {
        std::fs::create_dir(d.join(name)).unwrap();
        std::fs::write(d.join(name).join("keep"), "x").unwrap();
    }
    let e = write_h5ad(&out, &d.join("out.h5ad")).unwrap_err();
    assert!(e.to_string().contains("out.h5ad"), "{e}");
    let e = scrna::io::tenx_h5::write_10x_h5(&ds, &d.join("out.h5")).unwrap_err();
    assert!(e.to_string().contains("out.h5"), "{e}");
    assert_eq!(listing(d), ["a_file", "out.h5", "out.h5ad"]);
    assert!(d.join("out.h5ad").is_dir() && d.join("out.h5").is_dir());

    // Matrix Market: the matrix is renamed last; when that fails the folder has no matrix
    // file (it does not look complete) and no temporary file is left.
    let mtx = d.join("mtx");
    std::fs::create_dir_all(mtx.join("matrix.mtx.gz")).unwrap();
    std::fs::write(mtx.join("matrix.mtx.gz").join("keep"), "x").unwrap();
    let e = scrna::io::write_10x_mtx(&ds, &mtx, &Default::default()).unwrap_err();
    assert!(e.to_string().contains("matrix.mtx.gz"), "{e}");
    assert!(mtx.join("matrix.mtx.gz").is_dir());
    assert!(
        listing(&mtx).iter().all(|f| !f.ends_with(".partial")),
        "{:?}",
        listing(&mtx)
    );
    assert!(scrna::read_10x(&mtx).is_err());
}

/// Runs example `name` with a file-size limit (as on a full disk) and checks that the writes
/// past the limit fail, the run ends with one error line and status 1, and every file left
/// in `out` under a final name is complete (a file cut by the limit has exactly its size).
/// Returns the files left.
#[cfg(unix)]
fn out_of_space(name: &str, args: &[&str], cwd: &Path, out: &Path) -> Vec<String> {
    let limit_blocks = 64; // `ulimit -f` counts 512-byte blocks (POSIX sh) or 1024 (bash)
    let script = format!("trap '' XFSZ; ulimit -f {limit_blocks}; exec \"$0\" \"$@\"");
    let res = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(example(name))
        .args(args)
        .args(["--out", &out.display().to_string()])
        .current_dir(cwd)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: ") && last.contains("too large"),
        "{name}: {stderr}"
    );
    let files = listing(out);
    for f in &files {
        assert!(!f.contains(".partial"), "temporary file left: {files:?}");
        let len = std::fs::metadata(out.join(f)).unwrap().len();
        let cut = [512 * limit_blocks, 1024 * limit_blocks];
        assert!(
            !cut.contains(&len) && len < cut[1],
            "{f} ({len} bytes) is cut at the limit"
        );
    }
    files
}

/// The pipeline's tables and `.h5ad` under a file-size limit.
#[cfg(unix)]
#[test]
fn pipeline_out_of_space_leaves_no_partial_output() {
    let i = Inputs::new();
    let out = i.dir.path().join("out");
    let cr300 = root().join(CR300).display().to_string();
    let args = [
        "--input",
        &cr300,
        "--min-genes",
        "1",
        "--min-cells",
        "1",
        "--n-pcs",
        "5",
    ];
    let files = out_of_space("pipeline", &args, i.dir.path(), &out);
    assert!(
        !files.iter().any(|f| f == "analysis.h5ad"),
        "the h5ad is larger than the limit: {files:?}"
    );
}

/// The figures under a file-size limit (the images are larger than the limit).
#[cfg(unix)]
#[test]
fn plots_out_of_space_leave_no_cut_image() {
    let i = Inputs::new();
    let out = i.dir.path().join("plots");
    let args = ["--cells", "200", "--clusters", "3"];
    let files = out_of_space("plots_demo", &args, i.dir.path(), &out);
    assert!(
        !files.iter().any(|f| f == "umap_clusters.png"),
        "the image is larger than the limit: {files:?}"
    );
}
