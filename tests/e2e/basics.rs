//! End-to-end behaviour of the ingester binary against the simulator (and the real local Kafka
//! where records must land): every stream kind, TLS, connection spreading, pings, shutdown,
//! the stdout sink and a dead broker. (The command line's own tests, which need neither, are
//! the ingester's tests/cli_config.rs.)

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use crate::common::*;
use binance_sim::SimConfig;

#[test]
fn every_stream_kind_lands_in_its_own_topic() {
    let sim = sim(SimConfig { trade_rate: 300.0, aux_rate: 20.0, ..SimConfig::default() });
    let url = sim.ws_url();
    let topics: Vec<(&str, String)> = ["trade", "agg_trade", "kline", "book_ticker", "depth_update"]
        .iter()
        .map(|t| (*t, unique_topic(&format!("kinds_{t}"))))
        .collect();
    let mut env = vec![
        ("SYMBOLS", "btcusdt,ethusdt".to_string()),
        ("STREAMS", "trade,aggTrade,kline_1m,bookTicker,depth@100ms".into()),
        ("BINANCE_WS_URL", url),
        ("KAFKA_BROKER", kafka().to_string()),
        ("KAFKA_TOPIC", unique_topic("kinds_default")),
    ];
    let vars = [
        "KAFKA_TOPIC_TRADE",
        "KAFKA_TOPIC_AGG_TRADE",
        "KAFKA_TOPIC_KLINE",
        "KAFKA_TOPIC_BOOK_TICKER",
        "KAFKA_TOPIC_DEPTH_UPDATE",
    ];
    for (v, (_, t)) in vars.iter().zip(&topics) {
        env.push((v, t.clone()));
    }
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut ing = Ingester::spawn(&env_ref);
    ing.wait_ready(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    for (ty, topic) in &topics {
        let msgs = consume(topic, 20, Duration::from_secs(30), Duration::from_secs(1));
        assert!(msgs.len() >= 20, "{ty}: only {} records", msgs.len());
        let mut last_seq = std::collections::HashMap::new();
        for m in &msgs {
            assert_eq!(m.payload["type"], *ty, "{}", m.payload);
            assert_eq!(m.key, m.payload["symbol"].as_str().unwrap().as_bytes());
            // Each kind's own sequence is strictly increasing per symbol (no duplicates).
            let seq = match *ty {
                "trade" => m.payload["trade_id"].as_i64(),
                "agg_trade" => m.payload["agg_id"].as_i64(),
                "kline" => m.payload["event_time_ms"].as_i64(),
                "book_ticker" => m.payload["update_id"].as_i64(),
                _ => m.payload["final_update_id"].as_i64(),
            }
            .unwrap();
            let key = (m.key.clone(), m.partition);
            if let Some(prev) = last_seq.insert(key, (m.offset, seq)) {
                assert!(seq > prev.1, "{ty}: sequence went from {} to {seq}", prev.1);
            }
            if *ty == "depth_update" {
                assert!(m.payload["bids"].as_array().unwrap().iter().all(|l| l.as_array().unwrap().len() == 2));
            }
            if *ty == "book_ticker" {
                let recv_ms = m.payload["recv_time_ns"].as_i64().unwrap() / 1_000_000;
                assert_eq!(m.timestamp_ms, Some(recv_ms), "bookTicker has no event time: receive time");
            }
        }
    }
}

#[test]
fn tls_is_verified_and_works_with_the_extra_ca() {
    let sim = sim(SimConfig { tls: true, trade_rate: 600.0, ..SimConfig::default() });
    let dir = std::env::temp_dir().join(format!("mf-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("sim.pem");
    std::fs::write(&ca, sim.cert_pem.as_ref().unwrap()).unwrap();
    let url = format!("wss://localhost:{}", sim.addr.port());

    // Without the CA: the self-signed certificate is refused, the process stays up, not ready.
    let mut untrusted = Ingester::spawn(&[("BINANCE_WS_URL", &url), ("SINK", "null")]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(untrusted.get("/readyz").0, 503);
    assert_eq!(untrusted.get("/healthz").0, 200);
    assert!(untrusted.metric("marketflow_ingestor_ws_connect_attempts_total{result=\"handshake\"}") >= 1.0);
    assert!(untrusted.dump_logs().contains("UnknownIssuer"), "{}", untrusted.dump_logs());
    untrusted.terminate(Duration::from_secs(10));

    // With it: records flow into Kafka.
    let topic = unique_topic("tls");
    let mut ing = Ingester::spawn(&[
        ("BINANCE_WS_URL", &url),
        ("TLS_CA_FILE", ca.to_str().unwrap()),
        ("KAFKA_BROKER", kafka()),
        ("KAFKA_TOPIC", &topic),
    ]);
    ing.wait_ready(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success());
    let sent = ing.log_event("stopped").unwrap()["sent"].as_u64().unwrap();
    let msgs = consume(&topic, sent as usize, Duration::from_secs(30), Duration::from_secs(1));
    assert_eq!(msgs.len() as u64, sent);
    verify_trades(&msgs, &sim.market, None);
}

#[test]
fn sigterm_mid_stream_leaves_nothing_accepted_unsent() {
    let sim = sim(SimConfig { trade_rate: 6_000.0, ..SimConfig::default() });
    let url = sim.ws_url();
    let topic = unique_topic("sigterm");
    let mut ing = Ingester::spawn(&[("BINANCE_WS_URL", &url), ("KAFKA_BROKER", kafka()), ("KAFKA_TOPIC", &topic)]);
    ing.wait_ready(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    let (st, took) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    assert!(took < Duration::from_secs(10), "{took:?}");
    let stopped = ing.log_event("stopped").unwrap();
    let sent = stopped["sent"].as_u64().unwrap();
    assert_eq!(stopped["handed_over"].as_u64().unwrap(), sent, "every record taken from the ring was acknowledged");
    assert_eq!(stopped["unflushed"], 0);
    assert!(sent > 1000);
    let msgs = consume(&topic, sent as usize, Duration::from_secs(30), Duration::from_secs(2));
    assert_eq!(msgs.len() as u64, sent, "Kafka holds exactly what the ingester reported");
    // Contiguous from the first trade of each symbol: nothing in the middle was lost.
    verify_trades(&msgs, &sim.market, None);
}

#[test]
fn streams_are_spread_over_connections_and_overflow_is_subscribed() {
    let sim = sim(SimConfig { trade_rate: 300.0, ..SimConfig::default() });
    // 3 real symbols and 297 the simulator does not trade: 300 streams, 100 per connection,
    // more than fit in one connect URL, so each connection also sends SUBSCRIBE batches.
    let mut symbols: Vec<String> = vec!["btcusdt".into(), "ethusdt".into(), "solusdt".into()];
    symbols.extend((0..297).map(|i| format!("fakecoin{i:04}usdt")));
    let list = symbols.join(",");
    let url = sim.ws_url();
    let mut ing = Ingester::spawn(&[
        ("SYMBOLS", &list),
        ("BINANCE_WS_URL", &url),
        ("SINK", "null"),
        ("MAX_STREAMS_PER_CONNECTION", "100"),
    ]);
    ing.wait_ready(Duration::from_secs(30));
    assert_eq!(ing.metric("marketflow_ingestor_ws_connections{state=\"open\"}"), 3.0);
    std::thread::sleep(Duration::from_secs(2));
    for s in ["btcusdt", "ethusdt", "solusdt"] {
        let v = ing.metric(&format!("marketflow_ingestor_messages_sent_total{{symbol=\"{s}\"}}"));
        assert!(v > 50.0, "{s}: {v}");
    }
    let logs = ing.dump_logs();
    assert!(logs.contains("control reply"), "SUBSCRIBE acknowledged: {logs}");
    ing.terminate(Duration::from_secs(10));
}

#[test]
fn a_host_name_is_resolved_off_the_event_loop() {
    let sim = sim(SimConfig { trade_rate: 300.0, ..SimConfig::default() });
    let url = format!("ws://localhost:{}", sim.addr.port());
    let mut ing = Ingester::spawn(&[("BINANCE_WS_URL", &url), ("SINK", "null")]);
    ing.wait_ready(Duration::from_secs(30));
    let logs = ing.dump_logs();
    assert!(logs.contains("resolved"), "the resolver thread looked localhost up: {logs}");
    let t = Instant::now();
    while ing.metric("marketflow_ingestor_messages_sent_total{symbol=\"btcusdt\"}") < 10.0 {
        assert!(t.elapsed() < Duration::from_secs(20), "no trades through a named endpoint:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    ing.terminate(Duration::from_secs(10));
}

#[test]
fn pings_are_answered_and_the_connection_stays() {
    let sim = sim(SimConfig {
        trade_rate: 30.0,
        // Pongs count against Binance's 5 messages/s per connection (the simulator enforces
        // it), so pings come at most 4 times a second.
        ping_interval: Duration::from_millis(300),
        pong_timeout: Duration::from_millis(1000),
        ..SimConfig::default()
    });
    let url = sim.ws_url();
    let mut ing = Ingester::spawn(&[("BINANCE_WS_URL", &url), ("SINK", "null")]);
    ing.wait_ready(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    assert!(ing.metric("marketflow_ingestor_ws_pings_total") >= 8.0);
    assert_eq!(ing.metric("marketflow_ingestor_ws_reconnects_total{symbol=\"btcusdt\"}"), 0.0);
    assert_eq!(ing.metric("marketflow_ingestor_ws_connect_attempts_total{result=\"ok\"}"), 1.0);
    ing.terminate(Duration::from_secs(10));
}

#[test]
fn pongs_and_subscribe_batches_share_the_outgoing_budget() {
    // 1000 streams on one connection: about 90 fit in the URL, the rest go out as five SUBSCRIBE
    // batches while pings arrive every 400 ms. Binance (and the simulator, over any sliding
    // second) closes a connection that sends more than 5 messages a second, pongs included.
    let sim = sim(SimConfig {
        trade_rate: 30.0,
        ping_interval: Duration::from_millis(400),
        pong_timeout: Duration::from_millis(2000),
        ..SimConfig::default()
    });
    let mut symbols: Vec<String> = vec!["btcusdt".into(), "ethusdt".into(), "solusdt".into()];
    symbols.extend((0..997).map(|i| format!("fakecoin{i:04}usdt")));
    let list = symbols.join(",");
    let url = sim.ws_url();
    let mut ing = Ingester::spawn(&[("SYMBOLS", &list), ("BINANCE_WS_URL", &url), ("SINK", "null")]);
    ing.wait_ready(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    assert!(ing.metric("marketflow_ingestor_ws_pings_total") >= 8.0);
    assert_eq!(
        ing.metric("marketflow_ingestor_ws_connect_attempts_total{result=\"ok\"}"),
        1.0,
        "the connection was never closed for sending too much:\n{}",
        ing.dump_logs()
    );
    let logs = ing.dump_logs();
    assert_eq!(logs.matches("control reply").count(), 5, "five SUBSCRIBE batches acknowledged: {logs}");
    ing.terminate(Duration::from_secs(10));
}

#[test]
fn stdout_sink_writes_one_json_record_per_line() {
    let sim = sim(SimConfig { trade_rate: 300.0, ..SimConfig::default() });
    let url = sim.ws_url();
    let mut ing = Ingester::spawn(&[("BINANCE_WS_URL", &url), ("SINK", "stdout"), ("SYMBOLS", "ethusdt")]);
    let stdout = ing.child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut n = 0;
    let t = Instant::now();
    while n < 20 && t.elapsed() < Duration::from_secs(30) {
        let line = lines.next().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "trade");
        assert_eq!(v["symbol"], "ETHUSDT");
        n += 1;
    }
    assert_eq!(n, 20);
    let (st, _) = ing.terminate(Duration::from_secs(10));
    assert!(st.success());
}

#[test]
fn a_dead_broker_is_reported_not_fatal_and_shutdown_is_bounded() {
    let sim = sim(SimConfig { trade_rate: 300.0, ..SimConfig::default() });
    let url = sim.ws_url();
    let dead = format!("127.0.0.1:{}", free_port());
    let mut ing =
        Ingester::spawn(&[("BINANCE_WS_URL", &url), ("KAFKA_BROKER", &dead), ("SHUTDOWN_TIMEOUT_MS", "2000")]);
    // Start-up recovery gives up on the dead broker within seconds; then trades flow into the ring.
    // The metrics port may not answer yet: absent while starting.
    let t = std::time::Instant::now();
    while ing.metric_if_present("marketflow_ingestor_messages_parsed_total{type=\"trade\"}").unwrap_or(0.0) < 100.0 {
        assert!(t.elapsed() < Duration::from_secs(20), "{}", ing.dump_logs());
        let code = ing.get("/healthz").0;
        assert!(code == 200 || code == 0, "alive while starting (0: not listening yet), got {code}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, body) = ing.get("/readyz");
    assert_eq!(code, 503);
    assert!(body.contains("sink=false"), "{body}");
    assert_eq!(ing.get("/healthz").0, 200, "alive: the event loop still turns");
    assert!(ing.metric("marketflow_ingestor_messages_parsed_total{type=\"trade\"}") > 100.0);
    // The client reports the dead broker (classified) as soon as the producer thread polls it.
    // Each kind's series exists from its first error on, and only one of them may come.
    let errors = || {
        ing.metric_if_present("marketflow_ingestor_sink_errors_total{kind=\"broker_transport\"}").unwrap_or(0.0)
            + ing.metric_if_present("marketflow_ingestor_sink_errors_total{kind=\"all_brokers_down\"}").unwrap_or(0.0)
    };
    let t = std::time::Instant::now();
    while errors() < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(15), "no classified broker error reported");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (st, took) = ing.terminate(Duration::from_secs(20));
    assert!(took < Duration::from_secs(8), "{took:?}");
    // Records were accepted and could not be delivered: that is a failure exit, and it is logged.
    assert_eq!(st.code(), Some(1));
    assert!(ing.log_event("stopped").unwrap()["unflushed"].as_u64().unwrap() > 0);
}
