//! The harness shared with the stable fuzzer (tests/fuzzing/), compiled into the cargo-fuzz
//! targets: the same targets and oracles, with libFuzzer's coverage feedback instead of the
//! stable mutator.

use std::sync::OnceLock;

#[path = "../../tests/fuzzing/mod.rs"]
pub mod fuzzing;

/// Receive time stamped on every record.
pub const RECV_NS: u64 = 1_700_000_000_000_000_000;

struct Settings {
    raw_non_utf8: bool,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Reads the settings once: `FUZZ_MAX_DEPTH` (default 1000, 0 = no limit: see
/// `fuzzing::targets::set_max_depth`) and `FUZZ_RAW_NON_UTF8` (default 1: non-UTF-8 inputs go
/// to `parse_frame` as they are; 0: converted lossily first).
fn settings() -> &'static Settings {
    static S: OnceLock<Settings> = OnceLock::new();
    S.get_or_init(|| {
        fuzzing::targets::set_max_depth(env_usize("FUZZ_MAX_DEPTH", 1000));
        Settings { raw_non_utf8: env_usize("FUZZ_RAW_NON_UTF8", 1) == 1 }
    })
}

/// Target (a) on `data`, converted lossily to UTF-8 first unless raw bytes are allowed.
pub fn frame(data: &[u8], st: &mut fuzzing::Stats) {
    if settings().raw_non_utf8 || std::str::from_utf8(data).is_ok() {
        fuzzing::targets::frame(data, RECV_NS, st);
    } else {
        fuzzing::targets::frame(String::from_utf8_lossy(data).as_bytes(), RECV_NS, st);
    }
}

/// Target (b): `<stream name>\n<payload>`.
pub fn payload(data: &[u8], st: &mut fuzzing::Stats) {
    settings();
    let (stream, payload) = fuzzing::split_payload_input(data);
    fuzzing::targets::payload(&stream, &payload, RECV_NS, st);
}

/// Target (c): the first byte picks the read chunking, the rest is the server's byte stream;
/// text messages go through target (a).
pub fn websocket(data: &[u8], st: &mut fuzzing::Stats) {
    settings();
    let Some((&first, wire)) = data.split_first() else { return };
    let max_chunk = [1, 7, 64, 4096, 1 << 20][usize::from(first) % 5];
    let case = fuzzing::ws::WsCase::raw(wire.to_vec(), u64::from(first), max_chunk);
    fuzzing::ws::websocket(&case, st, &mut |text, st| frame(text, st));
}

/// Target (d): an SBE frame through the decoder and the ingester's binary path
/// (`TRANSPORT=sbe`: symbol, scale, decimals, sequence checks, record, ring) with the stable
/// target's oracles (tests/fuzzing/sbe.rs). A fresh pipeline for each input: a finding then
/// replays from its file alone, and an accepted absurd trade id cannot turn every later trade
/// into a duplicate that skips the record path.
pub fn sbe(data: &[u8], st: &mut fuzzing::Stats) {
    fuzzing::sbe::SbeFuzzer::new(1).replay(data, st);
}
