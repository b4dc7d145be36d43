#!/usr/bin/env bash
# 16k/s even: the ingester on two cores (default) vs confined to one (issue 14, wake-up cost). Alternated.
set -u
cd "$(git rev-parse --show-toplevel)"
OUT=/tmp/pinexp2; mkdir -p $OUT
printf '#!/bin/sh\nexec taskset -c 1 %s/target/release/marketflow-ingestor "$@"\n' "$PWD" > /tmp/ing-cpu1.sh; chmod +x /tmp/ing-cpu1.sh
bash scripts/kafka.sh start >/dev/null 2>&1
LEAN="--env LOOP_COALESCE_US=500 --env KAFKA_BATCH_WINDOW_US=1000 --env KAFKA_PROPS=linger.ms=2"
for r in 1 2; do for s in def lean; do
  opts=""; [ $s = lean ] && opts="$LEAN"
  target/release/loadgen --sink kafka --rate 16000 --arrival even --tls --streams aggTrade --secs 15 --warmup 3 \
    --name two-$s-r$r --out $OUT $opts >/dev/null 2>&1
  target/release/loadgen --sink kafka --rate 16000 --arrival even --tls --streams aggTrade --secs 15 --warmup 3 \
    --name one-$s-r$r --out $OUT $opts --ingester /tmp/ing-cpu1.sh --env PIN_CORE=1 --env PRODUCER_CORE=none >/dev/null 2>&1
done; done
echo done > $OUT/done
