//! A broker that stops answering with its connections open (SIGSTOP: a paused JVM, a full disk, a
//! throttled namespace) for 20 s: no client error is raised, yet `/readyz` turns 503 naming the
//! stall once `kafka_unacked_age_seconds` passes `KAFKA_STALL_SECS`, is 200 again once the broker
//! acknowledges, and every trade is in Kafka exactly once. One ingester has the default buffers
//! (librdkafka holds the stall in memory); the other a tiny buffer cap, so a stall of 20 s does
//! what a long one does to the defaults: librdkafka's queue and the ring fill, the event loop drops
//! at the cap and the drops are backfilled from REST once the broker answers.
//!
//! The broker paused here is one of this test's own ([`OwnBroker`]), never the shared one.

use std::time::{Duration, Instant};

use crate::common::*;
use binance_sim::SimConfig;

const AGE: &str = "marketflow_ingestor_kafka_unacked_age_seconds";
const IN_DOUBT: [&str; 4] = ["in_doubt", "published", "refetched", "unverified"];

#[test]
// A second Kafka JVM stalls this 2-core machine when the other tests run beside it (see
// kafka_outage): it runs alone, after the others (scripts/test.sh).
#[ignore = "runs alone: cargo test -p e2e kafka_stall -- --ignored --test-threads=1"]
fn a_broker_that_stops_acknowledging_takes_readiness_down_and_loses_nothing() {
    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("kafka_stall: {what} at {:.1} s", t0.elapsed().as_secs_f64());
    // Built (when the code changed) before the markets start, so that they still run after the pause.
    ingester_bin();
    let mut broker = OwnBroker::start("stall");
    let bootstrap = broker.bootstrap.clone();
    phase("own broker up");
    let secs = 45;
    let roomy_sim =
        sim(SimConfig { trade_rate: 600.0, duration: Some(Duration::from_secs(secs)), ..SimConfig::default() });
    // 3,000 trades in the pause against room for about 800 (librdkafka's 500, the ring's 64 KiB).
    let tight_sim =
        sim(SimConfig { trade_rate: 150.0, duration: Some(Duration::from_secs(secs)), ..SimConfig::default() });
    // Records time out in the pause (8 s), those in flight too (their request times out at 5 s,
    // its retry at 10 s): librdkafka reports those `POSSIBLY_PERSISTED`, and the broker writes
    // them when it resumes. Refetched blindly they were repeated; read back first, they are not.
    let doubt_sim =
        sim(SimConfig { trade_rate: 300.0, duration: Some(Duration::from_secs(secs)), ..SimConfig::default() });
    let (roomy_topic, tight_topic) = (unique_topic("stall_roomy"), unique_topic("stall_tight"));
    let doubt_topic = unique_topic("stall_doubt");
    let (ws1, rest1, ws2, rest2) = (roomy_sim.ws_url(), roomy_sim.rest_url(), tight_sim.ws_url(), tight_sim.rest_url());
    let stall_secs = 5.0;
    let roomy = Ingester::spawn(&[
        ("BINANCE_WS_URL", &ws1),
        ("BINANCE_REST_URL", &rest1),
        ("KAFKA_BROKER", &bootstrap),
        ("KAFKA_TOPIC", &roomy_topic),
        ("KAFKA_STALL_SECS", "5"),
        ("RECOVER_FROM_KAFKA", "off"),
    ]);
    let tight = Ingester::spawn(&[
        ("BINANCE_WS_URL", &ws2),
        ("BINANCE_REST_URL", &rest2),
        ("KAFKA_BROKER", &bootstrap),
        ("KAFKA_TOPIC", &tight_topic),
        ("KAFKA_STALL_SECS", "5"),
        ("RECOVER_FROM_KAFKA", "off"),
        ("RING_BYTES", "65536"),
        ("KAFKA_PROPS", "queue.buffering.max.messages=500;queue.buffering.max.kbytes=512"),
    ]);
    let (ws3, rest3) = (doubt_sim.ws_url(), doubt_sim.rest_url());
    let doubt = Ingester::spawn(&[
        ("BINANCE_WS_URL", &ws3),
        ("BINANCE_REST_URL", &rest3),
        ("KAFKA_BROKER", &bootstrap),
        ("KAFKA_TOPIC", &doubt_topic),
        ("KAFKA_STALL_SECS", "5"),
        ("RECOVER_FROM_KAFKA", "off"),
        ("KAFKA_PROPS", "message.timeout.ms=8000;request.timeout.ms=5000"),
    ]);
    doubt.wait_ready(Duration::from_secs(30));
    let ingesters = [("roomy", &roomy), ("tight", &tight)];
    for (name, ing) in ingesters {
        ing.wait_ready(Duration::from_secs(30));
        phase(&format!("{name} ready"));
    }
    std::thread::sleep(Duration::from_secs(3));

    phase("ingesters ready, pausing the broker");
    broker.pause();
    let paused = Instant::now();
    let pause = Duration::from_secs(20);
    // Within the pause each ingester must see the stall: the bound (5 s) plus a turn, on a loaded
    // machine well within 20 s; the wait only ends early.
    for (name, ing) in ingesters {
        let mut seen = ing.get("/readyz");
        while seen.0 != 503 && paused.elapsed() < pause - Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(250));
            seen = ing.get("/readyz");
        }
        let (code, body) = seen;
        assert_eq!(
            code,
            503,
            "{name}: still ready {:?} into a broker pause: /readyz {body:?}\n{}",
            paused.elapsed(),
            ing.dump_logs()
        );
        assert!(body.contains("kafka_stall=no acknowledgement for "), "{name}: /readyz {body:?}");
        assert!(body.contains("sink=true"), "{name}: no client error was raised, yet: {body:?}");
        let age = ing.metric(AGE);
        assert!(age >= stall_secs, "{name}: unready on a stall, yet {AGE} = {age}");
        assert_eq!(ing.get("/healthz").0, 200, "{name}: alive through the stall");
    }
    std::thread::sleep(pause.saturating_sub(paused.elapsed()));
    let age = roomy.metric(AGE);
    assert!(age >= stall_secs, "roomy: {AGE} = {age} at the end of the pause");
    for (name, s) in [("roomy", &roomy_sim), ("tight", &tight_sim)] {
        let generated = s.market.generated(binance_sim::StreamKind::Trade);
        let per = s.market.total_trades_per_symbol().unwrap();
        assert!(generated < per, "{name}: the market ended before the pause did: the test saw no stall under flow");
    }
    phase("resuming the broker");
    broker.resume();

    // Ready again at the first acknowledgement, the gauge back under the bound.
    let resumed = Instant::now();
    for (name, ing) in ingesters {
        while ing.get("/readyz").0 != 200 && resumed.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(250));
        }
        let (code, body) = ing.get("/readyz");
        assert_eq!(code, 200, "{name}: not ready {:?} after the broker resumed: {body:?}", resumed.elapsed());
        assert!(ing.metric(AGE) < stall_secs, "{name}: ready, yet {AGE} past the bound");
    }

    phase("both ready again");
    let dropped = tight.metric("marketflow_ingestor_overflow_dropped_total{symbol=\"btcusdt\"}");
    assert!(dropped > 0.0, "the tight buffer cap was reached during the stall and counted");
    assert_eq!(roomy.metric("marketflow_ingestor_overflow_dropped_total{symbol=\"btcusdt\"}"), 0.0);

    for (s, ing, topic) in
        [(&roomy_sim, roomy, &roomy_topic), (&tight_sim, tight, &tight_topic), (&doubt_sim, doubt, &doubt_topic)]
    {
        let per = s.market.total_trades_per_symbol().unwrap();
        wait_market_done(s, Duration::from_secs(secs + 60), || ing.dump_logs());
        phase(&format!(
            "{topic}: market done, {} dropped, {} backfilled, {} sent",
            ing.metric_sum("marketflow_ingestor_overflow_dropped_total"),
            ing.metric_sum("marketflow_ingestor_backfilled_total"),
            ing.metric_sum("marketflow_ingestor_messages_sent_total")
        ));
        wait_drops_backfilled(&ing, topic, Duration::from_secs(150));
        phase(&format!("{topic}: every drop backfilled"));
        let doubts =
            || IN_DOUBT.map(|r| ing.metric(&format!("marketflow_ingestor_kafka_in_doubt_total{{result=\"{r}\"}}")));
        if *topic == doubt_topic {
            // The read-back settles every record in doubt, retrying while the broker recovers.
            let settling = Instant::now();
            while settling.elapsed() < Duration::from_secs(180) {
                let [in_doubt, published, refetched, unverified] = doubts();
                if published + refetched + unverified == in_doubt {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        let mut msgs =
            consume_from(&bootstrap, topic, 3 * per as usize, Duration::from_secs(120), Duration::from_secs(5));
        let doubts = doubts();
        phase(&format!("{topic}: in doubt, published, refetched, unverified: {doubts:?}"));
        let mut ing = ing;
        let (st, _) = ing.terminate(Duration::from_secs(30));
        assert!(st.success(), "{}", ing.dump_logs());
        phase(&format!("{topic}: {} records read back", msgs.len()));
        if *topic == doubt_topic {
            // librdkafka's own repeats, not ours: the same record (its receive time to the ns)
            // written twice, seen in 2 of 5 runs when records time out in flight. Their delivery
            // reports say delivered, so nothing here can see them (README, "A broker that stops
            // answering"). Dropped before the check, which then finds every repeat of ours: a trade
            // fetched again from REST has a receive time of its own.
            let before = msgs.len();
            let mut seen = std::collections::HashSet::new();
            msgs.retain(|m| seen.insert((m.key.clone(), m.payload.to_string())));
            phase(&format!("{topic}: {} records written twice by librdkafka, dropped", before - msgs.len()));
        }
        let c = verify_complete_logged(&msgs, &s.market, per, &ing, topic);
        assert_eq!(c.live + c.backfilled, 3 * per, "{topic}: {c:?}");
        if *topic == tight_topic {
            assert!(c.backfilled > 0, "drops at the cap came back through REST: {c:?}");
        }
        if *topic == doubt_topic {
            let [in_doubt, published, refetched, unverified] = doubts;
            // Whether a request was in flight when its records timed out varies from run to run
            // (0 in 1 of 7); when one was, its records were read back, not guessed.
            if in_doubt == 0.0 {
                phase("no delivery was in doubt in this run: the read-back was not exercised");
            }
            assert_eq!(published + refetched, in_doubt, "every record in doubt was read back: {doubts:?}");
            assert_eq!(unverified, 0.0, "{doubts:?}");
        }
    }
}
