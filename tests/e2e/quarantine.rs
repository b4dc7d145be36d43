//! Absurd ids and times from the exchange side, through the real binary into the real local
//! Kafka: one outlier trade id does not poison the sequence (it is published flagged, the real
//! trades after it still arrive), klines opening at -9e18 then 9e18 count no absurd gap, and a
//! restart does not seed its sequence from an outlier an older run left in the topic.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use tungstenite::Message;

fn trade(id: i64) -> String {
    format!(
        r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"s":"BTCUSDT","t":{id},"p":"1.5","q":"2","T":1,"m":true}}}}"#
    )
}

fn kline(open: i64, closed: bool, event: i64) -> String {
    format!(
        r#"{{"stream":"btcusdt@kline_1s","data":{{"e":"kline","E":{event},"s":"BTCUSDT","k":{{"t":{open},"T":{},"s":"BTCUSDT","i":"1s","f":1,"L":2,"o":"1","c":"1","h":"1","l":"1","v":"1","n":1,"x":{closed},"q":"1","V":"1","Q":"1","B":"0"}}}}}}"#,
        open.saturating_add(999)
    )
}

/// A WebSocket server that sends `frames` on the first connection and keeps it open until the
/// returned flag is set.
fn exchange(frames: Vec<String>) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(tcp).unwrap();
        for f in frames {
            ws.send(Message::text(f)).unwrap();
        }
        let t = Instant::now();
        while !s.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    (url, stop)
}

fn wait_sent(ing: &Ingester, n: f64) {
    let t = Instant::now();
    while ing.metric_if_present("marketflow_ingestor_messages_sent_total{symbol=\"btcusdt\"}").unwrap_or(0.0) < n {
        assert!(t.elapsed() < Duration::from_secs(30), "records did not arrive:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_outlier_trade_and_absurd_klines_neither_poison_nor_overflow() {
    let nine = 9_000_000_000_000_000_000i64;
    let mut frames: Vec<String> = (1..=5).map(trade).collect();
    frames.push(trade(i64::MAX));
    frames.extend((6..=10).map(trade));
    frames.push(kline(-nine, false, 1_000));
    frames.push(kline(nine, false, 2_000));
    frames.push(kline(-nine, true, 3_000));
    let (url, stop) = exchange(frames);
    let topic = unique_topic("quarantine");
    let mut ing = Ingester::spawn(&[
        ("BINANCE_WS_URL", &url),
        ("SYMBOLS", "btcusdt"),
        ("STREAMS", "trade,kline_1s"),
        ("KAFKA_BROKER", kafka()),
        ("KAFKA_TOPIC", &topic),
        ("BACKFILL", "off"),
    ]);
    wait_sent(&ing, 14.0);
    let metric = |name: &str| ing.metric(&format!("marketflow_ingestor_{name}{{symbol=\"btcusdt\"}}"));
    assert_eq!(metric("quarantined_total"), 2.0, "the trade and the kline far ahead");
    assert_eq!(metric("duplicates_dropped_total"), 0.0, "no real record taken for a duplicate");
    assert_eq!(metric("gap_ids_missing_total"), 0.0, "no absurd gap counted");
    stop.store(true, Ordering::Relaxed);
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());

    let msgs = consume(&topic, 14, Duration::from_secs(30), Duration::from_secs(2));
    let mut sorted: Vec<&Consumed> = msgs.iter().collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    let trades: Vec<(i64, bool)> = sorted
        .iter()
        .filter(|m| m.payload["type"] == "trade")
        .map(|m| (m.payload["trade_id"].as_i64().unwrap(), m.payload["quarantined"] == true))
        .collect();
    let mut want: Vec<(i64, bool)> = (1..=5).map(|i| (i, false)).collect();
    want.push((i64::MAX, true));
    want.extend((6..=10).map(|i| (i, false)));
    assert_eq!(trades, want, "every trade once, in order, only the outlier flagged");
    let klines: Vec<(i64, bool)> = sorted
        .iter()
        .filter(|m| m.payload["type"] == "kline")
        .map(|m| (m.payload["open_time_ms"].as_i64().unwrap(), m.payload["quarantined"] == true))
        .collect();
    assert_eq!(klines, [(-nine, false), (nine, true), (-nine, false)]);
    assert!(sorted.iter().all(|m| m.payload["type"] != "gap"), "no gap record for an outlier");
}

#[test]
fn a_restart_does_not_seed_its_sequence_from_an_outlier_left_in_the_topic() {
    let topic = unique_topic("recover_outlier");
    // An older run's tail: trades 100..=105, then an outlier published unflagged (before
    // quarantine existed it became the sequence, and every real trade after it a duplicate).
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", kafka()).create().unwrap();
    let mut tail: Vec<String> = (100..=105)
        .map(|id| format!(r#"{{"type":"trade","exchange":"binance","symbol":"BTCUSDT","trade_id":{id}}}"#))
        .collect();
    tail.push(r#"{"type":"trade","exchange":"binance","symbol":"BTCUSDT","trade_id":9000000000000}"#.to_string());
    for p in &tail {
        producer.send(BaseRecord::<str, str>::to(&topic).key("BTCUSDT").payload(p)).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let (url, stop) = exchange((106..=108).map(trade).collect());
    let mut ing = Ingester::spawn(&[
        ("BINANCE_WS_URL", &url),
        ("SYMBOLS", "btcusdt"),
        ("KAFKA_BROKER", kafka()),
        ("KAFKA_TOPIC", &topic),
        ("BACKFILL", "off"),
    ]);
    wait_sent(&ing, 3.0);
    let seeded = ing.log_event("recovery: continuing after").expect("recovery ran");
    assert_eq!(seeded["last_id"], 105, "{seeded}");
    assert_eq!(ing.metric("marketflow_ingestor_duplicates_dropped_total{symbol=\"btcusdt\"}"), 0.0);
    assert_eq!(ing.metric("marketflow_ingestor_gaps_total{symbol=\"btcusdt\"}"), 0.0);
    stop.store(true, Ordering::Relaxed);
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    let msgs = consume(&topic, tail.len() + 3, Duration::from_secs(30), Duration::from_secs(2));
    let mut ids: Vec<i64> = msgs.iter().map(|m| m.payload["trade_id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [100, 101, 102, 103, 104, 105, 106, 107, 108, 9_000_000_000_000]);
}
