//! The writer's way of putting a record straight into the ring's free space: the encoder writes
//! where the producer thread reads, and only the length and enqueue time are stamped at commit.
//! Staging the record and copying it in (`push_entire_slice`) was about 360 of an SBE trade's
//! 3,300 instructions.

use std::marker::PhantomData;

use rtrb::chunks::WriteChunkUninit;

use super::{header, RecordMeta, RingWriter, HEADER_LEN};
use crate::record::Out;

impl RingWriter {
    /// Starts a record straight in the ring's free space, with room for a payload of up to
    /// `room` bytes: its header and key are written, the [`Direct`] (an [`Out`]) takes the payload and
    /// [`Direct::commit`] publishes it, with no staging copy. `None` when the ring has fewer free
    /// bytes than that (it may be nearly full: [`RingWriter::stage`] then waits for exactly what
    /// the record needs) or they are not contiguous for the header and key. The window ends at
    /// the end of the ring, so a record near the wrap point may not fit: the caller then stages
    /// it.
    // Inlined always: with a second caller (the fast way of binary trades) the compiler made it
    // a call from `enqueue` too.
    #[inline(always)]
    pub fn direct(&mut self, meta: RecordMeta, key: &[u8], room: usize) -> Option<Direct<'_>> {
        debug_assert!(self.staged.is_empty(), "a staged record goes first");
        let start = HEADER_LEN + key.len();
        let mut chunk = self.prod.write_chunk_uninit(start.saturating_add(room)).ok()?;
        let (first, _) = chunk.as_mut_slices();
        if first.len() < start {
            return None;
        }
        let (cap, at) = (first.len(), first.as_mut_ptr().cast::<u8>());
        let mut h = [0u8; HEADER_LEN];
        header(&mut h, meta, key.len());
        // SAFETY: `at` is valid for `cap >= start` bytes of writes (the chunk's first slice,
        // ours alone while the chunk lives); `h` and `key` are not the ring's memory.
        unsafe {
            at.copy_from_nonoverlapping(h.as_ptr(), HEADER_LEN);
            // A symbol: word moves, not a `memcpy` call (about 15 instructions a record).
            crate::record::copy_short(key, at.add(HEADER_LEN));
        }
        Some(Direct { chunk, window: Window { at, len: start, cap, full: false, _ring: PhantomData } })
    }
}

/// A record being written in the ring's free space ([`RingWriter::direct`]). Dropped without
/// [`Direct::commit`], it leaves nothing behind: the space is not published.
pub struct Direct<'r> {
    chunk: WriteChunkUninit<'r, u8>,
    window: Window<'r>,
}

impl<'r> Direct<'r> {
    /// Publishes the record, stamping its length and enqueue time; false (nothing published)
    /// if its payload did not fit the window.
    #[inline]
    pub fn commit(self, enqueue_ns: u64) -> bool {
        let Window { at, len, full, .. } = self.window;
        if full {
            return false;
        }
        // SAFETY: the header lies within the window (`len >= HEADER_LEN`), written by
        // `direct`; its length and enqueue time are overwritten in place.
        unsafe {
            at.cast::<[u8; 4]>().write_unaligned((len as u32).to_le_bytes());
            at.add(32).cast::<[u8; 8]>().write_unaligned(enqueue_ns.to_le_bytes());
        }
        // SAFETY: the window is the start of the chunk's first slice and its first `len` bytes
        // were all written: header and key by `direct`, the payload through `Out`, which only
        // counts what it wrote.
        unsafe { self.chunk.commit(len) };
        true
    }
}

/// The part of the ring's free space a record is written in: an [`Out`] that refuses, rather
/// than grows, past its end, and remembers that it did.
pub(crate) struct Window<'r> {
    at: *mut u8,
    /// Bytes written from `at`.
    len: usize,
    cap: usize,
    /// A write did not fit: the record must be written elsewhere.
    full: bool,
    _ring: PhantomData<&'r mut [u8]>,
}

/// The payload goes through the record itself, never a handle to its window: two windows of two
/// rings swapped would publish bytes never written.
impl Out for Direct<'_> {
    #[inline(always)]
    fn room(&mut self, n: usize) -> bool {
        self.window.room(n)
    }
    #[inline(always)]
    fn tail(&mut self) -> *mut u8 {
        self.window.tail()
    }
    #[inline(always)]
    unsafe fn advance(&mut self, n: usize) {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.window.advance(n) }
    }
}

impl Out for Window<'_> {
    #[inline(always)]
    fn room(&mut self, n: usize) -> bool {
        let fits = n <= self.cap - self.len;
        self.full |= !fits;
        fits
    }
    #[inline(always)]
    fn tail(&mut self) -> *mut u8 {
        // SAFETY: `len <= cap`: at most one past the window's end.
        unsafe { self.at.add(self.len) }
    }
    #[inline(always)]
    unsafe fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.cap - self.len);
        self.len += n;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ring, RingFull};
    use super::*;
    use crate::record::RecordType;

    fn meta(i: u16) -> RecordMeta {
        RecordMeta { kind: RecordType::Trade, flags: 0, symbol_idx: i, event_time_ms: i as i64, recv_ns: 7 }
    }

    fn write(w: &mut RingWriter, i: u16, payload: &[u8]) -> Result<bool, RingFull> {
        if let Some(mut d) = w.direct(meta(i), b"BTCUSDT", 64) {
            crate::record::put(&mut d, [payload]);
            if d.commit(u64::from(i)) {
                return Ok(true);
            }
        }
        w.stage(meta(i), b"BTCUSDT").extend_from_slice(payload);
        w.commit(u64::from(i)).map(|()| false)
    }

    /// Records written straight into the ring, or staged where the window ends at the wrap
    /// point, read back whole and in order: the reader cannot tell the two ways apart.
    #[test]
    fn direct_records_round_trip_across_the_wrap_point() {
        let (mut w, mut r) = ring(1000);
        let (mut direct, mut staged) = (0, 0);
        for round in 0..300u16 {
            let payload = vec![b'a' + (round % 26) as u8; 1 + (round as usize * 7) % 60];
            if write(&mut w, round, &payload).unwrap() {
                direct += 1;
            } else {
                staged += 1;
            }
            let got = r
                .pop_with(|v| {
                    assert_eq!((v.meta, v.enqueue_ns, v.key), (meta(round), u64::from(round), &b"BTCUSDT"[..]));
                    v.payload.to_vec()
                })
                .unwrap();
            assert_eq!(got, payload, "record {round}");
        }
        assert!(r.pop_with(|_| ()).is_none());
        // Both ways were taken: most records straight in, some at the wrap point staged.
        assert!(direct > 250 && staged > 0, "direct {direct}, staged {staged}");
    }

    #[test]
    fn a_record_that_does_not_fit_its_window_publishes_nothing() {
        let (mut w, mut r) = ring(1000);
        let mut d = w.direct(meta(1), b"K", 8).unwrap();
        crate::record::put(&mut d, [&[1u8; 100][..]]);
        assert!(!d.commit(1));
        // Left without its commit: nothing either.
        {
            let mut d = w.direct(meta(2), b"K", 8).unwrap();
            crate::record::put(&mut d, [&[2u8; 4][..]]);
        }
        assert!(r.pop_with(|_| ()).is_none());
        assert_eq!(w.used_bytes(), 0);
        // The space is still free for the next record.
        let mut d = w.direct(meta(3), b"K", 8).unwrap();
        crate::record::put(&mut d, [&[3u8; 8][..]]);
        assert!(d.commit(3));
        r.pop_with(|v| assert_eq!((v.payload, v.enqueue_ns), (&[3u8; 8][..], 3))).unwrap();
    }

    /// A record encoded into a window is the bytes `encode_in` gives, levels included, and one
    /// that outgrows its window says so instead of publishing a cut record.
    #[test]
    fn a_record_in_a_window_is_the_record_encode_in_writes() {
        use crate::record::{DepthUpdate, Levels, Record, Side, Trade};
        use crate::time_unit::TimeUnit;
        let trade = Record::Trade(Trade {
            exchange: "binance",
            symbol: "BTCUSDT",
            trade_id: 12_345,
            price: "42000.01000000".into(),
            qty: "0.00100000".into(),
            side: Side::Sell,
            trade_time_ms: 1_700_000_000_001,
            event_time_ms: 1_700_000_000_002,
        });
        let depth = Record::DepthUpdate(DepthUpdate {
            exchange: "binance",
            symbol: "BNBBTC",
            first_update_id: 1,
            final_update_id: 2,
            bids: Levels(r#"[ [ "0.0024", "10" ], ["0.0025","0.00000000"] ]"#),
            asks: Levels("[]"),
            event_time_ms: 3,
            prev_final_update_id: None,
            transaction_time_ms: None,
        });
        let (mut w, mut r) = ring(4096);
        for (i, record) in [trade, depth].iter().enumerate() {
            for unit in [TimeUnit::Millis, TimeUnit::Micros] {
                let mut want = Vec::new();
                record.encode_in(unit, 7, i == 1, &mut want).unwrap();
                let mut d = w.direct(meta(1), b"K", 512).unwrap();
                record.encode_to(None, unit, 7, i == 1, &mut d).unwrap();
                assert!(d.commit(1));
                r.pop_with(|v| assert_eq!(v.payload, &want[..])).unwrap();
                // Room for all but its last byte (the window is what was asked for, away from
                // the wrap point): full, nothing published.
                let mut d = w.direct(meta(1), b"K", want.len() - 1).unwrap();
                record.encode_to(None, unit, 7, i == 1, &mut d).unwrap();
                assert!(!d.commit(1));
                assert!(r.pop_with(|_| ()).is_none());
            }
        }
    }

    #[test]
    fn a_nearly_full_ring_has_no_window() {
        let (mut w, _r) = ring(200);
        w.stage(meta(1), b"K").extend_from_slice(&[1; 100]);
        w.commit(1).unwrap();
        // 59 bytes free: less than a header, a key and the room asked for.
        assert!(w.direct(meta(2), b"K", 64).is_none());
    }
}
