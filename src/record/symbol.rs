//! The check of a record's symbol, the Kafka key and JSON text written verbatim: run on every
//! record encoded without a [`super::Prefixes`] entry (staged records, backfill, the encoder
//! alone), a word at a time, where the byte-by-byte pass was about 60 instructions a `BTCUSDT`.

use super::MAX_SYMBOL_BYTES;

/// A symbol becomes the Kafka key and JSON text verbatim, so it must need no escaping: not
/// empty, at most [`MAX_SYMBOL_BYTES`], and no control character, `"`, `\` or DEL (any other
/// byte of UTF-8 text is fine).
#[inline]
pub fn is_safe_symbol(s: &str) -> bool {
    let b = s.as_bytes();
    let n = b.len();
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let u32_at = |at: usize| u64::from(u32::from_le_bytes(b[at..at + 4].try_into().unwrap()));
    match n {
        0 => false,
        1..=3 => b.iter().all(|&c| is_safe_byte(c)),
        // Two overlapping halves: every byte is in one of them.
        4..=7 => !has_unsafe_byte(u32_at(0) | u32_at(n - 4) << 32),
        8..=MAX_SYMBOL_BYTES => {
            let mut at = 0;
            while at + 8 < n {
                if has_unsafe_byte(u64_at(at)) {
                    return false;
                }
                at += 8;
            }
            // The last word ends at the last byte (it may overlap the one before).
            !has_unsafe_byte(u64_at(n - 8))
        }
        _ => false,
    }
}

#[inline(always)]
fn is_safe_byte(c: u8) -> bool {
    c >= 0x20 && c != b'"' && c != b'\\' && c != 0x7f
}

/// Whether any byte of `w` is below 0x20, `"`, `\` or 0x7f. Each test is the classic exact
/// "some byte below k" of the whole word (`(w - k·ONES) & !w & HIGHS`; its per-byte bits can be
/// wrong above a hit, whether there is one is not), on `w` itself and on `w` xor the byte sought
/// (a match becomes a zero byte, below 1).
#[inline(always)]
fn has_unsafe_byte(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    let below = |x: u64, k: u8| x.wrapping_sub(ONES * u64::from(k)) & !x & HIGHS;
    let is = |c: u8| below(w ^ (ONES * u64::from(c)), 1);
    (below(w, 0x20) | is(b'"') | is(b'\\') | is(0x7f)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn byte_by_byte(s: &[u8]) -> bool {
        !s.is_empty() && s.len() <= MAX_SYMBOL_BYTES && s.iter().all(|&c| is_safe_byte(c))
    }

    /// The word-wide check says what the byte-by-byte one says for every byte value at every
    /// place of every length up to 24 (so each shape of [`is_safe_symbol`]), and around the
    /// length bound.
    #[test]
    fn word_wide_is_byte_by_byte() {
        let mut checked = 0;
        for n in 1..=24usize {
            let base: Vec<u8> = (0..n).map(|i| b"BTCUSDT0123456789ETHBNB_"[i]).collect();
            for at in 0..n {
                for c in 0..=255u8 {
                    let mut b = base.clone();
                    b[at] = c;
                    // Bytes that are not UTF-8 make no `&str`: check the bytes' verdicts on text.
                    if let Ok(s) = std::str::from_utf8(&b) {
                        assert_eq!(is_safe_symbol(s), byte_by_byte(&b), "{b:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 3_000, "{checked}");
        for s in ["币安人生USDT", "é", "ab\u{7f}", "a\"", "\\", "BTC\u{1f}USDT"] {
            assert_eq!(is_safe_symbol(s), byte_by_byte(s.as_bytes()), "{s:?}");
        }
        for n in [MAX_SYMBOL_BYTES - 1, MAX_SYMBOL_BYTES, MAX_SYMBOL_BYTES + 1] {
            let s = "A".repeat(n);
            assert_eq!(is_safe_symbol(&s), n <= MAX_SYMBOL_BYTES, "{n}");
            let s = format!("{}\"", "A".repeat(n - 1));
            assert!(!is_safe_symbol(&s), "{n}");
        }
    }
}
