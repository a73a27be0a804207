//! Within-cluster comparison of conditions on simulated data: calibration under the null,
//! power on a planted program shift, the stated Wilcoxon fallback without replicates, the
//! written files, and thread-count independence.

use scrna::comparison::PROGRAMS;
use scrna::genesets::GeneSet;
use scrna::pipeline::{run, Analysis, PipelineOptions};
use scrna::simulate::{simulate, ProgramShift, SimulateOptions, Simulation};
use scrna::within_cluster::{
    within_cluster, write_within_cluster, DeMethod, WithinCluster, WithinClusterOptions,
};
use std::collections::HashMap;

fn analyse(opts: &SimulateOptions) -> (Simulation, Analysis) {
    let sim = simulate(opts).unwrap();
    let a = run(
        &sim.dataset,
        &PipelineOptions {
            skip_umap: true,
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap();
    (sim, a)
}

/// The shifted genes' symbols, and two program sets: `PROGRAMS[0]` = the shifted genes,
/// `PROGRAMS[1]` = 25 other genes of similar rank.
fn shift_sets(sim: &Simulation) -> (Vec<String>, Vec<GeneSet>) {
    let shift = sim.truth.shift.as_ref().unwrap();
    let sym = &sim.dataset.genes.symbols;
    let shifted: Vec<String> = shift.genes.iter().map(|&g| sym[g].clone()).collect();
    let other: Vec<String> = shift
        .genes
        .iter()
        .map(|&g| sym[(g + 7) % sym.len()].clone())
        .filter(|g| !shifted.contains(g))
        .collect();
    let sets = vec![
        GeneSet {
            id: PROGRAMS[0].to_string(),
            name: "shifted program".into(),
            genes: shifted.clone(),
        },
        GeneSet {
            id: PROGRAMS[1].to_string(),
            name: "unshifted genes".into(),
            genes: other,
        },
    ];
    (shifted, sets)
}

/// Cluster holding most of the kept cells of true type `t`.
fn cluster_of_type(sim: &Simulation, a: &Analysis, t: u32) -> u32 {
    let pos: HashMap<&str, usize> = sim
        .dataset
        .cells
        .barcodes
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let mut votes = vec![0usize; a.clustering.n_clusters];
    for (b, &l) in a.dataset().cells.barcodes.iter().zip(&a.clustering.labels) {
        if sim.truth.cluster[pos[b.as_str()]] == t {
            votes[l as usize] += 1;
        }
    }
    (0..votes.len()).max_by_key(|&c| votes[c]).unwrap() as u32
}

fn small(base: SimulateOptions) -> SimulateOptions {
    SimulateOptions {
        n_cells: 2_500,
        n_genes: 2_000,
        ..base
    }
}

#[test]
fn null_design_is_calibrated() {
    let opts = small(SimulateOptions {
        batch_sd: 0.2,
        seed: 3,
        ..SimulateOptions::null_design()
    });
    let (_, a) = analyse(&opts);
    let r = within_cluster(&a, &[], &WithinClusterOptions::default()).unwrap();
    let deseq: Vec<_> =
        r.de.iter()
            .filter(|d| d.method == DeMethod::Deseq2)
            .collect();
    assert!(!deseq.is_empty(), "notes: {:?}", r.notes);
    let hits = deseq.iter().filter(|d| d.p_adjusted < 0.05).count();
    let share = hits as f64 / deseq.len() as f64;
    println!(
        "null: {} DESeq2 rows over {} clusters, {hits} with p_adj < 0.05 ({:.4}); notes {:?}",
        deseq.len(),
        a.clustering.n_clusters,
        share,
        r.notes
    );
    assert!(share <= 0.01, "false discoveries {share}");
    // Raw p-values roughly uniform: share below 0.05 at most twice the nominal rate.
    let tested: Vec<f64> = deseq
        .iter()
        .map(|d| d.p_value)
        .filter(|p| p.is_finite())
        .collect();
    let below = tested.iter().filter(|&&p| p < 0.05).count() as f64 / tested.len() as f64;
    println!("null: share of raw p < 0.05 = {below:.4}");
    assert!(below <= 0.10, "raw p < 0.05 share {below}");
}

#[test]
fn planted_shift_is_found_and_written() {
    let opts = small(SimulateOptions {
        samples_per_condition: 3,
        batch_sd: 0.2,
        condition_specific: 0,
        depleted_share: 1.0,
        shift: Some(ProgramShift::default()),
        seed: 5,
        ..SimulateOptions::default()
    });
    let (sim, a) = analyse(&opts);
    let (shifted, sets) = shift_sets(&sim);
    let r = within_cluster(&a, &sets, &WithinClusterOptions::default()).unwrap();
    assert_eq!(r.numerator, "resistant");
    assert_eq!(r.denominator, "parental");
    let c = cluster_of_type(&sim, &a, sim.truth.shift.as_ref().unwrap().cluster);
    let rows: HashMap<&str, _> =
        r.de.iter()
            .filter(|d| d.cluster == c)
            .map(|d| (d.gene.as_str(), d))
            .collect();
    assert!(rows.values().all(|d| d.method == DeMethod::Deseq2));
    let up = shifted
        .iter()
        .filter(|g| {
            rows.get(g.as_str())
                .is_some_and(|d| d.p_adjusted < 0.05 && d.log2_fold_change > 0.0)
        })
        .count();
    let share = up as f64 / shifted.len() as f64;
    // Genes outside the program called in that cluster.
    let others = rows
        .iter()
        .filter(|(g, d)| d.p_adjusted < 0.05 && !shifted.iter().any(|s| s == *g))
        .count();
    println!(
        "shift: cluster {c}, {up}/{} shifted genes up at p_adj < 0.05 ({share:.2}); {others} \
         other genes called among {}",
        shifted.len(),
        rows.len()
    );
    assert!(share >= 0.7, "share of shifted genes found {share}");
    assert!(others <= 5, "{others} other genes called");

    // The shifted program's score rises in that cluster, tested over samples.
    let prog = r
        .programs
        .iter()
        .find(|p| p.cluster == c && p.set == PROGRAMS[0])
        .unwrap();
    println!("shift: program row {prog:?}");
    assert!(prog.replicates && prog.samples_numerator == 3 && prog.samples_denominator == 3);
    assert!(prog.difference > 0.0 && prog.t > 0.0);
    assert!(prog.p_adjusted < 0.05, "{prog:?}");
    // The up genes of that cluster are enriched for the shifted program.
    assert!(
        r.enrichment
            .iter()
            .any(|(cl, dir, e)| *cl == c && *dir == "up" && e.id == PROGRAMS[0] && e.p_adj < 0.05),
        "{:?}",
        r.enrichment
    );

    let dir = std::env::temp_dir().join(format!("scrna_within_{}", std::process::id()));
    let files = write_within_cluster(&r, &dir).unwrap();
    check_files(&r, &dir, &files);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn header(path: &std::path::Path) -> (String, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let h = lines.next().unwrap().to_string();
    (h, lines.count())
}

fn check_files(r: &WithinCluster, dir: &std::path::Path, files: &[std::path::PathBuf]) {
    let (h, n) = header(&dir.join("condition_de.csv"));
    assert_eq!(
        h,
        "cluster,gene,base_mean,log2_fold_change,lfc_se,p_value,p_adjusted,method,\
         samples_numerator,samples_denominator,numerator,denominator"
    );
    assert_eq!(n, r.de.len());
    let (h, n) = header(&dir.join("condition_enrichment.csv"));
    assert_eq!(
        h,
        "cluster,direction,id,name,overlap,set_size,query_size,universe_size,p,p_adjusted,genes"
    );
    assert_eq!(n, r.enrichment.len());
    let (h, n) = header(&dir.join("programs.csv"));
    assert_eq!(
        h,
        "cluster,set,name,mean_numerator,mean_denominator,difference,t,p_value,p_adjusted,\
         samples_numerator,samples_denominator,replicates,numerator,denominator"
    );
    assert_eq!(n, r.programs.len());
    let mut clusters: Vec<u32> = r.de.iter().map(|d| d.cluster).collect();
    clusters.dedup();
    for c in &clusters {
        let p = dir.join(format!("volcano_{c}.png"));
        assert!(files.contains(&p));
        assert!(std::fs::metadata(&p).unwrap().len() > 1000);
    }
    let heat = dir.join("programs_heatmap.png");
    assert!(files.contains(&heat));
    assert!(std::fs::metadata(&heat).unwrap().len() > 1000);
    // No temporary file left behind.
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "{name}");
    }
}

#[test]
fn one_sample_per_condition_falls_back_to_cells_with_a_note() {
    let opts = small(SimulateOptions {
        samples_per_condition: 1,
        shift: Some(ProgramShift::default()),
        seed: 7,
        ..SimulateOptions::default()
    });
    let (sim, a) = analyse(&opts);
    let (_, sets) = shift_sets(&sim);
    let r = within_cluster(&a, &sets, &WithinClusterOptions::default()).unwrap();
    assert!(!r.de.is_empty());
    assert!(r.de.iter().all(|d| d.method == DeMethod::WilcoxonCells
        && d.samples_numerator == 1
        && d.samples_denominator == 1
        && d.lfc_se.is_nan()));
    let fallback: Vec<_> = r
        .notes
        .iter()
        .filter(|n| n.method == Some(DeMethod::WilcoxonCells))
        .collect();
    let mut tested: Vec<u32> = r.de.iter().map(|d| d.cluster).collect();
    tested.dedup();
    assert_eq!(fallback.len(), tested.len());
    assert!(fallback
        .iter()
        .all(|n| n.note.contains("treat cells as independent replicates")));
    // The condition-specific type is skipped with a note.
    assert!(
        r.notes
            .iter()
            .any(|n| n.method.is_none() && n.note.contains("specific to a condition")),
        "{:?}",
        r.notes
    );
    // Programs without replicates: means only.
    assert!(!r.programs.is_empty());
    assert!(r.programs.iter().all(|p| !p.replicates
        && p.t.is_nan()
        && p.p_adjusted.is_nan()
        && p.difference.is_finite()));

    // Same output with 1 and 2 threads.
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let one = pool(1).install(|| within_cluster(&a, &sets, &WithinClusterOptions::default()));
    let two = pool(2).install(|| within_cluster(&a, &sets, &WithinClusterOptions::default()));
    // Debug text: NaN fields compare equal there.
    assert_eq!(format!("{:?}", one.unwrap()), format!("{:?}", two.unwrap()));

    // A contrast naming a missing condition is an error naming the field.
    let bad = WithinClusterOptions {
        contrast: Some(("resistant".into(), "absent".into())),
        ..Default::default()
    };
    let e = within_cluster(&a, &sets, &bad).unwrap_err().to_string();
    assert!(e.contains("contrast"), "{e}");
}
