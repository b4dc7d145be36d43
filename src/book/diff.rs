//! A `depth_update` record read back from the JSON [`crate::record::Record::encode`] wrote, on the
//! thread that keeps the books: its update ids, event time and levels, borrowed from the payload,
//! without a JSON parser and without allocating.
//!
//! The text is ours, not the network's: keys in a fixed order, no whitespace, every price and
//! quantity a validated decimal (no escapes). So a field is found by its key, and the level
//! arrays are walked as `[["p","q"],...]`. Anything else is refused (`None`), never guessed at;
//! `encoded_depth_updates_read_back` below reads what `Record::encode` writes, keeping the two in
//! step.

use memchr::memmem;

/// A `depth_update`'s ids, time and raw level arrays (`[["p","q"],...]`, brackets included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Diff<'a> {
    /// `U`: the first update id the event covers.
    pub first_update_id: i64,
    /// `u`: the last.
    pub final_update_id: i64,
    pub event_time_ms: i64,
    pub bids: &'a [u8],
    pub asks: &'a [u8],
}

/// The integer after `key` (`"name":`) in `p`, from `from` on; and where it ends.
fn int_after(p: &[u8], key: &[u8], from: usize) -> Option<(i64, usize)> {
    let at = from + memmem::find(&p[from..], key)? + key.len();
    let end = at + p[at..].iter().position(|&c| c == b',' || c == b'}')?;
    let v = std::str::from_utf8(&p[at..end]).ok()?.parse().ok()?;
    Some((v, end))
}

/// The array after `key` in `p`, from `from` on, brackets included; and where it ends. Level
/// arrays nest one level and hold no bracket inside a string (decimals only).
fn array_after<'a>(p: &'a [u8], key: &[u8], from: usize) -> Option<(&'a [u8], usize)> {
    let at = from + memmem::find(&p[from..], key)? + key.len();
    if p.get(at) != Some(&b'[') {
        return None;
    }
    let mut depth = 0usize;
    for (i, &c) in p[at..].iter().enumerate() {
        match c {
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&p[at..at + i + 1], at + i + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// Reads a `depth_update` payload; `None` if it is not one as we write them.
pub fn read(payload: &[u8]) -> Option<Diff<'_>> {
    if !payload.starts_with(br#"{"type":"depth_update","#) {
        return None;
    }
    let (first_update_id, at) = int_after(payload, br#","first_update_id":"#, 0)?;
    let (final_update_id, at) = int_after(payload, br#","final_update_id":"#, at)?;
    let (bids, at) = array_after(payload, br#","bids":"#, at)?;
    let (asks, at) = array_after(payload, br#","asks":"#, at)?;
    let (event_time_ms, _) = int_after(payload, br#","event_time_ms":"#, at)?;
    Some(Diff { first_update_id, final_update_id, event_time_ms, bids, asks })
}

/// The `(price, qty)` pairs of a level array as [`read`] returns it; an item is `Err(())` where
/// the text is not `[["p","q"],...]`, and iteration ends there.
pub fn levels(array: &[u8]) -> Levels<'_> {
    let inner = array.strip_prefix(b"[").and_then(|a| a.strip_suffix(b"]"));
    Levels { rest: inner.unwrap_or_default(), broken: inner.is_none() }
}

pub struct Levels<'a> {
    rest: &'a [u8],
    broken: bool,
}

impl<'a> Levels<'a> {
    fn pair(&mut self) -> Option<(&'a str, &'a str)> {
        let r = self.rest.strip_prefix(br#"[""#)?;
        let p_end = memchr::memchr(b'"', r)?;
        let r2 = r[p_end..].strip_prefix(br#"",""#)?;
        let q_end = memchr::memchr(b'"', r2)?;
        let after = r2[q_end..].strip_prefix(br#""]"#)?;
        self.rest = match after.strip_prefix(b",") {
            Some(more) if !more.is_empty() => more,
            Some(_) => return None,
            None if after.is_empty() => after,
            None => return None,
        };
        Some((std::str::from_utf8(&r[..p_end]).ok()?, std::str::from_utf8(&r2[..q_end]).ok()?))
    }
}

impl<'a> Iterator for Levels<'a> {
    type Item = Result<(&'a str, &'a str), ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.broken {
            self.broken = false;
            self.rest = &[];
            return Some(Err(()));
        }
        if self.rest.is_empty() {
            return None;
        }
        let got = self.pair();
        if got.is_none() {
            self.rest = &[];
        }
        Some(got.ok_or(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{DepthUpdate, Record};

    fn encoded(bids: &'static str, asks: &'static str, quarantined: bool) -> Vec<u8> {
        let r = Record::DepthUpdate(DepthUpdate {
            exchange: "binance",
            symbol: "币安人生USDT",
            first_update_id: 157,
            final_update_id: 160,
            bids: crate::record::Levels(bids),
            asks: crate::record::Levels(asks),
            event_time_ms: 1_672_515_782_136,
        });
        let mut out = Vec::new();
        r.encode(1_700_000_000_123_456_789, false, &mut out).unwrap();
        if quarantined {
            out.pop();
            out.extend_from_slice(br#","quarantined":true}"#);
        }
        out
    }

    #[test]
    fn encoded_depth_updates_read_back() {
        for q in [false, true] {
            let p = encoded(r#"[["0.0024","10"],["0.0023","0.00000000"]]"#, "[]", q);
            let d = read(&p).unwrap();
            assert_eq!((d.first_update_id, d.final_update_id, d.event_time_ms), (157, 160, 1_672_515_782_136));
            let bids: Vec<_> = levels(d.bids).collect();
            assert_eq!(bids, [Ok(("0.0024", "10")), Ok(("0.0023", "0.00000000"))]);
            assert_eq!(levels(d.asks).count(), 0);
        }
    }

    #[test]
    fn anything_but_our_own_shape_is_refused() {
        assert_eq!(read(br#"{"type":"trade","first_update_id":1}"#), None);
        assert_eq!(read(br#"{"type":"depth_update","first_update_id":1}"#), None);
        assert_eq!(read(br#"{"type":"depth_update","first_update_id":x,"final_update_id":2}"#), None);
        for bad in [&br#"[["1","2"],]"#[..], br#"[["1","2"]"#, br#"[["1"]]"#, br#"[["1","2"]x]"#, b"7"] {
            assert!(levels(bad).any(|l| l.is_err()), "{}", String::from_utf8_lossy(bad));
        }
    }
}
