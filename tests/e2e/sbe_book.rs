//! TRANSPORT=sbe for the book streams and the guarantees, end to end: `@bestBidAsk` and `@depth`
//! give the JSON streams' `book_ticker` and `depth_update` records (checked inside the
//! equivalence test of `sbe.rs`, with [`same_book_records`]); over SBE, dropped connections
//! mid-stream break the depth sequence, which is named (a `depth_resync` and a fresh snapshot in
//! the topic) and the book a consumer keeps from the topic ends equal to the simulator's; and
//! every trade arrives exactly once at the JSON exactly-once test's rate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use book_consumer::{Books, Step};
use serde_json::Value;

use crate::common::*;
use binance_sim::{Market, SimConfig, StreamKind};

const KEY: &str = "e2e-sbe-book-key";

/// A record's Kafka key, timestamp and JSON.
type Published = (Vec<u8>, Option<i64>, Value);

/// The records of `kind` in `msgs` by `(symbol, id_field)`: Kafka key, timestamp, and record
/// without `recv_time_ns` and `backfilled` (when each process connected, not its transport). No
/// `(symbol, id)` twice.
fn by_id(msgs: &[Consumed], kind: &str, id_field: &str) -> BTreeMap<(String, i64), Published> {
    let mut out = BTreeMap::new();
    let mut sorted: Vec<&Consumed> = msgs.iter().filter(|m| m.payload["type"] == kind).collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    for m in sorted {
        let mut p = m.payload.clone();
        assert!(p.as_object_mut().unwrap().remove("recv_time_ns").is_some(), "{p}");
        p.as_object_mut().unwrap().remove("backfilled");
        let key = (p["symbol"].as_str().unwrap().to_string(), p[id_field].as_i64().unwrap());
        assert!(out.insert(key.clone(), (m.key.clone(), m.timestamp_ms, p)).is_none(), "{kind} {key:?} twice");
    }
    out
}

/// How many `depth_update` and `book_ticker` records (by id) both ingesters published: the
/// comparison below wants more than 200 of each, which a loaded machine may take a while to reach
/// (each ingester publishes depth once its book is synced).
pub fn book_records_in_both(json: &[Consumed], sbe: &[Consumed]) -> (usize, usize) {
    let both = |kind: &str, id: &str| {
        let (j, s) = (by_id(json, kind, id), by_id(sbe, kind, id));
        j.keys().filter(|k| s.contains_key(*k)).count()
    };
    (both("depth_update", "final_update_id"), both("book_ticker", "update_id"))
}

/// The `depth_update` and `book_ticker` records two ingesters published from one market, one
/// over JSON and one over SBE, in `unit` (`ms`/`us`), are the same where both have them: depth
/// updates field for field with their Kafka key and timestamp; book tickers field for field and
/// key, except that SBE's carry an event time, which must be that of the market's event (the
/// depth update of the same update id), and so also a Kafka timestamp of their own.
pub fn same_book_records(unit: &str, json: &[Consumed], sbe: &[Consumed]) {
    let (jd, sd) = (by_id(json, "depth_update", "final_update_id"), by_id(sbe, "depth_update", "final_update_id"));
    let common: Vec<_> = jd.keys().filter(|k| sd.contains_key(*k)).collect();
    assert!(common.len() > 200, "{unit}: {} depth updates in both ({} JSON, {} SBE)", common.len(), jd.len(), sd.len());
    for k in &common {
        assert_eq!(jd[*k], sd[*k], "{unit}: depth update {k:?} differs between the transports");
    }
    let event_time = format!("event_time_{unit}");
    let (jb, sb) = (by_id(json, "book_ticker", "update_id"), by_id(sbe, "book_ticker", "update_id"));
    let common: Vec<_> = jb.keys().filter(|k| sb.contains_key(*k)).collect();
    assert!(common.len() > 200, "{unit}: {} book tickers in both ({} JSON, {} SBE)", common.len(), jb.len(), sb.len());
    for k in &common {
        let (jkey, _, j) = &jb[*k];
        let (skey, _, s) = &sb[*k];
        let mut s = s.clone();
        let t =
            s.as_object_mut().unwrap().remove(&event_time).unwrap_or_else(|| panic!("{unit}: no {event_time}: {s}"));
        assert_eq!((jkey, j), (skey, &s), "{unit}: book ticker {k:?} differs between the transports");
        // Book ticker k and diff k of the simulated market are one event: one id, one time.
        if let Some((_, _, d)) = sd.get(*k) {
            assert_eq!(t, d[&event_time], "{unit}: book ticker {k:?}'s time is not its event's");
        }
    }
}

const SYMBOLS: [&str; 2] = ["btcusdt", "ethusdt"];
/// Diff-depth events a second per symbol, and the market's length.
const RATE: f64 = 40.0;
const SECS: u64 = 14;

fn texts(levels: &Value) -> Vec<(String, String)> {
    let pair = |l: &Value| (l[0].as_str().unwrap().to_string(), l[1].as_str().unwrap().to_string());
    levels.as_array().unwrap().iter().map(pair).collect()
}

/// Dropped SBE connections mid-stream break each symbol's diff sequence: the break is named (a
/// `depth_resync` in the topic, counted as a gap) and followed by a fresh REST snapshot; every
/// snapshot is the simulator's book at its id; and a consumer reading the topic from the start
/// holds, at the end, the simulator's book at the last update id.
#[test]
fn sbe_depth_survives_dropped_connections_with_resyncs_and_the_true_book() {
    let sim = sim(SimConfig {
        symbols: SYMBOLS.iter().map(|s| s.to_string()).collect(),
        aux_rate: RATE,
        depth_levels: 200,
        duration: Some(Duration::from_secs(SECS)),
        sbe_api_key: Some(KEY.into()),
        ..SimConfig::default()
    });
    let topic = unique_topic("e2e_sbe_depth");
    let mut ing = start_sbe(
        &sim,
        KEY,
        &topic,
        &[
            ("SYMBOLS", &SYMBOLS.join(",")),
            ("STREAMS", "depth@100ms"),
            ("DEPTH_SNAPSHOT_INTERVAL", "1"),
            ("DEPTH_LEVELS", "1000"),
        ],
    );
    let m = &sim.market;
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(4));
        // The first reconnect waits at least 125 ms (ws/limits.rs), five events of the market,
        // and the simulator resumes a stream at its live edge: the new connection's first diff
        // starts after the book's id.
        sim.drop_connections();
    }
    let per = (RATE * SECS as f64) as u64;
    let t = Instant::now();
    while SYMBOLS.iter().enumerate().any(|(s, _)| m.generated_for(StreamKind::Depth, s) < per) {
        assert!(t.elapsed() < Duration::from_secs(SECS + 40), "market never finished:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let reconnects = ing.metric("marketflow_ingestor_ws_reconnects_total{symbol=\"btcusdt\"}");
    let gaps = ing.metric_sum("marketflow_ingestor_gaps_total");
    for s in SYMBOLS {
        assert_eq!(ing.metric(&format!("marketflow_ingestor_depth_book_synced{{symbol=\"{s}\"}}")), 1.0, "{s}");
    }
    // A dropped connection is a reset without a closing handshake (`ws_protocol`); no frame is.
    let rejected = ing.metric_sum("marketflow_ingestor_messages_rejected_total");
    let resets = ing.metric("marketflow_ingestor_messages_rejected_total{reason=\"ws_protocol\"}");
    assert_eq!(rejected - resets, 0.0, "{}", ing.dump_logs());
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    assert!(reconnects >= 2.0, "{reconnects} reconnects");
    let mut msgs = consume(&topic, 100, Duration::from_secs(60), Duration::from_secs(3));
    msgs.sort_by_key(|c| (c.partition, c.offset));

    // Every snapshot (start, resync, periodic) is the true book at its id.
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for r in msgs.iter().map(|c| &c.payload).filter(|r| r["type"] == "depth_snapshot") {
        let s = m.symbol_index(&r["symbol"].as_str().unwrap().to_lowercase()).unwrap();
        let id = r["last_update_id"].as_i64().unwrap();
        let truth = m.book_at(s, id);
        assert_eq!(truth.last_update_id, id, "a snapshot between two events' ids: {r}");
        assert_eq!((texts(&r["bids"]), texts(&r["asks"])), (truth.bids, truth.asks), "{r}");
        *reasons.entry(r["reason"].as_str().unwrap().to_string()).or_default() += 1;
    }
    // Each drop broke each symbol's sequence (named: gap counted, resync marker, new snapshot).
    let resyncs = msgs.iter().filter(|c| c.payload["type"] == "depth_resync").count();
    assert!(resyncs >= 2 * SYMBOLS.len(), "{resyncs} resyncs, snapshots {reasons:?}");
    assert!(reasons.get("resync").copied().unwrap_or(0) >= 2 * SYMBOLS.len(), "{reasons:?}");
    assert!(gaps >= (2 * SYMBOLS.len()) as f64, "{gaps} gaps counted");

    // A consumer from the first record holds the true book wherever it checks, and at the end.
    let mut books = Books::default();
    let mut steps: BTreeMap<String, usize> = BTreeMap::new();
    for c in &msgs {
        let step = books.apply(&c.payload).unwrap_or_else(|e| panic!("{e}: {}", c.payload));
        let n = steps.entry(format!("{step:?}")).or_default();
        *n += 1;
        // Each check replays the market up to the id: every snapshot, every 10th diff.
        if step == Step::Snapshot || (step == Step::Applied && *n % 10 == 0) {
            let sym = c.payload["symbol"].as_str().unwrap();
            let b = books.get(sym).unwrap();
            let truth = m.book_at(m.symbol_index(&sym.to_lowercase()).unwrap(), b.last_update_id);
            assert_eq!((b.bids(), b.asks()), (truth.bids, truth.asks), "{sym} at {}", b.last_update_id);
        }
    }
    assert!(steps.get("Dropped").copied().unwrap_or(0) >= 2 * SYMBOLS.len(), "{steps:?}");
    for (s, sym) in SYMBOLS.iter().enumerate() {
        let b = books.get(&sym.to_uppercase()).expect("a book for every symbol");
        let last = Market::depth_update_ids(s, m.generated_for(StreamKind::Depth, s) - 1).1;
        assert_eq!(b.last_update_id, last, "{sym}: the book reached the market's last event");
    }
}

/// The JSON exactly-once test's pattern over SBE: 3 symbols at 20,000 trades/s in total, every
/// trade exactly once, in order, every field as sent; nothing rejected, no gap, no duplicate,
/// no reconnect.
#[test]
fn sbe_trades_at_twenty_thousand_a_second_arrive_exactly_once() {
    let sim = sim(sbe_market(KEY, 20_000.0, 15));
    assert_eq!(sim.market.total_trades_per_symbol(), Some(100_000));
    let topic = unique_topic("e2e_sbe_exactly_once");
    let ing = start_sbe(
        &sim,
        KEY,
        &topic,
        &[("SYMBOLS", "btcusdt,ethusdt,solusdt"), ("STREAMS", "trade"), QUIET_IS_NOT_STALE[0], QUIET_IS_NOT_STALE[1]],
    );
    assert_every_trade_exactly_once(&sim, ing, &topic);
}
