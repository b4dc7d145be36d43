#!/usr/bin/env bash
# Fuzzes the frame parser, the record parser and encoder, the WebSocket decoder in front of them,
# and the SBE decoder with the binary path behind it (TRANSPORT=sbe) (harness and oracles:
# tests/fuzzing/, SBE in tests/fuzzing/sbe.rs; findings: tests/fuzz_regressions.rs).
#
#   scripts/fuzz.sh [INPUTS] [SEED]
#       The stable-toolchain campaign, release build: INPUTS mutated inputs (default 10000000),
#       each through every target, reproducible from SEED (default 1). Prints inputs/s, what
#       each target accepted and rejected, and the panics (exit status 1 if any).
#   scripts/fuzz.sh --libfuzzer [RUNS] [TARGET...]
#       Coverage-guided runs of the cargo-fuzz targets in fuzz/ (frame, payload, websocket, sbe:
#       the SBE decoder with the ingester's binary path behind it) and
#       of the SBE decoder's in crates/binance-sbe/fuzz (sbe_decode); default all, RUNS
#       executions each, default 10000000. Needs a nightly toolchain and `cargo install
#       cargo-fuzz`. Seeded with the stable fuzzer's seeds (SBE: valid frames of every message
#       from the generated encoder, fuzz/corpus/sbe_decode/).
#
# Environment: FUZZ_MAX_DEPTH (nesting limit for parser inputs, default 0 = none: the parser
# refuses deep frames itself since the fix for the sonic-rs stack overflow; it used to keep the
# known sonic-rs stack overflow from ending the run), FUZZ_RAW_NON_UTF8 (0/1), CARGO_TARGET_DIR.
# Crash inputs go to fuzz/crashes/ (replay: see the .txt next to each) or, for libFuzzer,
# fuzz/artifacts/<target>/ (replay: cargo +nightly fuzz run <target> <file>).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ "${1:-}" == "--libfuzzer" ]]; then
  shift
  runs="${1:-10000000}"
  [[ $# -gt 0 ]] && shift
  targets=("$@")
  [[ ${#targets[@]} -gt 0 ]] || targets=(frame payload websocket sbe sbe_decode)
  command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 1; }
  rustup toolchain list 2>/dev/null | grep -q '^nightly' ||
    { echo "cargo fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2; exit 1; }
  target_dir=()
  [[ -n "${CARGO_TARGET_DIR:-}" ]] && target_dir=(--target-dir "$CARGO_TARGET_DIR/libfuzzer")
  echo "==> seed corpus (fuzz/corpus/)"
  FUZZ_CORPUS_DIR="$ROOT/fuzz/corpus" cargo test --test fuzz export_corpus -- --ignored --exact --nocapture |
    grep 'seed files'
  for t in "${targets[@]}"; do
    if [[ $t == sbe_decode ]]; then
      # Its own workspace beside the codec crate: it builds the codec alone.
      echo "==> cargo fuzz run decode (crates/binance-sbe/fuzz): $runs runs"
      (cd crates/binance-sbe/fuzz && cargo +nightly fuzz run "${target_dir[@]}" decode "$ROOT/fuzz/corpus/sbe_decode" -- \
        -runs="$runs" -max_len=4096 -print_final_stats=1)
      continue
    fi
    dict=()
    [[ $t == websocket || $t == sbe ]] || dict=(-dict=json.dict)
    echo "==> cargo fuzz run $t: $runs runs"
    (cd fuzz && cargo +nightly fuzz run "${target_dir[@]}" "$t" "corpus/$t" -- \
      -runs="$runs" -max_len=8192 -print_final_stats=1 "${dict[@]}")
  done
  exit 0
fi

inputs="${1:-10000000}"
seed="${2:-1}"
echo "==> stable fuzz campaign: $inputs inputs, seed $seed (release build)"
t0=$SECONDS
FUZZ_INPUTS="$inputs" FUZZ_SEED="$seed" cargo test --release --test fuzz campaign -- --ignored --exact --nocapture
echo "==> done in $((SECONDS - t0)) s (build included)"
