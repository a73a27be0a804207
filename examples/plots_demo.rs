//! Lays out a seeded clustered cell graph with UMAP and draws every figure of `scrna::plot`.
//!
//! `cargo run --release --example plots_demo -- [--cells N] [--clusters K] [--out DIR]`
//! (defaults: 5,000 cells, 12 clusters, `target/plots_demo`). Prints the UMAP wall time.

#[path = "../tests/support/clustered_graph.rs"]
mod clustered_graph;

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use scrna::embed::{umap, Init, UmapOptions};
use scrna::plot::{self, PlotOptions};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut n = 5000usize;
    let mut k = 12usize;
    let mut out = PathBuf::from("target/plots_demo");
    let mut args = std::env::args().skip(1);
    fn count(flag: &str, v: Option<String>) -> Result<usize, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: cannot read {v:?} as a number"))
    }
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cells" => n = count(&a, args.next())?,
            "--clusters" => k = count(&a, args.next())?,
            "--out" => out = args.next().ok_or("--out needs a value")?.into(),
            other => return Err(format!("unknown option {other:?}").into()),
        }
    }
    if n == 0 || k == 0 {
        return Err("--cells and --clusters must be at least 1".into());
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let t = Instant::now();
    let c = clustered_graph::clustered_graph(n, k, 10, 15, 5.0, 0.02, 42);
    eprintln!(
        "graph: {n} cells, {} edges, {:.2} s",
        c.graph.nnz(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let emb = umap(&c.graph, Init::Spectral, &UmapOptions::default())?;
    eprintln!("umap: {:.2} s", t.elapsed().as_secs_f64());

    let opts = PlotOptions::default();
    let names: Vec<String> = (0..k).map(|i| i.to_string()).collect();
    let mut written = Vec::new();
    written.extend(plot::umap_clusters(
        emb.view(),
        &c.labels,
        &names,
        &out.join("umap_clusters"),
        &opts,
    )?);
    // two conditions, four samples
    let samples: Vec<String> = ["parental_1", "parental_2", "resistant_1", "resistant_2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut rng = StdRng::seed_from_u64(1);
    let sample: Vec<u32> = (0..n).map(|_| rng.gen_range(0..4)).collect();
    written.extend(plot::umap_categorical(
        emb.view(),
        &sample,
        &samples,
        "Sample",
        &out.join("umap_sample"),
        &opts,
    )?);
    let conditions = vec!["parental".to_string(), "resistant".to_string()];
    let condition: Vec<u32> = sample.iter().map(|&s| s / 2).collect();
    written.extend(plot::umap_categorical(
        emb.view(),
        &condition,
        &conditions,
        "Condition",
        &out.join("umap_condition"),
        &opts,
    )?);
    // QC metrics
    let totals = LogNormal::new(8.0, 0.5)?;
    let mito = Normal::new(4.0f32, 2.0)?;
    let total: Vec<f32> = (0..n).map(|_| totals.sample(&mut rng) as f32).collect();
    let genes: Vec<f32> = total
        .iter()
        .map(|t| (t.powf(0.8) * rng.gen_range(0.8..1.2)).round())
        .collect();
    let pct: Vec<f32> = (0..n).map(|_| mito.sample(&mut rng).max(0.0)).collect();
    written.extend(plot::qc_violins(
        &total,
        &genes,
        &pct,
        Some((&sample, &samples)),
        &out.join("qc"),
        &opts,
    )?);
    written.extend(plot::qc_violins(
        &total,
        &genes,
        &pct,
        None,
        &out.join("qc_all"),
        &opts,
    )?);
    // dot plot: 3 markers per cluster
    let pool = [
        "CD3E", "CD3D", "IL7R", "CCR7", "LEF1", "MS4A1", "CD79A", "CD79B", "CD14", "LYZ", "S100A8",
        "FCGR3A", "MS4A7", "NKG7", "GNLY", "GZMB", "FCER1A", "CST3", "PPBP", "PF4", "HBB", "MKI67",
        "TOP2A", "CD8A", "CD8B", "FOXP3", "IL2RA", "KLRB1", "TRDC", "JCHAIN", "MZB1", "IGHG1",
        "CLEC4C", "LILRA4", "CD34", "KIT",
    ];
    let n_genes = 3 * k;
    let gene_names: Vec<String> = (0..n_genes)
        .map(|i| {
            pool.get(i)
                .map(|s| s.to_string())
                .unwrap_or(format!("GENE{i}"))
        })
        .collect();
    let mut frac = Array2::<f32>::zeros((k, n_genes));
    let mut mean = Array2::<f32>::zeros((k, n_genes));
    for cl in 0..k {
        for g in 0..n_genes {
            let own = g / 3 == cl;
            let f: f32 = if own {
                rng.gen_range(0.6..1.0)
            } else {
                rng.gen_range(0.0..0.3)
            };
            frac[[cl, g]] = f;
            mean[[cl, g]] = f * if own { rng.gen_range(1.5..3.0) } else { 0.8 };
        }
    }
    let group_names: Vec<String> = (0..k).map(|i| format!("cluster {i}")).collect();
    written.extend(plot::dot_plot(
        frac.view(),
        mean.view(),
        &gene_names,
        &group_names,
        &out.join("dotplot"),
        &opts,
    )?);
    let vr: Vec<f32> = (0..50)
        .map(|i| 0.12 * (-(i as f32) / 4.0).exp() + 0.004 + 0.0005 * rng.gen::<f32>())
        .collect();
    written.extend(plot::pca_elbow(&vr, &out.join("pca_elbow"), &opts)?);
    for p in written {
        println!("{}", p.display());
    }
    Ok(())
}
