//! The simulated market: a pure function of (symbol, sequence number, start time), so every
//! connection and the REST endpoints agree, and tests can recompute what was sent.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Instant;

use super::SimConfig;
use crate::kind::{interval_ms, StreamKind, KLINE_INTERVALS};

/// A trade as the simulator sends it, for tests to compare against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedTrade {
    pub symbol: String,
    pub trade_id: i64,
    pub price: String,
    pub qty: String,
    pub buyer_is_maker: bool,
    pub trade_time_ms: i64,
}

/// A candle's final values, as the simulator publishes them closed and serves them over REST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedCandle {
    pub open_time_ms: i64,
    pub close_time_ms: i64,
    pub open: String,
    pub high: String,
    pub low: String,
    pub close: String,
    pub volume: String,
    pub quote_volume: String,
    pub trades: i64,
    pub taker_buy_volume: String,
    pub taker_buy_quote_volume: String,
    pub first_trade_id: i64,
}

/// SplitMix64: cheap, well-mixed, deterministic.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The deterministic market.
pub struct Market {
    pub cfg: SimConfig,
    start: OnceLock<(Instant, i64)>,
    /// Events sent over all connections (for logs and tests).
    pub sent: AtomicU64,
    /// Bumped to make every connection drop abruptly (no close frame).
    pub(crate) drop_generation: AtomicU64,
    /// Bumped to make every connection announce `serverShutdown` and close soon after.
    pub(crate) shutdown_generation: AtomicU64,
    /// WebSocket connections accepted so far.
    pub connections: AtomicU64,
    /// Connections that went silent (the `silence` fault) so far.
    pub silenced: AtomicU64,
}

/// Whether `k` falls in the last `len` of every `period` (the simulator's skip windows).
fn in_window(window: Option<(u64, u64)>, k: u64) -> bool {
    window.is_some_and(|(period, len)| period > 0 && k % period >= period.saturating_sub(len))
}

impl Market {
    pub fn new(cfg: SimConfig) -> Market {
        Market {
            cfg,
            start: OnceLock::new(),
            sent: AtomicU64::new(0),
            drop_generation: AtomicU64::new(0),
            shutdown_generation: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            silenced: AtomicU64::new(0),
        }
    }

    /// Whether trade `k` is left out of the stream (REST still has it unless `rest_lacks`).
    pub fn stream_skips(&self, k: u64) -> bool {
        in_window(self.cfg.stream_skip, k)
    }

    /// Whether event `k` of `kind` is left out of the stream (REST still has it).
    pub fn stream_omits(&self, kind: StreamKind, k: u64) -> bool {
        match kind {
            StreamKind::Trade => self.stream_skips(k),
            StreamKind::Kline(iv) => {
                let (open, _) = self.kline_of(iv, k);
                self.cfg.kline_skip.is_some() && in_window(self.cfg.kline_skip, self.candle_index(iv, open))
            }
            _ => false,
        }
    }

    /// Length of a candle of interval `iv` in ms (a month counts as 30 days here).
    pub fn kline_len(iv: u8) -> i64 {
        interval_ms(iv)
    }

    /// Kline event `k`: the open time of its candle and whether it is the candle's last (closed)
    /// update. Events are spread evenly in time; a candle holds those whose event time falls in it.
    pub(crate) fn kline_of(&self, iv: u8, k: u64) -> (i64, bool) {
        let len = Self::kline_len(iv);
        let kind = StreamKind::Kline(iv);
        let (e, next) = (self.time_ms(kind, k), self.time_ms(kind, k + 1));
        let open = e - e.rem_euclid(len);
        (open, next - next.rem_euclid(len) != open)
    }

    /// Open time of the first candle the stream touched.
    pub fn first_candle(&self, iv: u8) -> i64 {
        self.kline_of(iv, 0).0
    }

    /// Candle number, counted from the first candle.
    pub fn candle_index(&self, iv: u8, open: i64) -> u64 {
        ((open - self.first_candle(iv)) / Self::kline_len(iv)).max(0) as u64
    }

    /// The final values of the candle of interval `iv` opening at `open`: (open, high, low,
    /// close, volume, quote volume, trades, taker buy volume, taker buy quote volume, first
    /// trade id). Both the closed stream update and REST's `/api/v3/klines` carry exactly these.
    pub fn candle(&self, sym: usize, iv: u8, open: i64) -> ExpectedCandle {
        let h = mix((sym as u64) << 40 ^ (iv as u64) << 56 ^ open as u64);
        let p = |off: u64| format!("{}.{:08}", 100 * (sym as u64 + 1) + off, h % 100_000_000);
        let first_trade_id = Self::trade_id_base(sym) + 100 * self.candle_index(iv, open) as i64;
        ExpectedCandle {
            open_time_ms: open,
            close_time_ms: open + Self::kline_len(iv) - 1,
            open: p(1),
            high: p(3),
            low: p(0),
            close: p(2),
            volume: format!("{}.{:03}", 1000 + h % 1000, h % 997),
            quote_volume: format!("{}.0000", h % 100_000),
            trades: 100,
            taker_buy_volume: format!("{}.5", 500 + h % 100),
            taker_buy_quote_volume: format!("{}.500", h % 10_000),
            first_trade_id,
        }
    }

    /// Whether trade `k` is missing from REST too: truly unrecoverable.
    pub fn rest_lacks(&self, k: u64) -> bool {
        in_window(self.cfg.rest_missing, k)
    }

    /// Events of `kind` generated so far for one symbol (REST serves up to this).
    pub fn generated(&self, kind: StreamKind) -> u64 {
        self.available(kind, Instant::now())
    }

    /// Aggregate trade `k` of a symbol: (agg id, price, qty, first trade id, last trade id, time, maker).
    pub fn agg_parts(&self, sym: usize, k: u64) -> (i64, String, String, i64, i64, i64, bool) {
        let t = self.time_ms(StreamKind::AggTrade, k);
        let h = mix((sym as u64) << 40 ^ k ^ 0x5555);
        let first = Self::trade_id_base(sym) + 2 * k as i64;
        (
            Self::trade_id_base(sym) + k as i64,
            format!("{}.{:08}", 100 * (sym as u64 + 1) + h % 50, h % 100_000_000),
            format!("{}.{:03}", h % 10, h % 1000),
            first,
            first + 1,
            t,
            h & 1 == 1,
        )
    }

    pub fn symbol_index(&self, s: &str) -> Option<usize> {
        self.cfg.symbols.iter().position(|x| x == s)
    }

    /// First trade id of a symbol: symbols get disjoint id ranges so a mix-up cannot go unseen.
    pub fn trade_id_base(sym: usize) -> i64 {
        (sym as i64 + 1) * 1_000_000_000
    }

    fn per_symbol_trade_rate(&self) -> f64 {
        self.cfg.trade_rate / self.cfg.symbols.len().max(1) as f64
    }

    /// Starts the clock (first subscription); later calls keep the first start.
    fn started(&self) -> (Instant, i64) {
        *self.start.get_or_init(|| (Instant::now(), crate::now_ms()))
    }

    /// Trades per symbol the market will ever generate (`None` = unbounded).
    pub fn total_trades_per_symbol(&self) -> Option<u64> {
        self.cfg.duration.map(|d| (d.as_secs_f64() * self.per_symbol_trade_rate()).floor() as u64)
    }

    pub(crate) fn rate_for(&self, kind: StreamKind) -> f64 {
        match kind {
            StreamKind::Trade => self.per_symbol_trade_rate(),
            _ => self.cfg.aux_rate,
        }
    }

    /// Events of `kind` per symbol generated by `now`.
    pub(crate) fn available(&self, kind: StreamKind, now: Instant) -> u64 {
        let (t0, _) = self.started();
        let mut secs = now.saturating_duration_since(t0).as_secs_f64();
        if let Some(d) = self.cfg.duration {
            secs = secs.min(d.as_secs_f64());
        }
        (secs * self.rate_for(kind)).floor() as u64
    }

    /// Event time (ms) of event `k` of `kind`.
    pub(crate) fn time_ms(&self, kind: StreamKind, k: u64) -> i64 {
        let (_, epoch) = self.started();
        // Event k becomes available once k+1 intervals have passed; stamp it with that instant.
        epoch + ((k + 1) as f64 * 1000.0 / self.rate_for(kind)) as i64
    }

    fn trade_parts(&self, sym: usize, k: u64) -> (i64, u64, u64, bool, i64) {
        let h = mix((sym as u64) << 40 ^ k);
        let id = Self::trade_id_base(sym) + k as i64;
        let price_cents = 1_000_000 * (sym as u64 + 1) + h % 100_000;
        let qty_units = 1 + (h >> 20) % 99_999_999;
        (id, price_cents, qty_units, (h >> 60) & 1 == 1, self.time_ms(StreamKind::Trade, k))
    }

    /// Exactly what trade `k` of symbol `sym` looks like on the wire.
    pub fn expected_trade(&self, sym: usize, k: u64) -> ExpectedTrade {
        let (id, p, q, m, t) = self.trade_parts(sym, k);
        ExpectedTrade {
            symbol: self.cfg.symbols[sym].to_uppercase(),
            trade_id: id,
            price: format!("{}.{:02}000000", p / 100, p % 100),
            qty: format!("0.{q:08}"),
            buyer_is_maker: m,
            trade_time_ms: t,
        }
    }

    /// Appends the raw payload of event `k` of `kind` for symbol `sym`.
    pub fn render(&self, kind: StreamKind, sym: usize, k: u64, out: &mut String) {
        use std::fmt::Write as _;
        let s = self.cfg.symbols[sym].to_uppercase();
        let e = self.time_ms(kind, k);
        let h = mix((sym as u64) << 40 ^ k ^ 0x5555);
        let price = |off: u64| format!("{}.{:08}", 100 * (sym as u64 + 1) + off % 50, h % 100_000_000);
        let _ = match kind {
            StreamKind::Trade => {
                let t = self.expected_trade(sym, k);
                write!(
                    out,
                    r#"{{"e":"trade","E":{e},"s":"{s}","t":{},"p":"{}","q":"{}","T":{},"m":{},"M":true}}"#,
                    t.trade_id, t.price, t.qty, t.trade_time_ms, t.buyer_is_maker
                )
            }
            StreamKind::AggTrade => {
                let (a, p, q, f, l, t, mk) = self.agg_parts(sym, k);
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
                    r#"{{"e":"kline","E":{e},"s":"{s}","k":{{"t":{open},"T":{},"s":"{s}","i":"{}","f":{},"L":{},"o":"{}","c":"{close}","h":"{}","l":"{}","v":"{volume}","n":{},"x":{closed},"q":"{}","V":"{}","Q":"{}","B":"0"}}}}"#,
                    c.close_time_ms,
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
            StreamKind::BookTicker => write!(
                out,
                r#"{{"u":{},"s":"{s}","b":"{}","B":"{}.21000000","a":"{}","A":"{}.66000000"}}"#,
                Self::trade_id_base(sym) + k as i64,
                price(0),
                h % 100,
                price(1),
                h % 77
            ),
            StreamKind::Depth | StreamKind::Depth100ms => {
                let first = Self::trade_id_base(sym) + 3 * k as i64;
                write!(
                    out,
                    r#"{{"e":"depthUpdate","E":{e},"s":"{s}","U":{first},"u":{},"b":[["{}","10"],["{}","0.00000000"]],"a":[["{}","100"]]}}"#,
                    first + 2,
                    price(0),
                    price(3),
                    price(1)
                )
            }
        };
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

    /// Binance's documented example payloads (tests/fixtures/raw/, copied from its API docs)
    /// give the keys and JSON types every rendered event must have, whatever the values.
    #[test]
    fn every_payload_has_the_documented_keys_and_types() {
        let raw = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/raw");
        let m = Market::new(SimConfig::default());
        for (kind, fixture) in [
            (StreamKind::Trade, "trade"),
            (StreamKind::AggTrade, "aggTrade"),
            (StreamKind::Kline(1), "kline_1m"),
            (StreamKind::BookTicker, "bookTicker"),
            (StreamKind::Depth, "depth"),
            (StreamKind::Depth100ms, "depth"),
        ] {
            let path = raw.join(format!("{fixture}.json"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let want = shape(&serde_json::from_str(&text).unwrap());
            for (sym, k) in [(0, 0), (1, 7), (2, 12_345)] {
                let mut s = String::new();
                m.render(kind, sym, k, &mut s);
                let got: Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{kind}: {e}: {s}"));
                assert_eq!(shape(&got), want, "{kind} event {k}: {s}");
            }
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
