//! Command-line flags. Every environment variable has a flag of the same meaning; a flag wins
//! over its variable. Values are taken as plain strings here and validated together by
//! [`RawConfig::validate`], so that `--help` stays the one place documenting both.
// The doc comments on the flags below are `--help` text, which clap prints verbatim: written for a
// terminal (`[default: ...]`, `kline_<interval>`, bare URLs), not as rustdoc Markdown, where escaping
// them would put backslashes into `--help`.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags, rustdoc::bare_urls)]

use clap::Parser;

use crate::config::RawConfig;

pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("MARKETFLOW_GIT_COMMIT"), ")");

#[derive(Parser, Default)]
#[command(
    name = "marketflow-ingestor",
    version = LONG_VERSION,
    about = "Streams Binance market data over WebSocket, normalizes it and publishes it to Kafka.",
    after_help = "Every option can also be set by the environment variable shown. A bad configuration \
                  lists every problem and exits with code 64. Secrets are never printed."
)]
pub struct Cli {
    /// Validate and print the effective configuration (secrets masked), then exit without connecting.
    #[arg(long)]
    pub check_config: bool,

    /// Symbols to ingest, comma-separated; letters and digits of any script, `_`, `-`, `.`, at most 50
    /// characters each (Binance's grammar) [default: btcusdt,ethusdt,solusdt]
    #[arg(long, env = "SYMBOLS", value_name = "LIST")]
    pub symbols: Option<String>,
    /// Stream kinds: trade, aggTrade, kline_<interval>, bookTicker, depth, depth@100ms [default: trade]
    #[arg(long, env = "STREAMS", value_name = "LIST")]
    pub streams: Option<String>,
    /// Kafka bootstrap servers, host:port[,host:port] [default: localhost:9092]
    #[arg(long, env = "KAFKA_BROKER", value_name = "HOSTS")]
    pub kafka_broker: Option<String>,
    /// Default topic for every record type [default: ohlcv_raw]
    #[arg(long, env = "KAFKA_TOPIC", value_name = "TOPIC")]
    pub kafka_topic: Option<String>,
    /// Topic for trade records (unset: KAFKA_TOPIC)
    #[arg(long, env = "KAFKA_TOPIC_TRADE", value_name = "TOPIC")]
    pub kafka_topic_trade: Option<String>,
    /// Topic for agg_trade records (unset: KAFKA_TOPIC)
    #[arg(long, env = "KAFKA_TOPIC_AGG_TRADE", value_name = "TOPIC")]
    pub kafka_topic_agg_trade: Option<String>,
    /// Topic for kline records (unset: KAFKA_TOPIC)
    #[arg(long, env = "KAFKA_TOPIC_KLINE", value_name = "TOPIC")]
    pub kafka_topic_kline: Option<String>,
    /// Topic for book_ticker records (unset: KAFKA_TOPIC)
    #[arg(long, env = "KAFKA_TOPIC_BOOK_TICKER", value_name = "TOPIC")]
    pub kafka_topic_book_ticker: Option<String>,
    /// Topic for depth_update records (unset: KAFKA_TOPIC)
    #[arg(long, env = "KAFKA_TOPIC_DEPTH_UPDATE", value_name = "TOPIC")]
    pub kafka_topic_depth_update: Option<String>,
    /// SASL username (Azure Event Hubs: $ConnectionString); turns on SASL_SSL
    #[arg(long, env = "KAFKA_USERNAME", value_name = "USER")]
    pub kafka_username: Option<String>,
    /// SASL password. Prefer KAFKA_PASSWORD_FILE: a flag is visible in the process list
    #[arg(long, env = "KAFKA_PASSWORD", value_name = "SECRET", hide_env_values = true)]
    pub kafka_password: Option<String>,
    /// File holding the SASL password (as the Key Vault CSI driver mounts it): a regular file, at most 64 KiB
    #[arg(long, env = "KAFKA_PASSWORD_FILE", value_name = "PATH")]
    pub kafka_password_file: Option<String>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL [default: SASL_SSL with credentials, else PLAINTEXT]
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", value_name = "PROTO")]
    pub kafka_security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 [default: PLAIN]
    #[arg(long, env = "KAFKA_SASL_MECHANISM", value_name = "MECH")]
    pub kafka_sasl_mechanism: Option<String>,
    /// Any librdkafka properties, `k=v;k=v` (applied last, so they win); each checked by librdkafka at start-up
    #[arg(long, env = "KAFKA_PROPS", value_name = "PROPS", hide_env_values = true)]
    pub kafka_props: Option<String>,
    /// One librdkafka property `k=v`; repeatable, added to KAFKA_PROPS
    #[arg(long = "kafka-prop", value_name = "K=V")]
    pub kafka_prop: Vec<String>,
    /// Port of /metrics, /healthz and /readyz [default: 8000]
    #[arg(long, env = "PROM_PORT", value_name = "PORT")]
    pub prom_port: Option<String>,
    /// Address the metrics server binds [default: 0.0.0.0]
    #[arg(long, env = "METRICS_BIND", value_name = "IP")]
    pub metrics_bind: Option<String>,
    /// Binance WebSocket base URL, no query string [default: wss://stream.binance.com:9443]
    #[arg(long, env = "BINANCE_WS_URL", value_name = "URL")]
    pub binance_ws_url: Option<String>,
    /// Binance REST base URL [default: https://api.binance.com]
    #[arg(long, env = "BINANCE_REST_URL", value_name = "URL")]
    pub binance_rest_url: Option<String>,
    /// Extra CA certificate (PEM, at most 1 MiB) to trust besides the web PKI roots; verification stays on
    #[arg(long, env = "TLS_CA_FILE", value_name = "PATH")]
    pub tls_ca_file: Option<String>,
    /// Core for the event loop: a CPU id from the allowed set, `auto` or `none` [default: auto]
    #[arg(long, env = "PIN_CORE", value_name = "CORE")]
    pub pin_core: Option<String>,
    /// Core for the producer thread: a CPU id, `auto` or `none` [default: auto]
    #[arg(long, env = "PRODUCER_CORE", value_name = "CORE")]
    pub producer_core: Option<String>,
    /// `blocking` (epoll wait) or `busy` (spin on a dedicated core) [default: blocking]
    #[arg(long, env = "LOOP_MODE", value_name = "MODE")]
    pub loop_mode: Option<String>,
    /// Ring capacity between event loop and producer, in bytes: 64 KiB to 1 GiB and at most 1/4 of the
    /// cgroup memory limit [default: 16777216]
    #[arg(long, env = "RING_BYTES", value_name = "BYTES")]
    pub ring_bytes: Option<String>,
    /// Streams per WebSocket connection, at most Binance's 1024 [default: 1024]
    #[arg(long, env = "MAX_STREAMS_PER_CONNECTION", value_name = "N")]
    pub max_streams_per_connection: Option<String>,
    /// Where records go: `kafka`, `stdout` (JSON lines) or `null` (count only) [default: kafka]
    #[arg(long, env = "SINK", value_name = "SINK")]
    pub sink: Option<String>,
    /// `text` or `json` [default: text]; the level comes from RUST_LOG (default info)
    #[arg(long, env = "LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Longest wait on shutdown to drain and flush, in ms [default: 10000]
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", value_name = "MS")]
    pub shutdown_timeout_ms: Option<String>,
    /// Fetch missing trades/aggTrades from REST and publish them flagged `backfilled`: on or off [default: on]
    #[arg(long, env = "BACKFILL", value_name = "ON|OFF")]
    pub backfill: Option<String>,
    /// Longest id range one gap may fetch from REST; beyond it a `gap` marker [default: 1000000]
    #[arg(long, env = "BACKFILL_MAX_IDS", value_name = "N")]
    pub backfill_max_ids: Option<String>,
    /// At start, continue from the last trade id per symbol found in Kafka: on or off [default: on]
    #[arg(long, env = "RECOVER_FROM_KAFKA", value_name = "ON|OFF")]
    pub recover_from_kafka: Option<String>,
    /// Replace a connection that saw neither data nor a ping for this long, ms [default: 45000]
    #[arg(long, env = "WS_STALE_MS", value_name = "MS")]
    pub ws_stale_ms: Option<String>,
    /// Rotate connections (make-before-break) at this age, before Binance's 24 h cut, s [default: 82800]
    #[arg(long, env = "WS_MAX_AGE_SECS", value_name = "SECS")]
    pub ws_max_age_secs: Option<String>,
}

/// Masked through [`RawConfig`]'s `Debug`: the password and librdkafka properties are never shown.
impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli").field("check_config", &self.check_config).field("settings", &self.to_raw()).finish()
    }
}

impl Cli {
    /// The raw settings, flags (or their variables, which clap already consulted) by variable name.
    pub fn to_raw(&self) -> RawConfig {
        let pairs: [(&str, &Option<String>); 33] = [
            ("SYMBOLS", &self.symbols),
            ("STREAMS", &self.streams),
            ("KAFKA_BROKER", &self.kafka_broker),
            ("KAFKA_TOPIC", &self.kafka_topic),
            ("KAFKA_TOPIC_TRADE", &self.kafka_topic_trade),
            ("KAFKA_TOPIC_AGG_TRADE", &self.kafka_topic_agg_trade),
            ("KAFKA_TOPIC_KLINE", &self.kafka_topic_kline),
            ("KAFKA_TOPIC_BOOK_TICKER", &self.kafka_topic_book_ticker),
            ("KAFKA_TOPIC_DEPTH_UPDATE", &self.kafka_topic_depth_update),
            ("KAFKA_USERNAME", &self.kafka_username),
            ("KAFKA_PASSWORD", &self.kafka_password),
            ("KAFKA_PASSWORD_FILE", &self.kafka_password_file),
            ("KAFKA_SECURITY_PROTOCOL", &self.kafka_security_protocol),
            ("KAFKA_SASL_MECHANISM", &self.kafka_sasl_mechanism),
            ("KAFKA_PROPS", &self.kafka_props),
            ("PROM_PORT", &self.prom_port),
            ("METRICS_BIND", &self.metrics_bind),
            ("BINANCE_WS_URL", &self.binance_ws_url),
            ("BINANCE_REST_URL", &self.binance_rest_url),
            ("TLS_CA_FILE", &self.tls_ca_file),
            ("PIN_CORE", &self.pin_core),
            ("PRODUCER_CORE", &self.producer_core),
            ("LOOP_MODE", &self.loop_mode),
            ("RING_BYTES", &self.ring_bytes),
            ("MAX_STREAMS_PER_CONNECTION", &self.max_streams_per_connection),
            ("SINK", &self.sink),
            ("LOG_FORMAT", &self.log_format),
            ("SHUTDOWN_TIMEOUT_MS", &self.shutdown_timeout_ms),
            ("BACKFILL", &self.backfill),
            ("BACKFILL_MAX_IDS", &self.backfill_max_ids),
            ("RECOVER_FROM_KAFKA", &self.recover_from_kafka),
            ("WS_STALE_MS", &self.ws_stale_ms),
            ("WS_MAX_AGE_SECS", &self.ws_max_age_secs),
        ];
        let mut raw = RawConfig::from_lookup(|_| None);
        for (name, v) in pairs {
            if let Some(v) = v {
                raw.set(name, v.clone());
            }
        }
        raw.extra_kafka_props = self.kafka_prop.clone();
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VARS;

    #[test]
    fn every_variable_has_a_flag() {
        let help = {
            use clap::CommandFactory;
            Cli::command().render_long_help().to_string()
        };
        for (var, _) in VARS {
            assert!(help.contains(&format!("[env: {var}")), "{var} missing from --help");
        }
    }

    #[test]
    fn flags_reach_the_validated_config() {
        let cli = Cli::try_parse_from([
            "x",
            "--symbols=ethusdt",
            "--streams=aggTrade",
            "--kafka-prop",
            "linger.ms=2",
            "--sink=stdout",
        ])
        .unwrap();
        let c = cli.to_raw().validate().unwrap();
        assert_eq!(c.symbols, ["ethusdt"]);
        assert_eq!(*c.kafka_props, [("linger.ms".to_string(), "2".to_string())]);
        assert_eq!(c.sink, crate::config::SinkKind::Stdout);
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let cli = Cli::try_parse_from([
            "x",
            "--kafka-password=hunter2",
            "--kafka-props=sasl.password=hunter2",
            "--kafka-prop",
            "ssl.key.password=hunter2",
            "--symbols=btcusdt",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("btcusdt") && shown.contains("KAFKA_PASSWORD"), "{shown}");
    }
}
