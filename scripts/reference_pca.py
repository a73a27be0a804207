#!/usr/bin/env python
"""Reference values for scrna's PCA (tests/pca_scanpy.rs).

Regenerate with:  .venv/bin/python scripts/reference_pca.py
Pinned versions: scanpy 1.11.5, anndata 0.12.19, scikit-learn 1.9.1, scipy 1.17.1, numpy 2.4.6.

Two inputs:
  * fixtures/celltypist_sample (559 cells, 10x v3): Scanpy's standard pipeline
    filter_cells(min_genes=200), filter_genes(min_cells=3), normalize_total(1e4), log1p,
    highly_variable_genes(flavor="seurat", n_top_genes=2000), subset to the HVGs,
    scale(max_value=10), pca(n_comps=50, svd_solver="arpack").
    The HVG gene ids are written out so that the Rust test uses exactly Scanpy's genes.
  * a small seeded simulated count matrix (600 cells x 300 genes, 12 groups) (written here as a 10x folder under
    fixtures/reference/pca/sim/), run through normalize_total(1e4), log1p,
    scale(max_value=10), pca(n_comps=50, svd_solver="arpack") on all its genes. It contains
    an all-zero gene (std 0 -> 1), rare genes (positive clipping) and a high, nearly constant
    gene with three zeros (negative clipping of the zeros).

Outputs (fixtures/reference/pca/<name>/): hvg_ids.txt (celltypist only), scale.csv (gene id,
mean, std as used by scale), variance.csv (component, variance, variance_ratio),
embedding.csv (first 10 columns of obsm["X_pca"], 6 significant digits),
loadings_max.csv (per component: gene id of the largest |loading| and its signed value).

`--bench DIR` instead times scale + pca on a matrix written by benches/pca.rs
(SCRNA_PCA_DUMP=DIR); run it under /usr/bin/time -v for the peak memory.
"""
import gzip
import os

import numpy as np
import scanpy as sc
import scipy.io
import scipy.sparse as sp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "reference", "pca")
N_EMB = 10


def simulate(path):
    """Seeded negative-binomial counts with three groups; written as a 10x v3 folder."""
    rng = np.random.default_rng(20261125)
    n_cells, n_genes = 600, 300
    n_groups = 12
    weights = np.linspace(1.0, 3.0, n_groups)
    groups = rng.choice(n_groups, n_cells, p=weights / weights.sum())
    base = rng.lognormal(mean=-0.5, sigma=1.2, size=n_genes)
    fold = np.ones((n_groups, n_genes))
    for g in range(n_groups):
        idx = rng.choice(np.arange(7, n_genes), 25, replace=False)
        fold[g, idx] = rng.lognormal(1.5 + 0.1 * g, 0.4, 25)
    size = rng.lognormal(0.0, 0.3, n_cells)
    mu = size[:, None] * base[None, :] * fold[groups]
    r = 2.0
    counts = rng.negative_binomial(r, r / (r + mu)).astype(np.float64)
    counts[:, 0] = 0  # all-zero gene: variance 0, std set to 1
    counts[:, 1:6] = 0  # rare genes: expressed in a few cells, clipped at +max_value
    for j in range(1, 6):
        cells = rng.choice(n_cells, j, replace=False)
        counts[cells, j] = rng.integers(1, 20, j)
    hk = rng.negative_binomial(50, 50 / (50 + 400 * size)).astype(np.float64)
    hk[rng.choice(n_cells, 3, replace=False)] = 0  # zeros of this gene fall below -max_value
    counts[:, 6] = hk
    os.makedirs(path, exist_ok=True)
    m = sp.coo_matrix(counts.T)  # genes x cells, as 10x writes it
    with gzip.open(os.path.join(path, "matrix.mtx.gz"), "wb") as f:
        scipy.io.mmwrite(f, m, field="integer")
    with gzip.open(os.path.join(path, "features.tsv.gz"), "wt") as f:
        for j in range(n_genes):
            f.write(f"SIMG{j:04d}\tSim{j:04d}\tGene Expression\n")
    with gzip.open(os.path.join(path, "barcodes.tsv.gz"), "wt") as f:
        for i in range(n_cells):
            f.write(f"CELL{i:04d}-1\n")


def write_outputs(adata, name, scale_mean, scale_std):
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "scale.csv"), "w") as f:
        f.write("gene_id,mean,std\n")
        for g, m, s in zip(adata.var_names, scale_mean, scale_std):
            f.write(f"{g},{m:.9g},{s:.9g}\n")
    var = adata.uns["pca"]["variance"]
    ratio = adata.uns["pca"]["variance_ratio"]
    with open(os.path.join(out, "variance.csv"), "w") as f:
        f.write("component,variance,variance_ratio\n")
        for k, (v, r) in enumerate(zip(var, ratio)):
            f.write(f"{k},{v:.9g},{r:.9g}\n")
    emb = adata.obsm["X_pca"][:, :N_EMB]
    with open(os.path.join(out, "embedding.csv"), "w") as f:
        f.write("barcode," + ",".join(f"PC{k + 1}" for k in range(N_EMB)) + "\n")
        for bc, row in zip(adata.obs_names, emb):
            f.write(bc + "," + ",".join(f"{x:.6g}" for x in row) + "\n")
    pcs = adata.varm["PCs"]
    with open(os.path.join(out, "loadings_max.csv"), "w") as f:
        f.write("component,gene_id,loading\n")
        for k in range(pcs.shape[1]):
            j = int(np.argmax(np.abs(pcs[:, k])))
            f.write(f"{k},{adata.var_names[j]},{pcs[j, k]:.9g}\n")


def scale_and_pca(adata, name):
    x = adata.X
    mean = np.asarray(x.mean(axis=0)).ravel().astype(np.float64)
    sc.pp.scale(adata, max_value=10)
    scale_mean = adata.var["mean"].to_numpy()
    scale_std = adata.var["std"].to_numpy()
    assert np.allclose(scale_mean, mean, rtol=1e-5, atol=1e-7)
    sc.pp.pca(adata, n_comps=50, svd_solver="arpack")
    write_outputs(adata, name, scale_mean, scale_std)


def celltypist():
    adata = sc.read_10x_mtx(
        os.path.join(ROOT, "fixtures", "celltypist_sample", "filtered_feature_bc_matrix"),
        var_names="gene_ids",
    )
    sc.pp.filter_cells(adata, min_genes=200)
    sc.pp.filter_genes(adata, min_cells=3)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, flavor="seurat", n_top_genes=2000)
    adata = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    out = os.path.join(OUT, "celltypist")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "hvg_ids.txt"), "w") as f:
        for g in adata.var_names:
            f.write(g + "\n")
    scale_and_pca(adata, "celltypist")


def simulated():
    path = os.path.join(OUT, "sim", "counts")
    simulate(path)
    adata = sc.read_10x_mtx(path, var_names="gene_ids")
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    scale_and_pca(adata, "sim")


def bench(path):
    """Time Scanpy's scale(max_value=10) + pca(50, arpack) on a matrix dumped by benches/pca.rs."""
    import time

    import anndata as ad

    n, p = map(int, open(os.path.join(path, "shape.txt")).read().split())
    indptr = np.fromfile(os.path.join(path, "indptr.u64"), dtype=np.uint64).astype(np.int64)
    indices = np.fromfile(os.path.join(path, "indices.u32"), dtype=np.uint32).astype(np.int32)
    data = np.fromfile(os.path.join(path, "data.f32"), dtype=np.float32)
    adata = ad.AnnData(sp.csr_matrix((data, indices, indptr), shape=(n, p)))
    t0 = time.perf_counter()
    sc.pp.scale(adata, max_value=10)
    t1 = time.perf_counter()
    sc.pp.pca(adata, n_comps=50, svd_solver="arpack")
    t2 = time.perf_counter()
    print(f"scale {t1 - t0:.2f} s, pca {t2 - t1:.2f} s, total {t2 - t0:.2f} s")
    print("variance ratio PC1..5:", adata.uns["pca"]["variance_ratio"][:5])


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--bench":
        bench(sys.argv[2])
    else:
        celltypist()
        simulated()
