//! One trade, two wire formats, measured in the same run so the ratio survives a noisy machine:
//! the SBE `TradesStreamEvent` decoded by `binance_sbe::decode` with its price and quantity
//! formatted as the JSON stream's text (scale 8), against the JSON `<symbol>@trade` payload parsed
//! by sonic-rs into borrowed fields the way the ingester's parser does (src/binance/wire.rs
//! `TradeWire`). Both end with the same values: symbol, trade id, times, price and quantity text,
//! buyer-is-maker. A third line, the SBE decode without the text, shows how its time splits.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde::Deserialize;

use binance_sbe::encode::{TradeRow, TradesFrame};
use binance_sbe::{decode, Message};

const JSON: &str = r#"{"e":"trade","E":1700000000123,"s":"BTCUSDT","t":5000012345,"p":"65432.10000000","q":"0.01500000","T":1700000000120,"m":true,"M":true}"#;

#[derive(Deserialize)]
struct TradeWire<'a> {
    #[serde(borrow)]
    e: &'a str,
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(borrow)]
    s: &'a str,
    t: i64,
    #[serde(borrow)]
    p: &'a str,
    #[serde(borrow)]
    q: &'a str,
    #[serde(rename = "T")]
    trade_time: i64,
    m: bool,
}

/// What both paths produce: lengths of the texts written, and the fields.
#[derive(Debug, PartialEq, Eq)]
struct Out {
    symbol_len: usize,
    id: i64,
    time: i64,
    price_len: usize,
    qty_len: usize,
    maker: bool,
}

fn sbe(frame: &[u8], price: &mut [u8; 64], qty: &mut [u8; 64]) -> Out {
    let Ok(Message::Trades(t)) = decode(frame) else { panic!("not a trade event") };
    let Some(x) = t.trades().next() else { panic!("no trade") };
    Out {
        symbol_len: t.symbol().len(),
        id: x.id,
        time: t.transact_time_us() / 1000,
        price_len: x.price.write_fixed(8, price).unwrap(),
        qty_len: x.qty.write_fixed(8, qty).unwrap(),
        maker: x.is_buyer_maker,
    }
}

/// The decode alone (the decimals as mantissa and exponent): how the SBE path's time splits.
fn sbe_no_text(frame: &[u8]) -> (usize, i64, i64, i64, i64, bool) {
    let Ok(Message::Trades(t)) = decode(frame) else { panic!("not a trade event") };
    let Some(x) = t.trades().next() else { panic!("no trade") };
    (t.symbol().len(), x.id, t.transact_time_us(), x.price.mantissa, x.qty.mantissa, x.is_buyer_maker)
}

fn json(payload: &str, price: &mut [u8; 64], qty: &mut [u8; 64]) -> Out {
    let w: TradeWire<'_> = sonic_rs::from_str(payload).unwrap();
    assert_eq!(w.e, "trade");
    // The text is already there; copying it into the record's buffer is the matching step.
    price[..w.p.len()].copy_from_slice(w.p.as_bytes());
    qty[..w.q.len()].copy_from_slice(w.q.as_bytes());
    let _ = w.event_time;
    Out { symbol_len: w.s.len(), id: w.t, time: w.trade_time, price_len: w.p.len(), qty_len: w.q.len(), maker: w.m }
}

fn bench(c: &mut Criterion) {
    let rows = [TradeRow { id: 5_000_012_345, price: 6_543_210_000_000, qty: 1_500_000, is_buyer_maker: true }];
    let frame = TradesFrame {
        event_time_us: 1_700_000_000_123_000,
        transact_time_us: 1_700_000_000_120_000,
        price_exponent: -8,
        qty_exponent: -8,
        trades: &rows,
        symbol: "BTCUSDT",
    }
    .encode()
    .unwrap();

    // Both paths must yield the same trade, text included, or the ratio means nothing.
    let (mut p1, mut q1, mut p2, mut q2) = ([0u8; 64], [0u8; 64], [0u8; 64], [0u8; 64]);
    let a = sbe(&frame, &mut p1, &mut q1);
    let b = json(JSON, &mut p2, &mut q2);
    assert_eq!(a, b);
    assert_eq!((&p1[..a.price_len], &q1[..a.qty_len]), (&p2[..b.price_len], &q2[..b.qty_len]));

    let mut group = c.benchmark_group("trade_decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sbe_decode_format", |bch| bch.iter(|| black_box(sbe(black_box(&frame), &mut p1, &mut q1))));
    group.bench_function("sbe_decode_only", |bch| bch.iter(|| black_box(sbe_no_text(black_box(&frame)))));
    group.bench_function("json_sonic_borrowed", |bch| bch.iter(|| black_box(json(black_box(JSON), &mut p2, &mut q2))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
