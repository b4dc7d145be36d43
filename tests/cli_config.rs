//! The binary's answer to configurations that cannot work (issue 9, section 4): exit 64 with a
//! message naming the problem, from `--check-config` and from a real start alike, and no secret
//! value on stdout or stderr; and what `--version` and `--help` say. Nothing here needs Kafka or
//! Binance: every refusal comes before the first connection.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "hunter2";

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the ingester with only `env` (and PATH) and `args`; kills it and fails past `limit`,
/// which only bounds a wait for a process that must stop by itself.
fn run(env: &[(&str, &str)], args: &[&str], limit: Duration) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_marketflow-ingestor"));
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("RUST_LOG", "info");
    cmd.args(args).envs(env.iter().copied()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the ingester");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?} (blocked?); stderr:\n{}", err_t.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run { code: status.code(), stdout: out_t.join().unwrap(), stderr: err_t.join().unwrap() }
}

fn check_config(env: &[(&str, &str)], extra: &[&str]) -> Run {
    let mut args = vec!["--check-config"];
    args.extend_from_slice(extra);
    run(env, &args, Duration::from_secs(60))
}

/// Exit 64, every wanted text on stderr, and the secret nowhere.
fn assert_refused(r: &Run, wants: &[&str]) {
    let all = format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert_eq!(r.code, Some(64), "{all}");
    for w in wants {
        assert!(r.stderr.contains(w), "missing {w:?} in {all}");
    }
    assert!(!all.contains(SECRET), "secret printed: {all}");
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mf-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn malformed_kafka_props_are_refused_without_echoing_the_password() {
    let r = check_config(&[("KAFKA_PROPS", "sasl.username=u,sasl.password=hunter2")], &[]);
    assert_refused(&r, &["KAFKA_PROPS item 1: the value of `sasl.username` holds another pair `sasl.password=…`"]);
    let r = check_config(&[], &["--kafka-prop", "sasl.passwrd=hunter2"]);
    assert_refused(&r, &["--kafka-prop #1: `sasl.passwrd` is not a librdkafka property (value not shown)"]);
}

#[test]
fn a_valid_secret_property_is_masked_in_check_config() {
    let r = check_config(&[("KAFKA_PROPS", "sasl.password=hunter2;linger.ms=2")], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("kafka[sasl.password]") && r.stdout.contains("kafka[linger.ms]"), "{}", r.stdout);
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET), "{}", r.stdout);
}

/// Each of the "accepted but unusable" values, all reported in one run.
#[test]
fn unusable_values_are_all_listed_at_once() {
    let garbage_ca = temp("garbage-ca.pem");
    std::fs::write(&garbage_ca, "not a certificate\n").unwrap();
    let r = check_config(
        &[
            ("SYMBOLS", "btcusdt,a<b{c^"),
            ("BINANCE_WS_URL", "ws://ho st:80"),
            ("BINANCE_REST_URL", "https://api.binance.com/api?x=1"),
            ("RING_BYTES", "17179869184"),
            ("TLS_CA_FILE", garbage_ca.to_str().unwrap()),
        ],
        &[],
    );
    assert_refused(
        &r,
        &[
            "5 problems",
            "SYMBOLS: `a<b{c^` contains `<`",
            "BINANCE_WS_URL: `ws://ho st:80` contains ' '",
            "BINANCE_REST_URL: query strings are not supported",
            "RING_BYTES: 17179869184 is outside 65536..=1073741824",
            "holds no PEM certificate",
        ],
    );
}

/// Only REST uses TLS here (ws://), and the garbage CA file is still refused.
#[test]
fn a_garbage_ca_file_is_refused_when_only_rest_uses_tls() {
    let garbage_ca = temp("garbage-ca-rest.pem");
    std::fs::write(&garbage_ca, "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n").unwrap();
    let r =
        check_config(&[("BINANCE_WS_URL", "ws://127.0.0.1:9001"), ("TLS_CA_FILE", garbage_ca.to_str().unwrap())], &[]);
    assert_refused(&r, &["TLS_CA_FILE: CA file", "has a certificate rustls refuses"]);
}

/// A FIFO as the password file used to block start-up forever (the run's limit catches that).
#[test]
fn a_fifo_password_file_is_refused_without_blocking() {
    let fifo = temp("pw-fifo");
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let r = check_config(&[("KAFKA_USERNAME", "u"), ("KAFKA_PASSWORD_FILE", fifo.to_str().unwrap())], &[]);
    assert_refused(&r, &["KAFKA_PASSWORD_FILE:", "is a FIFO, not a regular file"]);
}

#[test]
fn a_taken_metrics_port_exits_64() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let r = run(
        &[
            ("SINK", "null"),
            ("METRICS_BIND", "127.0.0.1"),
            ("PROM_PORT", &port),
            ("BACKFILL", "off"),
            ("BINANCE_WS_URL", "ws://127.0.0.1:9"),
            ("BINANCE_REST_URL", "http://127.0.0.1:9"),
        ],
        &[],
        Duration::from_secs(60),
    );
    assert_refused(&r, &["METRICS_BIND/PROM_PORT: metrics server cannot listen on 127.0.0.1:"]);
}

/// librdkafka checks some properties only together, when the producer is created (`acks=1`
/// contradicts the idempotent producer): still a configuration error, still masked.
#[test]
fn a_property_librdkafka_refuses_at_creation_exits_64() {
    let r = run(
        &[
            ("SINK", "kafka"),
            ("KAFKA_BROKER", "127.0.0.1:9"),
            ("KAFKA_USERNAME", "u"),
            ("KAFKA_PASSWORD", SECRET),
            ("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("KAFKA_PROPS", "acks=1"),
            ("METRICS_BIND", "127.0.0.1"),
            ("PROM_PORT", "0"),
            ("BACKFILL", "off"),
            ("RECOVER_FROM_KAFKA", "off"),
            ("BINANCE_WS_URL", "ws://127.0.0.1:9"),
        ],
        &[],
        Duration::from_secs(60),
    );
    assert_refused(
        &r,
        &[
            "creating kafka producer",
            "sasl.password=***",
            "kafka configuration (KAFKA_* settings): librdkafka cannot create the producer",
            "acks",
        ],
    );
}

/// The issue's `--kafka-prop sasl.passwrd=x`, on a real start: refused before any connection.
#[test]
fn a_misspelt_secret_property_on_a_real_start_is_refused_and_masked() {
    let r = run(
        &[("SINK", "kafka"), ("KAFKA_BROKER", "127.0.0.1:9"), ("METRICS_BIND", "127.0.0.1"), ("PROM_PORT", "0")],
        &["--kafka-prop", "sasl.passwrd=hunter2"],
        Duration::from_secs(60),
    );
    assert_refused(&r, &["`sasl.passwrd` is not a librdkafka property"]);
}

/// The binary with only PATH set, for the tests below.
fn ingester_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_marketflow-ingestor"));
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

#[test]
fn bad_configuration_lists_every_problem_and_exits_64() {
    let out = ingester_cmd()
        .env("SYMBOLS", "btc/usdt")
        .env("STREAMS", "trades")
        .env("PROM_PORT", "http")
        .env("KAFKA_PASSWORD", "hunter2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in ["SYMBOLS", "STREAMS", "PROM_PORT", "KAFKA_USERNAME and KAFKA_PASSWORD", "4 problems"] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("hunter2"), "secret printed:\n{err}");

    let out = ingester_cmd().arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn loop_coalescing_beyond_a_millisecond_exits_64() {
    let out = ingester_cmd().env("LOOP_COALESCE_US", "5000").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LOOP_COALESCE_US: 5000 is outside 0..=1000"), "{err}");
}

#[test]
fn check_config_masks_secrets_and_does_not_connect() {
    let out = ingester_cmd()
        .args(["--check-config", "--kafka-prop", "ssl.key.password=topsecret"])
        .env("KAFKA_USERNAME", "$ConnectionString")
        .env("KAFKA_PASSWORD", "Endpoint=sb://x/;SharedAccessKey=hunter2")
        .env("KAFKA_BROKER", "marketflow-kafka-ns.servicebus.windows.net:9093")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SASL_SSL") && text.contains("configuration OK"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("topsecret"), "{text}");
}

#[test]
fn version_and_help_describe_the_binary() {
    let out = ingester_cmd().arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(v.contains(env!("CARGO_PKG_VERSION")) && v.contains("commit"), "{v}");
    let out = ingester_cmd().arg("--help").output().unwrap();
    let h = String::from_utf8_lossy(&out.stdout);
    for var in ["SYMBOLS", "KAFKA_BROKER", "KAFKA_PASSWORD_FILE", "PROM_PORT", "PIN_CORE", "SINK"] {
        assert!(h.contains(var), "{var} not in --help");
    }
}

/// USD-M's settings, from `--check-config` and `--help`: a stream USD-M does not have, a retired
/// root URL and a second problem elsewhere are listed together; a good USD-M configuration shows
/// its market's values.
#[test]
fn usdm_settings_are_checked_with_every_other_problem_and_shown() {
    let r = check_config(
        &[
            ("USDM_SYMBOLS", "btcusdt"),
            ("USDM_STREAMS", "aggTrade,trade"),
            ("USDM_WS_URL", "wss://fstream.binance.com/ws"),
        ],
        &["--prom-port", "x"],
    );
    assert_refused(
        &r,
        &["(3 problems)", "PROM_PORT: `x`", "USDM_STREAMS: trade is not a USD-M stream", "USDM_WS_URL: path `/ws`"],
    );
    let r = check_config(&[("SYMBOLS", ""), ("USDM_SYMBOLS", "")], &[]);
    assert_refused(&r, &["SYMBOLS: no symbol given (e.g. btcusdt,ethusdt), and USDM_SYMBOLS is empty too"]);

    let r = check_config(&[("SYMBOLS", ""), ("KAFKA_TOPIC", "raw")], &["--usdm-symbols", "BTCUSDT"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let line = |key: &str| r.stdout.lines().find(|l| l.split(' ').next() == Some(key)).unwrap_or_default().to_string();
    assert_eq!(line("USDM_SYMBOLS"), format!("{:<28} btcusdt", "USDM_SYMBOLS"));
    assert_eq!(line("USDM_WS_URL"), format!("{:<28} wss://fstream.binance.com:443", "USDM_WS_URL"));
    assert_eq!(line("USDM_KAFKA_TOPIC_AGG_TRADE"), format!("{:<28} raw.usdm", "USDM_KAFKA_TOPIC_AGG_TRADE"));

    let help = run(&[], &["--help"], Duration::from_secs(60)).stdout;
    for flag in ["--usdm-symbols <LIST>", "--usdm-streams <LIST>", "--usdm-ws-url <URL>", "--usdm-kafka-topic <TOPIC>"]
    {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

/// A setting of the second lane that only start-up can check (its core must be in the allowed
/// set) exits 64 too, with the spot lane already running: the process does not stay up half-built.
#[test]
fn a_usdm_core_outside_the_allowed_set_exits_64_after_spot_started() {
    let r = run(
        &[
            ("SINK", "null"),
            ("METRICS_BIND", "127.0.0.1"),
            ("PROM_PORT", "0"),
            ("BACKFILL", "off"),
            ("BINANCE_WS_URL", "ws://127.0.0.1:9"),
            ("BINANCE_REST_URL", "http://127.0.0.1:9"),
            ("USDM_SYMBOLS", "btcusdt"),
            ("USDM_WS_URL", "ws://127.0.0.1:9"),
            ("USDM_PIN_CORE", "4096"),
        ],
        &[],
        Duration::from_secs(60),
    );
    assert_refused(&r, &["USDM_PIN_CORE: core 4096 is not in this process's allowed CPU set"]);
    assert!(r.stderr.contains("event loop ready"), "spot's lane started first: {}", r.stderr);
}

/// `TRANSPORT=sbe`'s settings: a bad value exits 64 with the others; a valid key file's key is
/// never shown by `--check-config` (its path is).
#[test]
fn transport_settings_exit_64_when_bad_and_never_show_the_key() {
    let key = temp("sbe-key");
    std::fs::write(&key, format!("{SECRET}\n")).unwrap();
    let key = key.to_str().unwrap();
    let r = check_config(
        &[("TRANSPORT", "binary"), ("SBE_API_KEY_FILE", "/nonexistent/sbe-key"), ("BINANCE_SBE_URL", "http://x")],
        &[],
    );
    assert_refused(
        &r,
        &[
            "TRANSPORT: `binary` is not json or sbe",
            "SBE_API_KEY_FILE: `/nonexistent/sbe-key` cannot be read",
            "BINANCE_SBE_URL:",
        ],
    );
    let r = check_config(
        &[("TRANSPORT", "sbe"), ("SBE_API_KEY_FILE", key), ("BINANCE_SBE_URL", "ws://binance.example:9")],
        &[],
    );
    assert_refused(&r, &["BINANCE_SBE_URL: `ws://binance.example:9` would carry the SBE API key in clear"]);
    let r = check_config(&[("TRANSPORT", "sbe"), ("SBE_API_KEY_FILE", key)], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(&format!("SBE_API_KEY_FILE             {key}")), "{}", r.stdout);
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET), "{}", r.stdout);
    // Kinds SBE has no stream for go over JSON beside it: accepted, and said which go where.
    let r = check_config(&[("TRANSPORT", "sbe"), ("STREAMS", "trade,aggTrade,kline_1m,depth")], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let split = "TRANSPORT=sbe: over SBE trade,depth; over JSON beside it (no SBE stream) aggTrade,kline_1m";
    assert!(r.stdout.contains(split), "{}", r.stdout);
    let r = check_config(&[("TRANSPORT", "sbe"), ("STREAMS", "aggTrade,depth,depth@100ms")], &[]);
    assert_refused(&r, &["TRANSPORT: `sbe` carries depth and depth@100ms as one stream"]);
}
