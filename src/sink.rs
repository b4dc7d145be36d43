//! Where normalized records go, and the producer thread that drains the ring into it.
//!
//! The Kafka sink is an rdkafka `BaseProducer` polled by this thread (no extra poll thread, no
//! per-message future): key = symbol, timestamp = exchange event time, idempotent with
//! `acks=all` by default. Delivery reports count successes and failures and time each record
//! from ring commit to broker acknowledgement.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use tracing::{error, info, warn};

use crate::config::{is_secret_key, masked_pairs, scrub, Config};
use crate::handoff::jobs::JobSender;
use crate::handoff::marker::Reason;
use crate::handoff::{gap_record, OwnedRecord};
use crate::metrics::{LatencyRecorder, Metrics, Stage};
use crate::record::RecordType;
use crate::ring::{RecordView, RingReader};
use crossbeam_channel::Receiver;

mod kafka_context;

use kafka_context::pack_opaque;
pub use kafka_context::{error_kind, KafkaContext};

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

pub struct KafkaSink {
    producer: BaseProducer<KafkaContext>,
    topics: [String; RecordType::COUNT],
}

/// librdkafka refused the producer's configuration: an operator error (exit 64). The message is
/// built from librdkafka's text with every secret value masked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProducerConfigError(String);

impl ProducerConfigError {
    fn new(e: KafkaError, props: &[(String, String)]) -> Self {
        let text = match e {
            KafkaError::ClientConfig(_, _, key, _) if is_secret_key(&key) => {
                format!("librdkafka refuses the value of `{key}` (not shown: it is secret)")
            }
            KafkaError::ClientConfig(_, desc, ..) => format!("librdkafka refuses a property: {desc}"),
            KafkaError::ClientCreation(msg) => format!("librdkafka cannot create the producer: {msg}"),
            other => format!("librdkafka cannot create the producer: {other}"),
        };
        ProducerConfigError(scrub(&text, props))
    }
}

impl KafkaSink {
    pub fn new(
        cfg: &Config,
        metrics: Arc<Metrics>,
        backfill: Option<JobSender>,
    ) -> Result<KafkaSink, ProducerConfigError> {
        let props = crate::kafka_client::properties(cfg);
        let mut cc = ClientConfig::new();
        for (k, v) in &props {
            cc.set(k, v);
        }
        let profile = if crate::kafka_client::eventhubs::applies(&cfg.kafka_broker) { "eventhubs" } else { "none" };
        info!(properties = %masked_pairs(&props), profile, "creating kafka producer");
        let ctx = KafkaContext::new(cfg, metrics, backfill);
        let producer: BaseProducer<KafkaContext> =
            cc.create_with_context(ctx).map_err(|e| ProducerConfigError::new(e, &props))?;
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

    /// Publishes the gaps of failed records the backfill queue could not take; those librdkafka
    /// has no room for yet wait for the next poll. Returns how many still wait.
    fn publish_unqueued(&mut self) -> usize {
        let Some(mut waiting) = self.producer.context().unqueued.take() else { return 0 };
        let metrics = self.producer.context().metrics.clone();
        let mut done = 0;
        for &(seq, from, to) in &waiting {
            let s = seq.symbol_idx() as usize;
            let rec = gap_record(metrics.symbols.upper(seq.symbol_idx()), seq, from, to, Reason::QueueFull);
            let view =
                RecordView { meta: rec.meta, enqueue_ns: rec.meta.recv_ns, key: &rec.key, payload: &rec.payload };
            match self.send(&view) {
                // The rest waits for the next poll (a refusal for good is counted by `send`).
                Err(SendError::Backpressure) => break,
                Err(SendError::Rejected(_)) => {}
                Ok(()) => {
                    metrics.gap_markers[s].inc();
                    metrics.backfill_queue_full[s].inc();
                }
            }
            done += 1;
        }
        waiting.drain(..done);
        self.producer.context().unqueued.put_back(waiting)
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
        self.publish_unqueued();
    }

    fn in_flight(&self) -> usize {
        self.producer.in_flight_count().max(0) as usize
    }

    fn flush(&mut self, timeout: Duration) -> usize {
        let start = Instant::now();
        if let Err(e) = self.producer.flush(timeout) {
            warn!("kafka flush did not complete: {e}");
        }
        // Records that failed during the flush (the backfill thread is gone by then) become gap
        // records, flushed in what time is left.
        if !self.producer.context().unqueued.is_empty() {
            let waiting = self.publish_unqueued();
            if waiting > 0 || self.producer.flush(timeout.saturating_sub(start.elapsed())).is_err() {
                error!(waiting, "gap records of failed deliveries may not all be published");
            }
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
    fn producer_config_errors_never_quote_a_secret() {
        use rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID;
        let props = vec![("sasl.password".to_string(), "hunter2".to_string())];
        let refused =
            KafkaError::ClientConfig(RD_KAFKA_CONF_INVALID, "bad \"hunter2\"".into(), "ssl_key".into(), "v".into());
        let e = ProducerConfigError::new(refused, &props).to_string();
        assert_eq!(e, "librdkafka refuses the value of `ssl_key` (not shown: it is secret)");
        let e = ProducerConfigError::new(KafkaError::ClientCreation("cannot use hunter2".into()), &props).to_string();
        assert_eq!(e, "librdkafka cannot create the producer: cannot use ***");
    }
}
