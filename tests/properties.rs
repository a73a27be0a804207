//! Property tests: invariants that must hold for any small input, not only for the fixtures.
//!
//! Case counts and sizes are kept small so that the whole file runs in a few seconds in the
//! debug test profile.

use proptest::prelude::*;
use scrna::cluster::{leiden, LeidenOptions};
use scrna::io::h5ad::{read_h5ad, write_h5ad, H5adOutput, H5adReadOptions};
use scrna::io::mtx::{read_10x_mtx, write_10x_mtx, MtxWriteOptions};
use scrna::io::tenx_h5::{read_10x_h5, write_10x_h5};
use scrna::io::ReadOptions;
use scrna::markers::{rank_genes, RankGenesOptions, Reference};
use scrna::normalize::{log1p, normalize_total, NormalizeOptions};
use scrna::pca::{pca, PcaOptions, Solver};
use scrna::qc::{metrics, QcMetrics, QcOptions};
use scrna::stats::benjamini_hochberg;
use scrna::{CellTable, CsrMatrix, Dataset, GeneTable};
use std::collections::BTreeMap;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failing inputs are printed; nothing is written next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// CSR matrix of the non-zero entries of a dense row-major table.
/// Reader options for the round trips of non-integer values (read as stored).
fn as_stored() -> ReadOptions {
    ReadOptions {
        assume_counts: true,
        ..Default::default()
    }
}

fn csr(dense: &[Vec<f32>], n_cols: usize) -> CsrMatrix {
    let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for (i, row) in dense.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            if x != 0.0 {
                r.push(i as u32);
                c.push(j as u32);
                v.push(x);
            }
        }
    }
    CsrMatrix::from_triplets(dense.len(), n_cols, &r, &c, &v).unwrap()
}

/// A dense `cells x genes` table (1..=max_cells x 1..=max_genes), about half zeros, with
/// whole counts or, when `integral` is false, arbitrary positive `f32` values.
fn dense_table(
    max_cells: usize,
    max_genes: usize,
    integral: bool,
) -> impl Strategy<Value = (Vec<Vec<f32>>, usize)> {
    (1..=max_cells, 1..=max_genes).prop_flat_map(move |(n, m)| {
        let value = if integral {
            prop_oneof![1 => Just(0f32), 1 => (1u32..1000).prop_map(|v| v as f32)].boxed()
        } else {
            prop_oneof![1 => Just(0f32), 1 => 1e-6f32..1e6f32].boxed()
        };
        (
            prop::collection::vec(prop::collection::vec(value, m), n),
            Just(m),
        )
    })
}

/// Symbols drawn from a few names, so that duplicates (made unique by [`GeneTable::new`]),
/// mitochondrial and ribosomal genes are common.
fn symbol() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "MT-CO1", "MT-ND2", "RPS3", "RPL7", "CD3E", "CD3E-1", "Gzmb",
    ])
    .prop_map(str::to_string)
}

/// A dataset around `dense` with unique barcodes, gene ids and the given symbols.
fn dataset(dense: &[Vec<f32>], n_genes: usize, symbols: &[String]) -> Dataset {
    let barcodes = (0..dense.len()).map(|i| format!("AAAC{i:04}-1")).collect();
    let ids = (0..n_genes).map(|j| format!("ENSG{j:011}")).collect();
    let syms = (0..n_genes)
        .map(|j| symbols[j % symbols.len()].clone())
        .collect::<Vec<_>>();
    Dataset::new(
        csr(dense, n_genes),
        CellTable::new(barcodes, "sample", "none"),
        GeneTable::new(ids, syms),
    )
    .unwrap()
}

fn assert_same_dataset(back: &Dataset, ds: &Dataset) {
    assert_eq!(back.counts, ds.counts);
    assert_eq!(back.cells.barcodes, ds.cells.barcodes);
    assert_eq!(back.genes.ids, ds.genes.ids);
    assert_eq!(back.genes.symbols, ds.genes.symbols);
    assert_eq!(back.genes.feature_types, ds.genes.feature_types);
}

/// `a == b`, NaN equal to NaN.
fn same_f64(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| v[i].clone()).collect()
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn matrix_market_round_trip(
        (dense, m) in dense_table(12, 10, true),
        symbols in prop::collection::vec(symbol(), 1..6),
        gzip in any::<bool>(),
    ) {
        let ds = dataset(&dense, m, &symbols);
        let dir = tempfile::tempdir().unwrap();
        let opts = MtxWriteOptions { gzip, ..Default::default() };
        write_10x_mtx(&ds, dir.path(), &opts).unwrap();
        let back = read_10x_mtx(dir.path(), &ReadOptions::default()).unwrap();
        assert_same_dataset(&back, &ds);
    }

    #[test]
    fn matrix_market_round_trip_of_real_values(
        (dense, m) in dense_table(8, 8, false),
    ) {
        let ds = dataset(&dense, m, &["G".to_string()]);
        let dir = tempfile::tempdir().unwrap();
        let opts = MtxWriteOptions { gzip: false, ..Default::default() };
        write_10x_mtx(&ds, dir.path(), &opts).unwrap();
        let back = read_10x_mtx(dir.path(), &as_stored()).unwrap();
        assert_same_dataset(&back, &ds);
    }

    #[test]
    fn tenx_h5_round_trip(
        (dense, m) in dense_table(12, 10, true),
        symbols in prop::collection::vec(symbol(), 1..6),
        integral in any::<bool>(),
    ) {
        let mut ds = dataset(&dense, m, &symbols);
        if !integral {
            // Non-integral values make the writer store float32 instead of int32.
            let mut m = std::mem::take(&mut ds.counts).into_csr();
            m.data_mut().iter_mut().for_each(|v| *v /= 3.0);
            ds.counts = m.into();
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.h5");
        write_10x_h5(&ds, &p).unwrap();
        let back = read_10x_h5(&p, &as_stored()).unwrap();
        assert_same_dataset(&back, &ds);
    }

    #[test]
    fn h5ad_round_trip(
        (dense, m) in dense_table(12, 10, false),
        symbols in prop::collection::vec(symbol(), 1..6),
        conditions in prop::collection::vec(prop::sample::select(vec!["parental", "resistant"]), 12),
    ) {
        let mut ds = dataset(&dense, m, &symbols);
        for (i, c) in ds.cells.condition.iter_mut().enumerate() {
            *c = conditions[i].to_string();
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.h5ad");
        write_h5ad(&H5adOutput::new(&ds.counts, &ds.cells, &ds.genes), &p).unwrap();
        let h5ad_as_stored = H5adReadOptions { assume_counts: true, ..Default::default() };
        let back = read_h5ad(&p, &h5ad_as_stored).unwrap();
        assert_same_dataset(&back, &ds);
        prop_assert_eq!(&back.cells.sample, &ds.cells.sample);
        prop_assert_eq!(&back.cells.condition, &ds.cells.condition);
    }

    #[test]
    fn qc_metrics_commute_with_subsetting(
        (dense, m) in dense_table(14, 10, true),
        symbols in prop::collection::vec(symbol(), 1..8),
        cell_pick in prop::collection::vec(any::<prop::sample::Index>(), 1..20),
        gene_mask in prop::collection::vec(any::<bool>(), 10),
    ) {
        let ds = dataset(&dense, m, &symbols);
        let opts = QcOptions::default();
        let all = metrics(&ds, &opts).unwrap();
        // Cells in any order, repeats allowed.
        let cells: Vec<usize> = cell_pick.iter().map(|i| i.index(ds.n_cells())).collect();
        let sub = metrics(&ds.select_cells(&cells).unwrap(), &opts).unwrap();
        let per_cell = |q: &QcMetrics| {
            (q.total_counts.clone(), q.total_counts_mt.clone(), q.pct_counts_mt.clone(),
             q.total_counts_ribo.clone(), q.pct_counts_ribo.clone())
        };
        let (a, b) = (per_cell(&sub), per_cell(&all));
        prop_assert!(same_f64(&a.0, &pick(&b.0, &cells)));
        prop_assert!(same_f64(&a.1, &pick(&b.1, &cells)));
        prop_assert!(same_f64(&a.2, &pick(&b.2, &cells)));
        prop_assert!(same_f64(&a.3, &pick(&b.3, &cells)));
        prop_assert!(same_f64(&a.4, &pick(&b.4, &cells)));
        prop_assert_eq!(&sub.n_genes_by_counts, &pick(&all.n_genes_by_counts, &cells));
        // Genes likewise for the per-gene metrics (a gene selection is increasing).
        let mut genes: Vec<usize> = (0..ds.n_genes()).filter(|&j| gene_mask[j]).collect();
        if genes.is_empty() {
            genes.push(ds.n_genes() - 1);
        }
        let sub = metrics(&ds.select_genes(&genes).unwrap(), &opts).unwrap();
        prop_assert_eq!(&sub.n_cells_by_counts, &pick(&all.n_cells_by_counts, &genes));
        prop_assert!(same_f64(&sub.gene_total_counts, &pick(&all.gene_total_counts, &genes)));
        prop_assert!(same_f64(&sub.mean_counts, &pick(&all.mean_counts, &genes)));
        prop_assert!(same_f64(
            &sub.pct_dropout_by_counts,
            &pick(&all.pct_dropout_by_counts, &genes)
        ));
        prop_assert_eq!(&sub.mt, &pick(&all.mt, &genes));
        prop_assert_eq!(&sub.ribo, &pick(&all.ribo, &genes));
    }

    #[test]
    fn normalization_keeps_the_sparsity_pattern(
        (dense, m) in dense_table(14, 10, true),
        target in prop::option::of(1.0f64..1e6),
    ) {
        let x = csr(&dense, m);
        let opts = NormalizeOptions { target_sum: target, ..Default::default() };
        let n = match normalize_total(&x, &opts) {
            Ok(n) => n,
            Err(e) => {
                // Only an unusable median of the totals is an error.
                let mut t = x.row_sums();
                t.sort_by(f64::total_cmp);
                let k = t.len();
                let median = if k % 2 == 1 { t[k / 2] } else { (t[k / 2 - 1] + t[k / 2]) / 2.0 };
                prop_assert!(target.is_none() && median == 0.0, "{}", e);
                return Ok(());
            }
        };
        let mut y = n.matrix;
        prop_assert_eq!(y.indptr(), x.indptr());
        prop_assert_eq!(y.indices(), x.indices());
        prop_assert!(y.data().iter().all(|v| v.is_finite() && *v > 0.0));
        // Every cell with counts sums to the target.
        for (i, s) in y.row_sums().iter().enumerate() {
            if x.row(i).0.is_empty() {
                prop_assert_eq!(*s, 0.0);
            } else {
                let t = n.target_sum as f64;
                prop_assert!((s - t).abs() <= 1e-5 * t, "row {} sums to {} not {}", i, s, t);
            }
        }
        log1p(&mut y);
        prop_assert_eq!(y.indptr(), x.indptr());
        prop_assert_eq!(y.indices(), x.indices());
        prop_assert!(y.data().iter().all(|v| v.is_finite() && *v > 0.0));
    }

    #[test]
    fn pca_of_a_rank_r_matrix_has_r_components(
        (r, n, p) in (1usize..=4).prop_flat_map(|r| (Just(r), (2 * r + 4)..30, (r + 1)..12)),
        noise in prop::collection::vec(-1.0f32..1.0, 30 * 4 + 4 * 12),
        scale in any::<bool>(),
        lanczos in any::<bool>(),
        seed in 0u64..1000,
    ) {
        // U (n x r) and V (r x p) are diagonally dominant in their first r rows / columns, so
        // that X = U V (and X centred and scaled) has rank exactly r.
        let u = |i: usize, k: usize| noise[i * 4 + k] + if i == k { 20.0 } else { 0.0 };
        let v = |k: usize, j: usize| noise[120 + k * 12 + j] + if k == j { 20.0 } else { 0.0 };
        let dense: Vec<Vec<f32>> = (0..n)
            .map(|i| (0..p).map(|j| (0..r).map(|k| u(i, k) * v(k, j)).sum()).collect())
            .collect();
        let x = csr(&dense, p);
        let k = (r + 2).min(p);
        let opts = PcaOptions {
            n_comps: k,
            scale,
            max_value: None,
            solver: if lanczos { Solver::lanczos() } else { Solver::randomized() },
            seed,
        };
        let res = pca(&x, &opts).unwrap();
        let total: f64 = res.variance.iter().sum::<f64>()
            / res.variance_ratio.iter().sum::<f64>();
        prop_assert!(res.variance.iter().all(|v| v.is_finite()));
        let beyond = res.variance[r..].iter().cloned().fold(0.0, f64::max);
        prop_assert!(beyond <= 1e-6 * total, "variance beyond {}: {:?}", r, res.variance);
        prop_assert!(res.variance[r - 1] > 1e-6 * total, "{:?}", res.variance);
        let explained: f64 = res.variance_ratio[..r].iter().sum();
        prop_assert!((explained - 1.0).abs() < 1e-5, "first {} explain {}", r, explained);
        prop_assert!(res.embedding.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn leiden_labels_are_a_partition_and_reproducible(
        n in 2usize..40,
        edges in prop::collection::vec((0usize..40, 0usize..40, 0.01f32..5.0), 0..120),
        resolution in 0.1f64..3.0,
        seed in 0u64..1000,
    ) {
        let mut w: BTreeMap<(u32, u32), f32> = BTreeMap::new();
        for &(a, b, x) in &edges {
            let (a, b) = (a % n, b % n);
            if a != b {
                w.insert((a as u32, b as u32), x);
                w.insert((b as u32, a as u32), x);
            }
        }
        let sym: Vec<((u32, u32), f32)> = w.into_iter().collect();
        let rows: Vec<u32> = sym.iter().map(|e| e.0 .0).collect();
        let cols: Vec<u32> = sym.iter().map(|e| e.0 .1).collect();
        let vals: Vec<f32> = sym.iter().map(|e| e.1).collect();
        let g = CsrMatrix::from_triplets(n, n, &rows, &cols, &vals).unwrap();
        let opts = LeidenOptions { resolution, seed, ..Default::default() };
        let c = leiden(&g, &opts).unwrap();
        prop_assert_eq!(c.labels.len(), n);
        let mut sizes = vec![0usize; c.n_clusters];
        for &l in &c.labels {
            prop_assert!((l as usize) < c.n_clusters);
            sizes[l as usize] += 1;
        }
        prop_assert!(sizes.iter().all(|&s| s > 0), "unused label: {:?}", sizes);
        prop_assert!(sizes.windows(2).all(|s| s[0] >= s[1]), "not by size: {:?}", sizes);
        prop_assert_eq!(leiden(&g, &opts).unwrap(), c);
    }

    #[test]
    fn wilcoxon_p_values_are_probabilities_and_symmetric(
        (values, n_genes) in (6usize..30, 1usize..6).prop_flat_map(|(n, m)| (
            prop::collection::vec(
                prop::collection::vec(prop::sample::select(vec![-1.0f32, 0.0, 0.0, 0.5, 1.0, 2.5]), m),
                n,
            ),
            Just(m),
        )),
        labels_seed in prop::collection::vec(0u32..3, 30),
        tie_correct in any::<bool>(),
    ) {
        let n = values.len();
        // Three groups, the first four cells fixed so that groups 0 and 1 have two cells.
        let labels: Vec<u32> = (0..n)
            .map(|i| if i < 4 { i as u32 % 2 } else { labels_seed[i] })
            .collect();
        let x = csr(&values, n_genes);
        let run = |group: u32, reference: u32| {
            let opts = RankGenesOptions {
                reference: Reference::Group(reference),
                groups: Some(vec![group]),
                tie_correct,
                ..Default::default()
            };
            rank_genes(&x, &labels, &opts).unwrap().groups.remove(0)
        };
        let (a, b) = (run(0, 1), run(1, 0));
        for j in 0..n_genes {
            for g in [&a, &b] {
                prop_assert!((0.0..=1.0).contains(&g.pvals[j]), "p = {}", g.pvals[j]);
                prop_assert!((0.0..=1.0).contains(&g.pvals_adj[j]), "q = {}", g.pvals_adj[j]);
                prop_assert!(g.scores[j].is_finite());
            }
            prop_assert!((a.pvals[j] - b.pvals[j]).abs() <= 1e-12, "{} vs {}", a.pvals[j], b.pvals[j]);
            prop_assert!((a.scores[j] + b.scores[j]).abs() <= 1e-12, "{} vs {}", a.scores[j], b.scores[j]);
        }
    }

    #[test]
    fn benjamini_hochberg_is_monotone_and_bounded(
        p in prop::collection::vec(prop_oneof![
            1 => Just(0.0f64),
            1 => Just(1.0f64),
            1 => prop::sample::select(vec![0.01, 0.05, 0.5]),
            4 => 0.0f64..=1.0,
        ], 1..60),
    ) {
        let q = benjamini_hochberg(&p);
        prop_assert_eq!(q.len(), p.len());
        for i in 0..p.len() {
            prop_assert!(q[i] >= p[i] && q[i] <= 1.0, "p {} q {}", p[i], q[i]);
            for j in 0..p.len() {
                if p[i] <= p[j] {
                    prop_assert!(q[i] <= q[j], "p {} <= {} but q {} > {}", p[i], p[j], q[i], q[j]);
                }
            }
        }
    }
}
