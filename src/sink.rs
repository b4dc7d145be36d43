//! Where normalized records go, and the producer thread that drains the ring into it.
//!
//! The Kafka sink is an rdkafka `BaseProducer` polled by this thread (no extra poll thread, no
//! per-message future): key = symbol, timestamp = exchange event time, idempotent with
//! `acks=all` by default. Delivery reports count successes and failures and time each record
//! from ring commit to broker acknowledgement.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use tracing::{debug, error, info, warn};

use crate::backfill::{Job, OwnedRecord};
use crate::binance::stream::RecordType;
use crate::config::{mask_prop, Config};
use crate::metrics::{LatencyRecorder, Metrics, Stage};
use crate::ring::{RecordView, RingReader};
use crate::sequence::Dense;
use crossbeam_channel::{Receiver, Sender};

/// How a sink refused a record.
#[derive(Debug)]
pub enum SendError {
    /// Its queue is full: poll and offer the same record again.
    Backpressure,
    /// This record can never be sent (e.g. larger than the broker accepts); it is counted and dropped.
    Rejected(&'static str),
}

pub trait Sink: Send {
    /// Runs once on the producer thread before the first record (e.g. a reachability probe).
    fn start(&mut self) {}
    fn send(&mut self, rec: &RecordView<'_>) -> Result<(), SendError>;
    /// Serves delivery reports, waiting at most `timeout` for one.
    fn poll(&mut self, timeout: Duration);
    /// Records handed over but not yet acknowledged.
    fn in_flight(&self) -> usize;
    /// Waits up to `timeout` for everything in flight; returns how many are still unacknowledged.
    fn flush(&mut self, timeout: Duration) -> usize;
}

thread_local! {
    /// The producer thread's latency recorder. Delivery callbacks run inside `poll` on the same
    /// thread, so a thread-local gives them lock-free access.
    static RECORDER: RefCell<Option<LatencyRecorder>> = const { RefCell::new(None) };
}

fn record_latency(stage: Stage, symbol_idx: usize, ns: u64) {
    RECORDER.with(|r| {
        if let Some(r) = r.borrow_mut().as_mut() {
            r.record(stage, symbol_idx, ns);
        }
    });
}

pub use crate::log_limit::LogLimiter;

/// Bounded label for a Kafka error.
pub fn error_kind(e: &KafkaError) -> &'static str {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageTimedOut) => "message_timed_out",
        Some(RDKafkaErrorCode::QueueFull) => "queue_full",
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => "message_too_large",
        Some(RDKafkaErrorCode::AllBrokersDown) => "all_brokers_down",
        Some(RDKafkaErrorCode::BrokerTransportFailure) => "broker_transport",
        Some(RDKafkaErrorCode::Authentication) | Some(RDKafkaErrorCode::SaslAuthenticationFailed) => "authentication",
        Some(RDKafkaErrorCode::TopicAuthorizationFailed) | Some(RDKafkaErrorCode::ClusterAuthorizationFailed) => {
            "authorization"
        }
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) | Some(RDKafkaErrorCode::UnknownTopic) => "unknown_topic",
        Some(RDKafkaErrorCode::NotEnoughReplicas) | Some(RDKafkaErrorCode::NotEnoughReplicasAfterAppend) => {
            "not_enough_replicas"
        }
        Some(RDKafkaErrorCode::Fatal) => "fatal",
        Some(RDKafkaErrorCode::Resolve) => "resolve",
        _ => "other",
    }
}

/// librdkafka's callbacks: delivery reports, errors and logs.
pub struct KafkaContext {
    metrics: Arc<Metrics>,
    limiter: LogLimiter,
    failed: AtomicU64,
    /// Where a record whose delivery failed for good is sent to be fetched again from REST.
    backfill: Option<Sender<Job>>,
}

impl KafkaContext {
    /// A failed trade or aggTrade is not lost: its id goes to the backfill thread, which fetches
    /// it again from REST once the broker is back (parsing here is off the hot path: failures only).
    fn refetch(&self, symbol_idx: usize, payload: Option<&[u8]>) {
        let (Some(tx), Some(p)) = (&self.backfill, payload) else { return };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(p) else { return };
        let (kind, id) = match v["type"].as_str() {
            Some("trade") => (Dense::Trade, v["trade_id"].as_i64()),
            Some("agg_trade") => (Dense::AggTrade, v["agg_id"].as_i64()),
            _ => return,
        };
        if let Some(id) = id {
            let _ = tx.send(Job::Range { symbol_idx: symbol_idx as u16, kind, from: id, to: id + 1 });
        }
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                error!(target: "librdkafka", fac, "{msg}")
            }
            RDKafkaLogLevel::Warning => warn!(target: "librdkafka", fac, "{msg}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(target: "librdkafka", fac, "{msg}")
            }
            RDKafkaLogLevel::Debug => debug!(target: "librdkafka", fac, "{msg}"),
        }
    }

    fn error(&self, e: KafkaError, reason: &str) {
        let kind = error_kind(&e);
        if kind == "all_brokers_down" {
            self.metrics.health.sink_ready.store(false, Ordering::Relaxed);
        }
        self.metrics.sink_errors.with_label_values(&[kind]).inc();
        if let Some(suppressed) = self.limiter.check(kind) {
            warn!(kind, suppressed, "kafka client error: {reason}");
        }
    }
}

/// Packs what the delivery report needs into librdkafka's per-message opaque pointer, so no
/// allocation is made per message: symbol index (16 bits) and ring wait in ns (48 bits).
fn pack_opaque(symbol_idx: u16, ring_wait_ns: u64) -> usize {
    ((symbol_idx as u64) << 48 | ring_wait_ns.min((1 << 48) - 1)) as usize
}

fn unpack_opaque(v: usize) -> (usize, u64) {
    let v = v as u64;
    ((v >> 48) as usize, v & ((1 << 48) - 1))
}

impl ProducerContext for KafkaContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let (symbol_idx, ring_wait_ns) = unpack_opaque(opaque);
        match result {
            Ok(msg) => {
                self.metrics.messages_sent[symbol_idx].inc();
                self.metrics.health.sink_ready.store(true, Ordering::Relaxed);
                // librdkafka's own produce()->ack time (µs), plus the time the record sat in our ring.
                // SAFETY: the message pointer is valid for the duration of the callback.
                let us = unsafe { rdkafka::bindings::rd_kafka_message_latency(msg.ptr()) };
                if us >= 0 {
                    record_latency(Stage::EnqueueToAck, symbol_idx, ring_wait_ns + us as u64 * 1000);
                }
            }
            Err((e, msg)) => {
                let kind = error_kind(e);
                self.metrics.kafka_delivery_errors.with_label_values(&[kind]).inc();
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.refetch(symbol_idx, rdkafka::Message::payload(msg));
                if let Some(suppressed) = self.limiter.check(kind) {
                    error!(kind, suppressed, symbol = %self.metrics.symbols[symbol_idx], "kafka delivery failed: {e}");
                }
            }
        }
    }
}

/// The librdkafka properties the ingester sets, before user overrides. Secrets included, so
/// never log this list unmasked.
pub fn kafka_properties(cfg: &Config) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = vec![
        ("bootstrap.servers".into(), cfg.kafka_broker.clone()),
        ("client.id".into(), "marketflow-ingestor".into()),
        // Exactly once per partition across retries, and in order: the reason this exists.
        ("enable.idempotence".into(), "true".into()),
        ("acks".into(), "all".into()),
        // librdkafka's default 5 ms batching delay dominates latency at low rates; 0.5 ms still
        // batches at high rates (see tuning.md).
        ("linger.ms".into(), "0.5".into()),
        ("queue.buffering.max.messages".into(), "1000000".into()),
        ("queue.buffering.max.kbytes".into(), "262144".into()),
        ("statistics.interval.ms".into(), "0".into()),
    ];
    if let Some(proto) = &cfg.kafka_security_protocol {
        p.push(("security.protocol".into(), proto.clone()));
    }
    if let Some(user) = &cfg.kafka_username {
        p.push(("sasl.mechanisms".into(), cfg.kafka_sasl_mechanism.as_librdkafka().into()));
        p.push(("sasl.username".into(), user.clone()));
        p.push(("sasl.password".into(), cfg.kafka_password.expose().to_string()));
    }
    p.extend(cfg.kafka_props.iter().cloned());
    p
}

pub struct KafkaSink {
    producer: BaseProducer<KafkaContext>,
    topics: [String; RecordType::COUNT],
}

impl KafkaSink {
    pub fn new(cfg: &Config, metrics: Arc<Metrics>, backfill: Option<Sender<Job>>) -> Result<KafkaSink, KafkaError> {
        let mut cc = ClientConfig::new();
        for (k, v) in kafka_properties(cfg) {
            cc.set(k, v);
        }
        let shown: Vec<String> =
            kafka_properties(cfg).iter().map(|(k, v)| format!("{k}={}", mask_prop(k, v))).collect();
        info!(properties = %shown.join(" "), "creating kafka producer");
        let ctx = KafkaContext {
            metrics,
            limiter: LogLimiter::new(Duration::from_secs(10)),
            failed: AtomicU64::new(0),
            backfill,
        };
        let producer: BaseProducer<KafkaContext> = cc.create_with_context(ctx)?;
        Ok(KafkaSink { producer, topics: cfg.topics.clone() })
    }

    /// Asks the cluster for metadata; marks the sink ready when it answers.
    pub fn probe(&self, timeout: Duration) -> bool {
        match self.producer.client().fetch_metadata(None, timeout) {
            Ok(md) => {
                info!(brokers = md.brokers().len(), "kafka reachable");
                self.producer.context().metrics.health.sink_ready.store(true, Ordering::Relaxed);
                true
            }
            Err(e) => {
                warn!(kind = error_kind(&e), "kafka not reachable yet: {e}");
                false
            }
        }
    }

    pub fn failed_deliveries(&self) -> u64 {
        self.producer.context().failed.load(Ordering::Relaxed)
    }
}

impl Sink for KafkaSink {
    fn start(&mut self) {
        // Readiness also turns true on the first acknowledged delivery, so a failed probe only
        // delays /readyz.
        self.probe(Duration::from_secs(2));
    }

    fn send(&mut self, rec: &RecordView<'_>) -> Result<(), SendError> {
        let ring_wait = crate::clock::now_ns().saturating_sub(rec.enqueue_ns);
        let record = BaseRecord::with_opaque_to(
            &self.topics[rec.meta.kind as usize],
            pack_opaque(rec.meta.symbol_idx, ring_wait),
        )
        .key(rec.key)
        .payload(rec.payload)
        .timestamp(rec.meta.event_time_ms);
        match self.producer.send(record) {
            Ok(()) => Ok(()),
            Err((e, _)) => match e.rdkafka_error_code() {
                Some(RDKafkaErrorCode::QueueFull) => Err(SendError::Backpressure),
                _ => {
                    let kind = error_kind(&e);
                    self.producer.context().metrics.kafka_delivery_errors.with_label_values(&[kind]).inc();
                    if let Some(suppressed) = self.producer.context().limiter.check(kind) {
                        error!(kind, suppressed, "kafka refused a record: {e}");
                    }
                    Err(SendError::Rejected(kind))
                }
            },
        }
    }

    fn poll(&mut self, timeout: Duration) {
        self.producer.poll(timeout);
    }

    fn in_flight(&self) -> usize {
        self.producer.in_flight_count().max(0) as usize
    }

    fn flush(&mut self, timeout: Duration) -> usize {
        if let Err(e) = self.producer.flush(timeout) {
            warn!("kafka flush did not complete: {e}");
        }
        self.in_flight()
    }
}

/// JSON lines on stdout.
pub struct StdoutSink {
    out: std::io::BufWriter<std::io::Stdout>,
    metrics: Arc<Metrics>,
    dirty: bool,
}

impl StdoutSink {
    pub fn new(metrics: Arc<Metrics>) -> StdoutSink {
        metrics.health.sink_ready.store(true, Ordering::Relaxed);
        StdoutSink { out: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()), metrics, dirty: false }
    }
}

impl Sink for StdoutSink {
    fn send(&mut self, rec: &RecordView<'_>) -> Result<(), SendError> {
        let ok = self.out.write_all(rec.payload).and_then(|_| self.out.write_all(b"\n"));
        if ok.is_err() {
            // A closed pipe (`| head`) is not worth retrying.
            self.metrics.sink_errors.with_label_values(&["stdout"]).inc();
            return Err(SendError::Rejected("stdout"));
        }
        self.dirty = true;
        self.metrics.messages_sent[rec.meta.symbol_idx as usize].inc();
        Ok(())
    }
    fn poll(&mut self, _timeout: Duration) {
        if self.dirty {
            let _ = self.out.flush();
            self.dirty = false;
        }
    }
    fn in_flight(&self) -> usize {
        0
    }
    fn flush(&mut self, _timeout: Duration) -> usize {
        let _ = self.out.flush();
        0
    }
}

/// Counts and discards: measures the ingester without a broker.
pub struct NullSink {
    metrics: Arc<Metrics>,
}

impl NullSink {
    pub fn new(metrics: Arc<Metrics>) -> NullSink {
        metrics.health.sink_ready.store(true, Ordering::Relaxed);
        NullSink { metrics }
    }
}

impl Sink for NullSink {
    fn send(&mut self, rec: &RecordView<'_>) -> Result<(), SendError> {
        self.metrics.messages_sent[rec.meta.symbol_idx as usize].inc();
        record_latency(
            Stage::EnqueueToAck,
            rec.meta.symbol_idx as usize,
            crate::clock::now_ns().saturating_sub(rec.enqueue_ns),
        );
        Ok(())
    }
    fn poll(&mut self, _timeout: Duration) {}
    fn in_flight(&self) -> usize {
        0
    }
    fn flush(&mut self, _timeout: Duration) -> usize {
        0
    }
}

/// What the producer thread did, for the exit log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProducerReport {
    pub handed_over: u64,
    pub rejected: u64,
    /// Accepted but not acknowledged when the flush deadline passed.
    pub unflushed: usize,
}

/// Offers one record to the sink until it takes it, polling delivery reports while it pushes
/// back. Gives up (false) only past `stop_at`, the shutdown deadline.
fn send_blocking(sink: &mut dyn Sink, v: &RecordView<'_>, metrics: &Metrics, stop_at: Option<Instant>) -> bool {
    loop {
        match sink.send(v) {
            Ok(()) => return true,
            Err(SendError::Rejected(_)) => return false,
            Err(SendError::Backpressure) => {
                metrics.sink_errors.with_label_values(&["backpressure"]).inc();
                sink.poll(Duration::from_millis(5));
                if stop_at.is_some_and(|t| Instant::now() >= t) {
                    return false;
                }
            }
        }
    }
}

/// Drains the ring (live records) and the backfill channel (records fetched from REST, gap
/// markers) into the sink until the event loop has stopped, the backfill thread is done and both
/// are empty, then flushes within `flush_timeout`.
pub fn run_producer(
    mut reader: RingReader,
    backfilled: Option<Receiver<OwnedRecord>>,
    mut sink: Box<dyn Sink>,
    metrics: Arc<Metrics>,
    flush_timeout: Duration,
    shutdown: crate::shutdown::Shutdown,
) -> ProducerReport {
    RECORDER.with(|r| *r.borrow_mut() = Some(metrics.latency.recorder()));
    sink.start();
    let mut report = ProducerReport::default();
    let mut stop_at: Option<Instant> = None;
    let mut backfill_open = backfilled.is_some();
    let count = |report: &mut ProducerReport, ok: bool| {
        if ok {
            report.handed_over += 1
        } else {
            report.rejected += 1
        }
    };
    loop {
        if stop_at.is_none() && shutdown.is_triggered() {
            stop_at = Some(Instant::now() + flush_timeout);
        }
        let mut n = reader.drain_with(4096, |v| {
            let ok = send_blocking(sink.as_mut(), &v, &metrics, stop_at);
            count(&mut report, ok);
        });
        if let Some(rx) = &backfilled {
            loop {
                match rx.try_recv() {
                    Ok(rec) => {
                        let v = RecordView {
                            meta: rec.meta,
                            enqueue_ns: crate::clock::now_ns(),
                            key: &rec.key,
                            payload: &rec.payload,
                        };
                        let ok = send_blocking(sink.as_mut(), &v, &metrics, stop_at);
                        count(&mut report, ok);
                        n += 1;
                    }
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        backfill_open = false;
                        break;
                    }
                }
            }
        }
        sink.poll(Duration::ZERO);
        RECORDER.with(|r| r.borrow_mut().as_mut().map(|r| r.maybe_publish(Duration::from_millis(250))));
        if n == 0 {
            if reader.is_abandoned() && reader.is_empty() && !backfill_open {
                break;
            }
            metrics.kafka_in_flight.set(sink.in_flight() as i64);
            // Sleep until the event loop commits more (it unparks us), or briefly to serve
            // delivery reports and the backfill channel.
            reader.wait(if sink.in_flight() > 0 { Duration::from_micros(200) } else { Duration::from_millis(5) });
        }
    }
    let left = stop_at.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or(flush_timeout);
    report.unflushed = sink.flush(left.max(Duration::from_millis(100)));
    metrics.kafka_in_flight.set(report.unflushed as i64);
    RECORDER.with(|r| r.borrow_mut().as_mut().map(|r| r.publish()));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_round_trips() {
        assert_eq!(unpack_opaque(pack_opaque(7, 123_456)), (7, 123_456));
        assert_eq!(unpack_opaque(pack_opaque(u16::MAX, u64::MAX)), (u16::MAX as usize, (1 << 48) - 1));
    }

    #[test]
    fn sasl_properties_follow_the_credentials() {
        let c = crate::config::RawConfig::from_pairs(&[
            ("KAFKA_USERNAME", "$ConnectionString"),
            ("KAFKA_PASSWORD", "pw"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("KAFKA_PROPS", "acks=1"),
        ])
        .validate()
        .unwrap();
        let p = kafka_properties(&c);
        let get = |k: &str| p.iter().rev().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
        assert_eq!(get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(get("sasl.username"), Some("$ConnectionString"));
        assert_eq!(get("enable.idempotence"), Some("true"));
        // User overrides come last, so they win.
        assert_eq!(get("acks"), Some("1"));
    }
}
