//! The Binance simulator as a process: `binance-sim --listen 127.0.0.1:9001 --rate 20000`.
//! Prints `LISTENING <ws url>` and `REST <http url>` on stdout once it accepts connections.

use std::time::Duration;

use binance_sim::{spawn, Silence, SimConfig};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "binance-sim", about = "A Binance market-data WebSocket simulator for loopback tests")]
struct Args {
    /// Address to listen on (port 0 = any free port)
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: String,
    /// Lower-case symbols, comma-separated
    #[arg(long, default_value = "btcusdt,ethusdt,solusdt")]
    symbols: String,
    /// Trades per second over all symbols
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    /// Events per second per symbol for aggTrade, kline, bookTicker and depth streams
    #[arg(long, default_value_t = 2.0)]
    aux_rate: f64,
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
    let cfg = SimConfig {
        symbols: a.symbols.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect(),
        trade_rate: a.rate,
        aux_rate: a.aux_rate,
        duration: (a.duration_secs > 0.0).then(|| Duration::from_secs_f64(a.duration_secs)),
        ping_interval: Duration::from_millis(a.ping_interval_ms),
        pong_timeout: Duration::from_millis(a.pong_timeout_ms),
        tls: a.tls,
        connection_lifetime: secs(a.connection_lifetime_secs),
        shutdown_notice: secs(a.shutdown_notice_secs),
        stream_skip: a.stream_skip,
        rest_missing: a.rest_missing,
        silence: a.silence_after_secs.map(|after| Silence {
            connection: a.silence_connection.0,
            after,
            read: !a.silence_unread,
        }),
        ..SimConfig::default()
    };
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
    println!("REST {}", sim.rest_url());
    let start = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if a.exit_after_secs > 0.0 && start.elapsed().as_secs_f64() >= a.exit_after_secs {
            return std::process::ExitCode::SUCCESS;
        }
    }
}
