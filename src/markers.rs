//! Marker genes: rank genes that separate one group of cells from the rest (or from a
//! reference group) with a Wilcoxon rank-sum test or a t-test, as Scanpy's
//! `tl.rank_genes_groups` (version 1.11.5) computes them.
//!
//! [`rank_genes`] works on the log-normalized matrix (cells x all genes). For every tested
//! group and every gene it reports
//! - `score`: the Wilcoxon z-score or the t statistic (Scanpy's `scores`);
//! - `logfoldchange`: `log2((expm1(mean_group) + 1e-9) / (expm1(mean_other) + 1e-9))` from the
//!   means of the log values (Scanpy's `logfoldchanges`);
//! - `pval` and `pval_adj` (Benjamini-Hochberg over all genes of the group, or Bonferroni);
//! - `pct_in` / `pct_out`: fractions of cells with a non-zero value in the group and in the
//!   cells it is compared with (Scanpy's `pts` / `pts_rest`);
//! - `auc` (Wilcoxon only): area under the ROC curve `U / (n1 n2)` from the same rank sum, the
//!   effect size libscran reports.
//!
//! ## Wilcoxon rank-sum, sparse-aware
//! Scanpy ranks every gene's dense column of all cells. Here the matrix is read gene by gene
//! in blocks (a partial transpose, so the extra memory is a fraction of the matrix): all
//! zeros of a gene share one tied rank and only its non-zero values are sorted (the presto
//! approach, Korsunsky et al. 2019), once per gene; the rank sums of all groups come from that
//! one sort. With `n1` cells in the group, `n2` in the other cells, `N = n1 + n2` and the
//! group's rank sum `R` (average ranks for ties):
//!
//! `z = (R - n1 (N + 1) / 2) / sqrt(tc n1 n2 (N + 1) / 12)`, `p = 2 (1 - Phi(|z|))`,
//!
//! where `tc = 1 - sum_ties (t^3 - t) / (N^3 - N)` with `tie_correct` and `tc = 1` without
//! (Scanpy's default). A `NaN` z (zero variance) becomes 0. For `reference = Rest`, ranks are
//! over all cells (also those of groups not selected for testing); for a reference group, over
//! the cells of the two groups only, as in Scanpy. Rank sums are accumulated exactly (in
//! doubled ranks, integers).
//!
//! ## t-tests
//! Welch's t-test from per-group means and unbiased variances (Scanpy's `t-test`), or the same
//! with the other group's size replaced by the group's own (`t-test_overestim_var`). A `NaN`
//! statistic (equal means, zero variances) becomes score 0 with p = 1.
//!
//! ## Differences from Scanpy
//! - Groups with fewer than two cells are skipped with a message in [`RankGenes::warnings`]
//!   (Scanpy raises an error). So is, with [`Reference::Rest`], a group that holds every cell
//!   (a single cluster): the result then has no groups, only the warning, and no `NaN`.
//! - Genes with tied scores are ordered by gene index (Scanpy's order among exact ties
//!   depends on NumPy's unstable sort).
//! - Scores and fold changes are kept in `f64` (Scanpy stores them as `f32`).
//! - Sums of squares for the variances use `f32` squares accumulated in `f64`, exactly like
//!   Scanpy's numba kernel, so t statistics agree to the last digits (the variance formula
//!   `E[x^2] - mean^2` amplifies the rounding of the squares when the variance is small).
//! - Fractions of expressing cells are always computed (Scanpy's `pts=False` default skips
//!   them); the AUC is an addition.

use crate::error::{Error, Result};
use crate::lognorm::{row_values, MatrixValues};
use crate::stats;
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

/// The test of [`rank_genes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Wilcoxon rank-sum test with the normal approximation (Scanpy's `"wilcoxon"`).
    #[default]
    Wilcoxon,
    /// Welch's t-test (Scanpy's `"t-test"`).
    TTest,
    /// Welch's t-test with the other group's size set to the group's size, which
    /// overestimates the variance for small groups (Scanpy's `"t-test_overestim_var"`).
    TTestOverestimVar,
}

/// What each group is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reference {
    /// All cells outside the group (Scanpy's `reference="rest"`).
    #[default]
    Rest,
    /// The cells of one group (by label); that group itself is not tested.
    Group(u32),
}

/// Multiple-testing correction of the p-values, over all genes of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Correction {
    /// Benjamini-Hochberg false discovery rate (Scanpy's `"benjamini-hochberg"`).
    #[default]
    BenjaminiHochberg,
    /// Bonferroni: `min(1, p n_genes)`.
    Bonferroni,
}

/// Options of [`rank_genes`].
#[derive(Debug, Clone, PartialEq)]
pub struct RankGenesOptions {
    /// The test. Default: [`Method::Wilcoxon`] (Scanpy's default is the t-test).
    pub method: Method,
    /// What each group is compared with. Default: [`Reference::Rest`].
    pub reference: Reference,
    /// Labels of the groups to test, in this order. Default: `None` (every label present,
    /// in increasing order). With [`Reference::Rest`] the rest is still all other cells.
    pub groups: Option<Vec<u32>>,
    /// Tie correction of the Wilcoxon variance. Default: `false` (as Scanpy).
    pub tie_correct: bool,
    /// p-value adjustment. Default: [`Correction::BenjaminiHochberg`].
    pub corr_method: Correction,
    /// Keep the fractions of expressing cells in the result. Default: `true` (they cost
    /// nothing extra here; Scanpy's default is `false`).
    pub pts: bool,
}

impl Default for RankGenesOptions {
    fn default() -> Self {
        RankGenesOptions {
            method: Method::Wilcoxon,
            reference: Reference::Rest,
            groups: None,
            tie_correct: false,
            corr_method: Correction::BenjaminiHochberg,
            pts: true,
        }
    }
}

/// Per-gene statistics of one tested group (all vectors are in gene order).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMarkers {
    /// The group's label.
    pub group: u32,
    /// Number of cells in the group.
    pub n_cells: usize,
    /// Number of cells it is compared with.
    pub n_other: usize,
    /// z-score (Wilcoxon) or t statistic.
    pub scores: Vec<f64>,
    /// Log2 fold change from the means of log values (see the module docs).
    pub logfoldchanges: Vec<f64>,
    /// Two-sided p-values.
    pub pvals: Vec<f64>,
    /// Adjusted p-values.
    pub pvals_adj: Vec<f64>,
    /// Fraction of the group's cells with a non-zero value (`None` when `pts` is off).
    pub pct_in: Option<Vec<f64>>,
    /// Fraction of the other cells with a non-zero value (`None` when `pts` is off).
    pub pct_out: Option<Vec<f64>>,
    /// Area under the ROC curve, `U / (n1 n2)` (Wilcoxon only).
    pub auc: Option<Vec<f64>>,
    /// Gene indices by decreasing score (ties by increasing gene index).
    pub order: Vec<u32>,
}

/// Result of [`rank_genes`].
#[derive(Debug, Clone, PartialEq)]
pub struct RankGenes {
    /// The test used.
    pub method: Method,
    /// The comparison used.
    pub reference: Reference,
    /// Number of genes (columns of the matrix).
    pub n_genes: usize,
    /// One entry per tested group, in the order of the tested groups.
    pub groups: Vec<GroupMarkers>,
    /// Groups that were skipped and why (fewer than two cells, or no other cells to compare
    /// with); library code never prints them, callers decide how to show them.
    pub warnings: Vec<String>,
}

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

/// One tested comparison: group index `g` (into the present groups) against `other`.
#[derive(Debug, Clone, Copy)]
struct Comparison {
    g: usize,
    /// `None`: the rest of the cells; `Some(r)`: present group `r`.
    other: Option<usize>,
}

/// Per-gene accumulators, laid out as one row of `width()` `f64`s per gene:
/// `[nnz; n_groups] [sum; n_groups] [sumsq; n_groups] [rank2; n_rank] [ties; n_ties]`.
#[derive(Debug, Clone, Copy)]
struct GeneRowLayout {
    /// Rank sums against a reference group (one per comparison) instead of against the rest.
    pairwise: bool,
    n_groups: usize,
    n_rank: usize,
    n_ties: usize,
}

impl GeneRowLayout {
    fn width(&self) -> usize {
        3 * self.n_groups + self.n_rank + self.n_ties
    }
}

/// Encodes an `f32` so that unsigned integer order is numeric order (negatives flipped).
#[inline]
fn order_key(v: f32) -> u32 {
    let b = v.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

#[inline]
fn decode_key(k: u32) -> f32 {
    if k & 0x8000_0000 != 0 {
        f32::from_bits(k & 0x7fff_ffff)
    } else {
        f32::from_bits(!k)
    }
}

/// Key of a positive (or +0) value: top bit set.
const POSITIVE: u32 = 0x8000_0000;

/// A block of rows that is transposed piece by piece: for the current gene block, `ptr` and
/// `keys` hold the block's non-zero entries of these rows, gene-major, each entry packed as
/// `order_key(value) << 32 | group code`.
struct Segment {
    rows: std::ops::Range<usize>,
    cursor: Vec<usize>,
    ptr: Vec<usize>,
    keys: Vec<u64>,
    /// The values of the segment's entries in the current gene block, row after row.
    vals: Vec<f32>,
    nan: bool,
}

impl Segment {
    fn fill<X: MatrixValues + ?Sized>(&mut self, x: &X, codes: &[u32], g0: usize, g1: usize) {
        let p = x.pattern();
        let indptr = p.indptr();
        let indices = p.indices();
        let bg = g1 - g0;
        self.ptr.clear();
        self.ptr.resize(bg + 1, 0);
        self.vals.clear();
        for (ci, r) in self.rows.clone().enumerate() {
            let end = indptr[r + 1];
            let start = self.cursor[ci];
            let mut k = start;
            while k < end && (indices[k] as usize) < g1 {
                k += 1;
            }
            let at = self.vals.len();
            x.values_into(r, start..k, &mut self.vals);
            for (&g, &v) in indices[start..k].iter().zip(&self.vals[at..]) {
                if v != 0.0 {
                    self.ptr[g as usize - g0 + 1] += 1;
                }
            }
        }
        for i in 0..bg {
            self.ptr[i + 1] += self.ptr[i];
        }
        self.keys.clear();
        self.keys.resize(self.ptr[bg], 0);
        let mut next: Vec<usize> = self.ptr[..bg].to_vec();
        let mut at = 0;
        for (ci, r) in self.rows.clone().enumerate() {
            let start = self.cursor[ci];
            let code = codes[r] as u64;
            let mut k = start;
            while k < indptr[r + 1] && (indices[k] as usize) < g1 {
                let v = self.vals[at + k - start];
                if v != 0.0 {
                    if v.is_nan() {
                        self.nan = true;
                    }
                    let slot = &mut next[indices[k] as usize - g0];
                    self.keys[*slot] = ((order_key(v) as u64) << 32) | code;
                    *slot += 1;
                }
                k += 1;
            }
            at += k - start;
            self.cursor[ci] = k;
        }
    }
}

/// LSD radix sort of `keys` by their upper 32 bits (the value), 8 bits per pass, skipping
/// passes where every key has the same byte. `buf` is scratch space.
fn radix_sort_hi(keys: &mut Vec<u64>, buf: &mut Vec<u64>) {
    let n = keys.len();
    if n < 64 {
        keys.sort_unstable_by_key(|k| k >> 32);
        return;
    }
    let mut hist = [[0usize; 256]; 4];
    for &k in keys.iter() {
        let h = (k >> 32) as u32;
        hist[0][(h & 0xff) as usize] += 1;
        hist[1][((h >> 8) & 0xff) as usize] += 1;
        hist[2][((h >> 16) & 0xff) as usize] += 1;
        hist[3][(h >> 24) as usize] += 1;
    }
    buf.clear();
    buf.resize(n, 0);
    for (pass, h) in hist.iter_mut().enumerate() {
        if h.contains(&n) {
            continue;
        }
        let mut sum = 0;
        for c in h.iter_mut() {
            let t = *c;
            *c = sum;
            sum += t;
        }
        let shift = 32 + 8 * pass as u32;
        for &k in keys.iter() {
            let b = ((k >> shift) & 0xff) as usize;
            buf[h[b]] = k;
            h[b] += 1;
        }
        std::mem::swap(keys, buf);
    }
}

/// Group sizes and codes of the cells.
struct Groups {
    /// Present labels, increasing.
    labels: Vec<u32>,
    /// Cells per present group.
    sizes: Vec<usize>,
    /// Per cell: index into `labels`.
    codes: Vec<u32>,
}

fn index_groups(labels: &[u32]) -> Groups {
    let mut present: Vec<u32> = labels.to_vec();
    present.sort_unstable();
    present.dedup();
    let codes: Vec<u32> = labels
        .iter()
        .map(|l| present.partition_point(|p| p < l) as u32)
        .collect();
    let mut sizes = vec![0usize; present.len()];
    for &c in &codes {
        sizes[c as usize] += 1;
    }
    Groups {
        labels: present,
        sizes,
        codes,
    }
}

/// Scratch space of one worker in the per-gene pass.
#[derive(Default)]
struct Scratch {
    keys: Vec<u64>,
    buf: Vec<u64>,
}

/// Fills one gene's accumulator row from its non-zero entries (in cell order in
/// `s.keys`): counts, sums and sums of squares per group; with `ranks`, the doubled rank sums
/// and the tie term of each comparison.
fn gene_row(
    row: &mut [f64],
    s: &mut Scratch,
    lay: GeneRowLayout,
    groups: &Groups,
    comps: &[Comparison],
    ranks: bool,
) {
    let ng = lay.n_groups;
    row.fill(0.0);
    {
        let (nnz, rest) = row.split_at_mut(ng);
        let (sum, rest) = rest.split_at_mut(ng);
        let sumsq = &mut rest[..ng];
        for &k in &s.keys {
            let c = (k & 0xffff_ffff) as usize;
            let v = decode_key((k >> 32) as u32);
            nnz[c] += 1.0;
            sum[c] += v as f64;
            // Squared in f32 and accumulated in f64, as Scanpy's `_get_mean_var` does
            // (numba keeps f32 * f32 in f32): variances with strong cancellation then agree
            // with Scanpy's to about 1e-12 instead of 1e-6.
            sumsq[c] += (v * v) as f64;
        }
    }
    if !ranks {
        return;
    }
    radix_sort_hi(&mut s.keys, &mut s.buf);
    let keys = &s.keys;
    let n = keys.len();
    let n_cells = groups.codes.len();
    let base = 3 * ng;
    if !lay.pairwise {
        // One vs rest: ranks over all cells; rank sums of every group from one walk.
        let n_neg = keys.partition_point(|&k| ((k >> 32) as u32) < POSITIVE);
        let z = n_cells - n;
        let mut ties: u128 = 0;
        let mut i = 0;
        while i < n {
            let v = keys[i] >> 32;
            let mut j = i + 1;
            while j < n && keys[j] >> 32 == v {
                j += 1;
            }
            let t = j - i;
            let start = if i < n_neg { i } else { i + z };
            let r2 = (2 * start + t + 1) as f64;
            for &k in &keys[i..j] {
                row[base + (k & 0xffff_ffff) as usize] += r2;
            }
            if t > 1 {
                let t = t as u128;
                ties += t * t * t - t;
            }
            i = j;
        }
        let r2z = (2 * n_neg + z + 1) as f64;
        for g in 0..ng {
            let zeros = groups.sizes[g] as f64 - row[g];
            row[base + g] += zeros * r2z;
        }
        if z > 1 {
            let z = z as u128;
            ties += z * z * z - z;
        }
        row[base + lay.n_rank] = ties as f64;
    } else {
        // Against a reference group: ranks over the two groups' cells only.
        for (ci, cmp) in comps.iter().enumerate() {
            let (g, r) = match cmp.other {
                Some(r) => (cmp.g as u64, r as u64),
                None => continue,
            };
            let in_pair = |k: u64| {
                let c = k & 0xffff_ffff;
                c == g || c == r
            };
            let n_neg = keys
                .iter()
                .take_while(|&&k| ((k >> 32) as u32) < POSITIVE)
                .filter(|&&k| in_pair(k))
                .count();
            let nnz_pair = row[g as usize] + row[r as usize];
            let n_pair = groups.sizes[g as usize] + groups.sizes[r as usize];
            let z = n_pair - nnz_pair as usize;
            let mut pos = 0usize;
            let mut rsum = 0f64;
            let mut ties: u128 = 0;
            let mut i = 0;
            while i < n {
                let v = keys[i] >> 32;
                let mut j = i;
                let (mut t, mut tg) = (0usize, 0usize);
                while j < n && keys[j] >> 32 == v {
                    if in_pair(keys[j]) {
                        t += 1;
                        if keys[j] & 0xffff_ffff == g {
                            tg += 1;
                        }
                    }
                    j += 1;
                }
                if t > 0 {
                    let start = if pos < n_neg { pos } else { pos + z };
                    rsum += (tg * (2 * start + t + 1)) as f64;
                    if t > 1 {
                        let t = t as u128;
                        ties += t * t * t - t;
                    }
                    pos += t;
                }
                i = j;
            }
            let zeros_g = groups.sizes[g as usize] as f64 - row[g as usize];
            rsum += zeros_g * (2 * n_neg + z + 1) as f64;
            if z > 1 {
                let z = z as u128;
                ties += z * z * z - z;
            }
            row[base + ci] = rsum;
            row[base + lay.n_rank + ci] = ties as f64;
        }
    }
}

/// Target number of entries held in one transposed gene block.
fn block_target(nnz: usize) -> usize {
    (nnz / 16).clamp(1 << 16, 1 << 23)
}

/// Reads the matrix gene by gene (in blocks) and fills the accumulator rows of all genes.
fn gene_pass<X: MatrixValues + ?Sized>(
    x: &X,
    groups: &Groups,
    comps: &[Comparison],
    lay: GeneRowLayout,
    ranks: bool,
    progress: &mut dyn FnMut(f64),
) -> Result<Vec<f64>> {
    if !ranks {
        return row_pass(x, groups, lay);
    }
    let (n_rows, n_genes) = x.pattern().shape();
    let w = lay.width();
    let mut acc = vec![0f64; n_genes * w];
    // Stored entries per gene (an upper bound of the non-zeros), to size the blocks.
    let mut col_nnz = vec![0usize; n_genes];
    for &c in x.pattern().indices() {
        col_nnz[c as usize] += 1;
    }
    // Fixed segments of rows (independent of the thread count).
    let seg_rows = n_rows.div_ceil(32).max(256);
    let mut segments: Vec<Segment> = (0..n_rows)
        .step_by(seg_rows)
        .map(|a| {
            let b = (a + seg_rows).min(n_rows);
            Segment {
                rows: a..b,
                cursor: x.pattern().indptr()[a..b].to_vec(),
                ptr: Vec::new(),
                keys: Vec::new(),
                vals: Vec::new(),
                nan: false,
            }
        })
        .collect();
    let target = block_target(x.pattern().nnz());
    let mut g0 = 0;
    while g0 < n_genes {
        let mut g1 = g0;
        let mut in_block = 0;
        while g1 < n_genes && (g1 == g0 || in_block + col_nnz[g1] <= target) {
            in_block += col_nnz[g1];
            g1 += 1;
        }
        segments
            .par_iter_mut()
            .for_each(|s| s.fill(x, &groups.codes, g0, g1));
        if segments.iter().any(|s| s.nan) {
            return Err(Error::data(
                "rank_genes",
                "the matrix holds NaN values".to_string(),
            ));
        }
        let segs = &segments;
        acc[g0 * w..g1 * w]
            .par_chunks_mut(w)
            .enumerate()
            .for_each_init(Scratch::default, |s, (bi, row)| {
                s.keys.clear();
                for seg in segs {
                    s.keys
                        .extend_from_slice(&seg.keys[seg.ptr[bi]..seg.ptr[bi + 1]]);
                }
                gene_row(row, s, lay, groups, comps, ranks);
            });
        g0 = g1;
        progress(g1 as f64 / n_genes as f64);
    }
    Ok(acc)
}

/// Counts, sums and sums of squares per (gene, group) without ranks, straight from the rows:
/// a fixed number of row chunks (independent of the thread count) accumulate group-major
/// partial sums, added up in chunk order, so the result is deterministic.
fn row_pass<X: MatrixValues + ?Sized>(
    x: &X,
    groups: &Groups,
    lay: GeneRowLayout,
) -> Result<Vec<f64>> {
    let (n_rows, n_genes) = x.pattern().shape();
    let ng = lay.n_groups;
    let w = lay.width();
    let per_chunk = 3 * ng * n_genes;
    // At most 8 chunks, and their partial sums at most a quarter of the matrix's size.
    let n_chunks = (x.pattern().nnz() * 2 / per_chunk.max(1))
        .clamp(1, 8)
        .min(n_rows.max(1));
    let chunk_rows = n_rows.div_ceil(n_chunks).max(1);
    let starts: Vec<usize> = (0..n_rows).step_by(chunk_rows).collect();
    let partials: Vec<(Vec<f64>, bool)> = starts
        .into_par_iter()
        .map(|a| {
            // Layout: [nnz | sum | sumsq] x group x gene.
            let mut p = vec![0f64; per_chunk];
            let mut nan = false;
            let mut val = Vec::new();
            for r in a..(a + chunk_rows).min(n_rows) {
                let c = groups.codes[r] as usize;
                let idx = x.pattern().row(r).0;
                val.clear();
                row_values(x, r, &mut val);
                let (nnz, rest) = p.split_at_mut(ng * n_genes);
                let (sum, sumsq) = rest.split_at_mut(ng * n_genes);
                let off = c * n_genes;
                let (nnz, sum, sumsq) = (
                    &mut nnz[off..off + n_genes],
                    &mut sum[off..off + n_genes],
                    &mut sumsq[off..off + n_genes],
                );
                for (&j, &v) in idx.iter().zip(&val) {
                    if v != 0.0 {
                        nan |= v.is_nan();
                        let j = j as usize;
                        nnz[j] += 1.0;
                        sum[j] += v as f64;
                        // f32 square, as in `gene_row`.
                        sumsq[j] += (v * v) as f64;
                    }
                }
            }
            (p, nan)
        })
        .collect();
    if partials.iter().any(|p| p.1) {
        return Err(Error::data("rank_genes", "the matrix holds NaN values"));
    }
    let mut acc = vec![0f64; n_genes * w];
    acc.par_chunks_mut(w).enumerate().for_each(|(j, row)| {
        for (p, _) in &partials {
            for k in 0..3 {
                for c in 0..ng {
                    row[k * ng + c] += p[(k * ng + c) * n_genes + j];
                }
            }
        }
    });
    Ok(acc)
}

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
/// # let log = scrna::normalize::normalize_total_log1p(&data.counts, &Default::default())?.matrix;
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
    let (n_cells, n_genes) = x.pattern().shape();
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

/// Mean and unbiased variance from a count, a sum and a sum of squares, as Scanpy's
/// `_get_mean_var`: `var = (E[x^2] - mean^2) n / (n - 1)` (not rescaled when n = 1).
fn mean_var(n: f64, sum: f64, sumsq: f64) -> (f64, f64) {
    let mean = sum / n;
    let mut var = sumsq / n - mean * mean;
    if n != 1.0 {
        var *= n / (n - 1.0);
    }
    (mean, var)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    acc: &[f64],
    w: usize,
    lay: GeneRowLayout,
    gi: &Groups,
    ci: usize,
    cmp: Comparison,
    n_cells: usize,
    n_genes: usize,
    opts: &RankGenesOptions,
) -> GroupMarkers {
    let ng = lay.n_groups;
    let g = cmp.g;
    let n1 = gi.sizes[g];
    let n2 = match cmp.other {
        None => n_cells - n1,
        Some(r) => gi.sizes[r],
    };
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let nf = n1f + n2f;
    let mut scores = vec![0f64; n_genes];
    let mut lfc = vec![0f64; n_genes];
    let mut pvals = vec![0f64; n_genes];
    let mut pct_in = vec![0f64; n_genes];
    let mut pct_out = vec![0f64; n_genes];
    let mut auc = if opts.method == Method::Wilcoxon {
        Some(vec![0f64; n_genes])
    } else {
        None
    };
    for j in 0..n_genes {
        let row = &acc[j * w..(j + 1) * w];
        let (nnz1, sum1, sq1) = (row[g], row[ng + g], row[2 * ng + g]);
        let (nnz2, sum2, sq2) = match cmp.other {
            Some(r) => (row[r], row[ng + r], row[2 * ng + r]),
            None => {
                let mut t = (0.0, 0.0, 0.0);
                for k in 0..ng {
                    t.0 += row[k];
                    t.1 += row[ng + k];
                    t.2 += row[2 * ng + k];
                }
                (t.0 - nnz1, t.1 - sum1, t.2 - sq1)
            }
        };
        let (m1, v1) = mean_var(n1f, sum1, sq1);
        let (m2, v2) = mean_var(n2f, sum2, sq2);
        pct_in[j] = nnz1 / n1f;
        pct_out[j] = nnz2 / n2f;
        lfc[j] = ((m1.exp_m1() + 1e-9) / (m2.exp_m1() + 1e-9)).log2();
        let (score, p) = match opts.method {
            Method::Wilcoxon => {
                let base = 3 * ng;
                let (r2, ties) = match cmp.other {
                    None => (row[base + g], row[base + lay.n_rank]),
                    Some(_) => (row[base + ci], row[base + lay.n_rank + ci]),
                };
                let rank_sum = r2 / 2.0;
                let tc = if opts.tie_correct {
                    1.0 - ties / (nf * nf * nf - nf)
                } else {
                    1.0
                };
                let sd = (tc * n1f * n2f * (nf + 1.0) / 12.0).sqrt();
                let mut z = (rank_sum - n1f * (nf + 1.0) / 2.0) / sd;
                if z.is_nan() {
                    z = 0.0;
                }
                if let Some(a) = auc.as_mut() {
                    a[j] = (rank_sum - n1f * (n1f + 1.0) / 2.0) / (n1f * n2f);
                }
                (z, stats::normal_two_sided(z))
            }
            Method::TTest | Method::TTestOverestimVar => {
                let n_other = if opts.method == Method::TTest {
                    n2f
                } else {
                    n1f
                };
                // Scanpy passes standard deviations: a (rounding) negative variance gives NaN.
                let (s1, s2) = (v1.sqrt(), v2.sqrt());
                let r = stats::welch_t_test(m1, s1 * s1, n1f, m2, s2 * s2, n_other);
                let t = if r.t.is_nan() { 0.0 } else { r.t };
                let p = if r.p.is_nan() { 1.0 } else { r.p };
                (t, p)
            }
        };
        scores[j] = score;
        pvals[j] = p;
    }
    let pvals_adj = match opts.corr_method {
        Correction::BenjaminiHochberg => stats::benjamini_hochberg(&pvals),
        Correction::Bonferroni => stats::bonferroni(&pvals),
    };
    let mut order: Vec<u32> = (0..n_genes as u32).collect();
    order.sort_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(a.cmp(&b))
    });
    GroupMarkers {
        group: gi.labels[g],
        n_cells: n1,
        n_other: n2,
        scores,
        logfoldchanges: lfc,
        pvals,
        pvals_adj,
        pct_in: opts.pts.then_some(pct_in),
        pct_out: opts.pts.then_some(pct_out),
        auc,
        order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::CsrMatrix;
    use rand::{Rng, SeedableRng};

    /// A small matrix with negatives, explicit zeros and many ties.
    fn tied_matrix(n_cells: usize, n_genes: usize, seed: u64) -> (CsrMatrix, Vec<u32>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let levels = [-1.0f32, 0.0, 0.5, 1.0, 2.0, 2.0, 3.25];
        let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n_cells {
            for j in 0..n_genes {
                if rng.gen_bool(0.45) {
                    r.push(i as u32);
                    c.push(j as u32);
                    v.push(levels[rng.gen_range(0..levels.len())]);
                }
            }
        }
        let x = CsrMatrix::from_triplets(n_cells, n_genes, &r, &c, &v).unwrap();
        let labels = (0..n_cells).map(|_| rng.gen_range(0..4u32)).collect();
        (x, labels)
    }

    /// Dense average ranks (1-based) of `v`.
    fn average_ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut ranks = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j < idx.len() && v[idx[j]] == v[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..j] {
                ranks[k] = (i + j + 1) as f64 / 2.0;
            }
            i = j;
        }
        ranks
    }

    /// Scanpy's statistic computed naively from dense columns.
    fn naive_z(col: &[f64], in_g: &[bool], in_o: &[bool], tie: bool) -> (f64, f64) {
        let vals: Vec<f64> = (0..col.len())
            .filter(|&i| in_g[i] || in_o[i])
            .map(|i| col[i])
            .collect();
        let mem: Vec<bool> = (0..col.len())
            .filter(|&i| in_g[i] || in_o[i])
            .map(|i| in_g[i])
            .collect();
        let ranks = average_ranks(&vals);
        let n1 = mem.iter().filter(|&&m| m).count() as f64;
        let n = vals.len() as f64;
        let n2 = n - n1;
        let r: f64 = ranks.iter().zip(&mem).filter(|p| *p.1).map(|p| p.0).sum();
        let mut tc = 1.0;
        if tie {
            let mut sorted = vals.clone();
            sorted.sort_by(f64::total_cmp);
            let mut s = 0.0;
            let mut i = 0;
            while i < sorted.len() {
                let mut j = i;
                while j < sorted.len() && sorted[j] == sorted[i] {
                    j += 1;
                }
                let t = (j - i) as f64;
                s += t * t * t - t;
                i = j;
            }
            tc = 1.0 - s / (n * n * n - n);
        }
        let mut z = (r - n1 * (n + 1.0) / 2.0) / (tc * n1 * n2 * (n + 1.0) / 12.0).sqrt();
        if z.is_nan() {
            z = 0.0;
        }
        (z, (r - n1 * (n1 + 1.0) / 2.0) / (n1 * n2))
    }

    #[test]
    fn wilcoxon_matches_dense_ranks() {
        let (x, labels) = tied_matrix(80, 12, 1);
        let dense = x.to_dense();
        for tie in [false, true] {
            for reference in [Reference::Rest, Reference::Group(2)] {
                let opts = RankGenesOptions {
                    tie_correct: tie,
                    reference,
                    ..Default::default()
                };
                let res = rank_genes(&x, &labels, &opts).unwrap();
                assert_eq!(
                    res.groups.len(),
                    if reference == Reference::Rest { 4 } else { 3 }
                );
                for gm in &res.groups {
                    let in_g: Vec<bool> = labels.iter().map(|&l| l == gm.group).collect();
                    let in_o: Vec<bool> = labels
                        .iter()
                        .map(|&l| match reference {
                            Reference::Rest => l != gm.group,
                            Reference::Group(r) => l == r,
                        })
                        .collect();
                    for j in 0..12 {
                        let col: Vec<f64> = dense.column(j).iter().map(|&v| v as f64).collect();
                        let (z, auc) = naive_z(&col, &in_g, &in_o, tie);
                        assert!((gm.scores[j] - z).abs() < 1e-12, "{z} {}", gm.scores[j]);
                        let a = gm.auc.as_ref().unwrap()[j];
                        assert!((a - auc).abs() < 1e-12);
                        let p = gm.pvals[j];
                        assert!((0.0..=1.0).contains(&p));
                    }
                }
            }
        }
    }

    #[test]
    fn swapping_two_groups_negates_the_score() {
        let (x, labels) = tied_matrix(60, 10, 2);
        let two: Vec<u32> = labels.iter().map(|&l| l % 2).collect();
        let res = rank_genes(&x, &two, &RankGenesOptions::default()).unwrap();
        let (a, b) = (&res.groups[0], &res.groups[1]);
        for j in 0..10 {
            assert!((a.scores[j] + b.scores[j]).abs() < 1e-12);
            assert!((a.pvals[j] - b.pvals[j]).abs() < 1e-12);
            assert!((a.auc.as_ref().unwrap()[j] + b.auc.as_ref().unwrap()[j] - 1.0).abs() < 1e-12);
        }
        let opts = RankGenesOptions {
            reference: Reference::Group(1),
            ..Default::default()
        };
        let ab = rank_genes(&x, &two, &opts).unwrap();
        for j in 0..10 {
            assert!((ab.groups[0].scores[j] - a.scores[j]).abs() < 1e-12);
        }
    }

    #[test]
    fn ties_everywhere() {
        // Every cell has the same value in gene 0, gene 1 is all zero.
        let n = 30;
        let rows: Vec<u32> = (0..n as u32).collect();
        let x = CsrMatrix::from_triplets(n, 2, &rows, &vec![0; n], &vec![1.5; n]).unwrap();
        let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
        for tie_correct in [false, true] {
            for method in [Method::Wilcoxon, Method::TTest, Method::TTestOverestimVar] {
                let opts = RankGenesOptions {
                    method,
                    tie_correct,
                    ..Default::default()
                };
                let res = rank_genes(&x, &labels, &opts).unwrap();
                for g in &res.groups {
                    assert_eq!(g.scores, vec![0.0, 0.0], "{method:?}");
                    assert_eq!(g.pvals, vec![1.0, 1.0], "{method:?}");
                    assert_eq!(g.logfoldchanges, vec![0.0, 0.0]);
                    assert_eq!(g.pct_in.as_ref().unwrap(), &vec![1.0, 0.0]);
                }
            }
        }
    }

    fn naive_welch(col: &[f64], in_g: &[bool], overestim: bool) -> f64 {
        let a: Vec<f64> = col
            .iter()
            .zip(in_g)
            .filter(|p| *p.1)
            .map(|p| *p.0)
            .collect();
        let b: Vec<f64> = col
            .iter()
            .zip(in_g)
            .filter(|p| !*p.1)
            .map(|p| *p.0)
            .collect();
        let mv = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let s = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() as f64 - 1.0);
            (m, s)
        };
        let ((ma, va), (mb, vb)) = (mv(&a), mv(&b));
        let nb = if overestim { a.len() } else { b.len() } as f64;
        (ma - mb) / (va / a.len() as f64 + vb / nb).sqrt()
    }

    #[test]
    fn t_tests_match_dense_formulas() {
        let (x, labels) = tied_matrix(70, 8, 3);
        let dense = x.to_dense();
        for (method, over) in [(Method::TTest, false), (Method::TTestOverestimVar, true)] {
            let opts = RankGenesOptions {
                method,
                ..Default::default()
            };
            let res = rank_genes(&x, &labels, &opts).unwrap();
            assert!(res.groups.iter().all(|g| g.auc.is_none()));
            for gm in &res.groups {
                let in_g: Vec<bool> = labels.iter().map(|&l| l == gm.group).collect();
                for j in 0..8 {
                    let col: Vec<f64> = dense.column(j).iter().map(|&v| v as f64).collect();
                    let t = naive_welch(&col, &in_g, over);
                    assert!((gm.scores[j] - t).abs() < 1e-9 * t.abs().max(1.0), "{t}");
                }
            }
        }
    }

    #[test]
    fn small_groups_are_skipped_with_a_warning() {
        let (x, mut labels) = tied_matrix(40, 5, 4);
        labels[7] = 9;
        let res = rank_genes(&x, &labels, &RankGenesOptions::default()).unwrap();
        assert_eq!(res.groups.len(), 4);
        assert!(res.warnings[0].contains("group 9"), "{:?}", res.warnings);
        let bad_ref = RankGenesOptions {
            reference: Reference::Group(9),
            ..Default::default()
        };
        assert!(matches!(
            rank_genes(&x, &labels, &bad_ref),
            Err(Error::InvalidOption { .. })
        ));
        let missing = RankGenesOptions {
            groups: Some(vec![5]),
            ..Default::default()
        };
        assert!(rank_genes(&x, &labels, &missing).is_err());
        assert!(rank_genes(&x, &labels[1..], &RankGenesOptions::default()).is_err());
    }

    #[test]
    fn subset_of_groups_still_ranks_against_all_cells() {
        let (x, labels) = tied_matrix(50, 6, 5);
        let all = rank_genes(&x, &labels, &RankGenesOptions::default()).unwrap();
        let opts = RankGenesOptions {
            groups: Some(vec![3, 1]),
            ..Default::default()
        };
        let some = rank_genes(&x, &labels, &opts).unwrap();
        assert_eq!(some.groups.len(), 2);
        assert_eq!(some.groups[0].group, 3);
        assert_eq!(&some.groups[0], all.group(3).unwrap());
    }

    #[test]
    fn same_result_with_one_or_two_threads() {
        let (x, labels) = tied_matrix(300, 40, 6);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let w = rank_genes(&x, &labels, &RankGenesOptions::default()).unwrap();
                    let t = RankGenesOptions {
                        method: Method::TTest,
                        ..Default::default()
                    };
                    (w, rank_genes(&x, &labels, &t).unwrap())
                })
        };
        assert_eq!(run(1), run(2));
    }

    #[test]
    fn table_filters_and_csv() {
        let (x, labels) = tied_matrix(100, 30, 7);
        let res = rank_genes(&x, &labels, &RankGenesOptions::default()).unwrap();
        let names: Vec<String> = (0..30).map(|i| format!("gene,{i}")).collect();
        let all = res.table(&names, &TableFilter::default()).unwrap();
        assert_eq!(all.len(), 4 * 30);
        let f = TableFilter {
            min_in_group_fraction: Some(0.4),
            min_fold_change: Some(0.0),
            max_pvals_adj: Some(0.9),
            top_n: Some(3),
        };
        let rows = res.table(&names, &f).unwrap();
        for r in &rows {
            assert!(r.pct_in >= 0.4 && r.logfoldchange >= 0.0 && r.pval_adj <= 0.9);
        }
        for g in 0..4 {
            let n = rows.iter().filter(|r| r.group == g).count();
            assert!(n <= 3);
            let ranks: Vec<usize> = rows
                .iter()
                .filter(|r| r.group == g)
                .map(|r| r.rank)
                .collect();
            assert!(ranks.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(res.table(&names[1..], &f).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("markers.csv");
        write_csv(&rows, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), rows.len() + 1);
        assert!(text.lines().nth(1).unwrap_or("").contains("\"gene,"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn radix_sort_orders_values() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let vals: Vec<f32> = (0..5000)
            .map(|_| (rng.gen_range(-3.0f32..8.0) * 4.0).round() / 4.0)
            .filter(|&v| v != 0.0)
            .collect();
        let mut keys: Vec<u64> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| ((order_key(v) as u64) << 32) | i as u64)
            .collect();
        radix_sort_hi(&mut keys, &mut Vec::new());
        let sorted: Vec<f32> = keys.iter().map(|&k| decode_key((k >> 32) as u32)).collect();
        let mut want = vals.clone();
        want.sort_by(f32::total_cmp);
        assert_eq!(sorted, want);
    }

    #[test]
    fn gene_major_input_gives_the_same_markers() {
        let (x, labels) = tied_matrix(300, 40, 11);
        // The same matrix by columns.
        let (n, g) = x.shape();
        let mut cols: Vec<Vec<(u32, f32)>> = vec![Vec::new(); g];
        for r in 0..n {
            let (idx, val) = x.row(r);
            for (&c, &v) in idx.iter().zip(val) {
                cols[c as usize].push((r as u32, v));
            }
        }
        let mut ptr = vec![0usize];
        let (mut cells, mut values) = (Vec::new(), Vec::new());
        for c in &cols {
            cells.extend(c.iter().map(|e| e.0));
            values.extend(c.iter().map(|e| e.1));
            ptr.push(cells.len());
        }
        for reference in [Reference::Rest, Reference::Group(2)] {
            let o = RankGenesOptions {
                reference,
                tie_correct: true,
                ..Default::default()
            };
            let a = rank_genes(&x, &labels, &o).unwrap();
            let b = rank_genes_csc(n, &ptr, &cells, &values, &labels, &o).unwrap();
            assert_eq!(a, b, "{reference:?}");
        }
        let o = RankGenesOptions {
            method: Method::TTest,
            ..Default::default()
        };
        let a = rank_genes(&x, &labels, &o).unwrap();
        let b = rank_genes_csc(n, &ptr, &cells, &values, &labels, &o).unwrap();
        for (ga, gb) in a.groups.iter().zip(&b.groups) {
            for (sa, sb) in ga.scores.iter().zip(&gb.scores) {
                assert!((sa - sb).abs() <= 1e-9 * sa.abs().max(1.0), "{sa} {sb}");
            }
        }
        // Pointers that do not match the entries are refused.
        assert!(rank_genes_csc(n, &ptr[..5], &cells, &values, &labels, &o).is_err());
        let far = vec![n as u32; cells.len()];
        assert!(rank_genes_csc(n, &ptr, &far, &values, &labels, &o).is_err());
    }
}
