//! The distributed streamed analysis (feature `distributed`): 1, 2 and 3 processes on loopback
//! with 1 and 2 worker threads each give result files byte-identical to the single-process
//! streamed run; a process that dies makes the run fail in bounded time with no output.
//!
//! `cargo test --features distributed --test distributed`
#![cfg(feature = "distributed")]

use scrna::distributed::{self, launch, loopback_addresses, Cluster};
use scrna::pipeline::{PipelineOptions, Switch};
use scrna::simulate::SimulateOptions;
use scrna::stream::write::simulate_10x_h5;
use scrna::stream::{self, StreamAnalysis, StreamOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CELLS: usize = 20_000;

fn sim_opts() -> SimulateOptions {
    SimulateOptions {
        n_cells: CELLS,
        n_genes: 2_000,
        n_clusters: 5,
        n_markers: 30,
        library_size: 1_500.0,
        seed: 7,
        ..Default::default()
    }
}

fn options(spill: &Path) -> StreamOptions {
    let mut o = PipelineOptions::default();
    o.hvg.n_top_genes = Some(400);
    o.pca.n_comps = 15;
    o.skip_umap = true;
    o.doublets = Switch::Off;
    o.integration = Switch::Off;
    StreamOptions {
        pipeline: o,
        chunk_cells: Some(1_500),
        spill_dir: Some(spill.to_path_buf()),
        ..Default::default()
    }
}

/// The result files of an analysis (the summary holds times, so it is left out).
fn result_files(a: &StreamAnalysis, opts: &StreamOptions, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let files = stream::output::write_all(a, opts, dir).expect("write");
    files
        .iter()
        .filter(|p| !p.ends_with("summary.json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(p).unwrap())
        })
        .collect()
}

/// Runs `processes` processes (threads of this test) of `threads` workers each.
fn run_cluster(
    path: &Path,
    opts: &StreamOptions,
    processes: usize,
    threads: usize,
) -> StreamAnalysis {
    let addresses = if processes > 1 {
        loopback_addresses(processes).expect("ports")
    } else {
        Vec::new()
    };
    let handles: Vec<_> = (0..processes)
        .map(|process| {
            let c = Cluster {
                process,
                threads,
                addresses: addresses.clone(),
            };
            let (path, opts) = (path.to_path_buf(), opts.clone());
            std::thread::spawn(move || distributed::run(&path, &opts, &c, None))
        })
        .collect();
    let mut leader = None;
    for (p, h) in handles.into_iter().enumerate() {
        let r = h.join().expect("process thread").expect("distributed run");
        assert_eq!(r.is_some(), p == 0, "process {p}");
        if let Some(a) = r {
            leader = Some(a);
        }
    }
    leader.expect("process 0 returns the analysis")
}

#[test]
fn any_number_of_processes_and_threads_gives_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sim.h5");
    simulate_10x_h5(&sim_opts(), &path, 4_000).unwrap();
    let opts = options(tmp.path());
    let t = Instant::now();
    let single = stream::run(&path, &opts).unwrap();
    eprintln!("single process: {:.1} s", t.elapsed().as_secs_f64());
    assert!(
        single.clustering.n_clusters >= 4,
        "{}",
        single.clustering.n_clusters
    );
    assert_eq!(single.workers, 1);
    assert!(single.exchange.is_empty());
    let want = result_files(&single, &opts, &tmp.path().join("single"));
    assert_eq!(want.len(), 2);
    for (processes, threads) in [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)] {
        let t = Instant::now();
        let a = run_cluster(&path, &opts, processes, threads);
        let what = format!("{processes} process(es) x {threads} thread(s)");
        eprintln!("{what}: {:.1} s", t.elapsed().as_secs_f64());
        assert_eq!(a.workers, processes * threads, "{what}");
        let got = result_files(
            &a,
            &opts,
            &tmp.path().join(format!("p{processes}t{threads}")),
        );
        for ((n1, b1), (n2, b2)) in want.iter().zip(&got) {
            assert_eq!(n1, n2);
            assert!(b1 == b2, "{what}: {n1} differs");
        }
        // The in-memory results too, not only what the files show.
        assert_eq!(a.hvg.means, single.hvg.means, "{what}");
        assert_eq!(
            a.qc.gene_total_counts, single.qc.gene_total_counts,
            "{what}"
        );
        // The PCA ran on every worker's rows: the same bits as on one worker.
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(a.pca.embedding, single.pca.embedding, "{what}");
        assert_eq!(a.pca.loadings, single.pca.loadings, "{what}");
        assert_eq!(bits(&a.pca.variance), bits(&single.pca.variance), "{what}");
        assert_eq!(
            bits(&a.pca.variance_ratio),
            bits(&single.pca.variance_ratio),
            "{what}"
        );
        assert_eq!(bits(&a.pca.stds), bits(&single.pca.stds), "{what}");
        assert_eq!(a.pca.iterations, single.pca.iterations, "{what}");
        assert_eq!(a.markers, single.markers, "{what}");
        // Bytes were exchanged between workers, and over the network between processes.
        // (A pass or part that sent nothing to another worker has no report.)
        let sent = |name: &str| {
            a.exchange
                .iter()
                .find(|r| r.pass == name)
                .map_or((0, 0), |r| (r.bytes, r.network_bytes))
        };
        let many = processes * threads > 1;
        for name in ["spill segments", "pca", "pca embedding"] {
            let (bytes, network) = sent(name);
            assert_eq!(bytes > 0, many, "{what}: {name} {bytes}");
            assert_eq!(network > 0, processes > 1, "{what}: {name} {network}");
        }
        // The HVG rows stay on their workers but for the blocks of cells that straddle two
        // workers' rows: at most one block of cells (1,500 cells, under 400 values each, at
        // 8 bytes a value) per boundary.
        let moved = sent("pca rows").0;
        let bound = (processes * threads - 1) as u64 * (1_500 * (400 * 8 + 4) + 64);
        assert!(moved <= bound, "{what}: {moved} bytes of HVG rows moved");
        // The spills of every worker are counted and removed.
        assert!(a.plan.spill_bytes > 0);
    }
    let left: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".scrna-spill"))
        .collect();
    assert!(left.is_empty(), "spill directories left: {left:?}");
}

#[test]
fn bad_input_fails_on_every_process_without_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("missing.h5");
    let opts = options(tmp.path());
    let addresses = loopback_addresses(2).unwrap();
    let t = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|process| {
            let c = Cluster {
                process,
                threads: 1,
                addresses: addresses.clone(),
            };
            let (path, opts) = (path.clone(), opts.clone());
            std::thread::spawn(move || distributed::run(&path, &opts, &c, None))
        })
        .collect();
    for h in handles {
        let e = h
            .join()
            .unwrap()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("missing.h5"), "{e}");
    }
    assert!(t.elapsed() < Duration::from_secs(60));
    // A process number outside the cluster is refused before anything starts.
    let c = Cluster {
        process: 2,
        threads: 1,
        addresses,
    };
    assert!(distributed::run(&path, &opts, &c, None).is_err());
}

/// Not a test on its own: one process of the cluster that
/// `a_process_that_dies_fails_the_run` starts (by running this test binary), configured by
/// environment variables; without them it returns at once.
#[test]
#[ignore]
fn cluster_process() {
    let Ok(spec) = std::env::var("SCRNA_TEST_CLUSTER") else {
        return;
    };
    let mut it = spec.split(';');
    let (input, out, process, addresses) = (
        PathBuf::from(it.next().unwrap()),
        PathBuf::from(it.next().unwrap()),
        it.next().unwrap().parse::<usize>().unwrap(),
        it.next().unwrap().split(',').map(String::from).collect(),
    );
    if let Ok(ms) = std::env::var("SCRNA_TEST_ABORT_MS") {
        let ms: u64 = ms.parse().unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            std::process::abort();
        });
    }
    let opts = options(out.parent().unwrap());
    let c = Cluster {
        process,
        threads: 1,
        addresses,
    };
    match distributed::run(&input, &opts, &c, None) {
        Ok(Some(a)) => {
            stream::output::write_all(&a, &opts, &out).unwrap();
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("process {process}: {e}");
            std::process::exit(1);
        }
    }
}

#[test]
fn a_process_that_dies_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sim.h5");
    simulate_10x_h5(&sim_opts(), &path, 4_000).unwrap();
    let out = tmp.path().join("out");
    let addresses = loopback_addresses(3).unwrap().join(",");
    let exe = std::env::current_exe().unwrap();
    let t = Instant::now();
    let r = launch(
        3,
        |p| {
            let mut c = Command::new(&exe);
            c.args(["--ignored", "--exact", "cluster_process", "--nocapture"])
                .env(
                    "SCRNA_TEST_CLUSTER",
                    format!("{};{};{p};{addresses}", path.display(), out.display()),
                );
            if p == 2 {
                // Dies after connecting, while the passes run.
                c.env("SCRNA_TEST_ABORT_MS", "1500");
            }
            c
        },
        Duration::from_secs(20),
    );
    let secs = t.elapsed().as_secs_f64();
    let e = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("of 3 failed"), "{e}");
    assert!(secs < 60.0, "{secs} s");
    assert!(!out.join("clusters.csv").exists() && !out.join("markers.csv").exists());
    eprintln!("failed in {secs:.1} s: {e}");
}

#[cfg(unix)]
#[test]
fn the_launcher_stops_the_others_when_one_fails() {
    let t = Instant::now();
    let r = launch(
        3,
        |p| {
            let mut c = Command::new("sh");
            c.arg("-c").arg(if p == 1 {
                "sleep 0.2; exit 3"
            } else {
                "sleep 30"
            });
            c
        },
        Duration::from_millis(300),
    );
    let e = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("process 1 of 3 failed"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(launch(2, |_| Command::new("true"), Duration::from_secs(1)).is_ok());
    let a = loopback_addresses(3).unwrap();
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|s| s.starts_with("127.0.0.1:")));
}
