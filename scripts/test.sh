#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing, starts the real
# local Kafka, then lint, unit, integration and end-to-end tests, every benchmark once in test
# mode (so they never rot), and the Kubernetes packaging tests.
#
#   scripts/test.sh            # everything
#   QUICK=1 scripts/test.sh    # skip the bench gate, the chart and the observability tests
#
# Leaves Kafka as it found it: stopped if this script started it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T0=$SECONDS
step() { printf '\n==> %s\n' "$*"; }

step "system packages"
# librdkafka is built from source (rdkafka-sys, its own configure + make): a C/C++ toolchain,
# pkg-config, OpenSSL and zlib headers. Kafka needs a JDK 17 and Maven to fetch it.
missing=()
for p in build-essential pkg-config libssl-dev zlib1g-dev curl; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

step "rust toolchain"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup)"; exit 1; }
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
cargo --version

step "local Kafka"
kafka_was_up=0
bash scripts/kafka.sh status >/dev/null 2>&1 && kafka_was_up=1
bash scripts/kafka.sh start
if [[ $kafka_was_up == 0 ]]; then
  trap 'bash scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT
fi

step "format and lint"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings

step "unit, integration and end-to-end tests (benchmarks run once each, in test mode)"
# --workspace: the tools' crates too (tools/loadgen's unit tests); the root package alone is the default.
cargo test --locked --workspace --all-targets

if [[ "${QUICK:-0}" != 1 ]]; then
  step "release binary, built exactly as the Dockerfile builds it"
  build_cmd="$(sed -n 's/^# BUILD-CMD: //p' Dockerfile)"
  [[ "$build_cmd" == "cargo build --release --locked --bin marketflow-ingestor" ]] || { echo "Dockerfile BUILD-CMD changed: $build_cmd"; exit 1; }
  $build_cmd
  target/release/marketflow-ingestor --version

  step "benchmark regression gate, short run (same-run ratios vs benches/baseline-ratios.json)"
  bash scripts/bench-gate.sh --quick

  step "Kubernetes packaging (Helm chart, alerts, dashboard, Dockerfile)"
  bash scripts/test-chart.sh
  step "observability (simulator -> ingester -> Prometheus: scrape, dashboard queries, alerts)"
  bash scripts/test-observability.sh
fi

printf '\nall tests passed in %ss\n' "$((SECONDS - T0))"
