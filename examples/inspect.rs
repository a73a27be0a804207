//! Summarises 10x inputs: `cargo run --release --example inspect -- PATH...`
//!
//! Prints one JSON line per path, `{"path":…, "format":…, "cells":N, "genes":N, "nnz":N,
//! "total_counts":X}`. A path that cannot be read prints `error: …` on stderr; the exit status
//! is then 1 (after the other paths are summarised).

use std::io::Write;

/// The JSON summary line of one input.
pub fn summary_line(path: &str) -> scrna::Result<String> {
    let format = scrna::io::detect_format(path)?;
    let ds = scrna::io::read_10x(path)?;
    let total = ds.counts.total();
    Ok(format!(
        "{{\"path\":{},\"format\":\"{}\",\"cells\":{},\"genes\":{},\"nnz\":{},\"total_counts\":{}}}",
        serde_json::Value::from(path),
        format.name(),
        ds.n_cells(),
        ds.n_genes(),
        ds.counts.nnz(),
        serde_json::Value::from(total)
    ))
}

/// Runs the example on `args`; returns the exit status.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if args.is_empty() {
        let _ = writeln!(err, "error: usage: inspect PATH...");
        return 1;
    }
    if let Some(opt) = args.iter().find(|a| a.starts_with('-')) {
        let _ = writeln!(
            err,
            "error: unknown option {opt:?}; usage: inspect PATH... (paths may not start with -)"
        );
        return 1;
    }
    let mut status = 0;
    for p in args {
        match summary_line(p) {
            Ok(line) => {
                let _ = writeln!(out, "{line}");
            }
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                status = 1;
            }
        }
    }
    status
}

#[allow(dead_code)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = run(&args, &mut std::io::stdout().lock(), &mut std::io::stderr());
    std::process::exit(status);
}
