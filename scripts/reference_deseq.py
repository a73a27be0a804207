#!/usr/bin/env python3
"""Reference values for `scrna::deseq` (tests/deseq.rs) from pydeseq2.

Uses the repository's .venv (created from benches/compare/requirements.txt):
pydeseq2 0.5.4, numpy 2.x, pandas 2.x, scipy 1.17.

Run from the repository root:
    .venv/bin/python scripts/reference_deseq.py            # writes fixtures/deseq/
    .venv/bin/python scripts/reference_deseq.py --bench    # times pydeseq2 (see below)

Each case is a seeded negative binomial pseudobulk matrix, samples x genes:
  mu_gj = s_j q_g f_gj, q_g ~ exp(N(4, 2)) (means of ~1 to ~10^4 per sample),
  alpha_g = (0.02 + 1.5 / q_g) exp(N(0, 0.6)) (a trend plus scatter), s_j ~ exp(N(0, 0.3)),
  f = 1 except for ~10% DE genes with |log2 fold change| uniform in [1, 2] (2 to 4x), random
  sign, in condition B; a few all-zero genes and a few single-sample outliers are planted.
Cases:
  c33     3 + 3 samples, 2,000 genes, design ~ condition
  c22     2 + 2 samples, 2,000 genes, design ~ condition
  batch   4 + 4 samples in two batches (2 + 2 per condition), 800 genes, ~ condition + batch
  refit   7 + 7 samples, 800 genes, ~ condition (Cook's outliers are replaced and refitted)
  real    3 + 3 pseudobulk samples made from fixtures/celltypist_sample (cells dealt at random
          into 6 groups, each group's counts summed; groups 3-5 are "B"; the first 2,500 genes
          with a total of at least 10 counts), design ~ condition: a null comparison on real
          counts
Files per case (gzipped CSV):
  <case>_counts.csv.gz   one row per sample: condition (0 = A, 1 = B), batch, then the counts
  <case>_results.csv.gz  one row per gene: baseMean, log2FoldChange, lfcSE, stat, pvalue, padj
                         (DeseqStats(contrast=["condition", "B", "A"]).summary(), alpha 0.05,
                         Cook's filtering and independent filtering on), genewise, fitted, MAP
                         and final dispersions, cooks_outlier, refitted
  <case>_summary.csv     size factors, trend a0 / a1, prior_disp_var, squared_logres

--bench: 10 calls on 4-sample matrices (2 + 2) of 20,000 genes (the same recipe, seeds 100..109),
deseq2() + summary(), with n_cpus = 1 and 2; prints the median of 3 runs of the 10 calls.
"""
import gzip
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
from pydeseq2.dds import DeseqDataSet
from pydeseq2.ds import DeseqStats

warnings.filterwarnings("ignore")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "deseq")


def simulate(seed, n_a, n_b, n_genes, batches=False, n_zero=5, n_outliers=6):
    rng = np.random.default_rng(seed)
    n = n_a + n_b
    cond = np.array([0] * n_a + [1] * n_b)
    batch = np.zeros(n, dtype=int)
    if batches:
        batch = np.array([j % 2 for j in range(n_a)] + [j % 2 for j in range(n_b)])
    q = np.exp(rng.normal(4.0, 2.0, n_genes))
    alpha = (0.02 + 1.5 / q) * np.exp(rng.normal(0.0, 0.6, n_genes))
    s = np.exp(rng.normal(0.0, 0.3, n))
    lfc = np.zeros(n_genes)
    de = rng.random(n_genes) < 0.10
    lfc[de] = rng.uniform(1.0, 2.0, de.sum()) * rng.choice([-1.0, 1.0], de.sum())
    beff = rng.normal(0.0, 0.4, n_genes) if batches else np.zeros(n_genes)
    mu = s[:, None] * q[None, :] * 2.0 ** (cond[:, None] * lfc[None, :])
    mu = mu * np.exp(batch[:, None] * beff[None, :])
    lam = rng.gamma(1.0 / alpha[None, :], mu * alpha[None, :])
    counts = rng.poisson(lam).astype(np.int64)
    zero = rng.choice(n_genes, n_zero, replace=False)
    counts[:, zero] = 0
    for g in rng.choice(np.setdiff1d(np.arange(n_genes), zero), n_outliers, replace=False):
        j = rng.integers(n)
        counts[j, g] = int(counts[:, g].max() * 20 + 50)
    return counts, cond, batch


def real_pseudobulk(seed):
    import scipy.io

    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                     "celltypist_sample", "filtered_feature_bc_matrix")
    m = scipy.io.mmread(os.path.join(d, "matrix.mtx.gz")).tocsc()  # genes x cells
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 6, m.shape[1])
    counts = np.zeros((6, m.shape[0]), dtype=np.int64)
    for k in range(6):
        counts[k] = np.asarray(m[:, groups == k].sum(axis=1)).ravel()
    counts = counts[:, counts.sum(axis=0) >= 10][:, :2500]
    cond = np.array([0, 0, 0, 1, 1, 1])
    return counts, cond, np.zeros(6, dtype=int)


def run(counts, cond, batch, use_batch, n_cpus=1):
    n = counts.shape[0]
    idx = [f"s{j}" for j in range(n)]
    meta = pd.DataFrame({"condition": np.where(cond == 1, "B", "A"),
                         "batch": np.where(batch == 1, "b1", "b0")}, index=idx)
    df = pd.DataFrame(counts, index=idx, columns=[f"g{g}" for g in range(counts.shape[1])])
    design = "~condition + batch" if use_batch else "~condition"
    dds = DeseqDataSet(counts=df, metadata=meta, design=design, refit_cooks=True,
                       n_cpus=n_cpus, quiet=True)
    dds.deseq2()
    ds = DeseqStats(dds, contrast=["condition", "B", "A"], alpha=0.05, cooks_filter=True,
                    independent_filter=True, quiet=True, n_cpus=n_cpus)
    ds.summary()
    return dds, ds


def write_case(name, counts, cond, batch, use_batch):
    dds, ds = run(counts, cond, batch, use_batch)
    with gzip.open(os.path.join(OUT, f"{name}_counts.csv.gz"), "wt", compresslevel=9) as f:
        f.write("condition,batch," + ",".join(f"g{g}" for g in range(counts.shape[1])) + "\n")
        for j in range(counts.shape[0]):
            f.write(f"{cond[j]},{batch[j]}," + ",".join(str(int(c)) for c in counts[j]) + "\n")
    r = ds.results_df
    v = dds.var
    refitted = v["refitted"] if "refitted" in v else pd.Series(False, index=v.index)
    cols = {
        "baseMean": r["baseMean"], "log2FoldChange": r["log2FoldChange"], "lfcSE": r["lfcSE"],
        "stat": r["stat"], "pvalue": r["pvalue"], "padj": r["padj"],
        "genewise": v["genewise_dispersions"], "fitted": v["fitted_dispersions"],
        "map": v["MAP_dispersions"], "dispersion": v["dispersions"],
    }
    with gzip.open(os.path.join(OUT, f"{name}_results.csv.gz"), "wt", compresslevel=9) as f:
        f.write(",".join(cols) + ",cooks_outlier,refitted\n")
        for g in range(counts.shape[1]):
            vals = [f"{float(c.iloc[g]):.12g}" for c in cols.values()]
            vals.append(str(int(bool(dds.var["_pvalue_cooks_outlier"].iloc[g]))))
            vals.append(str(int(bool(refitted.iloc[g]))))
            f.write(",".join(vals) + "\n")
    with open(os.path.join(OUT, f"{name}_summary.csv"), "w") as f:
        f.write("key,value\n")
        for j, sf in enumerate(dds.obs["size_factors"].values):
            f.write(f"size_factor_{j},{float(sf)!r}\n")
        if dds.uns["disp_function_type"] == "parametric":
            a0, a1 = dds.uns["trend_coeffs"]
        else:
            a0, a1 = dds.uns["mean_disp"], 0.0
        f.write(f"trend_a0,{float(a0)!r}\ntrend_a1,{float(a1)!r}\n")
        f.write(f"prior_disp_var,{float(dds.uns['prior_disp_var'])!r}\n")
        f.write(f"squared_logres,{float(dds.uns['_squared_logres'])!r}\n")
    n_sig = int((r["padj"] < 0.05).sum())
    print(f"{name}: {counts.shape[0]} samples x {counts.shape[1]} genes, {n_sig} at padj < 0.05, "
          f"{int(dds.var['_pvalue_cooks_outlier'].sum())} Cook's outliers, "
          f"{int(refitted.sum())} refitted")


def bench():
    mats = [simulate(100 + k, 2, 2, 20000)[:2] for k in range(10)]
    for n_cpus in (1, 2):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for counts, cond in mats:
                run(counts, cond, np.zeros(len(cond), dtype=int), False, n_cpus=n_cpus)
            times.append(time.perf_counter() - t0)
        print(f"pydeseq2 n_cpus={n_cpus}: 10 x (4 samples x 20,000 genes): runs "
              + ", ".join(f"{t:.2f}" for t in times) + f" s, median {np.median(times):.2f} s")


def main():
    if "--bench" in sys.argv:
        bench()
        return
    os.makedirs(OUT, exist_ok=True)
    cases = sys.argv[1:] or ["c33", "c22", "batch", "refit", "real"]
    if "c33" in cases:
        write_case("c33", *simulate(1, 3, 3, 2000), False)
    if "c22" in cases:
        write_case("c22", *simulate(2, 2, 2, 2000), False)
    if "batch" in cases:
        write_case("batch", *simulate(3, 4, 4, 800, batches=True), True)
    if "refit" in cases:
        write_case("refit", *simulate(4, 7, 7, 800), False)
    if "real" in cases:
        write_case("real", *real_pseudobulk(5), False)


if __name__ == "__main__":
    main()
