#!/usr/bin/env python3
"""Reference values of CellPhoneDB 5's statistical analysis for tests/interactions.rs.

Runs in its own virtual environment (CellPhoneDB pins its own pandas / numpy):
    python3 -m venv /work/venv-cpdb && /work/venv-cpdb/bin/pip install cellphonedb==5.0.1
The cluster labels come from Scanpy in the repository's .venv (first step below), so two
interpreters are used:

    .venv/bin/python scripts/cellphonedb_reference.py labels
    /work/venv-cpdb/bin/python scripts/cellphonedb_reference.py run <cellphonedb.zip>
    /work/venv-cpdb/bin/python scripts/cellphonedb_reference.py bench <cellphonedb.zip>

`bench` times statistical_analysis on 10,000 cells: the labelled cells repeated in order
(cell i = labelled cell i mod n), as benches/interactions.rs builds them, 1000 iterations,
threads 1 (2 processes abort: fork after OpenMP); the time and the machine's load averages
before and after are printed (the README quotes them).

Data: fixtures/celltypist_sample (553 of its 559 human immune cells pass QC, raw UMI counts, gene symbols).
Values given to CellPhoneDB: log1p(count / total * 1e4) per cell, total over all genes, in
float64 then stored as float32 (the test recomputes them the same way). Labels: Scanpy's
standard pipeline (QC min_genes 200, min_cells 3, normalize_total, log1p, 2000 seurat HVGs,
scale, 50 PCs, 15 neighbours, Leiden resolution 2, seed 0).
Database: CellPhoneDB v5.0.0 `cellphonedb.zip` (ventolab/cellphonedb-data commit aaf01d6,
the source of assets/interactions/cellphonedb_v5.csv.gz).
statistical_analysis: iterations 1000, threshold 0.1, result_precision 10, threads 1 (with 2 the
worker processes abort: "fork() called from a process already using GNU OpenMP").

Outputs (fixtures/cellphonedb/):
  labels.csv.gz   barcode,cluster
  reference.csv.gz  id_cp_interaction,cluster_a,cluster_b,mean,pvalue,expressed
                    (rows with mean > 0, or with the fraction filter passed)
  timing.txt      wall time of statistical_analysis
"""
import gzip
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "fixtures", "celltypist_sample", "filtered_feature_bc_matrix")
OUT = os.path.join(ROOT, "fixtures", "cellphonedb")


def log_normalized(adata):
    import numpy as np
    import scipy.sparse as sp

    x = sp.csr_matrix(adata.X, dtype=np.float64)
    total = np.asarray(x.sum(axis=1)).ravel()
    x = sp.diags(1.0 / total) @ x
    x.data = np.log1p(x.data * 1e4)
    return x.astype(np.float32)


def labels():
    import scanpy as sc

    a = sc.read_10x_mtx(FIX, var_names="gene_symbols")
    sc.pp.filter_cells(a, min_genes=200)
    b = a.copy()
    sc.pp.filter_genes(b, min_cells=3)
    sc.pp.normalize_total(b, target_sum=1e4)
    sc.pp.log1p(b)
    sc.pp.highly_variable_genes(b, n_top_genes=2000, flavor="seurat")
    b = b[:, b.var.highly_variable].copy()
    sc.pp.scale(b, max_value=10)
    sc.tl.pca(b, n_comps=50, svd_solver="arpack", random_state=0)
    sc.pp.neighbors(b, n_neighbors=15, random_state=0)
    sc.tl.leiden(b, resolution=2.0, random_state=0, flavor="igraph", n_iterations=2, directed=False)
    os.makedirs(OUT, exist_ok=True)
    with gzip.open(os.path.join(OUT, "labels.csv.gz"), "wt") as f:
        f.write("barcode,cluster\n")
        for bc, c in zip(b.obs_names, b.obs["leiden"]):
            f.write(f"{bc},{c}\n")
    print(b.obs["leiden"].value_counts().sort_index().to_dict())


def load(n_cells=None):
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.io

    mtx = scipy.io.mmread(os.path.join(FIX, "matrix.mtx.gz")).T.tocsr()
    feats = pd.read_csv(os.path.join(FIX, "features.tsv.gz"), sep="\t", header=None)
    bcs = pd.read_csv(os.path.join(FIX, "barcodes.tsv.gz"), sep="\t", header=None)[0]
    a = ad.AnnData(X=mtx, obs=pd.DataFrame(index=bcs.values), var=pd.DataFrame(index=feats[1].values))
    a.var_names_make_unique()
    lab = pd.read_csv(os.path.join(OUT, "labels.csv.gz"), dtype={"cluster": str})
    a = a[lab.barcode.values].copy()
    a.X = log_normalized(a)
    if n_cells is not None:
        idx = np.arange(n_cells) % a.n_obs
        a = a[idx].copy()
        a.obs_names = [f"c{i}" for i in range(n_cells)]
        lab = pd.DataFrame({"barcode": a.obs_names, "cluster": lab.cluster.values[idx]})
    return a, lab


def bench(zip_path):
    import pandas as pd
    import tempfile
    from cellphonedb.src.core.methods import cpdb_statistical_analysis_method

    a, lab = load(10_000)
    tmp = tempfile.mkdtemp()
    meta = os.path.join(tmp, "meta.tsv")
    pd.DataFrame({"Cell": lab.barcode, "cell_type": lab.cluster}).to_csv(meta, sep="\t", index=False)
    counts = os.path.join(tmp, "counts.h5ad")
    a.write_h5ad(counts)
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    t0 = time.perf_counter()
    cpdb_statistical_analysis_method.call(
        cpdb_file_path=zip_path, meta_file_path=meta, counts_file_path=counts,
        counts_data="gene_name", output_path=tmp, iterations=1000, threshold=0.1, threads=1,
    )
    elapsed = time.perf_counter() - t0
    load_after = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"CellPhoneDB statistical_analysis, 10,000 cells, 1000 iterations, 1 process: "
          f"{elapsed:.1f} s (load before: {load_before}, after: {load_after})")


def run(zip_path):
    import pandas as pd
    import pickle
    import tempfile
    from cellphonedb.src.core.methods import cpdb_statistical_analysis_method

    a, lab = load()
    tmp = tempfile.mkdtemp()
    meta = os.path.join(tmp, "meta.tsv")
    pd.DataFrame({"Cell": lab.barcode, "cell_type": lab.cluster}).to_csv(meta, sep="\t", index=False)
    counts = os.path.join(tmp, "counts.h5ad")
    a.write_h5ad(counts)
    t0 = time.perf_counter()
    res = cpdb_statistical_analysis_method.call(
        cpdb_file_path=zip_path,
        meta_file_path=meta,
        counts_file_path=counts,
        counts_data="gene_name",
        output_path=tmp,
        iterations=1000,
        threshold=0.1,
        threads=1,
        debug_seed=-1,
        result_precision=10,
        debug=True,
    )
    elapsed = time.perf_counter() - t0
    with open(os.path.join(tmp, "debug_intermediate.pkl"), "rb") as fh:
        dbg = pickle.load(fh)
    # The fraction filter per (interaction row, cluster pair), indexed like the means.
    percent = dbg["real_percent_analysis"]
    means = res["means"].set_index("id_cp_interaction")
    pvals = res["pvalues"].set_index("id_cp_interaction")
    ids = dbg["interactions_filtered"].index
    id_of_row = res["means"]["id_cp_interaction"].values
    pairs = [c for c in res["means"].columns if "|" in c]
    percent = percent.loc[ids, pairs]
    percent.index = dbg["interactions"].loc[ids, "id_cp_interaction"].values
    rows = []
    for i in id_of_row:
        for p in pairs:
            m = float(means.at[i, p])
            e = int(percent.at[i, p])
            if m > 0 or e:
                a_, b_ = p.split("|")
                rows.append(f"{i},{a_},{b_},{m:.9g},{float(pvals.at[i, p]):.4g},{e}\n")
    with gzip.open(os.path.join(OUT, "reference.csv.gz"), "wt", compresslevel=9) as f:
        f.write("id_cp_interaction,cluster_a,cluster_b,mean,pvalue,expressed\n")
        f.writelines(rows)
    with open(os.path.join(OUT, "timing.txt"), "w") as f:
        f.write(f"statistical_analysis {a.n_obs} cells, {len(pairs)} cluster pairs, 1000 iterations, "
                f"1 process: {elapsed:.2f} s\n")
    print(len(rows), "rows", f"{elapsed:.2f} s")


if __name__ == "__main__":
    if sys.argv[1] == "labels":
        labels()
    elif sys.argv[1] == "bench":
        bench(sys.argv[2])
    else:
        run(sys.argv[2])
