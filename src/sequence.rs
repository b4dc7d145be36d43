//! Per-symbol sequence tracking: exchange ids tell duplicates (an overlap after a reconnect or
//! during a connection rotation) from gaps (events that never arrived).
//!
//! Trade ids (`t`) and aggregate trade ids (`a`) increase by one per symbol; diff-depth events
//! chain `U == previous u + 1` (Binance's "how to manage a local order book"). Klines repeat by
//! design and bookTicker ids are not dense, so neither is tracked.

use crate::record::Record;

/// What an incoming record is, relative to what was already accepted for its symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Next in sequence (or the first seen, or an untracked kind).
    InOrder,
    /// Already accepted: drop it.
    Duplicate,
    /// Accept it, but `missing` ids before it never arrived (first missing id is `from`).
    Gap { from: i64, missing: i64 },
}

const TRADE: usize = 0;
const AGG: usize = 1;
const DEPTH: usize = 2;
const UNSET: i64 = i64::MIN;

/// Last accepted id per (symbol, tracked kind). Fixed size: no allocation per message.
pub struct SequenceTracker {
    last: Vec<[i64; 3]>,
}

impl SequenceTracker {
    pub fn new(symbols: usize) -> SequenceTracker {
        SequenceTracker {
            last: vec![[UNSET; 3]; symbols],
        }
    }

    /// Judges `record` and, unless it is a duplicate, remembers it.
    pub fn observe(&mut self, symbol_idx: usize, record: &Record<'_>) -> Verdict {
        let (slot, first, last) = match record {
            Record::Trade(t) => (TRADE, t.trade_id, t.trade_id),
            Record::AggTrade(a) => (AGG, a.agg_id, a.agg_id),
            Record::DepthUpdate(d) => (DEPTH, d.first_update_id, d.final_update_id),
            _ => return Verdict::InOrder,
        };
        let prev = &mut self.last[symbol_idx][slot];
        if *prev == UNSET {
            *prev = last;
            return Verdict::InOrder;
        }
        if last <= *prev {
            return Verdict::Duplicate;
        }
        let expected = *prev + 1;
        *prev = last;
        if first > expected {
            Verdict::Gap {
                from: expected,
                missing: first - expected,
            }
        } else {
            // For depth, `first < expected < last` is an event that overlaps what we have: it is
            // applied as a whole (quantities are absolute), so it is in order.
            Verdict::InOrder
        }
    }

    /// The last accepted trade id of a symbol, if any.
    pub fn last_trade_id(&self, symbol_idx: usize) -> Option<i64> {
        let v = self.last[symbol_idx][TRADE];
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
            (
                0,
                trade(15),
                Verdict::Gap {
                    from: 12,
                    missing: 3,
                },
            ),
            (0, trade(16), Verdict::InOrder),
            // Symbols are independent.
            (1, trade(3), Verdict::InOrder),
            (1, trade(4), Verdict::InOrder),
        ];
        for (i, (sym, r, want)) in cases.iter().enumerate() {
            assert_eq!(s.observe(*sym, r), *want, "TC{i}");
        }
        assert_eq!(s.last_trade_id(0), Some(16));
    }

    #[test]
    fn depth_updates_chain_first_to_previous_final() {
        let mut s = SequenceTracker::new(1);
        assert_eq!(s.observe(0, &depth(157, 160)), Verdict::InOrder);
        assert_eq!(s.observe(0, &depth(161, 165)), Verdict::InOrder);
        assert_eq!(s.observe(0, &depth(150, 165)), Verdict::Duplicate);
        assert_eq!(s.observe(0, &depth(163, 170)), Verdict::InOrder);
        assert_eq!(
            s.observe(0, &depth(180, 181)),
            Verdict::Gap {
                from: 171,
                missing: 9
            }
        );
    }
}
