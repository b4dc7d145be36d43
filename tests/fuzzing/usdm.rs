//! The USD-M target: every text frame of target (a) also goes through the USD-M parser
//! (`binance::usdm::wire::parse_text`, what a USD-M connection runs) and each market record
//! through `Record::encode`. Oracles, as for spot: the nesting limit is exact; a record holds
//! exactly what serde_json reads in the payload; the encoder accepts exactly the records the
//! documented rules allow, and its output is JSON with exactly the record's fields, built here
//! independently of the encoder.

use marketflow_ingestor::binance::usdm::stream::from_suffix;
use marketflow_ingestor::binance::usdm::wire::parse_text;
use marketflow_ingestor::binance::wire::{Frame, ParseError, MAX_NESTING};
use marketflow_ingestor::record::Record;
use serde_json::{json, Map, Value};

use super::targets::{
    assert_valid_str, field, frame_label, nests_deeper_than, plain_decimal, plain_levels, plain_symbol, reference,
    same_bool, same_i64, same_levels, same_str,
};
use super::Stats;

/// An enumeration word as the record format documents it: `[A-Z0-9_]{1,32}`.
fn plain_word(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

pub fn frame(text: &[u8], recv_ns: u64, st: &mut Stats) {
    // A USD-M connection hands the parser WebSocket text, valid UTF-8 by then.
    let Ok(text) = std::str::from_utf8(text) else { return };
    let parsed = parse_text(text);
    assert_eq!(
        matches!(parsed, Err(ParseError::TooDeep)),
        nests_deeper_than(text.as_bytes(), MAX_NESTING),
        "USD-M nesting limit on {parsed:?}"
    );
    match &parsed {
        Ok(f) => st.usdm.accept(frame_label(f)),
        Err(e) => st.usdm.reject(e.reason()),
    }
    let Ok(Frame::Market { kind, stream_symbol, record }) = parsed else { return };
    assert_eq!(from_suffix(&kind.to_string()), Some(kind), "a USD-M kind: {kind}");
    assert_eq!((record.record_type(), record.exchange()), (kind.record_type(), "binance-usdm"));
    assert!(record.symbol().eq_ignore_ascii_case(stream_symbol) || !record.symbol().is_ascii(), "{record:?}");
    let doc = reference(text.as_bytes()).ok();
    if let Some(doc) = &doc {
        assert_eq!(doc["stream"].as_str(), Some(format!("{stream_symbol}@{kind}").as_str()), "stream field");
        check_against_json(&record, &doc["data"]);
    }
    let mut out = Vec::new();
    match record.encode(recv_ns, false, &mut out) {
        Ok(()) => {
            assert!(should_encode(&record), "USD-M encode accepted a record the rules refuse: {record:?}");
            let got: Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {record:?}"));
            if let Some(want) = expected(&record, recv_ns) {
                assert_eq!(got, want, "encoded USD-M record");
            }
            st.usdm.accept("encoded");
        }
        Err(e) => {
            let escaped_levels =
                matches!(record, Record::DepthUpdate(d) if d.bids.0.contains('\\') || d.asks.0.contains('\\'));
            assert!(!should_encode(&record) || escaped_levels, "USD-M encode refused a valid record ({e}): {record:?}");
            st.usdm.reject(e.reason());
        }
    }
}

/// The record holds exactly what serde_json reads in the payload.
fn check_against_json(record: &Record<'_>, d: &Value) {
    for s in strs(record) {
        assert_valid_str(s);
    }
    match record {
        Record::AggTrade(t) => {
            same_str(d, "e", "aggTrade");
            same_i64(d, "E", t.event_time_ms);
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
            let kk = field(d, "k");
            same_i64(kk, "t", k.open_time_ms);
            same_str(kk, "i", k.interval);
            same_str(kk, "c", k.close.as_str());
            same_bool(kk, "x", k.closed);
        }
        Record::BookTicker(b) => {
            same_str(d, "e", "bookTicker");
            same_i64(d, "u", b.update_id);
            same_i64(d, "E", b.event_time_ms.expect("futures bookTicker has E"));
            same_i64(d, "T", b.transaction_time_ms.expect("futures bookTicker has T"));
            same_str(d, "b", b.bid_price.as_str());
            same_str(d, "B", b.bid_qty.as_str());
            same_str(d, "a", b.ask_price.as_str());
            same_str(d, "A", b.ask_qty.as_str());
        }
        Record::DepthUpdate(u) => {
            same_str(d, "e", "depthUpdate");
            same_i64(d, "E", u.event_time_ms);
            same_i64(d, "T", u.transaction_time_ms.expect("futures depth has T"));
            same_i64(d, "U", u.first_update_id);
            same_i64(d, "u", u.final_update_id);
            same_i64(d, "pu", u.prev_final_update_id.expect("futures depth has pu"));
            same_levels(d, "b", u.bids.0);
            same_levels(d, "a", u.asks.0);
        }
        Record::MarkPrice(m) => {
            same_str(d, "e", "markPriceUpdate");
            same_i64(d, "E", m.event_time_ms);
            same_str(d, "s", m.symbol);
            same_str(d, "p", m.mark_price.as_str());
            same_str(d, "i", m.index_price.as_str());
            same_str(d, "P", m.estimated_settle_price.as_str());
            same_str(d, "r", m.funding_rate.as_str());
            same_i64(d, "T", m.next_funding_time_ms);
            assert_eq!(d.get("ap").and_then(Value::as_str), m.mark_price_avg.map(|a| a.as_str()), "ap in {d}");
        }
        Record::Liquidation(l) => {
            same_str(d, "e", "forceOrder");
            same_i64(d, "E", l.event_time_ms);
            let o = field(d, "o");
            same_str(o, "s", l.symbol);
            same_str(o, "S", &l.side.as_str().to_uppercase());
            same_str(o, "o", l.order_type);
            same_str(o, "f", l.time_in_force);
            same_str(o, "q", l.orig_qty.as_str());
            same_str(o, "p", l.price.as_str());
            same_str(o, "ap", l.avg_price.as_str());
            same_str(o, "X", l.status);
            same_str(o, "l", l.last_filled_qty.as_str());
            same_str(o, "z", l.filled_qty.as_str());
            same_i64(o, "T", l.trade_time_ms);
        }
        Record::Trade(_) => panic!("the USD-M parser made a trade record: {record:?}"),
    }
}

fn strs<'a>(r: &Record<'a>) -> Vec<&'a str> {
    match r {
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
        ],
        Record::BookTicker(b) => {
            vec![b.symbol, b.bid_price.as_str(), b.bid_qty.as_str(), b.ask_price.as_str(), b.ask_qty.as_str()]
        }
        Record::DepthUpdate(d) => vec![d.symbol, d.bids.0, d.asks.0],
        Record::MarkPrice(m) => {
            let mut v = vec![
                m.symbol,
                m.mark_price.as_str(),
                m.index_price.as_str(),
                m.estimated_settle_price.as_str(),
                m.funding_rate.as_str(),
            ];
            v.extend(m.mark_price_avg.map(|a| a.as_str()));
            v
        }
        Record::Liquidation(l) => vec![
            l.symbol,
            l.order_type,
            l.time_in_force,
            l.status,
            l.orig_qty.as_str(),
            l.price.as_str(),
            l.avg_price.as_str(),
            l.last_filled_qty.as_str(),
            l.filled_qty.as_str(),
        ],
        Record::Trade(_) => vec![],
    }
}

/// Whether `encode` should accept the record, by the documented rules.
fn should_encode(r: &Record<'_>) -> bool {
    let (decimals, words): (Vec<&str>, Vec<&str>) = match r {
        Record::AggTrade(t) => (vec![t.price.as_str(), t.qty.as_str()], vec![]),
        Record::Kline(k) => (
            vec![
                k.open.as_str(),
                k.high.as_str(),
                k.low.as_str(),
                k.close.as_str(),
                k.volume.as_str(),
                k.quote_volume.as_str(),
                k.taker_buy_volume.as_str(),
                k.taker_buy_quote_volume.as_str(),
            ],
            vec![],
        ),
        Record::BookTicker(b) => {
            (vec![b.bid_price.as_str(), b.bid_qty.as_str(), b.ask_price.as_str(), b.ask_qty.as_str()], vec![])
        }
        Record::DepthUpdate(d) => {
            let ok = plain_levels(d.bids.0) == Some(true) && plain_levels(d.asks.0) == Some(true);
            return ok && plain_symbol(d.symbol);
        }
        Record::MarkPrice(m) => {
            let mut v =
                [m.mark_price, m.index_price, m.estimated_settle_price, m.funding_rate].map(|d| d.as_str()).to_vec();
            v.extend(m.mark_price_avg.map(|a| a.as_str()));
            (v, vec![])
        }
        Record::Liquidation(l) => (
            vec![
                l.orig_qty.as_str(),
                l.price.as_str(),
                l.avg_price.as_str(),
                l.last_filled_qty.as_str(),
                l.filled_qty.as_str(),
            ],
            vec![l.order_type, l.time_in_force, l.status],
        ),
        Record::Trade(_) => (vec![], vec![]),
    };
    let interval_ok = match r {
        Record::Kline(k) => marketflow_ingestor::interval::KLINE_INTERVALS.contains(&k.interval),
        _ => true,
    };
    plain_symbol(r.symbol())
        && decimals.iter().all(|d| plain_decimal(d))
        && words.iter().all(|w| plain_word(w))
        && interval_ok
}

/// The JSON the encoder must write for a USD-M-only record or a futures field set, built from
/// the record's fields here (key for key; `None` for types the spot oracles already cover).
fn expected(r: &Record<'_>, recv_ns: u64) -> Option<Value> {
    let mut m = Map::new();
    m.insert("type".into(), json!(r.record_type().as_str()));
    m.insert("exchange".into(), json!("binance-usdm"));
    m.insert("symbol".into(), json!(r.symbol()));
    match r {
        Record::MarkPrice(p) => {
            m.insert("mark_price".into(), json!(p.mark_price.as_str()));
            m.insert("index_price".into(), json!(p.index_price.as_str()));
            m.insert("estimated_settle_price".into(), json!(p.estimated_settle_price.as_str()));
            m.insert("funding_rate".into(), json!(p.funding_rate.as_str()));
            if let Some(ap) = p.mark_price_avg {
                m.insert("mark_price_avg".into(), json!(ap.as_str()));
            }
            m.insert("next_funding_time_ms".into(), json!(p.next_funding_time_ms));
            m.insert("event_time_ms".into(), json!(p.event_time_ms));
        }
        Record::Liquidation(l) => {
            m.insert("side".into(), json!(l.side.as_str()));
            m.insert("order_type".into(), json!(l.order_type));
            m.insert("time_in_force".into(), json!(l.time_in_force));
            m.insert("orig_qty".into(), json!(l.orig_qty.as_str()));
            m.insert("price".into(), json!(l.price.as_str()));
            m.insert("avg_price".into(), json!(l.avg_price.as_str()));
            m.insert("status".into(), json!(l.status));
            m.insert("last_filled_qty".into(), json!(l.last_filled_qty.as_str()));
            m.insert("filled_qty".into(), json!(l.filled_qty.as_str()));
            m.insert("trade_time_ms".into(), json!(l.trade_time_ms));
            m.insert("event_time_ms".into(), json!(l.event_time_ms));
            m.insert("snapshot".into(), json!(true));
        }
        Record::BookTicker(b) => {
            m.insert("update_id".into(), json!(b.update_id));
            m.insert("bid_price".into(), json!(b.bid_price.as_str()));
            m.insert("bid_qty".into(), json!(b.bid_qty.as_str()));
            m.insert("ask_price".into(), json!(b.ask_price.as_str()));
            m.insert("ask_qty".into(), json!(b.ask_qty.as_str()));
            m.insert("event_time_ms".into(), json!(b.event_time_ms));
            m.insert("transaction_time_ms".into(), json!(b.transaction_time_ms));
        }
        Record::DepthUpdate(d) => {
            m.insert("first_update_id".into(), json!(d.first_update_id));
            m.insert("final_update_id".into(), json!(d.final_update_id));
            m.insert("prev_final_update_id".into(), json!(d.prev_final_update_id));
            m.insert("bids".into(), serde_json::from_str(d.bids.0).ok()?);
            m.insert("asks".into(), serde_json::from_str(d.asks.0).ok()?);
            m.insert("event_time_ms".into(), json!(d.event_time_ms));
            m.insert("transaction_time_ms".into(), json!(d.transaction_time_ms));
        }
        _ => return None,
    }
    m.insert("recv_time_ns".into(), json!(recv_ns));
    Some(Value::Object(m))
}
