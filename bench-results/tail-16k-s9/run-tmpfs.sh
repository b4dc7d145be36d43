#!/usr/bin/env bash
set -u
# Its own broker on 19092 (the shared one on 9092 stays up); the runs in summary.md used 9092
# with the shared broker stopped.
export KAFKA_PORT=19092
cd "$(git rev-parse --show-toplevel)"
OUT=/tmp/shmexp; mkdir -p $OUT
rm -rf /dev/shm/kexp
KAFKA_DATA_DIR=/dev/shm/kexp bash scripts/kafka.sh start >/dev/null 2>&1 || { echo "start failed" >&2; exit 1; }
bpid=$(cat /dev/shm/kexp/kafka.pid)
bcpu() { awk '{print $14+$15}' /proc/$bpid/stat; }
target/release/loadgen --sink kafka --kafka-broker 127.0.0.1:19092 --rate 16000 --arrival even --tls --streams aggTrade --secs 40 --warmup 3 --name warm --out $OUT >/dev/null 2>&1
for r in 1 2 3; do for w in 500 5000; do
  c0=$(bcpu); t0=$(date +%s.%N)
  target/release/loadgen --sink kafka --kafka-broker 127.0.0.1:19092 --rate 16000 --arrival even --tls --streams aggTrade --secs 15 --warmup 3 \
    --name w$w-r$r --out $OUT --env KAFKA_BATCH_WINDOW_US=$w >/dev/null 2>&1
  c1=$(bcpu); t1=$(date +%s.%N)
  echo "w$w-r$r broker_cpu_pct $(python3 -c "print(round(($c1-$c0)/100/($t1-$t0)*100,1))")" >> $OUT/broker.txt
done; done
KAFKA_DATA_DIR=/dev/shm/kexp bash scripts/kafka.sh stop >/dev/null 2>&1
echo done >> $OUT/broker.txt
