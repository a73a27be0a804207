//! The steps of a run with several samples: doublet detection per sample and the integration
//! of batches.

use super::{DoubletReport, Integration, PipelineOptions, Switch};
use crate::dataset::{CellTable, Column};
use crate::design::Codes;
use crate::doublets::scrublet_by_sample;
use crate::error::{Error, Result};
use crate::integrate::{harmony, lisi};
use crate::pca::Pca;
use crate::qc::{Filtered, Reason};

/// The integration step: Harmony over `opts.batch_key` of the kept cells. Fewer than two
/// batches left after QC is a stated skip (`warnings`), or an error with [`Switch::On`].
pub(super) fn integrate(
    cells: &CellTable,
    pca: &Pca,
    opts: &PipelineOptions,
    warnings: &mut Vec<String>,
) -> Result<Option<Integration>> {
    let b = Codes::of(cells, &opts.batch_key)?;
    if b.len() < 2 {
        let why = format!(
            "integration over {:?} skipped: the cells that passed QC carry {} value(s) of it; \
             at least two batches are needed",
            opts.batch_key,
            b.len()
        );
        if opts.integration == Switch::On {
            return Err(Error::data("integration", why));
        }
        warnings.push(why);
        return Ok(None);
    }
    let h = harmony(pca.embedding.view(), &b.codes, &opts.harmony)?;
    if !h.converged {
        warnings.push(format!(
            "Harmony did not converge in {} rounds (harmony.max_iter_harmony); the corrected \
             embedding of the last round is used",
            h.iterations
        ));
    }
    let mean_lisi = |e: ndarray::ArrayView2<f32>| -> Result<f64> {
        let l = lisi(e, &b.codes, 30.0)?;
        Ok(l.iter().sum::<f64>() / l.len().max(1) as f64)
    };
    let (lisi_before, lisi_after) = if b.codes.len() > 3 * 30 {
        (
            mean_lisi(pca.embedding.view())?,
            mean_lisi(h.embedding.view())?,
        )
    } else {
        (f64::NAN, f64::NAN)
    };
    Ok(Some(Integration {
        batch_key: b.key,
        batches: b.names,
        batch_codes: b.codes,
        harmony: h,
        lisi_before,
        lisi_after,
    }))
}

/// The doublet step: Scrublet on each sample's cells that passed QC ([`scrublet_by_sample`]);
/// the scores go into the cell table (`doublet_score`, `predicted_doublet`) and, indexed by
/// input cell, into the report. With `remove_doublets` the predicted doublets are removed
/// (recorded as [`Reason::Doublet`]) and the kept rows are returned.
pub(super) fn find_and_remove_doublets(
    filtered: &mut Filtered,
    n_input_cells: usize,
    opts: &PipelineOptions,
) -> Result<(DoubletReport, Option<Vec<usize>>)> {
    let d = &filtered.dataset;
    let samples = Codes::from_labels("sample", &d.cells.sample);
    let found = scrublet_by_sample(&d.counts, &samples.codes, &samples.names, &opts.scrublet)?;
    // Input index of each kept cell: the input cells not removed by QC, in order.
    let mut removed = vec![false; n_input_cells];
    for &(i, _) in &filtered.removed_cells {
        if let Some(r) = removed.get_mut(i) {
            *r = true;
        }
    }
    let input_index: Vec<usize> = (0..n_input_cells).filter(|&i| !removed[i]).collect();
    if input_index.len() != d.n_cells() || found.scores.len() != d.n_cells() {
        return Err(Error::data(
            "doublets",
            "the QC record and the kept cells disagree in number",
        ));
    }
    let mut scores = vec![f64::NAN; n_input_cells];
    let mut predicted = vec![false; n_input_cells];
    for (k, &i) in input_index.iter().enumerate() {
        scores[i] = found.scores[k];
        predicted[i] = found.predicted[k];
    }
    filtered
        .dataset
        .cells
        .set("doublet_score", Column::F64(found.scores.clone()))?;
    filtered
        .dataset
        .cells
        .set("predicted_doublet", Column::Bool(found.predicted.clone()))?;
    // samples whose automatic threshold called an implausible share: their calls stay
    let implausible: Vec<bool> = found
        .per_sample
        .iter()
        .map(|s| s.implausible(&opts.scrublet))
        .collect();
    let kept = found
        .per_sample
        .iter()
        .zip(&implausible)
        .filter(|p| *p.1)
        .map(|p| p.0.sample.clone())
        .collect();
    let report = DoubletReport {
        scores,
        predicted,
        per_sample: found.per_sample,
        removed: opts.remove_doublets,
        kept,
    };
    if !opts.remove_doublets {
        return Ok((report, None));
    }
    let remove: Vec<bool> = (0..found.predicted.len())
        .map(|k| found.predicted[k] && !implausible[samples.codes[k] as usize])
        .collect();
    let keep: Vec<usize> = (0..remove.len()).filter(|&k| !remove[k]).collect();
    let n_doublets = remove.len() - keep.len();
    if n_doublets > 0 {
        for (k, &i) in input_index.iter().enumerate() {
            if remove[k] {
                filtered.removed_cells.push((i, Reason::Doublet));
            }
        }
        filtered.removed_cells.sort_unstable_by_key(|&(i, _)| i);
        filtered.cell_summary.push((Reason::Doublet, n_doublets));
        filtered.dataset = filtered.dataset.select_cells(&keep)?;
    }
    Ok((report, Some(keep)))
}

/// A warning for each sample whose predicted doublets were kept because their share was
/// implausible ([`crate::doublets::SampleDoublets::implausible`]), and one for each scored
/// sample whose predicted doublets are at most a fifth of
/// [`ScrubletOptions::expected_doublet_rate`](crate::doublets::ScrubletOptions) when the
/// threshold was chosen automatically. Scrublet's automatic threshold is the valley of the
/// *simulated* doublets' score histogram, and it can sit above the scores of the real
/// doublets: on the simulator's study design (6% heterotypic doublets) Scanpy's
/// `sc.pp.scrublet` put it at 0.476 in one sample of the 12,000-cell study (seed 2), where 90%
/// of the real doublets score 0.10-0.34 (AUROC 0.982), and called none of them; ours put it at
/// 0.38-0.39 per sample of the 6,000-cell study (90% of the doublets 0.09-0.27) and called 3 of
/// 360.
pub(super) fn doublet_rate_warnings(d: &DoubletReport, opts: &PipelineOptions) -> Vec<String> {
    if opts.scrublet.threshold.is_some() {
        return Vec::new();
    }
    let rate = opts.scrublet.expected_doublet_rate;
    let many = d
        .per_sample
        .iter()
        .filter(|s| s.implausible(&opts.scrublet))
        .map(|s| {
            format!(
                "doublets: sample {}: {} of {} cells ({:.1}%) predicted doublets at the \
                 automatic threshold {}, more than {} times the expected rate ({:.0}%): the \
                 threshold (the valley of the simulated doublets' scores) probably lies among \
                 the singlets' scores. {} Look at the doublet_score column of qc.csv and set a \
                 threshold (ScrubletOptions::threshold), or the expected rate if this sample \
                 really holds that many doublets",
                s.sample,
                s.n_predicted,
                s.n_cells,
                100.0 * s.n_predicted as f64 / s.n_cells as f64,
                s.threshold
                    .map_or("none".to_string(), |t| format!("{t:.3}")),
                crate::doublets::IMPLAUSIBLE_RATE_FACTOR,
                100.0 * rate,
                if d.removed {
                    "They were kept in the analysis (not removed)."
                } else {
                    "Nothing was removed (doublet removal is off)."
                }
            )
        });
    let few = d
        .per_sample
        .iter()
        .filter(|s| s.skipped.is_none() && s.n_cells > 0)
        .filter_map(|s| {
            let share = s.n_predicted as f64 / s.n_cells as f64;
            let threshold = s.threshold?;
            (share <= rate / 5.0).then(|| {
                format!(
                    "doublets: sample {}: {} of {} cells ({:.1}%) predicted doublets at the \
                     automatic threshold {threshold:.3}, a fifth or less of the expected rate \
                     ({:.0}%). Scrublet's automatic threshold (the valley of the simulated \
                     doublets' scores) can sit above the real doublets' scores; look at the \
                     doublet_score column of qc.csv and set a threshold \
                     (ScrubletOptions::threshold) if the scores show a group of doublets",
                    s.sample,
                    s.n_predicted,
                    s.n_cells,
                    100.0 * share,
                    100.0 * rate
                )
            })
        });
    many.chain(few).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doublets::SampleDoublets;

    fn sample(name: &str, n_cells: usize, n_predicted: usize) -> SampleDoublets {
        SampleDoublets {
            sample: name.to_string(),
            n_cells,
            n_predicted,
            threshold: Some(0.45),
            skipped: None,
        }
    }

    #[test]
    fn few_predicted_doublets_are_flagged() {
        let d = DoubletReport {
            scores: Vec::new(),
            predicted: Vec::new(),
            // Expected rate 5%: a fifth is 1%, so 10 of 1,000 is flagged and 11 is not.
            per_sample: vec![sample("a", 1000, 10), sample("b", 1000, 11), {
                let mut s = sample("c", 50, 0);
                s.skipped = Some("too few cells".to_string());
                s.threshold = None;
                s
            }],
            removed: true,
            kept: Vec::new(),
        };
        let mut opts = PipelineOptions::default();
        let w = doublet_rate_warnings(&d, &opts);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("sample a: 10 of 1000 cells (1.0%)"),
            "{}",
            w[0]
        );
        opts.scrublet.threshold = Some(0.2);
        assert!(doublet_rate_warnings(&d, &opts).is_empty());
    }

    #[test]
    fn implausibly_many_predicted_doublets_are_flagged() {
        // Expected rate 5%, factor 2: more than 100 of 1,000 is implausible, 100 is not.
        let (a, b) = (sample("a", 1000, 101), sample("b", 1000, 100));
        let mut opts = PipelineOptions::default();
        assert!(a.implausible(&opts.scrublet) && !b.implausible(&opts.scrublet));
        let d = DoubletReport {
            scores: Vec::new(),
            predicted: Vec::new(),
            per_sample: vec![a.clone(), b],
            removed: true,
            kept: vec!["a".to_string()],
        };
        let w = doublet_rate_warnings(&d, &opts);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("sample a: 101 of 1000 cells (10.1%)"),
            "{}",
            w[0]
        );
        assert!(w[0].contains("kept in the analysis"), "{}", w[0]);
        // a threshold given by the user is taken as it is
        opts.scrublet.threshold = Some(0.2);
        assert!(!a.implausible(&opts.scrublet));
        assert!(doublet_rate_warnings(&d, &opts).is_empty());
    }
}
