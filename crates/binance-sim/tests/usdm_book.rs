//! The USD-M order book over the wire: a client that follows Binance's futures procedure
//! (developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/
//! How-to-manage-a-local-order-book-correctly) — buffer the stream, take a `/fapi/v1/depth`
//! snapshot, drop events with `u < lastUpdateId`, start with the event that has
//! `U <= lastUpdateId <= u`, then require every `pu` to be the previous `u` — holds exactly the
//! simulator's book ([`Market::book_at`]) at every update id it reaches.

mod common;

use std::collections::{BTreeMap, VecDeque};

use binance_sim::{Book, SimConfig, SimHandle, UsdmHandle};
use common::*;
use serde_json::Value;

/// A price's ticks: futures prices have two decimals.
fn key(price: &str) -> u64 {
    let (int, frac) = price.split_once('.').unwrap_or_else(|| panic!("{price}"));
    assert_eq!(frac.len(), 2, "{price}");
    format!("{int}{frac}").parse().unwrap_or_else(|e| panic!("{price}: {e}"))
}

fn levels(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| (l[0].as_str().unwrap().to_string(), l[1].as_str().unwrap().to_string()))
        .collect()
}

fn id(e: &Value, k: &str) -> i64 {
    e[k].as_i64().unwrap_or_else(|| panic!("{k} of {e}"))
}

#[derive(Debug)]
struct LocalBook {
    /// The `u` of the last event applied, or the snapshot's `lastUpdateId`.
    id: i64,
    bids: BTreeMap<u64, (String, String)>,
    asks: BTreeMap<u64, (String, String)>,
}

impl LocalBook {
    fn from_snapshot(s: &Value) -> LocalBook {
        let side = |v: &Value| levels(v).into_iter().map(|l| (key(&l.0), l)).collect();
        LocalBook { id: id(s, "lastUpdateId"), bids: side(&s["bids"]), asks: side(&s["asks"]) }
    }

    /// One event's levels: absolute quantities, zero deletes.
    fn apply(&mut self, e: &Value) {
        for (side, book) in [("b", &mut self.bids), ("a", &mut self.asks)] {
            for (p, q) in levels(&e[side]) {
                if q.bytes().all(|b| b == b'0' || b == b'.') {
                    book.remove(&key(&p));
                } else {
                    book.insert(key(&p), (p, q));
                }
            }
        }
        self.id = id(e, "u");
    }

    fn as_book(&self) -> Book {
        Book {
            last_update_id: self.id,
            bids: self.bids.values().rev().cloned().collect(),
            asks: self.asks.values().cloned().collect(),
        }
    }
}

fn snapshot(u: &UsdmHandle, limit: Option<&str>) -> Answer {
    let mut q = vec![("symbol", "BTCUSDT")];
    q.extend(limit.map(|l| ("limit", l)));
    get(&format!("{}/fapi/v1/depth", u.rest_url()), &q)
}

/// Binance's futures procedure from the snapshot on, over the events buffered in `buf`.
fn sync(u: &UsdmHandle, c: &mut Client, buf: &mut VecDeque<Value>) -> LocalBook {
    'snapshot: for _ in 0..100 {
        if buf.is_empty() {
            buf.push_back(c.next().expect("a depth event"));
        }
        let snap = snapshot(u, Some("1000")).json();
        let last = id(&snap, "lastUpdateId");
        while buf.front().is_some_and(|e| id(e, "u") < last) {
            buf.pop_front();
        }
        if buf.is_empty() {
            buf.push_back(c.next().expect("a depth event"));
        }
        let first = &buf[0];
        if !(id(first, "U") <= last && last <= id(first, "u")) {
            // The snapshot is older than the buffer, or the events it ends in never came.
            continue;
        }
        let mut book = LocalBook::from_snapshot(&snap);
        book.apply(first);
        buf.pop_front();
        while let Some(e) = buf.pop_front() {
            if id(&e, "pu") != book.id {
                buf.push_front(e);
                continue 'snapshot;
            }
            book.apply(&e);
        }
        return book;
    }
    panic!("no snapshot the stream continues in 100 tries");
}

fn check(u: &UsdmHandle, book: &LocalBook) {
    let truth = u.market.book_at(0, book.id);
    assert_eq!(truth.last_update_id, book.id);
    let ours = book.as_book();
    assert!(ours.bids.len() <= u.market.depth_levels() && ours.asks.len() <= u.market.depth_levels());
    assert!(key(&ours.bids[0].0) < key(&ours.asks[0].0), "crossed at {}", book.id);
    assert_eq!(ours, truth, "the client's book after update id {}", book.id);
}

fn usdm(sim: &SimHandle) -> &UsdmHandle {
    sim.usdm.as_ref().unwrap()
}

fn book_market(depth_skip: Option<(u64, u64)>) -> SimHandle {
    usdm_sim(SimConfig {
        symbols: vec!["btcusdt".into()],
        aux_rate: 200.0,
        depth_levels: 300,
        depth_skip,
        ..SimConfig::usdm_market()
    })
}

#[test]
fn a_client_following_binance_s_futures_procedure_holds_the_simulator_s_book() {
    let sim = book_market(None);
    let u = usdm(&sim);
    let mut c = connect_at(u.addr, "/public/ws/btcusdt@depth@100ms");
    let mut buf = VecDeque::new();
    let mut book = sync(u, &mut c, &mut buf);
    check(u, &book);
    let (mut applied, mut not_next, mut deletions) = (0, 0, 0);
    while applied < 400 {
        let e = c.next().expect("a depth event");
        assert_eq!(id(&e, "pu"), book.id, "chained by pu: {e}");
        assert!(id(&e, "U") > book.id && id(&e, "U") <= id(&e, "u"), "{e}");
        not_next += usize::from(id(&e, "U") != book.id + 1);
        deletions += levels(&e["b"]).iter().chain(&levels(&e["a"])).filter(|l| l.1 == "0.00000").count();
        assert!(id(&e, "T") <= id(&e, "E"), "transaction time, then event time: {e}");
        book.apply(&e);
        applied += 1;
        if applied % 100 == 0 {
            check(u, &book);
        }
    }
    assert!(not_next > 200, "U is mostly not the previous u + 1 on futures ({not_next} of {applied})");
    assert!(deletions > 0, "no deletion in {applied} events");
}

#[test]
fn snapshots_hold_the_book_at_their_id_with_futures_limits_and_weights() {
    let sim = usdm_sim(SimConfig {
        symbols: vec!["btcusdt".into()],
        aux_rate: 100.0,
        depth_levels: 1000,
        ..SimConfig::usdm_market()
    });
    let u = usdm(&sim);
    wait_for("some book events", || u.market.generated_for(binance_sim::StreamKind::Depth, 0) > 3);
    let mut used = 0;
    for (limit, weight) in [("5", 2), ("10", 2), ("20", 2), ("50", 2), ("100", 5), ("500", 10), ("1000", 20)] {
        let a = snapshot(u, Some(limit));
        used += weight;
        assert_eq!((a.status, a.weight), (200, Some(used)), "limit={limit}: {}", a.body);
        let s = a.json();
        let last = id(&s, "lastUpdateId");
        let truth = u.market.book_at(0, last);
        assert!(truth.last_update_id >= last, "lastUpdateId falls within its last event's [U, u]");
        let (bids, asks) = (levels(&s["bids"]), levels(&s["asks"]));
        let per_side: usize = limit.parse().unwrap();
        assert!(bids.len() <= per_side && bids.len() >= per_side.min(900), "limit={limit}: {} bids", bids.len());
        assert_eq!((&bids[..], &asks[..]), (&truth.bids[..bids.len()], &truth.asks[..asks.len()]), "limit={limit}");
        assert!(id(&s, "T") <= id(&s, "E"), "{}", a.body);
        let keys: Vec<&String> = s.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "lastUpdateId, E, T, bids, asks: {keys:?}");
    }
    // No limit: 500 a side, weight 10; a limit Binance does not list, or not a number: refused.
    let a = snapshot(u, None);
    assert_eq!((a.json()["bids"].as_array().unwrap().len(), a.weight), (500, Some(used + 10)));
    let odd = snapshot(u, Some("200"));
    assert_eq!((odd.status, odd.json()["code"].as_i64()), (400, Some(-4021)), "{}", odd.body);
    assert_eq!(odd.json()["msg"], "'200' is not valid depth limit.");
    assert_eq!(snapshot(u, Some("ten")).status, 400);
    let unknown = get(&format!("{}/fapi/v1/depth", u.rest_url()), &[("symbol", "DOGEUSDT")]);
    assert_eq!((unknown.status, unknown.json()["code"].as_i64()), (400, Some(-1121)));
}

/// Events left out of the depth streams (`depth_skip`) break the `pu` chain: the procedure sees
/// it, resyncs from a fresh snapshot, and holds the true book again.
#[test]
fn left_out_depth_events_break_the_pu_chain_and_a_resync_recovers_the_book() {
    let sim = book_market(Some((40, 4)));
    let u = usdm(&sim);
    let mut raw = connect_at(u.addr, "/public/ws/btcusdt@depth");
    let mut buf = VecDeque::new();
    let mut book = sync(u, &mut raw, &mut buf);
    let mut breaks = 0;
    for _ in 0..2_000 {
        if breaks == 3 {
            break;
        }
        let e = raw.next().expect("a depth event");
        if id(&e, "pu") == book.id {
            book.apply(&e);
            continue;
        }
        breaks += 1;
        assert!(id(&e, "pu") > book.id, "a break is events missing, not going back: {e}");
        buf.push_back(e);
        book = sync(u, &mut raw, &mut buf);
        check(u, &book);
    }
    assert_eq!(breaks, 3, "the chain breaks where events were left out");
    check(u, &book);
}
