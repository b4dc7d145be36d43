//! The payload's symbol against its stream name's, ignoring ASCII case, a word at a time: the
//! check runs on every frame, and `eq_ignore_ascii_case` with the ASCII check before it was
//! about 185 instructions a trade (byte by byte, each side lowered).

/// `Some(a.eq_ignore_ascii_case(b))` when both are ASCII of 4 to 16 bytes (Binance's symbols);
/// `None` (decide otherwise) for anything else.
#[inline]
pub(super) fn ascii_eq_ignore_case(a: &[u8], b: &[u8]) -> Option<bool> {
    let n = a.len();
    if n != b.len() {
        // Not ASCII-equal whatever the case; a non-ASCII pair is the caller's to compare.
        return (a.is_ascii() && b.is_ascii()).then_some(false);
    }
    let (x, y) = match n {
        8..=16 => ((word(a, 0), word(a, n - 8)), (word(b, 0), word(b, n - 8))),
        4..=7 => ((half(a, 0) | (half(a, n - 4) << 32), 0), (half(b, 0) | (half(b, n - 4) << 32), 0)),
        _ => return None,
    };
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if (x.0 | x.1 | y.0 | y.1) & HIGH != 0 {
        return None;
    }
    Some(lower(x.0) == lower(y.0) && lower(x.1) == lower(y.1))
}

fn word(s: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(s[at..at + 8].try_into().unwrap())
}

fn half(s: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(s[at..at + 4].try_into().unwrap()))
}

/// Each byte of 7-bit ASCII `x` in `A..=Z` made lower case, the others kept.
#[inline(always)]
fn lower(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Per byte (each below 0x80, so no carry crosses a byte): the high bit of `x + (0x80 - c)`
    // says `x >= c`.
    let at_least_a = x + ONES * (0x80 - u64::from(b'A'));
    let past_z = x + ONES * (0x80 - u64::from(b'Z') - 1);
    let upper = at_least_a & !past_z & (ONES * 0x80);
    x | (upper >> 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whenever it answers, it answers what `eq_ignore_ascii_case` does: every ASCII byte
    /// against its other-case and neighbouring bytes, at every position and length it handles.
    #[test]
    fn answers_are_eq_ignore_ascii_case() {
        let base = b"BTCUSDT1000SATS@";
        let mut answered = 0;
        for n in 0..=17usize {
            let a: Vec<u8> = base.iter().cycle().take(n).copied().collect();
            for at in 0..n {
                for c in 0u8..=255 {
                    let mut b = a.iter().map(u8::to_ascii_lowercase).collect::<Vec<u8>>();
                    b[at] = c;
                    for (x, y) in [(&a, &b), (&b, &a)] {
                        if let Some(same) = ascii_eq_ignore_case(x, y) {
                            assert_eq!(same, x.eq_ignore_ascii_case(y), "{x:?} {y:?}");
                            answered += 1;
                        }
                    }
                }
            }
            let lower: Vec<u8> = a.to_ascii_lowercase();
            if (4..=16).contains(&n) {
                assert_eq!(ascii_eq_ignore_case(&a, &lower), Some(true), "{a:?}");
            }
        }
        assert!(answered > 10_000, "{answered}");
        assert_eq!(ascii_eq_ignore_case(b"BTCUSDT", b"btcusd"), Some(false));
        assert_eq!(ascii_eq_ignore_case("币安人生USDT".as_bytes(), "币安人生usdt".as_bytes()), None);
    }
}
