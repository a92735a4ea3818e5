#!/usr/bin/env bash
# A real Slurm test of `fleet train`: starts a one-node Slurm cluster on this machine
# (scripts/slurm-cluster.sh: Debian's slurm-wlm and munge, installed when missing), generates a
# small fleet (6 KPIs of 2,016 points), submits deploy/slurm/fleet.sbatch as a 3-task array job,
# waits for it, and checks that the merged report equals a local `fleet train` of the same fleet
# with the same settings (same scores and figures). Stops the daemons it started, also on
# failure. Needs a release build (cargo build --release). A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${BIN:-target/release/donut-explorer}")
work=$(mktemp -d /tmp/donut-fleet-test.XXXXXX)
export SLURM_TEST_DIR=${SLURM_TEST_DIR:-$work/slurm}
cleanup() {
  scripts/slurm-cluster.sh stop || true
}
trap cleanup EXIT
eval "$(scripts/slurm-cluster.sh start)"
mkdir -p "$work/data"
for seed in 0 1 2 3 4 5; do
  "$bin" generate-sample --seed "$seed" --days 7 --out "$work/data/kpi$seed.csv" 2>/dev/null
done
settings=(--epochs 4 --set window=60 --set n_z=64 --set mcmc_iterations=2 --set threads=1)
echo "== the array job (3 tasks)"
(cd "$work" && DONUT_EXPLORER=$bin "$OLDPWD/scripts/slurm-cluster.sh" submit-wait \
  "$OLDPWD/deploy/slurm/fleet.sbatch" --array=0-2 -- "$work/data" "$work/slurm-out" "${settings[@]}")
for f in "$work"/donut-fleet-*.out; do
  echo "-- $(basename "$f")"
  grep -E "^fleet|trained in" "$f" || true
done
echo "== the same fleet, locally"
"$bin" fleet train --data-dir "$work/data" --out "$work/local-out" "${settings[@]}" 2>&1 | grep -E "^fleet" || true
"$bin" fleet report --out "$work/slurm-out" --json > "$work/slurm.json"
"$bin" fleet report --out "$work/local-out" --json > "$work/local.json"
echo "== merged report of the array job"
"$bin" fleet report --out "$work/slurm-out"
python3 - "$work/slurm.json" "$work/local.json" <<'PY'
import json, sys
def rows(path):
    out = []
    for r in json.load(open(path)):
        s = dict(r["summary"] or {})
        for timing in ("train_secs", "score_secs", "source"):
            s.pop(timing, None)
        out.append((r["name"], r["status"], s))
    return out
slurm, local = rows(sys.argv[1]), rows(sys.argv[2])
assert len(slurm) == 6, f"{len(slurm)} rows"
assert all(status == "trained" for _, status, _ in slurm), slurm
if slurm != local:
    for a, b in zip(slurm, local):
        if a != b:
            print("differs:", a, b)
    sys.exit("the array job's report differs from the local run's")
for name, _, s in slurm:
    print(f"{name}: best F1 {s['best_f1']}, flagged F1 {s['flagged_f1']}, recent alerts {s['recent_alerts']}, top score {s['recent_max_score']:.4f}, scores CRC {s['scores_crc']:08x}: equal to the local run")
PY
echo "slurm fleet test passed"
