#!/usr/bin/env python3
"""The standard Scanpy clustering pipeline, step by step, timed, for the comparison with scrna.

Usage: python benches/compare/scanpy_pipeline.py INPUT.h5 OUT_DIR

The steps and their options are those of scrna's `PipelineOptions::default()` (Scanpy's
standard tutorial): read_10x_h5; calculate_qc_metrics, filter_cells(min_genes=200),
filter_genes(min_cells=3); normalize_total(1e4), log1p; highly_variable_genes(seurat, 2000);
scale(max_value=10) and pca(50, arpack) on the highly variable genes; neighbors(15);
leiden(resolution=1, random_state=0, Scanpy's default flavor and n_iterations); umap(seed 0);
rank_genes_groups(wilcoxon, pts=True) on all genes of the log-normalized matrix.

Writes OUT_DIR/steps.json (per step: seconds and the process' peak RSS during the step, reset
before each step through /proc/self/clear_refs), OUT_DIR/clusters.csv (barcode, cluster) and
OUT_DIR/analysis.h5ad (the analysed AnnData, `.raw` holding every gene, written as a user would
with `write_h5ad` and anndata's default of no compression; timed as `write_h5ad` in
steps.json, outside the steps).
Versions: benches/compare/requirements.txt.
"""
import json
import os
import sys
import time
import warnings

import numpy as np
import scanpy as sc

warnings.filterwarnings("ignore")


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def main():
    path, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    steps = []
    state = {}

    def step(name, f):
        reset_peak()
        t = time.perf_counter()
        f()
        steps.append({"step": name, "seconds": time.perf_counter() - t, "peak_rss_mb": peak_mb()})
        print(f"  {name:<10} {steps[-1]['seconds']:8.2f} s {steps[-1]['peak_rss_mb']:8.1f} MB peak",
              file=sys.stderr, flush=True)

    def read():
        a = sc.read_10x_h5(path)
        a.var_names_make_unique()
        state["a"] = a

    def qc():
        a = state["a"]
        a.var["mt"] = a.var_names.str.startswith("MT-")
        sc.pp.calculate_qc_metrics(a, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True)
        sc.pp.filter_cells(a, min_genes=200)
        sc.pp.filter_genes(a, min_cells=3)

    def normalize():
        a = state["a"]
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)

    def hvg():
        sc.pp.highly_variable_genes(state["a"], flavor="seurat", n_top_genes=2000)

    def pca():
        a = state["a"]
        a.raw = a
        h = a[:, a.var["highly_variable"]].copy()
        sc.pp.scale(h, max_value=10)
        sc.tl.pca(h, n_comps=50, svd_solver="arpack", random_state=0)
        state["h"] = h

    def neighbors():
        sc.pp.neighbors(state["h"], n_neighbors=15, n_pcs=50, random_state=0)

    def leiden():
        sc.tl.leiden(state["h"], resolution=1.0, random_state=0)

    def umap():
        sc.tl.umap(state["h"], random_state=0)

    def markers():
        sc.tl.rank_genes_groups(state["h"], "leiden", method="wilcoxon", use_raw=True, pts=True)

    for name, f in [("read", read), ("qc", qc), ("normalize", normalize), ("hvg", hvg),
                    ("pca", pca), ("neighbors", neighbors), ("leiden", leiden),
                    ("umap", umap), ("markers", markers)]:
        step(name, f)

    h = state["h"]
    with open(os.path.join(out, "clusters.csv"), "w") as f:
        f.write("barcode,cluster\n")
        for b, c in zip(h.obs_names, h.obs["leiden"]):
            f.write(f"{b},{c}\n")
    reset_peak()
    t = time.perf_counter()
    h.write_h5ad(os.path.join(out, "analysis.h5ad"))
    write = {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_mb(),
             "bytes": os.path.getsize(os.path.join(out, "analysis.h5ad"))}
    print(f"  write_h5ad {write['seconds']:8.2f} s {write['peak_rss_mb']:8.1f} MB peak",
          file=sys.stderr, flush=True)
    versions = {m.__name__: m.__version__ for m in [sc, np]}
    import anndata, scipy
    versions.update({"anndata": anndata.__version__, "scipy": scipy.__version__})
    with open(os.path.join(out, "steps.json"), "w") as f:
        json.dump({"steps": steps, "write_h5ad": write, "cells_after_qc": int(h.n_obs),
                   "n_clusters": int(h.obs["leiden"].nunique()), "versions": versions}, f, indent=1)


if __name__ == "__main__":
    main()
