//! Faults of issue 11: a muted stream, a web-application-firewall 403, the main REST listener
//! down, and data-api.binance.vision beside it.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use binance_sim::{Market, Mute, MuteUntil, RestDown, SimConfig, SimHandle, Waf, WafScope};
use common::*;
use serde_json::Value;

const TRADE: &str = "btcusdt@trade";
const AGG: &str = "btcusdt@aggTrade";

fn muting(until: MuteUntil) -> SimHandle {
    sim(SimConfig {
        symbols: vec!["btcusdt".into()],
        trade_rate: 1_000.0,
        aux_rate: 100.0,
        ping_interval: Duration::from_millis(200),
        // Pongs count as incoming messages: room for them and a few requests.
        max_incoming_per_sec: 100,
        mutes: vec![Mute { stream: AGG.into(), connection: Some(1), after: Duration::from_millis(300), until }],
        ..SimConfig::default()
    })
}

/// Waits for the mute to fire, then fences with a request: every frame after its reply was
/// sent after the mute.
fn past_the_mute(sim: &SimHandle, c: &mut Client) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while sim.market.muted.load(Ordering::Relaxed) == 0 {
        assert!(std::time::Instant::now() < deadline, "the mute never fired");
        c.next().expect("frames while waiting for the mute");
    }
    c.request(1, r#"{"method":"LIST_SUBSCRIPTIONS","id":1}"#);
}

/// Reads `n` trades: the aggregate trades and pings that came with them, and the last trade's
/// sequence number.
fn trades_then_count(c: &mut Client, n: usize) -> (usize, u64, i64) {
    let pings = c.pings;
    let (mut trades, mut aggs, mut last) = (0, 0, 0);
    while trades < n {
        let v = c.next().expect("trades keep coming");
        match stream(&v) {
            TRADE => {
                trades += 1;
                last = v["data"]["t"].as_i64().unwrap() - Market::trade_id_base(0);
            }
            AGG => aggs += 1,
            _ => {}
        }
    }
    (aggs, c.pings - pings, last)
}

#[test]
fn a_muted_stream_stops_alone_and_a_resubscription_brings_it_back_live() {
    let sim = muting(MuteUntil::Resubscribed);
    let mut c = connect(&sim, &format!("/stream?streams={TRADE}/{AGG}"));
    past_the_mute(&sim, &mut c);
    // 600 trades at 1000/s is 0.6 s of market time: 60 aggregate trades would have come.
    let (aggs, pings, last_trade) = trades_then_count(&mut c, 600);
    assert_eq!(aggs, 0, "the muted stream sent nothing");
    assert!(pings >= 1, "pings go on");
    let (list, _) = c.request(2, r#"{"method":"LIST_SUBSCRIPTIONS","id":2}"#);
    assert_eq!(list["result"], serde_json::json!([TRADE, AGG]), "still listed as subscribed");
    let (reply, _) = c.request(3, &format!(r#"{{"method":"SUBSCRIBE","params":["{AGG}"],"id":3}}"#));
    assert_eq!(reply["result"], Value::Null);
    let (agg, _) = c.until(|v| stream(v) == AGG);
    assert_eq!(sim.market.unmuted.load(Ordering::Relaxed), 1);
    // By the time trade `last_trade` (at (k + 1) ms) was sent, (k + 1) / 10 aggregate trades
    // were due: it resumes at the live edge, not with what fell due while muted.
    let resumed = agg["data"]["a"].as_i64().unwrap() - Market::trade_id_base(0);
    assert!(resumed + 1 >= (last_trade + 1) / 10, "aggregate trade {resumed} after trade {last_trade}");
}

#[test]
fn a_stream_muted_until_reconnection_stays_muted_whatever_the_client_sends() {
    let sim = muting(MuteUntil::Reconnected);
    let mut c = connect(&sim, &format!("/stream?streams={TRADE}/{AGG}"));
    past_the_mute(&sim, &mut c);
    c.request(2, &format!(r#"{{"method":"UNSUBSCRIBE","params":["{AGG}"],"id":2}}"#));
    c.request(3, &format!(r#"{{"method":"SUBSCRIBE","params":["{AGG}"],"id":3}}"#));
    c.request(4, &format!(r#"{{"method":"SUBSCRIBE","params":["{AGG}"],"id":4}}"#));
    let (aggs, _, _) = trades_then_count(&mut c, 600);
    assert_eq!(aggs, 0, "resubscribing does not bring it back");
    assert_eq!(sim.market.unmuted.load(Ordering::Relaxed), 0);
    // A new connection (the fault aims at the first) gets it at once.
    let mut fresh = connect(&sim, &format!("/stream?streams={TRADE}/{AGG}"));
    fresh.until(|v| stream(v) == AGG);
}

#[test]
fn the_firewall_answers_403_on_what_it_blocks_for_its_period() {
    let sim = sim(SimConfig::default());
    let ping = |base: String| get_with(&agent(), &format!("{base}/api/v3/ping"), &[], &[]).unwrap();
    assert_eq!(ping(sim.rest_url()).status, 200);
    sim.block_waf(WafScope { rest: true, ws: true, data_api: false }, Duration::from_millis(1500));
    let blocked = ping(sim.rest_url());
    assert_eq!((blocked.status, blocked.weight), (403, None), "no weight: the API never saw it");
    assert!(blocked.content_type.starts_with("text/html"), "a firewall page, not Binance's JSON");
    assert_eq!(try_connect(&sim, "/ws/btcusdt@trade").err(), Some(403));
    assert_eq!(ping(sim.data_api_url()).status, 200, "data-api is not in the scope");
    assert_eq!(sim.rest_stats.waf_blocked.load(Ordering::Relaxed), 1);
    assert_eq!(sim.market.ws_refused.load(Ordering::Relaxed), 1);
    // The period ends.
    wait_for("REST answers again", || ping(sim.rest_url()).status == 200);
    connect(&sim, "/ws/btcusdt@trade").next().expect("a trade once the block is over");

    // From the configuration: everything blocked from the start.
    let all = WafScope { rest: true, ws: true, data_api: true };
    let sim = binance_sim::spawn(
        SimConfig {
            waf: Some(Waf { scope: all, after: Duration::ZERO, len: Duration::from_secs(3600) }),
            ..SimConfig::default()
        },
        "127.0.0.1:0",
    )
    .unwrap();
    assert_eq!((ping(sim.rest_url()).status, ping(sim.data_api_url()).status), (403, 403));
    assert_eq!(try_connect(&sim, "/stream?streams=btcusdt@trade").err(), Some(403));
}

#[test]
fn the_main_rest_listener_refuses_connections_while_down_and_data_api_stays_up() {
    let sim = sim(SimConfig::default());
    let url = format!("{}/api/v3/aggTrades", sim.rest_url());
    let pooled = agent();
    assert_eq!(get_with(&pooled, &url, &[("symbol", "BTCUSDT")], &[]).unwrap().status, 200);
    sim.take_rest_down(RestDown::Refused, Duration::from_secs(2));
    wait_for("connections refused", || {
        matches!(get_with(&agent(), &url, &[("symbol", "BTCUSDT")], &[]), Err(ureq::ErrorKind::ConnectionFailed))
    });
    assert_eq!(sim.rest_stats.outages.load(Ordering::Relaxed), 1);
    // A connection opened before the outage is still answered, with a 5xx (not left hanging).
    let old = get_with(&pooled, &url, &[("symbol", "BTCUSDT")], &[]).expect("the pooled connection answers");
    assert_eq!(old.status, 503, "{}", old.body);
    let data = get(&format!("{}/api/v3/aggTrades", sim.data_api_url()), &[("symbol", "BTCUSDT")]);
    assert_eq!(data.status, 200, "data-api.binance.vision serves meanwhile");
    wait_for("the listener comes back on the same port", || {
        get_with(&agent(), &url, &[("symbol", "BTCUSDT")], &[]).is_ok_and(|a| a.status == 200)
    });
}

#[test]
fn the_main_rest_listener_can_answer_5xx_instead() {
    let sim = sim(SimConfig::default());
    let depth = |base: String| get(&format!("{base}/api/v3/depth"), &[("symbol", "BTCUSDT")]);
    // Switched on and off while the listener waits for the next request: each request meets
    // the state of the moment it arrives.
    for _ in 0..10 {
        sim.take_rest_down(RestDown::Status(502), Duration::from_secs(3600));
        let a = depth(sim.rest_url());
        assert_eq!((a.status, a.json()["code"].as_i64()), (502, Some(-1001)), "{}", a.body);
        assert_eq!(depth(sim.data_api_url()).status, 200);
        sim.take_rest_down(RestDown::Status(502), Duration::ZERO);
        assert_eq!(depth(sim.rest_url()).status, 200, "the outage is over");
    }
    assert_eq!(sim.rest_stats.outage_answers.load(Ordering::Relaxed), 10);
}

#[test]
fn data_api_serves_market_data_but_not_historical_trades_and_counts_its_own() {
    let sim = sim(SimConfig { trade_rate: 3_000.0, aux_rate: 100.0, ..SimConfig::default() });
    wait_for("some history", || sim.market.generated(binance_sim::StreamKind::Trade) > 10);
    let q = [("symbol", "ETHUSDT")];
    for (path, extra, weight) in [
        ("aggTrades", None, 4),
        ("klines", Some(("interval", "1m")), 2),
        ("depth", None, 5),
        ("exchangeInfo", None, 20),
        ("ping", None, 1),
    ] {
        let mut query = q.to_vec();
        query.extend(extra);
        let a = get(&format!("{}/api/v3/{path}", sim.data_api_url()), &query);
        let b = get(&format!("{}/api/v3/{path}", sim.rest_url()), &query);
        assert_eq!((a.status, b.status), (200, 200), "{path}: {} / {}", a.body, b.body);
        assert_eq!(a.weight, b.weight, "{path}: each listener has its own weight count");
        assert!(a.weight.unwrap() >= weight);
        if path != "exchangeInfo" {
            assert_eq!(a.json().is_array(), b.json().is_array(), "{path}: the same shape");
        }
    }
    let missing = get(&format!("{}/api/v3/historicalTrades", sim.data_api_url()), &q);
    assert_eq!(missing.status, 404, "{}", missing.body);
    let there = get(&format!("{}/api/v3/historicalTrades", sim.rest_url()), &q);
    assert_eq!((there.status, there.json().as_array().map(|a| a.is_empty())), (200, Some(false)));
    assert_eq!(sim.data_api_stats.requests.load(Ordering::Relaxed), 6);
    assert_eq!(sim.rest_stats.requests.load(Ordering::Relaxed), 6);
}
