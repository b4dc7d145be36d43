//! Deliveries in doubt. A trade whose delivery failed after its request reached the broker
//! (librdkafka's `POSSIBLY_PERSISTED`: the message timed out while the broker held the request,
//! a stall longer than `message.timeout.ms`) may be in the topic all the same. Fetching it again
//! from REST would repeat it if it is there; not fetching it would lose it if it is not. So the
//! backfill thread reads the partitions they went to back, from the earliest such record's
//! timestamp, once each of those partitions has had a record acknowledged since (and 2 s more:
//! what the broker held when it stopped is written by then): ids found there are settled, the others are fetched again like
//! any gap. If the topic cannot be read (no read permission, a broker still failing) the
//! read-back is tried again, and after [`MAX_ATTEMPTS`] (or at shutdown) the ids are named in
//! `gap` records (reason `delivery_in_doubt`), never guessed.
//!
//! This narrows the window for a repeat, it does not close it: a record the broker appended but
//! had not replicated when the read-back reached the partition's end is not seen, and is fetched
//! again.
//!
//! Memory bound: at most [`MAX_DOUBTS`] records (24 bytes each, 1.5 MiB, 48 more each at most for
//! their partitions' waits, and about 4.5 MiB more for the sets a read-back builds); past it a
//! record in doubt is named in a gap record at once.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::{Backfiller, Job, Seq};
use crate::handoff::jobs::extend_run;
use crate::handoff::marker::Reason;
use crate::handoff::readback::{is_exchange, is_marker, published_id};
use crate::kafka_client::topic_scan::{self, ReadBackError, Scan, Start};
use crate::record::RecordType;
use crate::sequence::Dense;

/// Records in doubt held at once. A stall times out what was in flight: librdkafka's in-flight
/// requests (5 per broker connection with idempotence) of at most a batch each.
pub const MAX_DOUBTS: usize = 65_536;

/// Read-back attempts before the records in doubt are named in gap records instead.
pub const MAX_ATTEMPTS: u32 = 5;

/// After the first acknowledgement that follows the last doubt: time for the broker to finish
/// writing what it held when it stopped.
pub const GRACE: Duration = Duration::from_secs(2);

/// A partition in doubt that sees no acknowledgement of its own (its symbols stopped trading, or
/// it is past those counted, `health::ACK_PARTITIONS`) is read back all the same once records
/// elsewhere have been acknowledged and this long has passed since its last doubt (or failure).
pub const QUIET_PARTITION_WAIT: Duration = Duration::from_secs(60);

/// Acknowledgements so far on a sequence's partition; `None` for one not counted.
pub type AcksOn<'a> = &'a dyn Fn(Dense, i32) -> Option<u64>;

/// Waits after each failed attempt but the last.
const RETRY_WAITS: [Duration; MAX_ATTEMPTS as usize - 1] =
    [Duration::from_secs(5), Duration::from_secs(15), Duration::from_secs(30), Duration::from_secs(60)];

/// One record in doubt: its sequence and id, the partition it went to and the timestamp it was
/// produced with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Doubt {
    pub symbol_idx: u16,
    pub kind: Dense,
    pub id: i64,
    pub timestamp_ms: i64,
    pub partition: i32,
}

/// What a read-back decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Found in the topic: published, nothing to do.
    pub published: u64,
    /// Not in the topic: to be fetched again.
    pub missing: Vec<Doubt>,
}

/// A partition in doubt and, from when its last doubt arrived (or the last read-back failed):
/// its acknowledgements then (`None`: not counted, one anywhere will do), the sink's
/// acknowledged turns anywhere then, and when that was.
#[derive(Clone, Copy, Debug)]
struct Wait {
    kind: Dense,
    partition: i32,
    acks: Option<u64>,
    global: u64,
    since: Instant,
}

impl Wait {
    /// Acknowledged on its own partition since; or, one that was not, acknowledged elsewhere
    /// and [`QUIET_PARTITION_WAIT`] passed.
    fn met(&self, now: Instant, acks: AcksOn<'_>, global: u64) -> bool {
        let elsewhere = global > self.global;
        match self.acks {
            Some(before) if acks(self.kind, self.partition).is_some_and(|a| a > before) => true,
            Some(_) => elsewhere && now.saturating_duration_since(self.since) >= QUIET_PARTITION_WAIT,
            None => elsewhere,
        }
    }
}

/// The records in doubt, waiting for a read-back.
#[derive(Debug, Default)]
pub struct Doubts {
    list: Vec<Doubt>,
    /// Failed read-backs of what is held (counted from the first doubt after none were held).
    attempts: u32,
    /// No read-back before this (after a failure).
    not_before: Option<Instant>,
    /// One per partition in doubt (at most one per doubt).
    waits: Vec<Wait>,
    /// When the acknowledgements a read-back waits for were first all seen.
    acked_at: Option<Instant>,
}

impl Doubts {
    /// Takes `d`, which arrived at `now` when its partition had `on_partition` acknowledgements
    /// and the sink `global` acknowledged turns; hands it back when [`MAX_DOUBTS`] are held.
    pub fn push(&mut self, d: Doubt, on_partition: Option<u64>, global: u64, now: Instant) -> Result<(), Doubt> {
        if self.list.len() >= MAX_DOUBTS {
            return Err(d);
        }
        if self.list.is_empty() {
            self.attempts = 0;
            self.not_before = None;
            self.waits.clear();
        }
        self.list.push(d);
        let wait = Wait { kind: d.kind, partition: d.partition, acks: on_partition, global, since: now };
        match self.waits.iter_mut().find(|w| (w.kind, w.partition) == (d.kind, d.partition)) {
            Some(w) => *w = wait,
            None => self.waits.push(wait),
        }
        self.acked_at = None;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a read-back is due at `now`: there are doubts, each of their partitions was
    /// acknowledged since (`Wait::met`) at least [`GRACE`] ago, and no retry wait is running.
    pub fn due(&mut self, now: Instant, acks: AcksOn<'_>, global: u64) -> bool {
        if self.list.is_empty() || !self.waits.iter().all(|w| w.met(now, acks, global)) {
            return false;
        }
        let acked_at = *self.acked_at.get_or_insert(now);
        now.saturating_duration_since(acked_at) >= GRACE && self.not_before.is_none_or(|t| now >= t)
    }

    /// The earliest timestamp of a record in doubt: the read-back starts there.
    pub fn since_ms(&self) -> Option<i64> {
        self.list.iter().map(|d| d.timestamp_ms).min()
    }

    /// The partitions the records in doubt of the sequences `kinds` went to.
    pub fn partitions(&self, kinds: &[Dense]) -> Vec<i32> {
        let mut p: Vec<i32> = self.list.iter().filter(|d| kinds.contains(&d.kind)).map(|d| d.partition).collect();
        p.sort_unstable();
        p.dedup();
        p
    }

    /// The sequences in doubt.
    pub fn kinds(&self) -> Vec<Dense> {
        let mut kinds: Vec<Dense> = self.list.iter().map(|d| d.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// Every `(symbol_idx, kind, id)` in doubt: what a read-back looks for in what it reads.
    pub fn keys(&self) -> HashSet<(u16, Dense, i64)> {
        self.list.iter().map(|d| (d.symbol_idx, d.kind, d.id)).collect()
    }

    /// A read-back finished: every doubt is settled by whether `found` holds it, and none is left.
    pub fn settle(&mut self, found: &HashSet<(u16, Dense, i64)>) -> Settled {
        let mut settled = Settled::default();
        for d in self.list.drain(..) {
            if found.contains(&(d.symbol_idx, d.kind, d.id)) {
                settled.published += 1;
            } else {
                settled.missing.push(d);
            }
        }
        settled
    }

    /// A read-back failed at `now`: the doubts wait for the next attempt, or, after
    /// [`MAX_ATTEMPTS`], are all handed back to be named in gap records. The next attempt waits
    /// for new acknowledgements too: a partition whose broker still stalls is not read again
    /// (and an attempt spent) before it answers, or [`QUIET_PARTITION_WAIT`] passed.
    pub fn failed(&mut self, now: Instant, acks: AcksOn<'_>, global: u64) -> Vec<Doubt> {
        self.attempts += 1;
        for w in &mut self.waits {
            w.acks = w.acks.and_then(|_| acks(w.kind, w.partition));
            (w.global, w.since) = (global, now);
        }
        self.acked_at = None;
        match RETRY_WAITS.get(self.attempts as usize - 1) {
            Some(wait) => {
                self.not_before = Some(now + *wait);
                Vec::new()
            }
            None => self.take_all(),
        }
    }

    /// Every doubt, none left (shutdown).
    pub fn take_all(&mut self) -> Vec<Doubt> {
        self.not_before = None;
        std::mem::take(&mut self.list)
    }
}

/// The consumer group the read-back connects as (nothing is committed).
const GROUP: &str = "marketflow-ingestor-doubt";

/// Longest a read-back may take, all topics together; past it the attempt failed. Jobs wait in
/// the channel meanwhile (`handoff::jobs::CHANNEL_JOBS`); shutdown ends it at once.
const READ_BACK_BUDGET: Duration = Duration::from_secs(30);

/// The read-back starts this much before the earliest record's own timestamp: a topic that
/// keeps the broker's append time rather than ours (`LogAppendTime`) holds it at the broker's
/// clock, which may be behind Binance's.
const SINCE_MARGIN_MS: i64 = 60_000;

impl Backfiller {
    fn acks(&self) -> u64 {
        self.health.ack_turns.load(Ordering::Relaxed)
    }

    /// Acknowledgements so far on `partition` of `kind`'s topic, if counted.
    fn acks_on(&self, kind: Dense, partition: i32) -> Option<u64> {
        let slot = crate::kafka_client::ack_slot(&self.kafka.topics, record_type(kind))?;
        self.health.partition_acks.get(slot, partition)
    }

    /// Holds `d` for the next read-back; at the bound, names it in a gap record at once.
    pub(super) fn doubt(&self, d: Doubt) {
        let on_partition = self.acks_on(d.kind, d.partition);
        // The borrow ends before the gap is published: publishing may wait and take jobs in.
        let refused = self.doubts.borrow_mut().push(d, on_partition, self.acks(), Instant::now()).err();
        if let Some(d) = refused {
            self.unverified(vec![d]);
        }
    }

    /// Reads the topics back for the records in doubt when due ([`Doubts::due`]): those found are
    /// done, the others go to the queue as ranges of one id. A failed read-back is tried again
    /// later, and after [`MAX_ATTEMPTS`] its records are named in gap records.
    pub(super) fn read_back_doubts(&self) {
        if !self.doubts.borrow_mut().due(Instant::now(), &|k, p| self.acks_on(k, p), self.acks()) {
            return;
        }
        let (keys, kinds, since) = {
            let d = self.doubts.borrow();
            (d.keys(), d.kinds(), d.since_ms().unwrap_or(0).saturating_sub(SINCE_MARGIN_MS))
        };
        // Only their symbols' messages are parsed: a partition carries other symbols too.
        let symbols: HashSet<u16> = keys.iter().map(|(s, _, _)| *s).collect();
        let mut topics: Vec<(&str, Vec<Dense>)> = Vec::new();
        for kind in kinds {
            let topic = self.kafka.topics[record_type(kind) as usize].as_str();
            match topics.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, ks)) => ks.push(kind),
                None => topics.push((topic, vec![kind])),
            }
        }
        let deadline = Instant::now() + READ_BACK_BUDGET;
        let stop = || self.shutdown.is_triggered();
        let mut found: HashSet<(u16, Dense, i64)> = HashSet::new();
        let mut on = |key: Option<&[u8]>, payload: Option<&[u8]>| {
            let (Some(key), Some(payload)) = (key, payload) else { return };
            // A gap marker names an id as missing: it does not publish it. Another venue's record
            // in the same topic is another sequence's id.
            if is_marker(payload) || !is_exchange(payload, self.venue.exchange) {
                return;
            }
            let Some(sym) = std::str::from_utf8(key).ok().and_then(|k| self.symbols.index_of_upper(k)) else { return };
            if !symbols.contains(&sym) {
                return;
            }
            if let Some((kind, id, _)) = published_id(payload) {
                if keys.contains(&(sym, kind, id)) {
                    found.insert((sym, kind, id));
                }
            }
        };
        let mut read = 0u64;
        let mut result: Result<(), ReadBackError> = Ok(());
        for (topic, kinds) in &topics {
            let partitions = self.doubts.borrow().partitions(kinds);
            let scan = Scan {
                group: GROUP,
                topic,
                start: Start::Since(since),
                partitions: Some(&partitions),
                deadline,
                stop: &stop,
            };
            match topic_scan::scan(&self.kafka, &scan, &mut on) {
                // We published to it: a topic we cannot see is a failure, not an empty one.
                Ok(s) if !s.topic_exists => result = Err(ReadBackError::NoTopic(topic.to_string())),
                Ok(s) => read += s.read,
                Err(e) => result = Err(e),
            }
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) => {
                let settled = self.doubts.borrow_mut().settle(&found);
                let refetched = settled.missing.len() as u64;
                self.metrics.kafka_in_doubt.with_label_values(&["published"]).inc_by(settled.published);
                self.metrics.kafka_in_doubt.with_label_values(&["refetched"]).inc_by(refetched);
                info!(published = settled.published, refetched, read, "deliveries in doubt read back from Kafka");
                for d in settled.missing {
                    let (from, to) = (d.id, d.id.saturating_add(1));
                    self.enqueue(Job::Range { symbol_idx: d.symbol_idx, kind: d.kind, from, to });
                }
            }
            // Shutdown: `finish` names what is held.
            Err(ReadBackError::Stopped(_)) => {}
            Err(e) => {
                let given_up = self.doubts.borrow_mut().failed(Instant::now(), &|k, p| self.acks_on(k, p), self.acks());
                if let Some(suppressed) = self.limiter.check("doubt_read_back") {
                    warn!(
                        kind = e.label(),
                        suppressed,
                        in_doubt = self.doubts.borrow().len() + given_up.len(),
                        given_up = given_up.len(),
                        "reading Kafka back for deliveries in doubt failed: {e}"
                    );
                }
                self.unverified(given_up);
            }
        }
    }

    /// Shutdown: what is still in doubt is named in gap records.
    pub(super) fn give_up_doubts(&self) {
        let left = self.doubts.borrow_mut().take_all();
        self.unverified(left);
    }

    /// Names `doubts` in gap records, consecutive ids of a sequence in one.
    fn unverified(&self, doubts: Vec<Doubt>) {
        self.metrics.kafka_in_doubt.with_label_values(&["unverified"]).inc_by(doubts.len() as u64);
        for (seq, from, to) in runs(doubts) {
            self.publish_gap(seq, from, to, Reason::DeliveryInDoubt);
        }
    }
}

/// `doubts` as ranges of consecutive ids per sequence (`from..to`, exclusive), in order.
fn runs(mut doubts: Vec<Doubt>) -> Vec<(Seq, i64, i64)> {
    doubts.sort_unstable_by_key(|d| (d.symbol_idx, d.kind, d.id));
    let mut out: Vec<(Seq, i64, i64)> = Vec::new();
    for d in doubts {
        let (seq, from, to) = (Seq::Ids { symbol_idx: d.symbol_idx, kind: d.kind }, d.id, d.id.saturating_add(1));
        if !extend_run(out.iter_mut(), seq, from, to) {
            out.push((seq, from, to));
        }
    }
    out
}

/// The record type whose topic holds a dense sequence's records.
fn record_type(kind: Dense) -> RecordType {
    match kind {
        Dense::AggTrade => RecordType::AggTrade,
        // Only trades and aggTrades are refetched (`handoff::readback::refetchable_id`).
        Dense::Trade | Dense::Depth => RecordType::Trade,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(symbol_idx: u16, kind: Dense, id: i64, timestamp_ms: i64) -> Doubt {
        Doubt { symbol_idx, kind, id, timestamp_ms, partition: i32::from(symbol_idx) }
    }

    #[test]
    fn a_read_back_waits_for_an_acknowledgement_on_each_partition_in_doubt_then_settles_by_what_was_found() {
        use std::cell::RefCell;
        use std::collections::HashMap;
        let t0 = Instant::now();
        let counted: RefCell<HashMap<(Dense, i32), u64>> = RefCell::default();
        let on = |k: Dense, p: i32| Some(counted.borrow().get(&(k, p)).copied().unwrap_or(0));
        let ack = |k: Dense, p: i32| *counted.borrow_mut().entry((k, p)).or_default() += 1;
        let mut doubts = Doubts::default();
        assert!(!doubts.due(t0, &on, 9), "nothing in doubt");
        doubts.push(d(0, Dense::Trade, 7, 1_000), on(Dense::Trade, 0), 3, t0).unwrap();
        doubts.push(d(1, Dense::Trade, 7, 900), on(Dense::Trade, 1), 3, t0).unwrap();
        assert!(!doubts.due(t0 + 10 * GRACE, &on, 3), "no acknowledgement since: the broker may still hold them");
        ack(Dense::Trade, 0);
        ack(Dense::AggTrade, 1);
        assert!(!doubts.due(t0, &on, 4), "partition 1 of the trade topic has none: its broker may still stall");
        ack(Dense::Trade, 1);
        assert!(!doubts.due(t0, &on, 5), "each acknowledged: the grace starts");
        assert!(!doubts.due(t0 + GRACE - Duration::from_millis(1), &on, 5));
        // Another doubt: it needs an acknowledgement of its own, and the grace starts over.
        doubts.push(d(0, Dense::AggTrade, 3, 950), on(Dense::AggTrade, 0), 5, t0).unwrap();
        assert!(!doubts.due(t0 + GRACE, &on, 6));
        ack(Dense::AggTrade, 0);
        assert!(!doubts.due(t0 + GRACE, &on, 7));
        assert!(doubts.due(t0 + 2 * GRACE, &on, 7));
        assert_eq!(doubts.since_ms(), Some(900));
        assert_eq!(doubts.kinds(), [Dense::Trade, Dense::AggTrade]);
        assert_eq!(doubts.partitions(&[Dense::Trade]), [0, 1]);
        assert_eq!(doubts.partitions(&[Dense::AggTrade]), [0]);
        let keys = doubts.keys();
        assert_eq!(keys.len(), 3);
        assert!(keys.contains(&(1, Dense::Trade, 7)) && !keys.contains(&(1, Dense::AggTrade, 7)));
        // Symbol 0's trade 7 was written; the other symbol's trade 7 and the aggTrade were not.
        let found = HashSet::from([(0, Dense::Trade, 7), (0, Dense::Trade, 8)]);
        let settled = doubts.settle(&found);
        assert_eq!(settled.published, 1);
        assert_eq!(settled.missing, [d(1, Dense::Trade, 7, 900), d(0, Dense::AggTrade, 3, 950)]);
        assert!(doubts.is_empty() && !doubts.due(t0 + 3 * GRACE, &on, 8));
    }

    #[test]
    fn a_partition_with_no_acknowledgement_of_its_own_is_read_back_after_the_quiet_wait() {
        let t0 = Instant::now();
        let never = |_: Dense, _: i32| Some(0);
        let mut doubts = Doubts::default();
        doubts.push(d(0, Dense::Trade, 1, 0), Some(0), 5, t0).unwrap();
        assert!(!doubts.due(t0 + QUIET_PARTITION_WAIT - Duration::from_millis(1), &never, 9));
        assert!(!doubts.due(t0 + QUIET_PARTITION_WAIT, &never, 5), "nothing acknowledged anywhere either");
        assert!(!doubts.due(t0 + QUIET_PARTITION_WAIT, &never, 6), "acknowledged elsewhere: the grace starts");
        assert!(doubts.due(t0 + QUIET_PARTITION_WAIT + GRACE, &never, 6));
        // Each partition's quiet wait counts from its own last doubt: later doubts on another
        // partition (acknowledged on its own) do not hold a quiet one back.
        let mut two = Doubts::default();
        two.push(d(0, Dense::Trade, 1, 0), Some(0), 5, t0).unwrap();
        two.push(d(1, Dense::Trade, 1, 0), Some(0), 5, t0 + Duration::from_secs(50)).unwrap();
        let only_1 = |_: Dense, p: i32| Some(u64::from(p == 1));
        assert!(!two.due(t0 + QUIET_PARTITION_WAIT, &only_1, 6), "met: the grace starts");
        assert!(two.due(t0 + QUIET_PARTITION_WAIT + GRACE, &only_1, 6));
        // A partition past those counted: any acknowledgement will do.
        let mut wide = Doubts::default();
        wide.push(d(0, Dense::Trade, 1, 0), None, 5, t0).unwrap();
        assert!(!wide.due(t0 + GRACE, &|_, _| None, 5));
        assert!(!wide.due(t0, &|_, _| None, 6));
        assert!(wide.due(t0 + GRACE, &|_, _| None, 6));
    }

    #[test]
    fn failed_read_backs_wait_for_new_acknowledgements_back_off_then_hand_every_doubt_back() {
        use std::cell::Cell;
        let t0 = Instant::now();
        let n = Cell::new(0u64);
        let on = |_: Dense, _: i32| Some(n.get());
        let mut doubts = Doubts::default();
        doubts.push(d(0, Dense::Trade, 1, 0), on(Dense::Trade, 0), 0, t0).unwrap();
        n.set(1);
        assert!(!doubts.due(t0, &on, 1));
        let mut now = t0 + GRACE;
        for wait in RETRY_WAITS {
            assert!(doubts.due(now, &on, n.get()));
            assert!(doubts.failed(now, &on, n.get()).is_empty(), "given up before {MAX_ATTEMPTS} attempts");
            assert!(!doubts.due(now + wait, &on, n.get()), "nothing acknowledged since the failure");
            n.set(n.get() + 1);
            assert!(!doubts.due(now + Duration::from_millis(1), &on, n.get()), "acknowledged: the grace starts");
            assert!(!doubts.due(now + wait - Duration::from_millis(1), &on, n.get()), "only the retry wait is left");
            now += wait;
        }
        assert!(doubts.due(now, &on, n.get()));
        assert_eq!(doubts.failed(now, &on, n.get()), [d(0, Dense::Trade, 1, 0)], "the last attempt hands them back");
        assert!(doubts.is_empty());
        // A new doubt starts over: attempts from zero, no retry wait.
        doubts.push(d(0, Dense::Trade, 2, 0), on(Dense::Trade, 0), n.get(), now).unwrap();
        n.set(n.get() + 1);
        assert!(!doubts.due(now, &on, n.get()) && doubts.due(now + GRACE, &on, n.get()));
        assert!(doubts.failed(now + GRACE, &on, n.get()).is_empty());
    }

    #[test]
    fn the_bound_hands_a_doubt_back() {
        let mut doubts = Doubts::default();
        for id in 0..MAX_DOUBTS as i64 {
            doubts.push(d(0, Dense::Trade, id, 0), Some(0), 0, Instant::now()).unwrap();
        }
        let over = d(0, Dense::Trade, -1, 0);
        assert_eq!(doubts.push(over, Some(0), 0, Instant::now()), Err(over));
        assert_eq!(doubts.len(), MAX_DOUBTS);
    }

    #[test]
    fn unverified_ids_are_named_in_one_range_per_run() {
        let t = |s: u16, k: Dense| Seq::Ids { symbol_idx: s, kind: k };
        let doubts = [(0, 5), (0, 3), (0, 4), (0, 9), (1, 4), (0, 4), (0, i64::MAX)]
            .map(|(s, id)| d(s, Dense::Trade, id, 0))
            .into_iter()
            .chain([d(0, Dense::AggTrade, 5, 0)])
            .collect();
        assert_eq!(
            runs(doubts),
            [
                (t(0, Dense::Trade), 3, 6),
                (t(0, Dense::Trade), 9, 10),
                (t(0, Dense::Trade), i64::MAX, i64::MAX),
                (t(0, Dense::AggTrade), 5, 6),
                (t(1, Dense::Trade), 4, 5),
            ]
        );
    }
}
