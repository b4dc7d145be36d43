//! The order book over the wire: a client that follows Binance's procedure (README §4.6) —
//! buffer the diff-depth stream, take a REST snapshot, drop what it covers, apply the rest —
//! holds exactly the simulator's book ([`Market::book_at`]) at every update id it reaches.

mod common;

use std::collections::{BTreeMap, VecDeque};

use binance_sim::{Book, Market, SimConfig, SimHandle};
use common::*;
use serde_json::Value;

/// A price's ticks: the exact text without its point (every price has eight decimals).
fn key(price: &str) -> u64 {
    price.replace('.', "").parse().unwrap_or_else(|e| panic!("{price}: {e}"))
}

fn levels(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| (l[0].as_str().unwrap().to_string(), l[1].as_str().unwrap().to_string()))
        .collect()
}

#[derive(Debug)]
struct LocalBook {
    id: i64,
    bids: BTreeMap<u64, (String, String)>,
    asks: BTreeMap<u64, (String, String)>,
}

/// `U` beyond the local id + 1: events were missed.
#[derive(Debug)]
struct Gap {
    local: i64,
    first: i64,
}

impl LocalBook {
    fn from_snapshot(s: &Value) -> LocalBook {
        let side = |v: &Value| levels(v).into_iter().map(|l| (key(&l.0), l)).collect();
        LocalBook { id: s["lastUpdateId"].as_i64().unwrap(), bids: side(&s["bids"]), asks: side(&s["asks"]) }
    }

    /// Binance's update procedure for one event.
    fn apply(&mut self, e: &Value) -> Result<(), Gap> {
        let (first, last) = (e["U"].as_i64().unwrap(), e["u"].as_i64().unwrap());
        if last < self.id {
            return Ok(());
        }
        if first > self.id + 1 {
            return Err(Gap { local: self.id, first });
        }
        for (side, book) in [("b", &mut self.bids), ("a", &mut self.asks)] {
            for (p, q) in levels(&e[side]) {
                if q.bytes().all(|b| b == b'0' || b == b'.') {
                    book.remove(&key(&p));
                } else {
                    book.insert(key(&p), (p, q));
                }
            }
        }
        self.id = last;
        Ok(())
    }

    fn as_book(&self) -> Book {
        Book {
            last_update_id: self.id,
            bids: self.bids.values().rev().cloned().collect(),
            asks: self.asks.values().cloned().collect(),
        }
    }
}

fn snapshot(sim: &SimHandle, symbol: &str, limit: &str) -> Answer {
    get(&format!("{}/api/v3/depth", sim.rest_url()), &[("symbol", symbol), ("limit", limit)])
}

/// Steps 2-7 of Binance's procedure, on a stream whose events are buffered in `buf`.
fn sync(sim: &SimHandle, c: &mut Client, buf: &mut VecDeque<Value>) -> LocalBook {
    for _ in 0..100 {
        if buf.is_empty() {
            buf.push_back(c.next().expect("a depth event"));
        }
        let first = buf[0]["U"].as_i64().unwrap();
        let snap = snapshot(sim, "BTCUSDT", "5000").json();
        let last = snap["lastUpdateId"].as_i64().unwrap();
        if last < first {
            continue;
        }
        while buf.front().is_some_and(|e| e["u"].as_i64().unwrap() <= last) {
            buf.pop_front();
        }
        if buf.is_empty() {
            buf.push_back(c.next().expect("a depth event"));
        }
        if buf[0]["U"].as_i64().unwrap() > last + 1 {
            // The events right after the snapshot never came (left out): a later snapshot.
            continue;
        }
        let mut book = LocalBook::from_snapshot(&snap);
        for e in buf.drain(..) {
            book.apply(&e).expect("the buffered events continue the snapshot");
        }
        return book;
    }
    panic!("no snapshot the stream continues in 100 tries");
}

fn check(sim: &SimHandle, book: &LocalBook) {
    let truth = sim.market.book_at(0, book.id);
    assert_eq!(truth.last_update_id, book.id);
    let ours = book.as_book();
    assert!(ours.bids.len() <= sim.market.depth_levels() && ours.asks.len() <= sim.market.depth_levels());
    assert!(key(&ours.bids[0].0) < key(&ours.asks[0].0), "crossed at {}", book.id);
    assert_eq!(ours, truth, "the client's book after update id {}", book.id);
}

#[test]
fn a_client_following_binance_s_procedure_holds_the_simulator_s_book() {
    let sim =
        sim(SimConfig { symbols: vec!["btcusdt".into()], aux_rate: 200.0, depth_levels: 300, ..SimConfig::default() });
    let mut c = connect(&sim, "/ws/btcusdt@depth@100ms");
    let mut buf = VecDeque::new();
    let mut book = sync(&sim, &mut c, &mut buf);
    check(&sim, &book);
    let (mut applied, mut deletions, mut levels_seen) = (0, 0, 0);
    while applied < 400 {
        let e = c.next().expect("a depth event");
        assert_eq!(e["U"].as_i64().unwrap(), book.id + 1, "dense ids: U = previous u + 1");
        assert_eq!(e["u"].as_i64().unwrap(), book.id + 3, "three update ids an event");
        levels_seen += e["b"].as_array().unwrap().len() + e["a"].as_array().unwrap().len();
        deletions += levels(&e["b"]).iter().chain(&levels(&e["a"])).filter(|l| l.1 == "0.00000000").count();
        book.apply(&e).unwrap();
        applied += 1;
        if applied % 100 == 0 {
            check(&sim, &book);
        }
    }
    assert!(levels_seen >= 4 * applied, "{levels_seen} levels in {applied} events");
    assert!(deletions > 0, "no deletion in {applied} events");
}

#[test]
fn snapshots_are_the_book_at_their_last_update_id_with_weights_by_limit() {
    let sim =
        sim(SimConfig { symbols: vec!["btcusdt".into()], aux_rate: 100.0, depth_levels: 1000, ..SimConfig::default() });
    let full = snapshot(&sim, "BTCUSDT", "5000");
    assert_eq!(full.weight, Some(250));
    let snap = full.json();
    let truth = sim.market.book_at(0, snap["lastUpdateId"].as_i64().unwrap());
    assert_eq!((levels(&snap["bids"]), levels(&snap["asks"])), (truth.bids.clone(), truth.asks.clone()));
    assert!(truth.bids.len() > 900 && truth.bids.len() <= 1000, "{} bid levels of at most 1000", truth.bids.len());
    assert!(
        truth.bids[0].0.ends_with("000000") && truth.bids[0].0.len() == "20000.00000000".len(),
        "{:?}",
        truth.bids[0]
    );
    let mut used = 250;
    for (limit, weight, per_side) in
        [("5", 5, 5), ("100", 5, 100), ("101", 25, 101), ("500", 25, 500), ("1000", 50, 1000), ("99999", 250, 1000)]
    {
        let a = snapshot(&sim, "BTCUSDT", limit);
        used += weight;
        assert_eq!((a.status, a.weight), (200, Some(used)), "limit={limit}: {}", a.body);
        let s = a.json();
        let truth = sim.market.book_at(0, s["lastUpdateId"].as_i64().unwrap());
        let (bids, asks) = (levels(&s["bids"]), levels(&s["asks"]));
        assert_eq!((bids.len().min(per_side), asks.len().min(per_side)), (bids.len(), asks.len()));
        assert_eq!((&bids[..], &asks[..]), (&truth.bids[..bids.len()], &truth.asks[..asks.len()]), "limit={limit}");
        assert!(bids.len() >= per_side.min(900), "limit={limit}: {} bids", bids.len());
    }
    // No limit: 100 a side, weight 5; a limit that is not a number: refused.
    let a = get(&format!("{}/api/v3/depth", sim.rest_url()), &[("symbol", "BTCUSDT")]);
    assert_eq!((a.json()["bids"].as_array().unwrap().len(), a.weight), (100, Some(used + 5)));
    assert_eq!(snapshot(&sim, "BTCUSDT", "ten").status, 400);
    // The first book, before any event: the id just below the first event's U.
    let idle = binance_sim::spawn(SimConfig::default(), "127.0.0.1:0").unwrap();
    let _ = idle.market.generated(binance_sim::StreamKind::Depth); // starts the clock
    let first = snapshot(&idle, "ETHUSDT", "5").json();
    let (u0, _) = Market::depth_update_ids(1, 0);
    let last = first["lastUpdateId"].as_i64().unwrap();
    assert!(last >= u0 - 1 && (last - (u0 - 1)) % 3 == 0, "{last}: the u of an event, or U(0) - 1");
}

/// Events left out of the stream (`depth_skip`) break the chain: the procedure sees the gap,
/// resyncs from a fresh snapshot, and holds the true book again.
#[test]
fn left_out_depth_events_force_a_resync_that_recovers_the_book() {
    let sim = sim(SimConfig {
        symbols: vec!["btcusdt".into()],
        aux_rate: 200.0,
        depth_skip: Some((40, 4)),
        ..SimConfig::default()
    });
    let mut c = connect(&sim, "/ws/btcusdt@depth");
    let mut buf = VecDeque::new();
    let mut book = sync(&sim, &mut c, &mut buf);
    let mut gaps = 0;
    // One gap in every 40 events: three within a few hundred.
    for _ in 0..2_000 {
        if gaps == 3 {
            break;
        }
        let e = c.next().expect("a depth event");
        match book.apply(&e) {
            Ok(()) => {}
            Err(g) => {
                gaps += 1;
                assert_eq!(g.first - g.local - 1, 3 * 4, "four events of three ids left out: {g:?}");
                buf.push_back(e);
                book = sync(&sim, &mut c, &mut buf);
                check(&sim, &book);
            }
        }
    }
    assert_eq!(gaps, 3, "the chain breaks where events were left out");
    // Past the last gap, still the true book.
    for _ in 0..20 {
        let e = c.next().unwrap();
        if book.apply(&e).is_err() {
            break;
        }
    }
    check(&sim, &book);
}
