//! Condition comparison: which clusters are specific to a condition (for example to
//! venetoclax-resistant samples), their marker genes, the gene programs they carry, the
//! ligand-receptor interactions they take part in, and Milo's neighbourhood differential
//! abundance.
//!
//! ```text
//! cargo run --release --example resistance -- --help
//! ```
//! With no sample sheet it simulates a parental / resistant study (two samples of each,
//! `SimulateOptions::study` with `--batch-sd`, 6,000 cells) whose resistant-only state
//! up-regulates cell-cell adhesion and cytokine signaling genes. With replicates (every
//! condition with two samples or more) the calls are decided by propeller over the samples;
//! without, by Fisher's test over cells, and the output says so. The options and the output
//! folder are checked before any work; bad arguments or input print one line and exit with
//! status 1.

#[path = "support/cli.rs"]
mod cli;

use clap::Parser;
use cli::StepBar;
use scrna::comparison::{self, ConditionOptions};
use scrna::io::inputs::{read_inputs, InputOptions};
use scrna::io::samples::read_sample_sheet;
use scrna::pipeline::{self, PipelineOptions, Switch};
use scrna::report::check_output_dir;
use scrna::simulate::SimulateOptions;
use std::path::PathBuf;
use std::process::ExitCode;

/// Compares conditions (e.g. parental against resistant samples) after the standard analysis.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// CSV with columns sample,condition,path (one row per 10x sample); a simulated study
    /// when not given.
    #[arg(long, value_name = "CSV")]
    sample_sheet: Option<PathBuf>,
    /// Gene sets in GMT format (the bundled human GO biological-process library when not
    /// given).
    #[arg(long, value_name = "FILE")]
    gmt: Option<PathBuf>,
    /// A custom ligand-receptor resource (CSV: CellPhoneDB-like `partner_a,partner_b,...` or a
    /// `ligand,receptor` list); the bundled CellPhoneDB v5 resource when not given.
    #[arg(long, value_name = "CSV")]
    lr_pairs: Option<PathBuf>,
    /// Output folder (created when missing).
    #[arg(long, default_value = "results/resistance")]
    out: PathBuf,
    /// Seed of the run (simulation, PCA, Leiden, UMAP, scores, permutations, Milo).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (all cores when not given).
    #[arg(long)]
    threads: Option<usize>,
    /// The conditions Milo compares, NUMERATOR,REFERENCE (e.g. resistant,parental).
    #[arg(long, value_name = "A,B", value_parser = parse_contrast)]
    contrast: Option<(String, String)>,
    /// Gene-wise sample (batch) effect of the simulated study (log-scale standard deviation).
    #[arg(long, default_value_t = 0.2)]
    batch_sd: f64,
    /// Keep the predicted doublets in the analysis.
    #[arg(long)]
    keep_doublets: bool,
    /// No Harmony integration over the samples.
    #[arg(long)]
    no_integration: bool,
    /// The .h5ad matrix holding the raw counts: a layer name (for example `counts`) or `X`
    /// (by default the first of X, layers counts / raw_counts / umi_counts / raw, raw/X that
    /// holds integer counts).
    #[arg(long, value_name = "NAME")]
    layer: Option<String>,
    /// Take non-integer values as counts (for data that really are non-integer, such as
    /// ambient-corrected counts).
    #[arg(long)]
    assume_counts: bool,
    /// How samples with different genes are joined: strict (the same genes, else an error),
    /// intersection (the shared genes), union (all genes, missing ones counted 0).
    #[arg(long, default_value = "strict", value_parser = parse_join)]
    join: scrna::io::Join,
    /// Do not write report.html (the one-page interactive report).
    #[arg(long)]
    no_report: bool,
}

fn parse_join(s: &str) -> Result<scrna::io::Join, String> {
    s.parse().map_err(|e: scrna::Error| e.to_string())
}

fn parse_contrast(s: &str) -> Result<(String, String), String> {
    match s.split_once(',') {
        Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() && !b.contains(',') => {
            Ok((a.trim().to_string(), b.trim().to_string()))
        }
        _ => Err(format!("{s:?} is not NUMERATOR,REFERENCE")),
    }
}

fn run(args: &Args) -> scrna::Result<()> {
    let mut popts = PipelineOptions::default().seeded(args.seed);
    popts.threads = args.threads;
    popts.remove_doublets = !args.keep_doublets;
    if args.no_integration {
        popts.integration = Switch::Off;
    }
    let copts = ConditionOptions {
        seed: args.seed,
        contrast: args.contrast.clone(),
        ..Default::default()
    };
    let sim_opts = SimulateOptions {
        n_cells: 6_000,
        ..SimulateOptions::study(args.batch_sd, args.seed)
    };
    // Options and the output folder are checked before any work.
    popts.validate()?;
    copts.validate()?;
    if args.sample_sheet.is_none() {
        sim_opts.validate()?;
    }
    check_output_dir(&args.out)?;
    // The gene sets and the ligand-receptor table are read before the (long) analysis, so
    // that a bad file fails at once.
    let gene_sets = match &args.gmt {
        Some(g) => Some(scrna::genesets::read_gmt(g)?),
        None => None,
    };
    let lr_pairs = match &args.lr_pairs {
        Some(p) => Some(scrna::interactions::read_lr_pairs(p)?),
        None => None,
    };
    let data = match &args.sample_sheet {
        Some(sheet) => {
            let specs = read_sample_sheet(sheet)?;
            let mut io = InputOptions::default();
            io.read.layer = args.layer.clone();
            io.read.assume_counts = args.assume_counts;
            io.concat.join = args.join;
            let inputs = read_inputs(&specs, &io)?;
            for l in inputs.report.lines() {
                eprintln!("{l}");
            }
            // A sample none of whose cells passes QC stops the pipeline's QC step (the first).
            inputs.dataset
        }
        None => {
            eprintln!(
                "no --sample-sheet: simulating a parental / resistant study ({} cells, batch sd {})",
                sim_opts.n_cells, args.batch_sd
            );
            comparison::simulate_resistance_with(&sim_opts)?.dataset
        }
    };
    let design = scrna::design::Design::of(&data.cells)?;
    eprintln!(
        "{} cells x {} genes; samples per condition: {}",
        data.n_cells(),
        data.n_genes(),
        design
            .conditions
            .iter()
            .zip(&design.samples_per_condition)
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let bar = StepBar::new();
    let analysis = pipeline::run(&data, &popts, &mut |p| bar.show(p))?;
    bar.finish();
    let copts = ConditionOptions {
        gene_sets,
        lr_pairs,
        ..copts
    };
    eprintln!("comparing conditions ...");
    let result = comparison::compare(&analysis, &copts)?;
    let mut files = comparison::write_all(&analysis, &result, &args.out)?;
    if !args.no_report {
        let report = args.out.join("report.html");
        let ro = scrna::html_report::ReportOptions {
            pipeline: Some(popts.clone()),
            ..Default::default()
        };
        scrna::html_report::write_report(&analysis, Some(&result), &report, &ro)?;
        files.push(report);
    }

    for note in &result.notes {
        println!("note: {note}");
    }
    let spec = result.composition.specific();
    if spec.is_empty() {
        println!("no condition-specific cluster found");
    }
    for (c, k) in &spec {
        let Some(t) = result.composition.test(*c, *k) else {
            continue;
        };
        let how = match t.propeller_fdr {
            Some(q) => format!("propeller FDR {q:.2e} over the samples"),
            None => format!("Fisher adjusted p {:.2e} over cells", t.p_adj),
        };
        println!(
            "cluster {c} is specific to {} ({:.0}% share, {how})",
            result.composition.conditions[*k],
            100.0 * t.share,
        );
        for e in result.enrichment.iter().filter(|e| e.cluster == *c).take(5) {
            println!(
                "  {} {} (overlap {}/{}, adjusted p {:.2e})",
                e.row.id, e.row.name, e.row.overlap, e.row.set_size, e.row.p_adj
            );
        }
    }
    if let Some(m) = &result.milo {
        println!(
            "Milo ({} over {}): {} of {} neighbourhoods at spatial FDR < {}",
            m.numerator,
            m.reference,
            m.milo.n_significant(),
            m.milo.rows.len(),
            m.milo.alpha
        );
    }
    println!("{} files written to {}", files.len(), args.out.display());
    Ok(())
}

fn main() -> ExitCode {
    cli::main(|a: &Args| a.threads, run)
}
