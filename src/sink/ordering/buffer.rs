//! One sequence's held records for strict ordering: sorted by the first id each accounts for, their
//! bytes copied into one arena (no allocation per record once it has grown), and the memory it
//! takes counted exactly (capacities, not lengths), so the hold's bounds are bounds on memory.

use std::collections::VecDeque;
use std::time::Instant;

use crate::ring::{RecordMeta, RecordView};

/// The arena's first allocation: small, as most holds are a few records behind a short gap.
const MIN_ARENA: usize = 4096;
const MIN_SLOTS: usize = 16;

/// A held record (or gap marker): the ids it accounts for and where its bytes are.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    pub start: i64,
    pub end: i64,
    /// A gap marker (it names ids) rather than a record (it carries one).
    pub gap: bool,
    pub arrived: Instant,
    pub meta: RecordMeta,
    pub enqueue_ns: u64,
    at: usize,
    key_len: usize,
    len: usize,
}

/// What a record to hold is, besides its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Incoming {
    pub start: i64,
    pub end: i64,
    pub gap: bool,
    pub arrived: Instant,
}

#[derive(Default)]
pub struct Buffer {
    /// Sorted by `start` (live records arrive in order: appended; backfilled ones may be inserted).
    held: VecDeque<Held>,
    arena: Vec<u8>,
    /// Bytes of released records still in the arena.
    garbage: usize,
    /// Arrival of the record held longest; `None` when empty or to be worked out again.
    oldest: Option<Instant>,
}

/// The capacity to grow to for `needed`: doubling, within `limit` unless `needed` is beyond it.
fn grow_to(needed: usize, cap: usize, floor: usize, limit: usize) -> usize {
    needed.max(cap.saturating_mul(2).max(floor).min(limit))
}

impl Buffer {
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn front(&self) -> Option<&Held> {
        self.held.front()
    }

    /// Memory taken: the arena's and the index's capacities.
    pub fn mem(&self) -> usize {
        self.arena.capacity() + self.held.capacity() * std::mem::size_of::<Held>()
    }

    /// What [`Buffer::mem`] would be after holding a record of `bytes`, growing within `limit`.
    pub fn mem_with(&self, bytes: usize, limit: usize) -> usize {
        let (cap, live) = (self.arena.capacity(), self.arena.len() - self.garbage);
        let arena = if live + bytes <= cap { cap } else { grow_to(live + bytes, cap, MIN_ARENA, limit) };
        let slot = std::mem::size_of::<Held>();
        let slots = self.held.capacity();
        let slots = if self.held.len() < slots { slots } else { grow_to(slots + 1, slots, MIN_SLOTS, limit / slot) };
        arena + slots * slot
    }

    /// When the record held longest arrived.
    pub fn oldest(&mut self) -> Option<Instant> {
        if self.oldest.is_none() {
            self.oldest = self.held.iter().map(|h| h.arrived).min();
        }
        self.oldest
    }

    /// Holds `rec` in its place by `start`, growing the buffers within `limit` (see
    /// [`Buffer::mem_with`]; the caller checked the bounds).
    pub fn push(&mut self, what: Incoming, rec: &RecordView<'_>, limit: usize) {
        let bytes = rec.key.len() + rec.payload.len();
        if self.arena.len() + bytes > self.arena.capacity() {
            self.compact();
            let (len, cap) = (self.arena.len(), self.arena.capacity());
            if len + bytes > cap {
                self.arena.reserve_exact(grow_to(len + bytes, cap, MIN_ARENA, limit) - len);
            }
        }
        if self.held.len() == self.held.capacity() {
            let slots = self.held.capacity();
            let want = grow_to(slots + 1, slots, MIN_SLOTS, limit / std::mem::size_of::<Held>());
            self.held.reserve_exact(want - self.held.len());
        }
        let at = self.arena.len();
        self.arena.extend_from_slice(rec.key);
        self.arena.extend_from_slice(rec.payload);
        let h = Held {
            start: what.start,
            end: what.end,
            gap: what.gap,
            arrived: what.arrived,
            meta: rec.meta,
            enqueue_ns: rec.enqueue_ns,
            at,
            key_len: rec.key.len(),
            len: bytes,
        };
        // Live records come in id order: the place is almost always the end.
        let place = if self.held.back().is_none_or(|b| b.start <= h.start) {
            self.held.len()
        } else {
            self.held.partition_point(|x| x.start <= h.start)
        };
        self.held.insert(place, h);
        self.oldest = Some(self.oldest.map_or(what.arrived, |o| o.min(what.arrived)));
    }

    /// The held record's bytes, as the sink takes them.
    pub fn view(&self, h: &Held) -> RecordView<'_> {
        let bytes = &self.arena[h.at..h.at + h.len];
        RecordView { meta: h.meta, enqueue_ns: h.enqueue_ns, key: &bytes[..h.key_len], payload: &bytes[h.key_len..] }
    }

    /// Drops the first record (it was published or named); an empty buffer frees its memory.
    pub fn pop_front(&mut self) {
        let Some(h) = self.held.pop_front() else { return };
        self.garbage += h.len;
        if self.held.is_empty() {
            *self = Buffer::default();
        } else if self.oldest == Some(h.arrived) {
            self.oldest = None;
        }
    }

    /// Moves the held bytes to the front of the arena, in place: released records leave holes
    /// (a backfilled record inserted early sits after later ones in the arena, so the index is
    /// walked by position).
    fn compact(&mut self) {
        if self.garbage == 0 {
            return;
        }
        let mut by_position: Vec<usize> = (0..self.held.len()).collect();
        by_position.sort_unstable_by_key(|&i| self.held[i].at);
        let mut to = 0;
        for i in by_position {
            let h = &mut self.held[i];
            self.arena.copy_within(h.at..h.at + h.len, to);
            h.at = to;
            to += h.len;
        }
        self.arena.truncate(to);
        self.garbage = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordType;

    fn rec(id: i64) -> (RecordMeta, Vec<u8>) {
        let meta =
            RecordMeta { kind: RecordType::Trade, flags: 0, symbol_idx: 0, event_time_ms: id, recv_ns: id as u64 };
        (meta, format!(r#"{{"trade_id":{id},"pad":"{}"}}"#, "x".repeat((id % 50) as usize)).into_bytes())
    }

    fn push(b: &mut Buffer, id: i64, limit: usize) {
        let (meta, payload) = rec(id);
        let v = RecordView { meta, enqueue_ns: 7, key: b"KEY", payload: &payload };
        let what = Incoming { start: id, end: id, gap: false, arrived: Instant::now() };
        let predicted = b.mem_with(v.key.len() + v.payload.len(), limit);
        b.push(what, &v, limit);
        assert!(b.mem() <= predicted, "memory as predicted: {} > {predicted}", b.mem());
    }

    #[test]
    fn records_keep_id_order_and_bytes_through_inserts_releases_and_compaction() {
        let mut b = Buffer::default();
        let mut want: Vec<i64> = Vec::new();
        // Live ids in order with holes, then backfilled ids inserted into the holes, releases from
        // the front in between: the arena fragments and compacts.
        for round in 0..20i64 {
            let base = round * 100;
            for id in (base..base + 60).filter(|i| i % 3 != 0) {
                push(&mut b, id, 1 << 20);
                want.push(id);
            }
            for id in (base..base + 60).filter(|i| i % 3 == 0) {
                push(&mut b, id, 1 << 20);
                want.push(id);
            }
            want.sort_unstable();
            for _ in 0..30 {
                let h = *b.front().unwrap();
                assert_eq!(h.start, want.remove(0));
                let v = b.view(&h);
                assert_eq!((v.key, v.payload), (&b"KEY"[..], &rec(h.start).1[..]), "bytes intact");
                b.pop_front();
            }
        }
        assert_eq!(b.len(), want.len());
        while let Some(h) = b.front().copied() {
            assert_eq!(h.start, want.remove(0));
            assert_eq!(b.view(&h).payload, &rec(h.start).1[..]);
            b.pop_front();
        }
        assert_eq!(b.mem(), 0, "an empty buffer frees its memory");
    }

    #[test]
    fn growth_stops_at_the_limit_while_records_fit() {
        let mut b = Buffer::default();
        let limit = 64 * 1024;
        let mut id = 0;
        while b.mem_with(120, limit) <= limit {
            push(&mut b, id, limit);
            id += 1;
        }
        assert!(b.mem() <= limit && b.mem() > limit / 2, "{} of {limit}", b.mem());
        assert!(id > 200, "{id} records");
    }
}
