#!/usr/bin/env python3
"""Hot-path cost gate in instructions, not time.

The thread benchmarks (ring_hop, pipeline) swing by up to 10x between sittings on a shared
2-vCPU VM, so a time can neither prove "no slower" nor catch a 5 % regression there. The number
of instructions one frame costs on the event loop's side of the pipeline is deterministic: this
runs the pipeline benchmark's `ours` (WebSocket decode -> parse -> normalize -> encode -> ring
commit of 20,000 trade frames rendered by the simulator) under valgrind's callgrind and divides
its inclusive instruction count by the frames it handled. The consumer thread is not counted
(it is another thread's stack).

  scripts/bench_instructions.py check [--tolerance 0.03]   # fail if a figure grew past it
  scripts/bench_instructions.py save                       # record today's figures
  scripts/bench_instructions.py measure                    # print them only
  scripts/bench_instructions.py measure --exe sbe=PATH     # ... of a benchmark built elsewhere
                                                           # (an older tree: before/after)

Figures are instructions per trade frame: `frame` (all of `ours`), `parse` (the venue's parser),
`encode` (Record::encode_to, which writes the record into the ring's free space, or into the
staging buffer through Record::encode_in); and from the SBE benchmark (benches/sbe.rs, issue 13), per trade,
what each of its timed loops through the pipeline costs: `json_trade` (a JSON trade frame through
`Pipeline::on_text`), `sbe_trade` (an SBE trade frame through `Pipeline::on_binary`),
`sbe_event_trade` (the same, three trades an SBE event) and `enqueue_only` (a parsed trade
encoded into the ring, the part both share). The baseline is
benches/baseline-instructions.json; valgrind (Debian package `valgrind`) is required: without it
`check` fails, it does not pass silently.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAVED = ROOT / "benches" / "baseline-instructions.json"
BENCH = ROOT / "benches" / "pipeline.rs"
SBE_BENCH = ROOT / "benches" / "sbe.rs"

# figure -> the function whose inclusive cost it is, as callgrind_annotate names it
FUNCS = {
    "frame": r"benches/pipeline\.rs:pipeline::ours",
    "parse": r"binance/wire\.rs:marketflow_ingestor::binance::wire::parse_combined",
    "encode": r"record\.rs:marketflow_ingestor::record::Record::encode_to",
}

# SBE benchmark figure -> (criterion id run alone, the timed loop it calls, by callgrind's name)
SBE_FUNCS = {
    "json_trade": ("trade_decode_normalize_encode/json_sonic", r"benches/sbe\.rs:sbe::json_trades"),
    "sbe_trade": ("trade_decode_normalize_encode/sbe", r"benches/sbe\.rs:sbe::sbe_trades"),
    "enqueue_only": ("trade_decode_normalize_encode/enqueue_only", r"benches/sbe\.rs:sbe::enqueue_records"),
    # The same trades three an SBE event (each call still takes N trades).
    "sbe_event_trade": ("trade_decode_normalize_encode/sbe_events_of_3", r"benches/sbe\.rs:sbe::sbe_trades"),
}


def const(path, name):
    m = re.search(rf"const {name}: u64 = ([0-9_]+);", path.read_text())
    if not m:
        sys.exit(f"bench_instructions: no `const {name}` in {path}")
    return int(m.group(1).replace("_", ""))


def frames_per_call():
    return const(BENCH, "FRAMES")


def build(bench):
    """The benchmark's executable: `--exe NAME=PATH` if given, else built here."""
    given = [a.split("=", 1)[1] for i, a in enumerate(sys.argv) if i > 0 and sys.argv[i - 1] == "--exe" and a.startswith(bench + "=")]
    if given:
        return given[0]
    out = subprocess.run(
        ["cargo", "bench", "--locked", "--bench", bench, "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == bench and msg.get("executable"):
            return msg["executable"]
    sys.exit(f"bench_instructions: cargo did not name the {bench} benchmark's executable")


def profile(exe, bench_id, name):
    """callgrind's call tree of one benchmark of `exe`, run alone for a while."""
    # Kept in the target directory: `callgrind_annotate --auto=yes <file>` shows where they went.
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve()
    out = target / f"bench-instructions-{name}.callgrind"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", exe,
         "--bench", f"^{bench_id}$", "--profile-time", "2"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--tree=calling", "--threshold=100", str(out)],
        check=True, capture_output=True, text=True,
    ).stdout


def inclusive(annotated, pattern):
    """(instructions, calls) of the function matching `pattern`, from callgrind_annotate --tree=calling."""
    cost = calls = None
    for line in annotated.splitlines():
        if re.search(r"\*\s+\S*" + pattern + r"\b", line) and cost is None:
            cost = int(line.split()[0].replace(",", ""))
        m = re.search(r"\)\s+>\s+\S*" + pattern + r" \(([0-9,]+)x\)", line)
        if m:
            calls = (calls or 0) + int(m.group(1).replace(",", ""))
    return cost, calls


def measure():
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        sys.exit("bench_instructions: valgrind is not installed (apt-get install valgrind); the gate cannot run")
    annotated = profile(build("pipeline"), "pipeline/ours", "pipeline")
    ours_cost, ours_calls = inclusive(annotated, FUNCS["frame"])
    if not ours_cost or not ours_calls:
        sys.exit("bench_instructions: `pipeline::ours` not found in the profile (renamed or inlined?)")
    frames = ours_calls * frames_per_call()
    figures = {}
    for name, pattern in FUNCS.items():
        cost, calls = inclusive(annotated, pattern)
        if cost is None:
            sys.exit(f"bench_instructions: {pattern} not found in the profile (renamed or inlined?)")
        if name != "frame" and calls != frames:
            sys.exit(f"bench_instructions: {pattern} ran {calls} times for {frames} frames")
        figures[name] = round(cost / frames)
    sbe_exe, per_call = build("sbe"), const(SBE_BENCH, "N")
    for name, (bench_id, pattern) in SBE_FUNCS.items():
        cost, calls = inclusive(profile(sbe_exe, bench_id, name), pattern)
        if not cost or not calls:
            sys.exit(f"bench_instructions: {pattern} not found in the profile (renamed or inlined?)")
        figures[name] = round(cost / (calls * per_call))
    return figures


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    tolerance = float(sys.argv[sys.argv.index("--tolerance") + 1]) if "--tolerance" in sys.argv else 0.03
    now = measure()
    print("instructions per trade frame: " + ", ".join(f"{k} {v}" for k, v in now.items()))
    if mode == "measure":
        return
    if mode == "save":
        SAVED.write_text(json.dumps(now, indent=2) + "\n")
        print(f"saved to {SAVED.relative_to(ROOT)}")
        return
    saved = json.loads(SAVED.read_text())
    failed = False
    for name, base in saved.items():
        got = now.get(name)
        ok = got is not None and got <= base * (1 + tolerance)
        failed |= not ok
        print(f"  {name:7} {got} vs saved {base} ({(got - base) / base:+.1%}) {'ok' if ok else 'GREW'}")
    if failed:
        sys.exit(f"bench_instructions: the hot path costs more than {tolerance:.0%} over the saved figures; "
                 "if that is intended, say why in the commit and re-save (scripts/bench_instructions.py save)")


if __name__ == "__main__":
    main()
