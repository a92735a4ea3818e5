#!/usr/bin/env bash
# The figures of docs/honest/: for each of the nine labelled series beside the repository (three
# from the DONUT repository, six from the Numenta benchmark) and seeds 0-2, a default run (its
# best F1, the F1 at its flagged threshold, PA%K, Spectral Residual's and chance's figures),
# then the same model rescored without the extreme bound and with flagged points masked.
# Summarised by scripts/summarise-honest.py into Markdown. Needs a release build. Two runs at a
# time, one thread each: about 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${BIN:-target/release/donut-explorer}")
data=${DATA:-../shared/data}
out=${OUT:-/tmp/donut-honest}
mkdir -p "$out"
series=(cpu4 server_res_eth1out_curve_6 server_res_eth1out_curve_61)
for f in "$data"/nab/*.csv; do series+=("nab/$(basename "$f" .csv)"); done
one() {
  local name=$1 seed=$2 tag=${1//\//_}
  local run=$out/$tag.$seed.donut
  "$bin" train --data "$data/$name.csv" --seed "$seed" --set threads=1 --save "$run" --json \
    > "$out/$tag.$seed.with.json" 2> "$out/$tag.$seed.with.err"
  "$bin" train --data "$data/$name.csv" --load "$run" --set threads=1 --set extreme_sigmas=0 \
    --json > "$out/$tag.$seed.without.json" 2> "$out/$tag.$seed.without.err"
  "$bin" train --data "$data/$name.csv" --load "$run" --set threads=1 --set mask_flagged=true \
    --json > "$out/$tag.$seed.masked.json" 2> "$out/$tag.$seed.masked.err"
  rm -f "$run"
}
running=0
for s in "${series[@]}"; do
  for seed in 0 1 2; do
    one "$s" "$seed" &
    running=$((running + 1))
    if [ "$running" -ge 2 ]; then
      wait -n
      running=$((running - 1))
    fi
  done
done
wait
python3 scripts/summarise-honest.py "$out" "$data"
