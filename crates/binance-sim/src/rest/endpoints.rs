//! The bodies of the market-data endpoints, from the same deterministic history the streams
//! sent (README §4 gives the shapes; tests/fixtures/rest/ Binance's examples).

use std::collections::HashMap;

use crate::clock::TimeUnit;
use crate::kind::StreamKind;
use crate::market::Market;

/// A query string's parameters, percent-decoded (a UTF-8 `symbol=` arrives encoded).
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    pub(crate) fn parse(url: &str) -> Query {
        let q = url.split_once('?').map_or("", |(_, q)| q);
        let decode = |s: &str| crate::session::decode(s).into_owned();
        Query(q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect())
    }

    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    pub(crate) fn num(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(|v| v.parse().ok())
    }

    /// A `startTime`/`endTime`, which Binance takes in milliseconds or microseconds whatever the
    /// `X-MBX-TIME-UNIT` (README §2.4), in milliseconds. The simulator tells them apart by size:
    /// 10^14 and above is microseconds (10^14 ms is the year 5138, 10^14 µs 1973); `round_up`
    /// for a bound that includes what comes at or after it.
    pub(crate) fn time_ms(&self, k: &str, round_up: bool) -> Option<i64> {
        let v = self.num(k)?;
        Some(match v {
            v if v >= 100_000_000_000_000 && round_up => v.saturating_add(999).div_euclid(1000),
            v if v >= 100_000_000_000_000 => v.div_euclid(1000),
            v => v,
        })
    }
}

/// The first of `limit` items ending at the newest, or from `fromId`, as an index from `base`.
fn first_index(from: Option<i64>, base: i64, generated: u64, limit: u64) -> u64 {
    let newest = base.saturating_add(generated as i64).saturating_sub(limit as i64);
    from.unwrap_or(newest).saturating_sub(base).max(0) as u64
}

/// `/api/v3/historicalTrades`: trades from `fromId` (default: the newest `limit`).
pub(crate) fn historical_trades(market: &Market, sym: usize, q: &Query, limit: u64, unit: TimeUnit) -> String {
    let generated = market.generated_for(StreamKind::Trade, sym);
    let mut k = first_index(q.num("fromId"), Market::trade_id_base(sym), generated, limit);
    let mut items = Vec::new();
    while k < generated && (items.len() as u64) < limit {
        if !market.rest_lacks(k) {
            let t = market.expected_trade(sym, k);
            items.push(format!(
                r#"{{"id":{},"price":"{}","qty":"{}","quoteQty":"0","time":{},"isBuyerMaker":{},"isBestMatch":true}}"#,
                t.trade_id,
                t.price,
                t.qty,
                unit.from_us(t.trade_time_us),
                t.buyer_is_maker
            ));
        }
        k += 1;
    }
    format!("[{}]", items.join(","))
}

/// `/api/v3/aggTrades`: aggregate trades from `fromId` (default: the newest `limit`).
pub(crate) fn agg_trades(market: &Market, sym: usize, q: &Query, limit: u64, unit: TimeUnit) -> String {
    let generated = market.generated_for(StreamKind::AggTrade, sym);
    let first = first_index(q.num("fromId"), Market::trade_id_base(sym), generated, limit);
    let items: Vec<String> = (first..generated.min(first.saturating_add(limit)))
        .map(|k| {
            let (a, p, qty, f, l, _, m) = market.agg_parts(sym, k);
            let t = unit.from_us(market.time_us(StreamKind::AggTrade, sym, k));
            format!(r#"{{"a":{a},"p":"{p}","q":"{qty}","f":{f},"l":{l},"T":{t},"m":{m},"M":true}}"#)
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// `/api/v3/klines`: candles opening in `startTime..=endTime`, oldest first, as Binance's arrays.
/// Like Binance, the candle still open comes last with its running values.
pub(crate) fn klines(market: &Market, sym: usize, iv: u8, q: &Query, limit: u64, unit: TimeUnit) -> String {
    let kind = StreamKind::Kline(iv);
    if market.generated(kind) == 0 {
        return "[]".into();
    }
    let len = Market::kline_len(iv);
    let first = market.first_candle(iv);
    // The candle the clock is in is still open, whatever was streamed of it.
    let now = crate::now_ms();
    let current = now - now.rem_euclid(len);
    let end = q.time_ms("endTime", false).unwrap_or(i64::MAX).min(current);
    let start = match q.time_ms("startTime", true) {
        // Open times are multiples of the interval: the first candle opening at or after start.
        Some(t) => t.saturating_add((len - t.rem_euclid(len)) % len),
        None => end - end.rem_euclid(len) - (limit as i64 - 1) * len,
    }
    .max(first);
    let mut items = Vec::new();
    let mut t = start;
    while t <= end && (items.len() as u64) < limit {
        let c = market.candle(sym, iv, t);
        items.push(format!(
            r#"[{},"{}","{}","{}","{}","{}",{},"{}",{},"{}","{}","0"]"#,
            unit.from_ms(c.open_time_ms),
            c.open,
            c.high,
            c.low,
            if t == current { "0.1" } else { c.close.as_str() },
            c.volume,
            unit.last_before_ms(c.open_time_ms + len),
            c.quote_volume,
            c.trades,
            c.taker_buy_volume,
            c.taker_buy_quote_volume
        ));
        t += len;
    }
    format!("[{}]", items.join(","))
}

/// `/api/v3/depth`: the book as of the latest generated diff-depth event, top `limit` a side.
pub(crate) fn depth(market: &Market, sym: usize, limit: usize) -> String {
    let b = market.depth_snapshot(sym, limit);
    let side = |levels: &[(String, String)]| {
        levels.iter().map(|(p, q)| format!(r#"["{p}","{q}"]"#)).collect::<Vec<_>>().join(",")
    };
    format!(r#"{{"lastUpdateId":{},"bids":[{}],"asks":[{}]}}"#, b.last_update_id, side(&b.bids), side(&b.asks))
}

/// Every symbol's price step: trades are priced in cents, written with 8 decimals.
pub const TICK_SIZE: &str = "0.01000000";
/// Every symbol's quantity step: quantities go to the 8th decimal.
pub const STEP_SIZE: &str = "0.00000001";

/// `/api/v3/exchangeInfo`: every symbol, trading, with the price and quantity filters that
/// give the decimals of its trades' text (what an SBE client formats mantissas with).
pub(crate) fn exchange_info(market: &Market, unit: TimeUnit) -> String {
    let symbols: Vec<String> = market
        .cfg
        .symbols
        .iter()
        .map(|s| {
            let up = s.to_uppercase();
            let (base, quote) = base_quote(&up);
            format!(
                r#"{{"symbol":"{up}","status":"TRADING","baseAsset":"{base}","quoteAsset":"{quote}","isSpotTradingAllowed":true,"permissions":["SPOT"],"permissionSets":[["SPOT"]],"filters":[{{"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000","tickSize":"{TICK_SIZE}"}},{{"filterType":"LOT_SIZE","minQty":"0.00000001","maxQty":"9000.00000000","stepSize":"{STEP_SIZE}"}}]}}"#
            )
        })
        .collect();
    format!(
        r#"{{"timezone":"UTC","serverTime":{},"rateLimits":[],"exchangeFilters":[],"symbols":[{}]}}"#,
        unit.from_us(crate::now_us()),
        symbols.join(",")
    )
}

/// A symbol's base and quote assets: a known quote asset at its end, else its last four
/// characters (characters, not bytes: `币安人生` is twelve bytes).
pub(crate) fn base_quote(up: &str) -> (&str, &str) {
    const QUOTES: [&str; 6] = ["USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB"];
    match QUOTES.iter().find(|q| up.len() > q.len() && up.ends_with(*q)) {
        Some(q) => up.split_at(up.len() - q.len()),
        None => up.split_at(up.char_indices().rev().nth(3).map_or(0, |(i, _)| i)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_utf8_symbols_and_times_come_in_either_unit() {
        let q = Query::parse("/api/v3/depth?symbol=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9FUSDT&limit=5&startTime=1700000000000500&endTime=1700000000000");
        assert_eq!((q.get("symbol"), q.get("limit")), (Some("币安人生USDT"), Some("5")));
        assert_eq!(q.time_ms("startTime", true), Some(1_700_000_000_001));
        assert_eq!(q.time_ms("startTime", false), Some(1_700_000_000_000));
        assert_eq!(q.time_ms("endTime", false), Some(1_700_000_000_000));
    }

    #[test]
    fn base_and_quote_split_on_characters() {
        assert_eq!(base_quote("币安人生USDT"), ("币安人生", "USDT"));
        assert_eq!(base_quote("ETHBTC"), ("ETH", "BTC"));
        assert_eq!(base_quote("币安人生"), ("", "币安人生"));
        assert_eq!(base_quote("ABC币安人生"), ("ABC", "币安人生"));
    }

    #[test]
    fn hostile_ids_and_limits_do_not_overflow() {
        let m = Market::new(crate::SimConfig::default());
        for from in ["-9223372036854775808", "9223372036854775807", "-1"] {
            let q = Query::parse(&format!("/x?fromId={from}"));
            assert!(historical_trades(&m, 0, &q, 1000, TimeUnit::Millisecond).starts_with('['));
            assert!(agg_trades(&m, 0, &q, 1000, TimeUnit::Millisecond).starts_with('['));
        }
    }
}
