//! Each event as Binance writes it: the documented examples' keys, order and JSON types
//! (tests/fixtures/raw/), with this market's values.

use std::fmt::Write as _;

use crate::book::{price_text, qty_text};
use crate::clock::TimeUnit;
use crate::hash::mix;
use crate::kind::{StreamKind, KLINE_INTERVALS};
use crate::market::Market;

impl Market {
    /// Appends the raw payload of event `k` of `kind` for symbol `sym`, times in milliseconds.
    pub fn render(&self, kind: StreamKind, sym: usize, k: u64, out: &mut String) {
        self.render_in(kind, sym, k, TimeUnit::Millisecond, out)
    }

    /// Appends the raw payload of event `k` of `kind` for symbol `sym`, every time field in
    /// `unit` (`E`, `T`, a kline's `t` and `T`).
    pub fn render_in(&self, kind: StreamKind, sym: usize, k: u64, unit: TimeUnit, out: &mut String) {
        let s = self.cfg.symbols[sym].to_uppercase();
        let e = unit.from_us(self.time_us(kind, sym, k));
        let h = mix((sym as u64) << 40 ^ k ^ 0x5555);
        let price = |off: u64| format!("{}.{:08}", 100 * (sym as u64 + 1) + off % 50, h % 100_000_000);
        let _ = match kind {
            StreamKind::Trade => {
                let t = self.expected_trade(sym, k);
                write!(
                    out,
                    r#"{{"e":"trade","E":{e},"s":"{s}","t":{},"p":"{}","q":"{}","T":{},"m":{},"M":true}}"#,
                    t.trade_id,
                    t.price,
                    t.qty,
                    unit.from_us(t.trade_time_us),
                    t.buyer_is_maker
                )
            }
            StreamKind::AggTrade => {
                let (a, p, q, f, l, _, mk) = self.agg_parts(sym, k);
                let t = unit.from_us(self.time_us(kind, sym, k));
                write!(
                    out,
                    r#"{{"e":"aggTrade","E":{e},"s":"{s}","a":{a},"p":"{p}","q":"{q}","f":{f},"l":{l},"T":{t},"m":{mk},"M":true}}"#
                )
            }
            StreamKind::Kline(iv) => {
                let (open, closed) = self.kline_of(iv, k);
                let c = self.candle(sym, iv, open);
                // Updates before the last carry a running close and volume; the closed one the
                // final values REST serves.
                let (close, volume) =
                    if closed { (c.close.clone(), c.volume.clone()) } else { (price(2), format!("{}", h % 1000)) };
                write!(
                    out,
                    r#"{{"e":"kline","E":{e},"s":"{s}","k":{{"t":{},"T":{},"s":"{s}","i":"{}","f":{},"L":{},"o":"{}","c":"{close}","h":"{}","l":"{}","v":"{volume}","n":{},"x":{closed},"q":"{}","V":"{}","Q":"{}","B":"0"}}}}"#,
                    unit.from_ms(open),
                    unit.last_before_ms(open + Market::kline_len(iv)),
                    KLINE_INTERVALS[iv as usize],
                    c.first_trade_id,
                    c.first_trade_id + c.trades - 1,
                    c.open,
                    c.high,
                    c.low,
                    c.trades,
                    c.quote_volume,
                    c.taker_buy_volume,
                    c.taker_buy_quote_volume,
                )
            }
            StreamKind::BookTicker => {
                // The best levels of the book after depth event k (bookTicker keeps the depth
                // streams' pace), with that event's update id: one id space, as on Binance.
                let (bids, asks) = self.book.top(sym, k + 1, 1);
                // An empty side (a book a level or two deep can have one) reads as zeros.
                let level = |l: Option<&(i64, u64)>| {
                    l.map_or((price_text(0), qty_text(0)), |l| (price_text(l.0), qty_text(l.1)))
                };
                let ((b, bq), (a, aq)) = (level(bids.first()), level(asks.first()));
                let (_, u) = Market::depth_update_ids(sym, k);
                write!(out, r#"{{"u":{u},"s":"{s}","b":"{b}","B":"{bq}","a":"{a}","A":"{aq}"}}"#)
            }
            StreamKind::Depth | StreamKind::Depth100ms => {
                let (first, last) = Market::depth_update_ids(sym, k);
                let d = self.book.diff(sym, k);
                let _ = write!(out, r#"{{"e":"depthUpdate","E":{e},"s":"{s}","U":{first},"u":{last},"b":"#);
                write_levels(out, &d.bids);
                out.push_str(r#","a":"#);
                write_levels(out, &d.asks);
                out.push('}');
                Ok(())
            }
        };
    }
}

/// `[["20000.01000000","1.50000000"],...]`
fn write_levels(out: &mut String, levels: &[(i64, u64)]) {
    out.push('[');
    for (n, &(i, q)) in levels.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        // The texts of `price_text` and `qty_text`, written in place.
        let _ = write!(out, r#"["{}.{:02}000000","{}.{:05}000"]"#, i / 100, i % 100, q / 100_000, q % 100_000);
    }
    out.push(']');
}

/// The `serverShutdown` event (README §2.1): raw, or wrapped for a combined stream under the
/// stream name `!serverShutdown`, as Binance's own example.
pub(crate) fn server_shutdown(combined: bool, event_time: i64) -> String {
    if combined {
        format!(r#"{{"stream":"!serverShutdown","data":{{"e":"serverShutdown","E":{event_time}}}}}"#)
    } else {
        format!(r#"{{"e":"serverShutdown","E":{event_time}}}"#)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;
    use serde_json::Value;

    /// The JSON type of every field, recursively: `{"E":"number","s":"string",...}`.
    fn shape(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
            // Binance's arrays here are uniform (depth levels): the first element stands for all.
            Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
            Value::String(_) => "string".into(),
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer".into(),
            Value::Number(_) => "float".into(),
            Value::Bool(_) => "bool".into(),
            Value::Null => "null".into(),
        }
    }

    fn fixture(path: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(path);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    /// Binance's documented example payloads (tests/fixtures/raw/, copied from its API docs)
    /// give the keys and JSON types every rendered event must have, whatever the values.
    #[test]
    fn every_payload_has_the_documented_keys_and_types() {
        let m = Market::new(SimConfig::default());
        for (kind, name) in [
            (StreamKind::Trade, "trade"),
            (StreamKind::AggTrade, "aggTrade"),
            (StreamKind::Kline(1), "kline_1m"),
            (StreamKind::BookTicker, "bookTicker"),
            (StreamKind::Depth, "depth"),
            (StreamKind::Depth100ms, "depth"),
        ] {
            let want = shape(&fixture(&format!("raw/{name}.json")));
            for unit in [TimeUnit::Millisecond, TimeUnit::Microsecond] {
                for (sym, k) in [(0, 0), (1, 7), (2, 12_345)] {
                    let mut s = String::new();
                    m.render_in(kind, sym, k, unit, &mut s);
                    let got: Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{kind}: {e}: {s}"));
                    assert_eq!(shape(&got), want, "{kind} event {k}: {s}");
                }
            }
        }
    }

    /// The same event in microseconds: every time field is the millisecond one times 1000 plus
    /// the sub-millisecond part, nothing else changes.
    #[test]
    fn microseconds_change_every_time_field_and_nothing_else() {
        let m = Market::new(SimConfig { trade_rate: 30_000.0, aux_rate: 3_000.0, ..SimConfig::default() });
        let times = |kind: StreamKind| -> &'static [&'static str] {
            match kind {
                StreamKind::Kline(_) => &["/E", "/k/t", "/k/T"],
                StreamKind::BookTicker => &[],
                StreamKind::Depth | StreamKind::Depth100ms => &["/E"],
                _ => &["/E", "/T"],
            }
        };
        let mut sub_ms = 0;
        for kind in StreamKind::all() {
            for k in [0, 1, 2, 999, 4_321] {
                let (mut ms, mut us) = (String::new(), String::new());
                m.render_in(kind, 2, k, TimeUnit::Millisecond, &mut ms);
                m.render_in(kind, 2, k, TimeUnit::Microsecond, &mut us);
                let (mut ms, mut us): (Value, Value) =
                    (serde_json::from_str(&ms).unwrap(), serde_json::from_str(&us).unwrap());
                for field in times(kind) {
                    let (a, b) =
                        (ms.pointer(field).unwrap().as_i64().unwrap(), us.pointer(field).unwrap().as_i64().unwrap());
                    assert!(a > 1_600_000_000_000 && a < 1_600_000_000_000_000, "{kind} {field}: {a} is milliseconds");
                    assert_eq!(b.div_euclid(1000), a, "{kind} {field}: {b} is the same instant in microseconds");
                    sub_ms += usize::from(b % 1000 != 0);
                    *ms.pointer_mut(field).unwrap() = Value::Null;
                    *us.pointer_mut(field).unwrap() = Value::Null;
                }
                assert_eq!(ms, us, "{kind}: only time fields differ");
            }
        }
        assert!(sub_ms > 10, "microseconds carry sub-millisecond time ({sub_ms} fields)");
        let mut s = String::new();
        m.render_in(StreamKind::Kline(1), 0, 5, TimeUnit::Microsecond, &mut s);
        let v: Value = serde_json::from_str(&s).unwrap();
        let (t, close) = (v["k"]["t"].as_i64().unwrap(), v["k"]["T"].as_i64().unwrap());
        assert_eq!((t % 60_000_000, close - t), (0, 60_000_000 - 1), "a 1m candle in microseconds: {s}");
    }

    #[test]
    fn server_shutdown_is_binance_s_example() {
        let combined = fixture("combined/serverShutdown.json");
        let e = combined["data"]["E"].as_i64().unwrap();
        let ours: Value = serde_json::from_str(&server_shutdown(true, e)).unwrap();
        assert_eq!(ours, combined, "the combined form, stream name `!serverShutdown`");
        let raw: Value = serde_json::from_str(&server_shutdown(false, e)).unwrap();
        assert_eq!(raw, fixture("raw/serverShutdown.json"));
        // Key order too: Binance's text, byte for byte once whitespace is gone.
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/combined/serverShutdown.json");
        let text: String = std::fs::read_to_string(path).unwrap().split_whitespace().collect();
        assert_eq!(server_shutdown(true, e), text);
    }

    #[test]
    fn book_ticker_shows_the_best_levels_of_the_depth_book() {
        let m = Market::new(SimConfig::default());
        for k in [0, 10, 1_000] {
            let mut s = String::new();
            m.render(StreamKind::BookTicker, 1, k, &mut s);
            let v: Value = serde_json::from_str(&s).unwrap();
            let (_, u) = Market::depth_update_ids(1, k);
            let book = m.book_at(1, u);
            assert_eq!(v["u"].as_i64(), Some(u), "{s}");
            assert_eq!(
                (v["b"].as_str().unwrap(), v["B"].as_str().unwrap()),
                (book.bids[0].0.as_str(), book.bids[0].1.as_str())
            );
            assert_eq!(
                (v["a"].as_str().unwrap(), v["A"].as_str().unwrap()),
                (book.asks[0].0.as_str(), book.asks[0].1.as_str())
            );
        }
    }

    #[test]
    fn a_candle_closes_once_and_its_closed_update_carries_the_final_values() {
        let m = Market::new(SimConfig { aux_rate: 100.0, ..SimConfig::default() });
        let iv = 0; // 1 s candles: 100 updates each at this rate
        let closed: Vec<u64> = (0..1_000).filter(|&k| m.kline_of(iv, k).1).collect();
        assert!(closed.len() >= 8, "{closed:?}");
        for k in closed {
            let (open, _) = m.kline_of(iv, k);
            let mut s = String::new();
            m.render(StreamKind::Kline(iv), 0, k, &mut s);
            let v: Value = serde_json::from_str(&s).unwrap();
            let c = m.candle(0, iv, open);
            assert_eq!((v["k"]["x"].as_bool(), v["k"]["t"].as_i64()), (Some(true), Some(open)), "{s}");
            assert_eq!((v["k"]["c"].as_str(), v["k"]["v"].as_str()), (Some(c.close.as_str()), Some(c.volume.as_str())));
            assert_eq!(m.kline_of(iv, k + 1).0, open + Market::kline_len(iv), "the next update opens the next candle");
        }
    }
}
