//! The books' procedure, record by record: what is held, what is published, in which order.

use super::*;
use crate::handoff::jobs::{self, JobReceiver};
use crate::record::{DepthUpdate, Levels, Record};

struct Rig {
    books: Books,
    jobs: JobReceiver,
    seeds: crossbeam_channel::Sender<DepthSeed>,
    metrics: Arc<Metrics>,
    /// What reached the sink: each record's JSON.
    out: Vec<serde_json::Value>,
}

fn rig(interval: Option<Duration>) -> Rig {
    let metrics = Metrics::new(&["btcusdt".to_string(), "ethusdt".to_string()]);
    let (tx, jobs) = jobs::channel(2);
    let (seeds, rx) = crate::handoff::depth::channel();
    let books = Books::new("binance", &metrics, BookSettings { levels: 100, interval }, tx, rx);
    Rig { books, jobs, seeds, metrics, out: Vec::new() }
}

/// A depth_update of symbol 0, `U..=u`, setting bid `price` to `qty`.
fn diff(first: i64, last: i64, price: &'static str, qty: &'static str) -> (RecordMeta, Vec<u8>) {
    let bids: &'static str = Box::leak(format!(r#"[["{price}","{qty}"]]"#).into_boxed_str());
    let r = Record::DepthUpdate(DepthUpdate {
        exchange: "binance",
        symbol: "BTCUSDT",
        first_update_id: first,
        final_update_id: last,
        bids: Levels(bids),
        asks: Levels("[]"),
        event_time_ms: last,
        prev_final_update_id: None,
        transaction_time_ms: None,
    });
    let mut p = Vec::new();
    r.encode(1, false, &mut p).unwrap();
    (RecordMeta { kind: RecordType::DepthUpdate, flags: 0, symbol_idx: 0, event_time_ms: last, recv_ns: 1 }, p)
}

impl Rig {
    fn feed(&mut self, (meta, payload): (RecordMeta, Vec<u8>)) {
        let v = RecordView { meta, enqueue_ns: 2, key: b"BTCUSDT", payload: &payload };
        let out = &mut self.out;
        self.books.on_record(&v, &mut |r| {
            out.push(serde_json::from_slice(r.payload).unwrap());
            true
        });
    }
    fn seed(&mut self, last_update_id: i64, bids: &[(&str, &str)]) {
        let bids = bids.iter().map(|(p, q)| [p.to_string(), q.to_string()]).collect();
        self.seeds.send(DepthSeed { symbol_idx: 0, last_update_id, bids, asks: vec![] }).unwrap();
        self.tick();
    }
    /// A producer turn that scans (the books scan every 100 ms; a test does not wait for it).
    fn tick(&mut self) {
        self.books.next_scan = Instant::now();
        let out = &mut self.out;
        self.books.tick(&mut |r| {
            out.push(serde_json::from_slice(r.payload).unwrap());
            true
        });
    }
    /// `type` and the id each published record names, in order; then forgets them.
    fn taken(&mut self) -> Vec<(String, i64)> {
        let got = self
            .out
            .iter()
            .map(|v| {
                let id = v["final_update_id"].as_i64().or(v["last_update_id"].as_i64()).unwrap();
                (v["type"].as_str().unwrap().to_string(), id)
            })
            .collect();
        self.out.clear();
        got
    }
    fn asked(&self) -> bool {
        self.jobs.take_resync(0) == Some(0)
    }
}

fn t(kind: &str, id: i64) -> (String, i64) {
    (kind.to_string(), id)
}

#[test]
fn the_first_snapshot_precedes_the_diffs_held_for_it() {
    let mut r = rig(None);
    r.feed(diff(101, 103, "10", "1"));
    r.feed(diff(104, 106, "11", "1"));
    assert!(r.taken().is_empty(), "held until the book has a snapshot");
    assert!(r.asked(), "a snapshot was asked for");
    r.seed(104, &[("9", "5")]);
    assert_eq!(r.taken(), [t("depth_snapshot", 104), t("depth_update", 103), t("depth_update", 106)]);
    // The straddling diff was applied (11 set); the older one only published (10 is not there).
    r.feed(diff(107, 107, "12", "1"));
    r.books.republish(0);
    r.tick();
    let snap = r.out.last().unwrap().clone();
    assert_eq!(snap["reason"], "republish");
    assert_eq!(snap["last_update_id"], 107);
    assert_eq!(snap["bids"], serde_json::json!([["12", "1"], ["11", "1"], ["9", "5"]]));
    assert_eq!(r.metrics.render().matches(r#"depth_snapshots_total{reason="start",symbol="btcusdt"} 1"#).count(), 1);
}

#[test]
fn futures_diffs_follow_by_their_previous_final_id() {
    // USD-M: `pu` is the previous event's `u`; `U` need not be `pu + 1`.
    let futures = |first, last, pu, price| {
        let (meta, p) = diff(first, last, price, "1");
        let text = String::from_utf8(p).unwrap();
        let at = format!(r#""final_update_id":{last}"#);
        (meta, text.replacen(&at, &format!(r#"{at},"prev_final_update_id":{pu}"#), 1).into_bytes())
    };
    let mut r = rig(None);
    r.seed(100, &[("9", "5")]);
    r.feed(futures(95, 102, 90, "10"));
    r.feed(futures(110, 112, 102, "11"));
    assert_eq!(r.taken(), [t("depth_snapshot", 100), t("depth_update", 102), t("depth_update", 112)]);
    r.feed(futures(120, 125, 118, "12"));
    assert_eq!(r.taken(), [t("depth_resync", 112)], "pu 118 != 112");
}

#[test]
fn a_snapshot_older_than_the_held_diffs_is_refused_and_asked_again() {
    let mut r = rig(None);
    r.feed(diff(101, 103, "10", "1"));
    assert!(r.asked());
    r.seed(99, &[]);
    assert!(r.taken().is_empty(), "L = 99 < U - 1 = 100: Binance's step 4");
    assert!(r.asked(), "asked again at once");
    r.seed(100, &[]);
    assert_eq!(r.taken(), [t("depth_snapshot", 100), t("depth_update", 103)]);
}

#[test]
fn a_break_publishes_a_resync_then_a_new_snapshot_before_the_next_diffs() {
    let mut r = rig(None);
    r.seed(100, &[("9", "5")]);
    assert_eq!(r.taken(), [t("depth_snapshot", 100)], "a quiet stream's book comes from REST alone");
    r.feed(diff(101, 102, "10", "1"));
    r.feed(diff(105, 106, "11", "1"));
    r.feed(diff(107, 108, "12", "1"));
    assert_eq!(r.taken(), [t("depth_update", 102), t("depth_resync", 102)], "U = 105 > 102 + 1");
    assert!(r.asked());
    r.seed(106, &[("11", "1")]);
    let got = r.taken();
    assert_eq!(got, [t("depth_snapshot", 106), t("depth_update", 106), t("depth_update", 108)]);
    r.books.republish(0);
    r.tick();
    assert_eq!(r.out.last().unwrap()["bids"], serde_json::json!([["12", "1"], ["11", "1"]]));
    assert!(r.metrics.render().contains(r#"depth_snapshots_total{reason="resync",symbol="btcusdt"} 1"#));
    assert!(r.metrics.render().contains(r#"depth_resyncs_total{symbol="btcusdt"} 1"#));
}

#[test]
fn periodic_snapshots_sit_between_diffs_at_the_book_id() {
    let mut r = rig(Some(Duration::from_secs(3600)));
    r.seed(100, &[]);
    r.feed(diff(101, 102, "10", "1"));
    r.tick();
    assert_eq!(r.taken(), [t("depth_snapshot", 100), t("depth_update", 102)], "not due yet");
    r.books.depth[0].next_snapshot = Some(Instant::now());
    r.tick();
    r.feed(diff(103, 104, "10", "2"));
    assert_eq!(r.taken(), [t("depth_snapshot", 102), t("depth_update", 104)]);
    assert_eq!(r.metrics.render().matches(r#"reason="periodic",symbol="btcusdt"} 1"#).count(), 1);
    assert!(
        r.books.depth[0].next_snapshot.unwrap() > Instant::now() + Duration::from_secs(3000),
        "next one an interval on"
    );
}

#[test]
fn a_full_hold_is_published_unsynced_and_a_snapshot_older_than_it_refused() {
    let mut r = rig(None);
    r.books.hold_bytes = 600;
    let mut id = 100;
    while r.out.is_empty() {
        r.feed(diff(id + 1, id + 1, "10", "1"));
        id += 1;
    }
    let released = r.taken();
    assert!(released.iter().all(|(k, _)| k == "depth_update") && !released.is_empty());
    let through = released.last().unwrap().1;
    r.seed(through - 1, &[]);
    assert!(r.taken().is_empty(), "older than a diff already published");
    r.seed(id, &[]);
    let got = r.taken();
    assert_eq!(got[0], t("depth_snapshot", id));
    assert!(got[1..].iter().all(|(k, i)| k == "depth_update" && *i > through), "{got:?}");
    assert!(r.metrics.render().contains(r#"depth_seeds_refused_total{reason="stale"} 1"#));
}

#[test]
fn quarantined_diffs_and_other_symbols_pass_through_and_shutdown_releases_the_hold() {
    let mut r = rig(None);
    let (mut meta, p) = diff(9_000_000_000, 9_000_000_000, "1", "1");
    meta.flags = FLAG_QUARANTINED;
    r.feed((meta, p));
    assert_eq!(r.taken(), [t("depth_update", 9_000_000_000)]);
    r.feed(diff(101, 101, "1", "1"));
    assert!(r.taken().is_empty());
    let out = &mut r.out;
    r.books.finish(&mut |v| {
        out.push(serde_json::from_slice(v.payload).unwrap());
        true
    });
    assert_eq!(r.taken(), [t("depth_update", 101)], "nothing held is lost at shutdown");
}
