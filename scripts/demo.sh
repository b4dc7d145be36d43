#!/usr/bin/env bash
# Runs the whole thing locally and shows records arriving: the real local Kafka, the Binance
# simulator (Binance itself is often out of reach), and the ingester between them.
#
#   scripts/demo.sh                 # 20 s of trades for btcusdt,ethusdt,solusdt
#   DEMO_SECONDS=60 STREAMS=trade,aggTrade,kline_1m,bookTicker,depth@100ms scripts/demo.sh
#
# To ingest live Binance instead, with nothing else installed (records as JSON lines on stdout):
#   cargo run --release -- --sink stdout
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_TO_RUN="${DEMO_SECONDS:-20}"
RATE="${DEMO_RATE:-300}"
TOPIC="${KAFKA_TOPIC:-ohlcv_raw}"
SIM_PORT="${SIM_PORT:-19443}"
export PROM_PORT="${PROM_PORT:-8000}"

echo "==> building (release): the ingester and the simulator"
cargo build --release --locked -p marketflow-ingestor -p binance-sim

echo "==> starting local Kafka"
BOOTSTRAP="$(bash scripts/kafka.sh start)"

echo "==> starting the Binance simulator on 127.0.0.1:$SIM_PORT ($RATE trades/s)"
target/release/binance-sim --listen "127.0.0.1:$SIM_PORT" --rate "$RATE" --aux-rate 5 >/dev/null 2>/tmp/marketflow-demo-sim.log &
SIM_PID=$!
INGESTOR_PID=""
cleanup() {
  [[ -n "$INGESTOR_PID" ]] && kill -TERM "$INGESTOR_PID" 2>/dev/null && wait "$INGESTOR_PID" 2>/dev/null || true
  kill "$SIM_PID" 2>/dev/null || true
}
trap cleanup EXIT
sleep 0.5

echo "==> starting the ingester -> Kafka topic $TOPIC (metrics on http://127.0.0.1:$PROM_PORT/metrics)"
BINANCE_WS_URL="ws://127.0.0.1:$SIM_PORT" KAFKA_BROKER="$BOOTSTRAP" KAFKA_TOPIC="$TOPIC" \
  target/release/marketflow-ingestor 2>/tmp/marketflow-demo-ingestor.log &
INGESTOR_PID=$!

for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PROM_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
echo "==> ready: $(curl -s "http://127.0.0.1:$PROM_PORT/readyz")"
echo "==> running for ${SECONDS_TO_RUN}s; the first records in Kafka:"
sleep 2
bash scripts/kafka.sh consume "$TOPIC" 5 2>/dev/null || true
sleep "$SECONDS_TO_RUN"

echo "==> metrics"
curl -s "http://127.0.0.1:$PROM_PORT/metrics" \
  | grep -E '^marketflow_ingestor_(messages_sent_total|ws_reconnects_total|gaps_total|latency_quantile_seconds\{quantile="0.99")' || true

echo "==> stopping the ingester (SIGTERM: drain and flush)"
kill -TERM "$INGESTOR_PID"
wait "$INGESTOR_PID" && echo "ingester exited cleanly"
INGESTOR_PID=""
tail -n 1 /tmp/marketflow-demo-ingestor.log
