//! Binance's symbol grammar. A symbol Binance would refuse is a configuration error here, instead
//! of a subscription that breaks its whole connection and with it every valid symbol sharing it.
//!
//! # The grammar
//!
//! ```text
//! symbol      = 1*50 symbol-char    ; length in UTF-16 code units, as Java counts it
//! symbol-char = Alphabetic / Mn / Mc / Me / Nd / Pc / Join_Control / "-" / "."
//! ```
//!
//! That is Unicode's `\w` (UTS #18 annex C: letters of any script, combining marks, decimal digits,
//! connector punctuation such as `_`) plus `-` and `.`, checked on the upper-cased symbol.
//!
//! # Source
//!
//! - Binance answers a `symbol` that breaks its rule with error -1100, whose template names the rule:
//!   "Illegal characters found in parameter '%s'; legal range is '%s'." (binance/binance-spot-api-docs
//!   `errors.md`, -1100 ILLEGAL_CHARS, at commit a5e0bc3d).
//! - The rule the live API sends in that message since Unicode symbols arrived is
//!   `^[\w\-._&&[^a-z]]{1,50}$` \[community: quoted verbatim in public bug reports of 2025-12; before
//!   it was `^[A-Z0-9-_.]{1,20}$`\]. It is a Java pattern: `&&[^a-z]` only removes ASCII lower case
//!   (REST wants symbols upper case), and `{1,50}` counts UTF-16 units.
//! - `\w` there is Unicode-aware \[inference\]: "Parameter `symbol` and `symbols` can now support
//!   Unicode values encoded in UTF-8" (CHANGELOG.md, 2025-12-02), and real listings such as
//!   `币安人生USDT` are served (/work/shared/binance/README.md §9).
//! - Stream names carry the symbol in lower case (web-socket-streams.md L43), so the ingester takes
//!   symbols in either case and checks the upper-cased form, which is what REST receives.

use icu_properties::props::{Alphabetic, GeneralCategory, JoinControl};
use icu_properties::{CodePointMapData, CodePointSetData};

/// What stays as it is when a symbol or stream name goes into a URL or a SUBSCRIBE request:
/// ASCII letters and digits, the grammar's `_`, `-`, `.`, and a stream name's `@`. Everything
/// else, a UTF-8 listing's letters above all, is percent-encoded, which Binance accepts since
/// 2025-12-02 ("WebSocket Market Streams supports URL-encoded urls", CHANGELOG.md) and which
/// keeps every URL ASCII.
const URL_SAFE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.').remove(b'@');

/// `name` (a symbol or a stream name) percent-encoded for a URL or a SUBSCRIBE parameter:
/// `币安人生usdt@trade` becomes `%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt@trade`, ASCII names
/// stay as they are.
pub fn url_encoded(name: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(name, URL_SAFE)
}

/// Longest symbol, in UTF-16 code units.
pub const MAX_SYMBOL_LEN: usize = 50;

/// Why a symbol breaks the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    #[error("is empty")]
    Empty,
    #[error("is {0} characters long; Binance allows at most {MAX_SYMBOL_LEN}")]
    TooLong(usize),
    #[error(
        "contains `{}`, which Binance refuses in a symbol (letters and digits of any script, `_`, `-`, `.`)",
        .0.escape_debug()
    )]
    BadChar(char),
}

fn is_symbol_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    }
    CodePointSetData::new::<Alphabetic>().contains(c)
        || CodePointSetData::new::<JoinControl>().contains(c)
        || matches!(
            CodePointMapData::<GeneralCategory>::new().get(c),
            GeneralCategory::NonspacingMark
                | GeneralCategory::SpacingMark
                | GeneralCategory::EnclosingMark
                | GeneralCategory::DecimalNumber
                | GeneralCategory::ConnectorPunctuation
        )
}

/// Checks one symbol, in any case, against Binance's grammar.
pub fn check(symbol: &str) -> Result<(), SymbolError> {
    let upper = symbol.to_uppercase();
    if upper.is_empty() {
        return Err(SymbolError::Empty);
    }
    if let Some(c) = upper.chars().find(|&c| !is_symbol_char(c)) {
        return Err(SymbolError::BadChar(c));
    }
    let len = upper.encode_utf16().count();
    if len > MAX_SYMBOL_LEN {
        return Err(SymbolError::TooLong(len));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_listings_in_any_script_pass() {
        for s in
            ["BTCUSDT", "btcusdt", "1000CATUSDT", "币安人生USDT", "币安人生usdt", "这是测试币456", "BTC-PERP", "A_B.C"]
        {
            assert_eq!(check(s), Ok(()), "{s}");
        }
        // A combining mark (not Alphabetic itself) is part of `\w`.
        assert_eq!(check("E\u{301}USDT"), Ok(()));
        assert_eq!(check(&"A".repeat(50)), Ok(()));
    }

    #[test]
    fn characters_outside_the_grammar_are_named() {
        assert_eq!(check("a<b{c^"), Err(SymbolError::BadChar('<')));
        for (s, c) in [("btc/usdt", '/'), ("btc usdt", ' '), ("btc@trade", '@'), ("a\u{0}", '\0'), ("½usdt", '½')] {
            assert_eq!(check(s), Err(SymbolError::BadChar(c)), "{s}");
        }
        assert_eq!(check(""), Err(SymbolError::Empty));
        assert_eq!(check(&"A".repeat(51)), Err(SymbolError::TooLong(51)));
        // An astral character counts twice, as in Java.
        assert_eq!(check(&format!("{}{}", "A".repeat(49), '\u{10400}')), Err(SymbolError::TooLong(51)));
        assert!(SymbolError::BadChar('\n').to_string().contains("\\n"));
    }
}
