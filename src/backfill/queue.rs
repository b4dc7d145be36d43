//! The backfill thread's own queue, bounded and coalescing ranges per sequence. Jobs reach it
//! over the channel of [`crate::handoff::jobs`] (its senders never block); whatever does not fit
//! here is published as a gap at once. Memory bound: [`Pending`] holds at most
//! [`MAX_PENDING_RANGES`] ranges (under 64 bytes each with the map's nodes, 4 MiB).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::handoff::jobs::Seq;
// The channel's ends and limits, where the backfill's callers have always found them.
pub use crate::handoff::jobs::{channel, Job, JobReceiver, JobSender, CHANNEL_JOBS};

/// Distinct ranges queued per sequence. Each costs at least one REST call: 1,024 historicalTrades
/// calls are 25,600 weight, over four minutes of Binance's budget, so a longer queue would only
/// grow stale; what does not fit is published as a gap at once.
pub const MAX_RANGES_PER_SEQUENCE: usize = 1_024;
/// Distinct ranges queued over all sequences.
pub const MAX_PENDING_RANGES: usize = 65_536;

/// A fetch waits while ranges keep coming this close together: ids dropped at a full ring
/// arrive one at a time, and fetched as they come each costs a REST call (25 weight on spot for
/// one trade: the 4,800 budget went in 192 drops, and the rest waited for the next minute).
pub const GATHER_QUIET: Duration = Duration::from_millis(200);
/// The longest a fetch waits for ranges that keep coming: the ids at the start of the queue are
/// fetched at most this late, and a steady trickle costs at most one call a second.
pub const GATHER_MAX: Duration = Duration::from_secs(1);

/// The queue is at its bound: publish the range as a gap instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// The backfill thread's queue: per sequence, disjoint ranges kept sorted and merged when they
/// overlap or touch; bounded by [`MAX_RANGES_PER_SEQUENCE`] and [`MAX_PENDING_RANGES`].
#[derive(Default)]
pub struct Pending {
    seqs: BTreeMap<Seq, BTreeMap<i64, i64>>,
    ranges: usize,
    /// The sequence served last: the next batch comes from the one after it, so one busy symbol
    /// cannot starve the others.
    cursor: Option<Seq>,
    /// When a range last came in ([`Pending::gathering`]).
    last_insert: Option<Instant>,
    /// When the next fetch began to wait for more ranges.
    holding_since: Option<Instant>,
}

impl Pending {
    /// Adds `from..to`, merged with what it overlaps or touches. `Err` when it would be a new
    /// range past the bounds: the caller publishes it as a gap.
    pub fn insert(&mut self, seq: Seq, from: i64, to: i64) -> Result<(), QueueFull> {
        self.insert_at(seq, from, to, Instant::now())
    }

    /// [`Pending::insert`] of a range that came at `now`.
    pub fn insert_at(&mut self, seq: Seq, from: i64, to: i64, now: Instant) -> Result<(), QueueFull> {
        if from >= to {
            return Ok(());
        }
        self.last_insert = Some(now);
        let full = self.ranges >= MAX_PENDING_RANGES;
        let map = self.seqs.entry(seq).or_default();
        let (mut lo, mut hi) = (from, to);
        let touching: Vec<(i64, i64)> =
            map.range(..=to).rev().take_while(|(_, &end)| end >= from).map(|(&a, &b)| (a, b)).collect();
        if touching.is_empty() && (full || map.len() >= MAX_RANGES_PER_SEQUENCE) {
            if map.is_empty() {
                self.seqs.remove(&seq);
            }
            return Err(QueueFull);
        }
        for (a, b) in &touching {
            map.remove(a);
            lo = lo.min(*a);
            hi = hi.max(*b);
        }
        map.insert(lo, hi);
        self.ranges = self.ranges + 1 - touching.len();
        Ok(())
    }

    /// Whether the next fetch should wait, at `now`, for more ranges: something is queued, a
    /// range came within [`GATHER_QUIET`], and this fetch has not waited [`GATHER_MAX`] yet.
    pub fn gathering(&mut self, now: Instant) -> bool {
        let coming = self.last_insert.is_some_and(|t| now.saturating_duration_since(t) < GATHER_QUIET);
        if self.is_empty() || !coming {
            self.holding_since = None;
            return false;
        }
        let since = *self.holding_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= GATHER_MAX {
            // Fetch now; the fetch after it waits afresh.
            self.holding_since = None;
            return false;
        }
        true
    }

    /// Ranges queued, over all sequences.
    pub fn len(&self) -> usize {
        self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges == 0
    }

    /// The next fetch: the first range of the sequence after the last one served, with the
    /// ranges that follow it within `window` ids (one REST page serves them all, and only the
    /// missing ids are published).
    pub fn next_batch(&mut self, window: i64) -> Option<(Seq, Vec<(i64, i64)>)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let after = self.cursor.map_or(Unbounded, Excluded);
        let seq = self.seqs.range((after, Unbounded)).next().or_else(|| self.seqs.iter().next()).map(|(s, _)| *s)?;
        self.cursor = Some(seq);
        let map = self.seqs.get_mut(&seq)?;
        let mut batch: Vec<(i64, i64)> = Vec::new();
        while let Some((&a, &b)) = map.iter().next() {
            let start = batch.first().map_or(a, |r| r.0);
            if !batch.is_empty() && (matches!(seq, Seq::Candles { .. }) || b.saturating_sub(start) > window) {
                break;
            }
            map.remove(&a);
            batch.push((a, b));
        }
        self.ranges -= batch.len();
        if map.is_empty() {
            self.seqs.remove(&seq);
        }
        Some((seq, batch))
    }

    /// Puts back what a fetch left (interrupted by shutdown); not bounded again, as it came out.
    pub fn put_back(&mut self, seq: Seq, ranges: &[(i64, i64)]) {
        // Not news: what a fetch left does not make the next one wait.
        let last = self.last_insert;
        for &(a, b) in ranges {
            if self.insert(seq, a, b).is_err() {
                self.seqs.entry(seq).or_default().insert(a, b);
                self.ranges += 1;
            }
        }
        self.last_insert = last;
    }

    /// Everything queued, emptying the queue.
    pub fn drain(&mut self) -> Vec<(Seq, i64, i64)> {
        let out = self.seqs.iter().flat_map(|(s, m)| m.iter().map(move |(&a, &b)| (*s, a, b))).collect();
        self.seqs.clear();
        self.ranges = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequence::Dense;

    const T0: Seq = Seq::Ids { symbol_idx: 0, kind: Dense::Trade };
    const T1: Seq = Seq::Ids { symbol_idx: 1, kind: Dense::Trade };
    const A0: Seq = Seq::Ids { symbol_idx: 0, kind: Dense::AggTrade };

    #[test]
    fn ranges_merge_when_they_touch_and_batch_within_a_page() {
        let mut p = Pending::default();
        let cases: &[(Seq, i64, i64)] = &[
            (T0, 10, 11),
            (T0, 11, 12), // TC1: adjacent
            (T0, 5, 8),
            (T0, 7, 10), // TC3: overlaps 5..8, touches 10..12: all one
            (T0, 30, 31),
            (T0, 5_000, 5_001), // TC5: beyond a page from 5
            (T1, 11, 12),
            (A0, 11, 12),
            (T0, 20, 20), // TC8: empty
        ];
        for &(s, a, b) in cases {
            p.insert(s, a, b).unwrap();
        }
        assert_eq!(p.len(), 5);
        // Round robin over the sequences; within one, ranges within a page share a fetch.
        assert_eq!(p.next_batch(1_000), Some((T0, vec![(5, 12), (30, 31)])));
        assert_eq!(p.next_batch(1_000), Some((A0, vec![(11, 12)])));
        assert_eq!(p.next_batch(1_000), Some((T1, vec![(11, 12)])));
        assert_eq!(p.next_batch(1_000), Some((T0, vec![(5_000, 5_001)])));
        assert_eq!(p.next_batch(1_000), None);
        assert!(p.is_empty());
    }

    #[test]
    fn a_fetch_waits_for_a_trickle_of_ids_but_not_past_its_bound() {
        let mut p = Pending::default();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert!(!p.gathering(t0), "nothing queued: nothing to wait for");
        // A drop every 20 ms (a full ring at 50 trades a second): the fetch waits for more.
        for i in 0..40 {
            p.insert_at(T0, i, i + 1, ms(20 * i as u64)).unwrap();
            assert!(p.gathering(ms(20 * i as u64 + 1)), "drop {i}: ids still coming");
        }
        // Past GATHER_MAX from the first wait (1 ms), the fetch goes, ids coming or not.
        p.insert_at(T0, 50, 51, ms(1_000)).unwrap();
        assert!(p.gathering(ms(1_000)));
        assert!(!p.gathering(ms(1_001)), "waited GATHER_MAX: fetch");
        // The fetch after it waits afresh while ids still come, and not once they stop.
        assert!(p.gathering(ms(1_002)));
        assert!(p.gathering(ms(1_199)));
        assert!(!p.gathering(ms(1_200)), "GATHER_QUIET without a range: fetch");
        assert_eq!(p.next_batch(1_000), Some((T0, vec![(0, 40), (50, 51)])), "one fetch for the trickle");
        assert!(!p.gathering(ms(1_201)), "an empty queue waits for nothing");
        // What a fetch left (shutdown) is not news: it does not hold the next fetch.
        p.put_back(T0, &[(60, 61)]);
        assert!(!p.gathering(ms(1_300)));
        let mut fresh = Pending::default();
        fresh.put_back(T0, &[(60, 61)]);
        assert!(!fresh.gathering(Instant::now()));
    }

    #[test]
    fn the_queue_is_bounded_per_sequence_and_in_total() {
        let mut p = Pending::default();
        // A gap on every other trade: non-adjacent single ids.
        let mut refused = 0;
        for i in 0..(MAX_RANGES_PER_SEQUENCE as i64 + 100) {
            if p.insert(T0, 2 * i, 2 * i + 1).is_err() {
                refused += 1;
            }
        }
        assert_eq!((p.len(), refused), (MAX_RANGES_PER_SEQUENCE, 100));
        // Full, but an id touching a queued range still merges in; another sequence has room.
        assert!(p.insert(T0, 1, 2).is_ok());
        assert_eq!(p.len(), MAX_RANGES_PER_SEQUENCE - 1);
        assert!(p.insert(T1, 0, 1).is_ok());
        let mut total = Pending::default();
        let mut n = 0u16;
        while total.len() < MAX_PENDING_RANGES {
            let s = Seq::Ids { symbol_idx: n / 2, kind: if n % 2 == 0 { Dense::Trade } else { Dense::AggTrade } };
            for i in 0..MAX_RANGES_PER_SEQUENCE as i64 {
                let _ = total.insert(s, 2 * i, 2 * i + 1);
            }
            n += 1;
        }
        assert_eq!(total.insert(Seq::Ids { symbol_idx: 9_999, kind: Dense::Trade }, 0, 1), Err(QueueFull));
        assert_eq!(total.drain().len(), MAX_PENDING_RANGES);
        assert!(total.is_empty());
    }
}
