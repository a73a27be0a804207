#!/usr/bin/env python3
"""Times Scanpy's read_10x_mtx on the folder that `cargo bench --bench io` writes.

Usage: .venv/bin/python benches/scanpy_read_mtx.py [FOLDER] [REPEATS]
Default folder: target/bench-data/mtx_50k. Prints each time, the median and peak memory.
Versions used for the reported figures: scanpy 1.11.5, anndata 0.12.19, scipy 1.17.1.
"""
import resource
import statistics
import sys
import time

import scanpy as sc

folder = sys.argv[1] if len(sys.argv) > 1 else "target/bench-data/mtx_50k"
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
times = []
for _ in range(repeats):
    t = time.perf_counter()
    a = sc.read_10x_mtx(folder, cache=False)
    times.append(time.perf_counter() - t)
    print(f"read_10x_mtx: {times[-1]:.2f} s ({a.n_obs} x {a.n_vars}, nnz {a.X.nnz})", flush=True)
    del a
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"median {statistics.median(times):.2f} s over {repeats}; peak RSS {peak:.0f} MiB")
