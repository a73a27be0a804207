//! Setting up a run: the working state, the initial k-means on `Z_cos` and the first
//! assignments without the diversity penalty.

use super::kernels::{
    cells_times_rows, cosine_normalize, dot, mean_variance, normalize_rows, sq_dist,
};
use super::{Chunk, HarmonyOptions, State, CHUNK, INIT_MAX_ITER};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

impl State {
    pub(super) fn new(
        z_orig: Vec<f32>,
        batch: Vec<u32>,
        nb: usize,
        d: usize,
        k: usize,
        opts: &HarmonyOptions,
    ) -> Self {
        let n = batch.len();
        let mut counts = vec![0usize; nb];
        for &b in &batch {
            counts[b as usize] += 1;
        }
        let mut chunks = Vec::new();
        let mut start = 0;
        for (b, &c) in counts.iter().enumerate() {
            let end = start + c;
            let mut s = start;
            while s < end {
                let e = (s + CHUNK).min(end);
                chunks.push(Chunk {
                    start: s,
                    end: e,
                    batch: b,
                });
                s = e;
            }
            start = end;
        }
        let pr_b = counts.iter().map(|&c| c as f64 / n as f64).collect();
        let mut z_cos = vec![0.0f32; n * d];
        cosine_normalize(&z_orig, &mut z_cos, d);
        State {
            n,
            d,
            k,
            nb,
            z_corr: z_orig.clone(),
            z_orig,
            z_cos,
            batch,
            chunks,
            pr_b,
            y: vec![0.0; k * d],
            dist: vec![0.0; n * k],
            scale: vec![0.0; n * k],
            r: vec![0.0; n * k],
            kernel_term: vec![0.0; n],
            cell_term: vec![0.0; n],
            size: vec![0.0; k],
            o: vec![0.0; k * nb],
            theta: opts.theta,
            sigma: opts.sigma,
            lambda: opts.lambda,
            alpha: opts.alpha,
            block_size: opts.block_size,
            max_iter_kmeans: opts.max_iter_kmeans,
            epsilon_cluster: opts.epsilon_cluster,
            epsilon_harmony: opts.epsilon_harmony,
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            objective_kmeans: Vec::new(),
            objective_harmony: Vec::new(),
            kmeans_steps: Vec::new(),
        }
    }

    /// Initial centroids by k-means on `Z_cos`, then `R`, `O`, `E` and the first objective.
    pub(super) fn init_clusters(&mut self) {
        self.kmeans_init();
        normalize_rows(&mut self.y, self.d);
        self.assign_without_diversity();
        self.objective();
        if let Some(&last) = self.objective_kmeans.last() {
            self.objective_harmony.push(last);
        }
    }

    /// Distances of `Z_cos` to the centroids, `R` = the kernel without the diversity penalty,
    /// and `O`, `E` from it.
    pub(super) fn assign_without_diversity(&mut self) {
        self.distances();
        self.scale_from_dist();
        self.r.copy_from_slice(&self.scale);
        // R = the kernel: R_ik ln R_ik = R_ik (-(d_ik - m_i) / σ - ln S_i), and Σ_k R_ik = 1.
        self.cell_term.copy_from_slice(&self.kernel_term);
        self.recount();
    }

    /// k-means++ seeding then Lloyd steps on `Z_cos`; leaves the centroids in `y`.
    fn kmeans_init(&mut self) {
        let (n, d, k) = (self.n, self.d, self.k);
        let x = &self.z_cos;
        // k-means++: the first centre uniformly, then each with probability ∝ D².
        let first = self.rng.gen_range(0..n);
        self.y[..d].copy_from_slice(&x[first * d..(first + 1) * d]);
        let mut closest: Vec<f64> = x
            .par_chunks(d)
            .map(|row| sq_dist(row, &self.y[..d]))
            .collect();
        for c in 1..k {
            let total: f64 = closest.iter().sum();
            let pick = if total > 0.0 {
                let target = self.rng.gen::<f64>() * total;
                let mut acc = 0.0;
                let mut pick = n - 1;
                for (i, &v) in closest.iter().enumerate() {
                    acc += v;
                    if acc > target {
                        pick = i;
                        break;
                    }
                }
                pick
            } else {
                self.rng.gen_range(0..n)
            };
            self.y[c * d..(c + 1) * d].copy_from_slice(&x[pick * d..(pick + 1) * d]);
            let centre = &self.y[c * d..(c + 1) * d];
            closest
                .par_iter_mut()
                .zip(x.par_chunks(d))
                .for_each(|(m, row)| {
                    let v = sq_dist(row, centre);
                    if v < *m {
                        *m = v;
                    }
                });
        }
        // Lloyd steps; stop when no label changes or the centroids move by less than
        // 1e-4 x the mean coordinate variance (scikit-learn's tolerance).
        let tol = 1e-4 * mean_variance(x, n, d);
        let mut labels = vec![u32::MAX; n];
        let mut new_labels = vec![0u32; n];
        for _ in 0..INIT_MAX_ITER {
            let cnorm: Vec<f32> = self.y.chunks_exact(d).map(|c| dot(c, c)).collect();
            cells_times_rows(x, d, &self.y, k, &mut self.dist, &self.chunks);
            new_labels
                .par_iter_mut()
                .zip(self.dist.par_chunks(k))
                .for_each(|(l, dots)| {
                    let mut best = f32::INFINITY;
                    let mut arg = 0;
                    for (c, (&dt, &cn)) in dots.iter().zip(&cnorm).enumerate() {
                        let s = cn - 2.0 * dt;
                        if s < best {
                            best = s;
                            arg = c;
                        }
                    }
                    *l = arg as u32;
                });
            if new_labels == labels {
                break;
            }
            std::mem::swap(&mut labels, &mut new_labels);
            // Means of the clusters, summed over fixed chunks in order.
            let partials: Vec<(Vec<f64>, Vec<f64>)> = self
                .chunks
                .par_iter()
                .map(|ch| {
                    let mut sums = vec![0.0f64; k * d];
                    let mut counts = vec![0.0f64; k];
                    for i in ch.start..ch.end {
                        let l = labels[i] as usize;
                        counts[l] += 1.0;
                        for (s, &v) in sums[l * d..(l + 1) * d]
                            .iter_mut()
                            .zip(&x[i * d..(i + 1) * d])
                        {
                            *s += v as f64;
                        }
                    }
                    (sums, counts)
                })
                .collect();
            let mut sums = vec![0.0f64; k * d];
            let mut counts = vec![0.0f64; k];
            for (s, c) in &partials {
                for (a, b) in sums.iter_mut().zip(s) {
                    *a += b;
                }
                for (a, b) in counts.iter_mut().zip(c) {
                    *a += b;
                }
            }
            let mut shift = 0.0f64;
            for c in 0..k {
                if counts[c] == 0.0 {
                    continue; // an empty cluster keeps its centre
                }
                for j in 0..d {
                    let m = sums[c * d + j] / counts[c];
                    let old = self.y[c * d + j] as f64;
                    shift += (m - old) * (m - old);
                    self.y[c * d + j] = m as f32;
                }
            }
            if shift <= tol {
                break;
            }
        }
    }
}
