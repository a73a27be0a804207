"""Warm timing of Scanpy's `sc.pp.neighbors` on a stored embedding (the reference figure of
benches/neighbors.rs).

Versions: Scanpy 1.11.5, anndata 0.12.19, pynndescent 0.5.13, umap-learn 0.5.12, numba 0.68.1 (the
.venv made from benches/compare/requirements.txt).

Usage:
    python scripts/bench_scanpy_neighbors.py --bench EMBEDDING.f32 [--dims 50] [--runs 3]
        [--cells N] [--recall M]
    python scripts/bench_scanpy_neighbors.py --extract ANALYSIS.h5ad OUT.f32

`EMBEDDING.f32` is a row-major little-endian float32 matrix of cells x dims, as written by
`SCRNA_BENCH_WRITE_EMBEDDING=1 SCRNA_BENCH_QUICK=1 cargo bench --bench neighbors` or extracted
from an `.h5ad` file's `obsm/X_pca` with `--extract`. The first call of `sc.pp.neighbors` in the
process compiles pynndescent's and umap's numba kernels; it is reported separately and left out
of the median, so the figure is Scanpy's warm time (`n_neighbors=15`, Euclidean, Scanpy's
automatic method: pynndescent above 4,096 cells, then umap-learn's fuzzy simplicial set).

`--runs 0` times the first call only. `--cells N` keeps the first N rows. `--recall M` also
prints the recall at k = 15 of the last run's neighbours for M evenly spaced cells (cell
`q * n // M` for q < M) against the exact search, as `SCRNA_BENCH_RECALL_SAMPLE=M` prints it
for scrna in `benches/neighbors.rs`: the share of each sampled cell's 14 nearest other cells
(squared distances in float64, ties by index) that are among its 14 neighbours in
`obsp["distances"]`.
"""

import argparse
import os
import statistics
import time

import numpy as np


def extract(h5ad: str, out: str) -> None:
    import h5py

    with h5py.File(h5ad, "r") as f:
        x = np.asarray(f["obsm/X_pca"], dtype="<f4")
    x.tofile(out)
    print(f"wrote {out}: {x.shape[0]} x {x.shape[1]}")


def sampled_recall(x: np.ndarray, distances, m: int, k: int = 15) -> float:
    """Recall at `k` of `m` evenly spaced cells (see the module docs)."""
    n = x.shape[0]
    m = min(m, n)
    queries = np.array([q * n // m for q in range(m)])
    xd = x.astype(np.float64)
    norms = (xd**2).sum(1)
    hits = 0
    for start in range(0, m, 32):
        batch = queries[start : start + 32]
        # candidates by the expanded form, then exact squared distances for the nearest ones
        approx = norms[:, None] - 2.0 * (xd @ xd[batch].T)
        for c, i in enumerate(batch):
            approx[i, c] = np.inf
            near = np.argpartition(approx[:, c], k + 16)[: k + 16]
            exact = ((xd[near] - xd[i]) ** 2).sum(1)
            near = near[np.lexsort((near, exact))][: k - 1]
            row = distances.indices[distances.indptr[i] : distances.indptr[i + 1]]
            hits += len(set(row.tolist()) & set(near.tolist()))
    return hits / (m * (k - 1))


def bench(path: str, dims: int, runs: int, cells: int | None, recall: int | None) -> None:
    import anndata as ad
    import scanpy as sc

    x = np.fromfile(path, dtype="<f4").reshape(-1, dims)
    if cells is not None:
        x = np.ascontiguousarray(x[:cells])
    n = x.shape[0]
    print(
        f"scanpy {sc.__version__}, {n} x {dims}, numba threads "
        f"{os.environ.get('NUMBA_NUM_THREADS', 'default')}, load {os.getloadavg()}"
    )
    times = []
    for rep in range(runs + 1):
        adata = ad.AnnData(obs={"i": np.arange(n)})
        adata.obsm["X_pca"] = x
        t = time.perf_counter()
        sc.pp.neighbors(adata, n_neighbors=15, use_rep="X_pca", random_state=0)
        dt = time.perf_counter() - t
        label = "first (numba compilation included)" if rep == 0 else f"warm {rep}"
        print(f"  {label}: {dt:.3f} s, {adata.obsp['connectivities'].nnz} connectivities")
        if rep > 0:
            times.append(dt)
    if times:
        print(f"scanpy neighbors n={n}: warm median {statistics.median(times):.3f} s over {runs} runs")
    if recall:
        r = sampled_recall(x, adata.obsp["distances"], recall)
        print(f"recall at k = 15 of {min(recall, n)} evenly spaced cells: {r:.4f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--bench", metavar="EMBEDDING")
    p.add_argument("--extract", nargs=2, metavar=("H5AD", "OUT"))
    p.add_argument("--dims", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cells", type=int)
    p.add_argument("--recall", type=int, metavar="M")
    a = p.parse_args()
    if a.extract:
        extract(*a.extract)
    elif a.bench:
        bench(a.bench, a.dims, a.runs, a.cells, a.recall)
    else:
        p.error("give --bench or --extract")
