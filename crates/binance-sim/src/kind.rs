//! The streams the simulator serves, named as Binance names them: `<symbol>@trade`,
//! `<symbol>@aggTrade`, `<symbol>@kline_<interval>`, `<symbol>@bookTicker`, `<symbol>@depth`,
//! `<symbol>@depth@100ms` (<https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md>),
//! and the USD-M futures ones (`usdm/streams.rs` reads their names).
//!
//! The simulator's own reading of Binance's names, not the ingester's: a misreading shared by
//! both would pass every test.

use std::fmt;
use std::str::FromStr;

/// Kline intervals Binance accepts, in its order (`1M` is a month, hence case-sensitive).
pub const KLINE_INTERVALS: [&str; 16] =
    ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"];

/// Length in ms of a candle of each of [`KLINE_INTERVALS`]. Months differ in length; the
/// simulated market counts one as 30 days.
const KLINE_MS: [i64; 16] = {
    const S: i64 = 1000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;
    const D: i64 = 24 * H;
    [S, M, 3 * M, 5 * M, 15 * M, 30 * M, H, 2 * H, 4 * H, 6 * H, 8 * H, 12 * H, D, 3 * D, 7 * D, 30 * D]
};

/// What a stream carries: the part of its name after `<symbol>@`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Trade,
    AggTrade,
    /// Index into [`KLINE_INTERVALS`].
    Kline(u8),
    BookTicker,
    Depth,
    Depth100ms,
    /// USD-M only: `@depth@500ms`, the same events as the other depth streams.
    Depth500ms,
    /// USD-M only: `@markPrice`, every 3 s.
    MarkPrice,
    /// USD-M only: `@markPrice@1s`.
    MarkPrice1s,
    /// USD-M only: `@forceOrder`, at most one liquidation snapshot a second.
    ForceOrder,
}

impl StreamKind {
    /// Every kind the spot market serves, each kline interval once.
    pub fn all() -> impl Iterator<Item = StreamKind> {
        [StreamKind::Trade, StreamKind::AggTrade, StreamKind::BookTicker, StreamKind::Depth, StreamKind::Depth100ms]
            .into_iter()
            .chain((0..KLINE_INTERVALS.len() as u8).map(StreamKind::Kline))
    }

    /// The kind named by the part of a spot stream name after the first `@`; `None` for a
    /// stream the spot market does not produce.
    pub fn from_suffix(suffix: &str) -> Option<StreamKind> {
        Some(match suffix {
            "trade" => StreamKind::Trade,
            "aggTrade" => StreamKind::AggTrade,
            "bookTicker" => StreamKind::BookTicker,
            "depth" => StreamKind::Depth,
            "depth@100ms" => StreamKind::Depth100ms,
            s => StreamKind::Kline(interval_index(s.strip_prefix("kline_")?)?),
        })
    }

    /// The stream name for `symbol` (lower case, as in Binance's stream names).
    pub fn stream_name(self, symbol: &str) -> String {
        format!("{symbol}@{self}")
    }
}

/// The index in [`KLINE_INTERVALS`] of an interval name.
pub fn interval_index(name: &str) -> Option<u8> {
    KLINE_INTERVALS.iter().position(|i| *i == name).map(|i| i as u8)
}

/// Length in ms of a candle of interval `iv` (an index into [`KLINE_INTERVALS`]).
pub fn interval_ms(iv: u8) -> i64 {
    KLINE_MS[iv as usize]
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

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StreamKind::from_suffix(s).ok_or_else(|| {
            format!(
                "unknown stream kind `{s}` (expected trade, aggTrade, kline_<interval>, bookTicker, depth or \
                 depth@100ms; intervals: {})",
                KLINE_INTERVALS.join(" ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_its_kind() {
        let names: Vec<String> = StreamKind::all().map(|k| k.to_string()).collect();
        assert_eq!(names.len(), 5 + 16);
        for (k, name) in StreamKind::all().zip(&names) {
            assert_eq!(name.parse::<StreamKind>(), Ok(k));
        }
        assert_eq!(names[..5], ["trade", "aggTrade", "bookTicker", "depth", "depth@100ms"]);
        assert_eq!(StreamKind::Kline(15).stream_name("btcusdt"), "btcusdt@kline_1M");
    }

    #[test]
    fn names_binance_does_not_have_are_refused() {
        for bad in [
            "Trade",
            "trades",
            "kline_",
            "kline_1M ",
            "kline_2m",
            "depth@1000ms",
            "bookticker",
            "kline_1mo",
            // Futures streams: not on spot.
            "markPrice",
            "forceOrder",
            "depth@500ms",
        ] {
            assert!(bad.parse::<StreamKind>().is_err(), "{bad}");
        }
        // Months and minutes differ only in case.
        assert_ne!(interval_index("1m"), interval_index("1M"));
    }

    #[test]
    fn candle_lengths_follow_the_interval_names() {
        for (i, name) in KLINE_INTERVALS.iter().enumerate() {
            let (n, unit) = name.split_at(name.len() - 1);
            let unit_ms = match unit {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 7 * 86_400_000,
                "M" => 30 * 86_400_000,
                _ => panic!("{name}"),
            };
            assert_eq!(interval_ms(i as u8), n.parse::<i64>().unwrap() * unit_ms, "{name}");
        }
    }
}
