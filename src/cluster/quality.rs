//! Clustering quality: modularity of a partition of a graph, and agreement between two
//! labelings (adjusted Rand index, normalized mutual information).

use super::validate_graph;
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use std::collections::HashMap;

/// Modularity with resolution `gamma` of the partition `labels` of a symmetric weighted graph:
///
/// `Q = 1/(2m) sum_ij (A_ij - gamma k_i k_j / 2m) delta(c_i, c_j)`, `k_i = sum_j A_ij`,
/// `2m = sum_ij A_ij`.
///
/// This is igraph's `Graph.modularity(membership, weights, resolution)` and leidenalg's
/// `RBConfigurationVertexPartition.quality(resolution) / 2m` (for graphs without self-loops;
/// a stored diagonal entry `A_ii` counts once here). A graph without edges has `Q = 0`.
/// Labels can be any `u32` values.
pub fn modularity(graph: &CsrMatrix, labels: &[u32], resolution: f64) -> Result<f64> {
    let (dense, k) = check_partition("modularity", graph, labels, resolution)?;
    Ok(super::leiden::modularity_value(
        graph, &dense, k, resolution,
    ))
}

/// Constant Potts Model quality with resolution `gamma` of the partition `labels` of a
/// symmetric weighted graph (Traag, Van Dooren and Nesterov 2011), unit node sizes:
///
/// `H = sum_c [ sum_{i,j in c} A_ij - gamma n_c (n_c - 1) ]`,
///
/// the objective of [`leiden`](fn@super::leiden) with [`Objective::Cpm`](super::Objective::Cpm).
/// For graphs without self-loops this is leidenalg's `CPMVertexPartition.quality()` (which
/// counts each edge once and `n_c (n_c - 1) / 2` pairs, then doubles the sum for undirected
/// graphs). Labels can be any `u32` values.
pub fn cpm(graph: &CsrMatrix, labels: &[u32], resolution: f64) -> Result<f64> {
    let (dense, k) = check_partition("cpm", graph, labels, resolution)?;
    Ok(super::leiden::cpm_value(graph, &dense, k, resolution))
}

/// Checks the graph, one label per node and a finite resolution; returns the labels as
/// `0..k` and `k`.
fn check_partition(
    what: &str,
    graph: &CsrMatrix,
    labels: &[u32],
    resolution: f64,
) -> Result<(Vec<u32>, usize)> {
    validate_graph(graph, what)?;
    if labels.len() != graph.n_rows() {
        return Err(Error::data(
            what,
            format!(
                "{} labels for a graph of {} nodes",
                labels.len(),
                graph.n_rows()
            ),
        ));
    }
    if !resolution.is_finite() {
        return Err(Error::option("resolution", "must be finite"));
    }
    Ok(dense_labels(labels))
}

/// Maps arbitrary labels to `0..k` in order of first appearance.
fn dense_labels(labels: &[u32]) -> (Vec<u32>, usize) {
    let mut map: HashMap<u32, u32> = HashMap::new();
    let out = labels
        .iter()
        .map(|&l| {
            let next = map.len() as u32;
            *map.entry(l).or_insert(next)
        })
        .collect();
    (out, map.len())
}

/// Contingency table of two labelings: (counts by (a, b) as a dense ka x kb table, row sums,
/// column sums).
fn contingency(a: &[u32], b: &[u32], what: &str) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    if a.len() != b.len() {
        return Err(Error::data(
            what,
            format!(
                "labelings have different lengths ({} and {})",
                a.len(),
                b.len()
            ),
        ));
    }
    if a.is_empty() {
        return Err(Error::data(what, "labelings are empty"));
    }
    let (da, ka) = dense_labels(a);
    let (db, kb) = dense_labels(b);
    let mut table = vec![0.0f64; ka * kb];
    let mut ra = vec![0.0f64; ka];
    let mut rb = vec![0.0f64; kb];
    for (&x, &y) in da.iter().zip(&db) {
        table[x as usize * kb + y as usize] += 1.0;
        ra[x as usize] += 1.0;
        rb[y as usize] += 1.0;
    }
    Ok((table, ra, rb))
}

/// Adjusted Rand index (Hubert and Arabie 1985) between two labelings of the same items, as
/// `sklearn.metrics.adjusted_rand_score`: `(sum_ij C(n_ij,2) - E) / (max - E)` with
/// `E = sum_i C(a_i,2) sum_j C(b_j,2) / C(n,2)` and `max = (sum_i C(a_i,2) + sum_j C(b_j,2)) / 2`.
/// Like sklearn it returns 1.0 when both labelings are a single cluster or both all singletons.
pub fn adjusted_rand_index(a: &[u32], b: &[u32]) -> Result<f64> {
    let (table, ra, rb) = contingency(a, b, "adjusted_rand_index")?;
    let n = a.len() as f64;
    let c2 = |x: f64| x * (x - 1.0) / 2.0;
    let sum_ij: f64 = table.iter().map(|&x| c2(x)).sum();
    let sum_a: f64 = ra.iter().map(|&x| c2(x)).sum();
    let sum_b: f64 = rb.iter().map(|&x| c2(x)).sum();
    let total = c2(n);
    if total == 0.0 {
        return Ok(1.0);
    }
    let expected = sum_a * sum_b / total;
    let max = (sum_a + sum_b) / 2.0;
    if max == expected {
        // Both trivial (one cluster each, or all singletons each): identical partitions.
        return Ok(1.0);
    }
    Ok((sum_ij - expected) / (max - expected))
}

/// Normalized mutual information with arithmetic-mean normalization, as
/// `sklearn.metrics.normalized_mutual_info_score` (default `average_method="arithmetic"`):
/// `NMI = I(a; b) / ((H(a) + H(b)) / 2)` with natural logarithms. Returns 1.0 when both
/// labelings are a single cluster (sklearn's convention) and 0.0 when only one is.
pub fn normalized_mutual_info(a: &[u32], b: &[u32]) -> Result<f64> {
    let (table, ra, rb) = contingency(a, b, "normalized_mutual_info")?;
    let n = a.len() as f64;
    let kb = rb.len();
    if ra.len() == 1 && rb.len() == 1 {
        return Ok(1.0);
    }
    let entropy = |v: &[f64]| -> f64 {
        v.iter()
            .filter(|&&x| x > 0.0)
            .map(|&x| {
                let p = x / n;
                -p * p.ln()
            })
            .sum()
    };
    let mut mi = 0.0;
    for (i, &ai) in ra.iter().enumerate() {
        for (j, &bj) in rb.iter().enumerate() {
            let nij = table[i * kb + j];
            if nij > 0.0 {
                mi += nij / n * ((nij * n) / (ai * bj)).ln();
            }
        }
    }
    let (ha, hb) = (entropy(&ra), entropy(&rb));
    let denom = (ha + hb) / 2.0;
    if denom <= 0.0 {
        return Ok(0.0);
    }
    Ok(mi.max(0.0) / denom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ari_nmi_by_hand() {
        // Identical up to renaming.
        let a = [0, 0, 1, 1];
        let b = [5, 5, 3, 3];
        assert!((adjusted_rand_index(&a, &b).unwrap() - 1.0).abs() < 1e-15);
        assert!((normalized_mutual_info(&a, &b).unwrap() - 1.0).abs() < 1e-15);
        // a = {0,1},{2,3}; b = {0},{1,2,3}: n_ij = [[1,1],[0,2]], sum C = 1, sum_a = 2,
        // sum_b = 3, C(4,2) = 6, E = 1, max = 2.5 -> ARI = 0.
        let b = [0, 1, 1, 1];
        assert!(adjusted_rand_index(&a, &b).unwrap().abs() < 1e-15);
        assert!(adjusted_rand_index(&a, &b[..3]).is_err());
        assert!(normalized_mutual_info(&[], &[]).is_err());
    }

    #[test]
    fn modularity_by_hand() {
        // Path 0-1-2-3 with unit weights, partition {0,1},{2,3}:
        // 2m = 6, k = [1,2,2,1]; internal (both directions) 2 per side; K = 3 per side.
        let g = CsrMatrix::from_triplets(4, 4, &[0, 1, 1, 2, 2, 3], &[1, 0, 2, 1, 3, 2], &[1.0; 6])
            .unwrap();
        let q = modularity(&g, &[7, 7, 2, 2], 1.0).unwrap();
        let expect = (4.0 - 2.0 * 9.0 / 6.0) / 6.0;
        assert!((q - expect).abs() < 1e-15);
        let q2 = modularity(&g, &[7, 7, 2, 2], 2.0).unwrap();
        assert!((q2 - (4.0 - 2.0 * 2.0 * 9.0 / 6.0) / 6.0).abs() < 1e-15);
        assert!(modularity(&g, &[0, 0], 1.0).is_err());
        // CPM of the same partition: internal sum 2 per side, n_c = 2 per side.
        let h = cpm(&g, &[7, 7, 2, 2], 0.5).unwrap();
        assert!((h - 2.0 * (2.0 - 0.5 * 2.0)).abs() < 1e-15);
        assert!(cpm(&g, &[0, 0], 1.0).is_err());
    }
}
