//! PCA benchmark: a simulated log-normalized HVG matrix (cells x 2,000 genes, about 15%
//! non-zero, 20 cell groups), 50 components, with the default randomized solver and IRLBA.
//!
//! `cargo bench --bench pca` runs criterion on 50,000 and 200,000 cells.
//! For peak memory of one run, and to compare with Scanpy on the very same matrix:
//! ```text
//! cargo bench --bench pca --no-run            # prints the bench executable path
//! SCRNA_PCA_ONESHOT=50000 /usr/bin/time -v target/release/deps/pca-<hash>
//! SCRNA_PCA_DUMP=/tmp/pca50k SCRNA_PCA_ONESHOT=50000 target/release/deps/pca-<hash>
//! /work/.venv/bin/python scripts/reference_pca.py --bench /tmp/pca50k
//! ```
//! `SCRNA_PCA_SOLVER=lanczos` selects IRLBA in the one-shot mode.
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use scrna::pca::{pca, PcaOptions, Solver};
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

fn one_shot(n: usize) {
    let x = simulate(n, 42);
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
    let solver = match std::env::var("SCRNA_PCA_SOLVER").as_deref() {
        Ok("lanczos") => Solver::lanczos(),
        _ => Solver::randomized(),
    };
    let t = Instant::now();
    let res = pca(
        &x,
        &PcaOptions {
            solver,
            ..PcaOptions::default()
        },
    )
    .expect("pca");
    println!(
        "pca: {:.3} s; variance ratio PC1..5: {:?}",
        t.elapsed().as_secs_f64(),
        &res.variance_ratio[..5]
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
    benches();
    Criterion::default().configure_from_args().final_summary();
}
