//! UMAP layout: curve parameters against umap-learn, determinism across thread counts,
//! cluster separation and neighbourhood preservation, bad input.

#[path = "support/layout_quality.rs"]
mod layout_quality;
mod support;

use ndarray::{Array2, ArrayView2};
use scrna::embed::{find_ab_params, umap, Init, UmapOptions};
use scrna::CsrMatrix;
use support::clustered_graph::clustered_graph;

#[test]
fn ab_params_match_umap_learn() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/reference/embed/ab_params.csv"
    ))
    .unwrap();
    let mut n = 0;
    for line in text.lines().skip(1) {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let (a, b) = find_ab_params(v[0], v[1]).unwrap();
        assert!(
            (a - v[2]).abs() < 1e-4 * v[2].max(1.0) && (b - v[3]).abs() < 1e-4,
            "spread {} min_dist {}: got a {a} b {b}, umap-learn a {} b {}",
            v[0],
            v[1],
            v[2],
            v[3]
        );
        n += 1;
    }
    assert!(n >= 5);
    // Scanpy's defaults
    let (a, b) = find_ab_params(1.0, 0.5).unwrap();
    assert!((a - 0.583).abs() < 1e-3 && (b - 1.334).abs() < 1e-3);
}

fn run_in_pool(threads: usize, g: &CsrMatrix, opts: &UmapOptions) -> Array2<f32> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| umap(g, Init::Spectral, opts).unwrap())
}

#[test]
fn same_seed_same_layout_whatever_the_thread_count() {
    let c = clustered_graph(1500, 5, 6, 15, 6.0, 0.02, 7);
    let opts = UmapOptions {
        n_epochs: Some(60),
        ..Default::default()
    };
    let one = run_in_pool(1, &c.graph, &opts);
    let two = run_in_pool(2, &c.graph, &opts);
    let bits = |x: &Array2<f32>| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one), bits(&two));
    let other = umap(
        &c.graph,
        Init::Spectral,
        &UmapOptions {
            seed: 1,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_ne!(bits(&one), bits(&other), "the seed must matter");
}

/// Within / between ratio over a fixed sample of pairs.
fn within_between(x: ArrayView2<f32>, labels: &[u32]) -> f64 {
    layout_quality::within_between(x, labels, 3, 5)
}

/// kNN preservation over every cell.
fn knn_preservation(g: &CsrMatrix, x: ArrayView2<f32>, k: usize) -> f64 {
    let cells: Vec<usize> = (0..g.n_rows()).collect();
    layout_quality::knn_preservation(g, x, &cells, k)
}

#[test]
fn separated_clusters_stay_separated_and_neighbourhoods_are_kept() {
    let c = clustered_graph(1000, 4, 5, 15, 8.0, 0.01, 3);
    let x = umap(&c.graph, Init::Spectral, &UmapOptions::default()).unwrap();
    assert_eq!(x.dim(), (1000, 2));
    assert!(x.iter().all(|v| v.is_finite()));
    let ratio = within_between(x.view(), &c.labels);
    assert!(ratio < 0.3, "within / between distance ratio {ratio}");
    // graph neighbourhoods kept: random layouts score k / n = 0.015
    let p = knn_preservation(&c.graph, x.view(), 15);
    assert!(p > 0.35, "kNN preservation {p}");
}

#[test]
fn pca_and_random_starts_also_separate_clusters() {
    let c = clustered_graph(800, 4, 5, 15, 8.0, 0.01, 11);
    let pcs = Array2::from_shape_fn((800, 3), |(i, d)| c.points[i][d]);
    for init in [Init::Pca(pcs.view()), Init::Random] {
        let x = umap(
            &c.graph,
            init,
            &UmapOptions {
                n_epochs: Some(200),
                ..Default::default()
            },
        )
        .unwrap();
        // a random start keeps less global structure than a spectral one (as in umap-learn)
        let ratio = within_between(x.view(), &c.labels);
        assert!(ratio < 0.4, "{init:?}: within / between ratio {ratio}");
    }
}

#[test]
fn disconnected_components_and_isolated_cells_are_laid_out() {
    // three blobs with no edge between them, plus two cells with no edge at all
    let c = clustered_graph(600, 3, 4, 10, 5.0, 0.0, 5);
    let n = 602;
    let (mut r, mut col, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..600 {
        let (idx, val) = c.graph.row(i);
        for (&j, &w) in idx.iter().zip(val) {
            r.push(i as u32);
            col.push(j);
            v.push(w);
        }
    }
    let g = CsrMatrix::from_triplets(n, n, &r, &col, &v).unwrap();
    let x = umap(
        &g,
        Init::Spectral,
        &UmapOptions {
            n_epochs: Some(100),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(x.iter().all(|v| v.is_finite()));
    // three close blobs (separation 5 in 4-D) after only 100 epochs: a looser bound
    let ratio = within_between(x.slice(ndarray::s![..600, ..]), &c.labels);
    assert!(ratio < 0.5, "within / between ratio {ratio}");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let ok = CsrMatrix::from_triplets(3, 3, &[0, 1, 1, 2], &[1, 0, 2, 1], &[1.0; 4]).unwrap();
    let d = UmapOptions::default();
    let rect = CsrMatrix::from_triplets(3, 4, &[0], &[1], &[1.0]).unwrap();
    assert!(umap(&rect, Init::Spectral, &d).is_err());
    let neg = CsrMatrix::from_triplets(2, 2, &[0, 1], &[1, 0], &[-1.0, -1.0]).unwrap();
    assert!(umap(&neg, Init::Spectral, &d).is_err());
    let nan = CsrMatrix::from_triplets(2, 2, &[0, 1], &[1, 0], &[f32::NAN, 1.0]).unwrap();
    assert!(umap(&nan, Init::Spectral, &d).is_err());
    assert!(umap(&CsrMatrix::zeros(3, 3), Init::Spectral, &d).is_err());
    assert!(umap(&CsrMatrix::zeros(1, 1), Init::Spectral, &d).is_err());
    let pcs = Array2::<f32>::zeros((2, 2));
    assert!(umap(&ok, Init::Pca(pcs.view()), &d).is_err());
    let one_col = Array2::<f32>::zeros((3, 1));
    assert!(umap(&ok, Init::Pca(one_col.view()), &d).is_err());
    for bad in [
        UmapOptions {
            min_dist: 2.0,
            ..d.clone()
        },
        UmapOptions {
            spread: 0.0,
            ..d.clone()
        },
        UmapOptions {
            min_dist: f32::NAN,
            ..d.clone()
        },
        UmapOptions {
            learning_rate: -1.0,
            ..d.clone()
        },
        UmapOptions {
            repulsion_strength: f32::INFINITY,
            ..d.clone()
        },
    ] {
        assert!(
            matches!(
                umap(&ok, Init::Spectral, &bad),
                Err(scrna::Error::InvalidOption { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(find_ab_params(-1.0, 0.1).is_err());
    // a tiny valid graph works
    let x = umap(&ok, Init::Spectral, &d).unwrap();
    assert!(x.iter().all(|v| v.is_finite()));
}
