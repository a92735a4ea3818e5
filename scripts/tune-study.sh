#!/usr/bin/env bash
# The figures of docs/TUNING.md: on each of the three labelled series from the DONUT repository
# beside this one, a search of 32 trials (seed 0, a trial per core) and the chosen settings
# against the defaults on the test part over seeds 0-2; then, on cpu4, the same search with one
# trial at a time on every core (the threading measurement). Summarised by
# scripts/summarise-tune.py. Needs a release build; about 15 minutes on 2 cores. TUNE_ARGS adds
# flags to every search (TUNE_ARGS="--objective pa-k").
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${BIN:-target/release/donut-explorer}")
data=${DATA:-../shared/data}
out=${OUT:-/tmp/donut-tune}
trials=${TRIALS:-32}
mkdir -p "$out"
for name in ${SERIES:-cpu4 server_res_eth1out_curve_6 server_res_eth1out_curve_61}; do
  # shellcheck disable=SC2086 # TUNE_ARGS is a list of flags
  "$bin" tune --data "$data/$name.csv" --trials "$trials" --seed 0 --seeds 3 --json ${TUNE_ARGS:-} \
    --out "$out/$name.best.toml" > "$out/$name.json" 2> "$out/$name.err"
  echo "$name: $(tail -n 1 "$out/$name.err")"
done
if [ -z "${SKIP_JOBS:-}" ]; then
  # shellcheck disable=SC2086
  "$bin" tune --data "$data/cpu4.csv" --trials "$trials" --seed 0 --seeds 0 --jobs 1 --json ${TUNE_ARGS:-} \
    > "$out/cpu4.jobs1.json" 2> "$out/cpu4.jobs1.err"
  echo "cpu4, one trial at a time: $(grep '^search:' "$out/cpu4.jobs1.err")"
fi
