//! How one diff-depth event follows another, by the venue's rule (its "how to manage a local
//! order book"), for the sequence tracker and the in-process books alike. A venue names its rule
//! as data ([`crate::venue::rest::RestApi::depth_chain`]); the rules are plain integers here, so
//! either side applies them without knowing the venue.

/// A venue's diff-depth chaining rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DepthChain {
    /// Spot: an event continues the last when its first id `U` is the last `u + 1` (`U` beyond it
    /// is a gap); on a snapshot `L`, events with `u <= L` are already in it and the first applied
    /// has `U <= L + 1 <= u` (README §4.6, the 2025-11-12 rule).
    #[default]
    FirstFollowsFinal,
    /// USD-M futures: an event continues the last when its `pu` ("final update id in last
    /// stream") is the last `u`; `U` need not be `u + 1`. On a snapshot `L`: events with
    /// `u < L` are dropped and the first applied has `U <= L <= u`; then every `pu` must be the
    /// previous `u`, else the book is rebuilt from a new snapshot (README §6).
    PrevFinal,
}

/// What a diff-depth event is to a book (or sequence) standing at update id `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepthStep {
    /// Already in: pass it over (published, the book unchanged).
    Stale,
    /// Continues: apply it, the book then stands at its `u`.
    Apply,
    /// Events between are missing: the book is broken.
    Gap,
}

/// One event's ids: `U`, `u`, and `pu` where the venue sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthIds {
    pub first: i64,
    pub last: i64,
    pub prev_final: Option<i64>,
}

impl DepthChain {
    /// The step for event `e` on a book at `id`; `seeded`: `id` is a snapshot's `lastUpdateId`
    /// and no event was applied on it yet (the start rule).
    pub fn step(self, id: i64, seeded: bool, e: DepthIds) -> DepthStep {
        match self {
            DepthChain::FirstFollowsFinal => {
                if e.last <= id {
                    DepthStep::Stale
                } else if e.first > id.saturating_add(1) {
                    DepthStep::Gap
                } else {
                    DepthStep::Apply
                }
            }
            DepthChain::PrevFinal if seeded => {
                // `u == L` is applied, not dropped: the documented rule drops only `u < L`, and
                // quantities are absolute, so re-applying what the snapshot holds changes nothing.
                if e.last < id {
                    DepthStep::Stale
                } else if e.first <= id || e.prev_final == Some(id) {
                    // `pu == L`: the event right after the snapshot, when the one ending at `L`
                    // was never buffered.
                    DepthStep::Apply
                } else {
                    DepthStep::Gap
                }
            }
            DepthChain::PrevFinal => {
                if e.last <= id {
                    DepthStep::Stale
                } else if e.prev_final == Some(id) {
                    DepthStep::Apply
                } else {
                    // A `pu` past `id` (events lost), before it (another series), or none (not a
                    // futures event): the chain is broken either way.
                    DepthStep::Gap
                }
            }
        }
    }

    /// Whether a snapshot at `l` is older than the first buffered event `e` (Binance's "go back
    /// to step 3": fetch another).
    pub fn snapshot_too_old(self, l: i64, e: DepthIds) -> bool {
        match self {
            DepthChain::FirstFollowsFinal => e.first > l.saturating_add(1),
            DepthChain::PrevFinal => e.first > l && e.prev_final != Some(l),
        }
    }

    /// For the sequence tracker, which has no snapshot: the first id missing after `prev` (the
    /// last accepted `u`) and how many ids are missing before `e`, `0` when none is. Under
    /// `PrevFinal` what is missing is `prev + 1 ..= pu`; an event whose `pu` is before `prev`
    /// overlaps what was accepted (nothing missing; a book judges it by [`DepthChain::step`]).
    pub fn missing_after(self, prev: i64, e: DepthIds) -> i64 {
        match (self, e.prev_final) {
            (DepthChain::PrevFinal, Some(pu)) => pu.saturating_sub(prev).max(0),
            _ => super::ids_between(prev, e.first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(first: i64, last: i64, pu: i64) -> DepthIds {
        DepthIds { first, last, prev_final: Some(pu) }
    }

    /// README §6 / Binance's futures procedure, step by step, on a snapshot `lastUpdateId` 100,
    /// then a broken `pu` and a resync on a new snapshot.
    #[test]
    fn futures_books_follow_the_documented_procedure_and_resync_after_a_broken_pu() {
        let c = DepthChain::PrevFinal;
        let l = 100;
        // Buffered: (U, u, pu). U jumps past pu + 1 as futures ids do.
        let buffered = [ids(80, 95, 79), ids(97, 99, 95), ids(99, 103, 99), ids(106, 110, 103), ids(115, 118, 110)];
        assert!(!c.snapshot_too_old(l, buffered[0]), "the buffer starts before the snapshot");
        let (mut id, mut seeded, mut applied) = (l, true, Vec::new());
        for e in buffered {
            match c.step(id, seeded, e) {
                DepthStep::Stale => {}
                DepthStep::Apply => {
                    applied.push(e.last);
                    id = e.last;
                    seeded = false;
                }
                DepthStep::Gap => panic!("{e:?} on {id}"),
            }
        }
        // "Drop any event where u is < lastUpdateId"; the first applied has U <= 100 <= u.
        assert_eq!(applied, [103, 110, 118]);
        // A `pu` that is not the previous `u` breaks the book, even when `U` is `u + 1`.
        assert_eq!(c.step(118, false, ids(119, 121, 117)), DepthStep::Gap);
        assert_eq!(c.step(118, false, ids(125, 130, 120)), DepthStep::Gap, "events 119..=120 lost");
        assert_eq!(c.step(118, false, DepthIds { first: 119, last: 121, prev_final: None }), DepthStep::Gap);
        // Resync: a snapshot older than the first event held since is refused ...
        let held = ids(125, 130, 120);
        assert!(c.snapshot_too_old(119, held));
        // ... one at or past its `U` (or at its `pu`) starts the book again.
        assert!(!c.snapshot_too_old(127, held));
        assert!(!c.snapshot_too_old(120, held));
        assert_eq!(c.step(127, true, held), DepthStep::Apply);
        assert_eq!(c.step(120, true, held), DepthStep::Apply);
        assert_eq!(c.step(131, true, held), DepthStep::Stale);
        assert_eq!(c.step(130, true, held), DepthStep::Apply, "u == lastUpdateId is applied, not dropped");
        assert_eq!(c.step(130, false, ids(131, 140, 130)), DepthStep::Apply);
    }

    fn depth(first: i64, last: i64, pu: i64) -> crate::record::Record<'static> {
        crate::record::Record::DepthUpdate(crate::record::DepthUpdate {
            exchange: "binance-usdm",
            symbol: "BTCUSDT",
            first_update_id: first,
            final_update_id: last,
            bids: crate::record::Levels("[]"),
            asks: crate::record::Levels("[]"),
            event_time_ms: 0,
            prev_final_update_id: Some(pu),
            transaction_time_ms: Some(0),
        })
    }

    #[test]
    fn the_tracker_chains_futures_diffs_by_pu_and_counts_what_is_missing_up_to_it() {
        use crate::sequence::{SequenceTracker, Verdict};
        let mut s = SequenceTracker::new(1);
        s.set_depth_chain(DepthChain::PrevFinal);
        assert_eq!(s.observe(0, &depth(99, 103, 99)), Verdict::InOrder);
        assert_eq!(s.observe(0, &depth(106, 110, 103)), Verdict::InOrder, "U skips ids, pu continues");
        assert_eq!(s.observe(0, &depth(99, 103, 99)), Verdict::Duplicate);
        assert_eq!(s.observe(0, &depth(115, 118, 110)), Verdict::InOrder);
        assert_eq!(s.observe(0, &depth(125, 130, 120)), Verdict::Gap { from: 119, missing: 2 });
        assert_eq!(s.last(0, crate::sequence::Dense::Depth), Some(130));
        // Spot's rule on the same events: a gap wherever U is not u + 1.
        let mut spot = SequenceTracker::new(1);
        assert_eq!(spot.observe(0, &depth(99, 103, 99)), Verdict::InOrder);
        assert_eq!(spot.observe(0, &depth(106, 110, 103)), Verdict::Gap { from: 104, missing: 2 });
    }

    #[test]
    fn spot_keeps_its_rule_whatever_pu_says() {
        let c = DepthChain::FirstFollowsFinal;
        assert_eq!(c.step(160, false, ids(161, 165, 0)), DepthStep::Apply);
        assert_eq!(c.step(160, true, ids(157, 160, 0)), DepthStep::Stale);
        assert_eq!(c.step(160, true, ids(157, 162, 0)), DepthStep::Apply);
        assert_eq!(c.step(160, false, ids(162, 165, 160)), DepthStep::Gap, "U > id + 1, pu ignored");
        assert!(c.snapshot_too_old(100, ids(102, 103, 0)));
        assert!(!c.snapshot_too_old(100, ids(101, 103, 0)));
    }

    #[test]
    fn missing_ids_count_from_pu_on_futures_and_saturate() {
        assert_eq!(DepthChain::PrevFinal.missing_after(110, ids(125, 130, 120)), 10);
        assert_eq!(DepthChain::PrevFinal.missing_after(110, ids(125, 130, 110)), 0);
        assert_eq!(DepthChain::PrevFinal.missing_after(110, ids(105, 130, 104)), 0, "an overlap");
        assert_eq!(DepthChain::PrevFinal.missing_after(i64::MIN, ids(0, 1, i64::MAX)), i64::MAX);
        assert_eq!(DepthChain::FirstFollowsFinal.missing_after(110, ids(125, 130, 120)), 14);
    }
}
