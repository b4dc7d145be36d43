#!/usr/bin/env bash
# Observability end to end: the Binance simulator feeds the real ingester (SINK=null, no Kafka), a real
# Prometheus server scrapes it every second, and the Grafana dashboard's queries and the PrometheusRule's
# alerts are evaluated against that data through Prometheus' HTTP API.
#
#   scripts/test-observability.sh
#   BIN_DIR=/work/target-obs/release scripts/test-observability.sh    # use these binaries, build nothing
#
# On a fresh machine (as root) it installs what is missing: Debian's `prometheus` package (server and
# promtool; the packaged service is kept from starting, see scripts/tools.sh), helm (built with Go, as
# scripts/test-chart.sh does; reused from its cache) and PyYAML.
#
# Binaries: $BIN_DIR when set (a directory holding marketflow-ingestor and binance-sim, or a Cargo target
# dir with them under release/ or debug/). Otherwise target/debug when both binaries are there (when
# sources are newer, `cargo build -p marketflow-ingestor -p binance-sim` refreshes them incrementally),
# else the same build in release. The simulator is its own crate (crates/binance-sim).
#
# Checks:
#   1. /healthz and /readyz answer 200 with every stream subscribed (trade, aggTrade, kline_1m,
#      bookTicker, depth@100ms for 3 symbols);
#   2. a /metrics scrape holds every metric the dashboard and alerts use, with their labels
#      (charts/ingestor/metric-names.txt, `scripts/chart_assert.py check-scrape`);
#   3. promtool accepts the generated Prometheus configuration and the rendered alert rules;
#   4. after OBS_WAIT_SECS of 1 s scrapes, every dashboard query evaluates and returns data, the
#      per-stage latency percentiles have a value for each stage, the throughput queries are positive;
#      every alert expression parses and is not firing, while its series selector does match series;
#      Prometheus evaluated every rule without error and none is pending or firing
#      (scripts/obs_check.py);
#   5. on SIGTERM the ingester drains and exits 0.
# Everything listens on and talks to 127.0.0.1 only (BINANCE_REST_URL points at the simulator too).
# Every process started here is stopped on exit, and the whole run is bounded by OBS_TIMEOUT seconds
# (counted after the build).
#
# Environment: BIN_DIR; OBS_WAIT_SECS (default 15); OBS_TIMEOUT (default 240); OBS_SIM_RATE (trades/s
# over all symbols, default 300); OBS_PIN_CORE (PIN_CORE and PRODUCER_CORE of the ingester, default
# `none`: this is a functional test on a shared machine); OBS_METRICS_SYMBOL_DETAIL_MAX (the ingester's
# METRICS_SYMBOL_DETAIL_MAX; `0` checks the dashboard and alerts against the aggregated `symbol="_all"`
# detail a lane of many symbols exports; unset: the default, every series per symbol at 3 symbols);
# KEEP_WORK=1 keeps logs, scrape and TSDB (the folder is printed); TOOLS_DIR, HELM as in scripts/test-chart.sh.
# Output: one line per check, a summary, and last `observability: N passed, M failed`.
# Exit status: 0 when every check passed, 1 otherwise.

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/ingestor"
# shellcheck source=scripts/tools.sh
source "$ROOT/scripts/tools.sh"
export PYTHONDONTWRITEBYTECODE=1

WAIT_SECS="${OBS_WAIT_SECS:-15}"
TIMEOUT="${OBS_TIMEOUT:-240}"
SIM_RATE="${OBS_SIM_RATE:-300}"
PIN="${OBS_PIN_CORE:-none}"
DETAIL_MAX="${OBS_METRICS_SYMBOL_DETAIL_MAX:-}"
SYMBOLS="btcusdt,ethusdt,solusdt"
STREAMS="trade,aggTrade,kline_1m,bookTicker,depth@100ms"
# A USD-M lane beside spot's (the dashboard's USD-M row and the alerts' market label need its series).
USDM_SYMBOLS="btcusdt,ethusdt"
RELEASE="ingestor"
NAMESPACE="marketflow"
KUBE_VERSION="${KUBE_VERSION:-1.33.0}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/test-observability.XXXXXX")"
START=$SECONDS
PASSED=0
FAILED=0
declare -a SUMMARY=()
SIM_PID="" ING_PID="" PROM_PID="" WATCHDOG_PID=""

note() { printf '==> %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); SUMMARY+=("PASS  $1"); printf '  PASS  %s\n' "$1"; }
fail() {
  FAILED=$((FAILED + 1)); SUMMARY+=("FAIL  $1"); printf '  FAIL  %s\n' "$1"
  if [[ -n "${2:-}" && -f "$2" ]]; then sed 's/^/        | /' "$2" | tail -n 40; fi
}

# step NAME CMD...: one check; output in a log, shown when it fails.
step() {
  local name="$1"; shift
  local log t0=$SECONDS
  log="$WORK/logs/$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_').log"
  if "$@" >"$log" 2>&1; then pass "$name ($((SECONDS - t0))s)"; return 0; fi
  fail "$name ($((SECONDS - t0))s)" "$log"; return 1
}

# counted NAME CMD...: CMD prints PASS/FAIL lines and a last line `...: N passed, M failed`; each of its
# checks counts.
counted() {
  local name="$1"; shift
  local log t0=$SECONDS rc p f
  log="$WORK/logs/$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_').log"
  "$@" >"$log" 2>&1; rc=$?
  sed 's/^/    /' "$log"
  read -r p f < <(sed -nE 's/.*: ([0-9]+) (checks )?passed, ([0-9]+) failed.*/\1 \3/p' "$log" | tail -n1)
  if [[ -z "${p:-}" ]]; then
    fail "$name: no result line (exit $rc)"; return 1
  fi
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
  if [[ $rc -eq 0 && $f -eq 0 ]]; then
    SUMMARY+=("PASS  $name: $p checks ($((SECONDS - t0))s)")
  else
    [[ $f -eq 0 ]] && FAILED=$((FAILED + 1))   # non-zero exit without a counted failure
    SUMMARY+=("FAIL  $name: $p passed, $f failed (exit $rc, $((SECONDS - t0))s)")
  fi
  return $rc
}

# stop PID NAME [SECS]: SIGTERM, then SIGKILL after SECS (default 5); prints the exit status.
stop() {
  local pid="$1" name="$2" secs="${3:-5}" i rc
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "  $name (pid $pid) still running after ${secs}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  rc=$?
  return $rc
}

REPORTED=0
report() {
  echo
  echo "============================== observability summary =============================="
  printf '%s\n' "${SUMMARY[@]}"
  echo "-----------------------------------------------------------------------------------"
  echo "binaries: ${BIN:-none}; streams: $STREAMS; symbols: $SYMBOLS; USD-M symbols: $USDM_SYMBOLS; simulator rate: $SIM_RATE trades/s; METRICS_SYMBOL_DETAIL_MAX: ${DETAIL_MAX:-default}"
  echo "total time: $((SECONDS - START))s"
  echo "observability: $PASSED passed, $FAILED failed$1"
  REPORTED=1
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ $REPORTED -eq 0 ]]; then
    [[ $rc -eq 0 ]] && rc=1
    FAILED=$((FAILED + 1)); SUMMARY+=("FAIL  run aborted (exit $rc) before every check ran")
    report " (aborted)"
  fi
  stop "$ING_PID" ingester 12 || true
  stop "$SIM_PID" simulator || true
  stop "$PROM_PID" prometheus || true
  if [[ -n "$WATCHDOG_PID" ]]; then kill "$WATCHDOG_PID" 2>/dev/null; wait "$WATCHDOG_PID" 2>/dev/null; fi
  if [[ "${KEEP_WORK:-0}" == 1 ]]; then echo "logs, scrape and TSDB kept in $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT
trap 'echo "terminated (OBS_TIMEOUT=${TIMEOUT}s reached?)"; exit 124' TERM

mkdir -p "$WORK/logs" "$WORK/prom"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# http URL: body on stdout; only loopback is ever asked, never through a proxy.
http() { curl -sS --noproxy '*' --max-time 5 "$@"; }
http_code() { curl -s --noproxy '*' --max-time 5 -o /dev/null -w '%{http_code}' "$1" 2>/dev/null; }
# wait_until SECS CMD...: polls CMD every 0.2 s.
# CMD returns 0 (done), 1 (not yet) or 2 (never: its process died).
wait_until() {
  local secs="$1" i rc; shift
  for ((i = 0; i < secs * 5; i++)); do
    "$@"; rc=$?
    [[ $rc -eq 0 || $rc -eq 2 ]] && return $rc
    sleep 0.2
  done
  return 1
}
alive() { kill -0 "$1" 2>/dev/null; }

# ------------------------------------------------------------------------------------------------- tools

note "tools"
step "prometheus + promtool (Debian package prometheus)" install_prometheus_package prometheus promtool || exit 1
step "helm" install_helm || exit 1
HELM_BIN="${HELM:-$TOOLS_DIR/bin/helm}"
PY="$(yaml_python)" || { fail "python3 with PyYAML"; exit 1; }
command -v curl >/dev/null || { apt_update_once && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends curl; } >/dev/null 2>&1
command -v curl >/dev/null || { fail "curl"; exit 1; }

# ---------------------------------------------------------------------------------------------- binaries

note "binaries"
find_bins() {
  local d
  for d in "$@"; do
    if [[ -x "$d/marketflow-ingestor" && -x "$d/binance-sim" ]]; then BIN="$d"; return 0; fi
  done
  return 1
}
newer_sources() { # prints one source file newer than $1, if any
  find "$ROOT/src" "$ROOT/crates" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" "$ROOT/build.rs" -newer "$1" -type f -print -quit 2>/dev/null
}
BIN=""
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
t0=$SECONDS
if [[ -n "${BIN_DIR:-}" ]]; then
  find_bins "$BIN_DIR" "$BIN_DIR/release" "$BIN_DIR/debug" \
    || { fail "BIN_DIR=$BIN_DIR holds no marketflow-ingestor and binance-sim (nor under release/ or debug/)"; exit 1; }
  echo "  using $BIN (BIN_DIR)"
elif find_bins "$TARGET/debug"; then
  if [[ -n "$(newer_sources "$BIN/marketflow-ingestor")$(newer_sources "$BIN/binance-sim")" ]]; then
    step "cargo build --locked -p marketflow-ingestor -p binance-sim (debug binaries older than the sources)" \
      cargo build --locked -p marketflow-ingestor -p binance-sim --manifest-path "$ROOT/Cargo.toml" || exit 1
  else
    echo "  using $BIN (up to date with src/, crates/, Cargo.toml, Cargo.lock, build.rs)"
  fi
else
  step "cargo build --release --locked -p marketflow-ingestor -p binance-sim" \
    cargo build --release --locked -p marketflow-ingestor -p binance-sim --manifest-path "$ROOT/Cargo.toml" || exit 1
  BIN="$TARGET/release"
fi
echo "  binaries: $BIN ($((SECONDS - t0))s)"
"$BIN/marketflow-ingestor" --version 2>/dev/null | sed 's/^/  /'

# From here on the run is bounded.
( for ((i = 0; i < TIMEOUT; i++)); do sleep 1; kill -0 $$ 2>/dev/null || exit 0; done
  echo "test-observability: OBS_TIMEOUT=${TIMEOUT}s reached, stopping" >&2; kill -TERM $$ ) &
WATCHDOG_PID=$!

# --------------------------------------------------------------------------------------- render the chart

note "chart (helm template -f ci/default-values.yaml)"
RENDERED="$WORK/rendered.yaml"
render() {
  "$HELM_BIN" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" \
    -f "$CHART/ci/default-values.yaml" >"$RENDERED"
}
step "helm template" render || exit 1

# ------------------------------------------------------------------------------------ simulator + ingester

note "simulator and ingester on 127.0.0.1"
"$BIN/binance-sim" --listen 127.0.0.1:0 --rate "$SIM_RATE" --symbols "$SYMBOLS" \
  --usdm --usdm-symbols "$USDM_SYMBOLS" \
  >"$WORK/sim.out" 2>"$WORK/logs/sim.log" &
SIM_PID=$!
sim_listening() { grep -q '^LISTENING ' "$WORK/sim.out" || { alive "$SIM_PID" || return 2; return 1; }; }
if ! wait_until 10 sim_listening; then
  fail "simulator prints LISTENING within 10s" "$WORK/logs/sim.log"; exit 1
fi
WS_URL="$(sed -n 's/^LISTENING //p' "$WORK/sim.out" | head -n1)"
# The simulator also serves Binance's REST API when it has one; otherwise point REST at a closed loopback
# port so that nothing can leave the machine.
REST_URL="$(sed -n 's/^REST //p' "$WORK/sim.out" | head -n1)"
REST_URL="${REST_URL:-http://127.0.0.1:9}"
USDM_WS_URL="$(sed -n 's/^USDM_WS //p' "$WORK/sim.out" | head -n1)"
USDM_REST_URL="$(sed -n 's/^USDM_REST //p' "$WORK/sim.out" | head -n1)"
[[ -n "$USDM_WS_URL" && -n "$USDM_REST_URL" ]] || { fail "simulator prints USDM_WS and USDM_REST" "$WORK/sim.out"; exit 1; }
PROM_PORT="$(free_port)"
echo "  simulator $WS_URL (REST $REST_URL), pid $SIM_PID; ingester metrics on 127.0.0.1:$PROM_PORT"

env SINK=null SYMBOLS="$SYMBOLS" STREAMS="$STREAMS" BINANCE_WS_URL="$WS_URL" BINANCE_REST_URL="$REST_URL" \
  USDM_SYMBOLS="$USDM_SYMBOLS" USDM_WS_URL="$USDM_WS_URL" USDM_REST_URL="$USDM_REST_URL" USDM_PIN_CORE="$PIN" \
  PROM_PORT="$PROM_PORT" METRICS_BIND=127.0.0.1 PIN_CORE="$PIN" PRODUCER_CORE="$PIN" LOG_FORMAT=text \
  ${DETAIL_MAX:+METRICS_SYMBOL_DETAIL_MAX="$DETAIL_MAX"} \
  RUST_LOG=info NO_COLOR=1 "$BIN/marketflow-ingestor" >"$WORK/logs/ingester.out" 2>"$WORK/logs/ingester.log" &
ING_PID=$!
ready() { [[ "$(http_code "http://127.0.0.1:$PROM_PORT/readyz")" == 200 ]] || { alive "$ING_PID" || return 2; return 1; }; }
if wait_until 20 ready; then
  pass "ingester /readyz 200 (every stream subscribed, sink ready)"
else
  fail "ingester /readyz 200 within 20s" "$WORK/logs/ingester.log"; exit 1
fi
if [[ "$(http_code "http://127.0.0.1:$PROM_PORT/healthz")" == 200 ]]; then pass "ingester /healthz 200"; else fail "ingester /healthz 200"; fi
CORES_LINE="$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/logs/ingester.log" | grep -m1 ' cores ' || true)"
echo "  ingester log: ${CORES_LINE#*INFO }"

# ---------------------------------------------------------------------------------------------- Prometheus

note "Prometheus (scrape and rule evaluation every 1s)"
PROM_WEB_PORT="$(free_port)"
step "obs_check.py prepare (prometheus.yml + rules.yaml from the rendered chart)" \
  "$PY" "$ROOT/scripts/obs_check.py" prepare "$RENDERED" --target "127.0.0.1:$PROM_PORT" --out-dir "$WORK/prom" || exit 1
step "promtool check config (with the rendered alert rules)" promtool check config "$WORK/prom/prometheus.yml"
prometheus --config.file="$WORK/prom/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_WEB_PORT" --storage.tsdb.retention.time=1h --log.level=warn \
  >"$WORK/logs/prometheus.log" 2>&1 &
PROM_PID=$!
PROM_URL="http://127.0.0.1:$PROM_WEB_PORT"
prom_ready() { [[ "$(http_code "$PROM_URL/-/ready")" == 200 ]] || { alive "$PROM_PID" || return 2; return 1; }; }
if wait_until 30 prom_ready; then
  pass "prometheus ready on $PROM_URL (pid $PROM_PID)"
else
  fail "prometheus ready within 30s" "$WORK/logs/prometheus.log"; exit 1
fi
target_up() { http "$PROM_URL/api/v1/query" --data-urlencode 'query=up == 1' 2>/dev/null | grep -q '"result":\[{'; }
if wait_until 20 target_up; then
  pass "prometheus scrapes the ingester (up == 1)"
else
  fail "prometheus scrapes the ingester within 20s" "$WORK/logs/prometheus.log"
  http "$PROM_URL/api/v1/targets" | head -c 2000; echo; exit 1
fi
echo "  collecting ${WAIT_SECS}s of 1s scrapes ..."
sleep "$WAIT_SECS"

# ------------------------------------------------------------------------------------------------ checks

note "every metric of the dashboard and alerts in a real scrape (charts/ingestor/metric-names.txt)"
if http "http://127.0.0.1:$PROM_PORT/metrics" >"$WORK/scrape.txt"; then
  echo "  scrape: $(grep -c '^marketflow_ingestor_' "$WORK/scrape.txt") samples, $(wc -c <"$WORK/scrape.txt") bytes"
  counted "check-scrape" "$PY" "$ROOT/scripts/chart_assert.py" check-scrape "$WORK/scrape.txt"
else
  fail "GET /metrics"
fi

note "dashboard queries and alert expressions through Prometheus' HTTP API"
counted "obs_check.py check" "$PY" "$ROOT/scripts/obs_check.py" check "$RENDERED" --prom "$PROM_URL" \
  --symbols "$SYMBOLS" --rate-interval 10s --interval 5s --range "${WAIT_SECS}s"

note "shutdown"
if alive "$ING_PID"; then
  t0=$SECONDS
  stop "$ING_PID" ingester 12; rc=$?
  ING_PID=""
  if [[ $rc -eq 0 ]]; then pass "ingester exits 0 on SIGTERM ($((SECONDS - t0))s)"
  else fail "ingester exits 0 on SIGTERM (exit $rc)" "$WORK/logs/ingester.log"; fi
else
  fail "ingester still running at the end" "$WORK/logs/ingester.log"
fi
if grep -Eq ' (ERROR|WARN) ' <(sed 's/\x1b\[[0-9;]*m//g' "$WORK/logs/ingester.log"); then
  echo "  ingester warnings/errors during the run:"
  sed 's/\x1b\[[0-9;]*m//g' "$WORK/logs/ingester.log" | grep -E ' (ERROR|WARN) ' | head -n 10 | sed 's/^/    /'
fi

report ""
[[ $FAILED -eq 0 ]]
