//! The core promise, end to end against the real broker: 3 symbols at 20,000 trades/s in total
//! for 30 s, simulator -> ingester -> Kafka; every trade arrives exactly once, in order per
//! symbol, every field equal to what was sent. Then SIGTERM: a prompt, clean exit.

use std::time::Duration;

use crate::common::*;
use binance_sim::SimConfig;

#[test]
fn twenty_thousand_trades_a_second_for_thirty_seconds_arrive_exactly_once() {
    let bootstrap = kafka();
    let topic = unique_topic("e2e_exactly_once");
    let sim = sim(SimConfig { trade_rate: 20_000.0, duration: Some(Duration::from_secs(30)), ..SimConfig::default() });
    let per_symbol = sim.market.total_trades_per_symbol().unwrap();
    assert_eq!(per_symbol, 200_000);
    let url = sim.ws_url();
    let ing = Ingester::spawn(&[
        ("SYMBOLS", "btcusdt,ethusdt,solusdt"),
        ("STREAMS", "trade"),
        ("BINANCE_WS_URL", &url),
        ("KAFKA_BROKER", bootstrap),
        ("KAFKA_TOPIC", &topic),
        QUIET_IS_NOT_STALE[0],
        QUIET_IS_NOT_STALE[1],
    ]);
    ing.wait_ready(Duration::from_secs(30));

    // Metrics move while data flows.
    std::thread::sleep(Duration::from_secs(5));
    let sent_a = ing.metric("marketflow_ingestor_messages_sent_total{symbol=\"btcusdt\"}");
    let lat_a = ing.metric("marketflow_ingestor_latency_seconds_count{stage=\"enqueue_to_ack\",symbol=\"btcusdt\"}");
    // Waited for, not timed: a busy machine can hold the broker's acks back for seconds.
    let (mut sent_b, mut lat_b) = (sent_a, lat_a);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (sent_b <= sent_a || lat_b <= lat_a) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        sent_b = ing.metric("marketflow_ingestor_messages_sent_total{symbol=\"btcusdt\"}");
        lat_b = ing.metric("marketflow_ingestor_latency_seconds_count{stage=\"enqueue_to_ack\",symbol=\"btcusdt\"}");
    }
    assert!(sent_b > sent_a, "messages_sent_total moves: {sent_a} -> {sent_b}");
    assert!(lat_b > lat_a, "latency histogram moves: {lat_a} -> {lat_b}");
    assert_eq!(ing.get("/healthz").0, 200);

    // A prompt exit is bounded by `terminate` (it fails the test past 20 s) and a clean one by the
    // final line's `unflushed` = 0; not by a shorter time: beside six other end-to-end tests on two
    // cores, a shutdown that flushed everything took over 10 s.
    let took = assert_every_trade_exactly_once(&sim, ing, &topic);
    eprintln!("shutdown took {took:?}");
}
