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

/// The most bytes a trade takes besides its prefix, price, quantity and tail (from its trade
/// time to its receive time, [`TAIL_MAX`] at most): the id at its longest, the keys of price,
/// quantity and side with their punctuation, the longer side, `backfilled` and the brace.
pub(super) const FIXED_MAX: usize =
    INT_MAX_LEN + PRICE.len() + QTY.len() + max(SELL.len(), BUY.len()) + BACKFILLED.len() + 1;

/// The longest tail: both time keys (as long in either unit), the receive time's, and three
/// integers at their longest.
const TAIL_MAX: usize = kt!(TimeUnit::Micros, "trade_time").len()
    + kt!(TimeUnit::Micros, "event_time").len()
    + RECV.len()
    + 3 * INT_MAX_LEN;

const _: () = assert!(
    kt!(TimeUnit::Millis, "trade_time").len() == kt!(TimeUnit::Micros, "trade_time").len()
        && kt!(TimeUnit::Millis, "event_time").len() == kt!(TimeUnit::Micros, "event_time").len()
);

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

    /// `,"trade_time_<unit>":T,"event_time_<unit>":E,"recv_time_ns":R`.
    ///
    /// # Safety
    /// The cursor is valid for [`TAIL_MAX`] bytes of writes.
    #[inline(always)]
    unsafe fn put_tail(&mut self, unit: TimeUnit, trade_time: i64, event_time: i64, recv_time_ns: u64) {
        // SAFETY: the caller's promise: the keys and three integers of at most `INT_MAX_LEN`
        // are `TAIL_MAX` at most.
        unsafe {
            self.put(kt!(unit, "trade_time").as_bytes());
            self.put(itoa::Buffer::new().format(trade_time).as_bytes());
            self.put(kt!(unit, "event_time").as_bytes());
            self.put(itoa::Buffer::new().format(event_time).as_bytes());
            self.put(RECV.as_bytes());
            self.put(itoa::Buffer::new().format(recv_time_ns).as_bytes());
        }
    }
}

/// A trade record's tail, from its trade time to its receive time, written once for every trade
/// that shares it: the trades of one SBE trade event (one taker order's fills) share their times
/// and their frame's receive time, and three integers are a quarter of a trade's encoding. On the
/// recorded BTCUSDT day, 6,516 of 9,757 trades have the trade time and side of the trade before
/// them (`scripts/trade_runs.py`): two thirds of trades find their tail here. A few cache lines
/// (`TAIL_MAX` bytes and the key), one per pipeline.
#[derive(Clone, Copy, Debug)]
pub struct TradeTail {
    /// The trade time, event time and receive time `bytes` were written for, and their unit;
    /// `None` before the first.
    key: Option<(i64, i64, u64, TimeUnit)>,
    len: usize,
    bytes: [u8; TAIL_MAX],
}

impl Default for TradeTail {
    fn default() -> Self {
        TradeTail { key: None, len: 0, bytes: [0; TAIL_MAX] }
    }
}

impl TradeTail {
    /// The tail of a trade with these times, received at `recv_time_ns`: written again only when
    /// one differs from the last call's.
    #[cfg(test)]
    fn of(&mut self, unit: TimeUnit, trade_time: i64, event_time: i64, recv_time_ns: u64) -> &[u8] {
        let key = (trade_time, event_time, recv_time_ns, unit);
        if self.key != Some(key) {
            self.write(key);
        }
        &self.bytes[..self.len]
    }

    /// `trade` after `prefix`, as `Trade::encode_after` writes it: with the tail kept here if
    /// it is this trade's, else written here first when `more` trades of its event follow (they
    /// share it), else straight into the output (a trade alone in its event: copying its tail
    /// through here would cost it about 60 instructions).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn encode<O: Out + ?Sized>(
        &mut self,
        trade: &Trade<'_>,
        prefix: &[u8],
        unit: TimeUnit,
        recv_time_ns: u64,
        backfilled: bool,
        more: bool,
        out: &mut O,
    ) -> Result<(), RecordError> {
        let key = (trade.trade_time_ms, trade.event_time_ms, recv_time_ns, unit);
        if self.key != Some(key) {
            if !more {
                return trade.encode_after(prefix, unit, recv_time_ns, backfilled, out);
            }
            self.write(key);
        }
        trade.encode_after_tail(prefix, &self.bytes[..self.len], backfilled, out)
    }

    #[inline(always)]
    fn write(&mut self, key: (i64, i64, u64, TimeUnit)) {
        let (trade_time, event_time, recv_time_ns, unit) = key;
        let mut at = Cursor(self.bytes.as_mut_ptr());
        // SAFETY: `bytes` is `TAIL_MAX` long, and no part is borrowed from it.
        unsafe { at.put_tail(unit, trade_time, event_time, recv_time_ns) };
        self.len = at.0 as usize - self.bytes.as_ptr() as usize;
        self.key = Some(key);
    }
}

/// A trade's tail as `Trade::write` takes it.
#[derive(Clone, Copy)]
enum Tail<'t> {
    /// To be written from the trade's times in this unit, and this receive time.
    Times(TimeUnit, u64),
    /// Written already ([`TradeTail`]).
    Written(&'t [u8]),
}

impl Trade<'_> {
    /// The record as [`super::Record::encode_to`] writes it field by field, after `prefix` (its
    /// [`super::Prefixes::trade`], which ends with the `trade_id` key). Nothing is written if the
    /// output has no room for the longest such record (a full window, which remembers it).
    #[inline(always)]
    pub(super) fn encode_after<O: Out + ?Sized>(
        &self,
        prefix: &[u8],
        unit: TimeUnit,
        recv_time_ns: u64,
        backfilled: bool,
        out: &mut O,
    ) -> Result<(), RecordError> {
        self.write(prefix, Tail::Times(unit, recv_time_ns), backfilled, out)
    }

    /// [`Trade::encode_after`] with its tail already written (by a [`TradeTail`], for this
    /// trade's times in the unit its record carries, and its receive time).
    #[inline(always)]
    fn encode_after_tail<O: Out + ?Sized>(
        &self,
        prefix: &[u8],
        tail: &[u8],
        backfilled: bool,
        out: &mut O,
    ) -> Result<(), RecordError> {
        self.write(prefix, Tail::Written(tail), backfilled, out)
    }

    /// One reservation for the longest record with this tail. (An enum, not a closure: each
    /// caller's is known where this is inlined, and a closure was left a call.)
    #[inline(always)]
    fn write<O: Out + ?Sized>(
        &self,
        prefix: &[u8],
        tail: Tail<'_>,
        backfilled: bool,
        out: &mut O,
    ) -> Result<(), RecordError> {
        let price = self.price.checked().ok_or(RecordError::BadDecimal(k!("price")))?;
        let qty = self.qty.checked().ok_or(RecordError::BadDecimal(k!("qty")))?;
        let tail_max = match tail {
            Tail::Times(..) => TAIL_MAX,
            Tail::Written(t) => t.len(),
        };
        let bound = prefix.len() + price.len() + qty.len() + tail_max + FIXED_MAX;
        if !out.room(bound) {
            return Ok(());
        }
        let start = out.tail();
        let mut at = Cursor(start);
        // SAFETY: `room` made `bound` bytes at `start` valid for writes: the parts below are the
        // prefix, the price, the quantity, the tail (`tail_max` at most: `put_tail` writes at
        // most `TAIL_MAX`) and at most `FIXED_MAX` bytes more (the id's text at most
        // `INT_MAX_LEN`). None is borrowed from the output's spare room.
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
            match tail {
                Tail::Times(unit, recv_time_ns) => {
                    at.put_tail(unit, self.trade_time_ms, self.event_time_ms, recv_time_ns)
                }
                // Not the output's: a `TradeTail`'s bytes.
                Tail::Written(t) => at.put(t),
            }
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
                        let bound = prefix.len() + t.price.as_str().len() + t.qty.as_str().len() + TAIL_MAX + FIXED_MAX;
                        assert!(fast.len() <= bound, "{} > {bound}", fast.len());
                        // The same after a tail written once, for this trade or one before it,
                        // and through `TradeTail::encode` whether trades follow or not.
                        let mut tails = TradeTail::default();
                        let _ = tails.of(unit, 0, 0, 0);
                        for _ in 0..2 {
                            let mut cached = Vec::new();
                            let tail = tails.of(unit, t.trade_time_ms, t.event_time_ms, recv);
                            t.encode_after_tail(prefix, tail, backfilled, &mut cached).unwrap();
                            assert_eq!(cached, fast);
                        }
                        for more in [false, true, true, false] {
                            let (mut tails, mut kept) = (TradeTail::default(), Vec::new());
                            tails.encode(&t, prefix, unit, recv, backfilled, more, &mut kept).unwrap();
                            assert_eq!(kept, fast, "more: {more}");
                            assert_eq!(tails.key.is_some(), more, "kept only for trades that follow");
                        }
                    }
                }
            }
        }
    }

    /// A tail is written again when any of its times, its receive time or its unit differs.
    #[test]
    fn a_trade_tail_is_the_one_of_its_times_and_unit() {
        let mut tails = TradeTail::default();
        let mut last = Vec::new();
        for (unit, t, e, r) in [
            (TimeUnit::Millis, 1, 2, 3),
            (TimeUnit::Millis, 1, 2, 3),
            (TimeUnit::Millis, 9, 2, 3),
            (TimeUnit::Millis, 9, 8, 3),
            (TimeUnit::Millis, 9, 8, 7),
            (TimeUnit::Micros, 9, 8, 7),
            (TimeUnit::Micros, i64::MIN, i64::MIN, u64::MAX),
        ] {
            let (tk, ek) = (kt!(unit, "trade_time"), kt!(unit, "event_time"));
            let expected = format!("{tk}{t}{ek}{e}{RECV}{r}");
            let tail = tails.of(unit, t, e, r).to_vec();
            assert_eq!(String::from_utf8(tail.clone()).unwrap(), expected);
            assert!(tail.len() <= TAIL_MAX);
            last = tail;
        }
        assert_eq!(last.len(), TAIL_MAX, "the longest tail is TAIL_MAX long");
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
        let bound = prefix.len() + t.price.as_str().len() + t.qty.as_str().len() + TAIL_MAX + FIXED_MAX;
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
