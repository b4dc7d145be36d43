//! SBE's decimals (an `int64` mantissa and the message's `int8` exponent: value = mantissa ×
//! 10^exponent) and their exact text at a fixed number of fractional digits, the form Binance's
//! JSON streams send (`"1234.56000000"` for a symbol quoted with 8 decimals).
//!
//! The text is exact or refused: [`Decimal::write_fixed`] never rounds and never truncates a
//! non-zero digit. A value with more significant fractional digits than the scale asked for is
//! [`FormatError::Inexact`]; zeros beyond the scale are dropped, missing ones are padded.

/// A decimal as SBE carries it: value = `mantissa` × 10^`exponent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    /// The `mantissa64` field.
    pub mantissa: i64,
    /// The message's `exponent8` field for it (`priceExponent` or `qtyExponent`).
    pub exponent: i8,
}

/// The longest text [`Decimal::write_fixed`] can produce: a sign, the 19 digits of `i64::MIN`'s
/// magnitude, 127 zeros of the largest exponent, a point and 255 fractional digits. A buffer this
/// long never fails with [`FormatError::BufferTooSmall`].
pub const MAX_TEXT_LEN: usize = 1 + 19 + 127 + 1 + 255;

/// Why [`Decimal::write_fixed`] wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The value has a non-zero digit beyond `scale` fractional digits: rounding it would change
    /// the price, so it is refused.
    #[error("{mantissa}e{exponent} has non-zero digits beyond {scale} decimals")]
    Inexact {
        /// The mantissa.
        mantissa: i64,
        /// The exponent.
        exponent: i8,
        /// The scale asked for.
        scale: u8,
    },
    /// The caller's buffer is shorter than the text.
    #[error("the text needs {need} bytes, the buffer has {have}")]
    BufferTooSmall {
        /// The text's length.
        need: usize,
        /// The buffer's length.
        have: usize,
    },
}

impl Decimal {
    /// The decimal `mantissa` × 10^`exponent`.
    pub const fn new(mantissa: i64, exponent: i8) -> Self {
        Decimal { mantissa, exponent }
    }

    /// `(mantissa, exponent)`.
    pub const fn parts(self) -> (i64, i8) {
        (self.mantissa, self.exponent)
    }

    /// Writes the exact value with `scale` fractional digits (none and no point for 0) into the
    /// start of `out` and returns the length written: mantissa 123456, exponent -2, scale 8 →
    /// `1234.56000000`; -5, 0, 2 → `-5.00`; 7, 3, 0 → `7000`; 5, -3, 2 → refused (0.005 has
    /// three decimals). A negative value gets a `-`. Nothing is written on error. No allocation.
    ///
    /// The digits go straight to their places (integer part, point, fraction, padding zeros),
    /// eight at a time in a word where there are that many, split by constant divisions (no
    /// `div` instruction), and the zeros by a few word stores, with no library call. A buffer
    /// of at least [`SHORT_ROOM`] bytes may be written past the text's end (the common shapes
    /// are stored a whole word at a time), never past the buffer's.
    // Inlined always, with `write_fixed_str`: see there.
    #[inline(always)]
    pub fn write_fixed(self, scale: u8, out: &mut [u8]) -> Result<usize, FormatError> {
        if let Some(n) = self.write_fixed_short(scale, out) {
            return Ok(n);
        }
        self.write_fixed_any(scale, out)
    }

    /// [`Decimal::write_fixed`] for the shape nearly every price and quantity has: at most
    /// eight integer digits, a scale of 1 to 8 and an exponent from `-scale` to 0 (no zero to
    /// drop, none to add before the point), into a buffer of at least [`SHORT_ROOM`] bytes. The
    /// value is taken in units of 10^-8 (one multiply), split by the constant 10^8 into the
    /// integer part and eight fractional digits, each turned into one word of [`eight_digits`]
    /// and stored whole: the fraction's digits past the scale are zeros (the exponent asked for
    /// no more), so its word is stored as it is and only `scale` of its bytes counted; the integer
    /// word is shifted past its leading zeros, counted in the word itself. About half the
    /// instructions of the general way (bench-results/sbe-trade-bench-s11/). `None`, with nothing
    /// written, for any other shape. It may write bytes of `out` after the text's end (up to
    /// [`SHORT_ROOM`]).
    #[inline(always)]
    fn write_fixed_short(self, scale: u8, out: &mut [u8]) -> Option<usize> {
        let frac = usize::from(self.exponent.checked_neg().and_then(|f| u8::try_from(f).ok())?);
        let scale = usize::from(scale);
        if !(1..=8).contains(&scale) || frac > scale || out.len() < SHORT_ROOM {
            return None;
        }
        let m = self.mantissa.unsigned_abs();
        // The integer part, m / 10^frac, below 10^8.
        if m >= POW10[8 + frac] {
            return None;
        }
        // Below 10^16: the value in units of 10^-8.
        let units = m * POW10[8 - frac];
        let (int, fraction) = ((units / 100_000_000) as u32, (units % 100_000_000) as u32);
        const ZEROS: u64 = u64::from_le_bytes(*b"00000000");
        let int_word = u64::from_le_bytes(eight_digits(int));
        // Byte 0 is the first digit: the leading zeros are the low bytes equal to `0`, all
        // eight for 0, which keeps one.
        let leading = ((int_word ^ ZEROS).trailing_zeros() / 8).min(7) as usize;
        let int_digits = 8 - leading;
        let sign = usize::from(self.mantissa < 0);
        if sign == 1 {
            out[0] = b'-';
        }
        out[sign..sign + 8].copy_from_slice(&(int_word >> (8 * leading)).to_le_bytes());
        let point = sign + int_digits;
        out[point] = b'.';
        out[point + 1..point + 9].copy_from_slice(&eight_digits(fraction));
        Some(point + 1 + scale)
    }

    /// [`Decimal::write_fixed`] for every shape: out of line, so that the short way inlined into
    /// its callers does not take this along.
    #[inline(never)]
    fn write_fixed_any(self, scale: u8, out: &mut [u8]) -> Result<usize, FormatError> {
        let inexact = FormatError::Inexact { mantissa: self.mantissa, exponent: self.exponent, scale };
        let negative = self.mantissa < 0;
        let mut m = self.mantissa.unsigned_abs();
        let scale = usize::from(scale);
        // value = m × 10^shift / 10^frac.
        let (mut frac, shift) = match self.exponent {
            // Zero has no digits to shift or drop, whatever the exponent.
            _ if m == 0 => (0usize, 0usize),
            e if e >= 0 => (0, usize::from(e.unsigned_abs())),
            e => (usize::from(e.unsigned_abs()), 0),
        };
        if frac > scale {
            // Only zeros may go: they are the value's representation, not its digits. A
            // non-zero mantissa is below 10^20, so dropping 20 digits or more drops a non-zero.
            let (kept, dropped) = split_pow10(m, frac - scale).ok_or(inexact)?;
            if dropped != 0 {
                return Err(inexact);
            }
            m = kept;
            frac = scale;
        }
        // Below 10^20: 20 fractional digits or more leave no integer part.
        let (int, fraction) = split_pow10(m, frac).unwrap_or((0, m));
        let int_digits = int.checked_ilog10().map_or(0, |d| d as usize + 1);
        let sign = usize::from(negative);
        let int_len = if int_digits == 0 { 1 } else { int_digits + shift };
        let need = sign + int_len + if scale > 0 { 1 + scale } else { 0 };
        let have = out.len();
        let Some(out) = out.get_mut(..need) else {
            return Err(FormatError::BufferTooSmall { need, have });
        };
        if negative {
            out[0] = b'-';
        }
        let point = sign + int_len;
        if int_digits == 0 {
            out[sign] = b'0';
        } else {
            digits(int, &mut out[sign..sign + int_digits]);
            zeros(&mut out[sign + int_digits..point]);
        }
        if scale > 0 {
            out[point] = b'.';
            // The fraction's leading zeros (5e-3 → 0.005) are its digits' own; then the padding
            // up to the scale.
            digits(fraction, &mut out[point + 1..point + 1 + frac]);
            zeros(&mut out[point + 1 + frac..]);
        }
        Ok(need)
    }

    /// [`Decimal::write_fixed`]'s text: what it wrote at the start of `out`, as a [`FixedText`]
    /// (a `&str`, taken without a UTF-8 check: it writes ASCII only).
    // Inlined always, as `write_fixed`: left to the compiler, it was a call (two an SBE trade)
    // returning its `Result` through memory, 44 instructions a trade more than inlined
    // (bench-results/sbe-trade-bench-s13/). The rare shapes stay out of line (`write_fixed_any`).
    #[inline(always)]
    pub fn write_fixed_str(self, scale: u8, out: &mut [u8]) -> Result<FixedText<'_>, FormatError> {
        let n = self.write_fixed(scale, out)?;
        let text = &out[..n];
        debug_assert!(text.iter().all(|&b| b.is_ascii_digit() || b == b'-' || b == b'.'));
        // SAFETY: `write_fixed` writes only `-`, `.` and digits: ASCII, so UTF-8.
        Ok(FixedText(unsafe { core::str::from_utf8_unchecked(text) }))
    }
}

/// Text that [`Decimal::write_fixed_str`] wrote, and only that: its field is private, so holding
/// one proves the text is a plain decimal — an optional `-`, at least one integer digit, and a
/// `.` followed by at least one digit when the scale is not 0 — whose length is at most the
/// buffer it was written into. A consumer that checks decimal text it was sent (a record
/// encoder) can take this without checking it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FixedText<'a>(&'a str);

impl<'a> FixedText<'a> {
    /// The text.
    pub const fn as_str(self) -> &'a str {
        self.0
    }
}

/// The buffer [`Decimal::write_fixed`] takes the short way into: a sign, eight integer digits,
/// the point and eight fractional digits, each part stored as a whole word.
pub const SHORT_ROOM: usize = 1 + 8 + 1 + 8;

/// `(m / 10^k, m % 10^k)` for `k` up to 19, `None` above. Each power's division is by a
/// constant (a multiply and shifts), where dividing by a power looked up at run time was a `div`
/// instruction per decimal, among the slowest an x86 core has (tens of cycles for 64 bits).
#[inline]
fn split_pow10(m: u64, k: usize) -> Option<(u64, u64)> {
    macro_rules! by_constant {
        ($($k:literal)*) => {
            match k {
                0 => Some((m, 0)),
                $($k => {
                    const P: u64 = POW10[$k];
                    Some((m / P, m % P))
                })*
                _ => None,
            }
        };
    }
    by_constant!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19)
}

/// 10^i for every power a u64 holds.
const POW10: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// "00", "01", ... "99".
const PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Writes the last `out.len()` decimal digits of `v` (leading zeros included): eight at a time
/// ([`eight_digits`]), then two at a time.
#[inline]
fn digits(mut v: u64, out: &mut [u8]) {
    let mut end = out.len();
    while end >= 8 {
        out[end - 8..end].copy_from_slice(&eight_digits((v % 100_000_000) as u32));
        v /= 100_000_000;
        end -= 8;
    }
    while end >= 2 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        out[end - 2..end].copy_from_slice(&PAIRS[d..d + 2]);
        end -= 2;
    }
    if end == 1 {
        out[0] = b'0' + (v % 10) as u8;
    }
}

/// The eight decimal digits of `v` (below 10^8, leading zeros included) in order, computed in
/// all places of one word at once: two halves of four digits in 32-bit lanes, split into pairs
/// in 16-bit lanes (÷ 100 as × 10486 >> 20, exact below 10^4), then into digits in bytes (÷ 10
/// as × 103 >> 10, exact below 100). No lane's product reaches the next lane. Four rounds of
/// the pair table took about twice the instructions (a fraction at Binance's 8 decimals is
/// exactly this).
#[inline]
fn eight_digits(v: u32) -> [u8; 8] {
    let x = u64::from(v / 10_000) | u64::from(v % 10_000) << 32;
    let hundreds = ((x * 10_486) >> 20) & 0x0000_007f_0000_007f;
    let pairs = hundreds | (x - 100 * hundreds) << 16;
    let tens = ((pairs * 103) >> 10) & 0x000f_000f_000f_000f;
    let digits = tens | (pairs - 10 * tens) << 8;
    (digits | 0x3030_3030_3030_3030).to_le_bytes()
}

/// Fills `out` with `0`s: up to 16 by two overlapping stores (a decimal pads a few), no
/// `memset` call.
#[inline]
fn zeros(out: &mut [u8]) {
    let n = out.len();
    match n {
        0 => {}
        1 => out[0] = b'0',
        2..=3 => {
            out[..2].copy_from_slice(b"00");
            out[n - 2..].copy_from_slice(b"00");
        }
        4..=7 => {
            out[..4].copy_from_slice(b"0000");
            out[n - 4..].copy_from_slice(b"0000");
        }
        8..=16 => {
            out[..8].copy_from_slice(b"00000000");
            out[n - 8..].copy_from_slice(b"00000000");
        }
        _ => out.fill(b'0'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: i64, e: i8, scale: u8) -> Result<String, FormatError> {
        let mut buf = [0u8; MAX_TEXT_LEN];
        let n = Decimal::new(m, e).write_fixed(scale, &mut buf)?;
        Ok(String::from_utf8(buf[..n].to_vec()).unwrap())
    }

    #[test]
    fn exact_text_at_the_scale() {
        let cases: &[(i64, i8, u8, &str)] = &[
            (123456, -2, 8, "1234.56000000"),
            (123456, -2, 2, "1234.56"),
            (123456, 0, 2, "123456.00"),
            (7, 3, 0, "7000"),
            (7, 3, 2, "7000.00"),
            (5, -3, 3, "0.005"),
            (5, -3, 8, "0.00500000"),
            (-5, 0, 2, "-5.00"),
            (-5, -3, 4, "-0.0050"),
            (0, -8, 8, "0.00000000"),
            (0, 0, 0, "0"),
            (0, 5, 1, "0.0"),
            (100, -2, 0, "1"),
            (1_000_000, -8, 2, "0.01"),
            (2_500_000_000, -8, 8, "25.00000000"),
            (120_000, -8, 4, "0.0012"),
            (123_400, -8, 6, "0.001234"),
            (0, -3, 1, "0.0"),
            (i64::MAX, 0, 0, "9223372036854775807"),
            (i64::MIN, 0, 1, "-9223372036854775808.0"),
            (i64::MIN, -19, 19, "-0.9223372036854775808"),
            (1, -128, 128, &format!("0.{}1", "0".repeat(127))),
        ];
        for &(m, e, s, want) in cases {
            assert_eq!(text(m, e, s).as_deref(), Ok(want), "{m}e{e} at scale {s}");
        }
    }

    #[test]
    fn the_text_is_what_write_fixed_wrote() {
        let mut buf = [0u8; MAX_TEXT_LEN];
        assert_eq!(Decimal::new(-123456, -2).write_fixed_str(8, &mut buf).map(FixedText::as_str), Ok("-1234.56000000"));
        assert_eq!(
            Decimal::new(5, -3).write_fixed_str(2, &mut buf).map(FixedText::as_str),
            Err(FormatError::Inexact { mantissa: 5, exponent: -3, scale: 2 })
        );
    }

    /// The word-wide eight digits are the digits, at every place: a sweep of values below 10^8
    /// and every power of ten and its neighbours.
    #[test]
    fn eight_digits_are_the_digits() {
        let mut values: Vec<u32> = (0..100_000_000).step_by(9_973).collect();
        for p in 0..8 {
            let t = 10u32.pow(p);
            values.extend([t - 1, t, t + 1, 99_999_999 - t]);
        }
        values.extend([99_999_999, 12_345_678, 90_000_009]);
        for v in values {
            assert_eq!(eight_digits(v), *format!("{v:08}").as_bytes(), "{v}");
        }
    }

    #[test]
    fn inexact_values_are_refused_not_rounded() {
        for (m, e, s) in
            [(5, -3, 2), (123_400, -8, 4), (123456, -2, 1), (123456, -2, 0), (1, -128, 127), (i64::MIN, -19, 18)]
        {
            assert_eq!(
                text(m, e, s),
                Err(FormatError::Inexact { mantissa: m, exponent: e, scale: s }),
                "{m}e{e} at scale {s}"
            );
        }
    }

    #[test]
    fn the_longest_text_fits_max_text_len_and_a_short_buffer_is_refused() {
        let longest = text(i64::MIN, 127, 255).unwrap();
        assert_eq!(longest.len(), MAX_TEXT_LEN);
        let mut small = [b'x'; 12];
        assert_eq!(
            Decimal::new(123456, -2).write_fixed(8, &mut small),
            Err(FormatError::BufferTooSmall { need: 13, have: 12 })
        );
        assert_eq!(small, [b'x'; 12], "nothing written on error");
        let mut exact = [0u8; 13];
        assert_eq!(Decimal::new(123456, -2).write_fixed(8, &mut exact), Ok(13));
    }

    /// The short way writes what the general way writes, for every shape it takes, and takes
    /// the shapes Binance sends: a grid of mantissas around every power of ten and the limits,
    /// every exponent from -10 to 1 and every scale from 0 to 10, into buffers at and around
    /// [`SHORT_ROOM`].
    #[test]
    fn the_short_way_is_the_general_way() {
        let mut mantissas = vec![0i64, 1, 7, 42, 12_345, 4_200_012_000_000, 9_999_999_999_999_999, i64::MAX];
        for p in 0..19 {
            let t = 10i64.pow(p);
            mantissas.extend([t - 1, t, t + 1, 5 * t, 9 * t + 9]);
        }
        let mantissas: Vec<i64> = mantissas.iter().flat_map(|&m| [m, -m]).chain([i64::MIN]).collect();
        let (mut short, mut seen) = (0, 0);
        for &m in &mantissas {
            for e in -10i8..=1 {
                for scale in 0u8..=10 {
                    for room in [SHORT_ROOM - 1, SHORT_ROOM, 64] {
                        let d = Decimal::new(m, e);
                        let (mut a, mut b) = (vec![b'x'; room], vec![b'x'; room]);
                        let any = d.write_fixed_any(scale, &mut a);
                        match d.write_fixed_short(scale, &mut b) {
                            Some(n) => {
                                assert_eq!(any, Ok(n), "{m}e{e} at {scale}");
                                assert_eq!(a[..n], b[..n], "{m}e{e} at {scale}");
                                short += 1;
                            }
                            None => assert_eq!(b, vec![b'x'; room], "{m}e{e} at {scale}: written, then refused"),
                        }
                        assert_eq!(d.write_fixed(scale, &mut b), any);
                        seen += 1;
                    }
                }
            }
        }
        assert!(short > 5_000, "{short} of {seen} took the short way");
        // Binance's shapes: 8 decimals of a price and a quantity, either sign.
        let mut buf = [0u8; 64];
        for (m, e) in [(4_200_012_000_000, -8), (1, -8), (9_999_999_999_999_999, -8), (-5, -2), (0, -8)] {
            assert!(Decimal::new(m, e).write_fixed_short(8, &mut buf).is_some(), "{m}e{e}");
        }
    }

    /// Every mantissa/exponent/scale of a grid round-trips through the text: parsing it back
    /// (as an integer count of 10^-scale units) gives the value exactly.
    #[test]
    fn text_parses_back_to_the_value() {
        for m in [0i64, 1, -1, 9, 10, 99, 100, 12345, -12345, 10_000_000_000, 999_999_999_999_999_999] {
            for e in -12i8..=6 {
                for s in 0u8..=12 {
                    let Ok(t) = text(m, e, s) else { continue };
                    let digits: String = t.chars().filter(|c| c.is_ascii_digit()).collect();
                    let units: i128 = digits.parse::<i128>().unwrap() * if t.starts_with('-') { -1 } else { 1 };
                    // value × 10^s = m × 10^(e+s)
                    let p = i32::from(e) + i32::from(s);
                    let (lhs, rhs) = if p >= 0 {
                        (units, i128::from(m) * 10i128.pow(p as u32))
                    } else {
                        (units * 10i128.pow((-p) as u32), i128::from(m))
                    };
                    assert_eq!(lhs, rhs, "{m}e{e} at scale {s}: {t}");
                    assert_eq!(t.contains('.'), s > 0, "{t}");
                    assert_eq!(t.split('.').nth(1).map_or(0, str::len), usize::from(s), "{t}");
                }
            }
        }
    }
}
