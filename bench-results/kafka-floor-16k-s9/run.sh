#!/usr/bin/env bash
# librdkafka's floor at 16k/s smooth: the bare producer loop, 2 rounds x 7 (window, linger) settings.
set -u
cd "$(git rev-parse --show-toplevel)"
cargo build --release -p loadgen --bin kafka_floor
bash scripts/kafka.sh start >/dev/null
for r in 1 2; do for wl in 0:0.05 500:0.05 1000:0.05 500:2 1000:2 5000:5 20000:5; do
  w=${wl%%:*}; l=${wl##*:}
  echo "r$r $(target/release/kafka_floor --rate 16000 --window-us $w --linger-ms $l --secs 8 --warmup 3 2>&1 | tail -2 | tr '\n' ' ')"
done; done
