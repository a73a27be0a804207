#!/usr/bin/env python
"""Reference values for `scrna::markers`, `scrna::stats` and `scrna::pseudobulk`.

Versions used to produce the committed files (pin them when regenerating):
    python 3.11, scanpy 1.11.5, anndata 0.12, numpy 2.x, scipy 1.17.1, statsmodels 0.14,
    leidenalg 0.10, igraph 0.11, pandas 2.x

Run from the repository root:
    .venv/bin/python scripts/reference_markers.py

Writes small CSV files under fixtures/reference/markers/:
  leiden_labels.csv      barcode,label  (Scanpy's own Leiden labels of the standard pipeline; the
                         Rust tests use them as fixed groups, so clustering cannot leak in)
  <run>_top100.csv       group,rank,gene,score,logfoldchange,pval,pval_adj,pct_in,pct_out
                         for every group, the top 100 genes of `rank_genes_groups` for the runs
                           wilcoxon            method="wilcoxon"
                           wilcoxon_tie        method="wilcoxon", tie_correct=True
                           wilcoxon_ref        method="wilcoxon", reference=<REF_GROUP>
                           ttest               method="t-test"
                           ttest_overestim     method="t-test_overestim_var"
                           ttest_ref           method="t-test", reference=<REF_GROUP>
  full_scores.csv        gene_index,gene,<run>_<group>...: the scores of every third gene (index
                         in the filtered gene order) for two groups (Wilcoxon and t-test), to
                         check genes far from the top too (every third gene keeps the file small)
  stats_normal.csv       x,sf                    scipy.stats.norm.sf
  stats_t.csv            t,df,sf                 scipy.stats.t.sf
  stats_beta.csv         a,b,x,value             scipy.special.betainc
  stats_bh.csv           p,bh,bonferroni         statsmodels multipletests fdr_bh / bonferroni
  pseudobulk_counts.csv  sample,condition,cluster,gene,count  (seeded simulated raw counts, long)
  pseudobulk_expected.csv cluster,gene,log2cpm_a,log2cpm_b,log2fc,t,df,pval,pval_adj
                         Welch t-test on log2(CPM + 1) of per-(sample, cluster) sums,
                         computed here with pandas/scipy/statsmodels.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import scanpy as sc
import scipy
import scipy.special
import scipy.stats
from statsmodels.stats.multitest import multipletests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "fixtures/celltypist_sample/filtered_feature_bc_matrix")
OUT = os.path.join(ROOT, "fixtures/reference/markers")
REF_GROUP = "1"
FULL_GROUPS = ["0", "3"]
TOP = 100


def log_normalized() -> sc.AnnData:
    adata = sc.read_10x_mtx(DATA, var_names="gene_symbols", make_unique=True)
    sc.pp.filter_cells(adata, min_genes=200)
    sc.pp.filter_genes(adata, min_cells=3)
    sc.pp.normalize_total(adata, target_sum=1e4)
    # sc.pp.log1p, except that each value is computed in float64 and rounded to float32.
    # NumPy's float32 log1p is not correctly rounded (it differs from the C library's log1pf
    # in about 1% of this matrix's values), and a one-ulp difference can merge or split tied
    # values, which moves Wilcoxon rank sums by half ranks. Rounded from float64, the values
    # are reproducible bit for bit by any language (`(x as f64).ln_1p() as f32` in Rust).
    # The result is what sc.pp.log1p records (uns["log1p"]), on the same sparse matrix.
    x = adata.X
    x.data = np.log1p(x.data.astype(np.float64)).astype(np.float32)
    adata.uns["log1p"] = {"base": None}
    return adata


def leiden_labels(adata: sc.AnnData) -> pd.Series:
    a = adata.copy()
    sc.pp.highly_variable_genes(a, flavor="seurat", n_top_genes=2000)
    a = a[:, a.var["highly_variable"]].copy()
    sc.pp.scale(a, max_value=10)
    sc.tl.pca(a, n_comps=50, svd_solver="arpack")
    sc.pp.neighbors(a, n_neighbors=15)
    sc.tl.leiden(
        a, flavor="igraph", resolution=1.0, random_state=0, n_iterations=2, directed=False
    )
    return a.obs["leiden"]


def top_table(adata: sc.AnnData, key: str, reference: str) -> pd.DataFrame:
    rg = adata.uns[key]
    groups = rg["names"].dtype.names
    pts = rg["pts"]
    pts_rest = rg.get("pts_rest")
    rows = []
    for g in groups:
        for r in range(TOP):
            gene = rg["names"][g][r]
            if pts_rest is not None:
                out = pts_rest.loc[gene, g]
            else:
                out = pts.loc[gene, reference]
            rows.append(
                (
                    g,
                    r + 1,
                    gene,
                    float(rg["scores"][g][r]),
                    float(rg["logfoldchanges"][g][r]),
                    float(rg["pvals"][g][r]),
                    float(rg["pvals_adj"][g][r]),
                    float(pts.loc[gene, g]),
                    float(out),
                )
            )
    return pd.DataFrame(
        rows,
        columns=[
            "group",
            "rank",
            "gene",
            "score",
            "logfoldchange",
            "pval",
            "pval_adj",
            "pct_in",
            "pct_out",
        ],
    )


def write(df: pd.DataFrame, name: str, digits: int = 9) -> None:
    path = os.path.join(OUT, name)
    df.to_csv(path, index=False, float_format=f"%.{digits}g")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


def markers() -> None:
    adata = log_normalized()
    labels = leiden_labels(adata)
    adata.obs["leiden"] = labels.astype("category")
    write(
        pd.DataFrame({"barcode": adata.obs_names, "label": labels.astype(str).values}),
        "leiden_labels.csv",
    )
    print(adata.obs["leiden"].value_counts().sort_index(), file=sys.stderr)

    runs = {
        "wilcoxon": dict(method="wilcoxon"),
        "wilcoxon_tie": dict(method="wilcoxon", tie_correct=True),
        "wilcoxon_ref": dict(method="wilcoxon", reference=REF_GROUP),
        "ttest": dict(method="t-test"),
        "ttest_overestim": dict(method="t-test_overestim_var"),
        "ttest_ref": dict(method="t-test", reference=REF_GROUP),
    }
    full = pd.DataFrame({"gene_index": np.arange(adata.n_vars), "gene": adata.var_names})
    for name, kw in runs.items():
        key = f"rg_{name}"
        sc.tl.rank_genes_groups(adata, "leiden", key_added=key, pts=True, **kw)
        write(top_table(adata, key, kw.get("reference", "rest")), f"{name}_top100.csv")
        if name in ("wilcoxon", "ttest"):
            rg = adata.uns[key]
            for g in FULL_GROUPS:
                s = pd.Series(rg["scores"][g], index=rg["names"][g])
                full[f"{name}_{g}"] = s.loc[adata.var_names].values
    write(full.iloc[::3], "full_scores.csv")


def stats_values() -> None:
    x = np.array(
        [0.0, 1e-8, 0.1, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 37.5]
    )
    write(pd.DataFrame({"x": np.concatenate([x, -x[1:6]]),
                        "sf": scipy.stats.norm.sf(np.concatenate([x, -x[1:6]]))}),
          "stats_normal.csv", digits=17)
    rows = []
    for df in [1.0, 2.0, 3.5, 10.0, 30.0, 101.7, 557.0, 5000.0, 1e6]:
        for t in [0.0, 0.3, 1.0, 2.5, 5.0, 10.0, 30.0, 100.0, -2.0]:
            rows.append((t, df, scipy.stats.t.sf(t, df)))
    write(pd.DataFrame(rows, columns=["t", "df", "sf"]), "stats_t.csv", digits=17)
    rows = []
    for a, b in [(0.5, 0.5), (1.0, 1.0), (2.0, 3.0), (0.5, 278.0), (278.0, 0.5), (10.0, 20.0),
                 (50.0, 0.5), (1000.0, 1000.0), (3.5, 0.5)]:
        for xx in [0.0, 1e-6, 0.01, 0.2, 0.5, 0.8, 0.99, 0.999999, 1.0]:
            rows.append((a, b, xx, scipy.special.betainc(a, b, xx)))
    write(pd.DataFrame(rows, columns=["a", "b", "x", "value"]), "stats_beta.csv", digits=17)
    rng = np.random.default_rng(7)
    p = np.concatenate([rng.uniform(size=40) ** 3, [1.0, 0.0, 0.5, 0.5, 1e-300, 0.04, 0.04]])
    p = np.round(p, 12)
    _, bh, _, _ = multipletests(p, alpha=0.05, method="fdr_bh")
    _, bonf, _, _ = multipletests(p, alpha=0.05, method="bonferroni")
    write(pd.DataFrame({"p": p, "bh": bh, "bonferroni": bonf}), "stats_bh.csv", digits=17)


def pseudobulk_values() -> None:
    rng = np.random.default_rng(11)
    samples = {"a1": "ctrl", "a2": "ctrl", "a3": "ctrl", "b1": "treat", "b2": "treat"}
    clusters = ["c0", "c1"]
    n_genes = 20
    base = rng.gamma(2.0, 20.0, size=n_genes)
    rows = []
    for s, cond in samples.items():
        for c in clusters:
            n_cells = int(rng.integers(3, 8))
            mu = base * (3.0 if (cond == "treat") else 1.0) ** (np.arange(n_genes) < 5)
            mu = mu * (1.0 + 0.5 * (c == "c1"))
            for cell in range(n_cells):
                size = rng.uniform(0.5, 1.5)
                counts = rng.poisson(mu * size / 10.0)
                for g in np.flatnonzero(counts):
                    rows.append((f"{s}_{c}_{cell}", s, cond, c, f"g{g}", int(counts[g])))
    long = pd.DataFrame(rows, columns=["cell", "sample", "condition", "cluster", "gene", "count"])
    write(long, "pseudobulk_counts.csv")
    out = []
    genes = [f"g{g}" for g in range(n_genes)]
    for c in clusters:
        sub = long[long.cluster == c]
        bulk = sub.pivot_table(index="sample", columns="gene", values="count", aggfunc="sum",
                               fill_value=0).reindex(columns=genes, fill_value=0)
        lib = bulk.sum(axis=1)
        logcpm = np.log2(bulk.div(lib, axis=0) * 1e6 + 1.0)
        cond = pd.Series(samples)[logcpm.index]
        a = logcpm[cond.values == "treat"]
        b = logcpm[cond.values == "ctrl"]
        res = scipy.stats.ttest_ind(a, b, equal_var=False)
        va = a.var(ddof=1) / len(a)
        vb = b.var(ddof=1) / len(b)
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        pv = np.where(np.isnan(res.pvalue), 1.0, res.pvalue)
        _, padj, _, _ = multipletests(pv, method="fdr_bh")
        for i, g in enumerate(genes):
            out.append((c, g, a[g].mean(), b[g].mean(), a[g].mean() - b[g].mean(),
                        res.statistic[i], df[g], res.pvalue[i], padj[i]))
    write(pd.DataFrame(out, columns=["cluster", "gene", "mean_treat", "mean_ctrl", "log2fc",
                                     "t", "df", "pval", "pval_adj"]), "pseudobulk_expected.csv")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    print(f"scanpy {sc.__version__}, scipy {scipy.__version__}, numpy {np.__version__}",
          file=sys.stderr)
    stats_values()
    pseudobulk_values()
    markers()
