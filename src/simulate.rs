//! A seeded simulator of single-cell count matrices with known clusters and conditions.
//!
//! Model (in the spirit of Splatter, Zappia et al. 2017, simplified):
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
//! Every cell has its own random stream derived from `(seed, cell index)`, so the result is the
//! same whatever the number of threads.

use crate::dataset::{CellTable, Dataset, GeneTable};
use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

/// Options of [`simulate`].
#[derive(Debug, Clone, PartialEq)]
pub struct SimulateOptions {
    /// Number of cells. Default 5,000.
    pub n_cells: usize,
    /// Number of genes. Default 20,000.
    pub n_genes: usize,
    /// Number of clusters. Default 8.
    pub n_clusters: usize,
    /// Marker genes up-regulated per cluster. Default 40.
    pub n_markers: usize,
    /// Median fold change of marker genes. Default 4 (an easy setting; 1.5 is hard).
    pub marker_fold: f64,
    /// Median library size (UMIs per cell). Default 8,000.
    pub library_size: f64,
    /// Standard deviation of log library size. Default 0.35.
    pub library_log_sd: f64,
    /// Standard deviation of log baseline gene expression. Default 2.3 (about 12% non-zero).
    pub gene_log_sd: f64,
    /// Negative-binomial dispersion φ. Default 0.2.
    pub dispersion: f64,
    /// Condition names. Default `["parental", "resistant"]`.
    pub conditions: Vec<String>,
    /// Samples per condition. Default 2.
    pub samples_per_condition: usize,
    /// Clusters found only in the last condition. Default 1.
    pub condition_specific: usize,
    /// Relative share, in the last condition, of the cluster just before the
    /// condition-specific ones (1 = not depleted). Default 0.1.
    pub depleted_share: f64,
    /// Mitochondrial genes (symbols `MT-…`, moderately high expression). Default 13.
    pub n_mito: usize,
    /// Random seed. Default 0.
    pub seed: u64,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        SimulateOptions {
            n_cells: 5_000,
            n_genes: 20_000,
            n_clusters: 8,
            n_markers: 40,
            marker_fold: 4.0,
            library_size: 8_000.0,
            library_log_sd: 0.35,
            gene_log_sd: 2.3,
            dispersion: 0.2,
            conditions: vec!["parental".to_string(), "resistant".to_string()],
            samples_per_condition: 2,
            condition_specific: 1,
            depleted_share: 0.1,
            n_mito: 13,
            seed: 0,
        }
    }
}

/// What the simulator knows about the data it made.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// Cluster of each cell.
    pub cluster: Vec<u32>,
    /// Condition index of each cell (into `SimulateOptions::conditions`).
    pub condition: Vec<u32>,
    /// Marker gene indices of each cluster.
    pub markers: Vec<Vec<usize>>,
    /// Clusters that exist only in the last condition.
    pub condition_specific_clusters: Vec<u32>,
}

/// A simulated dataset and its truth.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// Counts with cell (barcode, sample, condition) and gene tables.
    pub dataset: Dataset,
    /// The clusters, conditions and markers used to make it.
    pub truth: Truth,
}

fn check(opts: &SimulateOptions) -> Result<()> {
    let pos = |name: &'static str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(Error::option(
                name,
                format!("must be positive and finite, got {v}"),
            ))
        }
    };
    if opts.n_cells == 0 || opts.n_genes == 0 || opts.n_clusters == 0 {
        return Err(Error::option(
            "n_cells/n_genes/n_clusters",
            "must all be at least 1",
        ));
    }
    if opts.conditions.is_empty() || opts.samples_per_condition == 0 {
        return Err(Error::option(
            "conditions",
            "need at least one condition and one sample per condition",
        ));
    }
    if opts.condition_specific >= opts.n_clusters && opts.conditions.len() > 1 {
        return Err(Error::option(
            "condition_specific",
            "must leave at least one cluster shared by all conditions",
        ));
    }
    if opts.n_mito + opts.n_clusters * opts.n_markers > opts.n_genes / 2 + opts.n_mito {
        return Err(Error::option(
            "n_markers",
            "markers of all clusters must fit in half of the genes",
        ));
    }
    pos("marker_fold", opts.marker_fold)?;
    pos("library_size", opts.library_size)?;
    pos("dispersion", opts.dispersion)?;
    pos("depleted_share", opts.depleted_share)?;
    if !(opts.library_log_sd >= 0.0 && opts.gene_log_sd >= 0.0) {
        return Err(Error::option("library_log_sd/gene_log_sd", "must be >= 0"));
    }
    Ok(())
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
    /// Relative expression of every gene, per cluster.
    profiles: Vec<Vec<f64>>,
    markers: Vec<Vec<usize>>,
    cluster: Vec<u32>,
    condition: Vec<u32>,
    sample_of: Vec<usize>,
    n_spec: usize,
    lib: Normal<f64>,
}

impl Simulator {
    /// Draws the gene profiles, markers and the cluster, condition and sample of every cell
    /// (memory: `n_clusters x n_genes` numbers plus a few per cell; no counts yet).
    pub fn new(opts: &SimulateOptions) -> Result<Simulator> {
        check(opts)?;
        let n_genes = opts.n_genes;
        let k = opts.n_clusters;
        let mut rng = rng_for(opts.seed, u64::MAX);

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
        let profiles: Vec<Vec<f64>> = markers
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
        let n_spec = if n_cond > 1 {
            opts.condition_specific
        } else {
            0
        };
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
        let weights: Vec<rand::distributions::WeightedIndex<f64>> = (0..n_cond)
            .map(|c| rand::distributions::WeightedIndex::new(cluster_weights(c)))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::option("n_clusters", e.to_string()))?;
        let n_samples = n_cond * opts.samples_per_condition;
        let mut cluster = Vec::with_capacity(opts.n_cells);
        let mut condition = Vec::with_capacity(opts.n_cells);
        let mut sample_of = Vec::with_capacity(opts.n_cells);
        for i in 0..opts.n_cells {
            // Cells are laid out sample by sample, as concatenated samples would be.
            let s = i * n_samples / opts.n_cells;
            let cond = s / opts.samples_per_condition;
            sample_of.push(s);
            condition.push(cond as u32);
            cluster.push(weights[cond].sample(&mut rng) as u32);
        }
        let lib = Normal::new(opts.library_size.ln(), opts.library_log_sd)
            .map_err(|e| Error::option("library_log_sd", e.to_string()))?;
        Ok(Simulator {
            opts: opts.clone(),
            profiles,
            markers,
            cluster,
            condition,
            sample_of,
            n_spec,
            lib,
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
        let phi = opts.dispersion;
        let inv_phi = 1.0 / phi;
        let n_rows = cells.len();
        let rows: Vec<(Vec<u32>, Vec<f32>)> = cells
            .into_par_iter()
            .map(|i| {
                let mut r = rng_for(opts.seed, i as u64);
                let l = self.lib.sample(&mut r).exp();
                let p = &self.profiles[self.cluster[i] as usize];
                let mut idx = Vec::new();
                let mut val = Vec::new();
                for (g, &pg) in p.iter().enumerate() {
                    let mu = l * pg;
                    // P(X = 0) for NB(mean mu, dispersion phi).
                    let p0 = (-inv_phi * (mu * phi).ln_1p()).exp();
                    let u: f64 = r.gen();
                    if u < p0 {
                        continue;
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

    /// The cell table: barcodes, sample (`<condition>_<k>`) and condition of every cell.
    pub fn cells(&self) -> CellTable {
        let opts = &self.opts;
        let n_samples = opts.conditions.len() * opts.samples_per_condition;
        let sample_names: Vec<String> = (0..n_samples)
            .map(|s| {
                let c = s / opts.samples_per_condition;
                format!(
                    "{}_{}",
                    opts.conditions[c],
                    s % opts.samples_per_condition + 1
                )
            })
            .collect();
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

    /// The clusters, conditions and markers used.
    pub fn truth(&self) -> Truth {
        let k = self.opts.n_clusters;
        Truth {
            cluster: self.cluster.clone(),
            condition: self.condition.clone(),
            markers: self.markers.clone(),
            condition_specific_clusters: ((k - self.n_spec) as u32..k as u32).collect(),
        }
    }
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
        let whole = simulate(&o).unwrap().dataset.counts;
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
        for (i, &total) in totals.iter().enumerate() {
            let (idx, val) = d.counts.row(i);
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
