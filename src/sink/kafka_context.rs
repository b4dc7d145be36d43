//! librdkafka's callbacks for the Kafka sink: delivery reports (counted, timed, failures sent
//! back to REST), client errors (classified, counted, readiness) and librdkafka's own log lines,
//! every log line rate-limited.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::bindings::rd_kafka_msg_status_t;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, DeliveryResult};
use rdkafka::producer::ProducerContext;
use rdkafka::ClientContext;
use tracing::{debug, error, info, warn};

use super::producer::record_latency;
use crate::config::Config;
use crate::handoff::jobs::{Job, JobSender, Unqueued};
use crate::handoff::marker::Reason;
use crate::handoff::readback::{is_marker, kafka_timestamp_ms, marker_kind, refetchable_id};
use crate::handoff::OwnedRecord;
use crate::log_limit::LogLimiter;
use crate::metrics::{Metrics, Stage};
use crate::ring::{RecordMeta, FLAG_MARKER};

use super::resend::FailedMarkers;

/// Lines about dropped gap records allowed each 10 s: more than the held ones' bound, so that an
/// overflow or a shutdown logs every one.
pub const DROPPED_LOG_BURST: u32 = 5_000;

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
        Some(RDKafkaErrorCode::SSL) => "tls",
        _ => "other",
    }
}

/// librdkafka's callbacks: delivery reports, errors and logs.
pub struct KafkaContext {
    pub(super) metrics: Arc<Metrics>,
    pub(super) limiter: LogLimiter,
    /// librdkafka's own log lines, per facility: a broker that keeps refusing the connection makes
    /// librdkafka log every attempt.
    rdkafka_logs: LogLimiter,
    /// Lines about dropped gap records ([`KafkaContext::drop_markers`]).
    dropped_logs: LogLimiter,
    /// `mechanism user` of the SASL login (never the password), to name it when it is refused.
    login: Option<String>,
    /// Where a record whose delivery failed for good is sent to be fetched again from REST.
    backfill: Option<JobSender>,
    /// Failed records the backfill queue could not take, for the next `poll` to publish as gaps
    /// (a callback cannot produce); at most the failures of one poll, bounded by librdkafka's queue.
    pub(super) unqueued: Unqueued,
    /// The same for records in doubt (their gap records say `delivery_in_doubt`: they may have
    /// been written).
    pub(super) unqueued_in_doubt: Unqueued,
    /// Gap records whose own delivery failed, for the next `poll` to send again
    /// (`sink::resend`): dropped, the loss of the ids they name would be silent.
    pub(super) failed_markers: FailedMarkers,
    /// Set by the sink's last flush: a gap record that fails after it (purged when the producer
    /// is dropped) has no turn left to be sent again, and is counted `dropped`.
    pub(super) closing: AtomicBool,
    /// Symbols whose depth record (a diff or a snapshot) failed: their book is published again
    /// after the hole, so a consumer stuck at it has a way back (a flag per symbol).
    pub(super) depth_failed: DepthFailures,
    /// Set by each acknowledgement, taken by the producer's turn (`sink::StallWatch`): a plain
    /// store per record, like `sink_ready`'s.
    pub(super) acked: AtomicBool,
}

/// A flag per symbol, and one for "any", so the producer's turn costs one load when none is set.
#[derive(Default)]
pub(super) struct DepthFailures {
    flags: Box<[AtomicBool]>,
    any: AtomicBool,
}

impl DepthFailures {
    fn new(symbols: usize) -> DepthFailures {
        DepthFailures { flags: (0..symbols).map(|_| AtomicBool::new(false)).collect(), any: AtomicBool::new(false) }
    }

    fn mark(&self, symbol_idx: usize) {
        if let Some(f) = self.flags.get(symbol_idx) {
            f.store(true, Ordering::Release);
            self.any.store(true, Ordering::Release);
        }
    }

    /// Hands `f` each symbol marked since the last call, clearing them.
    pub(super) fn take(&self, f: &mut dyn FnMut(u16)) {
        if !self.any.swap(false, Ordering::AcqRel) {
            return;
        }
        for (i, flag) in self.flags.iter().enumerate() {
            if flag.swap(false, Ordering::AcqRel) {
                f(i as u16);
            }
        }
    }
}

/// Whether a payload is one of the records a consumer's order book depends on.
fn is_depth(payload: Option<&[u8]>) -> bool {
    payload.is_some_and(|p| p.starts_with(br#"{"type":"depth_"#))
}

impl KafkaContext {
    pub fn new(cfg: &Config, metrics: Arc<Metrics>, backfill: Option<JobSender>) -> KafkaContext {
        KafkaContext {
            limiter: LogLimiter::new(Duration::from_secs(10)),
            // A few lines per facility and 10 s: startup notices and configuration warnings pass.
            rdkafka_logs: LogLimiter::with_burst(Duration::from_secs(10), 5),
            dropped_logs: LogLimiter::with_burst(Duration::from_secs(10), DROPPED_LOG_BURST),
            login: cfg.kafka_username.as_ref().map(|u| format!("{} {u}", cfg.kafka_sasl_mechanism.as_librdkafka())),
            depth_failed: DepthFailures::new(metrics.symbols.len()),
            metrics,
            backfill,
            unqueued: Default::default(),
            unqueued_in_doubt: Default::default(),
            failed_markers: Default::default(),
            closing: AtomicBool::new(false),
            acked: AtomicBool::new(false),
        }
    }

    /// A failed trade or aggTrade is not lost: its id goes to the backfill thread, which fetches
    /// it again from REST once the broker is back (reading the payload back is off the hot path:
    /// failures only). One whose request reached the broker may have been written all the same
    /// (librdkafka says `POSSIBLY_PERSISTED`): the backfill reads the topic back before it fetches
    /// that one again, so that it is not repeated (`backfill::doubt`). Without a backfill thread
    /// (`BACKFILL=off`), or when its queue is full, the id is named in a gap record instead.
    fn refetch(&self, symbol_idx: usize, msg: &BorrowedMessage<'_>) {
        let Some(p) = rdkafka::Message::payload(msg) else { return };
        let Some((kind, id)) = refetchable_id(p) else { return };
        let symbol_idx = symbol_idx as u16;
        // SAFETY: the message pointer is valid for the duration of the delivery callback.
        let status = unsafe { rdkafka::bindings::rd_kafka_message_status(msg.ptr()) };
        let job = if status == rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED {
            Job::Range { symbol_idx, kind, from: id, to: id.saturating_add(1) }
        } else {
            // The read-back starts at the record's own timestamp (librdkafka reports none for a
            // failed delivery), read from its payload. Without one, an hour back covers the
            // default `message.timeout.ms` (5 minutes) and then some.
            let timestamp_ms =
                kafka_timestamp_ms(p).unwrap_or_else(|| crate::clock::now_ms().saturating_sub(3_600_000));
            self.metrics.kafka_in_doubt.with_label_values(&["in_doubt"]).inc();
            Job::InDoubt { symbol_idx, kind, id, timestamp_ms, partition: rdkafka::Message::partition(msg) }
        };
        // Never blocks the producer: a full queue makes it a gap record instead.
        let refused = match &self.backfill {
            Some(tx) => tx.try_send(job).err(),
            None => Some(job),
        };
        if let Some(job) = refused {
            self.hold(job);
        }
    }

    /// Keeps a copy of a gap record whose delivery failed (`error`, a [`error_kind`]) to send
    /// again as it was: its topic from its `stream`, its key, its timestamp. Only a failure that
    /// can heal: librdkafka retries the others' causes itself until the message times out, so
    /// one that comes back otherwise (authorization, a policy, a size) would fail again at every
    /// turn. Those, one past the bound, and one failing after the last flush are `dropped`.
    fn keep_marker(&self, symbol_idx: usize, error: &'static str, msg: &BorrowedMessage<'_>) {
        let Some(payload) = rdkafka::Message::payload(msg) else { return };
        // After the last flush nothing is sent again, whatever the error (the producer's drop
        // purges what is in flight: those come back as `other`).
        if self.closing.load(Ordering::Relaxed) {
            return self.drop_markers("shutdown", [payload]);
        }
        let heals =
            matches!(error, "message_timed_out" | "broker_transport" | "all_brokers_down" | "not_enough_replicas");
        if !heals {
            return self.drop_markers(error, [payload]);
        }
        let Some(kind) = marker_kind(payload) else { return self.drop_markers("unknown_stream", [payload]) };
        let now = crate::clock::now_ns();
        // librdkafka reports no timestamp for a failed delivery: the marker's own, as it was.
        let event_time_ms = kafka_timestamp_ms(payload).unwrap_or((now / 1_000_000) as i64);
        let meta = RecordMeta { kind, flags: FLAG_MARKER, symbol_idx: symbol_idx as u16, event_time_ms, recv_ns: now };
        let key = rdkafka::Message::key(msg).unwrap_or_default().to_vec();
        if self.failed_markers.push(OwnedRecord { meta, key, payload: payload.to_vec() }) {
            self.metrics.kafka_gap_records_failed.with_label_values(&["kept"]).inc();
        } else {
            self.drop_markers("bound", [payload]);
        }
    }

    /// Counts gap records that will not be sent again (`why`) and logs each one's text, which
    /// names its symbol, stream and ids: the last trace of those ids. Its own limit, generous
    /// ([`DROPPED_LOG_BURST`] lines each 10 s), so that an overflow of the held ones or a shutdown
    /// logs each; only a flood past it is sampled (with how many lines were suppressed).
    pub(super) fn drop_markers<'p>(&self, why: &'static str, payloads: impl IntoIterator<Item = &'p [u8]>) {
        for p in payloads {
            self.metrics.kafka_gap_records_failed.with_label_values(&["dropped"]).inc();
            if let Some(suppressed) = self.dropped_logs.check("gap_record_dropped") {
                error!(
                    why,
                    suppressed,
                    record = %String::from_utf8_lossy(p),
                    "a gap record could not be delivered and will not be sent again: the ids it names are missing \
                     from the topic without a record saying so"
                );
            }
        }
    }

    /// Keeps a job nobody will fetch for the producer's next turn to name in a gap record: in
    /// doubt (`delivery_in_doubt`), or not written ([`KafkaContext::unqueued_reason`]).
    fn hold(&self, job: Job) {
        let held = if matches!(job, Job::InDoubt { .. }) { &self.unqueued_in_doubt } else { &self.unqueued };
        if let Some((seq, from, to)) = job.range() {
            held.push(seq, from, to);
        }
    }

    /// The reason of the gap records of failed deliveries nobody fetches: the backfill queue was
    /// full, or there is no backfill.
    pub(super) fn unqueued_reason(&self) -> Reason {
        if self.backfill.is_some() {
            Reason::QueueFull
        } else {
            Reason::BackfillOff
        }
    }

    /// Whether every failed record went to the backfill queue (no gap record waits to be published).
    pub(super) fn all_queued(&self) -> bool {
        self.unqueued.is_empty() && self.unqueued_in_doubt.is_empty() && self.failed_markers.is_empty()
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        // Debug output is asked for explicitly (`debug=` in KAFKA_PROPS), so it is not limited.
        if !matches!(level, RDKafkaLogLevel::Debug) && self.rdkafka_logs.check(fac).is_none() {
            return;
        }
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
        // A refused login or certificate does not heal by itself (someone must fix a secret or a
        // CA), so readiness goes down at the first refusal rather than when librdkafka finally
        // declares every broker down; the next acknowledged delivery brings it back.
        if matches!(kind, "all_brokers_down" | "authentication" | "tls") {
            self.metrics.health.sink_ready.store(false, Ordering::Relaxed);
        }
        self.metrics.sink_errors.with_label_values(&[kind]).inc();
        let Some(suppressed) = self.limiter.check(kind) else { return };
        match kind {
            "authentication" => error!(
                kind,
                suppressed,
                login = self.login.as_deref().unwrap_or("none"),
                reason,
                hint = "check KAFKA_USERNAME, KAFKA_PASSWORD (or KAFKA_PASSWORD_FILE) and KAFKA_SASL_MECHANISM; \
                        Azure Event Hubs wants username $ConnectionString and the namespace connection string",
                "kafka authentication failed"
            ),
            "tls" => error!(
                kind,
                suppressed,
                reason,
                hint = "the broker's certificate is not trusted or does not name the broker: check ssl.ca.location \
                        (KAFKA_PROPS) or the system CA store, and the host in KAFKA_BROKER",
                "kafka TLS handshake failed"
            ),
            _ => warn!(kind, suppressed, "kafka client error: {reason}"),
        }
    }
}

/// Packs what the delivery report needs into librdkafka's per-message opaque pointer, so no
/// allocation is made per message: symbol index (16 bits), the record's `Health::partition_acks`
/// slot (2 bits: none, 0 or 1) and ring wait in ns (46 bits, 19 hours).
pub(super) fn pack_opaque(symbol_idx: u16, ack_slot: Option<usize>, ring_wait_ns: u64) -> usize {
    let slot = ack_slot.map_or(0, |s| (s as u64 + 1).min(3));
    ((symbol_idx as u64) << 48 | slot << 46 | ring_wait_ns.min(WAIT_MASK)) as usize
}

const WAIT_MASK: u64 = (1 << 46) - 1;

/// `(symbol index, ack slot, ring wait ns)` of [`pack_opaque`].
pub(super) fn unpack_opaque(v: usize) -> (usize, Option<usize>, u64) {
    let v = v as u64;
    let slot = ((v >> 46) & 3) as usize;
    ((v >> 48) as usize, slot.checked_sub(1), v & WAIT_MASK)
}

impl ProducerContext for KafkaContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let (symbol_idx, ack_slot, ring_wait_ns) = unpack_opaque(opaque);
        match result {
            Ok(msg) => {
                self.metrics.messages_sent[symbol_idx].inc();
                self.metrics.health.sink_ready.store(true, Ordering::Relaxed);
                self.acked.store(true, Ordering::Relaxed);
                if let Some(slot) = ack_slot {
                    self.metrics.health.partition_acks.count(slot, rdkafka::Message::partition(msg));
                }
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
                let payload = rdkafka::Message::payload(msg);
                if is_depth(payload) {
                    self.depth_failed.mark(symbol_idx);
                }
                if payload.is_some_and(is_marker) {
                    self.keep_marker(symbol_idx, kind, msg);
                } else {
                    self.refetch(symbol_idx, msg);
                }
                if let Some(suppressed) = self.limiter.check(kind) {
                    error!(kind, suppressed, symbol = %self.metrics.symbols[symbol_idx], "kafka delivery failed: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_cfg() -> crate::config::Config {
        crate::config::RawConfig::from_pairs(&[("KAFKA_USERNAME", "u"), ("KAFKA_PASSWORD", "p")]).validate().unwrap()
    }

    fn context() -> KafkaContext {
        KafkaContext::new(&ctx_cfg(), Metrics::new(&["btcusdt".to_string()]), None)
    }

    #[test]
    fn a_refused_login_or_certificate_takes_readiness_down_at_once_and_is_counted() {
        for (code, kind) in [
            (RDKafkaErrorCode::Authentication, "authentication"),
            (RDKafkaErrorCode::SaslAuthenticationFailed, "authentication"),
            (RDKafkaErrorCode::SSL, "tls"),
        ] {
            let ctx = context();
            let ready = &ctx.metrics.health.sink_ready;
            ready.store(true, Ordering::Relaxed);
            ctx.error(KafkaError::Global(code), "refused");
            assert!(!ready.load(Ordering::Relaxed), "{code:?} leaves the sink ready");
            assert_eq!(ctx.metrics.sink_errors.with_label_values(&[kind]).get(), 1, "{code:?}");
        }
    }

    /// Without a backfill thread a failed trade is named in a gap record, never dropped: one that
    /// never left as `backfill_off`, one that may have been written as `delivery_in_doubt`.
    #[test]
    fn failed_deliveries_nobody_fetches_are_held_for_gap_records_by_what_may_have_been_written() {
        use crate::sequence::Dense;
        let ctx = context();
        assert!(ctx.all_queued());
        assert_eq!(ctx.unqueued_reason(), Reason::BackfillOff);
        ctx.hold(Job::Range { symbol_idx: 0, kind: Dense::Trade, from: 7, to: 8 });
        ctx.hold(Job::InDoubt { symbol_idx: 0, kind: Dense::AggTrade, id: 9, timestamp_ms: 1, partition: 0 });
        assert!(!ctx.all_queued());
        let ids = |kind| crate::handoff::jobs::Seq::Ids { symbol_idx: 0, kind };
        assert_eq!(ctx.unqueued.take(), Some(vec![(ids(Dense::Trade), 7, 8)]));
        assert_eq!(ctx.unqueued_in_doubt.take(), Some(vec![(ids(Dense::AggTrade), 9, 10)]));
        assert!(ctx.all_queued());
        let (tx, _rx) = crate::handoff::jobs::channel(1);
        let with_backfill = KafkaContext::new(&ctx_cfg(), Metrics::new(&["btcusdt".to_string()]), Some(tx));
        assert_eq!(with_backfill.unqueued_reason(), Reason::QueueFull);
    }

    #[test]
    fn a_transient_transport_error_leaves_readiness_alone() {
        // librdkafka reconnects by itself; readiness falls when every broker is down.
        let ctx = context();
        ctx.metrics.health.sink_ready.store(true, Ordering::Relaxed);
        ctx.error(KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure), "reset");
        assert!(ctx.metrics.health.sink_ready.load(Ordering::Relaxed));
        ctx.error(KafkaError::Global(RDKafkaErrorCode::AllBrokersDown), "1/1 brokers are down");
        assert!(!ctx.metrics.health.sink_ready.load(Ordering::Relaxed));
    }

    #[test]
    fn a_failed_depth_record_marks_its_symbol_once() {
        let ctx = context();
        assert!(is_depth(Some(br#"{"type":"depth_update","symbol":"BTCUSDT"}"#)));
        assert!(is_depth(Some(br#"{"type":"depth_snapshot"}"#)));
        assert!(!is_depth(Some(br#"{"type":"trade"}"#)) && !is_depth(None));
        ctx.depth_failed.mark(0);
        ctx.depth_failed.mark(0);
        ctx.depth_failed.mark(7);
        let mut got = Vec::new();
        ctx.depth_failed.take(&mut |s| got.push(s));
        ctx.depth_failed.take(&mut |s| got.push(s));
        assert_eq!(got, [0], "once, and an unknown index is ignored");
    }

    #[test]
    fn opaque_round_trips() {
        assert_eq!(unpack_opaque(pack_opaque(7, None, 123_456)), (7, None, 123_456));
        assert_eq!(unpack_opaque(pack_opaque(7, Some(0), 1)), (7, Some(0), 1));
        assert_eq!(
            unpack_opaque(pack_opaque(u16::MAX, Some(1), u64::MAX)),
            (u16::MAX as usize, Some(1), (1 << 46) - 1)
        );
    }
}
