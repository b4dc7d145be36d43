//! A record's price or quantity ([`DecimalText`]) and the check of its text, run on every decimal
//! that came as text: Binance's are 8 to 16 characters, checked here by two word-wide reads,
//! where a byte-by-byte pass was about 80 instructions a decimal (two a trade, nine a kline).

use std::marker::PhantomData;

use binance_sbe::FixedText;

/// A price or quantity as a record carries it: exact decimal text, in one of two kinds that only
/// their constructors choose.
///
/// - Text as it came (`From<&str>`: a JSON stream's, a REST answer's, an operator's): hostile
///   until checked, so [`super::Record::encode`] checks it ([`is_decimal`]) before it writes
///   it, and refuses the record if it is not a decimal, as it always did.
/// - Text [`binance_sbe::Decimal::write_fixed_str`] wrote (`From<FixedText>`): a decimal by
///   construction, written as it is. Only that function makes a [`FixedText`] (its field is
///   private), so no other text can take this way; the SBE path saves the second check of text
///   it has just formatted (about 45 instructions a decimal, two in every trade).
///
/// Equality is the text's, whichever way it came.
///
/// Two words, as large as the `&str` it replaced: the kind is the top bit of the length (no
/// text is that long). A two-variant enum of `&str` took three, and the larger records cost
/// about 70 instructions a JSON trade in copies (`Frame` moved by value, measured).
#[derive(Clone, Copy)]
pub struct DecimalText<'a> {
    ptr: *const u8,
    /// The text's length, [`FORMATTED`] set for text `write_fixed_str` wrote.
    len: usize,
    _text: PhantomData<&'a str>,
}

/// The length's top bit: a `&str` is at most `isize::MAX` bytes, so it is free.
const FORMATTED: usize = 1 << (usize::BITS - 1);

const _: () = assert!(std::mem::size_of::<DecimalText<'static>>() == std::mem::size_of::<&str>());

// SAFETY: a `DecimalText<'a>` is a `&'a str` and a bit; `&str` is both.
unsafe impl Send for DecimalText<'_> {}
// SAFETY: as above.
unsafe impl Sync for DecimalText<'_> {}

impl<'a> DecimalText<'a> {
    #[inline(always)]
    fn new(s: &'a str, formatted: bool) -> Self {
        let tag = if formatted { FORMATTED } else { 0 };
        DecimalText { ptr: s.as_ptr(), len: s.len() | tag, _text: PhantomData }
    }

    /// The text.
    #[inline(always)]
    pub fn as_str(self) -> &'a str {
        // SAFETY: `ptr` and the length without its tag are those of a `&'a str` (`new`).
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr, self.len & !FORMATTED)) }
    }

    /// The text if it is a decimal: text that came as text is checked here, formatted text is
    /// one already.
    #[inline(always)]
    pub(super) fn checked(self) -> Option<&'a str> {
        let s = self.as_str();
        if self.len & FORMATTED != 0 || is_decimal(s) {
            Some(s)
        } else {
            None
        }
    }
}

impl<'a> From<&'a str> for DecimalText<'a> {
    /// Text as it came: checked when the record is encoded.
    #[inline]
    fn from(s: &'a str) -> Self {
        DecimalText::new(s, false)
    }
}

impl<'a> From<FixedText<'a>> for DecimalText<'a> {
    #[inline]
    fn from(t: FixedText<'a>) -> Self {
        debug_assert!(t.as_str().len() <= MAX_DECIMAL_LEN, "formatted into a buffer longer than a record takes");
        DecimalText::new(t.as_str(), true)
    }
}

impl PartialEq for DecimalText<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for DecimalText<'_> {}

impl PartialEq<&str> for DecimalText<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Debug for DecimalText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Longest decimal text accepted; Binance sends at most ~20 characters. Formatted text
/// ([`FixedText`]) skips the check, so its writers size their buffers with this.
pub const MAX_DECIMAL_LEN: usize = 64;

/// Plain decimal text: optional `-`, digits, optional `.` and digits. No exponent, no sign `+`,
/// no whitespace: what Binance sends, and what a consumer can feed to any decimal parser.
#[inline]
pub fn is_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    match b.len() {
        8..=16 => is_decimal_8_to_16(b),
        _ => is_decimal_bytes(b),
    }
}

/// One pass, byte by byte: the integer digits, then nothing, or a point and at least one digit.
fn is_decimal_bytes(b: &[u8]) -> bool {
    if b.is_empty() || b.len() > MAX_DECIMAL_LEN {
        return false;
    }
    let digits = if b[0] == b'-' { &b[1..] } else { b };
    let int = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    match digits.get(int) {
        _ if int == 0 => false,
        None => true,
        Some(b'.') => {
            let frac = &digits[int + 1..];
            !frac.is_empty() && frac.iter().all(u8::is_ascii_digit)
        }
        Some(_) => false,
    }
}

/// [`is_decimal_bytes`] for 8 to 16 bytes: which bytes are not digits, as a bit mask from two
/// overlapping words; valid when that is nothing, or a leading `-`, and at most one `.` with a
/// digit on each side.
#[inline]
fn is_decimal_8_to_16(b: &[u8]) -> bool {
    let n = b.len();
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let others = not_digits(word(0)) | (not_digits(word(n - 8)) << (n - 8));
    let sign = usize::from(b[0] == b'-');
    let others = others & !(sign as u32);
    if others == 0 {
        // Digits only, after a sign: at least 7 of them.
        return true;
    }
    let point = others.trailing_zeros() as usize;
    others == 1 << point && b[point] == b'.' && point > sign && point + 1 < n
}

/// Bit `i` set for each byte `i` of `x` that is not an ASCII digit.
#[inline(always)]
fn not_digits(x: u64) -> u32 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let t = x ^ (ONES * u64::from(b'0'));
    // A byte is a digit when `t` is at most 9: adding 0x76 to its low seven bits sets the high
    // bit from 10 up (no carry leaves the byte), and a high bit in `t` itself is no digit either.
    let high = (((t & (ONES * 0x7f)) + ONES * 0x76) | t) & (ONES * 0x80);
    // Each byte's high bit gathered into the top byte, byte `i` at bit 56 + i.
    ((high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the encoder takes unchecked is a decimal: every text `write_fixed_str` writes over a
    /// grid of mantissas, exponents and scales passes [`is_decimal`] (the check it skips), and
    /// text that came as text is still checked.
    #[test]
    fn formatted_text_is_a_decimal_and_text_as_it_came_is_checked() {
        let mut buf = [0u8; 64];
        let mut seen = 0;
        for m in [0i64, 1, -1, 7, -42, 12345, 4_200_012_000_000, -99_999_999, i64::MAX, i64::MIN] {
            for e in -20i8..=8 {
                for scale in 0u8..=20 {
                    let Ok(t) = binance_sbe::Decimal::new(m, e).write_fixed_str(scale, &mut buf) else { continue };
                    let text = t.as_str().to_string();
                    assert!(is_decimal(&text), "{m}e{e} at {scale}: {text}");
                    assert_eq!(DecimalText::from(t).checked(), Some(text.as_str()));
                    seen += 1;
                }
            }
        }
        assert!(seen > 1_000, "{seen}");
        for bad in ["", "1e5", "+1", "1.", ".5", "1,5", "\"12\"", "NaN"] {
            assert_eq!(DecimalText::from(bad).checked(), None, "{bad}");
        }
        assert_eq!(DecimalText::from("42000.01000000").checked(), Some("42000.01000000"));
    }

    /// The word-wide check says what the byte-by-byte one says, for every byte at every place of
    /// every length it takes, around valid decimals of each shape.
    #[test]
    fn word_wide_is_byte_by_byte() {
        let shapes = [
            "12345678",
            "1234.5678",
            "-1234.567",
            "0.00100000",
            "42000.01000000",
            "-0.0000000000001",
            "1234567890123456",
        ];
        let mut checked = 0;
        for shape in shapes {
            for n in 8..=16usize.min(shape.len()) {
                let base: Vec<u8> = shape.as_bytes()[..n].to_vec();
                for at in 0..n {
                    for c in
                        [b'0', b'9', b'/', b':', b'.', b'-', b'+', b'e', b' ', 0, 0x7f, 0x80, 0xff, 0x30 | 0x80, 0xb9]
                    {
                        let mut b = base.clone();
                        b[at] = c;
                        // A second change too, so that two points or a point and a sign meet.
                        for at2 in [0, at / 2, n - 1] {
                            for c2 in [b'.', b'-', b'5'] {
                                let mut b = b.clone();
                                b[at2] = c2;
                                assert_eq!(
                                    is_decimal_8_to_16(&b),
                                    is_decimal_bytes(&b),
                                    "{:?}",
                                    String::from_utf8_lossy(&b)
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
        for ok in ["12345678", "-1234567", "1.234567", "-1.23456", "1234567.8", "0.0000000000000001"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["-.234567", "1234567.", "-1234567.", "1.23.567", "--123456", "1234-678", "1234567e"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }
}
