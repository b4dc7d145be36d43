#!/usr/bin/env python3
"""Runs loadgen (Kafka sink, wss, aggTrade, 3 symbols, even arrival) once per configuration and
round, the configurations alternated (reversed every other round), and tabulates CPU per delivered
message in total and per thread group, enqueue->ack and source->broker-append percentiles.

  sweep.py OUT ROUNDS LABEL=BIN[,K=V...] ...      e.g.
  sweep.py /tmp/sweep 2 w500=/tmp/new,KAFKA_BATCH_WINDOW_US=500 w0=/tmp/new,KAFKA_BATCH_WINDOW_US=0

Environment: LOADGEN (binary), RATE (16000), SECS (10), WARMUP (3), NICE (10; 0 runs the measurement at
normal priority, ahead of niced builds sharing the cores: each run takes ~15 s).
Writes OUT/runs.json (every run) and prints a Markdown table (medians over the rounds, ranges).
"""
import json
import os
import statistics
import subprocess
import sys

out, rounds, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
loadgen = os.environ.get("LOADGEN", "target/release/loadgen")
rate, secs, warmup = os.environ.get("RATE", "16000"), os.environ.get("SECS", "10"), os.environ.get("WARMUP", "3")
configs = []
for s in specs:
    label, rest = s.split("=", 1)
    parts = rest.split(",")
    configs.append((label, parts[0], parts[1:]))

runs = []
for r in range(rounds):
    order = configs if r % 2 == 0 else list(reversed(configs))
    for label, binary, env in order:
        name = f"{label}-r{r}"
        cmd = ["nice", "-n", os.environ.get("NICE", "10"), loadgen, "--sink", "kafka", "--rate", rate, "--arrival", "even", "--tls",
               "--streams", "aggTrade", "--secs", secs, "--warmup", warmup, "--ingester", binary,
               "--out", out, "--name", name]
        for e in env:
            cmd += ["--env", e]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        d = json.load(open(os.path.join(out, name, "summary.json")))
        per = lambda pct: pct / 100 * 1e6 / d["acked_rate"]
        t = d["threads_pct"]
        row = {
            "label": label, "round": r, "env": env, "sustained": d["sustained"],
            "cpu_us": d["cpu_ns_per_msg"] / 1000,
            "loop_us": per(t.get("event-loop", 0)), "producer_us": per(t.get("producer", 0)),
            "rdk_us": per(t.get("librdkafka", 0)),
            "ack": d["latency_us"]["enqueue_to_ack"], "append": d["e2e_ms"]["e2e_log_append"],
            "load": (d["host"]["loadavg_before"].split()[0], d["host"]["loadavg_after"].split()[0]),
        }
        runs.append(row)
        print(f"{name}: {row['cpu_us']:.1f} µs/msg, ack p50 {row['ack']['p50']:.0f} µs, append p50/p99/p99.9 "
              f"{row['append']['p50']}/{row['append']['p99']}/{row['append']['p999']} ms, load {row['load']}",
              file=sys.stderr, flush=True)
json.dump({"rate": rate, "secs": secs, "runs": runs}, open(os.path.join(out, "runs.json"), "w"), indent=1)

def cell(xs, fmt):
    m = statistics.median(xs)
    return fmt.format(m) if len(xs) == 1 else f"{fmt.format(m)} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"

print("| config | CPU µs/msg | event loop | producer | librdkafka | enqueue->ack p50 / p99 / p99.9 µs "
      "| append p50 / p99 / p99.9 ms | load 1-min |")
print("|---|---:|---:|---:|---:|---|---|---|")
for label, _, _ in configs:
    rs = [x for x in runs if x["label"] == label]
    f = lambda k: [x[k] for x in rs]
    ack = " / ".join(cell([x["ack"][p] for x in rs], "{:.0f}") for p in ("p50", "p99", "p999"))
    app = " / ".join(cell([x["append"][p] for x in rs], "{:.0f}") for p in ("p50", "p99", "p999"))
    load = ", ".join(f"{a}→{b}" for a, b in f("load"))
    sus = "" if all(f("sustained")) else " (NOT SUSTAINED in a run)"
    print(f"| {label}{sus} | {cell(f('cpu_us'), '{:.1f}')} | {cell(f('loop_us'), '{:.1f}')} | "
          f"{cell(f('producer_us'), '{:.2f}')} | {cell(f('rdk_us'), '{:.1f}')} | {ack} | {app} | {load} |")
