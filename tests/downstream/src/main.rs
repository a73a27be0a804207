//! The main job of a downstream tool, written against `scrna::prelude` only: simulate a
//! parental / resistant study, run the standard analysis, compare the conditions, write the
//! report; exit with status 1 and a message if the resistant-only state is not found.

use scrna::prelude::*;
use std::process::ExitCode;

fn study() -> Result<String> {
    let mut sim = SimulateOptions::default();
    sim.n_cells = 1_000;
    sim.n_genes = 1_500;
    sim.n_clusters = 4;
    sim.seed = 3;
    let Simulation { dataset, truth, .. } = simulate(&sim)?;
    let data: &Dataset = &dataset;

    let mut opts = PipelineOptions::default().seeded(3);
    opts.skip_umap = true;
    opts.threads = Some(2);
    opts.doublets = Switch::Off;
    let mut steps = Vec::new();
    let analysis: Analysis = run(data, &opts, &mut |p: &Progress| {
        steps.push(p.step.to_string())
    })?;

    let mut copts = ConditionOptions::default();
    copts.gene_sets = Some(Vec::new());
    copts.seed = 3;
    let result: ConditionResult = compare(&analysis, &copts)?;

    let resistant: Vec<u32> = result
        .composition
        .specific()
        .into_iter()
        .filter(|&(_, k)| result.composition.conditions[k] == "resistant")
        .map(|(c, _)| c)
        .collect();
    let [cluster] = resistant[..] else {
        return Err(Error::data(
            "downstream",
            format!("expected one resistant-only cluster, found {resistant:?}"),
        ));
    };
    // The called cluster holds the simulated resistant-only cells (matched by barcode).
    let planted = truth.condition_specific_clusters[0];
    let index: std::collections::HashMap<&str, usize> = data
        .cells
        .barcodes
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let kept = &analysis.dataset().cells.barcodes;
    let in_cluster: Vec<usize> = (0..kept.len())
        .filter(|&i| analysis.clustering.labels[i] == cluster)
        .collect();
    let agree = in_cluster
        .iter()
        .filter(|&&i| index.get(kept[i].as_str()).map(|&j| truth.cluster[j]) == Some(planted))
        .count();
    if (agree as f64) < 0.9 * in_cluster.len() as f64 {
        return Err(Error::data(
            "downstream",
            format!(
                "{agree} of {} cells of cluster {cluster} are planted",
                in_cluster.len()
            ),
        ));
    }

    let page = std::env::temp_dir().join(format!("scrna-downstream-{}.html", std::process::id()));
    write_report(&analysis, Some(&result), &page, &ReportOptions::default())?;
    let _ = std::fs::remove_file(&page);
    Ok(format!(
        "{} clusters over {} steps; cluster {cluster} resistant-only ({agree} of {} cells planted)",
        analysis.clustering.n_clusters,
        steps.len(),
        in_cluster.len()
    ))
}

fn main() -> ExitCode {
    match study() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        // The error enum is non-exhaustive: a downstream match needs its `_` arm.
        Err(Error::InvalidOption { name, message, .. }) => {
            eprintln!("bad option {name}: {message}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
