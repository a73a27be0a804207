//! Condition comparison: statistics against SciPy, composition, gene sets, interactions, and
//! the simulated parental / resistant scenario end to end.

use scrna::comparison::{compare, simulate_resistance, ConditionOptions, PLANTED_ADHESION};
use scrna::conditions::{composition, odds_ratio_ci, CompositionOptions};
use scrna::genesets::{
    enrich, go_biological_process_human, read_gene_set_table, read_gmt, score_genes, EnrichOptions,
    ScoreOptions,
};
use scrna::interactions::{interactions, read_lr_pairs, InteractionOptions};
use scrna::pipeline::{run, PipelineOptions};
use scrna::stats::{fisher_exact_greater, fisher_exact_two_sided, hypergeom_sf, normal_quantile};
use std::path::Path;

fn rows(path: &str) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse::<f64>().unwrap()).collect())
        .collect()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a == b) || ((a - b).abs() <= rel * b.abs().max(1e-300))
}

#[test]
fn fisher_hypergeom_and_quantile_match_scipy() {
    for r in rows("fixtures/reference/conditions/fisher.csv") {
        let (a, b, c, d) = (r[0] as usize, r[1] as usize, r[2] as usize, r[3] as usize);
        let g = fisher_exact_greater(a, b, c, d);
        let t = fisher_exact_two_sided(a, b, c, d);
        assert!(close(g, r[5], 1e-9), "{r:?}: greater {g}");
        assert!(close(t, r[6], 1e-9), "{r:?}: two-sided {t}");
        let (or, lo, hi) = odds_ratio_ci(a, b, c, d, 1.96);
        assert!(
            or == r[4] || close(or, r[4], 1e-12),
            "{r:?}: odds ratio {or}"
        );
        assert!(lo <= hi && lo > 0.0);
    }
    for r in rows("fixtures/reference/conditions/hypergeom.csv") {
        let sf = hypergeom_sf(r[0] as usize, r[1] as usize, r[2] as usize, r[3] as usize);
        assert!(close(sf, r[4], 1e-9), "{r:?}: {sf}");
    }
    for r in rows("fixtures/reference/conditions/normal_quantile.csv") {
        let q = normal_quantile(r[0]);
        assert!((q - r[1]).abs() < 1e-9, "{r:?}: {q}");
    }
}

#[test]
fn composition_calls_condition_specific_clusters() {
    // Cluster 2 exists only in the resistant samples; cluster 1 is shared.
    let mut clusters = Vec::new();
    let mut samples = Vec::new();
    let mut conditions = Vec::new();
    for (s, cond, n0, n1, n2) in [
        ("p1", "parental", 60, 40, 0),
        ("p2", "parental", 50, 30, 1),
        ("r1", "resistant", 30, 30, 40),
        ("r2", "resistant", 40, 20, 30),
    ] {
        for (c, n) in [(0u32, n0), (1, n1), (2, n2)] {
            for _ in 0..n {
                clusters.push(c);
                samples.push(s.to_string());
                conditions.push(cond.to_string());
            }
        }
    }
    let comp = composition(
        &clusters,
        &samples,
        &conditions,
        &CompositionOptions::default(),
    )
    .unwrap();
    assert_eq!(comp.specific(), vec![(2, 1)]);
    let t = comp.test(2, 1).unwrap();
    assert_eq!((t.in_cluster, t.other_in_cluster), (70, 1));
    assert!(t.share > 0.98);
    // With replicates the call is decided by propeller over the samples.
    assert!(comp.replicates);
    assert_eq!(t.decided_by, scrna::conditions::DecidedBy::Propeller);
    assert!(
        t.propeller_fdr.unwrap() <= 0.05 && t.propeller_t.unwrap() > 0.0,
        "propeller {:?} {:?}",
        t.propeller_t,
        t.propeller_fdr
    );
    // Without replicates (one resistant sample) the call falls back to Fisher over cells.
    let keep: Vec<usize> = (0..samples.len()).filter(|&i| samples[i] != "r2").collect();
    let one = composition(
        &keep.iter().map(|&i| clusters[i]).collect::<Vec<_>>(),
        &keep.iter().map(|&i| samples[i].clone()).collect::<Vec<_>>(),
        &keep
            .iter()
            .map(|&i| conditions[i].clone())
            .collect::<Vec<_>>(),
        &CompositionOptions::default(),
    )
    .unwrap();
    assert!(!one.replicates);
    let t1 = one.test(2, 1).unwrap();
    assert_eq!(t1.decided_by, scrna::conditions::DecidedBy::FisherCells);
    assert!(t1.propeller_p.is_none());
    assert_eq!(one.specific(), vec![(2, 1)]);
    // Proportions are of each sample's cells.
    let s = comp.samples.iter().position(|x| x == "r1").unwrap();
    assert!((comp.sample_proportion(2, s) - 0.4).abs() < 1e-12);
    // A sample in two conditions is an error.
    let mut bad = conditions.clone();
    bad[0] = "resistant".to_string();
    assert!(composition(&clusters, &samples, &bad, &Default::default()).is_err());
    assert!(composition(&clusters[1..], &samples, &conditions, &Default::default()).is_err());
}

#[test]
fn gene_set_readers_and_bundled_library() {
    let go = go_biological_process_human().unwrap();
    assert!(go.len() > 5000);
    for id in [
        "GO:0098609",
        "GO:0007267",
        "GO:0006959",
        "GO:0019221",
        "GO:0070098",
    ] {
        assert!(go.iter().any(|s| s.id == id), "{id} missing");
    }
    let adhesion = go.iter().find(|s| s.id == "GO:0098609").unwrap();
    assert_eq!(adhesion.name, "cell-cell adhesion");
    assert!(adhesion.genes.iter().any(|g| g == "ICAM1"));

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sets.gmt");
    std::fs::write(&p, "A\tfirst set\tX\tY\tX\nB\tna\tZ\n").unwrap();
    let sets = read_gmt(&p).unwrap();
    assert_eq!(sets[0].genes, ["X", "Y"]);
    assert_eq!(sets[1].name, "B");
    std::fs::write(&p, "A\tfirst set\tX\nbroken line\n").unwrap();
    let e = read_gmt(&p).unwrap_err().to_string();
    assert!(e.contains("sets.gmt:2"), "{e}");
    let t = dir.path().join("sets.csv");
    std::fs::write(&t, "set,gene\nA,X\nB,Y\nA,Z\n").unwrap();
    let sets = read_gene_set_table(&t).unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].genes, ["X", "Z"]);
    std::fs::write(&t, "set,gene\nA,\n").unwrap();
    assert!(read_gene_set_table(&t).is_err());
    assert!(read_gmt(dir.path().join("missing.gmt")).is_err());
}

#[test]
fn enrichment_matches_hypergeometric_and_scores_separate_groups() {
    let universe: Vec<String> = (0..200).map(|i| format!("G{i}")).collect();
    let sets = vec![
        scrna::genesets::GeneSet {
            id: "S1".into(),
            name: "planted".into(),
            genes: (0..20).map(|i| format!("G{i}")).collect(),
        },
        scrna::genesets::GeneSet {
            id: "S2".into(),
            name: "other".into(),
            genes: (100..130).map(|i| format!("G{i}")).collect(),
        },
    ];
    let query: Vec<String> = (0..10)
        .map(|i| format!("G{i}"))
        .chain(["G150".into()])
        .collect();
    let res = enrich(&query, &universe, &sets, &EnrichOptions::default()).unwrap();
    assert_eq!(res[0].id, "S1");
    assert_eq!(res[0].overlap, 10);
    assert!((res[0].p - hypergeom_sf(10, 200, 20, 11)).abs() < 1e-15);
    assert_eq!(res[0].genes.len(), 10);

    // Score: cells 0..50 express the set genes, the others do not.
    let n = 100;
    let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for cell in 0..n {
        for g in 0..200u32 {
            let base = ((cell as u32 + g) % 3) as f32 + if g >= 100 { 1.0 } else { 0.0 };
            let x = if g < 20 && cell < 50 { 3.0 } else { base };
            if x > 0.0 {
                r.push(cell as u32);
                c.push(g);
                v.push(x);
            }
        }
    }
    let x = scrna::CsrMatrix::from_triplets(n, 200, &r, &c, &v).unwrap();
    let s = score_genes(&x, &universe, &sets[0].genes, &ScoreOptions::default()).unwrap();
    let hi = s.scores[..50].iter().sum::<f64>() / 50.0;
    let lo = s.scores[50..].iter().sum::<f64>() / 50.0;
    assert!(hi > lo + 1.0, "{hi} vs {lo}");
    let again = score_genes(&x, &universe, &sets[0].genes, &ScoreOptions::default()).unwrap();
    assert_eq!(s, again);
}

#[test]
fn interactions_find_the_planted_pair() {
    let pairs = read_lr_pairs("fixtures/lr_pairs_small.csv").unwrap();
    assert_eq!(pairs.len(), 18);
    // Cluster 1 expresses CXCL12, cluster 0 expresses CXCR4; nothing else is expressed.
    let genes: Vec<String> = ["CXCL12", "CXCR4", "CCL5", "CCR5"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let labels: Vec<u32> = (0..120).map(|i| (i / 40) as u32).collect();
    let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for (cell, &l) in labels.iter().enumerate() {
        let gene = match l {
            1 => 0,
            0 => 1,
            _ => 2,
        };
        r.push(cell as u32);
        c.push(gene);
        v.push(2.0 + (cell % 5) as f32 * 0.1);
    }
    let x = scrna::CsrMatrix::from_triplets(120, 4, &r, &c, &v).unwrap();
    let opts = InteractionOptions {
        n_permutations: 200,
        ..Default::default()
    };
    let res = interactions(&x, &genes, &labels, &pairs, &opts).unwrap();
    let best = res
        .iter()
        .filter(|i| i.p < 0.05)
        .map(|i| (i.ligand.as_str(), i.receptor.as_str(), i.sender, i.receiver))
        .collect::<Vec<_>>();
    assert_eq!(best, vec![("CXCL12", "CXCR4", 1, 0)]);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let one = pool.install(|| interactions(&x, &genes, &labels, &pairs, &opts).unwrap());
    assert_eq!(one, res);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("lr.csv");
    std::fs::write(&p, "name,ligand\nx,CXCL12\n").unwrap();
    let e = read_lr_pairs(&p).unwrap_err().to_string();
    assert!(e.contains("receptor"), "{e}");
}

#[test]
fn resistant_only_cluster_and_its_programs_are_found() {
    let sim = simulate_resistance(0).unwrap();
    let opts = PipelineOptions {
        skip_umap: true,
        ..Default::default()
    };
    let a = run(&sim.dataset, &opts, &mut |_| {}).unwrap();
    let copts = ConditionOptions {
        lr_pairs: Some(read_lr_pairs("fixtures/lr_pairs_small.csv").unwrap()),
        interactions: InteractionOptions {
            n_permutations: 100,
            ..Default::default()
        },
        ..Default::default()
    };
    let r = compare(&a, &copts).unwrap();
    let specific = r.composition.specific();
    assert_eq!(specific.len(), 1, "specific clusters: {specific:?}");
    let (c, k) = specific[0];
    assert_eq!(r.composition.conditions[k], "resistant");
    // The called cluster is the simulated resistant-only one.
    let spec_truth = sim.truth.condition_specific_clusters[0];
    let in_c: Vec<usize> = (0..a.dataset().n_cells())
        .filter(|&i| a.clustering.labels[i] == c)
        .collect();
    let barcodes: std::collections::HashMap<&str, usize> = sim
        .dataset
        .cells
        .barcodes
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let agree = in_c
        .iter()
        .filter(|&&i| {
            sim.truth.cluster[barcodes[a.dataset().cells.barcodes[i].as_str()]] == spec_truth
        })
        .count();
    assert!(agree as f64 >= 0.95 * in_c.len() as f64);
    // The planted programs rank first among the condition programs.
    let terms: Vec<&str> = r
        .enrichment
        .iter()
        .filter(|e| e.cluster == c)
        .map(|e| e.row.id.as_str())
        .collect();
    let rank = |id: &str| terms.iter().position(|t| *t == id).unwrap_or(usize::MAX);
    let adhesion = rank("GO:0098609");
    let cytokine = rank("GO:0019221");
    assert!(
        adhesion < 10 && cytokine < 10,
        "ranks {adhesion} {cytokine}: {:?}",
        &terms[..10.min(terms.len())]
    );
    for other in ["GO:0006959", "GO:0060337", "GO:0097193"] {
        assert!(
            rank(other) > adhesion.max(cytokine),
            "{other} ranks above the planted programs"
        );
    }
    let top = r.enrichment.iter().find(|e| e.cluster == c).unwrap();
    assert!(top.row.p_adj < 1e-5);
    assert!(top
        .row
        .genes
        .iter()
        .any(|g| PLANTED_ADHESION.contains(&g.as_str())
            || scrna::comparison::PLANTED_CYTOKINE.contains(&g.as_str())));
    // Scores of cell-cell adhesion are highest in the resistant-only cluster.
    let adh: Vec<_> = r.scores.iter().filter(|s| s.set == "GO:0098609").collect();
    let best = adh
        .iter()
        .max_by(|a, b| a.mean_score.total_cmp(&b.mean_score))
        .unwrap();
    assert_eq!(best.cluster, c);
    // Interactions involving the specific cluster are flagged.
    assert!(r.interactions.iter().any(|(i, flag)| *flag && i.p < 0.05));
    let dir = tempfile::tempdir().unwrap();
    let files = scrna::comparison::write_all(&a, &r, dir.path()).unwrap();
    assert!(files.iter().all(|f| Path::new(f).exists()));
    // Two samples per condition: decided by propeller, Milo ran, the cluster table is copied.
    assert!(r.replicates);
    assert!(r.milo.is_some());
    let spec_csv =
        std::fs::read_to_string(dir.path().join("condition_specific_clusters.csv")).unwrap();
    let header: Vec<&str> = spec_csv.lines().next().unwrap().split(',').collect();
    for col in ["replicates", "decided_by", "propeller_p", "propeller_fdr"] {
        assert!(header.contains(&col), "{col} missing in {header:?}");
    }
    assert!(spec_csv.contains(",true,propeller,true"));
    let clusters_csv = std::fs::read_to_string(dir.path().join("clusters.csv")).unwrap();
    assert_eq!(clusters_csv.lines().count(), a.dataset().n_cells() + 1);
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("comparison_summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["replicates"], serde_json::json!(true));
    assert_eq!(
        summary["condition_specific_clusters"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(dir.path().join("da_neighbourhoods.csv").exists());
}
