//! Condition comparison: which clusters are specific to a condition (for example to
//! venetoclax-resistant samples), their marker genes, the gene programs they carry, and the
//! ligand-receptor interactions they take part in.
//!
//! ```text
//! cargo run --release --example resistance -- [--sample-sheet CSV] [--gmt FILE]
//!     [--lr-pairs CSV] [--out DIR] [--seed N] [--threads N]
//! ```
//! With no sample sheet it simulates two parental and two resistant samples in which a
//! resistant-only cluster up-regulates cell-cell adhesion and cytokine signaling genes.

use scrna::comparison::{self, ConditionOptions};
use scrna::io::samples::{read_sample_sheet, read_samples, ConcatOptions};
use scrna::pipeline::{self, PipelineOptions, Progress};
use std::path::PathBuf;
use std::process::ExitCode;

struct Args {
    sample_sheet: Option<PathBuf>,
    gmt: Option<PathBuf>,
    lr_pairs: Option<PathBuf>,
    out: PathBuf,
    seed: u64,
    threads: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        sample_sheet: None,
        gmt: None,
        lr_pairs: None,
        out: PathBuf::from("results/resistance"),
        seed: 0,
        threads: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--sample-sheet" => a.sample_sheet = Some(PathBuf::from(value()?)),
            "--gmt" => a.gmt = Some(PathBuf::from(value()?)),
            "--lr-pairs" => a.lr_pairs = Some(PathBuf::from(value()?)),
            "--out" => a.out = PathBuf::from(value()?),
            "--seed" => {
                let v = value()?;
                a.seed = v
                    .parse()
                    .map_err(|_| format!("--seed: cannot read {v:?}"))?
            }
            "--threads" => {
                let v = value()?;
                a.threads = Some(
                    v.parse()
                        .map_err(|_| format!("--threads: cannot read {v:?}"))?,
                )
            }
            "--help" | "-h" => {
                return Err(
                    "usage: resistance [--sample-sheet CSV] [--gmt FILE] [--lr-pairs CSV] \
                            [--out DIR] [--seed N] [--threads N]"
                        .to_string(),
                )
            }
            other => return Err(format!("unknown option {other:?}; try --help")),
        }
    }
    Ok(a)
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| format!("--threads: {e}"))?;
    }
    let err = |e: scrna::Error| e.to_string();
    // The gene sets and the ligand-receptor table are read before the (long) analysis, so
    // that a bad file fails at once.
    let gene_sets = match &args.gmt {
        Some(g) => Some(scrna::genesets::read_gmt(g).map_err(err)?),
        None => None,
    };
    // Without a table, the simulated run uses the small test table bundled in fixtures/.
    let lr = match (&args.lr_pairs, &args.sample_sheet) {
        (Some(p), _) => Some(p.clone()),
        (None, None) => Some(PathBuf::from("fixtures/lr_pairs_small.csv")),
        (None, Some(_)) => None,
    };
    let lr_pairs = match &lr {
        Some(p) => Some(scrna::interactions::read_lr_pairs(p).map_err(err)?),
        None => None,
    };
    let data = match &args.sample_sheet {
        Some(sheet) => {
            let specs = read_sample_sheet(sheet).map_err(err)?;
            read_samples(&specs, &Default::default(), &ConcatOptions::default()).map_err(err)?
        }
        None => {
            eprintln!("no --sample-sheet: simulating parental and resistant samples");
            comparison::simulate_resistance(args.seed)
                .map_err(err)?
                .dataset
        }
    };
    eprintln!(
        "{} cells x {} genes in {} samples",
        data.n_cells(),
        data.n_genes(),
        {
            let mut s = data.cells.sample.clone();
            s.sort();
            s.dedup();
            s.len()
        }
    );
    let mut popts = PipelineOptions::default();
    popts.pca.seed = args.seed;
    popts.leiden.seed = args.seed;
    popts.umap.seed = args.seed;
    let mut on_progress = |p: &Progress| {
        if p.fraction == 0.0 {
            eprintln!("[{}/{}] {} ...", p.index, p.total, p.step);
        }
    };
    let analysis = pipeline::run(&data, &popts, &mut on_progress).map_err(err)?;
    let mut copts = ConditionOptions {
        seed: args.seed,
        ..Default::default()
    };
    copts.gene_sets = gene_sets;
    copts.lr_pairs = lr_pairs;
    eprintln!("comparing conditions ...");
    let result = comparison::compare(&analysis, &copts).map_err(err)?;
    let files = comparison::write_all(&analysis, &result, &args.out).map_err(err)?;

    let spec = result.composition.specific();
    if spec.is_empty() {
        println!("no condition-specific cluster found");
    }
    for (c, k) in &spec {
        let t = result
            .composition
            .test(*c, *k)
            .ok_or("inconsistent composition")?;
        println!(
            "cluster {c} is specific to {} ({:.0}% share, odds ratio {:.1}, adjusted p {:.2e})",
            result.composition.conditions[*k],
            100.0 * t.share,
            t.odds_ratio,
            t.p_adj
        );
        for e in result.enrichment.iter().filter(|e| e.cluster == *c).take(5) {
            println!(
                "  {} {} (overlap {}/{}, adjusted p {:.2e})",
                e.row.id, e.row.name, e.row.overlap, e.row.set_size, e.row.p_adj
            );
        }
    }
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
