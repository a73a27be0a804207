#!/usr/bin/env bash
# Runs the fuzz targets one after another (one libFuzzer job each), SECONDS per target
# (default 600), logging to fuzz/logs/<target>.log; crashes go to fuzz/artifacts/<target>/.
# Usage: fuzz/run_all.sh [SECONDS] [TARGET...]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
secs="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(mtx tsv tenx_h5 h5ad gmt sample_sheet)
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t ($secs s) $(date -u +%H:%M:%S)"
  RAYON_NUM_THREADS=1 RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=1 cargo fuzz run -a "$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    > "logs/$t.log" 2>&1
  echo "   exit $? $(grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss_mb' "logs/$t.log" | tr '\n' ' ')"
  grep -E '^#[0-9]+' "logs/$t.log" | tail -n 1
done
