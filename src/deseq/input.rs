//! Checks of the counts, the condition labels and the covariates of [`super::deseq`].

use crate::error::{Error, Result};
use ndarray::ArrayView2;

/// Checks the counts, the condition and the covariates.
pub(crate) fn validate_input(
    counts: &ArrayView2<f64>,
    condition: &[u32],
    covariates: Option<&ArrayView2<f64>>,
) -> Result<()> {
    let (n, g) = counts.dim();
    if condition.len() != n {
        return Err(Error::data(
            "deseq",
            format!(
                "{} condition labels for {n} samples (count rows; counts are samples x genes)",
                condition.len()
            ),
        ));
    }
    if g == 0 {
        return Err(Error::data(
            "deseq",
            "the count matrix has no genes (columns)",
        ));
    }
    if let Some(&bad) = condition.iter().find(|&&c| c > 1) {
        return Err(Error::data(
            "deseq",
            format!("condition labels must be 0 or 1, got {bad}"),
        ));
    }
    for level in 0..2u32 {
        let k = condition.iter().filter(|&&c| c == level).count();
        if k < 2 {
            return Err(Error::data(
                "deseq",
                format!(
                    "condition {level} has {k} sample(s): DESeq2 needs replicates, at least 2 \
                     samples per condition"
                ),
            ));
        }
    }
    if let Some(cov) = covariates {
        if cov.nrows() != n {
            return Err(Error::data(
                "deseq",
                format!("covariates have {} rows for {n} samples", cov.nrows()),
            ));
        }
        if let Some(((j, k), v)) = cov.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::data(
                "deseq",
                format!("covariate {k} of sample {j} is not finite ({v})"),
            ));
        }
    }
    for ((j, gene), &c) in counts.indexed_iter() {
        if !(c.is_finite() && c >= 0.0 && c.fract() == 0.0) {
            return Err(Error::data(
                "deseq",
                format!(
                    "count of sample {j}, gene {gene} is {c}: counts must be non-negative integers"
                ),
            ));
        }
    }
    Ok(())
}
