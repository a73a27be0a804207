"""Writes the .h5ad compatibility set read by tests/inputs_wild.rs.

Run with the repository's .venv (anndata 0.12, h5py, numpy, scipy):

    /work/main/.venv/bin/python scripts/make_h5ad_compat.py

Writes small files to fixtures/h5ad_compat/ and `expected.json` (per file: the matrix the
reader must pick, its shape, total and stored values, or a piece of the expected error; obs
columns to check). Every file holds the same integer counts (40 cells x 25 genes, negative
binomial, seed 0) in a different layout: CSR / CSC / dense X; integer and float counts;
log-normalized X with the counts in a layer, in raw, or nowhere; scaled X; non-integer
(ambient-corrected-like) counts; categorical, string, integer, float and boolean obs columns;
gzip and lzf compression. These are written by anndata itself.

The older encodings are written with h5py directly (no anndata 0.7/0.8 install), following
anndata's specification of those versions:
- `anndata_08_layout.h5ad`: the 0.8 layout (every element with `encoding-type` and
  `encoding-version` "0.1.0"; categoricals as groups with codes/categories/ordered; strings
  as variable-length `string-array`s);
- `anndata_07_layout.h5ad`: the 0.7 layout (sparse X as a group with `h5sparse_format` /
  `h5sparse_shape` attributes and no encoding attributes; categorical columns as integer
  codes with their categories in `obs/__categories/<column>`).
"""

import json
import os

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "h5ad_compat")
N_CELLS, N_GENES = 40, 25


def base():
    rng = np.random.default_rng(0)
    mu = rng.gamma(0.6, 3.0, size=N_GENES)
    counts = rng.negative_binomial(2, 2 / (2 + mu), size=(N_CELLS, N_GENES)).astype(np.int32)
    obs = pd.DataFrame(
        {
            "sample": pd.Categorical(["s1"] * 20 + ["s2"] * 20),
            "cell_type": pd.Categorical(rng.choice(["T", "B", "NK"], N_CELLS)),
            "note": [f"cell {i}" for i in range(N_CELLS)],
            "n_umi": counts.sum(1).astype(np.int64),
            "score": np.round(rng.random(N_CELLS), 3),
            "keep": rng.random(N_CELLS) > 0.3,
        },
        index=[f"BC{i:03d}-1" for i in range(N_CELLS)],
    )
    var = pd.DataFrame(
        {
            "gene_ids": [f"ENSG{j:05d}" for j in range(N_GENES)],
            "feature_types": ["Gene Expression"] * N_GENES,
        },
        index=[f"G{j}" for j in range(N_GENES)],
    )
    return counts, obs, var


def lognorm(counts):
    t = counts.sum(1, keepdims=True).astype(np.float64)
    t[t == 0] = 1
    return np.log1p(counts / t * 1e4).astype(np.float32)


def expect_matrix(name, m):
    m = np.asarray(m.toarray() if sp.issparse(m) else m, dtype=np.float64)
    return {
        "matrix": name,
        "n_cells": int(m.shape[0]),
        "n_genes": int(m.shape[1]),
        "total": float(m.sum()),
        "nnz": int((m != 0).sum()),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    counts, full_obs, var = base()
    # Only the files that test the columns carry them all (keeps the set small).
    obs = full_obs[["sample"]].copy()
    csr = sp.csr_matrix(counts)
    log = lognorm(counts)
    expected = {}

    def write(name, adata, exp, **kw):
        adata.write_h5ad(os.path.join(OUT, name), **kw)
        expected[name] = exp

    write("csr_int.h5ad", ad.AnnData(csr, obs=full_obs, var=var), expect_matrix("X", csr))
    write(
        "csc_float.h5ad",
        ad.AnnData(sp.csc_matrix(counts.astype(np.float32)), obs=obs, var=var),
        expect_matrix("X", csr),
    )
    write("dense_int.h5ad", ad.AnnData(counts.copy(), obs=obs, var=var), expect_matrix("X", csr))
    write(
        "csr_float64.h5ad",
        ad.AnnData(sp.csr_matrix(counts.astype(np.float64)), obs=obs, var=var),
        expect_matrix("X", csr),
    )
    a = ad.AnnData(sp.csr_matrix(log), obs=obs, var=var)
    a.layers["counts"] = csr.copy()
    write("log_x_counts_layer.h5ad", a, expect_matrix("layers/counts", csr))
    a = ad.AnnData(sp.csr_matrix(log), obs=obs, var=var)
    a.layers["raw_counts"] = counts.copy()  # a dense layer under another conventional name
    write("log_x_raw_counts_dense_layer.h5ad", a, expect_matrix("layers/raw_counts", csr))
    # Scanpy's processed layout: raw keeps every gene, X the highly variable ones (log).
    full = ad.AnnData(csr.copy(), obs=obs, var=var)
    a = ad.AnnData(sp.csr_matrix(log[:, :15]), obs=obs, var=var.iloc[:15].copy())
    a.raw = full
    write("log_x_raw.h5ad", a, expect_matrix("raw/X", csr))
    write(
        "log_only.h5ad",
        ad.AnnData(sp.csr_matrix(log), obs=obs, var=var),
        {"error": ["like log-normalized data", "no counts layer found", "--layer", "--assume-counts"]},
    )
    scaled = (log - log.mean(0)) / (log.std(0) + 1e-6)
    write(
        "scaled_only.h5ad",
        ad.AnnData(scaled.astype(np.float32), obs=obs, var=var),
        {"error": ["negative values", "scaled"]},
    )
    ambient = np.round(counts * 0.9, 2).astype(np.float32)
    e = expect_matrix("X", ambient)
    e["error"] = ["non-integer values", "--assume-counts"]
    e["assume_counts"] = True
    write("ambient_float.h5ad", ad.AnnData(sp.csr_matrix(ambient), obs=obs, var=var), e)
    write(
        "gzip.h5ad",
        ad.AnnData(csr.copy(), obs=full_obs, var=var),
        expect_matrix("X", csr),
        compression="gzip",
    )
    write(
        "lzf.h5ad",
        ad.AnnData(csr.copy(), obs=full_obs, var=var),
        expect_matrix("X", csr),
        compression="lzf",
    )
    old_layouts(counts, full_obs, var, expected)
    for k in ["csr_int.h5ad", "gzip.h5ad", "lzf.h5ad", "anndata_08_layout.h5ad", "anndata_07_layout.h5ad"]:
        expected[k]["obs"] = obs_expect(full_obs)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


def obs_expect(obs):
    """A few obs values to check: first and last rows of each column, as text."""
    out = {}
    for c in ["cell_type", "note", "n_umi", "score", "keep"]:
        col = obs[c]
        fmt = (lambda v: "true" if v else "false") if col.dtype == bool else str
        out[c] = [fmt(col.iloc[0]), fmt(col.iloc[-1])]
    out["sample"] = [str(obs["sample"].iloc[0]), str(obs["sample"].iloc[-1])]
    return out


def str_attr(obj, key, value):
    obj.attrs.create(key, value, dtype=h5py.string_dtype())


def old_layouts(counts, obs, var, expected):
    csr = sp.csr_matrix(counts.astype(np.float32))
    vlen = h5py.string_dtype()
    # anndata 0.8: encoding attributes everywhere, version 0.1.0.
    with h5py.File(os.path.join(OUT, "anndata_08_layout.h5ad"), "w") as f:
        str_attr(f, "encoding-type", "anndata")
        str_attr(f, "encoding-version", "0.1.0")
        x = f.create_group("X")
        str_attr(x, "encoding-type", "csr_matrix")
        str_attr(x, "encoding-version", "0.1.0")
        x.attrs["shape"] = np.array(csr.shape, dtype=np.int64)
        x["data"], x["indices"], x["indptr"] = csr.data, csr.indices, csr.indptr
        for name, df in [("obs", obs), ("var", var)]:
            g = f.create_group(name)
            str_attr(g, "encoding-type", "dataframe")
            str_attr(g, "encoding-version", "0.2.0")
            str_attr(g, "_index", "_index")
            g.attrs.create("column-order", list(df.columns), dtype=vlen)
            d = g.create_dataset("_index", data=np.array(df.index, dtype=object), dtype=vlen)
            str_attr(d, "encoding-type", "string-array")
            str_attr(d, "encoding-version", "0.2.0")
            for c in df.columns:
                col = df[c]
                if isinstance(col.dtype, pd.CategoricalDtype):
                    cg = g.create_group(c)
                    str_attr(cg, "encoding-type", "categorical")
                    str_attr(cg, "encoding-version", "0.2.0")
                    cg.attrs["ordered"] = False
                    cg["codes"] = col.cat.codes.to_numpy().astype(np.int8)
                    cg.create_dataset(
                        "categories", data=np.array(col.cat.categories, dtype=object), dtype=vlen
                    )
                elif col.dtype == object:
                    d = g.create_dataset(c, data=np.array(col, dtype=object), dtype=vlen)
                    str_attr(d, "encoding-type", "string-array")
                    str_attr(d, "encoding-version", "0.2.0")
                else:
                    d = g.create_dataset(c, data=col.to_numpy())
                    str_attr(d, "encoding-type", "array")
                    str_attr(d, "encoding-version", "0.2.0")
    expected["anndata_08_layout.h5ad"] = expect_matrix("X", csr)
    # anndata 0.7: h5sparse attributes on X; categories under __categories.
    with h5py.File(os.path.join(OUT, "anndata_07_layout.h5ad"), "w") as f:
        x = f.create_group("X")
        str_attr(x, "h5sparse_format", "csc")
        csc = sp.csc_matrix(counts.astype(np.float32))
        x.attrs["h5sparse_shape"] = np.array(csc.shape, dtype=np.int64)
        x["data"], x["indices"], x["indptr"] = csc.data, csc.indices, csc.indptr
        for name, df in [("obs", obs), ("var", var)]:
            g = f.create_group(name)
            str_attr(g, "encoding-type", "dataframe")
            str_attr(g, "encoding-version", "0.1.0")
            str_attr(g, "_index", "_index")
            g.attrs.create("column-order", list(df.columns), dtype=vlen)
            g.create_dataset("_index", data=np.array(df.index, dtype=object), dtype=vlen)
            for c in df.columns:
                col = df[c]
                if isinstance(col.dtype, pd.CategoricalDtype):
                    cats = g.create_dataset(
                        f"__categories/{c}",
                        data=np.array(col.cat.categories, dtype=object),
                        dtype=vlen,
                    )
                    d = g.create_dataset(c, data=col.cat.codes.to_numpy().astype(np.int8))
                    d.attrs["categories"] = cats.ref
                elif col.dtype == object:
                    g.create_dataset(c, data=np.array(col, dtype=object), dtype=vlen)
                else:
                    g.create_dataset(c, data=col.to_numpy())
    expected["anndata_07_layout.h5ad"] = expect_matrix("X", csr)


if __name__ == "__main__":
    main()
