//! The expression of a resource's partners per group of cells: one pass over the columns of
//! the resource's genes (gene-major copy of just those columns), per-group sums and counts of
//! expressing cells, and the complex rule (a complex's value is the minimum over its subunits,
//! taken separately for means and for fractions, as CellPhoneDB's `build_clusters` does).

use super::resource::{gene_positions, LrInteraction, Partner};
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use std::collections::HashMap;

/// The resource's interactions mapped onto the data: distinct partners as lists of gene slots,
/// and the columns of those genes, gene-major.
pub(crate) struct Prepared {
    /// Genes x cells: the data's columns of the genes used, one row per gene slot.
    pub genes_by_cell: CsrMatrix,
    /// Gene slots of each distinct partner.
    pub partners: Vec<Vec<usize>>,
    /// `(partner a, partner b)` of each interaction, indices into `partners`.
    pub pairs: Vec<(usize, usize)>,
}

impl Prepared {
    /// Maps `interactions` (every gene of which must be in `gene_names`, see
    /// [`super::Resource::usable`]) onto the columns of `x` (cells x genes).
    pub fn new(
        x: &CsrMatrix,
        gene_names: &[String],
        interactions: &[&LrInteraction],
    ) -> Result<Prepared> {
        let pos = gene_positions(gene_names);
        let mut partner_of: HashMap<&Partner, usize> = HashMap::new();
        // Partners as data columns first; slots once the columns are sorted.
        let mut partners: Vec<Vec<usize>> = Vec::new();
        let mut pairs = Vec::with_capacity(interactions.len());
        for it in interactions {
            let mut ids = [0usize; 2];
            for (side, p) in [&it.partner_a, &it.partner_b].into_iter().enumerate() {
                if let Some(&id) = partner_of.get(p) {
                    ids[side] = id;
                    continue;
                }
                let mut cols = Vec::with_capacity(p.genes.len());
                for g in &p.genes {
                    let &col = pos.get(g.as_str()).ok_or_else(|| {
                        Error::data("interactions", format!("gene {g} is not in the data"))
                    })?;
                    cols.push(col);
                }
                ids[side] = partners.len();
                partner_of.insert(p, partners.len());
                partners.push(cols);
            }
            pairs.push((ids[0], ids[1]));
        }
        let mut cols: Vec<usize> = partners.iter().flatten().copied().collect();
        cols.sort_unstable();
        cols.dedup();
        for p in &mut partners {
            for c in p.iter_mut() {
                *c = cols.binary_search(c).unwrap_or(0);
            }
        }
        let genes_by_cell = x.select_cols(&cols)?.transpose();
        Ok(Prepared {
            genes_by_cell,
            partners,
            pairs,
        })
    }

    /// Number of gene slots.
    pub fn n_genes(&self) -> usize {
        self.genes_by_cell.n_rows()
    }

    /// Per gene slot and group, the sum of the values (`sums[slot * n_groups + group]`) and,
    /// when `expressing` is given, the number of cells with a value above 0. Cells whose group
    /// is `u32::MAX` are skipped.
    pub fn group_sums(
        &self,
        groups: &[u32],
        n_groups: usize,
        sums: &mut [f64],
        mut expressing: Option<&mut [f64]>,
    ) {
        sums.fill(0.0);
        if let Some(e) = expressing.as_deref_mut() {
            e.fill(0.0);
        }
        for g in 0..self.n_genes() {
            let (cells, vals) = self.genes_by_cell.row(g);
            let base = g * n_groups;
            let row = &mut sums[base..base + n_groups];
            for (&c, &v) in cells.iter().zip(vals) {
                let k = groups[c as usize];
                if k != u32::MAX {
                    row[k as usize] += v as f64;
                }
            }
            if let Some(e) = expressing.as_deref_mut() {
                let row = &mut e[base..base + n_groups];
                for (&c, &v) in cells.iter().zip(vals) {
                    let k = groups[c as usize];
                    if k != u32::MAX && v > 0.0 {
                        row[k as usize] += 1.0;
                    }
                }
            }
        }
    }

    /// Turns per-gene sums (layout of [`Prepared::group_sums`]) into per-partner averages:
    /// `out[partner * n_groups + group] = min over subunits of sums / sizes[group]` (0 for an
    /// empty group).
    pub fn partner_values(&self, sums: &[f64], sizes: &[f64], out: &mut [f64]) {
        let n_groups = sizes.len();
        for (p, slots) in self.partners.iter().enumerate() {
            for (k, &size) in sizes.iter().enumerate() {
                let v = slots
                    .iter()
                    .map(|&s| sums[s * n_groups + k])
                    .fold(f64::INFINITY, f64::min);
                out[p * n_groups + k] = if size > 0.0 && v.is_finite() {
                    v / size
                } else {
                    0.0
                };
            }
        }
    }
}

/// CellPhoneDB's interaction mean: `(x + y) / 2` when both partners' means are above 0, else 0.
#[inline]
pub(crate) fn pair_mean(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        (x + y) / 2.0
    } else {
        0.0
    }
}

/// Cells per group (`u32::MAX` skipped).
pub(crate) fn group_sizes(groups: &[u32], n_groups: usize) -> Vec<f64> {
    let mut s = vec![0.0; n_groups];
    for &g in groups {
        if let Some(v) = s.get_mut(g as usize) {
            *v += 1.0;
        }
    }
    s
}
