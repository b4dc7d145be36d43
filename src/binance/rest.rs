//! Binance's REST API as the backfill uses it: the endpoints and their weights, the shapes of
//! their bodies, the weight budget and how long a rate limit or ban may make us wait
//! (<https://github.com/binance/binance-spot-api-docs/blob/master/rest-api.md>, "LIMITS").

use std::time::Duration;

use serde::Deserialize;

use super::symbol::url_encoded as q;
use crate::sequence::DepthChain;
use crate::venue::rest::{self as api, AggTradeRow, DepthRow, KlineRow, RestApi, TradeRow};

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

/// Binance's market-data-only REST host: it serves `aggTrades`, `klines` and `depth` (not
/// `historicalTrades`) and is where the backfill turns when the main host fails
/// (<https://github.com/binance/binance-spot-api-docs/blob/master/faqs/market_data_only.md>).
pub const DATA_API_URL: &str = "https://data-api.binance.vision";

/// The header asking REST for microsecond times (`rest-api.md`, "General API Information").
pub const TIME_UNIT_HEADER: &str = "X-MBX-TIME-UNIT";

/// The REST endpoints the backfill calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    HistoricalTrades,
    AggTrades,
    Klines,
    Depth { limit: u32 },
}

impl Endpoint {
    /// The `endpoint` label of `rest_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::HistoricalTrades => "historicalTrades",
            Endpoint::AggTrades => "aggTrades",
            Endpoint::Klines => "klines",
            Endpoint::Depth { .. } => "depth",
        }
    }

    /// The request weight Binance charges (`rest-api.md`, "Market Data endpoints", as of 2026:
    /// aggTrades 4 since 2025-03-10, historicalTrades 25, klines 2, depth by limit).
    pub fn weight(self) -> u32 {
        match self {
            Endpoint::HistoricalTrades => 25,
            Endpoint::AggTrades => 4,
            Endpoint::Klines => 2,
            Endpoint::Depth { limit } => match limit {
                0..=100 => 5,
                101..=500 => 25,
                501..=1000 => 50,
                _ => 250,
            },
        }
    }

    /// Whether `data-api.binance.vision` serves it (everything but `historicalTrades`).
    pub fn on_data_api(self) -> bool {
        self != Endpoint::HistoricalTrades
    }
}

/// One REST request: its path and query, and the endpoint it calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub path: String,
    pub endpoint: Endpoint,
}

/// Trades from `from_id` on (`/api/v3/historicalTrades`); `limit` at most 1000.
pub fn trades(symbol: &str, from_id: i64, limit: i64) -> Call {
    let path = format!("/api/v3/historicalTrades?symbol={}&fromId={from_id}&limit={limit}", q(symbol));
    Call { path, endpoint: Endpoint::HistoricalTrades }
}

/// Aggregate trades from `from_id` on (`/api/v3/aggTrades`); `limit` at most 1000.
pub fn agg_trades(symbol: &str, from_id: i64, limit: i64) -> Call {
    let path = format!("/api/v3/aggTrades?symbol={}&fromId={from_id}&limit={limit}", q(symbol));
    Call { path, endpoint: Endpoint::AggTrades }
}

/// Candles of `interval` opening in `start..=end` (`/api/v3/klines`; times in the unit asked for).
pub fn klines(symbol: &str, interval: &str, start: i64, end: i64, limit: i64) -> Call {
    let path = format!(
        "/api/v3/klines?symbol={}&interval={interval}&startTime={start}&endTime={end}&limit={limit}",
        q(symbol)
    );
    Call { path, endpoint: Endpoint::Klines }
}

/// The deepest order-book snapshot REST serves (`limit`; "If limit > 5000, only 5000 entries
/// will be returned").
pub const MAX_DEPTH_LIMIT: usize = 5000;

/// The order book's top `limit` levels a side (`/api/v3/depth`; weight by limit, see
/// [`Endpoint::weight`]).
pub fn depth(symbol: &str, limit: usize) -> Call {
    let limit = limit.clamp(1, MAX_DEPTH_LIMIT) as u32;
    let path = format!("/api/v3/depth?symbol={}&limit={limit}", q(symbol));
    Call { path, endpoint: Endpoint::Depth { limit } }
}

/// Spot's REST API as the backfill uses it: today's endpoints, weights, budget and fallback.
pub static API: RestApi = RestApi {
    name: "binance spot",
    agg_trades: |s, id, limit| agg_trades(s, id, limit).into(),
    trades: Some(|s, id, limit| trades(s, id, limit).into()),
    klines: |s, iv, start, end, limit| klines(s, iv, start, end, limit).into(),
    depth: |s, levels| depth(s, levels).into(),
    parse_agg_trades,
    parse_trades,
    parse_klines,
    parse_depth,
    page: 1000,
    klines_page: 1000,
    weight_budget: WEIGHT_BUDGET,
    used_weight_header: USED_WEIGHT_HEADER,
    time_unit_header: Some(TIME_UNIT_HEADER),
    has_fallback: true,
    retry_after,
    weight_pause,
    depth_chain: DepthChain::FirstFollowsFinal,
};

impl From<Call> for api::Call {
    fn from(c: Call) -> api::Call {
        api::Call {
            path: c.path,
            label: c.endpoint.label(),
            weight: c.endpoint.weight(),
            on_fallback: c.endpoint.on_data_api(),
        }
    }
}

/// `aggTrades` rows (spot's, and USD-M's, which lack `M`: unknown and missing keys beyond ours
/// are the same to serde).
pub fn parse_agg_trades(body: &str) -> Result<Vec<AggTradeRow>, String> {
    let rows: Vec<RestAggTrade> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .map(|a| AggTradeRow {
            agg_id: a.a,
            price: a.p,
            qty: a.q,
            first_trade_id: a.f,
            last_trade_id: a.l,
            time: a.time,
            buyer_is_maker: a.m,
        })
        .collect())
}

pub fn parse_trades(body: &str) -> Result<Vec<TradeRow>, String> {
    let rows: Vec<RestTrade> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .map(|t| TradeRow { id: t.id, price: t.price, qty: t.qty, time: t.time, buyer_is_maker: t.is_buyer_maker })
        .collect())
}

pub fn parse_klines(body: &str) -> Result<Vec<KlineRow>, String> {
    let rows: Vec<RestKline> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .map(|c| KlineRow {
            open_time: c.0,
            open: c.1,
            high: c.2,
            low: c.3,
            close: c.4,
            volume: c.5,
            close_time: c.6,
            quote_volume: c.7,
            trades: c.8,
            taker_buy_volume: c.9,
            taker_buy_quote_volume: c.10,
        })
        .collect())
}

/// A depth snapshot (spot's; USD-M's adds `E` and `T`, which the book does not need).
pub fn parse_depth(body: &str) -> Result<DepthRow, String> {
    let d: RestDepth = serde_json::from_str(body).map_err(|e| e.to_string())?;
    Ok(DepthRow { last_update_id: d.last_update_id, bids: d.bids, asks: d.asks })
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
        let w: Vec<u32> = [1, 100, 101, 500, 501, 1000, 1001, 5000].map(|l| depth("A", l).endpoint.weight()).to_vec();
        assert_eq!(w, [5, 5, 25, 25, 50, 50, 250, 250]);
        assert_eq!(depth("BTCUSDT", 9_999).path, "/api/v3/depth?symbol=BTCUSDT&limit=5000");
        assert_eq!(depth("BTCUSDT", 0).path, "/api/v3/depth?symbol=BTCUSDT&limit=1");
    }

    #[test]
    fn the_weight_pause_ends_past_the_next_minute_even_for_a_negative_clock() {
        for (now, want_ms) in [(0, 60_100), (59_999, 101), (120_500, 59_600), (-1, 101), (i64::MIN, 55_908)] {
            assert_eq!(weight_pause(now), Duration::from_millis(want_ms), "{now}");
        }
    }

    #[test]
    fn weights_are_binance_s_of_2026_and_data_api_serves_all_but_historical_trades() {
        assert_eq!(agg_trades("BTCUSDT", 1, 1000).endpoint.weight(), 4);
        assert_eq!(trades("BTCUSDT", 1, 1000).endpoint.weight(), 25);
        assert_eq!(klines("BTCUSDT", "1m", 0, 1, 1000).endpoint.weight(), 2);
        assert_eq!(depth("BTCUSDT", 1000).endpoint.weight(), 50);
        for (limit, w) in [(1, 5), (100, 5), (101, 25), (500, 25), (501, 50), (1000, 50), (1001, 250), (5000, 250)] {
            assert_eq!(Endpoint::Depth { limit }.weight(), w, "depth limit {limit}");
        }
        assert!(!trades("BTCUSDT", 1, 1).endpoint.on_data_api());
        assert!([agg_trades("A", 1, 1), klines("A", "1m", 0, 1, 1), depth("A", 1000)]
            .iter()
            .all(|c| c.endpoint.on_data_api()));
    }

    #[test]
    fn utf8_symbols_are_percent_encoded_in_the_query() {
        assert_eq!(
            agg_trades("币安人生USDT", 5, 10).path,
            "/api/v3/aggTrades?symbol=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9FUSDT&fromId=5&limit=10"
        );
        assert_eq!(depth("BTCUSDT", 1000).path, "/api/v3/depth?symbol=BTCUSDT&limit=1000");
        assert_eq!(trades("A-B.C_D", 1, 2).path, "/api/v3/historicalTrades?symbol=A-B.C_D&fromId=1&limit=2");
    }
}
