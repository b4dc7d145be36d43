//! A property test over mutated frames, run by `cargo test --workspace` (the coverage-guided
//! counterpart is crates/binance-sbe/fuzz/fuzz_targets/decode.rs): whatever the bytes, `decode`
//! returns, never panics; what it accepts can be read whole (every trade, level and decimal)
//! without a panic, and re-encoding it with the generated encoders and decoding again gives the
//! same message.
//! Deterministic for a seed: `SBE_FUZZ_INPUTS` (default 200000) and `SBE_FUZZ_SEED` override.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use binance_sbe::encode::{BestBidAskFrame, DepthDiffFrame, DepthSnapshotFrame, LevelRow, TradeRow, TradesFrame};
use binance_sbe::{decode, Decimal, Message, MAX_TEXT_LEN};
use common::{observed, valid_frames};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |v| v.parse().unwrap_or_else(|e| panic!("{name}={v}: {e}")))
}

/// Values that sit on the boundaries the checks care about.
const U16S: &[u16] =
    &[0, 1, 4, 15, 16, 17, 18, 24, 25, 26, 49, 50, 51, 10000, 10001, 10002, 10003, 10004, 0x7fff, 0xfffe, 0xffff];
const U32S: &[u32] = &[0, 1, 2, 3, 255, 256, 65535, 65536, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];

fn mutate(rng: &mut SmallRng, frames: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..=4) {
        let len = input.len();
        match rng.random_range(0..9) {
            0 if len > 0 => {
                let at = rng.random_range(0..len);
                input[at] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let at = rng.random_range(0..len);
                input[at] = [0u8, 1, 2, 7, 0x7f, 0x80, 0xfe, 0xff][rng.random_range(0..8)];
            }
            2 if len >= 2 => {
                let at = rng.random_range(0..len - 1);
                let v = U16S[rng.random_range(0..U16S.len())];
                input[at..at + 2].copy_from_slice(&v.to_le_bytes());
            }
            3 if len >= 4 => {
                let at = rng.random_range(0..len - 3);
                let v = U32S[rng.random_range(0..U32S.len())];
                input[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            4 => input.truncate(rng.random_range(0..=len)),
            5 => {
                let n = rng.random_range(1..=40);
                input.extend((0..n).map(|_| rng.random::<u8>()));
            }
            6 if len > 0 => {
                let at = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - at).min(30));
                input.drain(at..at + n);
            }
            7 => {
                let other = &frames[rng.random_range(0..frames.len())];
                let at = rng.random_range(0..=len);
                let from = rng.random_range(0..=other.len());
                input.truncate(at);
                input.extend(&other[from..]);
            }
            _ if len >= 4 => {
                // Another message's template id under this body: the decoders must not trust it.
                let id = 10000 + rng.random_range(0..4u16);
                input[2..4].copy_from_slice(&id.to_le_bytes());
            }
            _ => {}
        }
    }
}

fn rows(levels: impl Iterator<Item = binance_sbe::Level>) -> Vec<LevelRow> {
    levels.map(|l| LevelRow { price: l.price.mantissa, qty: l.qty.mantissa }).collect()
}

/// The message re-encoded with the generated encoders.
fn reencode(m: &Message<'_>) -> Vec<u8> {
    match m {
        Message::Trades(t) => {
            let trades: Vec<TradeRow> = t
                .trades()
                .map(|x| TradeRow {
                    id: x.id,
                    price: x.price.mantissa,
                    qty: x.qty.mantissa,
                    is_buyer_maker: x.is_buyer_maker,
                })
                .collect();
            TradesFrame {
                event_time_us: t.event_time_us(),
                transact_time_us: t.transact_time_us(),
                price_exponent: t.price_exponent(),
                qty_exponent: t.qty_exponent(),
                trades: &trades,
                symbol: t.symbol(),
            }
            .encode()
        }
        Message::BestBidAsk(b) => BestBidAskFrame {
            event_time_us: b.event_time_us(),
            book_update_id: b.book_update_id(),
            price_exponent: b.bid_price().exponent,
            qty_exponent: b.bid_qty().exponent,
            bid_price: b.bid_price().mantissa,
            bid_qty: b.bid_qty().mantissa,
            ask_price: b.ask_price().mantissa,
            ask_qty: b.ask_qty().mantissa,
            symbol: b.symbol(),
        }
        .encode(),
        Message::DepthSnapshot(d) => DepthSnapshotFrame {
            event_time_us: d.event_time_us(),
            book_update_id: d.book_update_id(),
            price_exponent: d.price_exponent(),
            qty_exponent: d.qty_exponent(),
            bids: &rows(d.bids()),
            asks: &rows(d.asks()),
            symbol: d.symbol(),
        }
        .encode(),
        Message::DepthDiff(d) => DepthDiffFrame {
            event_time_us: d.event_time_us(),
            first_book_update_id: d.first_book_update_id(),
            last_book_update_id: d.last_book_update_id(),
            price_exponent: d.price_exponent(),
            qty_exponent: d.qty_exponent(),
            bids: &rows(d.bids()),
            asks: &rows(d.asks()),
            symbol: d.symbol(),
        }
        .encode(),
    }
    .expect("a decoded message re-encodes (its counts and symbol came from a frame)")
}

/// Every decimal of a message formatted at a few scales: exact text or a refusal, no panic.
fn format_all(m: &Message<'_>) {
    let mut text = [0u8; MAX_TEXT_LEN];
    let mut decimals: Vec<Decimal> = Vec::new();
    match m {
        Message::Trades(t) => t.trades().for_each(|x| decimals.extend([x.price, x.qty])),
        Message::BestBidAsk(b) => decimals.extend([b.bid_price(), b.bid_qty(), b.ask_price(), b.ask_qty()]),
        Message::DepthSnapshot(d) => d.bids().chain(d.asks()).for_each(|l| decimals.extend([l.price, l.qty])),
        Message::DepthDiff(d) => d.bids().chain(d.asks()).for_each(|l| decimals.extend([l.price, l.qty])),
    }
    for d in decimals {
        for scale in [0u8, 8, 255] {
            if let Ok(n) = d.write_fixed(scale, &mut text) {
                assert!(n <= MAX_TEXT_LEN && text[..n].iter().all(|b| b.is_ascii_digit() || b"-.".contains(b)));
            }
        }
    }
}

#[test]
fn mutated_frames_never_panic_and_what_decodes_reencodes() {
    let inputs = env_u64("SBE_FUZZ_INPUTS", 200_000);
    let seed = env_u64("SBE_FUZZ_SEED", 0x5BE);
    let frames: Vec<Vec<u8>> = valid_frames().into_iter().map(|(_, f, _)| f).collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut accepted: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut refused: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut input = Vec::new();
    for i in 0..inputs {
        input.clear();
        input.extend(&frames[rng.random_range(0..frames.len())]);
        mutate(&mut rng, &frames, &mut input);
        let outcome = catch_unwind(AssertUnwindSafe(|| match decode(&input) {
            Ok(m) => {
                let seen = observed(&m);
                format_all(&m);
                let again = reencode(&m);
                let m2 = decode(&again).unwrap_or_else(|e| panic!("re-encoded frame refused: {e}"));
                assert_eq!(observed(&m2), seen, "re-encoding changed the message");
                Ok(m.kind().name())
            }
            Err(e) => Err(e.kind()),
        }));
        match outcome {
            Ok(Ok(kind)) => *accepted.entry(kind).or_default() += 1,
            Ok(Err(reason)) => *refused.entry(reason).or_default() += 1,
            Err(_) => panic!("input {i} (seed {seed:#x}) panicked: {input:02x?}"),
        }
    }
    println!("accepted {accepted:?}\nrefused {refused:?}");
    // The mutator must keep reaching every outcome, or this test proves little.
    assert_eq!(accepted.len(), 4, "accepted: {accepted:?}");
    let reasons = [
        "short_header",
        "unknown_schema",
        "unknown_version",
        "unknown_template",
        "block_too_short",
        "truncated",
        "invalid_bool",
        "symbol_not_utf8",
        "trailing_bytes",
    ];
    for r in reasons {
        assert!(refused.get(r).copied().unwrap_or(0) > 0, "no input refused as {r}: {refused:?}");
    }
}

/// Writes the valid frames as a seed corpus for the cargo-fuzz target (fuzz/README in the crate's
/// Cargo.toml): `SBE_FUZZ_CORPUS_DIR` (default fuzz/corpus/decode beside this crate).
#[test]
#[ignore = "writes files; run by hand before a libFuzzer campaign"]
fn export_corpus() {
    let dir = std::env::var("SBE_FUZZ_CORPUS_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/decode").to_owned());
    std::fs::create_dir_all(&dir).unwrap();
    let frames = valid_frames();
    for (i, (kind, frame, _)) in frames.iter().enumerate() {
        std::fs::write(format!("{dir}/{i:02}-{}", kind.name()), frame).unwrap();
    }
    println!("{} seed files in {dir}", frames.len());
}
