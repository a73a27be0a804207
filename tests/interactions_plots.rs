//! The interaction figures (`interactions_dotplot`, `interactions_heatmap`): written next to
//! the tables, well-formed SVG with the expected rows and panels, the planted CCL2 -> CCR2 of
//! the simulated study in the dot plot, hostile and long names, and an empty comparison.

use scrna::interactions::{
    cellphonedb_v5, differential_interactions, significance_grid, top_changed, ChangedDot,
    DiffInput, DiffMethod, DiffOptions, InteractionDiff, InteractionOptions, Resource, TopChanged,
};
use scrna::plot::interactions::{
    changed_dot_plot_svg, significance_heatmap_svg, write_interaction_plots, TOP_CHANGED,
};

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

fn resistance_diff() -> InteractionDiff {
    let sim = scrna::comparison::simulate_resistance(0).unwrap();
    let d = &sim.dataset;
    let x = scrna::normalize::normalize_total_log1p(&d.counts, &Default::default())
        .unwrap()
        .matrix;
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
    differential_interactions(
        &x,
        &d.genes.symbols,
        &input,
        &cellphonedb_v5().unwrap(),
        &opts,
    )
    .unwrap()
}

#[test]
fn resistance_study_plots() {
    let diff = resistance_diff();
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
    let sim = scrna::comparison::simulate_resistance(0).unwrap();
    let d = &sim.dataset;
    let input = DiffInput {
        labels: &sim.truth.cluster,
        samples: &d.cells.sample,
        conditions: &d.cells.condition,
        numerator: "resistant",
        reference: "parental",
        specific_clusters: &[],
    };
    let empty = Resource {
        name: "empty".into(),
        interactions: Vec::new(),
    };
    let diff = differential_interactions(
        &d.counts,
        &d.genes.symbols,
        &input,
        &empty,
        &DiffOptions::default(),
    )
    .unwrap();
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
