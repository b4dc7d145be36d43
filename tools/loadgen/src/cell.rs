//! One contender fed by a fresh simulator (wss, aggTrade) at one rate and arrival, measured over
//! one window: what the feeder offered, what was delivered (records in Kafka whose event time
//! falls in the window; with SINK=null, what the ingester's sink counted), CPU per delivered
//! message in total and per thread group, and source -> broker-append percentiles. Used by
//! `--compare-cryptofeed` and by `--table`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use binance_sim::{self as sim, Arrival, SimConfig};
use marketflow_ingestor::clock;
use serde::Serialize;

use crate::args::{split, Args};
use crate::chart::chart;
use crate::child::{nap, ChildGuard};
use crate::cpuset::unpinned;
use crate::feeder::{FeedOpts, Feeder};
use crate::hgrm::{hgrm_text, hist_pcts_ms, Dist, Hgrm, Pcts};
use crate::host::Host;
use crate::ingester::{ingester_path, spawn_ingester, wait_ready, IngesterSpec};
use crate::kafka::{create_topic, E2eConsumer, TimeField};
use crate::procfs::{mib, proc_cpu_secs, proc_status_kib};
use crate::sched::{by_group, cpu_by_name, read_threads, wakes, Wake, PROCESS};
use crate::scrape::{http_get, metric_name, Prom};
use crate::units::fmt_rate;

/// What one cell runs.
#[derive(Clone, Debug)]
pub struct Cell {
    /// `ours` or `cryptofeed`.
    pub who: String,
    /// `kafka` or `null` (ours only).
    pub sink: String,
    pub rate: f64,
    pub arrival: Option<Arrival>,
    pub secs: f64,
    /// `perf record -e cpu-clock -g` on the contender for the window, into this file.
    pub perf: Option<std::path::PathBuf>,
}

impl Cell {
    /// `ours`, `ours-null` or `cryptofeed`.
    pub fn label(&self) -> String {
        if self.sink == "null" {
            format!("{}-null", self.who)
        } else {
            self.who.clone()
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ContenderResult {
    pub contender: String,
    pub sink: String,
    pub feeder: String,
    /// The arrival process (`default`: the simulator's tick).
    pub arrival: String,
    pub rate: f64,
    pub window_s: f64,
    /// Messages the feeder wrote per second in the window (what was offered).
    pub feeder_rate: f64,
    /// Mean messages per write the simulator made (a few per TCP segment or one).
    pub msgs_per_write: f64,
    /// Records delivered per second: into Kafka (event time within the window), or counted by
    /// the null sink.
    pub kafka_rate: f64,
    pub sustained: bool,
    pub problems: Vec<String>,
    pub cpu_s: f64,
    pub cpu_us_per_msg: f64,
    pub cpu_util_pct: f64,
    /// CPU µs per delivered message by thread group (ours: event loop, producer, librdkafka,
    /// metrics, backfill, other; cryptofeed: by thread name).
    pub cpu_us_per_msg_by_group: BTreeMap<String, f64>,
    /// The whole process's wake-ups over the window (the sum over its threads; sched.rs).
    pub wake: Wake,
    /// Wake-ups by the groups of `cpu_us_per_msg_by_group`.
    pub wake_by_group: BTreeMap<String, Wake>,
    pub vm_hwm_mib: f64,
    pub e2e_ms: BTreeMap<String, Pcts>,
    pub lost: i64,
    pub extra: BTreeMap<String, String>,
    pub host: Host,
}

/// Starts `perf record` on `pid` until it is stopped (SIGINT writes the file).
fn start_perf(pid: u32, out: &Path) -> Result<ChildGuard> {
    let mut cmd = Command::new("perf");
    cmd.args(["record", "-e", "cpu-clock", "-g", "-F", "999", "-o"])
        .arg(out)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(out.with_extension("log"))?);
    ChildGuard::spawn(cmd, "perf")
}

pub fn run_cell(args: &Args, cell: &Cell, dir: &Path) -> Result<ContenderResult> {
    std::fs::create_dir_all(dir)?;
    let (who, rate, secs) = (cell.who.as_str(), cell.rate, cell.secs);
    let ours = who == "ours";
    let kafka = cell.sink == "kafka";
    if !ours && !kafka {
        bail!("{who} has a Kafka sink only");
    }
    if args.trades_per_event > 1 {
        bail!("the table and the cryptofeed comparison feed aggTrade, one trade a message: no --trades-per-event");
    }
    let host = Host::begin(&args.host_note);
    let symbols = split(&args.symbols);
    let streams = vec!["aggTrade".to_string()];
    let duration = Some(Duration::from_secs_f64(args.warmup + secs + 30.0));
    // wss for both: cryptofeed refuses ws:// addresses (and Binance is wss anyway).
    // The table's arrivals are the simulator's: the replay feeder keeps its own pacing in a table
    // (whatever is due a write), as it always did, rather than refuse `poisson:K`.
    let arrival = if args.feeder == "replay" { None } else { cell.arrival };
    let opts = FeedOpts { tls: true, sbe: false, arrival, trades_per_event: 1 };
    let feeder = Feeder::start(&args.feeder, rate, &symbols, &streams, duration, opts)?;
    // The replay feeder has no REST side: a simulator serves cryptofeed's exchangeInfo.
    let rest_sim = match &feeder {
        Feeder::Replay { .. } => {
            Some(sim::spawn(SimConfig { symbols: symbols.clone(), ..SimConfig::default() }, "127.0.0.1:0")?)
        }
        Feeder::Sim { .. } => None,
    };
    let rest_url = rest_sim.as_ref().map(|s| s.rest_url()).unwrap_or_else(|| feeder.rest_url());
    let topic = format!("cmp-{}-{}-{}", cell.label(), fmt_rate(rate).to_lowercase(), clock::now_ms());
    let consumer = if kafka {
        create_topic(&args.kafka_broker, &topic)?;
        let field = if ours { TimeField::EventTime } else { TimeField::TimestampSecs };
        Some(E2eConsumer::start(&args.kafka_broker, &topic, field)?)
    } else {
        None
    };
    let cf_stats: Arc<Mutex<serde_json::Value>> = Arc::new(Mutex::new(serde_json::Value::Null));
    let mut metrics_url = None;
    let mut child = if ours {
        let mut ing = spawn_ingester(&IngesterSpec {
            bin: &ingester_path(args)?,
            feeder: &feeder,
            dir,
            sink: &cell.sink,
            symbols: &symbols,
            streams: &streams,
            broker: &args.kafka_broker,
            topic: &topic,
            extra_env: &args.extra_env,
        })?;
        wait_ready(&mut ing, Duration::from_secs(20))?;
        metrics_url = Some(ing.metrics.clone());
        ing.child
    } else {
        let consumer = consumer.as_ref().expect("cryptofeed writes to Kafka");
        spawn_cryptofeed(args, &feeder, &rest_url, &symbols, &topic, dir, consumer, &cf_stats)?
    };
    // Ours with either sink: what the sink counted (acknowledged by Kafka, or taken by null).
    let sink_count = || -> f64 {
        metrics_url
            .as_ref()
            .and_then(|u| http_get(&format!("{u}/metrics")).ok())
            .map(|(_, text)| Prom::parse(&text).sum(&metric_name("messages_sent_total")))
            .unwrap_or(0.0)
    };
    let pid = child.pid();
    nap(Duration::from_secs_f64(args.warmup))?;
    let mut perf = cell.perf.as_ref().map(|p| start_perf(pid, p)).transpose()?;
    // Every counter the window is measured by, read the same way at its start and at its end.
    let sample = || {
        (
            proc_cpu_secs(pid).unwrap_or(0.0),
            feeder.sent(),
            feeder.scheduled(),
            feeder.data_writes(),
            sink_count(),
            Instant::now(),
            read_threads(&pid.to_string()),
        )
    };
    let (cpu_a, sent_a, sched_a, writes_a, acked_a, t_a, threads_a) = sample();
    if let Some(c) = &consumer {
        c.open_window(clock::now_ms());
    }
    nap(Duration::from_secs_f64(secs))?;
    let (cpu_b, sent_b, sched_b, writes_b, acked_b, t_b, threads_b) = sample();
    if let Some(c) = &consumer {
        c.close_window(clock::now_ms());
    }
    if let Some(p) = perf.as_mut() {
        p.stop(libc::SIGINT, Duration::from_secs(20));
    }
    if !child.alive() {
        bail!("{who} died during the run; see {}", dir.display());
    }
    let drain_end = Instant::now() + Duration::from_secs_f64(args.drain_secs.max(3.0));
    // Everything the connection (this simulator's only one) was sent by the end of the window
    // must reach the topic (or the null sink).
    let delivered_total = |c: &Option<E2eConsumer>| match c {
        Some(c) => c.total() as f64,
        None => sink_count(),
    };
    while delivered_total(&consumer) < sent_b as f64 && Instant::now() < drain_end {
        nap(Duration::from_millis(100))?;
    }
    // The count is over all partitions (one per symbol here): one partition can still be behind
    // when the others have made up the number. Wait while the window's records keep coming.
    if let Some(c) = &consumer {
        let mut last = (c.in_window(), Instant::now());
        while Instant::now() < drain_end && last.1.elapsed() < Duration::from_secs(1) {
            nap(Duration::from_millis(100))?;
            if c.in_window() != last.0 {
                last = (c.in_window(), Instant::now());
            }
        }
    }
    let lost = sent_b as i64 - delivered_total(&consumer) as i64;
    let vm_hwm = mib(proc_status_kib(&pid.to_string(), "VmHWM:"));
    let exit = child.stop(libc::SIGINT, Duration::from_secs(15));
    drop(feeder);
    let window = t_b.duration_since(t_a).as_secs_f64();
    let mut r = ContenderResult {
        contender: who.to_string(),
        sink: cell.sink.clone(),
        feeder: args.feeder.clone(),
        arrival: cell.arrival.map(|a| a.to_string()).unwrap_or_else(|| "default".into()),
        rate,
        window_s: window,
        feeder_rate: (sent_b - sent_a) as f64 / window,
        cpu_s: cpu_b - cpu_a,
        cpu_util_pct: 100.0 * (cpu_b - cpu_a) / window,
        vm_hwm_mib: vm_hwm,
        lost,
        host: host.end(),
        ..ContenderResult::default()
    };
    if let (Some(a), Some(b)) = (writes_a, writes_b) {
        r.msgs_per_write = (sent_b - sent_a) as f64 / (b - a).max(1) as f64;
    }
    let delivered = match consumer {
        Some(c) => {
            let out = c.finish()?;
            let mut series = Vec::new();
            for (label, h) in [("e2e_log_append", &out.append), ("e2e_consumer_receive", &out.consume)] {
                let text = hgrm_text(h);
                std::fs::write(dir.join(format!("{label}.hgrm")), &text)?;
                r.e2e_ms.insert(label.to_string(), hist_pcts_ms(h));
                series.push((format!("{who} {label}"), Dist::whole(&Hgrm::parse(&text)).points()));
            }
            let title = format!("{who}: aggTrade {} msg/s ({}) into Kafka", fmt_rate(rate), r.arrival);
            let _ = chart(&dir.join("latency.svg"), &title, &series);
            out.in_window as f64
        }
        None => acked_b - acked_a,
    };
    r.kafka_rate = delivered / window;
    let msgs = delivered.max(1.0);
    r.cpu_us_per_msg = r.cpu_s * 1e6 / msgs;
    let counts = by_group(&threads_a, &threads_b, ours);
    r.cpu_us_per_msg_by_group = counts
        .iter()
        .filter(|(g, _)| g.as_str() != PROCESS)
        .map(|(g, c)| (g.clone(), c.cpu_ns as f64 / 1e3 / msgs))
        .collect();
    (r.wake, r.wake_by_group) = wakes(&counts, window, delivered);
    // A window much longer than asked means the whole machine stalled (a shared VM paused or
    // swamped): nothing measured in it says anything about the contender.
    if window > 1.5 * secs + 1.0 {
        r.problems.push(format!("the {secs:.0} s window took {window:.0} s: the machine stalled"));
    }
    let lag_growth = (sched_b as i64 - sent_b as i64) - (sched_a as i64 - sent_a as i64);
    if lag_growth as f64 > (0.01 * rate * window).max(100.0) {
        r.problems.push(format!("the simulator fell {lag_growth} messages behind its schedule (backpressure)"));
    }
    if lost > 0 {
        r.problems.push(format!("{lost} records sent but not delivered after the drain"));
    }
    let stats = cf_stats.lock().unwrap().clone();
    if let Some(d) = stats.get("dropped_overflow").and_then(|v| v.as_u64()) {
        if d > 0 {
            r.problems.push(format!("cryptofeed dropped {d} records at its queue cap"));
        }
    }
    if !stats.is_null() {
        r.extra.insert("cryptofeed_backend_stats".into(), stats.to_string());
    }
    r.extra.insert("exit".into(), exit);
    let (names_a, names_b) = (cpu_by_name(&threads_a), cpu_by_name(&threads_b));
    let threads: Vec<String> = names_b
        .iter()
        .map(|(k, v)| (k, 100.0 * (v - names_a.get(k).copied().unwrap_or(0.0)) / window))
        .filter(|(_, v)| *v >= 0.05)
        .map(|(k, v)| format!("{k} {v:.1} %"))
        .collect();
    r.extra.insert("threads_cpu_pct_of_a_core".into(), threads.join(", "));
    r.sustained = r.problems.is_empty();
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&r)?)?;
    Ok(r)
}

/// cryptofeed's Binance feed with its Kafka backend (scripts/cryptofeed_feed.py), ready once its
/// first record is in Kafka.
#[allow(clippy::too_many_arguments)]
fn spawn_cryptofeed(
    args: &Args,
    feeder: &Feeder,
    rest_url: &str,
    symbols: &[String],
    topic: &str,
    dir: &Path,
    consumer: &E2eConsumer,
    cf_stats: &Arc<Mutex<serde_json::Value>>,
) -> Result<ChildGuard> {
    let mut cmd = Command::new(&args.cf_python);
    unpinned(&mut cmd);
    cmd.arg(&args.cf_script)
        .arg("--ws")
        .arg(feeder.ws_url())
        .arg("--rest")
        .arg(rest_url)
        .arg("--symbols")
        .arg(symbols.join(","))
        .arg("--topic")
        .arg(topic)
        .arg("--bootstrap")
        .arg(&args.kafka_broker);
    if let Some(pem) = feeder.cert_pem() {
        let p = dir.join("feeder-ca.pem");
        std::fs::write(&p, pem)?;
        cmd.arg("--ca").arg(p);
    }
    if let Some(b) = args.cf_batch_interval {
        cmd.arg("--batch-interval").arg(b.to_string());
    }
    cmd.env("XDG_CACHE_HOME", dir.join("xdg-cache"));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(std::fs::File::create(dir.join("cryptofeed.log"))?);
    let mut c = ChildGuard::spawn(cmd, "cryptofeed")?;
    let out = c.child.stdout.take().unwrap();
    let st = cf_stats.clone();
    std::thread::Builder::new().name("cf-stats".into()).spawn(move || {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                *st.lock().unwrap() = v;
            }
        }
    })?;
    let end = Instant::now() + Duration::from_secs(60);
    while consumer.total() == 0 {
        if !c.alive() {
            bail!("cryptofeed exited at start; see {}", dir.join("cryptofeed.log").display());
        }
        if Instant::now() > end {
            bail!("cryptofeed delivered nothing to Kafka within 60 s; see {}", dir.join("cryptofeed.log").display());
        }
        nap(Duration::from_millis(100))?;
    }
    Ok(c)
}
