//! The streamed analysis over several processes and threads, on timely-dataflow (feature
//! `distributed`).
//!
//! [`run`] is [`crate::stream::run`] as one process of a cluster of `processes` processes with
//! `threads` worker threads each (timely workers, numbered process by process). Every worker
//! opens the input itself and reads its own blocks of cells: unit `u` of a pass belongs to
//! worker `u mod workers` ([`crate::stream::workers`]). The input must be readable at the same
//! path by every process: a shared file system, or a copy of the same file on each host.
//!
//! | pass | on the workers | exchanged | on worker 0 |
//! |---|---|---|---|
//! | QC | metrics of their blocks | per-cell metrics and per-gene sums of each block, to worker 0 | sums added in block order, cell filters; kept cells and genes sent to all |
//! | HVG | moments of their fixed row blocks | per-gene sums of each row block, to worker 0 | added in block order, HVG selection; size factors and HVG genes sent to all |
//! | load | the blocks of cells whose middle kept cell's PCA row it holds: HVG rows, counts cut by ranges of genes | HVG rows of a block that straddles two workers' rows to the other worker (`pca rows`); each gene range's spill segment to the worker owning the range (`spill segments`) | its own rows, as every worker |
//! | PCA | [`crate::pca::pca_on_blocks`] on its rows (fixed 2048-row blocks, contiguous ranges per worker): row products, subtree sums of every column reduction | subtree sums to worker 0, the completed sums back to all (`pca`, once per reduction); embedding rows to worker 0 (`pca embedding`) | completes the block tree in its fixed shape; gathers the embedding |
//! | kNN, Leiden, UMAP | waiting | labels sent to all | as [`crate::stream::run`] |
//! | markers | rank their range of genes from their spill | per-gene statistics, to worker 0 | concatenated, adjusted p-values and order |
//!
//! Because worker 0 adds the parts up in the order one reader would, the results are
//! identical to [`crate::stream::run`]'s for any number of processes and threads (tested with
//! 1, 2 and 3 processes of 1 and 2 threads). Each process writes its spill of counts for its
//! genes in [`crate::stream::StreamOptions::spill_dir`] (local to its host). Bytes exchanged
//! and time per pass are in [`crate::stream::StreamAnalysis::exchange`].
//!
//! What stays on worker 0: the cells x PCs embedding (gathered after the PCA), the kNN graph,
//! Leiden and UMAP. The HVG matrix stays spread over the workers: each holds the rows of its
//! PCA blocks, and the randomized PCA runs on all of them (only the randomized solver, the
//! default, runs this way; another solver with several workers is an error before the first
//! pass). Processes are started by the caller on each host (`--process p` of the `pipeline` example) or, on one machine, by
//! [`launch`]; a process that fails or dies makes the others fail: [`launch`] stops the rest
//! after a grace period, and on several hosts timely's network threads stop the workers whose
//! peer went away.

mod exchange;
mod launch;

pub use launch::{launch, loopback_addresses};

use crate::error::{Error, Result};
use crate::pipeline::Progress;
use crate::stream::{run_on, StreamAnalysis, StreamOptions};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// This process's place in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// This process, `0..addresses.len()`; process 0 holds worker 0, which returns the
    /// analysis.
    pub process: usize,
    /// Worker threads per process (the same in every process). Default 1.
    pub threads: usize,
    /// `host:port` of every process, in process order (one process: may be empty).
    pub addresses: Vec<String>,
}

impl Cluster {
    /// One process with `threads` worker threads.
    pub fn single(threads: usize) -> Cluster {
        Cluster {
            process: 0,
            threads,
            addresses: Vec::new(),
        }
    }

    /// Process `process` of the processes listed in a host file: one `host:port` per line, in
    /// process order (timely's `-h` format); blank lines and lines starting with `#` skipped.
    pub fn from_host_file(path: &Path, process: usize, threads: usize) -> Result<Cluster> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let addresses: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        for (i, a) in addresses.iter().enumerate() {
            if !a.contains(':') {
                return Err(Error::data(
                    path.display().to_string(),
                    format!("host {} is {a:?}, not host:port", i + 1),
                ));
            }
        }
        let c = Cluster {
            process,
            threads,
            addresses,
        };
        c.validate()?;
        Ok(c)
    }

    /// Number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len().max(1)
    }

    /// Checks the numbers.
    pub fn validate(&self) -> Result<()> {
        if self.threads == 0 {
            return Err(Error::option("cluster.threads", "must be at least 1"));
        }
        if self.process >= self.processes() {
            return Err(Error::option(
                "cluster.process",
                format!(
                    "process {} of a cluster of {} processes",
                    self.process,
                    self.processes()
                ),
            ));
        }
        Ok(())
    }

    fn timely_config(&self) -> timely::Config {
        let communication = if self.addresses.len() > 1 {
            timely::CommunicationConfig::Cluster {
                threads: self.threads,
                process: self.process,
                addresses: self.addresses.clone(),
                report: false,
                zerocopy: false,
            }
        } else if self.threads > 1 {
            timely::CommunicationConfig::Process(self.threads)
        } else {
            timely::CommunicationConfig::Thread
        };
        timely::Config {
            communication,
            worker: timely::WorkerConfig::default(),
        }
    }
}

/// The progress callback of a distributed run (called on worker 0 only).
pub type SendProgress = Box<dyn FnMut(&Progress) + Send>;

/// Runs this process's workers of the streamed analysis of `path` (see the module docs).
/// Process 0 returns the analysis, the others `None`. Options are checked before any
/// connection is made; every process must be given the same input and options.
pub fn run(
    path: &Path,
    opts: &StreamOptions,
    cluster: &Cluster,
    progress: Option<SendProgress>,
) -> Result<Option<StreamAnalysis>> {
    cluster.validate()?;
    opts.pipeline.validate()?;
    let path = path.to_path_buf();
    let opts = opts.clone();
    let threads = cluster.threads;
    let progress = Arc::new(Mutex::new(progress));
    let (process, cluster_config) = (cluster.process, cluster.timely_config());
    // A peer that goes away makes timely's network threads panic, and the join of the
    // workers with them: caught here and returned as an error.
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let guards = timely::execute(cluster_config, move |worker| {
            let mut w = exchange::TimelyWorkers::new(worker, threads);
            let mut mine = if crate::stream::Workers::is_leader(&w) {
                progress.lock().ok().and_then(|mut p| p.take())
            } else {
                None
            };
            let mut report = |p: &Progress| {
                if let Some(f) = mine.as_mut() {
                    f(p)
                }
            };
            // A panic in the analysis (a bug, not a lost peer) would leave this process's
            // other workers waiting for this one forever: take the process down instead, so
            // that its peers and the launcher see it fail.
            let index = crate::stream::Workers::index(&w);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_on(&mut w, &path, &opts, &mut report)
            })) {
                Ok(r) => r,
                Err(panic) => {
                    let msg = panic_message(panic.as_ref());
                    if msg.contains("timely communication") || msg.contains("MergeQueue") {
                        std::panic::resume_unwind(panic)
                    }
                    eprintln!("error: worker {index} stopped: {msg}");
                    std::process::abort()
                }
            }
        })
        .map_err(|e| Error::data("distributed run", format!("cannot start the workers: {e}")))?;
        Ok::<_, Error>(guards.join())
    }))
    .map_err(|panic| {
        let msg = panic_message(panic.as_ref());
        Error::data(
            "distributed run",
            format!("process {process} stopped: {msg} (did another process fail?)"),
        )
    })??;
    let mut leader = None;
    let mut first_error = None;
    for (i, r) in joined.into_iter().enumerate() {
        let r = r.map_err(|panic| {
            Error::data(
                "distributed run",
                format!(
                    "worker {} of process {process} stopped: {panic} (did another process \
                     fail?)",
                    process * threads + i,
                ),
            )
        });
        match r {
            Ok(Ok(Some(a))) => leader = Some(a),
            Ok(Ok(None)) => {}
            Ok(Err(e)) | Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(leader),
    }
}

/// The message of a panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a worker or network thread panicked".to_string())
}
