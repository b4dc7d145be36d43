//! Shared helpers for the end-to-end tests: the real local Kafka (started by the project's
//! script, once), the simulator in-process, the ingester as a child process.
#![allow(dead_code)]

pub mod captures;
pub mod drops;
pub mod exactly_once;
pub mod own_broker;
pub mod sbe;
pub mod stuck;

pub use drops::{verify_complete_logged, wait_drops_backfilled};
pub use exactly_once::{assert_every_trade_exactly_once, QUIET_IS_NOT_STALE};
pub use own_broker::OwnBroker;
pub use sbe::{key_file, sbe_env, sbe_market, start_sbe};

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The repository's root (this package is tests/e2e).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().and_then(Path::parent).expect("tests/e2e is two levels down")
}

/// `scripts/kafka.sh`.
pub fn kafka_script() -> PathBuf {
    repo_root().join("scripts/kafka.sh")
}

/// The ingester binary, built on first use by `cargo build -p marketflow-ingestor --bin
/// marketflow-ingestor` (a no-op when it is up to date). This package is not the ingester's, so
/// Cargo does not build that binary for it; a binary merely found in the target directory could
/// be older than the code under test.
pub fn ingester_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        escargot::CargoBuild::new()
            .manifest_path(repo_root().join("Cargo.toml"))
            .package("marketflow-ingestor")
            .bin("marketflow-ingestor")
            .current_release()
            .arg("--locked")
            .run()
            .unwrap_or_else(|e| panic!("cannot build the ingester binary: {e}"))
            .path()
            .to_path_buf()
    })
}

/// Bootstrap address of the local broker, starting it if needed (`scripts/kafka.sh start` is
/// idempotent, so every test may call this).
pub fn kafka() -> &'static str {
    static BOOTSTRAP: OnceLock<String> = OnceLock::new();
    BOOTSTRAP.get_or_init(|| {
        let out = Command::new("bash")
            .arg(kafka_script())
            .arg("start")
            .stderr(Stdio::inherit())
            .output()
            .expect("run kafka.sh");
        assert!(out.status.success(), "scripts/kafka.sh start failed");
        let s = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or("127.0.0.1:9092").to_string();
        s
    })
}

/// The local broker's SASL_SSL listener and its users (`scripts/kafka.sh sasl`).
#[derive(Debug, Clone)]
pub struct SaslListener {
    pub bootstrap: String,
    /// The CA that signed the broker's certificate.
    pub ca: String,
    /// A CA unrelated to the broker: a client trusting only it must refuse the broker.
    pub other_ca: String,
    pub plain_user: String,
    pub plain_password: String,
    pub scram_user: String,
    pub scram_password: String,
}

/// The SASL_SSL listener of the broker `kafka()` started (`KAFKA_PORT` picks the broker, as for
/// `kafka()`).
pub fn kafka_sasl() -> &'static SaslListener {
    static SASL: OnceLock<SaslListener> = OnceLock::new();
    SASL.get_or_init(|| {
        kafka();
        let out = Command::new("bash").arg(kafka_script()).arg("sasl").output().expect("run kafka.sh sasl");
        assert!(out.status.success(), "scripts/kafka.sh sasl failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
                .unwrap_or_else(|| panic!("kafka.sh sasl printed no {k}"))
                .to_string()
        };
        SaslListener {
            bootstrap: get("KAFKA_SASL_BOOTSTRAP"),
            ca: get("KAFKA_SASL_CA"),
            other_ca: get("KAFKA_SASL_OTHER_CA"),
            plain_user: get("KAFKA_SASL_PLAIN_USER"),
            plain_password: get("KAFKA_SASL_PLAIN_PASSWORD"),
            scram_user: get("KAFKA_SASL_SCRAM_USER"),
            scram_password: get("KAFKA_SASL_SCRAM_PASSWORD"),
        }
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A topic name no other test (or earlier run) uses.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// The ingester's variables taken from the test's own environment (all others are cleared).
const PASSED_THROUGH: &[&str] = &["LOOP_COALESCE_US"];

pub struct Ingester {
    pub child: Child,
    pub prom_port: u16,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Ingester {
    /// Starts the ingester binary with exactly these variables (plus PATH), JSON logs and a free
    /// metrics port.
    pub fn spawn(env: &[(&str, &str)]) -> Ingester {
        let prom_port = free_port();
        let mut cmd = Command::new(ingester_bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .env("PROM_PORT", prom_port.to_string())
            .env("METRICS_BIND", "127.0.0.1")
            // Tests talk to loopback only: no fallback to the real data-api unless a test names one.
            .env("BINANCE_REST_FALLBACK_URL", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Settings any test can be run with from outside (`LOOP_COALESCE_US=500 cargo test -p e2e
        // exactly_once`); a test's own value wins.
        for k in PASSED_THROUGH {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ingester");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let l = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("TEST_VERBOSE").is_ok() {
                    eprintln!("ingester: {line}");
                }
                l.lock().unwrap().push(line);
            }
        });
        Ingester { child, prom_port, logs }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.prom_port);
        match ureq::get(&url).timeout(Duration::from_secs(5)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self, timeout: Duration) {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if self.get("/readyz").0 == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("ingester not ready after {timeout:?}; logs:\n{}", self.logs.lock().unwrap().join("\n"));
    }

    /// Every sample of one `/metrics` scrape. Panics when the scrape fails: a test that reads a
    /// metric needs the answer.
    pub fn scrape(&self) -> Vec<(String, f64)> {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200, "GET /metrics failed: {body}\nlogs:\n{}", self.dump_logs());
        parse_samples(&body)
    }

    /// The value of one series, written as exported (`name` or `name{a="x",b="y"}`, labels in
    /// the exporter's order). Panics when it is not exported, naming the family and what it has:
    /// a renamed metric or label must fail the test, not read as absent or 0.
    pub fn metric(&self, series: &str) -> f64 {
        let samples = self.scrape();
        sample(&samples, series).unwrap_or_else(|| panic!("{}", not_exported(&samples, series)))
    }

    /// Like [`Ingester::metric`], but `None` when the series is not exported (yet), or nothing
    /// answers on the metrics port yet. Only for what may legitimately be absent: label values
    /// created on first use (`ws_connect_attempts_total{result}`, `sink_errors_total{kind}`,
    /// `rest_requests_total{..}`) or a process still starting. A caller that waits on it still
    /// fails (by its timeout) when the series never comes; never use it to read "absent = 0".
    pub fn metric_if_present(&self, series: &str) -> Option<f64> {
        let (code, body) = self.get("/metrics");
        if code != 200 {
            return None;
        }
        sample(&parse_samples(&body), series)
    }

    /// The sum of every sample of a metric family (all label sets). Panics when the family has
    /// no sample at all: "nothing rejected" must not pass because the counter was renamed.
    pub fn metric_sum(&self, family: &str) -> f64 {
        let samples = self.scrape();
        let values: Vec<f64> = samples.iter().filter(|(s, _)| family_of(s) == family).map(|(_, v)| *v).collect();
        assert!(!values.is_empty(), "{}", not_exported(&samples, family));
        values.iter().sum()
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long it took.
    pub fn terminate(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let t = Instant::now();
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, t.elapsed());
            }
            if t.elapsed() > within {
                let threads = stuck::report(self.child.id());
                let _ = self.child.kill();
                panic!(
                    "ingester did not stop within {within:?}; {threads}logs:\n{}",
                    self.logs.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The fields of the last JSON log line whose message is `msg`.
    pub fn log_event(&self, msg: &str) -> Option<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == msg)
    }

    pub fn dump_logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Ingester {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The samples of a Prometheus text exposition: (`name{labels}` as written, value).
pub fn parse_samples(body: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The value of exactly this series (not of one whose name merely starts the same).
pub fn sample(samples: &[(String, f64)], series: &str) -> Option<f64> {
    samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v)
}

fn family_of(series: &str) -> &str {
    series.split('{').next().unwrap_or(series)
}

/// Why `series` was not found: the series its family does have, or, when the family itself is
/// missing, every family that is exported.
pub fn not_exported(samples: &[(String, f64)], series: &str) -> String {
    let family = family_of(series);
    let same: Vec<&str> = samples.iter().map(|(s, _)| s.as_str()).filter(|s| family_of(s) == family).collect();
    if same.is_empty() {
        let families: std::collections::BTreeSet<&str> = samples.iter().map(|(s, _)| family_of(s)).collect();
        format!(
            "metric family {family} is not exported (renamed?); the {} exported families are:\n  {}",
            families.len(),
            families.into_iter().collect::<Vec<_>>().join("\n  ")
        )
    } else {
        format!("series {series} is not exported; family {family} has:\n  {}", same.join("\n  "))
    }
}

#[derive(Debug, Clone)]
pub struct Consumed {
    pub key: Vec<u8>,
    pub payload: serde_json::Value,
    pub timestamp_ms: Option<i64>,
    pub partition: i32,
    pub offset: i64,
}

/// Reads a topic of the local broker from the beginning until `want` messages arrived and
/// nothing more comes for `quiet`, or `timeout` passes. Reading past `want` is what catches
/// duplicates.
pub fn consume(topic: &str, want: usize, timeout: Duration, quiet: Duration) -> Vec<Consumed> {
    consume_from(kafka(), topic, want, timeout, quiet)
}

/// [`consume`] from the broker at `bootstrap`.
pub fn consume_from(bootstrap: &str, topic: &str, want: usize, timeout: Duration, quiet: Duration) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("test-reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    // Assign every partition explicitly: no group rebalance to wait for.
    let t = Instant::now();
    let partitions = loop {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if let Some(t) = md.topics().first() {
                if t.error().is_none() && !t.partitions().is_empty() {
                    break t.partitions().len();
                }
            }
        }
        assert!(t.elapsed() < timeout, "topic {topic} never appeared");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::with_capacity(want);
    let mut last_msg = Instant::now();
    // Per partition, the offset after the last record read (the producer is idempotent, not
    // transactional: offsets are dense, and the high watermark is where the topic ends).
    let mut next: Vec<Option<i64>> = vec![None; partitions];
    while t.elapsed() < timeout {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last_msg = Instant::now();
                if let Some(n) = next.get_mut(m.partition() as usize) {
                    *n = Some(m.offset() + 1);
                }
                out.push(Consumed {
                    key: m.key().unwrap_or_default().to_vec(),
                    payload: serde_json::from_slice(m.payload().unwrap_or_default()).expect("record is JSON"),
                    timestamp_ms: m.timestamp().to_millis(),
                    partition: m.partition(),
                    offset: m.offset(),
                });
            }
            // The local broker can be fenced for a while when the machine stalls (its controller
            // then misses its own session); the consumer resumes by itself once it is back. The
            // caller's checks on what was read still fail if records never come.
            Some(Err(e)) => {
                eprintln!("consume {topic}: transient consumer error, retrying: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            // Quiet is the topic's end only if every partition was read to its high watermark:
            // a broker stalled by a busy machine is quiet too (and cannot answer the question).
            None => {
                if out.len() >= want && last_msg.elapsed() >= quiet {
                    if read_to_the_end(&consumer, topic, &next) {
                        break;
                    }
                    last_msg = Instant::now();
                }
            }
        }
    }
    out
}

/// Whether every partition of `topic` was read up to its high watermark (`next`: the offset after
/// the last record read from each). A broker that does not answer within 5 s: not known, so no.
fn read_to_the_end(consumer: &BaseConsumer, topic: &str, next: &[Option<i64>]) -> bool {
    next.iter().enumerate().all(|(p, n)| match consumer.fetch_watermarks(topic, p as i32, Duration::from_secs(5)) {
        Ok((low, high)) => n.unwrap_or(low) >= high,
        Err(e) => {
            eprintln!("consume {topic}: watermarks of partition {p} not known ({e}): reading on");
            false
        }
    })
}

/// Starts the simulator in this process.
pub fn sim(cfg: binance_sim::SimConfig) -> binance_sim::SimHandle {
    binance_sim::spawn(cfg, "127.0.0.1:0").expect("simulator")
}

/// Waits until the market has made its last trade of every symbol; after `within` it fails with
/// `why()` (an ingester's logs, say) in the message.
pub fn wait_market_done(sim: &binance_sim::SimHandle, within: Duration, why: impl Fn() -> String) {
    let per = sim.market.total_trades_per_symbol().expect("a market with an end");
    let t = Instant::now();
    while sim.market.generated(binance_sim::StreamKind::Trade) < per {
        assert!(t.elapsed() < within, "market never finished:\n{}", why());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A `stale` record: a stream found silent while its connection lived on. It names no trade
/// (the end of a simulated market silences every stream, and the ingester says so).
pub fn is_stale(m: &Consumed) -> bool {
    m.payload["type"] == "stale"
}

/// Checks that `msgs` hold trades `first..first+count` of every symbol exactly once, in order per
/// symbol, with every field equal to what the simulator sent. Returns per-symbol counts.
pub fn verify_trades(msgs: &[Consumed], market: &binance_sim::Market, expected_per_symbol: Option<u64>) -> Vec<u64> {
    let n = market.cfg.symbols.len();
    let mut next: Vec<Option<u64>> = vec![None; n];
    let mut counts = vec![0u64; n];
    let mut partition_of: Vec<Option<i32>> = vec![None; n];
    // Kafka order is per partition; a symbol's records all share one partition (key = symbol),
    // so partition-then-offset order is the order a consumer of that symbol sees.
    let mut sorted: Vec<&Consumed> = msgs.iter().collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    for m in sorted.into_iter().filter(|m| !is_stale(m)) {
        let p = &m.payload;
        assert_eq!(p["type"], "trade", "{p}");
        let sym = p["symbol"].as_str().unwrap().to_lowercase();
        let s = market.symbol_index(&sym).unwrap_or_else(|| panic!("unknown symbol in {p}"));
        assert_eq!(m.key, p["symbol"].as_str().unwrap().as_bytes(), "key = symbol");
        match partition_of[s] {
            None => partition_of[s] = Some(m.partition),
            Some(q) => assert_eq!(q, m.partition, "{sym} spread over partitions"),
        }
        let id = p["trade_id"].as_i64().unwrap();
        let k = (id - binance_sim::Market::trade_id_base(s)) as u64;
        if let Some(want) = next[s] {
            assert_eq!(k, want, "{sym}: expected trade #{want} next, got #{k} (duplicate or gap or reorder)");
        }
        let e = market.expected_trade(s, k);
        assert_eq!(p["symbol"], e.symbol);
        assert_eq!(p["exchange"], "binance");
        assert_eq!(p["price"], e.price, "{p}");
        assert_eq!(p["qty"], e.qty, "{p}");
        assert_eq!(p["side"], if e.buyer_is_maker { "sell" } else { "buy" }, "{p}");
        assert_eq!(p["trade_time_ms"], e.trade_time_ms, "{p}");
        assert_eq!(p["event_time_ms"], e.trade_time_ms, "{p}");
        assert_eq!(m.timestamp_ms, Some(e.trade_time_ms), "Kafka timestamp = event time");
        let recv = p["recv_time_ns"].as_u64().expect("recv_time_ns");
        assert!(recv / 1_000_000 + 5_000 >= e.trade_time_ms as u64, "receive time plausible: {p}");
        next[s] = Some(k + 1);
        counts[s] += 1;
    }
    if let Some(want) = expected_per_symbol {
        for (s, c) in counts.iter().enumerate() {
            assert_eq!(next[s], Some(want), "{}: last trade should be #{}", market.cfg.symbols[s], want - 1);
            // Started at trade #0: nothing missed at connect time either.
            assert_eq!(*c, want, "{}: {c} of {want} trades", market.cfg.symbols[s]);
        }
    }
    counts
}

/// What a completeness check found.
#[derive(Debug, Default)]
pub struct Completeness {
    pub live: u64,
    pub backfilled: u64,
    /// Ids accounted for by `gap` markers (unrecoverable).
    pub in_markers: u64,
}

/// Checks that, per symbol, trades `0..per_symbol` are in `msgs` exactly once each (live or
/// backfilled, every field as sent), or covered by a gap marker when `unrecoverable(k)`; that
/// nothing else is there; and that live records are in order per symbol.
pub fn verify_complete(
    msgs: &[Consumed],
    market: &binance_sim::Market,
    per_symbol: u64,
    unrecoverable: impl Fn(u64) -> bool,
) -> Completeness {
    use binance_sim::Market;
    let n = market.cfg.symbols.len();
    let mut seen: Vec<Vec<bool>> = vec![vec![false; per_symbol as usize]; n];
    let mut marked: Vec<Vec<bool>> = vec![vec![false; per_symbol as usize]; n];
    let mut last_live: Vec<Option<u64>> = vec![None; n];
    let mut out = Completeness::default();
    let mut sorted: Vec<&Consumed> = msgs.iter().collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    for m in sorted.into_iter().filter(|m| !is_stale(m)) {
        let p = &m.payload;
        let sym = p["symbol"].as_str().unwrap().to_lowercase();
        let s = market.symbol_index(&sym).unwrap_or_else(|| panic!("unknown symbol in {p}"));
        let base = Market::trade_id_base(s);
        match p["type"].as_str().unwrap() {
            "gap" => {
                assert_eq!(p["stream"], "trade", "{p}");
                let (from, to) = (p["from_id"].as_i64().unwrap(), p["to_id"].as_i64().unwrap());
                assert_eq!(p["missing"].as_i64().unwrap(), to - from + 1, "{p}");
                for id in from..=to {
                    let k = (id - base) as u64;
                    assert!(k < per_symbol && unrecoverable(k), "{sym}: marker covers trade #{k}, which REST has: {p}");
                    marked[s][k as usize] = true;
                    out.in_markers += 1;
                }
            }
            "trade" => {
                let k = (p["trade_id"].as_i64().unwrap() - base) as u64;
                assert!(k < per_symbol, "{sym}: trade #{k} beyond the {per_symbol} generated");
                assert!(!seen[s][k as usize], "{sym}: trade #{k} published twice");
                seen[s][k as usize] = true;
                let e = market.expected_trade(s, k);
                assert_eq!(p["price"], e.price, "{p}");
                assert_eq!(p["qty"], e.qty, "{p}");
                assert_eq!(p["side"], if e.buyer_is_maker { "sell" } else { "buy" }, "{p}");
                assert_eq!(p["trade_time_ms"], e.trade_time_ms, "{p}");
                assert_eq!(m.key, e.symbol.as_bytes());
                if p["backfilled"] == true {
                    out.backfilled += 1;
                } else {
                    if let Some(prev) = last_live[s] {
                        assert!(k > prev, "{sym}: live trade #{k} after #{prev}");
                    }
                    last_live[s] = Some(k);
                    out.live += 1;
                }
            }
            other => panic!("unexpected record type {other}: {p}"),
        }
    }
    for s in 0..n {
        for k in 0..per_symbol {
            let (got, mark) = (seen[s][k as usize], marked[s][k as usize]);
            assert!(got || mark, "{}: trade #{k} neither published nor reported as a gap", market.cfg.symbols[s]);
            assert!(!(got && mark), "{}: trade #{k} both published and reported missing", market.cfg.symbols[s]);
        }
    }
    out
}

/// The head of one HTTP request read from `c` (up to its blank line, or what came before the peer
/// stopped or 5 s passed): what the small REST servers written inside tests answer.
pub fn read_request_head(c: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    req
}

/// The ingester against `sim`'s WebSocket and REST, publishing to `topic`, with `extra`
/// settings on top (a later entry wins), once ready.
pub fn start(sim: &binance_sim::SimHandle, topic: &str, extra: &[(&str, &str)]) -> Ingester {
    let (ws, rest) = (sim.ws_url(), sim.rest_url());
    let mut env = vec![
        ("BINANCE_WS_URL", ws.as_str()),
        ("BINANCE_REST_URL", rest.as_str()),
        ("KAFKA_BROKER", kafka()),
        ("KAFKA_TOPIC", topic),
    ];
    env.extend_from_slice(extra);
    let ing = Ingester::spawn(&env);
    ing.wait_ready(Duration::from_secs(60));
    ing
}
