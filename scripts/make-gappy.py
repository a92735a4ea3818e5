#!/usr/bin/env python3
"""Make a reproducible "gappy" copy of a regular KPI (timestamp,value,label) by deleting rows.

Deterministic for a given --seed (numpy default_rng).  Gaps are placed inside the three parts of the
DONUT split as DONUT computes it on the COMPLETED series (the first and last rows are never
deleted, so the completed series has the original length and the split does not move):
    test_n  = int(n * 0.3)                  -> test  = [n - test_n, n)
    valid_n = int((n - test_n) * 0.3)       -> valid = [n - test_n - valid_n, n - test_n)
    train   = [0, n - test_n - valid_n)
Each part loses about --target of its points (default 12 %): first one or two long gaps (1-3 days),
then short gaps (3-12 h).  Gaps stay >= --spacing points apart and >= --margin points from the part
boundaries.  In the test part a gap may cut into an anomaly segment but never delete a whole segment,
and at most --max-test-anom-loss of the test anomaly points may be deleted in total.

Usage (from the repository's root; needs numpy and pandas):
    python3 scripts/make-gappy.py              # curve_61 and cpu4 from $DATA (../shared/data) -> $OUT (/tmp/gappy)
    python3 scripts/make-gappy.py --in X.csv --out Y.csv --seed 7

The parity check of README.md ("Gappy KPIs") runs the project and the PyTorch reference on them.
"""
import argparse
import os
import sys

import numpy as np
import pandas as pd

DAY = 288           # points per day at 300 s
HOUR = 12


def split_bounds(n, test_portion=0.3, valid_portion=0.3):
    test_n = int(n * test_portion)
    trv = n - test_n
    valid_n = int(trv * valid_portion)
    return [("train", 0, trv - valid_n), ("valid", trv - valid_n, trv), ("test", trv, n)]


def segments(lab):
    lab = np.r_[0, (np.asarray(lab) > 0).astype(np.int8), 0]
    d = np.diff(lab)
    return np.where(d == 1)[0], np.where(d == -1)[0]


def draw_lengths(rng, target):
    """Long gaps (1-3 days) first, then short ones (3-12 h), summing to ~target points."""
    lens, rem = [], int(round(target))
    # one long gap always (if it fits), a second one with probability 0.5 when there is room
    for k in range(2):
        if rem < DAY or (k == 1 and (rem < DAY + 3 * HOUR or rng.random() < 0.5)):
            break
        hi = min(3 * DAY, rem if rem < 2 * DAY else int(0.75 * rem))   # leave room for short gaps
        L = int(rng.integers(DAY, hi + 1))
        if rem - L < 3 * HOUR and rem - L > 0:   # avoid a tiny leftover
            L = rem
        lens.append(L)
        rem -= L
    while rem > 0:
        if rem <= 12 * HOUR:
            L = rem
        else:
            L = int(rng.integers(3 * HOUR, 12 * HOUR + 1))
            if rem - L < 3 * HOUR:
                L = rem
        if L < 3 * HOUR and lens:               # fold a tiny remainder into the last gap
            lens[-1] += L
        else:
            lens.append(L)
        rem -= L
    return lens


def place(rng, lo, hi, lens, taken, ok, margin, spacing, tries=4000):
    """Place gaps (longest first) uniformly in [lo+margin, hi-margin); shrink a gap that cannot be placed."""
    placed = []
    for L in sorted(lens, reverse=True):
        cur = L
        while True:
            done = False
            for _ in range(tries):
                a_max = hi - margin - cur
                if a_max <= lo + margin:
                    break
                s = int(rng.integers(lo + margin, a_max + 1))
                e = s + cur
                if any(s < te + spacing and ts_ < e + spacing for ts_, te in taken):
                    continue
                if not ok(s, e):
                    continue
                taken.append((s, e))
                placed.append((s, e))
                done = True
                break
            if done:
                break
            new = int(cur * 0.9)
            if new < 3 * HOUR:
                print(f"[warn] could not place a gap of {L} points in [{lo},{hi})", file=sys.stderr)
                break
            print(f"[info] shrinking a gap {cur} -> {new} points (no valid place found)", file=sys.stderr)
            cur = new
    return placed


def make(inp, out, seed, target, margin, spacing, max_test_anom_loss):
    df = pd.read_csv(inp)
    n = len(df)
    ts = df.iloc[:, 0].to_numpy(np.int64)
    assert (np.diff(ts) == ts[1] - ts[0]).all(), "input must be regular and gap-free"
    lab = (df.iloc[:, 2].to_numpy() > 0)
    rng = np.random.default_rng(seed)
    parts = split_bounds(n)
    te_lo = parts[2][1]
    st, en = segments(lab)
    tst = [(a, b) for a, b in zip(st, en) if a >= te_lo]
    test_anom = int(lab[te_lo:].sum())
    budget = {"lost": 0}
    taken, gaps = [], []

    def ok_factory(name):
        if name != "test":
            return lambda s, e: True

        def ok(s, e):
            lost = 0
            for a, b in tst:
                if s <= a and b <= e:          # would delete a whole test segment
                    return False
                lost += max(0, min(b, e) - max(a, s))
            if budget["lost"] + lost > max_test_anom_loss * test_anom:
                return False
            budget["lost"] += lost
            return True
        return ok

    for (name, lo, hi), tgt in zip(parts, target):
        want = int(round(tgt * (hi - lo)))
        lens = draw_lengths(rng, want)
        for _ in range(20):        # re-draw short gaps for what shrinking / failed placements lost
            for s, e in place(rng, lo, hi, lens, taken, ok_factory(name), margin, spacing):
                gaps.append((s, e, name))
            deficit = want - sum(e - s for s, e, nm in gaps if nm == name)
            if deficit < 3 * HOUR:
                break
            lens = [L for L in draw_lengths(rng, deficit) if L <= 12 * HOUR] or [min(deficit, 12 * HOUR)]
    gaps.sort()
    drop = np.zeros(n, bool)
    for s, e, _ in gaps:
        drop[s:e] = True
    assert not drop[0] and not drop[-1]
    df[~drop].to_csv(out, index=False)

    print(f"== {inp} -> {out}  (seed {seed}, n={n}, split " +
          ", ".join(f"{nm}=[{lo},{hi})" for nm, lo, hi in parts) + ")")
    print(f"{'part':5s} {'start':>6s} {'len':>5s} {'hours':>6s} {'anom_deleted':>12s}")
    for s, e, nm in gaps:
        print(f"{nm:5s} {s:6d} {e - s:5d} {(e - s) / HOUR:6.1f} {int(lab[s:e].sum()):12d}")
    for nm, lo, hi in parts:
        print(f"  {nm}: missing {int(drop[lo:hi].sum())}/{hi - lo} = {drop[lo:hi].mean():.2%}, "
              f"anomaly points deleted {int((drop & lab)[lo:hi].sum())}/{int(lab[lo:hi].sum())}")
    no = int((~drop).sum())
    obs_idx = np.where(~drop)[0]
    tno = int(no * 0.3)
    vno = int((no - tno) * 0.3)
    print(f"  split on the {no} observed rows instead (completed-series index): valid starts at "
          f"{obs_idx[no - tno - vno]}, test at {obs_idx[no - tno]} (vs {parts[1][1]}, {parts[2][1]})")
    kept_te = lab[te_lo:] & ~drop[te_lo:]
    print(f"  total missing {int(drop.sum())}/{n} = {drop.mean():.2%}; rows written {int((~drop).sum())}; "
          f"test anomaly points kept {int(kept_te.sum())}/{test_anom}, "
          f"test segments kept (>=1 point) {sum(kept_te[a - te_lo:b - te_lo].any() for a, b in tst)}/{len(tst)}")
    return gaps


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--in", dest="inp", action="append")
    p.add_argument("--out", action="append")
    p.add_argument("--seed", type=int, default=2018)
    p.add_argument("--target", type=float, default=0.12)
    p.add_argument("--part-targets", default=None,
                   help="comma list of missing shares for train,valid,test (default: --target for each). Unequal "
                        "shares make a split on observed rows differ from the split on the completed series")
    p.add_argument("--margin", type=int, default=12, help="min distance of a gap from a part boundary")
    p.add_argument("--spacing", type=int, default=144, help="min distance between two gaps")
    p.add_argument("--max-test-anom-loss", type=float, default=0.10)
    a = p.parse_args()
    if not a.inp:
        data = os.environ.get("DATA", "../shared/data")
        out = os.environ.get("OUT", "/tmp/gappy")
        os.makedirs(out, exist_ok=True)
        a.inp = [f"{data}/server_res_eth1out_curve_61.csv", f"{data}/cpu4.csv"]
        a.out = [f"{out}/curve61_gappy.csv", f"{out}/cpu4_gappy.csv"]
    assert a.out and len(a.out) == len(a.inp)
    for i, o in zip(a.inp, a.out):
        tg = [float(x) for x in a.part_targets.split(",")] if a.part_targets else [a.target] * 3
        make(i, o, a.seed, tg, a.margin, a.spacing, a.max_test_anom_loss)


if __name__ == "__main__":
    main()
