//! The entry points: [`rank_genes`] on cells x genes values, [`rank_genes_csc`] on gene-major
//! values, and the body they share (groups, comparisons, accumulators, per-group results).

use super::gene_rows::{gene_row, index_groups, Comparison, GeneRowLayout, Groups, Scratch};
use super::keys::order_key;
use super::passes::gene_pass;
use super::statistics::finish;
use super::{GroupMarkers, Method, RankGenes, RankGenesOptions, Reference};
use crate::error::{Error, Result};
use crate::lognorm::MatrixValues;
use rayon::prelude::*;

/// Ranks genes for each group against the rest of the cells or a reference group, as
/// Scanpy's `tl.rank_genes_groups` (see the module docs for the formulas and the
/// differences).
///
/// `x` is the log-normalized matrix (cells x genes); `groups[i]` is the label of cell `i`.
///
/// Groups that cannot be tested (one cell, or every cell against the rest) are left out of
/// [`RankGenes::groups`] and named in [`RankGenes::warnings`]; this is not an error, so a
/// clustering with a single cluster gives an empty result. Errors: labels that do not match
/// the cells, a reference group or a requested group without cells, a reference group of one
/// cell, `NaN` values.
///
/// ```
/// # let mut sim = scrna::simulate::SimulateOptions::default();
/// # sim.n_cells = 300;
/// # sim.n_genes = 500;
/// # sim.n_clusters = 3;
/// # let data = scrna::simulate::simulate(&sim)?.dataset;
/// # let log = scrna::normalize::normalize_total_log1p(&data.counts.to_csr(), &Default::default())?.matrix;
/// # let mut h = scrna::hvg::HvgOptions::default();
/// # h.n_top_genes = Some(200);
/// # let hvg = scrna::hvg::highly_variable_genes(&log, None, None, &h)?.selected();
/// # let mut p = scrna::pca::PcaOptions::default();
/// # p.n_comps = 10;
/// # let pca = scrna::pca::pca(&log.select_cols(&hvg)?, &p)?;
/// # let knn = scrna::neighbors::knn(pca.embedding.view(), &Default::default())?;
/// # let graph = scrna::graph::umap_connectivities(&knn, data.n_cells(), &Default::default())?;
/// # let labels = scrna::cluster::leiden(&graph, &Default::default())?.labels;
/// let markers = scrna::markers::rank_genes(&log, &labels, &Default::default())?;
/// assert!(!markers.groups.is_empty());
/// # Ok::<(), scrna::Error>(())
/// ```
pub fn rank_genes<X: MatrixValues + ?Sized>(
    x: &X,
    groups: &[u32],
    opts: &RankGenesOptions,
) -> Result<RankGenes> {
    rank_genes_with_progress(x, groups, opts, &mut |_| {})
}

/// [`rank_genes`], calling `progress` with the fraction of genes done (from 0 to 1) after each
/// block of genes.
pub fn rank_genes_with_progress<X: MatrixValues + ?Sized>(
    x: &X,
    groups: &[u32],
    opts: &RankGenesOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<RankGenes> {
    let (n_cells, n_genes) = x.shape();
    rank_with(n_cells, n_genes, groups, opts, |gi, comps, lay, ranks| {
        gene_pass(x, gi, comps, lay, ranks, progress)
    })
}

/// [`rank_genes`] on gene-major (CSC) log-normalized values: the entries of gene `j` are
/// rows `cells[ptr[j]..ptr[j + 1]]` (increasing) with `values[..]`, over `n_cells` cells.
/// Wilcoxon results are identical to [`rank_genes`] on the same matrix stored by rows (each
/// gene's non-zeros are taken in cell order in both); with the t-tests the per-gene sums are
/// taken in cell order rather than in row chunks and agree to rounding (about 1e-12
/// relative). Errors as [`rank_genes`], and for column pointers or cells that do not match.
pub fn rank_genes_csc(
    n_cells: usize,
    ptr: &[usize],
    cells: &[u32],
    values: &[f32],
    groups: &[u32],
    opts: &RankGenesOptions,
) -> Result<RankGenes> {
    let n_genes = ptr.len().saturating_sub(1);
    let bad = ptr.first() != Some(&0)
        || ptr.windows(2).any(|p| p[0] > p[1])
        || ptr.last() != Some(&cells.len())
        || cells.len() != values.len()
        || cells.iter().any(|&c| c as usize >= n_cells);
    if bad {
        return Err(Error::data(
            "rank_genes",
            "column pointers, cells and values do not match",
        ));
    }
    if values.iter().any(|v| v.is_nan()) {
        return Err(Error::data("rank_genes", "the matrix holds NaN values"));
    }
    rank_with(n_cells, n_genes, groups, opts, |gi, comps, lay, ranks| {
        let w = lay.width();
        let mut acc = vec![0f64; n_genes * w];
        acc.par_chunks_mut(w)
            .enumerate()
            .for_each_init(Scratch::default, |s, (j, row)| {
                s.keys.clear();
                for e in ptr[j]..ptr[j + 1] {
                    let v = values[e];
                    if v != 0.0 {
                        let code = gi.codes[cells[e] as usize] as u64;
                        s.keys.push(((order_key(v) as u64) << 32) | code);
                    }
                }
                gene_row(row, s, lay, gi, comps, ranks);
            });
        Ok(acc)
    })
}

/// The body of [`rank_genes`] around the per-gene accumulators, which `acc_of` computes
/// (rows of [`GeneRowLayout::width`] per gene).
fn rank_with(
    n_cells: usize,
    n_genes: usize,
    groups: &[u32],
    opts: &RankGenesOptions,
    acc_of: impl FnOnce(&Groups, &[Comparison], GeneRowLayout, bool) -> Result<Vec<f64>>,
) -> Result<RankGenes> {
    if groups.len() != n_cells {
        return Err(Error::data(
            "rank_genes",
            format!("{} labels for {n_cells} cells", groups.len()),
        ));
    }
    let gi = index_groups(groups);
    let find = |label: u32| gi.labels.binary_search(&label).ok();
    let reference = match opts.reference {
        Reference::Rest => None,
        Reference::Group(r) => {
            let ri = find(r)
                .ok_or_else(|| Error::option("reference", format!("group {r} has no cells")))?;
            if gi.sizes[ri] < 2 {
                return Err(Error::option(
                    "reference",
                    format!(
                        "group {r} has {} cell(s); at least 2 are needed",
                        gi.sizes[ri]
                    ),
                ));
            }
            Some(ri)
        }
    };
    let wanted: Vec<usize> = match &opts.groups {
        None => (0..gi.labels.len()).collect(),
        Some(list) => {
            let mut v = Vec::with_capacity(list.len());
            for &l in list {
                let i = find(l)
                    .ok_or_else(|| Error::option("groups", format!("group {l} has no cells")))?;
                if !v.contains(&i) {
                    v.push(i);
                }
            }
            v
        }
    };
    let mut warnings = Vec::new();
    let mut comps = Vec::new();
    for &g in &wanted {
        if Some(g) == reference {
            continue;
        }
        if gi.sizes[g] < 2 {
            warnings.push(format!(
                "group {} skipped: {} cell(s), at least 2 are needed",
                gi.labels[g], gi.sizes[g]
            ));
            continue;
        }
        if reference.is_none() && gi.sizes[g] == n_cells {
            warnings.push(format!(
                "group {} skipped: it holds every cell, there is no rest to compare with",
                gi.labels[g]
            ));
            continue;
        }
        comps.push(Comparison {
            g,
            other: reference,
        });
    }
    let ng = gi.labels.len();
    let ranks = opts.method == Method::Wilcoxon;
    let lay = match (ranks, reference) {
        (false, _) => GeneRowLayout {
            pairwise: false,
            n_groups: ng,
            n_rank: 0,
            n_ties: 0,
        },
        (true, None) => GeneRowLayout {
            pairwise: false,
            n_groups: ng,
            n_rank: ng,
            n_ties: 1,
        },
        (true, Some(_)) => GeneRowLayout {
            pairwise: true,
            n_groups: ng,
            n_rank: comps.len(),
            n_ties: comps.len(),
        },
    };
    let acc = if comps.is_empty() {
        Vec::new()
    } else {
        acc_of(&gi, &comps, lay, ranks)?
    };
    let w = lay.width();
    let results: Vec<GroupMarkers> = comps
        .par_iter()
        .enumerate()
        .map(|(ci, cmp)| finish(&acc, w, lay, &gi, ci, *cmp, n_cells, n_genes, opts))
        .collect();
    Ok(RankGenes {
        method: opts.method,
        reference: opts.reference,
        n_genes,
        groups: results,
        warnings,
    })
}
