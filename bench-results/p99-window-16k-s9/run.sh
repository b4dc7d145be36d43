#!/usr/bin/env bash
# 16k/s even: the defaults, a 5 ms window, and a 5 ms window with the CPU settings; 3 rounds alternated.
set -u
cd "$(git rev-parse --show-toplevel)"
OUT=/tmp/presets; mkdir -p $OUT
bash scripts/kafka.sh start >/dev/null 2>&1
for r in 1 2 3; do
  target/release/loadgen --sink kafka --rate 16000 --arrival even --tls --streams aggTrade --secs 15 --warmup 3 --name def-r$r --out $OUT >/dev/null 2>&1
  target/release/loadgen --sink kafka --rate 16000 --arrival even --tls --streams aggTrade --secs 15 --warmup 3 --name w5ms-r$r --out $OUT --env KAFKA_BATCH_WINDOW_US=5000 >/dev/null 2>&1
  target/release/loadgen --sink kafka --rate 16000 --arrival even --tls --streams aggTrade --secs 15 --warmup 3 --name w5ms-lean-r$r --out $OUT --env KAFKA_BATCH_WINDOW_US=5000 --env LOOP_COALESCE_US=500 --env KAFKA_PROPS=linger.ms=5 >/dev/null 2>&1
done
echo done > $OUT/done
