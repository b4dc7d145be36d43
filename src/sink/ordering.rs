//! `ORDERING=strict`: trade and aggTrade ids strictly increasing per symbol in Kafka.
//!
//! A sink in front of the real one, on the producer thread, which sees both the ring (live
//! records, and the gap records the event loop writes) and the backfill channel (records fetched
//! from REST, gap records). Per sequence (symbol x trade/aggTrade) it knows `next`, the first id
//! not yet published or named. A record or gap record in its place goes on at once; one further
//! ahead (a gap is open before it) is held, in id order, until what is missing arrives from REST
//! or is named in a gap record. A gap still open [`StrictOrder::max_wait`] after the first record
//! behind it was held is named by this sink itself (`gap` record, reason `ordering_timeout`) and
//! the held records go on in order.
//!
//! What comes after its place has passed cannot be published without breaking the order: a
//! record whose ids this sink named is dropped (counted: it is already in a gap record), and any
//! other late record is named in a gap record of its own (reason `ordering_late`), so every id
//! is still published once or named. Gap records that come late only name ids again; those this
//! sink named are dropped, others go on.
//!
//! Memory bound: at most [`LIMITS`]`.per_sequence` bytes held per sequence and
//! [`LIMITS`]`.total` in all (buffer capacities, index included). A record that would pass
//! either bound names the oldest open gap at once (reason `ordering_full`) and releases what
//! waited behind it, so holding never blocks and never drops silently. Each sequence holds apart:
//! a gap on one symbol delays no other (the producer keeps draining the ring). Quarantined
//! records (an implausible id) stand outside the order: published at once, flagged; if the order
//! reaches such an id it steps over it. Other kinds (klines, depth, book tickers) pass through.

mod buffer;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, warn};

use super::{SendError, Sink};
use crate::handoff::jobs::Seq;
use crate::handoff::marker::Reason;
use crate::handoff::readback;
use crate::handoff::{gap_record, OwnedRecord};
use crate::log_limit::LogLimiter;
use crate::metrics::{Metrics, Named};
use crate::record::RecordType;
use crate::ring::{RecordView, FLAG_BACKFILLED, FLAG_MARKER, FLAG_QUARANTINED};
use crate::sequence::Dense;
use buffer::{Buffer, Incoming};

/// The hold's memory bounds, bytes.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Per sequence (a symbol's trades, or its aggTrades).
    pub per_sequence: usize,
    /// Over all sequences.
    pub total: usize,
}

/// 16 MiB per sequence is about 2 s of 25,000 trades/s (~300 bytes each with the index); 64 MiB
/// in all, 2 s of 100,000/s over every symbol, beside the 16 MiB ring and librdkafka's queue
/// within the chart's 512 MiB.
pub const LIMITS: Limits = Limits { per_sequence: 16 << 20, total: 64 << 20 };

/// Ranges this sink named, per sequence, to recognise the records that come for them later;
/// merged when they touch, the oldest forgotten past this many (a late record of a forgotten
/// range is then named once more: never lost).
const NAMED_KEPT: usize = 64;

/// Not started: no record seen yet and nothing recovered.
const UNSET: i64 = i64::MIN;

/// Where a sequence stands.
#[derive(Default)]
struct Order {
    /// The first id neither published nor named.
    next: i64,
    /// The last quarantined id published outside the order.
    passed: Option<i64>,
    /// Ranges named here (both ends included), oldest first.
    named: VecDeque<(i64, i64)>,
}

impl Order {
    fn new() -> Order {
        Order { next: UNSET, ..Order::default() }
    }

    /// A quarantined record already published fills its own place.
    fn step_over_passed(&mut self) {
        if self.passed == Some(self.next) {
            self.next = self.next.saturating_add(1);
            self.passed = None;
        }
    }

    fn covers(&self, start: i64, end: i64) -> bool {
        self.named.iter().any(|&(a, b)| a <= start && end <= b)
    }

    fn remember(&mut self, start: i64, end: i64) {
        if let Some(last) = self.named.back_mut() {
            if start <= last.1.saturating_add(1) && end.saturating_add(1) >= last.0 {
                *last = (last.0.min(start), last.1.max(end));
                return;
            }
        }
        if self.named.len() == NAMED_KEPT {
            self.named.pop_front();
        }
        self.named.push_back((start, end));
    }
}

struct Hold {
    order: Order,
    buf: Buffer,
    /// Listed in `StrictOrder::active`.
    listed: bool,
}

/// What the ordering does with a record.
enum Class {
    Pass,
    Quarantined {
        seq: usize,
        id: i64,
    },
    /// `live`: from the stream (neither backfilled nor a gap record).
    Ordered {
        seq: usize,
        start: i64,
        end: i64,
        gap: bool,
        live: bool,
    },
}

/// What publishing needs, apart from the holds (so a held record's bytes can be sent while its
/// sequence's position moves).
struct Out {
    sink: Box<dyn Sink>,
    metrics: Arc<Metrics>,
    exchange: &'static str,
    limiter: LogLimiter,
}

/// The sequence `seq` indexes: symbol x (trade, aggTrade).
fn seq_of(seq: usize) -> Seq {
    let kind = if seq % 2 == 0 { Dense::Trade } else { Dense::AggTrade };
    Seq::Ids { symbol_idx: (seq / 2) as u16, kind }
}

fn owned_view(o: &OwnedRecord, enqueue_ns: u64) -> RecordView<'_> {
    RecordView { meta: o.meta, enqueue_ns, key: &o.key, payload: &o.payload }
}

impl Out {
    /// Publishes a gap record naming `from..=to` of `seq`, for `why`; false while the sink
    /// pushes back.
    fn name(&mut self, seq: usize, order: &mut Order, from: i64, to: i64, reason: Reason) -> bool {
        let s = seq_of(seq);
        let symbol_idx = s.symbol_idx() as usize;
        let rec = gap_record(
            self.exchange,
            self.metrics.symbols.upper(s.symbol_idx()),
            s,
            from,
            to.saturating_add(1),
            reason,
        );
        if let Err(SendError::Backpressure) = self.sink.send(&owned_view(&rec, rec.meta.recv_ns)) {
            return false;
        }
        order.remember(from, to);
        self.metrics.gap_markers[symbol_idx].inc();
        let named = match reason {
            Reason::OrderingTimeout => Named::Timeout,
            Reason::OrderingFull => Named::Full,
            Reason::OrderingLate => Named::Late,
            _ => return true,
        };
        self.metrics.ordering.named[symbol_idx][named as usize].inc();
        if let Some(suppressed) = self.limiter.check(reason.as_str()) {
            let symbol = &self.metrics.symbols[symbol_idx];
            warn!(%symbol, ?s, from, to, reason = reason.as_str(), suppressed, "strict ordering named ids in a gap record");
        }
        true
    }

    /// Publishes `rec` (ids `start..=end`) in its place, `order.next` at most `end`, and moves the
    /// position past it. A gap record reaching back before `next` over ids named already is cut
    /// to start there. `Err`
    /// only as the sink returned it: `Backpressure` changes nothing, `Rejected` (counted by the
    /// sink) moves on like a publication.
    fn place(
        &mut self,
        seq: usize,
        order: &mut Order,
        (start, end, gap): (i64, i64, bool),
        rec: &RecordView<'_>,
    ) -> Result<(), SendError> {
        // Cut only what this sink knows to be named already; a gap reaching back over ids it
        // does not know (a failed delivery refetched in one range with a newer gap) goes whole.
        let cut = gap && start < order.next && order.covers(start, order.next - 1);
        let reason = if cut { readback::gap_reason(rec.payload) } else { None };
        let sent = match reason {
            Some(reason) => {
                let s = seq_of(seq);
                let symbol = self.metrics.symbols.upper(s.symbol_idx());
                let cut = gap_record(self.exchange, symbol, s, order.next, end.saturating_add(1), reason);
                self.sink.send(&owned_view(&cut, rec.enqueue_ns))
            }
            None => self.sink.send(rec),
        };
        if !matches!(sent, Err(SendError::Backpressure)) {
            if gap {
                order.remember(start, end);
            }
            order.next = order.next.max(end.saturating_add(1));
        }
        sent
    }

    /// `rec` comes after its place (`end < order.next`): dropped if this sink named its ids,
    /// else a gap record goes on as it is and a record is named in one of its own.
    fn late(
        &mut self,
        seq: usize,
        order: &mut Order,
        (start, end, gap): (i64, i64, bool),
        rec: &RecordView<'_>,
    ) -> Result<(), SendError> {
        if order.covers(start, end) {
            self.metrics.ordering.late_dropped[seq / 2].inc();
            return Ok(());
        }
        if gap {
            let sent = self.sink.send(rec);
            if !matches!(sent, Err(SendError::Backpressure)) {
                order.remember(start, end);
            }
            return sent;
        }
        if self.name(seq, order, start, end, Reason::OrderingLate) {
            Ok(())
        } else {
            Err(SendError::Backpressure)
        }
    }
}

/// The strict-ordering sink around `sink` (see the module's documentation).
pub struct StrictOrder {
    out: Out,
    max_wait: Duration,
    limits: Limits,
    holds: Vec<Hold>,
    /// Holds that may hold something.
    active: Vec<usize>,
    /// Memory of every hold, bytes.
    mem: usize,
    records: usize,
    /// The earliest moment a held record's wait ends; `None`: work it out again.
    deadline: Option<Instant>,
    /// A release stopped because the sink pushed back: retried at the next poll.
    stalled: bool,
}

impl StrictOrder {
    pub fn new(sink: Box<dyn Sink>, exchange: &'static str, metrics: Arc<Metrics>, max_wait: Duration) -> StrictOrder {
        Self::with_limits(sink, exchange, metrics, max_wait, LIMITS)
    }

    pub fn with_limits(
        sink: Box<dyn Sink>,
        exchange: &'static str,
        metrics: Arc<Metrics>,
        max_wait: Duration,
        limits: Limits,
    ) -> StrictOrder {
        let holds = (0..metrics.symbols.len() * 2)
            .map(|_| Hold { order: Order::new(), buf: Buffer::default(), listed: false })
            .collect();
        StrictOrder {
            out: Out { sink, metrics, exchange, limiter: LogLimiter::new(Duration::from_secs(10)) },
            max_wait,
            limits,
            holds,
            active: Vec::new(),
            mem: 0,
            records: 0,
            deadline: None,
            stalled: false,
        }
    }

    /// The longest a record waits behind a gap.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Continues a sequence after `last`, the last id Kafka holds (crash recovery): the hole
    /// since then, backfilled, then comes first.
    pub fn seed(&mut self, symbol_idx: u16, kind: Dense, last: i64) {
        let k = match kind {
            Dense::Trade => 0,
            Dense::AggTrade => 1,
            Dense::Depth => return,
        };
        if let Some(h) = self.holds.get_mut(symbol_idx as usize * 2 + k) {
            h.order.next = h.order.next.max(last.saturating_add(1));
        }
    }

    fn classify(&self, v: &RecordView<'_>) -> Class {
        let k = match v.meta.kind {
            RecordType::Trade => 0,
            RecordType::AggTrade => 1,
            _ => return Class::Pass,
        };
        let seq = v.meta.symbol_idx as usize * 2 + k;
        let marker = v.meta.flags & FLAG_MARKER != 0;
        match readback::span(v.meta.kind, marker, v.payload) {
            // An empty gap names nothing: it takes no place.
            Some((start, end)) if seq < self.holds.len() && start <= end => {
                if !marker && v.meta.flags & FLAG_QUARANTINED != 0 {
                    Class::Quarantined { seq, id: start }
                } else {
                    let live = !marker && v.meta.flags & FLAG_BACKFILLED == 0;
                    Class::Ordered { seq, start, end, gap: marker, live }
                }
            }
            _ => Class::Pass,
        }
    }

    /// A record of an ordered sequence: published in its place, held, or handled as late.
    fn offer(&mut self, seq: usize, span: (i64, i64, bool), live: bool, rec: &RecordView<'_>) -> Result<(), SendError> {
        let (start, end, _) = span;
        loop {
            let h = &mut self.holds[seq];
            // A sequence starts at its first live record, as the event loop's does: what REST
            // sends may overtake it on the way here, and is held until it comes.
            if h.order.next == UNSET && live {
                h.order.next = start;
            }
            h.order.step_over_passed();
            if end < h.order.next {
                return self.out.late(seq, &mut h.order, span, rec);
            }
            let clear = h.buf.front().is_none_or(|f| f.start > h.order.next);
            if start <= h.order.next && clear {
                let sent = self.out.place(seq, &mut h.order, span, rec);
                if !matches!(sent, Err(SendError::Backpressure)) {
                    self.release(seq);
                }
                return sent;
            }
            let bytes = rec.key.len() + rec.payload.len();
            let after = h.buf.mem_with(bytes, self.limits.per_sequence);
            let total = self.mem - h.buf.mem() + after;
            if after <= self.limits.per_sequence && total <= self.limits.total {
                self.hold(seq, span, rec);
                return Ok(());
            }
            if !self.make_room(seq, start, after > self.limits.per_sequence) {
                return Err(SendError::Backpressure);
            }
        }
    }

    fn hold(&mut self, seq: usize, (start, end, gap): (i64, i64, bool), rec: &RecordView<'_>) {
        let arrived = Instant::now();
        let h = &mut self.holds[seq];
        let before = h.buf.mem();
        h.buf.push(Incoming { start, end, gap, arrived }, rec, self.limits.per_sequence);
        self.mem = self.mem - before + h.buf.mem();
        self.records += 1;
        if !h.listed {
            h.listed = true;
            self.active.push(seq);
        }
        if !gap {
            self.out.metrics.ordering.held[seq / 2].inc();
        }
        let until = arrived + self.max_wait;
        self.deadline = Some(self.deadline.map_or(until, |d| d.min(until)));
    }

    /// Names the ids of `seq` before `first` not yet published or named, for `reason`, and moves
    /// the position to `first`; false while the sink pushes back. A sequence not started yet
    /// starts at `first`, naming nothing.
    fn name_hole(&mut self, seq: usize, first: i64, reason: Reason) -> bool {
        let order = &mut self.holds[seq].order;
        if order.next != UNSET && first > order.next {
            let from = order.next;
            if !self.out.name(seq, order, from, first - 1, reason) {
                return false;
            }
        }
        order.next = order.next.max(first);
        true
    }

    /// Frees room for a record of `seq` starting at `start`: names the oldest open gap (of `seq`
    /// itself when its own bound is the one reached) with reason `ordering_full` and releases
    /// what waited behind it. False when nothing could be freed now (the sink pushes back).
    fn make_room(&mut self, seq: usize, start: i64, own: bool) -> bool {
        let holds = &self.holds;
        let oldest = |s: &&usize| holds[**s].buf.front().map(|f| f.arrived);
        let victim = match self.active.iter().filter(|s| !holds[**s].buf.is_empty()).min_by_key(oldest) {
            Some(&s) if !own => s,
            _ => seq,
        };
        let h = &self.holds[victim];
        // Nothing held here: the record alone is past the bound; the gap before it is named and
        // the caller publishes it in its place.
        let first = h.buf.front().map_or(start, |f| f.start);
        if h.order.next != UNSET && first <= h.order.next {
            // Ready to go: release it, if the sink takes it now.
            let held = self.records;
            self.release(victim);
            return self.records < held;
        }
        if !self.name_hole(victim, first, Reason::OrderingFull) {
            return false;
        }
        self.release(victim);
        true
    }

    /// Publishes the held records of `seq` that are now in their place, in order, until a gap
    /// or the sink's push-back stops it.
    fn release(&mut self, seq: usize) {
        let Hold { order, buf, .. } = &mut self.holds[seq];
        let before = (buf.mem(), buf.len());
        loop {
            order.step_over_passed();
            let Some(f) = buf.front().copied() else { break };
            let span = (f.start, f.end, f.gap);
            let rec = buf.view(&f);
            let sent = if f.end < order.next {
                self.out.late(seq, order, span, &rec)
            } else if f.start <= order.next {
                self.out.place(seq, order, span, &rec)
            } else {
                break;
            };
            if let Err(SendError::Backpressure) = sent {
                self.stalled = true;
                break;
            }
            buf.pop_front();
        }
        self.mem = self.mem - before.0 + buf.mem();
        self.records -= before.1 - buf.len();
        if before.1 != buf.len() {
            // The record held longest may have gone.
            self.deadline = None;
        }
    }

    /// Names the gaps whose wait is over (reason `ordering_timeout`) and releases what waited
    /// behind them; retries releases the sink pushed back on.
    pub fn expire(&mut self, now: Instant) {
        let due = self.deadline.is_none_or(|d| d <= now);
        if !due && !self.stalled {
            return;
        }
        self.stalled = false;
        for i in 0..self.active.len() {
            let seq = self.active[i];
            loop {
                self.release(seq);
                let h = &mut self.holds[seq];
                let Some(front) = h.buf.front().copied() else { break };
                let waited_out = h.buf.oldest().is_some_and(|t| t + self.max_wait <= now);
                // Not started: what REST sent waits for the first live record, which is on its
                // way through the ring (the event loop saw it first); no wait applies.
                let pending = h.order.next == UNSET || front.start <= h.order.next;
                if pending || !waited_out {
                    break;
                }
                if !self.name_hole(seq, front.start, Reason::OrderingTimeout) {
                    self.stalled = true;
                    break;
                }
            }
        }
        let holds = &mut self.holds;
        self.active.retain(|&s| {
            let keep = !holds[s].buf.is_empty();
            holds[s].listed = keep;
            keep
        });
        self.deadline = self.active.iter().filter_map(|&s| holds[s].buf.oldest()).min().map(|t| t + self.max_wait);
        let m = &self.out.metrics.ordering;
        m.held_records.set(self.records as i64);
        m.held_bytes.set(self.mem as i64);
    }

    /// Held records, over all sequences.
    pub fn held(&self) -> usize {
        self.records
    }
}

impl Sink for StrictOrder {
    fn start(&mut self) {
        self.out.sink.start();
    }

    fn send(&mut self, rec: &RecordView<'_>) -> Result<(), SendError> {
        match self.classify(rec) {
            Class::Pass => self.out.sink.send(rec),
            Class::Quarantined { seq, id } => {
                let sent = self.out.sink.send(rec);
                if !matches!(sent, Err(SendError::Backpressure)) {
                    self.holds[seq].order.passed = Some(id);
                }
                sent
            }
            Class::Ordered { seq, start, end, gap, live } => {
                let sent = self.offer(seq, (start, end, gap), live, rec);
                let m = &self.out.metrics.ordering;
                m.held_records.set(self.records as i64);
                m.held_bytes.set(self.mem as i64);
                sent
            }
        }
    }

    fn poll(&mut self, timeout: Duration) {
        self.out.sink.poll(timeout);
        self.expire(Instant::now());
    }

    fn in_flight(&self) -> usize {
        self.out.sink.in_flight()
    }

    fn stall_after(&self) -> Option<Duration> {
        self.out.sink.stall_after()
    }

    fn take_acked(&mut self) -> bool {
        self.out.sink.take_acked()
    }

    /// Nothing more comes (the ring and the backfill are done): every gap still open is named
    /// (reason `shutdown`), everything held goes on in order, then the sink flushes. Held records
    /// that could not go on in time count as unflushed.
    fn flush(&mut self, timeout: Duration) -> usize {
        let start = Instant::now();
        for i in 0..self.active.len() {
            let seq = self.active[i];
            loop {
                self.release(seq);
                let h = &self.holds[seq];
                let Some(front) = h.buf.front().copied() else { break };
                if start.elapsed() >= timeout {
                    break;
                }
                let pending = h.order.next != UNSET && front.start <= h.order.next;
                if !pending && self.name_hole(seq, front.start, Reason::Shutdown) {
                    continue;
                }
                self.out.sink.poll(Duration::from_millis(5));
            }
        }
        self.expire(Instant::now());
        if self.records > 0 {
            error!(records = self.records, "strict ordering: held records not published before the shutdown deadline");
        }
        self.out.sink.flush(timeout.saturating_sub(start.elapsed())) + self.records
    }
}
