//! The per-message path on the event-loop thread: a text frame in, a normalized record committed
//! to the ring out. No allocation (the ring's staging buffer is reused), no lock, no syscall
//! beyond one clock read per record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::backfill::Job;
use crate::binance::wire::{parse_text, Frame};
use crate::metrics::{LatencyRecorder, Metrics, Stage};
use crate::record::Record;
use crate::ring::{RecordMeta, RingWriter};
use crate::sequence::{Dense, SequenceTracker, Verdict};

/// How long a full ring is waited on before records are dropped (and backfilled later): long
/// enough to ride out a producer hiccup, short enough that pings are still answered in time.
const RING_FULL_PATIENCE: Duration = Duration::from_millis(20);
use crate::log_limit::LogLimiter;

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

/// Indices into `metrics::FRAME_KINDS`.
const KIND_CONTROL: usize = 5;
const KIND_ERROR: usize = 6;
const KIND_SHUTDOWN: usize = 7;
const KIND_UNPARSED: usize = 8;

pub struct Pipeline {
    ring: RingWriter,
    metrics: Arc<Metrics>,
    latency: LatencyRecorder,
    /// Lower-case symbol -> index into the configured list. FxHash: a short key hashed per
    /// message, where SipHash's DoS resistance buys nothing (the keys are our own).
    symbol_index: rustc_hash::FxHashMap<String, u16>,
    sequence: SequenceTracker,
    /// Where gaps are reported for REST backfill (`None`: backfill off).
    backfill: Option<crossbeam_channel::Sender<Job>>,
    limiter: LogLimiter,
    /// Set on shutdown: a full ring is then waited on only this long.
    give_up_after: Option<Instant>,
    committed_since_notify: usize,
    /// The ring was full past patience: drop at once until a commit succeeds again, so a dead
    /// broker costs the event loop nothing per message (pings keep being answered).
    overflowing: bool,
}

impl Pipeline {
    pub fn new(ring: RingWriter, metrics: Arc<Metrics>, backfill: Option<crossbeam_channel::Sender<Job>>) -> Pipeline {
        let symbol_index: rustc_hash::FxHashMap<String, u16> =
            metrics.symbols.iter().enumerate().map(|(i, s)| (s.clone(), i as u16)).collect();
        metrics.ring_capacity_bytes.set(ring.capacity() as i64);
        Pipeline {
            latency: metrics.latency.recorder(),
            ring,
            metrics,
            sequence: SequenceTracker::new(symbol_index.len()),
            backfill,
            symbol_index,
            limiter: LogLimiter::new(Duration::from_secs(10)),
            give_up_after: None,
            committed_since_notify: 0,
            overflowing: false,
        }
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
        let parsed = match parse_text(text) {
            Ok(f) => f,
            Err(e) => {
                self.metrics.received[KIND_UNPARSED].inc();
                return self.reject(e.reason(), &e, frame);
            }
        };
        match parsed {
            Frame::Market { stream_symbol, record, .. } => {
                let kind = record.record_type();
                self.metrics.received[kind as usize].inc();
                let Some(&symbol_idx) = self.symbol_index.get(stream_symbol) else {
                    return self.reject("unknown_symbol", &"stream for a symbol not in SYMBOLS", frame);
                };
                let mut joined = None;
                if admission == Admission::CatchUp {
                    if let Some(dense) = SequenceTracker::dense_kind(&record) {
                        match self.sequence.peek(symbol_idx as usize, &record) {
                            Verdict::Gap { .. } => return Outcome::Held,
                            Verdict::Duplicate => {
                                self.metrics.duplicates[symbol_idx as usize].inc();
                                return Outcome::Joined { symbol_idx, kind: dense };
                            }
                            Verdict::InOrder => joined = Some(Outcome::Joined { symbol_idx, kind: dense }),
                        }
                    }
                }
                let verdict = self.sequence.peek(symbol_idx as usize, &record);
                if verdict == Verdict::Duplicate {
                    self.metrics.duplicates[symbol_idx as usize].inc();
                    return Outcome::Duplicate;
                }
                let outcome = self.enqueue(&record, symbol_idx, recv_ns, 0, frame);
                if matches!(outcome, Outcome::Record | Outcome::Overflowed) {
                    // Only an accepted record moves the sequence: an invalid one leaves the gap
                    // (if any) to be revealed by the next valid record.
                    self.sequence.observe(symbol_idx as usize, &record);
                    if let Verdict::Gap { from, missing } = verdict {
                        self.metrics.gaps[symbol_idx as usize].inc();
                        self.metrics.gap_ids_missing[symbol_idx as usize].inc_by(missing as u64);
                        if let Some(suppressed) = self.limiter.check("gap") {
                            warn!(
                                symbol = record.symbol(),
                                kind = kind.as_str(),
                                from,
                                missing,
                                suppressed,
                                "sequence gap"
                            );
                        }
                        self.request_backfill(symbol_idx, &record, from, from + missing);
                    }
                }
                joined.unwrap_or(outcome)
            }
            Frame::ControlReply { id, result } => {
                self.metrics.received[KIND_CONTROL].inc();
                // A peer can send these without end: counted above, logged at a bounded rate.
                // The connection logs the replies to its own requests (it knows which they are).
                if let Some(suppressed) = self.limiter.check("control_reply") {
                    debug!(?id, suppressed, result = preview(result, 200), "control reply frame");
                }
                Outcome::ControlReply { id }
            }
            Frame::ErrorReply { code, msg } => {
                self.metrics.received[KIND_ERROR].inc();
                if let Some(suppressed) = self.limiter.check("error_reply") {
                    warn!(code, suppressed, msg = preview(msg, 200), "binance refused a request");
                }
                Outcome::ErrorReply { code }
            }
            Frame::ServerShutdown { event_time_ms } => {
                self.metrics.received[KIND_SHUTDOWN].inc();
                if let Some(suppressed) = self.limiter.check("server_shutdown") {
                    info!(event_time_ms, suppressed, "binance announced serverShutdown");
                }
                Outcome::ServerShutdown
            }
        }
    }

    /// Starts a dense sequence from what Kafka already holds (crash recovery).
    pub fn seed(&mut self, symbol_idx: u16, kind: Dense, last: i64) {
        self.sequence.seed(symbol_idx as usize, kind, last);
    }

    /// Asks the backfill thread for ids `from..to` of `record`'s sequence (or a depth resync).
    fn request_backfill(&mut self, symbol_idx: u16, record: &Record<'_>, from: i64, to: i64) {
        let Some(tx) = &self.backfill else { return };
        let job = match record {
            Record::Trade(_) => Job::Range { symbol_idx, kind: Dense::Trade, from, to },
            Record::AggTrade(_) => Job::Range { symbol_idx, kind: Dense::AggTrade, from, to },
            Record::DepthUpdate(_) => Job::DepthResync { symbol_idx },
            Record::Kline(k) => {
                use crate::binance::stream::{KLINE_INTERVALS, KLINE_INTERVAL_MS};
                let Some(iv) = KLINE_INTERVALS.iter().position(|i| *i == k.interval) else { return };
                let Some(len) = KLINE_INTERVAL_MS[iv] else { return };
                // For klines `to - from` counts candles: open times `from, from + len, ...`.
                Job::Klines { symbol_idx, interval: iv as u8, from, to: from + (to - from) * len }
            }
            Record::BookTicker(_) => return,
        };
        // Unbounded, but off the per-message path: only gaps and overflows send.
        let _ = tx.send(job);
    }

    /// Encodes `record` and commits it to the ring, waiting briefly for space if the producer lags.
    pub fn enqueue(&mut self, record: &Record<'_>, symbol_idx: u16, recv_ns: u64, flags: u8, frame: &[u8]) -> Outcome {
        let kind = record.record_type();
        let event_time_ms = record.event_time_ms();
        let meta = RecordMeta {
            kind,
            flags,
            symbol_idx,
            event_time_ms: event_time_ms.unwrap_or((recv_ns / 1_000_000) as i64),
            recv_ns,
        };
        let buf = self.ring.stage(meta, record.symbol().as_bytes());
        if let Err(e) = record.encode(recv_ns, flags & crate::ring::FLAG_BACKFILLED != 0, buf) {
            self.ring.abort();
            return self.reject(e.reason(), &e, frame);
        }
        let mut now = crate::clock::now_ns();
        if self.ring.commit(now).is_err() {
            now = if self.overflowing { now } else { self.wait_for_space() };
            if now == 0 {
                return self.reject("ring_overflow", &"record larger than the whole ring", frame);
            }
            if self.ring.has_staged() {
                // Still full: the buffer cap is reached. Drop, count, and have it backfilled.
                self.ring.abort();
                self.overflowing = true;
                self.metrics.overflow_dropped[symbol_idx as usize].inc();
                let id = record.sequence_id();
                // A dropped kline update matters only if it closed its candle (a later update
                // of an open candle replaces it); REST refills the closed one.
                if !matches!(record, Record::Kline(k) if !k.closed) {
                    self.request_backfill(symbol_idx, record, id, id + 1);
                }
                if let Some(suppressed) = self.limiter.check("overflow") {
                    warn!(suppressed, symbol = record.symbol(), "buffer cap reached: dropping (trades are backfilled)");
                }
                return Outcome::Overflowed;
            }
        }
        self.overflowing = false;
        self.committed_since_notify += 1;
        self.metrics.parsed[kind as usize].inc();
        if let Some(e) = event_time_ms {
            // An event time before 1970 or past year 2554 is absurd input, not a latency.
            if let Some(e_ns) = u64::try_from(e).ok().and_then(|e| e.checked_mul(1_000_000)) {
                self.latency.record(Stage::ExchangeToReceive, symbol_idx as usize, recv_ns.saturating_sub(e_ns));
            }
        }
        self.latency.record(Stage::ReceiveToEnqueue, symbol_idx as usize, now.saturating_sub(recv_ns));
        Outcome::Record
    }

    /// Backpressure: the ring is full, so the producer (or the broker behind it) is slower than
    /// the feed. Waits up to [`RING_FULL_PATIENCE`] (or, at shutdown, the grace period) and returns
    /// the commit time; the record is still staged if there was no room, and 0 means it can never
    /// fit.
    fn wait_for_space(&mut self) -> u64 {
        self.metrics.ring_full_waits.inc();
        let patience = self.give_up_after.unwrap_or_else(|| Instant::now() + RING_FULL_PATIENCE);
        loop {
            if !self.ring.has_staged() {
                return 0;
            }
            self.ring.notify();
            std::thread::yield_now();
            let now = crate::clock::now_ns();
            if self.ring.commit(now).is_ok() || Instant::now() >= patience {
                return now;
            }
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
        self.flush_batch();
        self.housekeeping();
        self.latency.publish();
    }
}
