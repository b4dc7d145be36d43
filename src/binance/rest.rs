//! Binance's REST API as the backfill uses it: the endpoints and their weights, the shapes of
//! their bodies, the weight budget and how long a rate limit or ban may make us wait
//! (<https://github.com/binance/binance-spot-api-docs/blob/master/rest-api.md>, "LIMITS").

use std::time::Duration;

use serde::Deserialize;

/// Binance allows 6000 weight per minute per IP; leave room for other clients on the same IP.
pub const WEIGHT_BUDGET: u32 = 4800;
/// The longest wait a server can impose. Binance's longest IP ban is three days ("from 2 minutes
/// to 3 days", REST API "LIMITS"); a `Retry-After` beyond it is not a ban but a broken or hostile
/// header, and is cut to it (a wait of `u64::MAX` seconds used to overflow `Instant + Duration`
/// and kill the thread). The wait is slept in slices that watch shutdown and keep taking jobs.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(3 * 86_400);
/// When a 429/418 carries no usable `Retry-After`: Binance's weight window.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The wait a `Retry-After` header asks for: whole seconds, read saturating (any number of digits)
/// and capped at [`MAX_SERVER_WAIT`]; missing or not a number (e.g. an HTTP date, which Binance
/// does not send) means [`DEFAULT_RETRY_AFTER`].
pub fn retry_after(header: Option<&str>) -> Duration {
    let Some(v) = header.map(str::trim).filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) else {
        return DEFAULT_RETRY_AFTER;
    };
    let secs = v.bytes().fold(0u64, |n, b| n.saturating_mul(10).saturating_add(u64::from(b - b'0')));
    Duration::from_secs(secs).min(MAX_SERVER_WAIT)
}

/// How long to pause once the weight budget is used up: to the next minute (the window Binance
/// counts in), plus a margin. `now_ms` is our own clock, but taken `rem_euclid` so that even a
/// clock before 1970 gives a wait within one minute.
pub fn weight_pause(now_ms: i64) -> Duration {
    Duration::from_millis(60_000 - now_ms.rem_euclid(60_000) as u64 + 100)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestTrade {
    pub id: i64,
    pub price: String,
    pub qty: String,
    pub time: i64,
    pub is_buyer_maker: bool,
}

#[derive(Deserialize)]
pub struct RestAggTrade {
    pub a: i64,
    pub p: String,
    pub q: String,
    pub f: i64,
    pub l: i64,
    #[serde(rename = "T")]
    pub time: i64,
    pub m: bool,
}

/// `[openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, takerBuyBase,
/// takerBuyQuote, unused]`
pub type RestKline =
    (i64, String, String, String, String, String, i64, String, i64, String, String, serde::de::IgnoredAny);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestDepth {
    pub last_update_id: i64,
    pub bids: Vec<[String; 2]>,
    pub asks: Vec<[String; 2]>,
}

/// The header in which Binance reports the weight used in the current minute.
pub const USED_WEIGHT_HEADER: &str = "X-MBX-USED-WEIGHT-1M";

/// Trades from `from_id` on (`/api/v3/historicalTrades`, weight 25); `limit` at most 1000.
pub fn trades_path(symbol: &str, from_id: i64, limit: i64) -> String {
    format!("/api/v3/historicalTrades?symbol={symbol}&fromId={from_id}&limit={limit}")
}

/// Aggregate trades from `from_id` on (`/api/v3/aggTrades`, weight 4); `limit` at most 1000.
pub fn agg_trades_path(symbol: &str, from_id: i64, limit: i64) -> String {
    format!("/api/v3/aggTrades?symbol={symbol}&fromId={from_id}&limit={limit}")
}

/// Candles of `interval` opening in `start..=end` ms (`/api/v3/klines`, weight 2).
pub fn klines_path(symbol: &str, interval: &str, start: i64, end: i64, limit: i64) -> String {
    format!("/api/v3/klines?symbol={symbol}&interval={interval}&startTime={start}&endTime={end}&limit={limit}")
}

/// The deepest order-book snapshot REST serves (`limit`; "If limit > 5000, only 5000 entries
/// will be returned").
pub const MAX_DEPTH_LIMIT: usize = 5000;

/// The order book's top `limit` levels a side (`/api/v3/depth`; see [`depth_weight`]).
pub fn depth_path(symbol: &str, limit: usize) -> String {
    format!("/api/v3/depth?symbol={symbol}&limit={}", limit.clamp(1, MAX_DEPTH_LIMIT))
}

/// The request weight of `/api/v3/depth` at `limit`: 5 up to 100 levels, 25 up to 500, 50 up
/// to 1000, 250 up to 5000 (rest-api.md, "Order book").
pub fn depth_weight(limit: usize) -> u32 {
    match limit {
        0..=100 => 5,
        101..=500 => 25,
        501..=1000 => 50,
        _ => 250,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_waits_are_read_saturating_and_capped() {
        let cases = [
            (Some("30"), Duration::from_secs(30)),
            (Some(" 7 "), Duration::from_secs(7)),
            (Some("0"), Duration::ZERO),
            // TC3-4: the header that killed the thread, and beyond u64.
            (Some("18446744073709551615"), MAX_SERVER_WAIT),
            (Some("99999999999999999999999999999"), MAX_SERVER_WAIT),
            (Some("259201"), MAX_SERVER_WAIT),
            (Some("259200"), Duration::from_secs(259_200)),
            // TC7-10: nothing usable: Binance's weight window.
            (None, DEFAULT_RETRY_AFTER),
            (Some("-5"), DEFAULT_RETRY_AFTER),
            (Some("Wed, 21 Oct 2015 07:28:00 GMT"), DEFAULT_RETRY_AFTER),
            (Some(""), DEFAULT_RETRY_AFTER),
        ];
        for (i, (h, want)) in cases.into_iter().enumerate() {
            assert_eq!(retry_after(h), want, "TC{i}: {h:?}");
        }
        // Instant + any of them never overflows.
        assert!(std::time::Instant::now().checked_add(MAX_SERVER_WAIT).is_some());
    }

    #[test]
    fn depth_snapshots_cost_their_documented_weight() {
        let w: Vec<u32> = [1, 100, 101, 500, 501, 1000, 1001, 5000].map(depth_weight).to_vec();
        assert_eq!(w, [5, 5, 25, 25, 50, 50, 250, 250]);
        assert_eq!(depth_path("BTCUSDT", 9_999), "/api/v3/depth?symbol=BTCUSDT&limit=5000");
    }

    #[test]
    fn the_weight_pause_ends_past_the_next_minute_even_for_a_negative_clock() {
        for (now, want_ms) in [(0, 60_100), (59_999, 101), (120_500, 59_600), (-1, 101), (i64::MIN, 55_908)] {
            assert_eq!(weight_pause(now), Duration::from_millis(want_ms), "{now}");
        }
    }
}
