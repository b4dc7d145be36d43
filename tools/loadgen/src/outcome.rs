//! What one run measured, and the verdict on it: sustained or not, and what limited it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::hgrm::Pcts;
use crate::host::Host;
use crate::sched::Wake;

#[derive(Clone, Debug, Default, Serialize)]
pub struct RunResult {
    pub name: String,
    pub feeder: String,
    /// `json` or `sbe` (`--transport`).
    pub transport: String,
    /// Trades an event (`--trades-per-event`); rates and counts are in trades either way.
    pub trades_per_event: u32,
    pub sink: String,
    pub tls: bool,
    pub symbols: usize,
    pub streams: String,
    pub target_rate: f64,
    pub warmup_s: f64,
    pub window_s: f64,
    /// Messages the feeder wrote per second in the window.
    pub feeder_rate: f64,
    /// Records the ingester parsed and enqueued per second in the window (the sustained rate).
    pub parsed_rate: f64,
    /// Records the sink acknowledged per second (null: counted; kafka: acks=all).
    pub acked_rate: f64,
    pub sustained: bool,
    pub problems: Vec<String>,
    /// How much further the feeder fell behind its schedule during the window (messages).
    pub schedule_lag_growth: i64,
    /// Sent by the end of the window but not counted by the ingester after the drain.
    pub not_counted_after_drain: i64,
    pub overflow_dropped: u64,
    pub rejected: u64,
    pub gap_ids_missing: u64,
    pub kafka_delivery_errors: u64,
    pub ring_full_waits: u64,
    pub cpu_s: f64,
    pub cpu_ns_per_msg: f64,
    pub cpu_util_pct: f64,
    /// Per-thread CPU of the ingester over the window, % of one core.
    pub threads_pct: BTreeMap<String, f64>,
    pub event_loop_ns_per_msg: f64,
    pub feeder_thread_pct: f64,
    pub feeder_ns_per_msg: f64,
    pub machine_busy_pct: f64,
    /// The ingester's wake-ups over the window, the whole process (the sum over its threads),
    /// per message parsed; sched.rs.
    pub wake: Wake,
    /// The same per thread group (procfs::THREAD_GROUPS).
    pub wake_by_group: BTreeMap<String, Wake>,
    pub loadavg: String,
    pub host: Host,
    pub vm_hwm_mib: f64,
    pub vm_rss_end_mib: f64,
    /// Per stage, µs, over the measured window: `GET /latency/<stage>` at the end minus its state
    /// at the end of the warm-up (the `.hgrm` files keep both).
    pub latency_us: BTreeMap<String, Pcts>,
    /// Per stage, µs, over the whole run (warm-up and drain included), as the ingester reports it.
    pub latency_run_us: BTreeMap<String, Pcts>,
    /// Kafka runs: append time - event time and consumer receive - event time, ms (window only).
    pub e2e_ms: BTreeMap<String, Pcts>,
    pub consumed_in_window: u64,
    pub rss_series_mib: Vec<(f64, f64)>,
    pub rate_series: Vec<(f64, f64)>,
    pub bottleneck: String,
    pub exit: String,
    pub warn_lines: u64,
    pub feeder_error: Option<String>,
}

/// Sustained = the feeder kept its schedule, everything it wrote was counted (and acknowledged),
/// nothing dropped, rejected or missing.
pub fn judge(r: &mut RunResult, kafka: bool, acked_total: f64, sent_at_end: u64) {
    let expected = r.target_rate * r.window_s;
    let mut problems = Vec::new();
    if r.schedule_lag_growth as f64 > (0.01 * expected).max(100.0) {
        problems.push(format!(
            "feeder fell {} messages behind its schedule ({:.1} % of the window)",
            r.schedule_lag_growth,
            100.0 * r.schedule_lag_growth as f64 / expected.max(1.0)
        ));
    }
    if r.not_counted_after_drain > 0 {
        problems.push(format!("{} messages sent but not parsed after the drain", r.not_counted_after_drain));
    }
    if kafka && acked_total < sent_at_end as f64 {
        problems
            .push(format!("{} records not acknowledged by Kafka after the drain", sent_at_end as f64 - acked_total));
    }
    if r.overflow_dropped > 0 {
        problems.push(format!("{} records dropped at the buffer cap", r.overflow_dropped));
    }
    if r.rejected > 0 {
        problems.push(format!("{} frames rejected", r.rejected));
    }
    if r.gap_ids_missing > 0 {
        problems.push(format!("{} ids missing (gaps)", r.gap_ids_missing));
    }
    if r.kafka_delivery_errors > 0 {
        problems.push(format!("{} Kafka delivery errors", r.kafka_delivery_errors));
    }
    if let Some(e) = &r.feeder_error {
        problems.push(format!("feeder error: {e}"));
    }
    r.sustained = problems.is_empty();
    r.problems = problems;
    let loop_pct = r.threads_pct.get("event-loop").copied().unwrap_or(0.0);
    let producer_pct = r.threads_pct.get("producer").copied().unwrap_or(0.0);
    let kafka_pct = r.threads_pct.get("librdkafka").copied().unwrap_or(0.0);
    let what = format!(
        "feeder thread {:.0} %, event loop {:.0} %, producer {:.0} %{}, machine {:.0} % of 2 cores",
        r.feeder_thread_pct,
        loop_pct,
        producer_pct,
        if kafka { format!(", librdkafka {kafka_pct:.0} %") } else { String::new() },
        r.machine_busy_pct
    );
    r.bottleneck = if r.sustained {
        format!("none at this rate ({what})")
    } else if r.feeder_thread_pct >= 85.0 && r.feeder_thread_pct >= loop_pct {
        format!("the feeder: its thread is CPU-bound ({what})")
    } else if loop_pct >= 85.0 {
        format!("the ingester's event loop is CPU-bound ({what})")
    } else if r.machine_busy_pct >= 90.0 {
        format!("CPU contention: both cores busy ({what})")
    } else if kafka && (r.ring_full_waits > 0 || r.overflow_dropped > 0) {
        format!("Kafka / producer backpressure ({what})")
    } else {
        format!("not CPU-bound ({what})")
    };
}
