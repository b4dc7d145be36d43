//! One stream falls silent while its connection lives on (Binance's 2026 USD-M routing change:
//! subscriptions acknowledged, pings answered, other streams flowing): the ingester's per-stream
//! liveness must find it (within 30 s for a liquid stream), resubscribe it, replace the
//! connection if that does not help, publish `stale` records saying so, and lose no trade (the
//! silent stretch is filled from REST).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::*;
use binance_sim::{Mute, MuteUntil, SimConfig, SimHandle, StreamKind};

/// The market runs this long; the mute fires 8 s after the first connection opened.
const MARKET: Duration = Duration::from_secs(50);

/// Three liquid symbols (100 trades a second each); `btcusdt@trade` goes silent on the first
/// connection, until `until`.
fn muted_market(until: MuteUntil) -> SimHandle {
    sim(SimConfig {
        trade_rate: 300.0,
        // Pings every 2 s: the connection stays alive all through the silence.
        ping_interval: Duration::from_secs(2),
        duration: Some(MARKET),
        mutes: vec![Mute { stream: "btcusdt@trade".into(), connection: Some(1), after: Duration::from_secs(8), until }],
        ..SimConfig::default()
    })
}

fn stale_count(ing: &Ingester, action: &str) -> f64 {
    ing.metric(&format!("marketflow_ingestor_stream_stale_total{{action=\"{action}\"}}"))
}

/// What the metrics showed while the stream was silent.
#[derive(Debug)]
struct Seen {
    /// Largest `stream_last_message_age_seconds` of the muted stream.
    max_age: f64,
    /// Largest `streams_stale`.
    max_stale: f64,
    /// Server pings answered between the mute and the recovery.
    pings: f64,
}

/// Waits (bounded) until the stream is back, watching the metrics on the way.
fn wait_recovered(ing: &Ingester, sim: &SimHandle) -> Seen {
    let pings = || ing.metric("marketflow_ingestor_ws_pings_total");
    let mut seen = Seen { max_age: 0.0, max_stale: 0.0, pings: 0.0 };
    let mut pings_at_mute = None;
    let t = Instant::now();
    while stale_count(ing, "recovered") < 1.0 {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "the silent stream never came back (mutes fired: {}):\n{}",
            sim.market.muted.load(Ordering::Relaxed),
            ing.dump_logs()
        );
        if pings_at_mute.is_none() && sim.market.muted.load(Ordering::Relaxed) > 0 {
            pings_at_mute = Some(pings());
        }
        let age =
            ing.metric("marketflow_ingestor_stream_last_message_age_seconds{stream=\"trade\",symbol=\"btcusdt\"}");
        seen.max_age = seen.max_age.max(age);
        seen.max_stale = seen.max_stale.max(ing.metric("marketflow_ingestor_streams_stale"));
        std::thread::sleep(Duration::from_millis(200));
    }
    seen.pings = pings() - pings_at_mute.expect("recovered before the mute fired");
    // Pings went on through the silence (every 2 s), so the connection-level check never fired.
    assert!(seen.pings >= 2.0, "pings answered during the silence: {seen:?}");
    assert_eq!(ing.metric("marketflow_ingestor_ws_stale_total"), 0.0);
    assert_eq!(ing.metric("marketflow_ingestor_streams_stale"), 0.0);
    // The silent stream's age grew toward its bound (10 s) before it was found.
    assert!(seen.max_age >= 5.0, "the muted stream's age was exported: {seen:?}");
    seen
}

/// Lets the market finish, reads the topic back and stops the ingester: the `stale` records
/// written before the market's end (its end silences every stream, which is found too), and the
/// trades, checked complete.
fn finish(sim: &SimHandle, mut ing: Ingester, topic: &str) -> Vec<serde_json::Value> {
    let per = sim.market.total_trades_per_symbol().unwrap();
    let t = Instant::now();
    while sim.market.generated(StreamKind::Trade) < per {
        assert!(t.elapsed() < MARKET + Duration::from_secs(60), "market never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    let msgs = consume(topic, 3 * per as usize, Duration::from_secs(90), Duration::from_secs(3));
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    let c = verify_complete(&msgs, &sim.market, per, |_| false);
    assert!(c.backfilled > 0, "the silent stretch was filled from REST: {c:?}");
    assert_eq!(c.live + c.backfilled, 3 * per, "{c:?}");
    let end_ms = sim.market.expected_trade(0, per - 1).trade_time_ms;
    let stale: Vec<&Consumed> = msgs.iter().filter(|m| m.payload["type"] == "stale").collect();
    for m in &stale {
        let p = &m.payload;
        assert_eq!(m.key, p["symbol"].as_str().unwrap().as_bytes(), "key = symbol: {p}");
        assert_eq!((&p["exchange"], &p["stream"]), (&"binance".into(), &"trade".into()), "{p}");
    }
    // Silences that began before the last trade: the mute's, not the market's end.
    stale
        .into_iter()
        .map(|m| m.payload.clone())
        .filter(|p| p["since_ns"].as_u64().unwrap() / 1_000_000 < end_ms as u64 - 1_000)
        .collect()
}

/// The mute's `stale` records are btcusdt's, with the actions `want`; the first found it silent
/// within 30 s of its last message, at the floor's bound.
fn check_records(records: &[serde_json::Value], want: &[&str]) {
    let actions: Vec<&str> = records.iter().map(|p| p["action"].as_str().unwrap()).collect();
    assert_eq!(actions, want, "{records:#?}");
    assert!(records.iter().all(|p| p["symbol"] == "BTCUSDT"), "{records:#?}");
    let first = &records[0];
    let silent = first["silent_ms"].as_u64().unwrap();
    assert!((10_000..30_000).contains(&silent), "found after {silent} ms of silence: {first}");
    assert_eq!(first["bound_ms"], 10_000, "a liquid stream keeps the floor: {first}");
    assert!(records.iter().all(|p| p["since_ns"] == first["since_ns"]), "one silence: {records:#?}");
}

#[test]
fn a_muted_stream_is_resubscribed_and_no_trade_is_lost() {
    let sim = muted_market(MuteUntil::Resubscribed);
    let (ws, rest, topic) = (sim.ws_url(), sim.rest_url(), unique_topic("muted"));
    let ing = Ingester::spawn(&[
        ("BINANCE_WS_URL", &ws),
        ("BINANCE_REST_URL", &rest),
        ("KAFKA_BROKER", kafka()),
        ("KAFKA_TOPIC", &topic),
    ]);
    ing.wait_ready(Duration::from_secs(30));
    wait_recovered(&ing, &sim);
    // Resubscribing was enough: the same connection, the stream back on it.
    assert_eq!(stale_count(&ing, "resubscribe"), 1.0);
    assert_eq!(stale_count(&ing, "replace_connection"), 0.0);
    assert_eq!(sim.market.unmuted.load(Ordering::Relaxed), 1, "lifted by a SUBSCRIBE");
    assert_eq!(sim.market.connections.load(Ordering::Relaxed), 1);
    assert_eq!(ing.metric("marketflow_ingestor_ws_connect_attempts_total{result=\"ok\"}"), 1.0);
    let logs = ing.dump_logs();
    assert!(logs.contains("UNSUBSCRIBE") && logs.contains("resubscription acknowledged"), "{logs}");
    let records = finish(&sim, ing, &topic);
    check_records(&records, &["resubscribe", "recovered"]);
}

#[test]
fn a_stream_muted_until_a_new_connection_gets_one_and_no_trade_is_lost() {
    let sim = muted_market(MuteUntil::Reconnected);
    let (ws, rest, topic) = (sim.ws_url(), sim.rest_url(), unique_topic("muted_conn"));
    let ing = Ingester::spawn(&[
        ("BINANCE_WS_URL", &ws),
        ("BINANCE_REST_URL", &rest),
        ("KAFKA_BROKER", kafka()),
        ("KAFKA_TOPIC", &topic),
    ]);
    ing.wait_ready(Duration::from_secs(30));
    let seen = wait_recovered(&ing, &sim);
    // Silent for a whole bound after the resubscription: counted as silent meanwhile.
    assert_eq!(seen.max_stale, 1.0, "{seen:?}");
    assert_eq!(stale_count(&ing, "resubscribe"), 1.0);
    assert_eq!(stale_count(&ing, "replace_connection"), 1.0);
    assert_eq!(sim.market.unmuted.load(Ordering::Relaxed), 0, "a resubscription does not lift this mute");
    // Make-before-break: one replacement, no reconnect of a lost connection.
    assert_eq!(sim.market.connections.load(Ordering::Relaxed), 2);
    assert!(ing.metric("marketflow_ingestor_ws_rotations_total") >= 1.0);
    assert_eq!(ing.metric("marketflow_ingestor_ws_reconnects_total{symbol=\"btcusdt\"}"), 0.0);
    let records = finish(&sim, ing, &topic);
    check_records(&records, &["resubscribe", "replace_connection", "recovered"]);
}
