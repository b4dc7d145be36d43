//! The per-message path on the event-loop thread: a text frame in, a normalized record committed
//! to the ring out. No allocation (the ring's staging buffer is reused), no syscall beyond one
//! clock read per record, and no lock for an accepted record; only a rejected frame takes one
//! (uncontended: the reason's counter lookup and the log rate limiter), a cost bad input pays.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use crate::handoff::jobs::{Job, JobSender, Owed, Seq};
use crate::handoff::marker;
use crate::liveness::{Event, Slots};
use crate::log_limit::LogLimiter;
use crate::metrics::{FrameKind, LatencyRecorder, Metrics, Stage};
use crate::record::{Prefixes, Record, TradeTail};
use crate::ring::{RecordMeta, RingWriter, FLAG_MARKER, FLAG_QUARANTINED};
use crate::sequence::{Dense, SequenceTracker, Verdict};
use crate::stream::StreamKind;
use crate::symbols::Symbols;
use crate::time_unit::TimeUnit;
use crate::venue::{Frame, Venue};

mod binary;
mod enqueue;

/// How long a full ring is waited on before records are dropped (and backfilled later): long
/// enough to ride out a producer hiccup, short enough that pings are still answered in time.
const RING_FULL_PATIENCE: Duration = Duration::from_millis(20);
/// Gaps held while neither the backfill queue nor the ring can take them (a run of drops is one
/// entry): allocated once, 4096 x 24 bytes.
const OWED_GAPS: usize = 4096;

/// What a frame meant for the connection that received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A record was enqueued.
    Record,
    /// A reply to one of our requests.
    ControlReply { id: Option<i64> },
    /// Binance refused a request; the connection decides what to do.
    ErrorReply { code: i64 },
    /// The server will close this connection soon.
    ServerShutdown,
    /// Dropped as invalid (counted and logged).
    Rejected,
    /// Dropped: its exchange id was already accepted.
    Duplicate,
    /// Dropped at the buffer cap (the producer or the broker is behind); backfill was requested.
    Overflowed,
    /// A connection catching up (see [`Admission::CatchUp`]) reached the published sequence of
    /// this symbol: from now on its records of that sequence are taken normally.
    Joined { symbol_idx: u16, kind: Dense },
    /// A catching-up connection is ahead of what was published: the record is left to the old
    /// connection, which is still streaming and will deliver it in order.
    Held,
}

/// How a connection's records are admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Normal,
    /// A rotation's replacement: its dense-sequence records are taken only from the point where
    /// they continue what the old connection published, so the handover leaves no hole even when
    /// the old connection lags behind the new one's starting point.
    CatchUp,
}

/// At most `max` bytes of `s`, cut on a character boundary (Binance text may be non-ASCII).
fn preview(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub struct Pipeline {
    /// The venue the frames come from: their parser, and the `exchange` of gap records.
    venue: &'static Venue,
    ring: RingWriter,
    metrics: Arc<Metrics>,
    latency: LatencyRecorder,
    /// The configured symbols (shared, built once): stream symbol -> index, index -> gap key.
    symbols: Arc<Symbols>,
    sequence: SequenceTracker,
    /// The unit of the venue's times (`TIME_UNIT`): record field names, kline lengths.
    time_unit: TimeUnit,
    /// Where gaps are reported for REST backfill (`None`: backfill off).
    backfill: Option<JobSender>,
    /// Gaps the backfill queue refused and the ring had no room for yet; flushed every
    /// housekeeping turn.
    owed: Owed,
    limiter: LogLimiter,
    /// Set on shutdown: a full ring is then waited on only this long.
    give_up_after: Option<Instant>,
    committed_since_notify: usize,
    /// The ring was full past patience: drop at once until a commit succeeds again, so a dead
    /// broker costs the event loop nothing per message (pings keep being answered).
    overflowing: bool,
    /// The last message of every configured stream (see [`Pipeline::track_streams`]); none until
    /// then.
    streams: Slots,
    /// What the venue's binary frames are read with, once its binary transport is in use.
    binary: Option<binary::Binary>,
    /// (binary stream's kind, configured kind): see [`Pipeline::set_binary_kinds`].
    binary_kinds: Vec<(StreamKind, StreamKind)>,
    /// While one binary frame's records are enqueued: the enqueue time its first record read
    /// from the clock (0 before), stamped on the others too. One clock read per frame, not per
    /// record (an SBE trade event holds several trades; a clock read was 9 % of its time).
    frame_clock: Option<u64>,
    /// The symbol index the last frame's stream named (see [`Pipeline::symbol_index`]).
    last_symbol: u16,
    /// Each (symbol, record type)'s constant record start, written once here.
    prefixes: Prefixes,
    /// The tail last kept for a binary trade with more of its event to come (maybe an earlier
    /// event's): theirs, if their times and receive time are the same.
    trade_tail: TradeTail,
}

impl Pipeline {
    pub fn new(
        venue: &'static Venue,
        ring: RingWriter,
        metrics: Arc<Metrics>,
        backfill: Option<JobSender>,
    ) -> Pipeline {
        metrics.ring_capacity_bytes.set(ring.capacity() as i64);
        let symbols = &metrics.symbols;
        let prefixes = Prefixes::new(venue.exchange, (0..symbols.len()).map(|i| symbols.upper(i as u16)));
        Pipeline {
            venue,
            symbols: metrics.symbols.clone(),
            sequence: SequenceTracker::new(metrics.symbols.len()),
            time_unit: TimeUnit::Millis,
            latency: metrics.latency.recorder_for(&[Stage::ExchangeToReceive, Stage::ReceiveToEnqueue]),
            ring,
            metrics,
            backfill,
            owed: Owed::with_capacity(OWED_GAPS),
            limiter: LogLimiter::new(Duration::from_secs(10)),
            give_up_after: None,
            committed_since_notify: 0,
            overflowing: false,
            streams: Slots::default(),
            binary: None,
            binary_kinds: Vec::new(),
            frame_clock: None,
            last_symbol: 0,
            prefixes,
            trade_tail: TradeTail::default(),
        }
    }

    /// Keeps the last message's receive time of each of `kinds` for every symbol (for the
    /// event loop's [`crate::liveness::Watch`]).
    pub fn track_streams(&mut self, kinds: &[StreamKind]) {
        self.streams = Slots::new(self.symbols.len(), kinds);
    }

    /// The last message of every tracked stream.
    pub fn streams(&self) -> &Slots {
        &self.streams
    }

    /// Publishes the `stale` control record of `ev` for the stream `(symbol_idx, kind)`, named
    /// `stream` as the venue names its kind. Through the ring, in the topic of that stream's
    /// records; false (nothing written) when the ring has no room.
    pub fn publish_stale(&mut self, symbol_idx: u16, kind: StreamKind, stream: &str, ev: &Event) -> bool {
        let now = crate::clock::now_ns();
        let symbol = self.symbols.upper(symbol_idx);
        let meta = RecordMeta {
            kind: kind.record_type(),
            flags: FLAG_MARKER,
            symbol_idx,
            event_time_ms: (now / 1_000_000) as i64,
            recv_ns: now,
        };
        let buf = self.ring.stage(meta, symbol.as_bytes());
        crate::liveness::write_record(buf, self.venue.exchange, symbol, stream, ev, now);
        if self.ring.commit(now).is_err() {
            self.ring.abort();
            return false;
        }
        self.committed_since_notify += 1;
        true
    }

    fn reject(&mut self, reason: &'static str, detail: &dyn std::fmt::Display, frame: &[u8]) -> Outcome {
        self.metrics.rejected.with_label_values(&[reason]).inc();
        if let Some(suppressed) = self.limiter.check(reason) {
            // A bounded, lossy preview: enough to debug, never a whole hostile frame in the log.
            let preview = String::from_utf8_lossy(&frame[..frame.len().min(160)]);
            warn!(reason, suppressed, len = frame.len(), preview = %preview, "rejected frame: {detail}");
        }
        Outcome::Rejected
    }

    /// Handles one text frame received at `recv_ns` (Unix ns).
    pub fn on_text(&mut self, text: &str, recv_ns: u64, admission: Admission) -> Outcome {
        let frame = text.as_bytes();
        // Handled where the parser returned it: moved out of the `Result`, a frame was copied
        // (a `memcpy` of about 30 instructions a record).
        match &(self.venue.parse)(text) {
            Ok(f) => self.on_frame(f, recv_ns, admission, frame),
            Err(e) => {
                self.metrics.received(FrameKind::Unparsed).inc();
                self.reject(e.reason, &e, frame)
            }
        }
    }

    /// Handles one frame the venue parsed, from a text frame or a binary one (`frame`: its bytes,
    /// for a rejection's log line).
    fn on_frame(&mut self, parsed: &Frame<'_>, recv_ns: u64, admission: Admission, frame: &[u8]) -> Outcome {
        match parsed {
            Frame::Market { kind: stream, stream_symbol, record } => {
                let kind = record.record_type();
                self.metrics.received(FrameKind::of(kind)).inc();
                let Some(symbol_idx) = self.symbol_index(stream_symbol) else {
                    return self.reject("unknown_symbol", &"stream for a symbol not in SYMBOLS", frame);
                };
                // The stream delivers, whatever becomes of the record (a duplicate, one held back).
                self.streams.seen(symbol_idx, *stream, recv_ns);
                let mut joined = None;
                if admission == Admission::CatchUp {
                    if let Some(dense) = SequenceTracker::dense_kind(record) {
                        match self.sequence.peek(symbol_idx as usize, record) {
                            Verdict::Duplicate => {
                                self.metrics.duplicates[symbol_idx as usize].inc();
                                return Outcome::Joined { symbol_idx, kind: dense };
                            }
                            Verdict::InOrder => joined = Some(Outcome::Joined { symbol_idx, kind: dense }),
                            // Not a continuation (a gap, or an id too far ahead to judge yet):
                            // the old connection delivers it, in order.
                            Verdict::Gap { .. } | Verdict::Quarantined | Verdict::Confirmed { .. } => {
                                return Outcome::Held
                            }
                        }
                    }
                }
                // Judged once: remembered as judged if the record is accepted (nothing in
                // between moves the sequence).
                let judged = self.sequence.judge(symbol_idx as usize, record);
                let verdict = judged.verdict();
                if verdict == Verdict::Duplicate {
                    self.metrics.duplicates[symbol_idx as usize].inc();
                    return Outcome::Duplicate;
                }
                let flags = if verdict == Verdict::Quarantined { FLAG_QUARANTINED } else { 0 };
                let outcome = self.enqueue(record, symbol_idx, recv_ns, flags, frame);
                if matches!(outcome, Outcome::Record | Outcome::Overflowed) {
                    // Only an accepted record moves the sequence: an invalid one leaves the gap
                    // (if any) to be revealed by the next valid record.
                    self.sequence.remember(symbol_idx as usize, judged);
                    self.on_verdict(symbol_idx, record, verdict);
                }
                joined.unwrap_or(outcome)
            }
            Frame::ControlReply { id, result } => {
                self.metrics.received(FrameKind::ControlReply).inc();
                // A peer can send these without end: counted above, logged at a bounded rate.
                // The connection logs the replies to its own requests (it knows which they are).
                if let Some(suppressed) = self.limiter.check("control_reply") {
                    debug!(?id, suppressed, result = preview(result, 200), "control reply frame");
                }
                Outcome::ControlReply { id: *id }
            }
            Frame::ErrorReply { code, msg } => {
                self.metrics.received(FrameKind::ErrorReply).inc();
                if let Some(suppressed) = self.limiter.check("error_reply") {
                    let exchange = self.venue.exchange;
                    warn!(exchange, code, suppressed, msg = preview(msg, 200), "the venue refused a request");
                }
                Outcome::ErrorReply { code: *code }
            }
            Frame::ServerShutdown { event_time_ms } => {
                self.metrics.received(FrameKind::ServerShutdown).inc();
                if let Some(suppressed) = self.limiter.check("server_shutdown") {
                    info!(
                        exchange = self.venue.exchange,
                        event_time_ms, suppressed, "the venue announced serverShutdown"
                    );
                }
                Outcome::ServerShutdown
            }
        }
    }

    /// The configured index of a stream's symbol, the last one found tried first: a
    /// connection's frames come in runs of one symbol, and a compare costs less than a hash.
    fn symbol_index(&mut self, stream_symbol: &str) -> Option<u16> {
        let last = self.last_symbol;
        // The SBE transport names the stream by the configured name itself (the same `Symbols`
        // text): the same address and length are the same text, with no `memcmp` call.
        if self
            .symbols
            .get(usize::from(last))
            .is_some_and(|s| std::ptr::eq(s.as_str(), stream_symbol) || s == stream_symbol)
        {
            return Some(last);
        }
        let i = self.symbols.index_of_lower(stream_symbol)?;
        self.last_symbol = i;
        Some(i)
    }

    /// What an accepted record's verdict asks for: gaps counted and requested, a quarantined
    /// record counted.
    fn on_verdict(&mut self, symbol_idx: u16, record: &Record<'_>, verdict: Verdict) {
        let kind = record.record_type().as_str();
        match verdict {
            Verdict::Gap { from, missing } => self.on_gap(symbol_idx, record, from, missing),
            Verdict::Quarantined => {
                self.metrics.quarantined[symbol_idx as usize].inc();
                if let Some(suppressed) = self.limiter.check("quarantined") {
                    let id = record.sequence_id();
                    warn!(symbol = record.symbol(), kind, id, suppressed, "id implausibly far ahead: quarantined");
                }
            }
            Verdict::Confirmed { from, missing, then_from, then_missing } => {
                if let Some(suppressed) = self.limiter.check("jump") {
                    info!(
                        symbol = record.symbol(),
                        kind, from, missing, suppressed, "quarantined id confirmed: sequence jumps"
                    );
                }
                self.on_gap(symbol_idx, record, from, missing);
                self.on_gap(symbol_idx, record, then_from, then_missing);
            }
            Verdict::InOrder | Verdict::Duplicate => {}
        }
    }

    fn on_gap(&mut self, symbol_idx: u16, record: &Record<'_>, from: i64, missing: i64) {
        if missing <= 0 {
            return;
        }
        self.metrics.gaps[symbol_idx as usize].inc();
        self.metrics.gap_ids_missing[symbol_idx as usize].inc_by(missing as u64);
        if let Some(suppressed) = self.limiter.check("gap") {
            warn!(
                symbol = record.symbol(),
                kind = record.record_type().as_str(),
                from,
                missing,
                suppressed,
                "sequence gap"
            );
        }
        self.request_backfill(symbol_idx, record, from, missing);
    }

    /// Sets the quarantine bound (`BACKFILL_MAX_IDS`): ids further ahead do not move a sequence.
    pub fn set_max_jump(&mut self, max_jump: i64) {
        self.sequence.set_max_jump(max_jump);
    }

    /// Diff-depth events chain by the venue's rule (its `RestApi::depth_chain`; spot's unless set).
    pub fn set_depth_chain(&mut self, chain: crate::sequence::DepthChain) {
        self.sequence.set_depth_chain(chain);
    }

    /// The venue sends its times in `unit` (`TIME_UNIT`).
    pub fn set_time_unit(&mut self, unit: TimeUnit) {
        self.time_unit = unit;
        self.sequence.set_time_unit(unit);
    }

    /// Starts a dense sequence from what Kafka already holds (crash recovery).
    pub fn seed(&mut self, symbol_idx: u16, kind: Dense, last: i64) {
        self.sequence.seed(symbol_idx as usize, kind, last);
    }

    /// Asks the backfill thread for `missing` ids from `from` of `record`'s sequence (for klines:
    /// `missing` candles opening from `from`). Saturating: the ends are wire values. A depth
    /// break needs nothing from here: the producer's book sees the same break in the diffs it is
    /// handed, publishes the resync in its place and asks for its own snapshot.
    fn request_backfill(&mut self, symbol_idx: u16, record: &Record<'_>, from: i64, missing: i64) {
        let job = match record {
            Record::Trade(_) => Job::Range { symbol_idx, kind: Dense::Trade, from, to: from.saturating_add(missing) },
            Record::AggTrade(_) => {
                Job::Range { symbol_idx, kind: Dense::AggTrade, from, to: from.saturating_add(missing) }
            }
            Record::DepthUpdate(_) => return,
            Record::Kline(k) => {
                let Some(iv) = crate::interval::index(k.interval) else { return };
                let Some(len) = crate::interval::KLINE_INTERVAL_MS[iv] else { return };
                let (unit, len) = (self.time_unit, self.time_unit.from_ms(len));
                Job::Klines {
                    symbol_idx,
                    interval: iv as u8,
                    unit,
                    from,
                    to: from.saturating_add(missing.saturating_mul(len)),
                }
            }
            // Snapshots with no id: nothing to ask REST for.
            Record::BookTicker(_) | Record::MarkPrice(_) | Record::Liquidation(_) => return,
        };
        self.send_job(job);
    }

    /// Hands `job` to the backfill thread without waiting; when its queue is full, the gap is
    /// published at once through the ring (reason `backfill_queue_full`), or held in `owed` while
    /// the ring is full too. Never blocks, never drops silently.
    /// With backfill off (`BACKFILL=off`) a gap is named at once the same way (reason
    /// `backfill_off`): the promise is "exactly once, or named in a gap record" either way.
    fn send_job(&mut self, job: Job) {
        let job = match &self.backfill {
            None => job,
            Some(tx) => match if self.owed.is_empty() { tx.try_send(job) } else { Err(job) } {
                Ok(()) => return,
                Err(job) => job,
            },
        };
        // Depth resyncs always fit (and without backfill there is no snapshot to fetch); only
        // ranges come back.
        let Some((seq, from, to)) = job.range() else { return };
        let symbol = self.symbols.upper(seq.symbol_idx());
        let exchange = self.venue.exchange;
        let reason = self.gap_reason();
        if self.owed.is_empty() && write_gap(&mut self.ring, &self.metrics, exchange, symbol, seq, from, to, reason) {
            return;
        }
        if !self.owed.push(seq, from, to) {
            // Ring, queue and this buffer all full, and not part of a run already held: loud.
            self.metrics.backfill_queue_full[seq.symbol_idx() as usize].inc();
            if let Some(suppressed) = self.limiter.check("gap_unrecorded") {
                error!(symbol, ?seq, from, to, suppressed, "gap could not be recorded: ring and backfill queue full");
            }
        }
    }

    /// Retries the gaps held in `owed`, oldest first: the backfill queue, else a gap record.
    fn flush_owed(&mut self) {
        let reason = self.gap_reason();
        let (ring, metrics, symbols, tx) = (&mut self.ring, &self.metrics, &self.symbols, &self.backfill);
        let exchange = self.venue.exchange;
        self.owed.flush(|seq, from, to| {
            tx.as_ref().is_some_and(|tx| tx.try_send(Job::of(seq, from, to)).is_ok())
                || write_gap(ring, metrics, exchange, symbols.upper(seq.symbol_idx()), seq, from, to, reason)
        });
    }

    /// Why a gap the pipeline publishes itself is not being fetched.
    fn gap_reason(&self) -> marker::Reason {
        if self.backfill.is_some() {
            marker::Reason::QueueFull
        } else {
            marker::Reason::BackfillOff
        }
    }

    /// Wakes the producer if records were committed since the last call; once per read batch.
    pub fn flush_batch(&mut self) {
        if self.committed_since_notify > 0 {
            self.ring.notify();
            self.committed_since_notify = 0;
        }
    }

    /// Periodic work off the per-message path: gauges and histogram publication.
    pub fn housekeeping(&mut self) {
        if !self.owed.is_empty() {
            self.flush_owed();
        }
        let used = self.ring.used_bytes();
        self.metrics.ring_used_bytes.set(used as i64);
        self.metrics.ring_occupancy_ratio.set(used as f64 / self.ring.capacity() as f64);
        self.latency.maybe_publish(Duration::from_millis(250));
    }

    /// From now on a full ring is waited on for at most `grace`.
    pub fn begin_shutdown(&mut self, grace: Duration) {
        self.give_up_after = Some(Instant::now() + grace);
    }

    pub fn finish(mut self) {
        // What is still owed goes as gap records (the backfill thread stops taking jobs at
        // shutdown), waiting for ring space within the shutdown grace.
        let deadline = self.give_up_after.unwrap_or_else(|| Instant::now() + RING_FULL_PATIENCE);
        while !self.owed.is_empty() && Instant::now() < deadline {
            self.flush_owed();
            self.ring.notify();
            std::thread::yield_now();
        }
        if !self.owed.is_empty() {
            error!(gaps = self.owed.len(), "gaps could not be recorded before the shutdown deadline");
        }
        self.flush_batch();
        self.housekeeping();
        self.latency.publish();
    }
}

/// Writes a `backfill_queue_full` gap record for `from..to` of `seq` into the ring, counted;
/// false (nothing written) when the ring has no room. No allocation: the staging buffer is reused.
#[allow(clippy::too_many_arguments)]
fn write_gap(
    ring: &mut RingWriter,
    metrics: &Metrics,
    exchange: &str,
    symbol: &str,
    seq: Seq,
    from: i64,
    to: i64,
    reason: marker::Reason,
) -> bool {
    let now = crate::clock::now_ns();
    let buf = ring.stage(marker::meta(seq, now), symbol.as_bytes());
    marker::write(buf, marker::Owner { exchange, symbol }, seq, from, to, reason, now);
    if ring.commit(now).is_err() {
        ring.abort();
        return false;
    }
    let s = seq.symbol_idx() as usize;
    metrics.gap_markers[s].inc();
    if reason == marker::Reason::QueueFull {
        metrics.backfill_queue_full[s].inc();
    }
    true
}
