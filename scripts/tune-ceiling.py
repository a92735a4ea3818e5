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
training. FIT_PART=1 also saves seed 0's run of each trial and scores the rows before the test
part with it (`detect`): its best F1 on the training and validation labels, a figure a search
could read, ranked like the others. BIN names the binary (default target/release/donut-explorer). docs/TUNING.md has what
it measured."""
import concurrent.futures, json, os, statistics, subprocess, sys, tempfile


def train(binary, data, assignments, seed, threads, fit_part=None):
    """One run's JSON report, or None when it failed. With `fit_part` (a CSV of the series'
    training and validation parts), the run is saved and `detect` scores that CSV with it: the
    report gains `fit_best_f1`, the best F1 on the labels of the parts the search may read."""
    sets = [x for s in assignments for x in ("--set", s)]
    saved = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name if fit_part else None
    cmd = [binary, "train", "--data", data, "--seed", str(seed), "--set", f"threads={threads}", *sets, "--json"]
    out = subprocess.run(cmd + (["--save", saved] if saved else []), capture_output=True, text=True)
    if out.returncode != 0:
        return None
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if saved:
        found = subprocess.run([binary, "detect", "--run", saved, "--data", fit_part, "--json"], capture_output=True, text=True)
        os.unlink(saved)
        if found.returncode == 0:
            best = json.loads(found.stdout.strip().splitlines()[-1]).get("best_f1")
            report["fit_best_f1"] = best["f1"] if best else None
    return report


def fit_part_of(binary, data):
    """A CSV of the rows before the test part: a one-epoch run says where the split falls (in
    points of the completed grid, from the first timestamp at the series' interval)."""
    quick = train(binary, data, ["epochs=1", "n_z=1", "mcmc_iterations=0"], 0, 1)
    train_points, valid_points, _ = quick["data"]["split"]
    interval = quick["data"]["interval_secs"]
    lines = open(data).read().splitlines()
    stamps = [int(float(l.split(",", 1)[0])) for l in lines[1:]]
    end = min(stamps) + (train_points + valid_points) * interval
    path = tempfile.NamedTemporaryFile(suffix=".csv", delete=False, mode="w")
    path.write("\n".join([lines[0], *(l for t, l in zip(stamps, lines[1:]) if t < end)]) + "\n")
    path.close()
    return path.name


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
    for key in ["f1", "pa_k_area", "log_likelihood", "fit_best_f1"]:
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

# FIT_PART=1: seed 0's run (the one a search trains) also scores the training and validation
# parts with their labels (a figure a search could use, as it reads no test label).
fit_part = fit_part_of(binary, data) if os.environ.get("FIT_PART") else None
runs = [(i, s) for i in range(len(trials)) for s in range(seeds)]
with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
    reports = list(pool.map(lambda r: train(binary, data, trials[r[0]]["assignments"], r[1], threads, fit_part if r[1] == 0 else None), runs))
by_trial = {}
for (index, _), report in zip(runs, reports):
    if report:
        by_trial.setdefault(index, []).append(report)

# Spectral Residual trains nothing: every run of the series has the same figure.
first = next((r for r in reports if r and (r.get("baselines") or {}).get("spectral_residual")), None)
spectral_residual = first["baselines"]["spectral_residual"]["evaluation"]["best"]["best_f1"]["f1"] if first else float("nan")

print("| trial | validation F1 | PA%K area | log-likelihood | train+validation best F1 | test best F1, each seed | mean | F1 flagged, mean | settings |")
print("|---|---|---|---|---|---|---|---|---|")
rows = []
for index, trial in enumerate(trials):
    end = trial.get("result") or (trial["rungs"][-1] if trial.get("rungs") else {})
    figures = dict(end.get("figures", {}))
    done = by_trial.get(index, [])
    fit = [r["fit_best_f1"] for r in done if r.get("fit_best_f1") is not None]
    if fit:
        figures["fit_best_f1"] = fit[0]
    # Best F1 without delay, as the search's comparison and Spectral Residual's figure.
    best = [r["best_f1"]["f1"] for r in done if r.get("best_f1")]
    flagged = [r["flagged_at"]["adjusted"]["f1"] for r in done if r.get("flagged_at")]
    rows.append({"trial": index, "figures": figures, "best": best, "flagged": flagged,
                 "settings": " ".join(trial["assignments"]) or "base"})
    f = lambda k: f"{figures[k]:.3f}" if isinstance(figures.get(k), (int, float)) else "-"
    mean = lambda v: f"{statistics.mean(v):.3f}" if v else "-"
    print(f"| {index} | {f('f1')} | {f('pa_k_area')} | {f('log_likelihood')} | {f('fit_best_f1')} | {' '.join(f'{b:.3f}' for b in best)} | {mean(best)} | {mean(flagged)} | {rows[-1]['settings']} |")
print(json.dumps(rows))
summarise(rows, spectral_residual)
if fit_part:
    os.unlink(fit_part)
