//! One price level as the book keeps it: a numeric key to find and order it by, and the exact
//! decimal texts the venue sent, to publish unchanged.
//!
//! The key is the price as a fixed-point integer of 10^-18 units. The venue's own examples write
//! the same price padded and unpadded (`"0.0024"`, `"0.00240000"`), so the raw string cannot be
//! the key; a fixed scale orders prices with an integer compare, with no tick size to learn.
//! Binance prices carry at most 8 decimals and stay far below 10^20, the key's ceiling.

use std::fmt;

/// A price as an integer of 10^-18 units: equal prices have equal keys whatever their padding.
pub type Key = u128;

/// Decimal places of [`Key`].
const SCALE: u32 = 18;
/// The longest decimal text a level keeps (Binance's longest, a quantity such as
/// `"92233720368.54775807"`, is 20 characters).
pub const TEXT_MAX: usize = 23;

/// Why a level cannot go into the book. The book cannot hold what it cannot key or store; the
/// record itself was published as it came (the pipeline validated it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("a price or quantity is not a plain non-negative decimal")]
    NotDecimal,
    #[error("a price has more than 18 decimal places or is 10^20 or more")]
    OutOfRange,
    #[error("a price or quantity is longer than {TEXT_MAX} characters")]
    TooLong,
}

impl LevelError {
    /// A bounded metric label.
    pub fn reason(self) -> &'static str {
        match self {
            LevelError::NotDecimal => "not_decimal",
            LevelError::OutOfRange => "out_of_range",
            LevelError::TooLong => "too_long",
        }
    }
}

/// The integer and fraction digits of a plain non-negative decimal (`digits[.digits]`).
fn split(s: &str) -> Result<(&[u8], &[u8]), LevelError> {
    let b = s.as_bytes();
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &b[b.len()..]),
    };
    let digits = |d: &[u8]| d.iter().all(u8::is_ascii_digit);
    let dotted_empty = b.contains(&b'.') && frac.is_empty();
    if int.is_empty() || dotted_empty || !digits(int) || !digits(frac) {
        return Err(LevelError::NotDecimal);
    }
    Ok((int, frac))
}

/// The value of a run of ASCII digits; `None` past `u128`.
fn digits(d: &[u8]) -> Option<Key> {
    if d.len() <= 19 {
        // The common case in one register: Binance's longest integer part has 11 digits.
        return Some(Key::from(d.iter().fold(0u64, |v, &c| v * 10 + u64::from(c - b'0'))));
    }
    d.iter().try_fold(0 as Key, |v, &c| v.checked_mul(10)?.checked_add(Key::from(c - b'0')))
}

/// The key of a price text: `"0.0024"` and `"0.00240000"` give the same one.
pub fn key(price: &str) -> Result<Key, LevelError> {
    let (int, frac) = split(price)?;
    // Trailing zeros past the scale change nothing; another digit there would be lost.
    let (kept, rest) = frac.split_at(frac.len().min(SCALE as usize));
    if rest.iter().any(|&d| d != b'0') {
        return Err(LevelError::OutOfRange);
    }
    let f = digits(kept).unwrap_or(0) * 10u128.pow(SCALE - kept.len() as u32);
    digits(int)
        .and_then(|v| v.checked_mul(10u128.pow(SCALE)))
        .and_then(|v| v.checked_add(f))
        .ok_or(LevelError::OutOfRange)
}

/// Whether a quantity text says zero (`"0"`, `"0.00000000"`): the level goes.
pub fn is_zero(qty: &str) -> Result<bool, LevelError> {
    let (int, frac) = split(qty)?;
    Ok(int.iter().chain(frac).all(|&d| d == b'0'))
}

/// A short decimal text stored inline, so a level costs no allocation of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text {
    len: u8,
    buf: [u8; TEXT_MAX],
}

impl Text {
    pub fn new(s: &str) -> Result<Text, LevelError> {
        if s.len() > TEXT_MAX {
            return Err(LevelError::TooLong);
        }
        let mut buf = [0; TEXT_MAX];
        buf[..s.len()].copy_from_slice(s.as_bytes());
        Ok(Text { len: s.len() as u8, buf })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from a `&str`, cut at its own length.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A level's texts: its price as the venue last wrote it, and its quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub price: Text,
    pub qty: Text,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_and_unpadded_prices_share_a_key_and_keys_order_like_prices() {
        assert_eq!(key("0.0024"), key("0.00240000"));
        assert_eq!(key("25"), key("25.000"));
        assert_eq!(key("0.0024").unwrap(), 2_400_000_000_000_000);
        let ordered = ["0", "0.000000000000000001", "0.0024", "0.0025", "1", "9.99999999", "10", "20000.01"];
        let keys: Vec<Key> = ordered.iter().map(|p| key(p).unwrap()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(key("340282366920938463463.374607431768211455").unwrap(), u128::MAX);
    }

    #[test]
    fn what_a_key_cannot_hold_is_refused_not_rounded() {
        for bad in ["", ".5", "5.", "-1", "+1", "1e5", "1 ", "0x1", "١"] {
            assert_eq!(key(bad), Err(LevelError::NotDecimal), "{bad:?}");
        }
        assert_eq!(key("0.0000000000000000001"), Err(LevelError::OutOfRange), "a 19th decimal place");
        assert_eq!(key("1.0000000000000000000000"), Ok(10u128.pow(18)), "zeros past the scale are fine");
        assert_eq!(key("340282366920938463464"), Err(LevelError::OutOfRange));
        assert_eq!(key(&"9".repeat(60)), Err(LevelError::OutOfRange));
    }

    #[test]
    fn zero_quantities_in_any_padding() {
        for z in ["0", "0.0", "0.00000000", "000"] {
            assert_eq!(is_zero(z), Ok(true), "{z}");
        }
        for nz in ["0.00000001", "10", "1.0"] {
            assert_eq!(is_zero(nz), Ok(false), "{nz}");
        }
        assert_eq!(is_zero("-0"), Err(LevelError::NotDecimal));
    }

    #[test]
    fn texts_are_kept_exactly_up_to_their_bound() {
        let t = Text::new("92233720368.54775807").unwrap();
        assert_eq!(t.as_str(), "92233720368.54775807");
        assert_eq!(Text::new(&"1".repeat(TEXT_MAX)).unwrap().as_str().len(), TEXT_MAX);
        assert_eq!(Text::new(&"1".repeat(TEXT_MAX + 1)), Err(LevelError::TooLong));
    }
}
