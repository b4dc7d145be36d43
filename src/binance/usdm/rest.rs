//! Binance USD-M futures' REST API (`https://fapi.binance.com`) as the backfill uses it: the
//! endpoints, their weights and limits, and the weight budget, as one [`RestApi`] ([`API`]).
//!
//! Sources (developers.binance.com, "USDⓈ-M Futures", Market Data, REST API):
//! - `GET /fapi/v1/aggTrades`: weight **20**; `fromId` "ID to get aggregate trades from
//!   INCLUSIVE", `limit` default 500, max 1000; rows carry `a p q f l T m` and no `M`
//!   (<https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Compressed-Aggregate-Trades-List>).
//! - `GET /fapi/v1/klines`: `startTime`, `endTime`, `limit` default 500, max **1500**; weight
//!   by limit: `[1,100)` 1, `[100,500)` 2, `[500,1000]` 5, `> 1000` 10; rows as spot's
//!   (<https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Kline-Candlestick-Data>).
//! - `GET /fapi/v1/depth`: `limit` one of 5, 10, 20, 50, 100, 500 (default), 1000; weight 2
//!   (5..=50), 5 (100), 10 (500), 20 (1000); the body adds `E` and `T` to `lastUpdateId`
//!   (the same table on the USD-M WebSocket API's `depth`,
//!   <https://developers.binance.com/docs/zh-CN/derivatives/usds-margined-futures/market-data/websocket-api>,
//!   and README §6).
//! - `REQUEST_WEIGHT` **2400** a minute per IP, reported in `X-MBX-USED-WEIGHT-1M`; 429 and the
//!   418 ban with `Retry-After`, as on spot (the same rules: [`crate::binance::rest::retry_after`]).
//!
//! What USD-M has not: a market-data-only fallback host (spot's `data-api.binance.vision` serves
//! spot only), `X-MBX-TIME-UNIT` (times are milliseconds), and a trade stream to backfill (no
//! `@trade` in the USD-M docs; README §6).

use crate::binance::rest::{self as spot, retry_after, weight_pause, USED_WEIGHT_HEADER};
use crate::binance::symbol::url_encoded as q;
use crate::sequence::DepthChain;
use crate::venue::rest::{Call, RestApi};

/// USD-M allows 2400 weight a minute per IP; like spot (4800 of 6000) we use four fifths and
/// leave the rest to other clients on the same IP.
pub const WEIGHT_LIMIT: u32 = 2400;
pub const WEIGHT_BUDGET: u32 = WEIGHT_LIMIT / 5 * 4;
/// The most aggregate trades one `aggTrades` page returns.
pub const MAX_AGG_TRADES_LIMIT: i64 = 1000;
/// The most candles one `klines` page returns.
pub const MAX_KLINES_LIMIT: i64 = 1500;
/// The only depths `depth` serves; any other `limit` is refused (-4021).
pub const DEPTH_LIMITS: [u32; 7] = [5, 10, 20, 50, 100, 500, 1000];

const AGG_TRADES_WEIGHT: u32 = 20;

/// `klines`' weight for a `limit`.
pub fn klines_weight(limit: i64) -> u32 {
    match limit {
        ..=99 => 1,
        100..=499 => 2,
        500..=1000 => 5,
        _ => 10,
    }
}

/// `depth`'s weight for a `limit` it serves.
pub fn depth_weight(limit: u32) -> u32 {
    match limit {
        ..=50 => 2,
        51..=100 => 5,
        101..=500 => 10,
        _ => 20,
    }
}

/// The depth to ask for `levels` a side: the smallest served that holds them, at most 1000
/// (a book kept deeper gets the levels beyond from the diffs).
pub fn depth_limit(levels: usize) -> u32 {
    DEPTH_LIMITS.into_iter().find(|&l| l as usize >= levels).unwrap_or(DEPTH_LIMITS[DEPTH_LIMITS.len() - 1])
}

/// Aggregate trades from `from_id` on; `limit` clamped to `1..=1000`.
pub fn agg_trades(symbol: &str, from_id: i64, limit: i64) -> Call {
    let limit = limit.clamp(1, MAX_AGG_TRADES_LIMIT);
    Call {
        path: format!("/fapi/v1/aggTrades?symbol={}&fromId={from_id}&limit={limit}", q(symbol)),
        label: "aggTrades",
        weight: AGG_TRADES_WEIGHT,
        on_fallback: false,
    }
}

/// Candles of `interval` opening in `start..=end` (ms); `limit` clamped to `1..=1500`.
pub fn klines(symbol: &str, interval: &str, start: i64, end: i64, limit: i64) -> Call {
    let limit = limit.clamp(1, MAX_KLINES_LIMIT);
    Call {
        path: format!(
            "/fapi/v1/klines?symbol={}&interval={interval}&startTime={start}&endTime={end}&limit={limit}",
            q(symbol)
        ),
        label: "klines",
        weight: klines_weight(limit),
        on_fallback: false,
    }
}

/// The book's top [`depth_limit`]`(levels)` a side.
pub fn depth(symbol: &str, levels: usize) -> Call {
    let limit = depth_limit(levels);
    Call {
        path: format!("/fapi/v1/depth?symbol={}&limit={limit}", q(symbol)),
        label: "depth",
        weight: depth_weight(limit),
        on_fallback: false,
    }
}

/// No trades endpoint: nothing asks for one (USD-M has no trade stream).
fn no_trades(_: &str) -> Result<Vec<crate::venue::rest::TradeRow>, String> {
    Err("USD-M has no trades to backfill".into())
}

/// USD-M futures' REST API as the backfill uses it.
pub static API: RestApi = RestApi {
    name: "binance usd-m",
    agg_trades,
    trades: None,
    klines,
    depth,
    // The bodies' keys are spot's (aggTrades without `M`, depth with `E` and `T` beside them):
    // spot's parsers read both.
    parse_agg_trades: spot::parse_agg_trades,
    parse_trades: no_trades,
    parse_klines: spot::parse_klines,
    parse_depth: spot::parse_depth,
    page: MAX_AGG_TRADES_LIMIT,
    // 1000, not 1500: a page of 1000 costs 5, one of 1500 costs 10; more candles per weight.
    klines_page: 1000,
    weight_budget: WEIGHT_BUDGET,
    used_weight_header: USED_WEIGHT_HEADER,
    time_unit_header: None,
    has_fallback: false,
    retry_after,
    weight_pause,
    depth_chain: DepthChain::PrevFinal,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_documented_tables_by_limit() {
        let k: Vec<u32> = [1, 99, 100, 499, 500, 1000, 1001, 1500].map(|l| klines("A", "1m", 0, 1, l).weight).to_vec();
        assert_eq!(k, [1, 1, 2, 2, 5, 5, 10, 10]);
        let d: Vec<u32> = DEPTH_LIMITS.map(depth_weight).to_vec();
        assert_eq!(d, [2, 2, 2, 2, 5, 10, 20]);
        assert_eq!(agg_trades("A", 1, 1).weight, 20);
        assert_eq!(agg_trades("A", 1, 1000).weight, 20);
        assert_eq!(WEIGHT_BUDGET, 1920);
    }

    #[test]
    fn limits_are_kept_within_what_fapi_accepts() {
        assert_eq!(agg_trades("BTCUSDT", 7, 5000).path, "/fapi/v1/aggTrades?symbol=BTCUSDT&fromId=7&limit=1000");
        assert_eq!(agg_trades("BTCUSDT", 7, 0).path, "/fapi/v1/aggTrades?symbol=BTCUSDT&fromId=7&limit=1");
        assert_eq!(
            klines("BTCUSDT", "1m", 60_000, 119_999, 9_999).path,
            "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=60000&endTime=119999&limit=1500"
        );
        let limits: Vec<u32> = [0, 1, 5, 6, 20, 21, 50, 99, 100, 101, 500, 501, 1000, 5000].map(depth_limit).to_vec();
        assert_eq!(limits, [5, 5, 5, 10, 20, 50, 50, 100, 100, 500, 500, 1000, 1000, 1000]);
        let c = depth("BTCUSDT", 5000);
        assert_eq!((c.path.as_str(), c.weight), ("/fapi/v1/depth?symbol=BTCUSDT&limit=1000", 20));
        assert_eq!(
            depth("币安人生USDT", 5).path,
            "/fapi/v1/depth?symbol=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9FUSDT&limit=5"
        );
        assert!(
            !API.has_fallback
                && [agg_trades("A", 1, 1), klines("A", "1m", 0, 1, 1), depth("A", 1)].iter().all(|c| !c.on_fallback)
        );
    }

    /// The documented futures bodies (the pages cited above), parsed.
    #[test]
    fn futures_bodies_parse() {
        let aggs = (API.parse_agg_trades)(
            r#"[{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true}]"#,
        )
        .unwrap();
        assert_eq!(
            (aggs[0].agg_id, aggs[0].price.as_str(), aggs[0].last_trade_id, aggs[0].time),
            (26129, "0.01633102", 27781, 1498793709153)
        );
        assert!(aggs[0].buyer_is_maker);
        let k = (API.parse_klines)(
            r#"[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","17928899.62484339"]]"#,
        )
        .unwrap();
        assert_eq!(
            (k[0].open_time, k[0].close_time, k[0].trades, k[0].close.as_str()),
            (1499040000000, 1499644799999, 308, "0.01577100")
        );
        let d = (API.parse_depth)(
            r#"{"lastUpdateId":1027024,"E":1589436922972,"T":1589436922959,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}"#,
        )
        .unwrap();
        assert_eq!(d.last_update_id, 1027024);
        assert_eq!(d.bids, [["4.00000000".to_string(), "431.00000000".to_string()]]);
        assert!((API.parse_depth)(r#"{"E":1,"T":1,"bids":[],"asks":[]}"#).is_err(), "no lastUpdateId, no book");
        assert!((API.parse_trades)("[]").is_err());
    }
}
