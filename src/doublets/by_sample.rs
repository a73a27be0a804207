//! [`scrublet_by_sample`]: Scrublet on each sample alone.

use rayon::prelude::*;

use super::{scrublet_rows, Scrublet, ScrubletOptions};
use crate::error::{Error, Result};
use crate::lognorm::CountsRef;

/// One sample's summary in [`Doublets`].
#[derive(Debug, Clone, PartialEq)]
pub struct SampleDoublets {
    /// Sample name.
    pub sample: String,
    /// Cells of the sample.
    pub n_cells: usize,
    /// Predicted doublets.
    pub n_predicted: usize,
    /// Threshold used (`None` when skipped or when no automatic threshold was found).
    pub threshold: Option<f64>,
    /// Why the sample was not scored (`None` when it was).
    pub skipped: Option<String>,
}

/// How many times [`ScrubletOptions::expected_doublet_rate`] the predicted share of a sample
/// may reach at an automatic threshold before the threshold is taken to sit among the singlets
/// ([`SampleDoublets::implausible`]).
pub const IMPLAUSIBLE_RATE_FACTOR: f64 = 2.0;

impl SampleDoublets {
    /// Whether this sample's calls look like a misplaced automatic threshold: the threshold was
    /// found automatically (`opts.threshold` is `None`) and more than
    /// [`IMPLAUSIBLE_RATE_FACTOR`] times `opts.expected_doublet_rate` of the sample's cells were
    /// predicted doublets.
    ///
    /// Scrublet's automatic threshold is the valley of the *simulated* doublets' score
    /// histogram; when that histogram has no clear valley the one found can lie inside the
    /// observed singlets' scores. On the simulator's data without any doublet (5,000 cells x
    /// 20,000 genes, 4 samples, seed 0) it fell at 0.065 in one sample and called 361 of its
    /// 1,250 cells (29%), every one a singlet, where the other samples' thresholds were
    /// 0.37-0.38 with 0-2 calls. The pipeline keeps such a sample's predicted doublets in the
    /// analysis and says so, since removing a third of one sample's cells would make
    /// composition differences between samples out of nothing.
    pub fn implausible(&self, opts: &ScrubletOptions) -> bool {
        opts.threshold.is_none()
            && self.skipped.is_none()
            && self.n_cells > 0
            && self.n_predicted as f64
                > IMPLAUSIBLE_RATE_FACTOR * opts.expected_doublet_rate * self.n_cells as f64
    }
}

/// Result of [`scrublet_by_sample`]: per-cell vectors follow the rows of the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Doublets {
    /// Doublet score of every cell (NaN for cells of skipped samples and left-out cells).
    pub scores: Vec<f64>,
    /// Predicted doublets (false for cells of skipped samples).
    pub predicted: Vec<bool>,
    /// One entry per sample, in the order of `sample_names`.
    pub per_sample: Vec<SampleDoublets>,
}

/// [`scrublet`](super::scrublet) on each sample's cells separately (never on merged samples), samples in
/// parallel. `sample_codes[i]` is the index in `sample_names` of cell `i`'s sample. Sample `s`
/// runs with `seed = opts.seed.wrapping_add(s)`, so its result is the same whether run here
/// or alone with that seed, and does not depend on the number of threads.
///
/// A sample with fewer than `opts.min_cells` cells is skipped: its cells get NaN scores, are
/// not predicted, and [`SampleDoublets::skipped`] says why. Other failures of a sample are
/// errors naming it.
///
/// Errors: invalid options; `sample_codes` not one per cell; a code without a name.
pub fn scrublet_by_sample<'a>(
    counts: impl Into<CountsRef<'a>>,
    sample_codes: &[u32],
    sample_names: &[String],
    opts: &ScrubletOptions,
) -> Result<Doublets> {
    opts.validate()?;
    let counts = counts.into();
    let n_cells = counts.shape().0;
    if sample_codes.len() != n_cells {
        return Err(Error::data(
            "scrublet_by_sample",
            format!("{} sample codes for {n_cells} cells", sample_codes.len()),
        ));
    }
    let n_samples = sample_names.len();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_samples];
    for (i, &c) in sample_codes.iter().enumerate() {
        match members.get_mut(c as usize) {
            Some(m) => m.push(i),
            None => {
                return Err(Error::data(
                    "scrublet_by_sample",
                    format!("cell {i} has sample code {c} but there are {n_samples} sample names"),
                ))
            }
        }
    }
    let results: Vec<Result<Option<Scrublet>>> = members
        .par_iter()
        .enumerate()
        .map(|(s, rows)| {
            if rows.len() < opts.min_cells {
                return Ok(None);
            }
            let o = ScrubletOptions {
                seed: opts.seed.wrapping_add(s as u64),
                ..opts.clone()
            };
            // Compact counts: this sample's rows as an `f32` matrix (the same rows in order).
            let run = match counts {
                CountsRef::Wide(m) => scrublet_rows(m, Some(rows), &o),
                CountsRef::Compact(m) => scrublet_rows(&m.select_rows(rows)?.to_wide(), None, &o),
            };
            run.map(Some)
                .map_err(|e| Error::data(format!("sample \"{}\"", sample_names[s]), e.to_string()))
        })
        .collect();
    let mut scores = vec![f64::NAN; n_cells];
    let mut predicted = vec![false; n_cells];
    let mut per_sample = Vec::with_capacity(n_samples);
    for (s, res) in results.into_iter().enumerate() {
        let rows = &members[s];
        let entry = match res? {
            None => SampleDoublets {
                sample: sample_names[s].clone(),
                n_cells: rows.len(),
                n_predicted: 0,
                threshold: None,
                skipped: Some(format!(
                    "{} cells, fewer than min_cells = {}",
                    rows.len(),
                    opts.min_cells
                )),
            },
            Some(r) => {
                for (local, &cell) in rows.iter().enumerate() {
                    scores[cell] = r.scores[local];
                    predicted[cell] = r.predicted[local];
                }
                SampleDoublets {
                    sample: sample_names[s].clone(),
                    n_cells: rows.len(),
                    n_predicted: r.predicted.iter().filter(|&&p| p).count(),
                    threshold: r.threshold,
                    skipped: None,
                }
            }
        };
        per_sample.push(entry);
    }
    Ok(Doublets {
        scores,
        predicted,
        per_sample,
    })
}
