#!/usr/bin/env python3
"""What a search could have chosen: trains every trial of a tune JSON to its end on the test
part too, over seeds, and prints each trial's final validation figures beside its test best F1.

This reads the test labels on purpose (it measures the space's ceiling and how well the
validation part ranks the trials); the search itself never does. Usage:

    tune-ceiling.py SEARCH.json DATA.csv [SEEDS] [JOBS] > table.md

where SEARCH.json holds the output of `tune --data DATA.csv --json --first-rung 10000 --seeds 0`
(a search in which no trial reaches a rung, so every trial trains to its end and its validation
figures are final). Prints a Markdown table, the rows as one JSON line, then a summary: the base
settings against the best trial in hindsight, and how each validation figure ranks the trials
(Spearman) and what its favourite scores on the test part. BIN names the binary (default
target/release/donut-explorer). docs/TUNING.md has what it measured."""
import concurrent.futures, json, os, statistics, subprocess, sys

search = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["search"]
data, seeds = sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3
jobs = int(sys.argv[4]) if len(sys.argv) > 4 else 2
binary = os.environ.get("BIN", "target/release/donut-explorer")

def settings(trial):
    return list(trial["assignments"])

def run(index, seed):
    trial = search["trials"][index]
    sets = [x for s in settings(trial) for x in ("--set", s)]
    cmd = [binary, "train", "--data", data, "--seed", str(seed), "--set", f"threads={max(1, (os.cpu_count() or 1) // jobs)}", *sets, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return index, seed, None
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return index, seed, report

results = {}
with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
    for index, seed, report in pool.map(lambda p: run(*p), [(i, s) for i in range(len(search["trials"])) for s in range(seeds)]):
        results.setdefault(index, []).append(report)

print("| trial | validation F1 | PA%K area | log-likelihood | test best F1, each seed | mean | F1 flagged, mean | settings |")
print("|---|---|---|---|---|---|---|---|")
rows = []
spectral_residual = float("nan")
for index, trial in enumerate(search["trials"]):
    end = trial.get("result") or (trial["rungs"][-1] if trial.get("rungs") else {})
    figures = end.get("figures", {})
    reports = [r for r in results.get(index, []) if r]
    # Best F1 without delay, as the search's comparison and Spectral Residual's figure.
    best = [r["best_f1"]["f1"] for r in reports if r.get("best_f1")]
    flagged = [r["flagged_at"]["adjusted"]["f1"] for r in reports if r.get("flagged_at")]
    rows.append((index, figures, best, flagged, " ".join(settings(trial)) or "base"))
    sr = [r["baselines"]["spectral_residual"]["evaluation"]["best"]["best_f1"]["f1"] for r in reports
          if (r.get("baselines") or {}).get("spectral_residual")]
    if sr:
        spectral_residual = sr[0]
for index, figures, best, flagged, text in rows:
    f = lambda k: f"{figures.get(k, float('nan')):.3f}" if isinstance(figures.get(k), (int, float)) else "-"
    print(f"| {index} | {f('f1')} | {f('pa_k_area')} | {f('log_likelihood')} | {' '.join(f'{b:.3f}' for b in best)} | {statistics.mean(best) if best else float('nan'):.3f} | {statistics.mean(flagged) if flagged else float('nan'):.3f} | {text} |")
print(json.dumps([{"trial": i, "figures": fg, "best": b, "flagged": fl, "settings": t} for i, fg, b, fl, t in rows]))

def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    for rank, i in enumerate(order):
        out[i] = float(rank)
    return out

scored = [(i, fg, statistics.mean(b)) for i, fg, b, _, _ in rows if b and fg]
if len(scored) > 2:
    test = [t for _, _, t in scored]
    base = next((t for i, _, t in scored if i == 0), float("nan"))
    oracle = max(scored, key=lambda r: r[2])
    print(f"\nSpectral Residual's test best F1: {spectral_residual:.3f}")
    print(f"base settings (trial 0): test best F1 {base:.3f}; best of {len(scored)} by the test labels: trial {oracle[0]}, {oracle[2]:.3f}")
    for key in ["f1", "pa_k_area", "log_likelihood"]:
        values = [fg.get(key, float("-inf")) for _, fg, _ in scored]
        if not all(isinstance(v, (int, float)) and v > float("-inf") for v in values):
            continue
        rho = statistics.correlation(ranks(values), ranks(test))
        pick = max(range(len(scored)), key=lambda k: (values[k], -scored[k][0]))
        print(f"validation {key}: Spearman {rho:.3f} against the test best F1; its best trial {scored[pick][0]} tests at {scored[pick][2]:.3f}")
