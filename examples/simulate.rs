//! Writes a simulated dataset as a Cell Ranger 3 style 10x HDF5 file (for benchmarks and the
//! comparison with Scanpy in `benches/compare/`), or as one 10x HDF5 file per sample with a
//! sample sheet that `examples/pipeline.rs --sample-sheet` reads.
//!
//! ```text
//! cargo run --release --example simulate -- --cells N (--out FILE.h5 | --sample-sheet DIR)
//!     [--genes G] [--seed S] [--marker-fold F] [--truth CSV]
//!     [--study BATCH_SD] [--null] [--clusters K] [--conditions A,B,...]
//!     [--samples-per-condition N] [--condition-specific N] [--depleted-share F]
//!     [--batch-sd F] [--batch-library-sd F] [--doublet-rate F]
//!     [--shift-cluster K] [--shift-genes N] [--shift-fold LOW,HIGH] [--no-shift]
//!     [--composition-concentration A]
//! ```
//! Defaults: 20,000 genes, seed 0, the simulator's other defaults (8 clusters, marker fold 4,
//! two conditions of two samples, no batch effect, doublets, shift or composition variation).
//! `--study BATCH_SD` starts from `SimulateOptions::study(BATCH_SD, seed)` (12,000 cells,
//! 2+2 samples, 7 clusters, doublets, a program shift, ...), which the other flags then
//! change, with the gene symbols of the resistance example's simulation
//! (`simulate_resistance_with`: the planted programs and ligand-receptor pair are real
//! symbols); `--null` removes every difference between conditions (applied last; with
//! `--study` the planted programs then mark a cell type both conditions share).
//! `--shift-genes`/`--shift-fold` alone shift cluster 0. `--sample-sheet DIR` writes
//! `DIR/<sample>.h5` for every sample and `DIR/sheet.csv` (`sample,condition,path`).
//! `--truth` writes `barcode,cluster,condition,sample,doublet,second_cluster` of the simulated
//! cells (`second_cluster` empty for singlets). Bad arguments print one line and exit with
//! status 1.
//!
//! The cells are simulated and written 5,000 at a time
//! (`scrna::stream::write::write_simulated_cells`): memory grows little with `--cells` (a
//! million cells peaked at 1.0 GB, where holding them was killed at 24 GB).

use scrna::report::write_atomic;
use scrna::simulate::resistance::name_study_genes;
use scrna::simulate::{ProgramShift, SimulateOptions, Simulator, Truth};
use scrna::stream::write::write_simulated_cells;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: simulate --cells N (--out FILE.h5 | --sample-sheet DIR) [--genes G] \
    [--seed S] [--marker-fold F] [--truth CSV] [--study BATCH_SD] [--null] [--clusters K] \
    [--conditions A,B,...] [--samples-per-condition N] [--condition-specific N] \
    [--depleted-share F] [--batch-sd F] [--batch-library-sd F] [--doublet-rate F] \
    [--shift-cluster K] [--shift-genes N] [--shift-fold LOW,HIGH] [--no-shift] \
    [--composition-concentration A]";

fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: cannot read {v:?} as a number"))
}

/// The shift of `o`, created with the defaults (cluster 0) when there is none yet.
fn shift(o: &mut SimulateOptions) -> &mut ProgramShift {
    o.shift.get_or_insert_with(ProgramShift::default)
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The study design is the starting point when asked for, whatever the flags' order.
    let mut opts = match args.iter().position(|a| a == "--study") {
        Some(k) => {
            let v = args.get(k + 1).ok_or("--study needs a value")?;
            SimulateOptions::study(num("--study", v.clone())?, 0)
        }
        None => SimulateOptions::default(),
    };
    let mut out: Option<PathBuf> = None;
    let mut sheet: Option<PathBuf> = None;
    let mut truth: Option<PathBuf> = None;
    let mut null = false;
    let study = args.iter().any(|a| a == "--study");
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--cells" => opts.n_cells = num(&flag, value()?)?,
            "--genes" => opts.n_genes = num(&flag, value()?)?,
            "--seed" => opts.seed = num(&flag, value()?)?,
            "--marker-fold" => opts.marker_fold = num(&flag, value()?)?,
            "--study" => {
                value()?;
            }
            "--null" => null = true,
            "--clusters" => opts.n_clusters = num(&flag, value()?)?,
            "--conditions" => {
                opts.conditions = value()?.split(',').map(|s| s.trim().to_string()).collect();
                if opts.conditions.iter().any(|c| c.is_empty()) {
                    return Err("--conditions: a condition name is empty".into());
                }
            }
            "--samples-per-condition" => opts.samples_per_condition = num(&flag, value()?)?,
            "--condition-specific" => opts.condition_specific = num(&flag, value()?)?,
            "--depleted-share" => opts.depleted_share = num(&flag, value()?)?,
            "--batch-sd" => opts.batch_sd = num(&flag, value()?)?,
            "--batch-library-sd" => opts.batch_library_sd = num(&flag, value()?)?,
            "--doublet-rate" => opts.doublet_rate = num(&flag, value()?)?,
            "--shift-cluster" => shift(&mut opts).cluster = num(&flag, value()?)?,
            "--shift-genes" => shift(&mut opts).n_genes = num(&flag, value()?)?,
            "--shift-fold" => {
                let v = value()?;
                let (lo, hi) = v
                    .split_once(',')
                    .ok_or_else(|| format!("--shift-fold: expected LOW,HIGH, got {v:?}"))?;
                shift(&mut opts).fold = (
                    num(&flag, lo.trim().to_string())?,
                    num(&flag, hi.trim().to_string())?,
                );
            }
            "--no-shift" => opts.shift = None,
            "--composition-concentration" => {
                opts.composition_concentration = Some(num(&flag, value()?)?)
            }
            "--truth" => truth = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--sample-sheet" => sheet = Some(PathBuf::from(value()?)),
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other:?}; try --help")),
        }
    }
    if null {
        opts = opts.without_condition_effects();
    }
    if out.is_none() && sheet.is_none() {
        return Err("--out FILE.h5 or --sample-sheet DIR is required".into());
    }
    if let Some(dir) = &sheet {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let t = Instant::now();
    // Simulated block by block straight into the files (the counts of a million cells do not
    // fit in memory); the files hold the counts of `simulate` (`simulate_resistance_with`
    // with --study, whose genes are renamed: only their symbols differ).
    let sim = Simulator::new(&opts).map_err(|e| e.to_string())?;
    let tr = sim.truth();
    let mut genes = sim.genes();
    if study {
        name_study_genes(&tr, &mut genes).map_err(|e| e.to_string())?;
    }
    if let Some(path) = &truth {
        write_truth(path, &sim.barcodes(), &tr, &opts)?;
    }
    let mut written = Vec::new();
    let mut nnz = 0;
    if let Some(out) = &out {
        let rep = write_simulated_cells(&sim, &genes, 0..opts.n_cells, out, CHUNK_CELLS)
            .map_err(|e| e.to_string())?;
        nnz = rep.nnz;
        written.push(out.display().to_string());
    }
    if let Some(dir) = &sheet {
        let mut lines = Vec::new();
        let mut sheet_nnz = 0;
        for (k, name) in tr.sample_names.iter().enumerate() {
            let cells = sim.cells_of_sample(k);
            let file = format!("{name}.h5");
            let rep = write_simulated_cells(&sim, &genes, cells, &dir.join(&file), CHUNK_CELLS)
                .map_err(|e| e.to_string())?;
            sheet_nnz += rep.nnz;
            lines.push(sheet_line(&opts, k, name, &file));
        }
        nnz = sheet_nnz;
        written.push(write_sheet(dir, &lines)?);
    }
    eprintln!(
        "{} cells x {} genes ({nnz} non-zeros, {} doublets): simulated and written to {} in \
         {:.1} s",
        opts.n_cells,
        opts.n_genes,
        tr.doublet.iter().filter(|&&d| d).count(),
        written.join(" and "),
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

/// Cells simulated and written at a time when the design is simulated block by block.
const CHUNK_CELLS: usize = 5_000;

/// Writes `barcode,cluster,condition,sample,doublet,second_cluster` of every simulated cell.
fn write_truth(
    path: &Path,
    barcodes: &[String],
    tr: &Truth,
    opts: &SimulateOptions,
) -> Result<(), String> {
    write_atomic(path, |w| {
        writeln!(w, "barcode,cluster,condition,sample,doublet,second_cluster")?;
        for (i, b) in barcodes.iter().enumerate() {
            let second = match tr.doublet_parents[i] {
                Some((_, b)) => b.to_string(),
                None => String::new(),
            };
            writeln!(
                w,
                "{b},{},{},{},{},{second}",
                tr.cluster[i],
                opts.conditions[tr.condition[i] as usize],
                tr.sample_names[tr.sample[i] as usize],
                tr.doublet[i],
            )?;
        }
        Ok(())
    })
    .map_err(|e| e.to_string())
}

/// The sample sheet's line of sample `k` (`name`) written to `file`.
fn sheet_line(opts: &SimulateOptions, k: usize, name: &str, file: &str) -> String {
    let condition = &opts.conditions[k / opts.samples_per_condition];
    format!("{name},{condition},{file}")
}

/// Writes `dir/sheet.csv` (`sample,condition,path`) and says what it wrote.
fn write_sheet(dir: &Path, lines: &[String]) -> Result<String, String> {
    let path = dir.join("sheet.csv");
    write_atomic(&path, |w| {
        writeln!(w, "sample,condition,path")?;
        for l in lines {
            writeln!(w, "{l}")?;
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(format!("{} ({} samples)", path.display(), lines.len()))
}
