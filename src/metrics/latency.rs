//! Latency histograms: HdrHistograms owned by each recording thread, merged into the shared,
//! exported copy a few times per second, so the only lock is taken per publish interval, never per
//! message; exported as Prometheus histograms with microsecond buckets and exact quantiles.
//!
//! The shared copy keeps every (stage, symbol) histogram and, beside them, one per stage over all
//! symbols, both filled at publish. `/metrics` exports the per-symbol ones or, above
//! `METRICS_SYMBOL_DETAIL_MAX` symbols ([`super::Detail::Aggregated`]), only the per-stage ones as
//! `symbol="_all"` (25 series a stage instead of 25 a stage and symbol); the per-symbol
//! distributions stay readable on demand ([`LatencyHub::percentile_distribution_of`],
//! `/latency/<stage>?symbol=<s>`).
//!
//! Memory: a histogram of 2 significant digits is 36.9 KiB, one a stage and symbol in the shared
//! copy and in each recording thread's (a thread holds its own stages only): 222 MB at 1,000
//! symbols. Aggregated, a symbol's histograms serve only that on-demand view, so they keep 1
//! significant digit ([`Precision::Coarse`]: values within 1/16, 4.9 KiB each, 29 MB at 1,000
//! symbols) and each recorder keeps one precise histogram a stage beside them for `_all`: a
//! message is recorded twice (two array increments, still no lock and no allocation).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

use super::NAMESPACE;

mod counts;
use counts::Counts;

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

/// How precise a histogram is: both span 1 ns .. 1 h.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// 2 significant digits: values within 1/128 (< 1%), 4,608 counters (36.9 KiB).
    Exact,
    /// 1 significant digit: values within 1/16 (6.25%), 624 counters (4.9 KiB).
    Coarse,
}

struct Slot {
    hist: Histogram<u64>,
    sum_ns: u128,
}

impl Slot {
    fn new() -> Slot {
        Slot::with(Precision::Exact)
    }

    fn with(p: Precision) -> Slot {
        let sigfig = match p {
            Precision::Exact => 2,
            Precision::Coarse => 1,
        };
        Slot { hist: Histogram::new_with_bounds(1, 3_600_000_000_000, sigfig).expect("static bounds"), sum_ns: 0 }
    }
}

/// The histograms behind the hub's lock.
struct Shared {
    /// Per (stage, symbol): `stage * symbols + symbol`.
    slots: Vec<Slot>,
    /// Per stage, over all symbols.
    all: Vec<Slot>,
}

/// The shared, exported copy of all latency histograms.
pub struct LatencyHub {
    symbols: Vec<String>,
    /// Export each symbol's histograms (else only the per-stage ones, as `symbol="_all"`).
    per_symbol: bool,
    /// Of the per-symbol histograms: exact when exported, coarse when only shown on demand.
    precision: Precision,
    shared: Mutex<Shared>,
    desc: Vec<Desc>,
}

impl LatencyHub {
    pub(super) fn new(symbols: &[String], per_symbol: bool) -> LatencyHub {
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
        let precision = if per_symbol { Precision::Exact } else { Precision::Coarse };
        let shared = Shared {
            slots: (0..n).map(|_| Slot::with(precision)).collect(),
            all: Stage::ALL.iter().map(|_| Slot::new()).collect(),
        };
        LatencyHub { symbols: symbols.to_vec(), per_symbol, precision, shared: Mutex::new(shared), desc }
    }

    /// A recorder for one thread of every stage; it owns its histograms and merges them in on
    /// `publish`.
    pub fn recorder(self: &Arc<Self>) -> LatencyRecorder {
        self.recorder_for(&Stage::ALL)
    }

    /// A recorder of `stages` only (recording another is a no-op): a histogram is about 37 KiB
    /// (5 KiB coarse), so at 1,000 symbols each stage a thread does not record would cost it 37 MB.
    pub fn recorder_for(self: &Arc<Self>, stages: &[Stage]) -> LatencyRecorder {
        let n = self.symbols.len();
        let mut held: Vec<Stage> = Vec::with_capacity(Stage::ALL.len());
        let mut base = [NOT_HELD; Stage::ALL.len()];
        for &s in stages {
            if base[s as usize] == NOT_HELD {
                base[s as usize] = held.len() * n;
                held.push(s);
            }
        }
        // Aggregated, the exact per-stage histograms are recorded here directly (the coarse
        // per-symbol ones cannot make them at publish).
        let all = if self.per_symbol {
            Vec::new()
        } else {
            Stage::ALL.iter().map(|_| Local::with(Precision::Exact)).collect()
        };
        LatencyRecorder {
            hub: self.clone(),
            local: (0..held.len() * n).map(|_| Local::with(self.precision)).collect(),
            all,
            held,
            base,
            last_publish: Instant::now(),
            dirty: false,
        }
    }

    /// Value at `q` for (stage, symbol), in ns; for tests and the load harness.
    pub fn quantile_ns(&self, stage: Stage, symbol_idx: usize, q: f64) -> u64 {
        let s = self.shared.lock().unwrap();
        s.slots[stage as usize * self.symbols.len() + symbol_idx].hist.value_at_quantile(q)
    }

    /// Count recorded for (stage, symbol).
    pub fn count(&self, stage: Stage, symbol_idx: usize) -> u64 {
        let s = self.shared.lock().unwrap();
        s.slots[stage as usize * self.symbols.len() + symbol_idx].hist.len()
    }

    /// The full HdrHistogram percentile distribution of one stage over all symbols, in the
    /// classic `.hgrm` text layout (values in microseconds), for plotting and offline comparison.
    pub fn percentile_distribution(&self, stage: Stage) -> String {
        hgrm(&self.merged(stage))
    }

    /// [`Self::percentile_distribution`] of one symbol (its index in the configured list).
    pub fn percentile_distribution_of(&self, stage: Stage, symbol_idx: usize) -> String {
        let h = self.shared.lock().unwrap().slots[stage as usize * self.symbols.len() + symbol_idx].hist.clone();
        hgrm(&h)
    }

    /// A merged copy of one stage over all symbols.
    pub fn merged(&self, stage: Stage) -> Histogram<u64> {
        self.shared.lock().unwrap().all[stage as usize].hist.clone()
    }

    /// Whether `/metrics` carries each symbol's histograms.
    pub fn per_symbol(&self) -> bool {
        self.per_symbol
    }

    /// How precise each symbol's histograms are (the per-stage ones are always exact).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Bytes of counters one (stage, symbol) histogram takes, here and in each recorder.
    pub fn symbol_histogram_bytes(&self) -> usize {
        let s = self.shared.lock().unwrap();
        s.slots.first().map_or(0, |s| s.hist.distinct_values() * std::mem::size_of::<u64>())
    }
}

/// The `.hgrm` text of `h` (values in µs).
fn hgrm(h: &Histogram<u64>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 { 1.0 / (1.0 - q) } else { f64::INFINITY };
        // TotalCount is cumulative, as in HdrHistogram's own output.
        total += v.count_since_last_iteration();
        let _ =
            writeln!(out, "{:>12.3} {:>14.12} {:>10} {:>14.2}", v.value_iterated_to() as f64 / 1000.0, q, total, inv);
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
            if self.per_symbol {
                for (i, sym) in self.symbols.iter().enumerate() {
                    let slot = &s.slots[stage as usize * self.symbols.len() + i];
                    export(slot, stage, sym, &mut hists, &mut gauges);
                }
            } else {
                export(&s.all[stage as usize], stage, super::ALL_SYMBOLS, &mut hists, &mut gauges);
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

/// The cumulative count at or below each of [`BUCKETS_SECONDS`], as `count_between(0, le)` counts
/// it (whole HdrHistogram buckets: a value is in `le` when its bucket is at or below `le`'s; with
/// 2 significant digits the boundary error is below 1%), in one pass over the histogram instead of
/// one pass a bucket: a scrape of every symbol's histograms reads each once.
fn cumulative_buckets(h: &Histogram<u64>) -> [u64; BUCKETS_SECONDS.len()] {
    let mut counts = [0u64; BUCKETS_SECONDS.len()];
    if h.is_empty() {
        return counts;
    }
    // A bucket's values share their highest equivalent value, which grows from bucket to bucket.
    let mut tops = [0u64; BUCKETS_SECONDS.len()];
    for (top, le) in tops.iter_mut().zip(BUCKETS_SECONDS) {
        *top = h.highest_equivalent((le * 1e9) as u64);
    }
    for v in h.iter_recorded() {
        if let Some(i) = tops.iter().position(|&top| v.value_iterated_to() <= top) {
            counts[i] += v.count_at_value();
        }
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    counts
}

/// One histogram's series (and its quantile gauges once it has values), labelled `symbol`.
fn export(slot: &Slot, stage: Stage, symbol: &str, hists: &mut Vec<proto::Metric>, gauges: &mut Vec<proto::Metric>) {
    let mut h = proto::Histogram::default();
    h.set_sample_count(slot.hist.len());
    h.set_sample_sum(slot.sum_ns as f64 / 1e9);
    let buckets = cumulative_buckets(&slot.hist)
        .into_iter()
        .zip(BUCKETS_SECONDS)
        .map(|(count, &le)| {
            let mut b = proto::Bucket::default();
            b.set_upper_bound(le);
            b.set_cumulative_count(count);
            b
        })
        .collect();
    h.set_bucket(buckets);
    let mut m = proto::Metric::from_label(vec![label("stage", stage.as_str()), label("symbol", symbol)]);
    m.set_histogram(h);
    hists.push(m);
    if !slot.hist.is_empty() {
        for &q in QUANTILES {
            let mut g = proto::Gauge::default();
            g.set_value(slot.hist.value_at_quantile(q) as f64 / 1e9);
            let mut m = proto::Metric::from_label(vec![
                label("quantile", &q.to_string()),
                label("stage", stage.as_str()),
                label("symbol", symbol),
            ]);
            m.set_gauge(g);
            gauges.push(m);
        }
    }
}

/// A recorder's histogram of one (stage, symbol) or one stage: the counts of an exported one.
struct Local {
    hist: Counts,
    sum_ns: u128,
}

impl Local {
    fn with(p: Precision) -> Local {
        Local { hist: Counts::like(&Slot::with(p).hist), sum_ns: 0 }
    }

    #[inline]
    fn record(&mut self, ns: u64) {
        self.hist.record(ns.max(1));
        self.sum_ns += ns as u128;
    }

    /// Adds this into `dst` (and `also`) and starts afresh.
    fn drain_into(&mut self, dst: &mut Slot, also: Option<&mut Slot>) {
        let sum = std::mem::take(&mut self.sum_ns);
        dst.sum_ns += sum;
        match also {
            Some(a) => {
                a.sum_ns += sum;
                self.hist.drain_into(&mut dst.hist, Some(&mut a.hist));
            }
            None => self.hist.drain_into(&mut dst.hist, None),
        }
    }
}

/// Thread-owned latency histograms; `record` is a few ns and takes no lock.
pub struct LatencyRecorder {
    hub: Arc<LatencyHub>,
    /// Per held stage and symbol: `base[stage] + symbol`.
    local: Vec<Local>,
    /// Aggregated: per stage, over all symbols, exact (empty when each symbol's are exact).
    all: Vec<Local>,
    /// The stages recorded here, in the order of `local`.
    held: Vec<Stage>,
    /// Where each stage's slots start in `local` ([`NOT_HELD`]: not recorded here).
    base: [usize; Stage::ALL.len()],
    last_publish: Instant,
    dirty: bool,
}

/// A stage a recorder does not hold.
const NOT_HELD: usize = usize::MAX;

impl LatencyRecorder {
    #[inline]
    pub fn record(&mut self, stage: Stage, symbol_idx: usize, ns: u64) {
        let base = self.base[stage as usize];
        debug_assert!(base != NOT_HELD, "{stage:?} recorded by a recorder made without it");
        let Some(slot) = self.local.get_mut(base.saturating_add(symbol_idx)) else { return };
        slot.record(ns);
        if let Some(all) = self.all.get_mut(stage as usize) {
            all.record(ns);
        }
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
        let n = self.hub.symbols.len();
        let mut guard = self.hub.shared.lock().unwrap();
        let shared = &mut *guard;
        for &stage in &self.held {
            let local = &mut self.local[self.base[stage as usize]..][..n];
            let dst = &mut shared.slots[stage as usize * n..][..n];
            for (dst, src) in dst.iter_mut().zip(local.iter_mut()).filter(|(_, src)| !src.hist.is_empty()) {
                // The per-stage copy is kept at publish, so neither a scrape nor a message pays
                // for merging every symbol's histogram.
                let all = if self.all.is_empty() { Some(&mut shared.all[stage as usize]) } else { None };
                src.drain_into(dst, all);
            }
            if let Some(src) = self.all.get_mut(stage as usize) {
                src.drain_into(&mut shared.all[stage as usize], None);
            }
        }
        self.dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_in_one_pass_count_what_count_between_counts() {
        let mut h = Slot::new().hist;
        assert_eq!(cumulative_buckets(&h), [0; BUCKETS_SECONDS.len()]);
        // Each bound, just below and above it, and values past the last bound.
        for le in BUCKETS_SECONDS {
            let ns = (le * 1e9) as u64;
            for v in [ns - ns / 50, ns - 1, ns, ns + 1, ns + ns / 50] {
                h.record(v.max(1)).unwrap();
            }
        }
        h.record_n(3_000_000_000_000, 7).unwrap();
        let expected: Vec<u64> = BUCKETS_SECONDS.iter().map(|le| h.count_between(0, (le * 1e9) as u64)).collect();
        assert_eq!(cumulative_buckets(&h).to_vec(), expected);
        // Every bucket is exercised, and values past 10 s are in none of them (only in `+Inf`).
        assert!(expected[0] > 0 && expected.windows(2).all(|w| w[0] < w[1]), "{expected:?}");
        assert!(expected[BUCKETS_SECONDS.len() - 1] + 7 < h.len());
    }

    #[test]
    fn a_recorder_holds_only_its_stages_and_publishes_them_per_symbol_and_per_stage() {
        let symbols: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let hub = Arc::new(LatencyHub::new(&symbols, false));
        let mut ack = hub.recorder_for(&[Stage::EnqueueToAck, Stage::EnqueueToAck]);
        let mut other = hub.recorder_for(&[Stage::ReceiveToEnqueue, Stage::ExchangeToReceive]);
        assert_eq!((ack.local.len(), other.local.len(), hub.recorder().local.len()), (3, 6, 9));
        ack.record(Stage::EnqueueToAck, 2, 5_000);
        other.record(Stage::ExchangeToReceive, 1, 7_000);
        other.record(Stage::ReceiveToEnqueue, 0, 9_000);
        ack.publish();
        other.publish();
        let count = |s, i| hub.count(s, i);
        assert_eq!((count(Stage::EnqueueToAck, 2), count(Stage::EnqueueToAck, 1)), (1, 0));
        assert_eq!((count(Stage::ExchangeToReceive, 1), count(Stage::ReceiveToEnqueue, 0)), (1, 1));
        assert_eq!(count(Stage::ReceiveToEnqueue, 1), 0);
        for (stage, max) in
            [(Stage::EnqueueToAck, 5_000), (Stage::ExchangeToReceive, 7_000), (Stage::ReceiveToEnqueue, 9_000)]
        {
            let all = hub.merged(stage);
            assert_eq!(all.len(), 1, "{stage:?}");
            assert!(all.equivalent(all.max(), max), "{stage:?}: {}", all.max());
        }
    }

    #[test]
    fn aggregated_a_symbol_s_histograms_are_coarse_and_small_and_the_stage_s_stay_exact() {
        let symbols: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let exact = Arc::new(LatencyHub::new(&symbols, true));
        let coarse = Arc::new(LatencyHub::new(&symbols, false));
        assert_eq!((exact.precision(), coarse.precision()), (Precision::Exact, Precision::Coarse));
        // The memory bound README states: 36.9 KiB and 4.9 KiB a (stage, symbol), here and in
        // each recorder of the stage.
        assert_eq!((exact.symbol_histogram_bytes(), coarse.symbol_histogram_bytes()), (36_864, 4_992));
        let rec = coarse.recorder_for(&[Stage::EnqueueToAck]);
        assert!(rec.local.iter().all(|s| s.hist.distinct_values() == 624), "a recorder's are coarse too");

        for hub in [&exact, &coarse] {
            let mut r = hub.recorder_for(&[Stage::EnqueueToAck]);
            for (i, ns) in [(0, 1_234_567u64), (1, 7_654_321), (2, 99_999)] {
                r.record(Stage::EnqueueToAck, i, ns);
            }
            r.publish();
            let all = hub.merged(Stage::EnqueueToAck);
            assert_eq!(all.sigfig(), 2, "the per-stage histogram is exact in both modes");
            assert_eq!(all.len(), 3);
            for ns in [1_234_567, 7_654_321, 99_999] {
                assert_eq!(all.count_at(ns), 1, "{ns} in the exact _all");
                assert!(all.equivalent(all.lowest_equivalent(ns), ns));
            }
            assert!(all.equivalent(all.max(), 7_654_321));
            // The on-demand view of one symbol: within 1/128 exact, 1/16 coarse.
            let max = hub.quantile_ns(Stage::EnqueueToAck, 1, 1.0) as f64;
            let within = if hub.per_symbol() { 1.0 / 128.0 } else { 1.0 / 16.0 };
            assert!((max - 7_654_321.0).abs() / 7_654_321.0 <= within, "{max}");
            assert_eq!(hub.count(Stage::EnqueueToAck, 1), 1);
        }
        let c = coarse.shared.lock().unwrap();
        assert_eq!(c.all[Stage::EnqueueToAck as usize].sum_ns, 1_234_567 + 7_654_321 + 99_999);
    }
}
