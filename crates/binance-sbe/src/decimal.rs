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
    pub fn write_fixed(self, scale: u8, out: &mut [u8]) -> Result<usize, FormatError> {
        let mut digits_buf = itoa::Buffer::new();
        let digits = digits_buf.format(self.mantissa.unsigned_abs()).as_bytes();
        let asked = scale;
        let scale = usize::from(scale);
        let negative = self.mantissa < 0;

        // `digits` × 10^shift, the fractional digits of the mantissa being the last `frac` ones
        // (all of them, and leading zeros, when there are more than digits).
        let (digits, frac, shift) = if self.mantissa == 0 {
            // Zero has no digits to shift or drop, whatever the exponent.
            (digits, 0usize, 0usize)
        } else if self.exponent >= 0 {
            (digits, 0, usize::from(self.exponent.unsigned_abs()))
        } else {
            let frac = usize::from(self.exponent.unsigned_abs());
            if frac > scale {
                // Only zeros may go: they are the value's representation, not its digits.
                let drop = frac - scale;
                let (kept, dropped) = digits.split_at(digits.len().saturating_sub(drop));
                if dropped.iter().any(|&d| d != b'0') {
                    return Err(FormatError::Inexact {
                        mantissa: self.mantissa,
                        exponent: self.exponent,
                        scale: asked,
                    });
                }
                (kept, scale, 0)
            } else {
                (digits, frac, 0)
            }
        };
        let int_digits = digits.len().saturating_sub(frac);
        let int_len = if int_digits == 0 { 1 } else { int_digits + shift };
        let need = usize::from(negative) + int_len + if scale > 0 { 1 + scale } else { 0 };
        let Some(out) = out.get_mut(..need) else {
            return Err(FormatError::BufferTooSmall { need, have: out.len() });
        };

        // Zeros everywhere first: the shifted integer's trailing zeros, the fraction's leading
        // zeros (5e-3 → 0.005) and its padding up to the scale; then the sign, digits and point.
        out.fill(b'0');
        let sign = usize::from(negative);
        if negative {
            out[0] = b'-';
        }
        out[sign..sign + int_digits].copy_from_slice(&digits[..int_digits]);
        if scale > 0 {
            let point = sign + int_len;
            out[point] = b'.';
            let frac_digits = &digits[int_digits..];
            let end = point + 1 + frac;
            out[end - frac_digits.len()..end].copy_from_slice(frac_digits);
        }
        Ok(need)
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
