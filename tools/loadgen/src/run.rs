//! One measured run: a feeder, the ingester fed by it, a warm-up, the measured window, a drain;
//! then the results of the window written to the run's folder.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use marketflow_ingestor::clock;
use marketflow_ingestor::metrics::Stage;

use crate::args::Args;
use crate::chart::chart;
use crate::child::nap;
use crate::feeder::{FeedOpts, Feeder};
use crate::hgrm::{hgrm_text, hist_pcts_ms, Dist, Hgrm};
use crate::host::Host;
use crate::ingester::{check_transport, ingester_path, spawn_ingester, wait_ready, Ingester, IngesterSpec};
use crate::kafka::{create_topic, E2eConsumer, TimeField};
use crate::outcome::{judge, RunResult};
use crate::procfs::{loadavg, machine_cpu, mib, proc_cpu_secs, proc_status_kib};
use crate::sched::{by_group, cpu_by_name, read_threads, thread_cpu, wakes, ThreadStat};
use crate::scrape::{http_get, metric_name, Prom};
use crate::units::fmt_rate;

#[derive(Clone, Debug)]
pub struct RunSpec {
    pub name: String,
    pub dir: PathBuf,
    pub rate: f64,
    pub warmup: f64,
    pub secs: f64,
    pub sink: String,
    pub tls: bool,
    pub feeder: String,
    pub symbols: Vec<String>,
    pub streams: Vec<String>,
    /// `json` or `sbe`: how the feeder sends and the ingester receives.
    pub transport: String,
    pub soak: bool,
}

#[derive(Clone, Debug, Default)]
struct Snap {
    at: Option<Instant>,
    cpu: f64,
    threads: BTreeMap<String, f64>,
    /// The ingester's threads' scheduler counters (`threads` is their CPU by name).
    sched: BTreeMap<u32, ThreadStat>,
    feeder_cpu: f64,
    parsed: f64,
    acked: f64,
    overflow: f64,
    rejected: f64,
    gaps: f64,
    kafka_errors: f64,
    ring_full_waits: f64,
    feeder_sent: u64,
    feeder_sched: u64,
    machine: (f64, f64),
}

fn snapshot(ing: &Ingester, feeder: &Feeder) -> Result<Snap> {
    let (_, text) = http_get(&format!("{}/metrics", ing.metrics))?;
    let p = Prom::parse(&text);
    let pid = ing.child.pid();
    let prefix = feeder.thread_prefix();
    let sched = read_threads(&pid.to_string());
    Ok(Snap {
        at: Some(Instant::now()),
        cpu: proc_cpu_secs(pid).unwrap_or(0.0),
        threads: cpu_by_name(&sched),
        sched,
        feeder_cpu: thread_cpu("self").iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum(),
        parsed: p.sum(&metric_name("messages_parsed_total")),
        acked: p.sum(&metric_name("messages_sent_total")),
        overflow: p.sum(&metric_name("overflow_dropped_total")),
        rejected: p.sum(&metric_name("messages_rejected_total")),
        gaps: p.sum(&metric_name("gap_ids_missing_total")),
        kafka_errors: p.sum(&metric_name("kafka_delivery_errors_total")),
        ring_full_waits: p.sum(&metric_name("ring_full_waits_total")),
        feeder_sent: feeder.sent(),
        feeder_sched: feeder.scheduled(),
        machine: machine_cpu(),
    })
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' }).collect()
}

pub fn run_once(args: &Args, spec: &RunSpec) -> Result<RunResult> {
    std::fs::create_dir_all(&spec.dir)?;
    let host = Host::begin(&args.host_note);
    let bin = ingester_path(args)?;
    let kafka = spec.sink == "kafka";
    // The market generates for the warm-up and the window (plus start-up slack), then stops, so
    // the drain afterwards has a fixed target. A soak runs open-ended.
    let duration = (!spec.soak).then(|| Duration::from_secs_f64(spec.warmup + spec.secs + 2.0));
    let sbe = spec.transport == "sbe";
    let opts = FeedOpts { tls: spec.tls, sbe, arrival: args.arrival, trades_per_event: args.trades_per_event };
    let feeder = Feeder::start(&spec.feeder, spec.rate, &spec.symbols, &spec.streams, duration, opts)?;
    let topic = args.topic.clone().unwrap_or_else(|| format!("loadgen-{}-{}", sanitize(&spec.name), clock::now_ms()));
    let consumer = if kafka {
        create_topic(&args.kafka_broker, &topic)?;
        Some(E2eConsumer::start(&args.kafka_broker, &topic, TimeField::EventTime)?)
    } else {
        None
    };
    let mut ing = spawn_ingester(&IngesterSpec {
        bin: &bin,
        feeder: &feeder,
        dir: &spec.dir,
        sink: &spec.sink,
        symbols: &spec.symbols,
        streams: &spec.streams,
        broker: &args.kafka_broker,
        topic: &topic,
        extra_env: &args.extra_env,
    })?;
    wait_ready(&mut ing, Duration::from_secs(20))?;
    check_transport(&ing, &spec.transport)?;
    nap(Duration::from_secs_f64(spec.warmup))?;
    let a = snapshot(&ing, &feeder)?;
    if let Some(c) = &consumer {
        c.open_window(clock::now_ms());
    }
    // The ingester's histograms count from its start: keep their state at the end of the warm-up
    // so the window can be told apart.
    let mut at_a = BTreeMap::new();
    for st in Stage::ALL.map(Stage::as_str) {
        let (_, text) = http_get(&format!("{}/latency/{st}", ing.metrics))?;
        std::fs::write(spec.dir.join(format!("{st}.at-warmup-end.hgrm")), &text)?;
        at_a.insert(st, Hgrm::parse(&text));
    }
    let t0 = Instant::now();
    let mut rss_series = Vec::new();
    let mut rate_series = Vec::new();
    let pid = ing.child.pid().to_string();
    let mut last = (0.0, a.parsed);
    let mut next_rss = 0.0;
    loop {
        let el = t0.elapsed().as_secs_f64();
        if el >= spec.secs {
            break;
        }
        nap(Duration::from_secs_f64((spec.secs - el).min(1.0)))?;
        if !ing.child.alive() {
            bail!("the ingester died during the run; see {}", spec.dir.join("ingester.log").display());
        }
        let el = t0.elapsed().as_secs_f64();
        if let Ok((_, text)) = http_get(&format!("{}/metrics", ing.metrics)) {
            let parsed = Prom::parse(&text).sum(&metric_name("messages_parsed_total"));
            if el > last.0 {
                rate_series.push((el, (parsed - last.1) / (el - last.0)));
            }
            last = (el, parsed);
        }
        if el >= next_rss || (spec.soak && el >= spec.secs) {
            rss_series.push((el, mib(proc_status_kib(&pid, "VmRSS:"))));
            next_rss += if spec.soak { 10.0 } else { 1.0 };
            if spec.soak {
                let (t, r) = rss_series[rss_series.len() - 1];
                eprintln!("loadgen: soak t={t:>6.0}s RSS {r:.1} MiB");
            }
        }
    }
    let b = snapshot(&ing, &feeder)?;
    if let Some(c) = &consumer {
        c.close_window(clock::now_ms());
    }
    let window = b.at.unwrap().duration_since(a.at.unwrap()).as_secs_f64();

    // Drain: everything written by the end of the window must be counted (and acknowledged).
    let drain_end = Instant::now() + Duration::from_secs_f64(args.drain_secs);
    let mut drained = b.clone();
    loop {
        if let Ok((_, text)) = http_get(&format!("{}/metrics", ing.metrics)) {
            let p = Prom::parse(&text);
            drained.parsed = p.sum(&metric_name("messages_parsed_total"));
            drained.acked = p.sum(&metric_name("messages_sent_total"));
        }
        let consumed_ok = consumer.as_ref().is_none_or(|c| c.total() as f64 >= b.feeder_sent as f64);
        if drained.parsed >= b.feeder_sent as f64 && drained.acked >= b.feeder_sent as f64 && consumed_ok {
            break;
        }
        if Instant::now() >= drain_end {
            break;
        }
        nap(Duration::from_millis(100))?;
    }
    let vm_hwm = mib(proc_status_kib(&pid, "VmHWM:"));
    let vm_rss = mib(proc_status_kib(&pid, "VmRSS:"));
    let mut latency_us = BTreeMap::new();
    let mut latency_run_us = BTreeMap::new();
    let mut series = Vec::new();
    for st in Stage::ALL.map(Stage::as_str) {
        let (code, text) = http_get(&format!("{}/latency/{st}", ing.metrics))?;
        if code != 200 {
            bail!("GET /latency/{st}: HTTP {code}");
        }
        std::fs::write(spec.dir.join(format!("{st}.hgrm")), &text)?;
        let h = Hgrm::parse(&text);
        let w = Dist::window(&at_a[st], &h);
        latency_us.insert(st.to_string(), w.pcts());
        latency_run_us.insert(st.to_string(), Dist::whole(&h).pcts());
        series.push((st.to_string(), w.points()));
    }
    if let Ok((_, text)) = http_get(&format!("{}/metrics", ing.metrics)) {
        std::fs::write(spec.dir.join("metrics.txt"), text)?;
    }
    // Read the feeder's state, and stop it, before the ingester goes (its leaving resets the socket).
    let feeder_error = feeder.error();
    drop(feeder);
    let exit = ing.child.stop(libc::SIGTERM, Duration::from_secs(15));
    let mut e2e_ms = BTreeMap::new();
    let mut consumed_in_window = 0;
    if let Some(c) = consumer {
        let out = c.finish()?;
        consumed_in_window = out.in_window;
        for (label, h) in [("e2e_log_append", &out.append), ("e2e_consumer_receive", &out.consume)] {
            let text = hgrm_text(h);
            std::fs::write(spec.dir.join(format!("{label}.hgrm")), &text)?;
            e2e_ms.insert(label.to_string(), hist_pcts_ms(h));
            series.push((label.to_string(), Dist::whole(&Hgrm::parse(&text)).points()));
        }
    }
    let title = format!(
        "{}: {} msg/s target, {} sink, {} {}{}",
        spec.name,
        fmt_rate(spec.rate),
        spec.sink,
        if spec.tls { "wss" } else { "ws" },
        spec.transport,
        if spec.feeder == "replay" { ", replay feeder" } else { "" }
    );
    if let Err(e) = chart(&spec.dir.join("latency.svg"), &title, &series) {
        eprintln!("loadgen: chart: {e:#}");
    }

    let parsed = b.parsed - a.parsed;
    let cpu = b.cpu - a.cpu;
    let feeder_sent = (b.feeder_sent - a.feeder_sent) as f64;
    let lag_growth = (b.feeder_sched as i64 - b.feeder_sent as i64) - (a.feeder_sched as i64 - a.feeder_sent as i64);
    let not_counted = b.feeder_sent as i64 - drained.parsed as i64;
    let threads_pct: BTreeMap<String, f64> = b
        .threads
        .iter()
        .map(|(k, v)| (k.clone(), 100.0 * (v - a.threads.get(k).copied().unwrap_or(0.0)) / window))
        .filter(|(_, v)| *v >= 0.05)
        .collect();
    let loop_cpu =
        b.threads.get("event-loop").copied().unwrap_or(0.0) - a.threads.get("event-loop").copied().unwrap_or(0.0);
    let feeder_cpu = b.feeder_cpu - a.feeder_cpu;
    let machine_busy = 100.0 * (b.machine.0 - a.machine.0) / (b.machine.1 - a.machine.1).max(1.0);
    let (wake, wake_by_group) = wakes(&by_group(&a.sched, &b.sched, true), window, parsed);
    let mut r = RunResult {
        name: spec.name.clone(),
        feeder: spec.feeder.clone(),
        transport: spec.transport.clone(),
        trades_per_event: args.trades_per_event,
        sink: spec.sink.clone(),
        tls: spec.tls,
        symbols: spec.symbols.len(),
        streams: spec.streams.join(","),
        target_rate: spec.rate,
        warmup_s: spec.warmup,
        window_s: window,
        feeder_rate: feeder_sent / window,
        parsed_rate: parsed / window,
        acked_rate: (b.acked - a.acked) / window,
        schedule_lag_growth: lag_growth,
        not_counted_after_drain: not_counted,
        overflow_dropped: (b.overflow - a.overflow) as u64,
        rejected: (b.rejected - a.rejected) as u64,
        gap_ids_missing: (b.gaps - a.gaps) as u64,
        kafka_delivery_errors: (b.kafka_errors - a.kafka_errors) as u64,
        ring_full_waits: (b.ring_full_waits - a.ring_full_waits) as u64,
        cpu_s: cpu,
        cpu_ns_per_msg: if parsed > 0.0 { cpu * 1e9 / parsed } else { 0.0 },
        cpu_util_pct: 100.0 * cpu / window,
        threads_pct,
        event_loop_ns_per_msg: if parsed > 0.0 { loop_cpu * 1e9 / parsed } else { 0.0 },
        feeder_thread_pct: 100.0 * feeder_cpu / window,
        feeder_ns_per_msg: if feeder_sent > 0.0 { feeder_cpu * 1e9 / feeder_sent } else { 0.0 },
        machine_busy_pct: machine_busy,
        wake,
        wake_by_group,
        loadavg: loadavg(),
        host: host.end(),
        vm_hwm_mib: vm_hwm,
        vm_rss_end_mib: vm_rss,
        latency_us,
        latency_run_us,
        e2e_ms,
        consumed_in_window,
        rss_series_mib: rss_series,
        rate_series,
        exit,
        warn_lines: ing.warn_lines.load(Ordering::Relaxed),
        feeder_error,
        ..RunResult::default()
    };
    judge(&mut r, kafka, drained.acked, b.feeder_sent);
    std::fs::write(spec.dir.join("summary.json"), serde_json::to_string_pretty(&r)?)?;
    Ok(r)
}
