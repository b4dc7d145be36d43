//! Candle intervals: the `interval` values a normalized kline record carries, and their lengths.
//!
//! They are part of the record model, not of one venue: consumers read them in every kline record,
//! and sequence tracking, gap markers and backfill key on them. Binance's set is the widest in
//! use (its USD-M futures market has the same one); a venue maps its wire text onto an index here.

/// Kline intervals, as published (`1M` is a month, hence case-sensitive).
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

/// The index of `interval` in [`KLINE_INTERVALS`]; allocation-free, it runs per kline record.
pub fn index(interval: &str) -> Option<usize> {
    KLINE_INTERVALS.iter().position(|i| *i == interval)
}
