//! The main job: the standard clustering analysis of one or many 10x samples.
//!
//! ```text
//! cargo run --release --example pipeline -- [--input PATH]... [--sample-sheet CSV] [--out DIR]
//!     [--resolution R] [--seed N] [--n-pcs N] [--n-neighbors K] [--n-top-genes N]
//!     [--min-genes N] [--min-cells N] [--threads N] [--simulate N_CELLS]
//!     [--stream] [--memory-budget SIZE] [--chunk-cells N] [--sim-h5 PATH] [--layer NAME]
//! ```
//! With no input it runs on the bundled `celltypist_sample` dataset and writes to `results/`;
//! `--simulate N` runs on N simulated cells x 20,000 genes instead (for timing at scale).
//!
//! `--stream` runs the streamed (out-of-core) analysis of `scrna::stream` on one 10x HDF5 or
//! `.h5ad` `--input` (CSR `X`, or `--layer NAME` such as `counts`), with `--memory-budget`
//! (default 8G; K/M/G/T suffixes, binary) and optionally a fixed `--chunk-cells`.
//! `--simulate N --sim-h5 PATH` writes N simulated cells to a 10x HDF5 file block by block
//! (never holding the matrix) and exits; with `--stream` as well it then analyses that file.
//! Progress goes to stderr; bad arguments or input print one line and exit with status 1.

use scrna::io::samples::{read_sample_sheet, read_samples, ConcatOptions, SampleSpec};
use scrna::pipeline::{self, PipelineOptions, Progress, StepReport};
use scrna::report::{peak_rss_bytes, reset_peak_rss};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const BUNDLED: &str = "fixtures/celltypist_sample/filtered_feature_bc_matrix";

struct Args {
    inputs: Vec<PathBuf>,
    sample_sheet: Option<PathBuf>,
    out: PathBuf,
    threads: Option<usize>,
    simulate: Option<usize>,
    stream: bool,
    memory_budget: u64,
    chunk_cells: Option<usize>,
    sim_h5: Option<PathBuf>,
    layer: Option<String>,
    opts: PipelineOptions,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        inputs: Vec::new(),
        sample_sheet: None,
        out: PathBuf::from("results"),
        threads: None,
        simulate: None,
        stream: false,
        memory_budget: 8 << 30,
        chunk_cells: None,
        sim_h5: None,
        layer: None,
        opts: PipelineOptions::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(usage());
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: cannot read {v:?} as a number"))
        }
        match flag.as_str() {
            "--input" => a.inputs.push(PathBuf::from(value()?)),
            "--sample-sheet" => a.sample_sheet = Some(PathBuf::from(value()?)),
            "--out" => a.out = PathBuf::from(value()?),
            "--resolution" => a.opts.leiden.resolution = num(&flag, value()?)?,
            "--seed" => {
                let s: u64 = num(&flag, value()?)?;
                a.opts.pca.seed = s;
                a.opts.knn.seed = s;
                a.opts.leiden.seed = s;
                a.opts.umap.seed = s;
            }
            "--n-pcs" => a.opts.pca.n_comps = num(&flag, value()?)?,
            "--n-neighbors" => a.opts.knn.n_neighbors = num(&flag, value()?)?,
            "--n-top-genes" => a.opts.hvg.n_top_genes = Some(num(&flag, value()?)?),
            "--min-genes" => a.opts.filter.min_genes = Some(num(&flag, value()?)?),
            "--min-cells" => a.opts.filter.min_cells = Some(num(&flag, value()?)?),
            "--threads" => a.threads = Some(num(&flag, value()?)?),
            "--simulate" => a.simulate = Some(num(&flag, value()?)?),
            "--stream" => a.stream = true,
            "--memory-budget" => {
                a.memory_budget =
                    scrna::stream::parse_bytes(&value()?).map_err(|e| format!("{flag}: {e}"))?
            }
            "--chunk-cells" => a.chunk_cells = Some(num(&flag, value()?)?),
            "--sim-h5" => a.sim_h5 = Some(PathBuf::from(value()?)),
            "--layer" => a.layer = Some(value()?),
            other => return Err(format!("unknown option {other:?}; try --help")),
        }
    }
    Ok(a)
}

fn usage() -> String {
    "usage: pipeline [--input PATH]... [--sample-sheet CSV] [--out DIR] [--resolution R] \
     [--seed N] [--n-pcs N] [--n-neighbors K] [--n-top-genes N] [--min-genes N] \
     [--min-cells N] [--threads N] [--simulate N_CELLS] [--stream] [--memory-budget SIZE] \
     [--chunk-cells N] [--sim-h5 PATH] [--layer NAME]"
        .to_string()
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| format!("--threads: {e}"))?;
    }
    if let (Some(n), Some(h5)) = (args.simulate, &args.sim_h5) {
        let t = std::time::Instant::now();
        scrna::report::reset_peak_rss();
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
        )
        .map_err(|e| e.to_string())?;
        println!(
            "wrote {} cells, {} stored values, {:.1} MB in {:.1} s (peak {:.1} MB)",
            rep.n_cells,
            rep.nnz,
            rep.file_bytes as f64 / 1_048_576.0,
            t.elapsed().as_secs_f64(),
            scrna::report::peak_rss_bytes().unwrap_or(0) as f64 / 1_048_576.0
        );
        if !args.stream {
            return Ok(());
        }
        return analyse_streamed(h5, &args);
    }
    if args.stream {
        let input = match args.inputs.as_slice() {
            [one] => one.clone(),
            _ => {
                return Err(
                    "--stream needs exactly one 10x HDF5 --input (or --simulate N \
                 --sim-h5 PATH)"
                        .to_string(),
                )
            }
        };
        return analyse_streamed(&input, &args);
    }
    if let Some(n) = args.simulate {
        eprintln!("simulating {n} cells x 20000 genes (seed 0)");
        let t = std::time::Instant::now();
        let sim = scrna::simulate::simulate(&scrna::simulate::SimulateOptions {
            n_cells: n,
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
        eprintln!("simulated in {:.1} s", t.elapsed().as_secs_f64());
        return analyse(sim.dataset, &args, None);
    }
    let mut specs: Vec<SampleSpec> = match &args.sample_sheet {
        Some(sheet) => read_sample_sheet(sheet).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let inputs = if args.inputs.is_empty() && specs.is_empty() {
        vec![PathBuf::from(BUNDLED)]
    } else {
        args.inputs.clone()
    };
    for (k, p) in inputs.iter().enumerate() {
        specs.push(SampleSpec {
            name: if inputs.len() == 1 && specs.is_empty() {
                "sample".to_string()
            } else {
                format!("sample{}", k + 1)
            },
            condition: "none".to_string(),
            path: p.clone(),
        });
    }
    // Nothing is printed before the input is read: bad input gives exactly one line.
    reset_peak_rss();
    let started = Instant::now();
    // One sample keeps its barcodes as they are; several get `-<sample>` suffixes.
    let data = match specs.as_slice() {
        [one] => scrna::read_10x_with(
            &one.path,
            &scrna::ReadOptions {
                sample: one.name.clone(),
                condition: one.condition.clone(),
                ..Default::default()
            },
        ),
        _ => read_samples(&specs, &Default::default(), &ConcatOptions::default()),
    }
    .map_err(|e| e.to_string())?;
    let read = StepReport {
        step: "read",
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
    };
    eprintln!("read {} sample(s)", specs.len());
    analyse(data, &args, Some(read))
}

/// Runs the pipeline and writes its outputs; `read`, the time and memory of reading the input,
/// goes first in the step table and in `summary.json`.
/// The dataset is given up to the pipeline, which filters it in place.
fn analyse(data: scrna::Dataset, args: &Args, read: Option<StepReport>) -> Result<(), String> {
    eprintln!("{} cells x {} genes", data.n_cells(), data.n_genes());
    let terminal = std::io::stderr().is_terminal();
    let mut on_progress = |p: &Progress| show_progress(p, terminal);
    let mut analysis =
        pipeline::run_owned(data, &args.opts, &mut on_progress).map_err(|e| e.to_string())?;
    analysis.steps.splice(0..0, read);
    let started = Instant::now();
    let files =
        pipeline::output::write_all(&analysis, &args.opts, &args.out).map_err(|e| e.to_string())?;
    let written = started.elapsed().as_secs_f64();

    for s in &analysis.steps {
        eprintln!(
            "  {:<10} {:>8.2} s  {:>8.1} MB peak",
            s.step,
            s.seconds,
            s.peak_rss_bytes.unwrap_or(0) as f64 / 1_048_576.0
        );
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
        "{} files written to {} in {written:.1} s",
        files.len(),
        args.out.display()
    );
    Ok(())
}

/// A progress bar redrawn in place on a terminal; one line per step otherwise (logs).
fn show_progress(p: &Progress, terminal: bool) {
    if !terminal {
        if p.fraction == 0.0 {
            eprintln!("[{}/{}] {} ...", p.index, p.total, p.step);
        }
        return;
    }
    const WIDTH: usize = 30;
    let filled = ((p.fraction * WIDTH as f64).round() as usize).min(WIDTH);
    eprint!(
        "\r[{}/{}] {:<10} [{}{}] {:>3.0}%",
        p.index,
        p.total,
        p.step,
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        p.fraction * 100.0
    );
    if p.fraction >= 1.0 {
        eprintln!();
    }
}

fn analyse_streamed(path: &std::path::Path, args: &Args) -> Result<(), String> {
    let so = scrna::stream::StreamOptions {
        pipeline: args.opts.clone(),
        chunk_cells: args.chunk_cells,
        memory_budget_bytes: args.memory_budget,
        layer: args.layer.clone(),
        ..Default::default()
    };
    eprintln!(
        "streaming {} with a memory budget of {:.1} MB",
        path.display(),
        args.memory_budget as f64 / 1_048_576.0
    );
    let terminal = std::io::stderr().is_terminal();
    let mut on_progress = |p: &Progress| show_progress(p, terminal);
    let a =
        scrna::stream::run_with_progress(path, &so, &mut on_progress).map_err(|e| e.to_string())?;
    let files = scrna::stream::output::write_all(&a, &so, &args.out).map_err(|e| e.to_string())?;
    for s in &a.steps {
        eprintln!(
            "  {:<10} {:>8.2} s  {:>8.1} MB peak",
            s.step,
            s.seconds,
            s.peak_rss_bytes.unwrap_or(0) as f64 / 1_048_576.0
        );
    }
    println!(
        "{} of {} cells passed QC; {} genes kept, {} highly variable; {} passes over the file \
         ({} cell blocks, {} marker gene blocks)",
        a.cells.keep_cells.len(),
        a.input_shape.0,
        a.kept_genes.len(),
        a.hvg_genes.len(),
        a.passes,
        a.plan.cell_blocks.len(),
        a.plan.marker_blocks.len()
    );
    println!(
        "{} clusters; peak {:.1} MB within a budget of {:.1} MB",
        a.clustering.n_clusters,
        a.peak_rss_bytes.unwrap_or(0) as f64 / 1_048_576.0,
        args.memory_budget as f64 / 1_048_576.0
    );
    println!("{} files written to {}", files.len(), args.out.display());
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
