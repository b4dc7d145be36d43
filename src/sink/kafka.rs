//! The Kafka sink: an rdkafka `BaseProducer` polled by the producer thread (no extra poll thread,
//! no per-message future): key = symbol, timestamp = exchange event time, idempotent with
//! `acks=all` by default.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use tracing::{error, info, warn};

use super::kafka_context::{error_kind, pack_opaque, KafkaContext};
use super::{SendError, Sink};
use crate::config::{is_secret_key, masked_pairs, scrub, Config};
use crate::handoff::gap_record;
use crate::handoff::jobs::{JobSender, Unqueued};
use crate::handoff::marker::Reason;
use crate::handoff::readback::is_marker;
use crate::metrics::Metrics;
use crate::record::RecordType;
use crate::ring::{Kick, RecordView};
use crate::venue::Venue;

pub struct KafkaSink {
    /// Declared before `producer` so that it is dropped first: the callback goes before the client.
    reports: Option<ReportWake>,
    producer: BaseProducer<KafkaContext>,
    /// The `exchange` of the gap records of failed deliveries.
    exchange: &'static str,
    topics: [String; RecordType::COUNT],
    /// Each record type's `Health::partition_acks` slot (`kafka_client::ack_slot`).
    ack_slots: [Option<usize>; RecordType::COUNT],
    /// `KAFKA_BATCH_WINDOW_US` (see `Sink::batch_window`): a record after a quiet spell goes at
    /// once, and librdkafka's own `linger.ms` only joins the records one turn hands over
    /// (`kafka_client`).
    batch_window: Duration,
    /// `KAFKA_STALL_SECS` (see `Sink::stall_after`).
    stall_after: Duration,
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
        venue: &Venue,
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
        Ok(KafkaSink {
            reports: None,
            producer,
            exchange: venue.exchange,
            topics: cfg.topics.clone(),
            ack_slots: RecordType::ALL.map(|k| crate::kafka_client::ack_slot(&cfg.topics, k)),
            batch_window: cfg.kafka_batch_window,
            stall_after: cfg.kafka_stall,
        })
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

    /// Publishes the gaps of failed records nobody fetches (reason `backfill_queue_full`, or
    /// `backfill_off` without a backfill thread, or `delivery_in_doubt` for those that may have
    /// been written); those librdkafka has no room for yet wait for the next poll. Returns how
    /// many still wait.
    fn publish_unqueued(&mut self) -> usize {
        let reason = self.producer.context().unqueued_reason();
        self.publish_held(|c| &c.unqueued, reason)
            + self.publish_held(|c| &c.unqueued_in_doubt, Reason::DeliveryInDoubt)
            + self.resend_failed_markers()
    }

    /// Sends again the gap records whose delivery failed (`sink::resend`); those librdkafka has no
    /// room for yet wait for the next poll. Returns how many still wait.
    fn resend_failed_markers(&mut self) -> usize {
        let Some(mut waiting) = self.producer.context().failed_markers.take() else { return 0 };
        let mut done = 0;
        for rec in &waiting {
            let view =
                RecordView { meta: rec.meta, enqueue_ns: rec.meta.recv_ns, key: &rec.key, payload: &rec.payload };
            match self.send(&view) {
                Err(SendError::Backpressure) => break,
                // Refused for good: counted, logged and dropped by `send`.
                Err(SendError::Rejected(_)) | Ok(()) => {}
            }
            done += 1;
        }
        waiting.drain(..done);
        let ctx = self.producer.context();
        let (held, over) = ctx.failed_markers.put_back(waiting);
        ctx.drop_markers("bound", over.iter().map(|r| &r.payload[..]));
        held
    }

    fn publish_held(&mut self, held: fn(&KafkaContext) -> &Unqueued, reason: Reason) -> usize {
        let Some(mut waiting) = held(self.producer.context()).take() else { return 0 };
        let metrics = self.producer.context().metrics.clone();
        let mut done = 0;
        for &(seq, from, to) in &waiting {
            let s = seq.symbol_idx() as usize;
            let rec = gap_record(self.exchange, metrics.symbols.upper(seq.symbol_idx()), seq, from, to, reason);
            let view =
                RecordView { meta: rec.meta, enqueue_ns: rec.meta.recv_ns, key: &rec.key, payload: &rec.payload };
            match self.send(&view) {
                // The rest waits for the next poll (a refusal for good is counted by `send`).
                Err(SendError::Backpressure) => break,
                Err(SendError::Rejected(_)) => {}
                Ok(()) => {
                    metrics.gap_markers[s].inc();
                    match reason {
                        Reason::QueueFull => metrics.backfill_queue_full[s].inc(),
                        Reason::DeliveryInDoubt => {
                            let ids = u64::try_from(to.saturating_sub(from)).unwrap_or(0);
                            metrics.kafka_in_doubt.with_label_values(&["unverified"]).inc_by(ids);
                        }
                        _ => {}
                    }
                }
            }
            done += 1;
        }
        waiting.drain(..done);
        held(self.producer.context()).put_back(waiting)
    }
}

/// At most this many events (delivery report batches, errors) served by one `poll`: bounds the
/// producer's turn; a kick makes the next turn come at once for the rest.
const EVENTS_PER_POLL: usize = 64;

/// librdkafka's callback on its main queue (delivery reports, errors): it runs on a librdkafka
/// thread, under the queue's lock, when an event lands in the empty queue, so it only kicks.
unsafe extern "C" fn on_event(_rk: *mut rdkafka::bindings::rd_kafka_t, opaque: *mut std::ffi::c_void) {
    // SAFETY: `opaque` is the `Kick` boxed in `ReportWake`, which outlives the registration
    // (its drop unregisters under the same lock before freeing it).
    unsafe { (*(opaque as *const Kick)).kick() }
}

/// The producer thread's wake-up on delivery reports: a reference to librdkafka's main queue
/// with [`on_event`] registered on it.
struct ReportWake {
    queue: *mut rdkafka::bindings::rd_kafka_queue_t,
    kick: Box<Kick>,
}

// SAFETY: librdkafka's queue handles may be used from any thread; `Kick` is Send + Sync.
unsafe impl Send for ReportWake {}

impl ReportWake {
    fn new(producer: &BaseProducer<KafkaContext>, kick: Kick) -> Option<ReportWake> {
        // SAFETY: the client pointer is valid while `producer` lives, and `ReportWake` is dropped
        // before it (field order of `KafkaSink`); the queue reference is released in `drop`.
        let queue = unsafe { rdkafka::bindings::rd_kafka_queue_get_main(producer.client().native_ptr()) };
        if queue.is_null() {
            return None;
        }
        let kick = Box::new(kick);
        let opaque = &*kick as *const Kick as *mut std::ffi::c_void;
        // SAFETY: `queue` is a live reference; `opaque` stays valid until `drop` unregisters.
        unsafe { rdkafka::bindings::rd_kafka_queue_cb_event_enable(queue, Some(on_event), opaque) };
        Some(ReportWake { queue, kick })
    }

    fn pending(&self) -> usize {
        // SAFETY: `queue` is a live reference until `drop`.
        unsafe { rdkafka::bindings::rd_kafka_queue_length(self.queue) }
    }
}

impl Drop for ReportWake {
    fn drop(&mut self) {
        // SAFETY: unregistering takes the queue's lock, under which the callback runs, so none is
        // running (or will run) with `kick` once this returns; then the reference is released.
        unsafe {
            rdkafka::bindings::rd_kafka_queue_cb_event_enable(self.queue, None, std::ptr::null_mut());
            rdkafka::bindings::rd_kafka_queue_destroy(self.queue);
        }
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
            pack_opaque(rec.meta.symbol_idx, self.ack_slots[rec.meta.kind as usize], ring_wait),
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
                    let ctx = self.producer.context();
                    ctx.metrics.kafka_delivery_errors.with_label_values(&[kind]).inc();
                    if let Some(suppressed) = ctx.limiter.check(kind) {
                        error!(kind, suppressed, "kafka refused a record: {e}");
                    }
                    // Whichever way a gap record came (the ring, the backfill, the held ones), a
                    // refusal is its loss.
                    if is_marker(rec.payload) {
                        ctx.drop_markers(kind, [rec.payload]);
                    }
                    Err(SendError::Rejected(kind))
                }
            },
        }
    }

    fn poll(&mut self, timeout: Duration) {
        self.producer.poll(timeout);
        // librdkafka kicks only when its queue turns non-empty and one `poll` serves one event, so
        // with the wake-up on, the queue is emptied here or the rest would wait for the next kick.
        if let Some(w) = &self.reports {
            let mut served = 1;
            while w.pending() > 0 {
                if served == EVENTS_PER_POLL {
                    w.kick.kick();
                    break;
                }
                self.producer.poll(Duration::ZERO);
                served += 1;
            }
        }
        self.publish_unqueued();
    }

    fn batch_window(&self) -> Duration {
        self.batch_window
    }

    fn wake_on_reports(&mut self, kick: Kick) -> bool {
        self.reports = ReportWake::new(&self.producer, kick);
        self.reports.is_some()
    }

    fn in_flight(&self) -> usize {
        self.producer.in_flight_count().max(0) as usize
    }

    fn stall_after(&self) -> Option<Duration> {
        Some(self.stall_after)
    }

    fn take_acked(&mut self) -> bool {
        self.producer.context().acked.swap(false, Ordering::Relaxed)
    }

    fn take_depth_failures(&mut self, f: &mut dyn FnMut(u16)) {
        self.producer.context().depth_failed.take(f);
    }

    fn flush(&mut self, timeout: Duration) -> usize {
        let start = Instant::now();
        if let Err(e) = self.producer.flush(timeout) {
            warn!("kafka flush did not complete: {e}");
        }
        // Records that failed during the flush (the backfill thread is gone by then) become gap
        // records, flushed in what time is left.
        if !self.producer.context().all_queued() {
            let waiting = self.publish_unqueued();
            if waiting > 0 || self.producer.flush(timeout.saturating_sub(start.elapsed())).is_err() {
                error!(waiting, "gap records of failed deliveries may not all be published");
            }
        }
        // No turn is left: gap records that failed again in the last flush, those still in
        // flight that fail when the producer is dropped (it purges them), and the ranges still
        // waiting for a gap record are counted `dropped` and logged with their text.
        let ctx = self.producer.context();
        ctx.closing.store(true, Ordering::Relaxed);
        if let Some(unsent) = ctx.failed_markers.take() {
            ctx.drop_markers("shutdown", unsent.iter().map(|r| &r.payload[..]));
        }
        let reason = ctx.unqueued_reason();
        for (held, reason) in [(&ctx.unqueued, reason), (&ctx.unqueued_in_doubt, Reason::DeliveryInDoubt)] {
            for (seq, from, to) in held.take().unwrap_or_default() {
                let gap = gap_record(self.exchange, ctx.metrics.symbols.upper(seq.symbol_idx()), seq, from, to, reason);
                ctx.drop_markers("shutdown", [&gap.payload[..]]);
            }
        }
        self.in_flight()
    }
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

    /// A sink whose broker is a loopback port nobody listens on, with `props` (`KAFKA_PROPS`).
    fn unreachable_broker(props: &str) -> (KafkaSink, Arc<Metrics>) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let broker = format!("127.0.0.1:{port}");
        let cfg = crate::config::RawConfig::from_pairs(&[("KAFKA_BROKER", &broker), ("KAFKA_PROPS", props)])
            .validate()
            .unwrap();
        let metrics = Metrics::new(&["btcusdt".to_string()]);
        (KafkaSink::new(&cfg, &crate::binance::venue::VENUE, metrics.clone(), None).unwrap(), metrics)
    }

    /// A gap record is the only trace of the ids it names: when its own delivery fails it is kept
    /// and sent again as it was (same topic, key and bytes), never dropped. The broker is a
    /// loopback port nobody listens on, so every delivery fails after `message.timeout.ms`.
    #[test]
    fn a_gap_record_whose_delivery_fails_is_sent_again_as_it_was() {
        use crate::handoff::jobs::Seq;
        use crate::sequence::Dense;
        let (mut sink, metrics) = unreachable_broker("message.timeout.ms=300;request.timeout.ms=200");
        let seq = Seq::Ids { symbol_idx: 0, kind: Dense::AggTrade };
        let gap = gap_record("binance", "BTCUSDT", seq, 5, 9, Reason::NotInRest);
        let view = RecordView { meta: gap.meta, enqueue_ns: gap.meta.recv_ns, key: &gap.key, payload: &gap.payload };
        sink.send(&view).unwrap();
        let kept = || metrics.kafka_gap_records_failed.with_label_values(&["kept"]).get();
        // Delivery reports only, without the resend (`poll` would send it straight back).
        let deadline = Instant::now() + Duration::from_secs(30);
        while kept() == 0 && Instant::now() < deadline {
            sink.producer.poll(Duration::from_millis(50));
        }
        assert_eq!(kept(), 1, "the failed gap record is kept");
        let held = sink.producer.context().failed_markers.take().expect("held for the next turn");
        assert_eq!(held.len(), 1);
        let copy = &held[0];
        assert_eq!((copy.payload.as_slice(), copy.key.as_slice()), (gap.payload.as_slice(), gap.key.as_slice()));
        assert_eq!((copy.meta.kind, copy.meta.symbol_idx, copy.meta.flags), (RecordType::AggTrade, 0, gap.meta.flags));
        assert_eq!(copy.meta.event_time_ms, gap.meta.event_time_ms, "its timestamp too");
        let (held, over) = sink.producer.context().failed_markers.put_back(held);
        assert_eq!((held, over.len()), (1, 0));
        assert!(!sink.producer.context().all_queued(), "a flush waits for it");
        // The next turn sends it again; it fails again and is kept again: it waits for the broker.
        sink.poll(Duration::ZERO);
        assert!(sink.producer.context().failed_markers.is_empty(), "handed to librdkafka again");
        while kept() < 2 && Instant::now() < deadline {
            sink.poll(Duration::from_millis(50));
        }
        assert!(kept() >= 2, "kept again after its second failure");
        let dropped = || metrics.kafka_gap_records_failed.with_label_values(&["dropped"]).get();
        assert_eq!(dropped(), 0);
        // After the last flush no turn is left: what fails then is counted dropped, not kept.
        sink.poll(Duration::ZERO);
        sink.flush(Duration::ZERO);
        let kept_at_close = kept();
        while dropped() == 0 && Instant::now() < deadline {
            sink.producer.poll(Duration::from_millis(50));
        }
        assert!(dropped() >= 1 && kept() == kept_at_close, "kept {} dropped {}", kept(), dropped());
    }

    /// A gap record librdkafka refuses at once (here: larger than `message.max.bytes`) is lost at
    /// that moment: counted `dropped` and logged, whichever way it came to the sink.
    #[test]
    fn a_gap_record_refused_at_send_is_counted_dropped() {
        let (mut sink, metrics) = unreachable_broker("message.max.bytes=1000");
        let count = |r: &str| metrics.kafka_gap_records_failed.with_label_values(&[r]).get();
        let meta = crate::ring::RecordMeta {
            kind: RecordType::Trade,
            flags: crate::ring::FLAG_MARKER,
            symbol_idx: 0,
            event_time_ms: 1,
            recv_ns: 1,
        };
        let mut huge = br#"{"type":"gap","exchange":"binance","symbol":"BTCUSDT","stream":"trade","pad":""#.to_vec();
        huge.resize(4_000, b'x');
        huge.extend_from_slice(br#""}"#);
        let view = RecordView { meta, enqueue_ns: 1, key: b"BTCUSDT", payload: &huge };
        assert!(matches!(sink.send(&view), Err(SendError::Rejected("message_too_large"))));
        assert_eq!((count("dropped"), count("kept")), (1, 0));
        // Any other record refused so is counted as a delivery error only.
        let trade = RecordView { meta: crate::ring::RecordMeta { flags: 0, ..meta }, payload: &huge[14..], ..view };
        assert!(sink.send(&trade).is_err());
        assert_eq!(count("dropped"), 1);
    }
}
