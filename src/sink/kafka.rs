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
use crate::handoff::jobs::JobSender;
use crate::handoff::marker::Reason;
use crate::metrics::Metrics;
use crate::record::RecordType;
use crate::ring::RecordView;
use crate::venue::Venue;

pub struct KafkaSink {
    producer: BaseProducer<KafkaContext>,
    /// The `exchange` of the gap records of failed deliveries.
    exchange: &'static str,
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
        Ok(KafkaSink { producer, exchange: venue.exchange, topics: cfg.topics.clone() })
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
            let rec =
                gap_record(self.exchange, metrics.symbols.upper(seq.symbol_idx()), seq, from, to, Reason::QueueFull);
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
        if !self.producer.context().unqueued.is_empty() {
            let waiting = self.publish_unqueued();
            if waiting > 0 || self.producer.flush(timeout.saturating_sub(start.elapsed())).is_err() {
                error!(waiting, "gap records of failed deliveries may not all be published");
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
}
