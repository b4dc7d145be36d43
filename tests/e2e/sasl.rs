//! The production Kafka path against the real broker: SASL_SSL (the protocol Azure Event Hubs
//! speaks), through the SASL_SSL listener `scripts/kafka.sh` opens beside PLAINTEXT.
//!
//! - PLAIN with the right credentials: every trade exactly once, in order, fields as sent.
//! - SCRAM-SHA-512 with the right credentials: every trade arrives.
//! - A wrong password: a clear error naming authentication, a counter, not ready, a bounded
//!   number of reconnections, and the password in no log line and no metric.
//! - A broker certificate from another CA: refused, likewise clearly, counted and not ready.
//!
//! Reconnections are counted by a TCP relay between the ingester and the broker, so the bound is
//! measured from outside librdkafka.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use binance_sim::SimConfig;

/// Forwards every connection to `target` and counts them.
struct Relay {
    addr: String,
    connections: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn to(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (connections, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (n, s, target) = (connections.clone(), stop.clone(), target.to_string());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        n.fetch_add(1, Ordering::Relaxed);
                        client.set_nonblocking(false).unwrap();
                        if let Ok(server) = TcpStream::connect(&target) {
                            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                            pipe(server, client);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => panic!("relay accept: {e}"),
                }
            }
        });
        Relay { addr, connections, stop }
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

fn wait_for<T>(what: &str, ing: &Ingester, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < timeout, "{what} not seen within {timeout:?}; logs:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs 10 s of trades through SASL_SSL with `user`/`password` and checks that every trade
/// arrived exactly once, in order, every field as sent.
fn delivers_exactly_once(mechanism: &str, user: &str, password: &str) {
    let s = kafka_sasl();
    let topic = unique_topic(&format!("e2e_sasl_{}", mechanism.to_lowercase().replace('-', "_")));
    let sim = sim(SimConfig { trade_rate: 3_000.0, duration: Some(Duration::from_secs(10)), ..SimConfig::default() });
    let per_symbol = sim.market.total_trades_per_symbol().unwrap();
    let (url, rest) = (sim.ws_url(), sim.rest_url());
    let ca = format!("ssl.ca.location={}", s.ca);
    let mut ing = Ingester::spawn(&[
        ("BINANCE_WS_URL", &url),
        ("BINANCE_REST_URL", &rest),
        ("KAFKA_BROKER", &s.bootstrap),
        ("KAFKA_TOPIC", &topic),
        ("KAFKA_USERNAME", user),
        ("KAFKA_PASSWORD", password),
        ("KAFKA_SASL_MECHANISM", mechanism),
        ("KAFKA_PROPS", &ca),
    ]);
    ing.wait_ready(Duration::from_secs(30));

    let msgs = consume(&topic, 3 * per_symbol as usize, Duration::from_secs(90), Duration::from_secs(3));
    let counts = verify_trades(&msgs, &sim.market, Some(per_symbol));
    assert_eq!(counts, [per_symbol; 3]);
    // The simulator goes quiet after its last trade, so the silence watch may add `stale` records
    // while the topic is read (seen on a loaded machine: 30,006 records for 30,000 trades); they
    // are not trades, and anything else beyond the last trade is named.
    let extra: Vec<_> =
        msgs.iter().filter(|m| !is_stale(m)).skip(3 * per_symbol as usize).map(|m| &m.payload).collect();
    assert!(extra.is_empty(), "no duplicates beyond the last trade: {extra:?}");
    assert_eq!(ing.metric_sum("marketflow_ingestor_sink_errors_total"), 0.0, "no client errors");

    let (status, _) = ing.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}\n{}", ing.dump_logs());
    let stopped = ing.log_event("stopped").expect("final log line");
    assert_eq!(stopped["unflushed"], 0);
    assert!(!ing.dump_logs().contains(password), "the password appears in a log line");
}

#[test]
fn plain_over_sasl_ssl_delivers_every_trade_exactly_once() {
    let s = kafka_sasl();
    delivers_exactly_once("PLAIN", &s.plain_user, &s.plain_password);
}

#[test]
fn scram_sha_512_over_sasl_ssl_delivers_every_trade() {
    let s = kafka_sasl();
    delivers_exactly_once("SCRAM-SHA-512", &s.scram_user, &s.scram_password);
}

/// The window over which reconnections and log lines are counted, once the refusal is seen.
const STORM_WINDOW: Duration = Duration::from_secs(20);

/// Starts an ingester whose broker refuses it (through a counting relay) and checks what every
/// refusal must give: an error log line with `message`, the `kind` counted, /readyz 503 while
/// subscribed and alive, at most `max_connections` over `STORM_WINDOW`, few log lines, and
/// `secret` shown nowhere.
fn refused(kind: &str, message: &str, user: &str, password: &str, ca: &str, secret: &str, max_connections: u64) {
    let s = kafka_sasl();
    let relay = Relay::to(&s.bootstrap);
    let sim = sim(SimConfig { trade_rate: 300.0, ..SimConfig::default() });
    let (url, rest) = (sim.ws_url(), sim.rest_url());
    let topic = unique_topic(&format!("e2e_sasl_refused_{kind}"));
    let ca = format!("ssl.ca.location={ca}");
    let mut ing = Ingester::spawn(&[
        ("BINANCE_WS_URL", &url),
        ("BINANCE_REST_URL", &rest),
        ("KAFKA_BROKER", &relay.addr),
        ("KAFKA_TOPIC", &topic),
        ("KAFKA_USERNAME", user),
        ("KAFKA_PASSWORD", password),
        ("KAFKA_PROPS", &ca),
        ("SHUTDOWN_TIMEOUT_MS", "2000"),
    ]);

    let event = wait_for(&format!("log line `{message}`"), &ing, Duration::from_secs(30), || ing.log_event(message));
    assert_eq!(event["level"], "ERROR", "{event}");
    assert_eq!(event["kind"], kind, "{event}");
    let series = format!("marketflow_ingestor_sink_errors_total{{kind=\"{kind}\"}}");
    wait_for(&series, &ing, Duration::from_secs(10), || ing.metric_if_present(&series).filter(|v| *v >= 1.0));
    // Subscribed to the market and alive, but not ready: nothing can be delivered.
    wait_for("subscribed", &ing, Duration::from_secs(30), || {
        let (code, body) = ing.get("/readyz");
        (body.contains("subscribed=true")).then_some((code, body))
    });

    let (c0, l0) = (relay.connections(), ing.logs.lock().unwrap().len());
    std::thread::sleep(STORM_WINDOW);
    let (c1, l1) = (relay.connections(), ing.logs.lock().unwrap().len());
    eprintln!(
        "{kind}: {} connections and {} log lines in {STORM_WINDOW:?} ({c1} connections in all)",
        c1 - c0,
        l1 - l0
    );
    assert!(c1 > c0 || c0 > 0, "the relay saw the ingester connect");
    assert!(
        c1 - c0 <= max_connections,
        "{} connections in {STORM_WINDOW:?}: a retry storm; logs:\n{}",
        c1 - c0,
        ing.dump_logs()
    );
    // Every repeated line is rate-limited: at most a burst of 5 per librdkafka facility (or one
    // per error kind) per 10 s, so no line repeats more than 15 times in the 20 s window.
    let mut repeats: std::collections::HashMap<String, usize> = Default::default();
    for line in &ing.logs.lock().unwrap()[l0..l1] {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        // librdkafka's lines vary in their text ("after 6ms in state ..."): group them by facility.
        let what = [&v["fac"], &v["kind"], &v["message"]].into_iter().find(|x| !x.is_null()).cloned();
        let key = format!("{} {}", v["target"], what.unwrap_or_default());
        *repeats.entry(key).or_default() += 1;
    }
    for (key, n) in &repeats {
        assert!(*n <= 15, "{n} lines of {key} in {STORM_WINDOW:?}: not rate-limited");
    }
    let (code, body) = ing.get("/readyz");
    let mut lines = body.lines();
    assert_eq!((code, lines.next()), (503, Some("subscribed=true sink=false")), "{body}");
    // Its records have waited unacknowledged longer than KAFKA_STALL_SECS (15 s) by now: the
    // stall is named beside the refusal, and nothing else is.
    assert!(lines.all(|l| l.starts_with("kafka_stall=no acknowledgement for ")), "{body}");
    assert_eq!(ing.get("/healthz").0, 200, "alive");

    let (_, metrics) = ing.get("/metrics");
    let _ = ing.terminate(Duration::from_secs(20));
    let logs = ing.dump_logs();
    assert!(!metrics.contains(secret), "the password appears in /metrics");
    assert!(!logs.contains(secret), "the password appears in a log line:\n{logs}");
}

#[test]
fn a_wrong_password_is_refused_clearly_counted_not_ready_and_never_shown() {
    let s = kafka_sasl();
    // Unique, so that finding it anywhere can only mean it leaked.
    let wrong = format!("wrong-{}", unique_topic("password"));
    // librdkafka backs off between refused logins up to `reconnect.backoff.max.ms` (10 s): 2 in
    // the window measured (9 in 30 s in all), where a storm would be several a second.
    refused("authentication", "kafka authentication failed", &s.plain_user, &wrong, &s.ca, &wrong, 10);
}

#[test]
fn a_broker_certificate_from_another_ca_is_refused() {
    let s = kafka_sasl();
    // A failed TLS handshake leaves librdkafka's broker handle idle, and its own timers (producer
    // id, leader query, metadata refresh, about 5 a second) each ask for a connection, only
    // spaced by reconnect.backoff.ms / 2: 81 in the window measured. Bounded by those timers, not
    // a loop; `reconnect.backoff.ms=2000` in KAFKA_PROPS brings it to 1 a second (README). A loop
    // of ours asking for metadata would reach 20 a second.
    refused("tls", "kafka TLS handshake failed", &s.plain_user, &s.plain_password, &s.other_ca, &s.plain_password, 150);
}
