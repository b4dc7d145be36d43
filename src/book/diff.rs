//! A `depth_update` record read back from the JSON [`crate::record::Record::encode`] wrote, on the
//! thread that keeps the books: its update ids, then its levels and event time, borrowed from the
//! payload, without a JSON parser and without allocating.
//!
//! The text is ours, not the network's: keys in a fixed order, no whitespace, every price and
//! quantity a validated decimal (no escapes), the symbol free of quotes. So it is read in one
//! pass, front to back, each key matched where it must be; anything else is refused, never
//! guessed at. `encoded_depth_updates_read_back` below reads what `Record::encode` writes,
//! keeping the two in step. The ids come first and cost a few comparisons: a diff the book will
//! only hold (or pass over) never has its levels read.

/// A `depth_update`'s update ids; its levels and event time follow in its `rest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Diff<'a> {
    /// `U`: the first update id the event covers.
    pub first_update_id: i64,
    /// `u`: the last.
    pub final_update_id: i64,
    /// `pu`, futures only: the stream's previous event's `u`.
    pub prev_final_update_id: Option<i64>,
    /// The payload from its bids array on: `[["p","q"],...],"asks":[...],"event_time_ms":E,...`.
    rest: &'a [u8],
}

/// A non-negative decimal integer at the start of `b`, and what follows it; `None` past i64.
fn int(b: &[u8]) -> Option<(i64, &[u8])> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let v = b[..n].iter().try_fold(0i64, |v, &d| v.checked_mul(10)?.checked_add(i64::from(d - b'0')))?;
    Some((v, &b[n..]))
}

/// A possibly negative integer (update ids are wire values; a negative one is still ours).
fn signed(b: &[u8]) -> Option<(i64, &[u8])> {
    match b.strip_prefix(b"-") {
        Some(r) => int(r).map(|(v, r)| (-v, r)),
        None => int(b),
    }
}

/// Reads a `depth_update` payload's ids; `None` if it is not one as we write them.
pub fn read(payload: &[u8]) -> Option<Diff<'_>> {
    let r = payload.strip_prefix(br#"{"type":"depth_update","exchange":""#)?;
    let r = &r[memchr::memchr(b'"', r)?..];
    let r = r.strip_prefix(br#"","symbol":""#)?;
    let r = &r[memchr::memchr(b'"', r)?..];
    let r = r.strip_prefix(br#"","first_update_id":"#)?;
    let (first_update_id, r) = signed(r)?;
    let r = r.strip_prefix(br#","final_update_id":"#)?;
    let (final_update_id, mut r) = signed(r)?;
    let mut prev_final_update_id = None;
    if let Some(p) = r.strip_prefix(br#","prev_final_update_id":"#) {
        let (pu, after) = signed(p)?;
        (prev_final_update_id, r) = (Some(pu), after);
    }
    let rest = r.strip_prefix(br#","bids":"#)?;
    Some(Diff { first_update_id, final_update_id, prev_final_update_id, rest })
}

impl<'a> Diff<'a> {
    /// The first id this diff must continue from: `U`, or `pu + 1` on futures
    /// ([`crate::record::DepthUpdate::chain_first`]).
    pub fn chain_first(&self) -> i64 {
        crate::record::chain_first(self.first_update_id, self.prev_final_update_id)
    }

    /// Hands `f` every level, bids then asks (`true` for a bid), in the order written; returns
    /// the event time after them, in milliseconds whatever unit the record carries
    /// (`event_time_us` with `TIME_UNIT=us`): it only stamps the snapshot's Kafka timestamp,
    /// which is in milliseconds. `Err` where the text is not as we write it (levels before that
    /// point were handed over).
    pub fn levels<E: From<Shape>>(&self, mut f: impl FnMut(bool, &'a str, &'a str) -> Result<(), E>) -> Result<i64, E> {
        let r = pairs(self.rest, |p, q| f(true, p, q))?;
        let r = r.strip_prefix(br#","asks":"#).ok_or(Shape)?;
        let r = pairs(r, |p, q| f(false, p, q))?;
        if let Some(r) = r.strip_prefix(br#","event_time_ms":"#) {
            return Ok(signed(r).ok_or(Shape)?.0);
        }
        let r = r.strip_prefix(br#","event_time_us":"#).ok_or(Shape)?;
        Ok(signed(r).ok_or(Shape)?.0.div_euclid(1000))
    }
}

/// The level text is not `[["p","q"],...]` as encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape;

/// Walks one level array at the start of `b`, handing each pair to `f`; returns what follows.
fn pairs<'a, E: From<Shape>>(b: &'a [u8], mut f: impl FnMut(&'a str, &'a str) -> Result<(), E>) -> Result<&'a [u8], E> {
    let mut r = b.strip_prefix(b"[").ok_or(Shape)?;
    if let Some(after) = r.strip_prefix(b"]") {
        return Ok(after);
    }
    loop {
        let (p, q, after) = pair(r).ok_or(Shape)?;
        f(p, q)?;
        match after.split_first() {
            Some((b',', more)) => r = more,
            Some((b']', more)) => return Ok(more),
            _ => return Err(Shape.into()),
        }
    }
}

/// `["p","q"]` at the start of `r`: the two texts and what follows.
fn pair(r: &[u8]) -> Option<(&str, &str, &[u8])> {
    let r = r.strip_prefix(br#"[""#)?;
    let p_end = memchr::memchr(b'"', r)?;
    let r2 = r[p_end..].strip_prefix(br#"",""#)?;
    let q_end = memchr::memchr(b'"', r2)?;
    let after = r2[q_end..].strip_prefix(br#""]"#)?;
    Some((std::str::from_utf8(&r[..p_end]).ok()?, std::str::from_utf8(&r2[..q_end]).ok()?, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{DepthUpdate, Record};

    fn encoded(first: i64, bids: &'static str, asks: &'static str, quarantined: bool) -> Vec<u8> {
        let r = Record::DepthUpdate(DepthUpdate {
            exchange: "binance",
            symbol: "币安人生USDT",
            first_update_id: first,
            final_update_id: 160,
            bids: crate::record::Levels(bids),
            asks: crate::record::Levels(asks),
            event_time_ms: 1_672_515_782_136,
            prev_final_update_id: None,
            transaction_time_ms: None,
        });
        let mut out = Vec::new();
        r.encode(1_700_000_000_123_456_789, false, &mut out).unwrap();
        if quarantined {
            out.pop();
            out.extend_from_slice(br#","quarantined":true}"#);
        }
        out
    }

    /// A level as handed over: `(is_bid, price, qty)`.
    type Seen = (bool, String, String);

    fn all(d: &Diff<'_>) -> Result<(Vec<Seen>, i64), Shape> {
        let mut got = Vec::new();
        let t = d.levels(|bid, p, q| {
            got.push((bid, p.to_string(), q.to_string()));
            Ok::<_, Shape>(())
        })?;
        Ok((got, t))
    }

    #[test]
    fn microsecond_records_read_back_with_their_event_time_in_milliseconds() {
        let r = Record::DepthUpdate(DepthUpdate {
            exchange: "binance",
            symbol: "BTCUSDT",
            first_update_id: 157,
            final_update_id: 160,
            bids: crate::record::Levels(r#"[["0.0024","10"]]"#),
            asks: crate::record::Levels("[]"),
            event_time_ms: 1_672_515_782_136_999,
            prev_final_update_id: None,
            transaction_time_ms: None,
        });
        let mut p = Vec::new();
        r.encode_in(crate::time_unit::TimeUnit::Micros, 1, false, &mut p).unwrap();
        let (levels, t) = all(&read(&p).unwrap()).unwrap();
        assert_eq!(levels.len(), 1);
        assert_eq!(t, 1_672_515_782_136);
    }

    #[test]
    fn encoded_depth_updates_read_back() {
        for (first, q) in [(157, false), (-3, true)] {
            let p = encoded(first, r#"[["0.0024","10"],["0.0023","0.00000000"]]"#, r#"[["1","2"]]"#, q);
            let d = read(&p).unwrap();
            assert_eq!((d.first_update_id, d.final_update_id), (first, 160));
            let (levels, t) = all(&d).unwrap();
            let l = |b, p: &str, q: &str| (b, p.to_string(), q.to_string());
            assert_eq!(levels, [l(true, "0.0024", "10"), l(true, "0.0023", "0.00000000"), l(false, "1", "2")]);
            assert_eq!(t, 1_672_515_782_136);
        }
        let empty = encoded(1, "[]", "[]", false);
        assert_eq!(all(&read(&empty).unwrap()).unwrap(), (vec![], 1_672_515_782_136));
    }

    #[test]
    fn futures_depth_updates_read_back_with_their_previous_final_id() {
        let r = Record::DepthUpdate(DepthUpdate {
            exchange: "binance-usdm",
            symbol: "BTCUSDT",
            first_update_id: 157,
            final_update_id: 160,
            bids: crate::record::Levels(r#"[["0.0024","10"]]"#),
            asks: crate::record::Levels(r#"[["0.0026","100"]]"#),
            event_time_ms: 123_456_789,
            prev_final_update_id: Some(149),
            transaction_time_ms: Some(123_456_788),
        });
        let mut p = Vec::new();
        r.encode(1, false, &mut p).unwrap();
        let d = read(&p).unwrap();
        assert_eq!((d.first_update_id, d.final_update_id, d.prev_final_update_id), (157, 160, Some(149)));
        let (levels, t) = all(&d).unwrap();
        assert_eq!((levels.len(), t), (2, 123_456_789));
        assert_eq!(read(&encoded(157, "[]", "[]", false)).unwrap().prev_final_update_id, None);
    }

    #[test]
    fn anything_but_our_own_shape_is_refused() {
        assert_eq!(read(br#"{"type":"trade","first_update_id":1}"#), None);
        assert_eq!(read(br#"{"type":"depth_update","exchange":"b","symbol":"X","first_update_id":1}"#), None);
        let ids = |f: &str| {
            format!(
                r#"{{"type":"depth_update","exchange":"b","symbol":"X","first_update_id":{f},"final_update_id":2,"bids":[],"asks":[],"event_time_ms":1}}"#
            )
        };
        assert_eq!(read(ids("x").as_bytes()), None);
        assert_eq!(read(ids("9999999999999999999").as_bytes()), None, "past i64: refused, not wrapped");
        assert_eq!(read(ids("9223372036854775807").as_bytes()).unwrap().first_update_id, i64::MAX);
        for bad in [r#"[["1","2"],]"#, r#"[["1","2"]"#, r#"[["1"]]"#, r#"[["1","2"]x]"#, "7"] {
            let p = format!(
                r#"{{"type":"depth_update","exchange":"b","symbol":"X","first_update_id":1,"final_update_id":2,"bids":{bad},"asks":[],"event_time_ms":1}}"#
            );
            assert_eq!(all(&read(p.as_bytes()).unwrap()).map(|_| ()), Err(Shape), "{bad}");
        }
    }
}
