//! USD-M parse + normalize + encode, per payload type: ours (`binance::usdm::wire`: sonic-rs,
//! borrowed fields, into a reused buffer) against the obvious serde_json version of the same
//! mapping (`serde_json::from_str` of the frame into a typed struct, an owned record serialized
//! out), in the same run so the ratio survives a noisy machine. Frames are the simulator's
//! USD-M payloads (Binance's documented shapes), compact as Binance sends them.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use marketflow_ingestor::binance::usdm::wire::parse_text;
use marketflow_ingestor::binance::wire::Frame;

const RECV: u64 = 1_700_000_000_000_000_000;

fn frames() -> Vec<(&'static str, String)> {
    let m = binance_sim::Market::usdm(binance_sim::SimConfig::usdm_market());
    let mut out = Vec::new();
    for (name, kind) in [
        ("agg_trade", "aggTrade"),
        ("kline", "kline_1m"),
        ("book_ticker", "bookTicker"),
        ("depth_update", "depth@100ms"),
        ("mark_price", "markPrice@1s"),
        ("liquidation", "forceOrder"),
    ] {
        let sim_kind = binance_sim::usdm_kinds().find(|k| k.to_string() == kind).unwrap();
        let mut data = String::new();
        m.render(sim_kind, 0, 12345, &mut data);
        out.push((name, format!(r#"{{"stream":"btcusdt@{kind}","data":{data}}}"#)));
    }
    out
}

fn ours(frame: &str, out: &mut Vec<u8>) {
    out.clear();
    match parse_text(frame).unwrap() {
        Frame::Market { record, .. } => record.encode(RECV, false, out).unwrap(),
        _ => unreachable!(),
    }
}

/// The serde_json version: the frame into a typed envelope per stream kind, owned `String`s.
mod baseline {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};

    const EXCHANGE: &str = "binance-usdm";

    #[derive(Deserialize)]
    struct Stream {
        stream: String,
    }
    #[derive(Deserialize)]
    struct Envelope<T> {
        data: T,
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
        #[serde(rename = "E")]
        e_time: i64,
        #[serde(rename = "T")]
        t_time: i64,
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
        #[serde(rename = "T")]
        t_time: i64,
        s: String,
        #[serde(rename = "U")]
        first: i64,
        u: i64,
        pu: i64,
        b: Vec<[String; 2]>,
        a: Vec<[String; 2]>,
    }
    #[derive(Deserialize)]
    struct MarkIn {
        #[serde(rename = "E")]
        e_time: i64,
        s: String,
        p: String,
        i: String,
        #[serde(rename = "P")]
        settle: String,
        r: String,
        #[serde(rename = "T")]
        next_funding: i64,
    }
    #[derive(Deserialize)]
    struct ForceIn {
        #[serde(rename = "E")]
        e_time: i64,
        o: OrderIn,
    }
    #[derive(Deserialize)]
    struct OrderIn {
        s: String,
        #[serde(rename = "S")]
        side: String,
        o: String,
        f: String,
        q: String,
        p: String,
        ap: String,
        #[serde(rename = "X")]
        status: String,
        l: String,
        z: String,
        #[serde(rename = "T")]
        t_time: i64,
    }

    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Out {
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
            event_time_ms: i64,
            transaction_time_ms: i64,
            recv_time_ns: u64,
        },
        DepthUpdate {
            exchange: &'static str,
            symbol: String,
            first_update_id: i64,
            final_update_id: i64,
            prev_final_update_id: i64,
            bids: Vec<[String; 2]>,
            asks: Vec<[String; 2]>,
            event_time_ms: i64,
            transaction_time_ms: i64,
            recv_time_ns: u64,
        },
        MarkPrice {
            exchange: &'static str,
            symbol: String,
            mark_price: String,
            index_price: String,
            estimated_settle_price: String,
            funding_rate: String,
            next_funding_time_ms: i64,
            event_time_ms: i64,
            recv_time_ns: u64,
        },
        Liquidation {
            exchange: &'static str,
            symbol: String,
            side: String,
            order_type: String,
            time_in_force: String,
            orig_qty: String,
            price: String,
            avg_price: String,
            status: String,
            last_filled_qty: String,
            filled_qty: String,
            trade_time_ms: i64,
            event_time_ms: i64,
            snapshot: bool,
            recv_time_ns: u64,
        },
    }

    fn data<T: DeserializeOwned>(frame: &str) -> T {
        serde_json::from_str::<Envelope<T>>(frame).unwrap().data
    }

    pub fn run(frame: &str) -> Vec<u8> {
        let recv_time_ns = super::RECV;
        let stream: Stream = serde_json::from_str(frame).unwrap();
        let out = match stream.stream.split_once('@').unwrap().1 {
            "aggTrade" => {
                let t: AggIn = data(frame);
                Out::AggTrade {
                    exchange: EXCHANGE,
                    symbol: t.s,
                    agg_id: t.a,
                    first_trade_id: t.f,
                    last_trade_id: t.l,
                    price: t.p,
                    qty: t.q,
                    side: if t.m { "sell" } else { "buy" },
                    trade_time_ms: t.t_time,
                    event_time_ms: t.e_time,
                    recv_time_ns,
                }
            }
            "bookTicker" => {
                let b: BookIn = data(frame);
                Out::BookTicker {
                    exchange: EXCHANGE,
                    symbol: b.s,
                    update_id: b.u,
                    bid_price: b.b,
                    bid_qty: b.bq,
                    ask_price: b.a,
                    ask_qty: b.aq,
                    event_time_ms: b.e_time,
                    transaction_time_ms: b.t_time,
                    recv_time_ns,
                }
            }
            k if k.starts_with("depth") => {
                let d: DepthIn = data(frame);
                Out::DepthUpdate {
                    exchange: EXCHANGE,
                    symbol: d.s,
                    first_update_id: d.first,
                    final_update_id: d.u,
                    prev_final_update_id: d.pu,
                    bids: d.b,
                    asks: d.a,
                    event_time_ms: d.e_time,
                    transaction_time_ms: d.t_time,
                    recv_time_ns,
                }
            }
            k if k.starts_with("markPrice") => {
                let p: MarkIn = data(frame);
                Out::MarkPrice {
                    exchange: EXCHANGE,
                    symbol: p.s,
                    mark_price: p.p,
                    index_price: p.i,
                    estimated_settle_price: p.settle,
                    funding_rate: p.r,
                    next_funding_time_ms: p.next_funding,
                    event_time_ms: p.e_time,
                    recv_time_ns,
                }
            }
            "forceOrder" => {
                let f: ForceIn = data(frame);
                Out::Liquidation {
                    exchange: EXCHANGE,
                    symbol: f.o.s,
                    side: f.o.side.to_lowercase(),
                    order_type: f.o.o,
                    time_in_force: f.o.f,
                    orig_qty: f.o.q,
                    price: f.o.p,
                    avg_price: f.o.ap,
                    status: f.o.status,
                    last_filled_qty: f.o.l,
                    filled_qty: f.o.z,
                    trade_time_ms: f.o.t_time,
                    event_time_ms: f.e_time,
                    snapshot: true,
                    recv_time_ns,
                }
            }
            _ => {
                let w: KlineIn = data(frame);
                Out::Kline {
                    exchange: EXCHANGE,
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
        };
        serde_json::to_vec(&out).unwrap()
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("usdm_parse");
    let mut buf = Vec::with_capacity(4096);
    for (name, frame) in frames() {
        // Both implementations must produce the same record, or the comparison means nothing.
        ours(&frame, &mut buf);
        let a: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&baseline::run(&frame)).unwrap();
        assert_eq!(a, b, "{name}: ours and the baseline disagree");

        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("sonic_borrowed", name), frame.as_str(), |bch, f| {
            bch.iter(|| ours(black_box(f), &mut buf))
        });
        group.bench_with_input(BenchmarkId::new("serde_json_typed", name), frame.as_str(), |bch, f| {
            bch.iter(|| black_box(baseline::run(black_box(f))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
