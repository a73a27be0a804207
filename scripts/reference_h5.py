"""Reference values for the 10x HDF5 and .h5ad readers (tests/io_h5.rs, tests/h5ad.rs).

Versions used: scanpy 1.11.5, anndata 0.12, h5py 3.16, numpy 2, pandas 2.
Run from the repository root:  .venv/bin/python scripts/reference_h5.py

Writes into fixtures/reference/h5/:
- <name>_cells.csv: barcode, total counts, genes detected per cell (from sc.read_10x_h5)
- <name>_genes.csv: gene id, symbol (var_names_make_unique), feature type
- anndata_small.h5ad: a tiny AnnData written by anndata itself (CSR X; layers counts = 2 X as CSR,
  csc = 3 X as CSC, dense = 4 X as a dense array; obs with
  sample / condition / categorical / float / int / bool / string columns, var with gene_ids /
  feature_types / a float column), and anndata_small_*.csv holding its contents.
"""

import os

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

OUT = "fixtures/reference/h5"
os.makedirs(OUT, exist_ok=True)


def dump(adata, name):
    x = adata.X.tocsr()
    cells = pd.DataFrame(
        {
            "barcode": adata.obs_names,
            "total": np.asarray(x.sum(axis=1)).ravel().astype(np.int64),
            "n_genes": np.diff(x.indptr),
        }
    )
    cells.to_csv(f"{OUT}/{name}_cells.csv", index=False)
    adata.var_names_make_unique()
    genes = pd.DataFrame(
        {
            "id": adata.var["gene_ids"].values,
            "symbol": adata.var_names,
            "feature_type": adata.var["feature_types"].values
            if "feature_types" in adata.var
            else "Gene Expression",
        }
    )
    genes.to_csv(f"{OUT}/{name}_genes.csv", index=False)
    print(name, adata.shape, x.nnz)


dump(sc.read_10x_h5("fixtures/scanpy_cr120_h5/filtered_gene_bc_matrices_h5.h5"), "cr120")
dump(
    sc.read_10x_h5("fixtures/scanpy_cr120_h5/multiple_genomes.h5", genome="another_genome"),
    "multi_another_genome",
)
dump(sc.read_10x_h5("fixtures/scanpy_cr300/filtered_feature_bc_matrix.h5"), "cr300")

# A tiny AnnData file written by anndata itself.
rng = np.random.default_rng(0)
n_obs, n_var = 7, 5
dense = rng.poisson(1.0, size=(n_obs, n_var)).astype(np.float32)
x = sp.csr_matrix(dense)
obs = pd.DataFrame(
    {
        "sample": pd.Categorical(["s1", "s1", "s2", "s2", "s2", "s1", "s2"]),
        "condition": pd.Categorical(["a", "a", "b", "b", "b", "a", "b"]),
        "leiden": pd.Categorical(["0", "1", "0", "2", "1", "0", "2"]),
        "score": np.linspace(0.5, 3.5, n_obs),
        "n_counts": np.arange(n_obs, dtype=np.int64) * 3,
        "keep": np.array([True, False, True, True, False, True, False]),
        "note": [f"cell{i}" for i in range(n_obs)],
    },
    index=[f"BC{i}-1" for i in range(n_obs)],
)
var = pd.DataFrame(
    {
        "gene_ids": [f"ENSG{i:05d}" for i in range(n_var)],
        "feature_types": ["Gene Expression"] * n_var,
        "dispersion": np.linspace(0.1, 0.5, n_var),
    },
    index=["A", "B", "C", "D", "E"],
)
a = ad.AnnData(X=x, obs=obs, var=var)
a.layers["counts"] = sp.csr_matrix(dense * 2)
a.layers["csc"] = sp.csc_matrix(dense * 3)
a.layers["dense"] = dense * 4
a.write_h5ad(f"{OUT}/anndata_small.h5ad")
pd.DataFrame(dense).to_csv(f"{OUT}/anndata_small_X.csv", index=False, header=False)
obs.to_csv(f"{OUT}/anndata_small_obs.csv", index_label="barcode")
var.to_csv(f"{OUT}/anndata_small_var.csv", index_label="symbol")

