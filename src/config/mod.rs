//! Configuration: every setting comes from an environment variable (the names the original design
//! uses) or the command-line flag of the same meaning, and is validated in one pass so that an
//! operator sees *every* problem at once instead of fixing them one restart at a time.
//!
//! Each variable is defined once, in [`VARS`] (`vars.rs`): name, flag, default, documentation,
//! parser, and how `--check-config` shows it. `--help`, validation, `--check-config` and README's
//! configuration table are generated from it.
//!
//! Parsing has two stages, as in ripgrep: [`RawConfig`] holds the strings exactly as given (from
//! clap, which reads the flags and the environment, or from a plain map in tests, so that no test
//! needs to set a variable), and [`RawConfig::validate`] turns them into the typed [`Config`] or a
//! [`ConfigErrors`] list.
//!
//! Submodules: `vars` (the table), `build` (validation across the table), `parse` (single
//! values), [`secret`] (the masking rule), `kafka_props` (librdkafka properties, checked by
//! librdkafka), [`endpoint`] (Binance URLs), [`memory`] (the ring's ceiling), `docs` (help texts
//! and README's table), `transport` (`TRANSPORT` and SBE's key and URL), `usdm` (the USD-M market's variables and its lane's configuration).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::binance::stream::StreamKind;
use crate::record::RecordType;
pub use crate::time_unit::TimeUnit;

mod build;
mod coalesce;
mod docs;
pub mod endpoint;
mod guarantees;
mod kafka_props;
pub mod memory;
mod metrics;
mod parse;
mod producer;
pub mod secret;
#[cfg(test)]
mod tests;
mod transport;
mod usdm;
mod var;
mod vars;

pub use coalesce::MAX_LOOP_COALESCE_US;
pub use endpoint::Endpoint;
pub use parse::MAX_PASSWORD_FILE_BYTES;
pub use producer::{MAX_KAFKA_BATCH_WINDOW_US, MAX_KAFKA_STALL_SECS};
pub use secret::{is_secret_key, mask_prop, masked_pairs, scrub, KafkaProps, Secret};
pub use transport::Transport;
pub use usdm::UsdmConfig;
pub use vars::{Unset, Var, VARS};

/// Exit code for a bad configuration (`EX_USAGE` from sysexits.h), as linkerd and most daemons use.
pub const EXIT_CONFIG: u8 = 64;

/// Longest drain-and-flush on SIGTERM (10 minutes).
pub const MAX_SHUTDOWN_TIMEOUT_MS: u64 = 600_000;

/// Longest `ORDERING_MAX_WAIT_MS` (a minute).
pub const MAX_ORDERING_WAIT_MS: u64 = 60_000;

/// Binance's documented ceiling of streams on one connection.
pub const BINANCE_MAX_STREAMS_PER_CONNECTION: usize = crate::binance::venue::MAX_STREAMS_PER_CONNECTION;

/// Where normalized records go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Kafka,
    /// JSON lines on stdout: lets anyone try the ingester against live Binance with nothing else.
    Stdout,
    /// Counts and discards; for load tests that must measure the ingester, not the broker.
    Null,
}

/// How records of a dense sequence (trade, aggTrade) are ordered in Kafka (`ORDERING`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderingMode {
    /// Live records go at once; backfilled ones land after the live records that follow their gap.
    Default,
    /// Ids strictly increasing per symbol: live records wait behind an open gap, boundedly.
    Strict,
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
    /// The name librdkafka (and `KAFKA_SASL_MECHANISM`) uses.
    pub fn as_librdkafka(self) -> &'static str {
        var::name_of(var::SASL_MECHANISMS, self)
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
    /// `KAFKA_BATCH_WINDOW_US`: how long the producer thread lets flowing records gather in the
    /// ring before a hand-over (`Sink::batch_window`); zero hands them over as they come.
    pub kafka_batch_window: Duration,
    /// `KAFKA_STALL_SECS`: how long records may wait in flight with no acknowledgement before
    /// readiness goes down (`sink::StallWatch`).
    pub kafka_stall: Duration,
    pub prom_port: u16,
    pub metrics_bind: String,
    /// Most symbols a lane exports every per-symbol series for (`crate::metrics::Detail`).
    pub metrics_symbol_detail_max: usize,
    pub ws: Endpoint,
    pub rest: Endpoint,
    /// The market-data-only REST host (`data-api.binance.vision`) the backfill turns to while
    /// the main one fails; `None`: off.
    pub rest_fallback: Option<Endpoint>,
    /// The unit of exchange times, asked of the venue and written in record field names.
    pub time_unit: TimeUnit,
    /// An extra CA to trust besides the web PKI roots (the simulator's self-signed cert in tests).
    pub tls_ca_file: Option<PathBuf>,
    pub pin_core: CorePin,
    pub producer_core: CorePin,
    pub loop_mode: LoopMode,
    /// `LOOP_COALESCE_US`: in blocking mode, how long messages may gather after a wake-up that
    /// read data (`Duration::ZERO`: off).
    pub loop_coalesce: Duration,
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
    /// `ORDERING`: strict holds live records behind an open gap (see `sink::ordering`).
    pub ordering: OrderingMode,
    /// Longest hold behind one gap before it is named and the held records go on.
    pub ordering_max_wait: Duration,
    /// A connection with neither data nor a ping for this long is replaced.
    pub ws_stale_after: Duration,
    /// Connections are rotated (make-before-break) at this age, before Binance's 24 h cut.
    pub ws_max_age: Duration,
    /// How often each order book is published from the process (`None`: only at start and
    /// after a resync).
    pub depth_snapshot_interval: Option<Duration>,
    /// Levels a side of every order-book snapshot, REST's and ours.
    pub depth_levels: usize,
    /// One stream's silence is stale past a bound learned from its cadence, within these.
    pub stream_stale_min: Duration,
    pub stream_stale_max: Duration,
    /// `TRANSPORT`: JSON text streams or Binance's SBE binary streams (spot only).
    pub transport: Transport,
    /// `SBE_API_KEY_FILE`'s key (empty: none), sent as `X-MBX-APIKEY` on SBE upgrades.
    pub sbe_api_key: Secret,
    /// Where it was read from (shown by `--check-config`; the key never is).
    pub sbe_api_key_file: Option<PathBuf>,
    /// `BINANCE_SBE_URL`: where the SBE streams are.
    pub sbe_ws: Endpoint,
    /// `SBE_MAX_FAILURES`: SBE attempts in a row that fail before the lane streams JSON.
    pub sbe_max_failures: u32,
    /// `SBE_RETRY_SECS`: how long a lane that fell back to JSON waits before trying SBE again
    /// (`None`: never).
    pub sbe_retry_after: Option<Duration>,
    /// `SBE_SCALES_REFRESH_SECS`: how often `exchangeInfo`'s decimal scales are fetched again.
    pub sbe_scales_refresh: Duration,
    /// The USD-M futures market's own values (`USDM_*`); its lane is [`Config::usdm_lane`].
    pub usdm: UsdmConfig,
}

impl Config {
    /// Whether a depth stream is configured: the order books are kept.
    pub fn has_depth(&self) -> bool {
        self.streams.iter().any(|k| k.record_type() == RecordType::DepthUpdate)
    }

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

    /// Human-readable effective configuration with secrets masked, for `--check-config`: one
    /// line per variable, in [`VARS`]' order, then the number of connections.
    pub fn render(&self) -> String {
        build::render(self)
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

/// Secret variables' values masked, and every `--kafka-prop` (its value may be a secret).
impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for var in VARS {
            if let Some(v) = self.values.get(var.env) {
                m.entry(&var.env, &if var.secret && !v.is_empty() { secret::MASK } else { v.as_str() });
            }
        }
        m.entry(&"--kafka-prop", &vec![secret::MASK; self.extra_kafka_props.len()]);
        m.finish()
    }
}

impl RawConfig {
    /// Builds from any `name -> value` lookup: clap's matches in the binary (a flag, or the
    /// variable clap read for it), a map in tests ([`RawConfig::from_pairs`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> RawConfig {
        let mut values = HashMap::new();
        for var in VARS {
            if let Some(v) = lookup(var.env) {
                values.insert(var.env, v);
            }
        }
        RawConfig { values, extra_kafka_props: Vec::new() }
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> RawConfig {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        RawConfig::from_lookup(|k| map.get(k).cloned())
    }

    /// The value given, else the default's text.
    fn get(&self, var: &Var) -> &str {
        self.values.get(var.env).map_or(var.default_text(), String::as_str)
    }

    /// Validates everything, collecting every problem before failing; the ring is checked
    /// against this process's cgroup memory limit, if any.
    pub fn validate(&self) -> Result<Config, ConfigErrors> {
        self.validate_with_memory_limit(memory::cgroup_memory_limit())
    }

    /// [`RawConfig::validate`] with the memory limit given (tests; `None`: no limit).
    pub fn validate_with_memory_limit(&self, memory_limit: Option<u64>) -> Result<Config, ConfigErrors> {
        build::validate(self, memory_limit)
    }
}
