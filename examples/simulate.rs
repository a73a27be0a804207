//! Writes a simulated dataset as a Cell Ranger 3 style 10x HDF5 file (for benchmarks and the
//! comparison with Scanpy in `benches/compare/`).
//!
//! ```text
//! cargo run --release --example simulate -- --cells N --out FILE.h5 [--genes G] [--seed S]
//!     [--marker-fold F] [--truth CSV]
//! ```
//! Defaults: 20,000 genes, seed 0, the simulator's other defaults (8 clusters, marker fold 4,
//! two conditions). `--truth` writes `barcode,cluster,condition` of the simulated cells.
//! Bad arguments print one line and exit with status 1.

use scrna::io::tenx_h5::write_10x_h5;
use scrna::report::write_atomic;
use scrna::simulate::{simulate, SimulateOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn run() -> Result<(), String> {
    let mut opts = SimulateOptions::default();
    let mut out: Option<PathBuf> = None;
    let mut truth: Option<PathBuf> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: cannot read {v:?} as a number"))
        }
        match flag.as_str() {
            "--cells" => opts.n_cells = num(&flag, value()?)?,
            "--genes" => opts.n_genes = num(&flag, value()?)?,
            "--seed" => opts.seed = num(&flag, value()?)?,
            "--marker-fold" => opts.marker_fold = num(&flag, value()?)?,
            "--truth" => truth = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--help" | "-h" => {
                return Err(
                    "usage: simulate --cells N --out FILE.h5 [--genes G] [--seed S] \
                            [--marker-fold F] [--truth CSV]"
                        .into(),
                )
            }
            other => return Err(format!("unknown option {other:?}; try --help")),
        }
    }
    let out = out.ok_or("--out FILE.h5 is required")?;
    let t = Instant::now();
    let sim = simulate(&opts).map_err(|e| e.to_string())?;
    let simulated = t.elapsed().as_secs_f64();
    if let Some(path) = &truth {
        write_atomic(path, |w| {
            writeln!(w, "barcode,cluster,condition")?;
            for (i, b) in sim.dataset.cells.barcodes.iter().enumerate() {
                writeln!(
                    w,
                    "{b},{},{}",
                    sim.truth.cluster[i], opts.conditions[sim.truth.condition[i] as usize]
                )?;
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    }
    let t = Instant::now();
    write_10x_h5(&sim.dataset, &out).map_err(|e| e.to_string())?;
    eprintln!(
        "{} cells x {} genes ({} non-zeros): simulated in {simulated:.1} s, written to {} in {:.1} s",
        sim.dataset.n_cells(),
        sim.dataset.n_genes(),
        sim.dataset.counts.nnz(),
        out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
