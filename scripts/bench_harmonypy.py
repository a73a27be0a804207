#!/usr/bin/env python3
"""Times harmonypy on the input written by the Harmony benchmark (benches/harmony.rs).

Run with the repository's .venv, after writing the input with the benchmark's one-shot mode:
    SCRNA_HARMONY_DUMP=/tmp/harmony9k.csv SCRNA_HARMONY_ONESHOT=9244 target/release/deps/harmony-<hash>
    .venv/bin/python scripts/bench_harmonypy.py /tmp/harmony9k.csv [runs] [ncores]

harmonypy runs with the parameters of `scrna::integrate::HarmonyOptions::default()` (theta 2,
lamb None with alpha 0.2 (the penalty estimated per cluster and batch), sigma 0.1, nclust min(round(N / 30), 100), block_size 0.05, max_iter_harmony 10,
max_iter_kmeans 20, epsilon_cluster 1e-5, epsilon_harmony 1e-4, random_state 0) and, for
comparison, with harmonypy 2's own defaults (lamb estimated, max_iter_kmeans 4,
epsilon_cluster 1e-3, epsilon_harmony 1e-2). Prints each time and the median. ncores defaults to
harmonypy's choice (one thread per physical core).
"""
import sys
import time

import numpy as np
import pandas as pd
import harmonypy


def main():
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    ncores = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    df = pd.read_csv(path)
    meta = pd.DataFrame({"batch": df["batch"].astype(str).values})
    X = df.drop(columns=["batch"]).to_numpy(dtype=np.float64)
    print(f"harmonypy {harmonypy.__version__}: {X.shape[0]} cells x {X.shape[1]} PCs, "
          f"{meta['batch'].nunique()} batches, ncores {ncores or 'default'}")
    ours = dict(theta=2.0, lamb=None, alpha=0.2, sigma=0.1, block_size=0.05, max_iter_harmony=10,
                max_iter_kmeans=20, epsilon_cluster=1e-5, epsilon_harmony=1e-4)
    for name, params in [("scrna defaults", ours), ("harmonypy 2 defaults", {})]:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            ho = harmonypy.run_harmony(X, meta, ["batch"], random_state=0, verbose=False,
                                       ncores=ncores, **params)
            times.append(time.perf_counter() - t)
        rounds = len(ho.objective_harmony) - 1
        print(f"{name}: times {[round(t, 3) for t in times]} s, median "
              f"{float(np.median(times)):.3f} s, {rounds} rounds, kmeans rounds "
              f"{list(ho.kmeans_rounds)}")
        if X.shape[0] <= 10000:
            Z = np.asarray(ho.Z_corr)
            Z = Z if Z.shape == X.shape else Z.T
            lis = harmonypy.compute_lisi(Z, meta, ["batch"], 30)[:, 0]
            print(f"  mean batch LISI {lis.mean():.4f}")


if __name__ == "__main__":
    main()
