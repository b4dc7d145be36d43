//! Fuzzing the frame parser, the record parser/encoder, the WebSocket decoder and the SBE decoder
//! with the binary path behind it (the harness is in tests/fuzzing/). `cargo test` runs a short fixed-seed pass so the harness cannot rot; the
//! long campaign is `scripts/fuzz.sh [INPUTS] [SEED]` (the ignored `campaign` test, in release).

mod fuzzing;

use std::time::{Duration, Instant};

use fuzzing::{Config, Stats};

/// Nesting limit for parser inputs (see `fuzzing::targets::set_max_depth`); 0, none, since the
/// parser refuses frames nested deeper than `binance::wire::MAX_NESTING` before sonic-rs sees
/// them. (Before that, sonic-rs overflowed a 2 MiB thread stack at 47 levels in a debug build and
/// about 18,650 in release: tests/fuzz_regressions.rs.)
const MAX_DEPTH: usize = 0;

/// Non-UTF-8 inputs go to `parse_frame` as they are (it validates UTF-8 first since 8c3082f;
/// before that, sonic-rs's `debug_assert!` fired on them: tests/fuzz_regressions.rs).
const RAW_NON_UTF8: bool = true;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |v| {
        let v = v.replace('_', "");
        v.parse().unwrap_or_else(|e| panic!("{name}={v}: {e}"))
    })
}

/// The fuzzer is only useful while valid frames keep reaching the deep paths.
fn assert_reaches_every_target(st: &Stats) {
    let by = |t: &fuzzing::Tally, k: &str| t.by.get(k).copied().unwrap_or(0);
    assert!(by(&st.frame, "market") > 0, "no market frame parsed");
    assert!(by(&st.frame, "control_reply") > 0 && by(&st.frame, "error_reply") > 0);
    assert!(by(&st.frame, "server_shutdown") > 0);
    assert!(by(&st.encode, "ok") > 0 && st.encode.rejected > 0, "encoder: {:?}", st.encode);
    assert!(st.payload.accepted > 0 && by(&st.payload, "unknown_stream") > 0, "payload: {:?}", st.payload);
    assert!(by(&st.ws, "text") > 0 && by(&st.ws, "ping") > 0, "websocket: {:?}", st.ws);
    assert!(by(&st.usdm, "market") > 0 && by(&st.usdm, "encoded") > 0, "USD-M: {:?}", st.usdm);
    assert!(by(&st.usdm, "unknown_stream") > 0 && st.usdm.rejected > by(&st.usdm, "unknown_stream"), "{:?}", st.usdm);
    // SBE: every message decoded, the length checks each reached, trade records checked.
    for k in ["TradesStreamEvent", "BestBidAskStreamEvent", "DepthSnapshotStreamEvent", "DepthDiffStreamEvent"] {
        assert!(by(&st.sbe, k) > 0, "SBE: no {k} decoded: {:?}", st.sbe);
    }
    for r in ["short_header", "truncated", "block_too_short", "unknown_template", "trailing_bytes", "invalid_bool"] {
        assert!(by(&st.sbe, r) > 0, "SBE: nothing refused as {r}: {:?}", st.sbe);
    }
    assert!(st.sbe_records > 0, "SBE: no trade record: {:?}", st.sbe);
}

#[test]
fn seeds_are_valid_frames_of_every_kind() {
    let seeds = fuzzing::seeds::seeds();
    assert!(seeds.len() > 150, "{} seeds", seeds.len());
    let mut st = Stats::default();
    for s in &seeds {
        fuzzing::targets::frame(s, 1_700_000_000_000_000_000, &mut st);
    }
    // Every simulator frame (all kinds, three symbols) parses and encodes.
    let sim = fuzzing::seeds::sim_frames();
    let kinds = fuzzing::seeds::all_kinds().len();
    assert_eq!(sim.len(), kinds * fuzzing::seeds::SIM_SYMBOLS.len() * 2);
    for f in &sim {
        let parsed = marketflow_ingestor::binance::wire::parse_frame(f);
        let Ok(marketflow_ingestor::binance::wire::Frame::Market { record, .. }) = parsed else {
            panic!("{}: {parsed:?}", String::from_utf8_lossy(f))
        };
        record.encode(1, false, &mut Vec::new()).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(f)));
    }
    assert!(st.frame.by["market"] as usize >= sim.len(), "{:?}", st.frame);
    // Every simulator USD-M frame (all USD-M kinds, three symbols) parses and encodes as USD-M.
    let usdm = fuzzing::seeds::usdm_sim_frames();
    assert_eq!(usdm.len(), binance_sim::usdm_kinds().count() * fuzzing::seeds::SIM_SYMBOLS.len() * 2);
    for f in &usdm {
        let text = std::str::from_utf8(f).unwrap();
        let parsed = marketflow_ingestor::binance::usdm::wire::parse_text(text);
        let Ok(marketflow_ingestor::binance::wire::Frame::Market { record, .. }) = parsed else {
            panic!("{text}: {parsed:?}")
        };
        record.encode(1, false, &mut Vec::new()).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    assert!(st.usdm.by["market"] as usize >= usdm.len(), "{:?}", st.usdm);
    assert!(st.panics.is_empty());
}

/// A short, fixed-seed pass: 100k inputs (about 9 s of CPU in a debug build; the deep paths are
/// all reached within the first 20k). `FUZZ_SMOKE_INPUTS` and `FUZZ_SMOKE_SEED` override.
#[test]
fn fuzz_smoke() {
    let cfg = Config {
        seed: env_u64("FUZZ_SMOKE_SEED", 0x5EED),
        inputs: env_u64("FUZZ_SMOKE_INPUTS", 100_000),
        raw_non_utf8: RAW_NON_UTF8,
        max_depth: MAX_DEPTH,
        progress: None,
    };
    fuzzing::abort_guard::enable();
    let t0 = Instant::now();
    let st = fuzzing::run(&cfg);
    let report = fuzzing::summary(&cfg, &st, t0.elapsed());
    println!("{report}");
    assert!(st.panics.is_empty(), "{report}");
    assert_reaches_every_target(&st);
}

/// The long campaign (`scripts/fuzz.sh`): `FUZZ_INPUTS` (default 10 million), `FUZZ_SEED`
/// (default 1), `FUZZ_RAW_NON_UTF8` (0/1: non-UTF-8 inputs to `parse_frame` as they are),
/// `FUZZ_MAX_DEPTH` (0: no nesting limit).
#[test]
#[ignore = "long: run by scripts/fuzz.sh"]
fn campaign() {
    let cfg = Config {
        seed: env_u64("FUZZ_SEED", 1),
        inputs: env_u64("FUZZ_INPUTS", 10_000_000),
        raw_non_utf8: env_u64("FUZZ_RAW_NON_UTF8", u64::from(RAW_NON_UTF8)) == 1,
        max_depth: env_u64("FUZZ_MAX_DEPTH", MAX_DEPTH as u64) as usize,
        progress: Some(Duration::from_secs(30)),
    };
    fuzzing::abort_guard::enable();
    let t0 = Instant::now();
    let st = fuzzing::run(&cfg);
    let report = fuzzing::summary(&cfg, &st, t0.elapsed());
    println!("{report}");
    assert!(st.panics.is_empty(), "{report}");
    assert_reaches_every_target(&st);
}

/// Replays one saved input: `FUZZ_REPLAY=fuzz/crashes/<file>.bin`.
#[test]
#[ignore = "manual: replays FUZZ_REPLAY"]
fn replay() {
    let path = std::env::var_os("FUZZ_REPLAY").expect("FUZZ_REPLAY=<path to a saved input>");
    fuzzing::replay(std::path::Path::new(&path));
}

/// Writes the seed corpus for the cargo-fuzz targets to `FUZZ_CORPUS_DIR` (default
/// fuzz/corpus/): one directory per target.
#[test]
#[ignore = "manual: run by scripts/fuzz.sh --libfuzzer"]
fn export_corpus() {
    let dir = std::env::var_os("FUZZ_CORPUS_DIR")
        .map_or_else(|| fuzzing::seeds::repo_root().join("fuzz/corpus"), std::path::PathBuf::from);
    let n = fuzzing::export_corpus(&dir);
    println!("{n} seed files under {}", dir.display());
}
