#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing, starts the real
# local Kafka, then lint, unit, integration and end-to-end tests, every benchmark once in test
# mode (so they never rot), and the Kubernetes packaging tests. (`cargo test` alone is the fast
# inner loop: the ingester's own tests, without Kafka, Java or the end-to-end tests.)
#
#   scripts/test.sh            # everything
#   QUICK=1 scripts/test.sh    # local only: skip the bench gate, the chart and the observability tests
#
# Under CI=true (.ci/run) a tool that cannot be installed fails the run and QUICK=1 is refused.
# Leaves Kafka as it found it: stopped if this script started it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T0=$SECONDS
# Each step names the free space where the build writes: a full disk shows as a cryptic linker or
# archive error, and this line says which step used it up.
disk_free() { df -P -BM "$ROOT" 2>/dev/null | awk 'NR == 2 { printf "%.1f GiB free", $4 / 1024 }'; }
step() { printf '\n==> %s  [%s]\n' "$*" "$(disk_free)"; }
die() { printf 'test.sh: %s\nRESULT: FAIL\n' "$*" >&2; exit 1; }

if [[ "${CI:-}" == true && "${QUICK:-0}" == 1 ]]; then
  die "QUICK=1 is a local opt-out; CI (CI=true) runs every test"
fi

if [[ "${CI:-}" == true ]]; then
  # A CI machine builds everything once from nothing, so it keeps no incremental state (1.6 GB never
  # reused) and only line tables as debug info (file:line stay in panics and backtraces): the dev
  # target/ shrinks by more than half. Stop 20's CI run filled its machine's disk at the release build
  # with 8.6 GB of target/. The e2e harness's own `cargo build` inherits both settings.
  export CARGO_INCREMENTAL=0
  export CARGO_PROFILE_DEV_DEBUG=line-tables-only
fi

step "system packages"
# librdkafka is built from source (rdkafka-sys, its own configure + make): a C/C++ toolchain,
# pkg-config, OpenSSL and zlib headers. Kafka needs a JDK 17 and Maven to fetch it.
# python3 runs the bench gate and the chart and observability checks.
missing=()
for p in build-essential pkg-config libssl-dev zlib1g-dev curl; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
command -v python3 >/dev/null || missing+=(python3 python3-venv)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
    die "missing ${missing[*]} and cannot install them here (needs root and apt-get)"
  fi
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } ||
    die "could not install ${missing[*]}"
fi
for c in java mvn python3 curl; do
  command -v "$c" >/dev/null || die "$c is still missing after the installs"
done

step "rust toolchain"
command -v cargo >/dev/null || die "cargo not found: install Rust (rustup)"
if command -v rustup >/dev/null; then
  # rust-toolchain.toml pins the release; rustup does not install it by itself when auto-install is
  # off (RUSTUP_AUTO_INSTALL=0). A machine that reaches only package registries cannot download it,
  # but its `stable` may be that very release: then use it (RUSTUP_TOOLCHAIN outranks the file).
  want="$(sed -n 's/^channel *= *"\(.*\)"$/\1/p' rust-toolchain.toml)"
  if rustup run "$want" rustc --version >/dev/null 2>&1; then
    :
  elif [[ "$(rustup run stable rustc --version 2>/dev/null | cut -d' ' -f2)" == "$want" ]]; then
    echo "rust $want is installed as stable: using it"
    export RUSTUP_TOOLCHAIN=stable
  else
    rustup toolchain install "$want" --profile minimal --component rustfmt --component clippy
  fi
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
fi
cargo --version
[[ -z "${want:-}" || "$(rustc --version | cut -d' ' -f2)" == "$want" ]] || { echo "rustc is not $want (rust-toolchain.toml)"; exit 1; }

step "local Kafka"
kafka_was_up=0
bash scripts/kafka.sh status >/dev/null 2>&1 && kafka_was_up=1
if [[ $kafka_was_up == 0 && "${CI:-}" == true ]]; then
  # CI starts from an empty broker: a data directory left by a broker that was killed would make
  # the new one wait out the old registration (up to the 120 s session), and old topics only add load.
  bash scripts/kafka.sh reset
fi
bash scripts/kafka.sh start
if [[ $kafka_was_up == 0 ]]; then
  trap 'bash scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT
fi

step "format and lint"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings

step "API docs (rustdoc warnings are errors: broken or private intra-doc links, stray HTML)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --workspace

step "dependency policy (cargo-deny: licenses, duplicate versions, sources; advisories: see deny.toml)"
# Pinned, so that deny.toml's schema and verdicts do not move under us; built from crates.io once and
# kept in ~/.cargo/bin. A failed install fails the run: the policy is never skipped silently.
deny_version=0.20.2
if [[ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $deny_version" ]]; then
  echo "installing cargo-deny $deny_version from crates.io (a few minutes, once)"
  cargo install --locked "cargo-deny@$deny_version" || { echo "cannot install cargo-deny $deny_version"; exit 1; }
fi
cargo deny --locked check licenses bans sources

step "generated code (crates/binance-sbe/spot_stream: regenerated by the official SBE tool, compared)"
bash scripts/sbe-codegen.sh --check

step "unit and integration tests (benchmarks run once each, in test mode)"
# --workspace: the other crates too (the simulator's and tools/loadgen's unit tests); the root
# package alone is the default. The end-to-end tests come next, on their own.
cargo test --locked --workspace --all-targets --exclude e2e

step "end-to-end tests (tests/e2e: the ingester binary against the simulator and the local Kafka)"
# Their harness builds the binary with this same command on first use; built here first, its
# compiler output shows in the log instead of inside a test.
cargo build --locked -p marketflow-ingestor --bin marketflow-ingestor
cargo test --locked -p e2e
# Run alone, one after the other: the broker-outage and broker-stall tests start a broker of their
# own (its JVM stalls the others'), the SBE equivalence runs four ingesters. The equivalence goes
# first, on the shared broker before two more JVMs churn the machine: run after them (in name
# order, one cargo call), it once read no SBE depth record in 90 s while its consumer saw the
# shared broker drop its clients (AllBrokersDown).
cargo test --locked -p e2e -- --ignored --test-threads=1 sbe::json_and_sbe
cargo test --locked -p e2e -- --ignored --test-threads=1 kafka_outage kafka_stall

if [[ "${QUICK:-0}" == 1 ]]; then
  step "QUICK=1: bench gate, release build, chart and observability tests NOT run (local opt-out)"
else
  if [[ "${CI:-}" == true ]]; then
    # Nothing below builds in the dev profile: the observability test takes the two debug binaries
    # kept here, and the rest of target/debug goes before the release build needs its room.
    keep="$ROOT/target/ci-debug-bin"
    mkdir -p "$keep"
    if cp target/debug/marketflow-ingestor target/debug/binance-sim "$keep/"; then
      export BIN_DIR="$keep"
    else
      echo "CI: the debug binaries were not kept: the observability test builds release ones"
    fi
    rm -rf target/debug
    echo "CI: target/debug removed before the release build ($(disk_free))"
  fi
  step "release binary, built exactly as the Dockerfile builds it"
  build_cmd="$(sed -n 's/^# BUILD-CMD: //p' Dockerfile)"
  [[ "$build_cmd" == "cargo build --release --locked --bin marketflow-ingestor" ]] || { echo "Dockerfile BUILD-CMD changed: $build_cmd"; exit 1; }
  $build_cmd
  target/release/marketflow-ingestor --version

  step "benchmark regression gate, short run (same-run ratios vs benches/baseline-ratios.json)"
  bash scripts/bench-gate.sh --quick
  step "hot-path cost gate: instructions per trade frame under callgrind vs benches/baseline-instructions.json"
  (source scripts/tools.sh && install_valgrind)
  python3 scripts/bench_instructions.py check

  step "Kubernetes packaging (Helm chart, alerts, dashboard, Dockerfile)"
  bash scripts/test-chart.sh
  step "observability (simulator -> ingester -> Prometheus: scrape, dashboard queries, alerts)"
  bash scripts/test-observability.sh
fi

printf '\nall tests passed in %ss\n' "$((SECONDS - T0))"
