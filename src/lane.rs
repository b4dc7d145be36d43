//! One market's pipeline, a *lane*: its own configuration (the process's, with the market's
//! symbols, streams, endpoints and topics), metrics, event-loop thread, ring, producer thread and
//! sink (an rdkafka producer of its own), backfill thread and order books. A process runs one
//! lane per configured market (spot, USD-M futures); what they share is outside: the supervisor
//! (a thread death in any lane takes readiness down and the process out), the shutdown (it stops
//! and flushes every lane) and the metrics server (every lane's registry in one exposition).

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::{error, info, warn};

use crate::backfill::{self, Backfiller};
use crate::config::{Config, OrderingMode, SinkKind, EXIT_CONFIG};
use crate::event_loop::{BinaryLane, EventLoop, Route};
use crate::metrics::{Detail, Metrics};
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;
use crate::sink::{
    run_producer, BookSettings, Books, KafkaSink, NullSink, ProducerReport, Sink, StdoutSink, StrictOrder,
};
use crate::supervise::Supervisor;
use crate::time_unit::TimeUnit;
use crate::venue::rest::RestApi;
use crate::venue::Venue;
use crate::ws::Dialer;
use crate::{handoff, pinning, recovery, ring, tls, transport};

/// The market whose threads and series keep the seed's names (no prefix, no `market` label).
pub const FIRST_MARKET: &str = "spot";

/// One market's pipeline, before its threads start.
pub struct Lane {
    /// `spot` or `usdm`: the `market` label of its series and the prefix of its threads' names.
    pub name: &'static str,
    /// Prefix of the variables that set this lane's own values (`""`, `USDM_`), for messages.
    pub env_prefix: &'static str,
    pub cfg: Config,
    pub venue: &'static Venue,
    /// The venue's REST calls, weights and depth-chaining rule: the backfill thread and the order
    /// books use them.
    pub rest: &'static RestApi,
    pub metrics: Arc<Metrics>,
}

/// Why a lane did not start.
#[derive(Debug)]
pub enum StartError {
    /// A setting the process cannot honour (a core, a librdkafka property): the operator's to
    /// fix, already logged; the process exits [`EXIT_CONFIG`].
    Config,
    Failed(anyhow::Error),
}

impl StartError {
    pub fn exit_code(self) -> ExitCode {
        match self {
            StartError::Config => ExitCode::from(EXIT_CONFIG),
            StartError::Failed(e) => {
                error!("fatal: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> StartError {
        StartError::Failed(e.into())
    }
}

/// A lane's threads, running until shutdown.
pub struct Running {
    pub name: &'static str,
    pub metrics: Arc<Metrics>,
    /// The core its event loop was pinned to, which the next lane's `auto` avoids.
    pub loop_core: Option<usize>,
    loop_thread: JoinHandle<Option<()>>,
    backfill_thread: Option<JoinHandle<Option<()>>>,
    /// Refreshes the binary transport's decimal scales (`transport/scales.rs`).
    scales_thread: Option<JoinHandle<Option<()>>>,
    producer: JoinHandle<Option<ProducerReport>>,
}

impl Lane {
    /// A lane of `cfg` (see [`Config::spot_lane`], [`Config::usdm_lane`]); its metrics carry
    /// `market="<name>"` unless it is the [`FIRST_MARKET`], whose series stay the seed's.
    pub fn new(
        name: &'static str,
        env_prefix: &'static str,
        cfg: Config,
        venue: &'static Venue,
        rest: &'static RestApi,
    ) -> Lane {
        let market = (name != FIRST_MARKET).then_some(name);
        let detail = Detail::for_symbols(cfg.symbols.len(), cfg.metrics_symbol_detail_max);
        let metrics = Metrics::build(&cfg.symbols, market, detail);
        // Alive while start-up work (recovery from Kafka) runs before the event loop's first turn.
        metrics.health.starting.store(true, Ordering::Relaxed);
        Lane { name, env_prefix, cfg, venue, rest, metrics }
    }

    /// A span every log line of the lane's threads is written in, naming its market: none for
    /// the first market, whose lines stay the seed's.
    fn span(&self) -> tracing::Span {
        if self.name == FIRST_MARKET {
            tracing::Span::none()
        } else {
            // At error level, so that no log filter that lets a line through drops its market.
            tracing::error_span!("lane", market = self.name)
        }
    }

    /// This lane's name of a thread: the seed's for the first market, `<name>-<thread>` else.
    fn thread_name(&self, thread: &str) -> String {
        if self.name == FIRST_MARKET {
            thread.to_string()
        } else {
            format!("{}-{thread}", self.name)
        }
    }

    /// Starts the lane's threads under `sup`; `avoid` is a core another lane's event loop took.
    pub fn start(
        self,
        sup: &Supervisor,
        shutdown: &Shutdown,
        allowed: &[usize],
        avoid: Option<usize>,
    ) -> Result<Running, StartError> {
        let Lane { name, env_prefix, ref cfg, venue, rest, ref metrics } = self;
        let loop_core = pinning::choose(cfg.pin_core, allowed, avoid).map_err(|e| {
            error!("{env_prefix}PIN_CORE: {e}");
            StartError::Config
        })?;
        let producer_core = pinning::choose(cfg.producer_core, allowed, loop_core).map_err(|e| {
            error!("PRODUCER_CORE: {e}");
            StartError::Config
        })?;
        info!(market = name, ?allowed, ?loop_core, ?producer_core, "cores");

        // Gaps go to the backfill thread (jobs, bounded), which hands fetched records to the
        // producer thread (bounded too). The order books ask it for REST snapshots, even with
        // BACKFILL=off.
        let (job_tx, job_rx) = backfill::queue::channel(cfg.symbols.len());
        let (backfilled_tx, backfilled_rx) = crossbeam_channel::bounded(10_000);
        let (seed_tx, seed_rx) = handoff::depth::channel();
        let books = cfg.has_depth().then(|| {
            let settings = BookSettings { levels: cfg.depth_levels, interval: cfg.depth_snapshot_interval };
            Books::new(venue.exchange, metrics, settings, job_tx.clone(), seed_rx).with_depth_chain(rest.depth_chain)
        });
        let rest_needed = cfg.backfill || books.is_some();
        let job_tx = cfg.backfill.then_some(job_tx);
        let backfill_thread = if rest_needed {
            let b = Backfiller::new(
                cfg,
                venue,
                rest,
                metrics.clone(),
                metrics.health.clone(),
                backfilled_tx,
                job_rx,
                shutdown.clone(),
            )
            .with_depth_seeds(seed_tx, cfg.depth_levels);
            let span = self.span();
            Some(sup.spawn(&self.thread_name("backfill"), move || {
                let _lane = span.entered();
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
            SinkKind::Kafka => match KafkaSink::new(cfg, venue, metrics.clone(), job_tx.clone()) {
                Ok(s) => Box::new(s),
                Err(e) => {
                    error!(market = name, "kafka configuration (KAFKA_* settings): {e}");
                    return Err(StartError::Config);
                }
            },
            SinkKind::Stdout => Box::new(StdoutSink::new(metrics.clone())),
            SinkKind::Null => Box::new(NullSink::new(metrics.clone())),
        };

        // TRANSPORT=sbe: the binary streams on their own endpoint, the key on every upgrade, and
        // no `timeUnit` in their URLs (SBE times are always microseconds; records still carry
        // TIME_UNIT's), with the text streams to fall back on. Otherwise the text streams.
        let fetch = |call: &_| backfill::fetch_once(cfg, rest, metrics.clone(), call);
        let decision = transport::choose(cfg, venue, metrics, fetch);
        let tls = if cfg.ws.tls || (decision.binary.is_some() && cfg.sbe_ws.tls) {
            Some(tls::client_config(cfg.tls_ca_file.as_deref()).map_err(|e| StartError::Failed(e.into()))?)
        } else {
            None
        };
        let (writer, reader) = ring::ring(cfg.ring_bytes);
        let mut pipeline = Pipeline::new(venue, writer, metrics.clone(), job_tx);
        pipeline.set_max_jump(cfg.backfill_max_ids);
        pipeline.set_depth_chain(rest.depth_chain);
        pipeline.set_time_unit(cfg.time_unit);
        if let Some(b) = decision.binary {
            pipeline.set_binary_kinds(&cfg.streams, b.carried);
        }
        let recovered = if cfg.sink == SinkKind::Kafka && cfg.recover_from_kafka {
            recovery::recover(cfg, venue.exchange, &metrics.symbols)
        } else {
            vec![]
        };
        for &(symbol_idx, kind, last) in &recovered {
            pipeline.seed(symbol_idx, kind, last);
        }
        // ORDERING=strict: the producer thread holds live records behind open gaps, from the
        // same recovered positions as the event loop's sequences.
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
        let text_tls = tls.clone().filter(|_| cfg.ws.tls);
        let mut event_loop = EventLoop::new(cfg, venue, text_tls, pipeline, metrics.clone(), shutdown.clone())?;
        let mut scales_thread = None;
        if let Some(binary) = decision.binary {
            let (refresher, fresh, asks) = transport::scales::channels();
            let now = Instant::now();
            let schedule = transport::scales::Schedule::new(cfg.sbe_scales_refresh, decision.scales.is_some(), now);
            let (c, m, s, span) = (cfg.clone(), metrics.clone(), shutdown.clone(), self.span());
            scales_thread = Some(sup.spawn(&self.thread_name("scales"), move || {
                let _lane = span.entered();
                let fetch = |call: &_| backfill::fetch_once(&c, rest, m.clone(), call);
                transport::scales::run(binary, &c.symbols, schedule, fetch, fresh, asks, &s);
                Ok(())
            })?);
            let dialer =
                Dialer::new(cfg.sbe_ws.clone(), tls.filter(|_| cfg.sbe_ws.tls), cfg.ws_stale_after, cfg.ws_max_age)
                    .with_api_key(binary.key_header, cfg.sbe_api_key.clone());
            let route = Route { dialer, base_path: cfg.sbe_ws.path.clone(), unit: TimeUnit::Millis };
            event_loop = event_loop.with_binary(BinaryLane {
                route,
                binary,
                policy: transport::Policy::new(
                    cfg.sbe_max_failures,
                    cfg.sbe_retry_after,
                    decision.scales.is_some(),
                    now,
                ),
                scales: decision.scales,
                record_unit: cfg.time_unit,
                status: decision.status,
                refresher,
            });
        }

        let producer = {
            let (m, s, t, span) = (metrics.clone(), shutdown.clone(), cfg.shutdown_timeout, self.span());
            sup.spawn(&self.thread_name("producer"), move || {
                let _lane = span.entered();
                if let Some(c) = producer_core {
                    if !pinning::pin_current(c) {
                        warn!(core = c, "could not pin the producer thread");
                    }
                }
                Ok(run_producer(reader, Some(backfilled_rx), sink, m, t, s, books))
            })?
        };
        let span = self.span();
        let loop_thread = sup.spawn(&self.thread_name("event-loop"), move || {
            let _lane = span.entered();
            if let Some(c) = loop_core {
                if !pinning::pin_current(c) {
                    warn!(core = c, "could not pin the event loop");
                }
            }
            event_loop.run().map_err(|e| format!("event loop failed: {e}"))
        })?;
        Ok(Running { name, metrics: self.metrics, loop_core, loop_thread, backfill_thread, scales_thread, producer })
    }
}

impl Running {
    /// Waits for the lane's threads (they stop on shutdown) and returns what its producer
    /// flushed. Supervised threads never unwind into their join: a failure is recorded, not
    /// returned.
    pub fn join(self) -> ProducerReport {
        let _ = self.loop_thread.join();
        for t in [self.backfill_thread, self.scales_thread].into_iter().flatten() {
            let _ = t.join();
        }
        let report = self.producer.join().ok().flatten().unwrap_or_default();
        info!(
            market = self.name,
            sent = self.metrics.sent_total(),
            handed_over = report.handed_over,
            rejected = report.rejected,
            unflushed = report.unflushed,
            "stopped"
        );
        report
    }
}
