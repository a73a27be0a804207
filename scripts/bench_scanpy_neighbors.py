"""Warm timing of Scanpy's `sc.pp.neighbors` on a stored embedding (the reference figure of
benches/neighbors.rs).

Versions: Scanpy 1.11.5, anndata 0.12.19, pynndescent 0.5.13, umap-learn 0.5.12, numba 0.68.1 (the
.venv made from benches/compare/requirements.txt).

Usage:
    python scripts/bench_scanpy_neighbors.py --bench EMBEDDING.f32 [--dims 50] [--runs 3]
    python scripts/bench_scanpy_neighbors.py --extract ANALYSIS.h5ad OUT.f32

`EMBEDDING.f32` is a row-major little-endian float32 matrix of cells x dims, as written by
`SCRNA_BENCH_WRITE_EMBEDDING=1 SCRNA_BENCH_QUICK=1 cargo bench --bench neighbors` or extracted
from an `.h5ad` file's `obsm/X_pca` with `--extract`. The first call of `sc.pp.neighbors` in the
process compiles pynndescent's and umap's numba kernels; it is reported separately and left out
of the median, so the figure is Scanpy's warm time (`n_neighbors=15`, Euclidean, Scanpy's
automatic method: pynndescent above 4,096 cells, then umap-learn's fuzzy simplicial set).
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


def bench(path: str, dims: int, runs: int) -> None:
    import anndata as ad
    import scanpy as sc

    x = np.fromfile(path, dtype="<f4").reshape(-1, dims)
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
    print(f"scanpy neighbors n={n}: warm median {statistics.median(times):.3f} s over {runs} runs")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--bench", metavar="EMBEDDING")
    p.add_argument("--extract", nargs=2, metavar=("H5AD", "OUT"))
    p.add_argument("--dims", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    if a.extract:
        extract(*a.extract)
    elif a.bench:
        bench(a.bench, a.dims, a.runs)
    else:
        p.error("give --bench or --extract")
