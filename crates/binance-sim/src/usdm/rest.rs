//! The USD-M REST listener (`fapi.binance.com`), from the same history the futures streams
//! sent, with Binance's futures weights (developers.binance.com/docs/derivatives/
//! usds-margined-futures/market-data/rest-api/…; REQUEST_WEIGHT 2400 a minute,
//! [`crate::SimConfig::usdm_market`]):
//!
//! - `GET /fapi/v1/aggTrades?symbol=&fromId=&startTime=&endTime=&limit=` (weight 20; limit 500,
//!   at most 1000; `startTime` and `endTime` together less than an hour apart)
//! - `GET /fapi/v1/klines?symbol=&interval=&startTime=&endTime=&limit=` (limit 500, at most 1500;
//!   weight 1, 2, 5 or 10 by limit; no `1s` interval on futures)
//! - `GET /fapi/v1/depth?symbol=&limit=` (limit 5, 10, 20, 50, 100, 500 (default) or 1000; weight
//!   2, 5, 10 or 20), with `E` and `T` beside `lastUpdateId`
//! - `GET /fapi/v1/exchangeInfo`, `/fapi/v1/ping`, `/fapi/v1/time` (weight 1)
//!
//! Times are milliseconds (no `X-MBX-TIME-UNIT` on futures). 429, 418, the WAF's 403 and the
//! outage are `rest/`'s, as on spot.

use tiny_http::Request;

use super::market::ENGINE_LAG_MS;
use crate::clock::TimeUnit;
use crate::kind::{interval_index, StreamKind};
use crate::market::Market;
use crate::rest::endpoints::{base_quote, klines, Query};
use crate::rest::{error, header, json, Answer, RestStats};

/// The depth limits Binance accepts on futures.
const DEPTH_LIMITS: [u64; 7] = [5, 10, 20, 50, 100, 500, 1000];

/// `/fapi/v1/depth`'s weight by limit.
fn depth_weight(limit: u64) -> u32 {
    match limit {
        0..=50 => 2,
        51..=100 => 5,
        101..=500 => 10,
        _ => 20,
    }
}

/// `/fapi/v1/klines`' weight by limit: [1,100) 1, [100,500) 2, [500,1000] 5, above 10.
fn klines_weight(limit: u64) -> u32 {
    match limit {
        0..=99 => 1,
        100..=499 => 2,
        500..=1000 => 5,
        _ => 10,
    }
}

/// An error Binance answers with 400: (code, message).
type Refusal = (i32, String);

/// The answer to one `/fapi/` request (the WAF and outage were checked before).
pub(crate) fn answer(req: &Request, market: &Market, stats: &RestStats) -> Answer {
    let url = req.url();
    let path = url.split('?').next().unwrap_or("");
    let q = Query::parse(url);
    let limit = q.get("limit").map(str::parse::<u64>);
    let given = |default: u64| match &limit {
        Some(Ok(l)) => *l,
        _ => default,
    };
    let cost = match path {
        "/fapi/v1/aggTrades" => 20,
        "/fapi/v1/klines" => klines_weight(given(500)),
        "/fapi/v1/depth" => depth_weight(given(500)),
        _ => 1,
    };
    let used = match stats.charge(cost, market.cfg.rest_weight_limit, market.cfg.rest_weight_window) {
        Ok(used) => used,
        Err((status, used, retry_after)) => {
            let msg = if status == 418 {
                "Way too many requests; IP banned. Please use the websocket for live updates to avoid bans.".to_string()
            } else {
                format!(
                    "Too many requests; current limit is {} requests per minute. Please use the websocket for live \
                     updates to avoid polling the API.",
                    market.cfg.rest_weight_limit
                )
            };
            return error(-1003, &msg, status, used).with_header(header("Retry-After", &retry_after.to_string()));
        }
    };
    if let Some(Err(_)) = limit {
        return error(
            -1100,
            "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
            400,
            used,
        );
    }
    let sym = q.get("symbol").map(str::to_lowercase).and_then(|s| market.symbol_index(&s));
    let body = match (path, sym) {
        ("/fapi/v1/ping", _) => Ok("{}".into()),
        ("/fapi/v1/time", _) => Ok(format!(r#"{{"serverTime":{}}}"#, crate::now_ms())),
        ("/fapi/v1/exchangeInfo", _) => Ok(exchange_info(market)),
        ("/fapi/v1/aggTrades", Some(s)) => agg_trades(market, s, &q, given(500).clamp(1, 1000)),
        ("/fapi/v1/klines", Some(s)) => match q.get("interval").and_then(interval_index) {
            // Futures have no 1 s candles.
            None | Some(0) => Err((-1120, "Invalid interval.".into())),
            Some(iv) => Ok(klines(market, s, iv, &q, given(500).clamp(1, 1500), TimeUnit::Millisecond)),
        },
        ("/fapi/v1/depth", Some(s)) => match given(500) {
            l if DEPTH_LIMITS.contains(&l) => Ok(depth(market, s, l as usize)),
            l => Err((-4021, format!("'{l}' is not valid depth limit."))),
        },
        ("/fapi/v1/aggTrades" | "/fapi/v1/klines" | "/fapi/v1/depth", None) => Err((-1121, "Invalid symbol.".into())),
        _ => return error(-1, "Not found.", 404, used),
    };
    match body {
        Ok(body) => json(body, used, 200),
        Err((code, msg)) => error(code, &msg, 400, used),
    }
}

/// The first `k` in `lo..hi` for which `past(k)` holds, `past` being false then true.
fn first_past(mut lo: u64, mut hi: u64, past: impl Fn(u64) -> bool) -> u64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if past(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// `/fapi/v1/aggTrades`: from `fromId`, or from `startTime`, or the newest up to `endTime` (or
/// now), oldest first; `T` is what the times filter. Trades missing from REST (`rest_missing`)
/// are left out, the page filled from after them.
fn agg_trades(market: &Market, sym: usize, q: &Query, limit: u64) -> Result<String, Refusal> {
    let (start, end) = (q.time_ms("startTime", true), q.time_ms("endTime", false));
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err((-1023, "Start time is greater than end time.".into()));
        }
        if e - s >= 3_600_000 {
            return Err((-1127, "More than 1 hours between startTime and endTime.".into()));
        }
    }
    let generated = market.generated_for(StreamKind::AggTrade, sym);
    let time = |k: u64| market.time_ms(StreamKind::AggTrade, sym, k) - ENGINE_LAG_MS;
    let (before, after) = (start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX));
    // Trade times never decrease with k, so each bound is a binary search.
    let hi = first_past(0, generated, |k| time(k) > after);
    let lo = match (q.num("fromId"), start) {
        (Some(id), _) => id.saturating_sub(Market::trade_id_base(sym)).max(0) as u64,
        (None, Some(_)) => first_past(0, hi, |k| time(k) >= before),
        (None, None) => hi.saturating_sub(limit),
    };
    let mut items = Vec::new();
    let mut k = lo;
    while k < hi && (items.len() as u64) < limit {
        if !market.rest_lacks(k) && time(k) >= before {
            let t = market.expected_agg_trade(sym, k);
            items.push(format!(
                r#"{{"a":{},"p":"{}","q":"{}","f":{},"l":{},"T":{},"m":{}}}"#,
                t.agg_id, t.price, t.qty, t.first_trade_id, t.last_trade_id, t.trade_time_ms, t.buyer_is_maker
            ));
        }
        k += 1;
    }
    Ok(format!("[{}]", items.join(",")))
}

/// `/fapi/v1/depth`: the book as of the latest generated event, top `limit` a side.
fn depth(market: &Market, sym: usize, limit: usize) -> String {
    let t = market.generated_for(StreamKind::Depth, sym);
    let b = market.usdm_snapshot_at(sym, t, limit);
    let side = |levels: &[(String, String)]| {
        levels.iter().map(|(p, q)| format!(r#"["{p}","{q}"]"#)).collect::<Vec<_>>().join(",")
    };
    format!(
        r#"{{"lastUpdateId":{},"E":{},"T":{},"bids":[{}],"asks":[{}]}}"#,
        b.last_update_id,
        crate::now_ms(),
        market.usdm_book_time_ms(sym, t),
        side(&b.bids),
        side(&b.asks)
    )
}

/// `/fapi/v1/exchangeInfo`: every symbol a perpetual, trading; the weight limit configured.
fn exchange_info(market: &Market) -> String {
    let symbols: Vec<String> = market
        .cfg
        .symbols
        .iter()
        .map(|s| {
            let up = s.to_uppercase();
            let (base, quote) = base_quote(&up);
            format!(
                r#"{{"symbol":"{up}","pair":"{up}","contractType":"PERPETUAL","status":"TRADING","baseAsset":"{base}","quoteAsset":"{quote}","marginAsset":"{quote}"}}"#
            )
        })
        .collect();
    let secs = market.cfg.rest_weight_window.as_secs().max(1);
    let (interval, num) = if secs % 60 == 0 { ("MINUTE", secs / 60) } else { ("SECOND", secs) };
    format!(
        r#"{{"timezone":"UTC","serverTime":{},"rateLimits":[{{"rateLimitType":"REQUEST_WEIGHT","interval":"{interval}","intervalNum":{num},"limit":{}}}],"exchangeFilters":[],"assets":[],"symbols":[{}]}}"#,
        crate::now_ms(),
        market.cfg.rest_weight_limit,
        symbols.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_binance_s_futures_tables() {
        let depth: Vec<u32> = DEPTH_LIMITS.iter().map(|&l| depth_weight(l)).collect();
        assert_eq!(depth, [2, 2, 2, 2, 5, 10, 20]);
        let klines: Vec<u32> = [1, 99, 100, 499, 500, 1000, 1001, 1500].into_iter().map(klines_weight).collect();
        assert_eq!(klines, [1, 1, 2, 2, 5, 5, 10, 10]);
    }

    #[test]
    fn the_first_past_a_bound_is_found_in_any_range() {
        let t = [1, 1, 2, 5, 5, 5, 9];
        for bound in 0..11 {
            let want = t.iter().position(|&x| x >= bound).unwrap_or(t.len()) as u64;
            assert_eq!(first_past(0, t.len() as u64, |k| t[k as usize] >= bound), want, "{bound}");
        }
        assert_eq!(first_past(5, 5, |_| true), 5);
    }

    #[test]
    fn hostile_ids_and_times_do_not_overflow() {
        let m = Market::usdm(crate::SimConfig::usdm_market());
        for q in [
            "/x?fromId=-9223372036854775808",
            "/x?fromId=9223372036854775807",
            "/x?startTime=-9223372036854775808",
            "/x?endTime=9223372036854775807",
            "/x?startTime=9223372036854775807&endTime=9223372036854775807",
        ] {
            assert!(agg_trades(&m, 0, &Query::parse(q), 1000).is_ok_and(|b| b.starts_with('[')), "{q}");
        }
        let far = Query::parse("/x?startTime=0&endTime=3600000");
        assert_eq!(agg_trades(&m, 0, &far, 10).unwrap_err().0, -1127);
        assert_eq!(agg_trades(&m, 0, &Query::parse("/x?startTime=2&endTime=1"), 10).unwrap_err().0, -1023);
    }
}
