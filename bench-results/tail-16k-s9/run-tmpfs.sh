#!/usr/bin/env bash
set -u
cd "$(git rev-parse --show-toplevel)"
OUT=/tmp/shmexp; mkdir -p $OUT
bash scripts/kafka.sh stop >/dev/null 2>&1
rm -rf /dev/shm/kexp
KAFKA_DATA_DIR=/dev/shm/kexp bash scripts/kafka.sh start >/dev/null 2>&1 || echo start-failed
bpid=$(cat /dev/shm/kexp/kafka.pid)
bcpu() { awk '{print $14+$15}' /proc/$bpid/stat; }
target/release/loadgen --sink kafka --rate 16000 --arrival even --tls --streams aggTrade --secs 40 --warmup 3 --name warm --out $OUT >/dev/null 2>&1
for r in 1 2 3; do for w in 500 5000; do
  c0=$(bcpu); t0=$(date +%s.%N)
  target/release/loadgen --sink kafka --rate 16000 --arrival even --tls --streams aggTrade --secs 15 --warmup 3 \
    --name w$w-r$r --out $OUT --env KAFKA_BATCH_WINDOW_US=$w >/dev/null 2>&1
  c1=$(bcpu); t1=$(date +%s.%N)
  echo "w$w-r$r broker_cpu_pct $(python3 -c "print(round(($c1-$c0)/100/($t1-$t0)*100,1))")" >> $OUT/broker.txt
done; done
KAFKA_DATA_DIR=/dev/shm/kexp bash scripts/kafka.sh stop >/dev/null 2>&1
echo done >> $OUT/broker.txt
