//! Table-driven tests on Binance's own documented payloads (tests/fixtures/, copied from the
//! docs snapshot described in tests/fixtures/MANIFEST.json): every frame kind the ingester
//! meets, parsed and normalized, compared with the exact JSON a consumer receives.

use marketflow_ingestor::binance::stream::StreamKind;
use marketflow_ingestor::binance::wire::{parse_frame, parse_payload, Frame, ParseError};

fn fixture(path: &str) -> String {
    let p = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn normalize(frame: &Frame<'_>) -> String {
    let Frame::Market { record, .. } = frame else { panic!("not a market frame: {frame:?}") };
    let mut out = Vec::new();
    record.encode(1700000000123456789, false, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

struct Case {
    file: &'static str,
    kind: StreamKind,
    expected: &'static str,
}

#[test]
fn combined_fixtures_normalize_exactly() {
    let cases = [
        // TC0: trade, m=true -> the buyer made the market, the taker sold.
        Case {
            file: "combined/trade.json",
            kind: StreamKind::Trade,
            expected: r#"{"type":"trade","exchange":"binance","symbol":"BNBBTC","trade_id":12345,"price":"0.001","qty":"100","side":"sell","trade_time_ms":1672515782136,"event_time_ms":1672515782136,"recv_time_ns":1700000000123456789}"#,
        },
        // TC1: aggregate trade.
        Case {
            file: "combined/aggTrade.json",
            kind: StreamKind::AggTrade,
            expected: r#"{"type":"agg_trade","exchange":"binance","symbol":"BNBBTC","agg_id":12345,"first_trade_id":100,"last_trade_id":105,"price":"0.001","qty":"100","side":"sell","trade_time_ms":1672515782136,"event_time_ms":1672515782136,"recv_time_ns":1700000000123456789}"#,
        },
        // TC2: kline; decimals keep Binance's exact text ("0.0010", not 0.001).
        Case {
            file: "combined/kline_1m.json",
            kind: StreamKind::Kline(1),
            expected: r#"{"type":"kline","exchange":"binance","symbol":"BNBBTC","interval":"1m","open_time_ms":1672515780000,"close_time_ms":1672515839999,"open":"0.0010","high":"0.0025","low":"0.0015","close":"0.0020","volume":"1000","quote_volume":"1.0000","trades":100,"taker_buy_volume":"500","taker_buy_quote_volume":"0.500","closed":false,"first_trade_id":100,"last_trade_id":200,"event_time_ms":1672515782136,"recv_time_ns":1700000000123456789}"#,
        },
        // TC3: book ticker (no event time in the payload).
        Case {
            file: "combined/bookTicker.json",
            kind: StreamKind::BookTicker,
            expected: r#"{"type":"book_ticker","exchange":"binance","symbol":"BNBUSDT","update_id":400900217,"bid_price":"25.35190000","bid_qty":"31.21000000","ask_price":"25.36520000","ask_qty":"40.66000000","recv_time_ns":1700000000123456789}"#,
        },
        // TC4: diff depth, pretty-printed in the fixture, compact in the record.
        Case {
            file: "combined/depth.json",
            kind: StreamKind::Depth,
            expected: r#"{"type":"depth_update","exchange":"binance","symbol":"BNBBTC","first_update_id":157,"final_update_id":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]],"event_time_ms":1672515782136,"recv_time_ns":1700000000123456789}"#,
        },
        // TC5: diff depth at 100 ms: same record type.
        Case {
            file: "combined/depth@100ms.json",
            kind: StreamKind::Depth100ms,
            expected: r#"{"type":"depth_update","exchange":"binance","symbol":"BNBBTC","first_update_id":157,"final_update_id":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]],"event_time_ms":1672515782136,"recv_time_ns":1700000000123456789}"#,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let text = fixture(c.file);
        let frame = parse_frame(text.as_bytes()).unwrap_or_else(|e| panic!("TC{i} {}: {e}", c.file));
        match &frame {
            Frame::Market { kind, stream_symbol, .. } => {
                assert_eq!(*kind, c.kind, "TC{i}");
                assert_eq!(*stream_symbol, if c.file.contains("bookTicker") { "bnbusdt" } else { "bnbbtc" });
            }
            other => panic!("TC{i}: {other:?}"),
        }
        let got = normalize(&frame);
        assert_eq!(got, c.expected, "TC{i} {}\n expected: {}\n      got: {}", c.file, c.expected, got);
        // The record is valid JSON with the same content a serde_json reader would see.
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["exchange"], "binance");
    }
}

#[test]
fn raw_fixtures_parse_with_their_stream_name() {
    let cases: [(&str, &str); 5] = [
        ("raw/trade.json", "bnbbtc@trade"),
        ("raw/aggTrade.json", "bnbbtc@aggTrade"),
        ("raw/kline_1m.json", "bnbbtc@kline_1m"),
        ("raw/bookTicker.json", "bnbusdt@bookTicker"),
        ("raw/depth.json", "bnbbtc@depth"),
    ];
    for (file, stream) in cases {
        let text = fixture(file);
        let f = parse_payload(stream, &text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(matches!(f, Frame::Market { .. }), "{file}");
    }
}

#[test]
fn control_and_error_frames_are_recognised() {
    let t = fixture("control/subscribe_response.json");
    assert_eq!(parse_frame(t.as_bytes()).unwrap(), Frame::ControlReply { id: Some(1), result: "null" });
    let t = fixture("control/unsubscribe_response.json");
    assert!(matches!(parse_frame(t.as_bytes()).unwrap(), Frame::ControlReply { id: Some(312), .. }));
    let t = fixture("control/list_subscriptions_response.json");
    match parse_frame(t.as_bytes()).unwrap() {
        Frame::ControlReply { id: Some(3), result } => assert!(result.contains("btcusdt@aggTrade")),
        other => panic!("{other:?}"),
    }
    let t = fixture("control/get_property_response.json");
    assert!(matches!(parse_frame(t.as_bytes()).unwrap(), Frame::ControlReply { id: Some(2), result: "true" }));

    // Every documented error template, with its placeholders filled in.
    let templates: serde_json::Value = serde_json::from_str(&fixture("control/error_messages.json")).unwrap();
    let mut n = 0;
    for t in templates.as_array().unwrap() {
        let text = t["message_template"].as_str().unwrap().replace("%s", "7");
        match parse_frame(text.as_bytes()) {
            Ok(Frame::ErrorReply { code, msg }) => {
                assert!((0..=3).contains(&code), "{text}");
                assert!(!msg.is_empty());
                n += 1;
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    assert!(n >= 8, "all templates checked ({n})");

    let t = fixture("combined/serverShutdown.json");
    assert_eq!(parse_frame(t.as_bytes()).unwrap(), Frame::ServerShutdown { event_time_ms: 1770123456789 });
    // Unwrapped, as a raw `/ws` connection (or `SET_PROPERTY combined false`) delivers it: the
    // same notice, not a frame of unknown shape.
    let t = fixture("raw/serverShutdown.json");
    assert_eq!(parse_frame(t.as_bytes()).unwrap(), Frame::ServerShutdown { event_time_ms: 1770123456789 });
}

#[test]
fn frames_we_do_not_subscribe_to_or_cannot_trust_are_rejected() {
    let cases: &[(&str, ParseError)] = &[
        (&fixture("combined/miniTicker.json"), ParseError::UnknownStream),
        (&fixture("combined/depth5.json"), ParseError::UnknownStream),
        // The UTC+8 kline variant has its own stream name; we do not subscribe to it.
        (&fixture("combined/kline_1m_utc8.json"), ParseError::UnknownStream),
        ("not json", ParseError::Json),
        ("{\"stream\":\"bnbbtc@trade\"", ParseError::Json),
        ("[1,2,3]", ParseError::Json),
        ("{}", ParseError::UnknownShape),
        ("{\"stream\":\"bnbbtc@trade\"}", ParseError::UnknownShape),
        ("{\"stream\":\"bnbbtc@trade\",\"data\":{\"e\":\"trade\"}}", ParseError::Json),
        // The payload's symbol must match the stream it came on.
        (
            r#"{"stream":"ethbtc@trade","data":{"e":"trade","E":1,"s":"BNBBTC","t":1,"p":"1","q":"1","T":1,"m":true}}"#,
            ParseError::SymbolMismatch,
        ),
        (
            r#"{"stream":"bnbbtc@trade","data":{"e":"aggTrade","E":1,"s":"BNBBTC","t":1,"p":"1","q":"1","T":1,"m":true}}"#,
            ParseError::EventTypeMismatch,
        ),
        (
            r#"{"stream":"bnbbtc@kline_5m","data":{"e":"kline","E":1,"s":"BNBBTC","k":{"t":1,"T":2,"s":"BNBBTC","i":"1m","f":1,"L":2,"o":"1","c":"1","h":"1","l":"1","v":"1","n":1,"x":true,"q":"1","V":"1","Q":"1"}}}"#,
            ParseError::IntervalMismatch,
        ),
        // Numbers where Binance sends strings (and the reverse) are not guessed at.
        (
            r#"{"stream":"bnbbtc@trade","data":{"e":"trade","E":1,"s":"BNBBTC","t":1,"p":0.001,"q":"1","T":1,"m":true}}"#,
            ParseError::Json,
        ),
        (
            r#"{"stream":"bnbbtc@trade","data":{"e":"trade","E":1,"s":"BNBBTC","t":"1","p":"1","q":"1","T":1,"m":true}}"#,
            ParseError::Json,
        ),
        // Ids beyond i64 are absurd, not wrapped.
        (
            r#"{"stream":"bnbbtc@trade","data":{"e":"trade","E":1,"s":"BNBBTC","t":99999999999999999999,"p":"1","q":"1","T":1,"m":true}}"#,
            ParseError::Json,
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        assert_eq!(parse_frame(text.as_bytes()).unwrap_err(), *want, "case {i}: {text}");
    }
}

#[test]
fn bad_decimals_are_refused_at_encoding() {
    let text =
        r#"{"stream":"bnbbtc@trade","data":{"e":"trade","E":1,"s":"BNBBTC","t":1,"p":"1e5","q":"1","T":1,"m":true}}"#;
    let f = parse_frame(text.as_bytes()).unwrap();
    let Frame::Market { record, .. } = f else { panic!() };
    let mut out = Vec::new();
    assert!(record.encode(1, false, &mut out).is_err());
}

/// `TIME_UNIT=us`: Binance's payloads in microseconds (`timeUnit=MICROSECOND`), normalized byte
/// for byte with every time field named `*_us`; the same payloads in milliseconds keep `*_ms`.
#[test]
fn microsecond_fixtures_normalize_exactly_with_us_field_names() {
    use marketflow_ingestor::time_unit::TimeUnit;
    let cases = [
        (
            "combined_us/trade.json",
            r#"{"type":"trade","exchange":"binance","symbol":"BNBBTC","trade_id":12345,"price":"0.001","qty":"100","side":"sell","trade_time_us":1672515782136123,"event_time_us":1672515782136123,"recv_time_ns":1700000000123456789}"#,
        ),
        (
            "combined_us/aggTrade.json",
            r#"{"type":"agg_trade","exchange":"binance","symbol":"BNBBTC","agg_id":12345,"first_trade_id":100,"last_trade_id":105,"price":"0.001","qty":"100","side":"sell","trade_time_us":1672515782136123,"event_time_us":1672515782136123,"recv_time_ns":1700000000123456789}"#,
        ),
        (
            "combined_us/kline_1m.json",
            r#"{"type":"kline","exchange":"binance","symbol":"BNBBTC","interval":"1m","open_time_us":1672515780000000,"close_time_us":1672515839999999,"open":"0.0010","high":"0.0025","low":"0.0015","close":"0.0020","volume":"1000","quote_volume":"1.0000","trades":100,"taker_buy_volume":"500","taker_buy_quote_volume":"0.500","closed":false,"first_trade_id":100,"last_trade_id":200,"event_time_us":1672515782136123,"recv_time_ns":1700000000123456789}"#,
        ),
        (
            "combined_us/depth.json",
            r#"{"type":"depth_update","exchange":"binance","symbol":"BNBBTC","first_update_id":157,"final_update_id":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]],"event_time_us":1672515782136123,"recv_time_ns":1700000000123456789}"#,
        ),
    ];
    for (i, (file, want)) in cases.iter().enumerate() {
        let text = fixture(file);
        let Frame::Market { record, .. } = parse_frame(text.as_bytes()).unwrap_or_else(|e| panic!("TC{i}: {e}")) else {
            panic!("TC{i}: not a market frame")
        };
        let mut out = Vec::new();
        record.encode_in(TimeUnit::Micros, 1700000000123456789, false, &mut out).unwrap();
        assert_eq!(std::str::from_utf8(&out).unwrap(), *want, "TC{i} {file}");
        // The millisecond payload of the same event, in milliseconds: `*_ms`, as before.
        let ms = fixture(&file.replace("combined_us/", "combined/"));
        let Ok(Frame::Market { record, .. }) = parse_frame(ms.as_bytes()) else { panic!("TC{i}") };
        out.clear();
        record.encode_in(TimeUnit::Millis, 1700000000123456789, false, &mut out).unwrap();
        let got = String::from_utf8(out).unwrap();
        assert!(got.contains("_time_ms\":") && !got.contains("_us\""), "TC{i}: {got}");
    }
    let t = fixture("combined_us/serverShutdown.json");
    assert_eq!(parse_frame(t.as_bytes()).unwrap(), Frame::ServerShutdown { event_time_ms: 1770123456789000 });
}
