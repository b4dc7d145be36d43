#!/usr/bin/env bash
# scripts/kafka.sh — a REAL local Apache Kafka 4.x broker (KRaft, single node,
# combined broker+controller) on 127.0.0.1, for development and tests.
#
# No Docker / tarball needed: the broker is assembled from Maven Central jars
# (scripts/kafka/pom.xml, `mvn dependency:copy-dependencies`) and cached.
# Needs only bash, java (17+) and mvn.
#
# Usage:
#   scripts/kafka.sh start                 fetch jars if needed, format storage if needed,
#                                          start in background, wait until the broker answers
#                                          a Metadata request; prints the bootstrap address
#                                          (the only thing written to stdout). No-op if up.
#                                          Also opens the SASL_SSL listener (see `sasl`).
#   scripts/kafka.sh stop                  SIGTERM, wait, SIGKILL if needed; data is kept.
#   scripts/kafka.sh restart               stop + start.
#   scripts/kafka.sh status                exit 0 if up and answering, 1 otherwise.
#   scripts/kafka.sh reset                 stop and wipe the data dir.
#   scripts/kafka.sh logs [-f] [LINES]     show (or follow with -f) the server log.
#   scripts/kafka.sh fetch                 only download/cache the jars (e.g. CI warm-up).
#   scripts/kafka.sh bootstrap             print the bootstrap address (does not start).
#   scripts/kafka.sh sasl                  print the SASL_SSL listener's address, CA file, the
#                                          unrelated CA file and its PLAIN and SCRAM-SHA-512
#                                          users, as KEY=VALUE lines (scripts/kafka/sasl.sh).
#   scripts/kafka.sh topic create NAME [PARTITIONS]   (idempotent: --if-not-exists)
#   scripts/kafka.sh topic delete NAME                (idempotent: --if-exists)
#   scripts/kafka.sh topic list
#   scripts/kafka.sh topic describe [NAME]
#   scripts/kafka.sh produce TOPIC         lines from stdin -> TOPIC (console producer,
#                                          idempotent, acks=all; "key<TAB>value" if
#                                          KAFKA_PRODUCE_KEYED=1)
#   scripts/kafka.sh consume TOPIC [N]     print N (default 10) messages from the beginning
#                                          (console consumer, 20 s timeout)
#   scripts/kafka.sh run CLASS [ARGS...]   run any Kafka tool class on the cached classpath
#
# Environment (defaults in brackets):
#   KAFKA_PORT            broker (PLAINTEXT) port [9092]
#   KAFKA_CONTROLLER_PORT KRaft controller port [KAFKA_PORT+1]
#   KAFKA_SASL_PORT       SASL_SSL listener port [KAFKA_PORT+2]
#   KAFKA_SASL            on|off: open the SASL_SSL listener [on]
#   KAFKA_DATA_DIR        data, config, logs, pid [${TMPDIR:-/tmp}/marketflow-kafka-$KAFKA_PORT]
#   KAFKA_HOME_CACHE      cached jars [$HOME/.cache/marketflow/kafka-<version>]
#   KAFKA_VERSION         override the version pinned in scripts/kafka/pom.xml
#   KAFKA_HEAP_OPTS       broker heap [-Xms256m -Xmx1g]
#   KAFKA_JVM_OPTS        extra broker JVM options []
#   KAFKA_GC_OPTS         the broker's collector [-XX:+UseG1GC -XX:MaxGCPauseMillis=20
#                         -XX:InitiatingHeapOccupancyPercent=35]; e.g. -XX:+UseZGC (tuning.md)
#   KAFKA_TOOLS_HEAP_OPTS heap for CLI tools [-Xmx256m]
#   KAFKA_EXTRA_PROPS     extra server.properties lines (newline separated), appended last
#   KAFKA_START_TIMEOUT   seconds to wait for the broker to answer [60]
#   KAFKA_STOP_TIMEOUT    seconds to wait after SIGTERM before SIGKILL [30]
#   JAVA, MVN             java / mvn executables [java, mvn]
#   KAFKA_MVN_OPTS        extra mvn arguments (e.g. -o for offline) []

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
SERVER_LOG4J="$SCRIPT_DIR/kafka/log4j2-server.properties"
SASL_SH="$SCRIPT_DIR/kafka/sasl.sh"
TOOLS_LOG4J="$SCRIPT_DIR/kafka/log4j2-tools.properties"

die() { printf 'kafka.sh: error: %s\n' "$*" >&2; exit 1; }
info() { printf 'kafka.sh: %s\n' "$*" >&2; }

[ -f "$KAFKA_POM" ] || die "missing $KAFKA_POM"

# The version is pinned in one place: <kafka.version> in scripts/kafka/pom.xml.
PINNED_VERSION="$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$KAFKA_POM" | head -n1)"
[ -n "$PINNED_VERSION" ] || die "could not read <kafka.version> from $KAFKA_POM"
KAFKA_VERSION="${KAFKA_VERSION:-$PINNED_VERSION}"

KAFKA_HOST=127.0.0.1   # deliberately not configurable: listen on loopback only
KAFKA_PORT="${KAFKA_PORT:-9092}"
case "$KAFKA_PORT" in ''|*[!0-9]*) die "KAFKA_PORT must be a number, got '$KAFKA_PORT'";; esac
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
case "$KAFKA_CONTROLLER_PORT" in ''|*[!0-9]*) die "KAFKA_CONTROLLER_PORT must be a number";; esac
[ "$KAFKA_CONTROLLER_PORT" != "$KAFKA_PORT" ] || die "KAFKA_CONTROLLER_PORT must differ from KAFKA_PORT"

KAFKA_HOME_CACHE="${KAFKA_HOME_CACHE:-${HOME:-/tmp}/.cache/marketflow/kafka-$KAFKA_VERSION}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-${TMPDIR:-/tmp}/marketflow-kafka-$KAFKA_PORT}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR%/}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_GC_OPTS="${KAFKA_GC_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35}"
KAFKA_TOOLS_HEAP_OPTS="${KAFKA_TOOLS_HEAP_OPTS:--Xmx256m}"
KAFKA_EXTRA_PROPS="${KAFKA_EXTRA_PROPS:-}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"
KAFKA_MVN_OPTS="${KAFKA_MVN_OPTS:-}"

BOOTSTRAP="$KAFKA_HOST:$KAFKA_PORT"
LIB_DIR="$KAFKA_HOME_CACHE/libs"
STAMP="$KAFKA_HOME_CACHE/.complete"
CONFIG="$KAFKA_DATA_DIR/server.properties"
LOG_DIRS="$KAFKA_DATA_DIR/kraft-logs"      # log.dirs (also holds the KRaft metadata log)
APP_LOG_DIR="$KAFKA_DATA_DIR/logs"         # server.log (log4j2) and kafka.out (JVM stdout/err)
PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
SERVER_LOG="$APP_LOG_DIR/server.log"
STDOUT_LOG="$APP_LOG_DIR/kafka.out"

# shellcheck source=kafka/sasl.sh
. "$SASL_SH"

# --------------------------------------------------------------------------- helpers

now_s() { date +%s; }

need_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (need Java 17+; set JAVA=/path/to/java)"
}

# Download the jars once into $KAFKA_HOME_CACHE/libs (atomic: tmp dir + rename + stamp).
ensure_dist() {
  if [ -f "$STAMP" ] && [ -f "$LIB_DIR/kafka_2.13-$KAFKA_VERSION.jar" ]; then
    return 0
  fi
  command -v "$MVN" >/dev/null 2>&1 || die "mvn not found (needed once to fetch Kafka $KAFKA_VERSION jars from Maven Central)"
  mkdir -p "$KAFKA_HOME_CACHE"
  local tmp="$KAFKA_HOME_CACHE/libs.tmp.$$" t0 mvn_log
  rm -rf "$tmp"
  mvn_log="$KAFKA_HOME_CACHE/fetch.log"
  t0=$(now_s)
  info "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_HOME_CACHE (first run only) ..."
  # shellcheck disable=SC2086
  if ! "$MVN" -B -q -Dstyle.color=never $KAFKA_MVN_OPTS -f "$KAFKA_POM" \
        -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
        >"$mvn_log" 2>&1; then
    tail -n 40 "$mvn_log" >&2 || true
    rm -rf "$tmp"
    die "mvn failed to fetch Kafka $KAFKA_VERSION (full output: $mvn_log)"
  fi
  [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || { rm -rf "$tmp"; die "mvn ran but kafka_2.13-$KAFKA_VERSION.jar is missing in $tmp"; }
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  echo "$KAFKA_VERSION" >"$STAMP"
  info "fetched $(find "$LIB_DIR" -name '*.jar' | wc -l) jars ($(du -sh "$LIB_DIR" | cut -f1)) in $(( $(now_s) - t0 ))s"
}

classpath() { printf '%s/*' "$LIB_DIR"; }

# Run a Kafka CLI tool class in a quick-starting JVM (quiet logging on stderr).
run_tool() {
  need_java
  ensure_dist
  local cls="$1"; shift
  # shellcheck disable=SC2086
  "$JAVA" $KAFKA_TOOLS_HEAP_OPTS -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$TOOLS_LOG4J" \
    -cp "$(classpath)" "$cls" "$@"
}

# Is PID a live Kafka server process for *this* data dir?
is_our_kafka() {
  local pid="$1" cmd
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  case "$cmd" in *kafka.Kafka*"$CONFIG"*) return 0;; esac
  return 1
}

# Print the PID of our broker, if running (pid file first, then a /proc scan for a
# process running kafka.Kafka with exactly our server.properties, e.g. if the pid
# file was lost).
find_pid() {
  local pid=""
  if [ -f "$PID_FILE" ]; then
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    if is_our_kafka "$pid"; then echo "$pid"; return 0; fi
  fi
  local d
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    if is_our_kafka "$pid"; then echo "$pid"; return 0; fi
  done
  return 1
}

# Real readiness probe: send a Kafka Metadata request (v8, no topics) over bash's
# /dev/tcp and require a well-formed response listing >= 1 live broker. A fenced
# or still-starting broker does not pass. No JVM needed, so it is cheap to poll.
probe() {
  local port="${1:-$KAFKA_PORT}" bytes
  # size=19 | api_key=3 (Metadata) | api_version=8 | correlation_id=1 | client_id="mf"
  # | topics=[] (int32 0) | allow_auto_topic_creation=0 | include_cluster_ops=0 | include_topic_ops=0
  # shellcheck disable=SC2016  # the snippet takes host/port as "$1" "$2" on purpose
  bytes="$(timeout 5 bash -c '
      exec 3<>"/dev/tcp/$1/$2" || exit 1
      printf "\x00\x00\x00\x13\x00\x03\x00\x08\x00\x00\x00\x01\x00\x02mf\x00\x00\x00\x00\x00\x00\x00" >&3
      head -c 16 <&3 | od -An -tu1 -v
    ' _ "$KAFKA_HOST" "$port" 2>/dev/null)" || return 1
  # response: size(4) correlation_id(4) throttle_time_ms(4) brokers_count(4)
  # shellcheck disable=SC2086  # word-split the byte list on purpose
  set -- $bytes
  [ "$#" -eq 16 ] || return 1
  [ "$5 $6 $7 $8" = "0 0 0 1" ] || return 1            # our correlation id
  local nbrokers=$(( (${13} << 24) | (${14} << 16) | (${15} << 8) | ${16} ))
  [ "$nbrokers" -ge 1 ] && [ "$nbrokers" -lt 1000 ]
}

# Is *anything* accepting TCP connections on 127.0.0.1:PORT?
port_open() {
  # shellcheck disable=SC2016
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$KAFKA_HOST" "$1" 2>/dev/null
}

show_log_tail() {
  local n="${1:-60}"
  if [ -s "$SERVER_LOG" ]; then
    echo "----- last $n lines of $SERVER_LOG -----" >&2
    tail -n "$n" "$SERVER_LOG" >&2 || true
  fi
  if [ -s "$STDOUT_LOG" ]; then
    echo "----- last 20 lines of $STDOUT_LOG (JVM stdout/stderr) -----" >&2
    tail -n 20 "$STDOUT_LOG" >&2 || true
  fi
}

write_config() {
  mkdir -p "$LOG_DIRS" "$APP_LOG_DIR"
  local tmp="$CONFIG.tmp.$$"
  cat >"$tmp" <<EOF
# Generated by scripts/kafka.sh on every start — edit the script (or use KAFKA_EXTRA_PROPS), not this file.
# Single-node KRaft (combined broker + controller) Kafka $KAFKA_VERSION, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT$(sasl_listener)
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT$(sasl_listener)
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT$(sasl_protocol_map)
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$LOG_DIRS

# Single node: every replication factor / ISR is 1.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Small internal topics: faster first consumer-group / transaction use and faster restarts.
offsets.topic.num.partitions=3
transaction.state.log.num.partitions=3

# Developer friendliness.
auto.create.topics.enable=true
num.partitions=3
delete.topic.enable=true
group.initial.rebalance.delay.ms=0

# Sized for a 2-core machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=2
background.threads=4

# Broker session: long, because a single node fences itself whenever its JVM stalls longer than
# the session (3-10 s stalls seen on this 2-vCPU VM, once 31 s), and after a brief fence
# librdkafka kept "leader not found in cache" and stopped delivering until its next metadata
# refresh. A clean stop deregisters, so a restart does not wait for the session (3 s measured).
# 30 s was not enough under the full suite on a VM up for hours (fenced three times in one run,
# 2026-11-27): with one node there is no other broker to fail over to, so a long session costs
# nothing.
# A broker killed without a clean stop stays registered for one session after the restart, and
# the new one keeps being refused until then: its registration timeout must outlast the session
# (at the default 60 s it gave up and exited).
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=120000
initial.broker.registration.timeout.ms=180000

# Keep the dev data dir bounded.
log.retention.hours=24
log.segment.bytes=134217728
$(sasl_config)
EOF
  if [ -n "$KAFKA_EXTRA_PROPS" ]; then
    printf '\n# KAFKA_EXTRA_PROPS\n%s\n' "$KAFKA_EXTRA_PROPS" >>"$tmp"
  fi
  chmod 600 "$tmp"   # it holds the SASL listener's passwords
  mv "$tmp" "$CONFIG"
}

format_storage_if_needed() {
  if [ -f "$LOG_DIRS/meta.properties" ]; then
    return 0
  fi
  # Kafka cluster id = 16 random bytes, URL-safe base64 without padding (22 chars),
  # not starting with '-' (the CLI would take it for an option).
  local cid=""
  while [ -z "$cid" ] || [ "${cid#-}" != "$cid" ]; do
    cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  info "formatting KRaft storage in $LOG_DIRS (cluster id $cid) ..."
  local out
  if ! out="$(run_tool kafka.tools.StorageTool format --cluster-id "$cid" --config "$CONFIG" --ignore-formatted 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "kafka-storage format failed"
  fi
}

acquire_lock() {
  # Serialize start/stop/reset on one data dir (e.g. parallel test runners).
  if command -v flock >/dev/null 2>&1; then
    mkdir -p "$KAFKA_DATA_DIR"
    exec 9>"$KAFKA_DATA_DIR/.lock"
    if ! flock -w "$((KAFKA_START_TIMEOUT + KAFKA_STOP_TIMEOUT + 120))" 9; then
      die "timed out waiting for the lock on $KAFKA_DATA_DIR/.lock"
    fi
  fi
}

# --------------------------------------------------------------------------- commands

# The broker's session timeout, as written by write_config (seconds, rounded up).
session_timeout_s() {
  local ms
  ms="$(sed -n 's/^broker\.session\.timeout\.ms=\([0-9]*\)$/\1/p' "$CONFIG" | tail -n1)"
  echo $(( (${ms:-120000} + 999) / 1000 ))
}

wait_ready() {
  local pid="$1" t0="$2" log_from="${3:-0}" deadline=$(( $(now_s) + KAFKA_START_TIMEOUT )) extended=""
  while :; do
    # A broker killed without a clean stop (SIGKILL, a machine snapshot, a lost container) stays
    # registered in the metadata log, and the restarted controller gives that registration a fresh
    # session: the new broker is refused (DUPLICATE_BROKER_REGISTRATION) until it expires. That is
    # a known, bounded wait, not a hang: allow it once, on top of the start timeout.
    if [ -z "$extended" ] && [ -f "$SERVER_LOG" ] \
        && tail -c "+$((log_from + 1))" "$SERVER_LOG" 2>/dev/null | grep -q DUPLICATE_BROKER_REGISTRATION; then
      extended=1
      deadline=$(( deadline + $(session_timeout_s) ))
      info "the previous broker on $KAFKA_DATA_DIR did not stop cleanly: its registration expires within $(session_timeout_s)s, waiting for it ('scripts/kafka.sh reset' starts afresh instead)"
    fi
    if probe; then
      info "Kafka $KAFKA_VERSION is up on $BOOTSTRAP (pid $pid, data $KAFKA_DATA_DIR, ready in $(( $(now_s) - t0 ))s)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      show_log_tail 60
      die "Kafka process $pid exited during startup (see logs above; full log: $SERVER_LOG)"
    fi
    if [ "$(now_s)" -ge "$deadline" ]; then
      show_log_tail 60
      die "Kafka did not answer on $BOOTSTRAP within ${KAFKA_START_TIMEOUT}s (pid $pid still running; 'scripts/kafka.sh stop' to kill it; full log: $SERVER_LOG)"
    fi
    sleep 0.5
  done
}

cmd_start() {
  need_java
  acquire_lock
  local pid t0
  t0=$(now_s)
  if pid="$(find_pid)"; then
    if probe; then
      info "already running (pid $pid) on $BOOTSTRAP (its heap and collector as started: KAFKA_HEAP_OPTS, KAFKA_GC_OPTS and KAFKA_JVM_OPTS apply at the next start)"
    else
      info "process $pid is running but not answering yet; waiting ..."
      wait_ready "$pid" "$t0"
    fi
    if [ "$KAFKA_SASL" = on ] && ! sasl_configured; then
      info "note: this broker was started without the SASL_SSL listener (by an older kafka.sh); 'scripts/kafka.sh restart' adds it"
    fi
    sasl_ensure_scram_user
    echo "$BOOTSTRAP"
    return 0
  fi
  rm -f "$PID_FILE"
  if port_open "$KAFKA_PORT"; then
    die "port $KAFKA_PORT on $KAFKA_HOST is already in use by another process (not our broker for $KAFKA_DATA_DIR); set KAFKA_PORT"
  fi
  if port_open "$KAFKA_CONTROLLER_PORT"; then
    die "controller port $KAFKA_CONTROLLER_PORT on $KAFKA_HOST is already in use; set KAFKA_CONTROLLER_PORT"
  fi
  if [ "$KAFKA_SASL" = on ] && port_open "$KAFKA_SASL_PORT"; then
    die "SASL_SSL port $KAFKA_SASL_PORT on $KAFKA_HOST is already in use; set KAFKA_SASL_PORT (or KAFKA_SASL=off)"
  fi

  ensure_dist
  sasl_prepare
  write_config
  format_storage_if_needed

  info "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (controller :$KAFKA_CONTROLLER_PORT, data $KAFKA_DATA_DIR) ..."
  : >"$STDOUT_LOG"
  local log_from=0
  [ -f "$SERVER_LOG" ] && log_from="$(wc -c <"$SERVER_LOG")"
  # setsid: own session, so Ctrl-C / the caller's process group does not kill it.
  # 9>&-: the broker must not inherit the lock fd (it would hold the lock forever).
  # The inner bash writes its own pid and then execs java, so the pid file is the JVM's.
  local detach=(setsid)
  command -v setsid >/dev/null 2>&1 || detach=(nohup)
  # shellcheck disable=SC2086,SC2016
  "${detach[@]}" bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_FILE" \
    "$JAVA" $KAFKA_HEAP_OPTS \
    -server $KAFKA_GC_OPTS \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dkafka.logs.dir="$APP_LOG_DIR" -Dlog4j2.configurationFile="$SERVER_LOG4J" \
    $KAFKA_JVM_OPTS \
    -cp "$(classpath)" kafka.Kafka "$CONFIG" \
    </dev/null >>"$STDOUT_LOG" 2>&1 9>&- &
  local launcher=$!
  # Wait (briefly) for the pid file written by the launcher.
  for _ in $(seq 1 50); do
    [ -s "$PID_FILE" ] && break
    sleep 0.1
  done
  pid="$(cat "$PID_FILE" 2>/dev/null || echo "$launcher")"
  wait_ready "$pid" "$t0" "$log_from"
  sasl_ensure_scram_user
  echo "$BOOTSTRAP"
}

cmd_stop() {
  # No data dir: nothing of ours can be running (the /proc scan below would still find a
  # broker whose data dir was deleted under it, so do not return early, just skip the lock).
  [ -d "$KAFKA_DATA_DIR" ] && acquire_lock
  local pid
  if ! pid="$(find_pid)"; then
    rm -f "$PID_FILE"
    info "not running ($BOOTSTRAP, data $KAFKA_DATA_DIR)"
    return 0
  fi
  local t0 deadline
  t0=$(now_s)
  deadline=$(( t0 + KAFKA_STOP_TIMEOUT ))
  info "stopping Kafka (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(now_s)" -ge "$deadline" ]; then
      info "still running after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      # A process blocked in the kernel (a flush to a busy disk) dies only when that call returns
      # and keeps its sockets until then: "stopped" only once it is gone (or a zombie).
      local killed_by=$(( $(now_s) + KAFKA_STOP_TIMEOUT ))
      while kill -0 "$pid" 2>/dev/null && [ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]; do
        [ "$(now_s)" -ge "$killed_by" ] && die "pid $pid still there ${KAFKA_STOP_TIMEOUT}s after SIGKILL"
        sleep 0.2
      done
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
  info "stopped in $(( $(now_s) - t0 ))s (data kept in $KAFKA_DATA_DIR)"
}

cmd_status() {
  local pid
  if pid="$(find_pid)"; then
    if probe; then
      info "running: pid $pid, Kafka $KAFKA_VERSION on $BOOTSTRAP, data $KAFKA_DATA_DIR"
      return 0
    fi
    info "process $pid is running but $BOOTSTRAP does not answer (starting up or stuck; see 'scripts/kafka.sh logs')"
    return 1
  fi
  if probe; then
    info "a Kafka broker answers on $BOOTSTRAP but it is not the one for $KAFKA_DATA_DIR"
    return 1
  fi
  info "not running ($BOOTSTRAP, data $KAFKA_DATA_DIR)"
  return 1
}

cmd_reset() {
  cmd_stop
  case "$KAFKA_DATA_DIR" in
    ''|/|/tmp|/var/tmp|"${HOME:-/}"|"${TMPDIR:-/tmp}") die "refusing to wipe KAFKA_DATA_DIR='$KAFKA_DATA_DIR'";;
  esac
  if [ -d "$KAFKA_DATA_DIR" ]; then
    # Only wipe a directory that looks like ours.
    local f
    for f in "$KAFKA_DATA_DIR"/* "$KAFKA_DATA_DIR"/.[!.]*; do
      [ -e "$f" ] || continue
      case "${f##*/}" in
        server.properties|server.properties.tmp.*|kraft-logs|logs|kafka.pid|.lock|sasl|sasl.tmp.*) ;;
        *) die "refusing to wipe $KAFKA_DATA_DIR: unexpected entry '${f##*/}'";;
      esac
    done
    rm -rf "$KAFKA_DATA_DIR"
    info "wiped $KAFKA_DATA_DIR"
  else
    info "nothing to wipe ($KAFKA_DATA_DIR does not exist)"
  fi
}

cmd_logs() {
  local follow="" n=100 a
  for a in "$@"; do
    case "$a" in
      -f|--follow) follow=1;;
      *[!0-9]*|'') die "usage: kafka.sh logs [-f] [LINES]";;
      *) n="$a";;
    esac
  done
  [ -f "$SERVER_LOG" ] || die "no server log yet at $SERVER_LOG"
  if [ -n "$follow" ]; then
    exec tail -n "$n" -F "$SERVER_LOG"
  fi
  tail -n "$n" "$SERVER_LOG"
}

require_up() {
  probe || die "Kafka is not running on $BOOTSTRAP (run 'scripts/kafka.sh start')"
}

cmd_topic() {
  local sub="${1:-}"; shift || true
  case "$sub" in
    create)
      { [ $# -ge 1 ] && [ $# -le 2 ]; } || die "usage: kafka.sh topic create NAME [PARTITIONS]"
      local parts="${2:-3}"
      case "$parts" in ''|*[!0-9]*) die "PARTITIONS must be a number";; esac
      require_up
      run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
        --create --if-not-exists --topic "$1" --partitions "$parts" --replication-factor 1
      ;;
    delete)
      [ $# -eq 1 ] || die "usage: kafka.sh topic delete NAME"
      require_up
      run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
        --delete --if-exists --topic "$1"
      ;;
    list)
      require_up
      run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list
      ;;
    describe)
      require_up
      if [ $# -ge 1 ]; then
        run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --describe --topic "$1"
      else
        run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --describe
      fi
      ;;
    *) die "usage: kafka.sh topic {create NAME [PARTITIONS]|delete NAME|list|describe [NAME]}";;
  esac
}

cmd_produce() {
  [ $# -eq 1 ] || die "usage: kafka.sh produce TOPIC   (messages = stdin lines)"
  require_up
  local keyed=()
  if [ "${KAFKA_PRODUCE_KEYED:-0}" = 1 ]; then
    keyed=(--property parse.key=true --property "key.separator=	")
  fi
  run_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BOOTSTRAP" --topic "$1" \
    --producer-property enable.idempotence=true --producer-property acks=all "${keyed[@]}"
}

cmd_consume() {
  { [ $# -ge 1 ] && [ $# -le 2 ]; } || die "usage: kafka.sh consume TOPIC [N]"
  require_up
  run_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" \
    --topic "$1" --from-beginning --max-messages "${2:-10}" --timeout-ms 20000 \
    --property print.key=true --property print.partition=true --property print.offset=true
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
}

main() {
  local cmd="${1:-}"; shift || true
  case "$cmd" in
    start)     cmd_start ;;
    stop)      cmd_stop ;;
    restart)   cmd_stop; cmd_start ;;
    status)    cmd_status ;;
    reset)     cmd_reset ;;
    logs)      cmd_logs "$@" ;;
    fetch)     need_java; ensure_dist; info "jars cached in $LIB_DIR" ;;
    bootstrap) echo "$BOOTSTRAP" ;;
    sasl)      cmd_sasl ;;
    topic)     cmd_topic "$@" ;;
    produce)   cmd_produce "$@" ;;
    consume)   cmd_consume "$@" ;;
    run)       [ $# -ge 1 ] || die "usage: kafka.sh run CLASS [ARGS...]"; run_tool "$@" ;;
    -h|--help|help) usage ;;
    '') usage; exit 2 ;;
    *) die "unknown command '$cmd' (see: scripts/kafka.sh --help)" ;;
  esac
}

main "$@"
