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
//!
//! ## Modules
//! `rank` holds the entry points ([`rank_genes`], [`rank_genes_csc`]), `passes` reads the
//! matrix into per-gene accumulator rows, `gene_rows` fills one gene's row (counts, sums,
//! squares, rank sums), `keys` sorts the values, `statistics` turns a row into scores and
//! p-values, and `table` gives the tidy table and its CSV ([`RankGenes::table`], [`write_csv`]).

mod dots;
mod gene_rows;
mod keys;
mod passes;
mod rank;
mod statistics;
mod table;

pub use dots::{dot_values, DotValues};
pub use rank::{rank_genes, rank_genes_csc, rank_genes_with_progress};
pub use table::{write_csv, write_csv_to, MarkerRow, TableFilter};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
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
