//! A connection that goes silent with its TCP connection open (no data, no pings, no close) can
//! only be noticed by the ingester's own staleness check (`WS_STALE_MS`): it must be replaced,
//! counted in `ws_stale_total`, and the trades of the silent stretch filled from REST, so the
//! topic still holds every trade exactly once.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::*;
use binance_sim::{Silence, SimConfig, StreamKind};

#[test]
fn a_silent_connection_is_replaced_and_nothing_is_lost() {
    // Only the first connection goes silent, 4 s after it opened (the ingester is ready by then);
    // its replacement streams normally until the market ends. Pings every 300 ms keep a healthy
    // connection fresh after the market stops trading (pongs stay within the 5 messages a second).
    let sim = sim(SimConfig {
        trade_rate: 3_000.0,
        duration: Some(Duration::from_secs(15)),
        ping_interval: Duration::from_millis(300),
        pong_timeout: Duration::from_millis(1000),
        silence: Some(Silence { connection: Some(1), after: Duration::from_secs(4), read: true }),
        ..SimConfig::default()
    });
    let (ws, rest, topic) = (sim.ws_url(), sim.rest_url(), unique_topic("stale"));
    let mut ing = Ingester::spawn(&[
        ("BINANCE_WS_URL", &ws),
        ("BINANCE_REST_URL", &rest),
        ("KAFKA_BROKER", kafka()),
        ("KAFKA_TOPIC", &topic),
        // The configuration's lower bound.
        ("WS_STALE_MS", "1000"),
    ]);
    ing.wait_ready(Duration::from_secs(30));

    let t = Instant::now();
    while ing.metric("marketflow_ingestor_ws_stale_total") < 1.0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the silent connection was never declared stale (connections silenced: {}):\n{}",
            sim.market.silenced.load(Ordering::Relaxed),
            ing.dump_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sim.market.silenced.load(Ordering::Relaxed), 1, "the fault hit one connection");
    let t = Instant::now();
    while ing.metric("marketflow_ingestor_ws_connect_attempts_total{result=\"ok\"}") < 2.0 {
        assert!(t.elapsed() < Duration::from_secs(30), "the stale connection was not replaced:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ing.dump_logs().contains("stale: no data and no ping"), "{}", ing.dump_logs());

    let per = sim.market.total_trades_per_symbol().unwrap();
    let t = Instant::now();
    while sim.market.generated(StreamKind::Trade) < per {
        assert!(t.elapsed() < Duration::from_secs(60), "market never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    let msgs = consume(&topic, 3 * per as usize, Duration::from_secs(60), Duration::from_secs(3));
    // The replacement stayed: one stale connection, one reconnect per symbol.
    assert_eq!(ing.metric("marketflow_ingestor_ws_stale_total"), 1.0);
    assert_eq!(ing.metric("marketflow_ingestor_ws_reconnects_total{symbol=\"btcusdt\"}"), 1.0);
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());

    let c = verify_complete(&msgs, &sim.market, per, |_| false);
    assert!(c.backfilled > 0, "the silent stretch was filled from REST: {c:?}");
    assert_eq!(c.live + c.backfilled, 3 * per, "{c:?}");
}
