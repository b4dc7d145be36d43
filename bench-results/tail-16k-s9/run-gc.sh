#!/usr/bin/env bash
# Broker collector A/B at 16k/s even (issue 14 p99). Sequential blocks, fresh broker each.
set -u
# Its own broker on 19092 (the shared one on 9092 stays up); the runs in summary.md used 9092
# with the shared broker stopped.
export KAFKA_PORT=19092
cd "$(git rev-parse --show-toplevel)"
OUT=/tmp/gcexp; mkdir -p $OUT
run_block() { # name heap gcopts
  local name=$1 heap=$2 gc=$3
  KAFKA_DATA_DIR=/tmp/kexp-data bash scripts/kafka.sh stop >/dev/null 2>&1
  rm -rf /tmp/kexp-data
  KAFKA_DATA_DIR=/tmp/kexp-data KAFKA_HEAP_OPTS="$heap" KAFKA_GC_OPTS="$gc" \
    KAFKA_JVM_OPTS="-Xlog:gc*:file=$OUT/$name-gc.log:time,uptime,level" bash scripts/kafka.sh start >/dev/null 2>&1 || { echo "start failed: $name" >&2; exit 1; }
  target/release/loadgen --sink kafka --kafka-broker 127.0.0.1:19092 --rate 16000 --arrival even --tls --streams aggTrade --secs 30 --warmup 3 --name $name-warm --out $OUT >/dev/null 2>&1
  for r in 1 2 3; do
    target/release/loadgen --sink kafka --kafka-broker 127.0.0.1:19092 --rate 16000 --arrival even --tls --streams aggTrade --secs 15 --warmup 3 --name $name-r$r --out $OUT >/dev/null 2>&1
    python3 - "$OUT/$name-r$r/summary.json" <<'PY'
import json,sys
d=json.load(open(sys.argv[1])); l=d['latency_us']
e=d.get('e2e_ms') or {}
ea=l.get('enqueue_to_ack',{})
print(sys.argv[1].split('/')[-2], 'cpu_us/msg %.1f'%(d['cpu_ns_per_msg']/1000), 'e2e', {k:e.get(k) for k in ('p50','p99','p999','max')}, 'enq->ack p99 %.1f ms'%(ea.get('p99',0)/1000), 'load', d['loadavg'])
PY
  done
  KAFKA_DATA_DIR=/tmp/kexp-data bash scripts/kafka.sh stop >/dev/null 2>&1
}
run_block g1def "-Xms256m -Xmx1g" "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35"
run_block zgc "-Xms1g -Xmx1g -XX:+AlwaysPreTouch" "-XX:+UseZGC"
run_block g1fix "-Xms1g -Xmx1g -XX:+AlwaysPreTouch" "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35"
run_block g1def2 "-Xms256m -Xmx1g" "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35"
echo done
