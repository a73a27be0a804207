//! The main job: the standard clustering analysis of one or many 10x samples.
//!
//! ```text
//! cargo run --release --example pipeline -- --help
//! ```
//! With no input it runs on the bundled `celltypist_sample` dataset and writes to `results/`;
//! `--simulate N` runs on N simulated cells x 20,000 genes instead (for timing at scale).
//!
//! `--stream` runs the streamed (out-of-core) analysis of `scrna::stream` on one 10x HDF5 or
//! `.h5ad` `--input` (CSR `X`, or `--layer NAME` such as `counts`), with `--memory-budget`
//! (default 8G; K/M/G/T suffixes, binary) and optionally a fixed `--chunk-cells`.
//! `--simulate N --sim-h5 PATH` writes N simulated cells to a 10x HDF5 file block by block
//! (never holding the matrix) and exits; with `--stream` as well it then analyses that file.
//! Built with `--features distributed`, `--stream --processes N` runs the streamed analysis as
//! N processes on this machine (`--workers W` threads each); on several hosts start process P
//! with `--process P --hosts FILE` (one `host:port` per process). The result files are the
//! same as the single-process run's.
//! The options and the output folder are checked before any input is read; progress goes to
//! stderr; bad arguments or input print one line and exit with status 1.

#[path = "support/cli.rs"]
mod cli;

use clap::Parser;
use cli::StepBar;
use scrna::io::inputs::{read_inputs, InputOptions};
use scrna::io::samples::resolve_inputs;
use scrna::pipeline::{self, PipelineOptions, StepReport};
use scrna::report::{check_output_dir, peak_rss_bytes, reset_peak_rss};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

const BUNDLED: &str = "fixtures/celltypist_sample/filtered_feature_bc_matrix";

/// The standard clustering analysis (QC, normalization, HVG, PCA, kNN, Leiden, UMAP, markers)
/// of one or many 10x samples.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// A 10x Matrix Market folder, 10x HDF5 file or .h5ad file (repeatable; the bundled
    /// celltypist sample when no input is given).
    #[arg(long = "input", value_name = "PATH")]
    inputs: Vec<PathBuf>,
    /// CSV with columns sample,condition,path (one row per 10x sample).
    #[arg(long, value_name = "CSV")]
    sample_sheet: Option<PathBuf>,
    /// Output folder (created when missing).
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Leiden resolution.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    resolution: f64,
    /// Seed of the run (PCA start, approximate kNN, Leiden, UMAP).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Principal components.
    #[arg(long, default_value_t = 50)]
    n_pcs: usize,
    /// Neighbours per cell (the cell itself included).
    #[arg(long, default_value_t = 15)]
    n_neighbors: usize,
    /// Highly variable genes.
    #[arg(long, default_value_t = 2000)]
    n_top_genes: usize,
    /// Cells need at least this many detected genes.
    #[arg(long, default_value_t = 200)]
    min_genes: u32,
    /// Genes need to be detected in at least this many cells.
    #[arg(long, default_value_t = 3)]
    min_cells: u32,
    /// Keep the predicted doublets (they are scored and reported, not removed).
    #[arg(long)]
    keep_doublets: bool,
    /// Do not look for doublets (by default each sample is scored when there are several).
    #[arg(long)]
    no_doublets: bool,
    /// Do not integrate the samples (by default Harmony over --batch-key when there are
    /// several batches).
    #[arg(long)]
    no_integration: bool,
    /// The cell-table key whose values are the batches of the integration.
    #[arg(long, default_value = "sample")]
    batch_key: String,
    /// Worker threads (all cores when not given).
    #[arg(long)]
    threads: Option<usize>,
    /// Run on this many simulated cells x 20,000 genes instead of an input.
    #[arg(long, value_name = "N_CELLS")]
    simulate: Option<usize>,
    /// Streamed (out-of-core) analysis of one 10x HDF5 or .h5ad input.
    #[arg(long)]
    stream: bool,
    /// Memory budget of the streamed analysis (K/M/G/T suffixes, binary).
    #[arg(long, default_value = "8G", value_parser = parse_budget)]
    memory_budget: u64,
    /// Cells per block of the streamed analysis (chosen from the budget when not given).
    #[arg(long)]
    chunk_cells: Option<usize>,
    /// Directory for the streamed analysis's gene-major spill of the counts (removed after the
    /// run; about 2 bytes per stored value). Default: the --out directory.
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<PathBuf>,
    /// With --simulate: write the simulated cells to this 10x HDF5 file and exit (or analyse it
    /// with --stream).
    #[arg(long, value_name = "PATH")]
    sim_h5: Option<PathBuf>,
    /// The .h5ad matrix holding the raw counts: a layer name (for example `counts`) or `X`
    /// (by default the first of X, layers counts / raw_counts / umi_counts / raw, raw/X that
    /// holds integer counts).
    #[arg(long, value_name = "NAME")]
    layer: Option<String>,
    /// Take non-integer values as counts (for data that really are non-integer, such as
    /// ambient-corrected counts); noted in the warnings.
    #[arg(long)]
    assume_counts: bool,
    /// How samples with different genes are joined: strict (the same genes, else an error),
    /// intersection (the shared genes), union (all genes, missing ones counted 0).
    #[arg(long, default_value = "strict", value_parser = parse_join)]
    join: scrna::io::Join,
    /// Storage of the sparse matrices in analysis.h5ad: none (as anndata), gzip (level 4) or
    /// gzip:LEVEL (0-9).
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    h5ad_compression: scrna::io::h5ad::H5adCompression,
    /// Do not write report.html (the one-page interactive report).
    #[arg(long)]
    no_report: bool,
    /// With --stream: run it as this many processes (build with `--features distributed`).
    /// Without --process, starts them all on this machine (loopback) and waits for them.
    #[arg(long, value_name = "N")]
    processes: Option<usize>,
    /// With --stream --hosts: this process's number, 0 to N-1 (process 0 writes the results).
    #[arg(long, value_name = "P")]
    process: Option<usize>,
    /// With --stream --process: a file with one host:port per process, in process order.
    #[arg(long, value_name = "FILE")]
    hosts: Option<PathBuf>,
    /// Worker threads per process of a distributed run.
    #[arg(long, default_value_t = 1, value_name = "W")]
    workers: usize,
    /// The processes' addresses, given by the launcher to the processes it starts.
    #[arg(long, hide = true, value_delimiter = ',')]
    addresses: Vec<String>,
}

fn parse_compression(s: &str) -> Result<scrna::io::h5ad::H5adCompression, String> {
    s.parse().map_err(|e: scrna::Error| e.to_string())
}

fn parse_join(s: &str) -> Result<scrna::io::Join, String> {
    s.parse().map_err(|e: scrna::Error| e.to_string())
}

fn parse_budget(s: &str) -> Result<u64, String> {
    scrna::stream::parse_bytes(s).map_err(|e| e.to_string())
}

impl Args {
    fn options(&self) -> PipelineOptions {
        let mut o = PipelineOptions::default().seeded(self.seed);
        o.leiden.resolution = self.resolution;
        o.pca.n_comps = self.n_pcs;
        o.knn.n_neighbors = self.n_neighbors;
        o.hvg.n_top_genes = Some(self.n_top_genes);
        o.filter.min_genes = Some(self.min_genes);
        o.filter.min_cells = Some(self.min_cells);
        o.threads = self.threads;
        o.remove_doublets = !self.keep_doublets;
        if self.no_doublets {
            o.doublets = pipeline::Switch::Off;
        }
        if self.no_integration {
            o.integration = pipeline::Switch::Off;
        }
        o.batch_key = self.batch_key.clone();
        o.h5ad_compression = self.h5ad_compression;
        o
    }
}

fn run(args: &Args) -> scrna::Result<()> {
    let opts = args.options();
    // Options and the output folder are checked before any input is read.
    opts.validate()?;
    if args.sim_h5.is_none() || args.stream {
        check_output_dir(&args.out)?;
    }
    if let (Some(_), Some(h5), Some(_)) = (args.simulate, &args.sim_h5, args.process) {
        // A process of a distributed run: the launcher has written the file.
        return analyse_streamed(h5, args, &opts);
    }
    if let (Some(n), Some(h5)) = (args.simulate, &args.sim_h5) {
        let t = Instant::now();
        reset_peak_rss();
        eprintln!(
            "simulating {n} cells x 20000 genes (seed 0) into {}",
            h5.display()
        );
        let rep = scrna::stream::write::simulate_10x_h5(
            &scrna::simulate::SimulateOptions {
                n_cells: n,
                ..Default::default()
            },
            h5,
            args.chunk_cells.unwrap_or(5_000),
        )?;
        println!(
            "wrote {} cells, {} stored values, {:.1} MB in {:.1} s (peak {:.1} MB)",
            rep.n_cells,
            rep.nnz,
            rep.file_bytes as f64 / 1_048_576.0,
            t.elapsed().as_secs_f64(),
            peak_rss_bytes().unwrap_or(0) as f64 / 1_048_576.0
        );
        return if args.stream {
            analyse_streamed(h5, args, &opts)
        } else {
            Ok(())
        };
    }
    if args.stream {
        return match args.inputs.as_slice() {
            [one] => analyse_streamed(one, args, &opts),
            _ => Err(scrna::Error::option(
                "stream",
                "--stream needs exactly one 10x HDF5 --input (or --simulate N --sim-h5 PATH)",
            )),
        };
    }
    if let Some(n) = args.simulate {
        eprintln!("simulating {n} cells x 20000 genes (seed 0)");
        let t = Instant::now();
        let sim = scrna::simulate::simulate(&scrna::simulate::SimulateOptions {
            n_cells: n,
            ..Default::default()
        })?;
        eprintln!("simulated in {:.1} s", t.elapsed().as_secs_f64());
        return analyse(sim.dataset, args, &opts, None, Vec::new());
    }
    let specs = resolve_inputs(
        &args.inputs,
        args.sample_sheet.as_deref(),
        Some(Path::new(BUNDLED)),
    )?;
    reset_peak_rss();
    let started = Instant::now();
    let mut io = InputOptions::default();
    io.read.layer = args.layer.clone();
    io.read.assume_counts = args.assume_counts;
    io.concat.join = args.join;
    let inputs = read_inputs(&specs, &io)?;
    let read = StepReport {
        step: "read",
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
    };
    for l in inputs.report.lines() {
        eprintln!("{l}");
    }
    // A sample none of whose cells passes QC stops the run in the QC step (the first).
    analyse(
        inputs.dataset,
        args,
        &opts,
        Some(read),
        inputs.report.warnings,
    )
}

/// Runs the pipeline and writes its outputs; `read`, the time and memory of reading the input,
/// goes first in the step table and in `summary.json`, and the input's warnings (`notes`)
/// join the analysis' warnings.
/// The dataset is given up to the pipeline, which filters it in place.
fn analyse(
    data: scrna::Dataset,
    args: &Args,
    opts: &PipelineOptions,
    read: Option<StepReport>,
    notes: Vec<String>,
) -> scrna::Result<()> {
    eprintln!("{} cells x {} genes", data.n_cells(), data.n_genes());
    let bar = StepBar::new();
    // analysis.h5ad is written while the UMAP layout is computed, the last step.
    std::fs::create_dir_all(&args.out).map_err(|e| scrna::Error::io(&args.out, e))?;
    let h5ad = args.out.join("analysis.h5ad");
    let (mut analysis, h5ad) =
        pipeline::run_owned_with_h5ad(data, opts, &h5ad, &mut |p| bar.show(p))?;
    bar.finish();
    analysis.steps.splice(0..0, read);
    analysis.warnings.splice(0..0, notes);
    let started = Instant::now();
    let ro = scrna::html_report::ReportOptions {
        pipeline: Some(opts.clone()),
        ..Default::default()
    };
    let report = (!args.no_report).then_some(&ro);
    let files = pipeline::output::write_rest_with_report(&analysis, opts, &args.out, report, h5ad)?;
    let written = started.elapsed().as_secs_f64();

    print_steps(&analysis.steps);
    if let Some(d) = &analysis.doublets {
        for s in &d.per_sample {
            match &s.skipped {
                Some(why) => println!("doublets: sample {} not scored: {why}", s.sample),
                None => println!(
                    "doublets: sample {}: {} of {} cells predicted doublets{}",
                    s.sample,
                    s.n_predicted,
                    s.n_cells,
                    if !d.removed {
                        ", kept"
                    } else if d.kept.contains(&s.sample) {
                        ", kept (an implausible share: see the warning)"
                    } else {
                        ", removed"
                    }
                ),
            }
        }
    }
    if let Some(i) = &analysis.integration {
        println!(
            "integration: Harmony over {} ({} batches), {} rounds{}; mean batch LISI {:.2} -> {:.2}",
            i.batch_key,
            i.batches.len(),
            i.harmony.iterations,
            if i.harmony.converged { "" } else { " (not converged)" },
            i.lisi_before,
            i.lisi_after
        );
    }
    for l in &analysis.design_limits {
        println!("design limit: {l}");
    }
    for w in &analysis.warnings {
        eprintln!("warning: {w}");
    }
    let sizes = analysis.cluster_sizes();
    println!(
        "{} of {} cells passed QC; {} genes kept, {} highly variable",
        analysis.dataset().n_cells(),
        analysis.input_shape.0,
        analysis.dataset().n_genes(),
        analysis.hvg_genes.len()
    );
    println!(
        "{} clusters (sizes: {})",
        sizes.len(),
        sizes
            .iter()
            .enumerate()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{} files written to {} in {written:.1} s after the steps (analysis.h5ad during the \
         umap step)",
        files.len(),
        args.out.display()
    );
    for f in &files {
        eprintln!(
            "  {:<22} {:>7.2} s {:>9.1} MB",
            f.path.file_name().unwrap_or_default().to_string_lossy(),
            f.seconds,
            f.bytes as f64 / 1_048_576.0
        );
    }
    Ok(())
}

fn print_steps(steps: &[StepReport]) {
    for s in steps {
        eprintln!(
            "  {:<10} {:>8.2} s  {:>8.1} MB peak",
            s.step,
            s.seconds,
            s.peak_rss_bytes.unwrap_or(0) as f64 / 1_048_576.0
        );
    }
}

fn analyse_streamed(path: &Path, args: &Args, opts: &PipelineOptions) -> scrna::Result<()> {
    let so = scrna::stream::StreamOptions {
        read: scrna::io::ReadOptions {
            assume_counts: args.assume_counts,
            ..Default::default()
        },
        pipeline: opts.clone(),
        chunk_cells: args.chunk_cells,
        memory_budget_bytes: args.memory_budget,
        layer: args.layer.clone(),
        spill_dir: Some(args.spill_dir.clone().unwrap_or_else(|| args.out.clone())),
    };
    if args.spill_dir.is_none() {
        std::fs::create_dir_all(&args.out)
            .map_err(|e| scrna::Error::data("output", format!("{}: {e}", args.out.display())))?;
    }
    if args.processes.is_some() || args.process.is_some() || args.hosts.is_some() {
        return distributed::analyse(path, args, &so);
    }
    eprintln!(
        "streaming {} with a memory budget of {:.1} MB",
        path.display(),
        args.memory_budget as f64 / 1_048_576.0
    );
    let bar = StepBar::new();
    let a = scrna::stream::run_with_progress(path, &so, &mut |p| bar.show(p))?;
    bar.finish();
    report_streamed(&a, args, &so)
}

/// Writes the streamed analysis's files and prints what it did.
fn report_streamed(
    a: &scrna::stream::StreamAnalysis,
    args: &Args,
    so: &scrna::stream::StreamOptions,
) -> scrna::Result<()> {
    let files = scrna::stream::output::write_all(a, so, &args.out)?;
    print_steps(&a.steps);
    for r in &a.exchange {
        println!(
            "  exchanged in {:<16} {:>10.1} MB ({:.1} MB between processes) in {} messages",
            r.pass,
            r.bytes as f64 / 1e6,
            r.network_bytes as f64 / 1e6,
            r.messages
        );
    }
    println!(
        "{} of {} cells passed QC; {} genes kept, {} highly variable; {} passes over the file \
         ({} cell blocks, {} marker gene blocks, spill {:.1} MB)",
        a.cells.keep_cells.len(),
        a.input_shape.0,
        a.kept_genes.len(),
        a.hvg_genes.len(),
        a.passes,
        a.plan.cell_blocks.len(),
        a.plan.marker_blocks.len(),
        a.plan.spill_bytes as f64 / 1e6
    );
    println!(
        "{} clusters; peak {:.1} MB within a budget of {:.1} MB{}",
        a.clustering.n_clusters,
        a.peak_rss_bytes.unwrap_or(0) as f64 / 1_048_576.0,
        args.memory_budget as f64 / 1_048_576.0,
        if a.workers > 1 {
            format!(" (process 0 of {} workers)", a.workers)
        } else {
            String::new()
        }
    );
    println!("{} files written to {}", files.len(), args.out.display());
    Ok(())
}

/// The streamed analysis over several processes (`--processes`, `--process`, `--hosts`).
#[cfg(feature = "distributed")]
mod distributed {
    use super::{report_streamed, Args, StepBar};
    use scrna::distributed::{launch, loopback_addresses, Cluster, SendProgress};
    use scrna::stream::StreamOptions;
    use scrna::Error;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    pub fn analyse(path: &Path, args: &Args, so: &StreamOptions) -> scrna::Result<()> {
        let Some(process) = args.process else {
            let n = match (args.processes, &args.hosts) {
                (_, Some(_)) => {
                    return Err(Error::option(
                        "process",
                        "with --hosts, start each process on its host with --process P",
                    ))
                }
                (Some(n), None) if n >= 1 => n,
                _ => return Err(Error::option("processes", "must be at least 1")),
            };
            // Start the processes here, on loopback, and wait for them.
            let addresses = loopback_addresses(n)?.join(",");
            let exe =
                std::env::current_exe().map_err(|e| Error::data("launcher", e.to_string()))?;
            let argv: Vec<String> = std::env::args().skip(1).collect();
            eprintln!(
                "starting {n} processes of {} worker thread(s) on this machine",
                args.workers
            );
            return launch(
                n,
                |p| {
                    let mut c = std::process::Command::new(&exe);
                    c.args(&argv)
                        .args(["--process", &p.to_string(), "--addresses", &addresses]);
                    c
                },
                Duration::from_secs(10),
            );
        };
        let cluster = if !args.addresses.is_empty() {
            Cluster {
                process,
                threads: args.workers,
                addresses: args.addresses.clone(),
            }
        } else if let Some(h) = &args.hosts {
            Cluster::from_host_file(h, process, args.workers)?
        } else {
            return Err(Error::option("hosts", "--process needs --hosts FILE"));
        };
        if args.processes.is_some_and(|n| n != cluster.processes()) {
            return Err(Error::option(
                "processes",
                format!("the host list has {} processes", cluster.processes()),
            ));
        }
        let bar = Arc::new(StepBar::new());
        let progress = (process == 0).then(|| {
            let b = Arc::clone(&bar);
            Box::new(move |p: &scrna::pipeline::Progress| b.show(p)) as SendProgress
        });
        let a = scrna::distributed::run(path, so, &cluster, progress)?;
        bar.finish();
        match a {
            Some(a) => report_streamed(&a, args, so),
            None => Ok(()),
        }
    }
}

/// Without the `distributed` feature: say how to get it.
#[cfg(not(feature = "distributed"))]
mod distributed {
    use super::Args;
    use scrna::stream::StreamOptions;
    use std::path::Path;

    pub fn analyse(_: &Path, _: &Args, _: &StreamOptions) -> scrna::Result<()> {
        Err(scrna::Error::option(
            "processes",
            "this build has no distributed run: build with \
             `cargo run --release --features distributed --example pipeline -- ...`",
        ))
    }
}

fn main() -> ExitCode {
    cli::main(|a: &Args| a.threads, run)
}
