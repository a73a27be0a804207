"""Reference values for the UMAP layout (src/embed.rs): umap-learn's `find_ab_params`.

Writes fixtures/reference/embed/ab_params.csv (spread, min_dist, a, b).
Versions: umap-learn 0.5.12, installed with scanpy 1.11.5 in the repository's .venv (benches/compare/requirements.txt)
(run: .venv/bin/python scripts/umap_reference.py).
"""
import csv
import pathlib

import umap
from umap.umap_ import find_ab_params

out = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "reference" / "embed"
out.mkdir(parents=True, exist_ok=True)
pairs = [(1.0, 0.5), (1.0, 0.1), (1.0, 0.0), (1.0, 0.3), (2.0, 0.5), (1.5, 1.0), (0.5, 0.25)]
with open(out / "ab_params.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["spread", "min_dist", "a", "b"])
    for spread, min_dist in pairs:
        a, b = find_ab_params(spread, min_dist)
        w.writerow([spread, min_dist, f"{a:.10g}", f"{b:.10g}"])
print("umap-learn", umap.__version__)
