//! Configuration: every setting comes from an environment variable (the names the original design
//! uses) or the command-line flag of the same meaning, and is validated in one pass so that an
//! operator sees *every* problem at once instead of fixing them one restart at a time.
//!
//! Parsing has two stages, as in ripgrep: [`RawConfig`] holds the strings exactly as given (from
//! clap, or from a plain map in tests, so no test ever touches the process environment), and
//! [`RawConfig::validate`] turns them into the typed [`Config`] or a [`ConfigErrors`] list.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::binance::stream::{RecordType, StreamKind};

/// Exit code for a bad configuration (`EX_USAGE` from sysexits.h), as linkerd and most daemons use.
pub const EXIT_CONFIG: u8 = 64;

/// Binance's documented ceiling of streams on one connection.
pub const BINANCE_MAX_STREAMS_PER_CONNECTION: usize = 1024;

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

/// A value that must never reach a log line, a metric or an error message.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The only way to read the secret; grep for `expose` to audit every use.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

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

/// A parsed `ws://` / `wss://` / `http://` / `https://` endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash (usually empty).
    pub path: String,
}

impl Endpoint {
    /// Parses `scheme://host[:port][/path]`; `schemes` is (plain, tls), e.g. ("ws", "wss").
    pub fn parse(s: &str, schemes: (&str, &str)) -> Result<Endpoint, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("`{s}` has no scheme; expected {}:// or {}://", schemes.0, schemes.1))?;
        let tls = if scheme.eq_ignore_ascii_case(schemes.1) {
            true
        } else if scheme.eq_ignore_ascii_case(schemes.0) {
            false
        } else {
            return Err(format!("scheme `{scheme}` is not {} or {}", schemes.0, schemes.1));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unterminated IPv6 literal")?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("empty host".into());
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| format!("port `{p}` is not a number 1-65535"))?,
            None if tls => 443,
            None => 80,
        };
        if port == 0 {
            return Err("port 0 is not a valid remote port".into());
        }
        Ok(Endpoint { tls, host: host.to_string(), port, path: path.to_string() })
    }

    /// `host:port`, bracketing IPv6 literals.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
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
    /// librdkafka properties passed through verbatim; applied last, so they win.
    pub kafka_props: Vec<(String, String)>,
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
        for (k, v) in &self.kafka_props {
            line(&format!("kafka[{k}]"), mask_prop(k, v));
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

/// Values of librdkafka properties that may carry secrets are masked when printed.
pub fn mask_prop(key: &str, value: &str) -> String {
    let k = key.to_ascii_lowercase();
    if k.contains("password") || k.contains("secret") || k.contains("sasl.oauthbearer.config") || k.ends_with(".pem") {
        "***".into()
    } else {
        value.to_string()
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
#[derive(Clone, Debug, Default)]
pub struct RawConfig {
    values: HashMap<&'static str, String>,
    /// `--kafka-prop k=v` flags, added to whatever `KAFKA_PROPS` holds.
    pub extra_kafka_props: Vec<String>,
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

    /// Validates everything, collecting every problem before failing.
    pub fn validate(&self) -> Result<Config, ConfigErrors> {
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
            let var = t.topic_var();
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
        if let Some(path) = self.get_opt("KAFKA_PASSWORD_FILE") {
            if !kafka_password.is_empty() {
                errs.push("KAFKA_PASSWORD and KAFKA_PASSWORD_FILE are both set; set only one".into());
            }
            match std::fs::read_to_string(path) {
                // The CSI driver writes the secret as-is; a trailing newline from `echo` is never part of it.
                Ok(s) => kafka_password = Secret::new(s.trim_end_matches(['\n', '\r']).to_string()),
                // Say which file and why, never what was in it.
                Err(e) => errs.push(format!("KAFKA_PASSWORD_FILE: cannot read `{path}`: {}", e.kind())),
            }
        }
        if kafka_username.is_some() == kafka_password.is_empty() {
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

        let mut kafka_props = Vec::new();
        let listed = self.get("KAFKA_PROPS");
        let items = listed.split([';', '\n']).map(str::to_string).chain(self.extra_kafka_props.iter().cloned());
        for item in items {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            match item.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => kafka_props.push((k.trim().to_string(), v.trim().to_string())),
                _ => errs.push(format!(
                    "KAFKA_PROPS: `{}` is not key=value (separate pairs with `;`)",
                    mask_prop(item, item)
                )),
            }
        }

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
            if !p.is_file() {
                errs.push(format!("TLS_CA_FILE: `{}` is not a readable file", p.display()));
            }
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
        if !(64 * 1024..=(1 << 34)).contains(&ring_bytes) {
            errs.push(format!("RING_BYTES: {ring_bytes} is outside 65536..=17179869184"));
        }
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
        let shutdown_timeout = Duration::from_millis(
            parse_num::<u64>("SHUTDOWN_TIMEOUT_MS", self.get("SHUTDOWN_TIMEOUT_MS"), &mut errs).unwrap_or(10_000),
        );

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

fn parse_num<T: std::str::FromStr>(name: &str, v: &str, errs: &mut Vec<String>) -> Option<T> {
    match v.trim().parse::<T>() {
        Ok(n) => Some(n),
        Err(_) => {
            errs.push(format!("{name}: `{}` is not a valid non-negative integer", v.trim()));
            None
        }
    }
}

fn parse_switch(name: &str, v: &str, errs: &mut Vec<String>) -> bool {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => true,
        "off" | "false" | "0" | "no" => false,
        other => {
            errs.push(format!("{name}: `{other}` is not on or off"));
            true
        }
    }
}

fn parse_core(name: &str, v: &str, errs: &mut Vec<String>) -> CorePin {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => CorePin::Auto,
        "none" | "off" => CorePin::None,
        n => match n.parse::<usize>() {
            Ok(c) => CorePin::Core(c),
            Err(_) => {
                errs.push(format!("{name}: `{n}` is not a CPU id, `auto` or `none`"));
                CorePin::Auto
            }
        },
    }
}

fn check_topic(var: &str, t: &str, errs: &mut Vec<String>) {
    // Kafka's own rule (kafka.common.Topic): 1-249 chars of [a-zA-Z0-9._-].
    let ok = !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !ok {
        errs.push(format!("{var}: `{t}` is not a valid Kafka topic name (1-249 of [a-zA-Z0-9._-])"));
    }
}

fn parse_symbols(v: &str, errs: &mut Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in v.split(',') {
        let s = raw.trim();
        if s.is_empty() {
            continue;
        }
        // Stream names carry symbols in lower case; non-ASCII symbols exist on Binance, so only
        // characters that would break a stream name or a URL are refused.
        let lower = s.to_lowercase();
        if lower.len() > 40 || lower.chars().any(|c| c.is_whitespace() || "/@?&#%\"\\".contains(c) || c.is_control()) {
            errs.push(format!("SYMBOLS: `{s}` is not a valid symbol"));
            continue;
        }
        if out.contains(&lower) {
            errs.push(format!("SYMBOLS: `{s}` is listed twice"));
            continue;
        }
        out.push(lower);
    }
    if out.is_empty() && !errs.iter().any(|e| e.starts_with("SYMBOLS")) {
        errs.push("SYMBOLS: no symbol given (e.g. btcusdt,ethusdt)".into());
    }
    if out.len() > u16::MAX as usize {
        errs.push(format!("SYMBOLS: {} symbols is more than one process supports ({})", out.len(), u16::MAX));
    }
    out
}

fn parse_streams(v: &str, errs: &mut Vec<String>) -> Vec<StreamKind> {
    let mut out = Vec::new();
    for raw in v.split(',') {
        let s = raw.trim();
        if s.is_empty() {
            continue;
        }
        match s.parse::<StreamKind>() {
            Ok(k) if out.contains(&k) => errs.push(format!("STREAMS: `{s}` is listed twice")),
            Ok(k) => out.push(k),
            Err(e) => errs.push(format!("STREAMS: {e}")),
        }
    }
    if out.is_empty() && !errs.iter().any(|e| e.starts_with("STREAMS")) {
        errs.push("STREAMS: no stream kind given (e.g. trade,aggTrade)".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(pairs: &[(&str, &str)]) -> Config {
        RawConfig::from_pairs(pairs).validate().unwrap()
    }

    fn errs(pairs: &[(&str, &str)]) -> Vec<String> {
        RawConfig::from_pairs(pairs).validate().unwrap_err().0
    }

    #[test]
    fn defaults_match_the_original_design() {
        let c = ok(&[]);
        assert_eq!(c.symbols, ["btcusdt", "ethusdt", "solusdt"]);
        assert_eq!(c.streams, [StreamKind::Trade]);
        assert_eq!(c.topics, std::array::from_fn(|_| "ohlcv_raw".to_string()));
        assert_eq!(c.prom_port, 8000);
        assert_eq!(c.ws, Endpoint { tls: true, host: "stream.binance.com".into(), port: 9443, path: "".into() });
        assert_eq!(c.rest.port, 443);
        assert!(c.rest.tls);
        assert_eq!(c.sink, SinkKind::Kafka);
        assert_eq!(c.kafka_security_protocol, None);
        assert_eq!(c.max_streams_per_connection, 1024);
    }

    #[test]
    fn symbols_are_lowercased_trimmed_and_deduplicated() {
        let c = ok(&[("SYMBOLS", " BTCUSDT, ethusdt ,,")]);
        assert_eq!(c.symbols, ["btcusdt", "ethusdt"]);
        assert!(errs(&[("SYMBOLS", "btcusdt,BTCUSDT")])[0].contains("twice"));
    }

    #[test]
    fn per_type_topics_override_the_default() {
        let c =
            ok(&[("KAFKA_TOPIC", "raw"), ("KAFKA_TOPIC_TRADE", "trades_raw"), ("KAFKA_TOPIC_DEPTH_UPDATE", "books")]);
        assert_eq!(c.topics[RecordType::Trade as usize], "trades_raw");
        assert_eq!(c.topics[RecordType::DepthUpdate as usize], "books");
        assert_eq!(c.topics[RecordType::Kline as usize], "raw");
    }

    #[test]
    fn credentials_turn_on_sasl_ssl_and_are_masked() {
        let c = ok(&[
            ("KAFKA_USERNAME", "$ConnectionString"),
            ("KAFKA_PASSWORD", "Endpoint=sb://x;SharedAccessKey=hunter2"),
        ]);
        assert_eq!(c.kafka_security_protocol.as_deref(), Some("SASL_SSL"));
        assert_eq!(c.kafka_sasl_mechanism, SaslMechanism::Plain);
        let shown = format!("{} {:?}", c.render(), c);
        assert!(!shown.contains("hunter2"), "secret leaked: {shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn password_file_is_read_and_trailing_newline_dropped() {
        let dir = std::env::temp_dir().join(format!("mf-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        let c = ok(&[("KAFKA_USERNAME", "u"), ("KAFKA_PASSWORD_FILE", f.to_str().unwrap())]);
        assert_eq!(c.kafka_password.expose(), "s3cret");
        let e = errs(&[("KAFKA_USERNAME", "u"), ("KAFKA_PASSWORD_FILE", "/nonexistent/pw")]);
        assert!(e.iter().any(|e| e.contains("cannot read `/nonexistent/pw`")), "{e:?}");
    }

    #[test]
    fn kafka_props_pass_through_and_mask_secrets() {
        let mut raw = RawConfig::from_pairs(&[("KAFKA_PROPS", "linger.ms=5; compression.type=lz4")]);
        raw.extra_kafka_props.push("ssl.key.password=topsecret".into());
        let c = raw.validate().unwrap();
        assert_eq!(
            c.kafka_props,
            [
                ("linger.ms".to_string(), "5".to_string()),
                ("compression.type".into(), "lz4".into()),
                ("ssl.key.password".into(), "topsecret".into())
            ]
        );
        assert!(!c.render().contains("topsecret"));
    }

    /// Every error path, all at once: the operator sees the whole list in one run.
    #[test]
    fn every_problem_is_reported_together() {
        let cases: &[(&str, &str, &str)] = &[
            ("SYMBOLS", "btc/usdt", "SYMBOLS: `btc/usdt` is not a valid symbol"),
            ("STREAMS", "trade,bogus", "STREAMS: unknown stream kind `bogus`"),
            ("KAFKA_BROKER", "nohostport", "KAFKA_BROKER: `nohostport` is not host:port"),
            ("KAFKA_TOPIC", "bad topic", "KAFKA_TOPIC: `bad topic` is not a valid Kafka topic name"),
            ("KAFKA_TOPIC_KLINE", "a/b", "KAFKA_TOPIC_KLINE: `a/b` is not a valid Kafka topic name"),
            ("KAFKA_USERNAME", "u", "must be set together"),
            ("KAFKA_SECURITY_PROTOCOL", "TLS", "KAFKA_SECURITY_PROTOCOL: `TLS` is not one of"),
            ("KAFKA_SASL_MECHANISM", "GSSAPI", "KAFKA_SASL_MECHANISM: `GSSAPI` is not PLAIN"),
            ("KAFKA_PROPS", "novalue", "KAFKA_PROPS: `novalue` is not key=value"),
            ("PROM_PORT", "70000", "PROM_PORT: `70000` is not a valid"),
            ("METRICS_BIND", "localhost", "METRICS_BIND: `localhost` is not an IP address"),
            ("BINANCE_WS_URL", "http://x", "BINANCE_WS_URL: scheme `http` is not ws or wss"),
            ("BINANCE_REST_URL", "api.binance.com", "BINANCE_REST_URL: `api.binance.com` has no scheme"),
            ("TLS_CA_FILE", "/nonexistent.pem", "TLS_CA_FILE: `/nonexistent.pem` is not a readable file"),
            ("PIN_CORE", "first", "PIN_CORE: `first` is not a CPU id"),
            ("PRODUCER_CORE", "-1", "PRODUCER_CORE: `-1` is not a CPU id"),
            ("LOOP_MODE", "spin", "LOOP_MODE: `spin` is not `blocking` or `busy`"),
            ("RING_BYTES", "10", "RING_BYTES: 10 is outside"),
            ("MAX_STREAMS_PER_CONNECTION", "2000", "MAX_STREAMS_PER_CONNECTION: 2000 is outside"),
            ("SINK", "file", "SINK: `file` is not kafka, stdout or null"),
            ("LOG_FORMAT", "xml", "LOG_FORMAT: `xml` is not text or json"),
            ("SHUTDOWN_TIMEOUT_MS", "soon", "SHUTDOWN_TIMEOUT_MS: `soon` is not a valid"),
            ("BACKFILL", "maybe", "BACKFILL: `maybe` is not on or off"),
            ("BACKFILL_MAX_IDS", "0", "BACKFILL_MAX_IDS: 0 is outside 1..=100000000"),
            ("RECOVER_FROM_KAFKA", "2", "RECOVER_FROM_KAFKA: `2` is not on or off"),
            ("WS_STALE_MS", "10", "WS_STALE_MS: 10 is outside"),
            ("WS_MAX_AGE_SECS", "90000", "WS_MAX_AGE_SECS: 90000 is outside"),
        ];
        let pairs: Vec<(&str, &str)> = cases.iter().map(|(k, v, _)| (*k, *v)).collect();
        let got = errs(&pairs);
        for (var, _, want) in cases {
            assert!(got.iter().any(|g| g.contains(want)), "{var}: expected an error containing {want:?}, got {got:#?}");
        }
        assert_eq!(got.len(), cases.len(), "one error per bad variable: {got:#?}");
    }

    #[test]
    fn empty_lists_and_pin_clash_are_errors() {
        assert!(errs(&[("SYMBOLS", " , ")])[0].contains("no symbol"));
        assert!(errs(&[("STREAMS", "")])[0].contains("no stream kind"));
        assert!(errs(&[("PIN_CORE", "1"), ("PRODUCER_CORE", "1")])[0].contains("core of its own"));
        assert!(errs(&[("KAFKA_PASSWORD", "p")])[0].contains("set together"));
        assert!(errs(&[("KAFKA_BROKER", "")])[0].contains("must not be empty"));
    }

    #[test]
    fn endpoints_parse_ports_paths_and_ipv6() {
        let e = Endpoint::parse("ws://127.0.0.1:9001/", ("ws", "wss")).unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port, e.path.as_str()), (false, "127.0.0.1", 9001, ""));
        let e = Endpoint::parse("wss://[::1]:9443/base", ("ws", "wss")).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str(), e.authority()),
            ("::1", 9443, "/base", "[::1]:9443".into())
        );
        assert!(Endpoint::parse("wss://u:p@host", ("ws", "wss")).is_err());
        assert!(Endpoint::parse("wss://:1", ("ws", "wss")).is_err());
    }

    #[test]
    fn stream_names_cover_every_symbol_and_kind() {
        let c = ok(&[("SYMBOLS", "btcusdt,ethusdt"), ("STREAMS", "trade,depth@100ms,kline_1m")]);
        assert_eq!(
            c.stream_names(),
            [
                "btcusdt@trade",
                "btcusdt@depth@100ms",
                "btcusdt@kline_1m",
                "ethusdt@trade",
                "ethusdt@depth@100ms",
                "ethusdt@kline_1m"
            ]
        );
    }
}
