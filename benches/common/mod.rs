//! Shared by the benchmarks: realistic frames and the straightforward serde_json baseline.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};

/// Realistic combined frames (the simulator's exact shapes, compact as Binance sends them).
pub fn frames() -> Vec<(&'static str, String)> {
    let m = binance_sim::Market::new(binance_sim::SimConfig::default());
    let mut out = Vec::new();
    for (name, kind) in [
        ("trade", "trade"),
        ("agg_trade", "aggTrade"),
        ("kline", "kline_1m"),
        ("book_ticker", "bookTicker"),
        ("depth_update", "depth@100ms"),
    ] {
        let mut data = String::new();
        m.render(kind.parse().unwrap(), 0, 12345, &mut data);
        out.push((name, format!(r#"{{"stream":"btcusdt@{kind}","data":{data}}}"#)));
    }
    out
}

/// `n` trade frames of symbol btcusdt, as server-to-client (unmasked) WebSocket text frames.
pub fn trade_wire(n: u64) -> Vec<u8> {
    let m = binance_sim::Market::new(binance_sim::SimConfig::default());
    let mut wire = Vec::new();
    for k in 0..n {
        let mut data = String::new();
        m.render("trade".parse().unwrap(), 0, k, &mut data);
        let text = format!(r#"{{"stream":"btcusdt@trade","data":{data}}}"#);
        ws_frame(&mut wire, text.as_bytes());
    }
    wire
}

/// `n` diff-depth frames of symbol btcusdt (`depth@100ms`, each continuing the last), and the
/// first frame's `U`.
pub fn depth_wire(n: u64) -> (Vec<u8>, i64) {
    let m = binance_sim::Market::new(binance_sim::SimConfig::default());
    let mut wire = Vec::new();
    let mut first = None;
    for k in 0..n {
        let mut data = String::new();
        m.render("depth@100ms".parse().unwrap(), 0, k, &mut data);
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        first.get_or_insert(v["U"].as_i64().unwrap());
        let text = format!(r#"{{"stream":"btcusdt@depth@100ms","data":{data}}}"#);
        ws_frame(&mut wire, text.as_bytes());
    }
    (wire, first.unwrap_or_default())
}

/// Appends one final, unmasked text frame.
pub fn ws_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// A read-only in-memory socket (writes, e.g. pongs, are discarded).
pub struct MemSocket(pub std::io::Cursor<Vec<u8>>);

impl std::io::Read for MemSocket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl std::io::Write for MemSocket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The obvious serde_json version of parse + normalize + encode: owned `String`s in, an owned
/// record serialized out.
pub mod baseline {
    use super::*;

    #[derive(Deserialize)]
    pub struct Envelope {
        pub stream: String,
        pub data: serde_json::Value,
    }

    #[derive(Deserialize)]
    struct TradeIn {
        #[serde(rename = "E")]
        e_time: i64,
        s: String,
        t: i64,
        p: String,
        q: String,
        #[serde(rename = "T")]
        t_time: i64,
        m: bool,
    }
    #[derive(Deserialize)]
    struct AggIn {
        #[serde(rename = "E")]
        e_time: i64,
        s: String,
        a: i64,
        p: String,
        q: String,
        f: i64,
        l: i64,
        #[serde(rename = "T")]
        t_time: i64,
        m: bool,
    }
    #[derive(Deserialize)]
    struct KIn {
        t: i64,
        #[serde(rename = "T")]
        close: i64,
        i: String,
        f: i64,
        #[serde(rename = "L")]
        last: i64,
        o: String,
        c: String,
        h: String,
        l: String,
        v: String,
        n: i64,
        x: bool,
        q: String,
        #[serde(rename = "V")]
        tbv: String,
        #[serde(rename = "Q")]
        tbq: String,
    }
    #[derive(Deserialize)]
    struct KlineIn {
        #[serde(rename = "E")]
        e_time: i64,
        s: String,
        k: KIn,
    }
    #[derive(Deserialize)]
    struct BookIn {
        u: i64,
        s: String,
        b: String,
        #[serde(rename = "B")]
        bq: String,
        a: String,
        #[serde(rename = "A")]
        aq: String,
    }
    #[derive(Deserialize)]
    struct DepthIn {
        #[serde(rename = "E")]
        e_time: i64,
        s: String,
        #[serde(rename = "U")]
        first: i64,
        u: i64,
        b: Vec<[String; 2]>,
        a: Vec<[String; 2]>,
    }

    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Out {
        Trade {
            exchange: &'static str,
            symbol: String,
            trade_id: i64,
            price: String,
            qty: String,
            side: &'static str,
            trade_time_ms: i64,
            event_time_ms: i64,
            recv_time_ns: u64,
        },
        AggTrade {
            exchange: &'static str,
            symbol: String,
            agg_id: i64,
            first_trade_id: i64,
            last_trade_id: i64,
            price: String,
            qty: String,
            side: &'static str,
            trade_time_ms: i64,
            event_time_ms: i64,
            recv_time_ns: u64,
        },
        Kline {
            exchange: &'static str,
            symbol: String,
            interval: String,
            open_time_ms: i64,
            close_time_ms: i64,
            open: String,
            high: String,
            low: String,
            close: String,
            volume: String,
            quote_volume: String,
            trades: i64,
            taker_buy_volume: String,
            taker_buy_quote_volume: String,
            closed: bool,
            first_trade_id: i64,
            last_trade_id: i64,
            event_time_ms: i64,
            recv_time_ns: u64,
        },
        BookTicker {
            exchange: &'static str,
            symbol: String,
            update_id: i64,
            bid_price: String,
            bid_qty: String,
            ask_price: String,
            ask_qty: String,
            recv_time_ns: u64,
        },
        DepthUpdate {
            exchange: &'static str,
            symbol: String,
            first_update_id: i64,
            final_update_id: i64,
            bids: Vec<[String; 2]>,
            asks: Vec<[String; 2]>,
            event_time_ms: i64,
            recv_time_ns: u64,
        },
    }

    fn side(m: bool) -> &'static str {
        if m {
            "sell"
        } else {
            "buy"
        }
    }

    pub fn run(frame: &[u8]) -> Vec<u8> {
        let env: Envelope = serde_json::from_slice(frame).unwrap();
        let recv_time_ns = 1_700_000_000_000_000_000;
        let kind = env.stream.split_once('@').unwrap().1;
        let out = match kind {
            "trade" => {
                let t: TradeIn = serde_json::from_value(env.data).unwrap();
                Out::Trade {
                    exchange: "binance",
                    symbol: t.s,
                    trade_id: t.t,
                    price: t.p,
                    qty: t.q,
                    side: side(t.m),
                    trade_time_ms: t.t_time,
                    event_time_ms: t.e_time,
                    recv_time_ns,
                }
            }
            "aggTrade" => {
                let t: AggIn = serde_json::from_value(env.data).unwrap();
                Out::AggTrade {
                    exchange: "binance",
                    symbol: t.s,
                    agg_id: t.a,
                    first_trade_id: t.f,
                    last_trade_id: t.l,
                    price: t.p,
                    qty: t.q,
                    side: side(t.m),
                    trade_time_ms: t.t_time,
                    event_time_ms: t.e_time,
                    recv_time_ns,
                }
            }
            "bookTicker" => {
                let b: BookIn = serde_json::from_value(env.data).unwrap();
                Out::BookTicker {
                    exchange: "binance",
                    symbol: b.s,
                    update_id: b.u,
                    bid_price: b.b,
                    bid_qty: b.bq,
                    ask_price: b.a,
                    ask_qty: b.aq,
                    recv_time_ns,
                }
            }
            k if k.starts_with("kline_") => {
                let w: KlineIn = serde_json::from_value(env.data).unwrap();
                Out::Kline {
                    exchange: "binance",
                    symbol: w.s,
                    interval: w.k.i,
                    open_time_ms: w.k.t,
                    close_time_ms: w.k.close,
                    open: w.k.o,
                    high: w.k.h,
                    low: w.k.l,
                    close: w.k.c,
                    volume: w.k.v,
                    quote_volume: w.k.q,
                    trades: w.k.n,
                    taker_buy_volume: w.k.tbv,
                    taker_buy_quote_volume: w.k.tbq,
                    closed: w.k.x,
                    first_trade_id: w.k.f,
                    last_trade_id: w.k.last,
                    event_time_ms: w.e_time,
                    recv_time_ns,
                }
            }
            _ => {
                let d: DepthIn = serde_json::from_value(env.data).unwrap();
                Out::DepthUpdate {
                    exchange: "binance",
                    symbol: d.s,
                    first_update_id: d.first,
                    final_update_id: d.u,
                    bids: d.b,
                    asks: d.a,
                    event_time_ms: d.e_time,
                    recv_time_ns,
                }
            }
        };
        serde_json::to_vec(&out).unwrap()
    }
}
