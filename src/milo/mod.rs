//! Differential abundance on kNN neighbourhoods: Milo (Dann, Henderson, Teichmann, Morgan
//! and Marioni 2022, "Differential abundance testing on single-cell data using k-nearest
//! neighbor graphs", Nature Biotechnology 40:245-253), as the R package miloR
//! (`makeNhoods`, `countCells`, `testNhoods`, `graphSpatialFDR`; github.com/MarioniLab/miloR)
//! runs it with its defaults.
//!
//! 1. [`make_neighbourhoods`]: refined sampling of index cells and their neighbourhoods in
//!    the kNN graph ([`sampling`]).
//! 2. [`count_cells`]: cells of each sample in each neighbourhood.
//! 3. [`edger::ql_test`]: edgeR's TMM + negative binomial GLM + quasi-likelihood F-test of
//!    the condition, design `~ covariate + condition` (miloR tests the last coefficient);
//!    log fold changes in log2.
//! 4. [`spatial_fdr::spatial_fdr`]: weighted BH with weights `1 / k-distance`.
//!
//! [`milo`] runs the four steps; [`summarize_by_cluster`] gives, per cluster of the index
//! cells, the number of neighbourhoods and the shares significantly up and down.

pub mod edger;
pub mod sampling;
pub mod spatial_fdr;
mod squeeze;

pub use sampling::{make_neighbourhoods, neighbourhoods_from_index_cells, refine_index_cells};

use crate::error::{Error, Result};
use crate::neighbors::Knn;
use ndarray::{Array2, ArrayView2};

/// Options of [`milo`] and [`make_neighbourhoods`].
#[derive(Debug, Clone, PartialEq)]
pub struct MiloOptions {
    /// Share of cells drawn as candidate index cells. Default 0.1 (miloR's `prop`).
    pub prop: f64,
    /// Neighbours (the cell itself not counted) whose median position refines a drawn cell.
    /// Default 0 = all of the kNN table's, `n_neighbors - 1` (miloR: the `k` of `makeNhoods`,
    /// usually the graph's).
    pub k: usize,
    /// Spatial FDR threshold of [`summarize_by_cluster`] and [`Milo::n_significant`].
    /// Default 0.1.
    pub alpha: f64,
    /// Seed of the random draw of cells. Default 0.
    pub seed: u64,
    /// Fewest samples in each condition; fewer is an error (no replicates, no test).
    /// Default 2 (at least 2, the least that gives a dispersion).
    pub min_samples_per_condition: usize,
}

impl Default for MiloOptions {
    fn default() -> Self {
        MiloOptions {
            prop: 0.1,
            k: 0,
            alpha: 0.1,
            seed: 0,
            min_samples_per_condition: 2,
        }
    }
}

impl MiloOptions {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if !(self.prop > 0.0 && self.prop <= 1.0) {
            return Err(Error::option(
                "prop",
                format!("{} is not in (0, 1]", self.prop),
            ));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Error::option(
                "alpha",
                format!("{} is not in (0, 1)", self.alpha),
            ));
        }
        if self.min_samples_per_condition < 2 {
            return Err(Error::option(
                "min_samples_per_condition",
                "must be at least 2 (replicates are needed)",
            ));
        }
        Ok(())
    }
}

/// Neighbourhoods: index cells, member cells (sorted, index cell included) and k-distances.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbourhoods {
    /// Index cell of each neighbourhood.
    pub index_cells: Vec<usize>,
    /// Cells of each neighbourhood, increasing.
    pub members: Vec<Vec<u32>>,
    /// Distance from the index cell to its farthest kNN neighbour (spatial FDR weight `1/d`).
    pub kth_distance: Vec<f64>,
}

/// Neighbourhoods x samples counts of cells (miloR's `countCells`). Cells whose sample code
/// is `n_samples` or more are not counted ([`milo`] rejects them before).
pub fn count_cells(n: &Neighbourhoods, sample_of_cell: &[u32], n_samples: usize) -> Array2<f64> {
    let mut c = Array2::zeros((n.members.len(), n_samples));
    for (h, m) in n.members.iter().enumerate() {
        for &cell in m {
            if let Some(&s) = sample_of_cell.get(cell as usize) {
                if (s as usize) < n_samples {
                    c[[h, s as usize]] += 1.0;
                }
            }
        }
    }
    c
}

/// One neighbourhood's test.
#[derive(Debug, Clone, PartialEq)]
pub struct DaRow {
    /// Neighbourhood number (0-based).
    pub nhood: usize,
    /// Its index cell.
    pub index_cell: usize,
    /// Its number of cells.
    pub size: usize,
    /// Log2 fold change, condition 1 over condition 0.
    pub log_fc: f64,
    /// QL F-test p-value.
    pub p_value: f64,
    /// Spatial FDR.
    pub spatial_fdr: f64,
}

/// Result of [`milo`].
#[derive(Debug, Clone, PartialEq)]
pub struct Milo {
    /// One row per neighbourhood.
    pub rows: Vec<DaRow>,
    /// The neighbourhoods.
    pub neighbourhoods: Neighbourhoods,
    /// Neighbourhoods x samples counts.
    pub counts: Array2<f64>,
    /// The edgeR fit (norm factors, dispersions, F statistics).
    pub test: edger::QlTest,
    /// The threshold used by [`Milo::n_significant`] (`MiloOptions::alpha`).
    pub alpha: f64,
}

impl Milo {
    /// Neighbourhoods with spatial FDR below `alpha`.
    pub fn n_significant(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.spatial_fdr < self.alpha)
            .count()
    }
}

/// Design `[1, covariate dummies..., condition]` (covariate as a factor, smallest level the
/// reference). Errors for codes other than 0/1 or too few samples per condition.
pub fn design_matrix(
    condition_of_sample: &[u32],
    covariate: Option<&[u32]>,
    min_per_condition: usize,
) -> Result<Array2<f64>> {
    let ns = condition_of_sample.len();
    if let Some(&c) = condition_of_sample.iter().find(|&&c| c > 1) {
        return Err(Error::data(
            "milo",
            format!("condition code {c}: codes are 0 (reference) and 1"),
        ));
    }
    for code in 0..2u32 {
        let k = condition_of_sample.iter().filter(|&&c| c == code).count();
        if k < min_per_condition {
            return Err(Error::data("milo", format!("condition {code} has {k} sample(s); at least {min_per_condition} per condition are needed (no replicates, no test)")));
        }
    }
    let mut levels: Vec<u32> = covariate.map(|c| c.to_vec()).unwrap_or_default();
    if let Some(c) = covariate {
        if c.len() != ns {
            return Err(Error::data(
                "milo",
                format!("{} covariate values for {ns} samples", c.len()),
            ));
        }
    }
    levels.sort_unstable();
    levels.dedup();
    let extra = levels.len().saturating_sub(1);
    let mut x = Array2::zeros((ns, 2 + extra));
    for s in 0..ns {
        x[[s, 0]] = 1.0;
        if let Some(c) = covariate {
            if let Some(l) = levels.iter().position(|&v| v == c[s]).filter(|&l| l > 0) {
                x[[s, l]] = 1.0;
            }
        }
        x[[s, 1 + extra]] = f64::from(condition_of_sample[s]);
    }
    Ok(x)
}

/// Milo: neighbourhoods, counts, edgeR QL test of the condition and spatial FDR.
///
/// `sample_of_cell`: sample code (`0..n_samples`) of each cell; `condition_of_sample`: 0 or 1
/// per sample (1 = numerator of the fold change); `covariate`: an optional extra factor per
/// sample (e.g. a batch), placed before the condition in the design.
///
/// Errors: bad options; inconsistent inputs; fewer than `min_samples_per_condition` samples
/// in a condition (no replicates: the caller reports the test as skipped); a sample with no
/// cells; a covariate confounded with the condition (design not of full rank).
pub fn milo(
    embedding: ArrayView2<f32>,
    knn: &Knn,
    sample_of_cell: &[u32],
    condition_of_sample: &[u32],
    covariate: Option<&[u32]>,
    opts: &MiloOptions,
) -> Result<Milo> {
    opts.validate()?;
    sampling::check_inputs(embedding, knn)?;
    let ns = condition_of_sample.len();
    if sample_of_cell.len() != knn.n_cells() {
        return Err(Error::data(
            "milo",
            format!(
                "{} sample codes for {} cells",
                sample_of_cell.len(),
                knn.n_cells()
            ),
        ));
    }
    if let Some(&s) = sample_of_cell.iter().find(|&&s| s as usize >= ns) {
        return Err(Error::data(
            "milo",
            format!("sample code {s} but {ns} samples have a condition"),
        ));
    }
    let design = design_matrix(
        condition_of_sample,
        covariate,
        opts.min_samples_per_condition,
    )?;
    let nh = make_neighbourhoods(embedding, knn, opts)?;
    let counts = count_cells(&nh, sample_of_cell, ns);
    let test = edger::ql_test(counts.view(), design.view())?;
    let sfdr = spatial_fdr::spatial_fdr(&test.p_value, &nh.kth_distance);
    let rows = (0..nh.index_cells.len())
        .map(|h| DaRow {
            nhood: h,
            index_cell: nh.index_cells[h],
            size: nh.members[h].len(),
            log_fc: test.log_fc[h],
            p_value: test.p_value[h],
            spatial_fdr: sfdr[h],
        })
        .collect();
    Ok(Milo {
        rows,
        neighbourhoods: nh,
        counts,
        test,
        alpha: opts.alpha,
    })
}

/// Per-cluster summary of a Milo result.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterDa {
    /// Cluster code.
    pub cluster: u32,
    /// Neighbourhoods whose index cell is in the cluster.
    pub n_nhoods: usize,
    /// Share of them with spatial FDR below alpha and positive log fold change.
    pub frac_up: f64,
    /// Share of them with spatial FDR below alpha and negative log fold change.
    pub frac_down: f64,
}

/// For each cluster `0..n_clusters` (the cluster of the index cell): number of neighbourhoods
/// and shares significantly up and down at spatial FDR `< alpha` (0 when it has none).
/// Neighbourhoods whose index cell has no cluster code below `n_clusters` are left out.
pub fn summarize_by_cluster(
    m: &Milo,
    cluster_of_cell: &[u32],
    n_clusters: usize,
    alpha: f64,
) -> Vec<ClusterDa> {
    let mut tally = vec![(0usize, 0usize, 0usize); n_clusters];
    for r in &m.rows {
        let Some(&c) = cluster_of_cell.get(r.index_cell) else {
            continue;
        };
        let Some(t) = tally.get_mut(c as usize) else {
            continue;
        };
        t.0 += 1;
        if r.spatial_fdr < alpha {
            if r.log_fc > 0.0 {
                t.1 += 1;
            } else if r.log_fc < 0.0 {
                t.2 += 1;
            }
        }
    }
    tally
        .iter()
        .enumerate()
        .map(|(c, &(n, up, down))| {
            let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
            ClusterDa {
                cluster: c as u32,
                n_nhoods: n,
                frac_up: share(up),
                frac_down: share(down),
            }
        })
        .collect()
}

/// A [`Knn`] table from plain neighbour lists (each the same length, the cell itself not
/// needed): the cell is put first and the others sorted by their distance in `embedding`.
pub fn knn_from_indices(embedding: ArrayView2<f32>, lists: &[Vec<u32>]) -> Result<Knn> {
    let n = embedding.nrows();
    if lists.len() != n {
        return Err(Error::data(
            "milo",
            format!("{} neighbour lists for {n} cells", lists.len()),
        ));
    }
    let mut rows: Vec<Vec<(f32, u32)>> = Vec::with_capacity(n);
    for (i, l) in lists.iter().enumerate() {
        let mut r: Vec<(f32, u32)> = Vec::with_capacity(l.len() + 1);
        r.push((0.0, i as u32));
        for &j in l.iter().filter(|&&j| j as usize != i) {
            if j as usize >= n {
                return Err(Error::data(
                    "milo",
                    format!("cell {i}: neighbour {j} is out of range ({n} cells)"),
                ));
            }
            let d: f64 = embedding
                .row(i)
                .iter()
                .zip(embedding.row(j as usize))
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                .sum();
            r.push((d.sqrt() as f32, j));
        }
        r[1..].sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        rows.push(r);
    }
    let k = rows.first().map_or(0, |r| r.len());
    if rows.iter().any(|r| r.len() != k) {
        return Err(Error::data("milo", "neighbour lists of different lengths"));
    }
    Ok(Knn {
        n_neighbors: k,
        indices: rows.iter().flat_map(|r| r.iter().map(|x| x.1)).collect(),
        distances: rows.iter().flat_map(|r| r.iter().map(|x| x.0)).collect(),
    })
}
