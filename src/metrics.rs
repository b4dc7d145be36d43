//! Counters, gauges and latency histograms, exported in the Prometheus text format.
//!
//! Per-message counters are pre-resolved `IntCounter` handles (one atomic add, no label lookup,
//! no lock). Latencies are recorded into HdrHistograms owned by the recording thread and merged
//! into a shared copy a few times per second, so the only lock is taken per publish interval,
//! never per message. Label sets are bounded: symbols come from the configuration, everything
//! else from fixed lists.
//!
//! Series per symbol are bounded too ([`Detail`]): the seed's three metrics (`messages_sent_total`,
//! `ws_reconnects_total`, `latency_seconds`) and the per-stream ages always carry the `symbol`
//! label; above `METRICS_SYMBOL_DETAIL_MAX` symbols the rest of the per-symbol detail (latency
//! histograms and quantiles, gap, duplicate, backfill, overflow and ordering counters) is
//! exported once for the lane, as `symbol="_all"`.

mod labels;
mod latency;
mod ordering;

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub use crate::health::Health;
use crate::record::RecordType;
use crate::symbols::Symbols;
pub use labels::{FrameKind, FAILED_GAP_RESULTS, FRAME_KINDS, IN_DOUBT_RESULTS, KAFKA_ERROR_KINDS, REJECT_REASONS};
pub use latency::{LatencyHub, LatencyRecorder, Precision, Stage, BUCKETS_SECONDS, QUANTILES};
pub use ordering::{Named, OrderingMetrics, NAMED_REASONS};

pub const NAMESPACE: &str = "marketflow_ingestor";

/// The label naming the market of a series from [`Metrics::for_market`].
pub const MARKET_LABEL: &str = "market";

/// The `symbol` label of a series over all of a lane's symbols ([`Detail::Aggregated`]); no
/// Binance listing is named so, and a dashboard's symbol filter can add it (`$symbol|_all`).
pub const ALL_SYMBOLS: &str = "_all";

/// Symbols up to which every per-symbol series is exported (`METRICS_SYMBOL_DETAIL_MAX`'s default).
/// At 100 symbols a full scrape is about 10,000 series and 0.9 MB (README, Metrics); past it the
/// detail is what outgrows a Prometheus target, not the seed's counters.
pub const DEFAULT_SYMBOL_DETAIL_MAX: usize = 100;

/// How much per-symbol detail `/metrics` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Every per-symbol series, labelled by its symbol.
    PerSymbol,
    /// The detail series once per lane, `symbol="_all"`: the values are the sums over the symbols
    /// (the latency histograms merged), so `sum(...)` and `histogram_quantile` over them give what
    /// they gave per symbol, and a per-symbol alert fires on the lane's total.
    Aggregated,
}

impl Detail {
    /// The detail of a lane of `symbols` symbols when at most `max` get every series.
    pub fn for_symbols(symbols: usize, max: usize) -> Detail {
        if symbols <= max {
            Detail::PerSymbol
        } else {
            Detail::Aggregated
        }
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
    /// Requests sent to the market-data-only fallback host while the main one failed.
    pub rest_fallback_requests: IntCounterVec,
    pub rest_used_weight: IntGauge,
    pub ws_stale: IntCounter,
    pub ws_rotations: IntCounter,
    /// Seconds since each stream's last message, by symbol and stream kind (resolved by the
    /// event loop for the configured streams: symbols x kinds series).
    pub stream_age: GaugeVec,
    /// Silent streams dealt with, by the `action` of their `stale` record.
    pub stream_stale: IntCounterVec,
    /// Streams silent now (found silent and not yet recovered).
    pub streams_stale: IntGauge,
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
    /// Failed deliveries that may have been written (`backfill::doubt`), by what became of them.
    pub kafka_in_doubt: IntCounterVec,
    pub kafka_gap_records_failed: IntCounterVec,
    pub kafka_in_flight: IntGauge,
    /// Seconds the records in flight have waited with no acknowledgement (`sink::StallWatch`).
    pub kafka_unacked_age: Gauge,
    pub sink_errors: IntCounterVec,
    /// `ORDERING=strict`'s hold (exported at 0 otherwise).
    pub ordering: OrderingMetrics,
    /// Whether the per-symbol detail is exported per symbol or once as `_all`.
    pub detail: Detail,
    pub latency: Arc<LatencyHub>,
    /// The process's liveness and readiness: not a metric (nothing here registers it), a shared
    /// handle carried beside the metrics for the threads that report to both.
    pub health: Arc<Health>,
}

impl Metrics {
    /// The metrics of the first market, with the default [`Detail`] rule.
    pub fn new(symbols: &[String]) -> Arc<Metrics> {
        Metrics::build(symbols, None, Detail::for_symbols(symbols.len(), DEFAULT_SYMBOL_DETAIL_MAX))
    }

    /// The metrics of one market of several in the process: every series carries
    /// `market="<market>"`, so that the markets' registries merge into one exposition (see
    /// `http`) without two series of the same labels.
    pub fn for_market(symbols: &[String], market: &str) -> Arc<Metrics> {
        Metrics::build(symbols, Some(market), Detail::for_symbols(symbols.len(), DEFAULT_SYMBOL_DETAIL_MAX))
    }

    /// The metrics of a lane: `market` as in [`Metrics::for_market`] (`None`: the first market,
    /// whose series keep the seed's labels), `detail` as the configuration says.
    pub fn build(symbols: &[String], market: Option<&str>, detail: Detail) -> Arc<Metrics> {
        let registry = match market {
            None => Registry::new(),
            Some(market) => {
                let labels = std::collections::HashMap::from([(MARKET_LABEL.to_string(), market.to_string())]);
                // Only an empty prefix is refused, and there is none.
                Registry::new_custom(None, Some(labels)).expect("no prefix")
            }
        };
        Metrics::with_registry(symbols, registry, detail)
    }

    fn with_registry(symbols: &[String], registry: Registry, detail: Detail) -> Arc<Metrics> {
        let r = Registrar(&registry);

        // The seed's counters: one series per symbol whatever the detail.
        let seed = |name: &str, help: &str| {
            let v = r.counter_vec(name, help, &["symbol"]);
            // As configured in SYMBOLS (lower case), the label values the original service used.
            symbols.iter().map(|s| v.with_label_values(&[s])).collect::<Vec<_>>()
        };
        // The detail: per symbol, or every index sharing the one `_all` counter, so that the
        // callers index by symbol either way and an increment stays one atomic add.
        let per_symbol = |name: &str, help: &str| {
            let v = r.counter_vec(name, help, &["symbol"]);
            per_symbol_handles(detail, symbols, |s| v.with_label_values(&[s]))
        };
        let messages_sent = seed("messages_sent_total", "Records acknowledged by the sink (Kafka: acks=all)");
        let ws_reconnects = seed("ws_reconnects_total", "WebSocket reconnections of a connection carrying this symbol");

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
        let counter = |name: &str, help: &str| r.counter(name, help);
        let backfill_jobs = counter("backfill_jobs_total", "Backfill jobs run (id ranges or depth resyncs)");
        let backfill_retries = counter("backfill_retries_total", "Backfill REST fetches retried");
        let ws_stale =
            counter("ws_stale_total", "Connections replaced after seeing neither data nor ping for too long");
        let ws_rotations =
            counter("ws_rotations_total", "Make-before-break connection rotations (age limit or serverShutdown)");
        let stream_age = r.float_gauge_vec(
            "stream_last_message_age_seconds",
            "Seconds since the stream's last message (since start when it sent none)",
            &["symbol", "stream"],
        );
        let stream_stale = r.counter_vec(
            "stream_stale_total",
            "Streams silent while their connection lived on, by what was done (resubscribe, replace_connection, recovered)",
            &["action"],
        );
        for a in crate::liveness::Action::ALL {
            stream_stale.with_label_values(&[a.as_str()]);
        }
        let streams_stale = r.int_gauge("streams_stale", "Streams silent now: found silent and not yet recovered");
        let rest_requests = r.counter_vec(
            "rest_requests_total",
            "Binance REST requests, by endpoint and status class",
            &["endpoint", "status"],
        );
        let rest_fallback_requests = r.counter_vec(
            "rest_fallback_requests_total",
            "REST requests sent to the fallback host (data-api) while the main one failed, by endpoint and status",
            &["endpoint", "status"],
        );
        // A firewall block needs a person (or another egress IP): exported at 0 from the start, so
        // an alert on its increase fires at the first 403.
        for endpoint in ["historicalTrades", "aggTrades", "klines", "depth"] {
            rest_requests.with_label_values(&[endpoint, "403"]);
        }
        // The fallback's answers exist from the start too, so a dashboard shows 0, not "no data".
        for endpoint in ["aggTrades", "klines", "depth"] {
            rest_fallback_requests.with_label_values(&[endpoint, "2xx"]);
        }
        let backfill_queue_ranges = r.int_gauge("backfill_queue_ranges", "Id ranges waiting in the backfill queue");
        let rest_used_weight = r.int_gauge("rest_used_weight", "Last X-MBX-USED-WEIGHT-1M reported by Binance");
        let received_vec = r.counter_vec("messages_received_total", "Text frames received, by kind", &["type"]);
        let received = FrameKind::ALL.iter().map(|k| received_vec.with_label_values(&[k.as_str()])).collect();

        let parsed_vec =
            r.counter_vec("messages_parsed_total", "Records normalized and enqueued for the sink, by type", &["type"]);
        let parsed = RecordType::ALL.iter().map(|t| parsed_vec.with_label_values(&[t.as_str()])).collect();

        let rejected = r.counter_vec("messages_rejected_total", "Frames dropped as invalid, by reason", &["reason"]);
        let ws_connect_attempts =
            r.counter_vec("ws_connect_attempts_total", "WebSocket connection attempts, by result", &["result"]);
        let ws_connections = r.gauge_vec("ws_connections", "WebSocket connections, by state", &["state"]);
        let ws_pings = r.counter("ws_pings_total", "Server pings answered with a pong");
        let ring_used_bytes = r.int_gauge("ring_used_bytes", "Bytes waiting in the ring");
        let ring_capacity_bytes = r.int_gauge("ring_capacity_bytes", "Ring capacity in bytes");
        let ring_occupancy_ratio = r.gauge("ring_occupancy_ratio", "Fraction of the ring in use (0-1)");
        let ring_full_waits = r.counter(
            "ring_full_waits_total",
            "Times the event loop found the ring full and waited for the producer (backpressure)",
        );
        let kafka_delivery_errors =
            r.counter_vec("kafka_delivery_errors_total", "Kafka delivery failures, by error kind", &["kind"]);
        let kafka_in_doubt = r.counter_vec(
            "kafka_in_doubt_total",
            "Trades whose delivery failed after the broker got the request, by result: in_doubt (reported so), \
             published (read back from the topic), refetched (not there: fetched again), unverified (named in a gap record)",
            &["result"],
        );
        for result in IN_DOUBT_RESULTS {
            kafka_in_doubt.with_label_values(&[result]);
        }
        let kafka_gap_records_failed = r.counter_vec(
            "kafka_gap_records_failed_total",
            "Gap records whose own delivery failed, by result: kept (sent again on the next producer turn), \
             dropped (past the bound of held ones, or unsent at shutdown: logged)",
            &["result"],
        );
        for result in FAILED_GAP_RESULTS {
            kafka_gap_records_failed.with_label_values(&[result]);
        }
        let kafka_in_flight =
            r.int_gauge("kafka_in_flight_messages", "Messages handed to librdkafka, not yet acknowledged");
        // Exported from the start (at 0), so the stall alert's series exists before any stall.
        let kafka_unacked_age = r.gauge(
            "kafka_unacked_age_seconds",
            "Seconds records handed to Kafka have waited with no acknowledgement (0 when none is in flight)",
        );
        let sink_errors = r.counter_vec("sink_errors_total", "Errors handing records to the sink, by kind", &["kind"]);
        let ordering = OrderingMetrics::new(&r, symbols, detail);
        let build = r.gauge_vec("build_info", "Build version and commit", &["version", "commit"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION"), crate::GIT_COMMIT]).set(1);

        let latency = Arc::new(LatencyHub::new(symbols, detail == Detail::PerSymbol));
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
        // So is a venue's firewall blocking this IP (HTTP 403 on the WebSocket upgrade).
        ws_connect_attempts.with_label_values(&["blocked"]);
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
            rest_fallback_requests,
            rest_used_weight,
            ws_stale,
            ws_rotations,
            stream_age,
            stream_stale,
            streams_stale,
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
            kafka_in_doubt,
            kafka_gap_records_failed,
            kafka_in_flight,
            kafka_unacked_age,
            sink_errors,
            ordering,
            detail,
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

    /// The `messages_received_total` counter of frames of `kind`.
    #[inline]
    pub fn received(&self, kind: FrameKind) -> &IntCounter {
        &self.received[kind as usize]
    }

    pub fn sent_total(&self) -> u64 {
        self.messages_sent.iter().map(|c| c.get()).sum()
    }
}

/// One handle per symbol: each its own series (`make(symbol)`), or, aggregated, clones of the one
/// `_all` series (an `IntCounter` clone shares its value).
fn per_symbol_handles<T: Clone>(detail: Detail, symbols: &[String], make: impl Fn(&str) -> T) -> Vec<T> {
    match detail {
        Detail::PerSymbol => symbols.iter().map(|s| make(s)).collect(),
        Detail::Aggregated => vec![make(ALL_SYMBOLS); symbols.len()],
    }
}

/// Makes each metric under [`NAMESPACE`] and registers it once, as it is made; the static names,
/// help texts and labels cannot fail, hence the `expect`s.
struct Registrar<'r>(&'r Registry);

impl Registrar<'_> {
    fn add<M: Collector + Clone + 'static>(&self, m: M) -> M {
        self.0.register(Box::new(m.clone())).expect("metric registered once");
        m
    }
    fn opts(name: &str, help: &str) -> Opts {
        Opts::new(format!("{NAMESPACE}_{name}"), help.to_string())
    }
    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::with_opts(Self::opts(name, help)).expect("valid metric"))
    }
    fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::with_opts(Self::opts(name, help)).expect("valid metric"))
    }
    fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.add(Gauge::with_opts(Self::opts(name, help)).expect("valid metric"))
    }
    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Self::opts(name, help), labels).expect("valid metric"))
    }
    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Self::opts(name, help), labels).expect("valid metric"))
    }
    fn float_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.add(GaugeVec::new(Self::opts(name, help), labels).expect("valid metric"))
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
            P::UnknownSide.reason(),
            R::BadDecimal("x").reason(),
            R::BadSymbol.reason(),
            R::BadLevels.reason(),
            R::BadInterval.reason(),
            R::BadWord("x").reason(),
        ];
        for r in reasons {
            assert!(REJECT_REASONS.contains(&r), "{r} missing from REJECT_REASONS");
        }
        let m = Metrics::new(&["btcusdt".to_string()]);
        assert!(m.render().contains("marketflow_ingestor_messages_rejected_total{reason=\"malformed_json\"} 0"));
        assert!(m.render().contains("marketflow_ingestor_kafka_delivery_errors_total{kind=\"message_timed_out\"} 0"));
    }

    #[test]
    fn a_market_s_series_carry_its_label_and_others_do_not() {
        let m = Metrics::for_market(&["btcusdt".to_string()], "usdm");
        m.messages_sent[0].inc();
        let text = m.render();
        assert!(
            text.contains("marketflow_ingestor_messages_sent_total{symbol=\"btcusdt\",market=\"usdm\"} 1"),
            "{text}"
        );
        assert!(!Metrics::new(&["btcusdt".to_string()]).render().contains("market="));
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
