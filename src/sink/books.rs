//! The producer thread's order books: one [`Book`] per symbol, kept from the `depth_update`
//! records as they are published, seeded from REST by Binance's procedure, and written into the
//! topic as `depth_snapshot` records at exact update ids, so a consumer can build every book
//! from Kafka alone (README, "Order book": the consumer contract).
//!
//! Why here, on the producer thread: see [`crate::book`]. Per symbol:
//!
//! - **Unsynced** (at start, and after a break): diffs are *held*, not published, and the
//!   backfill thread is asked for a REST snapshot (`Job::DepthResync`, one flag per symbol). When
//!   it comes (`lastUpdateId` L): if the first held diff starts after `L + 1` the snapshot is too
//!   old and another is asked for (Binance's step 4); otherwise the book is set to it, published
//!   as a `depth_snapshot` (reason `start` the first time, then `resync`), and the held diffs
//!   follow it in order, each through the synced path below (those with `u <= L` are published
//!   but change nothing). So a symbol's first depth record in the topic is its snapshot.
//! - **Synced**: a diff with `u <= id` is published unchanged (already in the book); one with
//!   `U > id + 1` breaks the book (the corrected rule: `U > local + 1` is a gap): a
//!   `depth_resync` record is published in its place and the symbol is unsynced again; any other
//!   is applied (`id = u`) and published. Every `DEPTH_SNAPSHOT_INTERVAL` the book is published as
//!   it stands, between two diffs, at no REST weight; and again when Kafka refused one of the
//!   symbol's depth records, so the topic's own hole is followed by a way back.
//!
//! The chaining rules above are spot's; a venue names its own ([`Books::with_depth_chain`]):
//! on USD-M a diff continues the book when its `pu` is the book's id, and on a snapshot `L` the
//! first diff applied has `U <= L <= u` (or `pu == L`), those with `u < L` only published
//! ([`DepthChain`]).
//!
//! Bounds: a symbol holds at most [`hold_bytes`] of diffs while unsynced (REST slow, refused or
//! rate-limited for long); past that the held diffs are published as they are, without a
//! snapshot before them (counted in `depth_unsynced_published_total`; a consumer waiting for
//! a snapshot skips them), and the snapshot that comes later must not be older than the last of
//! them. Nothing is dropped: at shutdown the held diffs are published too.

mod metrics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tracing::{info, warn};

use self::metrics::{BookMetrics, BookState};
use crate::book::{diff, Book, Key, Level, Side};
use crate::handoff::depth::DepthSeed;
use crate::handoff::jobs::{Job, JobSender};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::record::RecordType;
use crate::ring::{RecordMeta, RecordView, FLAG_MARKER, FLAG_QUARANTINED};
use crate::sequence::{DepthChain, DepthIds, DepthStep};
use crate::symbols::Symbols;

/// Diff bytes held while unsynced, over all symbols; each symbol gets its share, within
/// [`MIN_HOLD`]..=[`MAX_HOLD`].
const HOLD_TOTAL: usize = 32 << 20;
const MIN_HOLD: usize = 64 << 10;
const MAX_HOLD: usize = 1 << 20;
/// A book still without a snapshot asks again this long after its last question (REST may have
/// failed for good, or refused the answer).
const ASK_AGAIN: Duration = Duration::from_secs(10);
/// A symbol whose stream stays quiet this long after start is seeded anyway, so that its
/// consumers get a book.
const QUIET_START: Duration = Duration::from_secs(5);
/// How often snapshots fall due and gauges are set (the producer turns far more often).
const SCAN_EVERY: Duration = Duration::from_millis(100);

/// Why a snapshot was published: the `reason` field and a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The symbol's first book.
    Start,
    /// A new book after its sequence broke.
    Resync,
    /// `DEPTH_SNAPSHOT_INTERVAL` passed.
    Periodic,
    /// Kafka refused one of the symbol's depth records.
    Republish,
}

impl Reason {
    pub const ALL: [Reason; 4] = [Reason::Start, Reason::Resync, Reason::Periodic, Reason::Republish];
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Start => "start",
            Reason::Resync => "resync",
            Reason::Periodic => "periodic",
            Reason::Republish => "republish",
        }
    }
}

/// How many bytes of diffs one symbol may hold while it has no book, with `symbols` depth
/// symbols: a share of 32 MiB, at least 64 KiB and at most 1 MiB.
pub fn hold_bytes(symbols: usize) -> usize {
    (HOLD_TOTAL / symbols.max(1)).clamp(MIN_HOLD, MAX_HOLD)
}

/// What the books need to know of the configuration.
#[derive(Clone, Copy, Debug)]
pub struct BookSettings {
    /// Levels a side of every snapshot (`DEPTH_LEVELS`).
    pub levels: usize,
    /// `DEPTH_SNAPSHOT_INTERVAL`; `None`: no periodic snapshots.
    pub interval: Option<Duration>,
}

/// Diffs held while a symbol has no book, as they came off the ring, in order.
#[derive(Default)]
struct Hold {
    buf: Vec<u8>,
    count: usize,
    /// The ids of the first held diff.
    first: Option<DepthIds>,
}

/// A held record: `[len u32][flags u8][event_time_ms i64][recv_ns u64][enqueue_ns u64][key_len
/// u16][key][payload]`.
const HELD_HEADER: usize = 4 + 1 + 8 + 8 + 8 + 2;

impl Hold {
    fn push(&mut self, v: &RecordView<'_>, ids: DepthIds) {
        if self.count == 0 {
            self.first = Some(ids);
        }
        let len = HELD_HEADER + v.key.len() + v.payload.len();
        self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        self.buf.push(v.meta.flags);
        self.buf.extend_from_slice(&v.meta.event_time_ms.to_le_bytes());
        self.buf.extend_from_slice(&v.meta.recv_ns.to_le_bytes());
        self.buf.extend_from_slice(&v.enqueue_ns.to_le_bytes());
        self.buf.extend_from_slice(&(v.key.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(v.key);
        self.buf.extend_from_slice(v.payload);
        self.count += 1;
    }
}

/// The held records of `buf`, as views of symbol `symbol_idx`.
fn held(buf: &[u8], symbol_idx: u16) -> impl Iterator<Item = RecordView<'_>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let r = buf.get(at..)?;
        let len = u32::from_le_bytes(r.get(..4)?.try_into().ok()?) as usize;
        let rec = r.get(..len)?;
        at += len;
        let int = |a: usize| i64::from_le_bytes(rec[a..a + 8].try_into().unwrap_or_default());
        let key_len = u16::from_le_bytes([rec[29], rec[30]]) as usize;
        let meta = RecordMeta {
            kind: RecordType::DepthUpdate,
            flags: rec[4],
            symbol_idx,
            event_time_ms: int(5),
            recv_ns: int(13) as u64,
        };
        let key = &rec[HELD_HEADER..HELD_HEADER + key_len];
        Some(RecordView { meta, enqueue_ns: int(21) as u64, key, payload: &rec[HELD_HEADER + key_len..] })
    })
}

/// One symbol's state.
#[derive(Default)]
struct Depth {
    /// Allocated at the symbol's first snapshot, kept from then on.
    book: Option<Book>,
    synced: bool,
    /// The book stands at its snapshot's id, no diff applied on it yet: the start rule applies.
    seeded: bool,
    /// A snapshot was published before (the next is a `resync`, not a `start`).
    published: bool,
    hold: Hold,
    /// `u` of the last diff published while unsynced: a snapshot older than it cannot be used.
    released_through: Option<i64>,
    asked_at: Option<Instant>,
    next_snapshot: Option<Instant>,
    republish: bool,
}

/// Where the books' records go: the sink, through the producer's send loop.
pub type Out<'o> = dyn FnMut(&RecordView<'_>) -> bool + 'o;

pub struct Books {
    exchange: &'static str,
    /// How the venue's diffs chain (spot's unless set).
    chain: DepthChain,
    symbols: Arc<Symbols>,
    settings: BookSettings,
    requests: JobSender,
    seeds: Receiver<DepthSeed>,
    depth: Vec<Depth>,
    hold_bytes: usize,
    /// Reused by every snapshot: its levels sorted, and its JSON.
    scratch: Vec<(Key, Level)>,
    payload: Vec<u8>,
    /// Swapped with a symbol's hold while its held diffs are released.
    spare: Vec<u8>,
    started: Instant,
    next_scan: Instant,
    metrics: BookMetrics,
    limiter: LogLimiter,
}

impl Books {
    /// Books for every configured symbol; snapshots are asked of the backfill thread through
    /// `requests` and come back over `seeds`.
    pub fn new(
        exchange: &'static str,
        metrics: &Metrics,
        settings: BookSettings,
        requests: JobSender,
        seeds: Receiver<DepthSeed>,
    ) -> Books {
        let symbols = metrics.symbols.clone();
        let now = Instant::now();
        Books {
            exchange,
            chain: DepthChain::default(),
            depth: (0..symbols.len()).map(|_| Depth::default()).collect(),
            hold_bytes: hold_bytes(symbols.len()),
            symbols,
            settings,
            requests,
            seeds,
            scratch: Vec::new(),
            payload: Vec::new(),
            spare: Vec::new(),
            started: now,
            next_scan: now,
            metrics: BookMetrics::new(metrics),
            limiter: LogLimiter::new(Duration::from_secs(10)),
        }
    }

    /// The books follow the venue's chaining rule (spot's by default).
    pub fn with_depth_chain(mut self, chain: DepthChain) -> Books {
        self.chain = chain;
        self
    }

    /// A `depth_update` record off the ring: published, applied, or held until its book exists.
    pub fn on_record(&mut self, v: &RecordView<'_>, out: &mut Out<'_>) {
        let s = v.meta.symbol_idx as usize;
        // A quarantined diff's ids are the implausible part: the book does not follow it.
        if s >= self.depth.len() || v.meta.flags & (FLAG_MARKER | FLAG_QUARANTINED) != 0 {
            out(v);
            return;
        }
        if self.depth[s].synced {
            self.follow(s, v, out);
        } else {
            self.hold(s, v, out);
        }
    }

    /// The synced path: apply, pass over, or break.
    fn follow(&mut self, s: usize, v: &RecordView<'_>, out: &mut Out<'_>) {
        let Some(d) = diff::read(v.payload) else {
            // Not a depth_update as we write them: the book cannot follow; the record goes.
            out(v);
            self.break_book(s, "unreadable", out);
            return;
        };
        let seeded = self.depth[s].seeded;
        let Some(book) = self.depth[s].book.as_mut() else { return self.hold(s, v, out) };
        match self.chain.step(book.last_update_id(), seeded, d.ids()) {
            DepthStep::Stale => {
                out(v);
                return;
            }
            DepthStep::Gap => {
                self.break_book(s, "sequence_gap", out);
                self.hold(s, v, out);
                return;
            }
            DepthStep::Apply => {}
        }
        let applied = book.apply(&d);
        self.depth[s].seeded = false;
        out(v);
        if let Err(e) = applied {
            if let Some(suppressed) = self.limiter.check("book_error") {
                warn!(symbol = %self.symbols[s], suppressed, "order book cannot take a diff: {e}");
            }
            self.break_book(s, e.reason(), out);
        }
    }

    /// Discards the symbol's book: a `depth_resync` record says so in the topic, and a new
    /// snapshot is asked for.
    fn break_book(&mut self, s: usize, reason: &str, out: &mut Out<'_>) {
        let d = &mut self.depth[s];
        d.synced = false;
        d.next_snapshot = None;
        let last = d.book.as_ref().map_or(0, Book::last_update_id);
        self.metrics.resync(s);
        if let Some(suppressed) = self.limiter.check("resync") {
            warn!(symbol = %self.symbols[s], reason, last_update_id = last, suppressed, "order book resync");
        }
        let now = crate::clock::now_ns();
        let sym = self.symbols.upper(s as u16);
        self.payload.clear();
        let _ = std::io::Write::write_fmt(
            &mut self.payload,
            format_args!(
                r#"{{"type":"depth_resync","exchange":"{}","symbol":"{sym}","reason":"{reason}","last_update_id":{last},"recv_time_ns":{now}}}"#,
                self.exchange
            ),
        );
        let meta = marker_meta(s as u16, (now / 1_000_000) as i64, now);
        out(&RecordView { meta, enqueue_ns: now, key: sym.as_bytes(), payload: &self.payload });
        self.ask(s);
    }

    /// The unsynced path: keep the diff for after the snapshot.
    fn hold(&mut self, s: usize, v: &RecordView<'_>, out: &mut Out<'_>) {
        let Some(d) = diff::read(v.payload) else {
            out(v);
            return;
        };
        let size = HELD_HEADER + v.key.len() + v.payload.len();
        if self.depth[s].hold.buf.len() + size > self.hold_bytes {
            self.release_unsynced(s, out);
            if size > self.hold_bytes {
                out(v);
                self.unsynced_published(s, 1, d.final_update_id);
                return;
            }
        }
        self.depth[s].hold.push(v, d.ids());
        if self.depth[s].asked_at.is_none() {
            self.ask(s);
        }
    }

    /// Publishes what the symbol holds as it is, without a snapshot before it.
    fn release_unsynced(&mut self, s: usize, out: &mut Out<'_>) {
        let hold = std::mem::take(&mut self.depth[s].hold);
        let mut last = None;
        for v in held(&hold.buf, s as u16) {
            out(&v);
            last = diff::read(v.payload).map(|d| d.final_update_id).or(last);
        }
        if hold.count > 0 {
            self.unsynced_published(s, hold.count, last.unwrap_or(i64::MIN));
            if let Some(suppressed) = self.limiter.check("unsynced") {
                warn!(symbol = %self.symbols[s], diffs = hold.count, suppressed, "no order book yet: held diffs published without a snapshot");
            }
        }
        let mut buf = hold.buf;
        buf.clear();
        self.depth[s].hold.buf = buf;
    }

    fn unsynced_published(&mut self, s: usize, n: usize, through: i64) {
        self.metrics.unsynced_published(s, n);
        let r = &mut self.depth[s].released_through;
        *r = Some(r.map_or(through, |r| r.max(through)));
    }

    fn ask(&mut self, s: usize) {
        // Always taken: a snapshot request is a flag per symbol.
        let _ = self.requests.try_send(Job::DepthResync { symbol_idx: s as u16 });
        self.depth[s].asked_at = Some(Instant::now());
    }

    /// A REST snapshot arrived: Binance's procedure decides whether it starts the book.
    fn on_seed(&mut self, seed: DepthSeed, out: &mut Out<'_>) {
        let s = seed.symbol_idx as usize;
        let Some(d) = self.depth.get(s) else { return };
        if d.synced {
            return;
        }
        let l = seed.last_update_id;
        let too_old = d.released_through.is_some_and(|r| l < r)
            || d.hold.first.filter(|_| d.hold.count > 0).is_some_and(|e| self.chain.snapshot_too_old(l, e));
        if too_old {
            self.metrics.seeds_refused.with_label_values(&["stale"]).inc();
            self.ask(s);
            return;
        }
        let levels = self.settings.levels;
        let book = self.depth[s].book.get_or_insert_with(|| Book::new(levels));
        let bids = seed.bids.iter().map(|[p, q]| (p.as_str(), q.as_str()));
        let asks = seed.asks.iter().map(|[p, q]| (p.as_str(), q.as_str()));
        if let Err(e) = book.seed(l, bids, asks) {
            self.metrics.seeds_refused.with_label_values(&["invalid"]).inc();
            if let Some(suppressed) = self.limiter.check("seed_invalid") {
                warn!(symbol = %self.symbols[s], suppressed, "REST order book unusable: {e}");
            }
            // Asked again after ASK_AGAIN: the same answer would come back at once.
            return;
        }
        let d = &mut self.depth[s];
        d.synced = true;
        d.seeded = true;
        d.released_through = None;
        d.asked_at = None;
        let reason = if d.published { Reason::Resync } else { Reason::Start };
        let held_diffs = d.hold.count;
        info!(symbol = %self.symbols[s], last_update_id = l, held = held_diffs, reason = reason.as_str(), "order book synced");
        self.snapshot(s, reason, out);
        // The held diffs follow their snapshot, each judged as if it came now.
        let fresh = Hold { buf: std::mem::take(&mut self.spare), ..Hold::default() };
        let taken = std::mem::replace(&mut self.depth[s].hold, fresh);
        for v in held(&taken.buf, s as u16) {
            if self.depth[s].synced {
                self.follow(s, &v, out);
            } else {
                self.hold(s, &v, out);
            }
        }
        let mut buf = taken.buf;
        buf.clear();
        self.spare = buf;
    }

    /// Publishes the symbol's book as it stands.
    fn snapshot(&mut self, s: usize, reason: Reason, out: &mut Out<'_>) {
        let d = &mut self.depth[s];
        let Some(book) = d.book.as_ref() else { return };
        let now = crate::clock::now_ns();
        let sym = self.symbols.upper(s as u16);
        let p = &mut self.payload;
        p.clear();
        p.extend_from_slice(br#"{"type":"depth_snapshot","exchange":""#);
        p.extend_from_slice(self.exchange.as_bytes());
        p.extend_from_slice(br#"","symbol":""#);
        p.extend_from_slice(sym.as_bytes());
        p.extend_from_slice(br#"","last_update_id":"#);
        p.extend_from_slice(itoa::Buffer::new().format(book.last_update_id()).as_bytes());
        p.extend_from_slice(br#","bids":"#);
        book.write_levels(Side::Bid, p, &mut self.scratch);
        p.extend_from_slice(br#","asks":"#);
        book.write_levels(Side::Ask, p, &mut self.scratch);
        p.extend_from_slice(br#","reason":""#);
        p.extend_from_slice(reason.as_str().as_bytes());
        p.extend_from_slice(br#"","recv_time_ns":"#);
        p.extend_from_slice(itoa::Buffer::new().format(now).as_bytes());
        p.push(b'}');
        let event_ms = book.event_time_ms().unwrap_or((now / 1_000_000) as i64);
        let meta = marker_meta(s as u16, event_ms, now);
        d.published = true;
        d.republish = false;
        d.next_snapshot = self.settings.interval.map(|i| Instant::now() + i);
        out(&RecordView { meta, enqueue_ns: now, key: sym.as_bytes(), payload: &self.payload });
        self.metrics.snapshot(s, reason);
    }

    /// Whether the symbol's book is valid now.
    pub fn is_synced(&self, symbol_idx: u16) -> bool {
        self.depth.get(symbol_idx as usize).is_some_and(|d| d.synced)
    }

    /// Kafka refused one of the symbol's depth records: its book goes out again.
    pub fn republish(&mut self, symbol_idx: u16) {
        if let Some(d) = self.depth.get_mut(symbol_idx as usize) {
            d.republish = true;
        }
    }

    /// Per producer turn: snapshots that arrived; every `SCAN_EVERY`, snapshots due, questions
    /// to ask (again), gauges.
    pub fn tick(&mut self, out: &mut Out<'_>) {
        while let Ok(seed) = self.seeds.try_recv() {
            self.on_seed(seed, out);
        }
        let now = Instant::now();
        if now < self.next_scan {
            return;
        }
        self.next_scan = now + SCAN_EVERY;
        let quiet_start = now.duration_since(self.started) >= QUIET_START;
        for s in 0..self.depth.len() {
            let d = &self.depth[s];
            if d.synced {
                if d.republish {
                    self.snapshot(s, Reason::Republish, out);
                } else if d.next_snapshot.is_some_and(|t| now >= t) {
                    self.snapshot(s, Reason::Periodic, out);
                }
            } else {
                let ask = match d.asked_at {
                    None => d.hold.count > 0 || quiet_start,
                    Some(t) => now.duration_since(t) >= ASK_AGAIN,
                };
                if ask {
                    self.ask(s);
                }
            }
        }
        self.metrics.scan(self.depth.iter().map(|d| BookState {
            synced: d.synced,
            book: d.book.as_ref().map(|b| ([b.len(Side::Bid), b.len(Side::Ask)], b.trimmed())),
        }));
    }

    /// Shutdown: whatever is held is published (without a snapshot: none is coming).
    pub fn finish(&mut self, out: &mut Out<'_>) {
        for s in 0..self.depth.len() {
            self.release_unsynced(s, out);
        }
    }
}

/// Routing and timing of a snapshot or resync record of symbol `symbol_idx`: the depth topic.
fn marker_meta(symbol_idx: u16, event_time_ms: i64, now_ns: u64) -> RecordMeta {
    RecordMeta { kind: RecordType::DepthUpdate, flags: FLAG_MARKER, symbol_idx, event_time_ms, recv_ns: now_ns }
}

#[cfg(test)]
mod tests;
