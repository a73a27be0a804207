#!/usr/bin/env python3
"""Reference values for the 10x readers (tests/io_mtx.rs and the HDF5 reader's tests).

Reads every 10x fixture with Scanpy and writes small CSV files to fixtures/reference/io/:

  <key>_mtx_cells.csv    barcode,total_counts,n_genes  (one row per cell, in file order;
                         n_genes = genes with a count > 0, as Scanpy's n_genes_by_counts)
  <key>_mtx_genes.csv    index,gene_id,symbol,total_counts,n_cells  (every gene whose symbol was
                         changed by var_names_make_unique, plus about 100 evenly spaced genes
                         and the first and last gene; n_cells = cells with a count > 0)
  <key>_mtx_summary.csv  key,value: n_cells, n_genes, nnz, total_counts, first/last barcode,
                         first/last gene id and symbol
and the same three files with `_h5_` instead of `_mtx_` for the HDF5 fixtures:
  scanpy_cr120_h5                    fixtures/scanpy_cr120_h5/filtered_gene_bc_matrices_h5.h5
  scanpy_cr120_multiple_genomes_<g>  fixtures/scanpy_cr120_h5/multiple_genomes.h5, genome <g>
  scanpy_cr300                       fixtures/scanpy_cr300/filtered_feature_bc_matrix.h5

Symbols are Scanpy's var_names (var_names_make_unique applied); ids are var["gene_ids"].
Totals are sums of the raw integer counts (exact in float64). nnz counts stored entries after
scipy's duplicate summing (`tocsr()`), explicit zeros included as Scanpy keeps them.

Run from the repository root:  .venv/bin/python scripts/reference_io.py
Pinned versions: scanpy 1.11.5, anndata 0.12.19, h5py 3.16.0, numpy 2.4.6, scipy 1.17.1,
pandas 2.3.3.
"""
import csv
import os

import numpy as np
import scanpy as sc

OUT = "fixtures/reference/io"

MTX = {
    "celltypist_sample": "fixtures/celltypist_sample/filtered_feature_bc_matrix",
    "scanpy_cr120_hg19_chr21": "fixtures/scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21",
    "scanpy_cr300": "fixtures/scanpy_cr300/filtered_feature_bc_matrix",
    "visium_cytassist_coexpressdeconvolve": "fixtures/visium_cytassist_coexpressdeconvolve/filtered_feature_bc_matrix",
}


def fmt(x):
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def write(adata, key, kind):
    X = adata.X.tocsr()
    X.sum_duplicates()
    totals = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    ngenes = np.asarray((X > 0).sum(axis=1)).ravel()  # genes with a count > 0
    with open(os.path.join(OUT, f"{key}_{kind}_cells.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["barcode", "total_counts", "n_genes"])
        for b, t, n in zip(adata.obs_names, totals, ngenes):
            w.writerow([b, fmt(t), int(n)])

    ids = list(adata.var["gene_ids"])
    syms = list(adata.var_names)
    raw_syms = list(adata.var["_raw_symbol"])
    gtot = np.asarray(X.sum(axis=0), dtype=np.float64).ravel()
    gcells = np.asarray((X > 0).sum(axis=0)).ravel()  # cells with a count > 0
    n = len(ids)
    pick = set(np.linspace(0, n - 1, num=min(n, 100)).round().astype(int).tolist())
    pick |= {i for i in range(n) if syms[i] != raw_syms[i]}
    with open(os.path.join(OUT, f"{key}_{kind}_genes.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["index", "gene_id", "symbol", "total_counts", "n_cells"])
        for i in sorted(pick):
            w.writerow([i, ids[i], syms[i], fmt(gtot[i]), int(gcells[i])])

    summary = [
        ("n_cells", X.shape[0]),
        ("n_genes", X.shape[1]),
        ("nnz", X.nnz),
        ("total_counts", fmt(totals.sum())),
        ("first_barcode", adata.obs_names[0]),
        ("last_barcode", adata.obs_names[-1]),
        ("first_gene_id", ids[0]),
        ("last_gene_id", ids[-1]),
        ("first_symbol", syms[0]),
        ("last_symbol", syms[-1]),
        ("n_renamed_symbols", sum(s != r for s, r in zip(syms, raw_syms))),
    ]
    with open(os.path.join(OUT, f"{key}_{kind}_summary.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["key", "value"])
        w.writerows(summary)


def read_mtx(path):
    a = sc.read_10x_mtx(path, var_names="gene_symbols", make_unique=False, cache=False)
    raw = list(a.var_names)
    a.var_names_make_unique()
    a.var["_raw_symbol"] = raw
    return a


def read_h5(path, genome=None):
    a = sc.read_10x_h5(path, genome=genome)
    raw = list(a.var_names)  # read_10x_h5 does not make names unique
    a.var_names_make_unique()
    a.var["_raw_symbol"] = raw
    return a


def main():
    os.makedirs(OUT, exist_ok=True)
    for key, path in MTX.items():
        write(read_mtx(path), key, "mtx")
    write(read_h5("fixtures/scanpy_cr120_h5/filtered_gene_bc_matrices_h5.h5"), "scanpy_cr120_h5", "h5")
    for g in ["hg19_chr21", "another_genome"]:
        write(
            read_h5("fixtures/scanpy_cr120_h5/multiple_genomes.h5", genome=g),
            f"scanpy_cr120_multiple_genomes_{g}",
            "h5",
        )
    write(read_h5("fixtures/scanpy_cr300/filtered_feature_bc_matrix.h5"), "scanpy_cr300", "h5")


if __name__ == "__main__":
    main()
