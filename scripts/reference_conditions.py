#!/usr/bin/env python3
"""Reference values for the condition-comparison statistics (tests/conditions.rs).

Versions: scipy 1.17.1, numpy 2.4.6 (the /work venv of scanpy 1.11.5).
Run: python scripts/reference_conditions.py  -> fixtures/reference/conditions/*.csv
"""
import os
import numpy as np
from scipy import stats

out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "reference", "conditions")
os.makedirs(out, exist_ok=True)

tables = [(12, 5, 3, 40), (0, 10, 7, 3), (50, 950, 5, 995), (3, 3, 3, 3), (200, 1800, 20, 1980),
          (1, 0, 0, 1), (8, 2, 1, 5), (400, 3600, 0, 4000)]
with open(os.path.join(out, "fisher.csv"), "w") as f:
    f.write("a,b,c,d,odds_ratio,p_greater,p_two_sided\n")
    for a, b, c, d in tables:
        odds, p2 = stats.fisher_exact([[a, b], [c, d]], alternative="two-sided")
        _, pg = stats.fisher_exact([[a, b], [c, d]], alternative="greater")
        f.write(f"{a},{b},{c},{d},{float(odds)!r},{float(pg)!r},{float(p2)!r}\n")

cases = [(5, 1000, 50, 40), (0, 100, 10, 10), (10, 20000, 300, 40), (20, 20000, 300, 40),
         (3, 50, 10, 10), (40, 6000, 500, 40)]
with open(os.path.join(out, "hypergeom.csv"), "w") as f:
    f.write("k,total,successes,draws,sf\n")
    for k, N, K, n in cases:
        f.write(f"{k},{N},{K},{n},{float(stats.hypergeom.sf(k - 1, N, K, n))!r}\n")

with open(os.path.join(out, "normal_quantile.csv"), "w") as f:
    f.write("p,quantile\n")
    for p in [1e-10, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999999]:
        f.write(f"{p!r},{float(stats.norm.ppf(p))!r}\n")
print("written to", out)
