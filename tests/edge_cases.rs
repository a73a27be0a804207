//! Numerical edge cases: empty cells, constant genes, tiny or single clusters, ties, and data
//! smaller than the number of neighbours or components. Each gives a documented result or a
//! typed error, never a panic or a `NaN`.

use scrna::cluster::LeidenOptions;
use scrna::hvg::{highly_variable_genes, Flavor, HvgOptions};
use scrna::markers::{rank_genes, GroupMarkers, Method, RankGenesOptions, Reference, TableFilter};
use scrna::neighbors::{knn, KnnOptions};
use scrna::normalize::{log1p, normalize_total, NormalizeOptions};
use scrna::pca::{pca, PcaOptions};
use scrna::pipeline::{output, run, PipelineOptions};
use scrna::qc::{filter, FilterOptions};
use scrna::simulate::{simulate, SimulateOptions};
use scrna::{CellTable, CsrMatrix, Dataset, Error, GeneTable};

/// CSR matrix of the non-zero entries of a dense row-major table.
fn csr(dense: &[Vec<f32>]) -> CsrMatrix {
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
    CsrMatrix::from_triplets(dense.len(), dense[0].len(), &r, &c, &v).unwrap()
}

/// A deterministic "random" value in `[0, 1)` for cell `i`, gene `j`.
fn hash01(i: usize, j: usize) -> f32 {
    let h = (i as u64 * 0x9E37_79B9 + j as u64 * 0x85EB_CA6B + 0x1234)
        .wrapping_mul(0x2545_F491_4F6C_DD1D);
    (h >> 40) as f32 / (1u64 << 24) as f32
}

fn dataset(dense: &[Vec<f32>]) -> Dataset {
    let n = dense.len();
    let m = dense[0].len();
    Dataset::new(
        csr(dense),
        CellTable::new((0..n).map(|i| format!("C{i}")).collect(), "s", "none"),
        GeneTable::new(
            (0..m).map(|j| format!("ID{j}")).collect(),
            (0..m).map(|j| format!("G{j}")).collect(),
        ),
    )
    .unwrap()
}

fn assert_finite(what: &str, v: &[f32]) {
    if let Some(p) = v.iter().position(|x| !x.is_finite()) {
        panic!("{what}: value {p} is {}", v[p]);
    }
}

fn assert_no_nan(g: &GroupMarkers) {
    let label = g.group;
    for (name, v) in [
        ("scores", &g.scores),
        ("logfoldchanges", &g.logfoldchanges),
        ("pvals", &g.pvals),
        ("pvals_adj", &g.pvals_adj),
    ] {
        assert!(
            v.iter().all(|x| x.is_finite()),
            "group {label} {name}: {v:?}"
        );
    }
    for v in [&g.pct_in, &g.pct_out, &g.auc].into_iter().flatten() {
        assert!(v.iter().all(|x| x.is_finite()), "group {label}: {v:?}");
    }
}

#[test]
fn cells_without_counts_normalize_to_zero_without_nan() {
    // Cells 1, 3 and 4 have no counts; cell 3 stores two explicit zeros.
    let mut dense: Vec<Vec<f32>> = (0..8)
        .map(|i| (0..6).map(|j| ((i + j) % 3) as f32 * 2.0).collect())
        .collect();
    for cell in [1, 3, 4] {
        dense[cell] = vec![0.0; 6];
    }
    let x = csr(&dense);
    let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..8 {
        let (idx, val) = x.row(i);
        r.extend(std::iter::repeat_n(i as u32, idx.len()));
        c.extend_from_slice(idx);
        v.extend_from_slice(val);
    }
    r.extend([3, 3]);
    c.extend([0, 5]);
    v.extend([0.0, 0.0]);
    let with_explicit_zeros = CsrMatrix::from_triplets(8, 6, &r, &c, &v).unwrap();
    assert_eq!(with_explicit_zeros.row(3).0.len(), 2);
    for counts in [&x, &with_explicit_zeros] {
        for target_sum in [None, Some(1e4)] {
            let opts = NormalizeOptions {
                target_sum,
                ..Default::default()
            };
            let n = normalize_total(counts, &opts).unwrap();
            assert_finite("size factors", &n.size_factors);
            let mut y = n.matrix;
            assert_finite("normalized", y.data());
            log1p(&mut y);
            assert_finite("log1p", y.data());
            let sums = y.row_sums();
            for cell in [1, 3, 4] {
                assert_eq!(sums[cell], 0.0, "cell {cell} should stay empty");
            }
            assert!(sums[0] > 0.0);
        }
    }
}

#[test]
fn cells_emptied_by_the_gene_filter_normalize_without_nan() {
    // Cell 0 expresses only gene 0, which no other cell expresses: the gene filter
    // (min_cells 2) removes the gene and leaves the cell with no counts.
    let mut dense: Vec<Vec<f32>> = (0..10)
        .map(|i| {
            (0..5)
                .map(|j| {
                    if j == 0 {
                        0.0
                    } else {
                        (1 + (i * j) % 4) as f32
                    }
                })
                .collect()
        })
        .collect();
    dense[0] = vec![7.0, 0.0, 0.0, 0.0, 0.0];
    let f = filter(
        &dataset(&dense),
        &FilterOptions {
            min_cells: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    let kept = &*f.dataset.counts.to_csr();
    assert_eq!(kept.shape(), (10, 4));
    assert_eq!(kept.row_sums()[0], 0.0);
    for target_sum in [None, Some(1e4)] {
        let opts = NormalizeOptions {
            target_sum,
            ..Default::default()
        };
        let mut y = normalize_total(kept, &opts).unwrap().matrix;
        log1p(&mut y);
        assert_finite("log-normalized", y.data());
        assert_eq!(y.row_sums()[0], 0.0);
    }
}

/// Log-normalized-like values: genes 0 (all zero) and 1 (the same value in every cell) have
/// zero variance, the others vary.
fn with_constant_genes(n: usize, m: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| {
            (0..m)
                .map(|j| match j {
                    0 => 0.0,
                    1 => 1.25,
                    _ if hash01(i, j) < 0.3 => 0.0,
                    _ => 0.1 + 3.0 * hash01(j, i),
                })
                .collect()
        })
        .collect()
}

#[test]
fn zero_variance_genes_are_never_highly_variable() {
    let dense = with_constant_genes(60, 40);
    let log = csr(&dense);
    // Raw counts for seurat_v3, with the same two constant genes.
    let counts = csr(&dense
        .iter()
        .map(|r| r.iter().map(|v| (v * 4.0).round()).collect())
        .collect::<Vec<_>>());
    let batches: Vec<u32> = (0..60).map(|i| i % 2).collect();
    for flavor in [Flavor::Seurat, Flavor::CellRanger, Flavor::SeuratV3] {
        // 40 asks for every gene: only the genes that vary may still be selected.
        for n_top_genes in [None, Some(10), Some(40)] {
            for batch in [None, Some(&batches[..])] {
                let opts = HvgOptions {
                    flavor,
                    n_top_genes,
                    ..Default::default()
                };
                let h = highly_variable_genes(&log, Some(&counts), batch, &opts).unwrap();
                let case = format!("{flavor:?} {n_top_genes:?} batches: {}", batch.is_some());
                assert!(
                    !h.highly_variable[0] && !h.highly_variable[1],
                    "{case}: selects a constant gene"
                );
                let n = h.selected().len();
                assert!(n > 0, "{case}: selects nothing");
                if n_top_genes == Some(40) {
                    assert_eq!(n, 38, "{case}: every gene that varies");
                }
            }
        }
    }
}

#[test]
fn zero_variance_genes_do_not_make_nan_in_pca() {
    let x = csr(&with_constant_genes(50, 12));
    for scale in [true, false] {
        let res = pca(
            &x,
            &PcaOptions {
                n_comps: 5,
                scale,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(res.stds[0], 1.0, "zero standard deviation must become 1");
        assert_eq!(res.stds[1], 1.0);
        assert_finite("embedding", res.embedding.as_slice().unwrap());
        assert_finite("loadings", res.loadings.as_slice().unwrap());
        assert!(res
            .variance
            .iter()
            .chain(&res.variance_ratio)
            .all(|v| v.is_finite()));
        // A constant gene carries no variance, so it has no weight in any component.
        for g in [0, 1] {
            for k in 0..5 {
                assert!(res.loadings[(g, k)].abs() < 1e-5, "gene {g} PC {k}");
            }
        }
    }
}

/// 40 cells x 8 genes with varied values, labels 0..3 (plus changes made by the tests).
fn marker_data() -> (CsrMatrix, Vec<u32>) {
    let dense: Vec<Vec<f32>> = (0..40)
        .map(|i| {
            (0..8)
                .map(|j| {
                    let v = hash01(i, j);
                    if v < 0.4 {
                        0.0
                    } else {
                        v * (1 + (i % 3 == j % 3) as u32 * 2) as f32
                    }
                })
                .collect()
        })
        .collect();
    (csr(&dense), (0..40).map(|i| i as u32 % 3).collect())
}

#[test]
fn a_cluster_of_one_cell_is_skipped_with_a_warning() {
    let (x, mut labels) = marker_data();
    labels[5] = 3;
    for method in [Method::Wilcoxon, Method::TTest, Method::TTestOverestimVar] {
        for reference in [Reference::Rest, Reference::Group(0)] {
            let opts = RankGenesOptions {
                method,
                reference,
                ..Default::default()
            };
            let res = rank_genes(&x, &labels, &opts).unwrap();
            assert!(res.group(3).is_none(), "{method:?} tested the 1-cell group");
            assert_eq!(res.warnings.len(), 1, "{:?}", res.warnings);
            assert!(res.warnings[0].contains("group 3"), "{:?}", res.warnings);
            let tested = if reference == Reference::Rest { 3 } else { 2 };
            assert_eq!(res.groups.len(), tested);
            res.groups.iter().for_each(assert_no_nan);
            let names: Vec<String> = (0..8).map(|j| format!("G{j}")).collect();
            let rows = res.table(&names, &TableFilter::default()).unwrap();
            assert!(rows.iter().all(|r| r.group != 3));
            assert_eq!(rows.len(), tested * 8);
        }
    }
    // As a reference, a 1-cell group is an error, not a warning.
    let opts = RankGenesOptions {
        reference: Reference::Group(3),
        ..Default::default()
    };
    assert!(matches!(
        rank_genes(&x, &labels, &opts),
        Err(Error::InvalidOption {
            name: "reference",
            ..
        })
    ));
}

#[test]
fn a_single_cluster_gives_no_markers_and_a_warning() {
    let (x, _) = marker_data();
    let labels = vec![4u32; x.n_rows()];
    for method in [Method::Wilcoxon, Method::TTest] {
        let opts = RankGenesOptions {
            method,
            ..Default::default()
        };
        let res = rank_genes(&x, &labels, &opts).unwrap();
        assert!(res.groups.is_empty(), "{method:?}: {:?}", res.groups);
        assert_eq!(res.warnings.len(), 1);
        assert!(res.warnings[0].contains("group 4"), "{:?}", res.warnings);
    }
}

#[test]
fn the_pipeline_finishes_with_a_single_cluster() {
    let sim = simulate(&SimulateOptions {
        n_cells: 300,
        n_genes: 1000,
        n_clusters: 1,
        n_markers: 10,
        condition_specific: 0,
        ..Default::default()
    })
    .unwrap();
    // Resolution 0: every connected component is one cluster.
    let opts = PipelineOptions {
        leiden: LeidenOptions {
            resolution: 0.0,
            ..Default::default()
        },
        umap: scrna::embed::UmapOptions {
            n_epochs: Some(30),
            ..Default::default()
        },
        ..Default::default()
    };
    let a = run(&sim.dataset, &opts, &mut |_| {}).unwrap();
    assert_eq!(a.clustering.n_clusters, 1);
    assert!(a.markers.groups.is_empty());
    assert_eq!(a.markers.warnings.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    output::write_all(&a, &opts, dir.path()).unwrap();
    let markers = std::fs::read_to_string(dir.path().join("markers.csv")).unwrap();
    assert_eq!(markers.lines().count(), 1, "only the header: {markers}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["n_clusters"], 1);
    assert_eq!(
        summary["marker_warnings"][0].as_str(),
        Some(a.markers.warnings[0].as_str())
    );
}

#[test]
fn ties_everywhere_give_p_one_and_z_zero() {
    // Gene 0: the same positive value in every cell; gene 1: all zero; gene 2: the same
    // negative value in every cell.
    let n = 24;
    let dense: Vec<Vec<f32>> = (0..n).map(|_| vec![1.5, 0.0, -2.0]).collect();
    let x = csr(&dense);
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
    for tie_correct in [false, true] {
        for reference in [Reference::Rest, Reference::Group(2)] {
            let opts = RankGenesOptions {
                tie_correct,
                reference,
                ..Default::default()
            };
            let res = rank_genes(&x, &labels, &opts).unwrap();
            assert!(res.warnings.is_empty());
            for g in &res.groups {
                assert_no_nan(g);
                assert_eq!(g.scores, vec![0.0; 3], "{tie_correct} {reference:?}");
                assert_eq!(g.pvals, vec![1.0; 3]);
                assert_eq!(g.pvals_adj, vec![1.0; 3]);
                assert_eq!(g.auc.as_deref(), Some(&[0.5; 3][..]));
                assert!(g.logfoldchanges.iter().all(|&l| l.abs() < 1e-12));
            }
        }
    }
}

#[test]
fn too_few_cells_for_the_neighbours_or_components_is_a_clear_error() {
    let embedding = ndarray::Array2::from_shape_fn((10, 3), |(i, j)| hash01(i, j));
    let err = knn(embedding.view(), &KnnOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                name: "n_neighbors",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("10 cells"), "{err}");
    let x = csr(&with_constant_genes(10, 20));
    let err = pca(&x, &PcaOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                name: "n_comps",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_pipeline_reduces_neighbours_and_components_for_tiny_data() {
    let sim = simulate(&SimulateOptions {
        n_cells: 12,
        n_genes: 400,
        n_clusters: 2,
        n_markers: 10,
        condition_specific: 0,
        ..Default::default()
    })
    .unwrap();
    let opts = PipelineOptions {
        filter: FilterOptions::default(),
        ..Default::default()
    };
    let a = run(&sim.dataset, &opts, &mut |_| {}).unwrap();
    assert_eq!(a.knn.n_neighbors, 12);
    assert!(a.pca.variance.len() <= 11 && !a.pca.variance.is_empty());
    assert_eq!(a.clustering.labels.len(), 12);
    assert!(a.umap.iter().all(|v| v.is_finite()));
    a.markers.groups.iter().for_each(assert_no_nan);
}
