//! What the examples share: one-line argument errors and a progress bar per step.

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use scrna::pipeline::Progress;
use std::process::ExitCode;

/// Parses the command line. `--help` and `--version` print as clap writes them (`Err` with
/// status 0); an argument error is one line on stderr, naming the flag (the crate's convention
/// for every error), and status 1.
pub fn parse_or_exit<A: Parser>() -> Result<A, ExitCode> {
    use clap::error::ErrorKind;
    A::try_parse().map_err(|e| {
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let text = e.to_string();
        let line = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("bad arguments");
        let line = line.strip_prefix("error: ").unwrap_or(line);
        eprintln!("error: {line}; try --help");
        ExitCode::from(1)
    })
}

/// The examples' `main`: parses the arguments, gives the global rayon pool (which also reads
/// the input) the thread count `threads` picks from them, runs `run`, and prints an error as
/// one line with status 1.
pub fn main<A: Parser>(
    threads: impl Fn(&A) -> Option<usize>,
    run: impl FnOnce(&A) -> scrna::Result<()>,
) -> ExitCode {
    let args: A = match parse_or_exit() {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Some(t) = threads(&args).filter(|&t| t > 0) {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
        {
            eprintln!("error: --threads: {e}");
            return ExitCode::from(1);
        }
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// One progress bar per step (a line per step when stderr is not a terminal).
pub struct StepBar(ProgressBar);

impl StepBar {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let bar = ProgressBar::new(1000);
        if let Ok(style) =
            ProgressStyle::with_template("[{prefix}] {msg:<10} [{bar:30}] {percent:>3}%")
        {
            bar.set_style(style.progress_chars("#>-"));
        }
        StepBar(bar)
    }

    pub fn show(&self, p: &Progress) {
        if p.fraction == 0.0 {
            self.0.set_prefix(format!("{}/{}", p.index, p.total));
            self.0.set_message(p.step);
            if self.0.is_hidden() {
                eprintln!("[{}/{}] {} ...", p.index, p.total, p.step);
            }
        }
        self.0.set_position((p.fraction * 1000.0).round() as u64);
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
