//! Wiring only: configuration -> logging -> threads (pinned) -> join -> exit code.

use std::process::ExitCode;

use tracing::{error, info, warn};

use marketflow_ingestor::backfill::{self, Backfiller};
use marketflow_ingestor::cli::Cli;
use marketflow_ingestor::config::{Config, LogFormat, OrderingMode, SinkKind, EXIT_CONFIG};
use marketflow_ingestor::event_loop::EventLoop;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::Pipeline;
use marketflow_ingestor::shutdown::{signal_handlers, Shutdown};
use marketflow_ingestor::sink::{
    run_producer, BookSettings, Books, KafkaSink, NullSink, Sink, StdoutSink, StrictOrder,
};
use marketflow_ingestor::supervise::{Supervisor, EXIT_THREAD_FAILED};
use marketflow_ingestor::{binance, handoff, http, pinning, recovery, ring, tls};

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

fn run(cfg: Config) -> anyhow::Result<ExitCode> {
    info!(version = marketflow_ingestor::cli::LONG_VERSION, "starting");
    let allowed = pinning::allowed_cores();
    let loop_core = match pinning::choose(cfg.pin_core, &allowed, None) {
        Ok(c) => c,
        Err(e) => {
            error!("PIN_CORE: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let producer_core = match pinning::choose(cfg.producer_core, &allowed, loop_core) {
        Ok(c) => c,
        Err(e) => {
            error!("PRODUCER_CORE: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    info!(?allowed, ?loop_core, ?producer_core, "cores");

    // The one venue this build serves; everything below takes it as data.
    let venue = &binance::venue::VENUE;
    let metrics = Metrics::new(&cfg.symbols);
    metrics.health.starting.store(true, std::sync::atomic::Ordering::Relaxed);
    let shutdown = Shutdown::new();
    // Every helper thread is supervised: a death takes readiness down and the process out.
    let sup = Supervisor::new(metrics.clone(), shutdown.clone());
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
        let (m, s) = (metrics.clone(), shutdown.clone());
        sup.spawn("metrics", move || {
            http::serve(listener, m, s, http::Limits::default()).map_err(|e| format!("metrics server: {e}"))
        })?
    };

    // Gaps go to the backfill thread (jobs, bounded), which hands fetched records to the producer
    // thread (bounded too). The order books ask it for REST snapshots, even with BACKFILL=off.
    let (job_tx, job_rx) = backfill::queue::channel(cfg.symbols.len());
    let (backfilled_tx, backfilled_rx) = crossbeam_channel::bounded(10_000);
    let (seed_tx, seed_rx) = handoff::depth::channel();
    let books = cfg.has_depth().then(|| {
        let settings = BookSettings { levels: cfg.depth_levels, interval: cfg.depth_snapshot_interval };
        Books::new(venue.exchange, &metrics, settings, job_tx.clone(), seed_rx)
    });
    let rest_needed = cfg.backfill || books.is_some();
    let job_tx = cfg.backfill.then_some(job_tx);
    let backfill_thread = if rest_needed {
        let b = Backfiller::new(
            &cfg,
            venue,
            &marketflow_ingestor::binance::rest::API,
            metrics.clone(),
            metrics.health.clone(),
            backfilled_tx,
            job_rx,
            shutdown.clone(),
        )
        .with_depth_seeds(seed_tx, cfg.depth_levels);
        Some(sup.spawn("backfill", move || {
            b.run();
            Ok(())
        })?)
    } else {
        drop(backfilled_tx);
        None
    };

    let sink: Box<dyn Sink> = match cfg.sink {
        // What librdkafka refuses only at creation (e.g. `acks=1` with idempotence) is a bad
        // configuration too.
        SinkKind::Kafka => match KafkaSink::new(&cfg, venue, metrics.clone(), job_tx.clone()) {
            Ok(s) => Box::new(s),
            Err(e) => {
                error!("kafka configuration (KAFKA_* settings): {e}");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
        },
        SinkKind::Stdout => Box::new(StdoutSink::new(metrics.clone())),
        SinkKind::Null => Box::new(NullSink::new(metrics.clone())),
    };

    let tls = if cfg.ws.tls { Some(tls::client_config(cfg.tls_ca_file.as_deref())?) } else { None };
    let (writer, reader) = ring::ring(cfg.ring_bytes);
    let mut pipeline = Pipeline::new(venue, writer, metrics.clone(), job_tx);
    pipeline.set_max_jump(cfg.backfill_max_ids);
    pipeline.set_time_unit(cfg.time_unit);
    let recovered = if cfg.sink == SinkKind::Kafka && cfg.recover_from_kafka {
        recovery::recover(&cfg, &metrics.symbols)
    } else {
        vec![]
    };
    for &(symbol_idx, kind, last) in &recovered {
        pipeline.seed(symbol_idx, kind, last);
    }
    // ORDERING=strict: the producer thread holds live records behind open gaps, from the same
    // recovered positions as the event loop's sequences.
    let sink: Box<dyn Sink> = match cfg.ordering {
        OrderingMode::Default => sink,
        OrderingMode::Strict => {
            let mut strict = StrictOrder::new(sink, venue.exchange, metrics.clone(), cfg.ordering_max_wait);
            for &(symbol_idx, kind, last) in &recovered {
                strict.seed(symbol_idx, kind, last);
            }
            Box::new(strict)
        }
    };
    let event_loop = EventLoop::new(&cfg, venue, tls, pipeline, metrics.clone(), shutdown.clone())?;

    let producer = {
        let (m, s, t) = (metrics.clone(), shutdown.clone(), cfg.shutdown_timeout);
        sup.spawn("producer", move || {
            if let Some(c) = producer_core {
                if !pinning::pin_current(c) {
                    warn!(core = c, "could not pin the producer thread");
                }
            }
            Ok(run_producer(reader, Some(backfilled_rx), sink, m, t, s, books))
        })?
    };
    let loop_thread = sup.spawn("event-loop", move || {
        if let Some(c) = loop_core {
            if !pinning::pin_current(c) {
                warn!(core = c, "could not pin the event loop");
            }
        }
        event_loop.run().map_err(|e| format!("event loop failed: {e}"))
    })?;

    // Supervised threads never unwind into their join: a failure is recorded, not returned.
    let _ = loop_thread.join();
    if let Some(b) = backfill_thread {
        let _ = b.join();
    }
    let report = producer.join().ok().flatten().unwrap_or_default();
    shutdown.trigger();
    let _ = http_thread.join();
    info!(
        sent = metrics.sent_total(),
        handed_over = report.handed_over,
        rejected = report.rejected,
        unflushed = report.unflushed,
        "stopped"
    );
    Ok(if let Some(f) = sup.failed() {
        error!(thread = %f.thread, exit_code = EXIT_THREAD_FAILED, "exiting after a thread failure");
        ExitCode::from(EXIT_THREAD_FAILED)
    } else if report.unflushed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
