#!/usr/bin/env python3
"""Trades of a recorded Binance JSON capture that share the trade time and side of the trade before
them: the fills of one taker order, which Binance's SBE stream sends in one TradesStreamEvent
(benches/sbe.rs PER_EVENT). Usage: scripts/trade_runs.py tests/e2e/captures/hftbacktest/spot_btcusdt_20240808.gz"""
import gzip, json, sys
prev, same, n = None, 0, 0
for line in gzip.open(sys.argv[1], "rt"):
    d = json.loads(line[line.index("{"):]).get("data", {})
    if d.get("e") == "trade":
        n += 1
        same += (d["T"], d["m"]) == prev
        prev = (d["T"], d["m"])
print(f"{n} trades, {same} with the trade time and side of the one before: {n - same} runs")
