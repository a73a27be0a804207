#!/usr/bin/env python3
"""Reference values for `scrna::cluster` (Leiden, Louvain, modularity, ARI, NMI).

Versions used to write the committed files:
    python 3.11, scanpy 1.11.5, anndata 0.12, leidenalg 0.12.0, igraph 1.0.0,
    scikit-learn 1.9.1, numpy 2.x

Run from the repository root:
    .venv/bin/python scripts/reference_cluster.py

Writes into fixtures/reference/cluster/:
  celltypist_connectivities.csv  upper triangle (i < j) of Scanpy's obsp["connectivities"] after
                                 the standard pipeline (filter_cells 200, filter_genes 3,
                                 normalize_total 1e4, log1p, HVG seurat 2000, scale max 10,
                                 PCA 50 arpack, neighbors 15), f32 values printed losslessly
  celltypist_labels.csv          Scanpy's Leiden labels on that graph: flavor igraph and
                                 flavor leidenalg, resolution 1, random_state 0, n_iterations -1
                                 (Scanpy 1.11's default), and flavor igraph with n_iterations 2
  celltypist_modularity.csv      per resolution (0.5, 1, 2): leidenalg RBConfiguration quality
                                 (unnormalized), that quality / 2m, igraph's modularity of the
                                 leidenalg partition, igraph's modularity of Scanpy's labels
  celltypist_cpm.csv             leidenalg CPMVertexPartition quality at a few resolutions
  celltypist_cpm_labels.csv      leidenalg's CPM partitions behind those qualities (one column
                                 per resolution), to check that the quality is the same quantity
  mixture_summary.csv            a seeded Gaussian mixture graph (generated identically in
                                 tests/cluster_reference.rs): edge count, total weight, and
                                 leidenalg's modularity at resolution 0.5, 1, 2 plus the ARI of
                                 its partition with the true mixture labels
  scores.csv                     ARI and NMI (sklearn, arithmetic normalization) of label pairs
                                 listed in the same file
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

OUT = "fixtures/reference/cluster"


# ---------------------------------------------------------------------------------------------
# Seeded Gaussian mixture, reproduced bit for bit by the Rust tests: splitmix64 uniforms and
# Irwin-Hall normals (sum of 12 uniforms minus 6), so only +, -, * and / are involved.
# ---------------------------------------------------------------------------------------------
MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed: int):
        self.state = seed & MASK

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self) -> float:
        return (self.next_u64() >> 11) * (1.0 / 9007199254740992.0)

    def normal(self) -> float:
        s = 0.0
        for _ in range(12):
            s += self.uniform()
        return s - 6.0


def mixture(n: int, dim: int, k: int, spread: float, seed: int):
    rng = SplitMix64(seed)
    centers = [[(2.0 * rng.uniform() - 1.0) * spread for _ in range(dim)] for _ in range(k)]
    labels = np.empty(n, dtype=np.int64)
    pts = np.empty((n, dim), dtype=np.float64)
    for i in range(n):
        c = int(rng.uniform() * k)
        labels[i] = c
        for d in range(dim):
            pts[i, d] = centers[c][d] + rng.normal()
    return pts, labels


def knn_graph(pts: np.ndarray, k: int):
    """Union of the k-nearest-neighbour relations (self excluded), weight 1 / (1 + d^2)."""
    n = pts.shape[0]
    rows, cols, vals = [], [], []
    sq = (pts * pts).sum(1)
    for start in range(0, n, 1000):
        block = pts[start : start + 1000]
        d2 = sq[start : start + 1000, None] + sq[None, :] - 2.0 * block @ pts.T
        for r in range(block.shape[0]):
            d2[r, start + r] = np.inf
        idx = np.argpartition(d2, k, axis=1)[:, :k]
        for r in range(block.shape[0]):
            i = start + r
            for j in idx[r]:
                diff = pts[i] - pts[j]
                dd = float((diff * diff).sum())
                rows.append(i)
                cols.append(int(j))
                vals.append(1.0 / (1.0 + dd))
    import scipy.sparse as sp

    a = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    a = a.maximum(a.T).tocsr()
    return a


def igraph_from_csr(a):
    import igraph as ig

    coo = a.tocoo()
    keep = coo.row < coo.col
    g = ig.Graph(n=a.shape[0], edges=list(zip(coo.row[keep].tolist(), coo.col[keep].tolist())))
    g.es["weight"] = coo.data[keep].astype(np.float64)
    return g


def leidenalg_modularity(g, resolution: float):
    import leidenalg

    w = np.array(g.es["weight"], dtype=np.float64)
    part = leidenalg.find_partition(
        g,
        leidenalg.RBConfigurationVertexPartition,
        weights=w,
        resolution_parameter=resolution,
        n_iterations=-1,
        seed=0,
    )
    two_m = 2.0 * w.sum()
    q = part.quality()
    igraph_mod = g.modularity(part.membership, weights="weight", resolution=resolution)
    return part, q, q / two_m, igraph_mod


def celltypist():
    import scanpy as sc

    adata = sc.read_10x_mtx("fixtures/celltypist_sample/filtered_feature_bc_matrix")
    sc.pp.filter_cells(adata, min_genes=200)
    sc.pp.filter_genes(adata, min_cells=3)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=2000, flavor="seurat")
    adata = adata[:, adata.var.highly_variable].copy()
    sc.pp.scale(adata, max_value=10)
    sc.tl.pca(adata, n_comps=50, svd_solver="arpack")
    sc.pp.neighbors(adata, n_neighbors=15, n_pcs=50)
    conn = adata.obsp["connectivities"].tocsr().astype(np.float32)
    coo = conn.tocoo()
    keep = coo.row < coo.col
    with open(f"{OUT}/celltypist_connectivities.csv", "w") as f:
        f.write(f"# n={conn.shape[0]}\ni,j,w\n")
        for i, j, v in zip(coo.row[keep], coo.col[keep], coo.data[keep]):
            f.write(f"{i},{j},{np.format_float_positional(np.float32(v), unique=True)}\n")

    sc.tl.leiden(adata, resolution=1.0, random_state=0, flavor="igraph", key_added="igraph")
    sc.tl.leiden(
        adata, resolution=1.0, random_state=0, flavor="igraph", n_iterations=2, key_added="igraph2"
    )
    sc.tl.leiden(adata, resolution=1.0, random_state=0, flavor="leidenalg", key_added="leidenalg")
    with open(f"{OUT}/celltypist_labels.csv", "w") as f:
        f.write("igraph,igraph_n2,leidenalg\n")
        for a, b, c in zip(adata.obs["igraph"], adata.obs["igraph2"], adata.obs["leidenalg"]):
            f.write(f"{a},{b},{c}\n")

    g = igraph_from_csr(conn.astype(np.float64))
    with open(f"{OUT}/celltypist_modularity.csv", "w") as f:
        f.write(
            "resolution,leidenalg_quality,leidenalg_quality_over_2m,"
            "igraph_modularity_of_leidenalg,igraph_modularity_of_scanpy_igraph,n_clusters\n"
        )
        scanpy_igraph = adata.obs["igraph"].astype(int).to_numpy()
        for res in (0.5, 1.0, 2.0):
            part, q, qn, im = leidenalg_modularity(g, res)
            sm = g.modularity(scanpy_igraph.tolist(), weights="weight", resolution=res)
            f.write(
                f"{res},{float(q)!r},{float(qn)!r},{float(im)!r},{float(sm)!r},"
                f"{len(set(part.membership))}\n"
            )

    import leidenalg

    w = np.array(g.es["weight"], dtype=np.float64)
    memberships = []
    with open(f"{OUT}/celltypist_cpm.csv", "w") as f:
        f.write("resolution,leidenalg_cpm_quality,n_clusters\n")
        for res in (0.01, 0.05, 0.2):
            part = leidenalg.find_partition(
                g,
                leidenalg.CPMVertexPartition,
                weights=w,
                resolution_parameter=res,
                n_iterations=-1,
                seed=0,
            )
            f.write(f"{res},{part.quality()!r},{len(set(part.membership))}\n")
            memberships.append(part.membership)
    with open(f"{OUT}/celltypist_cpm_labels.csv", "w") as f:
        f.write("res_0.01,res_0.05,res_0.2\n")
        for row in zip(*memberships):
            f.write(",".join(map(str, row)) + "\n")


def mixture_reference():
    from sklearn.metrics import adjusted_rand_score

    pts, truth = mixture(5000, 10, 12, 1.5, 20240601)
    a = knn_graph(pts, 15)
    g = igraph_from_csr(a)
    with open(f"{OUT}/mixture_summary.csv", "w") as f:
        f.write("key,value\n")
        f.write(f"n_nodes,{a.shape[0]}\n")
        f.write(f"n_stored,{a.nnz}\n")
        f.write(f"total_weight,{float(a.sum())!r}\n")
        f.write(f"first_point_0,{float(pts[0, 0])!r}\n")
        f.write(f"first_label,{truth[0]}\n")
        for res in (0.5, 1.0, 2.0):
            part, q, qn, im = leidenalg_modularity(g, res)
            f.write(f"leidenalg_modularity_{res},{float(qn)!r}\n")
            f.write(f"leidenalg_n_clusters_{res},{len(set(part.membership))}\n")
            f.write(f"leidenalg_ari_truth_{res},{adjusted_rand_score(truth, part.membership)!r}\n")


def scores():
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    rng = np.random.default_rng(7)
    pairs = [
        ([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2]),
        ([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 2]),
        ([0, 0, 1, 1, 2, 2], [0, 0, 1, 2, 2, 2]),
        ([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2]),
        ([0, 0, 0, 0], [0, 1, 2, 3]),
        ([0, 1, 0, 1, 2, 2, 3, 3, 3], [1, 1, 0, 0, 2, 2, 2, 3, 4]),
        (rng.integers(0, 5, 200).tolist(), rng.integers(0, 7, 200).tolist()),
    ]
    base = rng.integers(0, 6, 300)
    noisy = base.copy()
    flip = rng.random(300) < 0.2
    noisy[flip] = rng.integers(0, 6, flip.sum())
    pairs.append((base.tolist(), noisy.tolist()))
    with open(f"{OUT}/scores.csv", "w") as f:
        f.write("a;b;ari;nmi\n")
        for a, b in pairs:
            ari = adjusted_rand_score(a, b)
            nmi = normalized_mutual_info_score(a, b, average_method="arithmetic")
            f.write(
                f"{' '.join(map(str, a))};{' '.join(map(str, b))};{float(ari)!r};{float(nmi)!r}\n"
            )


def bench_leidenalg(path: str):
    """Time leidenalg (Scanpy's default call) on a triplet file written by benches/cluster.rs."""
    import igraph as ig
    import leidenalg

    data = np.loadtxt(path, delimiter="\t")
    n = int(data[0, 0])
    e = data[1:]
    g = ig.Graph(n=n, edges=e[:, :2].astype(np.int64).tolist())
    w = e[:, 2].astype(np.float64)
    g.es["weight"] = w
    times = []
    for rep in range(3):
        t = time.perf_counter()
        part = leidenalg.find_partition(
            g,
            leidenalg.RBConfigurationVertexPartition,
            weights=w,
            resolution_parameter=1.0,
            n_iterations=-1,
            seed=rep,
        )
        times.append(time.perf_counter() - t)
        print(
            f"leidenalg n={n}: {times[-1]:.3f} s, modularity "
            f"{part.quality() / (2 * w.sum()):.6f}, {len(set(part.membership))} clusters"
        )
    t = time.perf_counter()
    part = g.community_leiden(
        objective_function="modularity", weights="weight", resolution=1.0, n_iterations=-1
    )
    print(
        f"igraph community_leiden n={n}: {time.perf_counter() - t:.3f} s, modularity "
        f"{g.modularity(part.membership, weights='weight'):.6f}"
    )
    print(f"leidenalg median: {sorted(times)[1]:.3f} s")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "bench":
        bench_leidenalg(sys.argv[2])
        sys.exit(0)
    os.makedirs(OUT, exist_ok=True)
    scores()
    mixture_reference()
    celltypist()
