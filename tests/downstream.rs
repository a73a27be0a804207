//! The downstream check: builds and runs `tests/downstream/`, a crate that depends on scrna by
//! path and uses only `scrna::prelude`, as a member of scrna's workspace (so scrna and the
//! dependencies built for the tests are reused) and with `--locked` against the workspace's
//! `Cargo.lock`. A type or
//! function the main job needs and the public API lacks fails the build; the run fails unless
//! the comparison finds the simulated resistant-only state (at least 90% of the called
//! cluster's cells planted there).

use std::path::Path;
use std::process::Command;

#[test]
fn a_dependent_crate_runs_the_main_job_through_the_prelude() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`, whatever the target folder is called.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--offline", "--locked", "--manifest-path"])
        .arg(root.join("tests/downstream/Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the downstream crate failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("resistant-only"), "{stdout}");
}
