//! A record's way into the ring: encoded straight into the ring's free space where it fits
//! (no staging copy), else staged and copied in, waiting briefly for space if the producer lags.

use std::time::Instant;

use tracing::warn;

use super::{Outcome, Pipeline, RING_FULL_PATIENCE};
use crate::metrics::{FrameKind, Stage};
use crate::record::{Record, RecordType, Trade};
use crate::ring::{RecordMeta, FLAG_BACKFILLED, FLAG_QUARANTINED};
use crate::stream::StreamKind;

/// Room asked of the ring for a record's payload besides its levels' text: every record but a
/// depth update's fits in this (a trade takes about 230 bytes). One that does not is staged
/// instead (encoded again: it costs only the rare oversized record).
const DIRECT_ROOM: usize = 512;

/// The room to ask for `record`'s payload: a depth update's levels are re-encoded from their
/// text without whitespace, so they take at most the text's length.
fn room(record: &Record<'_>) -> usize {
    match record {
        Record::DepthUpdate(d) => DIRECT_ROOM.saturating_add(d.bids.0.len()).saturating_add(d.asks.0.len()),
        _ => DIRECT_ROOM,
    }
}

/// The enqueue time of the record about to be committed: the clock, or, within a binary frame,
/// the time its first record read (`Pipeline::frame_clock`).
#[inline(always)]
fn enqueue_time(frame_clock: Option<u64>) -> u64 {
    match frame_clock {
        Some(0) | None => crate::clock::now_ns(),
        Some(t) => t,
    }
}

impl Pipeline {
    /// Encodes `record` and commits it to the ring, waiting briefly for space if the producer lags.
    pub fn enqueue(&mut self, record: &Record<'_>, symbol_idx: u16, recv_ns: u64, flags: u8, frame: &[u8]) -> Outcome {
        let kind = record.record_type();
        // The venue's unit; Kafka's message timestamp is milliseconds whatever the records say.
        let event_time = record.event_time_ms();
        let meta = RecordMeta {
            kind,
            flags,
            symbol_idx,
            event_time_ms: event_time.map_or((recv_ns / 1_000_000) as i64, |t| self.time_unit.to_ms(t)),
            recv_ns,
        };
        let backfilled = flags & FLAG_BACKFILLED != 0;
        let prefix = self.prefixes.of(record, symbol_idx);
        // A quarantined record is edited after its encoding: it takes the staged way (rare).
        if flags & FLAG_QUARANTINED == 0 {
            if let Some(mut direct) = self.ring.direct(meta, record.symbol().as_bytes(), room(record)) {
                if let Err(e) = record.encode_to(prefix, self.time_unit, recv_ns, backfilled, &mut direct) {
                    // Not committed: the window is left unpublished.
                    return self.reject(e.reason(), &e, frame);
                }
                let now = enqueue_time(self.frame_clock);
                if direct.commit(now) {
                    return self.committed(kind, symbol_idx, event_time, recv_ns, now);
                }
                // It did not fit before the end of the ring: staged below.
            }
        }
        let buf = self.ring.stage(meta, record.symbol().as_bytes());
        if let Err(e) = record.encode_to(prefix, self.time_unit, recv_ns, backfilled, buf) {
            self.ring.abort();
            return self.reject(e.reason(), &e, frame);
        }
        if flags & FLAG_QUARANTINED != 0 && buf.last() == Some(&b'}') {
            buf.pop();
            buf.extend_from_slice(br#","quarantined":true}"#);
        }
        let mut now = enqueue_time(self.frame_clock);
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
                // A quarantined record is not asked of REST: its id is the implausible part.
                let quarantined = flags & FLAG_QUARANTINED != 0;
                if !quarantined && !matches!(record, Record::Kline(k) if !k.closed) {
                    self.request_backfill(symbol_idx, record, id, 1);
                }
                if let Some(suppressed) = self.limiter.check("overflow") {
                    warn!(suppressed, symbol = record.symbol(), "buffer cap reached: dropping (trades are backfilled)");
                }
                return Outcome::Overflowed;
            }
        }
        self.committed(kind, symbol_idx, event_time, recv_ns, now)
    }

    /// A binary frame's trade the fast way: when it is the next of its symbol's trade sequence
    /// and fits the ring's free space, written there from its fields (its tail shared with the
    /// `more` trades of its event that follow, [`crate::record::TradeTail`]), with the checks, counters
    /// and latencies [`Pipeline::on_frame`] would have given it. `None` (nothing counted,
    /// nothing published) for anything else: a duplicate, a gap, a symbol or prefix that does not match,
    /// a refused decimal, no room; the record's way then takes it, and decides.
    #[inline(always)]
    pub(super) fn take_trade(
        &mut self,
        symbol_idx: u16,
        trade: &Trade<'_>,
        more: bool,
        recv_ns: u64,
    ) -> Option<Outcome> {
        // The prefix checks the index against the record's own symbol text (a venue's index
        // into other symbols would not find it), before anything per symbol is indexed with it.
        let prefix = self.prefixes.trade(trade, symbol_idx)?;
        let judged = self.sequence.next_trade(usize::from(symbol_idx), trade.trade_id)?;
        let meta = RecordMeta {
            kind: RecordType::Trade,
            flags: 0,
            symbol_idx,
            event_time_ms: self.time_unit.to_ms(trade.event_time_ms),
            recv_ns,
        };
        let mut direct = self.ring.direct(meta, trade.symbol.as_bytes(), DIRECT_ROOM)?;
        let tails = &mut self.trade_tail;
        tails.encode(trade, prefix, self.time_unit, recv_ns, false, more, &mut direct).ok()?;
        let now = enqueue_time(self.frame_clock);
        if !direct.commit(now) {
            return None;
        }
        self.metrics.received(FrameKind::of(RecordType::Trade)).inc();
        let kind = self.configured_kind(StreamKind::Trade);
        self.streams.seen(symbol_idx, kind, recv_ns);
        self.sequence.remember(usize::from(symbol_idx), judged);
        Some(self.committed(RecordType::Trade, symbol_idx, Some(trade.event_time_ms), recv_ns, now))
    }

    /// Accounts for a record committed at `now`: counters and latencies. Inlined always: with
    /// two callers the compiler made it a call (about 45 instructions a record more).
    #[inline(always)]
    fn committed(
        &mut self,
        kind: RecordType,
        symbol_idx: u16,
        event_time: Option<i64>,
        recv_ns: u64,
        now: u64,
    ) -> Outcome {
        self.overflowing = false;
        if let Some(t) = &mut self.frame_clock {
            *t = now;
        }
        self.committed_since_notify += 1;
        self.metrics.parsed[kind as usize].inc();
        if let Some(e) = event_time {
            // An event time before 1970 or past year 2554 is absurd input, not a latency.
            if let Some(e_ns) = u64::try_from(e).ok().and_then(|e| e.checked_mul(self.time_unit.ns())) {
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
            // Wakes the producer even inside its batching window.
            self.ring.press();
            std::thread::yield_now();
            let now = crate::clock::now_ns();
            if self.ring.commit(now).is_ok() || Instant::now() >= patience {
                return now;
            }
        }
    }
}
