//! Regression tests for what fuzzing found (see tests/fuzz.rs and tests/fuzzing/). Each calls
//! the public API with a minimised input.
//!
//! A stack overflow aborts the whole process rather than panicking, so those cases run in a
//! child process (this test binary, re-executed with `FUZZ_CHILD_CASE` set) on a thread with
//! the 2 MiB stack every `std::thread::spawn`ed thread gets, like the ingester's event loop.

use std::process::Command;

use marketflow_ingestor::binance::venue::VENUE;
use marketflow_ingestor::binance::wire::{parse_frame, Frame, ParseError, MAX_NESTING};

/// Stack of the thread a child case runs on: the std default for spawned threads, which is what
/// the ingester's event-loop thread has.
const THREAD_STACK: usize = 2 << 20;

fn nested(open: &str, close: &str, depth: usize) -> String {
    let mut s = String::with_capacity(depth * (open.len() + close.len()) + 1);
    for _ in 0..depth {
        s.push_str(open);
    }
    s.push('1');
    for _ in 0..depth {
        s.push_str(close);
    }
    s
}

/// Frames nesting `depth` levels deep in the places the parser skips lazily or ignores.
fn deep_frames(depth: usize) -> Vec<(&'static str, String)> {
    let arr = nested("[", "]", depth);
    let obj = nested("{\"a\":", "}", depth);
    vec![
        ("data", format!(r#"{{"stream":"btcusdt@trade","data":{arr}}}"#)),
        ("data_object", format!(r#"{{"stream":"btcusdt@trade","data":{obj}}}"#)),
        ("result", format!(r#"{{"result":{arr},"id":1}}"#)),
        ("ignored_field", format!(r#"{{"x":{arr},"result":null,"id":1}}"#)),
        (
            "ignored_payload_field",
            format!(
                r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true,"M":{arr}}}}}"#
            ),
        ),
        (
            "depth_levels",
            format!(
                r#"{{"stream":"btcusdt@depth","data":{{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":{arr},"a":[]}}}}"#
            ),
        ),
    ]
}

/// Runs `case` in a child process; `Ok` if it exited normally, else its stderr.
fn in_child(case: &str, depth: usize) -> Result<(), String> {
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args(["child_case", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("FUZZ_CHILD_CASE", case)
        .env("FUZZ_CHILD_DEPTH", depth.to_string())
        .output()
        .expect("run the child");
    if out.status.success() {
        // libtest exits 0 when no test matches the filter: a renamed `child_case` would otherwise
        // make every case pass without parsing anything.
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("test result: ok. 1 passed;") && stdout.contains(&child_marker(case, depth)),
            "{case} at depth {depth}: the child did not run exactly the one case (test renamed?):\n{stdout}"
        );
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("{case} at depth {depth}: {} ({})", out.status, err.lines().last().unwrap_or("")))
    }
}

/// What a child prints once it parsed its case: proof that the case ran, not just the harness.
fn child_marker(case: &str, depth: usize) -> String {
    format!("child case {case} at depth {depth}: parsed")
}

/// The child side of [`in_child`]: parses one deep frame on a 2 MiB thread.
#[test]
#[ignore = "run by the other tests, in a child process"]
fn child_case() {
    let Ok(case) = std::env::var("FUZZ_CHILD_CASE") else { return };
    let depth: usize = std::env::var("FUZZ_CHILD_DEPTH").expect("FUZZ_CHILD_DEPTH").parse().expect("a number");
    let (_, frame) = deep_frames(depth).into_iter().find(|(c, _)| *c == case).expect("a known case");
    let t = std::thread::Builder::new()
        .stack_size(THREAD_STACK)
        .spawn(move || {
            // Whatever the verdict, the parser must return one.
            let parsed = parse_frame(frame.as_bytes());
            if let Ok(marketflow_ingestor::binance::wire::Frame::Market { record, .. }) = parsed {
                let _ = record.encode(1, false, &mut Vec::new());
            }
        })
        .expect("spawn");
    t.join().expect("no panic");
    println!("{}", child_marker(&case, depth));
}

/// FINDING: sonic-rs skips lazily captured values (`data`, `result`, `id`) and ignored fields
/// with unbounded recursion (cloudwego/sonic-rs#232, fix proposed in #238), so one deeply nested
/// but valid JSON frame overflowed the event-loop thread's stack and aborted the ingester: in a
/// release build about 18,650 levels (a 37 KB frame) exhausted a 2 MiB stack, in a debug build 47.
/// A frame may be 8 MiB (`max_message_size`); 100k levels take 200 KB. FIX: `parse_text` and
/// `parse_payload` refuse frames nested deeper than `MAX_NESTING` before sonic-rs sees them.
#[test]
fn deeply_nested_frames_do_not_overflow_the_stack() {
    let failures: Vec<String> = deep_frames(0).iter().filter_map(|(case, _)| in_child(case, 100_000).err()).collect();
    assert!(failures.is_empty(), "stack overflow (process abort) on:\n{}", failures.join("\n"));
    for (case, frame) in deep_frames(100_000) {
        assert_eq!(parse_frame(frame.as_bytes()), Err(ParseError::TooDeep), "{case}");
    }
}

/// The nesting limit counts brackets, not brackets inside strings, and lets every real frame by.
#[test]
fn nesting_limit_is_string_aware_and_spares_real_frames() {
    let deep_in_strings = format!(
        r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true,"M":"{}\"{}"}}}}"#,
        "[".repeat(100),
        "{".repeat(100)
    );
    assert!(matches!(parse_frame(deep_in_strings.as_bytes()), Ok(Frame::Market { .. })));
    let just_deep_enough = format!(r#"{{"result":{},"id":1}}"#, nested("[", "]", MAX_NESTING - 2));
    assert!(matches!(parse_frame(just_deep_enough.as_bytes()), Ok(Frame::ControlReply { id: Some(1), .. })));
    let one_too_deep = format!(r#"{{"result":{},"id":1}}"#, nested("[", "]", MAX_NESTING));
    assert_eq!(parse_frame(one_too_deep.as_bytes()), Err(ParseError::TooDeep));
    // A thousand-level depth update has 2,000 brackets but nests four deep.
    let levels = vec![r#"["0.0024","10"]"#; 1000].join(",");
    let depth = format!(
        r#"{{"stream":"btcusdt@depth","data":{{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[{levels}],"a":[{levels}]}}}}"#
    );
    assert!(matches!(parse_frame(depth.as_bytes()), Ok(Frame::Market { .. })));
}

/// How deep each case can go before the child aborts (a measurement, not a test):
/// `cargo test --test fuzz_regressions nesting_limits -- --ignored --nocapture`.
#[test]
#[ignore = "measurement"]
fn nesting_limits() {
    for (case, _) in deep_frames(0) {
        let (mut ok, mut bad) = (1usize, 1usize << 20);
        if in_child(case, bad).is_ok() {
            println!("{case}: survives {bad} levels");
            continue;
        }
        while bad - ok > 1 {
            let mid = ok + (bad - ok) / 2;
            if in_child(case, mid).is_ok() {
                ok = mid;
            } else {
                bad = mid;
            }
        }
        println!("{case}: survives {ok} levels, aborts at {bad} ({} bytes/level of stack)", THREAD_STACK / bad);
    }
}

/// FOUND (fixed by 8c3082f, which makes `parse_frame` validate UTF-8 before parsing): sonic-rs
/// validates UTF-8 only after deserializing, and builds the `&str` of a lazily captured value
/// with `from_utf8_unchecked` behind a `debug_assert!`: a frame with invalid UTF-8 inside
/// `data`, `result` or `id` panicked in debug builds ("invalid utf-8 in as_str") and, in release,
/// briefly held an invalid `&str` before `from_slice` returned the error.
#[test]
fn invalid_utf8_inside_lazy_values_is_rejected() {
    for frame in [
        &b"{\"stream\":\"bnbbtc@trade\",\"data\":{\"e\":\"trade\xff\"}}"[..],
        b"{\"stream\":\"bnbbtc@trade\",\"data\":\"\xc3\"}",
        b"{\"result\":[\"\xed\xa0\x80\"],\"id\":1}",
        b"{\"result\":null,\"id\":\"\xff\"}",
    ] {
        let got = std::panic::catch_unwind(|| parse_frame(frame));
        assert_eq!(got.ok(), Some(Err(ParseError::Json)), "{}", String::from_utf8_lossy(frame));
    }
}

// ---- what the parser hands to the pipeline ---------------------------------------------------
//
// The parser accepts any i64 for ids and times and any text for control replies; the code that
// consumes its output then panics on some of them (debug builds: arithmetic overflow; all
// builds: slicing a `&str` inside a character). Found while writing the fuzz oracles.

use std::panic::{catch_unwind, AssertUnwindSafe};

use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Outcome, Pipeline};
use marketflow_ingestor::record::{Record, Side, Trade};
use marketflow_ingestor::sequence::{SequenceTracker, Verdict};

/// A pipeline for one symbol, `btcusdt` (the reader end is returned to keep the ring open).
fn pipeline() -> (Pipeline, marketflow_ingestor::ring::RingReader) {
    let (w, r) = marketflow_ingestor::ring::ring(1 << 20);
    (Pipeline::new(&VENUE, w, Metrics::new(&["btcusdt".to_string()]), None), r)
}

/// Runs `f` with INFO logging on (the ingester's default), as log arguments are evaluated only
/// when their level is enabled.
fn with_info_logs<R>(f: impl FnOnce() -> R) -> R {
    let sub = tracing_subscriber::fmt().with_writer(std::io::sink).with_max_level(tracing::Level::INFO).finish();
    tracing::subscriber::with_default(sub, f)
}

/// FINDING: `Pipeline::on_text` logs `&result[..result.len().min(200)]` (control replies) and
/// `&msg[..msg.len().min(200)]` (error replies): a byte slice of a `&str`, which panics when byte
/// 200 falls inside a multi-byte character, e.g. a LIST_SUBSCRIPTIONS reply naming 币安人生USDT
/// streams. The panic unwinds the event-loop thread.
#[test]
fn long_non_ascii_replies_do_not_panic_the_pipeline() {
    // 199 bytes of JSON text, then a 2-byte character across byte 200.
    let text = format!("{}é", "a".repeat(198));
    let control = format!(r#"{{"result":"{text}","id":1}}"#);
    let error = format!(r#"{{"code":2,"msg":"{}é"}}"#, "a".repeat(199));
    for (frame, want) in [(control, Outcome::ControlReply { id: Some(1) }), (error, Outcome::ErrorReply { code: 2 })] {
        let (mut p, _r) = pipeline();
        let got = with_info_logs(|| catch_unwind(AssertUnwindSafe(|| p.on_text(&frame, 1, Admission::Normal))));
        assert_eq!(got.ok(), Some(want), "{frame}");
    }
}

/// FINDING: `Pipeline::enqueue` computes `e as u64 * 1_000_000` from the payload's event time
/// `E`: it overflows for any negative time or one past year 2554 (a panic in debug builds; in
/// release a wrapped value, recorded as an exchange-to-receive latency of up to 58 years or 0).
#[test]
fn out_of_range_event_times_do_not_panic_the_pipeline() {
    for e in [-1i64, 18_446_744_073_710, i64::MAX, i64::MIN] {
        let frame = format!(
            r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{e},"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true}}}}"#
        );
        let (mut p, _r) = pipeline();
        let got = catch_unwind(AssertUnwindSafe(|| p.on_text(&frame, 1_700_000_000_000_000_000, Admission::Normal)));
        assert_eq!(got.ok(), Some(Outcome::Record), "E = {e}");
    }
}

/// FINDING: `SequenceTracker::observe` computes the gap as `first - expected`, which overflows
/// when a negative id (accepted by the parser) is followed by a large one: a panic in debug
/// builds; in release a negative `missing`, counted as ~2^64 missing ids and turned into a
/// backfill request for the whole range.
#[test]
fn extreme_id_jumps_do_not_overflow_the_gap() {
    let trade = |id: i64| {
        Record::Trade(Trade {
            exchange: "binance",
            symbol: "BTCUSDT",
            trade_id: id,
            price: "1".into(),
            qty: "1".into(),
            side: Side::Buy,
            trade_time_ms: 0,
            event_time_ms: 0,
        })
    };
    let got = catch_unwind(|| {
        let mut s = SequenceTracker::new(1);
        s.observe(0, &trade(-10));
        s.observe(0, &trade(i64::MAX))
    });
    match got {
        Ok(Verdict::Gap { missing, .. }) => assert!(missing > 0, "missing = {missing}"),
        // Far beyond the quarantine bound: it does not move the sequence at all.
        Ok(Verdict::Quarantined) => {}
        Ok(v) => panic!("{v:?}"),
        Err(_) => panic!("SequenceTracker::observe panicked (arithmetic overflow)"),
    }
}
