//! Scrublet's corrected doublet score (module docs of [`super`], step 8).

/// Scrublet's corrected doublet score and its standard error for `nd` simulated cells among
/// `nk` neighbours (module docs, step 8; the operations in Scanpy's order).
pub(super) fn score(nd: f64, nk: f64, rho: f64, r: f64, se_rho: f64) -> (f64, f64) {
    let q = (nd + 1.0) / (nk + 2.0);
    let denom = 1.0 - rho - q * (1.0 - rho - rho / r);
    let ld = q * rho / r / denom;
    let se_q = (q * (1.0 - q) / (nk + 3.0)).sqrt();
    let se_ld = q * rho / r / (denom * denom)
        * ((se_q / q * (1.0 - rho)).powi(2) + (se_rho / rho * (1.0 - q)).powi(2)).sqrt();
    (ld, se_ld)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_increases_with_simulated_neighbours() {
        let s: Vec<f64> = (0..=30)
            .map(|d| score(d as f64, 30.0, 0.05, 2.0, 0.02).0)
            .collect();
        assert!(s.windows(2).all(|w| w[1] > w[0]));
        // q = 1/32: ld = q rho / r / (1 - rho - q (1 - rho - rho / r))
        let q = 1.0 / 32.0;
        let want = q * 0.05 / 2.0 / (1.0 - 0.05 - q * (1.0 - 0.05 - 0.025));
        assert!((s[0] - want).abs() < 1e-15);
        let (_, se) = score(5.0, 30.0, 0.05, 2.0, 0.02);
        assert!(se > 0.0 && se.is_finite());
    }
}
