//! The markers of the streamed analysis: each worker ranks its range of kept genes, block of
//! genes by block, from its spill ([`super::spill`]); the leader concatenates the ranges in
//! gene order and computes the adjusted p-values and the gene order over all genes, as
//! [`crate::markers::rank_genes`] does. Each gene is ranked on its own, so the result does not
//! depend on how the genes were cut into blocks or ranges.

use super::spill::{ColumnScratch, Columns, Spill};
use super::wire::{Reader, Wire};
use crate::error::{Error, Result};
use crate::lognorm::LogTable;
use crate::markers::{
    rank_genes_csc, Correction, GroupMarkers, Method, RankGenes, RankGenesOptions, Reference,
};

/// Bytes per stored value of a marker gene block: the columns read from the spill (cell and
/// value) and the per-block-of-cells parts they are assembled from.
const MARKER_BYTES_PER_VALUE: u64 = 16;

/// Blocks of consecutive kept genes whose columns ([`MARKER_BYTES_PER_VALUE`], plus
/// `per_gene` bytes of ranking state per gene and the row pointers) fit `block_bytes`; a gene
/// that alone exceeds it is a block of its own.
pub(super) fn plan_gene_blocks(
    stored: &[u64],
    per_gene: u64,
    n_rows: usize,
    block_bytes: u64,
) -> Vec<(usize, usize)> {
    let fixed = 8 * (n_rows as u64 + 1);
    let mut out = Vec::new();
    let mut g0 = 0;
    while g0 < stored.len() {
        let mut size = fixed + stored[g0] * MARKER_BYTES_PER_VALUE + per_gene;
        let mut g1 = g0 + 1;
        while g1 < stored.len()
            && size + stored[g1] * MARKER_BYTES_PER_VALUE + per_gene <= block_bytes
        {
            size += stored[g1] * MARKER_BYTES_PER_VALUE + per_gene;
            g1 += 1;
        }
        out.push((g0, g1));
        g0 = g1;
    }
    out
}

/// The markers of the genes `g0..` of `spill` (its gene `j` is kept gene `g0 + j`), ranked in
/// `blocks` (kept-gene ranges, consecutive from `g0`); `None` when there are no blocks.
/// The log values come from `logs` (the kept cells' size factors). `rep` gets the blocks
/// done.
pub(super) fn rank_range(
    spill: &Spill,
    g0: usize,
    blocks: &[(usize, usize)],
    logs: &LogTable<'_>,
    labels: &[u32],
    opts: &RankGenesOptions,
    rep: &mut dyn FnMut(usize),
) -> Result<Option<RankGenes>> {
    let mut parts = Vec::with_capacity(blocks.len());
    // The columns' memory, reused from block to block.
    let (mut c, mut scratch) = (Columns::default(), ColumnScratch::default());
    for (bi, &(a, b)) in blocks.iter().enumerate() {
        spill.columns_into(a - g0, b - g0, &mut c, &mut scratch)?;
        c.lognormalize_with(logs)?;
        parts.push(rank_genes_csc(
            logs.size_factors().len(),
            &c.ptr,
            &c.cells,
            &c.values,
            labels,
            opts,
        )?);
        rep(bi + 1);
    }
    concat(parts)
}

/// Concatenates marker results of consecutive gene ranges (same groups, in gene order)
/// without the adjusted p-values and order ([`finish`] computes them over all genes).
pub(super) fn concat(parts: Vec<RankGenes>) -> Result<Option<RankGenes>> {
    let mut it = parts.into_iter();
    let Some(mut out) = it.next() else {
        return Ok(None);
    };
    let ext = |a: &mut Option<Vec<f64>>, b: Option<Vec<f64>>| {
        if let (Some(a), Some(b)) = (a.as_mut(), b) {
            a.extend(b);
        }
    };
    for p in it {
        if p.groups.len() != out.groups.len()
            || p.groups
                .iter()
                .zip(&out.groups)
                .any(|(a, b)| a.group != b.group)
        {
            return Err(Error::data(
                "markers",
                "gene blocks ranked different groups",
            ));
        }
        out.n_genes += p.n_genes;
        for (o, g) in out.groups.iter_mut().zip(p.groups) {
            o.scores.extend(g.scores);
            o.logfoldchanges.extend(g.logfoldchanges);
            o.pvals.extend(g.pvals);
            ext(&mut o.pct_in, g.pct_in);
            ext(&mut o.pct_out, g.pct_out);
            ext(&mut o.auc, g.auc);
        }
    }
    Ok(Some(out))
}

/// The adjusted p-values and the gene order of every group, over all genes.
pub(super) fn finish(mut r: RankGenes, corr: Correction) -> RankGenes {
    for g in r.groups.iter_mut() {
        g.pvals_adj = match corr {
            Correction::BenjaminiHochberg => crate::stats::benjamini_hochberg(&g.pvals),
            Correction::Bonferroni => crate::stats::bonferroni(&g.pvals),
        };
        let scores = &g.scores;
        let mut order: Vec<u32> = (0..scores.len() as u32).collect();
        order.sort_by(|&a, &b| {
            scores[b as usize]
                .total_cmp(&scores[a as usize])
                .then(a.cmp(&b))
        });
        g.order = order;
    }
    r
}

/// A range's markers as sent to the leader: the per-gene statistics (not the adjusted
/// p-values and the order, computed over all genes by the leader).
impl Wire for RankGenes {
    fn put(&self, out: &mut Vec<u8>) {
        let method: u8 = match self.method {
            Method::Wilcoxon => 0,
            Method::TTest => 1,
            Method::TTestOverestimVar => 2,
        };
        method.put(out);
        match self.reference {
            Reference::Rest => None::<u32>.put(out),
            Reference::Group(g) => Some(g).put(out),
        }
        self.n_genes.put(out);
        self.groups.len().put(out);
        for g in &self.groups {
            (g.group, g.n_cells, g.n_other).put(out);
            g.scores.put(out);
            g.logfoldchanges.put(out);
            g.pvals.put(out);
            g.pct_in.put(out);
            g.pct_out.put(out);
            g.auc.put(out);
        }
        self.warnings.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let method = match u8::get(r)? {
            0 => Method::Wilcoxon,
            1 => Method::TTest,
            2 => Method::TTestOverestimVar,
            m => return Err(Error::data("message between workers", format!("test {m}"))),
        };
        let reference = match Option::<u32>::get(r)? {
            None => Reference::Rest,
            Some(g) => Reference::Group(g),
        };
        let n_genes = usize::get(r)?;
        let n_groups = usize::get(r)?;
        let mut groups = Vec::with_capacity(n_groups.min(1 << 16));
        for _ in 0..n_groups {
            let (group, n_cells, n_other) = <(u32, usize, usize)>::get(r)?;
            groups.push(GroupMarkers {
                group,
                n_cells,
                n_other,
                scores: Wire::get(r)?,
                logfoldchanges: Wire::get(r)?,
                pvals: Wire::get(r)?,
                pvals_adj: Vec::new(),
                pct_in: Wire::get(r)?,
                pct_out: Wire::get(r)?,
                auc: Wire::get(r)?,
                order: Vec::new(),
            });
        }
        Ok(RankGenes {
            method,
            reference,
            n_genes,
            groups,
            warnings: Wire::get(r)?,
        })
    }
}
