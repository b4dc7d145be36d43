//! The order-book consumer contract (README, "Order book"), for anyone reading the depth topic:
//!
//! 1. Start at any offset. Until a `depth_snapshot` of a symbol arrives, skip its depth records.
//! 2. A `depth_snapshot` replaces the symbol's book: its levels, at its `last_update_id`.
//! 3. A `depth_update` with `final_update_id <= last_update_id` is already in the book: skip it.
//!    The first one above it straddles it (`first_update_id <= last_update_id + 1`); apply it and
//!    every one after it: each level's quantity is the new absolute quantity, `0` (in any
//!    padding) removes the level, and removing a level the book does not have is normal. Then
//!    `last_update_id = final_update_id`.
//! 4. A `depth_update` whose `first_update_id` is above `last_update_id + 1` means records are
//!    missing: drop the book and wait for the next `depth_snapshot` (step 1). So does a
//!    `depth_resync`. One flagged `"quarantined":true` is skipped.
//! 5. USD-M diffs (they carry `prev_final_update_id`, Binance's `pu`) chain by it instead: after a
//!    snapshot, skip `final_update_id < last_update_id`, apply the first with `first_update_id <=
//!    last_update_id <= final_update_id` (or `prev_final_update_id == last_update_id`), then each
//!    whose `prev_final_update_id == last_update_id`; any other means records are missing (step 4).
//!
//! [`Books`] does exactly that over the JSON of each record, for every symbol of the topic.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// A price as an integer number of 10^-18: orders prices whatever their padding. `None` for text
/// that is not a plain decimal of at most 18 places below 10^20.
pub fn price_key(p: &str) -> Option<u128> {
    let (int, frac) = p.split_once('.').unwrap_or((p, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let frac = frac.trim_end_matches('0');
    if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 18 {
        return None;
    }
    let f: u128 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    int.parse::<u128>().ok()?.checked_mul(10u128.pow(18))?.checked_add(f * 10u128.pow(18 - frac.len() as u32))
}

fn is_zero(q: &str) -> bool {
    q.bytes().all(|b| b == b'0' || b == b'.')
}

/// A level as published: `(price, qty)`, Binance's decimal texts.
pub type Level = (String, String);

/// One symbol's book: levels by price key, each with the texts last published for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Book {
    pub last_update_id: i64,
    /// No diff applied since the snapshot: USD-M's first diff is found by straddling, the later
    /// ones by `prev_final_update_id` (step 5).
    fresh: bool,
    bids: BTreeMap<u128, Level>,
    asks: BTreeMap<u128, Level>,
}

impl Book {
    /// Bids, best (highest) first, as `(price, qty)` texts.
    pub fn bids(&self) -> Vec<Level> {
        self.bids.values().rev().cloned().collect()
    }

    /// Asks, best (lowest) first.
    pub fn asks(&self) -> Vec<Level> {
        self.asks.values().cloned().collect()
    }

    /// The best bid and ask, `(price, qty)` each.
    pub fn top(&self) -> (Option<&Level>, Option<&Level>) {
        (self.bids.values().next_back(), self.asks.values().next())
    }

    fn set(&mut self, bid: bool, p: &str, q: &str) -> Result<(), String> {
        let side = if bid { &mut self.bids } else { &mut self.asks };
        let key = price_key(p).ok_or_else(|| format!("price {p:?} is not a decimal"))?;
        if is_zero(q) {
            side.remove(&key);
        } else {
            side.insert(key, (p.to_string(), q.to_string()));
        }
        Ok(())
    }

    fn set_all(&mut self, bid: bool, levels: &Value) -> Result<(), String> {
        for l in levels.as_array().ok_or("levels are not an array")? {
            let (p, q) = (l[0].as_str(), l[1].as_str());
            let (Some(p), Some(q)) = (p, q) else { return Err(format!("level {l} is not [price, qty]")) };
            self.set(bid, p, q)?;
        }
        Ok(())
    }
}

/// What a record did to its symbol's book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Not a depth record (another type on the same topic).
    Other,
    /// A snapshot started (or restarted) the book.
    Snapshot,
    /// A diff was applied.
    Applied,
    /// Skipped: no book yet, already in the book, or quarantined.
    Skipped,
    /// The book was dropped (a `depth_resync`, or diffs missing): wait for a snapshot.
    Dropped,
}

/// Every symbol's book, kept by the contract.
#[derive(Debug, Default)]
pub struct Books {
    books: HashMap<String, Book>,
}

impl Books {
    pub fn get(&self, symbol: &str) -> Option<&Book> {
        self.books.get(symbol)
    }

    pub fn symbols(&self) -> impl Iterator<Item = &String> {
        self.books.keys()
    }

    /// Applies one record (its JSON) by the contract. `Err` for a depth record that breaks the
    /// published format (the book of its symbol is dropped too).
    pub fn apply(&mut self, r: &Value) -> Result<Step, String> {
        let (Some(kind), Some(symbol)) = (r["type"].as_str(), r["symbol"].as_str()) else { return Ok(Step::Other) };
        match kind {
            "depth_snapshot" => {
                let mut b = Book {
                    last_update_id: r["last_update_id"].as_i64().ok_or("no last_update_id")?,
                    fresh: true,
                    ..Book::default()
                };
                let filled = b.set_all(true, &r["bids"]).and_then(|()| b.set_all(false, &r["asks"]));
                if let Err(e) = filled {
                    self.books.remove(symbol);
                    return Err(e);
                }
                self.books.insert(symbol.to_string(), b);
                Ok(Step::Snapshot)
            }
            "depth_resync" => Ok(if self.books.remove(symbol).is_some() { Step::Dropped } else { Step::Skipped }),
            "depth_update" => {
                if r["quarantined"] == true {
                    return Ok(Step::Skipped);
                }
                let Some(book) = self.books.get_mut(symbol) else { return Ok(Step::Skipped) };
                let (Some(first), Some(last)) = (r["first_update_id"].as_i64(), r["final_update_id"].as_i64()) else {
                    self.books.remove(symbol);
                    return Err(format!("depth_update without update ids: {r}"));
                };
                let held = book.last_update_id;
                let continues = match r["prev_final_update_id"].as_i64() {
                    // Spot (steps 3 and 4): ids follow on, `first` at most one past the book.
                    None => {
                        if last <= held {
                            return Ok(Step::Skipped);
                        }
                        first <= held.saturating_add(1)
                    }
                    // USD-M (step 5): ids skip; `pu` names the diff before.
                    Some(pu) => {
                        if last < held || (!book.fresh && last <= held) {
                            return Ok(Step::Skipped);
                        }
                        pu == held || (book.fresh && first <= held && held <= last)
                    }
                };
                if !continues {
                    self.books.remove(symbol);
                    return Ok(Step::Dropped);
                }
                let applied = book.set_all(true, &r["bids"]).and_then(|()| book.set_all(false, &r["asks"]));
                if let Err(e) = applied {
                    self.books.remove(symbol);
                    return Err(e);
                }
                book.last_update_id = last;
                book.fresh = false;
                Ok(Step::Applied)
            }
            _ => Ok(Step::Other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_contract_from_any_offset() {
        let snap = json!({"type":"depth_snapshot","symbol":"X","last_update_id":100,
            "bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]});
        let d = |u0: i64, u1: i64, bids: Value| json!({"type":"depth_update","symbol":"X","first_update_id":u0,"final_update_id":u1,"bids":bids,"asks":[]});
        let mut b = Books::default();
        assert_eq!(b.apply(&d(95, 99, json!([["1", "1"]]))), Ok(Step::Skipped), "no snapshot yet");
        assert_eq!(b.apply(&snap), Ok(Step::Snapshot));
        assert_eq!(b.apply(&d(98, 100, json!([["1", "1"]]))), Ok(Step::Skipped), "already in it");
        assert_eq!(b.apply(&d(99, 102, json!([["4.0", "0"], ["3.5", "2"]]))), Ok(Step::Applied), "straddles");
        assert_eq!(b.get("X").unwrap().bids(), [("3.5".to_string(), "2".to_string())], "4.0 is 4.00000000");
        assert_eq!(b.apply(&d(104, 105, json!([]))), Ok(Step::Dropped), "103 missing");
        assert_eq!(b.apply(&d(106, 107, json!([]))), Ok(Step::Skipped));
        assert_eq!(b.apply(&snap), Ok(Step::Snapshot));
        assert_eq!(b.apply(&json!({"type":"depth_resync","symbol":"X"})), Ok(Step::Dropped));
        assert_eq!(b.apply(&json!({"type":"trade","symbol":"X"})), Ok(Step::Other));
    }

    #[test]
    fn usd_m_diffs_chain_by_their_previous_final_id() {
        let snap = json!({"type":"depth_snapshot","symbol":"X","last_update_id":100,"bids":[["9","5"]],"asks":[]});
        let d = |u0: i64, u1: i64, pu: i64, bids: Value| {
            json!({"type":"depth_update","symbol":"X","first_update_id":u0,"final_update_id":u1,
                "prev_final_update_id":pu,"bids":bids,"asks":[]})
        };
        let mut b = Books::default();
        assert_eq!(b.apply(&snap), Ok(Step::Snapshot));
        assert_eq!(b.apply(&d(90, 99, 80, json!([["1", "1"]]))), Ok(Step::Skipped), "u < lastUpdateId");
        assert_eq!(b.apply(&d(95, 102, 99, json!([["10", "1"]]))), Ok(Step::Applied), "U <= 100 <= u");
        assert_eq!(b.apply(&d(110, 112, 102, json!([["11", "1"]]))), Ok(Step::Applied), "U skips, pu = 102");
        assert_eq!(b.apply(&d(110, 112, 102, json!([]))), Ok(Step::Skipped), "the same diff again");
        assert_eq!(b.get("X").unwrap().last_update_id, 112);
        assert_eq!(b.apply(&d(120, 125, 118, json!([]))), Ok(Step::Dropped), "pu 118 is not 112");
        // Right after a snapshot, a diff neither straddling it nor naming it as `pu` is a gap.
        assert_eq!(b.apply(&snap), Ok(Step::Snapshot));
        assert_eq!(b.apply(&d(101, 103, 95, json!([]))), Ok(Step::Dropped), "straddles neither way");
    }

    #[test]
    fn prices_order_whatever_their_padding() {
        assert_eq!(price_key("0.0024"), price_key("0.00240000"));
        assert!(price_key("9.99") < price_key("10"));
        assert_eq!(price_key("1e5"), None);
        assert_eq!(price_key("0.0000000000000000001"), None);
    }
}
