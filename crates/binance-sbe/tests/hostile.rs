//! Hostile frames: every truncation and extension of valid frames, unknown schema ids, versions
//! and template ids, lengths that point past the end, short blocks, bad enum values and symbols
//! are refused with the specific reason, never a panic. Offsets below are the schema's layout,
//! written out by hand (schema/stream_1_0.xml), independent of the generated code.

mod common;

use binance_sbe::encode::{DepthDiffFrame, DepthSnapshotFrame, TradesFrame};
use binance_sbe::{decode, Group, MessageKind, Part, SbeError, HEADER_LEN};
use common::valid_frames;

fn put_u16(frame: &mut [u8], at: usize, v: u16) {
    frame[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(frame: &mut [u8], at: usize, v: u32) {
    frame[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn trades(n: usize) -> Vec<u8> {
    let rows = common::trade_rows(n);
    TradesFrame {
        event_time_us: 1,
        transact_time_us: 2,
        price_exponent: -8,
        qty_exponent: -8,
        trades: &rows,
        symbol: "BTCUSDT",
    }
    .encode()
    .unwrap()
}

// Trades: header 8, root 18, group header at 26 (blockLength u16, numInGroup u32), entries of 25
// from 32 (isBuyerMaker last), then the symbol.
const TRADES_GROUP: usize = 26;
const TRADES_ENTRIES: usize = 32;

#[test]
fn every_truncation_is_refused_as_truncated() {
    for (kind, frame, _) in valid_frames() {
        for k in 0..frame.len() {
            let err = decode(&frame[..k]).expect_err("a prefix decoded");
            match err {
                SbeError::ShortHeader { len, need } => assert!(k < HEADER_LEN && len == k && need == HEADER_LEN),
                SbeError::Truncated { message, need, len, .. } => {
                    assert_eq!((message, len), (kind, k));
                    assert!(need > k as u64 && need <= frame.len() as u64, "{kind:?} prefix {k}: {err}");
                }
                other => panic!("{kind:?} prefix {k}: {other}"),
            }
        }
        assert!(decode(&frame).is_ok());
    }
}

#[test]
fn bytes_after_the_message_are_refused() {
    for (kind, frame, _) in valid_frames() {
        for extra in [1usize, 7, 300] {
            let mut long = frame.clone();
            long.resize(frame.len() + extra, 0);
            assert_eq!(decode(&long).unwrap_err(), SbeError::TrailingBytes { message: kind, extra });
        }
    }
}

#[test]
fn unknown_schema_version_and_template_are_refused_in_that_order() {
    let frame = trades(1);
    for schema_id in [0u16, 2, 3, u16::MAX] {
        let mut f = frame.clone();
        put_u16(&mut f, 4, schema_id);
        put_u16(&mut f, 6, 9); // a version and template that are unknown too: the schema decides
        put_u16(&mut f, 2, 1);
        assert_eq!(decode(&f).unwrap_err(), SbeError::UnknownSchema { schema_id, expected: 1 });
    }
    for version in [1u16, 2, u16::MAX] {
        let mut f = frame.clone();
        put_u16(&mut f, 6, version);
        put_u16(&mut f, 2, 1);
        assert_eq!(decode(&f).unwrap_err(), SbeError::UnknownVersion { version, expected: 0 });
    }
    for template_id in [0u16, 1, 9999, 10004, 10005, u16::MAX] {
        let mut f = frame.clone();
        put_u16(&mut f, 2, template_id);
        assert_eq!(decode(&f).unwrap_err(), SbeError::UnknownTemplate { template_id });
    }
    // The header alone is enough to refuse.
    assert_eq!(decode(&[18, 0, 0x14, 0x27, 1, 0, 0, 0]).unwrap_err(), SbeError::UnknownTemplate { template_id: 10004 });
}

#[test]
fn blocks_shorter_than_the_schemas_are_refused() {
    for (kind, frame, _) in valid_frames() {
        let mut f = frame.clone();
        let min = kind.block_length();
        put_u16(&mut f, 0, min - 1);
        assert_eq!(
            decode(&f).unwrap_err(),
            SbeError::BlockTooShort { message: kind, part: Part::RootBlock, block_length: min - 1, min }
        );
    }
    let mut f = trades(2);
    put_u16(&mut f, TRADES_GROUP, 24);
    let want = SbeError::BlockTooShort {
        message: MessageKind::Trades,
        part: Part::GroupEntries(Group::Trades),
        block_length: 24,
        min: 25,
    };
    assert_eq!(decode(&f).unwrap_err(), want);
    // Depth: bids group header right after the root block (18 snapshot, 26 diff), asks after the bids.
    let levels = common::level_rows(2, 1000);
    let snapshot = DepthSnapshotFrame {
        event_time_us: 1,
        book_update_id: 2,
        price_exponent: 0,
        qty_exponent: 0,
        bids: &levels,
        asks: &levels,
        symbol: "X",
    };
    let diff = DepthDiffFrame {
        event_time_us: 1,
        first_book_update_id: 2,
        last_book_update_id: 3,
        price_exponent: 0,
        qty_exponent: 0,
        bids: &levels,
        asks: &levels,
        symbol: "X",
    };
    for (kind, frame, bids_at) in [
        (MessageKind::DepthSnapshot, snapshot.encode().unwrap(), 26),
        (MessageKind::DepthDiff, diff.encode().unwrap(), 34),
    ] {
        let asks_at = bids_at + 4 + 2 * 16;
        for (group, at) in [(Group::Bids, bids_at), (Group::Asks, asks_at)] {
            let mut f = frame.clone();
            put_u16(&mut f, at, 0);
            let want =
                SbeError::BlockTooShort { message: kind, part: Part::GroupEntries(group), block_length: 0, min: 16 };
            assert_eq!(decode(&f).unwrap_err(), want);
        }
    }
}

/// Counts and lengths on the wire that point far past the end are refused from the arithmetic
/// alone: nothing is read there and nothing is allocated for them.
#[test]
fn lengths_past_the_end_are_refused() {
    let frame = trades(2);
    for count in [3u32, 1 << 20, i32::MAX as u32, u32::MAX] {
        let mut f = frame.clone();
        put_u32(&mut f, TRADES_GROUP + 2, count);
        let need = TRADES_ENTRIES as u64 + u64::from(count) * 25;
        let want = SbeError::Truncated {
            message: MessageKind::Trades,
            part: Part::GroupEntries(Group::Trades),
            need,
            len: f.len(),
        };
        assert_eq!(decode(&f).unwrap_err(), want);
    }
    let mut f = frame.clone();
    put_u16(&mut f, TRADES_GROUP, u16::MAX);
    let need = TRADES_ENTRIES as u64 + 2 * u64::from(u16::MAX);
    let want = SbeError::Truncated {
        message: MessageKind::Trades,
        part: Part::GroupEntries(Group::Trades),
        need,
        len: f.len(),
    };
    assert_eq!(decode(&f).unwrap_err(), want);
    // The root block announced longer than the frame.
    let mut f = frame.clone();
    put_u16(&mut f, 0, u16::MAX);
    let need = HEADER_LEN as u64 + u64::from(u16::MAX);
    assert_eq!(
        decode(&f).unwrap_err(),
        SbeError::Truncated { message: MessageKind::Trades, part: Part::RootBlock, need, len: f.len() }
    );
    // The symbol's length byte.
    let mut f = frame.clone();
    let sym_at = TRADES_ENTRIES + 2 * 25;
    f[sym_at] = 8;
    let want = SbeError::Truncated {
        message: MessageKind::Trades,
        part: Part::Symbol,
        need: (sym_at + 1 + 8) as u64,
        len: f.len(),
    };
    assert_eq!(decode(&f).unwrap_err(), want);
    // Depth levels: numInGroup u16::MAX in each group.
    let levels = common::level_rows(1, 1000);
    let diff = DepthDiffFrame {
        event_time_us: 1,
        first_book_update_id: 2,
        last_book_update_id: 3,
        price_exponent: 0,
        qty_exponent: 0,
        bids: &levels,
        asks: &levels,
        symbol: "X",
    }
    .encode()
    .unwrap();
    for (group, at) in [(Group::Bids, 34usize), (Group::Asks, 34 + 4 + 16)] {
        let mut f = diff.clone();
        put_u16(&mut f, at + 2, u16::MAX);
        let need = (at + 4) as u64 + u64::from(u16::MAX) * 16;
        let want = SbeError::Truncated {
            message: MessageKind::DepthDiff,
            part: Part::GroupEntries(group),
            need,
            len: f.len(),
        };
        assert_eq!(decode(&f).unwrap_err(), want);
    }
}

#[test]
fn is_buyer_maker_other_than_false_or_true_is_refused() {
    for bad in [2u8, 0x7f, 0xff] {
        let mut f = trades(4);
        f[TRADES_ENTRIES + 2 * 25 + 24] = bad;
        assert_eq!(decode(&f).unwrap_err(), SbeError::InvalidBool { index: 2 });
    }
}

#[test]
fn a_symbol_that_is_not_utf8_is_refused() {
    let mut f = trades(1);
    let sym = TRADES_ENTRIES + 25 + 1;
    f[sym + 2] = 0xff;
    assert_eq!(decode(&f).unwrap_err(), SbeError::SymbolNotUtf8 { message: MessageKind::Trades });
    // A character cut by the end of the var-data.
    let mut f = trades(1);
    f.truncate(sym - 1);
    f.extend([2, 0xe5, 0xb8]);
    assert_eq!(decode(&f).unwrap_err(), SbeError::SymbolNotUtf8 { message: MessageKind::Trades });
}

#[test]
fn reasons_have_distinct_stable_labels() {
    let errors = [
        SbeError::ShortHeader { len: 0, need: 8 },
        SbeError::UnknownSchema { schema_id: 0, expected: 1 },
        SbeError::UnknownVersion { version: 1, expected: 0 },
        SbeError::UnknownTemplate { template_id: 0 },
        SbeError::BlockTooShort { message: MessageKind::Trades, part: Part::RootBlock, block_length: 0, min: 18 },
        SbeError::Truncated { message: MessageKind::Trades, part: Part::Symbol, need: 9, len: 8 },
        SbeError::InvalidBool { index: 0 },
        SbeError::SymbolNotUtf8 { message: MessageKind::Trades },
        SbeError::TrailingBytes { message: MessageKind::Trades, extra: 1 },
    ];
    let mut labels: Vec<&str> = errors.iter().map(SbeError::kind).collect();
    assert!(labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')));
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), errors.len());
}
