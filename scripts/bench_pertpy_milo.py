"""Times pertpy's Milo (make_nhoods + count_nhoods + da_nhoods with the edgeR solver) on the
data that `SCRNA_BENCH_QUICK=1 SCRNA_BENCH_WRITE=<dir> cargo bench --bench milo` writes.

Runs in a separate virtual environment (not the repository's .venv): pertpy 1.0.3,
statsmodels < 0.15 and rpy2 3.5.17 (Debian's R 4.2 with edgeR 3.40.2), e.g.
    python3 -m venv /work/venv-pertpy
    /work/venv-pertpy/bin/pip install pertpy==1.0.3 filelock "statsmodels<0.15" rpy2==3.5.17
    /work/venv-pertpy/bin/python scripts/bench_pertpy_milo.py <dir> [runs]
The graph is our kNN table (15 neighbours, the cell itself first): `obsp["distances"]` holds the
14 other neighbours' distances and `obsp["connectivities"]` the symmetrized graph, so pertpy's
neighbourhoods come from the same graph. Prints the median wall time of `runs` runs.
"""
import sys
import time
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

warnings.filterwarnings("ignore")
import pertpy as pt  # noqa: E402

d = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
emb = np.fromfile(f"{d}/embedding.f32", dtype="<f4")
knn = np.fromfile(f"{d}/knn.u32", dtype="<u4").reshape(-1, 15)
samples = np.fromfile(f"{d}/samples.u32", dtype="<u4")
n = knn.shape[0]
emb = emb.reshape(n, -1)
rows = np.repeat(np.arange(n), 14)
cols = knn[:, 1:].ravel().astype(np.int64)
dist = np.sqrt(((emb[rows] - emb[cols]) ** 2).sum(1))
distances = sp.csr_matrix((dist, (rows, cols)), shape=(n, n))
a = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
conn = a.maximum(a.T).tocsr()

conditions = np.array(["ctrl", "ctrl", "treat", "treat"])
times = []
for r in range(runs):
    adata = ad.AnnData(X=sp.csr_matrix((n, 1), dtype=np.float32))
    adata.obsm["X_pca"] = emb
    adata.obsp["distances"] = distances
    adata.obsp["connectivities"] = conn
    adata.uns["neighbors"] = {"params": {"use_rep": "X_pca", "n_neighbors": 15}}
    adata.obs["sample"] = pd.Categorical([f"s{s}" for s in samples])
    adata.obs["condition"] = pd.Categorical(conditions[samples])
    milo = pt.tl.Milo()
    t0 = time.perf_counter()
    mdata = milo.load(adata)
    milo.make_nhoods(mdata["rna"], prop=0.1)
    mdata = milo.count_nhoods(mdata, sample_col="sample")
    t1 = time.perf_counter()
    milo.da_nhoods(mdata, design="~condition", solver="edger")
    t2 = time.perf_counter()
    res = mdata["milo"].var
    nsig = int((res["SpatialFDR"] < 0.1).sum())
    print(f"run {r}: nhoods + counts {t1 - t0:.2f} s, da_nhoods (edgeR) {t2 - t1:.2f} s, total {t2 - t0:.2f} s; "
          f"{res.shape[0]} neighbourhoods, {nsig} at spatial FDR < 0.1", flush=True)
    times.append(t2 - t0)
print(f"pertpy {pt.__version__} Milo, {n} cells: median {np.median(times):.2f} s over {runs} run(s)")
