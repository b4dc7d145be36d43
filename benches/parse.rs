//! Parse + normalize + encode, per message type: ours (sonic-rs, borrowed fields, into a reused
//! buffer) against a straightforward serde_json implementation of the same mapping (owned
//! structs in, an owned record serialized out), measured in the same run so the ratio survives
//! a noisy machine.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use marketflow_ingestor::binance::wire::{parse_text, Frame};
use serde::{Deserialize, Serialize};

/// Realistic frames (the simulator's exact shapes, compact as Binance sends them).
fn frames() -> Vec<(&'static str, String)> {
    let m = marketflow_ingestor::sim::Market::new(marketflow_ingestor::sim::SimConfig::default());
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

fn ours(frame: &str, out: &mut Vec<u8>) {
    out.clear();
    match parse_text(frame).unwrap() {
        Frame::Market { record, .. } => record.encode(1_700_000_000_000_000_000, false, out).unwrap(),
        _ => unreachable!(),
    }
}

mod baseline {
    //! The obvious serde_json version: owned `String`s in, owned record out.
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

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_normalize_encode");
    let mut buf = Vec::with_capacity(4096);
    for (name, frame) in frames() {
        // Both implementations must produce the same record, or the comparison means nothing.
        ours(&frame, &mut buf);
        let a: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&baseline::run(frame.as_bytes())).unwrap();
        assert_eq!(a, b, "{name}: ours and the baseline disagree");

        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("sonic_borrowed", name), frame.as_str(), |bch, f| {
            bch.iter(|| ours(black_box(f), &mut buf))
        });
        group.bench_with_input(BenchmarkId::new("serde_json_owned", name), frame.as_bytes(), |bch, f| {
            bch.iter(|| black_box(baseline::run(black_box(f))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
