#!/usr/bin/env python3
"""results.json (run.py) -> the Markdown table of summary.md, one row per run."""
import json, sys
rs = json.load(open(sys.argv[1]))
print('| run | rate | LOOP_COALESCE_US | delivered/s | CPU µs/msg process | event loop µs/msg | loop wake-ups/s | msgs/wake-up | '
      'exchange→receive p50 / p99 µs | receive→enqueue p50 / p99 µs | log-append p50 / p99 ms | load 1-min |')
print('|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|')
for r in sorted(rs, key=lambda r: (r['rate'], r['coalesce_us'], r['rep'])):
    l, e = r['latency_us'], r['e2e_ms']
    lb, la = r['load_before'].split()[0], r['load_after'].split()[0]
    print(f"| {r['run']} | {r['rate']/1e3:g}k | {r['coalesce_us']} | {r['delivered_per_s']:.0f}"
          f"{'' if r['sustained'] else ' (NOT SUSTAINED)'} | {r['cpu_ns_per_msg']/1e3:.1f} | {r['loop_ns_per_msg']/1e3:.2f} | "
          f"{r['loop_wakeups_per_s']:.0f} | {r['msgs_per_wakeup'] or 0:.1f} | "
          f"{l['exchange_to_receive']['p50']:.0f} / {l['exchange_to_receive']['p99']:.0f} | "
          f"{l['receive_to_enqueue']['p50']:.1f} / {l['receive_to_enqueue']['p99']:.1f} | "
          f"{e['e2e_log_append']['p50']:.0f} / {e['e2e_log_append']['p99']:.0f} | {lb} → {la} |")
