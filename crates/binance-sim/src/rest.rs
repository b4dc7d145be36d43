//! The REST side of the simulator: the endpoints the ingester backfills from, served from the
//! same deterministic history the streams sent, with Binance's weight header and 429s.
//!
//! - `GET /api/v3/historicalTrades?symbol=&fromId=&limit=` (weight 25)
//! - `GET /api/v3/aggTrades?symbol=&fromId=&limit=` (weight 4)
//! - `GET /api/v3/klines?symbol=&interval=&startTime=&endTime=&limit=` (weight 2)
//! - `GET /api/v3/depth?symbol=&limit=` (weight 5..250)
//! - `GET /api/v3/exchangeInfo` (weight 20), `GET /api/v3/ping`

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tiny_http::{Header, Response, Server};

use super::market::Market;
use crate::kind::{interval_index, StreamKind};

/// REST requests served (for tests), and the limiter's state.
#[derive(Default)]
pub struct RestStats {
    pub requests: AtomicU64,
    /// 429 answers: over the weight limit.
    pub throttled: AtomicU64,
    /// 418 answers: banned, by `RestStats::ban` or for ignoring a `Retry-After`.
    pub banned: AtomicU64,
    /// Requests that came before the `Retry-After` of an earlier 429/418 had passed (Binance
    /// answers those with an IP ban; a well-behaved client makes none).
    pub early: AtomicU64,
    limiter: Mutex<Limiter>,
}

#[derive(Default)]
struct Limiter {
    /// Start of the current weight window and the weight used in it.
    window: Option<(Instant, u32)>,
    /// No request is welcome before this (the last `Retry-After` given).
    retry_at: Option<Instant>,
    /// Banned until this: every request gets 418.
    ban_until: Option<Instant>,
}

impl RestStats {
    pub(crate) fn ban(&self, until: Instant) {
        let mut l = self.limiter.lock().unwrap();
        l.ban_until = Some(until);
        l.retry_at = None;
    }
}

/// Whole seconds from `now` to `t`, rounded up, as `Retry-After` states them.
fn secs_until(now: Instant, t: Instant) -> u64 {
    let d = t.saturating_duration_since(now);
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Binance's REQUEST_WEIGHT limiter: the weight of each request counts against a window; past
/// the limit 429 with `Retry-After` (seconds to the window's end); a request before a given
/// `Retry-After` has passed gets a 418 ban of two windows.
fn limit(stats: &RestStats, cost: u32, limit: u32, window: Duration) -> Result<u32, (u16, u32, u64)> {
    let mut l = stats.limiter.lock().unwrap();
    let now = Instant::now();
    if l.retry_at.is_some_and(|t| now < t) {
        stats.early.fetch_add(1, Ordering::Relaxed);
        l.ban_until = Some(now + 2 * window);
        l.retry_at = None;
    }
    let (start, used) = l.window.get_or_insert((now, 0));
    if now.duration_since(*start) >= window {
        *start = now;
        *used = 0;
    }
    *used += cost;
    let (used, window_end) = (*used, *start + window);
    if let Some(until) = l.ban_until.filter(|t| now < *t) {
        stats.banned.fetch_add(1, Ordering::Relaxed);
        // The ban itself is the retry time: coming back earlier is another violation.
        let secs = secs_until(now, until);
        l.retry_at = Some(now + Duration::from_secs(secs));
        return Err((418, used, secs));
    }
    if used > limit {
        stats.throttled.fetch_add(1, Ordering::Relaxed);
        let secs = secs_until(now, window_end).max(1);
        l.retry_at = Some(now + Duration::from_secs(secs));
        return Err((429, used, secs));
    }
    Ok(used)
}

fn query(url: &str) -> HashMap<String, String> {
    url.split_once('?')
        .map(|(_, q)| {
            q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
        })
        .unwrap_or_default()
}

fn json(body: String, weight: u32, status: u16) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]).unwrap())
        .with_header(Header::from_bytes(&b"X-MBX-USED-WEIGHT-1M"[..], weight.to_string().as_bytes()).unwrap())
}

fn error(code: i32, msg: &str, status: u16, weight: u32) -> Response<std::io::Cursor<Vec<u8>>> {
    json(format!(r#"{{"code":{code},"msg":"{msg}"}}"#), weight, status)
}

/// Serves until `stop`.
pub(crate) fn serve(server: Server, market: Arc<Market>, stats: Arc<RestStats>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(100)) else { continue };
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let url = req.url().to_string();
        let path = url.split('?').next().unwrap_or("").to_string();
        let q = query(&url);
        let cost = match path.as_str() {
            "/api/v3/historicalTrades" => 25,
            "/api/v3/aggTrades" => 4,
            "/api/v3/klines" => 2,
            "/api/v3/exchangeInfo" => 20,
            "/api/v3/depth" => 5,
            _ => 1,
        };
        let used = match limit(&stats, cost, market.cfg.rest_weight_limit, market.cfg.rest_weight_window) {
            Ok(used) => used,
            Err((status, used, retry_after)) => {
                let msg = if status == 418 {
                    "Way too many requests; IP banned until further notice."
                } else {
                    "Too many requests; current limit is exceeded."
                };
                let resp = error(-1003, msg, status, used)
                    .with_header(Header::from_bytes(&b"Retry-After"[..], retry_after.to_string().as_bytes()).unwrap());
                let _ = req.respond(resp);
                continue;
            }
        };
        let sym = q.get("symbol").map(|s| s.to_lowercase()).and_then(|s| market.symbol_index(&s));
        let limit = q.get("limit").and_then(|l| l.parse::<u64>().ok()).unwrap_or(500).clamp(1, 1000);
        let from = q.get("fromId").and_then(|f| f.parse::<i64>().ok());
        let resp = match (path.as_str(), sym) {
            ("/api/v3/ping", _) => json("{}".into(), used, 200),
            ("/api/v3/exchangeInfo", _) => {
                let symbols: Vec<String> = market
                    .cfg
                    .symbols
                    .iter()
                    .map(|s| {
                        let up = s.to_uppercase();
                        let (base, quote) = up.split_at(up.len().saturating_sub(4));
                        format!(
                            r#"{{"symbol":"{up}","status":"TRADING","baseAsset":"{base}","quoteAsset":"{quote}","isSpotTradingAllowed":true,"permissions":["SPOT"],"permissionSets":[["SPOT"]]}}"#
                        )
                    })
                    .collect();
                json(
                    format!(
                        r#"{{"timezone":"UTC","serverTime":{},"rateLimits":[],"exchangeFilters":[],"symbols":[{}]}}"#,
                        crate::now_ms(),
                        symbols.join(",")
                    ),
                    used,
                    200,
                )
            }
            ("/api/v3/historicalTrades", Some(s)) => {
                let base = Market::trade_id_base(s);
                let generated = market.generated(StreamKind::Trade);
                let first = (from.unwrap_or(base + generated as i64 - limit as i64) - base).max(0) as u64;
                let mut items = Vec::new();
                let mut k = first;
                while k < generated && (items.len() as u64) < limit {
                    if !market.rest_lacks(k) {
                        let t = market.expected_trade(s, k);
                        items.push(format!(
                            r#"{{"id":{},"price":"{}","qty":"{}","quoteQty":"0","time":{},"isBuyerMaker":{},"isBestMatch":true}}"#,
                            t.trade_id, t.price, t.qty, t.trade_time_ms, t.buyer_is_maker
                        ));
                    }
                    k += 1;
                }
                json(format!("[{}]", items.join(",")), used, 200)
            }
            ("/api/v3/aggTrades", Some(s)) => {
                let base = Market::trade_id_base(s);
                let generated = market.generated(StreamKind::AggTrade);
                let first = (from.unwrap_or(base + generated as i64 - limit as i64) - base).max(0) as u64;
                let items: Vec<String> = (first..generated.min(first + limit))
                    .map(|k| {
                        let (a, p, q, f, l, t, m) = market.agg_parts(s, k);
                        format!(r#"{{"a":{a},"p":"{p}","q":"{q}","f":{f},"l":{l},"T":{t},"m":{m},"M":true}}"#)
                    })
                    .collect();
                json(format!("[{}]", items.join(",")), used, 200)
            }
            ("/api/v3/klines", Some(s)) => {
                let iv = q.get("interval").and_then(|i| interval_index(i));
                match iv {
                    None => error(-1120, "Invalid interval.", 400, used),
                    Some(iv) => json(klines(&market, s, iv, &q, limit), used, 200),
                }
            }
            ("/api/v3/depth", Some(s)) => {
                let generated = market.generated(StreamKind::Depth);
                let last = Market::trade_id_base(s) + 3 * generated as i64 + 2;
                json(
                    format!(
                        r#"{{"lastUpdateId":{last},"bids":[["{}.00000000","1.5"]],"asks":[["{}.00000000","2.5"]]}}"#,
                        100 * (s + 1),
                        100 * (s + 1) + 1
                    ),
                    used,
                    200,
                )
            }
            (_, None) if path.starts_with("/api/v3/") => error(-1121, "Invalid symbol.", 400, used),
            _ => error(-1, "Not found.", 404, used),
        };
        let _ = req.respond(resp);
    }
}

/// `/api/v3/klines`: candles opening in `startTime..=endTime`, oldest first, as Binance's arrays.
/// Like Binance, the candle still open comes last with its running values.
fn klines(market: &Market, sym: usize, iv: u8, q: &HashMap<String, String>, limit: u64) -> String {
    let kind = StreamKind::Kline(iv);
    let generated = market.generated(kind);
    if generated == 0 {
        return "[]".into();
    }
    let len = Market::kline_len(iv);
    let first = market.first_candle(iv);
    // The candle the clock is in is still open, whatever was streamed of it.
    let now = crate::now_ms();
    let current = now - now.rem_euclid(len);
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let end = num("endTime").unwrap_or(i64::MAX).min(current);
    let start = match num("startTime") {
        // Open times are multiples of the interval: the first candle opening at or after start.
        Some(t) => t + (len - t.rem_euclid(len)) % len,
        None => end - end.rem_euclid(len) - (limit as i64 - 1) * len,
    }
    .max(first);
    let mut items = Vec::new();
    let mut t = start;
    while t <= end && (items.len() as u64) < limit {
        let c = market.candle(sym, iv, t);
        items.push(format!(
            r#"[{},"{}","{}","{}","{}","{}",{},"{}",{},"{}","{}","0"]"#,
            c.open_time_ms,
            c.open,
            c.high,
            c.low,
            if t == current { "0.1" } else { c.close.as_str() },
            c.volume,
            c.close_time_ms,
            c.quote_volume,
            c.trades,
            c.taker_buy_volume,
            c.taker_buy_quote_volume
        ));
        t += len;
    }
    format!("[{}]", items.join(","))
}
