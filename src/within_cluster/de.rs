//! Step 1 of [`super::within_cluster`]: pseudobulk DESeq2 per cluster, with the cell-level
//! Wilcoxon test as the stated fallback.

use super::{ClusterNote, Contrast, DeMethod, DeRow, WithinClusterOptions};
use crate::deseq::deseq;
use crate::error::{Error, Result};
use crate::lognorm::LogCounts;
use crate::markers::{rank_genes, RankGenesOptions, Reference};
use crate::pipeline::Analysis;
use crate::pseudobulk::pseudobulk_sums;
use crate::stats::benjamini_hochberg;
use ndarray::Array2;

/// DE rows and notes of all clusters.
pub(crate) struct Tested {
    pub de: Vec<DeRow>,
    pub notes: Vec<ClusterNote>,
}

/// Runs step 1 for clusters `0..n_clusters`.
pub(crate) fn cluster_de(
    a: &Analysis,
    con: &Contrast,
    n_clusters: usize,
    opts: &WithinClusterOptions,
) -> Result<Tested> {
    let d = a.dataset();
    let labels = &a.clustering.labels;
    let pb = pseudobulk_sums(&d.counts, &con.sample, labels)?;
    let side_of = |s: u32| con.side.get(s as usize).copied().flatten();
    let mut out = Tested {
        de: Vec::new(),
        notes: Vec::new(),
    };
    for c in 0..n_clusters as u32 {
        // Cells of the cluster on each side.
        let mut cells = [Vec::new(), Vec::new()]; // [denominator, numerator]
        for (i, (&l, &s)) in labels.iter().zip(&con.sample).enumerate() {
            if l == c {
                if let Some(num) = side_of(s) {
                    cells[num as usize].push(i);
                }
            }
        }
        if cells[0].is_empty() || cells[1].is_empty() {
            let (has, lacks) = if cells[1].is_empty() {
                (&con.denominator, &con.numerator)
            } else {
                (&con.numerator, &con.denominator)
            };
            let note = if cells[0].is_empty() && cells[1].is_empty() {
                format!(
                    "cluster {c} has no cells of {} or {}; not tested",
                    con.numerator, con.denominator
                )
            } else {
                format!(
                    "cluster {c} has cells of {has} only (none of {lacks}): it is specific to a \
                     condition, which the composition tests report; no within-cluster test"
                )
            };
            out.notes.push(ClusterNote {
                cluster: c,
                method: None,
                note,
            });
            continue;
        }
        // Pseudobulk samples kept: this cluster, a contrast condition, >= min_cells cells.
        let mut kept = Vec::new();
        let mut condition = Vec::new();
        for (p, &(s, cl)) in pb.keys.iter().enumerate() {
            if cl != c || pb.n_cells.get(p).copied().unwrap_or(0) < opts.min_cells {
                continue;
            }
            if let Some(num) = side_of(s) {
                kept.push(p);
                condition.push(u32::from(num));
            }
        }
        let k1 = condition.iter().filter(|&&x| x == 1).count();
        let k0 = condition.len() - k1;
        let mut fallback_reason = None;
        if k1 >= 2 && k0 >= 2 {
            match deseq_cluster(a, &pb.sums, &kept, &condition, c, (k1, k0), opts) {
                Ok(rows) => {
                    out.de.extend(rows);
                    continue;
                }
                Err(Error::InvalidData { message, .. }) => {
                    fallback_reason = Some(format!("DESeq2 could not be run ({message})"));
                }
                Err(e) => return Err(e),
            }
        }
        if cells[0].len() < 2 || cells[1].len() < 2 {
            out.notes.push(ClusterNote {
                cluster: c,
                method: None,
                note: format!(
                    "cluster {c} has {} cell(s) of {} and {} of {}; at least 2 on each side are \
                     needed for any test; not tested",
                    cells[1].len(),
                    con.numerator,
                    cells[0].len(),
                    con.denominator
                ),
            });
            continue;
        }
        let reason = fallback_reason.unwrap_or_else(|| {
            format!(
                "{} has {k1} and {} has {k0} pseudobulk sample(s) of at least {} cells, and \
                 DESeq2 needs 2 per condition",
                con.numerator, con.denominator, opts.min_cells
            )
        });
        out.notes.push(ClusterNote {
            cluster: c,
            method: Some(DeMethod::WilcoxonCells),
            note: format!(
                "cluster {c}: {reason}, so genes were tested cell by cell with the Wilcoxon \
                 rank-sum test ({} against {} cells). Its p-values treat cells as independent \
                 replicates and overstate the evidence: a difference between the conditions \
                 cannot be told apart from a difference between samples",
                cells[1].len(),
                cells[0].len()
            ),
        });
        out.de
            .extend(wilcoxon_cluster(a, con, c, &cells[1], &cells[0])?);
    }
    Ok(out)
}

/// DESeq2 on the kept pseudobulk samples of cluster `c`, genes with a zero total dropped.
fn deseq_cluster(
    a: &Analysis,
    sums: &Array2<f64>,
    kept: &[usize],
    condition: &[u32],
    c: u32,
    (k1, k0): (usize, usize),
    opts: &WithinClusterOptions,
) -> Result<Vec<DeRow>> {
    let names = &a.dataset().genes.symbols;
    let n_genes = sums.ncols();
    let genes: Vec<usize> = (0..n_genes)
        .filter(|&g| {
            kept.iter()
                .any(|&p| sums.get((p, g)).is_some_and(|&v| v > 0.0))
        })
        .collect();
    if genes.is_empty() {
        return Err(Error::data(
            format!("cluster {c}"),
            "no gene has a count in the kept pseudobulk samples",
        ));
    }
    let mut m = Array2::<f64>::zeros((kept.len(), genes.len()));
    for (j, &p) in kept.iter().enumerate() {
        for (k, &g) in genes.iter().enumerate() {
            m[[j, k]] = sums.get((p, g)).copied().unwrap_or(0.0);
        }
    }
    let r = deseq(m.view(), condition, None, &opts.deseq)?;
    Ok(r.rows
        .iter()
        .zip(&genes)
        .map(|(row, &g)| DeRow {
            cluster: c,
            gene: names.get(g).cloned().unwrap_or_default(),
            base_mean: row.base_mean,
            log2_fold_change: row.log2_fold_change,
            lfc_se: row.lfc_se,
            p_value: row.p_value,
            p_adjusted: row.p_adjusted,
            method: DeMethod::Deseq2,
            samples_numerator: k1,
            samples_denominator: k0,
        })
        .collect())
}

/// The cell-level Wilcoxon test of cluster `c`: numerator cells `num` against denominator
/// cells `den`, on the log-normalized values; genes without a count in these cells dropped;
/// Benjamini-Hochberg over the genes kept.
fn wilcoxon_cluster(
    a: &Analysis,
    con: &Contrast,
    c: u32,
    num: &[usize],
    den: &[usize],
) -> Result<Vec<DeRow>> {
    let d = a.dataset();
    let names = &d.genes.symbols;
    let rows: Vec<usize> = num.iter().chain(den).copied().collect();
    let sub = d.counts.select_rows(&rows)?;
    let sf: Vec<f32> = rows
        .iter()
        .map(|&i| a.size_factors.get(i).copied().unwrap_or(1.0))
        .collect();
    let log = LogCounts::new(&sub, &sf)?;
    let groups: Vec<u32> = (0..rows.len()).map(|i| u32::from(i >= num.len())).collect();
    let r = rank_genes(
        &log,
        &groups,
        &RankGenesOptions {
            reference: Reference::Group(1),
            groups: Some(vec![0]),
            pts: false,
            ..Default::default()
        },
    )?;
    let Some(g) = r.groups.first() else {
        return Err(Error::data(
            format!("cluster {c}"),
            format!("the Wilcoxon test was not run: {}", r.warnings.join("; ")),
        ));
    };
    // Mean normalized count per cell and detection, gene by gene.
    let mut norm_sum = vec![0f64; sub.n_cols()];
    let mut detected = vec![false; sub.n_cols()];
    let (mut idx, mut val) = (Vec::new(), Vec::new());
    for (r_i, &s) in sf.iter().enumerate() {
        let s = if s == 0.0 { 1.0 } else { f64::from(s) };
        sub.row_into(r_i, &mut idx, &mut val);
        for (&j, &v) in idx.iter().zip(&val) {
            let (j, v) = (j as usize, v);
            norm_sum[j] += f64::from(v) / s;
            detected[j] |= v != 0.0;
        }
    }
    let genes: Vec<usize> = (0..sub.n_cols()).filter(|&j| detected[j]).collect();
    let p: Vec<f64> = genes
        .iter()
        .map(|&j| g.pvals.get(j).copied().unwrap_or(f64::NAN))
        .collect();
    let padj = benjamini_hochberg(&p);
    let count_samples = |cells: &[usize]| {
        let mut s: Vec<u32> = cells
            .iter()
            .filter_map(|&i| con.sample.get(i).copied())
            .collect();
        s.sort_unstable();
        s.dedup();
        s.len()
    };
    let (s1, s0) = (count_samples(num), count_samples(den));
    let n = rows.len() as f64;
    Ok(genes
        .iter()
        .zip(p.iter().zip(&padj))
        .map(|(&j, (&pv, &pa))| DeRow {
            cluster: c,
            gene: names.get(j).cloned().unwrap_or_default(),
            base_mean: norm_sum[j] / n,
            log2_fold_change: g.logfoldchanges.get(j).copied().unwrap_or(f64::NAN),
            lfc_se: f64::NAN,
            p_value: pv,
            p_adjusted: pa,
            method: DeMethod::WilcoxonCells,
            samples_numerator: s1,
            samples_denominator: s0,
        })
        .collect())
}
