//! The negative binomial GLM of edgeR for one row: design matrices, deviances, the
//! one-way-layout and Fisher-scoring fits, the Cox-Reid adjusted profile likelihood, and the
//! prior counts, average log-CPM and residual degrees of freedom built on them.

use crate::error::{Error, Result};
use crate::milo::squeeze::{dot, invert, rank, solve_spd};
use crate::stats::ln_gamma;
use ndarray::ArrayView2;

/// A design matrix (samples x coefficients), row-major, with its one-way-layout structure.
#[derive(Debug, Clone)]
pub struct Design {
    pub(super) n: usize,
    pub(super) p: usize,
    x: Vec<f64>,
    /// Group of each sample and the inverse of the unique-rows matrix, when one-way.
    oneway: Option<(Vec<usize>, Vec<f64>)>,
}

impl Design {
    /// Builds a design from a samples x coefficients matrix; errors if it is not of full rank.
    pub fn new(x: ArrayView2<f64>) -> Result<Design> {
        let (n, p) = x.dim();
        let x: Vec<f64> = x.iter().copied().collect();
        if p == 0 || n == 0 || rank(&x, n, p) < p {
            return Err(Error::data(
                "design",
                "the design matrix is not of full column rank",
            ));
        }
        let mut rows: Vec<Vec<f64>> = Vec::new();
        let mut group = vec![0; n];
        for (i, g) in group.iter_mut().enumerate() {
            let r = &x[i * p..(i + 1) * p];
            *g = match rows.iter().position(|u| u.as_slice() == r) {
                Some(k) => k,
                None => {
                    rows.push(r.to_vec());
                    rows.len() - 1
                }
            };
        }
        let oneway = if rows.len() == p {
            let flat: Vec<f64> = rows.concat();
            invert(&flat, p).map(|inv| (group, inv))
        } else {
            None
        };
        Ok(Design { n, p, x, oneway })
    }
    fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.p..(i + 1) * self.p]
    }
    /// The design without column `c`.
    pub(super) fn drop_column(&self, c: usize) -> Result<Design> {
        let keep: Vec<f64> = (0..self.n)
            .flat_map(|i| (0..self.p).filter(move |&j| j != c).map(move |j| (i, j)))
            .map(|(i, j)| self.x[i * self.p + j])
            .collect();
        let a = ndarray::Array2::from_shape_vec((self.n, self.p - 1), keep)
            .map_err(|e| Error::data("design", e.to_string()))?;
        Design::new(a.view())
    }
    /// Rows `libs` keeping a maximal set of independent columns (in order, as R's `qr` pivots).
    pub(super) fn subset(&self, libs: &[usize]) -> Option<Design> {
        let mut cols: Vec<usize> = Vec::new();
        for j in 0..self.p {
            let mut trial = cols.clone();
            trial.push(j);
            let m: Vec<f64> = libs
                .iter()
                .flat_map(|&i| trial.iter().map(move |&c| (i, c)))
                .map(|(i, c)| self.x[i * self.p + c])
                .collect();
            if rank(&m, libs.len(), trial.len()) == trial.len() {
                cols = trial;
            }
        }
        let m: Vec<f64> = libs
            .iter()
            .flat_map(|&i| cols.iter().map(move |&c| (i, c)))
            .map(|(i, c)| self.x[i * self.p + c])
            .collect();
        let a = ndarray::Array2::from_shape_vec((libs.len(), cols.len()), m).ok()?;
        Design::new(a.view()).ok()
    }
}

/// edgeR's unit negative binomial deviance (`compute_unit_nb_deviance`, with its `1e-8` guard
/// and its Poisson and Gamma limits; `2/3` is integer division in the C++ source, so 0).
fn unit_deviance(y: f64, mu: f64, phi: f64) -> f64 {
    let (y, mu) = (y + 1e-8, mu + 1e-8);
    if phi < 1e-4 {
        let r = y - mu;
        2.0 * (y * (y / mu).ln() - r - 0.5 * r * r * phi * (1.0 - phi * y))
    } else if mu * phi > 1e6 {
        2.0 * ((y - mu) / mu - (y / mu).ln()) * mu / (1.0 + mu * phi)
    } else {
        let iphi = 1.0 / phi;
        2.0 * (y * (y / mu).ln() + (y + iphi) * ((mu + iphi) / (y + iphi)).ln())
    }
}

fn deviance(y: &[f64], mu: &[f64], phi: f64) -> f64 {
    y.iter()
        .zip(mu)
        .map(|(&a, &m)| unit_deviance(a, m, phi))
        .sum()
}

/// `mglmOneGroup`: Newton-Raphson for one log-mean (maxit 50, tolerance `1e-10`).
fn one_group(y: &[f64], offset: &[f64], phi: f64) -> f64 {
    let total: f64 = y
        .iter()
        .zip(offset)
        .filter(|(v, _)| **v > 1e-10)
        .map(|(v, o)| v / o.exp())
        .sum();
    if total == 0.0 {
        return f64::NEG_INFINITY;
    }
    let mut beta = (total / y.len() as f64).ln();
    for _ in 0..50 {
        let (mut dl, mut info) = (0.0, 0.0);
        for (&v, &o) in y.iter().zip(offset) {
            let mu = (beta + o).exp();
            let den = 1.0 + mu * phi;
            dl += (v - mu) / den;
            info += mu / den;
        }
        let step = dl / info;
        beta += step;
        if step.abs() < 1e-10 {
            break;
        }
    }
    beta
}

/// A fitted GLM for one row.
pub(super) struct Fit {
    pub(super) beta: Vec<f64>,
    pub(super) mu: Vec<f64>,
    pub(super) dev: f64,
}

/// `glmFit` with `prior.count = 0` for one row.
pub(super) fn glm_fit(y: &[f64], d: &Design, offset: &[f64], phi: f64) -> Fit {
    let (n, p) = (d.n, d.p);
    if let Some((group, inv)) = &d.oneway {
        let mut gb = vec![0.0; p];
        let (mut yy, mut oo) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (g, b) in gb.iter_mut().enumerate() {
            yy.clear();
            oo.clear();
            for i in (0..n).filter(|&i| group[i] == g) {
                yy.push(y[i]);
                oo.push(offset[i]);
            }
            *b = one_group(&yy, &oo, phi).max(-1e8);
        }
        let mu: Vec<f64> = (0..n).map(|i| (gb[group[i]] + offset[i]).exp()).collect();
        let beta: Vec<f64> = (0..p)
            .map(|j| (0..p).map(|g| inv[j * p + g] * gb[g]).sum())
            .collect();
        let dev = deviance(y, &mu, phi);
        return Fit { beta, mu, dev };
    }
    // Damped Fisher scoring from the one-group fit.
    let mut beta = vec![0.0; p];
    let b0 = one_group(y, offset, phi).max(-30.0);
    let mut eta: Vec<f64> = offset.iter().map(|o| o + b0).collect();
    // Least-squares start: project the one-group log-mean onto the design.
    let mut xtx = vec![0.0; p * p];
    let mut xtz = vec![0.0; p];
    for i in 0..n {
        let r = d.row(i);
        for a in 0..p {
            xtz[a] += r[a] * b0;
            for b in 0..p {
                xtx[a * p + b] += r[a] * r[b];
            }
        }
    }
    if let Some(s) = solve_spd(&xtx, &xtz, p, 0.0) {
        beta = s;
    }
    for (i, e) in eta.iter_mut().enumerate() {
        *e = offset[i] + dot(d.row(i), &beta);
    }
    let mut mu: Vec<f64> = eta.iter().map(|e| e.exp()).collect();
    let mut dev = deviance(y, &mu, phi);
    let mut lambda = 0.0;
    for _ in 0..250 {
        let (mut xtwx, mut dl) = (vec![0.0; p * p], vec![0.0; p]);
        for i in 0..n {
            let r = d.row(i);
            let den = 1.0 + phi * mu[i];
            let w = mu[i] / den;
            let s = (y[i] - mu[i]) / den;
            for a in 0..p {
                dl[a] += r[a] * s;
                for b in 0..p {
                    xtwx[a * p + b] += r[a] * w * r[b];
                }
            }
        }
        let maxd = (0..p)
            .map(|a| xtwx[a * p + a])
            .fold(0.0f64, f64::max)
            .max(1e-13);
        let mut accepted = false;
        for _ in 0..60 {
            let Some(step) = solve_spd(&xtwx, &dl, p, lambda * maxd) else {
                lambda = (lambda * 10.0).max(1e-6);
                continue;
            };
            let nb: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + s).collect();
            let nmu: Vec<f64> = (0..n)
                .map(|i| (offset[i] + dot(d.row(i), &nb)).exp())
                .collect();
            let ndev = deviance(y, &nmu, phi);
            if ndev.is_finite() && ndev <= dev {
                let change = dev - ndev;
                beta = nb;
                mu = nmu;
                dev = ndev;
                lambda /= 10.0;
                accepted = change > 1e-10 * (dev.abs() + 0.1);
                break;
            }
            lambda = (lambda * 10.0).max(1e-6);
        }
        if !accepted {
            break;
        }
    }
    Fit { beta, mu, dev }
}

/// Cox-Reid adjusted profile log-likelihood (`adjustedProfileLik`, `compute_apl`).
pub(super) fn apl(y: &[f64], fit: &Fit, d: &Design, phi: f64) -> f64 {
    let r = 1.0 / phi;
    let mut ll = 0.0;
    let mut xtwx = vec![0.0; d.p * d.p];
    for (i, (&v, &mu)) in y.iter().zip(&fit.mu).enumerate() {
        if mu == 0.0 {
            continue;
        }
        let lmr = (mu + r).ln();
        ll += v * mu.ln() - v * lmr + r * r.ln() - r * lmr + ln_gamma(v + r)
            - ln_gamma(v + 1.0)
            - ln_gamma(r);
        let w = mu / (1.0 + phi * mu);
        let row = d.row(i);
        for a in 0..d.p {
            for b in 0..d.p {
                xtwx[a * d.p + b] += row[a] * w * row[b];
            }
        }
    }
    // LDL' diagonal: log det, tiny pivots replaced by 1e-10 (edgeR's low_value).
    let p = d.p;
    let mut m = xtwx;
    let mut logdet = 0.0;
    for k in 0..p {
        let piv = m[k * p + k];
        logdet += if piv < 1e-10 || !piv.is_finite() {
            1e-10f64.ln()
        } else {
            piv.ln()
        };
        if piv.abs() > 0.0 {
            for i in k + 1..p {
                let f = m[i * p + k] / piv;
                for j in k + 1..p {
                    m[i * p + j] -= f * m[k * p + j];
                }
            }
        }
    }
    ll - 0.5 * logdet
}

/// `addPriorCount`: counts plus `prior * lib / mean(lib)`, offsets `log(lib + 2 prior_adj)`.
pub(super) fn add_prior(y: &[f64], lib: &[f64], prior: f64) -> (Vec<f64>, Vec<f64>) {
    let mean = lib.iter().sum::<f64>() / lib.len() as f64;
    let adj: Vec<f64> = lib.iter().map(|l| prior * l / mean).collect();
    let yy = y.iter().zip(&adj).map(|(v, a)| v + a).collect();
    let off = lib
        .iter()
        .zip(&adj)
        .map(|(l, a)| (l + 2.0 * a).ln())
        .collect();
    (yy, off)
}

/// `aveLogCPM` of one row (prior count 2).
pub(super) fn ave_log_cpm(y: &[f64], lib: &[f64], phi: f64) -> f64 {
    let (yy, off) = add_prior(y, lib, 2.0);
    (one_group(&yy, &off, phi) + 1e6f64.ln()) / std::f64::consts::LN_2
}

/// Zero-fit mask (`counts < 1e-4 & fitted < 1e-4`).
pub(super) fn zero_fit(y: &[f64], mu: &[f64]) -> Vec<bool> {
    y.iter()
        .zip(mu)
        .map(|(&v, &m)| v < 1e-4 && m < 1e-4)
        .collect()
}

/// `.residDF`: residual degrees of freedom after removing zero fits.
pub(super) fn resid_df(zero: &[bool], d: &Design) -> f64 {
    let nz = zero.iter().filter(|&&z| z).count();
    if nz == 0 {
        return (d.n - d.p) as f64;
    }
    if nz == d.n {
        return 0.0;
    }
    let libs: Vec<usize> = (0..d.n).filter(|&i| !zero[i]).collect();
    let m: Vec<f64> = libs.iter().flat_map(|&i| d.row(i).to_vec()).collect();
    (libs.len() as f64 - rank(&m, libs.len(), d.p) as f64).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn deviance_is_zero_at_the_data_and_fits_agree() {
        assert!(unit_deviance(7.0, 7.0, 0.1).abs() < 1e-12);
        assert!(unit_deviance(0.0, 0.0, 0.1).abs() < 1e-12);
        // The same model space as a one-way layout and as a crossed design with a covariate
        // that has no effect: the condition coefficient agrees.
        let y = [12.0, 30.0, 15.0, 40.0];
        let off = [0.0, 0.1, -0.1, 0.05];
        let oneway =
            Design::new(array![[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 1.0]].view()).unwrap();
        assert!(oneway.oneway.is_some());
        let a = glm_fit(&y, &oneway, &off, 0.05);
        let crossed = Design::new(
            array![
                [1.0, 0.0, 0.0],
                [1.0, 1.0, 1.0],
                [1.0, 1.0, 0.0],
                [1.0, 0.0, 1.0]
            ]
            .view(),
        )
        .unwrap();
        assert!(crossed.oneway.is_none());
        let b = glm_fit(&y, &crossed, &off, 0.05);
        assert!(b.dev <= a.dev + 1e-9);
        assert!(Design::new(array![[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]].view()).is_err());
    }
}
