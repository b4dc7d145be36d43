//! The L2 order book of one symbol, kept in the process so that `depth_snapshot` records can be
//! published at an exact update id with no REST weight (`sink::books` keeps one per depth symbol
//! and decides when).
//!
//! # Decisions
//!
//! - **Where it runs: the producer thread.** Every record bound for Kafka passes that thread in
//!   the order it is published, so a snapshot written there sits between two diffs at exactly the
//!   id it names, in the same partition (same key): the consumer contract holds by construction.
//!   On the event-loop thread the same upkeep would cost the loop's loss-free rate (a map update
//!   per level, a 10,000-level snapshot encoded between two frames); on a thread of its own its
//!   snapshots would need a merge back into the producer's order. The `pipeline` benchmark's
//!   `pipeline_depth` group measures the pipeline with and without it in one run: the upkeep
//!   makes the producer the slower stage for depth frames alone (README, "Order book"), at a
//!   rate far above what Binance sends (10 diffs a second per symbol).
//! - **Keys, not strings.** A level is found by [`level::Key`], the price as a fixed-point
//!   integer, so `"0.0024"` and `"0.00240000"` are one level; it keeps the texts the venue sent
//!   ([`level::Text`], inline) and publishes them unchanged.
//! - **No allocation per message.** Each side is a hash map preallocated once, when the symbol is
//!   first seeded, for `2 × levels` entries; it never grows: past half its table's capacity (at
//!   least `levels`) the side is trimmed back to its best `levels`, in one pass (amortized O(1)
//!   per level). Below half, the map's rehashes happen in place. The snapshot's sort runs in a
//!   scratch vector the caller keeps. SipHash, not a fast hash: prices are wire values, and a
//!   peer choosing colliding keys must not make a lookup linear.
//! - **Bounded.** A side holds at most about twice `levels` levels (the table's half); snapshots
//!   carry the best `levels` a side, as Binance's own REST snapshot does (`limit`). Memory per
//!   symbol is stated in README ("Order book"), measured by `tests/book_memory.rs`.
//! - **Tolerant where Binance says so.** Removing a level the book does not have is normal (a
//!   level outside the snapshot's depth); a zero quantity in any padding removes.

pub mod diff;
pub mod level;

use std::collections::HashMap;

pub use level::{Key, Level, LevelError, Text};

/// Which side of the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Bid,
    Ask,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Bid => "bid",
            Side::Ask => "ask",
        }
    }

    /// Best first.
    fn order(self, a: Key, b: Key) -> std::cmp::Ordering {
        match self {
            Side::Bid => b.cmp(&a),
            Side::Ask => a.cmp(&b),
        }
    }
}

struct Levels {
    side: Side,
    map: HashMap<Key, Level>,
    /// Past this many levels the side is trimmed back to `keep`.
    max: usize,
    keep: usize,
    /// Keys, for a trim's selection: allocated with the map.
    scratch: Vec<Key>,
}

impl Levels {
    fn new(side: Side, keep: usize) -> Levels {
        let map = HashMap::with_capacity(2 * keep);
        // A map fuller than half its capacity could rehash into a new table (hashbrown rehashes
        // in place only below half); trimming at the half keeps it in its first allocation.
        let max = (map.capacity() / 2).max(keep);
        Levels { side, map, max, keep, scratch: Vec::with_capacity(max + 1) }
    }

    /// Sets the level at `price` to `qty` (zero removes it). Returns how many far levels a trim
    /// dropped.
    fn set(&mut self, price: &str, qty: &str) -> Result<usize, LevelError> {
        let key = level::key(price)?;
        if level::is_zero(qty)? {
            self.map.remove(&key);
            return Ok(0);
        }
        let lv = Level { price: Text::new(price)?, qty: Text::new(qty)? };
        self.map.insert(key, lv);
        Ok(if self.map.len() > self.max { self.trim() } else { 0 })
    }

    /// Drops every level beyond the best `keep`.
    fn trim(&mut self) -> usize {
        let side = self.side;
        self.scratch.clear();
        self.scratch.extend(self.map.keys().copied());
        if self.scratch.len() <= self.keep {
            return 0;
        }
        self.scratch.select_nth_unstable_by(self.keep, |a, b| side.order(*a, *b));
        let worst = self.scratch.len() - self.keep;
        for k in &self.scratch[self.keep..] {
            self.map.remove(k);
        }
        worst
    }

    /// The best `keep` levels, best first, into `out` (cleared first).
    fn best(&self, out: &mut Vec<(Key, Level)>) {
        out.clear();
        out.extend(self.map.iter().map(|(k, v)| (*k, *v)));
        let side = self.side;
        if out.len() > self.keep {
            out.select_nth_unstable_by(self.keep, |a, b| side.order(a.0, b.0));
            out.truncate(self.keep);
        }
        out.sort_unstable_by(|a, b| side.order(a.0, b.0));
    }
}

/// One symbol's book: its levels and the last update id (and event time) they include.
pub struct Book {
    bids: Levels,
    asks: Levels,
    last_update_id: i64,
    /// Event time of the last diff applied; `None` right after a seed (REST sends none).
    event_time_ms: Option<i64>,
    /// Far levels dropped to stay within bounds, since the book was made.
    trimmed: u64,
}

/// Why a diff or a seed could not be applied: the book no longer matches the venue's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("{0}")]
    Level(#[from] LevelError),
    #[error("the level arrays are not [[price, qty], ...] as encoded")]
    Shape,
}

impl From<diff::Shape> for BookError {
    fn from(_: diff::Shape) -> Self {
        BookError::Shape
    }
}

impl BookError {
    pub fn reason(self) -> &'static str {
        match self {
            BookError::Level(e) => e.reason(),
            BookError::Shape => "shape",
        }
    }
}

impl Book {
    /// An empty book keeping the best `levels` levels a side (at least 1); allocates both sides'
    /// tables, once.
    pub fn new(levels: usize) -> Book {
        let keep = levels.max(1);
        Book {
            bids: Levels::new(Side::Bid, keep),
            asks: Levels::new(Side::Ask, keep),
            last_update_id: 0,
            event_time_ms: None,
            trimmed: 0,
        }
    }

    pub fn last_update_id(&self) -> i64 {
        self.last_update_id
    }

    pub fn event_time_ms(&self) -> Option<i64> {
        self.event_time_ms
    }

    /// Levels per side now.
    pub fn len(&self, side: Side) -> usize {
        self.side(side).map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bids.map.is_empty() && self.asks.map.is_empty()
    }

    /// Far levels dropped to stay within bounds, since the book was made.
    pub fn trimmed(&self) -> u64 {
        self.trimmed
    }

    /// The most levels a side holds before it is trimmed.
    pub fn max_levels(&self) -> usize {
        self.bids.max
    }

    fn side(&self, side: Side) -> &Levels {
        match side {
            Side::Bid => &self.bids,
            Side::Ask => &self.asks,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut Levels {
        match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        }
    }

    /// Sets one level (`qty` zero removes it; removing an unknown level is fine).
    pub fn set(&mut self, side: Side, price: &str, qty: &str) -> Result<(), LevelError> {
        let dropped = self.side_mut(side).set(price, qty)?;
        self.trimmed += dropped as u64;
        Ok(())
    }

    /// Replaces the whole book with a snapshot at `last_update_id`. On error the book is left
    /// empty (and must be seeded again).
    pub fn seed<'s>(
        &mut self,
        last_update_id: i64,
        bids: impl IntoIterator<Item = (&'s str, &'s str)>,
        asks: impl IntoIterator<Item = (&'s str, &'s str)>,
    ) -> Result<(), BookError> {
        self.bids.map.clear();
        self.asks.map.clear();
        self.last_update_id = last_update_id;
        self.event_time_ms = None;
        let filled = (|| {
            for (p, q) in bids {
                self.set(Side::Bid, p, q)?;
            }
            for (p, q) in asks {
                self.set(Side::Ask, p, q)?;
            }
            Ok::<_, BookError>(())
        })();
        if filled.is_err() {
            self.bids.map.clear();
            self.asks.map.clear();
        }
        filled
    }

    /// Applies one diff's levels (quantities are absolute) and moves the book to its final id.
    /// The caller has checked that it continues the book (`U <= id + 1 <= u`). On error the book
    /// is partly updated: the caller discards it.
    pub fn apply(&mut self, d: &diff::Diff<'_>) -> Result<(), BookError> {
        let event_time_ms = d.levels(|bid, p, q| {
            let side = if bid { Side::Bid } else { Side::Ask };
            self.set(side, p, q).map_err(BookError::from)
        })?;
        self.last_update_id = d.final_update_id;
        self.event_time_ms = Some(event_time_ms);
        Ok(())
    }

    /// The best `levels` of `side`, best first, into `out` (a scratch vector the caller keeps,
    /// so that a snapshot allocates nothing once it has grown).
    pub fn best(&self, side: Side, out: &mut Vec<(Key, Level)>) {
        self.side(side).best(out);
    }

    /// Appends this book's levels as a JSON field value, `[["p","q"],...]` best first (at most
    /// the `levels` the book keeps); `scratch` as for [`Book::best`].
    pub fn write_levels(&self, side: Side, out: &mut Vec<u8>, scratch: &mut Vec<(Key, Level)>) {
        self.best(side, scratch);
        out.push(b'[');
        for (i, (_, l)) in scratch.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"[\"");
            out.extend_from_slice(l.price.as_bytes());
            out.extend_from_slice(b"\",\"");
            out.extend_from_slice(l.qty.as_bytes());
            out.extend_from_slice(b"\"]");
        }
        out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(book: &Book, side: Side) -> Vec<(String, String)> {
        let mut s = Vec::new();
        book.best(side, &mut s);
        s.iter().map(|(_, l)| (l.price.as_str().to_string(), l.qty.as_str().to_string())).collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn seeded_then_updated_best_first_with_the_texts_sent() {
        let mut b = Book::new(10);
        b.seed(100, [("4.00000000", "431.00000000"), ("3.9", "1")], [("4.00000200", "12.00000000")]).unwrap();
        let payload = br#"{"type":"depth_update","exchange":"binance","symbol":"X","first_update_id":101,"final_update_id":103,"bids":[["4.0","2"],["3.90000000","0.00000000"],["1","0"]],"asks":[["4.1","5"]],"event_time_ms":7,"recv_time_ns":1}"#;
        b.apply(&diff::read(payload).unwrap()).unwrap();
        assert_eq!(b.last_update_id(), 103);
        assert_eq!(b.event_time_ms(), Some(7));
        // "4.0" updates "4.00000000" in place (one level), keeping the text sent last; the
        // unknown "1" is removed without complaint.
        assert_eq!(texts(&b, Side::Bid), pairs(&[("4.0", "2")]));
        assert_eq!(texts(&b, Side::Ask), pairs(&[("4.00000200", "12.00000000"), ("4.1", "5")]));
        let mut out = Vec::new();
        b.write_levels(Side::Ask, &mut out, &mut Vec::new());
        assert_eq!(out, br#"[["4.00000200","12.00000000"],["4.1","5"]]"#);
    }

    #[test]
    fn a_side_past_its_bound_keeps_its_best_levels() {
        let mut b = Book::new(3);
        let max = b.max_levels();
        assert!(max >= 3);
        for i in 1..=(max + 1) {
            b.set(Side::Bid, &i.to_string(), "1").unwrap();
            b.set(Side::Ask, &(1000 + i).to_string(), "1").unwrap();
        }
        assert_eq!(b.len(Side::Bid), 3, "trimmed once past {max}");
        assert_eq!(b.trimmed(), 2 * (max as u64 + 1 - 3));
        let top = |s| texts(&b, s).into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        let n = max + 1;
        assert_eq!(top(Side::Bid), [n, n - 1, n - 2].map(|i| i.to_string()));
        assert_eq!(top(Side::Ask), ["1001", "1002", "1003"]);
    }

    #[test]
    fn snapshots_carry_the_best_levels_only() {
        let mut b = Book::new(2);
        b.seed(1, [("1", "1"), ("3", "1"), ("2", "1")], []).unwrap();
        assert_eq!(b.len(Side::Bid), 3, "held: within the bound");
        assert_eq!(texts(&b, Side::Bid), pairs(&[("3", "1"), ("2", "1")]));
    }

    #[test]
    fn a_bad_level_is_refused_and_a_bad_seed_leaves_nothing() {
        let mut b = Book::new(5);
        assert_eq!(b.set(Side::Bid, "1e5", "1"), Err(LevelError::NotDecimal));
        let long = "1".repeat(level::TEXT_MAX + 1);
        assert_eq!(b.seed(9, [("1", "1"), ("2", long.as_str())], []), Err(BookError::Level(LevelError::TooLong)));
        assert!(b.is_empty());
        let broken = br#"{"type":"depth_update","exchange":"b","symbol":"X","first_update_id":1,"final_update_id":2,"bids":[["1"]],"asks":[],"event_time_ms":1}"#;
        assert_eq!(b.apply(&diff::read(broken).unwrap()), Err(BookError::Shape));
    }
}
