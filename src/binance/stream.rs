//! Binance's names of the stream kinds (`crate::stream::StreamKind`).
//!
//! Names follow <https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md>:
//! `<symbol>@trade`, `<symbol>@aggTrade`, `<symbol>@kline_<interval>`, `<symbol>@bookTicker`,
//! `<symbol>@depth`, `<symbol>@depth@100ms`. Symbols are lower case in stream names. USD-M's
//! kinds (`usdm::stream`) are named here too (`markPrice`, `markPrice@1s`, `forceOrder`,
//! `depth@500ms`): one naming for every Binance market; which kinds a market serves is each
//! market's parser's business.

use std::fmt;
use std::str::FromStr;

// Re-exported: the model owns the interval table and the record types; stream names map onto them.
pub use crate::interval::{KLINE_INTERVALS, KLINE_INTERVAL_MS};
pub use crate::record::RecordType;

// The kinds are the model's (`crate::stream`); their names, here, are Binance's.
pub use crate::stream::StreamKind;

impl StreamKind {
    /// The stream name for `symbol` (already lower case).
    pub fn stream_name(self, symbol: &str) -> String {
        format!("{symbol}@{self}")
    }

    /// Classifies the part of a spot stream name after the first `@`, as it appears in a
    /// combined frame's `stream` field. Allocation-free: this runs for every message.
    pub fn from_suffix(suffix: &str) -> Option<StreamKind> {
        named(suffix).filter(|k| !usdm_only(*k))
    }
}

/// The kind any Binance market names `suffix` (spot's and USD-M's names together).
pub(crate) fn named(suffix: &str) -> Option<StreamKind> {
    Some(match suffix {
        "trade" => StreamKind::Trade,
        "aggTrade" => StreamKind::AggTrade,
        "bookTicker" => StreamKind::BookTicker,
        "depth" => StreamKind::Depth,
        "depth@100ms" => StreamKind::Depth100ms,
        "depth@500ms" => StreamKind::Depth500ms,
        "markPrice" => StreamKind::MarkPrice,
        "markPrice@1s" => StreamKind::MarkPrice1s,
        "forceOrder" => StreamKind::ForceOrder,
        s => {
            let iv = s.strip_prefix("kline_")?;
            StreamKind::Kline(KLINE_INTERVALS.iter().position(|i| *i == iv)? as u8)
        }
    })
}

/// Kinds only USD-M futures serve (spot's stream list has none of them).
pub(crate) fn usdm_only(kind: StreamKind) -> bool {
    matches!(kind, StreamKind::MarkPrice | StreamKind::MarkPrice1s | StreamKind::ForceOrder | StreamKind::Depth500ms)
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamKind::Trade => f.write_str("trade"),
            StreamKind::AggTrade => f.write_str("aggTrade"),
            StreamKind::Kline(i) => write!(f, "kline_{}", KLINE_INTERVALS[*i as usize]),
            StreamKind::BookTicker => f.write_str("bookTicker"),
            StreamKind::Depth => f.write_str("depth"),
            StreamKind::Depth100ms => f.write_str("depth@100ms"),
            StreamKind::Depth500ms => f.write_str("depth@500ms"),
            StreamKind::MarkPrice => f.write_str("markPrice"),
            StreamKind::MarkPrice1s => f.write_str("markPrice@1s"),
            StreamKind::ForceOrder => f.write_str("forceOrder"),
        }
    }
}

impl FromStr for StreamKind {
    type Err = String;

    /// A spot stream kind, as configured.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(k) = named(s).filter(|k| usdm_only(*k)) {
            return Err(format!("{k} is a USD-M stream; spot has no such stream"));
        }
        StreamKind::from_suffix(s).ok_or_else(|| {
            format!(
                "unknown stream kind `{s}` (expected trade, aggTrade, kline_<interval>, bookTicker, depth or depth@100ms; intervals: {})",
                KLINE_INTERVALS.join(" ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_kinds_round_trip() {
        for s in ["trade", "aggTrade", "kline_1m", "kline_1M", "kline_1s", "bookTicker", "depth", "depth@100ms"] {
            let k: StreamKind = s.parse().unwrap();
            assert_eq!(k.to_string(), s);
        }
        assert!("kline_2m".parse::<StreamKind>().is_err());
        assert!("Trade".parse::<StreamKind>().is_err());
        assert_eq!(StreamKind::Kline(1).stream_name("btcusdt"), "btcusdt@kline_1m");
    }

    #[test]
    fn spot_refuses_the_usd_m_only_kinds_by_name() {
        for s in ["markPrice", "markPrice@1s", "forceOrder", "depth@500ms"] {
            assert_eq!(s.parse::<StreamKind>(), Err(format!("{s} is a USD-M stream; spot has no such stream")));
            assert_eq!(StreamKind::from_suffix(s), None, "{s}: spot frames never carry it");
        }
    }
}
