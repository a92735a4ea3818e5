#!/usr/bin/env bash
# The published DONUT experiments as headless sweeps (3 seeds each) on cpu4 and curve_61, with
# K = 3 as in DONUT.md section 7 (at K = 5 cpu4 saturates near F1 = 1 and the variants cannot be
# told apart); tables go to docs/sweeps/. Needs a release build: cargo build --release.
# The two series run as two processes side by side, one thread each (two processes scale better
# than one process with two threads: see BENCHMARKS.md). About 45 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/donut-explorer}
data=${DATA:-../shared/data}
out=${OUT:-docs/sweeps}
seeds=${SEEDS:-3}
presets=${PRESETS:-ablation entropy-weight fixed-beta latent-dim}
mkdir -p "$out"
git rev-parse HEAD > "$out/commit.txt" 2>/dev/null || true
pids=()
for series in cpu4 server_res_eth1out_curve_61; do
  (
    for preset in $presets; do
      start=$(date +%s)
      $bin sweep --data "$data/$series.csv" --preset "$preset" --seeds "$seeds" --latent "${LATENT:-3}" \
        --set threads=1 --markdown "$out/${series}_${preset}.md" --csv "$out/${series}_${preset}.csv" --json \
        > "$out/${series}_${preset}.json.log" 2> "$out/${series}_${preset}.stderr.log"
      echo "$series $preset: $(( $(date +%s) - start )) s"
    done
  ) &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
exit $status
