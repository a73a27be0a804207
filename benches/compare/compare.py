#!/usr/bin/env python3
"""End-to-end comparison of scrna and Scanpy on simulated data: time and memory per step,
agreement of the clusterings, and scrna's thread scaling.

Run from the repository root, with a Python that has benches/compare/requirements.txt:

    python benches/compare/compare.py [--sizes 5000 50000] [--repeats 3] [--skip-scanpy]

For each size it writes the simulator's dataset (N cells x 20,000 genes, seed 0) to a 10x HDF5 file
under target/compare/ (`examples/simulate.rs`, which writes it block by block), runs
`examples/pipeline.rs` on it with 2 threads and with 1 thread, and
`benches/compare/scanpy_pipeline.py` on the same file; both read the HDF5 file, then run QC,
normalization, HVG, PCA, neighbors, Leiden, UMAP and Wilcoxon markers with the same options. Per
step it reports the median over repeats of the wall time and of the peak RSS during the step, the
process' maximum RSS (from /usr/bin/time), the adjusted Rand index between scrna's and Scanpy's
Leiden labels, and whether scrna's clusters.csv and markers.csv are byte-identical with 1 and 2
threads. What a user waits for is the whole process, outputs included: its wall time and maximum
RSS are reported for scrna (which writes its tables, figures and uncompressed analysis.h5ad) and
for Scanpy (whose script also writes its .h5ad, uncompressed as anndata does by default; the time
of that write is shown in its own column, so Scanpy's run with and without it both show). scrna's
outputs' own time is the `write_seconds` of its summary.json: the wall time of writing after the
steps (the example writes analysis.h5ad during the UMAP step, the last one, so that time is inside
the step's and the whole process'). The markdown table is printed and written to
benches/compare/RESULTS.md (or --out).

Sizes of at least --stream-from cells (default 500,000; e.g. `--sizes 1000000`) run the
streamed analysis instead (`pipeline --stream --memory-budget 8G`, 2 threads, once per
repeat): per step its wall time and peak RSS, the whole process' wall time and maximum RSS,
against the goal of 4 minutes and 8 GB. Scanpy is not run at those sizes: it holds the whole
matrix in memory (8 bytes per stored value as float32 and int32, 20 GB at a million cells,
before any copy), more than this machine's memory allows.
"""
import argparse
import csv
import datetime
import filecmp
import json
import os
import platform
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STEPS = ["read", "qc", "normalize", "hvg", "pca", "neighbors", "leiden", "umap", "markers"]
STREAM_STEPS = ["qc", "hvg", "load", "pca", "neighbors", "leiden", "umap", "markers"]


def timed(cmd):
    """Runs cmd under /usr/bin/time -v; returns (wall seconds, max RSS MB)."""
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-3000:]}")
    rss = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", r.stderr)
    wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return wall, rss


def steps_of(path):
    with open(path) as f:
        d = json.load(f)
    return {s["step"]: (s["seconds"], s["peak_rss_mb"]) for s in d["steps"]}, d


def labels(path, cluster_col):
    with open(path) as f:
        return {row["barcode"]: row[cluster_col] for row in csv.DictReader(f)}


def ari(a, b):
    from sklearn.metrics import adjusted_rand_score
    common = sorted(set(a) & set(b))
    return adjusted_rand_score([a[k] for k in common], [b[k] for k in common]), len(common)


def median_runs(runs, steps=STEPS):
    """Per step: median seconds and median peak MB over repeated runs."""
    out = {}
    for s in steps:
        vals = [r[s] for r in runs if s in r]
        if vals:
            out[s] = (statistics.median(v[0] for v in vals),
                      statistics.median(v[1] for v in vals if v[1] is not None))
    return out


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} cores ({model}), {mem:.0f} GB RAM, {platform.system()} {platform.release()}"


def streamed(n, h5, exe, args):
    """The streamed analysis of `h5` (2 threads), `args.repeats` times: markdown lines."""
    runs, procs = [], []
    out = os.path.join(args.workdir, f"scrna_{n}_stream")
    for rep in range(args.repeats):
        print(f"scrna {n} cells streamed, run {rep + 1}", file=sys.stderr, flush=True)
        procs.append(timed([os.path.join(exe, "pipeline"), "--stream", "--input", h5, "--out", out,
                            "--threads", "2", "--memory-budget", args.memory_budget]))
        runs.append(steps_of(os.path.join(out, "summary.json"))[0])
    med = median_runs(runs, STREAM_STEPS)
    summary = steps_of(os.path.join(out, "summary.json"))[1]
    wall = statistics.median(p[0] for p in procs)
    # the example resets the peak at every step, which also resets the maximum that
    # /usr/bin/time reads: the process' peak is the larger of it and the steps' peaks
    rss = max(statistics.median(p[1] for p in procs), max(v[1] for v in med.values()))
    steps = sum(v[0] for v in med.values())
    lines = [f"### {n:,} cells x 20,000 genes, streamed ({summary['cells_after_qc']:,} after QC, "
             f"{summary['n_clusters']} clusters, {summary['stored_values']:,} stored values, "
             f"{summary['passes_over_file']} passes over the file, memory budget "
             f"{args.memory_budget})", "",
             "| step | scrna 2 threads s | peak MB |", "|---|---:|---:|"]
    for s in STREAM_STEPS:
        if s in med:
            lines.append(f"| {s} | {med[s][0]:.1f} | {med[s][1]:.0f} |")
    lines.append(f"| **steps** | **{steps:.1f}** | {max(v[1] for v in med.values()):.0f} |")
    goal = lambda met, text: f"; goal at a million cells {text}: {'met' if met else 'not met'}" \
        if n == 1000000 else ""
    lines += ["", f"Whole process (wall seconds and maximum RSS from /usr/bin/time, medians): "
              f"**{wall:.1f} s** ({wall / 60:.1f} min{goal(wall <= 240, 'at most 240 s')}), "
              f"**{rss:.0f} MB** (the largest of the process' and the steps' peaks"
              f"{goal(rss <= 8192, 'at most 8,192 MB')}); runs: "
              + ", ".join(f"{p[0]:.1f} s" for p in procs) + ".",
              "Scanpy not run at this size (it holds the whole matrix in memory).", ""]
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--skip-scanpy", action="store_true")
    ap.add_argument("--h5ad-compression", default="none",
                    help="scrna's --h5ad-compression (none, gzip, gzip:LEVEL)")
    ap.add_argument("--stream-from", type=int, default=500000,
                    help="sizes of at least this many cells run the streamed analysis")
    ap.add_argument("--memory-budget", default="8G", help="the streamed runs' --memory-budget")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "target", "compare"))
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "--example", "pipeline", "--example",
                    "simulate"], cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "release", "examples")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    load = os.getloadavg()[0]
    lines = [f"Measured {datetime.date.today()} on {machine()}, commit {commit}, load average "
             f"{load:.1f} at the start; medians of {args.repeats} "
             f"run(s); scrna's .h5ad compression: {args.h5ad_compression}. Seconds per step; "
             f"peak RSS during the step in MB.",
             "",
             "scrna's normalize step also accumulates the per-gene moments that the seurat and "
             "cell_ranger HVG flavors need (one pass over the counts), so its hvg row is the "
             "selection alone: compare normalize + hvg together.", ""]
    for n in args.sizes:
        h5 = os.path.join(args.workdir, f"sim_{n}.h5")
        if not os.path.exists(h5):
            print(f"simulating {n} cells -> {h5}", file=sys.stderr, flush=True)
            # written block by block: a million cells in about 1 GB
            timed([os.path.join(exe, "simulate"), "--cells", str(n), "--out", h5])
        if n >= args.stream_from:
            lines += streamed(n, h5, exe, args)
            continue
        runs = {1: [], 2: []}
        procs = {1: [], 2: [], "scanpy": []}
        writes = {1: [], 2: [], "scanpy": []}
        for rep in range(args.repeats):
            for t in (2, 1):
                out = os.path.join(args.workdir, f"scrna_{n}_t{t}")
                print(f"scrna {n} cells, {t} thread(s), run {rep + 1}", file=sys.stderr, flush=True)
                procs[t].append(timed([os.path.join(exe, "pipeline"), "--input", h5, "--out", out,
                                       "--threads", str(t), "--h5ad-compression",
                                       args.h5ad_compression]))
                steps, summ = steps_of(os.path.join(out, "summary.json"))
                runs[t].append(steps)
                writes[t].append(summ.get("write_seconds") or 0.0)
        identical = all(filecmp.cmp(os.path.join(args.workdir, f"scrna_{n}_t1", f),
                                    os.path.join(args.workdir, f"scrna_{n}_t2", f), shallow=False)
                        for f in ["clusters.csv", "markers.csv"])
        s2, s1 = median_runs(runs[2]), median_runs(runs[1])
        sp, agreement = {}, None
        if not args.skip_scanpy:
            sruns = []
            for rep in range(args.repeats):
                out = os.path.join(args.workdir, f"scanpy_{n}")
                print(f"scanpy {n} cells, run {rep + 1}", file=sys.stderr, flush=True)
                procs["scanpy"].append(timed([sys.executable, os.path.join(HERE, "scanpy_pipeline.py"),
                                              h5, out]))
                steps, summ = steps_of(os.path.join(out, "steps.json"))
                sruns.append(steps)
                writes["scanpy"].append(summ.get("write_h5ad", {}).get("seconds", 0.0))
            sp = median_runs(sruns)
            agreement = ari(labels(os.path.join(args.workdir, f"scrna_{n}_t2", "clusters.csv"), "cluster"),
                            labels(os.path.join(args.workdir, f"scanpy_{n}", "clusters.csv"), "cluster"))
        summary = steps_of(os.path.join(args.workdir, f"scrna_{n}_t2", "summary.json"))[1]
        lines += [f"### {n:,} cells x 20,000 genes ({summary['cells_after_qc']:,} after QC, "
                  f"{summary['n_clusters']} scrna clusters)", "",
                  "| step | scrna 2 threads | scrna 1 thread | Scanpy | Scanpy / scrna | "
                  "scrna peak MB | Scanpy peak MB |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for s in STEPS:
            a, b, c = s2.get(s), s1.get(s), sp.get(s)
            ratio = f"{c[0] / a[0]:.1f}x" if a and c and a[0] > 0 else ""
            lines.append(f"| {s} | {a[0]:.2f} | {b[0]:.2f} | {c[0]:.2f} | {ratio} | {a[1]:.0f} | "
                         f"{c[1]:.0f} |" if c else f"| {s} | {a[0]:.2f} | {b[0]:.2f} | | | {a[1]:.0f} | |")
        tot = lambda m, skip=(): sum(v[0] for k, v in m.items() if k not in skip)
        peak = lambda m: max(v[1] for v in m.values())
        row = lambda name, skip: (
            f"| **{name}** | **{tot(s2, skip):.2f}** | {tot(s1, skip):.2f} | "
            + (f"**{tot(sp, skip):.2f}** | **{tot(sp, skip) / tot(s2, skip):.1f}x** | "
               if sp else "| | ")
            + f"{peak(s2):.0f} | " + (f"{peak(sp):.0f} |" if sp else "|"))
        lines.append(row("read to markers", ()))
        lines.append(row("without UMAP", ("umap",)))
        wall = lambda k: statistics.median(p[0] for p in procs[k])
        # scrna's example resets the peak at every step, which also resets the maximum that
        # /usr/bin/time reads: its process peak is the larger of that and the steps' peaks
        rss = lambda k: max([statistics.median(p[1] for p in procs[k])]
                            + ([peak(s2 if k == 2 else s1)] if k in (1, 2) else []))
        wr = lambda k: statistics.median(writes[k]) if writes[k] else 0.0
        lines += ["", "Whole process, as a user waits for it (start-up, reading, every step and "
                  "every output file; wall seconds and maximum RSS from /usr/bin/time, medians):", "",
                  "| run | whole process s | of which writing outputs after the steps s | outputs share | "
                  "peak MB | Scanpy without .h5ad / this | Scanpy peak / this |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        base = wall("scanpy") - wr("scanpy") if sp else None
        for k, name in [(2, "scrna, 2 threads"), (1, "scrna, 1 thread")]:
            lines.append(f"| {name} | {wall(k):.1f} | {wr(k):.2f} | {100 * wr(k) / wall(k):.1f}% | "
                         f"{rss(k):.0f} | " + (f"{base / wall(k):.1f}x | {rss('scanpy') / rss(k):.1f}x |"
                                              if sp else "| |"))
        if sp:
            lines.append(f"| Scanpy, writing its .h5ad | {wall('scanpy'):.1f} | {wr('scanpy'):.2f} | "
                         f"{100 * wr('scanpy') / wall('scanpy'):.1f}% | {rss('scanpy'):.0f} | | |")
            lines.append(f"| Scanpy, without the .h5ad write | {base:.1f} | | | | | |")
        lines += ["",
                  f"scrna's clusters.csv and markers.csv with 1 and 2 threads: "
                  f"{'byte-identical' if identical else 'DIFFERENT'}."]
        if agreement:
            lines.append(f"Adjusted Rand index between scrna's and Scanpy's Leiden labels: "
                         f"{agreement[0]:.3f} ({agreement[1]:,} cells in both).")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    with open(args.out, "w") as f:
        f.write("# scrna and Scanpy, end to end\n\nWritten by `benches/compare/compare.py`.\n\n" + text)


if __name__ == "__main__":
    main()
