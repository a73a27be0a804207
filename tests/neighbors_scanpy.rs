//! kNN and graph weights against Scanpy 1.11.5 on the celltypist fixture (reference values from
//! scripts/reference_neighbors.py), plus approximate-search recall, determinism across thread
//! counts, and bad inputs.

#[path = "support/knn_recall.rs"]
mod knn_recall;
use knn_recall::recall;
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use scrna::graph::{distances_matrix, snn_graph, umap_connectivities, UmapGraphOptions};
use scrna::neighbors::{knn, Knn, KnnOptions, Method, Metric};
use scrna::CsrMatrix;
use std::path::PathBuf;

fn refdir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/reference/neighbors")
}

fn read_table(name: &str) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(refdir().join(name)).expect("reference file");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .map(|v| v.trim().parse::<f64>().expect("number"))
                .collect()
        })
        .collect()
}

fn read_triplets(name: &str) -> Vec<(u32, u32, f64)> {
    let text = std::fs::read_to_string(refdir().join(name)).expect("reference file");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().expect("row"),
                f[1].parse().expect("col"),
                f[2].parse().expect("value"),
            )
        })
        .collect()
}

fn x_pca() -> Array2<f32> {
    let t = read_table("x_pca.csv");
    let (n, d) = (t.len(), t[0].len());
    Array2::from_shape_vec((n, d), t.into_iter().flatten().map(|v| v as f32).collect())
        .expect("shape")
}

fn scanpy_knn() -> Knn {
    let idx = read_table("knn_indices.csv");
    let dist = read_table("knn_distances.csv");
    Knn {
        n_neighbors: idx[0].len(),
        indices: idx.into_iter().flatten().map(|v| v as u32).collect(),
        distances: dist.into_iter().flatten().map(|v| v as f32).collect(),
    }
}

fn exact_opts() -> KnnOptions {
    KnnOptions {
        method: Method::Exact,
        ..KnnOptions::default()
    }
}

#[test]
fn knn_matches_scanpy_up_to_exact_ties() {
    let x = x_pca();
    let ours = knn(x.view(), &exact_opts()).unwrap();
    let theirs = scanpy_knn();
    assert_eq!(ours.n_neighbors, 15);
    assert_eq!(ours.n_cells(), 553);
    let mut swapped = 0;
    for i in 0..553 {
        let (oi, od) = (ours.row_indices(i), ours.row_distances(i));
        let (ti, td) = (theirs.row_indices(i), theirs.row_distances(i));
        assert_eq!(oi[0] as usize, i, "cell {i}: self must come first");
        assert_eq!(od[0], 0.0);
        for s in 0..15 {
            assert!(
                (od[s] - td[s]).abs() <= 1e-5,
                "cell {i} rank {s}: distance {} vs Scanpy {}",
                od[s],
                td[s]
            );
            if oi[s] != ti[s] {
                // Allowed only if Scanpy's neighbour at this rank is at exactly our distance
                // and is one of ours (a swap among exactly tied distances).
                let pos = oi.iter().position(|&j| j == ti[s]);
                let ok = pos.is_some_and(|p| od[p] == od[s]);
                assert!(ok, "cell {i} rank {s}: {} vs Scanpy {}", oi[s], ti[s]);
                swapped += 1;
            }
        }
    }
    assert!(swapped < 20, "{swapped} swapped entries");
}

#[test]
fn distances_matrix_is_scanpys_layout() {
    let x = x_pca();
    let ours = knn(x.view(), &exact_opts()).unwrap();
    let m = distances_matrix(&ours).unwrap();
    assert_eq!(m.shape(), (553, 553));
    assert_eq!(m.nnz(), 553 * 14);
    let theirs = scanpy_knn();
    for i in 0..553 {
        let (cols, vals) = m.row(i);
        assert!(!cols.contains(&(i as u32)), "row {i} holds the cell itself");
        for (&c, &v) in cols.iter().zip(vals) {
            let p = theirs.row_indices(i).iter().position(|&j| j == c).unwrap();
            assert!((v - theirs.row_distances(i)[p]).abs() <= 1e-5);
        }
    }
}

fn assert_conn_matches(ours: &CsrMatrix, reference: &[(u32, u32, f64)]) {
    assert_eq!(ours.nnz(), reference.len(), "number of stored entries");
    let mut max_err = 0f64;
    for &(r, c, v) in reference {
        let (cols, vals) = ours.row(r as usize);
        let p = cols
            .binary_search(&c)
            .unwrap_or_else(|_| panic!("entry ({r}, {c}) missing"));
        max_err = max_err.max((vals[p] as f64 - v).abs());
    }
    assert!(max_err <= 1e-4, "max |ours - Scanpy| = {max_err}");
}

#[test]
fn connectivities_match_scanpy() {
    let reference = read_triplets("connectivities.csv");
    // From Scanpy's own kNN table: isolates the weights.
    let conn = umap_connectivities(&scanpy_knn(), 553, &UmapGraphOptions::default()).unwrap();
    assert_conn_matches(&conn, &reference);
    // From our kNN: the whole step.
    let ours = knn(x_pca().view(), &exact_opts()).unwrap();
    let conn = umap_connectivities(&ours, 553, &UmapGraphOptions::default()).unwrap();
    assert_conn_matches(&conn, &reference);
    // Symmetric, in (0, 1].
    let t = conn.transpose();
    assert_eq!(t, conn);
    assert!(conn.data().iter().all(|&v| v > 0.0 && v <= 1.0));
}

#[test]
fn snn_matches_seurat_formula() {
    let reference = read_triplets("snn.csv");
    let snn = snn_graph(&scanpy_knn(), 1.0 / 15.0).unwrap();
    let rows_in_ref = 40;
    let ours_nnz: usize = (0..rows_in_ref).map(|r| snn.row(r).0.len()).sum();
    assert_eq!(ours_nnz, reference.len());
    for &(r, c, v) in &reference {
        let (cols, vals) = snn.row(r as usize);
        let p = cols.binary_search(&c).expect("entry");
        assert!((vals[p] as f64 - v).abs() < 1e-6);
    }
    assert_eq!(snn.get(0, 0), 1.0);
}

/// Seeded clustered Gaussian data: `n_clusters` centres at scale 5, unit noise.
fn clustered(n: usize, d: usize, n_clusters: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    let centres: Vec<Vec<f32>> = (0..n_clusters)
        .map(|_| (0..d).map(|_| 5.0 * normal.sample(&mut rng)).collect())
        .collect();
    let mut x = Array2::zeros((n, d));
    for i in 0..n {
        let c = &centres[rng.gen_range(0..n_clusters)];
        for t in 0..d {
            x[[i, t]] = c[t] + normal.sample(&mut rng);
        }
    }
    x
}

#[test]
fn approximate_recall_and_thread_determinism() {
    let x = clustered(8_000, 50, 20, 7);
    let exact = knn(x.view(), &exact_opts()).unwrap();
    let approx_opts = KnnOptions {
        method: Method::Approximate,
        seed: 3,
        ..KnnOptions::default()
    };
    let run = |threads: usize, opts: &KnnOptions| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| knn(x.view(), opts).unwrap())
    };
    let a1 = run(1, &approx_opts);
    let a2 = run(2, &approx_opts);
    assert_eq!(a1, a2, "approximate kNN differs between 1 and 2 threads");
    let r = recall(&a1, &exact);
    assert!(r >= 0.95, "recall {r}");
    let e1 = run(1, &exact_opts());
    assert_eq!(e1, exact, "exact kNN differs between 1 and 2 threads");
    let c1 = umap_connectivities(&a1, 8_000, &UmapGraphOptions::default()).unwrap();
    let c2 = run(2, &approx_opts);
    let c2 = umap_connectivities(&c2, 8_000, &UmapGraphOptions::default()).unwrap();
    assert_eq!(c1, c2);
}

/// The acceptance figure: recall on 50,000 cells (about 25 s in release mode, exact
/// search included). Last measured: 0.994 (goal 0.95; 16 extra candidates, cells renumbered
/// in RP-leaf order).
#[test]
#[ignore]
fn approximate_recall_50k() {
    let x = clustered(50_000, 50, 30, 11);
    let exact = knn(x.view(), &exact_opts()).unwrap();
    let approx = knn(
        x.view(),
        &KnnOptions {
            method: Method::Approximate,
            ..KnnOptions::default()
        },
    )
    .unwrap();
    let r = recall(&approx, &exact);
    eprintln!("recall at k = 15 on 50,000 x 50: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
}

/// Recall of the approximate search on the embedding the pipeline computes: the simulator's
/// 50,000 x 20,000 counts, QC, normalization, 2,000 HVGs, 50 principal components. Slow
/// (about a minute in release): `cargo test --release --test neighbors_scanpy
/// approximate_recall_pipeline_embedding_50k -- --ignored`. Last measured: 0.962 (goal 0.95;
/// the bench's `SCRNA_BENCH_RECALL=1` on the same embedding gives the same figure faster).
#[test]
#[ignore]
fn approximate_recall_pipeline_embedding_50k() {
    use scrna::pipeline::{preprocess, PipelineOptions};
    use scrna::simulate::{simulate, SimulateOptions};
    let sim = simulate(&SimulateOptions {
        n_cells: 50_000,
        n_genes: 20_000,
        seed: 0,
        ..Default::default()
    })
    .unwrap();
    let opts = PipelineOptions::default();
    let pre = preprocess(&sim.dataset, &opts, &mut Vec::new()).unwrap();
    let x = pre
        .log_normalized()
        .unwrap()
        .select_cols(&pre.hvg_genes)
        .unwrap();
    let emb = scrna::pca::pca(&x, &opts.pca).unwrap().embedding;
    let exact = knn(emb.view(), &exact_opts()).unwrap();
    let approx = knn(
        emb.view(),
        &KnnOptions {
            method: Method::Approximate,
            ..KnnOptions::default()
        },
    )
    .unwrap();
    let r = recall(&approx, &exact);
    eprintln!("recall at k = 15 on the pipeline's 50,000-cell PCA embedding: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
}

#[test]
fn exact_search_is_brute_force() {
    // Small random case against a naive O(n^2) search with (distance, index) ordering.
    let x = clustered(300, 7, 4, 1);
    for metric in [Metric::Euclidean, Metric::Cosine] {
        let opts = KnnOptions {
            n_neighbors: 10,
            metric,
            method: Method::Exact,
            ..KnnOptions::default()
        };
        let ours = knn(x.view(), &opts).unwrap();
        for i in 0..300 {
            let mut all: Vec<(f64, u32)> = (0..300)
                .filter(|&j| j != i)
                .map(|j| {
                    let a = x.row(i);
                    let b = x.row(j);
                    let d = match metric {
                        Metric::Euclidean => a
                            .iter()
                            .zip(b.iter())
                            .map(|(&u, &v)| (u as f64 - v as f64).powi(2))
                            .sum::<f64>()
                            .sqrt(),
                        Metric::Cosine => {
                            let ab: f64 = a
                                .iter()
                                .zip(b.iter())
                                .map(|(&u, &v)| u as f64 * v as f64)
                                .sum();
                            let na: f64 = a.iter().map(|&u| (u as f64).powi(2)).sum::<f64>().sqrt();
                            let nb: f64 = b.iter().map(|&u| (u as f64).powi(2)).sum::<f64>().sqrt();
                            1.0 - ab / (na * nb)
                        }
                    };
                    (d, j as u32)
                })
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let expect: Vec<u32> = std::iter::once(i as u32)
                .chain(all.iter().take(9).map(|p| p.1))
                .collect();
            assert_eq!(ours.row_indices(i), &expect[..], "{metric:?} cell {i}");
            for s in 1..10 {
                assert!((ours.row_distances(i)[s] as f64 - all[s - 1].0).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn duplicates_keep_self_first_and_ties_by_index() {
    // Four identical cells and two others: every duplicate lists itself first, then the
    // other duplicates by increasing index at distance 0.
    let x = Array2::from_shape_vec((6, 2), vec![1., 1., 0., 0., 1., 1., 1., 1., 5., 5., 1., 1.])
        .unwrap();
    let opts = KnnOptions {
        n_neighbors: 4,
        ..KnnOptions::default()
    };
    for method in [Method::Exact, Method::Approximate] {
        let r = knn(
            x.view(),
            &KnnOptions {
                method,
                ..opts.clone()
            },
        )
        .unwrap();
        assert_eq!(r.row_indices(0), &[0, 2, 3, 5], "{method:?}");
        assert_eq!(r.row_indices(3), &[3, 0, 2, 5], "{method:?}");
        assert_eq!(r.row_distances(3), &[0.0, 0.0, 0.0, 0.0]);
    }
    // Connectivities stay finite with zero distances.
    let r = knn(x.view(), &opts).unwrap();
    let c = umap_connectivities(&r, 6, &UmapGraphOptions::default()).unwrap();
    assert!(c.data().iter().all(|v| v.is_finite() && *v > 0.0));
}

#[test]
fn bad_inputs_are_errors() {
    let x = clustered(10, 3, 2, 0);
    let too_many = KnnOptions {
        n_neighbors: 11,
        ..KnnOptions::default()
    };
    let e = knn(x.view(), &too_many).unwrap_err().to_string();
    assert!(e.contains("n_neighbors") && e.contains("10 cells"), "{e}");
    let zero = KnnOptions {
        n_neighbors: 0,
        ..KnnOptions::default()
    };
    assert!(knn(x.view(), &zero).is_err());
    let mut bad = x.clone();
    bad[[7, 2]] = f32::NAN;
    let three = KnnOptions {
        n_neighbors: 3,
        ..KnnOptions::default()
    };
    let e = knn(bad.view(), &three).unwrap_err().to_string();
    assert!(e.contains("cell 7"), "{e}");
    let empty = Array2::<f32>::zeros((0, 5));
    assert!(knn(empty.view(), &KnnOptions::default()).is_err());
    // n_neighbors = n works, k = 1 is only the cell itself.
    let all = knn(
        x.view(),
        &KnnOptions {
            n_neighbors: 10,
            ..KnnOptions::default()
        },
    )
    .unwrap();
    assert_eq!(all.n_cells(), 10);
    let one = knn(
        x.view(),
        &KnnOptions {
            n_neighbors: 1,
            ..KnnOptions::default()
        },
    )
    .unwrap();
    assert_eq!(one.indices, (0..10).collect::<Vec<u32>>());
    // Graph options and inconsistent tables.
    let opts = UmapGraphOptions {
        set_op_mix_ratio: 1.5,
        ..UmapGraphOptions::default()
    };
    assert!(umap_connectivities(&all, 10, &opts).is_err());
    assert!(umap_connectivities(&all, 11, &UmapGraphOptions::default()).is_err());
    assert!(snn_graph(&all, -0.1).is_err());
    let broken = Knn {
        n_neighbors: 2,
        indices: vec![0, 5],
        distances: vec![0.0, 1.0],
    };
    assert!(distances_matrix(&broken).is_err());
    // Non-standard layout (a transposed view) is accepted.
    let t = x.t().to_owned();
    let tv = t.t();
    let a = knn(
        tv,
        &KnnOptions {
            n_neighbors: 3,
            ..KnnOptions::default()
        },
    )
    .unwrap();
    let b = knn(
        x.view(),
        &KnnOptions {
            n_neighbors: 3,
            ..KnnOptions::default()
        },
    )
    .unwrap();
    assert_eq!(a, b);
}
