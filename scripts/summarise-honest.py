#!/usr/bin/env python3
"""Tables of docs/honest/ from the JSON reports of scripts/honest-study.sh (standard library).

    python3 scripts/summarise-honest.py OUT_DIR [DATA_DIR]
"""
import glob
import json
import os
import statistics as st
import sys

out = sys.argv[1]
data = sys.argv[2] if len(sys.argv) > 2 else "../shared/data"
series = ["cpu4", "server_res_eth1out_curve_6", "server_res_eth1out_curve_61"] + sorted(
    os.path.basename(f)[:-4] for f in glob.glob(f"{data}/nab/*.csv"))


def load(name, seed, kind):
    tag = name if not name.startswith("real") else "nab_" + name
    lines = open(f"{out}/{tag}.{seed}.{kind}.json").read().strip().splitlines()
    return json.loads(lines[-1])


def mean_std(values):
    values = [v for v in values if v is not None]
    if len(values) > 1:
        return f"{st.mean(values):.3f} ± {st.stdev(values):.3f}"
    return f"{values[0]:.3f}" if values else "-"


def sr(r):
    return r["baselines"]["spectral_residual"]["evaluation"]


print("| series | best F1 (upper bound) | F1 flagged | P / R flagged | PA%K area flagged | best PA%K area "
      "| SR best F1 | SR F1 flagged | SR PA%K area | chance best F1 | chance F1 flagged | chance PA%K area "
      "| train s | steps | first preview s |")
print("|" + "---|" * 15)
for s in series:
    rs = [load(s, seed, "with") for seed in range(3)]
    f = lambda g: mean_std([g(r) for r in rs])
    p = st.mean(r["flagged_at"]["adjusted"]["precision"] for r in rs)
    rc = st.mean(r["flagged_at"]["adjusted"]["recall"] for r in rs)
    print(f"| {s} | {f(lambda r: r['best_f1']['f1'])} | {f(lambda r: r['flagged_at']['adjusted']['f1'])} "
          f"| {p:.2f} / {rc:.2f} | {f(lambda r: r['flagged_at']['pa_k']['area'])} | {f(lambda r: r['best_pa_k']['area'])} "
          f"| {f(lambda r: sr(r)['best']['best_f1']['f1'])} | {f(lambda r: sr(r)['flagged']['adjusted']['f1'])} "
          f"| {f(lambda r: sr(r)['flagged']['pa_k']['area'])} | {f(lambda r: r['baselines']['chance']['best_f1'])} "
          f"| {f(lambda r: r['baselines']['chance']['flagged_f1'])} | {f(lambda r: r['baselines']['chance']['flagged_pa_k']['area'])} "
          f"| {st.mean(r['train_secs'] for r in rs):.1f} | {st.mean(r['steps'] for r in rs):.0f} "
          f"| {f(lambda r: r['first_detections_secs'])} |")
print()
print("| series | variant | best F1 | F1 flagged | P / R flagged | alarm tail mean / longest | flagged points |")
print("|---|---|---|---|---|---|---|")
for s in series:
    for kind, name in [("with", "default (extreme_sigmas 10, no flag masking)"),
                       ("without", "no extreme bound"), ("masked", "flagged points masked too")]:
        rs = [load(s, seed, kind) for seed in range(3)]
        m = lambda g: st.mean(g(r) for r in rs)
        at = lambda r: r["flagged_at"]
        print(f"| {s} | {name} | {m(lambda r: r['best_f1']['f1']):.3f} | {m(lambda r: at(r)['adjusted']['f1']):.3f} "
              f"| {m(lambda r: at(r)['adjusted']['precision']):.2f} / {m(lambda r: at(r)['adjusted']['recall']):.2f} "
              f"| {m(lambda r: at(r)['tail']['mean_points']):.1f} / {m(lambda r: at(r)['tail']['longest_points']):.0f} "
              f"| {m(lambda r: at(r)['flagged_points']):.0f} |")
