#!/usr/bin/env python3
"""Summarises scripts/tune-study.sh's JSON (default /tmp/donut-tune) as the Markdown of docs/TUNING.md."""
import json, pathlib, statistics, sys

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/donut-tune")
def ms(m):
    return f"{m['mean']:.3f} ± {m['std']:.3f}" if m["n"] else "-"
print("| series | objective | trials (completed / pruned / failed) | search s | default run s | search in default runs | 32 default runs s | tuned best F1 | default best F1 | tuned F1 flagged | default F1 flagged | SR best F1 | SR F1 flagged |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
chosen = []
means = {"tuned": [], "default": [], "tuned_flagged": [], "default_flagged": []}
for path in sorted(out.glob("*.json")):
    if path.name.endswith(".jobs1.json"):
        continue
    j = json.loads(path.read_text().strip().splitlines()[-1])
    s, c = j["search"], j["comparison"]
    states = [t["state"]["state"] for t in s["trials"]]
    tuned, default = c["rows"]
    secs, run = s["secs"], c["default_run_secs"]
    name = path.stem
    print(f"| {name} | {s['objective']} | {len(states)} ({states.count('completed')} / {states.count('pruned')} / {states.count('failed')}) | {secs:.0f} | {run:.1f} | {secs / run:.1f} | {32 * run:.0f} | {ms(tuned['best_f1'])} | {ms(default['best_f1'])} | {ms(tuned['flagged_f1'])} | {ms(default['flagged_f1'])} | {ms(tuned['sr_best_f1'])} | {ms(tuned['sr_flagged_f1'])} |")
    means["tuned"].append(tuned["best_f1"]["mean"]); means["default"].append(default["best_f1"]["mean"])
    means["tuned_flagged"].append(tuned["flagged_f1"]["mean"]); means["default_flagged"].append(default["flagged_f1"]["mean"])
    chosen.append((name, " ".join(j["best_settings"]) or "the base settings (trial 0)"))
print()
print("mean over the series: tuned best F1 %.3f, default %.3f; F1 at the flagged threshold: tuned %.3f, default %.3f" % tuple(statistics.mean(means[k]) for k in ["tuned", "default", "tuned_flagged", "default_flagged"]))
print()
for name, settings in chosen:
    print(f"- {name}: `{settings}`")
jobs1 = out / "cpu4.jobs1.json"
if jobs1.exists():
    j = json.loads(jobs1.read_text().strip().splitlines()[-1])
    cpu4 = json.loads((out / "cpu4.json").read_text().strip().splitlines()[-1])
    same = [t["assignments"] for t in j["search"]["trials"]] == [t["assignments"] for t in cpu4["search"]["trials"]]
    print()
    print(f"cpu4, one trial at a time on every core: {j['search']['secs']:.1f} s; a trial per core: {cpu4['search']['secs']:.1f} s (same trials drawn: {same}; best {j['search']['best']} vs {cpu4['search']['best']})")
