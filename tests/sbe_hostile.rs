//! Hostile SBE frames through the whole binary path of `TRANSPORT=sbe` (decode, the symbol and
//! its scale, decimals as text, the pipeline's sequence checks, record encoding, the ring):
//! mutated trade events (bit flips, boundary values in the header, counts and lengths,
//! truncation, extension, splices) never panic; each is refused and counted by a reason, or gives
//! records that are valid trade JSON of a configured symbol (and `gap` records naming the holes
//! mutated ids leave). The decoder alone is fuzzed in
//! crates/binance-sbe (tests/fuzz.rs, fuzz/); this is what the ingester adds on top.

use std::collections::BTreeMap;

use binance_sbe::encode::{TradeRow, TradesFrame};
use marketflow_ingestor::binance::venue::VENUE;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Pipeline};
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

fn mutate(rng: &mut SmallRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut f = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=3) {
        let len = f.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let at = rng.random_range(0..len);
                f[at] ^= 1 << rng.random_range(0..8);
            }
            // A u16 of the header or a group's dimensions set to a boundary value.
            1 if len >= 34 => {
                let at = [0usize, 2, 4, 6, 26, 28, 30][rng.random_range(0..7)];
                let v: u16 = [0, 1, 17, 18, 25, 26, u16::MAX, 10_000, 10_001][rng.random_range(0..9)];
                f[at..at + 2].copy_from_slice(&v.to_le_bytes());
            }
            2 => f.truncate(rng.random_range(0..=len)),
            3 => f.extend(std::iter::repeat_n(rng.random::<u8>(), rng.random_range(1..40))),
            // An exponent far from the scale: digits beyond it, or a long text.
            4 if len > 25 => f[24 + rng.random_range(0..2)] = rng.random::<u8>(),
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
    p.set_binary(BinaryCtx { symbols: metrics.symbols.clone(), scales, unit: Default::default() });
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
