//! Validation: every variable of [`VARS`] parsed by its own `apply` into the configuration
//! being built, then the checks that span variables, every problem collected before failing.

use std::fmt::{Display, Write as _};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use super::vars::{Var, VARS};
use super::{kafka_props, memory, parse, Config, ConfigErrors, CorePin, Endpoint, KafkaProps, RawConfig, Secret};
use super::{LogFormat, LoopMode, OrderingMode, SaslMechanism, SinkKind, TimeUnit, UsdmConfig};
use crate::record::RecordType;

/// The problems found so far; [`Problems::push`] names the variable being parsed.
pub(super) struct Problems {
    var: &'static str,
    pub(super) list: Vec<String>,
}

impl Problems {
    /// `VAR: msg`, for the variable being parsed.
    pub(super) fn push(&mut self, msg: impl Display) {
        self.list.push(format!("{}: {msg}", self.var));
    }
}

/// The configuration under construction, and what checks across variables need.
pub(super) struct Build<'a> {
    /// Each field is set by its variable's `apply`; until then (and when the value is bad) it
    /// holds a placeholder that [`Build::finish`] never returns, since a bad value is a problem.
    pub(super) cfg: Config,
    pub(super) errs: Problems,
    pub(super) memory_limit: Option<u64>,
    extra_kafka_props: &'a [String],
    default_topic: String,
    /// `USDM_KAFKA_TOPIC` as given (empty: derived from `KAFKA_TOPIC`).
    usdm_default_topic: String,
    /// `KAFKA_PASSWORD_FILE`: unset (`None`), unreadable (`Some(None)`) or its password.
    password_from_file: Option<Option<Secret>>,
}

impl<'a> Build<'a> {
    /// Placeholders differ from every default, so that a test can tell a default that never
    /// reached its field.
    pub(super) fn new(memory_limit: Option<u64>, extra_kafka_props: &'a [String]) -> Build<'a> {
        let nowhere = Endpoint { tls: false, host: String::new(), port: 0, path: String::new() };
        let cfg = Config {
            symbols: Vec::new(),
            streams: Vec::new(),
            kafka_broker: String::new(),
            topics: Default::default(),
            kafka_username: None,
            kafka_password: Secret::default(),
            kafka_security_protocol: None,
            kafka_sasl_mechanism: SaslMechanism::ScramSha512,
            kafka_props: KafkaProps::default(),
            kafka_batch_window: Duration::MAX,
            kafka_stall: Duration::MAX,
            prom_port: 0,
            metrics_bind: String::new(),
            metrics_symbol_detail_max: usize::MAX,
            ws: nowhere.clone(),
            rest: nowhere.clone(),
            rest_fallback: Some(nowhere.clone()),
            time_unit: TimeUnit::Micros,
            tls_ca_file: None,
            pin_core: CorePin::None,
            producer_core: CorePin::None,
            loop_mode: LoopMode::BusyPoll,
            loop_coalesce: Duration::MAX,
            ring_bytes: 0,
            max_streams_per_connection: 0,
            sink: SinkKind::Null,
            log_format: LogFormat::Json,
            shutdown_timeout: Duration::ZERO,
            backfill: false,
            backfill_max_ids: 0,
            recover_from_kafka: false,
            ordering: OrderingMode::Strict,
            ordering_max_wait: Duration::ZERO,
            ws_stale_after: Duration::ZERO,
            ws_max_age: Duration::ZERO,
            depth_snapshot_interval: Some(Duration::ZERO),
            depth_levels: 0,
            stream_stale_min: Duration::ZERO,
            stream_stale_max: Duration::ZERO,
            transport: super::Transport::Sbe,
            sbe_api_key: Secret::default(),
            sbe_api_key_file: None,
            sbe_ws: nowhere.clone(),
            sbe_max_failures: 0,
            sbe_retry_after: None,
            sbe_scales_refresh: Duration::ZERO,
            usdm: UsdmConfig {
                symbols: Vec::new(),
                streams: Vec::new(),
                ws: nowhere.clone(),
                rest: nowhere,
                topics: Default::default(),
                pin_core: CorePin::None,
            },
        };
        Build {
            cfg,
            errs: Problems { var: "", list: Vec::new() },
            memory_limit,
            extra_kafka_props,
            default_topic: String::new(),
            usdm_default_topic: String::new(),
            password_from_file: None,
        }
    }

    /// An integer; its text quoted when it is not one.
    pub(super) fn int<T: FromStr>(&mut self, v: &str) -> Option<T> {
        let v = v.trim();
        let n = v.parse::<T>().ok();
        if n.is_none() {
            self.errs.push(format_args!("`{v}` is not a valid non-negative integer"));
        }
        n
    }

    /// An integer in `range`; `note` ends the message when it is outside.
    pub(super) fn int_in<T>(&mut self, v: &str, range: RangeInclusive<T>, note: &str) -> Option<T>
    where
        T: FromStr + PartialOrd + Display,
    {
        let n = self.int::<T>(v)?;
        if range.contains(&n) {
            return Some(n);
        }
        self.errs.push(format_args!("{n} is outside {}..={}{note}", range.start(), range.end()));
        None
    }

    /// One of `choices`, any case; `expected` completes "`x` is not ..." when it is none.
    pub(super) fn choice<T: Copy>(&mut self, v: &str, choices: &[(&str, T)], expected: &str) -> Option<T> {
        let v = v.trim();
        let found = choices.iter().find(|(name, _)| name.eq_ignore_ascii_case(v)).map(|(_, t)| *t);
        if found.is_none() {
            self.errs.push(format_args!("`{v}` is not {expected}"));
        }
        found
    }

    pub(super) fn endpoint(&mut self, v: &str, schemes: (&str, &str)) -> Option<Endpoint> {
        Endpoint::parse(v.trim(), schemes).map_err(|e| self.errs.push(e)).ok()
    }

    /// `KAFKA_TOPIC`, which every record type without a topic of its own takes.
    pub(super) fn default_topic(&mut self, v: &str) {
        let t = v.trim();
        parse::check_topic(t, &mut self.errs);
        self.default_topic = t.to_string();
    }

    /// A per-type topic; unset, [`Build::finish`] gives the type `KAFKA_TOPIC`'s.
    pub(super) fn topic_override(&mut self, t: RecordType, v: &str) {
        if let Some(v) = parse::non_empty(v) {
            parse::check_topic(v, &mut self.errs);
            self.cfg.topics[t as usize] = v.to_string();
        }
    }

    /// `USDM_KAFKA_TOPIC`; unset, [`Build::finish`] derives it from `KAFKA_TOPIC`.
    pub(super) fn usdm_default_topic(&mut self, v: &str) {
        if let Some(t) = parse::non_empty(v) {
            parse::check_topic(t, &mut self.errs);
            self.usdm_default_topic = t.to_string();
        }
    }

    /// A per-type USD-M topic; unset, [`Build::finish`] gives the type `USDM_KAFKA_TOPIC`'s.
    pub(super) fn usdm_topic_override(&mut self, t: RecordType, v: &str) {
        if let Some(v) = parse::non_empty(v) {
            parse::check_topic(v, &mut self.errs);
            self.cfg.usdm.topics[t as usize] = v.to_string();
        }
    }

    pub(super) fn password_file(&mut self, v: &str) {
        if let Some(path) = parse::non_empty(v) {
            self.password_from_file = Some(parse::password_file(path, &mut self.errs));
        }
    }

    pub(super) fn kafka_props(&mut self, v: &str) {
        self.cfg.kafka_props = kafka_props::parse(self.errs.var, v, self.extra_kafka_props, &mut self.errs.list);
    }

    /// The checks across variables, then the configuration or every problem.
    fn finish(mut self) -> Result<Config, ConfigErrors> {
        let c = &mut self.cfg;
        let errs = &mut self.errs.list;
        for topic in &mut c.topics {
            if topic.is_empty() {
                topic.clone_from(&self.default_topic);
            }
        }
        // Apart from spot's by default: recovery reads the last ids back per topic.
        if self.usdm_default_topic.is_empty() {
            self.usdm_default_topic = format!("{}.usdm", self.default_topic);
            if self.default_topic.len() + ".usdm".len() > 249 {
                errs.push(format!(
                    "USDM_KAFKA_TOPIC: `{}` (KAFKA_TOPIC and `.usdm`) is longer than Kafka's 249 characters; set it",
                    self.usdm_default_topic
                ));
            }
        }
        for topic in &mut c.usdm.topics {
            if topic.is_empty() {
                topic.clone_from(&self.usdm_default_topic);
            }
        }
        // Each lane has a ring of its own: two of them must fit where one had to.
        if !c.symbols.is_empty() && !c.usdm.symbols.is_empty() && c.ring_bytes > 0 {
            if let Some(limit) = self.memory_limit.filter(|l| 2 * c.ring_bytes as u64 > l / memory::RING_SHARE_OF_LIMIT)
            {
                errs.push(format!(
                    "RING_BYTES: {} a lane, twice with USDM_SYMBOLS set (spot and USD-M), is more than 1/{} of this \
                     container's memory limit ({limit} bytes)",
                    c.ring_bytes,
                    memory::RING_SHARE_OF_LIMIT
                ));
            }
        }
        // A symbol refused is said already; "none given" would only repeat it.
        if c.symbols.is_empty() && c.usdm.symbols.is_empty() && !errs.iter().any(|e| e.starts_with("SYMBOLS:")) {
            errs.push("SYMBOLS: no symbol given (e.g. btcusdt,ethusdt), and USDM_SYMBOLS is empty too".into());
        }

        let mut password_file_failed = false;
        if let Some(read) = self.password_from_file.take() {
            if !c.kafka_password.is_empty() {
                errs.push("KAFKA_PASSWORD and KAFKA_PASSWORD_FILE are both set; set only one".into());
            }
            match read {
                Some(pw) => c.kafka_password = pw,
                None => password_file_failed = true,
            }
        }
        // An unreadable file is already reported; "no password" would only repeat it.
        let unpaired = c.kafka_username.is_some() == c.kafka_password.is_empty();
        if unpaired && !(password_file_failed && c.kafka_username.is_some()) {
            errs.push("KAFKA_USERNAME and KAFKA_PASSWORD (or KAFKA_PASSWORD_FILE) must be set together".into());
        }
        // Event Hubs (and any managed Kafka with passwords) needs TLS: never send a password in
        // clear by default.
        if c.kafka_security_protocol.is_none() && c.kafka_username.is_some() {
            c.kafka_security_protocol = Some("SASL_SSL".into());
        }

        if let (CorePin::Core(a), CorePin::Core(b)) = (c.pin_core, c.producer_core) {
            if a == b {
                errs.push(format!("PIN_CORE and PRODUCER_CORE are both {a}: the event loop needs a core of its own"));
            }
        }

        if c.stream_stale_min > c.stream_stale_max && !c.stream_stale_max.is_zero() {
            errs.push(format!(
                "STREAM_STALE_MIN_MS ({}) is above STREAM_STALE_MAX_MS ({})",
                c.stream_stale_min.as_millis(),
                c.stream_stale_max.as_millis()
            ));
        }

        super::transport::check_key_in_clear(c, errs);
        super::transport::check_kinds(c, errs);

        if !self.errs.list.is_empty() {
            return Err(ConfigErrors(self.errs.list));
        }
        Ok(self.cfg)
    }
}

/// Every variable parsed (its default when unset), then the checks across them.
pub(super) fn validate(raw: &RawConfig, memory_limit: Option<u64>) -> Result<Config, ConfigErrors> {
    let mut b = Build::new(memory_limit, &raw.extra_kafka_props);
    for var in VARS {
        b.errs.var = var.env;
        (var.apply)(raw.get(var), &mut b);
    }
    b.finish()
}

/// `--check-config`'s lines, one per value, `KEY  value`.
pub(super) struct Shown<'a> {
    out: &'a mut String,
    var: &'static str,
}

impl Shown<'_> {
    /// The value, under the variable's name.
    pub(super) fn value(&mut self, v: impl Display) {
        let var = self.var;
        self.line(var, v);
    }

    /// A line of its own (one of several values a variable holds).
    pub(super) fn line(&mut self, key: &str, v: impl Display) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "{key:<28} {v}");
    }
}

/// `var`'s lines in `--check-config`.
pub(super) fn shown(c: &Config, var: &Var) -> String {
    let mut out = String::new();
    (var.show)(c, &mut Shown { out: &mut out, var: var.env });
    out
}

/// The effective configuration, one line per value, secrets masked.
pub(super) fn render(c: &Config) -> String {
    let mut out: String = VARS.iter().map(|var| shown(c, var)).collect();
    let n = c.symbols.len() * c.streams.len();
    let conns = n.div_ceil(c.max_streams_per_connection);
    Shown { out: &mut out, var: "connections" }.value(format_args!("{conns} for {n} streams"));
    out
}
