#!/usr/bin/env python
"""Reference values for scrna's doublet scores (tests/doublets.rs), from Scanpy's Scrublet.

Regenerate with:  .venv/bin/python scripts/reference_scrublet.py   (the repository's .venv)
Pinned versions: scanpy 1.11.5, scikit-image 0.26.0, scikit-learn 1.9.1, scipy 1.17.1.

1. A seeded negative-binomial mixture of 5 cell types, two pairs of them joined by continuous
   paths (1,410 singlets), plus 90 heterotypic doublets (6%: the summed counts of two singlets
   of different types), shuffled, 2,000 genes, written as a 10x folder (fixtures/scrublet/mixture/counts/). The known doublet flag
   is saved with Scanpy's results.
   `sc.pp.scrublet(adata, random_state=0)` with its defaults: sim_doublet_ratio=2,
   expected_doublet_rate=0.05, stdev_doublet_rate=0.02, n_prin_comps=30, n_neighbors=None
   (round(0.5 sqrt(n_obs))), mean_center and normalize_variance, no log, threshold=None
   (skimage's threshold_minimum on the simulated scores), exact kNN (fewer than 8,192 cells).
   Outputs in fixtures/scrublet/mixture/:
     scores.csv.gz      barcode, doublet_score, predicted_doublet, known_doublet
     sim_scores.csv.gz  Scanpy's simulated doublet scores (full precision)
     summary.json    threshold, n_neighbors, Scanpy's AUROC on the known doublets, ...
2. skimage's threshold_minimum on a few arrays (fixtures/scrublet/threshold_cases.json): two
   bimodal mixtures, one with a plateau-prone discrete support, a noisy unimodal array, and a
   single repeated value (skimage raises).

`--time DIR` instead times `sc.pp.scrublet(adata, batch_key="sample")` (3 runs, median) on
DIR/matrix.h5 (10x HDF5) with per-cell samples in DIR/samples.csv (barcode,sample), as
written by benches/doublets.rs with SCRNA_BENCH_DOUBLETS_DUMP=DIR.
"""
import gzip
import json
import os
import sys
import time

import numpy as np
import scanpy as sc
import scipy.io
import scipy.sparse as sp
from skimage.filters import threshold_minimum
from sklearn.metrics import roc_auc_score

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "scrublet")


def mixture():
    """Counts (cells x genes) and the known doublet flag.

    Types 0-1 and 2-3 are joined by continuous paths (80% of their cells lie at a uniform
    position between the two profiles), type 4 stands apart: cells along a path get
    systematically higher scores than the ends, so the ranks of singlet scores carry signal
    beyond the random draw of simulated pairs.
    """
    rng = np.random.default_rng(20260311)
    n_types, n_singlets, n_doublets, n_genes = 5, 1410, 90, 2000
    types = rng.integers(0, n_types, n_singlets)
    base = rng.lognormal(mean=-3.9, sigma=1.5, size=n_genes)
    fold = np.ones((n_types, n_genes))
    for t in range(n_types):
        idx = rng.choice(n_genes, 60, replace=False)
        fold[t, idx] = rng.lognormal(2.6, 0.4, 60)
    prof = fold[types]
    for lo, hi in [(0, 1), (2, 3)]:
        on = ((types == lo) | (types == hi)) & (rng.random(n_singlets) < 0.8)
        w = rng.random(n_singlets)[on, None]
        prof[on] = (1 - w) * fold[lo] + w * fold[hi]
    size = rng.lognormal(0.0, 0.3, n_singlets)
    mu = size[:, None] * base[None, :] * prof
    r = 3.0
    singlets = rng.negative_binomial(r, r / (r + mu))
    doublets = []
    while len(doublets) < n_doublets:
        a, b = rng.choice(n_singlets, 2, replace=False)
        if types[a] != types[b]:
            doublets.append(singlets[a] + singlets[b])
    counts = np.vstack([singlets, np.array(doublets)])
    known = np.r_[np.zeros(n_singlets, bool), np.ones(n_doublets, bool)]
    order = rng.permutation(len(known))
    return counts[order], known[order]


def write_10x(counts, path):
    os.makedirs(path, exist_ok=True)
    m = sp.coo_matrix(counts.T)  # genes x cells, as 10x writes it
    with gzip.open(os.path.join(path, "matrix.mtx.gz"), "wb") as f:
        scipy.io.mmwrite(f, m, field="integer")
    with gzip.open(os.path.join(path, "features.tsv.gz"), "wt") as f:
        for j in range(counts.shape[1]):
            f.write(f"MIXG{j:04d}\tMix{j:04d}\tGene Expression\n")
    with gzip.open(os.path.join(path, "barcodes.tsv.gz"), "wt") as f:
        for i in range(counts.shape[0]):
            f.write(f"CELL{i:04d}-1\n")


def reference_mixture():
    out = os.path.join(OUT, "mixture")
    counts, known = mixture()
    write_10x(counts, os.path.join(out, "counts"))
    adata = sc.read_10x_mtx(os.path.join(out, "counts"), var_names="gene_ids")
    sc.pp.scrublet(adata, random_state=0)
    scores = adata.obs["doublet_score"].to_numpy()
    pred = adata.obs["predicted_doublet"].to_numpy().astype(bool)
    with gzip.open(os.path.join(out, "scores.csv.gz"), "wt") as f:
        f.write("barcode,doublet_score,predicted_doublet,known_doublet\n")
        for bc, s, p, k in zip(adata.obs_names, scores, pred, known):
            f.write(f"{bc},{float(s)!r},{int(p)},{int(k)}\n")
    sim = adata.uns["scrublet"]["doublet_scores_sim"]
    with gzip.open(os.path.join(out, "sim_scores.csv.gz"), "wt") as f:
        f.write("doublet_score_sim\n")
        for s in sim:
            f.write(f"{float(s)!r}\n")
    summary = {
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "n_known_doublets": int(known.sum()),
        "threshold": float(adata.uns["scrublet"]["threshold"]),
        "n_neighbors": int(adata.uns["scrublet"]["parameters"]["n_neighbors"]),
        "n_predicted": int(pred.sum()),
        "auroc_scanpy": float(roc_auc_score(known, scores)),
        "random_state": 0,
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(summary)


def threshold_cases():
    rng = np.random.default_rng(7)
    cases = []
    arrays = {
        "bimodal_normal": np.r_[rng.normal(0.1, 0.05, 400), rng.normal(0.6, 0.1, 200)],
        "bimodal_gamma": np.r_[rng.gamma(2.0, 0.02, 500), rng.normal(0.45, 0.08, 150)],
        # discrete support as Scrublet's scores (few distinct values, many empty bins)
        "discrete": np.r_[rng.binomial(60, 0.1, 500), rng.binomial(60, 0.7, 250)] / 60.0,
        "unimodal": rng.normal(0.0, 1.0, 300),  # noisy: skimage still finds two maxima
        "single_value": np.full(100, 0.25),  # one peak: skimage raises
    }
    for name, x in arrays.items():
        try:
            t = float(threshold_minimum(x))
        except RuntimeError as e:
            t = None
            print(name, "->", e)
        cases.append({"name": name, "values": [float(v) for v in x], "threshold": t})
    with open(os.path.join(OUT, "threshold_cases.json"), "w") as f:
        json.dump(cases, f)


def time_batched(d):
    import pandas as pd

    adata = sc.read_10x_h5(os.path.join(d, "matrix.h5"))
    samples = pd.read_csv(os.path.join(d, "samples.csv"), index_col=0)
    adata.obs["sample"] = samples.loc[adata.obs_names, "sample"].to_numpy()
    times = []
    for _ in range(3):
        a = adata.copy()
        t = time.perf_counter()
        sc.pp.scrublet(a, batch_key="sample", random_state=0)
        times.append(time.perf_counter() - t)
        print(f"scrublet: {times[-1]:.2f} s ({int(a.obs['predicted_doublet'].sum())} predicted)")
    print(f"{adata.n_obs} cells x {adata.n_vars} genes: median {np.median(times):.2f} s")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--time":
        time_batched(sys.argv[2])
    else:
        os.makedirs(OUT, exist_ok=True)
        reference_mixture()
        threshold_cases()
