//! Linear models with empirical Bayes moderated t and F statistics, as the limma package
//! (Smyth 2004, "Linear models and empirical Bayes methods for assessing differential
//! expression in microarray experiments", *Stat. Appl. Genet. Mol. Biol.* 3(1), article 3;
//! Phipson et al. 2016, "Robust hyperparameter estimation protects against hypervariable genes
//! and improves power to detect differential expression", *Ann. Appl. Stat.* 10(2)). The
//! formulas follow limma 3.54.1's R code (`lm.series`, `contrasts.fit`, `eBayes`, `squeezeVar`,
//! `fitFDist`, `fitFDistRobustly`, `trigammaInverse`, `classifyTestsF`).
//!
//! - [`lm_fit`]: per feature (row of `y`), the least-squares fit `y = X b + e` of the design `X`
//!   (samples x coefficients, full column rank) through one Householder QR of `X`; `sigma^2 =
//!   RSS / (n - p)`, `stdev_unscaled_j = sqrt((X'X)^-1_jj)`, `cov_coefficients = (X'X)^-1`.
//! - [`contrasts_fit`]: coefficients `B C`, `cov = C' V C`, and `stdev_unscaled` from the
//!   coefficients' correlation matrix (the plain `sqrt(s^2 C^2)` when they are orthogonal).
//! - [`squeeze_var`]: the prior `s0^2, d0` of the scaled inverse chi-square model
//!   `1/sigma^2 ~ chi^2_d0 / (d0 s0^2)` fitted to the sample variances by moments of
//!   `log s^2` (`fitFDist`): with `e = log s^2 - digamma(d/2) + log(d/2)`,
//!   `trigamma(d0/2) = var(e) - mean(trigamma(d/2))` (no solution: `d0 = inf`),
//!   `s0^2 = exp(mean(e) + digamma(d0/2) - log(d0/2))`; posterior
//!   `s~^2 = (d s^2 + d0 s0^2) / (d + d0)`. With `trend`, `mean(e)` is a natural cubic spline
//!   regression on the features' mean (`Amean`), so `s0^2` depends on the feature. With
//!   `robust`, the Winsorized fit of Phipson et al. 2016 (`fitFDistRobustly`) gives each
//!   feature its own `d0` (outlier variances get a smaller one).
//! - [`ebayes`]: moderated `t = b / (stdev_unscaled s~)` on `df_total = min(d + d0,
//!   sum(d))` degrees of freedom, two-sided p-values, and the moderated F statistic over all
//!   coefficients (`classifyTestsF`: `F = t' R^+ t / r` with `R` the coefficients' correlation
//!   and `r` its rank) on `(r, d + d0)` degrees of freedom.
//!
//! Differences from limma: no missing values or observation weights (NaN is an error), no
//! duplicate spots or blocks, the design must have full column rank (limma drops aliased
//! coefficients), B-statistics (log-odds) are not computed; `robust` together with `trend`
//! is not implemented (limma uses a lowess trend there).

mod linear_model;
mod moderated;
mod qr;
mod robust;
mod squeeze;

pub use crate::special::{digamma, tetragamma, trigamma, trigamma_inverse};
pub use crate::stats::f_sf;
pub use linear_model::{contrasts_fit, lm_fit, LmFit};
pub use moderated::{ebayes, Ebayes, EbayesOptions};
pub use squeeze::{squeeze_var, SqueezeVar, SqueezeVarOptions};

/// Relative closeness, for the unit tests of the sub-modules.
#[cfg(test)]
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}
