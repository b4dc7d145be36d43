//! USD-M futures keeps spot's promises (issue 12, "Done when"), against the simulator's USD-M
//! market and the real local Kafka, with a USD-M-only process (`SYMBOLS` empty):
//!
//! - every aggregate trade exactly once per `a` across forced disconnects and ids the stream
//!   skips (fetched from `/fapi/v1/aggTrades`), those REST lacks too named in `gap` records;
//! - rotations at a short connection age and on `serverShutdown`, make-before-break: with the
//!   backfill off, nothing but the overlap can keep the sequence whole, so no gap and no duplicate;
//! - depth continuity by `pu`: a diff left out breaks the chain, the topic carries a
//!   `depth_resync` and a new `depth_snapshot` from `/fapi/v1/depth`, and a consumer following the
//!   contract (tools/book-consumer, step 5) holds the simulator's book.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use book_consumer::{Books, Step};
use serde_json::Value;

use crate::common::*;
use binance_sim::{Market, SimConfig, SimHandle, StreamKind, UsdmHandle};

const SYMBOLS: [&str; 2] = ["btcusdt", "ethusdt"];

/// A spot market nobody subscribes to, and a USD-M one trading `SYMBOLS` for `secs`, tuned by
/// `extra`.
fn usdm_market(secs: u64, extra: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut usdm = SimConfig {
        symbols: SYMBOLS.iter().map(|s| s.to_string()).collect(),
        // 100 aggregate trades a second per symbol.
        trade_rate: 200.0,
        duration: Some(Duration::from_secs(secs)),
        ..SimConfig::usdm_market()
    };
    extra(&mut usdm);
    sim(SimConfig { symbols: vec!["btcusdt".into()], usdm: Some(Box::new(usdm)), ..SimConfig::default() })
}

fn usdm(sim: &SimHandle) -> &UsdmHandle {
    sim.usdm.as_ref().expect("a USD-M market")
}

/// A USD-M-only ingester on `streams`, publishing every USD-M record to `topic`, once ready.
fn start_usdm(sim: &SimHandle, topic: &str, streams: &str, extra: &[(&str, &str)]) -> Ingester {
    let u = usdm(sim);
    let (ws, rest, spot_topic) = (u.ws_url(), u.rest_url(), unique_topic("usdm_unused_spot"));
    let symbols = SYMBOLS.join(",");
    let mut env = vec![
        ("SYMBOLS", ""),
        ("USDM_SYMBOLS", symbols.as_str()),
        ("USDM_STREAMS", streams),
        ("USDM_WS_URL", ws.as_str()),
        ("USDM_REST_URL", rest.as_str()),
        ("USDM_KAFKA_TOPIC", topic),
        ("KAFKA_TOPIC", spot_topic.as_str()),
    ];
    env.extend_from_slice(extra);
    start(sim, &spot_topic, &env)
}

/// The sum of a family's USD-M series (`market="usdm"`); panics when it has none, so a renamed
/// metric or label fails rather than reads as 0.
fn usdm_metric(ing: &Ingester, family: &str) -> f64 {
    let samples = ing.scrape();
    let mine: Vec<f64> = samples
        .iter()
        .filter(|(s, _)| s.split('{').next() == Some(family) && s.contains("market=\"usdm\""))
        .map(|(_, v)| *v)
        .collect();
    assert!(!mine.is_empty(), "no USD-M series of {family}:\n{}", not_exported(&samples, family));
    mine.iter().sum()
}

/// Waits until the USD-M market has generated every aggregate trade of its duration.
fn wait_agg_trades(sim: &SimHandle, ing: &Ingester) -> u64 {
    let m = &usdm(sim).market;
    let per = m.total_trades_per_symbol().unwrap();
    let t = Instant::now();
    while m.generated(StreamKind::AggTrade) < per {
        assert!(t.elapsed() < Duration::from_secs(120), "market never finished:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    per
}

/// Reads the topic back (at least `want` records, then quiet) and stops the ingester cleanly;
/// `stale` records (each stream found silent once the market ended) left out, the rest in
/// partition-then-offset order: each symbol's order, its records all in one partition.
fn drain(mut ing: Ingester, topic: &str, want: u64) -> Vec<Consumed> {
    let mut msgs = consume(topic, want as usize, Duration::from_secs(120), Duration::from_secs(3));
    let (st, _) = ing.terminate(Duration::from_secs(30));
    assert!(st.success(), "exit {st:?}:\n{}", ing.dump_logs());
    msgs.retain(|m| !is_stale(m));
    msgs.sort_by_key(|m| (m.partition, m.offset));
    msgs
}

/// What an aggregate-trade check found, over all symbols.
#[derive(Debug, Default)]
struct Found {
    live: u64,
    /// Backfilled ids the stream did send (a disconnect's hole), and those it skipped.
    backfilled_holes: u64,
    backfilled_skips: u64,
    /// Ids named in `gap` records.
    named: u64,
}

/// Per symbol, aggregate trades `0..per` are each in `msgs` exactly once (every field as the
/// simulator sent it) or, when `unrecoverable(k)`, named in a `gap` record (and then not
/// published); nothing else is there; live records come in `a` order; each `a` the stream
/// skipped came from REST (`backfilled`). `msgs` is in partition-then-offset order.
fn verify_agg_trades(msgs: &[Consumed], m: &Market, per: u64, unrecoverable: impl Fn(u64) -> bool) -> Found {
    let n = SYMBOLS.len();
    let (mut seen, mut named) = (vec![vec![false; per as usize]; n], vec![vec![false; per as usize]; n]);
    let mut last_live: Vec<Option<u64>> = vec![None; n];
    let mut partition: Vec<Option<i32>> = vec![None; n];
    let mut found = Found::default();
    for c in msgs {
        let p = &c.payload;
        let sym = p["symbol"].as_str().unwrap_or_else(|| panic!("no symbol: {p}"));
        let s = m.symbol_index(&sym.to_lowercase()).unwrap_or_else(|| panic!("unknown symbol in {p}"));
        assert_eq!(p["exchange"], "binance-usdm", "{p}");
        assert_eq!(c.key, sym.as_bytes(), "key = symbol: {p}");
        assert_eq!(*partition[s].get_or_insert(c.partition), c.partition, "{sym} spread over partitions");
        let base = Market::trade_id_base(s);
        match p["type"].as_str().unwrap() {
            "gap" => {
                assert_eq!((&p["stream"], &p["reason"]), (&"aggTrade".into(), &"not_in_rest".into()), "{p}");
                let (from, to) = (p["from_id"].as_i64().unwrap(), p["to_id"].as_i64().unwrap());
                assert_eq!(p["missing"].as_i64().unwrap(), to - from + 1, "{p}");
                for k in (from - base) as u64..=(to - base) as u64 {
                    assert!(k < per && unrecoverable(k), "{sym}: a gap names #{k}, which REST has: {p}");
                    assert!(!named[s][k as usize], "{sym}: #{k} named twice");
                    named[s][k as usize] = true;
                    found.named += 1;
                }
            }
            "agg_trade" => {
                let k = (p["agg_id"].as_i64().unwrap() - base) as u64;
                assert!(k < per, "{sym}: aggTrade #{k} beyond the {per} generated: {p}");
                assert!(!seen[s][k as usize], "{sym}: aggTrade #{k} published twice");
                seen[s][k as usize] = true;
                let e = m.expected_agg_trade(s, k);
                assert_eq!(p["symbol"], e.symbol, "{p}");
                assert_eq!(p["price"], e.price, "{p}");
                assert_eq!(p["qty"], e.qty, "{p}");
                assert_eq!(p["first_trade_id"], e.first_trade_id, "{p}");
                assert_eq!(p["last_trade_id"], e.last_trade_id, "{p}");
                assert_eq!(p["side"], if e.buyer_is_maker { "sell" } else { "buy" }, "{p}");
                assert_eq!(p["trade_time_ms"], e.trade_time_ms, "{p}");
                if p["backfilled"] == true {
                    if m.stream_skips(k) {
                        found.backfilled_skips += 1;
                    } else {
                        found.backfilled_holes += 1;
                    }
                } else {
                    assert!(!m.stream_skips(k), "{sym}: #{k} was never streamed, yet published live: {p}");
                    // REST has no event time; the stream's is kept as sent.
                    assert_eq!(p["event_time_ms"], e.event_time_ms, "{p}");
                    if let Some(prev) = last_live[s] {
                        assert!(k > prev, "{sym}: live aggTrade #{k} after #{prev}");
                    }
                    last_live[s] = Some(k);
                    found.live += 1;
                }
            }
            other => panic!("unexpected record type {other}: {p}"),
        }
    }
    for (s, sym) in SYMBOLS.iter().enumerate() {
        for k in 0..per as usize {
            assert!(seen[s][k] || named[s][k], "{sym}: aggTrade #{k} neither published nor named in a gap");
            assert!(!(seen[s][k] && named[s][k]), "{sym}: aggTrade #{k} both published and named missing");
        }
    }
    found
}

/// Every aggregate trade of a 30 s market exactly once across four dropped connections and ids
/// the stream skips, those REST lacks too named; `extra` settings on top. Returns what was read.
fn agg_trades_across_faults(extra: &[(&str, &str)]) -> Vec<Consumed> {
    // The last 3 of every 199 aggregate trades never reach the stream; REST lacks the last of
    // those. 3000 a symbol: the market ends on live ones (a gap at the very end of a market that
    // never trades again cannot be seen).
    let sim = usdm_market(30, |c| {
        c.stream_skip = Some((199, 3));
        c.rest_missing = Some((199, 1));
    });
    let u = usdm(&sim);
    let topic = unique_topic("usdm_once");
    let ing = start_usdm(&sim, &topic, "aggTrade", extra);
    // Four drops, the last well before the market ends: the trades after it are live again.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_secs(4));
        u.drop_connections();
    }
    let per = wait_agg_trades(&sim, &ing);
    assert_eq!(per, 3000);
    let reconnects = usdm_metric(&ing, "marketflow_ingestor_ws_reconnects_total");
    let (skipped, lost) = {
        let m = &u.market;
        ((0..per).filter(|&k| m.stream_skips(k)).count() as u64, (0..per).filter(|&k| m.rest_lacks(k)).count() as u64)
    };
    let msgs = drain(ing, &topic, SYMBOLS.len() as u64 * per);
    let found = verify_agg_trades(&msgs, &u.market, per, |k| u.market.rest_lacks(k));
    let n = SYMBOLS.len() as u64;
    assert_eq!(found.named, n * lost, "{found:?}");
    assert_eq!(found.backfilled_skips, n * (skipped - lost), "every skipped id REST has was fetched: {found:?}");
    assert!(found.backfilled_holes > 0, "the disconnects opened holes that REST filled: {found:?}");
    assert_eq!(found.live + found.backfilled_holes + found.backfilled_skips + found.named, n * per);
    // One per drop and symbol, at least (a symbol's series counts each of its connection's).
    assert!(reconnects >= 4.0 * n as f64, "{reconnects} reconnects");
    assert!(u.rest_stats.requests.load(std::sync::atomic::Ordering::Relaxed) > 0, "/fapi/v1/aggTrades asked");
    msgs
}

#[test]
fn usdm_agg_trades_exactly_once_across_disconnects_and_skipped_ids_and_the_unrecoverable_named() {
    agg_trades_across_faults(&[]);
}

#[test]
fn usdm_agg_trades_in_strict_order_per_symbol_across_the_same_faults() {
    // Waits long enough that every gap is filled or found missing in REST, not timed out.
    let msgs = agg_trades_across_faults(&[("ORDERING", "strict"), ("ORDERING_MAX_WAIT_MS", "60000")]);
    // Per symbol, in topic order, the ids published or named only ever go up: backfilled ones
    // in their place, not after the live ones that followed their gap.
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for c in &msgs {
        let p = &c.payload;
        let (from, to) = match p["type"].as_str() {
            Some("agg_trade") => (p["agg_id"].as_i64().unwrap(), p["agg_id"].as_i64().unwrap()),
            _ => (p["from_id"].as_i64().unwrap(), p["to_id"].as_i64().unwrap()),
        };
        let prev = last.insert(p["symbol"].as_str().unwrap().to_string(), to);
        assert!(prev.is_none_or(|prev| from == prev + 1), "after #{prev:?}: {p}");
    }
}

#[test]
fn usdm_rest_bans_and_rate_limits_are_waited_out_and_every_skipped_id_still_comes() {
    use std::sync::atomic::Ordering::Relaxed;
    // Two of every 49 aggregate trades skipped: four gaps a second over both symbols, while
    // `/fapi/` allows three aggTrades pages (weight 20 each) a second and starts with a 3 s ban.
    let sim = usdm_market(20, |c| {
        c.stream_skip = Some((49, 2));
        c.rest_weight_limit = 60;
        c.rest_weight_window = Duration::from_secs(1);
    });
    let u = usdm(&sim);
    let topic = unique_topic("usdm_ratelimit");
    let ing = start_usdm(&sim, &topic, "aggTrade", &[]);
    u.ban_rest(Duration::from_secs(3));
    let per = wait_agg_trades(&sim, &ing);
    let t = Instant::now();
    while u.rest_stats.throttled.load(Relaxed) == 0 {
        assert!(t.elapsed() < Duration::from_secs(60), "never throttled:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    let msgs = drain(ing, &topic, SYMBOLS.len() as u64 * per);
    let found = verify_agg_trades(&msgs, &u.market, per, |_| false);
    let skipped = (0..per).filter(|&k| u.market.stream_skips(k)).count() as u64;
    assert_eq!((found.backfilled_skips, found.named), (SYMBOLS.len() as u64 * skipped, 0), "{found:?}");
    assert_eq!(u.rest_stats.early.load(Relaxed), 0, "a request came before its Retry-After");
    assert_eq!(u.rest_stats.banned.load(Relaxed), 1, "one 418, then the ban was waited out");
}

#[test]
fn usdm_sigkill_and_restart_continue_where_the_usdm_topic_ends() {
    let sim = usdm_market(25, |_| {});
    let u = usdm(&sim);
    let topic = unique_topic("usdm_sigkill");
    let mut first = start_usdm(&sim, &topic, "aggTrade", &[]);
    std::thread::sleep(Duration::from_secs(5));
    // No drain, no flush: the restart must find in the USD-M topic where this run stopped.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let second = start_usdm(&sim, &topic, "aggTrade", &[]);
    assert!(
        second.logs.lock().unwrap().iter().any(|l| l.contains("recovery: continuing after")),
        "the restart found where the first run stopped:\n{}",
        second.dump_logs()
    );
    let per = wait_agg_trades(&sim, &second);
    let msgs = drain(second, &topic, SYMBOLS.len() as u64 * per);
    let found = verify_agg_trades(&msgs, &u.market, per, |_| false);
    assert!(found.backfilled_holes > 0, "the hole while down was filled from /fapi/v1/aggTrades: {found:?}");
}

/// Diff-depth events a second per symbol beside the aggregate trades of the rotation tests.
const BOOK_RATE: f64 = 10.0;

/// A market for the rotation tests: aggregate trades on `/market`, the order book on `/public`,
/// both for 20 s.
fn rotating_market(extra: impl FnOnce(&mut SimConfig)) -> SimHandle {
    usdm_market(20, |c| {
        c.aux_rate = BOOK_RATE;
        extra(c);
    })
}

/// The event numbers of a symbol's `depth_update` records, in topic order, each checked to carry
/// the ids the simulator sent with it (`U`, `u`, `pu`).
fn diffs_of(records: &[&Value], s: usize) -> Vec<u64> {
    let diffs = records.iter().filter(|r| r["type"] == "depth_update");
    diffs
        .map(|r| {
            // Ten update ids a slot, `u` in its last three: the slot is the event.
            let k = (r["final_update_id"].as_i64().unwrap() - Market::trade_id_base(s)) as u64 / 10;
            let (first, last, pu) = Market::usdm_depth_ids(s, k);
            let ids = (&r["first_update_id"], &r["final_update_id"], &r["prev_final_update_id"]);
            assert_eq!(ids, (&first.into(), &last.into(), &pu.into()), "{r}");
            k
        })
        .collect()
}

/// With the backfill off (each hole named at once in a `gap` record), every aggregate trade of
/// every symbol must arrive live, once, in `a` order; and each book must run from its start
/// snapshot to the market's last diff without a break, every diff once and in order: what only a
/// make-before-break overlap, on both routes, gives.
fn verify_whole(msgs: &[Consumed], m: &Market, per: u64) {
    let (trades, book): (Vec<Consumed>, Vec<Consumed>) =
        msgs.iter().cloned().partition(|c| matches!(c.payload["type"].as_str(), Some("agg_trade" | "gap")));
    let found = verify_agg_trades(&trades, m, per, |_| false);
    assert_eq!((found.live, found.named), (SYMBOLS.len() as u64 * per, 0), "{found:?}");
    let mut books = Books::default();
    for c in &book {
        let step = books.apply(&c.payload).unwrap_or_else(|e| panic!("{e}: {}", c.payload));
        assert_ne!(step, Step::Dropped, "the chain broke at {}", c.payload);
    }
    for (s, sym) in SYMBOLS.iter().enumerate() {
        let upper = sym.to_uppercase();
        let mine: Vec<&Value> = book.iter().map(|c| &c.payload).filter(|r| r["symbol"] == upper.as_str()).collect();
        assert_eq!((&mine[0]["type"], &mine[0]["reason"]), (&"depth_snapshot".into(), &"start".into()), "{sym}");
        assert!(mine[1..].iter().all(|r| r["type"] == "depth_update"), "{sym}: one snapshot, no resync");
        let events = m.generated_for(StreamKind::Depth100ms, s);
        assert!(events as f64 >= BOOK_RATE * 19.0, "{sym}: {events} diffs");
        assert_eq!(diffs_of(&mine, s), (0..events).collect::<Vec<_>>(), "{sym}: every diff once, in order");
        let b = books.get(&upper).unwrap();
        assert_eq!(b.last_update_id, Market::usdm_depth_ids(s, events - 1).1, "{sym}: the book reached the last diff");
        let truth = m.book_at(s, b.last_update_id);
        assert_eq!((b.bids(), b.asks()), (truth.bids, truth.asks), "{sym}");
    }
}

/// The streams and settings of the rotation tests: backfill off, books published only at the
/// start and after a break.
const ROTATING_STREAMS: &str = "aggTrade,depth@100ms";
const NO_BACKFILL: (&str, &str) = ("BACKFILL", "off");
const NO_PERIODIC: (&str, &str) = ("DEPTH_SNAPSHOT_INTERVAL", "0");

/// What the rotation tests read back: every aggregate trade and diff, and the start snapshots.
fn rotated_records(per: u64) -> u64 {
    SYMBOLS.len() as u64 * (per + 1 + (BOOK_RATE * 19.0) as u64)
}

#[test]
fn usdm_rotations_at_a_short_connection_age_lose_and_repeat_nothing() {
    // The server cuts every connection after 5 s; the ingester rotates at 2 s, before the cut.
    let sim = rotating_market(|c| c.connection_lifetime = Some(Duration::from_secs(5)));
    let topic = unique_topic("usdm_rotation");
    let ing = start_usdm(&sim, &topic, ROTATING_STREAMS, &[NO_BACKFILL, NO_PERIODIC, ("WS_MAX_AGE_SECS", "2")]);
    let per = wait_agg_trades(&sim, &ing);
    // Two connections (`/market`, `/public`), each rotated every 2 s or so.
    let rotations = usdm_metric(&ing, "marketflow_ingestor_ws_rotations_total");
    assert!(rotations >= 6.0, "{rotations} rotations");
    assert_eq!(usdm_metric(&ing, "marketflow_ingestor_gaps_total"), 0.0);
    let msgs = drain(ing, &topic, rotated_records(per));
    verify_whole(&msgs, &usdm(&sim).market, per);
}

#[test]
fn usdm_server_shutdown_is_handled_as_on_spot_replacement_before_the_close() {
    let sim = rotating_market(|_| {});
    let u = usdm(&sim);
    let topic = unique_topic("usdm_shutdown");
    let ing = start_usdm(&sim, &topic, ROTATING_STREAMS, &[NO_BACKFILL, NO_PERIODIC]);
    // Twice: the replacement connections are told to go in turn.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(5));
        u.announce_shutdown();
    }
    let per = wait_agg_trades(&sim, &ing);
    let rotations = usdm_metric(&ing, "marketflow_ingestor_ws_rotations_total");
    assert!(rotations >= 4.0, "{rotations} rotations: two connections told twice:\n{}", ing.dump_logs());
    // Old and new connections delivered side by side for a while: the overlap, deduplicated.
    assert!(usdm_metric(&ing, "marketflow_ingestor_duplicates_dropped_total") > 0.0, "overlap seen");
    assert_eq!(usdm_metric(&ing, "marketflow_ingestor_gaps_total"), 0.0);
    let msgs = drain(ing, &topic, rotated_records(per));
    verify_whole(&msgs, &u.market, per);
}

/// Diff-depth events a second per symbol, and how long the book market runs.
const DEPTH_RATE: f64 = 20.0;
const DEPTH_SECS: u64 = 13;

fn texts(levels: &Value) -> Vec<(String, String)> {
    let pair = |l: &Value| (l[0].as_str().unwrap().to_string(), l[1].as_str().unwrap().to_string());
    levels.as_array().unwrap().iter().map(pair).collect()
}

/// A consumer following the contract from `from` on in one partition: after each snapshot and
/// each applied diff its book equals the simulator's at the id it holds. Returns its steps.
fn follow(m: &Market, part: &[Consumed], from: usize) -> (BTreeMap<String, usize>, Books) {
    let mut books = Books::default();
    let mut steps: BTreeMap<String, usize> = BTreeMap::new();
    for c in &part[from..] {
        let r = &c.payload;
        let step = books.apply(r).unwrap_or_else(|e| panic!("{e}: {r}"));
        *steps.entry(format!("{step:?}")).or_default() += 1;
        if matches!(step, Step::Snapshot | Step::Applied) {
            let sym = r["symbol"].as_str().unwrap();
            let b = books.get(sym).unwrap();
            let truth = m.book_at(m.symbol_index(&sym.to_lowercase()).unwrap(), b.last_update_id);
            assert_eq!((b.bids(), b.asks()), (truth.bids, truth.asks), "{sym} at {} (from {from})", b.last_update_id);
        }
    }
    (steps, books)
}

/// Runs a USD-M-only ingester on `depth@100ms` of a book market of `DEPTH_SECS` (`market` tunes
/// it), `during` injecting faults while it runs, until every book has its last diff; returns
/// the topic's records (`stale` ones left out) in partition-then-offset order.
fn run_book(market: impl FnOnce(&mut SimConfig), during: impl FnOnce(&UsdmHandle)) -> (SimHandle, Vec<Consumed>) {
    let sim = usdm_market(DEPTH_SECS, |c| {
        c.aux_rate = DEPTH_RATE;
        market(c);
    });
    let (u, topic) = (usdm(&sim), unique_topic("usdm_depth"));
    // No periodic snapshot: after a break only the REST snapshot can bring a consumer back.
    let mut ing = start_usdm(&sim, &topic, "depth@100ms", &[("DEPTH_SNAPSHOT_INTERVAL", "0")]);
    during(u);
    let per = (DEPTH_RATE * DEPTH_SECS as f64) as u64;
    let t = Instant::now();
    while (0..SYMBOLS.len()).any(|s| u.market.generated_for(StreamKind::Depth100ms, s) < per) {
        assert!(t.elapsed() < Duration::from_secs(DEPTH_SECS + 60), "market never finished:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    // The books are whole again (a resync's snapshot may still be on its way).
    let t = Instant::now();
    while usdm_metric(&ing, "marketflow_ingestor_depth_book_synced") < SYMBOLS.len() as f64 {
        assert!(t.elapsed() < Duration::from_secs(60), "books never synced again:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (st, _) = ing.terminate(Duration::from_secs(30));
    assert!(st.success(), "{}", ing.dump_logs());
    let mut msgs = consume(&topic, 2 * per as usize, Duration::from_secs(60), Duration::from_secs(3));
    msgs.retain(|c| !is_stale(c));
    msgs.sort_by_key(|c| (c.partition, c.offset));
    (sim, msgs)
}

/// What the book topic of one symbol held.
struct BookTopic {
    /// Event numbers of its diffs, in topic order.
    diffs: Vec<u64>,
    resyncs: usize,
}

/// The book topic's promises, per symbol: its first record is the start snapshot; its diffs
/// carry the ids sent (`U`, `u`, `pu`), each once and in order; each `depth_resync` is followed
/// at once by a `resync` snapshot; every snapshot is the simulator's book at its id. A consumer
/// following the contract from the start holds the true book after every step, drops it exactly
/// at the markers (never on a diff: no break goes unmarked) and ends at the last event; one from
/// any offset is right from its first snapshot on.
fn check_book_topic(m: &Market, msgs: &[Consumed]) -> Vec<BookTopic> {
    let per = (DEPTH_RATE * DEPTH_SECS as f64) as u64;
    let mut out = Vec::new();
    for (s, sym) in SYMBOLS.iter().enumerate() {
        let upper = sym.to_uppercase();
        let mine: Vec<&Value> = msgs.iter().map(|c| &c.payload).filter(|r| r["symbol"] == upper.as_str()).collect();
        assert!(mine.iter().all(|r| r["exchange"] == "binance-usdm"), "{sym}");
        assert_eq!((&mine[0]["type"], &mine[0]["reason"]), (&"depth_snapshot".into(), &"start".into()), "{sym}");
        let diffs = diffs_of(&mine, s);
        assert!(diffs.windows(2).all(|w| w[0] < w[1]), "{sym}: diffs once each, in order: {diffs:?}");
        let resyncs: Vec<usize> = (0..mine.len()).filter(|&i| mine[i]["type"] == "depth_resync").collect();
        for &i in &resyncs {
            assert_eq!(mine[i]["reason"], "sequence_gap", "{}", mine[i]);
            // The diffs after the break are held until the new book.
            let next = mine.get(i + 1).unwrap_or_else(|| panic!("{sym}: nothing after the resync"));
            assert_eq!((&next["type"], &next["reason"]), (&"depth_snapshot".into(), &"resync".into()), "{sym}");
        }
        // An id inside an event's [U, u] holds that whole event, as Binance's futures snapshots do.
        let snapshots: Vec<&&Value> = mine.iter().filter(|r| r["type"] == "depth_snapshot").collect();
        assert_eq!(snapshots.len(), 1 + resyncs.len(), "{sym}: start and one per break");
        for r in snapshots {
            let truth = m.book_at(s, r["last_update_id"].as_i64().unwrap());
            assert!(!truth.bids.is_empty() && !truth.asks.is_empty());
            assert_eq!((texts(&r["bids"]), texts(&r["asks"])), (truth.bids, truth.asks), "{sym}: {}", r["reason"]);
        }
        out.push(BookTopic { diffs, resyncs: resyncs.len() });
    }

    let mut ends = BTreeMap::new();
    for part in msgs.chunk_by(|a, b| a.partition == b.partition) {
        let (steps, books) = follow(m, part, 0);
        let markers = part.iter().filter(|c| c.payload["type"] == "depth_resync").count();
        assert_eq!(steps.get("Dropped").copied().unwrap_or(0), markers, "{steps:?}");
        for sym in books.symbols() {
            ends.insert(sym.clone(), books.get(sym).unwrap().last_update_id);
        }
        for from in [part.len() / 5, part.len() / 3, part.len() / 2] {
            follow(m, part, from);
        }
    }
    for (s, sym) in SYMBOLS.iter().enumerate() {
        let last = Market::usdm_depth_ids(s, per - 1).1;
        assert_eq!(ends.get(&sym.to_uppercase()), Some(&last), "{sym}: the book reached the last event");
    }
    out
}

#[test]
fn usdm_depth_chains_by_pu_and_a_break_is_resynced_from_fapi_depth() {
    // Two events of every 60 left out of the stream: the next one's `pu` names a `u` never seen,
    // every 3 s per symbol. 260 events a symbol: the market ends on delivered ones.
    let (sim, msgs) = run_book(|c| c.depth_skip = Some((60, 2)), |_| {});
    let m = &usdm(&sim).market;
    let per = (DEPTH_RATE * DEPTH_SECS as f64) as u64;
    let breaks = (0..per).filter(|&k| m.stream_omits(StreamKind::Depth100ms, k) && k % 60 == 58).count();
    assert_eq!(breaks, 4);
    let sent: Vec<u64> = (0..per).filter(|&k| !m.stream_omits(StreamKind::Depth100ms, k)).collect();
    for (sym, topic) in SYMBOLS.iter().zip(check_book_topic(m, &msgs)) {
        // Every diff the stream sent, none it left out (the ingester never invents one).
        assert_eq!(topic.diffs, sent, "{sym}: the diffs sent, each once, in order");
        assert_eq!(topic.resyncs, breaks, "{sym}: a resync per break");
    }
}

#[test]
fn usdm_depth_dropped_connections_are_resynced_and_consumers_stay_right() {
    // The `/public` connection dropped three times: each reconnect resumes at the live `u`, so
    // the first diff after it names (`pu`) one never received.
    let (sim, msgs) = run_book(
        |_| {},
        |u| {
            for _ in 0..3 {
                std::thread::sleep(Duration::from_secs(3));
                u.drop_connections();
            }
        },
    );
    let per = (DEPTH_RATE * DEPTH_SECS as f64) as u64;
    for (sym, topic) in SYMBOLS.iter().zip(check_book_topic(&usdm(&sim).market, &msgs)) {
        // A reconnect waits at least 125 ms (its backoff): two diffs or more lost each time, and
        // the ingester publishes every one it got, so lost diffs and resyncs go together.
        let lost = per - topic.diffs.len() as u64;
        assert!(lost > 0 && topic.resyncs > 0, "{sym}: {lost} diffs lost, {} resyncs", topic.resyncs);
    }
}
