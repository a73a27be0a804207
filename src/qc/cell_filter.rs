//! The cell filter: fixed bounds (Scanpy's `filter_cells`) and the robust MAD outlier filter
//! (scuttle's `isOutlier` / `perCellQCFilters`), from per-cell metrics alone.

use super::{FilterOptions, QcMetrics};
use crate::error::{Error, Result};
use crate::stats::median_in_place as median;
use std::collections::HashMap;

/// The robust outlier filter (scuttle `perCellQCFilters` / OSCA).
#[derive(Debug, Clone, PartialEq)]
pub struct MadOptions {
    /// Number of scaled MADs beyond the median that makes an outlier. Default 3 (scuttle).
    pub nmads: f64,
    /// Use `ln` of total counts and of genes detected (lower side). Default `true` (scuttle's
    /// `log = TRUE`; the base does not change which cells are outliers).
    pub log: bool,
    /// Also flag cells whose `pct_counts_mt` is above `median + nmads * MAD` (upper side, linear
    /// scale). Default `true`.
    pub mito: bool,
    /// Compute medians and MADs per sample (`cells.sample`) when there are several samples
    /// (scuttle's `batch`). Default `true`.
    pub per_sample: bool,
}

impl Default for MadOptions {
    fn default() -> Self {
        MadOptions {
            nmads: 3.0,
            log: true,
            mito: true,
            per_sample: true,
        }
    }
}

/// Why a cell or a gene was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Fewer genes than `min_genes`.
    MinGenes,
    /// More genes than `max_genes`.
    MaxGenes,
    /// Fewer counts than `min_counts`.
    MinCounts,
    /// More counts than `max_counts`.
    MaxCounts,
    /// % mito above `max_pct_mito`.
    MaxPctMito,
    /// Total counts below the sample's median minus nmads MADs.
    MadLowCounts,
    /// Genes detected below the sample's median minus nmads MADs.
    MadLowGenes,
    /// % mito above the sample's median plus nmads MADs.
    MadHighMito,
    /// Gene detected in fewer than `min_cells` of the kept cells.
    MinCells,
    /// Predicted doublet (the pipeline's doublet step, after the QC filters).
    Doublet,
}

/// The cell reasons in the order they are checked.
const CELL_REASONS: [Reason; 8] = [
    Reason::MinGenes,
    Reason::MaxGenes,
    Reason::MinCounts,
    Reason::MaxCounts,
    Reason::MaxPctMito,
    Reason::MadLowCounts,
    Reason::MadLowGenes,
    Reason::MadHighMito,
];

/// Thresholds of one sample from the MAD filter, for a report.
#[derive(Debug, Clone, PartialEq)]
pub struct MadThresholds {
    /// Sample name.
    pub sample: String,
    /// Lowest kept total counts (back-transformed from log when `log`).
    pub min_counts: f64,
    /// Lowest kept number of genes (back-transformed from log when `log`).
    pub min_genes: f64,
    /// Highest kept % mito (NaN when `mito` is off).
    pub max_pct_mito: f64,
}

/// `(median, 1.4826 * median(|x - median|))`, as R's `mad`. NaN values are dropped (R's
/// `na.rm = TRUE` in scuttle).
fn median_mad(x: &[f64]) -> (f64, f64) {
    let mut v: Vec<f64> = x.iter().copied().filter(|a| !a.is_nan()).collect();
    let med = median(&mut v);
    for a in v.iter_mut() {
        *a = (*a - med).abs();
    }
    (med, 1.4826 * median(&mut v))
}

/// Which cells pass the cell filters of [`filter`](super::filter).
#[derive(Debug, Clone, PartialEq)]
pub struct CellFilter {
    /// Indices of the kept cells, increasing.
    pub keep_cells: Vec<usize>,
    /// Removed cells with the first reason that removed each.
    pub removed_cells: Vec<(usize, Reason)>,
    /// Cells failing each criterion (a cell may count under several).
    pub cell_summary: Vec<(Reason, usize)>,
    /// Per-sample MAD thresholds (empty without `mad`).
    pub mad_thresholds: Vec<MadThresholds>,
}

/// The cell part of [`filter`](super::filter) from per-cell metrics alone (`m`'s per-cell vectors and the
/// sample of every cell), so that a caller that computed the metrics block by block (the
/// streamed pipeline) applies exactly the same rules. Gene vectors of `m` are not used.
pub fn filter_cells_by_metrics(
    m: &QcMetrics,
    samples: &[String],
    opts: &FilterOptions,
) -> Result<CellFilter> {
    opts.validate()?;
    let n = m.total_counts.len();
    if samples.len() != n {
        return Err(Error::data(
            "cell filter",
            format!("{} sample names for {n} cells", samples.len()),
        ));
    }
    let mut fails: Vec<[bool; 8]> = vec![[false; 8]; n];
    for (i, f) in fails.iter_mut().enumerate() {
        let fixed = opts.fixed_fails(
            m.total_counts[i],
            m.n_genes_by_counts[i],
            m.pct_counts_mt[i],
        );
        f[..5].copy_from_slice(&fixed);
    }
    let mut mad_thresholds = Vec::new();
    if let Some(mo) = &opts.mad {
        // Group cells by sample, in order of first appearance.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        if mo.per_sample {
            let mut pos: HashMap<&str, usize> = HashMap::new();
            for (i, s) in samples.iter().enumerate() {
                let k = *pos.entry(s.as_str()).or_insert_with(|| {
                    groups.push((s.clone(), Vec::new()));
                    groups.len() - 1
                });
                groups[k].1.push(i);
            }
        }
        if groups.len() <= 1 {
            let name = samples.first().cloned().unwrap_or_default();
            groups = vec![(
                if mo.per_sample { name } else { "all".into() },
                (0..n).collect(),
            )];
        }
        let tr = |v: f64| if mo.log { v.ln() } else { v };
        let back = |v: f64| if mo.log { v.exp() } else { v };
        for (name, idx) in &groups {
            let lt: Vec<f64> = idx.iter().map(|&i| tr(m.total_counts[i])).collect();
            let lg: Vec<f64> = idx
                .iter()
                .map(|&i| tr(m.n_genes_by_counts[i] as f64))
                .collect();
            let (mt_, st) = median_mad(&lt);
            let (mg, sg) = median_mad(&lg);
            let lo_t = mt_ - mo.nmads * st;
            let lo_g = mg - mo.nmads * sg;
            let hi_p = if mo.mito {
                let pm: Vec<f64> = idx.iter().map(|&i| m.pct_counts_mt[i]).collect();
                let (mp, sp) = median_mad(&pm);
                mp + mo.nmads * sp
            } else {
                f64::NAN
            };
            for (k, &i) in idx.iter().enumerate() {
                fails[i][5] = lt[k] < lo_t;
                fails[i][6] = lg[k] < lo_g;
                fails[i][7] = mo.mito && m.pct_counts_mt[i] > hi_p;
            }
            mad_thresholds.push(MadThresholds {
                sample: name.clone(),
                min_counts: back(lo_t),
                min_genes: back(lo_g),
                max_pct_mito: hi_p,
            });
        }
    }
    let mut removed_cells = Vec::new();
    let mut keep_cells = Vec::with_capacity(n);
    let mut counts = [0usize; 8];
    for (i, f) in fails.iter().enumerate() {
        for k in 0..8 {
            counts[k] += f[k] as usize;
        }
        match f.iter().position(|&b| b) {
            Some(k) => removed_cells.push((i, CELL_REASONS[k])),
            None => keep_cells.push(i),
        }
    }
    let cell_summary = CELL_REASONS
        .iter()
        .zip(counts)
        .filter(|(_, c)| *c > 0)
        .map(|(r, c)| (*r, c))
        .collect();

    Ok(CellFilter {
        keep_cells,
        removed_cells,
        cell_summary,
        mad_thresholds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_like_r() {
        // R: median(c(1,2,3,4,100)) = 3; mad = 1.4826 * median(c(2,1,0,1,97)) = 1.4826
        assert_eq!(median_mad(&[1.0, 2.0, 3.0, 4.0, 100.0]), (3.0, 1.4826));
        // even count: median(c(1,2,4,10)) = 3, deviations 2,1,1,7 -> 1.5
        let (m, s) = median_mad(&[10.0, 1.0, 2.0, 4.0]);
        assert_eq!(m, 3.0);
        assert!((s - 1.5 * 1.4826).abs() < 1e-12);
    }
}
