//! The fuzz targets and their oracles. A target panics (an assertion) when an oracle fails, so
//! oracle violations and genuine panics are caught, saved and counted the same way.
//!
//! - `frame`: `parse_frame`, then every accepted frame is checked against serde_json's reading of
//!   the same text (field by field), and every market record is encoded (with and without
//!   `backfilled`) and the output parsed back with serde_json and compared with the record.
//! - `payload`: `parse_payload` with mutated stream names: the stream/kind/symbol bookkeeping,
//!   then the same record checks.

use std::sync::atomic::{AtomicUsize, Ordering};

use marketflow_ingestor::binance::stream::{StreamKind, KLINE_INTERVALS};
use marketflow_ingestor::binance::wire::{parse_frame, parse_payload, Frame, ParseError, MAX_NESTING};
use marketflow_ingestor::record::Record;
use serde_json::Value;

use super::Stats;

/// Inputs nested deeper than this are not given to the parsers (0: no limit). sonic-rs skips
/// lazily captured and ignored values with unbounded recursion (cloudwego/sonic-rs#232; see
/// tests/fuzz_regressions.rs): a deep enough frame overflows the stack, which aborts the process
/// and would end the run. The limit keeps the run going; inputs over it are counted as skipped.
static MAX_DEPTH: AtomicUsize = AtomicUsize::new(0);

pub fn set_max_depth(depth: usize) {
    MAX_DEPTH.store(depth, Ordering::Relaxed);
}

/// Whether `text` nests `[`/`{` (outside strings) deeper than `limit`.
pub fn nests_deeper_than(text: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in text {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else {
            match b {
                b'"' => in_str = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    false
}

pub(super) fn too_deep(text: &[u8], st: &mut Stats) -> bool {
    let limit = MAX_DEPTH.load(Ordering::Relaxed);
    if limit > 0 && nests_deeper_than(text, limit) {
        st.too_deep += 1;
        true
    } else {
        false
    }
}

/// serde_json's reading of `text`, the reference the parsers are compared with. `Err(None)`:
/// rejected for nesting deeper than serde_json's recursion limit (no verdict), `Err(Some(why))`:
/// not JSON.
pub(super) fn reference(text: &[u8]) -> Result<Value, Option<String>> {
    serde_json::from_slice(text).map_err(|e| {
        let why = e.to_string();
        (!why.contains("recursion limit")).then_some(why)
    })
}

pub fn frame_label(f: &Frame<'_>) -> &'static str {
    match f {
        Frame::Market { .. } => "market",
        Frame::ControlReply { .. } => "control_reply",
        Frame::ErrorReply { .. } => "error_reply",
        Frame::ServerShutdown { .. } => "server_shutdown",
    }
}

/// Target (a): one text frame through `parse_frame` and, for market frames, `Record::encode`.
/// Returns the outcome label (for the mutator's novelty signal).
pub fn frame(text: &[u8], recv_ns: u64, st: &mut Stats) -> (&'static str, &'static str) {
    if too_deep(text, st) {
        return ("too_deep", "-");
    }
    super::usdm::frame(text, recv_ns, st);
    let parsed = parse_frame(text);
    // The nesting limit is the first check after UTF-8, and exact.
    if std::str::from_utf8(text).is_ok() {
        assert_eq!(
            matches!(parsed, Err(ParseError::TooDeep)),
            nests_deeper_than(text, MAX_NESTING),
            "nesting limit on {parsed:?}"
        );
    }
    let label = match &parsed {
        Ok(f) => {
            st.frame.accept(frame_label(f));
            frame_label(f)
        }
        Err(e) => {
            st.frame.reject(e.reason());
            e.reason()
        }
    };
    let Ok(f) = parsed else { return (label, "-") };
    assert!(std::str::from_utf8(text).is_ok(), "parse_frame accepted text that is not UTF-8: {f:?}");
    let doc = match reference(text) {
        Ok(v) => Some(v),
        Err(why) => {
            if let Some(why) = why {
                st.note_lenient("frame", why, text);
            }
            None
        }
    };
    let mut enc = "-";
    match &f {
        Frame::Market { kind, stream_symbol, record } => {
            check_market(*kind, stream_symbol, record);
            if let Some(doc) = &doc {
                let stream = doc.get("stream").and_then(Value::as_str);
                assert_eq!(stream, Some(format!("{stream_symbol}@{kind}").as_str()), "stream field");
                check_against_json(record, &doc["data"]);
            }
            enc = encode(record, recv_ns, st);
        }
        Frame::ControlReply { id, result } => {
            assert_valid_str(result);
            if let Some(doc) = &doc {
                assert!(doc.get("stream").is_none_or(Value::is_null) && doc.get("data").is_none(), "{doc}");
                assert!(doc.get("code").is_none_or(Value::is_null), "control reply with a code: {doc}");
                match reference(result.as_bytes()) {
                    Ok(r) => assert_eq!(Some(&r), doc.get("result"), "result raw text {result:?}"),
                    Err(None) => {}
                    Err(Some(why)) => panic!("control reply result {result:?} is not JSON: {why}"),
                }
                // Integer ids (the only kind we send) come back as such; anything else is None
                // (except `-0`, which Rust's integer parser reads as 0).
                let want = doc.get("id").and_then(Value::as_i64);
                let minus_zero = doc.get("id").and_then(Value::as_f64) == Some(0.0) && *id == Some(0);
                assert!(*id == want || minus_zero, "id {id:?} of {doc}");
            }
        }
        Frame::ErrorReply { code, msg } => {
            assert_valid_str(msg);
            if let Some(doc) = &doc {
                assert!(doc.get("stream").is_none_or(Value::is_null) && doc.get("data").is_none(), "{doc}");
                assert_eq!(Some(*code), doc["code"].as_i64(), "code of {doc}");
                assert_eq!(*msg, doc.get("msg").and_then(Value::as_str).unwrap_or(""), "msg of {doc}");
            }
        }
        Frame::ServerShutdown { event_time_ms } => {
            // Combined (`{"stream":"!serverShutdown","data":{..}}`) or bare, as a raw `/ws`
            // connection gets it (`{"e":"serverShutdown","E":..}`).
            if let Some(doc) = &doc {
                let event = match doc.get("stream").and_then(Value::as_str) {
                    Some(stream) => {
                        assert_eq!(stream, "!serverShutdown", "{doc}");
                        &doc["data"]
                    }
                    None => {
                        assert_eq!(doc["e"].as_str(), Some("serverShutdown"), "{doc}");
                        doc
                    }
                };
                assert_eq!(event["E"].as_i64(), Some(*event_time_ms), "E of {doc}");
            }
        }
    }
    (label, enc)
}

/// Target (b): `parse_payload` with a (mutated) stream name.
pub fn payload(stream: &str, data: &str, recv_ns: u64, st: &mut Stats) -> (&'static str, &'static str) {
    if too_deep(data.as_bytes(), st) {
        return ("too_deep", "-");
    }
    let parsed = parse_payload(stream, data);
    let deep = nests_deeper_than(data.as_bytes(), MAX_NESTING);
    assert_eq!(matches!(parsed, Err(ParseError::TooDeep)), deep, "nesting limit on {parsed:?}");
    let known = stream == "!serverShutdown"
        || stream.split_once('@').and_then(|(_, suffix)| StreamKind::from_suffix(suffix)).is_some();
    assert!(
        deep || matches!(parsed, Err(ParseError::UnknownStream)) != known,
        "stream {stream:?}: known={known}, parse_payload -> {parsed:?}"
    );
    let label = match &parsed {
        Ok(f) => {
            st.payload.accept(frame_label(f));
            frame_label(f)
        }
        Err(e) => {
            st.payload.reject(e.reason());
            e.reason()
        }
    };
    let Ok(f) = parsed else { return (label, "-") };
    let doc = match reference(data.as_bytes()) {
        Ok(v) => Some(v),
        Err(why) => {
            if let Some(why) = why {
                st.note_lenient("payload", format!("{why}; stream {stream:?}"), data.as_bytes());
            }
            None
        }
    };
    let mut enc = "-";
    match &f {
        Frame::Market { kind, stream_symbol, record } => {
            assert_eq!(stream, format!("{stream_symbol}@{kind}"), "stream name split");
            check_market(*kind, stream_symbol, record);
            if let Some(doc) = &doc {
                check_against_json(record, doc);
            }
            enc = encode(record, recv_ns, st);
        }
        Frame::ServerShutdown { event_time_ms } => {
            assert_eq!(stream, "!serverShutdown");
            if let Some(doc) = &doc {
                assert_eq!(doc["E"].as_i64(), Some(*event_time_ms), "E of {doc}");
            }
        }
        other => panic!("parse_payload returned a control frame: {other:?}"),
    }
    (label, enc)
}

/// A `&str` handed out by the parser holds valid UTF-8 (sonic-rs builds some with
/// `from_utf8_unchecked`).
pub(super) fn assert_valid_str(s: &str) {
    assert!(std::str::from_utf8(s.as_bytes()).is_ok(), "invalid UTF-8 in a &str: {:?}", s.as_bytes());
}

fn record_strs<'a>(r: &Record<'a>) -> Vec<&'a str> {
    match r {
        Record::Trade(t) => vec![t.symbol, t.price.as_str(), t.qty.as_str()],
        Record::AggTrade(t) => vec![t.symbol, t.price.as_str(), t.qty.as_str()],
        Record::Kline(k) => vec![
            k.symbol,
            k.interval,
            k.open.as_str(),
            k.high.as_str(),
            k.low.as_str(),
            k.close.as_str(),
            k.volume.as_str(),
            k.quote_volume.as_str(),
            k.taker_buy_volume.as_str(),
            k.taker_buy_quote_volume.as_str(),
        ],
        Record::BookTicker(b) => {
            vec![b.symbol, b.bid_price.as_str(), b.bid_qty.as_str(), b.ask_price.as_str(), b.ask_qty.as_str()]
        }
        Record::DepthUpdate(d) => vec![d.symbol, d.bids.0, d.asks.0],
        Record::MarkPrice(_) | Record::Liquidation(_) => unreachable!("refused by check_market"),
    }
}

/// What the parser promises about a market record, whatever the input.
fn check_market(kind: StreamKind, stream_symbol: &str, record: &Record<'_>) {
    assert_eq!(record.record_type(), kind.record_type(), "record type of {kind}");
    assert!(record.symbol().eq_ignore_ascii_case(stream_symbol), "symbol {:?} on {stream_symbol:?}", record.symbol());
    assert!(!stream_symbol.contains('@'), "stream symbol {stream_symbol:?}");
    // Spot's parser makes spot records only: no USD-M type, no futures-only field.
    match record {
        Record::MarkPrice(_) | Record::Liquidation(_) => panic!("spot's parser made a USD-M record: {record:?}"),
        Record::BookTicker(b) => assert_eq!((b.event_time_ms, b.transaction_time_ms), (None, None), "{record:?}"),
        Record::DepthUpdate(d) => {
            assert_eq!((d.prev_final_update_id, d.transaction_time_ms), (None, None), "{record:?}")
        }
        _ => {}
    }
    for s in record_strs(record) {
        assert_valid_str(s);
    }
    if let (StreamKind::Kline(iv), Record::Kline(k)) = (kind, record) {
        assert_eq!(k.interval, KLINE_INTERVALS[iv as usize], "interval of {kind}");
    }
}

pub(super) fn field<'v>(v: &'v Value, k: &str) -> &'v Value {
    v.get(k).unwrap_or_else(|| panic!("serde_json sees no `{k}` in {v}"))
}

pub(super) fn same_str(v: &Value, k: &str, got: &str) {
    assert_eq!(field(v, k).as_str(), Some(got), "`{k}` in {v}");
}

pub(super) fn same_i64(v: &Value, k: &str, got: i64) {
    assert_eq!(field(v, k).as_i64(), Some(got), "`{k}` in {v}");
}

pub(super) fn same_bool(v: &Value, k: &str, got: bool) {
    assert_eq!(field(v, k).as_bool(), Some(got), "`{k}` in {v}");
}

pub(super) fn same_levels(v: &Value, k: &str, raw: &str) {
    match reference(raw.as_bytes()) {
        Ok(parsed) => assert_eq!(&parsed, field(v, k), "levels `{k}` raw {raw:?}"),
        Err(None) => {}
        Err(Some(why)) => panic!("levels `{k}` raw text {raw:?} is not JSON: {why}"),
    }
}

/// The record holds exactly what serde_json reads in the payload.
fn check_against_json(record: &Record<'_>, d: &Value) {
    match record {
        Record::Trade(t) => {
            same_str(d, "e", "trade");
            same_i64(d, "E", t.event_time_ms);
            same_str(d, "s", t.symbol);
            same_i64(d, "t", t.trade_id);
            same_str(d, "p", t.price.as_str());
            same_str(d, "q", t.qty.as_str());
            same_i64(d, "T", t.trade_time_ms);
            same_bool(d, "m", t.side.as_str() == "sell");
        }
        Record::AggTrade(t) => {
            same_str(d, "e", "aggTrade");
            same_i64(d, "E", t.event_time_ms);
            same_str(d, "s", t.symbol);
            same_i64(d, "a", t.agg_id);
            same_str(d, "p", t.price.as_str());
            same_str(d, "q", t.qty.as_str());
            same_i64(d, "f", t.first_trade_id);
            same_i64(d, "l", t.last_trade_id);
            same_i64(d, "T", t.trade_time_ms);
            same_bool(d, "m", t.side.as_str() == "sell");
        }
        Record::Kline(k) => {
            same_str(d, "e", "kline");
            same_i64(d, "E", k.event_time_ms);
            same_str(d, "s", k.symbol);
            let kk = field(d, "k");
            same_i64(kk, "t", k.open_time_ms);
            same_i64(kk, "T", k.close_time_ms);
            same_str(kk, "i", k.interval);
            same_i64(kk, "f", k.first_trade_id.expect("stream klines carry ids"));
            same_i64(kk, "L", k.last_trade_id.expect("stream klines carry ids"));
            same_str(kk, "o", k.open.as_str());
            same_str(kk, "c", k.close.as_str());
            same_str(kk, "h", k.high.as_str());
            same_str(kk, "l", k.low.as_str());
            same_str(kk, "v", k.volume.as_str());
            same_i64(kk, "n", k.trades);
            same_bool(kk, "x", k.closed);
            same_str(kk, "q", k.quote_volume.as_str());
            same_str(kk, "V", k.taker_buy_volume.as_str());
            same_str(kk, "Q", k.taker_buy_quote_volume.as_str());
        }
        Record::BookTicker(b) => {
            same_i64(d, "u", b.update_id);
            same_str(d, "s", b.symbol);
            same_str(d, "b", b.bid_price.as_str());
            same_str(d, "B", b.bid_qty.as_str());
            same_str(d, "a", b.ask_price.as_str());
            same_str(d, "A", b.ask_qty.as_str());
        }
        Record::DepthUpdate(u) => {
            same_str(d, "e", "depthUpdate");
            same_i64(d, "E", u.event_time_ms);
            same_str(d, "s", u.symbol);
            same_i64(d, "U", u.first_update_id);
            same_i64(d, "u", u.final_update_id);
            same_levels(d, "b", u.bids.0);
            same_levels(d, "a", u.asks.0);
        }
        Record::MarkPrice(_) | Record::Liquidation(_) => unreachable!("refused by check_market"),
    }
}

/// Plain decimal text as the record format documents it: `-?[0-9]+(\.[0-9]+)?`, at most 64
/// bytes. Written independently of `record::is_decimal`.
pub(super) fn plain_decimal(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let mut parts = body.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    s.len() <= 64
        && !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// A symbol that can be a Kafka key and JSON text without escaping, at most Binance's 50 UTF-16
/// units (150 UTF-8 bytes).
pub(super) fn plain_symbol(s: &str) -> bool {
    !s.is_empty() && s.len() <= 150 && s.chars().all(|c| c >= ' ' && c != '"' && c != '\\' && c != '\u{7f}')
}

/// Price levels as documented: a JSON array of `[price, qty]` pairs of plain decimal strings.
/// `None` when the raw text is not JSON at all.
pub(super) fn plain_levels(raw: &str) -> Option<bool> {
    let v: Value = serde_json::from_str(raw).ok()?;
    Some(v.as_array().is_some_and(|levels| {
        levels.iter().all(|l| {
            l.as_array().is_some_and(|pq| pq.len() == 2 && pq.iter().all(|x| x.as_str().is_some_and(plain_decimal)))
        })
    }))
}

/// Whether `encode` should accept the record, by the documented rules.
fn should_encode(r: &Record<'_>) -> bool {
    let decimals: Vec<&str> = match r {
        Record::Trade(t) => vec![t.price.as_str(), t.qty.as_str()],
        Record::AggTrade(t) => vec![t.price.as_str(), t.qty.as_str()],
        Record::Kline(k) => {
            vec![
                k.open.as_str(),
                k.high.as_str(),
                k.low.as_str(),
                k.close.as_str(),
                k.volume.as_str(),
                k.quote_volume.as_str(),
                k.taker_buy_volume.as_str(),
                k.taker_buy_quote_volume.as_str(),
            ]
        }
        Record::BookTicker(b) => {
            vec![b.bid_price.as_str(), b.bid_qty.as_str(), b.ask_price.as_str(), b.ask_qty.as_str()]
        }
        Record::DepthUpdate(_) => vec![],
        Record::MarkPrice(_) | Record::Liquidation(_) => unreachable!("refused by check_market"),
    };
    let levels_ok = match r {
        Record::DepthUpdate(d) => plain_levels(d.bids.0) == Some(true) && plain_levels(d.asks.0) == Some(true),
        _ => true,
    };
    let interval_ok = match r {
        Record::Kline(k) => KLINE_INTERVALS.contains(&k.interval),
        _ => true,
    };
    plain_symbol(r.symbol()) && decimals.iter().all(|d| plain_decimal(d)) && levels_ok && interval_ok
}

const PREFIX: &[u8] = b"<previous record>";

/// `Record::encode`, with and without `backfilled`: appends only; accepts exactly the records
/// the documented rules allow (escaped text inside levels may be refused: it is never needed);
/// the output is JSON holding exactly the record's fields.
fn encode(record: &Record<'_>, recv_ns: u64, st: &mut Stats) -> &'static str {
    let want = should_encode(record);
    let mut label = "";
    for backfilled in [false, true] {
        let mut out = PREFIX.to_vec();
        let res = record.encode(recv_ns, backfilled, &mut out);
        assert!(out.starts_with(PREFIX), "encode overwrote what was in the buffer");
        match res {
            Ok(()) => {
                assert!(want, "encode accepted a record the rules refuse: {record:?}");
                let v: Value = serde_json::from_slice(&out[PREFIX.len()..]).unwrap_or_else(|e| {
                    panic!("encode output is not JSON ({e}): {}", String::from_utf8_lossy(&out[PREFIX.len()..]))
                });
                check_encoded(record, &v, recv_ns, backfilled);
                if !backfilled {
                    st.encode.accept("ok");
                    label = "ok";
                }
            }
            Err(e) => {
                // Escapes in levels are refused by the zero-copy decoder; nothing else may be.
                let escaped_levels =
                    matches!(record, Record::DepthUpdate(d) if d.bids.0.contains('\\') || d.asks.0.contains('\\'));
                assert!(!want || escaped_levels, "encode refused a valid record ({e}): {record:?}");
                if !backfilled {
                    st.encode.reject(e.reason());
                    label = e.reason();
                }
            }
        }
    }
    label
}

fn check_encoded(r: &Record<'_>, v: &Value, recv_ns: u64, backfilled: bool) {
    let obj = v.as_object().unwrap_or_else(|| panic!("encode output is not an object: {v}"));
    same_str(v, "type", r.record_type().as_str());
    same_str(v, "exchange", "binance");
    same_str(v, "symbol", r.symbol());
    assert_eq!(field(v, "recv_time_ns").as_u64(), Some(recv_ns), "recv_time_ns in {v}");
    if backfilled {
        same_bool(v, "backfilled", true);
    } else {
        assert!(v.get("backfilled").is_none(), "backfilled without the flag: {v}");
    }
    let fields = match r {
        Record::Trade(t) => {
            same_i64(v, "trade_id", t.trade_id);
            same_str(v, "price", t.price.as_str());
            same_str(v, "qty", t.qty.as_str());
            same_str(v, "side", t.side.as_str());
            same_i64(v, "trade_time_ms", t.trade_time_ms);
            same_i64(v, "event_time_ms", t.event_time_ms);
            6
        }
        Record::AggTrade(t) => {
            same_i64(v, "agg_id", t.agg_id);
            same_i64(v, "first_trade_id", t.first_trade_id);
            same_i64(v, "last_trade_id", t.last_trade_id);
            same_str(v, "price", t.price.as_str());
            same_str(v, "qty", t.qty.as_str());
            same_str(v, "side", t.side.as_str());
            same_i64(v, "trade_time_ms", t.trade_time_ms);
            same_i64(v, "event_time_ms", t.event_time_ms);
            8
        }
        Record::Kline(k) => {
            same_str(v, "interval", k.interval);
            same_i64(v, "open_time_ms", k.open_time_ms);
            same_i64(v, "close_time_ms", k.close_time_ms);
            same_str(v, "open", k.open.as_str());
            same_str(v, "high", k.high.as_str());
            same_str(v, "low", k.low.as_str());
            same_str(v, "close", k.close.as_str());
            same_str(v, "volume", k.volume.as_str());
            same_str(v, "quote_volume", k.quote_volume.as_str());
            same_i64(v, "trades", k.trades);
            same_str(v, "taker_buy_volume", k.taker_buy_volume.as_str());
            same_str(v, "taker_buy_quote_volume", k.taker_buy_quote_volume.as_str());
            same_bool(v, "closed", k.closed);
            same_i64(v, "first_trade_id", k.first_trade_id.expect("stream klines carry ids"));
            same_i64(v, "last_trade_id", k.last_trade_id.expect("stream klines carry ids"));
            same_i64(v, "event_time_ms", k.event_time_ms);
            16
        }
        Record::BookTicker(b) => {
            same_i64(v, "update_id", b.update_id);
            same_str(v, "bid_price", b.bid_price.as_str());
            same_str(v, "bid_qty", b.bid_qty.as_str());
            same_str(v, "ask_price", b.ask_price.as_str());
            same_str(v, "ask_qty", b.ask_qty.as_str());
            5
        }
        Record::DepthUpdate(d) => {
            same_i64(v, "first_update_id", d.first_update_id);
            same_i64(v, "final_update_id", d.final_update_id);
            same_levels(v, "bids", d.bids.0);
            same_levels(v, "asks", d.asks.0);
            same_i64(v, "event_time_ms", d.event_time_ms);
            5
        }
        Record::MarkPrice(_) | Record::Liquidation(_) => unreachable!("refused by check_market"),
    };
    // type, exchange, symbol, recv_time_ns (+ backfilled): no key missing, none twice.
    let want = fields + 4 + usize::from(backfilled);
    assert_eq!(obj.len(), want, "keys in {v}");
}
