#!/usr/bin/env python3
"""Reference values for the preprocessing agreement tests (tests/preprocess_scanpy.rs).

Pinned versions (the values in fixtures/reference/preprocess/ were written with these):
    scanpy 1.11.5, anndata 0.12.19, numpy 2.4.6, scipy 1.17.1, pandas 2.3.3,
    scikit-misc 0.5.3 (loess for seurat_v3), Python 3.11

Run from the repository root:
    .venv/bin/python scripts/reference_preprocess.py

Datasets:
  * celltypist: fixtures/celltypist_sample/filtered_feature_bc_matrix (10x v3, gene symbols
    made unique as Scanpy's var_names_make_unique);
  * sim: a seeded negative-binomial count matrix written by this script as a 10x v3 folder
    (fixtures/reference/preprocess/sim/), with two batches (cells 0..199 "A", 200..399 "B").

Steps, as Scanpy's clustering tutorial: calculate_qc_metrics(qc_vars=["mt", "ribo"]),
filter_cells(min_genes=200), filter_genes(min_cells=3), normalize_total(target_sum=1e4),
log1p, highly_variable_genes (seurat with default cut-offs, seurat / cell_ranger with
n_top_genes, seurat_v3 on the filtered counts, and batch_key runs on sim).

Outputs are small CSVs: per-cell values for all cells, per-gene values for a sample of genes
(every k-th gene, all selected genes' indices, and the genes next to the n_top_genes cut-off).
"""
import gzip
import os
import sys
from importlib.metadata import version

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.io
import scipy.sparse as sp

EXPECTED = {"scanpy": "1.11.5", "anndata": "0.12.19", "scikit-misc": "0.5.3"}
for pkg, v in EXPECTED.items():
    if version(pkg) != v:
        sys.exit(f"{pkg} {version(pkg)} found, {v} expected (see header)")

OUT = "fixtures/reference/preprocess"
os.makedirs(OUT, exist_ok=True)
FMT = "%.10g"


def write_sim():
    """Seeded NB counts with mito/ribo genes and a batch shift, as a 10x v3 folder."""
    rng = np.random.default_rng(20261125)
    n_cells, n_genes = 400, 1500
    names = [f"G{i:04d}" for i in range(n_genes)]
    for i in range(13):
        names[i * 7] = f"MT-G{i}"
    for i in range(40):
        names[5 + i * 11] = ("RPS" if i % 2 else "RPL") + str(i)
    names[100] = names[101]  # a duplicated symbol, made unique on read
    base = np.exp(rng.normal(-1.5, 1.6, n_genes))
    depth = np.exp(rng.normal(0.0, 0.5, n_cells))
    batch_fx = np.exp(rng.normal(0.0, 0.4, n_genes))
    mu = np.outer(depth, base)
    mu[200:] *= batch_fx
    # three groups of cells with different expression programs
    groups = rng.integers(0, 3, n_cells)
    prog = np.exp(rng.normal(0.0, 1.0, (3, n_genes)) * (rng.random(n_genes) < 0.15))
    mu *= prog[groups]
    mu[:20] *= 0.05  # a few low-depth cells for the filters
    theta = 2.0
    lam = rng.gamma(theta, mu / theta)
    counts = rng.poisson(lam).astype(np.float32)
    counts[:, 1400:1410] = 0  # unexpressed genes
    counts[350:, 1410:1415] = 0  # genes unexpressed in batch B only
    d = os.path.join(OUT, "sim")
    os.makedirs(d, exist_ok=True)
    m = sp.coo_matrix(counts.T)  # 10x: genes x cells
    with gzip.open(os.path.join(d, "matrix.mtx.gz"), "wb") as f:
        scipy.io.mmwrite(f, m, field="integer")
    with gzip.open(os.path.join(d, "features.tsv.gz"), "wt") as f:
        for i, n in enumerate(names):
            f.write(f"ENSG{i:06d}\t{n}\tGene Expression\n")
    with gzip.open(os.path.join(d, "barcodes.tsv.gz"), "wt") as f:
        for i in range(n_cells):
            f.write(f"CELL{i:04d}-1\n")
    return d


def read(path):
    ad = sc.read_10x_mtx(path, var_names="gene_symbols", make_unique=True)
    ad.var["mt"] = ad.var_names.str.startswith(("MT-", "mt-"))
    ad.var["ribo"] = ad.var_names.str.startswith(("RPS", "RPL"))
    return ad


def gene_sample(n, k):
    return np.arange(0, n, k)


def hvg_table(name, df, value_cols, stride, n_top, var_names):
    """All selected genes (flag only) + every `stride`-th gene and genes near the cut-off (values)."""
    # the batched cut-off path returns genes sorted by name: back to the matrix order
    df = df.loc[var_names]
    n = df.shape[0]
    keep = np.zeros(n, dtype=bool)
    keep[gene_sample(n, stride)] = True
    if n_top is not None:
        key = df[value_cols[-1]].to_numpy()
        if "highly_variable_rank" in df:
            order = np.argsort(df["variances_norm"].to_numpy())[::-1]
        else:
            order = np.argsort(np.nan_to_num(key, nan=-np.inf))[::-1]
        keep[order[max(0, n_top - 10) : n_top + 10]] = True
    rows = []
    for i in range(n):
        hv = bool(df["highly_variable"].iloc[i])
        if not (keep[i] or hv):
            continue
        row = {"gene": i, "highly_variable": int(hv)}
        for c in value_cols:
            row[c] = df[c].iloc[i] if keep[i] else np.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    out.to_csv(os.path.join(OUT, name), index=False, float_format=FMT)


def run(tag, path, batches=None, stride=25):
    ad = read(path)
    sc.pp.calculate_qc_metrics(ad, qc_vars=["mt", "ribo"], inplace=True, percent_top=None, log1p=False)
    cells = ad.obs[["total_counts", "n_genes_by_counts", "total_counts_mt", "pct_counts_mt", "pct_counts_ribo"]].copy()
    cells.insert(0, "barcode", ad.obs_names)
    cells.to_csv(os.path.join(OUT, f"{tag}_qc_cells.csv"), index=False, float_format="%.12g")
    gi = np.union1d(gene_sample(ad.n_vars, 50), np.flatnonzero(ad.var["mt"] | ad.var["ribo"]))
    genes = ad.var.iloc[gi][["n_cells_by_counts", "total_counts", "mean_counts", "pct_dropout_by_counts"]].copy()
    genes.insert(0, "gene", gi)
    genes["symbol"] = ad.var_names[gi]
    genes.to_csv(os.path.join(OUT, f"{tag}_qc_genes.csv"), index=False, float_format="%.12g")

    # filters, in the tutorial's order
    n0 = ad.n_obs
    cell_ok, _ = sc.pp.filter_cells(ad, min_genes=200, inplace=False)
    removed = list(ad.obs_names[~cell_ok])
    sc.pp.filter_cells(ad, min_genes=200)
    sc.pp.filter_genes(ad, min_cells=3)
    kept_genes = np.flatnonzero(np.isin(read(path).var_names, ad.var_names))
    with open(os.path.join(OUT, f"{tag}_filter.csv"), "w") as f:
        f.write("key,value\n")
        f.write(f"n_cells_in,{n0}\n")
        f.write(f"n_cells,{ad.n_obs}\nn_genes,{ad.n_vars}\n")
        f.write(f"kept_gene_index_sum,{int(kept_genes.sum())}\n")
        f.write(f"kept_gene_index_sumsq,{int((kept_genes.astype(np.int64) ** 2).sum())}\n")
        for b in removed:
            f.write(f"removed_cell,{b}\n")

    counts = ad.copy()
    sc.pp.normalize_total(ad, target_sum=1e4)
    norm = ad.X.copy()
    sc.pp.log1p(ad)
    x = ad.X.tocsr()
    rs = np.asarray(x.sum(axis=1, dtype=np.float64)).ravel()
    nt = np.asarray(norm.sum(axis=1, dtype=np.float64)).ravel()
    pd.DataFrame({"cell": np.arange(ad.n_obs), "norm_sum": nt, "log_sum": rs}).to_csv(
        os.path.join(OUT, f"{tag}_norm_cells.csv"), index=False, float_format="%.12g"
    )
    rng = np.random.default_rng(7)
    pick = np.sort(rng.choice(x.nnz, size=300, replace=False))
    rows = np.repeat(np.arange(ad.n_obs), np.diff(x.indptr))[pick]
    pd.DataFrame(
        {"cell": rows, "gene": x.indices[pick], "norm": norm.tocsr().data[pick], "log": x.data[pick]}
    ).to_csv(os.path.join(OUT, f"{tag}_norm_entries.csv"), index=False, float_format="%.9g")
    # median-target variant (target_sum=None) and exclude_highly_expressed
    for suffix, kw in [("median", {}), ("exclude", {"target_sum": 1e4, "exclude_highly_expressed": True})]:
        r = sc.pp.normalize_total(counts, inplace=False, **kw)
        y = r["X"].tocsr()
        pd.DataFrame(
            {
                "cell": np.arange(counts.n_obs),
                "norm_factor": r["norm_factor"],
                "norm_sum": np.asarray(y.sum(axis=1, dtype=np.float64)).ravel(),
                "first_value": [y.data[y.indptr[i]] if y.indptr[i + 1] > y.indptr[i] else 0 for i in range(y.shape[0])],
            }
        ).to_csv(os.path.join(OUT, f"{tag}_norm_{suffix}.csv"), index=False, float_format="%.9g")

    disp = ["means", "dispersions", "dispersions_norm"]
    n_top = 2000 if tag == "celltypist" else 300
    df = sc.pp.highly_variable_genes(ad, flavor="seurat", inplace=False)
    hvg_table(f"{tag}_hvg_seurat_cutoff.csv", df, disp, stride, None, ad.var_names)
    df = sc.pp.highly_variable_genes(ad, flavor="seurat", n_top_genes=n_top, inplace=False)
    hvg_table(f"{tag}_hvg_seurat_top.csv", df, disp, stride, n_top, ad.var_names)
    df = sc.pp.highly_variable_genes(ad, flavor="cell_ranger", n_top_genes=n_top, inplace=False)
    hvg_table(f"{tag}_hvg_cell_ranger_top.csv", df, disp, stride, n_top, ad.var_names)
    df = sc.pp.highly_variable_genes(counts, flavor="seurat_v3", n_top_genes=n_top, inplace=False)
    hvg_table(f"{tag}_hvg_seurat_v3_top.csv", df, ["means", "variances", "variances_norm", "highly_variable_rank"], stride, n_top, ad.var_names)
    if batches is not None:
        b = batches[cell_ok]
        ad.obs["batch"] = pd.Categorical(b)
        counts.obs["batch"] = pd.Categorical(b)
        df = sc.pp.highly_variable_genes(ad, flavor="seurat", n_top_genes=n_top, batch_key="batch", inplace=False)
        hvg_table(f"{tag}_hvg_seurat_batch.csv", df, disp + ["highly_variable_nbatches"], stride, n_top, ad.var_names)
        df = sc.pp.highly_variable_genes(ad, flavor="seurat", batch_key="batch", inplace=False)
        hvg_table(f"{tag}_hvg_seurat_cutoff_batch.csv", df, disp + ["highly_variable_nbatches"], stride, None, ad.var_names)
        df = sc.pp.highly_variable_genes(counts, flavor="seurat_v3", n_top_genes=n_top, batch_key="batch", inplace=False)
        hvg_table(
            f"{tag}_hvg_seurat_v3_batch.csv",
            df,
            ["means", "variances", "variances_norm", "highly_variable_rank", "highly_variable_nbatches"],
            stride,
            n_top,
            ad.var_names,
        )
    return counts


def loess_reference(counts):
    """skmisc loess (degree 2, span 0.3) on log10 mean / log10 variance of the sim counts."""
    from skmisc.loess import loess

    from scanpy.preprocessing._utils import _get_mean_var

    mean, var = _get_mean_var(counts.X)
    nc = var > 0
    x, y = np.log10(mean[nc]), np.log10(var[nc])
    m = loess(x, y, span=0.3, degree=2)
    m.fit()
    md = loess(x, y, span=0.3, degree=2, surface="direct")
    md.fit()
    pd.DataFrame({"x": x, "y": y, "fitted": m.outputs.fitted_values, "fitted_direct": md.outputs.fitted_values}).to_csv(
        os.path.join(OUT, "loess_sim.csv"), index=False, float_format="%.12g"
    )


def bench(d):
    """Times the bench pipeline (benches/preprocess.rs) in Scanpy on the matrix that
    `SCRNA_BENCH_DUMP=DIR cargo bench --bench preprocess` wrote to DIR."""
    import time

    import anndata

    n, g = map(int, open(os.path.join(d, "shape.txt")).read().split())
    x = sp.csr_matrix(
        (
            np.fromfile(os.path.join(d, "data.f32"), dtype="<f4"),
            np.fromfile(os.path.join(d, "indices.u32"), dtype="<u4").astype(np.int32),
            np.fromfile(os.path.join(d, "indptr.u64"), dtype="<u8").astype(np.int64),
        ),
        shape=(n, g),
    )
    names = open(os.path.join(d, "genes.txt")).read().split("\n")
    ad = anndata.AnnData(x)
    ad.var_names = names
    t = {}
    t0 = time.perf_counter()
    ad.var["mt"] = ad.var_names.str.startswith(("MT-", "mt-"))
    ad.var["ribo"] = ad.var_names.str.startswith(("RPS", "RPL"))
    sc.pp.calculate_qc_metrics(ad, qc_vars=["mt", "ribo"], inplace=True, percent_top=None, log1p=False)
    t["qc"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    sc.pp.filter_cells(ad, min_genes=200)
    ad = ad[ad.obs.pct_counts_mt <= 20].copy()
    sc.pp.filter_genes(ad, min_cells=3)
    t["filter"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    sc.pp.normalize_total(ad, target_sum=1e4)
    t["normalize"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    sc.pp.log1p(ad)
    t["log1p"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    sc.pp.highly_variable_genes(ad, flavor="seurat", n_top_genes=2000)
    t["hvg"] = time.perf_counter() - t1
    t["total"] = time.perf_counter() - t0
    print(f"scanpy {version('scanpy')} on {n} x {g}, nnz {x.nnz}:", {k: round(v, 3) for k, v in t.items()})


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--bench":
    bench(sys.argv[2])
    sys.exit(0)

if __name__ == "__main__":
    run("celltypist", "fixtures/celltypist_sample/filtered_feature_bc_matrix", stride=40)
    sim = write_sim()
    batches = np.array(["A"] * 200 + ["B"] * 200)
    c = run("sim", sim, batches=batches, stride=5)
    loess_reference(c)
    print("wrote", sorted(os.listdir(OUT)))
