//! Hostile SBE frames through the whole binary path of `TRANSPORT=sbe` (decode, the symbol and
//! its scale, decimals as text, the pipeline's sequence checks, record encoding, the ring):
//! mutated trade, best bid/ask and diff-depth events (bit flips, boundary values in the header,
//! counts and lengths, truncation, extension, splices, exponents) never panic; each is refused
//! and counted by a reason, or gives records that are valid JSON of their type for a configured
//! symbol (and `gap` records naming the holes mutated trade ids leave). The decoder alone is fuzzed in
//! crates/binance-sbe (tests/fuzz.rs, fuzz/); this is what the ingester adds on top.

use std::collections::BTreeMap;

use binance_sbe::encode::{BestBidAskFrame, DepthDiffFrame, LevelRow, TradeRow, TradesFrame};
use marketflow_ingestor::binance::venue::VENUE;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Outcome, Pipeline};
use marketflow_ingestor::stream::StreamKind;
use marketflow_ingestor::venue::{BinaryCtx, Scale};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

fn seed_frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (e, symbol) in ["BTCUSDT", "ETHUSDT", "SOLUSDT"].iter().enumerate() {
        for n in [1usize, 3, 8] {
            let rows: Vec<TradeRow> = (0..n as i64)
                .map(|i| TradeRow {
                    id: 100 * e as i64 + i,
                    price: 4_200_000 + i,
                    qty: 10_000 * (i + 1),
                    is_buyer_maker: i % 2 == 0,
                })
                .collect();
            let t = 1_700_000_000_000_000 + e as i64;
            let f = TradesFrame {
                event_time_us: t,
                transact_time_us: t,
                price_exponent: -2,
                qty_exponent: -8,
                trades: &rows,
                symbol,
            };
            out.push(f.encode().unwrap());
        }
    }
    out
}

/// Where a seed's boundary values go: the u16s of its header, group dimensions and lengths, and
/// its price exponent (the quantity's follows it).
struct Layout {
    u16_at: &'static [usize],
    exponent_at: usize,
}

const TRADES: Layout = Layout { u16_at: &[0, 2, 4, 6, 26, 28, 30], exponent_at: 24 };

fn mutate(rng: &mut SmallRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    mutate_as(rng, seeds, &TRADES)
}

fn mutate_as(rng: &mut SmallRng, seeds: &[Vec<u8>], layout: &Layout) -> Vec<u8> {
    let mut f = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=3) {
        let len = f.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let at = rng.random_range(0..len);
                f[at] ^= 1 << rng.random_range(0..8);
            }
            // A u16 of the header or a group's dimensions set to a boundary value.
            1 => {
                let at = layout.u16_at[rng.random_range(0..layout.u16_at.len())];
                let v: u16 = [0, 1, 17, 18, 25, 26, u16::MAX, u16::MAX - 1, 10_000, 10_001][rng.random_range(0..10)];
                if at + 2 <= len {
                    f[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            2 => f.truncate(rng.random_range(0..=len)),
            3 => f.extend(std::iter::repeat_n(rng.random::<u8>(), rng.random_range(1..40))),
            // An exponent far from the scale: digits beyond it, or a long text.
            4 if len > layout.exponent_at + 1 => f[layout.exponent_at + rng.random_range(0..2)] = rng.random::<u8>(),
            5 if len > 0 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let cut = rng.random_range(0..len.min(other.len()).max(1));
                f.truncate(cut);
                f.extend_from_slice(&other[cut.min(other.len())..]);
            }
            _ => {
                let at = rng.random_range(0..=len);
                f.insert(at, rng.random::<u8>());
            }
        }
    }
    f
}

#[test]
fn mutated_sbe_trade_events_are_refused_by_reason_or_become_valid_records() {
    let inputs: u64 = std::env::var("SBE_HOSTILE_INPUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let seeds = seed_frames();
    let mut rng = SmallRng::seed_from_u64(0x5be);
    let metrics = Metrics::new(&["btcusdt".to_string(), "ethusdt".to_string()]);
    let (w, mut r) = marketflow_ingestor::ring::ring(64 << 20);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    p.track_streams(&[StreamKind::Trade]);
    let scales = vec![Scale { price: 8, qty: 8 }, Scale { price: 2, qty: 4 }];
    p.set_binary(BinaryCtx::new(metrics.symbols.clone(), scales, Default::default()));
    let mut records = 0u64;
    for _ in 0..inputs {
        let f = mutate(&mut rng, &seeds);
        p.on_binary(&f, 1, Admission::Normal);
        while r.drain_with(4096, |v| {
            let rec: serde_json::Value = serde_json::from_slice(v.payload).expect("a record is JSON");
            // Mutated ids leave holes in the sequence, named at once (no backfill here).
            if rec["type"] == "gap" {
                return;
            }
            assert_eq!(rec["type"], "trade", "{rec}");
            assert!(["BTCUSDT", "ETHUSDT"].contains(&rec["symbol"].as_str().unwrap()), "{rec}");
            for field in ["price", "qty"] {
                let text = rec[field].as_str().unwrap();
                assert!(text.bytes().all(|b| b.is_ascii_digit() || b == b'.'), "{rec}");
            }
            records += 1;
        }) > 0
        {}
    }
    let text = metrics.render();
    let reasons: BTreeMap<String, f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("marketflow_ingestor_messages_rejected_total{reason=\""))
        .filter_map(|l| l.split_once("\"} ").map(|(r, v)| (r.to_string(), v.parse().unwrap())))
        .collect();
    assert!(records > 0, "no mutated frame became a record");
    for reason in [
        "sbe_truncated",
        "sbe_unknown_template",
        "sbe_unknown_version",
        "sbe_unknown_schema",
        "sbe_short_header",
        "sbe_inexact_decimal",
        "unknown_symbol",
        "sbe_trailing_bytes",
    ] {
        assert!(reasons.get(reason).copied().unwrap_or(0.0) > 0.0, "{reason} never reached: {reasons:?}");
    }
}

/// Best bid/ask and diff-depth events of two symbols, diffs of 0 to 40 levels a side.
fn book_seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut bbas, mut diffs) = (Vec::new(), Vec::new());
    for (e, symbol) in ["BTCUSDT", "ETHUSDT", "SOLUSDT"].iter().enumerate() {
        let e = e as i64;
        bbas.push(
            BestBidAskFrame {
                event_time_us: 1_700_000_000_000_000 + e,
                book_update_id: 1_000 * e,
                price_exponent: -2,
                qty_exponent: -8,
                bid_price: 4_200_000,
                bid_qty: 10_000,
                ask_price: 4_200_100,
                ask_qty: 20_000,
                symbol,
            }
            .encode()
            .unwrap(),
        );
        for n in [0i64, 1, 5, 40] {
            let levels: Vec<LevelRow> = (0..n).map(|i| LevelRow { price: 4_200_000 - i, qty: 10_000 * i }).collect();
            diffs.push(
                DepthDiffFrame {
                    event_time_us: 1_700_000_000_000_000 + e,
                    first_book_update_id: 1_000 * e + 10 * n,
                    last_book_update_id: 1_000 * e + 10 * n + 9,
                    price_exponent: -2,
                    qty_exponent: -8,
                    bids: &levels,
                    asks: &levels[..levels.len() / 2],
                    symbol,
                }
                .encode()
                .unwrap(),
            );
        }
    }
    (bbas, diffs)
}

/// A pipeline reading SBE for btcusdt (8 decimals) and ethusdt (prices 2, quantities 4), and the
/// ring it writes to.
fn book_pipeline() -> (Pipeline, marketflow_ingestor::ring::RingReader, std::sync::Arc<Metrics>) {
    let metrics = Metrics::new(&["btcusdt".to_string(), "ethusdt".to_string()]);
    let (w, r) = marketflow_ingestor::ring::ring(64 << 20);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    p.track_streams(&[StreamKind::BookTicker, StreamKind::Depth]);
    let scales = vec![Scale { price: 8, qty: 8 }, Scale { price: 2, qty: 4 }];
    p.set_binary(BinaryCtx::new(metrics.symbols.clone(), scales, Default::default()));
    (p, r, metrics)
}

fn rejected(metrics: &Metrics) -> BTreeMap<String, f64> {
    metrics
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("marketflow_ingestor_messages_rejected_total{reason=\""))
        .filter_map(|l| l.split_once("\"} ").map(|(r, v)| (r.to_string(), v.parse().unwrap())))
        .collect()
}

fn is_decimal_text(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-'))
}

/// Every record in the ring is a book ticker or a depth update of a configured symbol whose
/// decimals are decimal text; returns how many.
fn drain_book_records(r: &mut marketflow_ingestor::ring::RingReader) -> u64 {
    let mut records = 0;
    while r.drain_with(4096, |v| {
        let rec: serde_json::Value = serde_json::from_slice(v.payload).expect("a record is JSON");
        assert!(["BTCUSDT", "ETHUSDT"].contains(&rec["symbol"].as_str().unwrap()), "{rec}");
        match rec["type"].as_str().unwrap() {
            "book_ticker" => {
                for f in ["bid_price", "bid_qty", "ask_price", "ask_qty"] {
                    assert!(is_decimal_text(&rec[f]), "{rec}");
                }
                assert!(rec["event_time_ms"].is_i64(), "{rec}");
            }
            "depth_update" => {
                for side in ["bids", "asks"] {
                    for level in rec[side].as_array().unwrap() {
                        let pair = level.as_array().unwrap();
                        assert!(pair.len() == 2 && pair.iter().all(is_decimal_text), "{rec}");
                    }
                }
            }
            other => panic!("{other}: {rec}"),
        }
        records += 1;
    }) > 0
    {}
    records
}

#[test]
fn truncated_groups_counts_past_the_end_and_absurd_exponents_in_book_events_are_refused_and_counted() {
    let (bbas, diffs) = book_seeds();
    let (mut p, mut r, metrics) = book_pipeline();
    // A diff of 5 bid and 2 ask levels for btcusdt.
    let whole = &diffs[2];
    // Every cut of it: into the root, a group header, a level, the symbol.
    for cut in 0..whole.len() {
        assert_eq!(p.on_binary(&whole[..cut], 1, Admission::Normal), Outcome::Rejected, "cut at {cut}");
    }
    // Bid levels announced past the frame's end (numInGroup at 36).
    for count in [6u16, 100, u16::MAX - 1, u16::MAX] {
        let mut f = whole.clone();
        f[36..38].copy_from_slice(&count.to_le_bytes());
        assert_eq!(p.on_binary(&f, 1, Admission::Normal), Outcome::Rejected, "{count} bids");
    }
    // Exponents that would need hundreds of characters, or digits beyond every scale.
    for (frame, at) in [(&bbas[0], 24), (&bbas[0], 25), (whole, 32), (whole, 33)] {
        for exp in [i8::MAX, 100, 64, -100, i8::MIN] {
            let mut f = frame.clone();
            f[at] = exp as u8;
            assert_eq!(p.on_binary(&f, 1, Admission::Normal), Outcome::Rejected, "exponent {exp} at {at}");
        }
    }
    assert_eq!(drain_book_records(&mut r), 0, "nothing refused became a record");
    let reasons = rejected(&metrics);
    let total: f64 = reasons.values().sum();
    assert_eq!(total as usize, whole.len() + 4 + 4 * 5, "each refused once: {reasons:?}");
    for reason in ["sbe_truncated", "sbe_short_header", "sbe_bad_exponent", "sbe_inexact_decimal"] {
        assert!(reasons.get(reason).copied().unwrap_or(0.0) > 0.0, "{reason} never reached: {reasons:?}");
    }
    // The intact events still go.
    assert_eq!(p.on_binary(&bbas[0], 1, Admission::Normal), Outcome::Record);
    assert_eq!(p.on_binary(whole, 1, Admission::Normal), Outcome::Record);
    assert_eq!(drain_book_records(&mut r), 2);
}

#[test]
fn mutated_sbe_book_events_are_refused_by_reason_or_become_valid_records() {
    let inputs: u64 = std::env::var("SBE_HOSTILE_INPUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let (bbas, diffs) = book_seeds();
    // bestBidAsk: header, and the symbol's length byte after the 50-byte root; diff: header, the
    // bids' dimensions (34, 36) and, after one bid level, the asks'.
    let bba = Layout { u16_at: &[0, 2, 4, 6, 58], exponent_at: 24 };
    let diff = Layout { u16_at: &[0, 2, 4, 6, 34, 36, 54, 56], exponent_at: 32 };
    let mut rng = SmallRng::seed_from_u64(0xb00c);
    let (mut p, mut r, metrics) = book_pipeline();
    let mut records = 0u64;
    for i in 0..inputs {
        let f = if i % 2 == 0 { mutate_as(&mut rng, &bbas, &bba) } else { mutate_as(&mut rng, &diffs, &diff) };
        p.on_binary(&f, 1, Admission::Normal);
        records += drain_book_records(&mut r);
    }
    let reasons = rejected(&metrics);
    assert!(records > 0, "no mutated frame became a record");
    for reason in [
        "sbe_truncated",
        "sbe_unknown_template",
        "sbe_unknown_version",
        "sbe_unknown_schema",
        "sbe_short_header",
        "sbe_block_too_short",
        "sbe_inexact_decimal",
        "sbe_bad_exponent",
        "unknown_symbol",
        "sbe_trailing_bytes",
    ] {
        assert!(reasons.get(reason).copied().unwrap_or(0.0) > 0.0, "{reason} never reached: {reasons:?}");
    }
}
