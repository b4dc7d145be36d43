//! A trade record after its prefix, written by one reservation: the output is asked for room
//! once, for the most the record can take, and the parts are then copied one after another at a
//! pointer, where the field-by-field writer asked for room and moved the output's length at each
//! field. Trades are most of what every transport carries; for an SBE trade the field-by-field
//! writer and its prefix look-up were about 330 of 1,500 instructions (benches/sbe.rs, callgrind).

use super::json::{copy_short, k, kt, Out};
use super::{RecordError, Side, Trade};
use crate::time_unit::TimeUnit;

/// The longest text of an `i64` (`-9223372036854775808`) or a `u64` (`18446744073709551615`).
const INT_MAX_LEN: usize = 20;

const PRICE: &str = concat!(k!("price"), "\"");
const QTY: &str = concat!("\"", k!("qty"), "\"");
const SELL: &str = concat!("\"", k!("side"), "\"sell\"");
const BUY: &str = concat!("\"", k!("side"), "\"buy\"");
const RECV: &str = k!("recv_time_ns");
const BACKFILLED: &str = concat!(k!("backfilled"), "true");

/// The most bytes a trade takes besides its prefix, price, quantity and time keys: every other
/// key with its punctuation, the longer side, four integers at their longest, `backfilled` and
/// the brace. The time keys are counted as written (`kt!` of the record's unit), so a unit with
/// longer keys cannot outgrow the room asked for.
pub(super) const FIXED_MAX: usize = INT_MAX_LEN
    + PRICE.len()
    + QTY.len()
    + max(SELL.len(), BUY.len())
    + INT_MAX_LEN
    + INT_MAX_LEN
    + RECV.len()
    + INT_MAX_LEN
    + BACKFILLED.len()
    + 1;

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// The next byte's place in room asked for once: the parts are copied without a check each.
struct Cursor(*mut u8);

impl Cursor {
    /// # Safety
    /// The cursor is valid for `s.len()` bytes of writes, which do not overlap `s`.
    #[inline(always)]
    unsafe fn put(&mut self, s: &[u8]) {
        // SAFETY: the caller's promise.
        unsafe {
            copy_short(s, self.0);
            self.0 = self.0.add(s.len());
        }
    }
}

impl Trade<'_> {
    /// The record as [`super::Record::encode_to`] writes it field by field, after `prefix` (its
    /// [`super::Prefixes::trade`], which ends with the `trade_id` key). Nothing is written if the
    /// output has no room for the longest such record (a full window, which remembers it).
    /// Public for the fast way of a binary frame's trades, which has no [`super::Record`], and
    /// for the benchmark timing it.
    #[inline(always)]
    pub fn encode_after<O: Out + ?Sized>(
        &self,
        prefix: &[u8],
        unit: TimeUnit,
        recv_time_ns: u64,
        backfilled: bool,
        out: &mut O,
    ) -> Result<(), RecordError> {
        let price = self.price.checked().ok_or(RecordError::BadDecimal(k!("price")))?;
        let qty = self.qty.checked().ok_or(RecordError::BadDecimal(k!("qty")))?;
        let (trade_time, event_time) = (kt!(unit, "trade_time"), kt!(unit, "event_time"));
        let bound = prefix.len() + price.len() + qty.len() + trade_time.len() + event_time.len() + FIXED_MAX;
        if !out.room(bound) {
            return Ok(());
        }
        let start = out.tail();
        let mut at = Cursor(start);
        // SAFETY: `room` made `bound` bytes at `start` valid for writes: the parts below are the
        // prefix, the price, the quantity, the two time keys and at most `FIXED_MAX` bytes more
        // (each integer's text at most `INT_MAX_LEN`). All are borrowed, none from the output's spare room.
        unsafe {
            at.put(prefix);
            at.put(itoa::Buffer::new().format(self.trade_id).as_bytes());
            at.put(PRICE.as_bytes());
            at.put(price.as_bytes());
            at.put(QTY.as_bytes());
            at.put(qty.as_bytes());
            at.put(match self.side {
                Side::Sell => SELL.as_bytes(),
                Side::Buy => BUY.as_bytes(),
            });
            at.put(trade_time.as_bytes());
            at.put(itoa::Buffer::new().format(self.trade_time_ms).as_bytes());
            at.put(event_time.as_bytes());
            at.put(itoa::Buffer::new().format(self.event_time_ms).as_bytes());
            at.put(RECV.as_bytes());
            at.put(itoa::Buffer::new().format(recv_time_ns).as_bytes());
            if backfilled {
                at.put(BACKFILLED.as_bytes());
            }
            at.put(b"}");
        }
        let written = at.0 as usize - start as usize;
        debug_assert!(written <= bound, "{written} > {bound}");
        // SAFETY: the `written` bytes at the tail were written above, within the room asked for.
        unsafe { out.advance(written) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Prefixes, Record};
    use super::*;

    fn trade(id: i64, time: i64, side: Side) -> Record<'static> {
        Record::Trade(Trade {
            exchange: "binance",
            symbol: "BTCUSDT",
            trade_id: id,
            price: "123456789012.123456789".into(),
            qty: "0.00000001".into(),
            side,
            trade_time_ms: time,
            event_time_ms: time,
        })
    }

    /// At the integers' longest, in both units, both sides, backfilled or not: the record from
    /// one reservation is the record written field by field, and within the room it asked for.
    #[test]
    fn a_trade_at_its_longest_is_written_within_its_bound_as_field_by_field() {
        let prefixes = Prefixes::new("binance", ["BTCUSDT"]);
        for (id, time, recv) in [(i64::MIN, i64::MIN, u64::MAX), (i64::MAX, i64::MAX, 0), (0, -1, 1)] {
            for side in [Side::Buy, Side::Sell] {
                let r = trade(id, time, side);
                let prefix = prefixes.of(&r, 0).expect("the symbol's prefix");
                for unit in [TimeUnit::Millis, TimeUnit::Micros] {
                    for backfilled in [false, true] {
                        let (mut fast, mut slow) = (Vec::new(), Vec::new());
                        r.encode_to(Some(prefix), unit, recv, backfilled, &mut fast).unwrap();
                        r.encode_to(None, unit, recv, backfilled, &mut slow).unwrap();
                        assert_eq!(String::from_utf8(fast.clone()).unwrap(), String::from_utf8(slow).unwrap());
                        let Record::Trade(t) = r else { unreachable!() };
                        let keys = kt!(unit, "trade_time").len() + kt!(unit, "event_time").len();
                        let bound = prefix.len() + t.price.as_str().len() + t.qty.as_str().len() + keys + FIXED_MAX;
                        assert!(fast.len() <= bound, "{} > {bound}", fast.len());
                    }
                }
            }
        }
    }

    /// An output of a fixed size, as the ring's window is.
    struct Fixed {
        buf: Vec<u8>,
        len: usize,
        full: bool,
    }

    impl Out for Fixed {
        fn room(&mut self, n: usize) -> bool {
            let fits = n <= self.buf.len() - self.len;
            self.full |= !fits;
            fits
        }
        fn tail(&mut self) -> *mut u8 {
            self.buf[self.len..].as_mut_ptr()
        }
        unsafe fn advance(&mut self, n: usize) {
            self.len += n;
        }
    }

    /// An output without room for the longest trade takes nothing and remembers it was full;
    /// one with that room takes the record; a refused decimal writes nothing either.
    #[test]
    fn a_trade_goes_whole_into_room_for_its_longest_or_not_at_all() {
        let prefixes = Prefixes::new("binance", ["BTCUSDT"]);
        let r = trade(1, 2, Side::Buy);
        let prefix = prefixes.of(&r, 0).unwrap();
        let Record::Trade(t) = r else { unreachable!() };
        let keys = kt!(TimeUnit::Millis, "trade_time").len() + kt!(TimeUnit::Millis, "event_time").len();
        let bound = prefix.len() + t.price.as_str().len() + t.qty.as_str().len() + keys + FIXED_MAX;
        let mut short = Fixed { buf: vec![0; bound - 1], len: 0, full: false };
        r.encode_to(Some(prefix), TimeUnit::Millis, 3, false, &mut short).unwrap();
        assert_eq!((short.len, short.full), (0, true));
        let mut exact = Fixed { buf: vec![0; bound], len: 0, full: false };
        r.encode_to(Some(prefix), TimeUnit::Millis, 3, false, &mut exact).unwrap();
        let mut expected = Vec::new();
        r.encode(3, false, &mut expected).unwrap();
        assert_eq!((&exact.buf[..exact.len], exact.full), (&expected[..], false));
        let bad = Record::Trade(Trade { price: "1e5".into(), ..t });
        let mut out = Vec::new();
        assert_eq!(
            bad.encode_to(Some(prefix), TimeUnit::Millis, 3, false, &mut out),
            Err(RecordError::BadDecimal(",\"price\":"))
        );
        assert!(out.is_empty());
    }
}
