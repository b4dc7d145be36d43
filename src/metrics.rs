//! Counters, gauges and latency histograms, exported in the Prometheus text format.
//!
//! Per-message counters are pre-resolved `IntCounter` handles (one atomic add, no label lookup,
//! no lock). Latencies are recorded into HdrHistograms owned by the recording thread and merged
//! into a shared copy a few times per second, so the only lock is taken per publish interval,
//! never per message. Label sets are bounded: symbols come from the configuration, everything
//! else from fixed lists.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub use crate::health::Health;
use crate::record::RecordType;
use crate::symbols::Symbols;

pub const NAMESPACE: &str = "marketflow_ingestor";

/// Pipeline stages with their own latency histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Exchange event time (`E`, ms resolution) to local receive: network plus clock skew.
    ExchangeToReceive = 0,
    /// Socket read to ring commit: TLS, WebSocket framing, parse, normalize, encode.
    ReceiveToEnqueue = 1,
    /// Ring commit to the broker's acknowledgement (acks=all).
    EnqueueToAck = 2,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::ExchangeToReceive, Stage::ReceiveToEnqueue, Stage::EnqueueToAck];
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::ExchangeToReceive => "exchange_to_receive",
            Stage::ReceiveToEnqueue => "receive_to_enqueue",
            Stage::EnqueueToAck => "enqueue_to_ack",
        }
    }
}

/// Upper bounds (seconds) of the exported histogram buckets: 1 µs to 10 s, fine enough to see
/// microseconds at the bottom and broker stalls at the top.
pub const BUCKETS_SECONDS: &[f64] = &[
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0, 2.0,
    5.0, 10.0,
];

/// Quantiles exported as gauges, computed exactly from the HdrHistogram (no bucket interpolation).
pub const QUANTILES: &[f64] = &[0.5, 0.9, 0.99, 0.999, 1.0];

/// Every `reason` of `messages_rejected_total` (parse, record, pipeline and WebSocket reasons).
pub const REJECT_REASONS: &[&str] = &[
    "malformed_json",
    "unknown_shape",
    "unknown_stream",
    "event_type_mismatch",
    "symbol_mismatch",
    "interval_mismatch",
    "too_deep",
    "bad_decimal",
    "bad_symbol",
    "bad_levels",
    "bad_interval",
    "ring_overflow",
    "unknown_symbol",
    "binary_frame",
    "frame_too_large",
    "ws_protocol",
    "invalid_utf8",
];

/// Every `kind` of `kafka_delivery_errors_total` (see `sink::error_kind`).
pub const KAFKA_ERROR_KINDS: &[&str] = &[
    "message_timed_out",
    "queue_full",
    "message_too_large",
    "all_brokers_down",
    "broker_transport",
    "authentication",
    "authorization",
    "unknown_topic",
    "not_enough_replicas",
    "fatal",
    "resolve",
    "tls",
    "other",
];

/// Frame kinds counted on receipt (a bounded label set).
pub const FRAME_KINDS: &[&str] = &[
    "trade",
    "agg_trade",
    "kline",
    "book_ticker",
    "depth_update",
    "control_reply",
    "error_reply",
    "server_shutdown",
    "unparsed",
];

struct Slot {
    hist: Histogram<u64>,
    sum_ns: u128,
}

impl Slot {
    fn new() -> Slot {
        // 1 ns .. 1 h at 2 significant digits: ~1% error, tens of KiB per histogram.
        Slot { hist: Histogram::new_with_bounds(1, 3_600_000_000_000, 2).expect("static bounds"), sum_ns: 0 }
    }
}

/// The shared, exported copy of all latency histograms.
pub struct LatencyHub {
    symbols: Vec<String>,
    shared: Mutex<Vec<Slot>>,
    desc: Vec<Desc>,
}

impl LatencyHub {
    fn new(symbols: &[String]) -> LatencyHub {
        let n = Stage::ALL.len() * symbols.len();
        let desc = vec![
            Desc::new(
                format!("{NAMESPACE}_latency_seconds"),
                "Pipeline latency per stage (exchange_to_receive, receive_to_enqueue, enqueue_to_ack), from HdrHistogram".into(),
                vec!["symbol".into(), "stage".into()],
                Default::default(),
            )
            .expect("valid desc"),
            Desc::new(
                format!("{NAMESPACE}_latency_quantile_seconds"),
                "Exact latency quantiles per stage since start, from HdrHistogram".into(),
                vec!["symbol".into(), "stage".into(), "quantile".into()],
                Default::default(),
            )
            .expect("valid desc"),
        ];
        LatencyHub { symbols: symbols.to_vec(), shared: Mutex::new((0..n).map(|_| Slot::new()).collect()), desc }
    }

    /// A recorder for one thread; it owns its histograms and merges them in on `publish`.
    pub fn recorder(self: &Arc<Self>) -> LatencyRecorder {
        LatencyRecorder {
            hub: self.clone(),
            local: (0..Stage::ALL.len() * self.symbols.len()).map(|_| Slot::new()).collect(),
            last_publish: Instant::now(),
            dirty: false,
        }
    }

    /// Value at `q` for (stage, symbol), in ns; for tests and the load harness.
    pub fn quantile_ns(&self, stage: Stage, symbol_idx: usize, q: f64) -> u64 {
        let s = self.shared.lock().unwrap();
        s[stage as usize * self.symbols.len() + symbol_idx].hist.value_at_quantile(q)
    }

    /// Count recorded for (stage, symbol).
    pub fn count(&self, stage: Stage, symbol_idx: usize) -> u64 {
        let s = self.shared.lock().unwrap();
        s[stage as usize * self.symbols.len() + symbol_idx].hist.len()
    }

    /// The full HdrHistogram percentile distribution of one stage over all symbols, in the
    /// classic `.hgrm` text layout (values in microseconds), for plotting and offline comparison.
    pub fn percentile_distribution(&self, stage: Stage) -> String {
        use std::fmt::Write as _;
        let h = self.merged(stage);
        let mut out = String::new();
        let _ = writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let inv = if q < 1.0 { 1.0 / (1.0 - q) } else { f64::INFINITY };
            // TotalCount is cumulative, as in HdrHistogram's own output.
            total += v.count_since_last_iteration();
            let _ = writeln!(
                out,
                "{:>12.3} {:>14.12} {:>10} {:>14.2}",
                v.value_iterated_to() as f64 / 1000.0,
                q,
                total,
                inv
            );
        }
        let _ = writeln!(
            out,
            "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n#[Max     = {:>12.3}, Total count    = {:>12}]",
            h.mean() / 1000.0,
            h.stdev() / 1000.0,
            h.max() as f64 / 1000.0,
            h.len()
        );
        out
    }

    /// A merged copy of one stage over all symbols.
    pub fn merged(&self, stage: Stage) -> Histogram<u64> {
        let s = self.shared.lock().unwrap();
        let mut h = Slot::new().hist;
        for i in 0..self.symbols.len() {
            h.add(&s[stage as usize * self.symbols.len() + i].hist).expect("same bounds");
        }
        h
    }
}

fn label(name: &str, value: &str) -> proto::LabelPair {
    let mut l = proto::LabelPair::default();
    l.set_name(name.into());
    l.set_value(value.into());
    l
}

impl Collector for LatencyHub {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = self.shared.lock().unwrap();
        let mut hist_family = MetricFamily::default();
        hist_family.set_name(self.desc[0].fq_name.clone());
        hist_family.set_help(self.desc[0].help.clone());
        hist_family.set_field_type(MetricType::HISTOGRAM);
        let mut q_family = MetricFamily::default();
        q_family.set_name(self.desc[1].fq_name.clone());
        q_family.set_help(self.desc[1].help.clone());
        q_family.set_field_type(MetricType::GAUGE);
        let mut hists = Vec::new();
        let mut gauges = Vec::new();
        for stage in Stage::ALL {
            for (i, sym) in self.symbols.iter().enumerate() {
                let slot = &s[stage as usize * self.symbols.len() + i];
                let mut h = proto::Histogram::default();
                h.set_sample_count(slot.hist.len());
                h.set_sample_sum(slot.sum_ns as f64 / 1e9);
                let buckets = BUCKETS_SECONDS
                    .iter()
                    .map(|&le| {
                        let mut b = proto::Bucket::default();
                        b.set_upper_bound(le);
                        let le_ns = (le * 1e9) as u64;
                        // count_between is inclusive and works on bucket equivalence ranges; with
                        // 2 significant digits the boundary error is below 1%.
                        b.set_cumulative_count(if slot.hist.is_empty() {
                            0
                        } else {
                            slot.hist.count_between(0, le_ns)
                        });
                        b
                    })
                    .collect();
                h.set_bucket(buckets);
                let mut m = proto::Metric::from_label(vec![label("stage", stage.as_str()), label("symbol", sym)]);
                m.set_histogram(h);
                hists.push(m);
                if !slot.hist.is_empty() {
                    for &q in QUANTILES {
                        let mut g = proto::Gauge::default();
                        g.set_value(slot.hist.value_at_quantile(q) as f64 / 1e9);
                        let mut m = proto::Metric::from_label(vec![
                            label("quantile", &q.to_string()),
                            label("stage", stage.as_str()),
                            label("symbol", sym),
                        ]);
                        m.set_gauge(g);
                        gauges.push(m);
                    }
                }
            }
        }
        hist_family.set_metric(hists);
        q_family.set_metric(gauges);
        if q_family.get_metric().is_empty() {
            vec![hist_family]
        } else {
            vec![hist_family, q_family]
        }
    }
}

/// Thread-owned latency histograms; `record` is a few ns and takes no lock.
pub struct LatencyRecorder {
    hub: Arc<LatencyHub>,
    local: Vec<Slot>,
    last_publish: Instant,
    dirty: bool,
}

impl LatencyRecorder {
    #[inline]
    pub fn record(&mut self, stage: Stage, symbol_idx: usize, ns: u64) {
        let slot = &mut self.local[stage as usize * self.hub.symbols.len() + symbol_idx];
        slot.hist.saturating_record(ns.max(1));
        slot.sum_ns += ns as u128;
        self.dirty = true;
    }

    /// Publishes if `every` has passed since the last publish.
    pub fn maybe_publish(&mut self, every: Duration) {
        if self.dirty && self.last_publish.elapsed() >= every {
            self.publish();
        }
    }

    /// Merges the local histograms into the exported ones and starts afresh.
    pub fn publish(&mut self) {
        self.last_publish = Instant::now();
        if !self.dirty {
            return;
        }
        let mut shared = self.hub.shared.lock().unwrap();
        for (dst, src) in shared.iter_mut().zip(self.local.iter_mut()) {
            if !src.hist.is_empty() {
                dst.hist.add(&src.hist).expect("same bounds");
                dst.sum_ns += src.sum_ns;
                src.hist.reset();
                src.sum_ns = 0;
            }
        }
        self.dirty = false;
    }
}

/// Every metric the ingester exports.
pub struct Metrics {
    pub registry: Registry,
    /// The configured symbols, indexed once for every thread (see [`Symbols`]).
    pub symbols: Arc<Symbols>,
    /// Records acknowledged by the sink (Kafka: delivery report without error), per symbol.
    pub messages_sent: Vec<IntCounter>,
    /// Reconnections of a connection carrying the symbol, per symbol.
    pub ws_reconnects: Vec<IntCounter>,
    /// Sequence breaks (ids that never arrived), per symbol.
    pub gaps: Vec<IntCounter>,
    /// Ids missing in those gaps, per symbol.
    pub gap_ids_missing: Vec<IntCounter>,
    /// Records dropped because their exchange id was already accepted, per symbol.
    pub duplicates: Vec<IntCounter>,
    /// Records published from REST to fill gaps, per symbol.
    pub backfilled: Vec<IntCounter>,
    /// Unrecoverable ranges published as `gap` markers, per symbol.
    pub gap_markers: Vec<IntCounter>,
    /// Records dropped because the buffer cap was reached (Kafka too slow or down), per symbol;
    /// trades and aggTrades among them are backfilled once there is room again.
    pub overflow_dropped: Vec<IntCounter>,
    /// Records implausibly far ahead of their sequence, published flagged, per symbol.
    pub quarantined: Vec<IntCounter>,
    /// Gaps published at once because the bounded backfill queue was full, per symbol.
    pub backfill_queue_full: Vec<IntCounter>,
    /// Id ranges waiting in the backfill thread's queue.
    pub backfill_queue_ranges: IntGauge,
    pub backfill_jobs: IntCounter,
    pub backfill_retries: IntCounter,
    pub rest_requests: IntCounterVec,
    pub rest_used_weight: IntGauge,
    pub ws_stale: IntCounter,
    pub ws_rotations: IntCounter,
    /// Text frames received, by frame kind (index into [`FRAME_KINDS`]).
    pub received: Vec<IntCounter>,
    /// Records normalized and enqueued, by record type.
    pub parsed: Vec<IntCounter>,
    pub rejected: IntCounterVec,
    pub ws_connect_attempts: IntCounterVec,
    pub ws_connections: IntGaugeVec,
    pub ws_pings: IntCounter,
    pub ring_used_bytes: IntGauge,
    pub ring_capacity_bytes: IntGauge,
    pub ring_occupancy_ratio: Gauge,
    pub ring_full_waits: IntCounter,
    pub kafka_delivery_errors: IntCounterVec,
    pub kafka_in_flight: IntGauge,
    pub sink_errors: IntCounterVec,
    pub latency: Arc<LatencyHub>,
    /// The process's liveness and readiness: not a metric (nothing here registers it), a shared
    /// handle carried beside the metrics for the threads that report to both.
    pub health: Arc<Health>,
}

impl Metrics {
    pub fn new(symbols: &[String]) -> Arc<Metrics> {
        let registry = Registry::new();
        let reg = |c: Box<dyn Collector>| registry.register(c).expect("metric registered once");
        let opts = |name: &str, help: &str| Opts::new(format!("{NAMESPACE}_{name}"), help.to_string());

        let per_symbol = |name: &str, help: &str| {
            let v = IntCounterVec::new(opts(name, help), &["symbol"]).expect("valid metric");
            reg(Box::new(v.clone()));
            // As configured in SYMBOLS (lower case), the label values the original service used.
            symbols.iter().map(|s| v.with_label_values(&[s])).collect::<Vec<_>>()
        };
        let messages_sent = per_symbol("messages_sent_total", "Records acknowledged by the sink (Kafka: acks=all)");
        let ws_reconnects =
            per_symbol("ws_reconnects_total", "WebSocket reconnections of a connection carrying this symbol");

        let gaps = per_symbol("gaps_total", "Sequence gaps detected (trade, aggTrade or depth ids skipped)");
        let gap_ids_missing = per_symbol("gap_ids_missing_total", "Exchange ids missing in detected gaps");
        let duplicates =
            per_symbol("duplicates_dropped_total", "Records dropped as duplicates of an already accepted exchange id");
        let backfilled = per_symbol("backfilled_total", "Records fetched from REST and published to fill gaps");
        let gap_markers = per_symbol("gap_markers_total", "Unrecoverable id ranges published as gap markers");
        let overflow_dropped = per_symbol(
            "overflow_dropped_total",
            "Records dropped at the buffer cap (trades/aggTrades are backfilled later)",
        );
        let quarantined =
            per_symbol("quarantined_total", "Records implausibly far ahead of their sequence, published flagged");
        let backfill_queue_full = per_symbol(
            "backfill_queue_full_total",
            "Gaps published as backfill_queue_full: the backfill queue was full",
        );
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(opts(name, help)).unwrap();
            reg(Box::new(c.clone()));
            c
        };
        let backfill_jobs = counter("backfill_jobs_total", "Backfill jobs run (id ranges or depth resyncs)");
        let backfill_retries = counter("backfill_retries_total", "Backfill REST fetches retried");
        let ws_stale =
            counter("ws_stale_total", "Connections replaced after seeing neither data nor ping for too long");
        let ws_rotations =
            counter("ws_rotations_total", "Make-before-break connection rotations (age limit or serverShutdown)");
        let rest_requests = IntCounterVec::new(
            opts("rest_requests_total", "Binance REST requests, by endpoint and status class"),
            &["endpoint", "status"],
        )
        .unwrap();
        reg(Box::new(rest_requests.clone()));
        let backfill_queue_ranges =
            IntGauge::with_opts(opts("backfill_queue_ranges", "Id ranges waiting in the backfill queue")).unwrap();
        reg(Box::new(backfill_queue_ranges.clone()));
        let rest_used_weight =
            IntGauge::with_opts(opts("rest_used_weight", "Last X-MBX-USED-WEIGHT-1M reported by Binance")).unwrap();
        reg(Box::new(rest_used_weight.clone()));
        let received_vec =
            IntCounterVec::new(opts("messages_received_total", "Text frames received, by kind"), &["type"]).unwrap();
        reg(Box::new(received_vec.clone()));
        let received = FRAME_KINDS.iter().map(|k| received_vec.with_label_values(&[k])).collect();

        let parsed_vec = IntCounterVec::new(
            opts("messages_parsed_total", "Records normalized and enqueued for the sink, by type"),
            &["type"],
        )
        .unwrap();
        reg(Box::new(parsed_vec.clone()));
        let parsed = RecordType::ALL.iter().map(|t| parsed_vec.with_label_values(&[t.as_str()])).collect();

        let rejected =
            IntCounterVec::new(opts("messages_rejected_total", "Frames dropped as invalid, by reason"), &["reason"])
                .unwrap();
        reg(Box::new(rejected.clone()));
        let ws_connect_attempts = IntCounterVec::new(
            opts("ws_connect_attempts_total", "WebSocket connection attempts, by result"),
            &["result"],
        )
        .unwrap();
        reg(Box::new(ws_connect_attempts.clone()));
        let ws_connections =
            IntGaugeVec::new(opts("ws_connections", "WebSocket connections, by state"), &["state"]).unwrap();
        reg(Box::new(ws_connections.clone()));
        let ws_pings = IntCounter::with_opts(opts("ws_pings_total", "Server pings answered with a pong")).unwrap();
        reg(Box::new(ws_pings.clone()));
        let ring_used_bytes = IntGauge::with_opts(opts("ring_used_bytes", "Bytes waiting in the ring")).unwrap();
        reg(Box::new(ring_used_bytes.clone()));
        let ring_capacity_bytes = IntGauge::with_opts(opts("ring_capacity_bytes", "Ring capacity in bytes")).unwrap();
        reg(Box::new(ring_capacity_bytes.clone()));
        let ring_occupancy_ratio =
            Gauge::with_opts(opts("ring_occupancy_ratio", "Fraction of the ring in use (0-1)")).unwrap();
        reg(Box::new(ring_occupancy_ratio.clone()));
        let ring_full_waits = IntCounter::with_opts(opts(
            "ring_full_waits_total",
            "Times the event loop found the ring full and waited for the producer (backpressure)",
        ))
        .unwrap();
        reg(Box::new(ring_full_waits.clone()));
        let kafka_delivery_errors = IntCounterVec::new(
            opts("kafka_delivery_errors_total", "Kafka delivery failures, by error kind"),
            &["kind"],
        )
        .unwrap();
        reg(Box::new(kafka_delivery_errors.clone()));
        let kafka_in_flight = IntGauge::with_opts(opts(
            "kafka_in_flight_messages",
            "Messages handed to librdkafka, not yet acknowledged",
        ))
        .unwrap();
        reg(Box::new(kafka_in_flight.clone()));
        let sink_errors =
            IntCounterVec::new(opts("sink_errors_total", "Errors handing records to the sink, by kind"), &["kind"])
                .unwrap();
        reg(Box::new(sink_errors.clone()));
        let build = IntGaugeVec::new(opts("build_info", "Build version and commit"), &["version", "commit"]).unwrap();
        reg(Box::new(build.clone()));
        build.with_label_values(&[env!("CARGO_PKG_VERSION"), crate::GIT_COMMIT]).set(1);

        let latency = Arc::new(LatencyHub::new(symbols));
        registry.register(Box::new(LatencyHubRef(latency.clone()))).expect("latency registered once");

        for state in ["connecting", "open", "backoff"] {
            ws_connections.with_label_values(&[state]).set(0);
        }
        // Every known label value exists from the start at 0: a dashboard panel then shows 0
        // rather than "no data", and `rate()` sees the very first increment.
        for reason in REJECT_REASONS {
            rejected.with_label_values(&[reason]);
        }
        for kind in KAFKA_ERROR_KINDS {
            kafka_delivery_errors.with_label_values(&[kind]);
        }
        // The client errors that need a person (a secret, a CA) exist from the start, so an alert
        // on their increase fires at the first refusal.
        for kind in ["authentication", "tls"] {
            sink_errors.with_label_values(&[kind]);
        }
        Arc::new(Metrics {
            registry,
            symbols: Arc::new(Symbols::new(symbols)),
            messages_sent,
            ws_reconnects,
            gaps,
            gap_ids_missing,
            duplicates,
            backfilled,
            gap_markers,
            overflow_dropped,
            quarantined,
            backfill_queue_full,
            backfill_queue_ranges,
            backfill_jobs,
            backfill_retries,
            rest_requests,
            rest_used_weight,
            ws_stale,
            ws_rotations,
            received,
            parsed,
            rejected,
            ws_connect_attempts,
            ws_connections,
            ws_pings,
            ring_used_bytes,
            ring_capacity_bytes,
            ring_occupancy_ratio,
            ring_full_waits,
            kafka_delivery_errors,
            kafka_in_flight,
            sink_errors,
            latency,
            health: Arc::new(Health::default()),
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = String::new();
        prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut buf).expect("text encoding");
        buf
    }

    pub fn sent_total(&self) -> u64 {
        self.messages_sent.iter().map(|c| c.get()).sum()
    }
}

/// Registers the hub by reference so `Metrics` keeps its own handle for recorders.
struct LatencyHubRef(Arc<LatencyHub>);

impl Collector for LatencyHubRef {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }
    fn collect(&self) -> Vec<MetricFamily> {
        self.0.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_exported_as_a_histogram_with_microsecond_buckets() {
        let m = Metrics::new(&["btcusdt".to_string()]);
        let mut r = m.latency.recorder();
        for ns in [800, 1_500, 3_000, 40_000, 2_000_000] {
            r.record(Stage::ReceiveToEnqueue, 0, ns);
        }
        let before = m.render();
        assert!(before
            .contains("marketflow_ingestor_latency_seconds_count{stage=\"receive_to_enqueue\",symbol=\"btcusdt\"} 0"));
        r.publish();
        let text = m.render();
        let line =
            |s: &str| text.lines().find(|l| l.starts_with(s)).unwrap_or_else(|| panic!("{s} in {text}")).to_string();
        assert!(line("marketflow_ingestor_latency_seconds_bucket{stage=\"receive_to_enqueue\",symbol=\"btcusdt\",le=\"0.000001\"}").ends_with(" 1"));
        assert!(line("marketflow_ingestor_latency_seconds_bucket{stage=\"receive_to_enqueue\",symbol=\"btcusdt\",le=\"0.000005\"}").ends_with(" 3"));
        assert!(line(
            "marketflow_ingestor_latency_seconds_bucket{stage=\"receive_to_enqueue\",symbol=\"btcusdt\",le=\"+Inf\"}"
        )
        .ends_with(" 5"));
        assert!(line("marketflow_ingestor_latency_seconds_count{stage=\"receive_to_enqueue\",symbol=\"btcusdt\"}")
            .ends_with(" 5"));
        assert!(text.contains("marketflow_ingestor_latency_quantile_seconds{quantile=\"0.5\",stage=\"receive_to_enqueue\",symbol=\"btcusdt\"} 0.000003"));
        assert_eq!(m.latency.count(Stage::ReceiveToEnqueue, 0), 5);
        let dist = m.latency.percentile_distribution(Stage::ReceiveToEnqueue);
        assert!(dist.contains("Total count    =            5"), "{dist}");
        let last = dist.lines().rfind(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap();
        let max_us: f64 = last.split_whitespace().next().unwrap().parse().unwrap();
        assert!((max_us - 2000.0).abs() / 2000.0 < 0.01, "max is 2 ms = 2000 us within HdrHistogram's 1%: {last}");
    }

    #[test]
    fn every_reject_reason_is_pre_registered() {
        use crate::binance::wire::ParseError as P;
        use crate::record::RecordError as R;
        let reasons = [
            P::Json.reason(),
            P::UnknownShape.reason(),
            P::UnknownStream.reason(),
            P::EventTypeMismatch.reason(),
            P::SymbolMismatch.reason(),
            P::IntervalMismatch.reason(),
            R::BadDecimal("x").reason(),
            R::BadSymbol.reason(),
            R::BadLevels.reason(),
            R::BadInterval.reason(),
        ];
        for r in reasons {
            assert!(REJECT_REASONS.contains(&r), "{r} missing from REJECT_REASONS");
        }
        let m = Metrics::new(&["btcusdt".to_string()]);
        assert!(m.render().contains("marketflow_ingestor_messages_rejected_total{reason=\"malformed_json\"} 0"));
        assert!(m.render().contains("marketflow_ingestor_kafka_delivery_errors_total{kind=\"message_timed_out\"} 0"));
    }

    #[test]
    fn counters_carry_the_configured_symbol_label() {
        let m = Metrics::new(&["btcusdt".to_string(), "ethusdt".to_string()]);
        m.messages_sent[1].inc_by(3);
        let text = m.render();
        assert!(text.contains("marketflow_ingestor_messages_sent_total{symbol=\"ethusdt\"} 3"), "{text}");
        assert!(text.contains("marketflow_ingestor_ws_reconnects_total{symbol=\"btcusdt\"} 0"));
        assert_eq!(m.sent_total(), 3);
    }
}
