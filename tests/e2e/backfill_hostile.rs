//! The backfill thread against a hostile or absent REST side, through the real binary, the
//! simulator's stream and the real local Kafka: an absurd `Retry-After` neither kills the thread
//! nor loses the gaps after it; REST refusing every connection while every few trades open a
//! gap keeps the queue and memory bounded, and still names every missing id in a gap record.

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use binance_sim::{SimConfig, SimHandle, StreamKind};
use marketflow_ingestor::backfill::queue::MAX_RANGES_PER_SEQUENCE;

/// A REST server answering every request with 429 then 418, alternately, both with the largest
/// `Retry-After` a u64 holds (it used to overflow `Instant + Duration` and kill the thread).
fn hostile_rest() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(AtomicU64::new(0));
    let s = served.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            read_request_head(&mut c);
            let n = s.fetch_add(1, Ordering::SeqCst);
            let status = if n % 2 == 0 { "429 Too Many Requests" } else { "418 I'm a teapot" };
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\nRetry-After: 18446744073709551615\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            );
        }
    });
    (url, served)
}

fn market(skip: (u64, u64), secs: u64) -> SimHandle {
    let sim = sim(SimConfig {
        trade_rate: 600.0,
        duration: Some(Duration::from_secs(secs)),
        stream_skip: Some(skip),
        ..SimConfig::default()
    });
    // A gap is seen when a later trade arrives: the market must end on a live one.
    let per = sim.market.total_trades_per_symbol().unwrap();
    assert!(!sim.market.stream_skips(per - 1), "the last trade must reach the stream");
    sim
}

fn wait_market_done(sim: &SimHandle, ing: &Ingester) {
    crate::common::wait_market_done(sim, Duration::from_secs(90), || ing.dump_logs());
    // The last trades' gaps reach the backfill thread.
    std::thread::sleep(Duration::from_secs(2));
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn no_panic(ing: &Ingester) {
    let logs = ing.dump_logs();
    assert!(!logs.contains("panicked"), "a thread panicked:\n{logs}");
}

#[test]
fn an_absurd_retry_after_neither_kills_the_thread_nor_loses_later_gaps() {
    let (rest, served) = hostile_rest();
    // Two trades of every 97 left out of the stream: a gap about every half second per symbol.
    let sim = market((97, 2), 12);
    let topic = unique_topic("retry_after");
    let ws = sim.ws_url();
    let mut ing = Ingester::spawn(&[
        ("BINANCE_WS_URL", &ws),
        ("BINANCE_REST_URL", &rest),
        ("KAFKA_BROKER", kafka()),
        ("KAFKA_TOPIC", &topic),
    ]);
    ing.wait_ready(Duration::from_secs(30));
    wait_market_done(&sim, &ing);
    assert!(ing.child.try_wait().unwrap().is_none(), "still running:\n{}", ing.dump_logs());
    assert_eq!(ing.get("/readyz").0, 200, "no thread died:\n{}", ing.dump_logs());
    no_panic(&ing);
    // The wait was honoured (capped at three days, not retried at once): one request in all.
    assert_eq!(served.load(Ordering::SeqCst), 1, "{}", ing.dump_logs());
    let gaps = ing.metric("marketflow_ingestor_gaps_total{symbol=\"btcusdt\"}");
    assert!(gaps >= 10.0, "gaps kept coming after the first: {gaps}");

    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{st:?}\n{}", ing.dump_logs());
    no_panic(&ing);
    // Every gap, the first and all later ones, is named: the wait ended at shutdown.
    let per = sim.market.total_trades_per_symbol().unwrap();
    let skipped = (0..per).filter(|k| sim.market.stream_skips(*k)).count() as u64;
    let msgs = consume(&topic, (3 * (per - skipped)) as usize, Duration::from_secs(60), Duration::from_secs(3));
    let c = verify_complete(&msgs, &sim.market, per, |k| sim.market.stream_skips(k));
    assert_eq!((c.in_markers, c.backfilled), (3 * skipped, 0), "{c:?}");
    let reasons: Vec<&str> =
        msgs.iter().filter(|m| m.payload["type"] == "gap").map(|m| m.payload["reason"].as_str().unwrap()).collect();
    assert!(reasons.iter().all(|r| *r == "shutdown"), "{reasons:?}");
}

#[test]
fn rest_unreachable_with_a_gap_every_third_trade_stays_bounded_and_names_every_id() {
    // Connection refused: a port nothing listens on.
    let rest = format!("http://127.0.0.1:{}", free_port());
    // One trade in three never reaches the stream: ~67 single-id gaps a second per symbol, far
    // more than the queue keeps.
    let sim = market((3, 1), 25);
    let topic = unique_topic("rest_refused");
    let ws = sim.ws_url();
    let mut ing = Ingester::spawn(&[
        ("BINANCE_WS_URL", &ws),
        ("BINANCE_REST_URL", &rest),
        ("KAFKA_BROKER", kafka()),
        ("KAFKA_TOPIC", &topic),
    ]);
    ing.wait_ready(Duration::from_secs(30));
    let pid = ing.child.id();
    let bound = (3 * MAX_RANGES_PER_SEQUENCE) as f64;
    let (mut peak, mut rss_mid) = (0.0f64, 0);
    let t = Instant::now();
    while sim.market.generated(StreamKind::Trade) < sim.market.total_trades_per_symbol().unwrap() {
        assert!(t.elapsed() < Duration::from_secs(90), "market never finished");
        let queued = ing.metric("marketflow_ingestor_backfill_queue_ranges");
        assert!(queued <= bound, "queue over its bound: {queued}");
        peak = peak.max(queued);
        if rss_mid == 0 && t.elapsed() > Duration::from_secs(12) {
            rss_mid = rss_kib(pid);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss_end = rss_kib(pid);
    assert!(peak >= bound * 0.9, "the queue filled up to its bound: peak {peak}");
    // Once full, memory stays flat (the old unbounded queue grew with every gap).
    assert!(rss_end < rss_mid + 16 * 1024, "RSS {rss_mid} -> {rss_end} KiB");
    let full = ing.metric_sum("marketflow_ingestor_backfill_queue_full_total");
    assert!(full > 0.0, "gaps past the bound were published at once:\n{}", ing.dump_logs());
    assert_eq!(ing.get("/readyz").0, 200);
    no_panic(&ing);

    let (st, _) = ing.terminate(Duration::from_secs(30));
    assert!(st.success(), "{st:?}\n{}", ing.dump_logs());
    // One summary line for what was left at shutdown, not one (or two) per range.
    let logs = ing.logs.lock().unwrap().clone();
    let summary = logs.iter().filter(|l| l.contains("backfill unfinished at shutdown")).count();
    assert_eq!(summary, 1, "{}", ing.dump_logs());
    let per = sim.market.total_trades_per_symbol().unwrap();
    let skipped = (0..per).filter(|k| sim.market.stream_skips(*k)).count() as u64;
    let msgs = consume(&topic, (3 * (per - skipped)) as usize, Duration::from_secs(60), Duration::from_secs(3));
    let c = verify_complete(&msgs, &sim.market, per, |k| sim.market.stream_skips(k));
    assert_eq!(c.in_markers, 3 * skipped, "every missing id named: {c:?}");
    let reason_count = |r: &str| msgs.iter().filter(|m| m.payload["reason"] == r).count();
    assert!(reason_count("backfill_queue_full") > 0 && reason_count("shutdown") > 0);
    assert!(reason_count("backfill_queue_full") as f64 >= full, "each one counted and published");
}
