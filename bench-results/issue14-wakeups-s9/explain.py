#!/usr/bin/env python3
"""How much of each thread group's CPU its wake-ups explain, from `loadgen --table` summaries.

    python3 bench-results/issue14-wakeups-s9/explain.py [COST_US] DIR/summary.json...

COST_US (default 7.3): CPU per cross-CPU wake-up on this VM, waker and woken together
(bench-results/wakeup-cost/: perf bench sched pipe, 2.90 CPU-s for 400,000 wake-ups).
Explained = wake-ups/s x COST_US over the group's CPU µs/s = COST_US / (CPU µs per wake-up).
"""
import json
import os
import sys

args = sys.argv[1:]
cost = 7.3
if args and not args[0].endswith(".json"):
    cost = float(args.pop(0))
ORDER = ["process", "event loop", "producer", "librdkafka", "metrics", "backfill", "other"]
print(f"| run | rate | contender | sink | group | wake-ups/s | CPU % of a core | CPU µs per wake-up "
      f"| wake-ups x {cost} µs, % of its CPU | wake-ups per msg | x {cost} µs = µs/msg | its CPU µs/msg |")
print("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
for path in args:
    run = os.path.basename(os.path.dirname(os.path.abspath(path)))
    rs = json.load(open(path))
    for r in rs if isinstance(rs, list) else [rs]:
        groups = {"process": r["wake"], **r.get("wake_by_group", {})}
        names = sorted(groups, key=lambda g: ORDER.index(g) if g in ORDER else len(ORDER))
        for g in names:
            w = groups[g]
            if w["wakeups_per_s"] == 0 and w["cpu_pct"] < 0.05:
                continue
            cpu_us_per_s = w["cpu_pct"] * 1e4
            explained = 100 * w["wakeups_per_s"] * cost / cpu_us_per_s if cpu_us_per_s else 0
            # The group's time on a CPU (schedstat) per delivered message; for the process the
            # sum over its threads, which can differ a little from `cpu_us_per_msg` (stat's ticks).
            per_msg_cpu = cpu_us_per_s / r["kafka_rate"] if r["kafka_rate"] else 0.0
            print(f"| {run} | {r['rate'] / 1000:.0f}k {r['arrival']} | {r['contender']} | {r['sink']} | {g} "
                  f"| {w['wakeups_per_s']:,.0f} | {w['cpu_pct']:.1f} | {w['cpu_us_per_wakeup']:.1f} "
                  f"| {explained:.0f} % | {w['wakeups_per_msg']:.2f} | {w['wakeups_per_msg'] * cost:.1f} "
                  f"| {per_msg_cpu:.1f} |")
