//! The SBE target (`TRANSPORT=sbe`): binary frames through `binance_sbe::decode`, then through
//! the ingester's binary path (a pipeline with the SBE transport: symbol, scale, decimals as
//! text, sequence checks, record encoding, the ring). Its inputs come from a mutator of its own
//! (the JSON mutator's text edits mean little to a binary header), seeded with valid frames of
//! every message the schema has, built by the generated encoder: trade events of 1 to 8 trades
//! (configured symbols and one that is not), best bid/ask, depth snapshot and diff.
//!
//! Oracles:
//! - `decode` returns, never panics; a frame it accepts is read whole (every trade and level).
//! - Nothing is read past a frame's end: a frame accepted is exactly as long as its lengths say,
//!   so every strict prefix of it, a frame shorter than its block length among them, is refused
//!   (by a length check: short header, truncated, block too short). Each prefix is a slice of the
//!   whole frame: a read past its end that escaped the slice's bounds would find the valid bytes
//!   that follow and accept.
//! - Each trade record the pipeline writes is one of the input's trades, with its side and the
//!   exact text of its price and quantity at the symbol's scale, computed here with string
//!   arithmetic (independent of `Decimal::write_fixed`); a trade whose value needs more decimals
//!   than the scale gives no record.

use std::collections::HashMap;
use std::sync::Arc;

use binance_sbe::encode::{BestBidAskFrame, DepthDiffFrame, DepthSnapshotFrame, LevelRow, TradeRow, TradesFrame};
use binance_sbe::{decode, Decimal, Message, SbeError, HEADER_LEN};
use marketflow_ingestor::binance::venue::VENUE;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Pipeline};
use marketflow_ingestor::ring::{ring, RingReader};
use marketflow_ingestor::stream::StreamKind;
use marketflow_ingestor::venue::{BinaryCtx, Scale};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::{guard, Stats};

/// The configured symbols and their scales (btcusdt as the simulator's exchangeInfo says, 8 and
/// 8; ethusdt 2 and 4, so that some valid trades need more decimals than the scale gives).
const SYMBOLS: [(&str, Scale); 2] = [("btcusdt", Scale { price: 8, qty: 8 }), ("ethusdt", Scale { price: 2, qty: 4 })];

/// Valid frames of every message of the schema, from the generated encoder.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (e, symbol) in ["BTCUSDT", "ETHUSDT", "SOLUSDT"].iter().enumerate() {
        let t = 1_700_000_000_000_000 + e as i64 * 1_000_003;
        for n in [1usize, 3, 8] {
            let rows: Vec<TradeRow> = (0..n as i64)
                .map(|i| TradeRow {
                    id: 1_000 * e as i64 + i,
                    price: 4_312_537 + 100 * i,
                    qty: [1_532_000, 100_000_000, 1, 123_456_789][i as usize % 4],
                    is_buyer_maker: i % 2 == 0,
                })
                .collect();
            let (pe, qe) = [(-2, -8), (0, 0), (-8, -8)][n % 3];
            let f = TradesFrame {
                event_time_us: t,
                transact_time_us: t - 17,
                price_exponent: pe,
                qty_exponent: qe,
                trades: &rows,
                symbol,
            };
            out.push(f.encode().expect("a valid trade event"));
        }
        let levels: Vec<LevelRow> = (0..4).map(|i| LevelRow { price: 4_312_500 - i, qty: 1_000 * (i + 1) }).collect();
        let bba = BestBidAskFrame {
            event_time_us: t,
            book_update_id: 77,
            price_exponent: -2,
            qty_exponent: -8,
            bid_price: 4_312_500,
            bid_qty: 10,
            ask_price: 4_312_501,
            ask_qty: 20,
            symbol,
        };
        out.push(bba.encode().expect("a valid best bid/ask"));
        let snapshot = DepthSnapshotFrame {
            event_time_us: t,
            book_update_id: 78,
            price_exponent: -2,
            qty_exponent: -8,
            bids: &levels,
            asks: &levels[..2],
            symbol,
        };
        out.push(snapshot.encode().expect("a valid depth snapshot"));
        let diff = DepthDiffFrame {
            event_time_us: t,
            first_book_update_id: 79,
            last_book_update_id: 81,
            price_exponent: -2,
            qty_exponent: -8,
            bids: &levels[..1],
            asks: &levels,
            symbol,
        };
        out.push(diff.encode().expect("a valid depth diff"));
    }
    out
}

/// Values on the boundaries the decoder's checks care about.
const U16S: &[u16] = &[0, 1, 8, 17, 18, 19, 24, 25, 26, 50, 10000, 10001, 10002, 10003, 10004, 0x7fff, 0xffff];
const U32S: &[u32] = &[0, 1, 2, 3, 8, 255, 256, 65535, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];

/// The mutator: a seed or a kept input, then one to four edits.
pub struct SbeFuzzer {
    rng: SmallRng,
    seeds: Vec<Vec<u8>>,
    /// Accepted mutants (bounded): their descendants reach further than the seeds'.
    kept: Vec<Vec<u8>>,
    pipeline: Pipeline,
    reader: RingReader,
    /// The next trade id of a fresh trade event: ids the pipeline has not seen are not dropped
    /// as duplicates, so their records reach the text oracle.
    next_id: i64,
}

/// The most accepted mutants kept.
const MAX_KEPT: usize = 4096;

impl SbeFuzzer {
    pub fn new(seed: u64) -> SbeFuzzer {
        let symbols: Vec<String> = SYMBOLS.iter().map(|(s, _)| s.to_string()).collect();
        let metrics = Metrics::new(&symbols);
        // Drained after every input: one input's records fit many times over.
        let (w, reader) = ring(1 << 20);
        let mut pipeline = Pipeline::new(&VENUE, w, Arc::clone(&metrics), None);
        pipeline.track_streams(&[StreamKind::Trade]);
        let scales = SYMBOLS.iter().map(|(_, s)| *s).collect();
        pipeline.set_binary(BinaryCtx::new(metrics.symbols.clone(), scales, Default::default()));
        SbeFuzzer {
            rng: SmallRng::seed_from_u64(seed ^ 0x5be0_5be0),
            seeds: seeds(),
            kept: Vec::new(),
            pipeline,
            reader,
            next_id: 1_000_000,
        }
    }

    /// A valid trade event of new ids, random mantissas and exponents, for a configured symbol or
    /// not.
    fn fresh_trades(&mut self, input: &mut Vec<u8>) {
        let rng = &mut self.rng;
        let n = rng.random_range(1..=8i64);
        // Mostly what btcusdt's scale (8) writes exactly, so that records exist to be checked.
        let rows: Vec<TradeRow> = (0..n)
            .map(|i| TradeRow {
                id: self.next_id + i,
                price: if rng.random_ratio(3, 4) { rng.random_range(1..100_000_000) } else { rng.random() },
                qty: if rng.random_ratio(3, 4) { rng.random_range(1..1_000_000_000) } else { rng.random() },
                is_buyer_maker: rng.random(),
            })
            .collect();
        self.next_id += n;
        let t = 1_700_000_000_000_000 + self.next_id;
        let mut exponent = || if rng.random_ratio(3, 4) { rng.random_range(-8..=2) } else { rng.random_range(-12..=3) };
        let (price_exponent, qty_exponent) = (exponent(), exponent());
        let symbol = ["BTCUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT"][rng.random_range(0..4)];
        let frame =
            TradesFrame { event_time_us: t, transact_time_us: t, price_exponent, qty_exponent, trades: &rows, symbol };
        frame.encode_into(input).expect("a valid trade event");
    }

    fn next(&mut self, input: &mut Vec<u8>) {
        input.clear();
        if self.rng.random_ratio(1, 4) {
            // Whole and fresh half the time, mutated like the others otherwise.
            self.fresh_trades(input);
            if self.rng.random_ratio(1, 2) {
                return;
            }
        }
        let rng = &mut self.rng;
        if input.is_empty() {
            let pool = if !self.kept.is_empty() && rng.random_ratio(1, 3) { &self.kept } else { &self.seeds };
            input.extend_from_slice(&pool[rng.random_range(0..pool.len())]);
        }
        for _ in 0..rng.random_range(1..=4) {
            let len = input.len();
            match rng.random_range(0..9) {
                0 if len > 0 => {
                    let at = rng.random_range(0..len);
                    input[at] ^= 1 << rng.random_range(0..8);
                }
                1 if len > 0 => {
                    let at = rng.random_range(0..len);
                    input[at] = [0u8, 1, 2, 0x7f, 0x80, 0xfe, 0xff][rng.random_range(0..7)];
                }
                // The header's u16s (block length, template, schema, version) and any other.
                2 if len >= 2 => {
                    let at = if rng.random_ratio(1, 2) && len >= HEADER_LEN {
                        2 * rng.random_range(0..4)
                    } else {
                        rng.random_range(0..len - 1)
                    };
                    let v = U16S[rng.random_range(0..U16S.len())];
                    input[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
                3 if len >= 4 => {
                    let at = rng.random_range(0..len - 3);
                    let v = U32S[rng.random_range(0..U32S.len())];
                    input[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                4 => input.truncate(rng.random_range(0..=len)),
                5 => input.extend((0..rng.random_range(1..=24)).map(|_| rng.random::<u8>())),
                6 if len > 0 => {
                    let at = rng.random_range(0..len);
                    input.drain(at..at + rng.random_range(1..=(len - at).min(24)));
                }
                7 => {
                    let other = &self.seeds[rng.random_range(0..self.seeds.len())];
                    let (at, from) = (rng.random_range(0..=len), rng.random_range(0..=other.len()));
                    input.truncate(at);
                    input.extend_from_slice(&other[from..]);
                }
                // A trade's mantissa or exponent far from the scale.
                _ if len > 26 => input[16 + rng.random_range(0..10)] = rng.random::<u8>(),
                _ => {}
            }
        }
    }

    /// A saved input once more, through a fresh pipeline (`fuzzing::replay`).
    pub fn replay(&mut self, input: &[u8], st: &mut Stats) {
        target(input, &mut self.pipeline, &mut self.reader, st);
    }

    /// One mutated input through the decoder and the pipeline, under the harness's guard.
    pub(super) fn step(&mut self, st: &mut Stats, note: impl FnOnce(&mut super::Current)) {
        let mut input = Vec::new();
        self.next(&mut input);
        let (pipeline, reader) = (&mut self.pipeline, &mut self.reader);
        let accepted = guard(st, "sbe", &input, note, |st| target(&input, pipeline, reader, st)).unwrap_or(false);
        if accepted && self.kept.len() < MAX_KEPT {
            self.kept.push(input);
        }
    }
}

/// The header's block length, if the frame has a header.
fn block_length(frame: &[u8]) -> Option<usize> {
    frame.get(..2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
}

/// The target on one input; whether `decode` accepted it.
pub fn target(input: &[u8], pipeline: &mut Pipeline, reader: &mut RingReader, st: &mut Stats) -> bool {
    // What an earlier input left when an oracle stopped it half-way is not this input's.
    while reader.drain_with(4096, |_| {}) > 0 {}
    let decoded = decode(input);
    let expected = match &decoded {
        Ok(m) => {
            st.sbe.accept(m.kind().name());
            read_whole(m);
            no_prefix_accepted(input);
            expected_records(m)
        }
        Err(e) => {
            st.sbe.reject(e.kind());
            if let SbeError::TrailingBytes { extra, .. } = e {
                // The frame without them is whole: nothing was missing, only too much there.
                assert!(decode(&input[..input.len() - extra]).is_ok(), "trailing bytes of a frame that is not whole");
            }
            HashMap::new()
        }
    };
    pipeline.on_binary(input, 1_700_000_000_000_000_000, Admission::Normal);
    while reader.drain_with(4096, |v| {
        let rec: serde_json::Value = serde_json::from_slice(v.payload).expect("a record is JSON");
        if rec["type"] == "gap" {
            // The holes mutated ids leave in the sequence, named (no backfill here).
            return;
        }
        // Best bid/ask and depth events become records too; the oracle below is the trades'.
        if rec["type"] != "trade" {
            assert!(matches!(rec["type"].as_str(), Some("book_ticker" | "depth_update")), "{rec}");
            return;
        }
        let id = rec["trade_id"].as_i64().expect("a trade id");
        let want = expected.get(&id).unwrap_or_else(|| panic!("a record of no trade of the input: {rec}"));
        let Some(want) = want else { return };
        let got = (rec["symbol"].as_str(), rec["price"].as_str(), rec["qty"].as_str(), rec["side"].as_str());
        let want_ref = (Some(want.0.as_str()), want.1.as_deref(), want.2.as_deref(), Some(want.3));
        assert!(want.1.is_some() && want.2.is_some(), "a record of a trade its scale cannot write: {rec}");
        assert_eq!(got, want_ref, "the record of trade {id}");
        st.sbe_records += 1;
    }) > 0
    {}
    decoded.is_ok()
}

/// Every trade and level read, every decimal formatted: no panic.
fn read_whole(m: &Message<'_>) {
    let mut text = [0u8; binance_sbe::MAX_TEXT_LEN];
    let mut fmt = |d: Decimal| {
        let _ = d.write_fixed(8, &mut text);
    };
    match m {
        Message::Trades(t) => {
            assert_eq!(t.trades().count(), t.trade_count());
            t.trades().for_each(|x| [x.price, x.qty].into_iter().for_each(&mut fmt));
        }
        Message::BestBidAsk(b) => [b.bid_price(), b.bid_qty(), b.ask_price(), b.ask_qty()].into_iter().for_each(fmt),
        Message::DepthSnapshot(d) => {
            d.bids().chain(d.asks()).for_each(|l| [l.price, l.qty].into_iter().for_each(&mut fmt))
        }
        Message::DepthDiff(d) => d.bids().chain(d.asks()).for_each(|l| [l.price, l.qty].into_iter().for_each(&mut fmt)),
    }
}

/// An accepted frame's strict prefixes are all refused: the header's end, the block's end and
/// the bytes around them, and a few others.
fn no_prefix_accepted(frame: &[u8]) {
    let block_end = HEADER_LEN + block_length(frame).unwrap_or(0);
    assert!(frame.len() >= block_end, "accepted a frame shorter than its block length");
    let mut cuts = vec![0, 1, HEADER_LEN - 1, HEADER_LEN, block_end - 1, block_end, frame.len() - 1];
    cuts.extend((1..5).map(|i| frame.len() * i / 5));
    for cut in cuts.into_iter().filter(|&c| c < frame.len()) {
        let refused = decode(&frame[..cut]);
        assert!(refused.is_err(), "a {cut}-byte prefix of a {}-byte frame accepted", frame.len());
        if cut < block_end {
            assert!(
                matches!(
                    refused,
                    Err(SbeError::ShortHeader { .. } | SbeError::Truncated { .. } | SbeError::BlockTooShort { .. })
                ),
                "{cut} bytes, block ends at {block_end}: {refused:?}"
            );
        }
    }
}

/// Per trade id of the input: (symbol, price text, qty text, side) a record of it must have
/// (`None` texts: the trade needs more decimals than its symbol's scale, so it gives no record);
/// `None`: the id is in the event twice, and the record of either may be the one written.
type Expected = HashMap<i64, Option<(String, Option<String>, Option<String>, &'static str)>>;

fn expected_records(m: &Message<'_>) -> Expected {
    let Message::Trades(t) = m else { return HashMap::new() };
    let Some((_, scale)) = SYMBOLS.iter().find(|(s, _)| s.eq_ignore_ascii_case(t.symbol())) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    let mut ids = HashMap::<i64, u32>::new();
    for x in t.trades() {
        *ids.entry(x.id).or_default() += 1;
        let side = if x.is_buyer_maker { "sell" } else { "buy" };
        let price = fixed(x.price.mantissa, x.price.exponent, scale.price);
        let qty = fixed(x.qty.mantissa, x.qty.exponent, scale.qty);
        out.insert(x.id, Some((t.symbol().to_string(), price, qty, side)));
    }
    for (id, n) in ids {
        if n > 1 {
            out.insert(id, None);
        }
    }
    out
}

/// `mantissa × 10^exponent` with exactly `scale` decimals, by string arithmetic; `None` when a
/// non-zero digit would fall beyond the scale.
pub fn fixed(mantissa: i64, exponent: i8, scale: u8) -> Option<String> {
    let mut digits = mantissa.unsigned_abs().to_string();
    if mantissa == 0 {
        digits = "0".into();
    } else if exponent > 0 {
        digits.push_str(&"0".repeat(exponent as usize));
    }
    let frac_len = if mantissa == 0 { 0 } else { (-i32::from(exponent)).max(0) as usize };
    if digits.len() <= frac_len {
        digits = format!("{}{digits}", "0".repeat(frac_len + 1 - digits.len()));
    }
    let (int, frac) = digits.split_at(digits.len() - frac_len);
    let scale = usize::from(scale);
    let frac = if frac.len() > scale {
        if frac[scale..].bytes().any(|b| b != b'0') {
            return None;
        }
        frac[..scale].to_string()
    } else {
        format!("{frac}{}", "0".repeat(scale - frac.len()))
    };
    let sign = if mantissa < 0 { "-" } else { "" };
    Some(if scale == 0 { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") })
}
