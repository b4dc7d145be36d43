#!/usr/bin/env bash
# Side by side: marketflow-ingestor and cryptofeed (3.x: Binance feed, Kafka backend), fed by the
# same Binance simulator settings on 127.0.0.1, into the same local Kafka, one topic each, both
# measured by the same consumer (Kafka log-append time, and consumer receive time, minus the
# exchange event time in each record).
#
#   scripts/compare_cryptofeed.sh                 # RATE=2000 aggTrade msg/s, SECS=20 measured
#   RATE=5000 SECS=30 scripts/compare_cryptofeed.sh
#   MAX=1 scripts/compare_cryptofeed.sh           # highest rate each sustains into Kafka (stepwise)
#   CF_BATCH_INTERVAL=0.005 scripts/compare_cryptofeed.sh   # cryptofeed with a 5 ms batch window
#   HOST_NOTE="cores shared with other builds" scripts/compare_cryptofeed.sh   # recorded in summaries
#   ARRIVAL=poisson:3 scripts/compare_cryptofeed.sh   # the simulator's arrival process (see below)
#
#   TABLE=1 scripts/compare_cryptofeed.sh         # issue 14's table in one command (~10 min):
#       rates 1k, 10k, 16k, 100k msg/s x arrivals even, poisson:3, each through ours into Kafka,
#       cryptofeed into Kafka and ours with SINK=null; SECS=10 a cell; CPU per delivered message
#       in total and per thread group, source -> broker-append p50/p99/p99.9, wake-ups per second
#       (voluntary context switches) and µs of CPU per wake-up per thread group of ours and for
#       cryptofeed's process and threads (/proc/<pid>/task/*/schedstat and status, the same window
#       and the same reading for both); then ours at 16k/s (the first arrival) under `perf record`,
#       summarised per thread and function.
#       -> bench-results/issue14-table/ (table.md, summary.json, profile-16.0k.txt, a folder per cell)
#   TABLE=1 QUICK=1 scripts/compare_cryptofeed.sh # 1k and 16k, even only, no profile (~2.5 min)
#   TABLE=1 RATES=2000,8000 ARRIVALS=even,burst:50 PROFILE_RATE= scripts/compare_cryptofeed.sh
#   TABLE=1 QUICK=1 scripts/compare_cryptofeed.sh --env LOOP_COALESCE_US=500   # arguments after the
#       settings go to loadgen: --env K=V is the ingester's environment (cryptofeed's is unchanged)
#
# Arrivals (the simulator's --arrival): even (evenly spaced, the symbols interleaved), poisson
# (exponential gaps, seeded), even:K / poisson:K (segments of K messages at one instant, one
# write each), burst:N (= even:N).
#
# Like for like, in both modes: the same stream kind (aggTrade), the same transport (wss:// from
# the simulator's TLS, its certificate trusted by both), a fresh simulator with the same settings
# and symbols per run, the same broker, one topic each, acks=all for both. With MAX=1 both
# contenders (CONTENDERS, default ours,cryptofeed) go through the same rate steps (doubling from
# MAX_START to MAX_CEILING, then MAX_REFINE bisections, STEP_SECS measured each), one right after
# the other. Every summary records the host (CPU model, cores) and the load average before and
# after each run, so a ratio from a shared machine can be judged.
#
# Installs cryptofeed into a venv under ${MARKETFLOW_TOOLS:-~/.cache/marketflow-tools}/cryptofeed-venv
# (cryptofeed 3.x needs Python >= 3.13: PYTHON=..., python3.13 on PATH, or pyenv's 3.13.x),
# builds loadgen (the simulator, crates/binance-sim, is built into it) and the ingester (release),
# starts Kafka with scripts/kafka.sh, and runs `loadgen --compare-cryptofeed`. Results:
# bench-results/compare-cryptofeed-*/ (table.md, summary.json, .hgrm and latency.svg per
# contender). Bounded by TIMEOUT seconds (default 900; 1800 with MAX=1, whose two searches took
# 9 minutes on the shared 2-vCPU VM).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="${MARKETFLOW_TOOLS:-$HOME/.cache/marketflow-tools}"
VENV="$TOOLS/cryptofeed-venv"
RATE="${RATE:-2000}"
SECS_SET="${SECS:-}"   # TABLE=1: 10 s a cell unless SECS is given
SECS="${SECS:-20}"
WARMUP="${WARMUP:-5}"
OUT="${OUT:-$ROOT/bench-results}"
if [ "${MAX:-0}" = 1 ] || [ "${TABLE:-0}" = 1 ]; then TIMEOUT="${TIMEOUT:-1800}"; else TIMEOUT="${TIMEOUT:-900}"; fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

die() { echo "compare_cryptofeed: $*" >&2; exit 1; }
info() { echo "compare_cryptofeed: $*" >&2; }

py_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' 2>/dev/null; }

find_python() {
  local c
  for c in "${PYTHON:-}" python3.14 python3.13 python3; do
    [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && py_ok "$c" && { command -v "$c"; return 0; }
  done
  for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[3-9]*/bin/python3; do
    [ -x "$c" ] && py_ok "$c" && { echo "$c"; return 0; }
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import cryptofeed, aiokafka' 2>/dev/null; then
  PY="$(find_python)" || die "cryptofeed 3.x needs Python >= 3.13 and none was found (set PYTHON=/path/to/python3.13)"
  info "installing cryptofeed 3.x and aiokafka into $VENV (with $PY)"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q 'cryptofeed>=3,<4' aiokafka || die "pip could not install cryptofeed 3.x"
fi
info "$("$VENV/bin/python" -c 'import importlib.metadata as m; print("cryptofeed", m.version("cryptofeed"), "aiokafka", m.version("aiokafka"))')"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  info "building loadgen and the ingester (release, $TARGET)"
  CARGO_TARGET_DIR="$TARGET" cargo build --release -p marketflow-ingestor -p loadgen
fi
[ -x "$TARGET/release/loadgen" ] || die "$TARGET/release/loadgen is missing (cargo build --release -p marketflow-ingestor -p loadgen)"

bash "$ROOT/scripts/kafka.sh" start >/dev/null

if [ "${TABLE:-0}" = 1 ]; then
  if [ "${QUICK:-0}" = 1 ]; then
    RATES="${RATES:-1000,16000}"; ARRIVALS="${ARRIVALS:-even}"; PROFILE_RATE="${PROFILE_RATE-}"
  else
    RATES="${RATES:-1000,10000,16000,100000}"; ARRIVALS="${ARRIVALS:-even,poisson:3}"; PROFILE_RATE="${PROFILE_RATE-16000}"
  fi
  args=(--table --table-rates "$RATES" --table-arrivals "$ARRIVALS" --secs "${SECS_SET:-10}"
        --warmup "${TABLE_WARMUP:-3}" --out "$OUT" --contenders "${CONTENDERS:-ours,cryptofeed,ours-null}"
        --cf-python "$VENV/bin/python" --cf-script "$ROOT/scripts/cryptofeed_feed.py"
        --name "${NAME:-issue14-table$([ "${QUICK:-0}" != 1 ] || echo -quick)}")
  [ -n "$PROFILE_RATE" ] && args+=(--profile-rate "$PROFILE_RATE")
  [ -n "${HOST_NOTE:-}" ] && args+=(--host-note "$HOST_NOTE")
  exec timeout --foreground -k 10 "$TIMEOUT" "$TARGET/release/loadgen" "${args[@]}" "$@"
fi

args=(--compare-cryptofeed --rate "$RATE" --secs "$SECS" --warmup "$WARMUP" --out "$OUT"
      --cf-python "$VENV/bin/python" --cf-script "$ROOT/scripts/cryptofeed_feed.py")
if [ -n "${ARRIVAL:-}" ]; then
  args+=(--arrival "$ARRIVAL")
fi
if [ -n "${CF_BATCH_INTERVAL:-}" ]; then
  args+=(--cf-batch-interval "$CF_BATCH_INTERVAL" --name "compare-cryptofeed-${RATE}-batch${CF_BATCH_INTERVAL}")
fi
if [ "${MAX:-0}" = 1 ]; then
  args+=(--max --contenders "${CONTENDERS:-ours,cryptofeed}" --max-start "${MAX_START:-1000}"
         --max-ceiling "${MAX_CEILING:-512000}" --step-secs "${STEP_SECS:-20}"
         --max-refine "${MAX_REFINE:-2}" --name "compare-cryptofeed-max")
elif [ -n "${CONTENDERS:-}" ]; then
  args+=(--contenders "$CONTENDERS")
fi
if [ -n "${HOST_NOTE:-}" ]; then
  args+=(--host-note "$HOST_NOTE")
fi
exec timeout --foreground -k 10 "$TIMEOUT" "$TARGET/release/loadgen" "${args[@]}" "$@"
