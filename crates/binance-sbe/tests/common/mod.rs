//! Valid frames of every message, built with the generated encoders (crate::encode), and a
//! comparison of a decoded message with what was encoded.

#![allow(dead_code)] // each test binary uses its own part of this module

use binance_sbe::encode::{BestBidAskFrame, DepthDiffFrame, DepthSnapshotFrame, LevelRow, TradeRow, TradesFrame};
use binance_sbe::{Decimal, Message, MessageKind};

/// What a frame was encoded from, owned, in the decoded messages' shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    Trades {
        event_time: i64,
        transact_time: i64,
        trades: Vec<(i64, Decimal, Decimal, bool)>,
        symbol: String,
    },
    BestBidAsk {
        event_time: i64,
        update_id: i64,
        bid: (Decimal, Decimal),
        ask: (Decimal, Decimal),
        symbol: String,
    },
    DepthSnapshot {
        event_time: i64,
        update_id: i64,
        bids: Vec<(Decimal, Decimal)>,
        asks: Vec<(Decimal, Decimal)>,
        symbol: String,
    },
    DepthDiff {
        event_time: i64,
        first_id: i64,
        last_id: i64,
        bids: Vec<(Decimal, Decimal)>,
        asks: Vec<(Decimal, Decimal)>,
        symbol: String,
    },
}

/// Everything a decoded message holds, read through its getters and iterators.
pub fn observed(m: &Message<'_>) -> Expected {
    let levels = |it: &mut dyn ExactSizeIterator<Item = binance_sbe::Level>| {
        let n = it.len();
        let v: Vec<_> = it.map(|l| (l.price, l.qty)).collect();
        assert_eq!(v.len(), n, "ExactSizeIterator's len is the count");
        v
    };
    match m {
        Message::Trades(t) => {
            let trades: Vec<_> = t.trades().map(|x| (x.id, x.price, x.qty, x.is_buyer_maker)).collect();
            assert_eq!(trades.len(), t.trade_count());
            Expected::Trades {
                event_time: t.event_time_us(),
                transact_time: t.transact_time_us(),
                trades,
                symbol: t.symbol().to_owned(),
            }
        }
        Message::BestBidAsk(b) => Expected::BestBidAsk {
            event_time: b.event_time_us(),
            update_id: b.book_update_id(),
            bid: (b.bid_price(), b.bid_qty()),
            ask: (b.ask_price(), b.ask_qty()),
            symbol: b.symbol().to_owned(),
        },
        Message::DepthSnapshot(d) => Expected::DepthSnapshot {
            event_time: d.event_time_us(),
            update_id: d.book_update_id(),
            bids: levels(&mut d.bids()),
            asks: levels(&mut d.asks()),
            symbol: d.symbol().to_owned(),
        },
        Message::DepthDiff(d) => Expected::DepthDiff {
            event_time: d.event_time_us(),
            first_id: d.first_book_update_id(),
            last_id: d.last_book_update_id(),
            bids: levels(&mut d.bids()),
            asks: levels(&mut d.asks()),
            symbol: d.symbol().to_owned(),
        },
    }
}

pub fn trades_frame(f: &TradesFrame<'_>) -> (Vec<u8>, Expected) {
    let (pe, qe) = (f.price_exponent, f.qty_exponent);
    let expected = Expected::Trades {
        event_time: f.event_time_us,
        transact_time: f.transact_time_us,
        trades: f
            .trades
            .iter()
            .map(|t| (t.id, Decimal::new(t.price, pe), Decimal::new(t.qty, qe), t.is_buyer_maker))
            .collect(),
        symbol: f.symbol.to_owned(),
    };
    (f.encode().unwrap(), expected)
}

pub fn best_bid_ask_frame(f: &BestBidAskFrame<'_>) -> (Vec<u8>, Expected) {
    let (pe, qe) = (f.price_exponent, f.qty_exponent);
    let expected = Expected::BestBidAsk {
        event_time: f.event_time_us,
        update_id: f.book_update_id,
        bid: (Decimal::new(f.bid_price, pe), Decimal::new(f.bid_qty, qe)),
        ask: (Decimal::new(f.ask_price, pe), Decimal::new(f.ask_qty, qe)),
        symbol: f.symbol.to_owned(),
    };
    (f.encode().unwrap(), expected)
}

fn levels(rows: &[LevelRow], pe: i8, qe: i8) -> Vec<(Decimal, Decimal)> {
    rows.iter().map(|l| (Decimal::new(l.price, pe), Decimal::new(l.qty, qe))).collect()
}

pub fn depth_snapshot_frame(f: &DepthSnapshotFrame<'_>) -> (Vec<u8>, Expected) {
    let expected = Expected::DepthSnapshot {
        event_time: f.event_time_us,
        update_id: f.book_update_id,
        bids: levels(f.bids, f.price_exponent, f.qty_exponent),
        asks: levels(f.asks, f.price_exponent, f.qty_exponent),
        symbol: f.symbol.to_owned(),
    };
    (f.encode().unwrap(), expected)
}

pub fn depth_diff_frame(f: &DepthDiffFrame<'_>) -> (Vec<u8>, Expected) {
    let expected = Expected::DepthDiff {
        event_time: f.event_time_us,
        first_id: f.first_book_update_id,
        last_id: f.last_book_update_id,
        bids: levels(f.bids, f.price_exponent, f.qty_exponent),
        asks: levels(f.asks, f.price_exponent, f.qty_exponent),
        symbol: f.symbol.to_owned(),
    };
    (f.encode().unwrap(), expected)
}

pub fn trade_rows(n: usize) -> Vec<TradeRow> {
    (0..n as i64)
        .map(|i| TradeRow {
            id: 5_000_000_000 + i,
            price: 6_543_210_000_000 + i * 7,
            qty: 1_000 + i,
            is_buyer_maker: i % 3 == 0,
        })
        .collect()
}

pub fn level_rows(n: usize, base: i64) -> Vec<LevelRow> {
    (0..n as i64).map(|i| LevelRow { price: base - i * 100, qty: i * 12_345 }).collect()
}

/// A few valid frames of every message (varied counts and symbols), with what they hold.
pub fn valid_frames() -> Vec<(MessageKind, Vec<u8>, Expected)> {
    let mut out = Vec::new();
    let symbols = ["BTCUSDT", "币安人生USDT", "A"];
    for (i, symbol) in symbols.iter().enumerate() {
        for n in [0, 1, 3] {
            let rows = trade_rows(n);
            let (f, e) = trades_frame(&TradesFrame {
                event_time_us: 1_700_000_000_000_000 + i as i64,
                transact_time_us: 1_699_999_999_999_000,
                price_exponent: -8,
                qty_exponent: -8,
                trades: &rows,
                symbol,
            });
            out.push((MessageKind::Trades, f, e));
            let bids = level_rows(n, 6_500_000_000_000);
            let asks = level_rows(n + 1, 6_600_000_000_000);
            let (f, e) = depth_snapshot_frame(&DepthSnapshotFrame {
                event_time_us: 1_700_000_000_000_100,
                book_update_id: 77_000_000_000 + n as i64,
                price_exponent: -2,
                qty_exponent: -5,
                bids: &bids,
                asks: &asks,
                symbol,
            });
            out.push((MessageKind::DepthSnapshot, f, e));
            let (f, e) = depth_diff_frame(&DepthDiffFrame {
                event_time_us: 1_700_000_000_000_200,
                first_book_update_id: 77_000_000_001,
                last_book_update_id: 77_000_000_001 + n as i64,
                price_exponent: -2,
                qty_exponent: -5,
                bids: &asks,
                asks: &bids,
                symbol,
            });
            out.push((MessageKind::DepthDiff, f, e));
        }
        let (f, e) = best_bid_ask_frame(&BestBidAskFrame {
            event_time_us: 1_700_000_000_000_300,
            book_update_id: 77_000_000_009,
            price_exponent: -2,
            qty_exponent: -8,
            bid_price: 6_543_210,
            bid_qty: 12_000_000,
            ask_price: 6_543_211,
            ask_qty: 1,
            symbol,
        });
        out.push((MessageKind::BestBidAsk, f, e));
    }
    out
}
