//! The broker stopped for 30 s and restarted: nothing lost, nothing duplicated. One ingester has
//! the default buffers (librdkafka holds the outage in memory); the other has a tiny buffer cap,
//! so it drops at the cap, counts it, and backfills the drops from REST once Kafka is back.
//!
//! The broker stopped here is one of this test's own ([`OwnBroker`]): the tests running beside
//! it in this binary, and anyone else using the shared broker on 9092, never see the outage.

use std::time::{Duration, Instant};

use crate::common::*;
use binance_sim::SimConfig;

#[test]
// A second Kafka JVM beside the shared broker and the other tests' ingesters stalls this 2-core
// machine (the shared broker then drops its clients for tens of seconds): it runs alone, after
// the others (scripts/test.sh).
#[ignore = "runs alone: cargo test -p e2e kafka_outage -- --ignored --test-threads=1"]
fn a_thirty_second_broker_outage_loses_and_duplicates_nothing() {
    let broker = OwnBroker::start("outage");
    let bootstrap = broker.bootstrap.as_str();
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

    broker.script("stop");
    // Seen in two fresh-clone runs on a loaded machine: the broker's clean shutdown outlasted
    // kafka.sh's 30 s, it was sent SIGKILL and declared stopped half a second later, and 25 s on
    // the ingesters had still seen no disconnect (no Kafka error at all): a process killed while
    // blocked in the kernel (a flush to a busy disk) keeps its sockets until it leaves. The outage
    // starts when the broker's port refuses connections.
    let t = Instant::now();
    while std::net::TcpStream::connect_timeout(&broker.bootstrap.parse().unwrap(), Duration::from_millis(500)).is_ok() {
        assert!(t.elapsed() < Duration::from_secs(120), "the stopped broker's port still accepts connections");
        std::thread::sleep(Duration::from_millis(250));
    }
    let down = Instant::now();
    // librdkafka notices a broker gone within seconds; a loaded machine may take longer, so wait
    // (within the outage) rather than sleep a fixed time.
    for (name, ing) in [("roomy", &roomy), ("tight", &tight)] {
        while ing.get("/readyz").0 != 503 && down.elapsed() < Duration::from_secs(25) {
            std::thread::sleep(Duration::from_millis(250));
        }
        // Seen once (a full fresh-clone run, session 8) and not since: say which ingester, what
        // its /readyz said and which Kafka errors it had counted, so the next failure explains itself.
        let (code, body) = ing.get("/readyz");
        let errors = ing.metric_sum("marketflow_ingestor_sink_errors_total");
        assert_eq!(
            code,
            503,
            "{name}: still ready {:?} after the broker stopped: /readyz {body:?}, {errors} sink errors counted\n{}",
            down.elapsed(),
            ing.dump_logs()
        );
        assert_eq!(ing.get("/healthz").0, 200, "alive while the broker is down");
    }
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down.elapsed()));
    broker.script("start");

    let dropped = tight.metric("marketflow_ingestor_overflow_dropped_total{symbol=\"btcusdt\"}");
    assert!(dropped > 0.0, "the tight buffer cap was reached and counted");
    assert_eq!(roomy.metric("marketflow_ingestor_overflow_dropped_total{symbol=\"btcusdt\"}"), 0.0);

    for (s, ing, topic) in [(&roomy_sim, roomy, &roomy_topic), (&tight_sim, tight, &tight_topic)] {
        let per = s.market.total_trades_per_symbol().unwrap();
        wait_market_done(s, Duration::from_secs(secs + 60), || ing.dump_logs());
        wait_drops_backfilled(&ing, topic, Duration::from_secs(150));
        let msgs = consume_from(bootstrap, topic, 3 * per as usize, Duration::from_secs(120), Duration::from_secs(5));
        let mut ing = ing;
        let (st, _) = ing.terminate(Duration::from_secs(30));
        assert!(st.success(), "{}", ing.dump_logs());
        let c = verify_complete_logged(&msgs, &s.market, per, &ing, topic);
        assert_eq!(c.live + c.backfilled, 3 * per, "{topic}: {c:?}");
        if *topic == tight_topic {
            assert!(c.backfilled > 0, "drops at the cap came back through REST: {c:?}");
        }
    }
}
