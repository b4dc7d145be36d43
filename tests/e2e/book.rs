//! The order book in Kafka (README, "Order book"): a consumer that follows the contract
//! (tools/book-consumer, the library the example program runs) from any offset of the topic must
//! hold the simulator's true book (`Market::book_at`) at the update id it reached; every
//! `depth_snapshot`, the REST-seeded ones and the periodic ones taken from the in-process book,
//! must equal what REST answers at its id; a symbol's first depth record is its snapshot; and a
//! broken sequence (`depth_skip`) is recovered with a `depth_resync` and a fresh snapshot.
//!
//! The simulator's book holds `LEVELS` a side and `DEPTH_LEVELS` is larger, so every snapshot
//! carries the whole book and "equal" means every level, text for text.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use book_consumer::{Books, Step};
use serde_json::Value;

use crate::common::*;
use binance_sim::{Market, SimConfig, SimHandle, StreamKind};

const SYMBOLS: [&str; 3] = ["btcusdt", "ethusdt", "solusdt"];
/// Diff-depth events per second per symbol.
const RATE: f64 = 40.0;
const SECS: u64 = 10;
const LEVELS: usize = 300;

fn market(depth_skip: Option<(u64, u64)>) -> SimHandle {
    sim(SimConfig {
        symbols: SYMBOLS.iter().map(|s| s.to_string()).collect(),
        aux_rate: RATE,
        depth_levels: LEVELS,
        depth_skip,
        duration: Some(Duration::from_secs(SECS)),
        ..SimConfig::default()
    })
}

/// Runs the ingester on the depth stream until the market has finished and a periodic snapshot
/// has followed, and returns every record of the topic in partition-then-offset order.
fn run(sim: &SimHandle) -> Vec<Consumed> {
    let (ws, rest, topic) = (sim.ws_url(), sim.rest_url(), unique_topic("book"));
    let mut ing = Ingester::spawn(&[
        ("BINANCE_WS_URL", &ws),
        ("BINANCE_REST_URL", &rest),
        ("KAFKA_BROKER", kafka()),
        ("KAFKA_TOPIC", &topic),
        ("SYMBOLS", &SYMBOLS.join(",")),
        ("STREAMS", "depth@100ms"),
        ("DEPTH_SNAPSHOT_INTERVAL", "1"),
        ("DEPTH_LEVELS", "1000"),
    ]);
    ing.wait_ready(Duration::from_secs(30));
    let t = Instant::now();
    let per = (RATE * SECS as f64) as u64;
    while SYMBOLS.iter().enumerate().any(|(s, _)| sim.market.generated_for(StreamKind::Depth100ms, s) < per) {
        assert!(t.elapsed() < Duration::from_secs(SECS + 40), "market never finished:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Two snapshot intervals after the last event: each book's last state is in a snapshot too.
    std::thread::sleep(Duration::from_secs(2));
    for s in SYMBOLS {
        assert_eq!(ing.metric(&format!("marketflow_ingestor_depth_book_synced{{symbol=\"{s}\"}}")), 1.0, "{s}");
        let levels = ing.metric(&format!("marketflow_ingestor_depth_book_levels{{side=\"bid\",symbol=\"{s}\"}}"));
        assert!(levels > 0.0 && levels <= LEVELS as f64, "{s}: {levels} bid levels");
    }
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    let mut msgs = consume(&topic, 100, Duration::from_secs(60), Duration::from_secs(3));
    msgs.sort_by_key(|m| (m.partition, m.offset));
    msgs
}

fn symbol_index(m: &Market, r: &Value) -> usize {
    let sym = r["symbol"].as_str().unwrap().to_lowercase();
    m.symbol_index(&sym).unwrap_or_else(|| panic!("unknown symbol in {r}"))
}

fn texts(levels: &Value) -> Vec<(String, String)> {
    let pair = |l: &Value| (l[0].as_str().unwrap().to_string(), l[1].as_str().unwrap().to_string());
    levels.as_array().unwrap().iter().map(pair).collect()
}

/// Every `depth_snapshot` holds exactly the true book at its `last_update_id`, as REST answers
/// it at that id (top `DEPTH_LEVELS` a side, which is all of it here). Returns the count per reason.
fn check_snapshots(m: &Market, msgs: &[Consumed]) -> HashMap<String, usize> {
    let mut reasons = HashMap::new();
    for r in msgs.iter().map(|c| &c.payload).filter(|r| r["type"] == "depth_snapshot") {
        let s = symbol_index(m, r);
        let id = r["last_update_id"].as_i64().unwrap();
        let truth = m.book_at(s, id);
        assert_eq!(truth.last_update_id, id, "a snapshot between two events' ids: {r}");
        assert!(!truth.bids.is_empty() && !truth.asks.is_empty());
        assert_eq!(texts(&r["bids"]), truth.bids, "bids of {} at {id} ({})", SYMBOLS[s], r["reason"]);
        assert_eq!(texts(&r["asks"]), truth.asks, "asks of {} at {id} ({})", SYMBOLS[s], r["reason"]);
        *reasons.entry(r["reason"].as_str().unwrap().to_string()).or_default() += 1;
    }
    reasons
}

/// A consumer reading `msgs` from index `from` on. Each book it holds is checked against the true
/// book after every snapshot, every `check_every`-th applied diff and at the end. Returns the
/// steps it took and its books.
fn consume_from(m: &Market, msgs: &[Consumed], from: usize, check_every: usize) -> (HashMap<Step, usize>, Books) {
    let mut books = Books::default();
    let mut steps: HashMap<Step, usize> = HashMap::new();
    let check = |books: &Books, r: &Value| {
        let sym = r["symbol"].as_str().unwrap();
        let b = books.get(sym).unwrap();
        let truth = m.book_at(symbol_index(m, r), b.last_update_id);
        assert_eq!(truth.last_update_id, b.last_update_id, "{sym}: book between events (from offset {from})");
        assert_eq!((b.bids(), b.asks()), (truth.bids, truth.asks), "{sym} at {} (from {from})", b.last_update_id);
    };
    for c in &msgs[from..] {
        let step = books.apply(&c.payload).unwrap_or_else(|e| panic!("{e}: {}", c.payload));
        let n = steps.entry(step).or_default();
        *n += 1;
        if step == Step::Snapshot || (step == Step::Applied && *n % check_every == 0) {
            check(&books, &c.payload);
        }
    }
    for sym in books.symbols() {
        let b = books.get(sym).unwrap();
        let truth = m.book_at(m.symbol_index(&sym.to_lowercase()).unwrap(), b.last_update_id);
        assert_eq!((b.bids(), b.asks()), (truth.bids, truth.asks), "{sym} at the end (from {from})");
    }
    (steps, books)
}

/// The records of each partition, in offset order (`msgs` is sorted by partition, then offset):
/// a consumer's order is per partition, each symbol's records all in one (key = symbol).
fn partitions(msgs: &[Consumed]) -> Vec<&[Consumed]> {
    msgs.chunk_by(|a, b| a.partition == b.partition).collect()
}

fn symbols_in(part: &[Consumed]) -> std::collections::HashSet<&str> {
    part.iter().map(|c| c.payload["symbol"].as_str().unwrap()).collect()
}

/// Offsets spread over the first three quarters of the topic (a snapshot a second follows each),
/// from a fixed linear congruential sequence: the same offsets every run.
fn random_offsets(len: usize, n: usize) -> Vec<usize> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as usize % (len * 3 / 4)
        })
        .collect()
}

#[test]
fn consumers_from_any_offset_hold_the_true_book_and_every_snapshot_is_the_rest_book() {
    let sim = market(None);
    let msgs = run(&sim);
    let m = &sim.market;

    // A symbol's first record is its start snapshot: no diff is published before a consumer can
    // have a book for it.
    for (s, sym) in SYMBOLS.iter().enumerate() {
        let first = msgs.iter().map(|c| &c.payload).find(|r| symbol_index(m, r) == s).expect("records of every symbol");
        assert_eq!(
            (&first["type"], &first["reason"]),
            (&Value::from("depth_snapshot"), &Value::from("start")),
            "{sym}"
        );
        let diffs = msgs.iter().filter(|c| c.payload["type"] == "depth_update" && symbol_index(m, &c.payload) == s);
        assert!(diffs.count() as f64 > RATE * SECS as f64 * 0.9, "{sym}: diffs published");
    }
    assert!(!msgs.iter().any(|c| c.payload["type"] == "depth_resync"), "no break without a fault");

    // The REST snapshots (start) and the in-process book's (periodic) equal the REST book at
    // their ids.
    let reasons = check_snapshots(m, &msgs);
    assert_eq!(reasons.get("start"), Some(&SYMBOLS.len()), "{reasons:?}");
    assert!(reasons.get("periodic").copied().unwrap_or(0) >= SYMBOLS.len() * (SECS as usize - 2), "{reasons:?}");

    // From the start, every diff applies (each book checked every 10th diff); from any offset,
    // the book is right from the first snapshot on.
    let mut books = HashMap::new();
    for part in partitions(&msgs) {
        let (steps, b) = consume_from(m, part, 0, 10);
        assert_eq!(steps.get(&Step::Dropped), None, "{steps:?}");
        for sym in b.symbols() {
            books.insert(sym.clone(), b.get(sym).unwrap().clone());
        }
    }
    for (s, sym) in SYMBOLS.iter().enumerate() {
        let b = books.get(&sym.to_uppercase()).expect("a book for every symbol");
        let last = Market::depth_update_ids(s, m.generated_for(StreamKind::Depth100ms, s) - 1).1;
        assert_eq!(b.last_update_id, last, "{sym}: the book reached the last event");
    }
    let per_partition: usize = partitions(&msgs).iter().map(|p| symbols_in(p).len()).sum();
    assert_eq!(per_partition, SYMBOLS.len(), "each symbol's records in one partition (key = symbol)");
    // From random offsets of each partition, each consumer holds every book of its partition.
    for part in partitions(&msgs) {
        for from in random_offsets(part.len(), 6) {
            let (steps, books) = consume_from(m, part, from, 25);
            assert_eq!(steps.get(&Step::Dropped), None, "from {from}: {steps:?}");
            assert_eq!(books.symbols().count(), symbols_in(part).len(), "from {from}: a book for every symbol");
        }
    }
}

#[test]
fn a_broken_sequence_is_resynced_in_the_topic_and_consumers_stay_right() {
    // Three events of every 120 left out of the stream: a break every 3 s per symbol.
    let sim = market(Some((120, 3)));
    let msgs = run(&sim);
    let m = &sim.market;
    let reasons = check_snapshots(m, &msgs);
    assert!(reasons.get("resync").copied().unwrap_or(0) >= 2 * SYMBOLS.len(), "{reasons:?}");

    for (s, sym) in SYMBOLS.iter().enumerate() {
        let mine: Vec<&Value> = msgs.iter().map(|c| &c.payload).filter(|r| symbol_index(m, r) == s).collect();
        let resyncs: Vec<usize> = (0..mine.len()).filter(|&i| mine[i]["type"] == "depth_resync").collect();
        assert!(resyncs.len() >= 2, "{sym}: {} resyncs", resyncs.len());
        for &i in &resyncs {
            // The diffs after the break are held until the new book: the symbol's next record
            // is its snapshot.
            let next = mine.get(i + 1).unwrap_or_else(|| panic!("{sym}: nothing after the resync at {i}"));
            assert_eq!(
                (&next["type"], &next["reason"]),
                (&Value::from("depth_snapshot"), &Value::from("resync")),
                "{sym}"
            );
        }
    }

    // Consumers drop the book at each marker and are right again from the snapshot after it.
    for part in partitions(&msgs) {
        for from in std::iter::once(0).chain(random_offsets(part.len(), 4)) {
            let (steps, books) = consume_from(m, part, from, 25);
            assert!(steps.get(&Step::Snapshot).copied().unwrap_or(0) > 0, "from {from}: {steps:?}");
            assert_eq!(books.symbols().count(), symbols_in(part).len(), "from {from}: every book recovered");
            if from == 0 {
                assert!(steps.get(&Step::Dropped).copied().unwrap_or(0) >= 2 * symbols_in(part).len(), "{steps:?}");
            }
        }
    }
}
