//! Every configuration variable, each defined once: its environment name, flag, default,
//! documentation, parser and how `--check-config` shows it. `--help` (`cli.rs`), validation
//! (`build.rs`), `--check-config` ([`super::Config::render`]) and README's configuration table
//! (`docs.rs`, kept in step by a test) are all generated from [`VARS`], as ripgrep generates its
//! flags, docs and man page from one definition per flag.

use std::time::Duration;

use super::guarantees::GUARANTEE_VARS;
use super::metrics::METRICS_VARS;
use super::parse;
use super::transport::TRANSPORT_VARS;
use super::usdm::USDM_VARS;
use super::{kafka_props, memory};
use super::{BINANCE_MAX_STREAMS_PER_CONNECTION, MAX_SHUTDOWN_TIMEOUT_MS};
use crate::record::RecordType;

use super::var::*;
pub use super::var::{Unset, Var};

/// A per-type topic: unset, the record type takes `KAFKA_TOPIC`'s (`Build::finish`).
macro_rules! topic_var {
    ($env:literal, $flag:literal, $kind:literal, $t:expr) => {
        Var {
            env: $env,
            flag: $flag,
            value_name: "TOPIC",
            unset: Unset::Derived("KAFKA_TOPIC"),
            help: concat!("Topic for ", $kind, " records"),
            more: "",
            secret: false,
            apply: |v, b| b.topic_override($t, v),
            show: |c, o| o.value(&c.topics[$t as usize]),
        }
    };
}

/// In the order `--help`, `--check-config` and README list them: spot's (and the process's),
/// the metrics' (`metrics.rs`), the transport's (`transport.rs`), then the USD-M market's (`usdm.rs`).
pub static VARS: &[Var] = &ALL;

static ALL: [Var; SPOT_VARS.len() + METRICS_VARS.len() + TRANSPORT_VARS.len() + USDM_VARS.len()] =
    concat(&SPOT_AND_TRANSPORT, USDM_VARS);
const SPOT_AND_TRANSPORT: [Var; SPOT_VARS.len() + METRICS_VARS.len() + TRANSPORT_VARS.len()] =
    concat(&SPOT_AND_METRICS, TRANSPORT_VARS);
const SPOT_AND_METRICS: [Var; SPOT_VARS.len() + METRICS_VARS.len()] = concat(SPOT_VARS, METRICS_VARS);
const SPOT_VARS: &[Var] = &SPOT;
static SPOT: [Var; SPOT_HEAD.len() + GUARANTEE_VARS.len() + SPOT_TAIL.len()] = concat(&HEAD_AND_GUARANTEES, SPOT_TAIL);
const HEAD_AND_GUARANTEES: [Var; SPOT_HEAD.len() + GUARANTEE_VARS.len()] = concat(SPOT_HEAD, GUARANTEE_VARS);

/// `a` then `b`, at compile time: one table of variables kept in two files.
const fn concat<const N: usize>(a: &[Var], b: &[Var]) -> [Var; N] {
    let mut out = [a[0]; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
        i += 1;
    }
    out
}

/// Spot's (and the process's) before the delivery guarantees' (`guarantees.rs`).
const SPOT_HEAD: &[Var] = &[
    Var {
        env: "SYMBOLS",
        flag: "symbols",
        value_name: "LIST",
        unset: Unset::Default("btcusdt,ethusdt,solusdt"),
        help: "Symbols to ingest, comma-separated; letters and digits of any script, `_`, `-`, `.`, at most 50 \
               characters each (Binance's grammar)",
        more: "Case-insensitive; UTF-8 listings such as `币安人生USDT` included.",
        secret: false,
        apply: |v, b| b.cfg.symbols = parse::symbols(v, &mut b.errs),
        show: |c, o| o.value(c.symbols.join(",")),
    },
    Var {
        env: "STREAMS",
        flag: "streams",
        value_name: "LIST",
        unset: Unset::Default("trade"),
        help: "Stream kinds: `trade`, `aggTrade`, `kline_<interval>`, `bookTicker`, `depth`, `depth@100ms`",
        more: "",
        secret: false,
        apply: |v, b| b.cfg.streams = parse::streams(v, &mut b.errs),
        show: |c, o| o.value(c.streams.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")),
    },
    Var {
        env: "KAFKA_BROKER",
        flag: "kafka-broker",
        value_name: "HOSTS",
        unset: Unset::Default("localhost:9092"),
        help: "Kafka bootstrap servers, host:port[,host:port]",
        more: "",
        secret: false,
        apply: |v, b| b.cfg.kafka_broker = parse::brokers(v, &mut b.errs),
        show: |c, o| o.value(&c.kafka_broker),
    },
    Var {
        env: "KAFKA_TOPIC",
        flag: "kafka-topic",
        value_name: "TOPIC",
        unset: Unset::Default("ohlcv_raw"),
        help: "Default topic for every record type",
        more: "`KAFKA_TOPIC_<TYPE>` overrides it for one type.",
        secret: false,
        apply: |v, b| b.default_topic(v),
        // Not in `Config` as such: its value shows in each per-type line that took it.
        show: |_, _| {},
    },
    topic_var!("KAFKA_TOPIC_TRADE", "kafka-topic-trade", "trade", RecordType::Trade),
    topic_var!("KAFKA_TOPIC_AGG_TRADE", "kafka-topic-agg-trade", "agg_trade", RecordType::AggTrade),
    topic_var!("KAFKA_TOPIC_KLINE", "kafka-topic-kline", "kline", RecordType::Kline),
    topic_var!("KAFKA_TOPIC_BOOK_TICKER", "kafka-topic-book-ticker", "book_ticker", RecordType::BookTicker),
    topic_var!("KAFKA_TOPIC_DEPTH_UPDATE", "kafka-topic-depth-update", "depth_update", RecordType::DepthUpdate),
    Var {
        env: "KAFKA_USERNAME",
        flag: "kafka-username",
        value_name: "USER",
        unset: Unset::Empty,
        help: "SASL username (Azure Event Hubs: $ConnectionString); turns on SASL_SSL",
        more: "Set together with `KAFKA_PASSWORD` or `KAFKA_PASSWORD_FILE`.",
        secret: false,
        apply: |v, b| b.cfg.kafka_username = parse::non_empty(v).map(str::to_string),
        show: |c, o| o.value(c.kafka_username.as_deref().unwrap_or_default()),
    },
    Var {
        env: "KAFKA_PASSWORD",
        flag: "kafka-password",
        value_name: "SECRET",
        unset: Unset::Empty,
        help: "SASL password. Prefer KAFKA_PASSWORD_FILE: a flag is visible in the process list",
        more: "",
        secret: true,
        apply: |v, b| b.cfg.kafka_password = super::Secret::new(v),
        show: |c, o| o.value(&c.kafka_password),
    },
    Var {
        env: "KAFKA_PASSWORD_FILE",
        flag: "kafka-password-file",
        value_name: "PATH",
        unset: Unset::Empty,
        help: "File holding the SASL password (as the Key Vault CSI driver mounts it): a regular file, at most 64 KiB",
        more: "A FIFO, device or directory is refused without blocking; UTF-8 text, one trailing newline dropped.",
        secret: false,
        apply: |v, b| b.password_file(v),
        // Its content is the password, which the KAFKA_PASSWORD line shows masked.
        show: |_, _| {},
    },
    Var {
        env: "KAFKA_SECURITY_PROTOCOL",
        flag: "kafka-security-protocol",
        value_name: "PROTO",
        unset: Unset::Derived("SASL_SSL with credentials, else PLAINTEXT"),
        help: "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
        more: "",
        secret: false,
        apply: |v, b| {
            b.cfg.kafka_security_protocol = parse::non_empty(v).and_then(|p| {
                b.choice(p, SECURITY_PROTOCOLS, "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL").map(str::to_string)
            })
        },
        show: |c, o| o.value(c.kafka_security_protocol.as_deref().unwrap_or("PLAINTEXT")),
    },
    Var {
        env: "KAFKA_SASL_MECHANISM",
        flag: "kafka-sasl-mechanism",
        value_name: "MECH",
        unset: Unset::Default("PLAIN"),
        help: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
        more: "",
        secret: false,
        apply: |v, b| {
            if let Some(m) = b.choice(v, SASL_MECHANISMS, "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512") {
                b.cfg.kafka_sasl_mechanism = m;
            }
        },
        show: |c, o| o.value(c.kafka_sasl_mechanism.as_librdkafka()),
    },
    Var {
        env: "KAFKA_PROPS",
        flag: "kafka-props",
        value_name: "PROPS",
        unset: Unset::Empty,
        help:
            "Any librdkafka properties, `k=v;k=v` (applied last, so they win); each checked by librdkafka at start-up",
        more: "They win over the producer defaults and the Event Hubs profile (e.g. `ssl.ca.location=/path/ca.pem`). \
               An unknown name or a bad value is a configuration error, and a value holding another `name=` pair \
               after a `,` or a space is refused as a wrong separator. A value containing `;` cannot be given here \
               (a password: use `KAFKA_PASSWORD_FILE`). `--kafka-prop k=v` adds one more property (repeatable).",
        secret: true,
        apply: |v, b| b.kafka_props(v),
        show: |c, o| {
            for (k, v) in kafka_props::render_lines(&c.kafka_props) {
                o.line(&k, v);
            }
        },
    },
    super::producer::KAFKA_BATCH_WINDOW,
    super::producer::KAFKA_STALL,
    Var {
        env: "PROM_PORT",
        flag: "prom-port",
        value_name: "PORT",
        unset: Unset::Default("8000"),
        help: "Port of /metrics, /healthz and /readyz",
        more: "One that cannot be bound exits with code 64.",
        secret: false,
        apply: |v, b| {
            if let Some(p) = b.int::<u16>(v) {
                b.cfg.prom_port = p;
            }
        },
        show: |c, o| o.value(c.prom_port),
    },
    Var {
        env: "METRICS_BIND",
        flag: "metrics-bind",
        value_name: "IP",
        unset: Unset::Default("0.0.0.0"),
        help: "Address the metrics server binds",
        more: "",
        secret: false,
        apply: |v, b| b.cfg.metrics_bind = parse::ip(v, &mut b.errs),
        show: |c, o| o.value(&c.metrics_bind),
    },
    Var {
        env: "BINANCE_WS_URL",
        flag: "binance-ws-url",
        value_name: "URL",
        unset: Unset::Default("wss://stream.binance.com:9443"),
        help: "Binance WebSocket base URL, no query string",
        more: "`ws://` for the simulator. The host is a DNS name (IDNA names in `xn--` form) or an IP literal \
               (`[::1]`); an optional path of URL characters follows (no spaces; percent-encode the rest); no \
               fragment or credentials.",
        secret: false,
        apply: |v, b| {
            if let Some(e) = b.endpoint(v, WS_SCHEMES) {
                b.cfg.ws = e;
            }
        },
        show: |c, o| o.value(url(&c.ws, WS_SCHEMES)),
    },
    Var {
        env: "BINANCE_REST_URL",
        flag: "binance-rest-url",
        value_name: "URL",
        unset: Unset::Default("https://api.binance.com"),
        help: "Binance REST base URL",
        more: "`http://` for the simulator; the same rules as `BINANCE_WS_URL`.",
        secret: false,
        apply: |v, b| {
            if let Some(e) = b.endpoint(v, REST_SCHEMES) {
                b.cfg.rest = e;
            }
        },
        show: |c, o| o.value(url(&c.rest, REST_SCHEMES)),
    },
    Var {
        env: "BINANCE_REST_FALLBACK_URL",
        flag: "binance-rest-fallback-url",
        value_name: "URL|off",
        unset: Unset::Default(crate::binance::rest::DATA_API_URL),
        help: "Market-data-only REST host the backfill turns to when the main one fails; `off` for none",
        more: "Serves aggTrades, klines and depth, never historicalTrades. Used for a while after the main host \
               refuses a connection, answers 5xx or 403 (firewall block). The same rules as `BINANCE_WS_URL`.",
        secret: false,
        apply: |v, b| {
            b.cfg.rest_fallback = match v.trim() {
                off if off.eq_ignore_ascii_case("off") => None,
                url => b.endpoint(url, REST_SCHEMES),
            }
        },
        show: |c, o| o.value(c.rest_fallback.as_ref().map_or("off".into(), |e| url(e, REST_SCHEMES))),
    },
    Var {
        env: "TIME_UNIT",
        flag: "time-unit",
        value_name: "ms|us",
        unset: Unset::Default("ms"),
        help: "Unit of exchange times in records: `ms` or `us` (microseconds)",
        more: "`us` asks Binance for microseconds (`timeUnit=MICROSECOND` on the stream, `X-MBX-TIME-UNIT: \
               MICROSECOND` on REST); every `*_time_ms` field of a record is then `*_time_us` (see Records).",
        secret: false,
        apply: |v, b| {
            if let Some(u) = b.choice(v, TIME_UNITS, "ms or us") {
                b.cfg.time_unit = u;
            }
        },
        show: |c, o| o.value(name_of(TIME_UNITS, c.time_unit)),
    },
    Var {
        env: "TLS_CA_FILE",
        flag: "tls-ca-file",
        value_name: "PATH",
        unset: Unset::Empty,
        help: "Extra CA certificate (PEM, at most 1 MiB) to trust besides the web PKI roots; verification stays on",
        more: "Read and parsed at start-up whatever uses TLS (WebSocket, REST): a regular file holding at least one \
               certificate, each accepted by rustls.",
        secret: false,
        apply: |v, b| b.cfg.tls_ca_file = parse::ca_file(v, &mut b.errs),
        show: |c, o| o.value(c.tls_ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
    },
    Var {
        env: "PIN_CORE",
        flag: "pin-core",
        value_name: "CORE",
        unset: Unset::Default("auto"),
        help: "Core for the event loop: a CPU id from the allowed set, `auto` or `none`",
        more: "",
        secret: false,
        apply: |v, b| b.cfg.pin_core = parse::core(v, &mut b.errs),
        show: |c, o| o.value(core_name(c.pin_core)),
    },
    Var {
        env: "PRODUCER_CORE",
        flag: "producer-core",
        value_name: "CORE",
        unset: Unset::Default("auto"),
        help: "Core for the producer thread: a CPU id, `auto` or `none`",
        more: "`auto` avoids the event loop's core.",
        secret: false,
        apply: |v, b| b.cfg.producer_core = parse::core(v, &mut b.errs),
        show: |c, o| o.value(core_name(c.producer_core)),
    },
    Var {
        env: "LOOP_MODE",
        flag: "loop-mode",
        value_name: "MODE",
        unset: Unset::Default("blocking"),
        help: "`blocking` (epoll wait) or `busy` (spin on a dedicated core)",
        more: "",
        secret: false,
        apply: |v, b| {
            if let Some(m) = b.choice(v, LOOP_MODES, "`blocking` or `busy`") {
                b.cfg.loop_mode = m;
            }
        },
        show: |c, o| o.value(name_of(LOOP_MODES, c.loop_mode)),
    },
    super::coalesce::LOOP_COALESCE,
    Var {
        env: "RING_BYTES",
        flag: "ring-bytes",
        value_name: "BYTES",
        unset: Unset::Default("16777216"),
        help: "Ring capacity between event loop and producer, in bytes: 64 KiB to 1 GiB and at most 1/4 of the \
               cgroup memory limit",
        more: "The default holds about 0.5 s at 100k msgs/s, with librdkafka's queue behind it; the rest of the \
               memory limit is for that queue and the process.",
        secret: false,
        apply: |v, b| {
            if let Some(n) = b.int::<usize>(v) {
                match memory::check_ring(n, b.memory_limit) {
                    Ok(()) => b.cfg.ring_bytes = n,
                    Err(e) => b.errs.push(e),
                }
            }
        },
        show: |c, o| o.value(c.ring_bytes),
    },
    Var {
        env: "MAX_STREAMS_PER_CONNECTION",
        flag: "max-streams-per-connection",
        value_name: "N",
        unset: Unset::Default("1024"),
        help: "Streams per WebSocket connection, at most Binance's 1024",
        more: "",
        secret: false,
        apply: |v, b| {
            if let Some(n) = b.int_in(v, 1..=BINANCE_MAX_STREAMS_PER_CONNECTION, " (Binance's limit)") {
                b.cfg.max_streams_per_connection = n;
            }
        },
        show: |c, o| o.value(c.max_streams_per_connection),
    },
    Var {
        env: "SINK",
        flag: "sink",
        value_name: "SINK",
        unset: Unset::Default("kafka"),
        help: "Where records go: `kafka`, `stdout` (JSON lines) or `null` (count only)",
        more: "",
        secret: false,
        apply: |v, b| {
            if let Some(s) = b.choice(v, SINKS, "kafka, stdout or null") {
                b.cfg.sink = s;
            }
        },
        show: |c, o| o.value(name_of(SINKS, c.sink)),
    },
    Var {
        env: "LOG_FORMAT",
        flag: "log-format",
        value_name: "FORMAT",
        unset: Unset::Default("text"),
        help: "`text` or `json`; the level comes from RUST_LOG (default info)",
        more: "",
        secret: false,
        apply: |v, b| {
            if let Some(f) = b.choice(v, LOG_FORMATS, "text or json") {
                b.cfg.log_format = f;
            }
        },
        show: |c, o| o.value(name_of(LOG_FORMATS, c.log_format)),
    },
    Var {
        env: "SHUTDOWN_TIMEOUT_MS",
        flag: "shutdown-timeout-ms",
        value_name: "MS",
        unset: Unset::Default("10000"),
        help: "Longest wait on shutdown to drain and flush, in ms",
        more: "At most 600000 (10 minutes).",
        secret: false,
        // Deadlines are `now + this`: an absurd value would overflow an Instant, and no
        // orchestrator waits longer than minutes for a pod to stop.
        apply: |v, b| {
            if let Some(ms) = b.int_in(v, 0..=MAX_SHUTDOWN_TIMEOUT_MS, "") {
                b.cfg.shutdown_timeout = Duration::from_millis(ms);
            }
        },
        show: |c, o| o.value(c.shutdown_timeout.as_millis()),
    },
];

/// Spot's (and the process's) after the delivery guarantees'.
const SPOT_TAIL: &[Var] = &[
    Var {
        env: "WS_STALE_MS",
        flag: "ws-stale-ms",
        value_name: "MS",
        unset: Unset::Default("45000"),
        help: "Replace a connection that saw neither data nor a ping for this long, ms",
        more: "1000 to 3600000 (Binance pings every 20 s).",
        secret: false,
        // Binance pings every 20 s: a shorter limit would replace healthy quiet connections.
        apply: |v, b| {
            if let Some(ms) = b.int_in::<u64>(v, 1_000..=3_600_000, "") {
                b.cfg.ws_stale_after = Duration::from_millis(ms);
            }
        },
        show: |c, o| o.value(c.ws_stale_after.as_millis()),
    },
    Var {
        env: "STREAM_STALE_MIN_MS",
        flag: "stream-stale-min-ms",
        value_name: "MS",
        unset: Unset::Default("10000"),
        help: "Shortest silence of one stream (its connection alive) that counts as stale, ms",
        more: "1000 to 3600000. Each stream's bound is learned from its own cadence, between this and \
               `STREAM_STALE_MAX_MS`; a stale stream is resubscribed, then its connection replaced, and a \
               `stale` record published.",
        secret: false,
        apply: |v, b| {
            if let Some(ms) = b.int_in::<u64>(v, 1_000..=3_600_000, "") {
                b.cfg.stream_stale_min = Duration::from_millis(ms);
            }
        },
        show: |c, o| o.value(c.stream_stale_min.as_millis()),
    },
    Var {
        env: "STREAM_STALE_MAX_MS",
        flag: "stream-stale-max-ms",
        value_name: "MS",
        unset: Unset::Default("900000"),
        help: "Longest silence of one stream that is never stale, however rare its messages, ms",
        more: "1000 to 86400000, at least `STREAM_STALE_MIN_MS`. Also the bound of a trade stream that has \
               sent nothing yet (an illiquid market may not trade for minutes).",
        secret: false,
        apply: |v, b| {
            if let Some(ms) = b.int_in::<u64>(v, 1_000..=86_400_000, "") {
                b.cfg.stream_stale_max = Duration::from_millis(ms);
            }
        },
        show: |c, o| o.value(c.stream_stale_max.as_millis()),
    },
    Var {
        env: "WS_MAX_AGE_SECS",
        flag: "ws-max-age-secs",
        value_name: "SECS",
        unset: Unset::Default("82800"),
        help: "Rotate connections (make-before-break) at this age, before Binance's 24 h cut, s",
        more: "At most 86000.",
        secret: false,
        apply: |v, b| {
            if let Some(s) = b.int_in::<u64>(v, 1..=86_000, " (Binance cuts at 86400)") {
                b.cfg.ws_max_age = Duration::from_secs(s);
            }
        },
        show: |c, o| o.value(c.ws_max_age.as_secs()),
    },
    Var {
        env: "DEPTH_SNAPSHOT_INTERVAL",
        flag: "depth-snapshot-interval",
        value_name: "SECS",
        unset: Unset::Default("60"),
        help: "Publish each order book as a `depth_snapshot` this often, s (from the book kept in the process: no \
               REST weight)",
        more: "0 to 86400; 0: only at start and after a resync.",
        secret: false,
        apply: |v, b| {
            if let Some(s) = b.int_in::<u64>(v, 0..=86_400, "") {
                b.cfg.depth_snapshot_interval = (s > 0).then(|| Duration::from_secs(s));
            }
        },
        show: |c, o| o.value(c.depth_snapshot_interval.map_or(0, |d| d.as_secs())),
    },
    Var {
        env: "DEPTH_LEVELS",
        flag: "depth-levels",
        value_name: "N",
        unset: Unset::Default("1000"),
        help: "Levels a side of every order-book snapshot: the REST `limit` (weight 5 to 100 levels, 25 to 500, 50 \
               to 1000, 250 to 5000) and what each `depth_snapshot` carries",
        more: "1 to 5000. The book kept in the process holds up to about twice as many a side (see Order book).",
        secret: false,
        apply: |v, b| {
            if let Some(n) = b.int_in::<usize>(v, 1..=crate::binance::rest::MAX_DEPTH_LIMIT, " (Binance's deepest)") {
                b.cfg.depth_levels = n;
            }
        },
        show: |c, o| o.value(c.depth_levels),
    },
];
