//! Wiring only: configuration -> logging -> shared threads (signals, metrics) -> one lane per
//! market (`lane.rs`) -> join -> exit code.

use std::process::ExitCode;

use tracing::{error, info};

use marketflow_ingestor::cli::Cli;
use marketflow_ingestor::config::{Config, LogFormat, EXIT_CONFIG};
use marketflow_ingestor::lane::Lane;
use marketflow_ingestor::shutdown::{signal_handlers, Shutdown};
use marketflow_ingestor::supervise::{Supervisor, EXIT_THREAD_FAILED};
use marketflow_ingestor::{binance, http, pinning};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let cfg = match cli.to_raw().validate() {
        Ok(c) => c,
        Err(errs) => {
            eprint!("{errs}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.check_config {
        print!("{}", cfg.render());
        if let Some(split) = cfg.transport_split() {
            println!("{split}");
        }
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    init_logging(cfg.log_format);
    match run(cfg) {
        Ok(code) => code,
        Err(e) => {
            error!("fatal: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr so that `--sink stdout` keeps stdout for records only.
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().flatten_event(true).init(),
        LogFormat::Text => b.init(),
    }
}

/// The lanes `cfg` asks for: spot's (unless `SYMBOLS` is empty), then USD-M's (when
/// `USDM_SYMBOLS` is set).
fn lanes(cfg: &Config) -> Vec<Lane> {
    let mut lanes = Vec::new();
    if let Some(c) = cfg.spot_lane() {
        lanes.push(Lane::new("spot", "", c, &binance::venue::VENUE, &binance::rest::API));
    }
    if let Some(c) = cfg.usdm_lane() {
        lanes.push(Lane::new("usdm", "USDM_", c, &binance::usdm::venue::VENUE, &binance::usdm::rest::API));
    }
    lanes
}

fn run(cfg: Config) -> anyhow::Result<ExitCode> {
    info!(version = marketflow_ingestor::cli::LONG_VERSION, "starting");
    let allowed = pinning::allowed_cores();
    let lanes = lanes(&cfg);
    let markets: Vec<_> = lanes.iter().map(|l| (l.name, l.metrics.clone())).collect();
    let shutdown = Shutdown::new();
    // Every helper thread is supervised: a death in any lane takes readiness down (the first
    // lane's health records it, and /readyz holds for all lanes) and the process out.
    let sup = Supervisor::new(markets[0].1.clone(), shutdown.clone());
    sup.install_panic_hook();
    let signals = signal_handlers(shutdown.clone())?;
    sup.spawn("signals", move || {
        signals();
        Ok(())
    })?;

    // A port already taken or not ours to bind is the operator's to fix: exit 64, not 1.
    let (listener, addr) = match http::bind(&format!("{}:{}", cfg.metrics_bind, cfg.prom_port)) {
        Ok(s) => s,
        Err(e) => {
            error!("METRICS_BIND/PROM_PORT: metrics server {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    info!(%addr, "metrics listening");
    let http_thread = {
        let s = shutdown.clone();
        sup.spawn("metrics", move || {
            http::serve_markets(listener, markets, s, http::Limits::default())
                .map_err(|e| format!("metrics server: {e}"))
        })?
    };

    let mut running = Vec::new();
    let mut avoid = None;
    for lane in lanes {
        match lane.start(&sup, &shutdown, &allowed, avoid) {
            Ok(r) => {
                avoid = avoid.or(r.loop_core);
                running.push(r);
            }
            Err(e) => {
                // The lanes already started stop with the process.
                shutdown.trigger();
                return Ok(e.exit_code());
            }
        }
    }

    // Shutdown (a signal, or a thread's failure in any lane) stops every lane; each drains and
    // flushes its own sink.
    let unflushed: usize = running.into_iter().map(|r| r.join().unflushed).sum();
    shutdown.trigger();
    let _ = http_thread.join();
    Ok(if let Some(f) = sup.failed() {
        error!(thread = %f.thread, exit_code = EXIT_THREAD_FAILED, "exiting after a thread failure");
        ExitCode::from(EXIT_THREAD_FAILED)
    } else if unflushed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
