//! The streamed (out-of-core) pipeline against the in-memory one on the same small data.

use scrna::io::tenx_h5::read_10x_h5;
use scrna::pipeline::{self, Analysis, PipelineOptions, Switch};
use scrna::simulate::resistance::{name_study_genes, simulate_resistance_with};
use scrna::simulate::{simulate, SimulateOptions, Simulator};
use scrna::stream::write::{simulate_10x_h5, write_simulated_cells};
use scrna::stream::{self, parse_bytes, CellChunks, StreamAnalysis, StreamOptions};
use scrna::{Error, ReadOptions};
use std::path::Path;

fn sim_opts() -> SimulateOptions {
    SimulateOptions {
        n_cells: 700,
        n_genes: 3_000,
        n_clusters: 4,
        n_markers: 25,
        library_size: 3_000.0,
        ..Default::default()
    }
}

fn options() -> PipelineOptions {
    let mut o = PipelineOptions::default();
    o.hvg.n_top_genes = Some(500);
    o.pca.n_comps = 20;
    o.skip_umap = true;
    // The streamed analysis has no doublet or integration step.
    o.doublets = Switch::Off;
    o.integration = Switch::Off;
    o
}

fn same_results(m: &Analysis, s: &StreamAnalysis, what: &str) {
    let removed: std::collections::HashSet<usize> =
        m.filtered.removed_cells.iter().map(|r| r.0).collect();
    let kept: Vec<usize> = (0..m.input_shape.0)
        .filter(|i| !removed.contains(i))
        .collect();
    assert_eq!(s.cells.keep_cells, kept, "{what}: kept cells");
    assert_eq!(
        s.genes_removed_min_cells, m.filtered.genes_removed_min_cells,
        "{what}: genes removed"
    );
    assert_eq!(s.qc.total_counts, m.qc.total_counts, "{what}: QC totals");
    assert_eq!(
        s.qc.n_cells_by_counts, m.qc.n_cells_by_counts,
        "{what}: QC genes"
    );
    assert_eq!(s.hvg.means, m.hvg.means, "{what}: HVG means");
    assert_eq!(
        s.hvg.dispersions_norm, m.hvg.dispersions_norm,
        "{what}: HVG dispersions"
    );
    assert_eq!(s.hvg_genes, m.hvg_genes, "{what}: HVG genes");
    assert_eq!(s.pca.embedding, m.pca.embedding, "{what}: PCA");
    assert_eq!(s.knn.indices, m.knn.indices, "{what}: kNN");
    assert_eq!(
        s.clustering.labels, m.clustering.labels,
        "{what}: Leiden labels"
    );
    assert_eq!(s.markers.n_genes, m.markers.n_genes, "{what}: marker genes");
    assert_eq!(s.markers.groups.len(), m.markers.groups.len());
    for (a, b) in s.markers.groups.iter().zip(&m.markers.groups) {
        assert_eq!(a.group, b.group);
        assert_eq!(a.scores, b.scores, "{what}: scores of group {}", a.group);
        assert_eq!(a.pvals, b.pvals, "{what}: p of group {}", a.group);
        assert_eq!(a.pvals_adj, b.pvals_adj, "{what}: adjusted p");
        assert_eq!(a.logfoldchanges, b.logfoldchanges, "{what}: lfc");
        assert_eq!(a.pct_in, b.pct_in, "{what}: pct_in");
        assert_eq!(a.auc, b.auc, "{what}: auc");
        assert_eq!(a.order, b.order, "{what}: order of group {}", a.group);
    }
}

fn budget_respected(s: &StreamAnalysis, r: &CellChunks) {
    let p = &s.plan;
    for &(a, b) in &p.cell_blocks {
        assert!(
            b - a == 1 || r.nnz_of(a, b) as u64 * 16 <= p.budget_bytes / 8,
            "cell block {a}..{b} is over budget"
        );
    }
    let n_kept = s.cells.keep_cells.len() as u64;
    let per_gene = 8 * (4 * s.clustering.n_clusters as u64 + 1);
    for &(g0, g1) in &p.marker_blocks {
        let bytes = 8 * (n_kept + 1)
            + (g0..g1)
                .map(|g| 16 * s.stored_per_gene[g] + per_gene)
                .sum::<u64>();
        assert!(
            g1 - g0 == 1 || bytes <= p.marker_block_bytes,
            "marker block {g0}..{g1}: {bytes} bytes over {}",
            p.marker_block_bytes
        );
    }
    assert!(p.resident_bytes + p.downstream_bytes <= p.budget_bytes);
}

fn write_sim(dir: &Path, chunk: usize) -> std::path::PathBuf {
    let p = dir.join("sim.h5");
    let rep = simulate_10x_h5(&sim_opts(), &p, chunk).unwrap();
    assert_eq!(rep.n_cells, 700);
    assert!(rep.file_bytes > 0);
    p
}

#[test]
fn streamed_write_equals_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_sim(dir.path(), 97);
    let back = read_10x_h5(&p, &ReadOptions::default()).unwrap();
    let sim = simulate(&sim_opts()).unwrap().dataset;
    assert_eq!(back.counts, sim.counts);
    assert_eq!(back.cells.barcodes, sim.cells.barcodes);
    assert_eq!(back.genes.symbols, sim.genes.symbols);
    // The cell-block reader gives the same rows, for any block.
    let r = CellChunks::open_10x_h5(&p, &ReadOptions::default()).unwrap();
    assert_eq!(r.nnz(), sim.counts.nnz());
    let whole = sim.counts.to_csr();
    for (a, b) in [(0, 1), (0, 700), (5, 333), (699, 700), (300, 300)] {
        let x = r.read(a, b).unwrap();
        assert_eq!(x.n_rows(), b - a);
        for i in 0..b - a {
            assert_eq!(x.row(i), whole.row(a + i), "cell {}", a + i);
        }
    }
    assert!(r.read(10, 701).is_err());
}

#[test]
fn a_range_of_simulated_cells_is_those_rows_of_the_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(&sim_opts()).unwrap();
    let whole = simulate(&sim_opts()).unwrap().dataset;
    // cells 250..600 span three samples (175 cells a sample)
    let samples: Vec<_> = (0..5).map(|k| sim.cells_of_sample(k)).collect();
    assert_eq!(samples, [0..175, 175..350, 350..525, 525..700, 700..700]);
    assert!((0..700).all(|i| samples[sim.sample_of(i).unwrap()].contains(&i)));
    let p = dir.path().join("part.h5");
    let rep = write_simulated_cells(&sim, &sim.genes(), 250..600, &p, 64).unwrap();
    assert_eq!((rep.n_cells, rep.n_genes), (350, 3_000));
    let back = read_10x_h5(&p, &ReadOptions::default()).unwrap();
    let part = whole.select_cells(&(250..600).collect::<Vec<_>>()).unwrap();
    assert_eq!(rep.nnz, part.counts.nnz() as u64);
    assert_eq!(back.counts, part.counts);
    assert_eq!(back.cells.barcodes, part.cells.barcodes);
    assert_eq!(back.genes.ids, part.genes.ids);
    // A range past the cells is refused before a file is made.
    let bad = dir.path().join("bad.h5");
    let err = write_simulated_cells(&sim, &sim.genes(), 600..701, &bad, 64).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
    assert!(err.to_string().contains("600..701"), "{err}");
    let mut short = sim.genes();
    short.ids.pop();
    short.symbols.pop();
    short.feature_types.pop();
    let err = write_simulated_cells(&sim, &short, 0..10, &bad, 64).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
    assert!(!bad.exists());
}

#[test]
fn a_study_written_by_blocks_is_the_study_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SimulateOptions::study(0.2, 3);
    opts.n_cells = 900;
    let whole = simulate_resistance_with(&opts).unwrap().dataset;
    let sim = Simulator::new(&opts).unwrap();
    let mut genes = sim.genes();
    name_study_genes(&sim.truth(), &mut genes).unwrap();
    assert_eq!(genes.symbols, whole.genes.symbols);
    assert!(genes.symbols.iter().any(|s| s == "CCL2"));
    let p = dir.path().join("study.h5");
    write_simulated_cells(&sim, &genes, 0..900, &p, 128).unwrap();
    let back = read_10x_h5(&p, &ReadOptions::default()).unwrap();
    assert_eq!(back.counts, whole.counts);
    assert_eq!(back.genes.symbols, whole.genes.symbols);
    assert_eq!(back.genes.ids, whole.genes.ids);
    assert_eq!(back.cells.barcodes, whole.cells.barcodes);
    // The null study has the same programs, as the markers of a cluster both conditions share.
    let null = opts.without_condition_effects();
    let sim = Simulator::new(&null).unwrap();
    let tr = sim.truth();
    assert!(tr.condition_specific_clusters.is_empty());
    let mut genes = sim.genes();
    name_study_genes(&tr, &mut genes).unwrap();
    let last = tr.markers.len() - 1;
    let ccl2 = genes.symbols.iter().position(|s| s == "CCL2").unwrap();
    assert!(tr.markers[last].contains(&ccl2));
    let in_last: Vec<u32> = (0..tr.cluster.len())
        .filter(|&i| tr.cluster[i] as usize == last)
        .map(|i| tr.condition[i])
        .collect();
    assert!(in_last.contains(&0) && in_last.contains(&1));
    let ccr2 = genes.symbols.iter().position(|s| s == "CCR2").unwrap();
    assert!(tr.markers[0].first() == Some(&ccr2));
}

#[test]
fn streamed_pipeline_equals_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_sim(dir.path(), 256);
    let data = read_10x_h5(&p, &ReadOptions::default()).unwrap();
    let po = options();
    let mem = pipeline::run(&data, &po, &mut |_| {}).unwrap();
    assert!(mem.clustering.n_clusters >= 3);
    let r = CellChunks::open_10x_h5(&p, &ReadOptions::default()).unwrap();
    for chunk in [Some(1), Some(64), Some(701), None] {
        let so = StreamOptions {
            pipeline: po.clone(),
            chunk_cells: chunk,
            ..Default::default()
        };
        let s = stream::run(&p, &so).unwrap();
        same_results(&mem, &s, &format!("chunk {chunk:?}"));
        budget_respected(&s, &r);
        let blocks = s.plan.cell_blocks.len();
        match chunk {
            Some(c) => assert_eq!(blocks, 700usize.div_ceil(c)),
            None => assert_eq!(blocks, 1),
        }
        assert_eq!(s.plan.marker_blocks.len(), 1);
    }
}

#[test]
fn small_budget_splits_blocks_and_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_sim(dir.path(), 700);
    let data = read_10x_h5(&p, &ReadOptions::default()).unwrap();
    let po = options();
    let mem = pipeline::run(&data, &po, &mut |_| {}).unwrap();
    let r = CellChunks::open_10x_h5(&p, &ReadOptions::default()).unwrap();
    let budget = parse_bytes("3.5M").unwrap();
    let spill_dir = tempfile::tempdir().unwrap();
    let so = StreamOptions {
        pipeline: po.clone(),
        memory_budget_bytes: budget,
        spill_dir: Some(spill_dir.path().to_path_buf()),
        ..Default::default()
    };
    let s = stream::run(&p, &so).unwrap();
    assert!(s.plan.cell_blocks.len() > 1, "{:?}", s.plan);
    assert!(s.plan.marker_blocks.len() > 1, "{:?}", s.plan);
    budget_respected(&s, &r);
    same_results(&mem, &s, "budget 3.5M");
    // Passes: QC, moments, HVG load (which writes the spill); the markers read the spill.
    assert_eq!(s.passes, 3);
    // The default min_cells (3) keeps QC and HVG in separate reads, and the result says why.
    assert!(
        s.qc_hvg_passes.contains("min_cells = 3"),
        "{}",
        s.qc_hvg_passes
    );
    // About 2 bytes per stored value of the kept cells and genes, and removed after the run.
    let stored: u64 = s.stored_per_gene.iter().sum();
    assert!(s.plan.spill_bytes > stored && s.plan.spill_bytes < 3 * stored);
    assert_eq!(std::fs::read_dir(spill_dir.path()).unwrap().count(), 0);
    // Several marker blocks give the single block's markers exactly.
    let one = stream::run(
        &p,
        &StreamOptions {
            pipeline: po.clone(),
            chunk_cells: Some(97),
            spill_dir: Some(spill_dir.path().to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(one.plan.marker_blocks.len(), 1);
    assert_eq!(one.markers, s.markers);
    // An error after the spill was written (in the markers step) removes it too.
    let mut bad = po.clone();
    bad.markers.reference = scrna::markers::Reference::Group(999);
    match stream::run(
        &p,
        &StreamOptions {
            pipeline: bad,
            spill_dir: Some(spill_dir.path().to_path_buf()),
            ..so.clone()
        },
    ) {
        Err(Error::InvalidOption { .. }) => {}
        other => panic!("expected a reference error, got {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read_dir(spill_dir.path()).unwrap().count(), 0);
    // A budget below the per-cell tables and one block is refused up front.
    let tiny = StreamOptions {
        memory_budget_bytes: 100_000,
        ..so
    };
    match stream::run(&p, &tiny) {
        Err(Error::InvalidOption { .. }) => {}
        other => panic!("expected a budget error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn parses_sizes() {
    assert_eq!(parse_bytes("8G").unwrap(), 8 << 30);
    assert_eq!(parse_bytes("8GiB").unwrap(), 8 << 30);
    assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
    assert_eq!(parse_bytes("1.5K").unwrap(), 1536);
    assert_eq!(parse_bytes("1000").unwrap(), 1000);
    assert!(parse_bytes("eight").is_err());
    assert!(parse_bytes("0").is_err());
    assert!(parse_bytes("-1G").is_err());
}

#[test]
fn h5ad_input_gives_the_same_results() {
    use scrna::io::h5ad::{write_h5ad, H5adOutput};
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(&sim_opts()).unwrap().dataset;
    let p = dir.path().join("sim.h5ad");
    let mut out = H5adOutput::new(&data.counts, &data.cells, &data.genes);
    out.compression = scrna::io::h5ad::H5adCompression::Gzip(4);
    write_h5ad(&out, &p).unwrap();
    let po = options();
    let mem = pipeline::run(&data, &po, &mut |_| {}).unwrap();
    let so = StreamOptions {
        pipeline: po,
        chunk_cells: Some(150),
        ..Default::default()
    };
    let s = stream::run(&p, &so).unwrap();
    same_results(&mem, &s, "h5ad");
    let r = CellChunks::open_h5ad(&p, None).unwrap();
    assert_eq!(r.samples("x")[0], "parental_1");
    assert!(CellChunks::open_h5ad(&p, Some("counts")).is_err());
}

/// Non-integer counts (as ambient-corrected data, read with `assume_counts`), explicit zeros
/// and counts above the per-cell cache of the log values (64 and more): the streamed passes feed
/// the in-memory steps' own block accumulators (QC sums, the filter's copy of the kept cells,
/// the normalization's moments), so the size factors, moments and everything after them are
/// the in-memory values, bit for bit; the per-gene QC totals are `f64` sums in other blocks and
/// agree to 1e-12 relative.
#[test]
fn non_integer_counts_give_the_same_results() {
    use scrna::io::h5ad::{write_h5ad, H5adOutput};
    let dir = tempfile::tempdir().unwrap();
    let mut data = simulate(&sim_opts()).unwrap().dataset;
    let (n_rows, n_cols, indptr, indices, mut values) = data.counts.clone().into_csr().into_parts();
    for (k, v) in values.iter_mut().enumerate() {
        match k % 13 {
            0 => *v *= 0.37,
            1 => *v += 70.0,
            2 => *v = 0.0,
            _ => {}
        }
    }
    data.counts = scrna::sparse::CsrMatrix::try_new(n_rows, n_cols, indptr, indices, values)
        .unwrap()
        .into();
    let p = dir.path().join("ambient.h5ad");
    write_h5ad(&H5adOutput::new(&data.counts, &data.cells, &data.genes), &p).unwrap();
    let po = options();
    let mem = pipeline::run(&data, &po, &mut |_| {}).unwrap();
    for chunk in [Some(1), Some(97), None] {
        let mut so = StreamOptions {
            pipeline: po.clone(),
            chunk_cells: chunk,
            ..Default::default()
        };
        so.read.assume_counts = true;
        let s = stream::run(&p, &so).unwrap();
        let what = format!("non-integer counts, chunk {chunk:?}");
        same_results(&mem, &s, &what);
        assert_eq!(s.size_factors, mem.size_factors, "{what}: size factors");
        // Debug strings: NaN dispersions compare equal, every other value exactly
        let (a, b) = (&s.hvg.dispersions, &mem.hvg.dispersions);
        assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "{what}: HVG dispersions"
        );
        for (a, b) in s.qc.gene_total_counts.iter().zip(&mem.qc.gene_total_counts) {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs(),
                "{what}: gene total {a} {b}"
            );
        }
    }
}
