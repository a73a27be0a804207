"""Checks that an .h5ad written by scrna opens in anndata and Scanpy with no warnings.

Versions used: scanpy 1.11.5, anndata 0.12, h5py 3.16, matplotlib 3.
Not run by CI. Usage (from the repository root):
    cargo test --test h5ad -- --ignored write_demo_for_python_check
    .venv/bin/python scripts/verify_h5ad.py target/demo.h5ad
"""

import sys
import warnings

warnings.simplefilter("error")  # any warning is a failure

import anndata as ad  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import scanpy as sc  # noqa: E402
import scipy.sparse as sp  # noqa: E402

path = sys.argv[1] if len(sys.argv) > 1 else "target/demo.h5ad"
a = ad.read_h5ad(path)
print(a)
assert sp.issparse(a.X) and a.X.format == "csr", type(a.X)
for k in a.layers:
    assert a.layers[k].shape == a.shape, k
for k in ("sample", "condition"):
    assert k in a.obs and a.obs[k].dtype.name == "category", (k, a.obs.dtypes)
assert "gene_ids" in a.var and "feature_types" in a.var
print(a.obs.dtypes.to_dict())
print(a.var.dtypes.to_dict())

if "rank_genes_groups" in a.uns:
    df = sc.get.rank_genes_groups_df(a, group=None)
    print(df.head())
    assert len(df) > 0 and {"names", "scores", "pvals", "pvals_adj", "logfoldchanges"} <= set(df.columns)
    params = a.uns["rank_genes_groups"]["params"]
    print(dict(params))
if "X_umap" in a.obsm:
    color = "leiden" if "leiden" in a.obs else "sample"
    with warnings.catch_warnings():
        # Scanpy 1.11 itself calls a Matplotlib API that Matplotlib 3.10 marks for deprecation;
        # unrelated to the file.
        warnings.filterwarnings("ignore", message="The set_bad function", category=PendingDeprecationWarning)
        sc.pl.umap(a, color=color, show=False)
    matplotlib.pyplot.savefig(path + ".umap.png")
# Writing it back with anndata must also work.
a.write_h5ad(path + ".rewritten.h5ad")
print("OK", path)
