#!/usr/bin/env python3
"""Latency regression gate on same-run ratios.

Every benchmark here measures ours and a baseline in the same run; the gate compares the speedup
(baseline time / our time) with the one saved in benches/baseline-ratios.json and fails when it
dropped by more than the threshold. Ratios survive a noisy, shared machine; absolute times do not.

  scripts/bench_gate.py check [--threshold 0.25] [--skip NAME]   # after `cargo bench`
  scripts/bench_gate.py save                       # record the current ratios as the baseline
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"
SAVED = ROOT / "benches" / "baseline-ratios.json"

# name -> (ours, baseline), criterion ids relative to target/criterion
PAIRS = {
    **{
        f"parse/{t}": (f"parse_normalize_encode/sonic_borrowed/{t}", f"parse_normalize_encode/serde_json_owned/{t}")
        for t in ["trade", "agg_trade", "kline", "book_ticker", "depth_update"]
    },
    "ring_hop": ("ring_hop/rtrb_byte_ring", "ring_hop/crossbeam_bounded"),
    "ws_decode": ("ws_decode/tungstenite_16k_buffer/10000", "ws_decode/tungstenite_default/10000"),
    "pipeline": ("pipeline/ours", "pipeline/naive_serde_crossbeam"),
}


def mean_ns(bench_id):
    f = CRITERION / bench_id / "new" / "estimates.json"
    return json.loads(f.read_text())["mean"]["point_estimate"]


def current():
    out = {}
    for name, (ours, base) in PAIRS.items():
        try:
            out[name] = round(mean_ns(base) / mean_ns(ours), 3)
        except FileNotFoundError:
            pass
    return out


def main():
    args = sys.argv[1:]
    mode = args[0] if args else "check"
    threshold = float(args[args.index("--threshold") + 1]) if "--threshold" in args else 0.25
    skipped = {args[i + 1] for i, a in enumerate(args) if a == "--skip"}
    now = {k: v for k, v in current().items() if k not in skipped}
    if not now:
        sys.exit("no criterion results under target/criterion: run `cargo bench` first")
    if mode == "save":
        SAVED.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n")
        print(f"saved {len(now)} ratios to {SAVED.relative_to(ROOT)}")
        return
    saved = json.loads(SAVED.read_text())
    failed = 0
    print(f"{'benchmark':<22} {'saved x':>9} {'now x':>9} {'change':>8}")
    for name, ratio in sorted(now.items()):
        base = saved.get(name)
        if base is None:
            print(f"{name:<22} {'-':>9} {ratio:>9.2f}    (new)")
            continue
        change = ratio / base - 1
        bad = change < -threshold
        failed += bad
        print(f"{name:<22} {base:>9.2f} {ratio:>9.2f} {change:>+7.0%}{'  REGRESSION' if bad else ''}")
    missing = sorted(set(saved) - set(now) - skipped)
    for name in missing:
        print(f"{name:<22} missing from this run")
    print(f"bench-gate: {len(now) - failed} passed, {failed + len(missing)} failed (threshold {threshold:.0%})")
    sys.exit(1 if failed or missing else 0)


if __name__ == "__main__":
    main()
