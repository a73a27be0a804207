#!/usr/bin/env python3
"""Scanpy's clustering accuracy on simulated data with known clusters, for
tests/cluster_simulated.rs.

For each setting (an easy one, marker fold 4, and one with weak markers, fold 2), the
library's simulator writes a 10x HDF5 file and the true labels
(`cargo run --release --example simulate`), Scanpy runs its standard pipeline on the file
(benches/compare/scanpy_pipeline.py: min_genes 200, min_cells 3, normalize 1e4, log1p, 2,000
seurat HVGs, scale 10, PCA 50 arpack, 15 neighbors, Leiden resolution 1 seed 0), and the
adjusted Rand index of Scanpy's labels against the truth (sklearn) is written to
fixtures/reference/cluster/simulated_ari.csv. The Rust test simulates the same data, runs
scrna's pipeline and checks its ARI is at least Scanpy's.

Versions used to write the committed file: python 3.11, scanpy 1.11.5, anndata 0.12.19,
leidenalg 0.12.0, igraph 1.0.0, scikit-learn 1.9.1 (benches/compare/requirements.txt).

Run from the repository root:  .venv/bin/python scripts/reference_simulated_clusters.py
"""
import csv
import os
import subprocess
import sys
import tempfile

from sklearn.metrics import adjusted_rand_score

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = [  # name, cells, genes, marker fold, seed
    ("easy", 3000, 5000, 4.0, 1),
    ("weak", 3000, 5000, 2.0, 2),
]
OUT = os.path.join(ROOT, "fixtures", "reference", "cluster", "simulated_ari.csv")


def main():
    subprocess.run(["cargo", "build", "--release", "--example", "simulate"], cwd=ROOT, check=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cells, genes, fold, seed in SETTINGS:
            h5 = os.path.join(tmp, f"{name}.h5")
            truth_csv = os.path.join(tmp, f"{name}_truth.csv")
            subprocess.run([os.path.join(ROOT, "target", "release", "examples", "simulate"),
                            "--cells", str(cells), "--genes", str(genes), "--marker-fold",
                            str(fold), "--seed", str(seed), "--out", h5, "--truth", truth_csv],
                           check=True)
            out = os.path.join(tmp, name)
            subprocess.run([sys.executable, os.path.join(ROOT, "benches", "compare",
                                                         "scanpy_pipeline.py"), h5, out],
                           check=True)
            with open(truth_csv) as f:
                truth = {r["barcode"]: r["cluster"] for r in csv.DictReader(f)}
            with open(os.path.join(out, "clusters.csv")) as f:
                ours = {r["barcode"]: r["cluster"] for r in csv.DictReader(f)}
            kept = sorted(ours)
            ari = adjusted_rand_score([truth[b] for b in kept], [ours[b] for b in kept])
            n_clusters = len(set(ours.values()))
            print(f"{name}: {len(kept)} cells after QC, {n_clusters} clusters, ARI {ari:.4f}")
            rows.append([name, cells, genes, fold, seed, len(kept), n_clusters, f"{ari:.6f}"])
    with open(OUT, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["setting", "n_cells", "n_genes", "marker_fold", "seed", "scanpy_cells_after_qc",
                    "scanpy_n_clusters", "scanpy_ari"])
        w.writerows(rows)


if __name__ == "__main__":
    main()
