//! The strict ordering against a recording sink: order, completeness, bounds, push-back, and no
//! symbol waiting for another. Time is passed in (`expire`), never slept.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::record::{Record, Side, Trade};
use crate::ring::{RecordMeta, FLAG_BACKFILLED};

const WAIT: Duration = Duration::from_secs(3600);

/// What the recording sink was handed: (symbol index, payload as JSON).
type Sent = Arc<Mutex<Vec<(u16, serde_json::Value)>>>;

struct Recorder {
    sent: Sent,
    /// Push back on this many sends before taking any.
    refuse: Arc<AtomicUsize>,
}

impl Sink for Recorder {
    fn send(&mut self, rec: &RecordView<'_>) -> Result<(), SendError> {
        if self.refuse.load(AtomicOrdering::Relaxed) > 0 {
            self.refuse.fetch_sub(1, AtomicOrdering::Relaxed);
            return Err(SendError::Backpressure);
        }
        let v = serde_json::from_slice(rec.payload).expect("JSON");
        self.sent.lock().unwrap().push((rec.meta.symbol_idx, v));
        Ok(())
    }
    fn poll(&mut self, _: Duration) {}
    fn in_flight(&self) -> usize {
        0
    }
    fn stall_after(&self) -> Option<Duration> {
        Some(Duration::from_secs(7))
    }
    fn take_acked(&mut self) -> bool {
        true
    }
    fn flush(&mut self, _: Duration) -> usize {
        0
    }
}

/// The stall watch sees through the ordering to the broker's sink.
#[test]
fn the_stall_bound_and_acknowledgements_are_the_inner_sink_s() {
    let mut r = rig(LIMITS);
    assert_eq!(r.order.stall_after(), Some(Duration::from_secs(7)));
    assert!(r.order.take_acked());
}

struct Rig {
    order: StrictOrder,
    sent: Sent,
    refuse: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

fn rig(limits: Limits) -> Rig {
    let metrics = Metrics::new(&["btcusdt".to_string(), "ethusdt".to_string()]);
    let (sent, refuse) = (Sent::default(), Arc::new(AtomicUsize::new(0)));
    let sink = Box::new(Recorder { sent: sent.clone(), refuse: refuse.clone() });
    let order = StrictOrder::with_limits(sink, "binance", metrics.clone(), WAIT, limits);
    Rig { order, sent, refuse, metrics }
}

/// A trade record's meta and payload (`flags`: backfilled, quarantined).
fn trade(symbol_idx: u16, id: i64, flags: u8) -> (RecordMeta, Vec<u8>) {
    let symbol = ["BTCUSDT", "ETHUSDT"][symbol_idx as usize];
    let t = Trade {
        exchange: "binance",
        symbol,
        trade_id: id,
        price: "1.5".into(),
        qty: "2".into(),
        side: Side::Buy,
        trade_time_ms: 1,
        event_time_ms: 1,
    };
    let mut payload = Vec::new();
    Record::Trade(t).encode(5, flags & FLAG_BACKFILLED != 0, &mut payload).unwrap();
    if flags & FLAG_QUARANTINED != 0 {
        payload.pop();
        payload.extend_from_slice(br#","quarantined":true}"#);
    }
    let meta = RecordMeta { kind: RecordType::Trade, flags, symbol_idx, event_time_ms: 1, recv_ns: 5 };
    (meta, payload)
}

/// A gap record of trades `from..=to`, as the backfill or the event loop writes it.
fn gap(symbol_idx: u16, from: i64, to: i64, reason: Reason) -> (RecordMeta, Vec<u8>) {
    let seq = Seq::Ids { symbol_idx, kind: Dense::Trade };
    let symbol = ["BTCUSDT", "ETHUSDT"][symbol_idx as usize];
    let o = gap_record("binance", symbol, seq, from, to + 1, reason);
    (o.meta, o.payload)
}

impl Rig {
    /// Offers a record as the producer does: again after a poll while the sink pushes back.
    fn offer(&mut self, (meta, payload): (RecordMeta, Vec<u8>)) {
        let key = self.metrics.symbols.upper(meta.symbol_idx).as_bytes().to_vec();
        let v = RecordView { meta, enqueue_ns: 9, key: &key, payload: &payload };
        for _ in 0..1000 {
            match self.order.send(&v) {
                Ok(()) | Err(SendError::Rejected(_)) => return,
                Err(SendError::Backpressure) => self.order.poll(Duration::ZERO),
            }
        }
        panic!("the sink kept pushing back");
    }

    /// What was published, as `t<id>` (`b` backfilled, `q` quarantined) and `gap<from>-<to>:<reason>`.
    fn published(&self, symbol_idx: u16) -> Vec<String> {
        let sent = self.sent.lock().unwrap();
        sent.iter().filter(|(s, _)| *s == symbol_idx).map(|(_, v)| describe(v)).collect()
    }

    fn named(&self, symbol: &str, reason: Named) -> u64 {
        let i = self.metrics.symbols.iter().position(|s| s == symbol).unwrap();
        self.metrics.ordering.named[i][reason as usize].get()
    }
}

fn describe(v: &serde_json::Value) -> String {
    match v["type"].as_str().unwrap() {
        "gap" => format!("gap{}-{}:{}", v["from_id"], v["to_id"], v["reason"].as_str().unwrap()),
        _ => {
            let flag = if v["backfilled"] == true {
                "b"
            } else if v["quarantined"] == true {
                "q"
            } else {
                ""
            };
            format!("t{}{flag}", v["trade_id"])
        }
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn records_in_place_go_at_once_and_a_gap_holds_until_rest_fills_it() {
    let mut r = rig(LIMITS);
    r.offer(trade(0, 100, 0));
    r.offer(trade(0, 101, 0));
    r.offer(trade(0, 104, 0));
    r.offer(trade(0, 105, 0));
    assert_eq!(r.published(0), strs(&["t100", "t101"]), "104 and 105 wait for 102..103");
    assert_eq!(r.order.held(), 2);
    r.offer(trade(0, 102, FLAG_BACKFILLED));
    assert_eq!(r.published(0), strs(&["t100", "t101", "t102b"]));
    r.offer(gap(0, 103, 103, Reason::NotInRest));
    assert_eq!(r.published(0), strs(&["t100", "t101", "t102b", "gap103-103:not_in_rest", "t104", "t105"]));
    assert_eq!(r.order.held(), 0);
    assert_eq!(r.metrics.ordering.held[0].get(), 2);
    r.order.expire(Instant::now() + 2 * WAIT);
    assert_eq!(r.metrics.ordering.held_bytes.get(), 0, "an empty hold frees its memory");
}

#[test]
fn a_gap_record_the_event_loop_writes_after_the_record_behind_it_releases_it() {
    // BACKFILL=off or a full backfill queue: the ring carries 205, then the gap before it.
    let mut r = rig(LIMITS);
    r.offer(trade(0, 200, 0));
    r.offer(trade(0, 205, 0));
    r.offer(gap(0, 201, 204, Reason::BackfillOff));
    assert_eq!(r.published(0), strs(&["t200", "gap201-204:backfill_off", "t205"]));
}

#[test]
fn an_unfilled_gap_is_named_when_the_wait_ends_and_late_records_for_it_are_dropped() {
    let mut r = rig(LIMITS);
    r.offer(trade(0, 1, 0));
    r.offer(trade(0, 5, 0));
    r.offer(trade(0, 6, 0));
    r.order.expire(Instant::now());
    assert_eq!(r.published(0), strs(&["t1"]), "the wait is not over");
    r.order.expire(Instant::now() + WAIT);
    assert_eq!(r.published(0), strs(&["t1", "gap2-4:ordering_timeout", "t5", "t6"]));
    assert_eq!(r.named("btcusdt", Named::Timeout), 1);
    // REST answers after all: those ids are named already, so the records are dropped (counted),
    // and so is the gap record naming them again.
    r.offer(trade(0, 2, FLAG_BACKFILLED));
    r.offer(trade(0, 3, FLAG_BACKFILLED));
    r.offer(gap(0, 4, 4, Reason::NotInRest));
    r.offer(trade(0, 7, 0));
    assert_eq!(r.published(0), strs(&["t1", "gap2-4:ordering_timeout", "t5", "t6", "t7"]));
    assert_eq!(r.metrics.ordering.late_dropped[0].get(), 3);
}

#[test]
fn a_late_record_whose_ids_were_never_named_is_named_instead() {
    // A delivery that failed after later ids went on comes back from REST: it cannot be published
    // in order, and nothing named it yet.
    let mut r = rig(LIMITS);
    for id in 10..13 {
        r.offer(trade(0, id, 0));
    }
    r.offer(trade(0, 11, FLAG_BACKFILLED));
    assert_eq!(r.published(0), strs(&["t10", "t11", "t12", "gap11-11:ordering_late"]));
    assert_eq!(r.named("btcusdt", Named::Late), 1);
}

#[test]
fn one_symbol_waiting_delays_no_other() {
    let mut r = rig(LIMITS);
    r.offer(trade(0, 1, 0));
    r.offer(trade(1, 1, 0));
    for id in 3..50 {
        r.offer(trade(0, id, 0));
        r.offer(trade(1, id - 1, 0));
    }
    assert_eq!(r.published(0), strs(&["t1"]), "btcusdt waits for 2");
    assert_eq!(r.published(1).len(), 48, "ethusdt went on at once: {:?}", r.published(1));
    assert_eq!(r.order.held(), 47);
}

#[test]
fn gap_records_reaching_back_are_cut_only_over_ids_named_already() {
    // The backfill does not send these, but the sink must neither name an id twice where it
    // knows better nor drop one it does not know.
    let mut r = rig(LIMITS);
    r.offer(trade(0, 1, 0));
    r.offer(gap(0, 5, 6, Reason::NotInRest)); // from REST, ahead of the hole 2..4
    r.order.expire(Instant::now() + WAIT);
    assert_eq!(r.published(0), strs(&["t1", "gap2-4:ordering_timeout", "gap5-6:not_in_rest"]));
    r.offer(trade(0, 10, 0));
    // 3..6 are named already: only 7..8 are news; 9 is still missing.
    r.offer(gap(0, 3, 8, Reason::RestError));
    r.offer(trade(0, 9, FLAG_BACKFILLED));
    // A failed delivery (11) refetched in one range with the next gap (12..14), which REST
    // lacks: 11 was never named, so the gap goes whole.
    r.offer(trade(0, 11, 0));
    r.offer(trade(0, 15, 0));
    r.offer(gap(0, 11, 14, Reason::NotInRest));
    let want = [
        "t1",
        "gap2-4:ordering_timeout",
        "gap5-6:not_in_rest",
        "gap7-8:rest_error",
        "t9b",
        "t10",
        "t11",
        "gap11-14:not_in_rest",
        "t15",
    ];
    assert_eq!(r.published(0), strs(&want));
}

#[test]
fn what_rest_sends_before_the_first_live_record_waits_for_it() {
    let mut r = rig(LIMITS);
    r.offer(trade(0, 8, FLAG_BACKFILLED));
    r.order.expire(Instant::now() + 2 * WAIT);
    assert_eq!(r.published(0), Vec::<String>::new(), "no wait runs before the sequence starts");
    r.offer(trade(0, 7, 0));
    r.offer(trade(0, 9, 0));
    assert_eq!(r.published(0), strs(&["t7", "t8b", "t9"]));
}

#[test]
fn the_per_sequence_bound_names_the_oldest_gap_and_releases_what_waited() {
    let mut r = rig(Limits { per_sequence: 32 * 1024, total: 1 << 30 });
    r.offer(trade(0, 0, 0));
    let mut id = 2;
    while r.named("btcusdt", Named::Full) == 0 {
        r.offer(trade(0, id, 0));
        id += 1;
        assert!(id < 10_000, "the bound never bit");
    }
    assert!(r.order.mem <= 32 * 1024, "{} bytes held", r.order.mem);
    let p = r.published(0);
    assert_eq!(&p[..2], strs(&["t0", "gap1-1:ordering_full"]));
    assert_eq!(p.len(), id as usize, "everything up to the last offered went on: {p:?}");
    // A second gap while the first is gone: the bound bites again the same way.
    r.offer(trade(0, id + 5, 0));
    r.offer(trade(0, id, FLAG_BACKFILLED));
    assert_eq!(r.published(0).last().unwrap(), &format!("t{id}b"));
}

#[test]
fn the_total_bound_takes_room_from_the_longest_waiting_symbol() {
    let mut r = rig(Limits { per_sequence: 1 << 30, total: 48 * 1024 });
    r.offer(trade(0, 0, 0));
    r.offer(trade(1, 0, 0));
    r.offer(trade(0, 2, 0)); // btcusdt waits first
    let mut id = 2;
    while r.named("btcusdt", Named::Full) == 0 {
        r.offer(trade(1, id, 0));
        id += 1;
        assert!(id < 10_000, "the bound never bit");
    }
    assert_eq!(r.published(0), strs(&["t0", "gap1-1:ordering_full", "t2"]), "the oldest wait gives way");
    assert_eq!(r.named("ethusdt", Named::Full), 0);
    assert!(r.order.mem <= 48 * 1024);
}

#[test]
fn a_sink_pushing_back_loses_nothing_and_keeps_the_order() {
    let mut r = rig(LIMITS);
    r.offer(trade(0, 1, 0));
    for id in 3..20 {
        r.offer(trade(0, id, 0));
    }
    r.refuse.store(5, AtomicOrdering::Relaxed);
    r.offer(trade(0, 2, FLAG_BACKFILLED));
    // The release stopped at a refusal; the next polls finish it.
    for _ in 0..10 {
        r.order.poll(Duration::ZERO);
    }
    let want: Vec<String> = std::iter::once("t1".to_string())
        .chain(std::iter::once("t2b".to_string()))
        .chain((3..20).map(|i| format!("t{i}")))
        .collect();
    assert_eq!(r.published(0), want);
}

#[test]
fn a_quarantined_record_stands_outside_the_order_and_is_stepped_over() {
    let mut r = rig(LIMITS);
    r.offer(trade(0, 1, 0));
    r.offer(trade(0, 5_000_000, FLAG_QUARANTINED));
    r.offer(trade(0, 2, 0));
    // Confirmed: 5,000,001 follows it; REST fills 3..4_999_999 (here: named at once).
    r.offer(trade(0, 5_000_001, 0));
    r.offer(gap(0, 3, 4_999_999, Reason::BackfillLimit));
    assert_eq!(
        r.published(0),
        strs(&["t1", "t5000000q", "t2", "gap3-4999999:backfill_limit", "t5000001"]),
        "nothing waits for the quarantined id: it was published"
    );
}

#[test]
fn recovered_positions_hold_the_first_live_record_behind_the_hole_since_the_last_run() {
    let mut r = rig(LIMITS);
    r.order.seed(0, Dense::Trade, 99);
    r.offer(trade(0, 103, 0));
    assert_eq!(r.published(0), Vec::<String>::new());
    for id in 100..103 {
        r.offer(trade(0, id, FLAG_BACKFILLED));
    }
    assert_eq!(r.published(0), strs(&["t100b", "t101b", "t102b", "t103"]));
}

#[test]
fn flush_names_what_is_still_open_and_publishes_everything_held() {
    let mut r = rig(LIMITS);
    r.offer(trade(0, 1, 0));
    r.offer(trade(0, 3, 0));
    r.offer(trade(0, 6, 0));
    r.offer(trade(0, 2, FLAG_BACKFILLED));
    assert_eq!(r.order.flush(Duration::from_secs(5)), 0);
    assert_eq!(r.published(0), strs(&["t1", "t2b", "t3", "gap4-5:shutdown", "t6"]));
    assert_eq!(r.order.held(), 0);
}

/// Random interleavings of the ring (live records in id order, with runs skipped) and the
/// backfill channel (each skipped run as records or a gap record, some only at the very end),
/// failed deliveries refetched, random push-back and random expiry: every published trade id
/// strictly increases per symbol,
/// and every id is published exactly once or named, never both.
#[test]
fn any_interleaving_keeps_ids_strictly_increasing_and_every_id_once_or_named() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..200 {
        let mut r = rig(if round % 4 == 0 { Limits { per_sequence: 8 * 1024, total: 12 * 1024 } } else { LIMITS });
        let per = 300i64;
        let mut ring: Vec<VecDeque<(RecordMeta, Vec<u8>)>> = vec![VecDeque::new(); 2];
        let mut channel: VecDeque<(RecordMeta, Vec<u8>)> = VecDeque::new();
        let mut slow: VecDeque<(RecordMeta, Vec<u8>)> = VecDeque::new();
        for s in 0..2u16 {
            let mut id = 0;
            while id < per {
                if id > 0 && rand(10) == 0 {
                    let len = 1 + rand(6) as i64;
                    let end = (id + len).min(per - 1);
                    // REST answers with the records or names them; slowly (after everything
                    // else) for a third, so that only the wait or the bound can name them first.
                    let to = if rand(3) == 0 { &mut slow } else { &mut channel };
                    if rand(2) == 0 {
                        (id..end).for_each(|i| to.push_back(trade(s, i, FLAG_BACKFILLED)));
                    } else {
                        to.push_back(gap(s, id, end - 1, Reason::NotInRest));
                    }
                    id = end;
                }
                ring[s as usize].push_back(trade(s, id, 0));
                id += 1;
            }
        }
        loop {
            let pick = rand(3) as usize;
            let item = match pick {
                0 | 1 => ring[pick].pop_front().or_else(|| channel.pop_front()),
                _ => channel.pop_front(),
            };
            let item =
                item.or_else(|| ring[0].pop_front()).or_else(|| ring[1].pop_front()).or_else(|| slow.pop_front());
            let Some(item) = item else { break };
            if rand(8) == 0 {
                r.refuse.store(rand(4) as usize, AtomicOrdering::Relaxed);
            }
            let live = item.0.flags == 0 && item.0.kind == RecordType::Trade;
            let (symbol_idx, payload) = (item.0.symbol_idx, item.1.clone());
            r.offer(item);
            if live && rand(50) == 0 {
                // Its delivery fails: gone from the topic, refetched from REST (late, as ever).
                let mut sent = r.sent.lock().unwrap();
                let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                if let Some(i) = sent.iter().rposition(|(s, x)| *s == symbol_idx && *x == v) {
                    sent.remove(i);
                    slow.push_back(trade(symbol_idx, v["trade_id"].as_i64().unwrap(), FLAG_BACKFILLED));
                }
            }
            match rand(20) {
                0 => r.order.expire(Instant::now() + WAIT),
                1 => r.order.poll(Duration::ZERO),
                _ => {}
            }
        }
        r.refuse.store(0, AtomicOrdering::Relaxed);
        assert_eq!(r.order.flush(Duration::from_secs(5)), 0, "round {round}");
        for s in 0..2u16 {
            let mut published = vec![0u32; per as usize];
            let mut named = vec![false; per as usize];
            let mut last = -1i64;
            for (_, v) in r.sent.lock().unwrap().iter().filter(|(x, _)| *x == s) {
                if v["type"] == "gap" {
                    for id in v["from_id"].as_i64().unwrap()..=v["to_id"].as_i64().unwrap() {
                        named[id as usize] = true;
                    }
                } else {
                    let id = v["trade_id"].as_i64().unwrap();
                    assert!(id > last, "round {round}, symbol {s}: {id} after {last}");
                    last = id;
                    published[id as usize] += 1;
                }
            }
            for id in 0..per as usize {
                let once = published[id] == 1;
                if !(once != named[id] && published[id] <= 1) {
                    let p: Vec<String> =
                        r.sent.lock().unwrap().iter().filter(|(x, _)| *x == s).map(|(_, v)| describe(v)).collect();
                    panic!("round {round}, symbol {s}, id {id}: {} {}: {p:?}", published[id], named[id]);
                }
            }
        }
    }
}
