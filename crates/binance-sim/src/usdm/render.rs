//! Each USD-M event as Binance writes it: the documented examples' keys, order and JSON types
//! (tests/fixtures/usdm/), with this market's values. Times are milliseconds (USD-M documents
//! no `timeUnit`); klines are spot's payload and rendered by `render.rs`.

use std::fmt::Write as _;

use super::market::{price_text, qty_text, ENGINE_LAG_MS};
use crate::kind::StreamKind;
use crate::market::Market;

impl Market {
    /// Appends the raw payload of USD-M event `k` of `kind` for symbol `sym`.
    pub(crate) fn render_usdm(&self, kind: StreamKind, sym: usize, k: u64, out: &mut String) {
        let s = self.cfg.symbols[sym].to_uppercase();
        let e = self.time_ms(kind, sym, k);
        let _ = match kind {
            StreamKind::AggTrade => {
                let t = self.expected_agg_trade(sym, k);
                write!(
                    out,
                    r#"{{"e":"aggTrade","E":{},"s":"{s}","a":{},"p":"{}","q":"{}","f":{},"l":{},"T":{},"m":{}}}"#,
                    t.event_time_ms,
                    t.agg_id,
                    t.price,
                    t.qty,
                    t.first_trade_id,
                    t.last_trade_id,
                    t.trade_time_ms,
                    t.buyer_is_maker
                )
            }
            StreamKind::Depth | StreamKind::Depth100ms | StreamKind::Depth500ms => {
                let (first, last, pu) = Market::usdm_depth_ids(sym, k);
                let d = self.book.diff(sym, k);
                let t = e - ENGINE_LAG_MS;
                let _ = write!(
                    out,
                    r#"{{"e":"depthUpdate","E":{e},"T":{t},"s":"{s}","U":{first},"u":{last},"pu":{pu},"b":"#
                );
                write_levels(out, &d.bids);
                out.push_str(r#","a":"#);
                write_levels(out, &d.asks);
                out.push('}');
                Ok(())
            }
            StreamKind::BookTicker => {
                // The best levels after depth event k, with its `u` (one id space, as on Binance).
                let (bids, asks) = self.book.top(sym, k + 1, 1);
                let level = |l: Option<&(i64, u64)>| {
                    l.map_or((price_text(0), qty_text(0)), |l| (price_text(l.0), qty_text(l.1)))
                };
                let ((b, bq), (a, aq)) = (level(bids.first()), level(asks.first()));
                let (_, u, _) = Market::usdm_depth_ids(sym, k);
                let t = e - ENGINE_LAG_MS;
                write!(
                    out,
                    r#"{{"e":"bookTicker","u":{u},"E":{e},"T":{t},"s":"{s}","b":"{b}","B":"{bq}","a":"{a}","A":"{aq}"}}"#
                )
            }
            StreamKind::MarkPrice | StreamKind::MarkPrice1s => {
                let m = self.expected_mark_price(sym, kind, k);
                write!(
                    out,
                    r#"{{"e":"markPriceUpdate","E":{},"s":"{s}","p":"{}","i":"{}","P":"{}","r":"{}","T":{}}}"#,
                    m.event_time_ms,
                    m.mark_price,
                    m.index_price,
                    m.settle_price,
                    m.funding_rate,
                    m.next_funding_time_ms
                )
            }
            StreamKind::ForceOrder => {
                let l = self.expected_liquidation(sym, k);
                write!(
                    out,
                    r#"{{"e":"forceOrder","E":{},"o":{{"s":"{s}","S":"{}","o":"{}","f":"{}","q":"{}","p":"{}","ap":"{}","X":"{}","l":"{}","z":"{}","T":{}}}}}"#,
                    l.event_time_ms,
                    l.side,
                    l.order_type,
                    l.time_in_force,
                    l.orig_qty,
                    l.price,
                    l.avg_price,
                    l.status,
                    l.last_filled_qty,
                    l.filled_qty,
                    l.trade_time_ms
                )
            }
            // Not USD-M streams (`streams.rs` never subscribes them); klines go to `render.rs`.
            StreamKind::Trade | StreamKind::Kline(_) => Ok(()),
        };
    }
}

/// `[["20000.01","1.50000"],...]`
fn write_levels(out: &mut String, levels: &[(i64, u64)]) {
    out.push('[');
    for (n, &(i, q)) in levels.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"["{}","{}"]"#, price_text(i), qty_text(q));
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;
    use serde_json::Value;

    /// The JSON type of every field, recursively, arrays by their first element.
    fn shape(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
            Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
            Value::String(_) => "string".into(),
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer".into(),
            Value::Number(_) => "float".into(),
            Value::Bool(_) => "bool".into(),
            Value::Null => "null".into(),
        }
    }

    /// Every object key in the order the text has it (serde_json's map sorts them), with its
    /// nesting depth: `["1:e", "1:E", "1:o", "2:s", ...]`.
    fn keys_in_order(text: &str) -> Vec<String> {
        let (mut keys, mut depth, mut chars) = (Vec::new(), 0, text.chars().peekable());
        let mut last_string: Option<String> = None;
        while let Some(c) = chars.next() {
            match c {
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                '"' => {
                    let mut s = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => s.extend(chars.next()),
                            '"' => break,
                            c => s.push(c),
                        }
                    }
                    last_string = Some(s);
                    continue;
                }
                ':' => keys.extend(last_string.take().map(|k| format!("{depth}:{k}"))),
                _ => {}
            }
            last_string = None;
        }
        keys
    }

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/usdm").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Binance's documented USD-M examples (tests/fixtures/usdm/) give the keys, their order
    /// and JSON types every rendered event must have, whatever the values.
    #[test]
    fn every_usdm_payload_has_the_documented_keys_order_and_types() {
        let m = Market::usdm(SimConfig { aux_rate: 50.0, ..SimConfig::usdm_market() });
        for (kind, name) in [
            (StreamKind::AggTrade, "aggTrade"),
            (StreamKind::Depth, "depth"),
            (StreamKind::Depth100ms, "depth"),
            (StreamKind::Depth500ms, "depth"),
            (StreamKind::BookTicker, "bookTicker"),
            (StreamKind::MarkPrice, "markPrice"),
            (StreamKind::MarkPrice1s, "markPrice"),
            (StreamKind::ForceOrder, "forceOrder"),
            (StreamKind::Kline(1), "kline_1m"),
        ] {
            let text = fixture(&format!("{name}.json"));
            let want: Value = serde_json::from_str(&text).unwrap();
            for (sym, k) in [(0, 0), (1, 7), (2, 12_345)] {
                let mut s = String::new();
                m.render(kind, sym, k, &mut s);
                let got: Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{kind}: {e}: {s}"));
                assert_eq!(shape(&got), shape(&want), "{kind} event {k}: {s}");
                assert_eq!(keys_in_order(&s), keys_in_order(&text), "{kind} event {k}: key order");
            }
        }
        assert_eq!(keys_in_order(r#"{"e":"a:b","o":{"x\"y":1}}"#), ["1:e", "1:o", "2:x\"y"]);
    }

    /// The futures depth stream is the book's own account: its levels are the book's change,
    /// and bookTicker shows the book's best levels with that event's `u`.
    #[test]
    fn depth_and_book_ticker_tell_the_book_s_story_in_futures_text() {
        let m = Market::usdm(SimConfig::usdm_market());
        let mut prev_u = Market::trade_id_base(1) - 1;
        for k in 0..300 {
            let mut s = String::new();
            m.render(StreamKind::Depth100ms, 1, k, &mut s);
            let v: Value = serde_json::from_str(&s).unwrap();
            assert_eq!(v["pu"].as_i64(), Some(prev_u), "{s}");
            prev_u = v["u"].as_i64().unwrap();
            assert_eq!(v["E"].as_i64().unwrap() - v["T"].as_i64().unwrap(), ENGINE_LAG_MS);
            let mut t = String::new();
            m.render(StreamKind::BookTicker, 1, k, &mut t);
            let bt: Value = serde_json::from_str(&t).unwrap();
            let book = m.book_at(1, prev_u);
            assert_eq!(bt["u"].as_i64(), Some(prev_u));
            assert_eq!(
                (bt["b"].as_str().unwrap(), bt["B"].as_str().unwrap()),
                (book.bids[0].0.as_str(), book.bids[0].1.as_str())
            );
            assert_eq!(
                (bt["a"].as_str().unwrap(), bt["A"].as_str().unwrap()),
                (book.asks[0].0.as_str(), book.asks[0].1.as_str())
            );
        }
        let book = m.book_at(1, prev_u);
        assert!(
            book.bids
                .iter()
                .all(|(p, q)| p.split('.').nth(1).map(str::len) == Some(2)
                    && q.split('.').nth(1).map(str::len) == Some(5))
        );
    }
}
