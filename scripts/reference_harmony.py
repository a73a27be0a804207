#!/usr/bin/env python3
"""Reference values for `scrna::integrate` (Harmony and the integration LISI).

Versions used to write the committed files:
    python 3.11, harmonypy 2.1.0 (C++ backend), numpy 2.x, pandas

Run from the repository root with the repository's .venv:
    .venv/bin/python scripts/reference_harmony.py

The input is a seeded Gaussian mixture in a 16-dimensional "PCA" space: 6 cell types x 4
batches, 2,400 cells. Cell-type means are N(0, 3^2) per dimension; each batch adds its own
shift N(0, 2^2) per dimension plus a smaller type-specific part N(0, 0.5^2); noise is N(0, 1).
Cell-type proportions differ between batches, so that batches are not balanced within types.

harmonypy is run with the parameters of `scrna::integrate::HarmonyOptions::default()`:
theta 2, lamb 1 (a fixed ridge penalty, not harmonypy 2's default estimation), sigma 0.1,
nclust min(round(N / 30), 100) = 80, block_size 0.05, max_iter_harmony 10,
max_iter_kmeans 20, epsilon_cluster 1e-5, epsilon_harmony 1e-4, random_state 0, ncores 1.

Writes into fixtures/harmony/ (gzipped CSV, values with 7 significant digits):
  input.csv.gz      cell_type, batch, PC1..PC16 (the embedding given to both implementations)
  harmonypy.csv.gz  harmonypy's corrected embedding Z_corr (cells x PCs), cells in input order
  lisi.csv.gz       harmonypy.compute_lisi (perplexity 30) of the batch labels on the input
                    (lisi_input) and on harmonypy's corrected embedding (lisi_harmonypy)
  harmonypy_lambda_estimated.csv.gz
                    the same run with harmonypy's default ridge penalty, estimated per cluster
                    and batch (lamb None, alpha 0.2; `HarmonyOptions::default()` since 0.2)
  summary.csv       harmonypy's iterations and objective values (both runs)
"""
import gzip
import os

import numpy as np
import pandas as pd
import harmonypy

OUT = os.path.join("fixtures", "harmony")
N_TYPES, N_BATCHES, DIM = 6, 4, 16


def simulate(seed=20190101):
    rng = np.random.default_rng(seed)
    type_means = rng.normal(0.0, 3.0, size=(N_TYPES, DIM))
    batch_shift = rng.normal(0.0, 2.0, size=(N_BATCHES, DIM))
    type_batch = rng.normal(0.0, 0.5, size=(N_TYPES, N_BATCHES, DIM))
    types, batches, rows = [], [], []
    for b in range(N_BATCHES):
        # 600 cells per batch; type proportions differ between batches
        w = rng.dirichlet(np.full(N_TYPES, 4.0))
        counts = rng.multinomial(600, w)
        for t in range(N_TYPES):
            for _ in range(counts[t]):
                x = type_means[t] + batch_shift[b] + type_batch[t, b] + rng.normal(0.0, 1.0, DIM)
                rows.append(x)
                types.append(t)
                batches.append(b)
    order = rng.permutation(len(rows))
    X = np.asarray(rows)[order].astype(np.float32)
    return X, np.asarray(types)[order], np.asarray(batches)[order]


def write_csv(path, header, columns, fmt):
    with gzip.open(path, "wt", compresslevel=9) as f:
        f.write(",".join(header) + "\n")
        for row in zip(*columns):
            f.write(",".join(fm % v for fm, v in zip(fmt, row)) + "\n")


def corrected(ho, X):
    Z = np.asarray(ho.Z_corr)
    if Z.shape != X.shape:  # some builds return PCs x cells
        Z = Z.T
    assert Z.shape == X.shape, Z.shape
    return Z


def main():
    os.makedirs(OUT, exist_ok=True)
    X, types, batches = simulate()
    n = X.shape[0]
    meta = pd.DataFrame({"batch": batches.astype(str)})
    ho = harmonypy.run_harmony(
        X.astype(np.float64), meta, ["batch"],
        theta=2.0, lamb=1.0, sigma=0.1, nclust=None, block_size=0.05,
        max_iter_harmony=10, max_iter_kmeans=20, epsilon_cluster=1e-5,
        epsilon_harmony=1e-4, random_state=0, verbose=False, ncores=1,
    )
    Z = corrected(ho, X)
    ho_est = harmonypy.run_harmony(
        X.astype(np.float64), meta, ["batch"],
        theta=2.0, lamb=None, alpha=0.2, sigma=0.1, nclust=None, block_size=0.05,
        max_iter_harmony=10, max_iter_kmeans=20, epsilon_cluster=1e-5,
        epsilon_harmony=1e-4, random_state=0, verbose=False, ncores=1,
    )
    Z_est = corrected(ho_est, X)
    lisi_est = harmonypy.compute_lisi(Z_est.astype(np.float64), meta, ["batch"], 30)[:, 0]
    lisi_in = harmonypy.compute_lisi(X.astype(np.float64), meta, ["batch"], 30)[:, 0]
    lisi_out = harmonypy.compute_lisi(Z.astype(np.float64), meta, ["batch"], 30)[:, 0]

    pcs = [f"PC{j + 1}" for j in range(DIM)]
    write_csv(os.path.join(OUT, "input.csv.gz"), ["cell_type", "batch"] + pcs,
              [types, batches] + [X[:, j] for j in range(DIM)], ["%d", "%d"] + ["%.7g"] * DIM)
    write_csv(os.path.join(OUT, "harmonypy.csv.gz"), pcs, [Z[:, j] for j in range(DIM)],
              ["%.7g"] * DIM)
    write_csv(os.path.join(OUT, "harmonypy_lambda_estimated.csv.gz"), pcs,
              [Z_est[:, j] for j in range(DIM)], ["%.7g"] * DIM)
    write_csv(os.path.join(OUT, "lisi.csv.gz"), ["lisi_input", "lisi_harmonypy"],
              [lisi_in, lisi_out], ["%.9g", "%.9g"])
    obj = list(ho.objective_harmony)
    with open(os.path.join(OUT, "summary.csv"), "w") as f:
        f.write("key,value\n")
        f.write(f"n_cells,{n}\n")
        f.write(f"n_clusters,{ho.K}\n")
        f.write(f"harmony_iterations,{len(obj) - 1}\n")
        f.write(f"kmeans_rounds,{' '.join(str(r) for r in ho.kmeans_rounds)}\n")
        f.write(f"objective_harmony,{' '.join('%.9g' % v for v in obj)}\n")
        f.write(f"mean_lisi_input,{lisi_in.mean():.9g}\n")
        f.write(f"mean_lisi_harmonypy,{lisi_out.mean():.9g}\n")
        obj_est = list(ho_est.objective_harmony)
        f.write(f"lambda_estimated_iterations,{len(obj_est) - 1}\n")
        f.write(f"lambda_estimated_objective_harmony,{' '.join('%.9g' % v for v in obj_est)}\n")
        f.write(f"mean_lisi_harmonypy_lambda_estimated,{lisi_est.mean():.9g}\n")
    print(open(os.path.join(OUT, "summary.csv")).read())


if __name__ == "__main__":
    main()
