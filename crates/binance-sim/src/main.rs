//! The Binance simulator as a process: `binance-sim --listen 127.0.0.1:9001 --rate 20000`.
//! Prints `LISTENING <ws url>`, `REST <http url>` and `DATA_API <http url>` on stdout once it
//! accepts connections, and with `--usdm` the USD-M futures market's `USDM_WS <ws url>` and
//! `USDM_REST <http url>`.

use std::time::Duration;

use binance_sim::{
    spawn, Cadence, Mute, MuteUntil, RestDown, RestOutage, Silence, SimConfig, Waf, WafScope, DEFAULT_DEPTH_LEVELS,
    MAX_DEPTH_LEVELS,
};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "binance-sim", about = "A Binance market-data WebSocket and REST simulator for loopback tests")]
struct Args {
    /// Address to listen on (port 0 = any free port); both REST listeners take free ports of it
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: String,
    /// Symbols, comma-separated (lower-cased; UTF-8 listings such as 币安人生usdt welcome)
    #[arg(long, default_value = "btcusdt,ethusdt,solusdt")]
    symbols: String,
    /// Trades per second over all symbols
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    /// Events per second per symbol for aggTrade, kline, bookTicker and depth streams
    #[arg(long, default_value_t = 2.0)]
    aux_rate: f64,
    /// One symbol's own trade (and aggTrade) rate: SYMBOL=PER_SECOND; repeatable
    #[arg(long, value_parser = parse_symbol_rate)]
    symbol_rate: Vec<(String, Cadence)>,
    /// An illiquid symbol trading once every MIN..MAX seconds (each gap drawn from --seed):
    /// SYMBOL=MIN..MAX, e.g. illqusdt=30..120; repeatable
    #[arg(long, value_parser = parse_symbol_every)]
    symbol_every: Vec<(String, Cadence)>,
    /// Seed of the order book and of --symbol-every gaps
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How trades arrive: even, poisson (seeded), even:K or poisson:K (K messages per write),
    /// burst:N; unset: every symbol on one beat, sent on a tick
    #[arg(long)]
    arrival: Option<binance_sim::Arrival>,
    /// Price levels per side of each order book, at most (1 to 5000)
    #[arg(long, default_value_t = DEFAULT_DEPTH_LEVELS, value_parser = parse_depth_levels)]
    depth_levels: usize,
    /// Seconds the market generates events (from the first subscription); 0 = forever
    #[arg(long, default_value_t = 0.0)]
    duration_secs: f64,
    /// Exit after this many seconds; 0 = run until killed
    #[arg(long, default_value_t = 0.0)]
    exit_after_secs: f64,
    /// Server ping period, ms
    #[arg(long, default_value_t = 20_000)]
    ping_interval_ms: u64,
    /// Close the connection when a pong is this late, ms
    #[arg(long, default_value_t = 60_000)]
    pong_timeout_ms: u64,
    /// Serve wss:// with a generated self-signed certificate
    #[arg(long)]
    tls: bool,
    /// The only API key the SBE endpoint (printed as `SBE <url>`) accepts in X-MBX-APIKEY; unset:
    /// any non-empty key (an upgrade without one is refused with 401 either way)
    #[arg(long)]
    sbe_api_key: Option<String>,
    /// Where to write the certificate PEM (with --tls), for the client's TLS_CA_FILE
    #[arg(long)]
    cert_out: Option<String>,
    /// Close each connection after this many seconds (Binance: 86400); 0 = never
    #[arg(long, default_value_t = 0.0)]
    connection_lifetime_secs: f64,
    /// Announce serverShutdown this many seconds before the lifetime ends; 0 = no notice
    #[arg(long, default_value_t = 0.0)]
    shutdown_notice_secs: f64,
    /// Leave trades out of the stream (REST keeps them): PERIOD:LEN drops the last LEN of every PERIOD
    #[arg(long, value_parser = parse_window)]
    stream_skip: Option<(u64, u64)>,
    /// Trades missing from REST too, PERIOD:LEN
    #[arg(long, value_parser = parse_window)]
    rest_missing: Option<(u64, u64)>,
    /// Leave diff-depth events out of both depth streams, PERIOD:LEN (the U/u chain breaks; a
    /// client must resync from REST)
    #[arg(long, value_parser = parse_window)]
    depth_skip: Option<(u64, u64)>,
    /// Connections go silent this many seconds after opening: no data, no pings, no close, TCP
    /// left open (a half-dead peer); unset = never
    #[arg(long, value_parser = parse_secs)]
    silence_after_secs: Option<Duration>,
    /// Which connection goes silent: N (the N-th accepted, from 1) or `all`
    #[arg(long, default_value = "all", value_parser = parse_connection)]
    silence_connection: Which,
    /// A silent connection leaves what the client sends unread (default: read and discard it)
    #[arg(long, requires = "silence_after_secs")]
    silence_unread: bool,
    /// Mute this stream (e.g. btcusdt@aggTrade) on a connection while pings, replies and other
    /// streams go on
    #[arg(long)]
    mute_stream: Option<String>,
    /// Seconds after a connection opens that the stream stops
    #[arg(long, default_value = "0", value_parser = parse_secs, requires = "mute_stream")]
    mute_after_secs: Duration,
    /// Which connection the stream stops on: N (the N-th accepted, from 1) or `all`
    #[arg(long, default_value = "all", value_parser = parse_connection, requires = "mute_stream")]
    mute_connection: Which,
    /// What brings the muted stream back: `resubscribe` (a SUBSCRIBE of it on the same
    /// connection) or `reconnect` (only a new connection)
    #[arg(long, default_value = "resubscribe", value_parser = parse_mute_until, requires = "mute_stream")]
    mute_until: MuteUntil,
    /// Answer 403 (a web-application-firewall block) this many seconds after the start
    #[arg(long, value_parser = parse_secs)]
    waf_after_secs: Option<Duration>,
    /// How long the 403 block lasts, seconds
    #[arg(long, default_value = "60", value_parser = parse_secs, requires = "waf_after_secs")]
    waf_secs: Duration,
    /// What the block covers, comma-separated: rest, ws, data-api
    #[arg(long, default_value = "rest,ws", value_parser = parse_waf_scope, requires = "waf_after_secs")]
    waf_scope: WafScope,
    /// Take the main REST listener down this many seconds after the start (data-api stays up)
    #[arg(long, value_parser = parse_secs)]
    rest_down_after_secs: Option<Duration>,
    /// How long it stays down, seconds
    #[arg(long, default_value = "60", value_parser = parse_secs, requires = "rest_down_after_secs")]
    rest_down_secs: Duration,
    /// How: `refused` (its socket closed) or a 5xx status to answer every request with
    #[arg(long, default_value = "refused", value_parser = parse_rest_down, requires = "rest_down_after_secs")]
    rest_down_how: RestDown,
    #[command(flatten)]
    usdm: UsdmArgs,
}

/// A USD-M futures market beside spot, on free ports of --listen's address (--seed,
/// --depth-levels, --duration-secs and --tls are shared).
#[derive(clap::Args, Debug)]
struct UsdmArgs {
    /// Serve a Binance USD-M futures market too: /public, /market and the retired root path,
    /// /fapi/v1/ REST, futures limits
    #[arg(long)]
    usdm: bool,
    /// USD-M symbols, comma-separated (default: --symbols)
    #[arg(long, requires = "usdm")]
    usdm_symbols: Option<String>,
    /// USD-M aggregate trades per second over all symbols
    #[arg(long, default_value_t = 300.0)]
    usdm_rate: f64,
    /// Events per second per symbol for the USD-M depth, bookTicker and kline streams
    #[arg(long, default_value_t = 2.0)]
    usdm_aux_rate: f64,
    /// USD-M server ping period, ms (Binance: 3 minutes)
    #[arg(long, default_value_t = 180_000)]
    usdm_ping_interval_ms: u64,
    /// Close a USD-M connection when a pong is this late, ms (Binance: 10 minutes)
    #[arg(long, default_value_t = 600_000)]
    usdm_pong_timeout_ms: u64,
    /// Leave USD-M aggregate trades out of the stream (REST keeps them), PERIOD:LEN
    #[arg(long, value_parser = parse_window, requires = "usdm")]
    usdm_agg_skip: Option<(u64, u64)>,
    /// USD-M aggregate trades missing from REST too, PERIOD:LEN
    #[arg(long, value_parser = parse_window, requires = "usdm")]
    usdm_rest_missing: Option<(u64, u64)>,
    /// Leave USD-M diff-depth events out of the depth streams, PERIOD:LEN (the pu chain breaks)
    #[arg(long, value_parser = parse_window, requires = "usdm")]
    usdm_depth_skip: Option<(u64, u64)>,
    /// Close each USD-M connection after this many seconds; 0 = never
    #[arg(long, default_value_t = 0.0)]
    usdm_connection_lifetime_secs: f64,
}

/// The USD-M section `a` asks for, sharing `spot`'s seed, depth and duration.
fn usdm_config(a: &UsdmArgs, spot: &SimConfig) -> Option<Box<SimConfig>> {
    a.usdm.then(|| {
        Box::new(SimConfig {
            symbols: match &a.usdm_symbols {
                Some(s) => s.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect(),
                None => spot.symbols.clone(),
            },
            trade_rate: a.usdm_rate,
            aux_rate: a.usdm_aux_rate,
            seed: spot.seed,
            depth_levels: spot.depth_levels,
            duration: spot.duration,
            ping_interval: Duration::from_millis(a.usdm_ping_interval_ms),
            pong_timeout: Duration::from_millis(a.usdm_pong_timeout_ms),
            stream_skip: a.usdm_agg_skip,
            rest_missing: a.usdm_rest_missing,
            depth_skip: a.usdm_depth_skip,
            connection_lifetime: secs(a.usdm_connection_lifetime_secs),
            ..SimConfig::usdm_market()
        })
    })
}

/// A connection number from 1, or `None` for all.
#[derive(Clone, Copy, Debug)]
struct Which(Option<u64>);

fn parse_connection(s: &str) -> Result<Which, String> {
    match s {
        "all" => Ok(Which(None)),
        n => match n.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Which(Some(n))),
            _ => Err("expected `all` or a connection number from 1".into()),
        },
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1e9).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err("expected seconds, 0 to 1e9".into()),
    }
}

fn parse_window(s: &str) -> Result<(u64, u64), String> {
    let (p, l) = s.split_once(':').ok_or("expected PERIOD:LEN")?;
    Ok((p.parse().map_err(|_| "bad PERIOD")?, l.parse().map_err(|_| "bad LEN")?))
}

fn parse_depth_levels(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_DEPTH_LEVELS).contains(&n) => Ok(n),
        _ => Err(format!("expected 1 to {MAX_DEPTH_LEVELS}")),
    }
}

fn parse_symbol_rate(s: &str) -> Result<(String, Cadence), String> {
    let (sym, rate) = s.split_once('=').ok_or("expected SYMBOL=PER_SECOND")?;
    match rate.parse::<f64>() {
        Ok(r) if (0.0..=1e7).contains(&r) => Ok((sym.trim().to_lowercase(), Cadence::PerSecond(r))),
        _ => Err("expected a rate from 0 to 1e7 trades a second".into()),
    }
}

fn parse_symbol_every(s: &str) -> Result<(String, Cadence), String> {
    let (sym, range) = s.split_once('=').ok_or("expected SYMBOL=MIN..MAX")?;
    let (min, max) = range.split_once("..").ok_or("expected SYMBOL=MIN..MAX (seconds)")?;
    let (min, max) = (parse_secs(min)?, parse_secs(max)?);
    if min > max || max.is_zero() {
        return Err("expected MIN <= MAX, MAX above 0".into());
    }
    Ok((sym.trim().to_lowercase(), Cadence::Every { min, max }))
}

fn parse_mute_until(s: &str) -> Result<MuteUntil, String> {
    match s {
        "resubscribe" => Ok(MuteUntil::Resubscribed),
        "reconnect" => Ok(MuteUntil::Reconnected),
        _ => Err("expected `resubscribe` or `reconnect`".into()),
    }
}

fn parse_waf_scope(s: &str) -> Result<WafScope, String> {
    let mut scope = WafScope::default();
    for part in s.split(',').map(str::trim) {
        match part {
            "rest" => scope.rest = true,
            "ws" => scope.ws = true,
            "data-api" => scope.data_api = true,
            other => return Err(format!("unknown `{other}`: expected rest, ws, data-api")),
        }
    }
    Ok(scope)
}

fn parse_rest_down(s: &str) -> Result<RestDown, String> {
    match s {
        "refused" => Ok(RestDown::Refused),
        n => match n.parse::<u16>() {
            Ok(code) if (500..=599).contains(&code) => Ok(RestDown::Status(code)),
            _ => Err("expected `refused` or a status from 500 to 599".into()),
        },
    }
}

fn secs(v: f64) -> Option<Duration> {
    (v > 0.0).then(|| Duration::from_secs_f64(v))
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let mut cfg = SimConfig {
        symbols: a.symbols.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect(),
        trade_rate: a.rate,
        aux_rate: a.aux_rate,
        cadences: a.symbol_rate.into_iter().chain(a.symbol_every).collect(),
        seed: a.seed,
        depth_levels: a.depth_levels,
        duration: (a.duration_secs > 0.0).then(|| Duration::from_secs_f64(a.duration_secs)),
        ping_interval: Duration::from_millis(a.ping_interval_ms),
        pong_timeout: Duration::from_millis(a.pong_timeout_ms),
        tls: a.tls,
        sbe_api_key: a.sbe_api_key.clone(),
        arrival: a.arrival,
        from_start: false,
        first_from_start: false,
        connection_lifetime: secs(a.connection_lifetime_secs),
        shutdown_notice: secs(a.shutdown_notice_secs),
        stream_skip: a.stream_skip,
        rest_missing: a.rest_missing,
        depth_skip: a.depth_skip,
        silence: a.silence_after_secs.map(|after| Silence {
            connection: a.silence_connection.0,
            after,
            read: !a.silence_unread,
        }),
        mutes: a
            .mute_stream
            .map(|stream| Mute {
                stream,
                connection: a.mute_connection.0,
                after: a.mute_after_secs,
                until: a.mute_until,
            })
            .into_iter()
            .collect(),
        waf: a.waf_after_secs.map(|after| Waf { scope: a.waf_scope, after, len: a.waf_secs }),
        rest_outage: a.rest_down_after_secs.map(|after| RestOutage {
            how: a.rest_down_how,
            after,
            len: a.rest_down_secs,
        }),
        ..SimConfig::default()
    };
    cfg.usdm = usdm_config(&a.usdm, &cfg);
    let sim = match spawn(cfg, &a.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("binance-sim: cannot listen on {}: {e}", a.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    if let (Some(pem), Some(path)) = (&sim.cert_pem, &a.cert_out) {
        if let Err(e) = std::fs::write(path, pem) {
            eprintln!("binance-sim: cannot write {path}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    println!("LISTENING {}", sim.ws_url());
    println!("SBE {}", sim.sbe_url());
    println!("REST {}", sim.rest_url());
    println!("DATA_API {}", sim.data_api_url());
    if let Some(u) = &sim.usdm {
        println!("USDM_WS {}", u.ws_url());
        println!("USDM_REST {}", u.rest_url());
    }
    let start = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if a.exit_after_secs > 0.0 && start.elapsed().as_secs_f64() >= a.exit_after_secs {
            return std::process::ExitCode::SUCCESS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_flags_read_into_the_configuration() {
        let a = Args::try_parse_from([
            "binance-sim",
            "--symbols",
            "BTCUSDT,币安人生USDT",
            "--symbol-every",
            "币安人生USDT=30..120",
            "--symbol-rate",
            "btcusdt=5000",
            "--depth-levels",
            "5000",
            "--depth-skip",
            "100:3",
            "--mute-stream",
            "btcusdt@aggTrade",
            "--mute-after-secs",
            "2.5",
            "--mute-connection",
            "1",
            "--mute-until",
            "reconnect",
            "--waf-after-secs",
            "0",
            "--waf-scope",
            "ws,data-api",
            "--rest-down-after-secs",
            "5",
            "--rest-down-how",
            "502",
        ])
        .unwrap();
        assert_eq!(a.symbol_every[0].0, "币安人生usdt");
        assert_eq!(a.symbol_every[0].1, Cadence::Every { min: Duration::from_secs(30), max: Duration::from_secs(120) });
        assert_eq!(a.symbol_rate[0], ("btcusdt".into(), Cadence::PerSecond(5000.0)));
        assert_eq!((a.depth_levels, a.depth_skip), (5000, Some((100, 3))));
        assert_eq!(
            (a.mute_after_secs, a.mute_connection.0, a.mute_until),
            (Duration::from_millis(2500), Some(1), MuteUntil::Reconnected)
        );
        assert_eq!(a.waf_scope, WafScope { rest: false, ws: true, data_api: true });
        assert_eq!((a.rest_down_how, a.rest_down_secs), (RestDown::Status(502), Duration::from_secs(60)));
        assert!(usdm_config(&a.usdm, &SimConfig::default()).is_none(), "no USD-M unless asked");
        for bad in [
            &["--depth-levels", "5001"][..],
            &["--usdm-symbols", "btcusdt"],
            &["--usdm", "--usdm-depth-skip", "3"],
            &["--symbol-every", "x=120..30"],
            &["--mute-until", "never", "--mute-stream", "a@trade"],
            &["--rest-down-after-secs", "1", "--rest-down-how", "404"],
            &["--waf-after-secs", "1", "--waf-scope", "rest,dns"],
        ] {
            assert!(
                Args::try_parse_from(std::iter::once("binance-sim").chain(bad.iter().copied())).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn usdm_flags_read_into_the_usdm_section() {
        let a = Args::try_parse_from([
            "binance-sim",
            "--symbols",
            "btcusdt,ethusdt",
            "--seed",
            "7",
            "--usdm",
            "--usdm-rate",
            "1000",
            "--usdm-ping-interval-ms",
            "500",
            "--usdm-agg-skip",
            "50:2",
            "--usdm-depth-skip",
            "40:4",
        ])
        .unwrap();
        let spot = SimConfig { symbols: vec!["btcusdt".into(), "ethusdt".into()], seed: 7, ..SimConfig::default() };
        let u = usdm_config(&a.usdm, &spot).expect("--usdm");
        assert_eq!((u.symbols.as_slice(), u.seed, u.trade_rate), (spot.symbols.as_slice(), 7, 1000.0));
        assert_eq!((u.ping_interval, u.pong_timeout), (Duration::from_millis(500), Duration::from_secs(600)));
        assert_eq!((u.stream_skip, u.depth_skip, u.rest_missing), (Some((50, 2)), Some((40, 4)), None));
        assert_eq!((u.max_incoming_per_sec, u.rest_weight_limit), (10, 2400), "futures limits");
        let a = Args::try_parse_from(["binance-sim", "--usdm", "--usdm-symbols", "SOLUSDT, xrpusdt"]).unwrap();
        assert_eq!(usdm_config(&a.usdm, &SimConfig::default()).unwrap().symbols, ["solusdt", "xrpusdt"]);
    }
}
