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

/// A sequence's fetch waits while its ranges keep coming this close together: ids dropped at a
/// full ring arrive one at a time, and fetched as they come each costs a REST call (25 weight on
/// spot for one trade: the 4,800 budget went in 192 drops, and the rest waited for the next
/// minute). So every fetch of a range that just came is at least this late.
pub const GATHER_QUIET: Duration = Duration::from_millis(200);
/// The longest a sequence's fetch waits for ranges that keep coming, counted from when its oldest
/// range came: a steady trickle costs it at most one call a second. Other sequences are served
/// meanwhile, and a sequence with a page's worth of ids queued does not wait.
pub const GATHER_MAX: Duration = Duration::from_secs(1);

/// The queue is at its bound: publish the range as a gap instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// When a sequence's queued ranges came: the oldest not yet fetched, and the last.
#[derive(Clone, Copy, Debug)]
struct Arrivals {
    first: Instant,
    last: Instant,
}

/// The backfill thread's queue: per sequence, disjoint ranges kept sorted and merged when they
/// overlap or touch; bounded by [`MAX_RANGES_PER_SEQUENCE`] and [`MAX_PENDING_RANGES`] (and one
/// arrival record per sequence with ranges queued).
#[derive(Default)]
pub struct Pending {
    seqs: BTreeMap<Seq, BTreeMap<i64, i64>>,
    ranges: usize,
    /// The sequence served last: the next batch comes from the one after it, so one busy symbol
    /// cannot starve the others.
    cursor: Option<Seq>,
    /// Per sequence still gathering; none (what a fetch left at shutdown): ready at once.
    arrivals: BTreeMap<Seq, Arrivals>,
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
        let fresh = !self.seqs.contains_key(&seq);
        self.insert_range(seq, from, to)?;
        let a = self.arrivals.entry(seq).or_insert(Arrivals { first: now, last: now });
        if fresh {
            a.first = now;
        }
        a.last = now;
        Ok(())
    }

    fn insert_range(&mut self, seq: Seq, from: i64, to: i64) -> Result<(), QueueFull> {
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

    /// Whether `seq` may be fetched at `now`: its ranges stopped coming ([`GATHER_QUIET`]), its
    /// oldest waited [`GATHER_MAX`], or a page (`window` ids) of them is queued.
    fn ready(&self, seq: &Seq, map: &BTreeMap<i64, i64>, window: i64, now: Instant) -> bool {
        let Some(a) = self.arrivals.get(seq) else { return true };
        let span = match (map.first_key_value(), map.last_key_value()) {
            (Some((&lo, _)), Some((_, &hi))) => hi.saturating_sub(lo),
            _ => 0,
        };
        now.saturating_duration_since(a.last) >= GATHER_QUIET
            || now.saturating_duration_since(a.first) >= GATHER_MAX
            || (matches!(seq, Seq::Ids { .. }) && span >= window)
    }

    /// Ranges queued, over all sequences.
    pub fn len(&self) -> usize {
        self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges == 0
    }

    /// The next fetch at `now`: the first range of the next sequence after the last one served
    /// that is ready ([`GATHER_QUIET`], [`GATHER_MAX`]), with the ranges that follow it within
    /// `window` ids (one REST page serves them all, and only the missing ids are published).
    /// `None` when nothing is queued or every sequence queued is still gathering.
    pub fn next_batch(&mut self, window: i64, now: Instant) -> Option<(Seq, Vec<(i64, i64)>)> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let after = self.cursor.map_or(Unbounded, Excluded);
        let before = self.cursor.map_or(Unbounded, Included);
        let seq = self
            .seqs
            .range((after, Unbounded))
            .chain(self.seqs.range((Unbounded, before)))
            .find(|(s, m)| self.ready(s, m, window, now))
            .map(|(s, _)| *s)?;
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
            self.arrivals.remove(&seq);
        } else if let Some(a) = self.arrivals.get_mut(&seq) {
            // What is left gathers afresh (a page's worth of it goes at once).
            a.first = now;
        }
        Some((seq, batch))
    }

    /// Puts back what a fetch left (interrupted by shutdown); not bounded again, as it came out.
    pub fn put_back(&mut self, seq: Seq, ranges: &[(i64, i64)]) {
        for &(a, b) in ranges {
            if a < b && self.insert_range(seq, a, b).is_err() {
                self.seqs.entry(seq).or_default().insert(a, b);
                self.ranges += 1;
            }
        }
    }

    /// Everything queued, emptying the queue.
    pub fn drain(&mut self) -> Vec<(Seq, i64, i64)> {
        let out = self.seqs.iter().flat_map(|(s, m)| m.iter().map(move |(&a, &b)| (*s, a, b))).collect();
        self.seqs.clear();
        self.arrivals.clear();
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
        let later = Instant::now() + GATHER_MAX;
        assert_eq!(p.next_batch(1_000, later), Some((T0, vec![(5, 12), (30, 31)])));
        assert_eq!(p.next_batch(1_000, later), Some((A0, vec![(11, 12)])));
        assert_eq!(p.next_batch(1_000, later), Some((T1, vec![(11, 12)])));
        assert_eq!(p.next_batch(1_000, later), Some((T0, vec![(5_000, 5_001)])));
        assert_eq!(p.next_batch(1_000, later), None);
        assert!(p.is_empty());
    }

    #[test]
    fn a_sequence_waits_for_its_trickle_of_ids_but_not_past_its_bound_nor_holds_the_others() {
        let mut p = Pending::default();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(p.next_batch(1_000, t0), None, "nothing queued");
        // A drop every 20 ms (a full ring at 50 trades a second): T0 waits for more.
        for i in 0..40 {
            p.insert_at(T0, i, i + 1, ms(20 * i as u64)).unwrap();
            assert_eq!(p.next_batch(1_000, ms(20 * i as u64 + 1)), None, "drop {i}: ids still coming");
        }
        // Another sequence's gap, quiet since it came, is served meanwhile.
        p.insert_at(T1, 7, 9, ms(600)).unwrap();
        assert_eq!(p.next_batch(1_000, ms(799)), None, "T1's range came 199 ms ago");
        assert_eq!(p.next_batch(1_000, ms(800)), Some((T1, vec![(7, 9)])), "T1 quiet for GATHER_QUIET");
        assert_eq!(p.next_batch(1_000, ms(801)), None, "T0 still trickling");
        // GATHER_MAX after T0's oldest range came, its fetch goes, ids coming or not.
        p.insert_at(T0, 50, 51, ms(990)).unwrap();
        assert_eq!(p.next_batch(1_000, ms(999)), None);
        assert_eq!(p.next_batch(1_000, ms(1_000)), Some((T0, vec![(0, 40), (50, 51)])), "one fetch for 41 drops");
        // The trickle goes on: the next fetch waits afresh, and not once the ids stop.
        p.insert_at(T0, 60, 61, ms(1_010)).unwrap();
        p.insert_at(T0, 61, 62, ms(1_100)).unwrap();
        assert_eq!(p.next_batch(1_000, ms(1_299)), None);
        assert_eq!(p.next_batch(1_000, ms(1_300)), Some((T0, vec![(60, 62)])), "GATHER_QUIET without a range");
        // A page's worth queued goes at once, and what it left gathers afresh.
        p.insert_at(T0, 100, 1_100, ms(2_000)).unwrap();
        p.insert_at(T0, 1_500, 1_501, ms(2_000)).unwrap();
        assert_eq!(p.next_batch(1_000, ms(2_000)), Some((T0, vec![(100, 1_100)])), "a page of ids: no wait");
        assert_eq!(p.next_batch(1_000, ms(2_199)), None);
        assert_eq!(p.next_batch(1_000, ms(2_200)), Some((T0, vec![(1_500, 1_501)])));
        // What a fetch leaves beyond its page gathers afresh while the trickle goes on.
        let mut q = Pending::default();
        for i in 0..50 {
            q.insert_at(T1, i, i + 1, ms(20 * i as u64)).unwrap();
        }
        q.insert_at(T1, 1_100, 1_101, ms(990)).unwrap();
        assert_eq!(q.next_batch(1_000, ms(990)), Some((T1, vec![(0, 50)])), "a page apart: no wait");
        q.insert_at(T1, 1_101, 1_102, ms(1_000)).unwrap();
        assert_eq!(q.next_batch(1_000, ms(1_100)), None, "the rest waits as if it had just come");
        assert_eq!(q.next_batch(1_000, ms(1_200)), Some((T1, vec![(1_100, 1_102)])));
        // What a fetch left at shutdown is no news: ready at once.
        p.put_back(T0, &[(3_000, 3_001)]);
        assert_eq!(p.next_batch(1_000, ms(2_201)), Some((T0, vec![(3_000, 3_001)])));
        // A range refused at the bound does not make the sequence wait.
        let mut full = Pending::default();
        for i in 0..MAX_RANGES_PER_SEQUENCE as i64 {
            full.insert_at(T0, 2 * i, 2 * i + 1, t0).unwrap();
        }
        assert_eq!(full.insert_at(T0, 10_000, 10_001, ms(150)), Err(QueueFull));
        assert!(full.next_batch(1_000, ms(200)).is_some(), "quiet since t0: the refused range is no arrival");
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
