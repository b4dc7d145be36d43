//! TRANSPORT=sbe end to end: one simulated market streamed by ingesters over JSON and over SBE
//! (the simulator's SBE endpoint, its frames built by the generated encoders) into topics of the
//! real broker gives the same trade, `book_ticker` and `depth_update` records, field for field,
//! except the receive time (and the best bid/ask's event time, which only SBE has); in
//! milliseconds and in microseconds (`TIME_UNIT=us`). The SBE endpoint admits only the key of
//! `SBE_API_KEY_FILE`, so an SBE ingester that gets ready sent it. Without a key, the lane
//! streams JSON and says so in a log line, a metric and `/readyz`. Over SBE, `serverShutdown` (a
//! JSON text frame there) rotates without a gap, and dropped connections lose nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use binance_sim::SimConfig;

const KEY: &str = "e2e-ed25519-key";

/// A trade's Kafka key, timestamp, and record without `recv_time_ns`.
type Published = (Vec<u8>, Option<i64>, serde_json::Value);

/// `(symbol, trade id) -> Published` of the trades in `msgs`, after checking each symbol's ids
/// are contiguous (nothing lost between the first and the last) and none repeats.
fn by_trade(msgs: &[Consumed]) -> BTreeMap<(String, i64), Published> {
    let mut out = BTreeMap::new();
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let mut sorted: Vec<&Consumed> = msgs.iter().filter(|m| m.payload["type"] == "trade").collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    for m in sorted {
        let mut p = m.payload.clone();
        assert!(p.as_object_mut().unwrap().remove("recv_time_ns").is_some(), "{p}");
        // Live or fetched from REST depends on when each process connected, not on the transport
        // (a full run saw one process backfill trade #149 the others streamed).
        p.as_object_mut().unwrap().remove("backfilled");
        let (sym, id) = (p["symbol"].as_str().unwrap().to_string(), p["trade_id"].as_i64().unwrap());
        if let Some(prev) = last.insert(sym.clone(), id) {
            assert_eq!(id, prev + 1, "{sym}: trade {id} after {prev}");
        }
        assert!(out.insert((sym, id), (m.key.clone(), m.timestamp_ms, p)).is_none());
    }
    out
}

#[test]
// Four ingesters, their books and the simulator: beside the other tests on this 2-core machine the
// shared broker stalls and one topic's book records go missing from the read (twice in CI, never
// alone): it runs alone, after the others (scripts/test.sh).
#[ignore = "runs alone: cargo test -p e2e sbe::json_and_sbe -- --ignored --test-threads=1"]
fn json_and_sbe_give_the_same_trade_records_in_ms_and_us() {
    let bootstrap = kafka();
    // With the trailing newline an editor leaves: one is dropped.
    let key_file = key_file("sbe-key", &format!("{KEY}\n"));
    let key_file = key_file.as_str();
    let sim = sim(SimConfig {
        symbols: vec!["btcusdt".into(), "币安人生usdt".into()],
        trade_rate: 2_000.0,
        // Book events (bookTicker, diff depth) a second per symbol.
        aux_rate: 50.0,
        duration: Some(Duration::from_secs(8)),
        sbe_api_key: Some(KEY.into()),
        ..SimConfig::default()
    });
    let (ws, sbe, rest) = (sim.ws_url(), sim.sbe_url(), sim.rest_url());
    let run = |name: &str, extra: &[(&str, &str)]| {
        let topic = unique_topic(&format!("e2e_sbe_{name}"));
        let mut env = vec![
            ("SYMBOLS", "btcusdt,币安人生usdt"),
            // Over SBE: `@trade`, `@bestBidAsk` and `@depth`.
            ("STREAMS", "trade,bookTicker,depth@100ms"),
            ("BINANCE_WS_URL", ws.as_str()),
            ("BINANCE_SBE_URL", sbe.as_str()),
            ("BINANCE_REST_URL", rest.as_str()),
            ("KAFKA_BROKER", bootstrap),
        ];
        env.extend_from_slice(extra);
        env.push(("KAFKA_TOPIC", topic.as_str()));
        let ing = Ingester::spawn(&env);
        (topic, ing)
    };
    // The JSON baseline in ms asks for SBE without a key: it falls back to JSON.
    let (json_ms, a) = run("json_ms", &[("TRANSPORT", "sbe")]);
    let (sbe_ms, b) = run("sbe_ms", &[("TRANSPORT", "sbe"), ("SBE_API_KEY_FILE", key_file)]);
    let (json_us, c) = run("json_us", &[("TIME_UNIT", "us")]);
    let (sbe_us, d) = run("sbe_us", &[("TRANSPORT", "sbe"), ("SBE_API_KEY_FILE", key_file), ("TIME_UNIT", "us")]);
    for i in [&a, &b, &c, &d] {
        i.wait_ready(Duration::from_secs(60));
    }

    // Each says which transport it streams with.
    let transport = |i: &Ingester, requested: &str, used: &str, reason: &str| {
        i.metric(&format!(
            "marketflow_ingestor_transport_info{{reason=\"{reason}\",requested=\"{requested}\",used=\"{used}\"}}"
        ))
    };
    assert_eq!(transport(&a, "sbe", "json", "no_api_key"), 1.0);
    assert_eq!(transport(&b, "sbe", "sbe", ""), 1.0);
    assert_eq!(transport(&c, "json", "json", ""), 1.0);
    assert!(a.get("/readyz").1.contains("transport=json (sbe unavailable: no_api_key)"), "{}", a.get("/readyz").1);
    assert!(b.get("/readyz").1.contains("transport=sbe\n"), "{}", b.get("/readyz").1);
    let fallback = a.log_event("sbe transport unavailable (SBE_API_KEY_FILE is not set): streaming JSON");
    assert_eq!(fallback.expect("the fallback's log line")["reason"], "no_api_key");
    assert_eq!(
        sim.market.sbe_key_refused.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "every SBE upgrade had the key"
    );

    std::thread::sleep(Duration::from_secs(9));
    let read = |t: &str| consume(t, 1, Duration::from_secs(120), Duration::from_secs(3));
    // Book records need each ingester's book synced first: on a loaded machine that can take
    // longer than the trades do; wait (bounded) until both transports share enough of them.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut enough = false;
    while !enough && std::time::Instant::now() < deadline {
        enough = [(&json_ms, &sbe_ms), (&json_us, &sbe_us)].iter().all(|(j, s)| {
            let (depth, ticker) = crate::sbe_book::book_records_in_both(&read(j), &read(s));
            depth > 200 && ticker > 200
        });
        if !enough {
            std::thread::sleep(Duration::from_secs(5));
        }
    }
    if !enough {
        // For the failure below: what the SBE ingesters saw of their book streams.
        for (name, i) in [("sbe_ms", &b), ("sbe_us", &d)] {
            let (_, metrics) = i.get("/metrics");
            let seen = metrics.lines().filter(|l| {
                !l.starts_with('#')
                    && ["depth", "book", "rejected", "transport", "gap", "sent", "sink", "kafka"]
                        .iter()
                        .any(|w| l.contains(w))
            });
            eprintln!("{name}:\n{}", seen.collect::<Vec<_>>().join("\n"));
        }
    }
    for (unit, json, sbe) in [("ms", &json_ms, &sbe_ms), ("us", &json_us, &sbe_us)] {
        let (json_msgs, sbe_msgs) = (read(json), read(sbe));
        crate::sbe_book::same_book_records(unit, &json_msgs, &sbe_msgs);
        let (j, s) = (by_trade(&json_msgs), by_trade(&sbe_msgs));
        let common: Vec<_> = j.keys().filter(|k| s.contains_key(*k)).collect();
        // Both started at the market's first seconds: most of the market is in both.
        assert!(
            common.len() > 16_000 / 2,
            "{unit}: {} trades in both ({} JSON, {} SBE)",
            common.len(),
            j.len(),
            s.len()
        );
        for k in &common {
            assert_eq!(j[*k], s[*k], "{unit}: trade {k:?} differs between the transports");
        }
        let field = format!("trade_time_{unit}");
        let any = &j[common[0]].2;
        assert!(any[&field].is_i64() && any[&format!("event_time_{unit}")].is_i64(), "{unit}: {any}");
    }
    // The ms records are the simulator's trades themselves.
    let msgs = consume(&sbe_ms, 1, Duration::from_secs(60), Duration::from_secs(1));
    let trades: Vec<Consumed> = msgs.into_iter().filter(|m| m.payload["type"] == "trade").collect();
    verify_trades(&trades, &sim.market, None);
    for i in [&b, &d] {
        assert_eq!(i.metric_sum("marketflow_ingestor_messages_rejected_total"), 0.0, "{}", i.dump_logs());
        assert_eq!(i.metric_sum("marketflow_ingestor_gaps_total"), 0.0);
    }
    for mut i in [a, b, c, d] {
        let (status, _) = i.terminate(Duration::from_secs(20));
        assert!(status.success(), "exit status {status:?}\n{}", i.dump_logs());
    }
}

/// Waits for the market's last trade, reads `topic` and stops the ingester cleanly.
fn finish(sim: &binance_sim::SimHandle, mut ing: Ingester, topic: &str, want: u64) -> Vec<Consumed> {
    let per = sim.market.total_trades_per_symbol().unwrap();
    let t = std::time::Instant::now();
    while sim.market.generated(binance_sim::StreamKind::Trade) < per {
        assert!(t.elapsed() < Duration::from_secs(90), "market never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    let msgs = consume(topic, want as usize, Duration::from_secs(120), Duration::from_secs(3));
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    msgs
}

/// `serverShutdown` comes as a JSON text frame on the SBE connection: the ingester opens a
/// replacement (make-before-break) and the topic holds every trade exactly once, without REST.
#[test]
fn server_shutdown_on_an_sbe_connection_rotates_without_a_gap() {
    let sim = sim(sbe_market(KEY, 3_000.0, 16));
    let topic = unique_topic("e2e_sbe_shutdown");
    let ing = start_sbe(&sim, KEY, &topic, &[("STREAMS", "trade"), ("BACKFILL", "off")]);
    std::thread::sleep(Duration::from_secs(4));
    sim.announce_shutdown();
    std::thread::sleep(Duration::from_secs(6));
    assert!(ing.metric("marketflow_ingestor_ws_rotations_total") >= 1.0, "{}", ing.dump_logs());
    assert!(ing.metric("marketflow_ingestor_duplicates_dropped_total{symbol=\"btcusdt\"}") > 0.0, "overlap seen");
    assert_eq!(ing.metric("marketflow_ingestor_messages_received_total{type=\"server_shutdown\"}"), 1.0);
    let per = sim.market.total_trades_per_symbol().unwrap();
    let msgs = finish(&sim, ing, &topic, 3 * per);
    verify_trades(&msgs, &sim.market, Some(per));
}

/// Dropped SBE connections reconnect (the key sent again each time) and REST fills what was
/// missed while away: every trade once, live or backfilled.
#[test]
fn dropped_sbe_connections_lose_nothing() {
    let sim = sim(sbe_market(KEY, 3_000.0, 20));
    let topic = unique_topic("e2e_sbe_drops");
    let ing = start_sbe(&sim, KEY, &topic, &[("STREAMS", "trade")]);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(3));
        sim.drop_connections();
    }
    // The last drop is counted once the event loop reads its end: a bounded wait, not a race.
    let reconnects = || ing.metric("marketflow_ingestor_ws_reconnects_total{symbol=\"btcusdt\"}");
    let t = std::time::Instant::now();
    while reconnects() < 3.0 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let reconnects = reconnects();
    let per = sim.market.total_trades_per_symbol().unwrap();
    let msgs = finish(&sim, ing, &topic, 3 * per);
    let c = verify_complete(&msgs, &sim.market, per, |_| false);
    assert!(reconnects >= 3.0, "{reconnects} reconnects");
    assert_eq!(c.live + c.backfilled, 3 * per, "{c:?}");
    assert_eq!(sim.market.sbe_key_refused.load(std::sync::atomic::Ordering::Relaxed), 0);
}
