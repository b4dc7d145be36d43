#!/usr/bin/env bash
# The load-test suite of issue 5, each run short (the machine is shared): the real ingester fed by
# the Binance simulator over loopback. Results under bench-results/<run>/ (summary.json, .hgrm per
# stage, latency.svg) and a markdown table per run on stdout.
#
#   scripts/loadtest.sh             # 10k + 100k null plain, 10k TLS, max null, 10k Kafka
#   SOAK_MIN=5 scripts/loadtest.sh  # ... plus a 5-minute soak at 100k/s (RSS every 10 s)
#   SECS=30 scripts/loadtest.sh     # longer windows
#   CHRT=5 scripts/loadtest.sh      # every run under `chrt -r 5` (SCHED_RR priority 5, inherited by
#                                   # the ingester and the feeder; needs root or CAP_SYS_NICE), so
#                                   # that other work on a shared machine does not decide the maximum
#   ONLY=max scripts/loadtest.sh    # only the two --max runs
#   HOST_NOTE="cores shared with other builds" scripts/loadtest.sh   # recorded in every summary
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SECS="${SECS:-20}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  # loadgen (tools/loadgen, with the simulator crates/binance-sim as a library) runs the
  # marketflow-ingestor binary next to it: build both.
  CARGO_TARGET_DIR="$TARGET" cargo build --release -p marketflow-ingestor -p loadgen
fi
LG="$TARGET/release/loadgen"
PRE=()
SUFFIX=""
if [ -n "${CHRT:-}" ]; then
  PRE=(chrt -r "$CHRT")
  SUFFIX="-rt"
fi
NOTE=()
[ -n "${HOST_NOTE:-}" ] && NOTE=(--host-note "$HOST_NOTE")
run() { echo "== ${PRE[*]} loadgen $*" >&2; timeout --foreground -k 10 600 "${PRE[@]}" "$LG" "${NOTE[@]}" "$@"; }

if [ "${ONLY:-}" != max ]; then
  run --rate 10000 --secs "$SECS" --sink null
  run --rate 100000 --secs "$SECS" --sink null
  run --rate 10000 --secs "$SECS" --sink null --tls
fi
# The simulator as feeder, then pre-rendered frames (the ingester's own ceiling). Under CHRT the
# runs are named *-rt, so a real-time run is never mistaken for an ordinary one.
run --max --sink null --name "null-plain-trade-max$SUFFIX"
run --max --sink null --feeder replay --max-start 250000 --name "null-plain-trade-max-replay$SUFFIX"
[ "${ONLY:-}" = max ] && exit 0
bash scripts/kafka.sh start >/dev/null
run --rate 10000 --secs "$SECS" --sink kafka
if [ -n "${SOAK_MIN:-}" ]; then
  run --soak "$SOAK_MIN" --rate 100000 --sink null
fi
