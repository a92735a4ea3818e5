#!/usr/bin/env bash
# Honest figures on the nine labelled KPIs beside the repository (three from the DONUT
# repository, six from the Numenta benchmark): for each, the default run over SEEDS seeds with
# its best F1 (an upper bound), the F1 at the threshold it flags at, the PA%K area, and the same
# for Spectral Residual and for chance, as one sweep row per series. Tables go to
# docs/honest/. Needs a release build (cargo build --release). The series run two at a time,
# one thread each. About 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/donut-explorer}
data=${DATA:-../shared/data}
out=${OUT:-docs/honest}
seeds=${SEEDS:-3}
mkdir -p "$out"
git rev-parse HEAD > "$out/commit.txt" 2>/dev/null || true
series=(cpu4 server_res_eth1out_curve_6 server_res_eth1out_curve_61)
for f in "$data"/nab/*.csv; do series+=("nab/$(basename "$f" .csv)"); done
run() {
  local name=$1 tag=${1//\//_}
  local start
  start=$(date +%s)
  "$bin" sweep --data "$data/$name.csv" --preset seeds --seeds "$seeds" \
    --set threads=1 ${EXTRA:+$EXTRA} --markdown "$out/$tag.md" --csv "$out/$tag.csv" --json \
    > "$out/$tag.json.log" 2> "$out/$tag.stderr.log"
  echo "$name: $(( $(date +%s) - start )) s"
}
running=0
for s in "${series[@]}"; do
  run "$s" &
  running=$((running + 1))
  if [ "$running" -ge 2 ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait
