//! PCA benchmark: a simulated log-normalized HVG matrix (cells x 2,000 genes, about 15%
//! non-zero, 20 cell groups), 50 components, with the default randomized solver and IRLBA.
//!
//! `cargo bench --bench pca` runs criterion on 50,000 and 200,000 cells.
//! For peak memory of one run, and to compare with Scanpy on the very same matrix:
//! ```text
//! cargo bench --bench pca --no-run            # prints the bench executable path
//! SCRNA_PCA_ONESHOT=50000 /usr/bin/time -v target/release/deps/pca-<hash>
//! SCRNA_PCA_DUMP=/tmp/pca50k SCRNA_PCA_ONESHOT=50000 target/release/deps/pca-<hash>
//! .venv/bin/python scripts/reference_pca.py --bench /tmp/pca50k
//! ```
//! `SCRNA_PCA_SOLVER=lanczos` selects IRLBA in the one-shot mode; `SCRNA_PCA_TOL=<tol>` and
//! `SCRNA_PCA_POWER_ITER=<n>` set the randomized solver's stopping tolerance and maximum
//! number of power iterations (`SCRNA_PCA_TOL=0 SCRNA_PCA_POWER_ITER=10` is the fixed
//! 10-iteration solver). `SCRNA_PCA_SAVE=<file>` writes the variance ratios and embedding,
//! `SCRNA_PCA_COMPARE=<file>` prints the largest relative difference of the variance ratios and
//! the smallest absolute correlation of the embedding columns against such a file.
//!
//! The issue's dataset, the simulator's 50,000 x 20,000 counts after the pipeline's QC,
//! normalization and HVG selection (2,000 genes), and the PCA alone on it:
//! ```text
//! cargo run --release --example simulate -- --cells 50000 --out /tmp/sim50k.h5
//! SCRNA_PCA_SIM_H5=/tmp/sim50k.h5 SCRNA_PCA_DUMP=/tmp/hvg50k target/release/deps/pca-<hash>
//! SCRNA_PCA_FROM=/tmp/hvg50k /usr/bin/time -v target/release/deps/pca-<hash>  # PCA only
//! /usr/bin/time -v .venv/bin/python scripts/reference_pca.py --bench /tmp/hvg50k
//! ```
//! With `SCRNA_PCA_FROM` or `SCRNA_PCA_SIM_H5` the PCA uses the pipeline's options (scaled,
//! clipped at 10, 50 components).
#[path = "../tests/support/correlation.rs"]
mod correlation;
use correlation::corr;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use scrna::hvg::highly_variable_genes;
use scrna::normalize::normalize_total_log1p;
use scrna::pca::{pca, Pca, PcaOptions, Solver};
use scrna::pipeline::PipelineOptions;
use scrna::qc;
use scrna::CsrMatrix;

const GENES: usize = 2000;
const GROUPS: usize = 20;

/// Seeded log-normalized-like matrix: gene detection probabilities 3-35% with group-specific
/// up-regulation of 5% of genes per group; values ln(1 + level * U(0.5, 1.5)).
fn simulate(n: usize, seed: u64) -> CsrMatrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let base_p: Vec<f32> = (0..GENES).map(|_| rng.gen_range(0.03..0.30)).collect();
    let base_l: Vec<f32> = (0..GENES).map(|_| rng.gen_range(0.5..8.0)).collect();
    let mut prob = vec![0.0f32; GROUPS * GENES];
    let mut level = vec![0.0f32; GROUPS * GENES];
    for g in 0..GROUPS {
        for j in 0..GENES {
            let up = rng.gen::<f32>() < 0.05;
            prob[g * GENES + j] = if up {
                (base_p[j] * 3.0).min(0.9)
            } else {
                base_p[j]
            };
            level[g * GENES + j] = if up { base_l[j] * 4.0 } else { base_l[j] };
        }
    }
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut r =
                ChaCha8Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let g = (i * 7919) % GROUPS;
            let (mut idx, mut val) = (Vec::new(), Vec::new());
            for j in 0..GENES {
                if r.gen::<f32>() < prob[g * GENES + j] {
                    idx.push(j as u32);
                    val.push((level[g * GENES + j] * r.gen_range(0.5f32..1.5)).ln_1p());
                }
            }
            (idx, val)
        })
        .collect();
    let mut indptr = Vec::with_capacity(n + 1);
    indptr.push(0usize);
    let nnz: usize = rows.iter().map(|r| r.0.len()).sum();
    let (mut indices, mut data) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
    for (idx, val) in rows {
        indices.extend_from_slice(&idx);
        data.extend_from_slice(&val);
        indptr.push(indices.len());
    }
    CsrMatrix::try_new(n, GENES, indptr, indices, data).expect("valid CSR")
}

fn dump(x: &CsrMatrix, dir: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = |v: Vec<u8>, name: &str| std::fs::write(format!("{dir}/{name}"), v);
    bytes(
        x.indptr()
            .iter()
            .flat_map(|v| (*v as u64).to_le_bytes())
            .collect(),
        "indptr.u64",
    )?;
    bytes(
        x.indices().iter().flat_map(|v| v.to_le_bytes()).collect(),
        "indices.u32",
    )?;
    bytes(
        x.data().iter().flat_map(|v| v.to_le_bytes()).collect(),
        "data.f32",
    )?;
    std::fs::write(
        format!("{dir}/shape.txt"),
        format!("{} {}\n", x.n_rows(), x.n_cols()),
    )
}

/// The simulator's counts in a 10x HDF5 file after the pipeline's QC filters, normalization
/// and HVG selection: the matrix the pipeline's PCA step receives.
fn hvg_matrix(path: &str) -> CsrMatrix {
    let opts = PipelineOptions::default();
    let ds = scrna::io::read_10x(path).expect("read");
    let qc = qc::metrics(&ds, &opts.filter.qc).expect("qc");
    let kept = qc::filter_with_metrics(&ds, &opts.filter, &qc).expect("filter");
    drop(ds);
    let ln = normalize_total_log1p(&kept.dataset.counts.to_csr(), &opts.normalize)
        .expect("normalize")
        .matrix;
    let hvg = highly_variable_genes(&ln, None, None, &opts.hvg).expect("hvg");
    ln.select_cols(&hvg.selected()).expect("select")
}

/// A matrix written by [`dump`].
fn load(dir: &str) -> CsrMatrix {
    let bytes = |name: &str| std::fs::read(format!("{dir}/{name}")).expect("read dump");
    let shape = String::from_utf8(bytes("shape.txt")).expect("shape");
    let dims: Vec<usize> = shape
        .split_whitespace()
        .map(|v| v.parse().expect("shape"))
        .collect();
    let indptr = bytes("indptr.u64")
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()) as usize)
        .collect();
    let indices = bytes("indices.u32")
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let data = bytes("data.f32")
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    CsrMatrix::try_new(dims[0], dims[1], indptr, indices, data).expect("valid CSR")
}

fn one_shot(n: usize) {
    let (x, pipeline_options) = if let Ok(dir) = std::env::var("SCRNA_PCA_FROM") {
        (load(&dir), true)
    } else if let Ok(path) = std::env::var("SCRNA_PCA_SIM_H5") {
        (hvg_matrix(&path), true)
    } else {
        (simulate(n, 42), false)
    };
    println!(
        "{} x {}, nnz {} ({:.1}%)",
        x.n_rows(),
        x.n_cols(),
        x.nnz(),
        100.0 * x.nnz() as f64 / (x.n_rows() * x.n_cols()) as f64
    );
    if let Ok(dir) = std::env::var("SCRNA_PCA_DUMP") {
        dump(&x, &dir).expect("dump");
        return;
    }
    let base = if pipeline_options {
        PipelineOptions::default().pca
    } else {
        PcaOptions::default()
    };
    let mut solver = match std::env::var("SCRNA_PCA_SOLVER").as_deref() {
        Ok("lanczos") => Solver::lanczos(),
        Ok("randomized") => Solver::randomized(),
        _ => base.solver.clone(),
    };
    if let Solver::Randomized {
        n_power_iter, tol, ..
    } = &mut solver
    {
        if let Ok(v) = std::env::var("SCRNA_PCA_TOL") {
            *tol = v.parse().expect("SCRNA_PCA_TOL=<tolerance>");
        }
        if let Ok(v) = std::env::var("SCRNA_PCA_POWER_ITER") {
            *n_power_iter = v.parse().expect("SCRNA_PCA_POWER_ITER=<iterations>");
        }
    }
    let t = Instant::now();
    let res = pca(&x, &PcaOptions { solver, ..base }).expect("pca");
    println!(
        "pca: {:.3} s, {} iterations; variance ratio PC1..5: {:?}",
        t.elapsed().as_secs_f64(),
        res.iterations,
        &res.variance_ratio[..5]
    );
    if let Ok(path) = std::env::var("SCRNA_PCA_SAVE") {
        save(&res, &path).expect("save");
    }
    if let Ok(path) = std::env::var("SCRNA_PCA_COMPARE") {
        compare(&res, &path);
    }
}

/// Writes the variance ratios and the embedding (little-endian `f64`, then `f32`).
fn save(res: &Pca, path: &str) -> std::io::Result<()> {
    let (n, k) = res.embedding.dim();
    let mut out = Vec::new();
    out.extend((n as u64).to_le_bytes());
    out.extend((k as u64).to_le_bytes());
    out.extend(res.variance_ratio.iter().flat_map(|v| v.to_le_bytes()));
    out.extend(res.embedding.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, out)
}

/// Compares with a result written by [`save`]: the largest relative difference of the variance
/// ratios and the smallest absolute correlation of the embedding columns.
fn compare(res: &Pca, path: &str) {
    let bytes = std::fs::read(path).expect("read saved result");
    let word = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap());
    let (n, k) = (word(0) as usize, word(1) as usize);
    assert_eq!(
        (n, k),
        res.embedding.dim(),
        "saved result has another shape"
    );
    let ratios: Vec<f64> = (0..k).map(|c| f64::from_bits(word(2 + c))).collect();
    let off = 8 * (2 + k);
    let emb: Vec<f32> = bytes[off..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let (mut worst_ratio, mut at_ratio) = (0.0f64, 0);
    for (c, (&a, &b)) in res.variance_ratio.iter().zip(&ratios).enumerate() {
        let d = (a - b).abs() / b.abs();
        if d > worst_ratio {
            (worst_ratio, at_ratio) = (d, c);
        }
    }
    let (mut worst_corr, mut at_corr) = (1.0f64, 0);
    for c in 0..k {
        let a: Vec<f64> = res.embedding.column(c).iter().map(|&v| v as f64).collect();
        let b: Vec<f64> = (0..n).map(|i| emb[i * k + c] as f64).collect();
        let r = corr(&a, &b).abs();
        if r < worst_corr {
            (worst_corr, at_corr) = (r, c);
        }
    }
    let identical = res
        .embedding
        .iter()
        .zip(&emb)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    println!(
        "vs {path}: variance ratio max rel diff {worst_ratio:.3e} (PC{}), \
         min |corr| {worst_corr:.7} (PC{}), embedding bit-identical: {identical}",
        at_ratio + 1,
        at_corr + 1
    );
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("pca");
    group.sample_size(10);
    for n in [50_000usize, 200_000] {
        let x = simulate(n, 42);
        for (name, solver) in [
            ("randomized", Solver::randomized()),
            ("lanczos", Solver::lanczos()),
        ] {
            let opts = PcaOptions {
                solver,
                ..PcaOptions::default()
            };
            group.bench_function(format!("{name}/{n}x{GENES}"), |b| {
                b.iter(|| pca(&x, &opts).expect("pca"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(n) = std::env::var("SCRNA_PCA_ONESHOT") {
        one_shot(n.parse().expect("SCRNA_PCA_ONESHOT=<cells>"));
        return;
    }
    if std::env::var_os("SCRNA_PCA_FROM").is_some()
        || std::env::var_os("SCRNA_PCA_SIM_H5").is_some()
    {
        one_shot(0);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
