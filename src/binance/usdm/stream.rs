//! The USD-M stream kinds a user may configure, their names on the wire, and the route each is
//! served on since Binance's 2026 change (shared README §6, §9). Names are Binance's, shared with
//! spot (`binance::stream`): `aggTrade`, `kline_<interval>` (every interval but `1s`),
//! `bookTicker`, `depth` (250 ms), `depth@100ms`, `depth@500ms`, `markPrice` (3 s),
//! `markPrice@1s`, `forceOrder`.

use crate::binance::stream::{named, KLINE_INTERVALS};
use crate::stream::StreamKind;

/// The route of the order book's streams.
pub const PUBLIC: &str = "/public";
/// The route of every other market-data stream.
pub const MARKET: &str = "/market";

/// The USD-M kind a configured name asks for; a clear refusal for one USD-M does not serve.
pub fn parse_kind(s: &str) -> Result<StreamKind, String> {
    match named(s) {
        Some(StreamKind::Trade) => Err(format!(
            "{s} is not a USD-M stream (Binance documents no @trade on USD-M futures; aggTrade carries its trades)"
        )),
        Some(StreamKind::Kline(0)) => Err(format!("{s} is a spot interval; USD-M klines start at 1m")),
        Some(k) => Ok(k),
        None => Err(format!(
            "unknown USD-M stream kind `{s}` (expected aggTrade, kline_<interval>, bookTicker, depth, depth@100ms, \
             depth@500ms, markPrice, markPrice@1s or forceOrder; intervals: {})",
            KLINE_INTERVALS[1..].join(" ")
        )),
    }
}

/// Classifies the part of a stream name after the first `@` in a USD-M frame. Allocation-free:
/// this runs for every message.
pub fn from_suffix(suffix: &str) -> Option<StreamKind> {
    named(suffix).filter(|k| !matches!(k, StreamKind::Trade | StreamKind::Kline(0)))
}

/// The path segment of the connections carrying `kind`: `/public` for the order book, `/market`
/// for the rest. Never the bare root, which delivers no `/market` stream.
pub fn route(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::Depth | StreamKind::Depth100ms | StreamKind::Depth500ms | StreamKind::BookTicker => PUBLIC,
        StreamKind::AggTrade
        | StreamKind::Kline(_)
        | StreamKind::MarkPrice
        | StreamKind::MarkPrice1s
        | StreamKind::ForceOrder
        // Not served on USD-M (`parse_kind` refuses it); a route all the same, never the root.
        | StreamKind::Trade => MARKET,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_usd_m_kind_parses_and_is_named_back_and_routed() {
        let public = ["depth", "depth@100ms", "depth@500ms", "bookTicker"];
        let market = ["aggTrade", "markPrice", "markPrice@1s", "kline_1m", "kline_1M", "forceOrder"];
        for (names, want) in [(&public[..], PUBLIC), (&market[..], MARKET)] {
            for s in names {
                let k = parse_kind(s).unwrap();
                assert_eq!((k.to_string(), route(k)), (s.to_string(), want));
                assert_eq!(from_suffix(s), Some(k));
            }
        }
    }

    #[test]
    fn kinds_usd_m_does_not_serve_are_refused_clearly() {
        assert_eq!(
            parse_kind("trade").unwrap_err(),
            "trade is not a USD-M stream (Binance documents no @trade on USD-M futures; aggTrade carries its trades)"
        );
        assert_eq!(parse_kind("kline_1s").unwrap_err(), "kline_1s is a spot interval; USD-M klines start at 1m");
        let e = parse_kind("markprice").unwrap_err();
        assert!(
            e.starts_with("unknown USD-M stream kind `markprice` (expected aggTrade,") && e.ends_with("1w 1M)"),
            "{e}"
        );
        assert!(!e.contains(" 1s "), "{e}");
        for s in ["trade", "kline_1s", "forceOrder@arr", "depth5"] {
            assert_eq!(from_suffix(s), None, "{s}");
        }
    }
}
