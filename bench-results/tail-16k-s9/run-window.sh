#!/usr/bin/env bash
# 16k/s even: batching window vs append tail and the broker's CPU (issue 14). Warmed G1 broker (defaults).
set -u
cd "$(git rev-parse --show-toplevel)"
OUT=/tmp/winexp2; mkdir -p $OUT
bash scripts/kafka.sh start >/dev/null 2>&1
bpid=$(cat /tmp/marketflow-kafka-9092/kafka.pid)
bcpu() { awk '{print $14+$15}' /proc/$bpid/stat; }
target/release/loadgen --sink kafka --rate 16000 --arrival even --tls --streams aggTrade --secs 40 --warmup 3 --name warm --out $OUT >/dev/null 2>&1
for r in 1 2 3; do for w in 500 2000 5000; do
  c0=$(bcpu); t0=$(date +%s.%N)
  target/release/loadgen --sink kafka --rate 16000 --arrival even --tls --streams aggTrade --secs 15 --warmup 3 \
    --name w$w-r$r --out $OUT --env KAFKA_BATCH_WINDOW_US=$w >/dev/null 2>&1
  c1=$(bcpu); t1=$(date +%s.%N)
  echo "w$w-r$r broker_cpu_pct $(python3 -c "print(round(($c1-$c0)/100/($t1-$t0)*100,1))")" >> $OUT/broker.txt
done; done
echo done >> $OUT/broker.txt
