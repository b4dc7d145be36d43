//! Validation as a whole: defaults, every problem reported together, secrets never shown.

use super::*;

fn raw(pairs: &[(&str, &str)]) -> RawConfig {
    RawConfig::from_pairs(pairs)
}

fn ok(pairs: &[(&str, &str)]) -> Config {
    raw(pairs).validate_with_memory_limit(None).unwrap()
}

fn errs(pairs: &[(&str, &str)]) -> Vec<String> {
    raw(pairs).validate_with_memory_limit(None).unwrap_err().0
}

fn temp_file(name: &str, content: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mf-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(name);
    std::fs::write(&f, content).unwrap();
    f
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
    assert_eq!(c.ring_bytes, 16 << 20);
}

#[test]
fn the_metrics_aggregate_label_is_not_a_symbol() {
    assert!(errs(&[("SYMBOLS", "btcusdt,_ALL")])[0].contains("reserved"));
}

#[test]
fn symbols_are_lowercased_trimmed_and_deduplicated() {
    let c = ok(&[("SYMBOLS", " BTCUSDT, ethusdt ,,")]);
    assert_eq!(c.symbols, ["btcusdt", "ethusdt"]);
    assert!(errs(&[("SYMBOLS", "btcusdt,BTCUSDT")])[0].contains("twice"));
}

#[test]
fn utf8_listings_are_symbols_and_grammar_breakers_are_not() {
    let c = ok(&[("SYMBOLS", "币安人生USDT,btcusdt")]);
    assert_eq!(c.symbols, ["币安人生usdt", "btcusdt"]);
    let e = errs(&[("SYMBOLS", "btcusdt,a<b{c^,ethusdt,x\ty")]);
    assert_eq!(
        e,
        [
            "SYMBOLS: `a<b{c^` contains `<`, which Binance refuses in a symbol (letters and digits of any script, `_`, `-`, `.`)",
            "SYMBOLS: `x\\ty` contains `\\t`, which Binance refuses in a symbol (letters and digits of any script, `_`, `-`, `.`)",
        ]
    );
}

#[test]
fn per_type_topics_override_the_default() {
    let c = ok(&[("KAFKA_TOPIC", "raw"), ("KAFKA_TOPIC_TRADE", "trades_raw"), ("KAFKA_TOPIC_DEPTH_UPDATE", "books")]);
    assert_eq!(c.topics[RecordType::Trade as usize], "trades_raw");
    assert_eq!(c.topics[RecordType::DepthUpdate as usize], "books");
    assert_eq!(c.topics[RecordType::Kline as usize], "raw");
}

#[test]
fn credentials_turn_on_sasl_ssl_and_are_masked() {
    let c =
        ok(&[("KAFKA_USERNAME", "$ConnectionString"), ("KAFKA_PASSWORD", "Endpoint=sb://x;SharedAccessKey=hunter2")]);
    assert_eq!(c.kafka_security_protocol.as_deref(), Some("SASL_SSL"));
    assert_eq!(c.kafka_sasl_mechanism, SaslMechanism::Plain);
    let shown = format!("{} {:?}", c.render(), c);
    assert!(!shown.contains("hunter2"), "secret leaked: {shown}");
    assert!(shown.contains("***"));
}

#[test]
fn password_file_is_read_and_trailing_newline_dropped() {
    let f = temp_file("pw", b"s3cret\n");
    let c = ok(&[("KAFKA_USERNAME", "u"), ("KAFKA_PASSWORD_FILE", f.to_str().unwrap())]);
    assert_eq!(c.kafka_password.expose(), "s3cret");
    let e = errs(&[("KAFKA_USERNAME", "u"), ("KAFKA_PASSWORD_FILE", "/nonexistent/pw")]);
    assert_eq!(e, ["KAFKA_PASSWORD_FILE: `/nonexistent/pw` cannot be read: entity not found"]);
}

/// A FIFO would block start-up forever and `/dev/zero` would be read until out of memory: both
/// are refused at once, as are directories, oversized and empty files.
#[test]
fn password_file_must_be_a_small_regular_file() {
    let fifo = std::env::temp_dir().join(format!("mf-cfg-fifo-{}", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let big = temp_file("pw-big", &vec![b'x'; MAX_PASSWORD_FILE_BYTES as usize + 1]);
    let empty = temp_file("pw-empty", b"\n");
    let binary = temp_file("pw-binary", &[0xff, 0xfe, b'h']);
    for (path, want) in [
        (fifo.to_str().unwrap(), "is a FIFO, not a regular file"),
        ("/dev/zero", "is a character device, not a regular file"),
        ("/tmp", "is a directory, not a regular file"),
        (big.to_str().unwrap(), "is larger than 65536 bytes"),
        (empty.to_str().unwrap(), "is empty"),
        (binary.to_str().unwrap(), "is not UTF-8 text"),
    ] {
        let e = errs(&[("KAFKA_USERNAME", "u"), ("KAFKA_PASSWORD_FILE", path)]);
        assert_eq!(e, [format!("KAFKA_PASSWORD_FILE: `{path}` {want}")]);
    }
}

#[test]
fn kafka_props_pass_through_and_mask_secrets() {
    let mut r = raw(&[("KAFKA_PROPS", "linger.ms=5; compression.type=lz4")]);
    r.extra_kafka_props.push("ssl.key.password=topsecret".into());
    let c = r.validate_with_memory_limit(None).unwrap();
    assert_eq!(
        *c.kafka_props,
        [
            ("linger.ms".to_string(), "5".to_string()),
            ("compression.type".into(), "lz4".into()),
            ("ssl.key.password".into(), "topsecret".into())
        ]
    );
    let shown = format!("{}\n{c:?}\n{r:?}", c.render());
    assert!(!shown.contains("topsecret"), "{shown}");
    let line = shown.lines().find(|l| l.starts_with("kafka[ssl.key.password]")).unwrap();
    assert!(line.ends_with(" ***") && shown.contains("linger.ms=5"), "{shown}");
}

/// The case: a comma instead of `;` hid the password in `sasl.username`'s value, which
/// `--check-config`, the producer's log line and `Debug` then printed.
#[test]
fn a_comma_between_pairs_is_refused_without_showing_the_secret() {
    let r = raw(&[("KAFKA_PROPS", "sasl.username=u,sasl.password=hunter2")]);
    let e = r.validate_with_memory_limit(None).unwrap_err();
    assert_eq!(
        e.0,
        ["KAFKA_PROPS item 1: the value of `sasl.username` holds another pair `sasl.password=…` \
          (separate pairs with `;`; value not shown)"]
    );
    assert!(!format!("{e} {r:?}").contains("hunter2"));
}

#[test]
fn a_ca_file_is_parsed_even_when_only_rest_uses_tls() {
    let (pem, _) = binance_sim::tls::self_signed_server().unwrap();
    let good = temp_file("ca-good.pem", pem.as_bytes());
    let garbage = temp_file("ca-garbage.pem", b"not a certificate\n");
    let bad_b64 = temp_file("ca-b64.pem", b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
    let not_der = temp_file("ca-der.pem", b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n");
    let rest_only = [("BINANCE_WS_URL", "ws://127.0.0.1:9001"), ("BINANCE_REST_URL", "https://127.0.0.1:9002")];
    let with = |p: &std::path::Path| {
        let mut v = rest_only.to_vec();
        v.push(("TLS_CA_FILE", p.to_str().unwrap()));
        raw(&v).validate_with_memory_limit(None).map(|c| c.tls_ca_file).map_err(|e| e.0)
    };
    assert_eq!(with(&good), Ok(Some(good.clone())));
    let shown = |p: &std::path::Path| p.display().to_string();
    assert_eq!(
        with(&garbage),
        Err(vec![format!("TLS_CA_FILE: CA file `{}` holds no PEM certificate", shown(&garbage))])
    );
    assert!(with(&bad_b64).unwrap_err()[0].contains("is not valid PEM"));
    assert!(with(&not_der).unwrap_err()[0].contains("has a certificate rustls refuses"));
    assert_eq!(
        with(std::path::Path::new("/dev/zero")),
        Err(vec!["TLS_CA_FILE: CA file `/dev/zero` is a character device, not a regular file".to_string()])
    );
}

#[test]
fn the_ring_must_fit_the_container() {
    let r = raw(&[("RING_BYTES", "268435456")]);
    assert!(r.validate_with_memory_limit(None).is_ok());
    let e = r.validate_with_memory_limit(Some(512 << 20)).unwrap_err().0;
    assert!(e[0].starts_with("RING_BYTES: 268435456 is more than 1/4 of this container's memory limit"), "{e:?}");
    assert!(errs(&[("RING_BYTES", "17179869184")])[0].contains("outside 65536..=1073741824"));
}

/// Every error path, all at once: the operator sees the whole list in one run.
#[test]
fn every_problem_is_reported_together() {
    // An empty expectation: the variable only makes another's problem possible.
    let cases: &[(&str, &str, &str)] = &[
        ("SYMBOLS", "btcusdt,a<b{c^", "SYMBOLS: `a<b{c^` contains `<`"),
        ("STREAMS", "trade,bogus", "STREAMS: unknown stream kind `bogus`"),
        ("KAFKA_BROKER", "nohostport", "KAFKA_BROKER: `nohostport` is not host:port"),
        ("KAFKA_TOPIC", "bad topic", "KAFKA_TOPIC: `bad topic` is not a valid Kafka topic name"),
        ("KAFKA_TOPIC_KLINE", "a/b", "KAFKA_TOPIC_KLINE: `a/b` is not a valid Kafka topic name"),
        ("KAFKA_USERNAME", "u", ""),
        ("KAFKA_PASSWORD_FILE", "/dev/zero", "KAFKA_PASSWORD_FILE: `/dev/zero` is a character device"),
        ("KAFKA_SECURITY_PROTOCOL", "TLS", "KAFKA_SECURITY_PROTOCOL: `TLS` is not one of"),
        ("KAFKA_SASL_MECHANISM", "GSSAPI", "KAFKA_SASL_MECHANISM: `GSSAPI` is not PLAIN"),
        ("KAFKA_PROPS", "sasl.username=u,sasl.password=x", "KAFKA_PROPS item 1: the value of `sasl.username`"),
        ("KAFKA_BATCH_WINDOW_US", "0.5", "KAFKA_BATCH_WINDOW_US: `0.5` is not a valid"),
        ("KAFKA_STALL_SECS", "0", "KAFKA_STALL_SECS: 0 is outside 1..=3600"),
        ("PROM_PORT", "70000", "PROM_PORT: `70000` is not a valid"),
        ("METRICS_BIND", "localhost", "METRICS_BIND: `localhost` is not an IP address"),
        ("BINANCE_WS_URL", "ws://ho st:80", "BINANCE_WS_URL: `ws://ho st:80` contains ' '"),
        ("BINANCE_REST_URL", "https://h/api?x=1", "BINANCE_REST_URL: query strings are not supported"),
        ("TLS_CA_FILE", "/nonexistent.pem", "TLS_CA_FILE: CA file `/nonexistent.pem` cannot be read"),
        ("PIN_CORE", "first", "PIN_CORE: `first` is not a CPU id"),
        ("PRODUCER_CORE", "-1", "PRODUCER_CORE: `-1` is not a CPU id"),
        ("LOOP_MODE", "spin", "LOOP_MODE: `spin` is not `blocking` or `busy`"),
        ("LOOP_COALESCE_US", "1001", "LOOP_COALESCE_US: 1001 is outside 0..=1000 µs"),
        ("RING_BYTES", "17179869184", "RING_BYTES: 17179869184 is outside"),
        ("MAX_STREAMS_PER_CONNECTION", "2000", "MAX_STREAMS_PER_CONNECTION: 2000 is outside"),
        ("SINK", "file", "SINK: `file` is not kafka, stdout or null"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: `xml` is not text or json"),
        ("SHUTDOWN_TIMEOUT_MS", "soon", "SHUTDOWN_TIMEOUT_MS: `soon` is not a valid"),
        ("BACKFILL", "maybe", "BACKFILL: `maybe` is not on or off"),
        ("BACKFILL_MAX_IDS", "0", "BACKFILL_MAX_IDS: 0 is outside 1..=100000000"),
        ("RECOVER_FROM_KAFKA", "2", "RECOVER_FROM_KAFKA: `2` is not on or off"),
        ("ORDERING", "sorted", "ORDERING: `sorted` is not default or strict"),
        ("ORDERING_MAX_WAIT_MS", "0", "ORDERING_MAX_WAIT_MS: 0 is outside 1..=60000"),
        ("WS_STALE_MS", "10", "WS_STALE_MS: 10 is outside"),
        ("STREAM_STALE_MIN_MS", "500", "STREAM_STALE_MIN_MS: 500 is outside"),
        ("STREAM_STALE_MAX_MS", "86400001", "STREAM_STALE_MAX_MS: 86400001 is outside"),
        ("WS_MAX_AGE_SECS", "90000", "WS_MAX_AGE_SECS: 90000 is outside"),
    ];
    let pairs: Vec<(&str, &str)> = cases.iter().map(|(k, v, _)| (*k, *v)).collect();
    let got = errs(&pairs);
    let wanted: Vec<&(&str, &str, &str)> = cases.iter().filter(|(_, _, w)| !w.is_empty()).collect();
    for (var, _, want) in &wanted {
        assert!(got.iter().any(|g| g.contains(want)), "{var}: expected an error containing {want:?}, got {got:#?}");
    }
    assert_eq!(got.len(), wanted.len(), "one error per bad variable: {got:#?}");
}

#[test]
fn loop_coalescing_is_off_by_default_and_bounded_by_a_millisecond() {
    assert_eq!(ok(&[]).loop_coalesce, Duration::ZERO);
    assert_eq!(ok(&[("LOOP_COALESCE_US", "250")]).loop_coalesce, Duration::from_micros(250));
    assert_eq!(ok(&[("LOOP_COALESCE_US", "1000")]).loop_coalesce, Duration::from_millis(1));
    assert_eq!(errs(&[("LOOP_COALESCE_US", "1001")]), ["LOOP_COALESCE_US: 1001 is outside 0..=1000 µs"]);
    assert!(errs(&[("LOOP_COALESCE_US", "-5")])[0].contains("`-5` is not a valid non-negative integer"));
}

#[test]
fn empty_lists_and_pin_clash_are_errors() {
    assert!(errs(&[("SYMBOLS", " , ")])[0].contains("no symbol"));
    assert!(errs(&[("STREAMS", "")])[0].contains("no stream kind"));
    assert!(errs(&[("PIN_CORE", "1"), ("PRODUCER_CORE", "1")])[0].contains("core of its own"));
    assert!(errs(&[("KAFKA_PASSWORD", "p")])[0].contains("set together"));
    assert!(errs(&[("KAFKA_BROKER", "")])[0].contains("must not be empty"));
    let e = errs(&[("STREAM_STALE_MIN_MS", "60000"), ("STREAM_STALE_MAX_MS", "30000")]);
    assert_eq!(e, ["STREAM_STALE_MIN_MS (60000) is above STREAM_STALE_MAX_MS (30000)"]);
    let c = ok(&[]);
    assert_eq!((c.stream_stale_min.as_secs(), c.stream_stale_max.as_secs()), (10, 900));
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

#[test]
fn ordering_is_default_unless_strict_is_asked_for_and_its_wait_is_bounded() {
    let c = ok(&[]);
    assert_eq!((c.ordering, c.ordering_max_wait), (OrderingMode::Default, Duration::from_secs(2)));
    let c = ok(&[("ORDERING", "STRICT"), ("ORDERING_MAX_WAIT_MS", "60000")]);
    assert_eq!((c.ordering, c.ordering_max_wait), (OrderingMode::Strict, Duration::from_secs(60)));
    // A wait past the bound would hold a symbol's records (and memory) for minutes.
    assert_eq!(errs(&[("ORDERING_MAX_WAIT_MS", "60001")]), ["ORDERING_MAX_WAIT_MS: 60001 is outside 1..=60000"]);
}

#[test]
fn the_batch_window_defaults_to_half_a_millisecond_and_is_bounded() {
    assert_eq!(ok(&[]).kafka_batch_window, Duration::from_micros(500));
    assert_eq!(ok(&[("KAFKA_BATCH_WINDOW_US", "0")]).kafka_batch_window, Duration::ZERO);
    assert_eq!(ok(&[("KAFKA_BATCH_WINDOW_US", " 20000 ")]).kafka_batch_window, Duration::from_millis(20));
    // Longer is delay, not batching; a negative or fractional value is not a count of µs.
    assert_eq!(errs(&[("KAFKA_BATCH_WINDOW_US", "20001")]), ["KAFKA_BATCH_WINDOW_US: 20001 is outside 0..=20000"]);
    assert_eq!(errs(&[("KAFKA_BATCH_WINDOW_US", "-1")]).len(), 1);
}

#[test]
fn the_stall_bound_defaults_to_fifteen_seconds_and_is_bounded() {
    assert_eq!(ok(&[]).kafka_stall, Duration::from_secs(15));
    assert_eq!(ok(&[("KAFKA_STALL_SECS", " 1 ")]).kafka_stall, Duration::from_secs(1));
    assert_eq!(ok(&[("KAFKA_STALL_SECS", "3600")]).kafka_stall, Duration::from_secs(3600));
    // Zero would call every record in flight a stall; past an hour the records have long failed.
    assert_eq!(errs(&[("KAFKA_STALL_SECS", "0")]), ["KAFKA_STALL_SECS: 0 is outside 1..=3600"]);
    assert_eq!(errs(&[("KAFKA_STALL_SECS", "3601")]), ["KAFKA_STALL_SECS: 3601 is outside 1..=3600"]);
    assert!(errs(&[("KAFKA_STALL_SECS", "1.5")])[0].contains("`1.5` is not a valid non-negative integer"));
}

#[test]
fn an_absurd_shutdown_timeout_is_refused() {
    let e = errs(&[("SHUTDOWN_TIMEOUT_MS", "18446744073709551615")]);
    assert_eq!(e, ["SHUTDOWN_TIMEOUT_MS: 18446744073709551615 is outside 0..=600000"]);
    assert_eq!(ok(&[("SHUTDOWN_TIMEOUT_MS", "600000")]).shutdown_timeout, Duration::from_secs(600));
}

/// `--check-config` shows each value as it would be given: its output, read back as variables,
/// is the same configuration. Every variable has its line but those whose value another line
/// shows (`KAFKA_TOPIC` in the per-type topics, the password file's content in
/// `KAFKA_PASSWORD`, `KAFKA_PROPS` as `kafka[...]` lines).
#[test]
fn check_config_output_reads_back_as_the_same_configuration() {
    let given = [
        ("SYMBOLS", "btcusdt,币安人生USDT"),
        ("STREAMS", "trade,kline_1m,depth@100ms"),
        ("KAFKA_TOPIC", "raw"),
        ("KAFKA_TOPIC_KLINE", "candles"),
        ("KAFKA_USERNAME", "u"),
        ("KAFKA_PASSWORD", "p"),
        ("KAFKA_SASL_MECHANISM", "scram-sha-512"),
        ("PROM_PORT", "9100"),
        ("BINANCE_WS_URL", "ws://[::1]:9001/stream"),
        ("PIN_CORE", "3"),
        ("PRODUCER_CORE", "none"),
        ("LOOP_MODE", "busy-poll"),
        ("SINK", "stdout"),
        ("LOG_FORMAT", "JSON"),
        ("BACKFILL", "no"),
        ("RECOVER_FROM_KAFKA", "false"),
        ("ORDERING", "Strict"),
        ("ORDERING_MAX_WAIT_MS", "750"),
        ("WS_STALE_MS", "1000"),
    ];
    let shown = ok(&given).render();
    let lines: Vec<(&str, &str)> =
        shown.lines().map(|l| l.split_once(' ').map_or((l, ""), |(k, v)| (k, v.trim()))).collect();
    let keys: Vec<&str> = lines.iter().map(|(k, _)| *k).collect();
    let shown_elsewhere = ["KAFKA_TOPIC", "KAFKA_PASSWORD_FILE", "KAFKA_PROPS", "USDM_KAFKA_TOPIC"];
    let mut want: Vec<&str> = VARS.iter().map(|v| v.env).filter(|e| !shown_elsewhere.contains(e)).collect();
    want.push("connections");
    assert_eq!(keys, want, "{shown}");
    // The password is shown masked: give it again.
    let mut back: Vec<(&str, &str)> = lines.iter().filter(|(k, _)| *k != "KAFKA_PASSWORD").copied().collect();
    back.push(("KAFKA_PASSWORD", "p"));
    assert_eq!(ok(&back).render(), shown);
}

/// Every default reaches its field: validation starts from placeholders that differ from every
/// default, and a variable's `apply` that dropped its value would leave one in place.
#[test]
fn every_default_reaches_its_field() {
    let blank = build::Build::new(None, &[]).cfg;
    let defaults = ok(&[]);
    for var in VARS.iter().filter(|v| matches!(v.unset, Unset::Default(_))) {
        let (got, placeholder) = (build::shown(&defaults, var), build::shown(&blank, var));
        // KAFKA_TOPIC shows in the per-type topics (defaults_match_the_original_design).
        if !got.is_empty() {
            assert_ne!(got, placeholder, "{} kept its placeholder", var.env);
        }
    }
}
