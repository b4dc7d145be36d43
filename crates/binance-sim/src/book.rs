//! The order book behind `<sym>@depth`, `<sym>@depth@100ms`, `<sym>@bookTicker` and REST's
//! `/api/v3/depth`.
//!
//! The book after `t` diff-depth events is a pure function of `(symbol, t)`, not a structure
//! kept up to date: every connection renders event `k` on its own, and a send path that had to
//! replay a shared book would cost O(book) or a lock per event. The function:
//!
//! - Prices are ticks of 0.01 on a grid around a mid `m(t)` that drifts (two octaves of value
//!   noise, at most a couple of ticks per event). Bids are the `N` ticks below the mid, asks the
//!   `N` above; the mid's own tick is always empty, so the book is never crossed and never holds
//!   more than `N` levels a side.
//! - Each tick has a version, which picks its quantity or leaves it empty (1 in 16: holes, and
//!   deletions when a touched level empties). Two families of touches raise versions: a family
//!   of prime period `P` splits the ticks into the classes `i mod P` and, in each block of `P`
//!   events, touches every class once, in an order drawn per block (an affine permutation
//!   `c -> a*c + b mod P`). So a tick's version after `t` events is closed-form (`t / P`, plus
//!   one if its class's turn in the current block has come), and so is the class event `k`
//!   touches. `P` is chosen so that about [`TOUCHED_PER_EVENT`] levels change per event.
//! - Event `k` (from book `t = k` to `t = k + 1`) carries every level whose state differs
//!   between the two, found without looking at the rest of the book: the ticks of the classes
//!   touched at `k` and the few where the mid's move changed a side. A touched level that stays
//!   empty is sent as a deletion anyway, as Binance sends deletions of levels a client never had.

use std::collections::BTreeMap;

use crate::hash::mix;

/// An order book as Binance's snapshot writes it: best first (bids descending, asks
/// ascending), each level `(price, quantity)` in Binance's padded decimal text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Book {
    /// The `u` of the last event it includes (`U - 1` of the next).
    pub last_update_id: i64,
    pub bids: Vec<(String, String)>,
    pub asks: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Bid,
    Ask,
}

/// One event's changes, each `(tick, quantity)` with 0 = delete; bids descending, asks ascending.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Diff {
    pub bids: Vec<(i64, u64)>,
    pub asks: Vec<(i64, u64)>,
}

/// A symbol's book after `t` events, as far as every level's state depends on it.
struct At {
    t: u64,
    mid: i64,
    /// Each family's order in the block `t` is in.
    orders: [(u64, u64); FAMILIES as usize],
    /// The symbol's quantity key.
    key: u64,
}

/// Levels of a book: bids descending, asks ascending, each `(tick, quantity)`.
pub(crate) type Levels = (Vec<(i64, u64)>, Vec<(i64, u64)>);

/// About this many levels change per event, whatever the depth (a few thousand levels each
/// changing once every few hundred events, like a real book's far levels).
pub(crate) const TOUCHED_PER_EVENT: u64 = 8;
/// Families of touches: two combs of different spacing make an event's levels less regular.
const FAMILIES: u64 = 2;
/// One version in this many leaves its level empty.
const EMPTY_ONE_IN: u64 = 16;
/// Quantities are multiples of 0.00001 below 500.
const QTY_UNITS: u64 = 49_999_999;
/// The mid's slow drift: knots this many events apart, within this many ticks of the base.
const SLOW: (u64, i64) = (8_192, 3_000);
/// And its fast wiggle.
const FAST: (u64, i64) = (64, 8);

/// The shape of every symbol's book: depth, the families' periods, seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BookShape {
    levels: i64,
    /// Distinct primes (so every nonzero multiplier is invertible modulo each).
    periods: [u64; FAMILIES as usize],
    seed: u64,
}

/// The smallest prime at or above `n` (`n` is at most a few thousand).
fn prime_at_least(n: u64) -> u64 {
    (n.max(2)..).find(|&p| (2..).take_while(|d| d * d <= p).all(|d| p % d != 0)).unwrap_or(2)
}

/// `b^e mod p`, `p` below 2^32.
fn pow_mod(mut b: u64, mut e: u64, p: u64) -> u64 {
    let mut r = 1 % p;
    b %= p;
    while e > 0 {
        if e & 1 == 1 {
            r = r * b % p;
        }
        b = b * b % p;
        e >>= 1;
    }
    r
}

impl BookShape {
    pub(crate) fn new(levels: usize, seed: u64) -> BookShape {
        let levels = levels.clamp(1, crate::config::MAX_DEPTH_LEVELS) as i64;
        let first = prime_at_least((2 * levels as u64 + 1) * FAMILIES / TOUCHED_PER_EVENT);
        BookShape { levels, periods: [first, prime_at_least(first + first / 8 + 1)], seed }
    }

    pub(crate) fn levels(&self) -> usize {
        self.levels as usize
    }

    fn key(&self, sym: usize, salt: u64) -> u64 {
        mix(self.seed ^ ((sym as u64) << 32) ^ salt)
    }

    /// The mid tick after `t` events: five digits before the point for every symbol, so every
    /// price string has the same length (a client's buffers grow once).
    pub(crate) fn mid(&self, sym: usize, t: u64) -> i64 {
        let base = (20_000 + 1_000 * (sym as i64 % 70)) * 100;
        let noise = |key: u64, (len, amp): (u64, i64)| {
            let knot = |j: u64| (mix(key ^ j) % (2 * amp as u64 + 1)) as i64 - amp;
            let (j, f, len) = (t / len, (t % len) as i64, len as i64);
            (knot(j) * (len - f) + knot(j + 1) * f).div_euclid(len)
        };
        base + noise(self.key(sym, 0x51), SLOW) + noise(self.key(sym, 0xFA), FAST)
    }

    fn side(&self, i: i64, mid: i64) -> Option<Side> {
        if i < mid && i >= mid - self.levels {
            Some(Side::Bid)
        } else if i > mid && i <= mid + self.levels {
            Some(Side::Ask)
        } else {
            None
        }
    }

    /// Family `f`'s order for block `j`: class `c` has its turn at position `a*c + b mod P`.
    fn order(&self, sym: usize, f: usize, j: u64) -> (u64, u64) {
        let p = self.periods[f];
        let h = mix(self.key(sym, 0xF0 + f as u64) ^ j);
        (1 + h % (p - 1).max(1), (h >> 32) % p)
    }

    /// The class of family `f` whose turn is step `s` (event `s - 1`).
    fn class_at(&self, sym: usize, f: usize, s: u64) -> u64 {
        let p = self.periods[f];
        let (a, b) = self.order(sym, f, s / p);
        // The position's preimage under c -> a*c + b; a's inverse by Fermat, p being prime.
        (s % p + p - b) % p * pow_mod(a, p - 2, p) % p
    }

    /// What every level's state after `t` events depends on, worked out once.
    fn at(&self, sym: usize, t: u64) -> At {
        let mut orders = [(0, 0); FAMILIES as usize];
        for (f, o) in orders.iter_mut().enumerate() {
            *o = self.order(sym, f, t / self.periods[f]);
        }
        At { t, mid: self.mid(sym, t), orders, key: self.key(sym, 0x0B) }
    }

    /// Tick `i`'s version at `at`: one per turn of its class so far, per family.
    fn version(&self, i: i64, at: &At) -> u64 {
        let mut v = 0;
        for (&p, &(a, b)) in self.periods.iter().zip(&at.orders) {
            v += at.t / p + u64::from((a * i.rem_euclid(p as i64) as u64 + b) % p <= at.t % p);
        }
        v
    }

    /// Tick `i` at `at`: its side and quantity, or `None`.
    fn level(&self, i: i64, at: &At) -> Option<(Side, u64)> {
        let side = self.side(i, at.mid)?;
        let x = mix(mix(at.key ^ i as u64).wrapping_add(self.version(i, at)));
        (x % EMPTY_ONE_IN != 0).then(|| (side, 1 + (x >> 8) % QTY_UNITS))
    }

    /// The changes of event `k` (book `k` to book `k + 1`).
    pub(crate) fn diff(&self, sym: usize, k: u64) -> Diff {
        let (before, after) = (self.at(sym, k), self.at(sym, k + 1));
        let (m0, m1) = (before.mid, after.mid);
        let (lo, hi, n) = (m0.min(m1), m0.max(m1), self.levels);
        let mut ticks: Vec<i64> = Vec::with_capacity(2 * TOUCHED_PER_EVENT as usize + 16);
        // The classes touched at k, over both windows.
        let start = lo - n;
        let mut touched = [0i64; FAMILIES as usize];
        for (f, class) in touched.iter_mut().enumerate() {
            let p = self.periods[f] as i64;
            *class = self.class_at(sym, f, k + 1) as i64;
            let first = start + (*class - start.rem_euclid(p)).rem_euclid(p);
            ticks.extend((first..=hi + n).step_by(p as usize));
        }
        if m0 != m1 {
            // Where the mid's move changes sides: both window ends and the gap between the sides.
            for (a, b) in [(lo - n - 1, hi - n + 1), (lo - 1, hi + 1), (lo + n - 1, hi + n + 1)] {
                ticks.extend(a..=b);
            }
        }
        ticks.sort_unstable();
        ticks.dedup();
        let mut d = Diff::default();
        for &i in &ticks {
            let (old, new) = (self.level(i, &before), self.level(i, &after));
            let touched = touched.iter().zip(self.periods).any(|(c, p)| i.rem_euclid(p as i64) == *c);
            for (side, out) in [(Side::Bid, &mut d.bids), (Side::Ask, &mut d.asks)] {
                let was = old.filter(|l| l.0 == side).map(|l| l.1);
                let now = new.filter(|l| l.0 == side).map(|l| l.1);
                let stray_delete = touched && was.is_none() && now.is_none() && self.side(i, m1) == Some(side);
                if was != now || stray_delete {
                    out.push((i, now.unwrap_or(0)));
                }
            }
        }
        d.bids.reverse();
        d
    }

    /// The top `limit` levels a side of the book after `t` events.
    pub(crate) fn top(&self, sym: usize, t: u64, limit: usize) -> Levels {
        let at = self.at(sym, t);
        let present = |i: i64| self.level(i, &at).map(|(_, q)| (i, q));
        let bids = (at.mid - self.levels..at.mid).rev().filter_map(present).take(limit).collect();
        let asks = (at.mid + 1..=at.mid + self.levels).filter_map(present).take(limit).collect();
        (bids, asks)
    }

    /// The book after `t` events, by applying events `0..t` to the first book: the stream's
    /// own account of it, for tests (O(t) work).
    pub(crate) fn replay(&self, sym: usize, t: u64) -> Levels {
        let (bids, asks) = self.top(sym, 0, usize::MAX);
        let mut bids: BTreeMap<i64, u64> = bids.into_iter().collect();
        let mut asks: BTreeMap<i64, u64> = asks.into_iter().collect();
        for k in 0..t {
            let d = self.diff(sym, k);
            for (book, changes) in [(&mut bids, d.bids), (&mut asks, d.asks)] {
                for (i, q) in changes {
                    if q == 0 {
                        book.remove(&i);
                    } else {
                        book.insert(i, q);
                    }
                }
            }
        }
        (bids.into_iter().rev().collect(), asks.into_iter().collect())
    }
}

/// A price in ticks as Binance writes it: `"20000.01000000"`.
pub(crate) fn price_text(tick: i64) -> String {
    format!("{}.{:02}000000", tick / 100, tick % 100)
}

/// A quantity in units of 0.00001 as Binance writes it: `"12.34567000"`, `"0.00000000"`.
pub(crate) fn qty_text(units: u64) -> String {
    format!("{}.{:05}000", units / 100_000, units % 100_000)
}

/// Levels as text, in the order given.
pub(crate) fn level_texts(levels: &[(i64, u64)]) -> Vec<(String, String)> {
    levels.iter().map(|&(i, q)| (price_text(i), qty_text(q))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_book(levels: &Levels, n: usize, what: &str) {
        let (bids, asks) = levels;
        assert!(bids.len() <= n && asks.len() <= n, "{what}: {} bids, {} asks over {n}", bids.len(), asks.len());
        assert!(bids.windows(2).all(|w| w[0].0 > w[1].0), "{what}: bids descending");
        assert!(asks.windows(2).all(|w| w[0].0 < w[1].0), "{what}: asks ascending");
        if let (Some(b), Some(a)) = (bids.first(), asks.first()) {
            assert!(b.0 < a.0, "{what}: crossed, best bid {} >= best ask {}", b.0, a.0);
        }
        assert!(bids.iter().chain(asks).all(|l| l.1 > 0), "{what}: a level of quantity 0");
    }

    /// Applying each event to the book before it gives exactly the closed form's next book, at
    /// every step: the stream and the snapshot tell the same story.
    #[test]
    fn every_event_takes_the_book_to_the_next_one() {
        for (n, steps, every) in [(1, 3_000, 1), (5, 3_000, 1), (300, 3_000, 7), (5_000, 300, 50)] {
            let shape = BookShape::new(n, 42);
            for sym in 0..2 {
                let (bids, asks) = shape.top(sym, 0, usize::MAX);
                let mut bids: BTreeMap<i64, u64> = bids.into_iter().collect();
                let mut asks: BTreeMap<i64, u64> = asks.into_iter().collect();
                for k in 0..steps {
                    let d = shape.diff(sym, k);
                    for (book, changes) in [(&mut bids, &d.bids), (&mut asks, &d.asks)] {
                        for &(i, q) in changes {
                            if q == 0 {
                                book.remove(&i);
                            } else {
                                book.insert(i, q);
                            }
                        }
                    }
                    if k % every == 0 {
                        let got: Levels = (
                            bids.iter().rev().map(|(a, b)| (*a, *b)).collect(),
                            asks.iter().map(|(a, b)| (*a, *b)).collect(),
                        );
                        let want = shape.top(sym, k + 1, usize::MAX);
                        check_book(&want, n, &format!("n={n} sym={sym} t={}", k + 1));
                        assert_eq!(got, want, "n={n} sym={sym}: after event {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn events_carry_several_levels_some_deletions_and_the_mid_drifts() {
        let shape = BookShape::new(300, 0);
        let (mut levels, mut deletions, mut max_levels) = (0usize, 0usize, 0usize);
        let mids: Vec<i64> = (0..20_000).map(|t| shape.mid(0, t)).collect();
        for k in 0..20_000 {
            let d = shape.diff(0, k);
            let n = d.bids.len() + d.asks.len();
            levels += n;
            max_levels = max_levels.max(n);
            deletions += d.bids.iter().chain(&d.asks).filter(|l| l.1 == 0).count();
            assert!(d.bids.windows(2).all(|w| w[0].0 > w[1].0) && d.asks.windows(2).all(|w| w[0].0 < w[1].0));
        }
        let avg = levels as f64 / 20_000.0;
        assert!((4.0..=20.0).contains(&avg), "{avg} levels per event");
        assert!(max_levels <= 40, "{max_levels} levels in one event");
        assert!(deletions * 20 > levels, "{deletions} deletions of {levels} levels");
        let (lo, hi) = (mids.iter().min().unwrap(), mids.iter().max().unwrap());
        assert!(hi - lo > 100, "the mid drifts: {lo}..{hi}");
        assert!(mids.windows(2).all(|w| (w[1] - w[0]).abs() <= 2), "one event moves the mid a little");
        assert!(mids.windows(2).filter(|w| w[0] != w[1]).count() > 1_000, "and often");
    }

    #[test]
    fn books_fill_their_depth_and_stay_apart_per_symbol_and_seed() {
        let shape = BookShape::new(1_000, 0);
        let (bids, asks) = shape.top(3, 12_345, usize::MAX);
        assert!(bids.len() > 900 && asks.len() > 900, "{} bids, {} asks of 1000", bids.len(), asks.len());
        assert_ne!(shape.top(0, 10, 20), shape.top(1, 10, 20));
        assert_ne!(BookShape::new(1_000, 1).top(0, 10, 20), shape.top(0, 10, 20));
        // The same price text everywhere: five digits, two decimals, padded to eight.
        let texts = level_texts(&bids);
        assert!(texts.iter().all(|(p, q)| p.len() == 14 && p.ends_with("000000") && q.ends_with("000")), "{texts:?}");
        assert_eq!(qty_text(0), "0.00000000");
        assert_eq!(price_text(2_000_001), "20000.01000000");
    }
}
