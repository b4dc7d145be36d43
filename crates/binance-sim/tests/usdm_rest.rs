//! USD-M REST (`/fapi/v1/`) and faults: aggregate trades paged by id and by time, as the
//! stream sent them (or left them out); klines and exchangeInfo; futures weights, 429 and 418;
//! and the spot faults on the futures listeners.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use binance_sim::{Market, RestDown, SimConfig, SimHandle, StreamKind, UsdmHandle, WafScope};
use common::*;
use serde_json::Value;

fn usdm(sim: &SimHandle) -> &UsdmHandle {
    sim.usdm.as_ref().unwrap()
}

fn agg(u: &UsdmHandle, query: &[(&str, &str)]) -> Answer {
    let mut q = vec![("symbol", "BTCUSDT")];
    q.extend_from_slice(query);
    get(&format!("{}/fapi/v1/aggTrades", u.rest_url()), &q)
}

/// The aggregate trade `k` of symbol 0 as REST writes it.
fn expected(m: &Market, k: u64) -> Value {
    let t = m.expected_agg_trade(0, k);
    serde_json::json!({"a": t.agg_id, "p": t.price, "q": t.qty, "f": t.first_trade_id, "l": t.last_trade_id,
        "T": t.trade_time_ms, "m": t.buyer_is_maker})
}

fn seq(v: &Value) -> u64 {
    (v["a"].as_i64().unwrap() - Market::trade_id_base(0)) as u64
}

/// A market of 3000 aggregate trades, all generated before the test reads them.
fn finished_market(cfg: SimConfig) -> SimHandle {
    let sim = usdm_sim(SimConfig {
        symbols: vec!["btcusdt".into()],
        trade_rate: 3_000.0,
        duration: Some(Duration::from_secs(1)),
        ..cfg
    });
    let m = &usdm(&sim).market;
    assert_eq!(m.total_trades_for(0), Some(3_000), "USD-M aggregate trades take the trade rate");
    wait_for("every aggregate trade", || m.generated_for(StreamKind::AggTrade, 0) == 3_000);
    sim
}

#[test]
fn aggregate_trades_page_by_id_exactly_as_the_market_recomputes_them() {
    let sim = finished_market(SimConfig::usdm_market());
    let u = usdm(&sim);
    let base = Market::trade_id_base(0);
    let (mut from, mut all, mut weight) = (base, Vec::new(), 0);
    loop {
        let a = agg(u, &[("fromId", &from.to_string()), ("limit", "1000")]);
        weight += 20;
        assert_eq!((a.status, a.weight), (200, Some(weight)), "{}", a.body);
        let page = a.json().as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        from = last["a"].as_i64().unwrap() + 1;
        all.extend(page);
    }
    assert_eq!(all.len(), 3_000);
    let mut skips = 0;
    for (k, v) in all.iter().enumerate() {
        assert_eq!(*v, expected(&u.market, k as u64), "aggregate trade {k}");
        assert_eq!(v.as_object().unwrap().len(), 7, "no M on futures: {v}");
        if k > 0 {
            skips += usize::from(v["f"].as_i64() > all[k - 1]["l"].as_i64().map(|l| l + 1));
        }
    }
    assert!(skips > 100, "f..l skips trade ids ({skips} times) while a stays dense");
    // No parameters: the newest 500; a limit above 1000 is 1000.
    let newest = agg(u, &[]).json();
    let newest = newest.as_array().unwrap();
    assert_eq!((newest.len(), seq(&newest[0]), seq(newest.last().unwrap())), (500, 2_500, 2_999));
    assert_eq!(agg(u, &[("fromId", &base.to_string()), ("limit", "5000")]).json().as_array().unwrap().len(), 1_000);
}

#[test]
fn aggregate_trades_page_by_time_within_an_hour() {
    let sim = finished_market(SimConfig::usdm_market());
    let u = usdm(&sim);
    let m = &u.market;
    let t = |k: u64| m.expected_agg_trade(0, k).trade_time_ms;
    let start = t(1_234);
    // From the first trade at or after startTime.
    let from = agg(u, &[("startTime", &start.to_string()), ("limit", "100")]).json();
    let from = from.as_array().unwrap();
    let first = seq(&from[0]);
    assert!(t(first) >= start && (first == 0 || t(first - 1) < start), "{first}");
    assert_eq!((from.len(), seq(&from[99])), (100, first + 99));
    // The newest up to endTime.
    let until = agg(u, &[("endTime", &start.to_string()), ("limit", "100")]).json();
    let until = until.as_array().unwrap();
    let last = seq(until.last().unwrap());
    assert!(t(last) <= start && t(last + 1) > start, "{last}");
    assert_eq!((until.len(), seq(&until[0])), (100, last - 99));
    // Both: inside the window, from its start.
    let end = t(1_300);
    let both = agg(u, &[("startTime", &start.to_string()), ("endTime", &end.to_string())]).json();
    let both = both.as_array().unwrap();
    assert_eq!(seq(&both[0]), first);
    assert!(both.iter().all(|v| (start..=end).contains(&v["T"].as_i64().unwrap())));
    assert!(t(seq(both.last().unwrap()) + 1) > end, "up to endTime");
    // An hour or more between them, or the wrong way round: refused.
    let hour = agg(u, &[("startTime", &start.to_string()), ("endTime", &(start + 3_600_000).to_string())]);
    assert_eq!((hour.status, hour.json()["code"].as_i64()), (400, Some(-1127)), "{}", hour.body);
    let back = agg(u, &[("startTime", &end.to_string()), ("endTime", &start.to_string())]);
    assert_eq!(back.json()["code"].as_i64(), Some(-1023));
}

/// `stream_skip` leaves aggregate trades out of the stream (REST has them: a gap to backfill);
/// `rest_missing` leaves some out of REST too (a gap nobody can fill).
#[test]
fn aggregate_trades_left_out_of_the_stream_are_in_rest_unless_missing_there_too() {
    let sim = usdm_sim(SimConfig {
        symbols: vec!["btcusdt".into()],
        trade_rate: 500.0,
        stream_skip: Some((10, 2)),
        rest_missing: Some((20, 1)),
        ..SimConfig::usdm_market()
    });
    let u = usdm(&sim);
    let mut c = connect_at(u.addr, "/market/ws/btcusdt@aggTrade");
    let streamed: Vec<u64> = (0..60).map(|_| seq(&c.next().unwrap())).collect();
    assert!(streamed.windows(2).all(|w| w[1] > w[0]), "in order: {streamed:?}");
    assert!(streamed.iter().all(|k| k % 10 < 8), "the last 2 of every 10 are left out: {streamed:?}");
    assert!(streamed.windows(2).any(|w| w[1] == w[0] + 3), "so the stream has gaps in a: {streamed:?}");
    let page = agg(u, &[("fromId", &Market::trade_id_base(0).to_string()), ("limit", "60")]).json();
    let rest: Vec<u64> = page.as_array().unwrap().iter().map(seq).collect();
    assert_eq!(rest.len(), 60, "a full page, filled from after what is missing");
    assert!(rest.iter().all(|k| k % 20 != 19), "missing from REST too: {rest:?}");
    assert!(rest.iter().any(|k| k % 10 == 8), "what the stream left out is in REST: {rest:?}");
}

#[test]
fn klines_exchange_info_ping_and_time_as_futures_serve_them() {
    let sim = usdm_sim(SimConfig {
        symbols: vec!["btcusdt".into(), "ethusdt".into()],
        aux_rate: 20.0,
        ..SimConfig::usdm_market()
    });
    let u = usdm(&sim);
    wait_for("some candles", || u.market.generated(StreamKind::Kline(1)) > 0);
    let klines = |q: &[(&str, &str)]| {
        let mut query = vec![("symbol", "ETHUSDT")];
        query.extend_from_slice(q);
        get(&format!("{}/fapi/v1/klines", u.rest_url()), &query)
    };
    let mut used = 0;
    for (limit, weight) in [(None, 5), (Some("99"), 1), (Some("100"), 2), (Some("1000"), 5), (Some("1500"), 10)] {
        let mut q = vec![("interval", "1m")];
        q.extend(limit.map(|l| ("limit", l)));
        let a = klines(&q);
        used += weight;
        assert_eq!((a.status, a.weight), (200, Some(used)), "limit {limit:?}: {}", a.body);
        let rows = a.json();
        let row = &rows.as_array().unwrap()[0];
        let open = row[0].as_i64().unwrap();
        let c = u.market.candle(1, 1, open);
        assert_eq!((row.as_array().unwrap().len(), open % 60_000, row[1].as_str()), (12, 0, Some(c.open.as_str())));
        assert_eq!(row[6].as_i64(), Some(open + 59_999));
    }
    let no_seconds = klines(&[("interval", "1s")]);
    assert_eq!((no_seconds.status, no_seconds.json()["code"].as_i64()), (400, Some(-1120)), "no 1s candles on futures");
    let info = get(&format!("{}/fapi/v1/exchangeInfo", u.rest_url()), &[]);
    assert_eq!(info.weight, Some(used + 5 + 1), "the refused request weighed 5 (limit 500), exchangeInfo 1");
    let info = info.json();
    assert_eq!(
        info["rateLimits"][0],
        serde_json::json!({"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":2400})
    );
    let eth = &info["symbols"][1];
    assert_eq!(
        (eth["symbol"].as_str(), eth["contractType"].as_str(), eth["baseAsset"].as_str(), eth["marginAsset"].as_str()),
        (Some("ETHUSDT"), Some("PERPETUAL"), Some("ETH"), Some("USDT"))
    );
    assert_eq!(get(&format!("{}/fapi/v1/ping", u.rest_url()), &[]).body, "{}");
    assert!(
        get(&format!("{}/fapi/v1/time", u.rest_url()), &[]).json()["serverTime"].as_i64().unwrap() > 1_600_000_000_000
    );
    // Spot's paths are not fapi's, and the spot listeners count their own.
    assert_eq!(get(&format!("{}/api/v3/depth", u.rest_url()), &[("symbol", "BTCUSDT")]).status, 404);
    assert_eq!(sim.rest_stats.requests.load(Ordering::Relaxed), 0);
}

#[test]
fn the_futures_weight_limit_answers_429_then_418_to_a_client_that_does_not_wait() {
    let sim = usdm_sim(SimConfig { rest_weight_limit: 60, ..SimConfig::usdm_market() });
    let u = usdm(&sim);
    for used in [20, 40, 60] {
        assert_eq!(agg(u, &[]).weight, Some(used));
    }
    let over = agg(u, &[]);
    assert_eq!((over.status, over.json()["code"].as_i64()), (429, Some(-1003)), "{}", over.body);
    assert!(over.body.contains("current limit is 60"), "{}", over.body);
    assert_eq!(agg(u, &[]).status, 418, "asked again before Retry-After: banned");
    assert_eq!((u.rest_stats.throttled.load(Ordering::Relaxed), u.rest_stats.early.load(Ordering::Relaxed)), (1, 1));
}

#[test]
fn spot_s_faults_reach_the_futures_listeners() {
    let sim = usdm_sim(SimConfig { aux_rate: 50.0, ..SimConfig::usdm_market() });
    let u = usdm(&sim);
    let ping = || get_with(&agent(), &format!("{}/fapi/v1/ping", u.rest_url()), &[], &[]).unwrap();
    u.take_rest_down(RestDown::Status(503), Duration::from_secs(3600));
    assert_eq!(ping().status, 503);
    u.take_rest_down(RestDown::Status(503), Duration::ZERO);
    u.block_waf(WafScope { rest: true, ws: true, data_api: false }, Duration::from_secs(3600));
    let blocked = ping();
    assert_eq!((blocked.status, blocked.content_type.starts_with("text/html")), (403, true));
    assert_eq!(try_connect_at(u.addr, "/public/ws/btcusdt@depth").err(), Some(403));
    assert_eq!(get(&format!("{}/api/v3/ping", sim.rest_url()), &[]).status, 200, "spot is not blocked");
    u.block_waf(WafScope::default(), Duration::ZERO);
    u.ban_rest(Duration::from_secs(3600));
    assert_eq!(ping().status, 418);

    let mut c = connect_at(u.addr, "/public/stream?streams=btcusdt@bookTicker");
    c.until(|v| stream(v) == "btcusdt@bookTicker");
    u.announce_shutdown();
    c.until(|v| v["data"]["e"] == "serverShutdown");
    let mut raw = connect_at(u.addr, "/public/ws/btcusdt@bookTicker");
    raw.next().unwrap();
    u.drop_connections();
    let deadline = std::time::Instant::now() + PATIENCE;
    let dropped = loop {
        assert!(std::time::Instant::now() < deadline, "never dropped");
        match raw.ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => break e,
        }
    };
    assert!(!matches!(dropped, tungstenite::Error::ConnectionClosed), "no close handshake: {dropped}");
    assert_eq!(u.market.connections.load(Ordering::Relaxed), 2);
}
