//! `.h5ad` writer and reader: round trips through our own reader, and reading a file written
//! by Python anndata (fixtures/reference/h5/anndata_small.h5ad, made by
//! scripts/reference_h5.py together with CSVs of its contents).

use ndarray::Array2;
use scrna::dataset::{CellTable, Column, GeneTable};
use scrna::io::h5ad::{
    read_h5ad, write_h5ad, write_h5ad_pending, H5adCompression, H5adOutput, H5adReadOptions,
    RecField, UnsValue,
};
use scrna::sparse::CsrMatrix;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

#[path = "support/largest_alloc.rs"]
mod largest_alloc;
use largest_alloc::{LARGEST, LARGEST_UNZEROED};

fn reference(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/reference/h5")
        .join(p)
}

fn csv(name: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(reference(name))
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(|s| s.to_string()).collect())
        .collect()
}

fn trip(n: usize, m: usize, t: &[(u32, u32, f32)]) -> CsrMatrix {
    let r: Vec<u32> = t.iter().map(|x| x.0).collect();
    let c: Vec<u32> = t.iter().map(|x| x.1).collect();
    let v: Vec<f32> = t.iter().map(|x| x.2).collect();
    CsrMatrix::from_triplets(n, m, &r, &c, &v).unwrap()
}

fn small() -> (CsrMatrix, CsrMatrix, CellTable, GeneTable) {
    let trip = vec![
        (0, 1, 1.5f32),
        (0, 3, 2.0),
        (1, 0, 0.25),
        (2, 2, 7.0),
        (2, 3, 1.0),
        (3, 1, 3.0),
    ];
    let x = self::trip(4, 5, &trip);
    let counts = self::trip(
        4,
        5,
        &trip
            .iter()
            .map(|&(r, c, v)| (r, c, v * 2.0))
            .collect::<Vec<_>>(),
    );
    let mut obs = CellTable::new(
        vec![
            "AAA-1".into(),
            "CCC-1".into(),
            "GGG-1".into(),
            "TTT-1".into(),
        ],
        "s1",
        "parental",
    );
    obs.sample[2] = "s2".into();
    obs.condition[2] = "resistant".into();
    obs.set("total_counts", Column::F64(vec![3.5, 0.25, 8.0, 3.0]))
        .unwrap();
    obs.set("n_genes", Column::I64(vec![2, 1, 2, 1])).unwrap();
    obs.set("keep", Column::Bool(vec![true, false, true, true]))
        .unwrap();
    obs.set(
        "note",
        Column::Str(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
    )
    .unwrap();
    obs.set(
        "leiden",
        Column::categorical_from(&["1".into(), "0".into(), "1".into(), "2".into()]),
    )
    .unwrap();
    let mut var = GeneTable::new(
        (0..5).map(|i| format!("ENSG{i}")).collect(),
        vec![
            "CD3E".into(),
            "MS4A1".into(),
            "CD3E".into(),
            "LYZ".into(),
            "NKG7".into(),
        ],
    );
    var.set(
        "highly_variable",
        Column::Bool(vec![true, true, false, false, true]),
    )
    .unwrap();
    var.set("means", Column::F64(vec![0.1, 0.2, 0.3, 0.4, 0.5]))
        .unwrap();
    (x, counts, obs, var)
}

#[test]
fn round_trip_x_layers_obs_var() {
    let (x, counts, obs, var) = small();
    let umap = Array2::from_shape_fn((4, 2), |(i, j)| (i * 2 + j) as f32);
    let mut out = H5adOutput::new(&x, &obs, &var);
    out.layers.push(("counts".into(), &counts));
    out.obsm.push(("X_umap".into(), umap.view()));
    let conn = trip(4, 4, &[(0, 1, 1.0), (1, 0, 1.0)]);
    out.obsp.push(("connectivities".into(), &conn));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.h5ad");
    out.uns.push(rank_genes_groups());
    out.uns.push((
        "leiden_colors".into(),
        UnsValue::StrArray(vec!["#1f77b4".into(), "#ff7f0e".into(), "#2ca02c".into()]),
    ));
    write_h5ad(&out, &p).unwrap();
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let as_stored = H5adReadOptions {
        assume_counts: true,
        ..Default::default()
    };
    let back = read_h5ad(&p, &as_stored).unwrap();
    assert_eq!(back.counts, x);
    assert_eq!(back.cells.barcodes, obs.barcodes);
    assert_eq!(back.cells.sample, obs.sample);
    assert_eq!(back.cells.condition, obs.condition);
    for name in ["total_counts", "n_genes", "keep", "note", "leiden"] {
        assert_eq!(
            back.cells.columns.get(name),
            obs.columns.get(name),
            "{name}"
        );
    }
    assert_eq!(back.genes.ids, var.ids);
    assert_eq!(back.genes.symbols, var.symbols);
    assert_eq!(back.genes.feature_types, var.feature_types);
    assert_eq!(back.genes.columns, var.columns);

    let layer = read_h5ad(
        &p,
        &H5adReadOptions {
            layer: Some("counts".into()),
            assume_counts: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(layer.counts, counts);
    let err = read_h5ad(
        &p,
        &H5adReadOptions {
            layer: Some("nope".into()),
            assume_counts: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("/layers/nope"), "{err}");
}

/// A matrix of 6 million stored values (24 MB of `data`, spanning many 65,535-element chunks
/// and several append pieces) as `X` and as a layer, compressed and not: the reader gives
/// back the same matrices, and no single allocation while writing comes near the size of one
/// array (the arrays are appended a bounded piece at a time).
#[test]
fn large_matrices_round_trip_and_are_written_in_pieces() {
    let (n, m, per_row) = (20_000usize, 3_000usize, 300usize);
    let mut indptr = Vec::with_capacity(n + 1);
    let mut indices = Vec::with_capacity(n * per_row);
    let mut data = Vec::with_capacity(n * per_row);
    indptr.push(0);
    for r in 0..n {
        for k in 0..per_row {
            indices.push(((r * 7 + k * 10) % m) as u32);
            data.push(((r * 31 + k * 17) % 1000) as f32 * 0.25);
        }
        let row = indptr[r]..indptr[r] + per_row;
        let mut pairs: Vec<(u32, f32)> = row.clone().map(|i| (indices[i], data[i])).collect();
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        indices.truncate(indptr[r]);
        data.truncate(indptr[r]);
        indices.extend(pairs.iter().map(|p| p.0));
        data.extend(pairs.iter().map(|p| p.1));
        indptr.push(indices.len());
    }
    let x = CsrMatrix::try_new(n, m, indptr, indices, data).unwrap();
    assert!(x.nnz() > 5_000_000, "{}", x.nnz());
    let layer = x.clone();
    let obs = CellTable::new((0..n).map(|i| format!("C{i}")).collect(), "s", "c");
    let genes: Vec<String> = (0..m).map(|j| format!("G{j}")).collect();
    let var = GeneTable::new(genes.clone(), genes);
    let dir = tempfile::tempdir().unwrap();
    for level in [
        H5adCompression::Gzip(4),
        H5adCompression::None,
        H5adCompression::Gzip(1),
    ] {
        let mut out = H5adOutput::new(&x, &obs, &var);
        out.layers.push(("counts".into(), &layer));
        out.compression = level;
        let p = dir.path().join(format!("big_{level:?}.h5ad"));
        LARGEST.store(0, Ordering::Relaxed);
        LARGEST_UNZEROED.store(0, Ordering::Relaxed);
        write_h5ad(&out, &p).unwrap();
        let array = x.nnz() * 4;
        // Uncompressed, the large arrays are declared with zero-filled placeholders (read but
        // never written) and written in place: no other allocation comes near an array.
        let largest = if level == H5adCompression::None {
            LARGEST_UNZEROED.load(Ordering::Relaxed)
        } else {
            LARGEST.load(Ordering::Relaxed)
        };
        assert!(
            largest < array / 2,
            "largest allocation while writing {largest} bytes, one array is {array}"
        );
        let as_stored = H5adReadOptions {
            assume_counts: true,
            ..Default::default()
        };
        let back = read_h5ad(&p, &as_stored).unwrap();
        assert_eq!(back.counts, x, "{level:?}");
        let back = read_h5ad(
            &p,
            &H5adReadOptions {
                layer: Some("counts".into()),
                assume_counts: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(back.counts, layer, "{level:?}");
    }
}

fn rank_genes_groups() -> (String, UnsValue) {
    let groups = ["0", "1", "2"];
    let names: Vec<(String, RecField)> = groups
        .iter()
        .map(|g| {
            (
                g.to_string(),
                RecField::Str(vec!["CD3E".into(), "LYZ".into()]),
            )
        })
        .collect();
    let num = |scale: f32| -> Vec<(String, RecField)> {
        groups
            .iter()
            .map(|g| (g.to_string(), RecField::F32(vec![scale, scale / 2.0])))
            .collect()
    };
    let num64 = |scale: f64| -> Vec<(String, RecField)> {
        groups
            .iter()
            .map(|g| (g.to_string(), RecField::F64(vec![scale, scale * 2.0])))
            .collect()
    };
    (
        "rank_genes_groups".into(),
        UnsValue::Dict(vec![
            (
                "params".into(),
                UnsValue::Dict(vec![
                    ("groupby".into(), UnsValue::Str("leiden".into())),
                    ("reference".into(), UnsValue::Str("rest".into())),
                    ("method".into(), UnsValue::Str("wilcoxon".into())),
                    ("use_raw".into(), UnsValue::Bool(false)),
                    (
                        "corr_method".into(),
                        UnsValue::Str("benjamini-hochberg".into()),
                    ),
                ]),
            ),
            ("names".into(), UnsValue::RecArray(names)),
            ("scores".into(), UnsValue::RecArray(num(5.0))),
            ("logfoldchanges".into(), UnsValue::RecArray(num(2.0))),
            ("pvals".into(), UnsValue::RecArray(num64(1e-5))),
            ("pvals_adj".into(), UnsValue::RecArray(num64(1e-4))),
        ]),
    )
}

/// An `obsm` array left for later: the finished file is the one written with the values at
/// once; a wrong shape or a missing array is an error, and an unfinished file is removed.
#[test]
fn obsm_written_later_gives_the_same_file() {
    let (x, counts, obs, var) = small();
    let umap = Array2::from_shape_fn((4, 2), |(i, j)| (i * 3 + j) as f32 - 2.5);
    let zeros = Array2::<f32>::zeros((4, 2));
    let dir = tempfile::tempdir().unwrap();
    let build = |u: &Array2<f32>, p: &Path, later: bool| {
        let mut out = H5adOutput::new(&x, &obs, &var);
        out.layers.push(("counts".into(), &counts));
        out.obsm.push(("X_umap".into(), u.view()));
        out.uns.push(rank_genes_groups());
        if later {
            Some(write_h5ad_pending(&out, p, &["X_umap"]).unwrap())
        } else {
            write_h5ad(&out, p).unwrap();
            None
        }
    };
    let (at_once, later) = (dir.path().join("a.h5ad"), dir.path().join("b.h5ad"));
    build(&umap, &at_once, false);
    let pending = build(&zeros, &later, true).unwrap();
    assert!(!later.exists());
    pending.finish(&[("X_umap", umap.view())]).unwrap();
    assert_eq!(
        std::fs::read(&at_once).unwrap(),
        std::fs::read(&later).unwrap()
    );

    let other = dir.path().join("c.h5ad");
    let pending = build(&zeros, &other, true).unwrap();
    let wrong = Array2::<f32>::zeros((3, 2));
    assert!(pending.finish(&[("X_umap", wrong.view())]).is_err());
    let pending = build(&zeros, &other, true).unwrap();
    assert!(pending.finish(&[]).is_err());
    drop(build(&zeros, &other, true));
    assert!(!other.exists());
    // only a.h5ad and b.h5ad: no temporary file is left behind
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    let mut out = H5adOutput::new(&x, &obs, &var);
    out.obsm.push(("X_umap".into(), zeros.view()));
    assert!(write_h5ad_pending(&out, &other, &["X_pca"]).is_err());
}

#[test]
fn shape_mismatch_is_rejected_before_writing() {
    let (x, counts, obs, var) = small();
    let t = counts.transpose();
    let mut out = H5adOutput::new(&x, &obs, &var);
    out.layers.push(("bad".into(), &t));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.h5ad");
    assert!(write_h5ad(&out, &p).is_err());
    assert!(!p.exists());
}

#[test]
fn reads_a_file_written_by_anndata() {
    let p = reference("anndata_small.h5ad");
    let as_stored = H5adReadOptions {
        assume_counts: true,
        ..Default::default()
    };
    let ds = read_h5ad(&p, &as_stored).unwrap();
    let xs = csv("anndata_small_X.csv");
    assert_eq!(ds.n_cells(), xs.len());
    let dense = ds.counts.to_dense();
    for (i, row) in xs.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            assert_eq!(dense[[i, j]], v.parse::<f32>().unwrap(), "X[{i},{j}]");
        }
    }
    // Layers in the three encodings: CSR (2 X), CSC (3 X), dense (4 X).
    for (layer, k) in [("counts", 2.0f32), ("csc", 3.0), ("dense", 4.0)] {
        let l = read_h5ad(
            &p,
            &H5adReadOptions {
                layer: Some(layer.into()),
                assume_counts: true,
                ..Default::default()
            },
        )
        .unwrap();
        let (lc, dc) = (l.counts.to_csr(), ds.counts.to_csr());
        let scaled = dc.data().iter().map(|v| v * k).collect::<Vec<_>>();
        assert_eq!(lc.indptr(), dc.indptr(), "{layer}");
        assert_eq!(lc.indices(), dc.indices(), "{layer}");
        assert_eq!(lc.data(), &scaled[..], "{layer}");
    }
    let obs = csv("anndata_small_obs.csv");
    for (i, row) in obs.iter().skip(1).enumerate() {
        assert_eq!(ds.cells.barcodes[i], row[0]);
        assert_eq!(ds.cells.sample[i], row[1]);
        assert_eq!(ds.cells.condition[i], row[2]);
        let c = &ds.cells.columns;
        assert_eq!(c.get("leiden").unwrap().format(i), row[3]);
        match c.get("score").unwrap() {
            Column::F64(v) => assert_eq!(v[i], row[4].parse::<f64>().unwrap()),
            other => panic!("score: {other:?}"),
        }
        match c.get("n_counts").unwrap() {
            Column::I64(v) => assert_eq!(v[i], row[5].parse::<i64>().unwrap()),
            other => panic!("n_counts: {other:?}"),
        }
        match c.get("keep").unwrap() {
            Column::Bool(v) => assert_eq!(v[i], row[6] == "True"),
            other => panic!("keep: {other:?}"),
        }
        assert_eq!(c.get("note").unwrap().format(i), row[7]);
    }
    let var = csv("anndata_small_var.csv");
    for (j, row) in var.iter().skip(1).enumerate() {
        assert_eq!(ds.genes.symbols[j], row[0]);
        assert_eq!(ds.genes.ids[j], row[1]);
        assert_eq!(ds.genes.feature_types[j], row[2]);
        match ds.genes.columns.get("dispersion").unwrap() {
            Column::F64(v) => assert!((v[j] - row[3].parse::<f64>().unwrap()).abs() < 1e-12),
            other => panic!("dispersion: {other:?}"),
        }
    }
}

/// Writes `target/demo.h5ad` (uncompressed), `target/demo_gzip.h5ad` (gzip level 4) and
/// `target/demo_gzip1.h5ad` (gzip level 1) for `scripts/verify_h5ad.py` (run with
/// `--ignored`).
#[test]
#[ignore]
fn write_demo_for_python_check() {
    let (x, counts, obs, var) = small();
    let umap = Array2::from_shape_fn((4, 2), |(i, j)| (i as f32) - (j as f32) * 0.5);
    let pca = Array2::from_shape_fn((4, 3), |(i, j)| (i + j) as f32);
    let pcs = Array2::from_shape_fn((5, 3), |(i, j)| (i * j) as f32 / 10.0);
    let conn = trip(4, 4, &[(0, 2, 0.5), (2, 0, 0.5), (1, 3, 1.0), (3, 1, 1.0)]);
    let mut out = H5adOutput::new(&x, &obs, &var);
    out.layers.push(("counts".into(), &counts));
    out.obsm.push(("X_umap".into(), umap.view()));
    out.obsm.push(("X_pca".into(), pca.view()));
    out.varm.push(("PCs".into(), pcs.view()));
    out.obsp.push(("connectivities".into(), &conn));
    out.obsp.push(("distances".into(), &conn));
    out.uns.push(rank_genes_groups());
    out.uns.push((
        "leiden_colors".into(),
        UnsValue::StrArray(vec!["#1f77b4".into(), "#ff7f0e".into(), "#2ca02c".into()]),
    ));
    out.uns.push((
        "pca".into(),
        UnsValue::Dict(vec![
            (
                "variance_ratio".into(),
                UnsValue::F64Array(vec![0.5, 0.3, 0.2]),
            ),
            ("n_comps".into(), UnsValue::I64(3)),
        ]),
    ));
    for (name, c) in [
        ("demo", H5adCompression::None),
        ("demo_gzip", H5adCompression::Gzip(4)),
        ("demo_gzip1", H5adCompression::Gzip(1)),
    ] {
        out.compression = c;
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/{name}.h5ad"));
        write_h5ad(&out, &p).unwrap();
        eprintln!("wrote {}", p.display());
    }
}

/// Every compression setting writes a file that reads back to the same matrices, the gzip
/// ones smaller than the uncompressed one; bad settings are refused before anything is
/// written.
#[test]
fn compression_settings_round_trip() {
    let n = 300;
    let m = 120;
    let mut indptr = vec![0usize];
    let (mut indices, mut data) = (Vec::new(), Vec::new());
    for r in 0..n {
        for c in (r % 7..m).step_by(5) {
            indices.push(c as u32);
            data.push(((r * 31 + c * 17) % 13) as f32 + 1.0);
        }
        indptr.push(indices.len());
    }
    let x = CsrMatrix::try_new(n, m, indptr, indices, data).unwrap();
    let obs = CellTable::new((0..n).map(|i| format!("C{i}")).collect(), "s", "c");
    let genes: Vec<String> = (0..m).map(|j| format!("G{j}")).collect();
    let var = GeneTable::new(genes.clone(), genes);
    let dir = tempfile::tempdir().unwrap();
    let mut sizes = Vec::new();
    for c in ["none", "gzip", "gzip:1", "gzip:9", "gzip:0"] {
        let compression: H5adCompression = c.parse().unwrap();
        let mut out = H5adOutput::new(&x, &obs, &var);
        out.layers.push(("counts".into(), &x));
        out.compression = compression;
        let p = dir.path().join(format!("{}.h5ad", c.replace(':', "_")));
        write_h5ad(&out, &p).unwrap();
        let back = read_h5ad(&p, &H5adReadOptions::default()).unwrap();
        assert_eq!(back.counts, x, "{c}");
        sizes.push((c, std::fs::metadata(&p).unwrap().len()));
    }
    let size = |c: &str| sizes.iter().find(|s| s.0 == c).unwrap().1;
    assert!(size("gzip") < size("none"), "{sizes:?}");
    assert!(size("gzip:9") <= size("gzip:1"), "{sizes:?}");
    assert_eq!(
        "gzip".parse::<H5adCompression>().unwrap(),
        H5adCompression::Gzip(4)
    );
    assert_eq!(H5adCompression::default(), H5adCompression::None);
    for bad in ["gzip:10", "zstd", "gzip:", "gzip:x", ""] {
        assert!(bad.parse::<H5adCompression>().is_err(), "{bad}");
    }
    let mut out = H5adOutput::new(&x, &obs, &var);
    out.compression = H5adCompression::Gzip(12);
    let p = dir.path().join("bad.h5ad");
    assert!(write_h5ad(&out, &p).is_err());
    assert!(!p.exists());
}

/// Integer counts below 65,536 are read straight into the compact layout, from `X` or from a
/// counts layer beside log values in `X`; other values stay `f32` and read the same.
#[test]
fn counts_are_read_compact_when_they_fit() {
    let sim = scrna::simulate::simulate(&scrna::simulate::SimulateOptions {
        n_cells: 300,
        n_genes: 1000,
        ..Default::default()
    })
    .unwrap();
    let d = sim.dataset;
    assert!(d.counts.is_compact());
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.h5ad");
    write_h5ad(&H5adOutput::new(&d.counts, &d.cells, &d.genes), &raw).unwrap();
    let back = read_h5ad(&raw, &H5adReadOptions::default()).unwrap();
    assert!(back.counts.is_compact());
    assert_eq!(back.counts, d.counts);

    let sf = vec![1.5f32; d.n_cells()];
    let log = scrna::lognorm::LogCounts::new(&d.counts, &sf).unwrap();
    let mut out = H5adOutput::new(&log, &d.cells, &d.genes);
    out.layers.push(("counts".into(), &d.counts));
    let processed = dir.path().join("processed.h5ad");
    write_h5ad(&out, &processed).unwrap();
    let (back, name) =
        scrna::io::h5ad::read_h5ad_counts(&processed, &H5adReadOptions::default()).unwrap();
    assert_eq!(name, "layers/counts");
    assert!(back.counts.is_compact());
    assert_eq!(back.counts, d.counts);

    // Non-integer values (read as stored): the f32 layout, the same numbers.
    let half = CsrMatrix::try_new(2, 3, vec![0, 1, 2], vec![0, 2], vec![0.5, 70_000.0]).unwrap();
    let cells = CellTable::new(vec!["a".into(), "b".into()], "s", "c");
    let genes = GeneTable::new(
        vec!["g1".into(), "g2".into(), "g3".into()],
        vec!["G1".into(), "G2".into(), "G3".into()],
    );
    let p = dir.path().join("half.h5ad");
    write_h5ad(&H5adOutput::new(&half, &cells, &genes), &p).unwrap();
    let as_stored = H5adReadOptions {
        assume_counts: true,
        ..Default::default()
    };
    let back = read_h5ad(&p, &as_stored).unwrap();
    assert!(!back.counts.is_compact());
    assert_eq!(back.counts, half);
}
