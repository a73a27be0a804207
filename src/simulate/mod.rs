//! A seeded simulator of single-cell count matrices with known clusters, conditions and samples.
//!
//! Model (in the spirit of Splatter, Zappia et al. 2017, simplified; the batch, doublet and
//! composition parts follow Splatter's `batchFacLoc/Scale`, scDblFinder's heterotypic doublets
//! made by summing two cells, and muscat's sample-level Dirichlet variation, each reduced to one
//! parameter):
//! - baseline relative expression of gene g: `p_g ∝ exp(N(0, gene_log_sd²))`, normalised to sum 1;
//! - cluster k multiplies its marker genes by a fold change `exp(N(ln(marker_fold), 0.25²))`
//!   (markers are drawn among the more highly expressed half of the genes, disjoint between
//!   clusters), and the relative expression is renormalised per cluster;
//! - library size of cell c: `L_c = exp(N(ln(library_size), library_log_sd²))`;
//! - count: negative binomial with mean `μ = L_c p_{g,k}` and dispersion φ (variance
//!   `μ + φ μ²`), drawn as Poisson(μ G) with G ~ Gamma(1/φ, φ).
//!
//! Cells are spread over `samples_per_condition` samples in each condition. Cluster
//! proportions are equal, except that the last `condition_specific` clusters exist only in the
//! last condition (e.g. resistance-specific clusters) and the cluster before them is depleted
//! there (present at `depleted_share` of its share, 10% by default). Some genes are mitochondrial (`MT-` symbols).
//!
//! Features of multi-sample studies, each off by default (see [`SimulateOptions`]):
//! - composition: the proportions `π_s` of sample `s` are `Dirichlet(a π_c)` around those of its
//!   condition `c` (`composition_concentration = a`);
//! - batch effects: sample `s` multiplies gene `g` by `b_{s,g} = exp(N(0, batch_sd²))`, so
//!   `p_{g,k,s} = p_{g,k} b_{s,g} / Σ_h p_{h,k} b_{s,h}`, and every library size by
//!   `exp(N(0, batch_library_sd²))`;
//! - a program shift: in the last condition, the profile of one shared cluster has the genes of
//!   a program multiplied by folds in `[2, 3]` (renormalised);
//! - heterotypic doublets: `round(doublet_rate n_s)` cells of each sample are the sum of two
//!   cells of that sample, the second of a different type drawn from the sample's proportions
//!   without the first's.
//!
//! Every cell has its own random stream derived from `(seed, cell index)` (the second cell of a
//! doublet another one), so the result is the same whatever the number of threads; the
//! multi-sample features draw from streams of their own, so switching one on leaves the others,
//! and the cells' types, unchanged.

mod design;
mod options;
pub mod resistance;

pub use options::{ProgramShift, SimulateOptions};

use crate::dataset::{CellTable, Dataset, GeneTable};
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use design::{draw_doublets, draw_shift, merge_rows, sample_weights};
use rand::distributions::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

/// Random streams of the model (cells use streams `0..n_cells`, second cells of doublets
/// `SECOND_CELL | i`).
const MODEL_STREAM: u64 = u64::MAX;
const BATCH_STREAM: u64 = u64::MAX - 1;
const LIBRARY_STREAM: u64 = u64::MAX - 2;
const COMPOSITION_STREAM: u64 = u64::MAX - 3;
const DOUBLET_STREAM: u64 = u64::MAX - 4;
const SHIFT_STREAM: u64 = u64::MAX - 5;
const SECOND_CELL: u64 = 1 << 62;

/// What the simulator knows about the data it made.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// Cluster of each cell (for a doublet, the type of its first cell).
    pub cluster: Vec<u32>,
    /// Condition index of each cell (into `SimulateOptions::conditions`).
    pub condition: Vec<u32>,
    /// Marker gene indices of each cluster.
    pub markers: Vec<Vec<usize>>,
    /// Clusters that exist only in the last condition.
    pub condition_specific_clusters: Vec<u32>,
    /// Sample index of each cell (into `sample_names`).
    pub sample: Vec<u32>,
    /// Sample names, `<condition>_<k>` (k from 1), condition by condition.
    pub sample_names: Vec<String>,
    /// Whether each cell is a doublet.
    pub doublet: Vec<bool>,
    /// The types of the two cells of each doublet (`None` for singlets); the first is
    /// `cluster[i]`, the second differs from it.
    pub doublet_parents: Vec<Option<(u32, u32)>>,
    /// The program shift, if any.
    pub shift: Option<ShiftTruth>,
    /// Expected cluster proportions of each condition (sum 1).
    pub condition_proportions: Vec<Vec<f64>>,
    /// Cluster proportions of each sample (sum 1; its condition's unless
    /// `composition_concentration` is set). Doublets take their first cell's type from them.
    pub sample_proportions: Vec<Vec<f64>>,
    /// Library-size factor of each sample (all 1 unless `batch_library_sd > 0`).
    pub sample_library_factor: Vec<f64>,
    /// Gene factors of each sample, `samples x genes` (empty unless `batch_sd > 0`).
    pub batch_factors: Vec<Vec<f64>>,
}

/// The shifted program of [`Truth::shift`].
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftTruth {
    /// The cluster whose cells are shifted in the last condition.
    pub cluster: u32,
    /// The condition in which it is shifted (the last).
    pub condition: u32,
    /// Genes of the program, ascending.
    pub genes: Vec<usize>,
    /// Fold of each gene (before the profile is renormalised).
    pub folds: Vec<f64>,
}

/// A simulated dataset and its truth.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Simulation {
    /// Counts with cell (barcode, sample, condition) and gene tables.
    pub dataset: Dataset,
    /// The clusters, conditions, samples, doublets and markers used to make it.
    pub truth: Truth,
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// Simulates a dataset (see the module docs for the model).
pub fn simulate(opts: &SimulateOptions) -> Result<Simulation> {
    let sim = Simulator::new(opts)?;
    let counts = sim.counts(0..opts.n_cells)?;
    let dataset = Dataset::new(counts, sim.cells(), sim.genes())?;
    Ok(Simulation {
        dataset,
        truth: sim.truth(),
    })
}

/// Gene-wise batch effects of the samples.
#[derive(Debug, Clone)]
struct Batch {
    /// `b_{s,g}`, samples x genes.
    factors: Vec<Vec<f64>>,
    /// `1 / Σ_g p_g b_{s,g}` for every sample and profile.
    scale: Vec<Vec<f64>>,
}

/// The simulator's model, drawn once, from which counts are made for any range of cells.
///
/// [`simulate`] is `Simulator::new` followed by [`Simulator::counts`] over all cells; calling
/// `counts` on consecutive ranges and stacking the rows gives exactly the same matrix, because
/// every cell draws from its own random stream `(seed, cell index)`. That is what lets a large
/// matrix be generated and written chunk by chunk
/// ([`crate::stream::write::simulate_10x_h5`]).
#[derive(Debug, Clone)]
pub struct Simulator {
    opts: SimulateOptions,
    /// Relative expression of every gene, per cluster, then the shifted profile (if any).
    profiles: Vec<Vec<f64>>,
    markers: Vec<Vec<usize>>,
    cluster: Vec<u32>,
    condition: Vec<u32>,
    sample_of: Vec<usize>,
    n_spec: usize,
    lib: Normal<f64>,
    condition_proportions: Vec<Vec<f64>>,
    sample_proportions: Vec<Vec<f64>>,
    /// Type of the second cell of each doublet (empty without doublets).
    partner: Vec<Option<u32>>,
    shift: Option<ShiftTruth>,
    batch: Option<Batch>,
    /// Library factor per sample (empty unless `batch_library_sd > 0`).
    lib_factor: Vec<f64>,
}

fn normalised(w: &[f64]) -> Vec<f64> {
    let s: f64 = w.iter().sum();
    w.iter().map(|x| x / s).collect()
}

impl Simulator {
    /// Draws the gene profiles, markers, sample effects and the cluster, condition, sample and
    /// doublet status of every cell (memory: `(n_clusters + 1 + n_samples) x n_genes` numbers
    /// plus a few per cell; no counts yet).
    pub fn new(opts: &SimulateOptions) -> Result<Simulator> {
        opts.validate()?;
        let n_genes = opts.n_genes;
        let k = opts.n_clusters;
        let mut rng = rng_for(opts.seed, MODEL_STREAM);

        // Baseline expression.
        let gene_noise = Normal::new(0.0, opts.gene_log_sd)
            .map_err(|e| Error::option("gene_log_sd", e.to_string()))?;
        let mut base: Vec<f64> = (0..n_genes)
            .map(|_| gene_noise.sample(&mut rng).exp())
            .collect();
        for b in base.iter_mut().take(opts.n_mito) {
            *b = b.max(1.0) * 20.0;
        }
        // Marker genes: disjoint, among the more highly expressed half (excluding mito genes).
        let mut order: Vec<usize> = (opts.n_mito..n_genes).collect();
        order.sort_by(|&a, &b| base[b].total_cmp(&base[a]).then(a.cmp(&b)));
        let mut pool: Vec<usize> = order[..order.len() / 2].to_vec();
        let mut markers = Vec::with_capacity(k);
        for _ in 0..k {
            let mut m = Vec::with_capacity(opts.n_markers);
            for _ in 0..opts.n_markers {
                let j = rng.gen_range(0..pool.len());
                m.push(pool.swap_remove(j));
            }
            m.sort_unstable();
            markers.push(m);
        }
        let fold_noise = Normal::new(opts.marker_fold.ln(), 0.25)
            .map_err(|e| Error::option("marker_fold", e.to_string()))?;
        // Relative expression per cluster.
        let mut profiles: Vec<Vec<f64>> = markers
            .iter()
            .map(|m| {
                let mut p = base.clone();
                for &g in m {
                    p[g] *= fold_noise.sample(&mut rng).exp();
                }
                let s: f64 = p.iter().sum();
                p.iter_mut().for_each(|x| *x /= s);
                p
            })
            .collect();

        // Cells: condition, sample, cluster.
        let n_cond = opts.conditions.len();
        let n_spec = opts.n_specific();
        let cluster_weights = |cond: usize| -> Vec<f64> {
            (0..k)
                .map(|c| {
                    let specific = c >= k - n_spec;
                    let depleted = n_spec > 0 && c + 1 == k - n_spec;
                    match (cond + 1 == n_cond, specific, depleted) {
                        (false, true, _) => 0.0,
                        (true, _, true) => opts.depleted_share,
                        _ => 1.0,
                    }
                })
                .collect()
        };
        let condition_weights: Vec<Vec<f64>> = (0..n_cond).map(cluster_weights).collect();
        let n_samples = opts.n_samples();
        let sample_weights = sample_weights(opts, &condition_weights)?;
        let weights: Vec<WeightedIndex<f64>> = sample_weights
            .iter()
            .map(WeightedIndex::new)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::option("n_clusters", e.to_string()))?;
        let mut cluster = Vec::with_capacity(opts.n_cells);
        let mut condition = Vec::with_capacity(opts.n_cells);
        let mut sample_of = Vec::with_capacity(opts.n_cells);
        for i in 0..opts.n_cells {
            // Cells are laid out sample by sample, as concatenated samples would be.
            let s = i * n_samples / opts.n_cells;
            let cond = s / opts.samples_per_condition;
            sample_of.push(s);
            condition.push(cond as u32);
            cluster.push(weights[s].sample(&mut rng) as u32);
        }
        let lib = Normal::new(opts.library_size.ln(), opts.library_log_sd)
            .map_err(|e| Error::option("library_log_sd", e.to_string()))?;

        let shift = match &opts.shift {
            Some(sh) => {
                let t = draw_shift(opts, sh, &order, &markers)?;
                let mut p = profiles[sh.cluster].clone();
                for (&g, &f) in t.genes.iter().zip(&t.folds) {
                    p[g] *= f;
                }
                let s: f64 = p.iter().sum();
                p.iter_mut().for_each(|x| *x /= s);
                profiles.push(p);
                Some(t)
            }
            None => None,
        };
        let batch = if opts.batch_sd > 0.0 {
            let noise = Normal::new(0.0, opts.batch_sd)
                .map_err(|e| Error::option("batch_sd", e.to_string()))?;
            let mut r = rng_for(opts.seed, BATCH_STREAM);
            let factors: Vec<Vec<f64>> = (0..n_samples)
                .map(|_| (0..n_genes).map(|_| noise.sample(&mut r).exp()).collect())
                .collect();
            let scale = factors
                .iter()
                .map(|f| {
                    profiles
                        .iter()
                        .map(|p| 1.0 / p.iter().zip(f).map(|(a, b)| a * b).sum::<f64>())
                        .collect()
                })
                .collect();
            Some(Batch { factors, scale })
        } else {
            None
        };
        let lib_factor: Vec<f64> = if opts.batch_library_sd > 0.0 {
            let noise = Normal::new(0.0, opts.batch_library_sd)
                .map_err(|e| Error::option("batch_library_sd", e.to_string()))?;
            let mut r = rng_for(opts.seed, LIBRARY_STREAM);
            (0..n_samples).map(|_| noise.sample(&mut r).exp()).collect()
        } else {
            Vec::new()
        };
        let partner = draw_doublets(opts, &sample_of, &cluster, &sample_weights)?;

        Ok(Simulator {
            opts: opts.clone(),
            profiles,
            markers,
            cluster,
            condition,
            sample_of,
            n_spec,
            lib,
            condition_proportions: condition_weights.iter().map(|w| normalised(w)).collect(),
            sample_proportions: sample_weights.iter().map(|w| normalised(w)).collect(),
            partner,
            shift,
            batch,
            lib_factor,
        })
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.opts.n_cells
    }

    /// Number of genes.
    pub fn n_genes(&self) -> usize {
        self.opts.n_genes
    }

    /// The profile of a cell of `cluster` in `condition`.
    fn profile_of(&self, cluster: u32, condition: u32) -> usize {
        match &self.shift {
            Some(s) if s.cluster == cluster && s.condition == condition => self.opts.n_clusters,
            _ => cluster as usize,
        }
    }

    /// Counts of the cells in `cells` (rows in cell order, all genes), drawn in parallel with
    /// one random stream per cell. Errors when the range goes past the last cell.
    pub fn counts(&self, cells: std::ops::Range<usize>) -> Result<CsrMatrix> {
        let opts = &self.opts;
        if cells.start > cells.end || cells.end > opts.n_cells {
            return Err(Error::option(
                "cells",
                format!(
                    "range {}..{} is not within the {} simulated cells",
                    cells.start, cells.end, opts.n_cells
                ),
            ));
        }
        let n_rows = cells.len();
        let rows: Vec<(Vec<u32>, Vec<f32>)> = cells
            .into_par_iter()
            .map(|i| {
                let s = self.sample_of[i];
                let cond = self.condition[i];
                let mut idx = Vec::new();
                let mut val = Vec::new();
                let first = self.profile_of(self.cluster[i], cond);
                self.draw_cell(i as u64, s, first, &mut idx, &mut val);
                if let Some(Some(b)) = self.partner.get(i) {
                    let (mut idx2, mut val2) = (Vec::new(), Vec::new());
                    let second = self.profile_of(*b, cond);
                    self.draw_cell(SECOND_CELL | i as u64, s, second, &mut idx2, &mut val2);
                    return merge_rows(&idx, &val, &idx2, &val2);
                }
                (idx, val)
            })
            .collect();
        let nnz: usize = rows.iter().map(|r| r.0.len()).sum();
        let mut indptr = Vec::with_capacity(n_rows + 1);
        indptr.push(0);
        let mut indices = Vec::with_capacity(nnz);
        let mut data = Vec::with_capacity(nnz);
        for (i, v) in rows {
            indices.extend_from_slice(&i);
            data.extend_from_slice(&v);
            indptr.push(indices.len());
        }
        CsrMatrix::try_new(n_rows, opts.n_genes, indptr, indices, data)
    }

    /// Draws one cell of `sample` with profile `profile` from random stream `stream`, appending
    /// its non-zero genes (ascending) and counts.
    fn draw_cell(
        &self,
        stream: u64,
        sample: usize,
        profile: usize,
        idx: &mut Vec<u32>,
        val: &mut Vec<f32>,
    ) {
        let phi = self.opts.dispersion;
        let inv_phi = 1.0 / phi;
        let mut r = rng_for(self.opts.seed, stream);
        let mut l = self.lib.sample(&mut r).exp();
        if let Some(f) = self.lib_factor.get(sample) {
            l *= f;
        }
        let p = &self.profiles[profile];
        match &self.batch {
            None => {
                for (g, &pg) in p.iter().enumerate() {
                    nb_draw(l * pg, phi, inv_phi, &mut r, g, idx, val);
                }
            }
            Some(b) => {
                let l = l * b.scale[sample][profile];
                for (g, (&pg, &fg)) in p.iter().zip(&b.factors[sample]).enumerate() {
                    nb_draw(l * (pg * fg), phi, inv_phi, &mut r, g, idx, val);
                }
            }
        }
    }

    /// Sample names, `<condition>_<k>` (k from 1), condition by condition.
    pub fn sample_names(&self) -> Vec<String> {
        let opts = &self.opts;
        (0..opts.n_samples())
            .map(|s| {
                let c = s / opts.samples_per_condition;
                format!(
                    "{}_{}",
                    opts.conditions[c],
                    s % opts.samples_per_condition + 1
                )
            })
            .collect()
    }

    /// The cell table: barcodes, sample (`<condition>_<k>`) and condition of every cell.
    pub fn cells(&self) -> CellTable {
        let opts = &self.opts;
        let sample_names = self.sample_names();
        CellTable {
            barcodes: (0..opts.n_cells).map(barcode).collect(),
            sample: self
                .sample_of
                .iter()
                .map(|&s| sample_names[s].clone())
                .collect(),
            condition: self
                .condition
                .iter()
                .map(|&c| opts.conditions[c as usize].clone())
                .collect(),
            columns: Default::default(),
        }
    }

    /// The sample (an index into [`Simulator::sample_names`]) of cell `i`, if there is such a
    /// cell. The cells are laid out sample by sample.
    pub fn sample_of(&self, i: usize) -> Option<usize> {
        self.sample_of.get(i).copied()
    }

    /// The cells of sample `s` (an index into [`Simulator::sample_names`]): one range, as the
    /// cells are laid out sample by sample (empty for a sample with no cell or past the last).
    pub fn cells_of_sample(&self, s: usize) -> std::ops::Range<usize> {
        let first = self.sample_of.partition_point(|&x| x < s);
        first..self.sample_of.partition_point(|&x| x <= s)
    }

    /// The barcodes of all cells (as in [`Simulator::cells`]).
    pub fn barcodes(&self) -> Vec<String> {
        (0..self.opts.n_cells).map(barcode).collect()
    }

    /// The gene table: ids `SIMG00000001`, ..., symbols `MT-G1`, ... then `Gene<k>`.
    pub fn genes(&self) -> GeneTable {
        let n_genes = self.opts.n_genes;
        let n_mito = self.opts.n_mito;
        let ids: Vec<String> = (0..n_genes).map(|g| format!("SIMG{:08}", g + 1)).collect();
        let symbols: Vec<String> = (0..n_genes)
            .map(|g| {
                if g < n_mito {
                    format!("MT-G{}", g + 1)
                } else {
                    format!("Gene{}", g + 1)
                }
            })
            .collect();
        GeneTable::new(ids, symbols)
    }

    /// The clusters, conditions, samples, doublets, shift and markers used.
    pub fn truth(&self) -> Truth {
        let k = self.opts.n_clusters;
        let n = self.opts.n_cells;
        let parents: Vec<Option<(u32, u32)>> = (0..n)
            .map(|i| match self.partner.get(i) {
                Some(Some(b)) => Some((self.cluster[i], *b)),
                _ => None,
            })
            .collect();
        Truth {
            cluster: self.cluster.clone(),
            condition: self.condition.clone(),
            markers: self.markers.clone(),
            condition_specific_clusters: ((k - self.n_spec) as u32..k as u32).collect(),
            sample: self.sample_of.iter().map(|&s| s as u32).collect(),
            sample_names: self.sample_names(),
            doublet: parents.iter().map(Option::is_some).collect(),
            doublet_parents: parents,
            shift: self.shift.clone(),
            condition_proportions: self.condition_proportions.clone(),
            sample_proportions: self.sample_proportions.clone(),
            sample_library_factor: if self.lib_factor.is_empty() {
                vec![1.0; self.opts.n_samples()]
            } else {
                self.lib_factor.clone()
            },
            batch_factors: self
                .batch
                .as_ref()
                .map(|b| b.factors.clone())
                .unwrap_or_default(),
        }
    }
}

/// One negative-binomial count with mean `mu` and dispersion `phi` (`inv_phi = 1/phi`), drawn
/// by inversion with a single uniform; appended to `idx`/`val` when not zero.
#[inline(always)]
fn nb_draw(
    mu: f64,
    phi: f64,
    inv_phi: f64,
    r: &mut ChaCha8Rng,
    g: usize,
    idx: &mut Vec<u32>,
    val: &mut Vec<f32>,
) {
    let u: f64 = r.gen();
    // Fast exit without `ln_1p` and `exp` for most genes: P(X = 0) = (1 + μφ)^(-1/φ) >= 1 - μ
    // (Bernoulli's inequality), and the computed value is within 1e-15 (relative) of it when
    // μ < 1, so below this margin `u < p0` holds for the computed `p0` too: same result as the
    // full test, several times faster.
    if u < (1.0 - mu) - 1e-12 {
        return;
    }
    // P(X = 0) for NB(mean mu, dispersion phi).
    let p0 = (-inv_phi * (mu * phi).ln_1p()).exp();
    if u < p0 {
        return;
    }
    // Inverse CDF with the same uniform: p_{k+1} = p_k (k + r) / (k + 1) q,
    // r = 1/φ, q = μφ / (1 + μφ).
    let q = mu * phi / (1.0 + mu * phi);
    let (mut pk, mut cum, mut x) = (p0, p0, 0u32);
    while u >= cum && x < 10_000_000 {
        pk *= (x as f64 + inv_phi) / (x as f64 + 1.0) * q;
        x += 1;
        cum += pk;
        if pk == 0.0 {
            break;
        }
    }
    idx.push(g as u32);
    val.push(x as f32);
}

/// A 10x-style 16-letter barcode for cell `i` (distinct for distinct `i`), with suffix `-1`.
fn barcode(i: usize) -> String {
    const ACGT: [u8; 4] = *b"ACGT";
    let mut s = String::with_capacity(18);
    let mut x = i as u64;
    for _ in 0..16 {
        s.push(ACGT[(x & 3) as usize] as char);
        x >>= 2;
    }
    s.push_str("-1");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimulateOptions {
        SimulateOptions {
            n_cells: 400,
            n_genes: 2_000,
            n_clusters: 4,
            n_markers: 20,
            ..Default::default()
        }
    }

    #[test]
    fn same_seed_same_data_any_threads() {
        let o = small();
        let a = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| simulate(&o).unwrap());
        let b = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| simulate(&o).unwrap());
        assert_eq!(a.dataset, b.dataset);
        assert_eq!(a.truth, b.truth);
        let c = simulate(&SimulateOptions { seed: 1, ..o }).unwrap();
        assert_ne!(a.dataset.counts, c.dataset.counts);
    }

    #[test]
    fn counts_in_chunks_equal_the_whole() {
        let o = small();
        let sim = Simulator::new(&o).unwrap();
        let whole = simulate(&o).unwrap().dataset.counts.into_csr();
        let mut rows = 0;
        for (a, b) in [(0, 7), (7, 7), (7, 250), (250, 400)] {
            let part = sim.counts(a..b).unwrap();
            assert_eq!(part.n_rows(), b - a);
            for r in 0..part.n_rows() {
                assert_eq!(part.row(r), whole.row(a + r));
            }
            rows += part.n_rows();
        }
        assert_eq!(rows, 400);
        assert!(sim.counts(390..401).is_err());
    }

    #[test]
    fn structure_matches_options() {
        let s = simulate(&small()).unwrap();
        let d = &s.dataset;
        assert_eq!((d.n_cells(), d.n_genes()), (400, 2000));
        // The condition-specific cluster (3) has no parental cells.
        for i in 0..d.n_cells() {
            if s.truth.cluster[i] == 3 {
                assert_eq!(d.cells.condition[i], "resistant");
            }
        }
        assert!(s.truth.cluster.contains(&3));
        assert_eq!(d.cells.sample[0], "parental_1");
        assert_eq!(d.cells.sample[399], "resistant_2");
        // Markers are higher in their cluster than elsewhere.
        let m = &s.truth.markers[0];
        let (mut inside, mut n_in, mut outside, mut n_out) = (0.0, 0, 0.0, 0);
        let totals = d.counts.row_sums();
        let counts = d.counts.to_csr();
        for (i, &total) in totals.iter().enumerate() {
            let (idx, val) = counts.row(i);
            let e: f64 = idx
                .iter()
                .zip(val)
                .filter(|(g, _)| m.binary_search(&(**g as usize)).is_ok())
                .map(|(_, &v)| v as f64)
                .sum::<f64>()
                / total;
            if s.truth.cluster[i] == 0 {
                inside += e;
                n_in += 1;
            } else {
                outside += e;
                n_out += 1;
            }
        }
        assert!(inside / n_in as f64 > 2.0 * outside / n_out as f64);
        // Library sizes near the requested median.
        let mut t = totals.clone();
        t.sort_by(f64::total_cmp);
        let med = t[t.len() / 2];
        assert!((5_000.0..12_000.0).contains(&med), "median total {med}");
        assert!(d.genes.symbols[0].starts_with("MT-"));
    }

    #[test]
    fn rejects_bad_options() {
        assert!(simulate(&SimulateOptions {
            n_cells: 0,
            ..small()
        })
        .is_err());
        assert!(simulate(&SimulateOptions {
            dispersion: -1.0,
            ..small()
        })
        .is_err());
        assert!(simulate(&SimulateOptions {
            n_markers: 10_000,
            ..small()
        })
        .is_err());
    }
}
