#!/usr/bin/env bash
# A canary client (Kafka's ProducerPerformance, 1k/s, its own topic) beside our 16k/s runs on the same broker.
set -u
cd "$(git rev-parse --show-toplevel)"
OUT=/tmp/canary; rm -rf $OUT; mkdir -p $OUT
LIB=$HOME/.cache/marketflow/kafka-4.1.2/libs
java -Xmx256m -cp "$LIB/*" -Dlog4j2.configurationFile=/dev/null org.apache.kafka.tools.ProducerPerformance --topic canary --num-records 150000 --record-size 200 --throughput 1000 --producer-props bootstrap.servers=127.0.0.1:9092 acks=all enable.idempotence=true linger.ms=0 2>/dev/null | while read l; do echo "$(date -u +%T.%N | cut -c1-12) $l"; done > $OUT/canary.txt &
sleep 20
for r in 1 2 3 4; do
  echo "run r$r start $(date -u +%T.%N | cut -c1-12)" >> $OUT/runs.txt
  target/release/loadgen --sink kafka --rate 16000 --arrival even --tls --streams aggTrade --secs 15 --warmup 3 --name r$r --out $OUT >/dev/null 2>&1
  echo "run r$r end $(date -u +%T.%N | cut -c1-12)" >> $OUT/runs.txt
  sleep 5
done
wait
echo done >> $OUT/runs.txt
