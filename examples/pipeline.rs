//! The main job: the standard clustering analysis of one or many 10x samples.
//!
//! ```text
//! cargo run --release --example pipeline -- [--input PATH]... [--sample-sheet CSV] [--out DIR]
//!     [--resolution R] [--seed N] [--n-pcs N] [--n-neighbors K] [--n-top-genes N]
//!     [--min-genes N] [--min-cells N] [--threads N] [--simulate N_CELLS]
//! ```
//! With no input it runs on the bundled `celltypist_sample` dataset and writes to `results/`;
//! `--simulate N` runs on N simulated cells x 20,000 genes instead (for timing at scale).
//! Progress goes to stderr; bad arguments or input print one line and exit with status 1.

use scrna::io::samples::{read_sample_sheet, read_samples, ConcatOptions, SampleSpec};
use scrna::pipeline::{self, PipelineOptions, Progress};
use std::path::PathBuf;
use std::process::ExitCode;

const BUNDLED: &str = "fixtures/celltypist_sample/filtered_feature_bc_matrix";

struct Args {
    inputs: Vec<PathBuf>,
    sample_sheet: Option<PathBuf>,
    out: PathBuf,
    threads: Option<usize>,
    simulate: Option<usize>,
    opts: PipelineOptions,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        inputs: Vec::new(),
        sample_sheet: None,
        out: PathBuf::from("results"),
        threads: None,
        simulate: None,
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
            other => return Err(format!("unknown option {other:?}; try --help")),
        }
    }
    Ok(a)
}

fn usage() -> String {
    "usage: pipeline [--input PATH]... [--sample-sheet CSV] [--out DIR] [--resolution R] \
     [--seed N] [--n-pcs N] [--n-neighbors K] [--n-top-genes N] [--min-genes N] \
     [--min-cells N] [--threads N] [--simulate N_CELLS]"
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
    if let Some(n) = args.simulate {
        eprintln!("simulating {n} cells x 20000 genes (seed 0)");
        let t = std::time::Instant::now();
        let sim = scrna::simulate::simulate(&scrna::simulate::SimulateOptions {
            n_cells: n,
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
        eprintln!("simulated in {:.1} s", t.elapsed().as_secs_f64());
        return analyse(&sim.dataset, &args);
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
    eprintln!("read {} sample(s)", specs.len());
    analyse(&data, &args)
}

fn analyse(data: &scrna::Dataset, args: &Args) -> Result<(), String> {
    eprintln!("{} cells x {} genes", data.n_cells(), data.n_genes());
    let mut on_progress = |p: &Progress| {
        if p.fraction == 0.0 {
            eprintln!("[{}/{}] {} ...", p.index, p.total, p.step);
        }
    };
    let analysis = pipeline::run(data, &args.opts, &mut on_progress).map_err(|e| e.to_string())?;
    let files =
        pipeline::output::write_all(&analysis, &args.opts, &args.out).map_err(|e| e.to_string())?;

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
        data.n_cells(),
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
