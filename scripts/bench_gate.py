#!/usr/bin/env python3
"""Latency regression gate on same-run ratios.

Every benchmark here measures ours and a baseline in the same run; the gate compares the speedup
(baseline time / our time) with the one saved in benches/baseline-ratios.json and fails when it
dropped by more than the threshold. Ratios survive a noisy, shared machine; absolute times do not.

  scripts/bench_gate.py clean [--skip NAME]                  # before `cargo bench`: remove old results
  scripts/bench_gate.py check [--threshold 0.25] [--skip NAME]   # after `cargo bench`
  scripts/bench_gate.py save                       # record the current ratios as the baseline

`--only NAME` (repeatable) restricts any mode to those pairs, e.g. after `cargo bench --bench sbe`:
`check --only sbe`, or `save --only sbe` (that ratio saved, the others kept as they are).

Every benchmark of PAIRS not skipped must have a result: a missing one fails `check` and `save`.
Besides the comparison with the saved ratio, TARGETS prints each open issue's target stated as a
same-run ratio (met or NOT MET) and ABSOLUTE a time per element against an issue's target; neither
fails the gate, which guards against regressions: a target not yet reached is the issue's to close
(it stays open and says so), not a red build for every change. `--strict-targets` makes them fail.
"""
import json
import os
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve() / "criterion"
SAVED = ROOT / "benches" / "baseline-ratios.json"
# `--only`: the pairs this run is about (empty: all).
ONLY = set()

# name -> (ours, baseline), criterion ids relative to target/criterion
PAIRS = {
    **{
        f"parse/{t}": (f"parse_normalize_encode/sonic_borrowed/{t}", f"parse_normalize_encode/serde_json_owned/{t}")
        for t in ["trade", "agg_trade", "kline", "book_ticker", "depth_update"]
    },
    "ring_hop": ("ring_hop/rtrb_byte_ring", "ring_hop/crossbeam_bounded"),
    "ws_decode": ("ws_decode/tungstenite_16k_buffer/10000", "ws_decode/tungstenite_default/10000"),
    "pipeline": ("pipeline/ours", "pipeline/naive_serde_crossbeam"),
    # Not a speedup: the pipeline's rate with order-book upkeep over its rate without (about 1).
    "pipeline_depth_book": ("pipeline_depth/with_book", "pipeline_depth/without_book"),
    # TRANSPORT=sbe against the JSON path: one trade's decode + normalize + encode (benches/sbe.rs).
    "sbe": ("trade_decode_normalize_encode/sbe", "trade_decode_normalize_encode/json_sonic"),
    # The same three steps and nothing else (no pipeline, no ring), as parse/trade times the JSON path.
    "sbe_alone": ("trade_decode_normalize_encode_alone/sbe", "trade_decode_normalize_encode_alone/json_sonic"),
    # Both again with the SBE trades three an event, as the recorded BTCUSDT day's fills come
    # (benches/sbe.rs `PER_EVENT`); JSON sends each trade alone whatever the event.
    "sbe_events_of_3": ("trade_decode_normalize_encode/sbe_events_of_3", "trade_decode_normalize_encode/json_sonic"),
    "sbe_alone_events_of_3": (
        "trade_decode_normalize_encode_alone/sbe_events_of_3",
        "trade_decode_normalize_encode_alone/json_sonic",
    ),
}

# name -> (lowest same-run ratio, where the target comes from): reported by `check` (fails with --strict-targets).
TARGETS = {
    "sbe": (3.0, "issue 13: SBE at least 3x the JSON path"),
    "sbe_alone": (3.0, "issue 13: SBE at least 3x the JSON path, decode + normalize + encode alone"),
    "sbe_events_of_3": (3.0, "issue 13: SBE at least 3x the JSON path, trades three an event"),
    "sbe_alone_events_of_3": (3.0, "issue 13: SBE at least 3x the JSON path, alone, trades three an event"),
}

# name -> (criterion id, target ns per element, where it comes from): reported, never a failure.
ABSOLUTE = {
    "sbe": ("trade_decode_normalize_encode/sbe", 100.0, "issue 13: under 100 ns per trade"),
    "sbe_alone": ("trade_decode_normalize_encode_alone/sbe", 100.0, "issue 13: under 100 ns per trade, alone"),
    "sbe_events_of_3": (
        "trade_decode_normalize_encode/sbe_events_of_3",
        100.0,
        "issue 13: under 100 ns per trade, trades three an event",
    ),
    "sbe_alone_events_of_3": (
        "trade_decode_normalize_encode_alone/sbe_events_of_3",
        100.0,
        "issue 13: under 100 ns per trade, alone, trades three an event",
    ),
}

# name -> (criterion id of the part both sides share): the baseline's time over it is the highest
# ratio a faster decoder alone could reach (reported with the target, so a ratio under the target
# says whether decoding or the shared part is in the way).
SHARED = {
    "sbe": "trade_decode_normalize_encode/enqueue_only",
    "sbe_events_of_3": "trade_decode_normalize_encode/enqueue_only",
}


def estimates(bench_id):
    return CRITERION / bench_id / "new" / "estimates.json"


def mean_ns(bench_id):
    return json.loads(estimates(bench_id).read_text())["mean"]["point_estimate"]


def per_element_ns(bench_id):
    """The mean time of one element: criterion times an iteration, which the benchmark's
    `Throughput::Elements` says is that many elements (one if it declares none)."""
    bench = json.loads((CRITERION / bench_id / "new" / "benchmark.json").read_text())
    elements = (bench.get("throughput") or {}).get("Elements") or 1
    return mean_ns(bench_id) / elements


def expected(skipped):
    return {name: ids for name, ids in PAIRS.items() if name not in skipped and (not ONLY or name in ONLY)}


def clean(skipped):
    """Removes the result folders of every criterion group the gate will read, so that a result
    left by an earlier run can never stand in for a benchmark that failed or did not run."""
    groups = sorted({bench_id.split("/")[0] for ids in expected(skipped).values() for bench_id in ids})
    for g in groups:
        shutil.rmtree(CRITERION / g, ignore_errors=True)
    print(f"bench-gate: removed old results of {', '.join(groups)} under {CRITERION}")


def current(skipped):
    """The ratios of this run, and the names whose results are missing (with the file)."""
    out, missing = {}, {}
    for name, (ours, base) in expected(skipped).items():
        try:
            out[name] = round(mean_ns(base) / mean_ns(ours), 3)
        except FileNotFoundError as e:
            missing[name] = e.filename
    return out, missing


def main():
    args = sys.argv[1:]
    mode = args[0] if args else "check"
    threshold = float(args[args.index("--threshold") + 1]) if "--threshold" in args else 0.25
    skipped = {args[i + 1] for i, a in enumerate(args) if a == "--skip"}
    ONLY.update(args[i + 1] for i, a in enumerate(args) if a == "--only")
    if mode == "clean":
        clean(skipped)
        return
    now, missing = current(skipped)
    for name, path in sorted(missing.items()):
        print(f"{name:<22} no result: {path} is missing (the benchmark failed or did not run)")
    if mode == "save":
        if missing:
            sys.exit(f"bench-gate: not saving, {len(missing)} expected results missing")
        out = {**json.loads(SAVED.read_text()), **now} if ONLY else now
        SAVED.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
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
    # A saved ratio the gate no longer knows how to measure is a failure too.
    unknown = sorted(set(saved) - set(PAIRS)) if not ONLY else []
    for name in unknown:
        print(f"{name:<22} saved in {SAVED.name} but not measured by this gate")
    below = 0
    for name, (floor, why) in sorted(TARGETS.items()):
        if name in now:
            ok = now[name] >= floor
            below += not ok
            print(f"{name:<22} target x{floor:g} ({why}): x{now[name]:.2f} {'met' if ok else 'NOT MET'}")
            if name in SHARED and estimates(SHARED[name]).exists():
                ours, base = expected(set())[name]
                shared, bound = per_element_ns(SHARED[name]), mean_ns(base) / mean_ns(SHARED[name])
                print(
                    f"{'':<22} shared part {shared:.1f} ns per element ({SHARED[name]}): "
                    f"x{bound:.2f} at most with a free decoder; the rest (decoding, symbol, sequence checks, "
                    f"counters) {per_element_ns(ours) - shared:.1f} ns here, {per_element_ns(base) - shared:.1f} ns in the baseline"
                )
    for name, (bench_id, target, why) in sorted(ABSOLUTE.items()):
        if name in now:
            ns = per_element_ns(bench_id)
            verdict = "under it" if ns < target else "OVER it"
            print(f"{name:<22} {ns:.1f} ns per element, {verdict} ({why}; reported, not checked)")
    strict = "--strict-targets" in sys.argv
    bad = failed + len(missing) + len(unknown) + (below if strict else 0)
    counted = "counted: --strict-targets" if strict else "reported, not counted"
    print(f"bench-gate: {len(now) - failed} passed, {bad} failed (threshold {threshold:.0%}); "
          f"{below} issue target(s) not met ({counted})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
