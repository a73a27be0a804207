//! Cell-cell interactions: agreement with CellPhoneDB 5 (reference from
//! `scripts/cellphonedb_reference.py`, committed under `fixtures/cellphonedb/`), the rules of
//! the method, determinism, resources, the planted interaction of the simulated study, and the
//! figures (`interactions_dotplot`, `interactions_heatmap`): written next to the tables,
//! well-formed SVG with the expected rows and panels, the planted CCL2 -> CCR2 in the dot
//! plot, hostile and long names, many clusters, and an empty comparison.

use scrna::interactions::{
    cellphonedb_v5, differential_interactions, read_resource, significance_grid,
    statistical_analysis, top_changed, ChangedDot, DiffInput, DiffMethod, DiffOptions,
    InteractionDiff, InteractionOptions, Resource, TopChanged,
};
use scrna::plot::interactions::{
    changed_dot_plot_svg, significance_heatmap_svg, write_interaction_plots, TOP_CHANGED,
};
use scrna::CsrMatrix;
use std::collections::HashMap;
use std::io::Read;

fn gunzip(path: &str) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// The cells of the reference: log1p(count / total * 1e4) (total over all genes, in f64, then
/// f32, as the script) and the Scanpy Leiden labels.
fn reference_data() -> (CsrMatrix, Vec<String>, Vec<u32>) {
    let ds = scrna::io::read_10x("fixtures/celltypist_sample/filtered_feature_bc_matrix").unwrap();
    let labels_csv = gunzip("fixtures/cellphonedb/labels.csv.gz");
    let pos: HashMap<&str, usize> = ds
        .cells
        .barcodes
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for l in labels_csv.lines().skip(1) {
        let (b, c) = l.split_once(',').unwrap();
        rows.push(pos[b]);
        labels.push(c.parse::<u32>().unwrap());
    }
    let mut x = ds.counts.select_rows(&rows).unwrap().into_csr();
    x.map_rows_mut(|_, _, vals| {
        let total: f64 = vals.iter().map(|&v| v as f64).sum();
        let inv = 1.0 / total;
        for v in vals.iter_mut() {
            *v = ((*v as f64 * inv) * 1e4).ln_1p() as f32;
        }
    });
    (x, ds.genes.symbols.clone(), labels)
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (
        scrna::stats::average_ranks(a),
        scrna::stats::average_ranks(b),
    );
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// Means to 1e-5 and the fraction filter exactly for every (interaction, cluster pair) of
/// CellPhoneDB's output; p-values: Spearman correlation >= 0.95 over the tested entries, at
/// least 99% of them within 0.05 and all within 0.08. Two independent runs of 1,000
/// permutations differ with sd up to sqrt(2 * 0.25 / 1000) = 0.022 (p near 0.5), so the
/// largest of ~3,000 differences is expected near 0.07: "all within 0.05" cannot hold.
#[test]
fn agrees_with_cellphonedb() {
    let (x, genes, labels) = reference_data();
    let resource = cellphonedb_v5().unwrap();
    let r = statistical_analysis(
        &x,
        &genes,
        &labels,
        &resource,
        &InteractionOptions::default(),
    )
    .unwrap();
    let row_of: HashMap<&str, usize> = r
        .interactions
        .iter()
        .enumerate()
        .map(|(i, it)| (it.id.as_str(), i))
        .collect();
    let reference = gunzip("fixtures/cellphonedb/reference.csv.gz");
    let mut seen = vec![false; r.means.len()];
    let (mut ours_p, mut theirs_p) = (Vec::new(), Vec::new());
    let (mut worst_mean, mut worst_p) = (0f64, 0f64);
    let (mut n, mut over) = (0, 0);
    for l in reference.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        let i = *row_of
            .get(f[0])
            .unwrap_or_else(|| panic!("{} missing from our result", f[0]));
        let (a, b) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        let idx = r.index(i, a, b);
        seen[idx] = true;
        let (mean, p): (f64, f64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
        let expressed = f[5] == "1";
        worst_mean = worst_mean.max((r.means[idx] - mean).abs());
        assert_eq!(r.expressed[idx], expressed, "fraction filter of {l}");
        worst_p = worst_p.max((r.pvalues[idx] - p).abs());
        over += usize::from((r.pvalues[idx] - p).abs() >= 0.05);
        if expressed && mean > 0.0 {
            ours_p.push(r.pvalues[idx]);
            theirs_p.push(p);
        }
        n += 1;
    }
    assert!(worst_mean < 1e-5, "largest mean difference {worst_mean}");
    assert!(worst_p < 0.08, "largest p difference {worst_p}");
    assert!(
        over as f64 <= 0.01 * ours_p.len() as f64,
        "{over} of {} p differences >= 0.05",
        ours_p.len()
    );
    println!(
        "largest mean difference {worst_mean:e}, largest p difference {worst_p}, {over} of {} >= 0.05",
        ours_p.len()
    );
    // Entries absent from the reference have mean 0 and fail the filter there; ours too.
    for (idx, s) in seen.iter().enumerate() {
        if !s {
            assert!(r.means[idx] == 0.0 && !r.expressed[idx], "entry {idx}");
        }
    }
    let rho = spearman(&ours_p, &theirs_p);
    println!("Spearman {rho}");
    assert!(rho >= 0.95, "Spearman {rho} over {} tested", ours_p.len());
    assert!(
        n > 1000 && ours_p.len() > 100,
        "{n} rows, {} tested",
        ours_p.len()
    );
}

#[test]
fn identical_for_one_and_two_threads() {
    let (x, genes, labels) = reference_data();
    let resource = cellphonedb_v5().unwrap();
    let opts = InteractionOptions {
        n_permutations: 100,
        seed: 7,
        ..Default::default()
    };
    let run = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
            .install(|| statistical_analysis(&x, &genes, &labels, &resource, &opts).unwrap())
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one, two);
    assert!(one.pvalues.iter().any(|&p| p < 0.05));
}

#[test]
fn resources_unknown_genes_empty_and_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let genes: Vec<String> = ["CCL2", "CCR2", "IL6R"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let labels = vec![0u32, 0, 1, 1];
    let x = CsrMatrix::from_triplets(4, 3, &[0, 1, 2, 3], &[0, 0, 1, 1], &[1.0; 4]).unwrap();
    let p = dir.path().join("lr.csv");
    std::fs::write(
        &p,
        "partner_a,partner_b,genes_a,genes_b,classification,secreted\n\
         CCL2,CCR2,CCL2,CCR2,Signaling by Chemokines,true\n\
         IL6,IL6_receptor,IL6,IL6R+IL6ST,Signaling by Interleukin,true\n\
         NOPE1,CCR2,,,,false\n",
    )
    .unwrap();
    let res = read_resource(&p).unwrap();
    let r =
        statistical_analysis(&x, &genes, &labels, &res, &InteractionOptions::default()).unwrap();
    assert_eq!(r.interactions.len(), 1);
    assert_eq!(r.n_dropped, 2);
    assert_eq!(r.unknown_genes, ["IL6", "IL6ST", "NOPE1"]);
    // CCL2 in cluster 0, CCR2 in cluster 1: mean (1 + 1) / 2 for sender 0 -> receiver 1.
    assert_eq!(r.means[r.index(0, 0, 1)], 1.0);
    assert_eq!(r.means[r.index(0, 1, 0)], 0.0);

    let empty = Resource {
        name: "empty".into(),
        interactions: Vec::new(),
    };
    let r =
        statistical_analysis(&x, &genes, &labels, &empty, &InteractionOptions::default()).unwrap();
    assert!(r.interactions.is_empty() && r.means.is_empty());
    std::fs::write(&p, "ligand,receptor\n").unwrap();
    assert!(read_resource(&p).unwrap().interactions.is_empty());
    std::fs::write(&p, "").unwrap();
    let e = read_resource(&p).unwrap_err().to_string();
    assert!(e.contains("lr.csv") && e.contains("empty"), "{e}");

    std::fs::write(&p, "ligand,receptor\nCCL2,CCR2\nCXCL12\n").unwrap();
    let e = read_resource(&p).unwrap_err().to_string();
    assert!(
        e.contains("lr.csv") && e.contains(":3") && e.contains("receptor"),
        "{e}"
    );
    std::fs::write(
        &p,
        "partner_a,partner_b,secreted\nCCL2,CCR2,true\nCCL2,CCR2,maybe\n",
    )
    .unwrap();
    let e = read_resource(&p).unwrap_err().to_string();
    assert!(e.contains(":3") && e.contains("secreted"), "{e}");
}

/// Log-normalized counts of a simulation (Scanpy's normalize_total + log1p).
fn log_normalized(counts: &CsrMatrix) -> CsrMatrix {
    scrna::normalize::normalize_total_log1p(counts, &Default::default())
        .unwrap()
        .matrix
}

/// The simulated resistance study (seed 0) compared with `resource`, 200 permutations;
/// with its condition-specific clusters.
fn resistance_diff(resource: &Resource) -> (InteractionDiff, Vec<u32>) {
    let sim = scrna::comparison::simulate_resistance(0).unwrap();
    let d = &sim.dataset;
    let x = log_normalized(&d.counts.to_csr());
    let spec = sim.truth.condition_specific_clusters.clone();
    let input = DiffInput {
        labels: &sim.truth.cluster,
        samples: &d.cells.sample,
        conditions: &d.cells.condition,
        numerator: "resistant",
        reference: "parental",
        specific_clusters: &spec,
    };
    let opts = DiffOptions {
        cellphonedb: InteractionOptions {
            n_permutations: 200,
            ..Default::default()
        },
        ..Default::default()
    };
    let diff = differential_interactions(&x, &d.genes.symbols, &input, resource, &opts).unwrap();
    (diff, spec)
}

#[test]
fn planted_interaction_is_found_and_up_in_resistant() {
    let (diff, spec) = resistance_diff(&cellphonedb_v5().unwrap());
    assert_eq!(diff.method, DiffMethod::LimmaSamples);
    let (lig, rec) = scrna::comparison::PLANTED_INTERACTION;
    let receiver = (0..6u32).find(|c| !spec.contains(c)).unwrap();
    let row = diff
        .rows
        .iter()
        .find(|r| {
            r.ligand == lig && r.receptor == rec && r.sender == spec[0] && r.receiver == receiver
        })
        .expect("planted interaction tested");
    assert!(row.involves_specific_cluster);
    assert_eq!(row.value_reference, 0.0);
    assert!(row.log2_fold_change > 3.0, "{row:?}");
    assert!(row.p_adj < 0.05, "{row:?}");
    // Significant in the resistant condition's CellPhoneDB analysis, absent in parental.
    let (_, res) = diff
        .per_condition
        .iter()
        .find(|(c, _)| c == "resistant")
        .unwrap();
    let i = res
        .interactions
        .iter()
        .position(|it| it.partner_a.name == lig && it.partner_b.name == rec)
        .unwrap();
    let idx = res.index(i, spec[0] as usize, receiver as usize);
    assert!(res.expressed[idx] && res.pvalues[idx] < 0.05);
    let sec = diff
        .summary
        .iter()
        .find(|s| s.sender == spec[0] && s.receiver == receiver && s.condition == "resistant")
        .unwrap();
    assert!(sec.n_significant[scrna::interactions::SignalKind::Secreted as usize] >= 1);
    let dir = tempfile::tempdir().unwrap();
    let files = scrna::interactions::diff::write_tables(&diff, dir.path()).unwrap();
    let csv = std::fs::read_to_string(&files[0]).unwrap();
    assert!(csv.lines().nth(1).unwrap().contains("limma_samples"));
}

/// No condition effect: few calls at FDR 0.05 (at most 1% of the tested rows).
#[test]
fn null_design_gives_few_calls() {
    let mut sim = scrna::simulate::simulate(&scrna::simulate::SimulateOptions {
        n_cells: 2_000,
        n_genes: 2_000,
        ..scrna::simulate::SimulateOptions::null_design()
    })
    .unwrap();
    // The resource's genes as the simulated genes' symbols.
    let names = cellphonedb_v5().unwrap().genes();
    for (s, n) in sim.dataset.genes.symbols.iter_mut().zip(&names) {
        *s = n.clone();
    }
    let d = &sim.dataset;
    let x = log_normalized(&d.counts.to_csr());
    let conds: Vec<&String> = {
        let mut c: Vec<&String> = d.cells.condition.iter().collect();
        c.sort();
        c.dedup();
        c
    };
    let input = DiffInput {
        labels: &sim.truth.cluster,
        samples: &d.cells.sample,
        conditions: &d.cells.condition,
        numerator: conds[1],
        reference: conds[0],
        specific_clusters: &[],
    };
    let opts = DiffOptions {
        cellphonedb: InteractionOptions {
            n_permutations: 50,
            ..Default::default()
        },
        ..Default::default()
    };
    let diff = differential_interactions(
        &x,
        &d.genes.symbols,
        &input,
        &cellphonedb_v5().unwrap(),
        &opts,
    )
    .unwrap();
    assert!(diff.rows.len() > 100, "{} tested", diff.rows.len());
    let calls = diff.rows.iter().filter(|r| r.p_adj < 0.05).count();
    assert!(
        calls as f64 <= 0.01 * diff.rows.len() as f64,
        "{calls} calls of {}",
        diff.rows.len()
    );
}

/// Well-formed enough: one `<svg>` root holding everything, and every element closed in
/// order (a small tag-stack check; comments and declarations do not occur).
fn assert_well_formed(svg: &str) {
    let t = svg.trim();
    assert!(t.starts_with("<svg") && t.ends_with("</svg>"), "root");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find('<') {
        let j = rest[i..].find('>').expect("unclosed tag") + i;
        let tag = &rest[i + 1..j];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "closing {name}");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            stack.push(name);
        }
        rest = &rest[j + 1..];
        if stack.is_empty() {
            assert!(rest.trim().is_empty(), "content after the root");
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    // Text content holds no raw markup characters.
    for piece in t.split('>').skip(1) {
        let text = piece.split('<').next().unwrap_or("");
        for (i, _) in text.match_indices('&') {
            let entity = text[i + 1..].split(';').next().unwrap_or("");
            assert!(
                text[i + 1..].contains(';')
                    && !entity.is_empty()
                    && entity
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '#'),
                "a bare '&' in {text}"
            );
        }
    }
}

/// The trimmed text of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

#[test]
fn resistance_study_plots() {
    let (diff, _) = resistance_diff(&cellphonedb_v5().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let files = write_interaction_plots(&diff, dir.path()).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for n in [
        "interactions_dotplot.png",
        "interactions_dotplot.svg",
        "interactions_heatmap.png",
        "interactions_heatmap.svg",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        assert!(std::fs::metadata(dir.path().join(n)).unwrap().len() > 1000);
    }

    let top = top_changed(&diff, TOP_CHANGED);
    let dot = std::fs::read_to_string(dir.path().join("interactions_dotplot.svg")).unwrap();
    assert_well_formed(&dot);
    // Every row and column label, the planted interaction among them; one circle and one
    // edge per dot, plus the six of the size legend.
    let (lig, rec) = scrna::comparison::PLANTED_INTERACTION;
    let shown = texts(&dot);
    let planted = format!("{lig} -&gt; {rec}");
    assert!(shown.contains(&planted), "{planted} not in {shown:?}");
    for label in top.interactions.iter().chain(&top.pairs) {
        let escaped = label.replace('>', "&gt;");
        assert_eq!(
            shown.iter().filter(|t| **t == escaped).count(),
            1,
            "{label}"
        );
    }
    assert_eq!(dot.matches("<circle").count(), 2 * top.dots.len() + 6);
    assert_eq!(diff.method, DiffMethod::LimmaSamples);
    assert!(dot.contains("replicates") && !dot.contains("No replicates"));

    let heat = std::fs::read_to_string(dir.path().join("interactions_heatmap.svg")).unwrap();
    assert_well_formed(&heat);
    let grid = significance_grid(&diff);
    let k = grid.n_clusters;
    assert_eq!(grid.counts.len(), 2);
    // One panel per condition and one for the difference, each with its colour bar.
    let shown = texts(&heat);
    let count = |s: &str| shown.iter().filter(|t| *t == s).count();
    for title in ["parental", "resistant", "resistant minus parental"] {
        assert_eq!(count(title), 1, "{title}");
    }
    assert_eq!(count("significant interactions"), 2);
    assert_eq!(count("difference"), 1);
    // k x k cells per panel (filled rectangles with no stroke) plus the colour bars.
    let cells = heat.matches("<rect").count();
    assert!(cells >= 3 * k * k, "{cells} rects for {k} clusters");
    // The planted sender -> receiver pair has more significant interactions in resistant.
    let spec = diff
        .rows
        .iter()
        .find(|r| r.ligand == lig && r.receptor == rec && r.involves_specific_cluster)
        .unwrap();
    let at = spec.sender as usize * k + spec.receiver as usize;
    assert!(grid.difference[at] >= 1, "{}", grid.difference[at]);
    assert!(!heat.contains("No interactions are significant"));
}

#[test]
fn empty_comparison_says_no_interactions() {
    let empty = Resource {
        name: "empty".into(),
        interactions: Vec::new(),
    };
    let (diff, _) = resistance_diff(&empty);
    assert!(diff.rows.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let files = write_interaction_plots(&diff, dir.path()).unwrap();
    assert_eq!(files.len(), 4);
    let dot = std::fs::read_to_string(dir.path().join("interactions_dotplot.svg")).unwrap();
    assert_well_formed(&dot);
    assert!(dot.contains("No interactions"), "{dot}");
    let heat = std::fs::read_to_string(dir.path().join("interactions_heatmap.svg")).unwrap();
    assert_well_formed(&heat);
    assert!(heat.contains("No interactions are significant"));
}

#[test]
fn hostile_and_long_names_and_many_clusters() {
    let long = format!("<script>&\"{}", "L".repeat(300));
    let n_cols = 30;
    let t = TopChanged {
        numerator: "res <b>".into(),
        reference: "par & co".into(),
        method: DiffMethod::ConditionPermutation,
        n_tested: 100,
        n_max: TOP_CHANGED,
        n_top: n_cols,
        interactions: vec![format!("{long} -> R"), "A -> B".into()],
        pairs: (0..n_cols).map(|c| format!("{c} -> {}", c + 1)).collect(),
        dots: (0..n_cols)
            .map(|c| ChangedDot {
                row: c % 2,
                col: c,
                log2_fold_change: c as f64 - 15.0,
                p_adj: 0.5f64.powi(c as i32),
                top: true,
            })
            .collect(),
    };
    let svg = changed_dot_plot_svg(&t).unwrap();
    assert_well_formed(&svg);
    assert!(!svg.contains("<script") && !svg.contains("<b>"));
    assert!(svg.contains("&lt;script&gt;&amp;"));
    assert!(svg.contains("No replicates"));
    // Cut to 48 characters: the 300 L's do not all appear.
    assert!(!svg.contains(&"L".repeat(60)));
    assert!(svg.contains('…'));
    let wide = changed_dot_plot_svg(&TopChanged {
        pairs: (0..2 * n_cols).map(|c| format!("cluster {c}")).collect(),
        ..t.clone()
    })
    .unwrap();
    let width = |s: &str| -> u32 {
        let i = s.find("width=\"").unwrap() + 7;
        s[i..].split('"').next().unwrap().parse().unwrap()
    };
    assert!(width(&wide) > width(&svg));

    let k = 60;
    let grid = scrna::interactions::SignificanceGrid {
        n_clusters: k,
        counts: vec![
            (
                "par & co".into(),
                (0..k * k).map(|i| (i % 7) as u32).collect(),
            ),
            ("res <b>".into(), vec![3; k * k]),
        ],
        numerator: "res <b>".into(),
        reference: "par & co".into(),
        difference: (0..k * k).map(|i| 3 - (i % 7) as i64).collect(),
        significance: 0.05,
    };
    let heat = significance_heatmap_svg(&grid).unwrap();
    assert_well_formed(&heat);
    assert!(!heat.contains("<b>"));
    assert!(heat.matches("<rect").count() >= 3 * k * k);
}

/// The comparison writes both figures next to its tables, and the report inlines them.
#[test]
fn comparison_writes_and_report_shows_the_figures() {
    use scrna::comparison::{compare, simulate_resistance_with, ConditionOptions};
    let sim = simulate_resistance_with(&scrna::simulate::SimulateOptions {
        n_cells: 1_500,
        n_genes: 2_000,
        ..scrna::simulate::SimulateOptions::study(0.2, 0)
    })
    .unwrap();
    let a = scrna::pipeline::run(
        &sim.dataset,
        &scrna::pipeline::PipelineOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let c = compare(
        &a,
        &ConditionOptions {
            lr_pairs: Some(
                scrna::interactions::read_lr_pairs("fixtures/lr_pairs_small.csv").unwrap(),
            ),
            interactions: InteractionOptions {
                n_permutations: 100,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    assert!(c.interaction_diff.is_some());
    let dir = tempfile::tempdir().unwrap();
    let files = scrna::comparison::write_all(&a, &c, dir.path()).unwrap();
    for n in ["interactions_dotplot.svg", "interactions_heatmap.svg"] {
        let p = dir.path().join(n);
        assert!(files.contains(&p), "{n} listed");
        assert_well_formed(&std::fs::read_to_string(&p).unwrap());
        assert!(dir.path().join(n.replace(".svg", ".png")).is_file());
    }
    let html = scrna::html_report::render_report(&a, Some(&c), &Default::default()).unwrap();
    let section = &html[html
        .find("<h3>Top changed interactions</h3>")
        .expect("dot plot")..];
    assert!(section.starts_with("<h3>Top changed interactions</h3><svg class=\"fig\" "));
    assert!(
        section.contains("<h3>Significant interactions per cluster pair</h3><svg class=\"fig\" ")
    );
    assert_eq!(html.matches("<svg class=\"fig\" width=").count(), 2);
}
