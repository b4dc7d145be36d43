//! Round trips: frames built with the generated encoders (binance_sbe::encode) decode, through the
//! safe layer, to exactly what was encoded; the bytes on the wire are the schema's layout; frames
//! announcing longer blocks than the schema's (a compatible extension) decode by their own
//! lengths.

mod common;

use binance_sbe::encode::{
    BestBidAskFrame, DepthDiffFrame, DepthSnapshotFrame, EncodeError, LevelRow, TradeRow, TradesFrame, MAX_LEVELS,
    MAX_SYMBOL_LEN,
};
use binance_sbe::{decode, Decimal, Message, MessageKind, HEADER_LEN};
use common::{observed, valid_frames};

#[test]
fn every_message_round_trips() {
    let frames = valid_frames();
    for kind in MessageKind::ALL {
        assert!(frames.iter().any(|(k, ..)| *k == kind), "no {kind:?} frame");
    }
    for (kind, frame, expected) in &frames {
        let m = decode(frame).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(m.kind(), *kind);
        assert_eq!(observed(&m), *expected, "{kind:?}");
    }
}

#[test]
fn extreme_values_round_trip() {
    let symbol_max = "Z".repeat(MAX_SYMBOL_LEN);
    // 84 three-byte characters: 252 bytes, UTF-8 up to the end.
    let symbol_utf8 = "币".repeat(84);
    let trades: Vec<TradeRow> = [i64::MIN, -1, 0, 1, i64::MAX]
        .iter()
        .enumerate()
        .map(|(i, &v)| TradeRow { id: v, price: v, qty: -v.saturating_add(1), is_buyer_maker: i % 2 == 1 })
        .chain(common::trade_rows(1000))
        .collect();
    let levels: Vec<LevelRow> = [i64::MIN, 0, i64::MAX].iter().map(|&v| LevelRow { price: v, qty: v }).collect();
    for symbol in [symbol_max.as_str(), symbol_utf8.as_str(), ""] {
        for (pe, qe) in [(i8::MIN, i8::MAX), (0, 0), (i8::MAX, i8::MIN)] {
            let (frame, expected) = common::trades_frame(&TradesFrame {
                event_time_us: i64::MIN,
                transact_time_us: i64::MAX,
                price_exponent: pe,
                qty_exponent: qe,
                trades: &trades,
                symbol,
            });
            assert_eq!(observed(&decode(&frame).unwrap()), expected);
            let (frame, expected) = common::best_bid_ask_frame(&BestBidAskFrame {
                event_time_us: i64::MAX,
                book_update_id: i64::MIN,
                price_exponent: pe,
                qty_exponent: qe,
                bid_price: i64::MIN,
                bid_qty: i64::MAX,
                ask_price: 0,
                ask_qty: -1,
                symbol,
            });
            assert_eq!(observed(&decode(&frame).unwrap()), expected);
            let (frame, expected) = common::depth_snapshot_frame(&DepthSnapshotFrame {
                event_time_us: 0,
                book_update_id: i64::MAX,
                price_exponent: pe,
                qty_exponent: qe,
                bids: &levels,
                asks: &[],
                symbol,
            });
            assert_eq!(observed(&decode(&frame).unwrap()), expected);
            let (frame, expected) = common::depth_diff_frame(&DepthDiffFrame {
                event_time_us: -1,
                first_book_update_id: i64::MIN,
                last_book_update_id: i64::MAX,
                price_exponent: pe,
                qty_exponent: qe,
                bids: &[],
                asks: &levels,
                symbol,
            });
            assert_eq!(observed(&decode(&frame).unwrap()), expected);
        }
    }
}

/// The most levels a depth group carries encode and decode; one more is refused, as is a symbol
/// one byte longer than a varString8 carries whole.
#[test]
fn encoder_limits() {
    let many = common::level_rows(MAX_LEVELS, 1 << 40);
    let (frame, expected) = common::depth_diff_frame(&DepthDiffFrame {
        event_time_us: 1,
        first_book_update_id: 2,
        last_book_update_id: 3,
        price_exponent: -2,
        qty_exponent: -2,
        bids: &many,
        asks: &many,
        symbol: "BTCUSDT",
    });
    assert_eq!(observed(&decode(&frame).unwrap()), expected);

    let too_many = common::level_rows(MAX_LEVELS + 1, 1 << 40);
    let snapshot = DepthSnapshotFrame {
        event_time_us: 1,
        book_update_id: 2,
        price_exponent: -2,
        qty_exponent: -2,
        bids: &[],
        asks: &too_many,
        symbol: "BTCUSDT",
    };
    assert_eq!(snapshot.encode(), Err(EncodeError::TooManyEntries { count: MAX_LEVELS + 1, max: MAX_LEVELS }));

    let long = "Z".repeat(MAX_SYMBOL_LEN + 1);
    let bba = BestBidAskFrame {
        event_time_us: 1,
        book_update_id: 2,
        price_exponent: -2,
        qty_exponent: -2,
        bid_price: 1,
        bid_qty: 1,
        ask_price: 1,
        ask_qty: 1,
        symbol: &long,
    };
    assert_eq!(bba.encode(), Err(EncodeError::SymbolTooLong { len: MAX_SYMBOL_LEN + 1 }));
    // A UTF-8 symbol over the limit is refused too, never cut inside a character.
    let long_utf8 = "币".repeat(85);
    let trades = TradesFrame {
        event_time_us: 1,
        transact_time_us: 1,
        price_exponent: 0,
        qty_exponent: 0,
        trades: &[],
        symbol: &long_utf8,
    };
    assert_eq!(trades.encode(), Err(EncodeError::SymbolTooLong { len: 255 }));
}

/// The generated encoder writes the schema's layout, assembled here by hand from
/// schema/stream_1_0.xml (little-endian; header blockLength, templateId, schemaId, version; the
/// root fields; groupSizeEncoding uint16 blockLength + uint32 numInGroup; entries of id, price,
/// qty, isBuyerMaker; varString8 symbol), so the generated code and our reading of the schema
/// agree.
#[test]
fn a_trade_frame_is_the_schemas_layout() {
    let rows = [
        TradeRow { id: 12345, price: 6_543_210_000_000, qty: 1_500_000, is_buyer_maker: true },
        TradeRow { id: 12346, price: 6_543_220_000_000, qty: 2, is_buyer_maker: false },
    ];
    let frame = TradesFrame {
        event_time_us: 1_700_000_000_123_456,
        transact_time_us: 1_700_000_000_123_400,
        price_exponent: -8,
        qty_exponent: -8,
        trades: &rows,
        symbol: "BTCUSDT",
    }
    .encode()
    .unwrap();

    let mut want = Vec::new();
    for v in [18u16, 10000, 1, 0] {
        want.extend(v.to_le_bytes());
    }
    want.extend(1_700_000_000_123_456i64.to_le_bytes());
    want.extend(1_700_000_000_123_400i64.to_le_bytes());
    want.extend([(-8i8) as u8, (-8i8) as u8]);
    want.extend(25u16.to_le_bytes());
    want.extend(2u32.to_le_bytes());
    for r in &rows {
        want.extend(r.id.to_le_bytes());
        want.extend(r.price.to_le_bytes());
        want.extend(r.qty.to_le_bytes());
        want.push(u8::from(r.is_buyer_maker));
    }
    want.push(7);
    want.extend(b"BTCUSDT");
    assert_eq!(frame, want);

    let Message::Trades(t) = decode(&frame).unwrap() else { panic!("not a trade event") };
    let mut text = [0u8; 32];
    let first = t.trades().next().unwrap();
    let n = first.price.write_fixed(8, &mut text).unwrap();
    assert_eq!(&text[..n], b"65432.10000000");
    let n = first.qty.write_fixed(8, &mut text).unwrap();
    assert_eq!(&text[..n], b"0.01500000");
    assert_eq!(first.price, Decimal::new(6_543_210_000_000, -8));
}

/// A block longer than the schema's (fields added by a compatible extension) is skipped by its
/// announced length: the root block, and each group entry. Rewritten by hand here, since the
/// generated encoder writes only the schema's lengths.
#[test]
fn longer_blocks_than_the_schemas_are_read_by_their_own_lengths() {
    let rows = common::trade_rows(3);
    let (frame, expected) = common::trades_frame(&TradesFrame {
        event_time_us: 1,
        transact_time_us: 2,
        price_exponent: -3,
        qty_exponent: -4,
        trades: &rows,
        symbol: "ETHUSDT",
    });
    let (root, entry, pad_root, pad_entry) = (18usize, 25usize, 5usize, 3usize);
    let mut ext = frame[..HEADER_LEN].to_vec();
    ext[0..2].copy_from_slice(&((root + pad_root) as u16).to_le_bytes());
    ext.extend(&frame[HEADER_LEN..HEADER_LEN + root]);
    ext.extend([0xAA; 5]);
    let group = HEADER_LEN + root;
    ext.extend(((entry + pad_entry) as u16).to_le_bytes());
    ext.extend(&frame[group + 2..group + 6]);
    for i in 0..rows.len() {
        let at = group + 6 + i * entry;
        ext.extend(&frame[at..at + entry]);
        ext.extend([0xBB; 3]);
    }
    ext.extend(&frame[group + 6 + rows.len() * entry..]);
    assert_eq!(ext.len(), frame.len() + pad_root + rows.len() * pad_entry);
    assert_eq!(observed(&decode(&ext).unwrap()), expected);

    // And a best bid/ask with a longer root block.
    let (frame, expected) = common::best_bid_ask_frame(&BestBidAskFrame {
        event_time_us: 1,
        book_update_id: 2,
        price_exponent: -2,
        qty_exponent: -3,
        bid_price: 10,
        bid_qty: 20,
        ask_price: 11,
        ask_qty: 21,
        symbol: "BNBUSDT",
    });
    let mut ext = frame[..HEADER_LEN + 50].to_vec();
    ext[0..2].copy_from_slice(&51u16.to_le_bytes());
    ext.push(0xCC);
    ext.extend(&frame[HEADER_LEN + 50..]);
    assert_eq!(observed(&decode(&ext).unwrap()), expected);
}

/// The constants the safe layer checks against are the generated schema's.
#[test]
fn kinds_match_the_schema() {
    let ids: Vec<u16> = MessageKind::ALL.iter().map(|k| k.template_id()).collect();
    assert_eq!(ids, [10000, 10001, 10002, 10003]);
    let lens: Vec<u16> = MessageKind::ALL.iter().map(|k| k.block_length()).collect();
    assert_eq!(lens, [18, 50, 18, 26]);
    for k in MessageKind::ALL {
        assert_eq!(MessageKind::from_template_id(k.template_id()), Some(k));
        assert!(k.name().ends_with("StreamEvent"));
    }
    assert_eq!((binance_sbe::SCHEMA_ID, binance_sbe::SCHEMA_VERSION), (1, 0));
}
