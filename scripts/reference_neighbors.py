#!/usr/bin/env python3
"""Reference values for the kNN and graph-weight tests (tests/neighbors_scanpy.rs).

Versions used to produce the committed files:
    scanpy 1.11.5, anndata 0.12.19, umap-learn 0.5.12, pynndescent 0.5.13,
    scikit-learn 1.9.1, numpy 2.4.6, leidenalg 0.12.0, igraph 1.0.0

Run from the repository root:
    .venv/bin/python scripts/reference_neighbors.py

Scanpy's standard pipeline on fixtures/celltypist_sample/filtered_feature_bc_matrix:
filter_cells(min_genes=200), filter_genes(min_cells=3), normalize_total(1e4), log1p,
highly_variable_genes(flavor="seurat", n_top_genes=2000), scale(max_value=10),
pca(50, arpack), neighbors(15), leiden(igraph flavor, resolution 1, seed 0).

To test neighbors in isolation from PCA, X_pca is rounded to 7 significant digits, written,
and neighbors + leiden are then run on the rounded embedding (the file is the exact input of
the Rust test). With fewer than 4,096 cells Scanpy uses an exact brute-force search
(sklearn KNeighborsTransformer) and umap-learn's fuzzy_simplicial_set for the weights.

Files written to fixtures/reference/neighbors/:
    x_pca.csv              n_cells x 50, no header
    knn_indices.csv        n_cells x 15 (first column = the cell itself), no header
    knn_distances.csv      n_cells x 15, no header
    connectivities.csv     row,col,value triplets of obsp["connectivities"] (header)
    leiden.csv             Scanpy leiden labels (igraph flavor, resolution 1, seed 0,
                           n_iterations 2, directed False) on that connectivities graph
    snn.csv                row,col,value triplets of Seurat's SNN (Jaccard, prune 1/15),
                           rows 0..39 only (the full matrix is about 1 MB)
                           computed here from Scanpy's kNN with the formula of Seurat's
                           ComputeSNN: |N(i) & N(j)| / (2k - |N(i) & N(j)|), kept if >= 1/15
"""

from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "reference" / "neighbors"
OUT.mkdir(parents=True, exist_ok=True)


def sig7(x):
    return np.array([float(f"{v:.7g}") for v in np.ravel(x)]).reshape(np.shape(x))


def write_triplets(m, path, fmt):
    m = m.tocoo()
    order = np.lexsort((m.col, m.row))
    df = pd.DataFrame(
        {"row": m.row[order], "col": m.col[order], "value": m.data[order]}
    )
    df.to_csv(path, index=False, float_format=fmt)


adata = sc.read_10x_mtx(ROOT / "fixtures/celltypist_sample/filtered_feature_bc_matrix")
sc.pp.filter_cells(adata, min_genes=200)
sc.pp.filter_genes(adata, min_cells=3)
sc.pp.normalize_total(adata, target_sum=1e4)
sc.pp.log1p(adata)
sc.pp.highly_variable_genes(adata, flavor="seurat", n_top_genes=2000)
adata = adata[:, adata.var.highly_variable].copy()
sc.pp.scale(adata, max_value=10)
sc.tl.pca(adata, n_comps=50, svd_solver="arpack")

x = sig7(adata.obsm["X_pca"]).astype(np.float32)
np.savetxt(OUT / "x_pca.csv", x, delimiter=",", fmt="%.7g")
# Re-read what was written so that the neighbors run on exactly the committed numbers.
x = np.loadtxt(OUT / "x_pca.csv", delimiter=",", dtype=np.float32)

b = sc.AnnData(np.zeros((x.shape[0], 1), dtype=np.float32))
b.obsm["X_pca"] = x
sc.pp.neighbors(b, n_neighbors=15, use_rep="X_pca")

conn = b.obsp["connectivities"]
dist = b.obsp["distances"]

# Rebuild Scanpy's kNN table (self first, then the k-1 neighbours by increasing distance).
n, k = x.shape[0], 15
idx = np.zeros((n, k), dtype=np.int64)
dd = np.zeros((n, k), dtype=np.float64)
for i in range(n):
    s, e = dist.indptr[i], dist.indptr[i + 1]
    cols, vals = dist.indices[s:e], dist.data[s:e]
    order = np.lexsort((cols, vals))
    idx[i, 0] = i
    idx[i, 1:] = cols[order]
    dd[i, 1:] = vals[order]
np.savetxt(OUT / "knn_indices.csv", idx, delimiter=",", fmt="%d")
np.savetxt(OUT / "knn_distances.csv", dd, delimiter=",", fmt="%.7g")

x64 = x.astype(np.float64)
exact = np.sqrt(((x64[:, None, :] - x64[idx]) ** 2).sum(-1))
print("max |scanpy - float64| distance:", np.abs(exact - dd).max())

write_triplets(conn, OUT / "connectivities.csv", "%.8g")

sc.tl.leiden(
    b, resolution=1.0, random_state=0, flavor="igraph", n_iterations=2, directed=False
)
pd.DataFrame({"leiden": b.obs["leiden"].astype(int).values}).to_csv(
    OUT / "leiden.csv", index=False
)

# Seurat-style SNN on the same kNN (Seurat's FindNeighbors: k.param neighbours including
# the cell itself, Jaccard = shared / (2k - shared), entries below prune.SNN set to 0).
sets = [set(r) for r in idx]
rows, cols, vals = [], [], []
for i in range(40):
    cand = set()
    for j in idx[i]:
        cand.update(np.nonzero(np.any(idx == j, axis=1))[0].tolist())
    for j in sorted(cand):
        s = len(sets[i] & sets[j])
        w = s / (2 * k - s)
        if w >= 1.0 / 15.0:
            rows.append(i)
            cols.append(j)
            vals.append(w)
pd.DataFrame({"row": rows, "col": cols, "value": vals}).to_csv(
    OUT / "snn.csv", index=False, float_format="%.8g"
)

print("cells:", n, "connectivities nnz:", conn.nnz, "leiden clusters:",
      b.obs["leiden"].nunique())
