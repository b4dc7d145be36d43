//! Configuration: every setting comes from an environment variable (the names the original design
//! uses) or the command-line flag of the same meaning, and is validated in one pass so that an
//! operator sees *every* problem at once instead of fixing them one restart at a time.
//!
//! Parsing has two stages, as in ripgrep: [`RawConfig`] holds the strings exactly as given (from
//! clap, or from a plain map in tests, so no test ever touches the process environment), and
//! [`RawConfig::validate`] turns them into the typed [`Config`] or a [`ConfigErrors`] list.
//!
//! Submodules: [`secret`] (the masking rule), `kafka_props` (librdkafka properties, checked by
//! librdkafka), [`endpoint`] (Binance URLs), [`memory`] (the ring's ceiling), `parse` (the rest).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::binance::stream::StreamKind;
use crate::record::RecordType;

pub mod endpoint;
mod kafka_props;
pub mod memory;
mod parse;
pub mod secret;
#[cfg(test)]
mod tests;

pub use endpoint::Endpoint;
pub use parse::MAX_PASSWORD_FILE_BYTES;
use parse::{
    check_ca_file, check_topic, parse_core, parse_num, parse_streams, parse_switch, parse_symbols, read_password_file,
};
pub use secret::{is_secret_key, mask_prop, masked_pairs, scrub, KafkaProps, Secret};

/// Exit code for a bad configuration (`EX_USAGE` from sysexits.h), as linkerd and most daemons use.
pub const EXIT_CONFIG: u8 = 64;

/// Longest drain-and-flush on SIGTERM (10 minutes).
pub const MAX_SHUTDOWN_TIMEOUT_MS: u64 = 600_000;

/// Binance's documented ceiling of streams on one connection.
pub const BINANCE_MAX_STREAMS_PER_CONNECTION: usize = crate::binance::venue::MAX_STREAMS_PER_CONNECTION;

/// Every environment variable the ingester reads, with its flag, default and meaning.
/// `--help` is generated from the clap definitions in `cli.rs`; this table is the single list
/// that `RawConfig::from_env_map` walks, so a new variable cannot be forgotten in one of them.
pub const VARS: &[(&str, &str)] = &[
    ("SYMBOLS", "btcusdt,ethusdt,solusdt"),
    ("STREAMS", "trade"),
    ("KAFKA_BROKER", "localhost:9092"),
    ("KAFKA_TOPIC", "ohlcv_raw"),
    ("KAFKA_TOPIC_TRADE", ""),
    ("KAFKA_TOPIC_AGG_TRADE", ""),
    ("KAFKA_TOPIC_KLINE", ""),
    ("KAFKA_TOPIC_BOOK_TICKER", ""),
    ("KAFKA_TOPIC_DEPTH_UPDATE", ""),
    ("KAFKA_USERNAME", ""),
    ("KAFKA_PASSWORD", ""),
    ("KAFKA_PASSWORD_FILE", ""),
    ("KAFKA_SECURITY_PROTOCOL", ""),
    ("KAFKA_SASL_MECHANISM", "PLAIN"),
    ("KAFKA_PROPS", ""),
    ("PROM_PORT", "8000"),
    ("METRICS_BIND", "0.0.0.0"),
    ("BINANCE_WS_URL", "wss://stream.binance.com:9443"),
    ("BINANCE_REST_URL", "https://api.binance.com"),
    ("TLS_CA_FILE", ""),
    ("PIN_CORE", "auto"),
    ("PRODUCER_CORE", "auto"),
    ("LOOP_MODE", "blocking"),
    ("RING_BYTES", "16777216"),
    ("MAX_STREAMS_PER_CONNECTION", "1024"),
    ("SINK", "kafka"),
    ("LOG_FORMAT", "text"),
    ("SHUTDOWN_TIMEOUT_MS", "10000"),
    ("BACKFILL", "on"),
    ("BACKFILL_MAX_IDS", "1000000"),
    ("RECOVER_FROM_KAFKA", "on"),
    ("WS_STALE_MS", "45000"),
    ("WS_MAX_AGE_SECS", "82800"),
];

/// Where normalized records go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Kafka,
    /// JSON lines on stdout: lets anyone try the ingester against live Binance with nothing else.
    Stdout,
    /// Counts and discards; for load tests that must measure the ingester, not the broker.
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Busy polling burns a core to shave the wake-up latency of epoll; blocking is the default
/// because most deployments do not own an isolated core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopMode {
    Blocking,
    BusyPoll,
}

/// Which CPU a thread is pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorePin {
    /// Pick from the process's allowed CPU set (the set the kubelet's static CPU manager gave us).
    Auto,
    /// Do not pin.
    None,
    /// This CPU id; it must be in the allowed set (checked at start-up, where the set is known).
    Core(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// The validated configuration. Built once at start-up and shared read-only.
#[derive(Clone, Debug)]
pub struct Config {
    /// Lower-case symbols as they appear in stream names; upper-casing happens in Binance payloads.
    pub symbols: Vec<String>,
    pub streams: Vec<StreamKind>,
    pub kafka_broker: String,
    /// Topic per record type, indexed by `RecordType as usize`.
    pub topics: [String; RecordType::COUNT],
    pub kafka_username: Option<String>,
    pub kafka_password: Secret,
    pub kafka_security_protocol: Option<String>,
    pub kafka_sasl_mechanism: SaslMechanism,
    /// librdkafka properties passed through verbatim; applied last, so they win. Each was
    /// accepted by librdkafka at validation; its `Debug` masks secret values.
    pub kafka_props: KafkaProps,
    pub prom_port: u16,
    pub metrics_bind: String,
    pub ws: Endpoint,
    pub rest: Endpoint,
    /// An extra CA to trust besides the web PKI roots (the simulator's self-signed cert in tests).
    pub tls_ca_file: Option<PathBuf>,
    pub pin_core: CorePin,
    pub producer_core: CorePin,
    pub loop_mode: LoopMode,
    pub ring_bytes: usize,
    pub max_streams_per_connection: usize,
    pub sink: SinkKind,
    pub log_format: LogFormat,
    pub shutdown_timeout: Duration,
    /// Fetch gaps from REST and publish them (flagged), or only count them.
    pub backfill: bool,
    /// Longest id range one gap may fetch from REST; the rest of a larger gap is reported as a
    /// `gap` marker at once (a hostile or corrupt id jump must not page REST for days).
    pub backfill_max_ids: i64,
    /// At start, read the last trade/aggTrade id per symbol back from Kafka and continue from it.
    pub recover_from_kafka: bool,
    /// A connection with neither data nor a ping for this long is replaced.
    pub ws_stale_after: Duration,
    /// Connections are rotated (make-before-break) at this age, before Binance's 24 h cut.
    pub ws_max_age: Duration,
}

impl Config {
    /// Every `(symbol, stream)` pair, in the order they are spread over connections.
    pub fn stream_names(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.symbols.len() * self.streams.len());
        for s in &self.symbols {
            for k in &self.streams {
                out.push(k.stream_name(s));
            }
        }
        out
    }

    /// Human-readable effective configuration with secrets masked, for `--check-config`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| {
            out.push_str(&format!("{k:<28} {v}\n"));
        };
        line("SYMBOLS", self.symbols.join(","));
        line("STREAMS", self.streams.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","));
        line("KAFKA_BROKER", self.kafka_broker.clone());
        for t in RecordType::ALL {
            line(&format!("topic[{}]", t.as_str()), self.topics[t as usize].clone());
        }
        line("KAFKA_USERNAME", self.kafka_username.clone().unwrap_or_default());
        line("KAFKA_PASSWORD", self.kafka_password.to_string());
        line("KAFKA_SECURITY_PROTOCOL", self.kafka_security_protocol.clone().unwrap_or_else(|| "PLAINTEXT".into()));
        line("KAFKA_SASL_MECHANISM", self.kafka_sasl_mechanism.as_librdkafka().into());
        for (k, v) in kafka_props::render_lines(&self.kafka_props) {
            line(&k, v);
        }
        line("PROM_PORT", self.prom_port.to_string());
        line("METRICS_BIND", self.metrics_bind.clone());
        line(
            "BINANCE_WS_URL",
            format!("{}://{}{}", if self.ws.tls { "wss" } else { "ws" }, self.ws.authority(), self.ws.path),
        );
        line(
            "BINANCE_REST_URL",
            format!("{}://{}{}", if self.rest.tls { "https" } else { "http" }, self.rest.authority(), self.rest.path),
        );
        line("TLS_CA_FILE", self.tls_ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default());
        line("PIN_CORE", format!("{:?}", self.pin_core));
        line("PRODUCER_CORE", format!("{:?}", self.producer_core));
        line("LOOP_MODE", format!("{:?}", self.loop_mode));
        line("RING_BYTES", self.ring_bytes.to_string());
        line("MAX_STREAMS_PER_CONNECTION", self.max_streams_per_connection.to_string());
        line("SINK", format!("{:?}", self.sink));
        line("LOG_FORMAT", format!("{:?}", self.log_format));
        line("SHUTDOWN_TIMEOUT_MS", self.shutdown_timeout.as_millis().to_string());
        line("BACKFILL", if self.backfill { "on" } else { "off" }.into());
        line("BACKFILL_MAX_IDS", self.backfill_max_ids.to_string());
        line("RECOVER_FROM_KAFKA", if self.recover_from_kafka { "on" } else { "off" }.into());
        line("WS_STALE_MS", self.ws_stale_after.as_millis().to_string());
        line("WS_MAX_AGE_SECS", self.ws_max_age.as_secs().to_string());
        let n = self.symbols.len() * self.streams.len();
        line("connections", format!("{} for {n} streams", n.div_ceil(self.max_streams_per_connection)));
        out
    }
}

/// All configuration problems found in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem{}):", self.0.len(), if self.0.len() == 1 { "" } else { "s" })?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Settings as given, before validation: variable name -> value. Unset variables are absent.
#[derive(Clone, Default)]
pub struct RawConfig {
    values: HashMap<&'static str, String>,
    /// `--kafka-prop k=v` flags, added to whatever `KAFKA_PROPS` holds.
    pub extra_kafka_props: Vec<String>,
}

/// Variables whose raw text may hold a secret: never printed, not even malformed.
const SECRET_VARS: &[&str] = &["KAFKA_PASSWORD", "KAFKA_PROPS"];

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&&str> = self.values.keys().collect();
        names.sort();
        let mut m = f.debug_map();
        for n in names {
            let v = &self.values[*n];
            m.entry(n, &if SECRET_VARS.contains(n) && !v.is_empty() { secret::MASK } else { v.as_str() });
        }
        m.entry(&"--kafka-prop", &vec![secret::MASK; self.extra_kafka_props.len()]);
        m.finish()
    }
}

impl RawConfig {
    /// Builds from any `name -> value` lookup (the process environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> RawConfig {
        let mut values = HashMap::new();
        for (name, _) in VARS {
            if let Some(v) = lookup(name) {
                values.insert(*name, v);
            }
        }
        RawConfig { values, extra_kafka_props: Vec::new() }
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> RawConfig {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        RawConfig::from_lookup(|k| map.get(k).cloned())
    }

    /// Sets a variable (a flag given on the command line overrides the environment).
    pub fn set(&mut self, name: &str, value: String) {
        if let Some((n, _)) = VARS.iter().find(|(n, _)| *n == name) {
            self.values.insert(n, value);
        }
    }

    fn get(&self, name: &str) -> &str {
        match self.values.get(name) {
            Some(v) => v.as_str(),
            None => VARS.iter().find(|(n, _)| *n == name).map(|(_, d)| *d).unwrap_or(""),
        }
    }

    /// Set and non-empty.
    fn get_opt(&self, name: &str) -> Option<&str> {
        let v = self.get(name).trim();
        (!v.is_empty()).then_some(v)
    }

    /// Validates everything, collecting every problem before failing; the ring is checked
    /// against this process's cgroup memory limit, if any.
    pub fn validate(&self) -> Result<Config, ConfigErrors> {
        self.validate_with_memory_limit(memory::cgroup_memory_limit())
    }

    /// [`RawConfig::validate`] with the memory limit given (tests; `None`: no limit).
    pub fn validate_with_memory_limit(&self, memory_limit: Option<u64>) -> Result<Config, ConfigErrors> {
        let mut errs: Vec<String> = Vec::new();

        let symbols = parse_symbols(self.get("SYMBOLS"), &mut errs);
        let streams = parse_streams(self.get("STREAMS"), &mut errs);

        let kafka_broker = self.get("KAFKA_BROKER").trim().to_string();
        if kafka_broker.is_empty() {
            errs.push("KAFKA_BROKER: must not be empty (host:port[,host:port...])".into());
        } else {
            for b in kafka_broker.split(',') {
                let b = b.trim();
                let ok =
                    b.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !ok {
                    errs.push(format!("KAFKA_BROKER: `{b}` is not host:port"));
                }
            }
        }

        let default_topic = self.get("KAFKA_TOPIC").trim().to_string();
        check_topic("KAFKA_TOPIC", &default_topic, &mut errs);
        let mut topics: [String; RecordType::COUNT] = Default::default();
        for t in RecordType::ALL {
            let var = topic_var(t);
            topics[t as usize] = match self.get_opt(var) {
                Some(v) => {
                    check_topic(var, v, &mut errs);
                    v.to_string()
                }
                None => default_topic.clone(),
            };
        }

        let kafka_username = self.get_opt("KAFKA_USERNAME").map(str::to_string);
        let mut kafka_password = Secret::new(self.get("KAFKA_PASSWORD").to_string());
        let mut password_file_failed = false;
        if let Some(path) = self.get_opt("KAFKA_PASSWORD_FILE") {
            if !kafka_password.is_empty() {
                errs.push("KAFKA_PASSWORD and KAFKA_PASSWORD_FILE are both set; set only one".into());
            }
            match read_password_file(path, &mut errs) {
                Some(pw) => kafka_password = pw,
                None => password_file_failed = true,
            }
        }
        // An unreadable file is already reported; "no password" would only repeat it.
        let unpaired = kafka_username.is_some() == kafka_password.is_empty();
        if unpaired && !(password_file_failed && kafka_username.is_some()) {
            errs.push("KAFKA_USERNAME and KAFKA_PASSWORD (or KAFKA_PASSWORD_FILE) must be set together".into());
        }
        let kafka_security_protocol = match self.get_opt("KAFKA_SECURITY_PROTOCOL") {
            Some(p) => {
                let up = p.to_ascii_uppercase();
                if !["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(&up.as_str()) {
                    errs.push(format!(
                        "KAFKA_SECURITY_PROTOCOL: `{p}` is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                    ));
                }
                Some(up)
            }
            // Event Hubs (and any managed Kafka with passwords) needs TLS: never send a password in clear by default.
            None if kafka_username.is_some() => Some("SASL_SSL".into()),
            None => None,
        };
        let kafka_sasl_mechanism = match self.get("KAFKA_SASL_MECHANISM").trim().to_ascii_uppercase().as_str() {
            "PLAIN" => SaslMechanism::Plain,
            "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
            "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
            other => {
                errs.push(format!("KAFKA_SASL_MECHANISM: `{other}` is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"));
                SaslMechanism::Plain
            }
        };

        let kafka_props = kafka_props::parse(self.get("KAFKA_PROPS"), &self.extra_kafka_props, &mut errs);

        let prom_port = parse_num::<u16>("PROM_PORT", self.get("PROM_PORT"), &mut errs).unwrap_or(8000);
        let metrics_bind = self.get("METRICS_BIND").trim().to_string();
        if metrics_bind.parse::<std::net::IpAddr>().is_err() {
            errs.push(format!("METRICS_BIND: `{metrics_bind}` is not an IP address"));
        }

        let ws = Endpoint::parse(self.get("BINANCE_WS_URL").trim(), ("ws", "wss"))
            .map_err(|e| errs.push(format!("BINANCE_WS_URL: {e}")))
            .unwrap_or_else(|_| dummy_endpoint());
        let rest = Endpoint::parse(self.get("BINANCE_REST_URL").trim(), ("http", "https"))
            .map_err(|e| errs.push(format!("BINANCE_REST_URL: {e}")))
            .unwrap_or_else(|_| dummy_endpoint());

        let tls_ca_file = self.get_opt("TLS_CA_FILE").map(PathBuf::from);
        if let Some(p) = &tls_ca_file {
            check_ca_file(p, &mut errs);
        }

        let pin_core = parse_core("PIN_CORE", self.get("PIN_CORE"), &mut errs);
        let producer_core = parse_core("PRODUCER_CORE", self.get("PRODUCER_CORE"), &mut errs);
        if let (CorePin::Core(a), CorePin::Core(b)) = (pin_core, producer_core) {
            if a == b {
                errs.push(format!("PIN_CORE and PRODUCER_CORE are both {a}: the event loop needs a core of its own"));
            }
        }
        let loop_mode = match self.get("LOOP_MODE").trim().to_ascii_lowercase().as_str() {
            "blocking" => LoopMode::Blocking,
            "busy" | "busy-poll" | "busypoll" => LoopMode::BusyPoll,
            other => {
                errs.push(format!("LOOP_MODE: `{other}` is not `blocking` or `busy`"));
                LoopMode::Blocking
            }
        };
        let ring_bytes = parse_num::<usize>("RING_BYTES", self.get("RING_BYTES"), &mut errs).unwrap_or(1 << 24);
        memory::check_ring(ring_bytes, memory_limit, &mut errs);
        let max_streams_per_connection =
            parse_num::<usize>("MAX_STREAMS_PER_CONNECTION", self.get("MAX_STREAMS_PER_CONNECTION"), &mut errs)
                .unwrap_or(BINANCE_MAX_STREAMS_PER_CONNECTION);
        if !(1..=BINANCE_MAX_STREAMS_PER_CONNECTION).contains(&max_streams_per_connection) {
            errs.push(format!(
                "MAX_STREAMS_PER_CONNECTION: {max_streams_per_connection} is outside 1..={BINANCE_MAX_STREAMS_PER_CONNECTION} (Binance's limit)"
            ));
        }
        let sink = match self.get("SINK").trim().to_ascii_lowercase().as_str() {
            "kafka" => SinkKind::Kafka,
            "stdout" => SinkKind::Stdout,
            "null" => SinkKind::Null,
            other => {
                errs.push(format!("SINK: `{other}` is not kafka, stdout or null"));
                SinkKind::Kafka
            }
        };
        let log_format = match self.get("LOG_FORMAT").trim().to_ascii_lowercase().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                errs.push(format!("LOG_FORMAT: `{other}` is not text or json"));
                LogFormat::Text
            }
        };
        let shutdown_ms =
            parse_num::<u64>("SHUTDOWN_TIMEOUT_MS", self.get("SHUTDOWN_TIMEOUT_MS"), &mut errs).unwrap_or(10_000);
        // Deadlines are `now + this`: an absurd value would overflow an Instant, and no orchestrator
        // waits longer than minutes for a pod to stop.
        if shutdown_ms > MAX_SHUTDOWN_TIMEOUT_MS {
            errs.push(format!("SHUTDOWN_TIMEOUT_MS: {shutdown_ms} is outside 0..={MAX_SHUTDOWN_TIMEOUT_MS}"));
        }
        let shutdown_timeout = Duration::from_millis(shutdown_ms.min(MAX_SHUTDOWN_TIMEOUT_MS));

        let backfill = parse_switch("BACKFILL", self.get("BACKFILL"), &mut errs);
        let backfill_max_ids =
            parse_num::<i64>("BACKFILL_MAX_IDS", self.get("BACKFILL_MAX_IDS"), &mut errs).unwrap_or(1_000_000);
        if !(1..=100_000_000).contains(&backfill_max_ids) {
            errs.push(format!("BACKFILL_MAX_IDS: {backfill_max_ids} is outside 1..=100000000"));
        }
        let recover_from_kafka = parse_switch("RECOVER_FROM_KAFKA", self.get("RECOVER_FROM_KAFKA"), &mut errs);
        let stale_ms = parse_num::<u64>("WS_STALE_MS", self.get("WS_STALE_MS"), &mut errs).unwrap_or(45_000);
        // Binance pings every 20 s: a shorter limit would replace healthy quiet connections.
        if !(1_000..=3_600_000).contains(&stale_ms) {
            errs.push(format!("WS_STALE_MS: {stale_ms} is outside 1000..=3600000"));
        }
        let max_age = parse_num::<u64>("WS_MAX_AGE_SECS", self.get("WS_MAX_AGE_SECS"), &mut errs).unwrap_or(82_800);
        if !(1..=86_000).contains(&max_age) {
            errs.push(format!("WS_MAX_AGE_SECS: {max_age} is outside 1..=86000 (Binance cuts at 86400)"));
        }

        if !errs.is_empty() {
            return Err(ConfigErrors(errs));
        }
        Ok(Config {
            symbols,
            streams,
            kafka_broker,
            topics,
            kafka_username,
            kafka_password,
            kafka_security_protocol,
            kafka_sasl_mechanism,
            kafka_props,
            prom_port,
            metrics_bind,
            ws,
            rest,
            tls_ca_file,
            pin_core,
            producer_core,
            loop_mode,
            ring_bytes,
            max_streams_per_connection,
            sink,
            log_format,
            shutdown_timeout,
            backfill,
            backfill_max_ids,
            recover_from_kafka,
            ws_stale_after: Duration::from_millis(stale_ms),
            ws_max_age: Duration::from_secs(max_age),
        })
    }
}

fn dummy_endpoint() -> Endpoint {
    Endpoint { tls: false, host: String::new(), port: 0, path: String::new() }
}

/// The environment variable that overrides `KAFKA_TOPIC` for records of type `t`.
fn topic_var(t: RecordType) -> &'static str {
    match t {
        RecordType::Trade => "KAFKA_TOPIC_TRADE",
        RecordType::AggTrade => "KAFKA_TOPIC_AGG_TRADE",
        RecordType::Kline => "KAFKA_TOPIC_KLINE",
        RecordType::BookTicker => "KAFKA_TOPIC_BOOK_TICKER",
        RecordType::DepthUpdate => "KAFKA_TOPIC_DEPTH_UPDATE",
    }
}
