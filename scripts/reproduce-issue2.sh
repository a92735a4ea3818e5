#!/usr/bin/env bash
# Accuracy and speed of the defaults on the DONUT repository's KPIs (../shared/data), as reported in
# docs/RESULTS.md. Needs a release build: cargo build --release.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/donut-explorer}
data=${DATA:-../shared/data}
out=${OUT:-docs/results}
mkdir -p "$out"
$bin sweep --data "$data/server_res_eth1out_curve_61.csv" --param latent_dim --values 5 --seeds 3 --json --markdown "$out/curve61_k5.md" > "$out/curve61_k5.log"
$bin sweep --data "$data/cpu4.csv" --param latent_dim --values 5 --seeds 3 --json --markdown "$out/cpu4_k5.md" > "$out/cpu4_k5.log"
$bin sweep --data "$data/cpu4.csv" --param latent_dim --values 3 --seeds 5 --json --markdown "$out/cpu4_k3.md" > "$out/cpu4_k3.log"
