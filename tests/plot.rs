//! Figures: every function writes a decodable PNG of the requested size and an SVG holding
//! the labels; bad input is an error.

use ndarray::Array2;
use scrna::plot::{self, PlotOptions};
use std::path::Path;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// Checks the PNG signature and returns (width, height) from its IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert!(b.len() > 1000, "{} is too small", path.display());
    assert_eq!(b[..8], PNG_SIGNATURE, "{} is not a PNG", path.display());
    assert_eq!(&b[12..16], b"IHDR");
    let w = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
    let h = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
    (w, h)
}

/// The PNG is not blank: it has several distinct colours.
fn png_colours(path: &Path) -> usize {
    let img = image::open(path).unwrap().to_rgb8();
    let mut set = std::collections::HashSet::new();
    for p in img.pixels() {
        set.insert(p.0);
        if set.len() > 50 {
            break;
        }
    }
    set.len()
}

fn svg_text(path: &Path) -> String {
    let t = std::fs::read_to_string(path).unwrap();
    assert!(
        t.trim_start().starts_with("<svg"),
        "{} is not SVG",
        path.display()
    );
    assert!(t.trim_end().ends_with("</svg>"));
    assert_eq!(t.matches("<svg").count(), 1);
    t
}

fn blobs(n: usize, k: usize) -> (Array2<f32>, Vec<u32>) {
    let labels: Vec<u32> = (0..n).map(|i| (i % k) as u32).collect();
    let emb = Array2::from_shape_fn((n, 2), |(i, d)| {
        let c = (i % k) as f32;
        let t = (i as f32 * 0.618).fract() * std::f32::consts::TAU;
        let r = ((i * 7919) % 1000) as f32 / 1000.0;
        if d == 0 {
            c * 5.0 + r * t.cos()
        } else {
            (c * 1.3).sin() * 6.0 + r * t.sin()
        }
    });
    (emb, labels)
}

#[test]
fn umap_by_cluster_writes_png_and_svg_with_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (emb, labels) = blobs(600, 5);
    let names: Vec<String> = ["T cells", "B cells", "NK", "Mono", "DC"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let files = plot::umap_clusters(
        emb.view(),
        &labels,
        &names,
        &dir.path().join("umap_leiden"),
        &PlotOptions::default(),
    )
    .unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0], dir.path().join("umap_leiden.png"));
    assert_eq!(png_size(&files[0]), (1000, 800));
    assert!(png_colours(&files[0]) > 6);
    let svg = svg_text(&files[1]);
    for name in &names {
        assert!(svg.contains(name.as_str()), "SVG lacks {name}");
    }
    assert!(svg.contains("UMAP1") && svg.contains("UMAP2"));
    assert!(svg.matches("<circle").count() >= 600);
}

#[test]
fn umap_by_category_has_a_legend() {
    let dir = tempfile::tempdir().unwrap();
    let (emb, _) = blobs(300, 3);
    let labels: Vec<u32> = (0..300).map(|i| (i % 2) as u32).collect();
    let names = vec!["parental".to_string(), "resistant".to_string()];
    let files = plot::umap_categorical(
        emb.view(),
        &labels,
        &names,
        "Condition",
        &dir.path().join("umap_condition"),
        &PlotOptions {
            width: 700,
            height: 500,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(png_size(&files[0]), (700, 500));
    let svg = svg_text(&files[1]);
    assert!(svg.contains("parental") && svg.contains("resistant") && svg.contains("Condition"));
}

#[test]
fn qc_dotplot_and_elbow_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let n = 400;
    let total: Vec<f32> = (0..n)
        .map(|i| 1000.0 + (i * 37 % 400) as f32 * 10.0)
        .collect();
    let genes: Vec<f32> = total.iter().map(|t| t * 0.4).collect();
    let mito: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 0.7).collect();
    let groups: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
    let gnames = vec!["sample_A".to_string(), "sample_B".to_string()];
    let files = plot::qc_violins(
        &total,
        &genes,
        &mito,
        Some((&groups, &gnames)),
        &dir.path().join("qc"),
        &PlotOptions::default(),
    )
    .unwrap();
    assert!(png_colours(&files[0]) > 3);
    let svg = svg_text(&files[1]);
    assert!(svg.contains("Total counts") && svg.contains("sample_B"));

    let fr = Array2::from_shape_fn((3, 4), |(i, j)| if i == j { 0.9 } else { 0.1 });
    let mean = fr.mapv(|f| f * 2.0);
    let gene_names: Vec<String> = ["CD3E", "MS4A1", "LYZ", "NKG7"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let clusters: Vec<String> = (0..3).map(|i| format!("cluster {i}")).collect();
    let files = plot::dot_plot(
        fr.view(),
        mean.view(),
        &gene_names,
        &clusters,
        &dir.path().join("dotplot"),
        &PlotOptions::default(),
    )
    .unwrap();
    png_size(&files[0]);
    let svg = svg_text(&files[1]);
    for g in gene_names.iter().chain(&clusters) {
        assert!(svg.contains(g.as_str()), "dot plot SVG lacks {g}");
    }
    assert!(svg.contains("Mean expression") && svg.contains("Fraction of cells"));

    let vr: Vec<f32> = (0..30).map(|i| 0.1 / (1.0 + i as f32)).collect();
    let files = plot::pca_elbow(&vr, &dir.path().join("elbow"), &PlotOptions::default()).unwrap();
    png_size(&files[0]);
    assert!(svg_text(&files[1]).contains("Principal component"));
}

#[test]
fn bad_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (emb, labels) = blobs(10, 2);
    let names = vec!["a".to_string()];
    let o = PlotOptions::default();
    let stem = dir.path().join("x");
    // label 1 has no name
    assert!(plot::umap_clusters(emb.view(), &labels, &names, &stem, &o).is_err());
    let names = vec!["a".to_string(), "b".to_string()];
    assert!(plot::umap_clusters(emb.view(), &labels[..5], &names, &stem, &o).is_err());
    let missing = dir.path().join("no/such/folder/x");
    assert!(plot::umap_clusters(emb.view(), &labels, &names, &missing, &o).is_err());
    let tiny = PlotOptions {
        width: 10,
        ..Default::default()
    };
    assert!(plot::umap_clusters(emb.view(), &labels, &names, &stem, &tiny).is_err());
    assert!(plot::pca_elbow(&[], &stem, &o).is_err());
    assert!(plot::pca_elbow(&[f32::NAN], &stem, &o).is_err());
    assert!(plot::qc_violins(&[1.0], &[1.0, 2.0], &[1.0], None, &stem, &o).is_err());
    let fr = Array2::<f32>::zeros((2, 3));
    let mean = Array2::<f32>::zeros((3, 2));
    let g3: Vec<String> = (0..3).map(|i| i.to_string()).collect();
    assert!(plot::dot_plot(fr.view(), mean.view(), &g3, &names, &stem, &o).is_err());
}
