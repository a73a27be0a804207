//! The simulator's multi-sample features: batch effects, doublets, a condition-wide program
//! shift, sample-to-sample composition, the null and study designs; and the default output,
//! which must not change.

use scrna::simulate::{simulate, SimulateOptions, Simulation};

/// FNV-1a over the counts (shape, indptr, indices, value bits), the cell table (barcodes,
/// sample, condition) and the true clusters and conditions.
fn checksum(s: &Simulation) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let c = &*s.dataset.counts.to_csr();
    eat(&(c.n_rows() as u64).to_le_bytes());
    eat(&(c.n_cols() as u64).to_le_bytes());
    for &p in c.indptr() {
        eat(&(p as u64).to_le_bytes());
    }
    for &j in c.indices() {
        eat(&j.to_le_bytes());
    }
    for &v in c.data() {
        eat(&v.to_bits().to_le_bytes());
    }
    let cells = &s.dataset.cells;
    for i in 0..cells.barcodes.len() {
        eat(cells.barcodes[i].as_bytes());
        eat(cells.sample[i].as_bytes());
        eat(cells.condition[i].as_bytes());
    }
    for (&k, &c) in s.truth.cluster.iter().zip(&s.truth.condition) {
        eat(&k.to_le_bytes());
        eat(&c.to_le_bytes());
    }
    for m in &s.truth.markers {
        for &g in m {
            eat(&(g as u64).to_le_bytes());
        }
    }
    h
}

/// The default model (only smaller) and two variants; the checksums were computed with the
/// simulator as it was before batch effects, doublets, shifts and composition variation were
/// added, and every new option is off by default, so they must not change. (The checksums
/// depend on the platform's `exp` and `ln_1p` being correctly rounded or the same as on
/// x86-64 Linux.)
#[test]
fn default_output_is_unchanged() {
    let cases: [(&str, SimulateOptions, u64); 3] = [
        (
            "default, 600 cells x 3,000 genes",
            SimulateOptions {
                n_cells: 600,
                n_genes: 3_000,
                ..Default::default()
            },
            0x1907_0467_f018_56c1,
        ),
        (
            "one condition, 3 samples, seed 7",
            SimulateOptions {
                n_cells: 500,
                n_genes: 2_000,
                n_clusters: 5,
                n_markers: 20,
                conditions: vec!["a".into()],
                samples_per_condition: 3,
                seed: 7,
                ..Default::default()
            },
            0x63ce_87d7_1005_011d,
        ),
        (
            "three conditions, 2 specific clusters, seed 3",
            SimulateOptions {
                n_cells: 700,
                n_genes: 2_500,
                n_clusters: 6,
                n_markers: 30,
                conditions: vec!["x".into(), "y".into(), "z".into()],
                condition_specific: 2,
                depleted_share: 0.3,
                dispersion: 0.5,
                seed: 3,
                ..Default::default()
            },
            0x7a31_ed5f_2666_8b31,
        ),
    ];
    let all: Vec<u64> = cases
        .iter()
        .map(|(_, opts, _)| checksum(&simulate(opts).unwrap()))
        .collect();
    for ((name, _, expected), got) in cases.iter().zip(&all) {
        assert_eq!(
            got, expected,
            "{name}: checksum {got:#018x}, all {all:#018x?}"
        );
    }
}

use scrna::error::Error;
use scrna::simulate::{ProgramShift, Simulator};

fn base() -> SimulateOptions {
    SimulateOptions {
        n_cells: 2_000,
        n_genes: 2_000,
        n_clusters: 4,
        n_markers: 20,
        ..Default::default()
    }
}

/// Library size of every cell.
fn totals(s: &Simulation) -> Vec<f64> {
    s.dataset.counts.row_sums()
}

/// Mean over `cells` of `log1p(10^4 x / total)` for every gene.
fn mean_log_expression(s: &Simulation, cells: &[usize]) -> Vec<f64> {
    let t = totals(s);
    let mut m = vec![0.0; s.dataset.n_genes()];
    let counts = s.dataset.counts.to_csr();
    for &i in cells {
        let (idx, val) = counts.row(i);
        for (&g, &v) in idx.iter().zip(val) {
            m[g as usize] += (1e4 * v as f64 / t[i]).ln_1p();
        }
    }
    m.iter_mut().for_each(|x| *x /= cells.len() as f64);
    m
}

/// Pooled share of `genes` in the UMIs of `cells` (mean over cells of the per-cell share).
fn share(s: &Simulation, cells: &[usize], genes: &[usize]) -> f64 {
    let t = totals(s);
    let counts = s.dataset.counts.to_csr();
    cells
        .iter()
        .map(|&i| {
            let (idx, val) = counts.row(i);
            idx.iter()
                .zip(val)
                .filter(|(g, _)| genes.binary_search(&(**g as usize)).is_ok())
                .map(|(_, &v)| v as f64)
                .sum::<f64>()
                / t[i]
        })
        .sum::<f64>()
        / cells.len() as f64
}

fn cells_where(s: &Simulation, f: impl Fn(usize) -> bool) -> Vec<usize> {
    (0..s.dataset.n_cells()).filter(|&i| f(i)).collect()
}

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
}

/// Gene-wise batch effects: between the two samples of a condition, the mean log expression of
/// cluster 0's cells differs by much more than sampling noise with `batch_sd = 0.35`, in the
/// direction of the true factors, and only by sampling noise with `batch_sd = 0`. Genes: the
/// 300 most expressed. Bounds: RMS difference > 0.15 with the effect, < 0.1 without
/// (measured: 0.46 and 0.06); correlation with the true log
/// factor ratio > 0.7.
#[test]
fn batch_effect_moves_samples_apart() {
    let run = |sd: f64| {
        simulate(&SimulateOptions {
            batch_sd: sd,
            ..base()
        })
        .unwrap()
    };
    let (with, without) = (run(0.35), run(0.0));
    assert_eq!(with.truth.cluster, without.truth.cluster);
    assert!(without.truth.batch_factors.is_empty());
    assert_eq!(with.truth.batch_factors.len(), 4);
    let top: Vec<usize> = {
        let m = mean_log_expression(&without, &cells_where(&without, |_| true));
        let mut g: Vec<usize> = (13..m.len()).collect();
        g.sort_by(|&a, &b| m[b].total_cmp(&m[a]));
        g.truncate(300);
        g
    };
    let diff = |s: &Simulation| -> Vec<f64> {
        let of = |k: u32| cells_where(s, |i| s.truth.sample[i] == k && s.truth.cluster[i] == 0);
        let (a, b) = (
            mean_log_expression(s, &of(0)),
            mean_log_expression(s, &of(1)),
        );
        top.iter().map(|&g| a[g] - b[g]).collect()
    };
    let (d_with, d_without) = (diff(&with), diff(&without));
    let (r_with, r_without) = (rms(&d_with), rms(&d_without));
    println!(
        "RMS difference between samples: {r_with:.3} with batch_sd 0.35, {r_without:.3} without"
    );
    assert!(r_with > 0.15, "batch effect too small: {r_with}");
    assert!(
        r_without < 0.1,
        "differences without batch effect: {r_without}"
    );
    let f = &with.truth.batch_factors;
    let truth: Vec<f64> = top.iter().map(|&g| (f[0][g] / f[1][g]).ln()).collect();
    let c = correlation(&d_with, &truth);
    println!("correlation with the true log factor ratio: {c:.3}");
    assert!(c > 0.7, "correlation {c}");
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// The library-size factor multiplies the libraries of a sample: the ratio of median
/// libraries between samples follows the true factors (within 10%; 500 cells per sample give
/// about 2% error on a median).
#[test]
fn batch_library_factor_scales_libraries() {
    let s = simulate(&SimulateOptions {
        batch_library_sd: 0.3,
        ..base()
    })
    .unwrap();
    let t = totals(&s);
    let f = &s.truth.sample_library_factor;
    let median = |k: u32| {
        let mut v: Vec<f64> = cells_where(&s, |i| s.truth.sample[i] == k)
            .iter()
            .map(|&i| t[i])
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let m0 = median(0);
    for k in 1..4 {
        let observed = median(k) / m0;
        let expected = f[k as usize] / f[0];
        assert!(
            (observed / expected - 1.0).abs() < 0.1,
            "sample {k}: ratio {observed}, expected {expected}"
        );
    }
    assert!(f.iter().any(|&x| (x - 1.0).abs() > 0.05));
}

/// Doublets: exactly `round(rate n_s)` per sample, flags and parents consistent, two different
/// types present in the sample, libraries about twice a singlet's (bounds 1.7–2.3), and the
/// markers of both parents raised (share of the second parent's markers in doublets > 1.8
/// times their share in singlets of other types; expected about 2.5 with marker fold 4).
#[test]
fn doublets_are_flagged_and_mix_two_types() {
    let rate = 0.1;
    let s = simulate(&SimulateOptions {
        doublet_rate: rate,
        ..base()
    })
    .unwrap();
    let tr = &s.truth;
    for k in 0..4u32 {
        let cells = cells_where(&s, |i| tr.sample[i] == k);
        let n_d = cells.iter().filter(|&&i| tr.doublet[i]).count();
        assert_eq!(
            n_d,
            (rate * cells.len() as f64).round() as usize,
            "sample {k}"
        );
    }
    for i in 0..s.dataset.n_cells() {
        assert_eq!(tr.doublet[i], tr.doublet_parents[i].is_some());
        if let Some((a, b)) = tr.doublet_parents[i] {
            assert_eq!(a, tr.cluster[i]);
            assert_ne!(a, b);
            assert!(tr.sample_proportions[tr.sample[i] as usize][b as usize] > 0.0);
        }
    }
    let t = totals(&s);
    let doublets = cells_where(&s, |i| tr.doublet[i]);
    let singlets = cells_where(&s, |i| !tr.doublet[i]);
    let mean = |c: &[usize]| c.iter().map(|&i| t[i]).sum::<f64>() / c.len() as f64;
    let ratio = mean(&doublets) / mean(&singlets);
    println!("library ratio doublets / singlets: {ratio:.3}");
    assert!((1.7..2.3).contains(&ratio), "library ratio {ratio}");
    // Markers of the second parent.
    let (mut in_d, mut in_s) = (0.0, 0.0);
    for b in 0..4u32 {
        let d = cells_where(
            &s,
            |i| matches!(tr.doublet_parents[i], Some((_, x)) if x == b),
        );
        let o = cells_where(&s, |i| !tr.doublet[i] && tr.cluster[i] != b);
        in_d += share(&s, &d, &tr.markers[b as usize]);
        in_s += share(&s, &o, &tr.markers[b as usize]);
    }
    println!("second parent's markers: {:.3}x", in_d / in_s);
    assert!(in_d / in_s > 1.8, "second parent's markers {}", in_d / in_s);
    // Without doublets nothing is flagged.
    let none = simulate(&base()).unwrap();
    assert!(none.truth.doublet.iter().all(|&d| !d));
}

/// The program shift: 25 non-marker genes with folds in [2, 3]; their share in the shifted
/// type's cells is up by the true folds in the last condition only (mean log ratio within 0.12
/// of the mean log fold; other conditions and another type within 12% of no change; a pooled
/// share of ~25 genes over ~250 cells has a few % sampling error).
#[test]
fn shift_raises_the_program_in_the_last_condition_only() {
    let s = simulate(&SimulateOptions {
        n_cells: 3_000,
        n_genes: 3_000,
        conditions: vec!["x".into(), "y".into(), "z".into()],
        samples_per_condition: 1,
        condition_specific: 0,
        shift: Some(ProgramShift {
            cluster: 1,
            ..Default::default()
        }),
        ..base()
    })
    .unwrap();
    let tr = &s.truth;
    let sh = tr.shift.as_ref().unwrap();
    assert_eq!((sh.cluster, sh.condition), (1, 2));
    assert_eq!(sh.genes.len(), 25);
    assert!(sh.folds.iter().all(|f| (2.0..=3.0).contains(f)));
    assert!(sh.genes.windows(2).all(|w| w[0] < w[1]));
    assert!(sh.genes.iter().all(|&g| g >= 13));
    for m in &tr.markers {
        assert!(sh.genes.iter().all(|g| m.binary_search(g).is_err()));
    }
    let of = |k: u32, c: u32| cells_where(&s, |i| tr.cluster[i] == k && tr.condition[i] == c);
    // Per gene, shifted against the first condition.
    let (a, z) = (of(1, 0), of(1, 2));
    let mut log_ratio = 0.0;
    for &g in &sh.genes {
        log_ratio += (share(&s, &z, &[g]) / share(&s, &a, &[g])).ln();
    }
    log_ratio /= sh.genes.len() as f64;
    let log_fold = sh.folds.iter().map(|f| f.ln()).sum::<f64>() / sh.folds.len() as f64;
    println!("mean log ratio {log_ratio:.3}, mean log fold {log_fold:.3}");
    assert!((log_ratio - log_fold).abs() < 0.12);
    let pooled = |k: u32, c: u32| share(&s, &of(k, c), &sh.genes) / share(&s, &of(k, 0), &sh.genes);
    for (k, c) in [(1, 1), (0, 2), (0, 1), (2, 2)] {
        let r = pooled(k, c);
        println!("cluster {k}, condition {c}: ratio {r:.3}");
        assert!(
            (r - 1.0).abs() < 0.12,
            "cluster {k}, condition {c}: ratio {r}"
        );
    }
}

/// The null design: the same expected proportions in every condition, none specific, no
/// shift; observed shares per condition within 0.03 of 1/8 (4 standard errors with 2,000
/// cells per condition). The default design differs between conditions.
#[test]
fn null_design_has_the_same_proportions_everywhere() {
    let o = SimulateOptions {
        n_cells: 4_000,
        n_genes: 1_000,
        n_markers: 20,
        ..SimulateOptions::null_design()
    };
    let s = simulate(&o).unwrap();
    let p = &s.truth.condition_proportions;
    assert_eq!(p.len(), 2);
    assert_eq!(p[0], p[1]);
    assert!(p[0].iter().all(|&x| (x - 0.125).abs() < 1e-12));
    assert!(s.truth.condition_specific_clusters.is_empty());
    assert!(s.truth.shift.is_none());
    for c in 0..2u32 {
        let n = cells_where(&s, |i| s.truth.condition[i] == c).len() as f64;
        for k in 0..8u32 {
            let m = cells_where(&s, |i| s.truth.condition[i] == c && s.truth.cluster[i] == k);
            let f = m.len() as f64 / n;
            assert!((f - 0.125).abs() < 0.03, "condition {c} cluster {k}: {f}");
        }
    }
    let d = simulate(&SimulateOptions {
        n_cells: 400,
        ..o.clone()
    })
    .unwrap();
    assert_eq!(d.truth.condition_proportions[0], p[0]);
    let default = simulate(&SimulateOptions {
        condition_specific: 1,
        depleted_share: 0.1,
        ..o
    })
    .unwrap();
    let q = &default.truth.condition_proportions;
    assert_ne!(q[0], q[1]);
    // The study design's null version keeps its samples' variation but not the conditions'.
    let st = SimulateOptions::study(0.35, 1).without_condition_effects();
    assert_eq!((st.condition_specific, st.shift.clone()), (0, None));
    assert_eq!(st.doublet_rate, 0.06);
}

/// Composition variation: replicates of a condition get different proportions, observed
/// shares follow each sample's proportions (within 0.05, about 3.5 standard errors with 500
/// cells), and without it every sample has its condition's proportions.
#[test]
fn composition_varies_between_replicates() {
    let s = simulate(&SimulateOptions {
        composition_concentration: Some(10.0),
        condition_specific: 0,
        ..base()
    })
    .unwrap();
    let sp = &s.truth.sample_proportions;
    assert_eq!(sp.len(), 4);
    assert!(sp[0].iter().zip(&sp[1]).any(|(a, b)| (a - b).abs() > 0.05));
    for (k, p) in sp.iter().enumerate() {
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let cells = cells_where(&s, |i| s.truth.sample[i] == k as u32);
        for (c, &pc) in p.iter().enumerate() {
            let f = cells
                .iter()
                .filter(|&&i| s.truth.cluster[i] == c as u32)
                .count() as f64
                / cells.len() as f64;
            assert!(
                (f - pc).abs() < 0.05,
                "sample {k} cluster {c}: {f} against {pc}"
            );
        }
    }
    let plain = simulate(&base()).unwrap();
    for (k, p) in plain.truth.sample_proportions.iter().enumerate() {
        assert_eq!(p, &plain.truth.condition_proportions[k / 2]);
    }
}

/// The study design: 1 and 2 threads give the same data and truth, and counts made in chunks
/// stack to the whole.
#[test]
fn study_design_is_the_same_for_any_thread_count() {
    let o = SimulateOptions {
        n_cells: 1_200,
        n_genes: 2_000,
        n_markers: 20,
        ..SimulateOptions::study(0.35, 5)
    };
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let a = pool(1).install(|| simulate(&o).unwrap());
    let b = pool(2).install(|| simulate(&o).unwrap());
    assert_eq!(a.dataset, b.dataset);
    assert_eq!(a.truth, b.truth);
    assert_eq!(
        a.truth.sample_names,
        ["parental_1", "parental_2", "resistant_1", "resistant_2"]
    );
    assert!(a.truth.doublet.iter().any(|&d| d));
    assert!(a.truth.shift.is_some());
    let sim = Simulator::new(&o).unwrap();
    let whole = a.dataset.counts.to_csr();
    for (lo, hi) in [(0, 333), (333, 1_200)] {
        let part = sim.counts(lo..hi).unwrap();
        for r in 0..part.n_rows() {
            assert_eq!(part.row(r), whole.row(lo + r));
        }
    }
    // The cell table carries sample and condition.
    assert_eq!(a.dataset.cells.sample[0], "parental_1");
    assert_eq!(a.dataset.cells.condition[1_199], "resistant");
}

/// Every bad option is an error naming its field.
#[test]
fn invalid_options_name_the_field() {
    let shift = |cluster, n_genes, fold| {
        Some(ProgramShift {
            cluster,
            n_genes,
            fold,
        })
    };
    let cases: Vec<(&str, SimulateOptions)> = vec![
        (
            "batch_sd",
            SimulateOptions {
                batch_sd: -0.1,
                ..base()
            },
        ),
        (
            "batch_sd",
            SimulateOptions {
                batch_sd: f64::NAN,
                ..base()
            },
        ),
        (
            "batch_library_sd",
            SimulateOptions {
                batch_library_sd: -1.0,
                ..base()
            },
        ),
        (
            "doublet_rate",
            SimulateOptions {
                doublet_rate: 0.5,
                ..base()
            },
        ),
        (
            "doublet_rate",
            SimulateOptions {
                doublet_rate: -0.01,
                ..base()
            },
        ),
        (
            "doublet_rate",
            SimulateOptions {
                doublet_rate: 0.1,
                n_clusters: 1,
                condition_specific: 0,
                ..base()
            },
        ),
        (
            "shift.cluster",
            SimulateOptions {
                shift: shift(4, 25, (2.0, 3.0)),
                ..base()
            },
        ),
        // Cluster 3 exists only in the last condition.
        (
            "shift.cluster",
            SimulateOptions {
                shift: shift(3, 25, (2.0, 3.0)),
                ..base()
            },
        ),
        (
            "shift.n_genes",
            SimulateOptions {
                shift: shift(0, 0, (2.0, 3.0)),
                ..base()
            },
        ),
        (
            "shift.n_genes",
            SimulateOptions {
                shift: shift(0, 1_000, (2.0, 3.0)),
                ..base()
            },
        ),
        (
            "shift.fold",
            SimulateOptions {
                shift: shift(0, 25, (3.0, 2.0)),
                ..base()
            },
        ),
        (
            "shift.fold",
            SimulateOptions {
                shift: shift(0, 25, (0.0, 2.0)),
                ..base()
            },
        ),
        (
            "shift",
            SimulateOptions {
                shift: shift(0, 25, (2.0, 3.0)),
                conditions: vec!["a".into()],
                ..base()
            },
        ),
        (
            "composition_concentration",
            SimulateOptions {
                composition_concentration: Some(0.0),
                ..base()
            },
        ),
        (
            "composition_concentration",
            SimulateOptions {
                composition_concentration: Some(f64::INFINITY),
                ..base()
            },
        ),
        (
            "n_mito",
            SimulateOptions {
                n_mito: 3_000,
                ..base()
            },
        ),
    ];
    for (field, o) in cases {
        match Simulator::new(&o) {
            Err(Error::InvalidOption { name, .. }) => assert_eq!(name, field, "{o:?}"),
            other => panic!("{field}: expected an invalid-option error, got {other:?}"),
        }
    }
    assert!(SimulateOptions::study(0.35, 0).validate().is_ok());
    assert!(SimulateOptions::null_design().validate().is_ok());
}
