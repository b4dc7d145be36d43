//! Table-driven tests on Binance's documented USD-M futures payloads (tests/fixtures/usdm/,
//! sources in its README): each parsed by the USD-M parser and normalized, compared with the
//! exact JSON a consumer receives; then the frames USD-M's parser must refuse, each with the
//! reason its counter is labelled by.

use marketflow_ingestor::binance::usdm::wire::{parse_payload, parse_text};
use marketflow_ingestor::binance::wire::{Frame, ParseError};
use marketflow_ingestor::stream::StreamKind;

const RECV: u64 = 1700000000123456789;

fn fixture(path: &str) -> String {
    let p = format!("{}/tests/fixtures/usdm/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn normalize(frame: &Frame<'_>) -> Result<String, &'static str> {
    let Frame::Market { record, .. } = frame else { panic!("not a market frame: {frame:?}") };
    let mut out = Vec::new();
    record.encode(RECV, false, &mut out).map_err(|e| e.reason())?;
    Ok(String::from_utf8(out).unwrap())
}

const AGG_TRADE: &str = r#"{"type":"agg_trade","exchange":"binance-usdm","symbol":"BTCUSDT","agg_id":5933014,"first_trade_id":100,"last_trade_id":105,"price":"0.001","qty":"100","side":"sell","trade_time_ms":123456785,"event_time_ms":123456789,"recv_time_ns":1700000000123456789}"#;
const DEPTH: &str = r#"{"type":"depth_update","exchange":"binance-usdm","symbol":"BTCUSDT","first_update_id":157,"final_update_id":160,"prev_final_update_id":149,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]],"event_time_ms":123456789,"transaction_time_ms":123456788,"recv_time_ns":1700000000123456789}"#;
const MARK_PRICE: &str = r#"{"type":"mark_price","exchange":"binance-usdm","symbol":"BTCUSDT","mark_price":"11794.15000000","index_price":"11784.62659091","estimated_settle_price":"11784.25641265","funding_rate":"0.00038167","next_funding_time_ms":1562306400000,"event_time_ms":1562305380000,"recv_time_ns":1700000000123456789}"#;

#[test]
fn documented_payloads_normalize_exactly() {
    let cases: [(&str, &str, StreamKind, &str); 9] = [
        // aggTrade without `M`; m=true: the buyer made the market, the taker sold.
        ("aggTrade.json", "btcusdt@aggTrade", StreamKind::AggTrade, AGG_TRADE),
        // Futures bookTicker: its event and transaction times are kept.
        (
            "bookTicker.json",
            "bnbusdt@bookTicker",
            StreamKind::BookTicker,
            r#"{"type":"book_ticker","exchange":"binance-usdm","symbol":"BNBUSDT","update_id":400900217,"bid_price":"25.35190000","bid_qty":"31.21000000","ask_price":"25.36520000","ask_qty":"40.66000000","event_time_ms":1568014460893,"transaction_time_ms":1568014460891,"recv_time_ns":1700000000123456789}"#,
        ),
        // Diff depth at each of USD-M's speeds: `pu` and `T` kept, levels compact.
        ("depth.json", "btcusdt@depth", StreamKind::Depth, DEPTH),
        ("depth.json", "btcusdt@depth@100ms", StreamKind::Depth100ms, DEPTH),
        ("depth.json", "btcusdt@depth@500ms", StreamKind::Depth500ms, DEPTH),
        // Mark price: `T` is the next funding time, not a trade time.
        ("markPrice.json", "btcusdt@markPrice", StreamKind::MarkPrice, MARK_PRICE),
        ("markPrice.json", "btcusdt@markPrice@1s", StreamKind::MarkPrice1s, MARK_PRICE),
        // A liquidation snapshot: the order in `o`, the side lower case like every side.
        (
            "forceOrder.json",
            "btcusdt@forceOrder",
            StreamKind::ForceOrder,
            r#"{"type":"liquidation","exchange":"binance-usdm","symbol":"BTCUSDT","side":"sell","order_type":"LIMIT","time_in_force":"IOC","orig_qty":"0.014","price":"9910","avg_price":"9910","status":"FILLED","last_filled_qty":"0.014","filled_qty":"0.014","trade_time_ms":1568014460893,"event_time_ms":1568014460893,"snapshot":true,"recv_time_ns":1700000000123456789}"#,
        ),
        // Klines: spot's payload.
        (
            "kline_1m.json",
            "btcusdt@kline_1m",
            StreamKind::Kline(1),
            r#"{"type":"kline","exchange":"binance-usdm","symbol":"BTCUSDT","interval":"1m","open_time_ms":1638747660000,"close_time_ms":1638747719999,"open":"0.0010","high":"0.0025","low":"0.0015","close":"0.0020","volume":"1000","quote_volume":"1.0000","trades":100,"taker_buy_volume":"500","taker_buy_quote_volume":"0.500","closed":false,"first_trade_id":100,"last_trade_id":200,"event_time_ms":1638747660000,"recv_time_ns":1700000000123456789}"#,
        ),
    ];
    for (file, stream, kind, expected) in cases {
        let data = fixture(file);
        let frame = parse_payload(stream, &data).unwrap_or_else(|e| panic!("{stream}: {e}"));
        let Frame::Market { kind: got, stream_symbol, .. } = frame else { panic!("{stream}: {frame:?}") };
        assert_eq!((got, stream_symbol), (kind, stream.split('@').next().unwrap()), "{stream}");
        assert_eq!(normalize(&frame).unwrap(), expected, "{stream}");
        // The same payload in its combined envelope, compact, gives the same record.
        let compact: serde_json::Value = serde_json::from_str(&data).unwrap();
        let text = format!(r#"{{"stream":"{stream}","data":{compact}}}"#);
        assert_eq!(normalize(&parse_text(&text).unwrap()).unwrap(), expected, "{stream} combined");
    }
}

#[test]
fn combined_fixtures_normalize_exactly() {
    for (file, expected) in
        [("combined/aggTrade.json", AGG_TRADE), ("combined/depth.json", DEPTH), ("combined/markPrice.json", MARK_PRICE)]
    {
        let text = fixture(file);
        assert_eq!(normalize(&parse_text(&text).unwrap()).unwrap(), expected, "{file}");
    }
}

#[test]
fn newer_fields_are_skipped_or_kept_as_documented() {
    // binance-connector-js types: aggTrade adds `nq` and `st` (skipped), markPrice `ap` (kept
    // as text) and `st` (skipped).
    let agg = r#"{"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100","nq":"100","f":100,"l":105,"T":123456785,"m":true,"st":1}"#;
    assert_eq!(normalize(&parse_payload("btcusdt@aggTrade", agg).unwrap()).unwrap(), AGG_TRADE);
    let mark = r#"{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","ap":"11790.00000000","i":"11784.62659091","P":"11784.25641265","r":"-0.00038167","T":1562306400000,"st":1}"#;
    assert_eq!(
        normalize(&parse_payload("btcusdt@markPrice", mark).unwrap()).unwrap(),
        r#"{"type":"mark_price","exchange":"binance-usdm","symbol":"BTCUSDT","mark_price":"11794.15000000","index_price":"11784.62659091","estimated_settle_price":"11784.25641265","funding_rate":"-0.00038167","mark_price_avg":"11790.00000000","next_funding_time_ms":1562306400000,"event_time_ms":1562305380000,"recv_time_ns":1700000000123456789}"#
    );
}

#[test]
fn control_frames_are_spot_s() {
    assert_eq!(parse_text(r#"{"result":null,"id":3}"#), Ok(Frame::ControlReply { id: Some(3), result: "null" }));
    assert_eq!(
        parse_text(r#"{"code":2,"msg":"Invalid request"}"#),
        Ok(Frame::ErrorReply { code: 2, msg: "Invalid request" })
    );
    let shutdown = r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1746738000000}}"#;
    assert_eq!(parse_text(shutdown), Ok(Frame::ServerShutdown { event_time_ms: 1746738000000 }));
}

/// `data` of `stream` with `from` replaced by `to` (once), in its combined envelope.
fn altered(file: &str, stream: &str, from: &str, to: &str) -> String {
    let compact: serde_json::Value = serde_json::from_str(&fixture(file)).unwrap();
    let data = compact.to_string();
    assert!(data.contains(from), "{from} not in {data}");
    format!(r#"{{"stream":"{stream}","data":{}}}"#, data.replacen(from, to, 1))
}

#[test]
fn malformed_usd_m_frames_are_refused_with_their_reasons() {
    let deep = format!(r#"{{"stream":"btcusdt@depth","data":{{"b":{}1{}}}}}"#, "[".repeat(40), "]".repeat(40));
    let cases: Vec<(String, ParseError)> = vec![
        // USD-M has no documented @trade stream: the observed payload is not one we subscribe.
        (fixture("combined/trade_undocumented_observed.json"), ParseError::UnknownStream),
        (altered("kline_1m.json", "btcusdt@kline_1s", "", ""), ParseError::UnknownStream),
        // Spot's bookTicker (no e/E/T) is not a futures one.
        (
            r#"{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}"#.into(),
            ParseError::Json,
        ),
        // A futures depth update without `pu` cannot be chained.
        (altered("depth.json", "btcusdt@depth", r#""pu":149,"#, ""), ParseError::Json),
        (altered("forceOrder.json", "btcusdt@forceOrder", r#""S":"SELL""#, r#""S":"SHORT""#), ParseError::UnknownSide),
        (altered("forceOrder.json", "ethusdt@forceOrder", "", ""), ParseError::SymbolMismatch),
        (altered("forceOrder.json", "btcusdt@forceOrder", r#""T":1568014460893"#, r#""T":"1""#), ParseError::Json),
        (altered("markPrice.json", "btcusdt@markPrice", "markPriceUpdate", "markPrice"), ParseError::EventTypeMismatch),
        (altered("markPrice.json", "btcusdt@forceOrder", "", ""), ParseError::Json),
        (altered("kline_1m.json", "btcusdt@kline_5m", "", ""), ParseError::IntervalMismatch),
        (altered("bookTicker.json", "bnbusdt@bookTicker", r#""e":"bookTicker""#, r#""e":"depthUpdate""#), ParseError::EventTypeMismatch),
        (deep, ParseError::TooDeep),
        ("{".into(), ParseError::Json),
        ("{}".into(), ParseError::UnknownShape),
    ];
    for (text, want) in cases {
        assert_eq!(parse_text(&text), Err(want), "{text}");
    }
    assert_eq!(
        (ParseError::UnknownSide.reason(), ParseError::UnknownSide.to_string()),
        ("unknown_side", "liquidation side is neither BUY nor SELL".into())
    );
}

#[test]
fn records_with_bad_values_are_refused_at_encoding() {
    for (text, reason) in [
        (altered("forceOrder.json", "btcusdt@forceOrder", r#""o":"LIMIT""#, r#""o":"limit""#), "bad_word"),
        (altered("forceOrder.json", "btcusdt@forceOrder", r#""ap":"9910""#, r#""ap":"9,910""#), "bad_decimal"),
        (altered("markPrice.json", "btcusdt@markPrice", r#""r":"0.00038167""#, r#""r":"NaN""#), "bad_decimal"),
    ] {
        assert_eq!(normalize(&parse_text(&text).unwrap()), Err(reason), "{text}");
    }
}

/// Through the engine: a USD-M pipeline counts each refused frame under its reason
/// (`messages_rejected_total{reason=..}`) and publishes the good ones.
#[test]
fn refused_usd_m_frames_are_counted_by_reason_in_the_pipeline() {
    use marketflow_ingestor::binance::usdm::venue::VENUE;
    use marketflow_ingestor::metrics::Metrics;
    use marketflow_ingestor::pipeline::{Admission, Outcome, Pipeline};

    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (w, _r) = marketflow_ingestor::ring::ring(1 << 20);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    let frames = [
        (altered("forceOrder.json", "btcusdt@forceOrder", r#""S":"SELL""#, r#""S":"SHORT""#), Outcome::Rejected),
        (altered("forceOrder.json", "btcusdt@forceOrder", r#""o":"LIMIT""#, r#""o":"limit""#), Outcome::Rejected),
        (fixture("combined/trade_undocumented_observed.json"), Outcome::Rejected),
        (altered("forceOrder.json", "btcusdt@forceOrder", "", ""), Outcome::Record),
        (fixture("combined/markPrice.json"), Outcome::Record),
    ];
    for (text, want) in &frames {
        assert_eq!(p.on_text(text, 1, Admission::Normal), *want, "{text}");
    }
    let text = metrics.render();
    for reason in ["unknown_side", "bad_word", "unknown_stream"] {
        let line = format!(r#"marketflow_ingestor_messages_rejected_total{{reason="{reason}"}} 1"#);
        assert!(text.contains(&line), "{line} not in the metrics");
    }
}
