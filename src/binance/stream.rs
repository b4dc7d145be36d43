//! Stream kinds we subscribe to and the record types they produce.
//!
//! Names follow <https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md>:
//! `<symbol>@trade`, `<symbol>@aggTrade`, `<symbol>@kline_<interval>`, `<symbol>@bookTicker`,
//! `<symbol>@depth`, `<symbol>@depth@100ms`. Symbols are lower case in stream names.

use std::fmt;
use std::str::FromStr;

/// Kline intervals Binance accepts (`1M` is a month, hence case-sensitive).
pub const KLINE_INTERVALS: &[&str] =
    &["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"];

/// Length of each of [`KLINE_INTERVALS`] in ms; a month has none (its candles differ in length).
pub const KLINE_INTERVAL_MS: [Option<i64>; 16] = {
    const S: i64 = 1000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;
    const D: i64 = 24 * H;
    [
        Some(S),
        Some(M),
        Some(3 * M),
        Some(5 * M),
        Some(15 * M),
        Some(30 * M),
        Some(H),
        Some(2 * H),
        Some(4 * H),
        Some(6 * H),
        Some(8 * H),
        Some(12 * H),
        Some(D),
        Some(3 * D),
        Some(7 * D),
        None,
    ]
};

/// The normalized record types; the discriminant indexes topic and metric tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordType {
    Trade = 0,
    AggTrade = 1,
    Kline = 2,
    BookTicker = 3,
    DepthUpdate = 4,
}

impl RecordType {
    pub const COUNT: usize = 5;
    pub const ALL: [RecordType; 5] =
        [RecordType::Trade, RecordType::AggTrade, RecordType::Kline, RecordType::BookTicker, RecordType::DepthUpdate];

    /// The `type` field of the normalized record, also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Trade => "trade",
            RecordType::AggTrade => "agg_trade",
            RecordType::Kline => "kline",
            RecordType::BookTicker => "book_ticker",
            RecordType::DepthUpdate => "depth_update",
        }
    }

    /// The environment variable that overrides `KAFKA_TOPIC` for this type.
    pub fn topic_var(self) -> &'static str {
        match self {
            RecordType::Trade => "KAFKA_TOPIC_TRADE",
            RecordType::AggTrade => "KAFKA_TOPIC_AGG_TRADE",
            RecordType::Kline => "KAFKA_TOPIC_KLINE",
            RecordType::BookTicker => "KAFKA_TOPIC_BOOK_TICKER",
            RecordType::DepthUpdate => "KAFKA_TOPIC_DEPTH_UPDATE",
        }
    }

    pub fn from_u8(v: u8) -> Option<RecordType> {
        RecordType::ALL.get(v as usize).copied()
    }
}

/// One kind of stream, for every configured symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Trade,
    AggTrade,
    /// Index into [`KLINE_INTERVALS`].
    Kline(u8),
    BookTicker,
    Depth,
    Depth100ms,
}

impl StreamKind {
    pub fn record_type(self) -> RecordType {
        match self {
            StreamKind::Trade => RecordType::Trade,
            StreamKind::AggTrade => RecordType::AggTrade,
            StreamKind::Kline(_) => RecordType::Kline,
            StreamKind::BookTicker => RecordType::BookTicker,
            StreamKind::Depth | StreamKind::Depth100ms => RecordType::DepthUpdate,
        }
    }

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
