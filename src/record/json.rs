//! The JSON writer behind [`super::Record::encode_in`]: static keys, pre-validated values.

use super::{is_decimal, is_word, DecimalText, Levels, RecordError};

/// `,"name":` as one static string, so each field costs a single copy of its key.
macro_rules! k {
    ($name:expr) => {
        concat!(",\"", $name, "\":")
    };
}
pub(super) use k;

/// The key of time field `$base` in `$unit`: `,"<base>_ms":` or `,"<base>_us":`, both static.
macro_rules! kt {
    ($unit:expr, $base:literal) => {
        match $unit {
            TimeUnit::Millis => k!(concat!($base, "_ms")),
            TimeUnit::Micros => k!(concat!($base, "_us")),
        }
    };
}
pub(super) use kt;

/// Appends `"key":value` pairs; keys are static ASCII (written whole, with their comma and
/// colon) and values are pre-validated, so nothing needs escaping.
///
/// Each field reserves room for all of its parts at once and then copies them without a
/// capacity check each ([`put`]), short values by a few word moves instead of a `memcpy` call:
/// the encode was about 1,240 instructions per trade record with a checked `extend_from_slice`
/// (and a `memcpy` call) per part.
pub(super) struct JsonWriter<'o, O: Out + ?Sized> {
    out: &'o mut O,
}

/// Copies `src` to `dst`: 4 to 32 bytes (what a record's parts are) as two overlapping words,
/// 33 to 128 (a record's prefix) as up to four overlapping 32-byte blocks, the rest by
/// `copy_nonoverlapping`.
///
/// # Safety
/// `dst` is valid for `src.len()` bytes of writes and does not overlap `src`.
#[inline(always)]
pub(crate) unsafe fn copy_short(src: &[u8], dst: *mut u8) {
    let (n, s) = (src.len(), src.as_ptr());
    // SAFETY: every read is within `src` and every write within `dst[..n]` (valid, as the caller
    // guarantees): each word or block starts at 0 or later and ends at `n` at the latest (the
    // second of each pair ends at the last byte; the two middle blocks, for 65 to 128 only,
    // start at 32 and at `n - 64` >= 1).
    unsafe {
        if (8..=16).contains(&n) {
            let (a, b) = (s.cast::<u64>().read_unaligned(), s.add(n - 8).cast::<u64>().read_unaligned());
            dst.cast::<u64>().write_unaligned(a);
            dst.add(n - 8).cast::<u64>().write_unaligned(b);
        } else if (17..=32).contains(&n) {
            let (a, b) = (s.cast::<u128>().read_unaligned(), s.add(n - 16).cast::<u128>().read_unaligned());
            dst.cast::<u128>().write_unaligned(a);
            dst.add(n - 16).cast::<u128>().write_unaligned(b);
        } else if (33..=128).contains(&n) {
            // A record's prefix (`{"type":"trade",...,"symbol":"BTCUSDT","trade_id":` is 67
            // bytes): the first and the last 32 bytes, and the first and last 32 of the rest up to
            // 128, where a `memcpy` call cost about 55 instructions a record.
            let copy32 = |at: usize| {
                let (a, b) =
                    (s.add(at).cast::<u128>().read_unaligned(), s.add(at + 16).cast::<u128>().read_unaligned());
                dst.add(at).cast::<u128>().write_unaligned(a);
                dst.add(at + 16).cast::<u128>().write_unaligned(b);
            };
            copy32(0);
            copy32(n - 32);
            if n > 64 {
                copy32(32);
                copy32(n - 64);
            }
        } else if (4..8).contains(&n) {
            let (a, b) = (s.cast::<u32>().read_unaligned(), s.add(n - 4).cast::<u32>().read_unaligned());
            dst.cast::<u32>().write_unaligned(a);
            dst.add(n - 4).cast::<u32>().write_unaligned(b);
        } else {
            std::ptr::copy_nonoverlapping(s, dst, n);
        }
    }
}

/// Where a record is encoded: a growable `Vec` (the ring's staging buffer, tests, backfill) or
/// a fixed window of the ring's free space ([`crate::ring::Direct`]), so that a record can be
/// written where the producer reads it, without a second copy.
pub trait Out {
    /// Makes room for `n` more bytes at [`Out::tail`]; false if this output cannot (a full
    /// window, which then remembers that the record did not fit).
    fn room(&mut self, n: usize) -> bool;
    /// Where the next byte goes.
    fn tail(&mut self) -> *mut u8;
    /// Takes the next `n` bytes as written.
    ///
    /// # Safety
    /// `room(n)` returned true and the `n` bytes at `tail()` have been written since.
    unsafe fn advance(&mut self, n: usize);
}

impl Out for Vec<u8> {
    #[inline(always)]
    fn room(&mut self, n: usize) -> bool {
        self.reserve(n);
        true
    }
    #[inline(always)]
    fn tail(&mut self) -> *mut u8 {
        // SAFETY: `len <= capacity`: one past the last byte at most, within the allocation.
        unsafe { self.as_mut_ptr().add(self.len()) }
    }
    #[inline(always)]
    unsafe fn advance(&mut self, n: usize) {
        // SAFETY: `room(n)` reserved the bytes and the caller wrote them.
        unsafe { self.set_len(self.len() + n) }
    }
}

/// Appends `parts` to `out` after one capacity check for all of them; nothing if `out` has no
/// room for them all (a full window: the caller sees it and encodes elsewhere).
#[inline(always)]
pub(crate) fn put<O: Out + ?Sized, const N: usize>(out: &mut O, parts: [&[u8]; N]) {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if !out.room(total) {
        return;
    }
    let mut at = out.tail();
    for p in parts {
        // SAFETY: `room` made room for `total` bytes at the tail, the sum of the parts'
        // lengths; the parts are borrowed, so they cannot be the output's spare room.
        unsafe {
            copy_short(p, at);
            at = at.add(p.len());
        }
    }
    // SAFETY: the `total` bytes at the tail were all written above.
    unsafe { out.advance(total) };
}

impl<'o, O: Out + ?Sized> JsonWriter<'o, O> {
    /// Starts a record: its type, exchange and symbol, and the key of its first field (the
    /// first value is written next, by a `*_value` method).
    #[inline]
    pub(super) fn begin(out: &'o mut O, ty: &str, exchange: &str, symbol: &str, first_key: &str) -> Self {
        let parts: [&[u8]; 8] = [
            b"{\"type\":\"",
            ty.as_bytes(),
            b"\",\"exchange\":\"",
            exchange.as_bytes(),
            b"\",\"symbol\":\"",
            symbol.as_bytes(),
            b"\"",
            first_key.as_bytes(),
        ];
        put(out, parts);
        JsonWriter { out }
    }
    /// Starts a record with what [`JsonWriter::begin`] wrote for its type, exchange and symbol
    /// before (a [`super::Prefixes`] entry), copied whole.
    #[inline]
    pub(super) fn resume(out: &'o mut O, prefix: &[u8]) -> Self {
        put(out, [prefix]);
        JsonWriter { out }
    }
    /// The first field's value, its key written by `begin`.
    #[inline]
    pub(super) fn int_value(&mut self, v: i64) {
        put(self.out, [itoa::Buffer::new().format(v).as_bytes()]);
    }
    #[inline]
    pub(super) fn str_value(&mut self, v: &str) {
        put(self.out, [b"\"", v.as_bytes(), b"\""]);
    }
    #[inline(always)]
    pub(super) fn dec_value(&mut self, key: &'static str, v: DecimalText<'_>) -> Result<(), RecordError> {
        let v = v.checked().ok_or(RecordError::BadDecimal(key))?;
        self.str_value(v);
        Ok(())
    }
    #[inline]
    pub(super) fn int(&mut self, key: &str, v: i64) {
        put(self.out, [key.as_bytes(), itoa::Buffer::new().format(v).as_bytes()]);
    }
    #[inline]
    pub(super) fn opt_int(&mut self, key: &str, v: Option<i64>) {
        match v {
            Some(v) => self.int(key, v),
            None => put(self.out, [key.as_bytes(), b"null"]),
        }
    }
    /// Writes the field only when there is a value: a field a venue does not send is absent,
    /// not `null`, so adding one for another venue leaves this one's records as they were.
    #[inline]
    pub(super) fn some_int(&mut self, key: &str, v: Option<i64>) {
        if let Some(v) = v {
            self.int(key, v);
        }
    }
    #[inline]
    pub(super) fn uint(&mut self, key: &str, v: u64) {
        put(self.out, [key.as_bytes(), itoa::Buffer::new().format(v).as_bytes()]);
    }
    #[inline]
    pub(super) fn bool(&mut self, key: &str, v: bool) {
        put(self.out, [key.as_bytes(), if v { b"true" } else { b"false" }]);
    }
    #[inline]
    pub(super) fn str(&mut self, key: &str, v: &str) {
        put(self.out, [key.as_bytes(), b"\"", v.as_bytes(), b"\""]);
    }
    /// Inlined always: out of line (two calls a trade) it cost about 50 instructions a trade
    /// more, measured.
    #[inline(always)]
    pub(super) fn dec(&mut self, key: &'static str, v: DecimalText<'_>) -> Result<(), RecordError> {
        let v = v.checked().ok_or(RecordError::BadDecimal(key))?;
        self.str(key, v);
        Ok(())
    }
    #[inline]
    pub(super) fn word(&mut self, key: &'static str, v: &str) -> Result<(), RecordError> {
        if !is_word(v) {
            return Err(RecordError::BadWord(key));
        }
        self.str(key, v);
        Ok(())
    }
    /// Re-encodes `[["price","qty"],...]` compactly straight into the output in one pass.
    pub(super) fn levels(&mut self, key: &'static str, levels: Levels<'_>) -> Result<(), RecordError> {
        use serde::de::DeserializeSeed;
        put(self.out, [key.as_bytes()]);
        let mut writer = LevelsWriter { out: &mut *self.out, bad_decimal: false };
        let mut de = sonic_rs::Deserializer::from_str(levels.0);
        let parsed = (&mut writer).deserialize(&mut de).and_then(|_| de.end());
        match parsed {
            Ok(()) => Ok(()),
            Err(_) if writer.bad_decimal => Err(RecordError::BadDecimal(key)),
            Err(_) => Err(RecordError::BadLevels),
        }
    }
    #[inline]
    pub(super) fn end(self) {
        put(self.out, [b"}"]);
    }
}

/// A serde visitor that writes each validated `[price, qty]` pair as it is read.
struct LevelsWriter<'o, O: Out + ?Sized> {
    out: &'o mut O,
    bad_decimal: bool,
}

impl<'de, O: Out + ?Sized> serde::de::Visitor<'de> for &mut LevelsWriter<'_, O> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of [price, qty] string pairs")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        put(self.out, [b"["]);
        let mut first = true;
        while let Some((p, q)) = seq.next_element::<(&'de str, &'de str)>()? {
            if !is_decimal(p) || !is_decimal(q) {
                self.bad_decimal = true;
                return Err(serde::de::Error::custom("not a decimal"));
            }
            let sep: &[u8] = if first { b"[\"" } else { b",[\"" };
            first = false;
            put(self.out, [sep, p.as_bytes(), b"\",\"", q.as_bytes(), b"\"]"]);
        }
        put(self.out, [b"]"]);
        Ok(())
    }
}

impl<'de, O: Out + ?Sized> serde::de::DeserializeSeed<'de> for &mut LevelsWriter<'_, O> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

#[cfg(test)]
mod tests {
    use super::{copy_short, put};

    /// Every length, through each word-wise case and past them, copies exactly its bytes from a
    /// source of exactly that length (a read past its end would leave the slice) into a
    /// destination whose bytes around the copy must stay as they were.
    #[test]
    fn parts_of_every_length_are_copied_exactly() {
        const GUARD: usize = 64;
        let pattern: Vec<u8> = (0..200u8).map(|i| i.wrapping_mul(37).wrapping_add(1)).collect();
        for n in 0..=160 {
            let src = pattern[..n].to_vec();
            let mut dst = vec![0xee; GUARD + n + GUARD];
            // SAFETY: `dst[GUARD..GUARD + n]` is valid for `n` writes and a separate allocation.
            unsafe { copy_short(&src, dst.as_mut_ptr().add(GUARD)) };
            assert_eq!(dst[GUARD..GUARD + n], src[..], "{n}");
            assert!(dst[..GUARD].iter().chain(&dst[GUARD + n..]).all(|&b| b == 0xee), "{n}: written outside");
        }
        // Through `put`, after what the output held.
        for n in [0, 7, 31, 33, 67, 128, 129] {
            let mut out = vec![0xee; 3];
            put(&mut out, [&pattern[..n], b"!"]);
            assert_eq!(out.len(), 3 + n + 1, "{n}");
            assert_eq!(out[3..3 + n], pattern[..n], "{n}");
            assert_eq!(out[..3], [0xee; 3], "{n}");
        }
    }
}
