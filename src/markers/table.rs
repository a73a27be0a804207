//! The tidy marker table of a result ([`RankGenes::table`]) with its filters, and its CSV.

use super::{GroupMarkers, RankGenes};
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Filters of [`RankGenes::table`]; `None` disables a filter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableFilter {
    /// Keep genes expressed in at least this fraction of the group's cells. Default: `None`.
    pub min_in_group_fraction: Option<f64>,
    /// Keep genes whose log2 fold change is at least this. Default: `None`.
    pub min_fold_change: Option<f64>,
    /// Keep genes whose adjusted p-value is at most this. Default: `None`.
    pub max_pvals_adj: Option<f64>,
    /// Keep at most this many genes per group (the best scores that pass the other
    /// filters). Default: `None` (all).
    pub top_n: Option<usize>,
}

impl TableFilter {
    /// Checks the filters: `min_in_group_fraction` is a fraction in [0, 1].
    pub fn validate(&self) -> Result<()> {
        if let Some(f) = self.min_in_group_fraction {
            if !(0.0..=1.0).contains(&f) {
                return Err(Error::option(
                    "min_in_group_fraction",
                    format!("{f} is not a fraction in [0, 1]"),
                ));
            }
        }
        Ok(())
    }
}

/// One row of the tidy marker table.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkerRow {
    /// Group label.
    pub group: u32,
    /// 1-based position of the gene in the group's score order (before filtering).
    pub rank: usize,
    /// Gene name.
    pub gene: String,
    /// z-score or t statistic.
    pub score: f64,
    /// Log2 fold change.
    pub logfoldchange: f64,
    /// p-value.
    pub pval: f64,
    /// Adjusted p-value.
    pub pval_adj: f64,
    /// Fraction expressing in the group (`NaN` when not computed).
    pub pct_in: f64,
    /// Fraction expressing in the other cells (`NaN` when not computed).
    pub pct_out: f64,
    /// Area under the ROC curve (`NaN` for t-tests).
    pub auc: f64,
}

impl RankGenes {
    /// The tidy table: for each tested group, genes by decreasing score that pass `filters`.
    /// `gene_names` must have one name per gene.
    pub fn table(&self, gene_names: &[String], filters: &TableFilter) -> Result<Vec<MarkerRow>> {
        if gene_names.len() != self.n_genes {
            return Err(Error::data(
                "marker table",
                format!("{} gene names for {} genes", gene_names.len(), self.n_genes),
            ));
        }
        filters.validate()?;
        let mut rows = Vec::new();
        for g in &self.groups {
            if filters.min_in_group_fraction.is_some() && g.pct_in.is_none() {
                return Err(Error::option(
                    "min_in_group_fraction",
                    "the fractions were not computed (rank_genes with pts = false)",
                ));
            }
            let mut kept = 0usize;
            for (rank0, &gi) in g.order.iter().enumerate() {
                if filters.top_n.is_some_and(|n| kept >= n) {
                    break;
                }
                let i = gi as usize;
                let pct_in = g.pct_in.as_ref().map_or(f64::NAN, |v| v[i]);
                if let Some(f) = filters.min_in_group_fraction {
                    if pct_in < f {
                        continue;
                    }
                }
                if let Some(f) = filters.min_fold_change {
                    if g.logfoldchanges[i].is_nan() || g.logfoldchanges[i] < f {
                        continue;
                    }
                }
                if let Some(f) = filters.max_pvals_adj {
                    if g.pvals_adj[i].is_nan() || g.pvals_adj[i] > f {
                        continue;
                    }
                }
                kept += 1;
                rows.push(MarkerRow {
                    group: g.group,
                    rank: rank0 + 1,
                    gene: gene_names[i].clone(),
                    score: g.scores[i],
                    logfoldchange: g.logfoldchanges[i],
                    pval: g.pvals[i],
                    pval_adj: g.pvals_adj[i],
                    pct_in,
                    pct_out: g.pct_out.as_ref().map_or(f64::NAN, |v| v[i]),
                    auc: g.auc.as_ref().map_or(f64::NAN, |v| v[i]),
                });
            }
        }
        Ok(rows)
    }

    /// The result of one tested group, by label.
    pub fn group(&self, label: u32) -> Option<&GroupMarkers> {
        self.groups.iter().find(|g| g.group == label)
    }
}

/// Writes marker rows as CSV (header `group,rank,gene,score,logfoldchange,pval,pval_adj,
/// pct_in,pct_out,auc`; numbers in shortest round-trip form). The file is written under a
/// temporary name in the same folder and then renamed, so readers never see half a file.
pub fn write_csv(rows: &[MarkerRow], path: impl AsRef<Path>) -> Result<()> {
    crate::report::write_atomic(path.as_ref(), |w| write_csv_to(rows, w))
}

/// Writes marker rows as CSV (see [`write_csv`]) to any writer.
pub fn write_csv_to(rows: &[MarkerRow], w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        w,
        "group,rank,gene,score,logfoldchange,pval,pval_adj,pct_in,pct_out,auc"
    )?;
    for r in rows {
        use crate::report::fmt_f64 as f;
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{}",
            r.group,
            r.rank,
            crate::report::csv_field(&r.gene),
            f(r.score),
            f(r.logfoldchange),
            f(r.pval),
            f(r.pval_adj),
            f(r.pct_in),
            f(r.pct_out),
            f(r.auc)
        )?;
    }
    Ok(())
}
