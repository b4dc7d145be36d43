//! The broker stopped for 30 s and restarted: nothing lost, nothing duplicated. One ingester has
//! the default buffers (librdkafka holds the outage in memory); the other has a tiny buffer cap,
//! so it drops at the cap, counts it, and backfills the drops from REST once Kafka is back.
//!
//! This binary stops the shared local broker, so it holds its own test alone.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use binance_sim::{SimConfig, StreamKind};
use common::*;

fn kafka_script(cmd: &str) {
    let script = format!("{}/scripts/kafka.sh", env!("CARGO_MANIFEST_DIR"));
    let st = Command::new("bash").arg(script).arg(cmd).status().unwrap();
    assert!(st.success(), "kafka.sh {cmd}");
}

#[test]
fn a_thirty_second_broker_outage_loses_and_duplicates_nothing() {
    let bootstrap = kafka();
    let secs = 60;
    let roomy_sim =
        sim(SimConfig { trade_rate: 3_000.0, duration: Some(Duration::from_secs(secs)), ..SimConfig::default() });
    let tight_sim =
        sim(SimConfig { trade_rate: 1_000.0, duration: Some(Duration::from_secs(secs)), ..SimConfig::default() });
    let (roomy_topic, tight_topic) = (unique_topic("outage_roomy"), unique_topic("outage_tight"));
    let (ws1, rest1, ws2, rest2) = (roomy_sim.ws_url(), roomy_sim.rest_url(), tight_sim.ws_url(), tight_sim.rest_url());
    let roomy = Ingester::spawn(&[
        ("BINANCE_WS_URL", &ws1),
        ("BINANCE_REST_URL", &rest1),
        ("KAFKA_BROKER", bootstrap),
        ("KAFKA_TOPIC", &roomy_topic),
    ]);
    let tight = Ingester::spawn(&[
        ("BINANCE_WS_URL", &ws2),
        ("BINANCE_REST_URL", &rest2),
        ("KAFKA_BROKER", bootstrap),
        ("KAFKA_TOPIC", &tight_topic),
        ("RING_BYTES", "65536"),
        ("KAFKA_PROPS", "queue.buffering.max.messages=2000;queue.buffering.max.kbytes=512"),
    ]);
    roomy.wait_ready(Duration::from_secs(30));
    tight.wait_ready(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(5));

    kafka_script("stop");
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    for ing in [&roomy, &tight] {
        assert_eq!(ing.get("/readyz").0, 503, "not ready while the broker is down");
        assert_eq!(ing.get("/healthz").0, 200, "alive while the broker is down");
    }
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down.elapsed()));
    kafka_script("start");

    let dropped = tight.metric("marketflow_ingestor_overflow_dropped_total{symbol=\"btcusdt\"}");
    assert!(dropped > 0.0, "the tight buffer cap was reached and counted");
    assert_eq!(roomy.metric("marketflow_ingestor_overflow_dropped_total{symbol=\"btcusdt\"}"), 0.0);

    for (s, ing, topic) in [(&roomy_sim, roomy, &roomy_topic), (&tight_sim, tight, &tight_topic)] {
        let t = Instant::now();
        let per = s.market.total_trades_per_symbol().unwrap();
        while s.market.generated(StreamKind::Trade) < per {
            assert!(t.elapsed() < Duration::from_secs(secs + 60));
            std::thread::sleep(Duration::from_millis(500));
        }
        let msgs = consume(topic, 3 * per as usize, Duration::from_secs(120), Duration::from_secs(5));
        let mut ing = ing;
        let (st, _) = ing.terminate(Duration::from_secs(30));
        assert!(st.success(), "{}", ing.dump_logs());
        let c = verify_complete(&msgs, &s.market, per, |_| false);
        assert_eq!(c.live + c.backfilled, 3 * per, "{topic}: {c:?}");
        if *topic == tight_topic {
            assert!(c.backfilled > 0, "drops at the cap came back through REST: {c:?}");
        }
    }
}
