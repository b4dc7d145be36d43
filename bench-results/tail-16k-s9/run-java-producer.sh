#!/usr/bin/env bash
# An independent client (Kafka's own ProducerPerformance) at 16k/s on the same broker: does it see the same tail?
set -u
LIB=$HOME/.cache/marketflow/kafka-4.1.2/libs
OUT=/tmp/javaperf; mkdir -p $OUT
for r in 1 2; do for l in 0 5; do
  echo "== linger.ms=$l round $r $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/out.txt
  java -Xmx512m -cp "$LIB/*" -Dlog4j2.configurationFile=/dev/null org.apache.kafka.tools.ProducerPerformance \
    --topic perf-16k --num-records 480000 --record-size 200 --throughput 16000 \
    --producer-props bootstrap.servers=127.0.0.1:9092 acks=all enable.idempotence=true linger.ms=$l 2>/dev/null | tail -1 >> $OUT/out.txt
done; done
echo done >> $OUT/out.txt
