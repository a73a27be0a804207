//! Median-of-ratios size factors (Anders & Huber 2010; pydeseq2's `deseq2_norm`).

use crate::error::{Error, Result};
use crate::stats::median_in_place as median;
use ndarray::ArrayView2;

/// Size factors of the samples (rows of `counts`, samples x genes):
/// `s_j = exp(median_g (ln c_jg - mean_j' ln c_j'g))` over the genes with no zero count.
/// An error when every gene has a zero in some sample (pydeseq2 then switches to its
/// iterative size factors; this module does not implement them).
pub(crate) fn median_of_ratios(counts: &ArrayView2<f64>) -> Result<Vec<f64>> {
    let (n, g) = counts.dim();
    let mut logmeans: Vec<f64> = Vec::with_capacity(g);
    let mut genes: Vec<usize> = Vec::with_capacity(g);
    for gene in 0..g {
        let col = counts.column(gene);
        if col.iter().all(|&c| c > 0.0) {
            genes.push(gene);
            logmeans.push(col.iter().map(|c| c.ln()).sum::<f64>() / n as f64);
        }
    }
    if genes.is_empty() {
        return Err(Error::data(
            "deseq",
            "every gene has a zero count in at least one sample: median-of-ratios size factors \
             are undefined",
        ));
    }
    let mut ratios = vec![0.0; genes.len()];
    let mut sf = Vec::with_capacity(n);
    for j in 0..n {
        let row = counts.row(j);
        for (r, (&gene, &lm)) in ratios.iter_mut().zip(genes.iter().zip(&logmeans)) {
            *r = row[gene].ln() - lm;
        }
        sf.push(median(&mut ratios).exp());
    }
    Ok(sf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_samples_get_their_ratio() {
        let counts = ndarray::array![
            [10.0, 20.0, 0.0, 5.0],
            [20.0, 40.0, 3.0, 10.0],
            [40.0, 80.0, 1.0, 20.0]
        ];
        let sf = median_of_ratios(&counts.view()).unwrap();
        // Geometric mean of (1, 2, 4) is 2: size factors 1/2, 1, 2.
        assert!(
            (sf[0] - 0.5).abs() < 1e-12
                && (sf[1] - 1.0).abs() < 1e-12
                && (sf[2] - 2.0).abs() < 1e-12
        );
        let zeros = ndarray::array![[0.0, 1.0], [1.0, 0.0]];
        assert!(median_of_ratios(&zeros.view()).is_err());
    }
}
