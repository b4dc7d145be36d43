//! Spot's connection faults on the USD-M listener, configured in the USD-M section alone: a
//! muted `/market` stream (the silence issue 12's per-stream liveness check must notice beside
//! the retired root's), and a short connection lifetime with its `serverShutdown` notice.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use binance_sim::{Mute, MuteUntil, SimConfig, SimHandle, UsdmHandle};
use common::*;
use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

const AGG: &str = "btcusdt@aggTrade";
const KLINE: &str = "btcusdt@kline_1m";

fn usdm(sim: &SimHandle) -> &UsdmHandle {
    sim.usdm.as_ref().expect("a USD-M market")
}

#[test]
fn a_muted_market_stream_stops_alone_and_a_resubscription_brings_it_back() {
    let sim = usdm_sim(SimConfig {
        symbols: vec!["btcusdt".into()],
        trade_rate: 200.0,
        aux_rate: 200.0,
        ping_interval: Duration::from_millis(200),
        // Pongs count as incoming messages: room for them and a few requests.
        max_incoming_per_sec: 100,
        mutes: vec![Mute {
            stream: AGG.into(),
            connection: Some(1),
            after: Duration::from_millis(300),
            until: MuteUntil::Resubscribed,
        }],
        ..SimConfig::usdm_market()
    });
    let u = usdm(&sim);
    let mut c = connect_at(u.addr, &format!("/market/stream?streams={AGG}/{KLINE}"));
    let deadline = Instant::now() + PATIENCE;
    while u.market.muted.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the mute never fired");
        c.next().expect("frames while waiting for the mute");
    }
    // A fence: every frame after its reply was sent after the mute.
    c.request(1, r#"{"method":"LIST_SUBSCRIPTIONS","id":1}"#);
    // 200 candle updates at 200/s: a second of market time in which 200 aggregate trades fell due.
    let (pings, mut aggs, mut klines) = (c.pings, 0, 0);
    while klines < 200 {
        let v = c.next().expect("candles keep coming");
        match stream(&v) {
            AGG => aggs += 1,
            KLINE => klines += 1,
            _ => {}
        }
    }
    assert_eq!(aggs, 0, "the muted stream sent nothing");
    assert!(c.pings > pings, "pings go on");
    let (list, _) = c.request(2, r#"{"method":"LIST_SUBSCRIPTIONS","id":2}"#);
    assert_eq!(list["result"], serde_json::json!([AGG, KLINE]), "still listed as subscribed");
    let (reply, _) = c.request(3, &format!(r#"{{"method":"SUBSCRIBE","params":["{AGG}"],"id":3}}"#));
    assert_eq!(reply["result"], Value::Null);
    c.until(|v| stream(v) == AGG);
    assert_eq!(u.market.unmuted.load(Ordering::Relaxed), 1);
    assert_eq!(sim.market.muted.load(Ordering::Relaxed), 0, "the fault is the USD-M section's alone");
}

#[test]
fn usdm_connections_announce_server_shutdown_then_close_at_their_lifetime_while_spot_goes_on() {
    let sim = sim(SimConfig {
        symbols: vec!["btcusdt".into()],
        usdm: Some(Box::new(SimConfig {
            symbols: vec!["btcusdt".into()],
            aux_rate: 20.0,
            connection_lifetime: Some(Duration::from_millis(1_500)),
            shutdown_notice: Some(Duration::from_millis(700)),
            ..SimConfig::usdm_market()
        })),
        ..SimConfig::default()
    });
    let mut spot = connect(&sim, "/ws/btcusdt@trade");
    let mut c = connect_at(usdm(&sim).addr, "/public/stream?streams=btcusdt@bookTicker");
    let (notice, before) = c.until(|v| v["data"]["e"] == "serverShutdown");
    assert_eq!(notice["stream"], "!serverShutdown");
    assert!(before.iter().any(|v| stream(v) == "btcusdt@bookTicker"), "the stream flowed before the notice");
    let deadline = Instant::now() + PATIENCE;
    let close = loop {
        assert!(Instant::now() < deadline, "never closed");
        match c.ws.read() {
            Ok(Message::Close(f)) => break f,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("read before the close frame: {e}"),
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away), "closed for its lifetime");
    // Spot's connection, opened first, has no lifetime: it is still served after that close.
    let closed_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    spot.until(|v| v["e"] == "trade" && v["E"].as_i64().is_some_and(|e| e > closed_ms));
}
