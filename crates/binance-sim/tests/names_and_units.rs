//! The Binance of 2026 on the wire: UTF-8 symbols (percent-encoded in URLs, raw or encoded in
//! SUBSCRIBE), microsecond time units on streams and REST, and `serverShutdown` on a combined
//! stream.

mod common;

use binance_sim::{Market, SimConfig, StreamKind};
use common::*;
use serde_json::Value;

const UNI: &str = "币安人生usdt";
/// `币安人生` percent-encoded, as a URL carries it.
const UNI_ENC: &str = "%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt";

fn unicode_market() -> binance_sim::SimHandle {
    sim(SimConfig {
        symbols: vec![UNI.into(), "btcusdt".into()],
        trade_rate: 400.0,
        aux_rate: 50.0,
        ..SimConfig::default()
    })
}

#[test]
fn utf8_symbols_stream_under_lower_case_names_with_upper_case_payloads() {
    let sim = unicode_market();
    let mut c = connect(&sim, &format!("/stream?streams={UNI_ENC}%40trade"));
    let (v, _) = c.until(|v| stream(v) == format!("{UNI}@trade"));
    assert_eq!(v["data"]["s"], "币安人生USDT");
    let id = v["data"]["t"].as_i64().unwrap();
    let k = (id - Market::trade_id_base(0)) as u64;
    let want = sim.market.expected_trade(0, k);
    assert_eq!(
        (v["data"]["p"].as_str().unwrap(), v["data"]["T"].as_i64().unwrap()),
        (want.price.as_str(), want.trade_time_ms)
    );
    // SUBSCRIBE with a raw name and with an encoded one; both listed as the names they are.
    let sub = format!(r#"{{"method":"SUBSCRIBE","params":["{UNI}@aggTrade","{UNI_ENC}@depth"],"id":7}}"#);
    let (reply, _) = c.request(7, &sub);
    assert_eq!(reply["result"], Value::Null);
    let (list, _) = c.request(8, r#"{"method":"LIST_SUBSCRIPTIONS","id":8}"#);
    assert_eq!(
        list["result"],
        serde_json::json!([format!("{UNI}@trade"), format!("{UNI}@aggTrade"), format!("{UNI}@depth")])
    );
    for kind in ["aggTrade", "depth"] {
        let (v, _) = c.until(|v| stream(v) == format!("{UNI}@{kind}"));
        assert_eq!(v["data"]["s"], "币安人生USDT", "{v}");
    }
    // A raw stream, its name percent-encoded in the path.
    let mut raw = connect(&sim, &format!("/ws/{UNI_ENC}%40bookTicker"));
    assert_eq!(raw.next().unwrap()["s"], "币安人生USDT");
}

#[test]
fn utf8_symbols_over_rest() {
    let sim = unicode_market();
    wait_for("a few trades", || sim.market.generated_for(StreamKind::Trade, 0) > 5);
    let rest = sim.rest_url();
    // ureq percent-encodes the parameter, as a client must.
    let depth = get(&format!("{rest}/api/v3/depth"), &[("symbol", "币安人生USDT"), ("limit", "5")]);
    assert_eq!(depth.status, 200, "{}", depth.body);
    let depth = depth.json();
    let truth = sim.market.book_at(0, depth["lastUpdateId"].as_i64().unwrap());
    assert_eq!(depth["bids"][0][0].as_str(), Some(truth.bids[0].0.as_str()), "the first symbol's book");
    let trades = get(&format!("{rest}/api/v3/historicalTrades"), &[("symbol", "币安人生USDT"), ("limit", "3")]).json();
    let first = &trades[0];
    let k = (first["id"].as_i64().unwrap() - Market::trade_id_base(0)) as u64;
    assert_eq!(first["price"].as_str(), Some(sim.market.expected_trade(0, k).price.as_str()));
    let info = get(&format!("{rest}/api/v3/exchangeInfo"), &[]).json();
    let listing = info["symbols"].as_array().unwrap().iter().find(|s| s["symbol"] == "币安人生USDT").expect("listed");
    assert_eq!((listing["baseAsset"].as_str(), listing["quoteAsset"].as_str()), (Some("币安人生"), Some("USDT")));
    let unknown = get(&format!("{rest}/api/v3/depth"), &[("symbol", "币安USDT")]);
    assert_eq!((unknown.status, unknown.json()["code"].as_i64()), (400, Some(-1121)));
}

#[test]
fn time_unit_microsecond_on_a_stream_url_writes_every_time_in_microseconds() {
    let sim = sim(SimConfig { trade_rate: 3_000.0, aux_rate: 20.0, ..SimConfig::default() });
    for unit in ["MICROSECOND", "microsecond"] {
        let mut c = connect(&sim, &format!("/stream?streams=btcusdt@trade/btcusdt@kline_1s&timeUnit={unit}"));
        let (t, _) = c.until(|v| stream(v) == "btcusdt@trade");
        let k = (t["data"]["t"].as_i64().unwrap() - Market::trade_id_base(0)) as u64;
        let want = sim.market.expected_trade(0, k);
        assert_eq!(t["data"]["T"].as_i64(), Some(want.trade_time_us), "{t}");
        assert!(t["data"]["E"].as_i64().unwrap() > 1_000_000_000_000_000, "{t}");
        let (kl, _) = c.until(|v| stream(v) == "btcusdt@kline_1s");
        let (open, close) = (kl["data"]["k"]["t"].as_i64().unwrap(), kl["data"]["k"]["T"].as_i64().unwrap());
        assert_eq!((open % 1_000_000, close - open), (0, 999_999), "{kl}");
    }
    let mut ms = connect(&sim, "/ws/btcusdt@trade?timeUnit=MILLISECOND");
    let t = ms.next().unwrap();
    let k = (t["t"].as_i64().unwrap() - Market::trade_id_base(0)) as u64;
    assert_eq!(t["T"].as_i64(), Some(sim.market.expected_trade(0, k).trade_time_ms));
    assert_eq!(try_connect(&sim, "/ws/btcusdt@trade?timeUnit=us").err(), Some(400), "a unit Binance does not list");
}

#[test]
fn rest_honours_x_mbx_time_unit_and_takes_times_in_either_unit() {
    let sim = sim(SimConfig { trade_rate: 3_000.0, aux_rate: 20.0, ..SimConfig::default() });
    wait_for("some history", || sim.market.generated(StreamKind::Kline(0)) > 3);
    let (rest, us) = (sim.rest_url(), [("X-MBX-TIME-UNIT", "MICROSECOND")]);
    let a = agent();
    let trades =
        get_with(&a, &format!("{rest}/api/v3/historicalTrades"), &[("symbol", "BTCUSDT")], &us).unwrap().json();
    for t in trades.as_array().unwrap() {
        let k = (t["id"].as_i64().unwrap() - Market::trade_id_base(0)) as u64;
        assert_eq!(t["time"].as_i64(), Some(sim.market.expected_trade(0, k).trade_time_us));
    }
    let agg = get_with(&a, &format!("{rest}/api/v3/aggTrades"), &[("symbol", "BTCUSDT")], &us).unwrap().json();
    assert!(agg[0]["T"].as_i64().unwrap() > 1_000_000_000_000_000, "{agg}");
    let klines = |query: &[(&str, &str)], headers: &[(&str, &str)]| {
        get_with(&a, &format!("{rest}/api/v3/klines"), query, headers).unwrap().json()
    };
    let in_ms = klines(&[("symbol", "BTCUSDT"), ("interval", "1s")], &[]);
    let start_ms = in_ms[0][0].as_i64().unwrap();
    let start_us = (start_ms * 1000).to_string();
    let in_us = klines(&[("symbol", "BTCUSDT"), ("interval", "1s"), ("startTime", &start_us)], &us);
    assert_eq!(in_us[0][0].as_i64(), Some(start_ms * 1000), "startTime in microseconds, answer in microseconds");
    assert_eq!(in_us[0][6].as_i64(), Some(start_ms * 1000 + 999_999), "close time: the candle's last microsecond");
    let mixed = klines(&[("symbol", "BTCUSDT"), ("interval", "1s"), ("startTime", &start_ms.to_string())], &us);
    assert_eq!(mixed[0][0], in_us[0][0], "startTime in milliseconds means the same instant");
    let info =
        get_with(&a, &format!("{rest}/api/v3/exchangeInfo"), &[], &[("X-MBX-TIME-UNIT", "microsecond")]).unwrap();
    assert!(info.json()["serverTime"].as_i64().unwrap() > 1_000_000_000_000_000);
    let bad = get_with(&a, &format!("{rest}/api/v3/ping"), &[], &[("X-MBX-TIME-UNIT", "SECONDS")]).unwrap();
    assert_eq!(bad.status, 400);
}

/// README §9: `serverShutdown` on a combined stream is named `!serverShutdown`, shaped as the
/// fixture tests/fixtures/combined/serverShutdown.json; raw, it is the bare event.
#[test]
fn server_shutdown_arrives_as_binance_documents_it() {
    let fixture = |p: &str| -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(p);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let sim = sim(SimConfig { trade_rate: 100.0, ..SimConfig::default() });
    let mut combined = connect(&sim, "/stream?streams=btcusdt@trade&timeUnit=MICROSECOND");
    let mut raw = connect(&sim, "/ws/btcusdt@trade");
    combined.until(|v| stream(v) == "btcusdt@trade");
    raw.next().unwrap();
    sim.announce_shutdown();
    let (c, _) = combined.until(|v| v["data"]["e"] == "serverShutdown");
    let want = fixture("combined/serverShutdown.json");
    assert_eq!(c["stream"], want["stream"]);
    assert_eq!(c.as_object().unwrap().keys().collect::<Vec<_>>(), want.as_object().unwrap().keys().collect::<Vec<_>>());
    assert!(c["data"]["E"].as_i64().unwrap() > 1_000_000_000_000_000, "microseconds on this connection: {c}");
    let (r, _) = raw.until(|v| v["e"] == "serverShutdown");
    let want = fixture("raw/serverShutdown.json");
    assert_eq!(r.as_object().unwrap().keys().collect::<Vec<_>>(), want.as_object().unwrap().keys().collect::<Vec<_>>());
    assert!(r["E"].as_i64().unwrap() < 1_000_000_000_000_000, "milliseconds by default: {r}");
}
