//! Binance's names of the stream kinds (`crate::stream::StreamKind`).
//!
//! Names follow <https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md>:
//! `<symbol>@trade`, `<symbol>@aggTrade`, `<symbol>@kline_<interval>`, `<symbol>@bookTicker`,
//! `<symbol>@depth`, `<symbol>@depth@100ms`. Symbols are lower case in stream names.

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

    /// Classifies the part of a stream name after the first `@`, as it appears in a combined
    /// frame's `stream` field. Allocation-free: this runs for every message.
    pub fn from_suffix(suffix: &str) -> Option<StreamKind> {
        Some(match suffix {
            "trade" => StreamKind::Trade,
            "aggTrade" => StreamKind::AggTrade,
            "bookTicker" => StreamKind::BookTicker,
            "depth" => StreamKind::Depth,
            "depth@100ms" => StreamKind::Depth100ms,
            s => {
                let iv = s.strip_prefix("kline_")?;
                StreamKind::Kline(KLINE_INTERVALS.iter().position(|i| *i == iv)? as u8)
            }
        })
    }
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
        }
    }
}

impl FromStr for StreamKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
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
}
