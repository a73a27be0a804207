//! Soft k-means with the diversity penalty: distances, the kernel, the blockwise update of
//! the assignments, the objective and the convergence tests.

use super::kernels::cells_times_rows;
use super::{State, CHUNK, WINDOW};
use rand::seq::SliceRandom;
use rayon::prelude::*;

impl State {
    /// `dist = 2 (1 - Z_cos Yᵀ)`.
    pub(super) fn distances(&mut self) {
        let k = self.k;
        cells_times_rows(
            &self.z_cos,
            self.d,
            &self.y,
            k,
            &mut self.dist,
            &self.chunks,
        );
        self.dist
            .par_chunks_mut(CHUNK * k)
            .for_each(|c| c.iter_mut().for_each(|v| *v = 2.0 * (1.0 - *v)));
    }

    /// `scale_ik = exp(-d_ik / σ)` normalized over the clusters of each cell, and the cell's
    /// `m_i - σ ln S_i` (`m_i = min_k d_ik`, `S_i = Σ_k exp(-(d_ik - m_i) / σ)`).
    pub(super) fn scale_from_dist(&mut self) {
        let k = self.k;
        let sigma = self.sigma;
        let inv = (1.0 / sigma) as f32;
        self.scale
            .par_chunks_mut(CHUNK * k)
            .zip(self.dist.par_chunks(CHUNK * k))
            .zip(self.kernel_term.par_chunks_mut(CHUNK))
            .for_each(|((sc, dc), kt)| {
                for ((s, dr), kv) in sc.chunks_exact_mut(k).zip(dc.chunks_exact(k)).zip(kt) {
                    let m = dr.iter().copied().fold(f32::INFINITY, f32::min);
                    let mut total = 0.0f32;
                    for (sv, &dv) in s.iter_mut().zip(dr) {
                        let e = (-(dv - m) * inv).exp();
                        *sv = e;
                        total += e;
                    }
                    let t = 1.0 / total;
                    s.iter_mut().for_each(|v| *v *= t);
                    *kv = m as f64 - sigma * (total as f64).ln();
                }
            });
    }

    /// Recomputes `size` and `O` from `R`.
    pub(super) fn recount(&mut self) {
        let k = self.k;
        let partials: Vec<Vec<f64>> = self
            .chunks
            .par_iter()
            .map(|ch| {
                let mut s = vec![0.0f64; k];
                for row in self.r[ch.start * k..ch.end * k].chunks_exact(k) {
                    for (a, &v) in s.iter_mut().zip(row) {
                        *a += v as f64;
                    }
                }
                s
            })
            .collect();
        self.size.iter_mut().for_each(|v| *v = 0.0);
        self.o.iter_mut().for_each(|v| *v = 0.0);
        for (ch, s) in self.chunks.iter().zip(&partials) {
            for (c, &v) in s.iter().enumerate() {
                self.size[c] += v;
                self.o[ch.batch * k + c] += v;
            }
        }
    }

    /// `size_k = Σ_b O_kb`.
    fn sizes_from_o(&mut self) {
        let k = self.k;
        self.size.iter_mut().for_each(|v| *v = 0.0);
        for ob in self.o.chunks_exact(k) {
            for (a, &v) in self.size.iter_mut().zip(ob) {
                *a += v;
            }
        }
    }

    /// Appends the current objective to `objective_kmeans`.
    ///
    /// The distance and entropy terms need no logarithm per element: with
    /// `R_ik = s_ik p_kb / T_i`, `s_ik = exp(-(d_ik - m_i) / σ) / S_i` and `T_i` the cell's
    /// normalizer, `d_ik + σ ln R_ik = m_i - σ ln S_i + σ ln p_kb - σ ln T_i`, so each cell
    /// contributes `(m_i - σ ln S_i - σ ln T_i) Σ_k R_ik + σ Σ_k R_ik ln p_kb`, computed when
    /// its assignments are updated (`cell_term`).
    pub(super) fn objective(&mut self) {
        let k = self.k;
        let err_ent: f64 = self.cell_term.iter().sum();
        let mut cross = 0.0;
        for c in 0..k {
            for b in 0..self.nb {
                let o = self.o[b * k + c].max(0.0);
                let e = self.size[c] * self.pr_b[b];
                cross += o * ((o + e + 1.0) / (2.0 * e + 1.0)).ln();
            }
        }
        let norm = 2000.0 / self.n as f64;
        self.objective_kmeans
            .push((err_ent + self.sigma * self.theta * cross) * norm);
    }

    /// One round of soft k-means with the diversity penalty.
    pub(super) fn cluster(&mut self) {
        if self.objective_harmony.len() > 1 {
            // After a correction: distances of the corrected cells to the centroids the
            // correction estimated, and assignments without the diversity penalty.
            self.assign_without_diversity();
        }
        let mut steps = 0;
        for i in 0..self.max_iter_kmeans {
            steps += 1;
            self.update_r();
            self.objective();
            if i > WINDOW && self.kmeans_converged() {
                break;
            }
        }
        self.kmeans_steps.push(steps);
        if let Some(&last) = self.objective_kmeans.last() {
            self.objective_harmony.push(last);
        }
    }

    fn kmeans_converged(&self) -> bool {
        let o = &self.objective_kmeans;
        if o.len() < WINDOW + 1 {
            return false;
        }
        let m = o.len();
        let new: f64 = o[m - WINDOW..].iter().sum();
        let old: f64 = o[m - WINDOW - 1..m - 1].iter().sum();
        (old - new).abs() / old.abs() < self.epsilon_cluster
    }

    pub(super) fn harmony_converged(&self) -> bool {
        let o = &self.objective_harmony;
        if o.len() < 2 {
            return false;
        }
        let (old, new) = (o[o.len() - 2], o[o.len() - 1]);
        let delta = (old - new) / old.abs();
        (0.0..self.epsilon_harmony).contains(&delta)
    }

    /// The blockwise update of `R` with the diversity penalty.
    fn update_r(&mut self) {
        let (n, k, nb) = (self.n, self.k, self.nb);
        let mut perm: Vec<u32> = (0..n as u32).collect();
        perm.shuffle(&mut self.rng);
        let n_blocks = (1.0 / self.block_size).ceil() as usize;
        let per_block = n.div_ceil(n_blocks.max(1)).max(1);
        let theta = self.theta;
        let sigma = self.sigma;
        let mut penalty = vec![0.0f32; k * nb];
        let mut ln_penalty = vec![0.0f32; k * nb];
        let mut new_rows = vec![0.0f32; per_block * k];
        let mut new_terms = vec![0.0f64; per_block];
        for block in perm.chunks(per_block) {
            // Remove the block's cells from the counts.
            for &i in block {
                let i = i as usize;
                let b = self.batch[i] as usize;
                let ob = &mut self.o[b * k..(b + 1) * k];
                for (a, &v) in ob.iter_mut().zip(&self.r[i * k..(i + 1) * k]) {
                    *a -= v as f64;
                }
            }
            self.sizes_from_o();
            // ((2E + 1) / (O + E + 1))^θ per cluster and batch.
            for c in 0..k {
                for b in 0..nb {
                    let e = self.size[c] * self.pr_b[b];
                    let o = self.o[b * k + c].max(0.0);
                    let ln_p = theta * ((2.0 * e + 1.0) / (o + e + 1.0)).ln();
                    penalty[b * k + c] = ln_p.exp() as f32;
                    ln_penalty[b * k + c] = ln_p as f32;
                }
            }
            let rows = &mut new_rows[..block.len() * k];
            let terms = &mut new_terms[..block.len()];
            let scale = &self.scale;
            let batch = &self.batch;
            let kernel_term = &self.kernel_term;
            let penalty = &penalty;
            let ln_penalty = &ln_penalty;
            rows.par_chunks_mut(k)
                .zip(terms.par_iter_mut())
                .zip(block.par_iter())
                .for_each(|((row, term), &i)| {
                    let i = i as usize;
                    let b = batch[i] as usize;
                    let p = &penalty[b * k..(b + 1) * k];
                    let lp = &ln_penalty[b * k..(b + 1) * k];
                    let mut total = 0.0f32;
                    for ((rv, &sv), &pv) in row.iter_mut().zip(&scale[i * k..(i + 1) * k]).zip(p) {
                        *rv = sv * pv;
                        total += *rv;
                    }
                    let total = total.max(1e-8);
                    let t = 1.0 / total;
                    let (mut mass, mut cross) = (0.0f32, 0.0f32);
                    for (v, &l) in row.iter_mut().zip(lp) {
                        *v *= t;
                        mass += *v;
                        cross += *v * l;
                    }
                    // Σ_k R_ik d_ik + σ Σ_k R_ik ln R_ik (see `objective`).
                    let kt = kernel_term.get(i).copied().unwrap_or_default();
                    *term = (kt - sigma * (total as f64).ln()) * mass as f64 + sigma * cross as f64;
                });
            // Put the cells back with their new assignments.
            for ((row, &term), &i) in rows.chunks_exact(k).zip(terms.iter()).zip(block) {
                let i = i as usize;
                let b = self.batch[i] as usize;
                self.r[i * k..(i + 1) * k].copy_from_slice(row);
                self.cell_term[i] = term;
                let ob = &mut self.o[b * k..(b + 1) * k];
                for (a, &v) in ob.iter_mut().zip(row) {
                    *a += v as f64;
                }
            }
        }
        self.sizes_from_o();
    }
}
