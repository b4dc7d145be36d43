use super::*;
use crate::symbols::Symbols;
use crate::time_unit::TimeUnit;
use binance_sbe::encode::{BestBidAskFrame, DepthDiffFrame, DepthSnapshotFrame, LevelRow, TradeRow, TradesFrame};
use std::sync::Arc;

fn ctx(unit: TimeUnit) -> BinaryCtx {
    let symbols = Arc::new(Symbols::new(&["btcusdt".into(), "ethusdt".into()]));
    BinaryCtx::new(symbols, vec![Scale { price: 8, qty: 8 }, Scale { price: 2, qty: 4 }], unit)
}

fn trades_frame(symbol: &str, rows: &[TradeRow]) -> Vec<u8> {
    TradesFrame {
        event_time_us: 1_700_000_000_123_456,
        transact_time_us: 1_700_000_000_123_001,
        price_exponent: -2,
        qty_exponent: -8,
        trades: rows,
        symbol,
    }
    .encode()
    .unwrap()
}

fn bba(symbol: &str, update_id: i64) -> BestBidAskFrame<'_> {
    BestBidAskFrame {
        event_time_us: 1_700_000_000_123_456,
        book_update_id: update_id,
        price_exponent: -2,
        qty_exponent: -8,
        bid_price: 4_200_012,
        bid_qty: 150_000_000,
        ask_price: 4_200_100,
        ask_qty: 1,
        symbol,
    }
}

fn diff<'a>(symbol: &'a str, bids: &'a [LevelRow], asks: &'a [LevelRow]) -> DepthDiffFrame<'a> {
    DepthDiffFrame {
        event_time_us: 1_700_000_000_123_456,
        first_book_update_id: 157,
        last_book_update_id: 160,
        price_exponent: -2,
        qty_exponent: -5,
        bids,
        asks,
        symbol,
    }
}

/// Each record of a frame as `stream symbol, kind, record JSON` (`recv_time_ns` 0), or the
/// refusal; `Err` when the whole frame is refused.
fn records(frame: &[u8], ctx: &BinaryCtx) -> Result<Vec<Result<String, &'static str>>, &'static str> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    parse(
        frame,
        ctx,
        &mut scratch,
        &mut crate::venue::each_frame(|r| {
            out.push(r.map_err(|e| e.reason).map(|f| {
                let Frame::Market { kind, stream_symbol, record } = f else { panic!("not a market frame: {f:?}") };
                let mut json = Vec::new();
                record.encode_in(ctx.unit, 0, false, &mut json).unwrap();
                format!("{stream_symbol} {kind} {}", String::from_utf8(json).unwrap())
            }))
        }),
    )
    .map_err(|e| e.reason)?;
    Ok(out)
}

#[test]
fn a_trade_event_becomes_one_record_per_trade_at_the_symbol_s_scale() {
    let rows = [
        TradeRow { id: 7, price: 4_200_012, qty: 150_000_000, is_buyer_maker: true },
        TradeRow { id: 8, price: 4_200_100, qty: 1, is_buyer_maker: false },
    ];
    let frame = trades_frame("BTCUSDT", &rows);
    let t = |id, p, q, side| {
        Ok(format!(
            r#"btcusdt trade {{"type":"trade","exchange":"binance","symbol":"BTCUSDT","trade_id":{id},"price":"{p}","qty":"{q}","side":"{side}","trade_time_ms":1700000000123,"event_time_ms":1700000000123,"recv_time_ns":0}}"#
        ))
    };
    assert_eq!(
        records(&frame, &ctx(TimeUnit::Millis)).unwrap(),
        [t(7, "42000.12000000", "1.50000000", "sell"), t(8, "42001.00000000", "0.00000001", "buy")]
    );
    let us = records(&frame, &ctx(TimeUnit::Micros)).unwrap();
    assert!(
        us[0].as_ref().unwrap().contains(r#""trade_time_us":1700000000123001,"event_time_us":1700000000123456"#),
        "{us:?}"
    );
}

#[test]
fn digits_beyond_the_scale_refuse_that_trade_only() {
    // ethusdt: qty scale 4, so 0.00000001 cannot be written; the other trade still goes.
    let rows = [
        TradeRow { id: 1, price: 250_000, qty: 1, is_buyer_maker: false },
        TradeRow { id: 2, price: 250_001, qty: 10_000, is_buyer_maker: false },
    ];
    let got = records(&trades_frame("ETHUSDT", &rows), &ctx(TimeUnit::Millis)).unwrap();
    assert_eq!(got[0], Err("sbe_inexact_decimal"));
    assert!(got[1].as_ref().unwrap().contains(r#""trade_id":2,"price":"2500.01","qty":"0.0001","side":"buy""#));
}

#[test]
fn best_bid_ask_becomes_the_book_ticker_record_with_its_event_time() {
    let c = ctx(TimeUnit::Millis);
    let got = records(&bba("BTCUSDT", 400_900_217).encode().unwrap(), &c).unwrap();
    assert_eq!(
        got,
        [Ok(r#"btcusdt bookTicker {"type":"book_ticker","exchange":"binance","symbol":"BTCUSDT","update_id":400900217,"bid_price":"42000.12000000","bid_qty":"1.50000000","ask_price":"42001.00000000","ask_qty":"0.00000001","event_time_ms":1700000000123,"recv_time_ns":0}"#.to_string())]
    );
    let us = records(&bba("BTCUSDT", 1).encode().unwrap(), &ctx(TimeUnit::Micros)).unwrap();
    assert!(us[0].as_ref().unwrap().contains(r#""event_time_us":1700000000123456,"#), "{us:?}");
    // ethusdt's quantities have 4 decimals: 0.00000001 cannot be one.
    assert_eq!(records(&bba("ETHUSDT", 1).encode().unwrap(), &c), Err("sbe_inexact_decimal"));
    let absurd = BestBidAskFrame { price_exponent: 100, ..bba("BTCUSDT", 1) };
    assert_eq!(records(&absurd.encode().unwrap(), &c), Err("sbe_bad_exponent"));
}

#[test]
fn a_depth_diff_becomes_the_depth_update_record_with_json_s_level_texts() {
    let bids = [LevelRow { price: 4_200_012, qty: 150_000 }, LevelRow { price: 4_200_000, qty: 0 }];
    let asks = [LevelRow { price: 4_200_100, qty: 1 }];
    let c = ctx(TimeUnit::Millis);
    let got = records(&diff("BTCUSDT", &bids, &asks).encode().unwrap(), &c).unwrap();
    assert_eq!(
        got,
        [Ok(r#"btcusdt depth {"type":"depth_update","exchange":"binance","symbol":"BTCUSDT","first_update_id":157,"final_update_id":160,"bids":[["42000.12000000","1.50000000"],["42000.00000000","0.00000000"]],"asks":[["42001.00000000","0.00001000"]],"event_time_ms":1700000000123,"recv_time_ns":0}"#.to_string())]
    );
    // Empty sides are empty arrays, as JSON sends them.
    let got = records(&diff("BTCUSDT", &[], &[]).encode().unwrap(), &c).unwrap();
    assert!(got[0].as_ref().unwrap().contains(r#""bids":[],"asks":[],"#), "{got:?}");
    let us = records(&diff("BTCUSDT", &[], &asks).encode().unwrap(), &ctx(TimeUnit::Micros)).unwrap();
    assert!(us[0].as_ref().unwrap().contains(r#""event_time_us":1700000000123456,"#), "{us:?}");
}

#[test]
fn a_depth_diff_with_one_unwritable_level_is_refused_whole() {
    let c = ctx(TimeUnit::Millis);
    // ethusdt: prices at 2 decimals, quantities at 4; 0.00001 has five.
    let fine = [LevelRow { price: 250_001, qty: 10 }];
    let inexact = [LevelRow { price: 250_001, qty: 10 }, LevelRow { price: 250_002, qty: 1 }];
    assert!(records(&diff("ETHUSDT", &fine, &[]).encode().unwrap(), &c).is_ok());
    assert_eq!(records(&diff("ETHUSDT", &fine, &inexact).encode().unwrap(), &c), Err("sbe_inexact_decimal"));
    let far = DepthDiffFrame { qty_exponent: 70, ..diff("ETHUSDT", &fine, &fine) };
    assert_eq!(records(&far.encode().unwrap(), &c), Err("sbe_bad_exponent"));
    assert_eq!(records(&diff("SOLUSDT", &fine, &fine).encode().unwrap(), &c), Err("unknown_symbol"));
}

#[test]
fn frames_that_are_not_events_of_a_configured_symbol_are_refused_whole() {
    let c = ctx(TimeUnit::Millis);
    let row = [TradeRow { id: 1, price: 1, qty: 1, is_buyer_maker: false }];
    assert_eq!(records(&trades_frame("SOLUSDT", &row), &c), Err("unknown_symbol"));
    assert_eq!(records(&bba("SOLUSDT", 1).encode().unwrap(), &c), Err("unknown_symbol"));
    let snapshot = DepthSnapshotFrame {
        event_time_us: 1,
        book_update_id: 1,
        price_exponent: -2,
        qty_exponent: -8,
        bids: &[],
        asks: &[],
        symbol: "BTCUSDT",
    };
    assert_eq!(records(&snapshot.encode().unwrap(), &c), Err("sbe_unsupported_message"));
    let mut frame = trades_frame("BTCUSDT", &row);
    frame[2] = 0x99; // template id
    assert_eq!(records(&frame, &c), Err("sbe_unknown_template"));
    let mut frame = trades_frame("BTCUSDT", &row);
    frame[6] = 1; // schema version
    assert_eq!(records(&frame, &c), Err("sbe_unknown_version"));
    assert_eq!(records(&frame[..5], &c), Err("sbe_short_header"));
    let whole = trades_frame("BTCUSDT", &row);
    assert_eq!(records(&whole[..whole.len() - 3], &c), Err("sbe_truncated"));
}

#[test]
fn sbe_streams_are_named_and_carried_as_binance_s_sbe_endpoint_has_them() {
    let name = |k| (BINARY.venue.stream_name)("btcusdt", k);
    assert_eq!(
        [name(StreamKind::Trade), name(StreamKind::BookTicker), name(StreamKind::Depth)],
        ["btcusdt@trade", "btcusdt@bestBidAsk", "btcusdt@depth"]
    );
    // Labels and stale records keep the configured kinds' names.
    assert_eq!((BINARY.venue.kind_name)(StreamKind::BookTicker), "bookTicker");
    assert_eq!((BINARY.carried)(StreamKind::Depth100ms), Some(StreamKind::Depth));
    assert_eq!((BINARY.carried)(StreamKind::BookTicker), Some(StreamKind::BookTicker));
    for k in [StreamKind::AggTrade, StreamKind::Kline(1), StreamKind::MarkPrice] {
        assert_eq!((BINARY.carried)(k), None, "{k}");
    }
}
