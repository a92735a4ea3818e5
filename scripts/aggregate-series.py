#!/usr/bin/env python3
"""Aggregates a labelled series (`timestamp,value,label`) to a coarser grid, as a monitoring
system's export at a longer interval would: each bucket of K points becomes one point, its value
the mean of the points present and its label the maximum. docs/TUNING.md (session 12) uses it to make series on which
the defaults are poor. Usage:

    aggregate-series.py IN.csv OUT.csv K
"""
import csv, sys

src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, newline="") as f:
    rows = list(csv.DictReader(f))
times = sorted({int(r["timestamp"]) for r in rows})
# The series' interval: the smallest step between timestamps (a gap or a repeat cannot fool it,
# as the first two rows' difference could be).
step = min(b - a for a, b in zip(times, times[1:]))
buckets = {}
for r in rows:
    t = int(r["timestamp"])
    buckets.setdefault(t - t % (step * k), []).append(r)
with open(dst, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["timestamp", "value", "label"])
    for b in sorted(buckets):
        rs = buckets[b]
        w.writerow([b, sum(float(r["value"]) for r in rs) / len(rs), max(int(r["label"]) for r in rs)])
