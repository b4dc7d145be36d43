//! Per-symbol sequence tracking: exchange ids tell duplicates (an overlap after a reconnect or
//! during a connection rotation) from gaps (events that never arrived).
//!
//! Trade ids (`t`) and aggregate trade ids (`a`) increase by one per symbol; diff-depth events
//! chain `U == previous u + 1` (Binance's "how to manage a local order book"). Book-ticker update
//! ids and kline event times only increase (they are not dense), so for them only duplicates are
//! recognised: the overlap of two connections during a rotation publishes each event once.
//! Klines have a sequence of their own: candles follow each other by open time, each ends with a
//! closed (`x: true`) update, and a candle whose closed update never came is a gap (counted in
//! candles, keyed by open time) that REST's `/api/v3/klines` can fill.

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
}

/// Kinds with a dense id sequence (gaps are detectable); the index of their slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dense {
    Trade = 0,
    AggTrade = 1,
    Depth = 2,
}

const BOOK: usize = 3;
/// Klines: one slot per interval (`KLINE_INTERVALS`), keyed by event time.
const KLINE0: usize = 4;
const SLOTS: usize = KLINE0 + crate::binance::stream::KLINE_INTERVALS.len();
const UNSET: i64 = i64::MIN;

const INTERVALS: usize = crate::binance::stream::KLINE_INTERVALS.len();

/// Last accepted id per (symbol, kind). Fixed size: no allocation per message.
pub struct SequenceTracker {
    last: Vec<[i64; SLOTS]>,
    /// Per (symbol, kline interval): open time of the last candle accounted for as closed
    /// (published closed, or requested from REST).
    candles: Vec<[i64; INTERVALS]>,
}

/// A verdict and what remembering the record would change.
struct Judged {
    slot: usize,
    last: i64,
    verdict: Verdict,
    /// `(interval index, open time of the last candle now accounted for)`.
    candle: Option<(usize, i64)>,
}

impl SequenceTracker {
    pub fn new(symbols: usize) -> SequenceTracker {
        SequenceTracker { last: vec![[UNSET; SLOTS]; symbols], candles: vec![[UNSET; INTERVALS]; symbols] }
    }

    /// Starts a dense sequence from what is already published (crash recovery): the next record
    /// is then judged against `last`, so a hole since the previous run shows up as a gap.
    pub fn seed(&mut self, symbol_idx: usize, kind: Dense, last: i64) {
        let slot = &mut self.last[symbol_idx][kind as usize];
        if *slot == UNSET || last > *slot {
            *slot = last;
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

    /// Where a record's id lives and the verdict on it, without remembering anything.
    fn judge(&self, symbol_idx: usize, record: &Record<'_>) -> Judged {
        let (slot, first, last, dense) = match record {
            Record::Trade(t) => (Dense::Trade as usize, t.trade_id, t.trade_id, true),
            Record::AggTrade(a) => (Dense::AggTrade as usize, a.agg_id, a.agg_id, true),
            Record::DepthUpdate(d) => (Dense::Depth as usize, d.first_update_id, d.final_update_id, true),
            Record::BookTicker(b) => (BOOK, b.update_id, b.update_id, false),
            Record::Kline(k) => {
                let iv = crate::binance::stream::KLINE_INTERVALS.iter().position(|i| *i == k.interval).unwrap_or(0);
                (KLINE0 + iv, k.event_time_ms, k.event_time_ms, false)
            }
        };
        let prev = self.last[symbol_idx][slot];
        let verdict = if prev == UNSET {
            Verdict::InOrder
        } else if last <= prev {
            Verdict::Duplicate
        } else if dense && first > prev.saturating_add(1) {
            // Saturating: hostile ids (a negative one, then a huge one) must not overflow.
            Verdict::Gap { from: prev + 1, missing: first.saturating_sub(prev).saturating_sub(1) }
        } else {
            // For depth, `first < expected <= last` is an event that overlaps what we have: it
            // is applied as a whole (quantities are absolute), so it is in order.
            Verdict::InOrder
        };
        let mut judged = Judged { slot, last, verdict, candle: None };
        if let (Record::Kline(k), Verdict::InOrder) = (record, verdict) {
            self.judge_candle(symbol_idx, slot - KLINE0, k, &mut judged);
        }
        judged
    }

    /// Candle continuity: every candle before this one's should have been published closed.
    fn judge_candle(&self, symbol_idx: usize, iv: usize, k: &crate::record::Kline<'_>, judged: &mut Judged) {
        let Some(len) = crate::binance::stream::KLINE_INTERVAL_MS[iv] else { return };
        let t = k.open_time_ms;
        // Once a candle is seen, the one before it is closed; this one too if the update says so.
        let accounted = if k.closed { t } else { t.saturating_sub(len) };
        let known = self.candles[symbol_idx][iv];
        if known == UNSET {
            judged.candle = Some((iv, accounted));
            return;
        }
        let next = known.saturating_add(len);
        if t > next {
            // Candles `next..t` (open times) never showed their closed update.
            judged.verdict = Verdict::Gap { from: next, missing: (t - next) / len };
        }
        judged.candle = Some((iv, accounted.max(known)));
    }

    /// What `observe` would say, without remembering anything: a record is judged first and
    /// remembered only once it is accepted, so an invalid record cannot move the sequence.
    pub fn peek(&self, symbol_idx: usize, record: &Record<'_>) -> Verdict {
        self.judge(symbol_idx, record).verdict
    }

    /// Judges `record` and, unless it is a duplicate, remembers it.
    pub fn observe(&mut self, symbol_idx: usize, record: &Record<'_>) -> Verdict {
        let j = self.judge(symbol_idx, record);
        if j.verdict != Verdict::Duplicate {
            self.last[symbol_idx][j.slot] = j.last;
        }
        if let Some((iv, accounted)) = j.candle {
            self.candles[symbol_idx][iv] = accounted;
        }
        j.verdict
    }

    /// The last accepted id of a dense sequence, if any.
    pub fn last(&self, symbol_idx: usize, kind: Dense) -> Option<i64> {
        let v = self.last[symbol_idx][kind as usize];
        (v != UNSET).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{DepthUpdate, Levels, Side, Trade};

    fn trade(id: i64) -> Record<'static> {
        Record::Trade(Trade {
            symbol: "BTCUSDT",
            trade_id: id,
            price: "1",
            qty: "1",
            side: Side::Buy,
            trade_time_ms: 0,
            event_time_ms: 0,
        })
    }

    fn depth(first: i64, last: i64) -> Record<'static> {
        Record::DepthUpdate(DepthUpdate {
            symbol: "BTCUSDT",
            first_update_id: first,
            final_update_id: last,
            bids: Levels("[]"),
            asks: Levels("[]"),
            event_time_ms: 0,
        })
    }

    #[test]
    fn trades_in_order_duplicates_and_gaps() {
        let mut s = SequenceTracker::new(2);
        let cases = [
            (0, trade(10), Verdict::InOrder),
            (0, trade(11), Verdict::InOrder),
            (0, trade(11), Verdict::Duplicate),
            (0, trade(5), Verdict::Duplicate),
            (0, trade(15), Verdict::Gap { from: 12, missing: 3 }),
            (0, trade(16), Verdict::InOrder),
            // Symbols are independent.
            (1, trade(3), Verdict::InOrder),
            (1, trade(4), Verdict::InOrder),
            (1, trade(90), Verdict::Gap { from: 5, missing: 85 }),
        ];
        for (i, (sym, r, want)) in cases.iter().enumerate() {
            assert_eq!(s.observe(*sym, r), *want, "TC{i}");
        }
        assert_eq!(s.last(0, Dense::Trade), Some(16));
        // Seeding from Kafka after a crash: the next live trade reveals the hole.
        s.seed(1, Dense::Trade, 100);
        assert_eq!(s.observe(1, &trade(104)), Verdict::Gap { from: 101, missing: 3 });
    }

    fn kline(open: i64, closed: bool, e: i64) -> Record<'static> {
        Record::Kline(crate::record::Kline {
            symbol: "BTCUSDT",
            interval: "1s",
            open_time_ms: open,
            close_time_ms: open + 999,
            open: "1",
            high: "1",
            low: "1",
            close: "1",
            volume: "1",
            quote_volume: "1",
            trades: 1,
            taker_buy_volume: "1",
            taker_buy_quote_volume: "1",
            closed,
            first_trade_id: Some(1),
            last_trade_id: Some(1),
            event_time_ms: e,
        })
    }

    #[test]
    fn candles_whose_closed_update_never_came_are_gaps() {
        let mut s = SequenceTracker::new(1);
        let cases = [
            // TC0-2: an open candle, its close, the next candle.
            (kline(10_000, false, 10_500), Verdict::InOrder),
            (kline(10_000, true, 10_999), Verdict::InOrder),
            (kline(11_000, false, 11_500), Verdict::InOrder),
            // TC3: the same event again (a rotation's overlap).
            (kline(11_000, false, 11_500), Verdict::Duplicate),
            // TC4: candle 11 000 never closed, and 12 000 and 13 000 were never seen.
            (kline(14_000, false, 14_100), Verdict::Gap { from: 11_000, missing: 3 }),
            // TC5: the closed update of 14 000 right after its first update.
            (kline(14_000, true, 14_999), Verdict::InOrder),
            // TC6: a closed update two candles on: 15 000 is missing.
            (kline(16_000, true, 16_999), Verdict::Gap { from: 15_000, missing: 1 }),
            (kline(17_000, false, 17_100), Verdict::InOrder),
        ];
        for (i, (r, want)) in cases.iter().enumerate() {
            assert_eq!(s.observe(0, r), *want, "TC{i}");
        }
        // A peek remembers nothing.
        assert_eq!(s.peek(0, &kline(19_000, false, 19_100)), Verdict::Gap { from: 17_000, missing: 2 });
        assert_eq!(s.peek(0, &kline(19_000, false, 19_100)), Verdict::Gap { from: 17_000, missing: 2 });
    }

    #[test]
    fn depth_updates_chain_first_to_previous_final() {
        let mut s = SequenceTracker::new(1);
        assert_eq!(s.observe(0, &depth(157, 160)), Verdict::InOrder);
        assert_eq!(s.observe(0, &depth(161, 165)), Verdict::InOrder);
        assert_eq!(s.observe(0, &depth(150, 165)), Verdict::Duplicate);
        assert_eq!(s.observe(0, &depth(163, 170)), Verdict::InOrder);
        assert_eq!(s.observe(0, &depth(180, 181)), Verdict::Gap { from: 171, missing: 9 });
    }
}
