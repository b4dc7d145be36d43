//! Per-symbol sequence tracking: exchange ids tell duplicates (an overlap after a reconnect or
//! during a connection rotation) from gaps (events that never arrived).
//!
//! Trade ids (`t`) and aggregate trade ids (`a`) increase by one per symbol; diff-depth events
//! chain `U == previous u + 1` (Binance's "how to manage a local order book"; on USD-M by `pu ==
//! previous u` instead: the venue's [`DepthChain`]). Book-ticker update
//! ids and kline event times only increase (they are not dense), so for them only duplicates are
//! recognised: the overlap of two connections during a rotation publishes each event once.
//! Klines have a sequence of their own: candles follow each other by open time, each ends with a
//! closed (`x: true`) update, and a candle whose closed update never came is a gap (counted in
//! candles, keyed by open time) that REST's `/api/v3/klines` can fill.
//!
//! # Quarantine
//!
//! One hostile or corrupt id far ahead (say `i64::MAX`) would otherwise become the sequence's
//! position, and every real record after it would be dropped as a duplicate, for good. So a
//! record that jumps further ahead than `max_jump` (ids for dense sequences and book tickers,
//! candles for klines; the same bound as `BACKFILL_MAX_IDS`, the longest gap backfill would fetch
//! anyway) does not move the sequence: it is [`Verdict::Quarantined`], published flagged and
//! counted. A real jump (a long outage, a restart after downtime, an exchange that moved on) is
//! confirmed by the record after it, which continues from the quarantined one rather than from the
//! old position: the sequence then moves on ([`Verdict::Confirmed`]) and the hole before the jump
//! is backfilled like any gap. Crash recovery applies the same rule through [`Frontier`].

mod depth;

pub use depth::{DepthChain, DepthIds, DepthStep};

use crate::record::Record;

/// What an incoming record is, relative to what was already accepted for its symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Next in sequence (or the first seen, or an untracked kind).
    InOrder,
    /// Already accepted: drop it.
    Duplicate,
    /// Accept it, but `missing` ids before it never arrived (first missing id is `from`). For
    /// klines: `missing` closed candles, the first opening at `from` (ms).
    Gap { from: i64, missing: i64 },
    /// Implausibly far ahead of the sequence: publish it flagged, leave the sequence where it is.
    Quarantined,
    /// This record continues the last quarantined one: the jump was real and the sequence moves
    /// on. `from`/`missing` is the gap before the quarantined record, `then_from`/`then_missing`
    /// the gap between it and this record (either may be empty: `missing == 0`).
    Confirmed { from: i64, missing: i64, then_from: i64, then_missing: i64 },
}

/// Kinds with a dense id sequence (gaps are detectable); the index of their slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dense {
    Trade = 0,
    AggTrade = 1,
    Depth = 2,
}

const BOOK: usize = 3;
/// Klines: one slot per interval (`KLINE_INTERVALS`), keyed by event time.
const KLINE0: usize = 4;
/// Mark prices and liquidations, keyed by event time: no id to find a gap by, but an overlapping
/// connection's copy (make-before-break) is still a duplicate, and one older than what was
/// published is stale. `markPrice` and `markPrice@1s` of a symbol share the slot: one mark price
/// at one time is one record, whichever stream brought it first.
const MARK: usize = KLINE0 + crate::interval::KLINE_INTERVALS.len();
const LIQUIDATION: usize = MARK + 1;
const SLOTS: usize = LIQUIDATION + 1;
const UNSET: i64 = i64::MIN;

const INTERVALS: usize = crate::interval::KLINE_INTERVALS.len();

/// The quarantine bound when none is configured: `BACKFILL_MAX_IDS`' default.
pub const DEFAULT_MAX_JUMP: i64 = 1_000_000;
/// A month has no fixed length; for the plausibility of a monthly kline's event time, the longest.
const MONTH_MS: i64 = 31 * 86_400_000;

/// Ids strictly between `prev` and `first`: how far `first` jumps past `prev`. Saturating, so a
/// hostile pair of ids (a very negative one, then a very large one) cannot overflow.
pub fn ids_between(prev: i64, first: i64) -> i64 {
    first.saturating_sub(prev).saturating_sub(1).max(0)
}

/// A quarantined record, kept to see whether the next record confirms it.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    /// What accepting it would have set: the slot's last id and the candle accounted for.
    last: i64,
    candle: Option<(usize, i64)>,
    /// The gap accepting it would have opened: `(from, missing)`.
    gap: (i64, i64),
}

/// Last accepted id per (symbol, kind). Fixed size: no allocation per message.
pub struct SequenceTracker {
    last: Vec<[i64; SLOTS]>,
    /// Per (symbol, kline interval): open time of the last candle accounted for as closed
    /// (published closed, or requested from REST).
    candles: Vec<[i64; INTERVALS]>,
    /// Per (symbol, slot): the last quarantined record, until a plausible record or its
    /// confirmation replaces it.
    candidates: Vec<[Option<Candidate>; SLOTS]>,
    max_jump: i64,
    /// Time units per millisecond (1, or 1000 under `TIME_UNIT=us`): kline times count in them.
    per_ms: i64,
    /// How the venue's diff-depth events chain.
    depth_chain: DepthChain,
}

/// A verdict and what remembering the record would change: [`SequenceTracker::judge`]'s
/// answer, which [`SequenceTracker::remember`] applies once the record is accepted, so that an
/// accepted record is judged once, not a second time to be remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Judged {
    slot: usize,
    last: i64,
    verdict: Verdict,
    /// `(interval index, open time of the last candle now accounted for)`.
    candle: Option<(usize, i64)>,
    /// How far ahead the record is: ids (for klines, candles) skipped.
    jump: i64,
    /// The gap accepting it opens, `(from, missing)`; `missing == 0` for none.
    gap: (i64, i64),
}

impl Judged {
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }
}

impl SequenceTracker {
    pub fn new(symbols: usize) -> SequenceTracker {
        SequenceTracker {
            last: vec![[UNSET; SLOTS]; symbols],
            candles: vec![[UNSET; INTERVALS]; symbols],
            candidates: vec![[None; SLOTS]; symbols],
            max_jump: DEFAULT_MAX_JUMP,
            per_ms: 1,
            depth_chain: DepthChain::default(),
        }
    }

    /// Diff-depth events chain by the venue's rule (spot's unless set).
    pub fn set_depth_chain(&mut self, chain: DepthChain) {
        self.depth_chain = chain;
    }

    /// Kline times are in `unit` (their candle lengths scale with it).
    pub fn set_time_unit(&mut self, unit: crate::time_unit::TimeUnit) {
        self.per_ms = unit.per_ms();
    }

    /// Sets the quarantine bound (ids, or candles for klines); at least 1.
    pub fn set_max_jump(&mut self, max_jump: i64) {
        self.max_jump = max_jump.max(1);
    }

    /// Starts a dense sequence from what is already published (crash recovery): the next record
    /// is then judged against `last`, so a hole since the previous run shows up as a gap.
    pub fn seed(&mut self, symbol_idx: usize, kind: Dense, last: i64) {
        let slot = &mut self.last[symbol_idx][kind as usize];
        if *slot == UNSET || last > *slot {
            *slot = last;
            self.candidates[symbol_idx][kind as usize] = None;
        }
    }

    /// The dense sequence a record belongs to, if any.
    pub fn dense_kind(record: &Record<'_>) -> Option<Dense> {
        match record {
            Record::Trade(_) => Some(Dense::Trade),
            Record::AggTrade(_) => Some(Dense::AggTrade),
            Record::DepthUpdate(_) => Some(Dense::Depth),
            _ => None,
        }
    }

    /// `(slot, first id, last id, dense)` of a record.
    fn position(record: &Record<'_>) -> (usize, i64, i64, bool) {
        match record {
            Record::Trade(t) => (Dense::Trade as usize, t.trade_id, t.trade_id, true),
            Record::AggTrade(a) => (Dense::AggTrade as usize, a.agg_id, a.agg_id, true),
            Record::DepthUpdate(d) => (Dense::Depth as usize, d.first_update_id, d.final_update_id, true),
            Record::BookTicker(b) => (BOOK, b.update_id, b.update_id, false),
            Record::Kline(k) => {
                let iv = crate::interval::index(k.interval).unwrap_or(0);
                (KLINE0 + iv, k.event_time_ms, k.event_time_ms, false)
            }
            Record::MarkPrice(m) => (MARK, m.event_time_ms, m.event_time_ms, false),
            Record::Liquidation(l) => (LIQUIDATION, l.event_time_ms, l.event_time_ms, false),
        }
    }

    /// [`SequenceTracker::judge`]'s verdict on trade `id` of symbol `symbol_idx` when it is the
    /// next of its sequence (`InOrder`, nothing else to do), without a [`Record`]; `None` for any
    /// other id (or an unknown index), which the record's way judges. The fast way of a binary
    /// frame's trades (`Pipeline::take_trade`).
    #[inline(always)]
    pub fn next_trade(&self, symbol_idx: usize, id: i64) -> Option<Judged> {
        let slot = Dense::Trade as usize;
        let prev = self.last.get(symbol_idx)?[slot];
        (prev != UNSET && prev.checked_add(1) == Some(id)).then_some(Judged {
            slot,
            last: id,
            verdict: Verdict::InOrder,
            candle: None,
            jump: 0,
            gap: (0, 0),
        })
    }

    /// Where a record's id lives and the verdict on it ([`Judged::verdict`]), without
    /// remembering anything: a record is judged first and remembered ([`SequenceTracker::remember`])
    /// only once it is accepted, so an invalid record cannot move the sequence.
    pub fn judge(&self, symbol_idx: usize, record: &Record<'_>) -> Judged {
        let (slot, first, last, _) = Self::position(record);
        let prev = self.last[symbol_idx][slot];
        // Nearly every record: the next id of a trade or aggTrade sequence. What the general way
        // below gives it (in order, no jump, no gap, no candle), without its steps: about 50
        // instructions a trade fewer (bench-results/sbe-trade-bench-s13/). Not depth: its events
        // chain by the venue's rule (`DepthChain`), not by consecutive ids.
        if matches!(record, Record::Trade(_) | Record::AggTrade(_))
            && prev != UNSET
            && prev.checked_add(1) == Some(first)
        {
            return Judged { slot, last, verdict: Verdict::InOrder, candle: None, jump: 0, gap: (0, 0) };
        }
        self.judge_general(symbol_idx, record)
    }

    /// [`SequenceTracker::judge`] of any record, each rule applied.
    fn judge_general(&self, symbol_idx: usize, record: &Record<'_>) -> Judged {
        let (slot, ..) = Self::position(record);
        let prev = self.last[symbol_idx][slot];
        let known = |iv: usize| self.candles[symbol_idx][iv];
        let base = judge_from(prev, known, record, self.per_ms, self.depth_chain);
        if prev == UNSET || base.verdict == Verdict::Duplicate || base.jump <= self.max_jump {
            return base;
        }
        // Implausibly far ahead: does it continue the record quarantined last?
        if let Some(c) = self.candidates[symbol_idx][slot] {
            let next =
                judge_from(c.last, |iv| c.candle.map_or(known(iv), |(_, t)| t), record, self.per_ms, self.depth_chain);
            if next.verdict == Verdict::Duplicate && next.last == c.last {
                // The quarantined record itself again (an overlapping connection).
                return next;
            }
            if next.verdict != Verdict::Duplicate && next.jump <= self.max_jump {
                let (from, missing) = c.gap;
                let (then_from, then_missing) = next.gap;
                return Judged { verdict: Verdict::Confirmed { from, missing, then_from, then_missing }, ..next };
            }
        }
        Judged { verdict: Verdict::Quarantined, ..base }
    }

    /// What `observe` would say, without remembering anything: a record is judged first and
    /// remembered only once it is accepted, so an invalid record cannot move the sequence.
    pub fn peek(&self, symbol_idx: usize, record: &Record<'_>) -> Verdict {
        self.judge(symbol_idx, record).verdict
    }

    /// Judges `record` and remembers it: a quarantined one only as the candidate the next record
    /// may confirm, a duplicate not at all.
    pub fn observe(&mut self, symbol_idx: usize, record: &Record<'_>) -> Verdict {
        let j = self.judge(symbol_idx, record);
        self.remember(symbol_idx, j);
        j.verdict
    }

    /// Remembers a record [`SequenceTracker::judge`] judged for `symbol_idx`, with nothing
    /// remembered for that symbol since (what `observe` does after judging).
    pub fn remember(&mut self, symbol_idx: usize, j: Judged) {
        match j.verdict {
            Verdict::Duplicate => {}
            Verdict::Quarantined => {
                self.candidates[symbol_idx][j.slot] = Some(Candidate { last: j.last, candle: j.candle, gap: j.gap });
            }
            _ => {
                self.last[symbol_idx][j.slot] = j.last;
                if let Some((iv, accounted)) = j.candle {
                    self.candles[symbol_idx][iv] = accounted;
                }
                self.candidates[symbol_idx][j.slot] = None;
            }
        }
    }

    /// The last accepted id of a dense sequence, if any.
    pub fn last(&self, symbol_idx: usize, kind: Dense) -> Option<i64> {
        let v = self.last[symbol_idx][kind as usize];
        (v != UNSET).then_some(v)
    }
}

/// The verdict on `record` if its slot stood at `prev` and a kline interval's candles at
/// `known(interval)`; kline times count `per_ms` units per millisecond, diff-depth events chain
/// by `chain`.
fn judge_from(prev: i64, known: impl Fn(usize) -> i64, record: &Record<'_>, per_ms: i64, chain: DepthChain) -> Judged {
    let (slot, first, last, dense) = SequenceTracker::position(record);
    let jump = match record {
        _ if prev == UNSET => 0,
        Record::DepthUpdate(d) => chain.missing_after(prev, depth_ids(d)),
        _ => ids_between(prev, first),
    };
    let verdict = if prev == UNSET {
        Verdict::InOrder
    } else if last <= prev {
        Verdict::Duplicate
    } else if dense && jump > 0 {
        Verdict::Gap { from: prev + 1, missing: jump }
    } else {
        // For depth, `first < expected <= last` is an event that overlaps what we have: it is
        // applied as a whole (quantities are absolute), so it is in order.
        Verdict::InOrder
    };
    let gap = match verdict {
        Verdict::Gap { from, missing } => (from, missing),
        _ => (0, 0),
    };
    // A time far ahead is an idle hour, not an implausible id: nothing to quarantine.
    let jump = if slot >= MARK { 0 } else { jump };
    let mut judged = Judged { slot, last, verdict, candle: None, jump, gap };
    if let Record::Kline(k) = record {
        let iv = slot - KLINE0;
        // Event times are times: their jump counts in candles, like open times.
        judged.jump = jump / crate::interval::KLINE_INTERVAL_MS[iv].unwrap_or(MONTH_MS).saturating_mul(per_ms);
        if verdict == Verdict::InOrder {
            judge_candle(known(iv), iv, k, per_ms, &mut judged);
        }
    }
    judged
}

/// A diff-depth record's ids, as its venue's chaining rule reads them.
pub fn depth_ids(d: &crate::record::DepthUpdate<'_>) -> DepthIds {
    DepthIds { first: d.first_update_id, last: d.final_update_id, prev_final: d.prev_final_update_id }
}

/// Candle continuity: every candle before this one's should have been published closed.
/// Saturating throughout: open times are wire values, and `-9e18` then `9e18` must neither
/// overflow nor count negative candles.
fn judge_candle(known: i64, iv: usize, k: &crate::record::Kline<'_>, per_ms: i64, judged: &mut Judged) {
    let Some(len) = crate::interval::KLINE_INTERVAL_MS[iv].map(|ms| ms.saturating_mul(per_ms)) else { return };
    let t = k.open_time_ms;
    // Once a candle is seen, the one before it is closed; this one too if the update says so.
    let accounted = if k.closed { t } else { t.saturating_sub(len) };
    if known == UNSET {
        judged.candle = Some((iv, accounted));
        return;
    }
    let next = known.saturating_add(len);
    let missing = t.saturating_sub(next) / len;
    if missing > 0 {
        // Candles `next..t` (open times) never showed their closed update.
        judged.verdict = Verdict::Gap { from: next, missing };
        judged.gap = (next, missing);
        judged.jump = judged.jump.max(missing);
    }
    judged.candle = Some((iv, accounted.max(known)));
}

/// Where a dense sequence stands, read back from Kafka at start (crash recovery), by the rule the
/// live tracker applies: an id implausibly far ahead is a candidate, never the position, until a
/// later live id continues from it.
#[derive(Clone, Copy, Debug)]
pub struct Frontier {
    max_jump: i64,
    last: Option<i64>,
    candidate: Option<i64>,
}

impl Frontier {
    pub fn new(max_jump: i64) -> Frontier {
        Frontier { max_jump: max_jump.max(1), last: None, candidate: None }
    }

    /// A live record's id (published neither backfilled nor quarantined).
    pub fn live(&mut self, id: i64) {
        let Some(last) = self.last else {
            self.last = Some(id);
            return;
        };
        if id <= last || self.candidate == Some(id) {
            return;
        }
        let continues = |from: i64| id > from && ids_between(from, id) <= self.max_jump;
        if continues(last) || self.candidate.is_some_and(continues) {
            self.last = Some(id);
            self.candidate = None;
        } else {
            // Even unflagged (a topic written before quarantine existed), a far jump alone
            // must not seed the sequence.
            self.candidate = Some(id);
        }
    }

    /// A record published flagged `quarantined`: it never moves the position by itself, but the
    /// live record after it may confirm it, as it did when the record was published.
    pub fn quarantined(&mut self, id: i64) {
        if self.last.is_none_or(|last| id > last) {
            self.candidate = Some(id);
        }
    }

    /// The end of what a backfilled record or a gap marker settled. Both only ever cover ids the
    /// live tracker had accepted a record beyond (or refetches of its own records), so they may
    /// raise the position within the bound, but never become a candidate nor clear one.
    pub fn settled(&mut self, id: i64) {
        match self.last {
            None => self.last = Some(id),
            Some(last) if id > last && ids_between(last, id) <= self.max_jump => self.last = Some(id),
            Some(_) => {}
        }
    }

    /// The last id accounted for, if any.
    pub fn last(&self) -> Option<i64> {
        self.last
    }
}
#[cfg(test)]
mod tests;
