#!/usr/bin/env python3
"""What a search could have chosen: trains every trial of a tune JSON to its end on the test
part too, over seeds, and prints each trial's final validation figures beside its test best F1.

This reads the test labels on purpose (it measures the space's ceiling and how well the
validation part ranks the trials); the search itself never does. Usage:

    tune-ceiling.py SEARCH.json DATA.csv [SEEDS] [JOBS] > table.md
    tune-ceiling.py --summarise table.md

where SEARCH.json holds the output of `tune --data DATA.csv --json --first-rung 10000 --seeds 0`
(a search in which no trial reaches a rung, so every trial trains to its end and its validation
figures are final). Prints a Markdown table, the rows as one JSON line, then a summary: Spectral
Residual's figure, the base settings against the best trial in hindsight, and how each
validation figure ranks the trials (Spearman, ties given their mean rank) and what its favourite
scores on the test part. `--summarise` prints the summary again from such an output, without
training. BIN names the binary (default target/release/donut-explorer). docs/TUNING.md has what
it measured."""
import concurrent.futures, json, os, statistics, subprocess, sys


def train(binary, data, assignments, seed, threads):
    """One run's JSON report, or None when it failed."""
    sets = [x for s in assignments for x in ("--set", s)]
    cmd = [binary, "train", "--data", data, "--seed", str(seed), "--set", f"threads={threads}", *sets, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None


def ranks(values):
    """Ranks from 0, ties given the mean of the ranks they span (as Spearman's rho wants)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            out[order[k]] = (start + end) / 2
        start = end + 1
    return out


def summarise(rows, spectral_residual):
    scored = [(r["trial"], r["figures"], statistics.mean(r["best"])) for r in rows if r["best"] and r["figures"]]
    if len(scored) < 3:
        return
    test = [t for _, _, t in scored]
    base = next((t for i, _, t in scored if i == 0), float("nan"))
    oracle = max(scored, key=lambda r: r[2])
    print(f"\nSpectral Residual's test best F1: {spectral_residual:.3f}")
    print(f"base settings (trial 0): test best F1 {base:.3f}; best of {len(scored)} by the test labels: trial {oracle[0]}, {oracle[2]:.3f}")
    for key in ["f1", "pa_k_area", "log_likelihood"]:
        values = [fg.get(key, float("-inf")) for _, fg, _ in scored]
        if not all(isinstance(v, (int, float)) and v > float("-inf") for v in values):
            continue
        try:
            rho = f"Spearman {statistics.correlation(ranks(values), ranks(test)):.3f}"
        except statistics.StatisticsError:
            rho = "no Spearman (one side is constant)"
        pick = max(range(len(scored)), key=lambda k: (values[k], -scored[k][0]))
        print(f"validation {key}: {rho} against the test best F1; its best trial {scored[pick][0]} tests at {scored[pick][2]:.3f}")


if sys.argv[1] == "--summarise":
    lines = open(sys.argv[2]).read().splitlines()
    rows = json.loads(next(l for l in lines if l.startswith("[")))
    sr = next((float(l.rsplit(" ", 1)[1]) for l in lines if l.startswith("Spectral Residual")), float("nan"))
    summarise(rows, sr)
    sys.exit(0)

search = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["search"]
data, seeds = sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3
jobs = int(sys.argv[4]) if len(sys.argv) > 4 else 2
binary = os.environ.get("BIN", "target/release/donut-explorer")
threads = max(1, (os.cpu_count() or 1) // jobs)
trials = search["trials"]

runs = [(i, s) for i in range(len(trials)) for s in range(seeds)]
with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
    reports = list(pool.map(lambda r: train(binary, data, trials[r[0]]["assignments"], r[1], threads), runs))
by_trial = {}
for (index, _), report in zip(runs, reports):
    if report:
        by_trial.setdefault(index, []).append(report)

# Spectral Residual trains nothing: every run of the series has the same figure.
first = next((r for r in reports if r and (r.get("baselines") or {}).get("spectral_residual")), None)
spectral_residual = first["baselines"]["spectral_residual"]["evaluation"]["best"]["best_f1"]["f1"] if first else float("nan")

print("| trial | validation F1 | PA%K area | log-likelihood | test best F1, each seed | mean | F1 flagged, mean | settings |")
print("|---|---|---|---|---|---|---|---|")
rows = []
for index, trial in enumerate(trials):
    end = trial.get("result") or (trial["rungs"][-1] if trial.get("rungs") else {})
    figures = end.get("figures", {})
    done = by_trial.get(index, [])
    # Best F1 without delay, as the search's comparison and Spectral Residual's figure.
    best = [r["best_f1"]["f1"] for r in done if r.get("best_f1")]
    flagged = [r["flagged_at"]["adjusted"]["f1"] for r in done if r.get("flagged_at")]
    rows.append({"trial": index, "figures": figures, "best": best, "flagged": flagged,
                 "settings": " ".join(trial["assignments"]) or "base"})
    f = lambda k: f"{figures[k]:.3f}" if isinstance(figures.get(k), (int, float)) else "-"
    mean = lambda v: f"{statistics.mean(v):.3f}" if v else "-"
    print(f"| {index} | {f('f1')} | {f('pa_k_area')} | {f('log_likelihood')} | {' '.join(f'{b:.3f}' for b in best)} | {mean(best)} | {mean(flagged)} | {rows[-1]['settings']} |")
print(json.dumps(rows))
summarise(rows, spectral_residual)
