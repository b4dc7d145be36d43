//! Load harness: drives the real `marketflow-ingestor` binary (a child process) from a Binance
//! feeder on loopback and reports what it sustained, what it cost and how long it took.
//!
//! Feeders (both in this process, on 127.0.0.1):
//! - `sim`: the project's Binance simulator (`marketflow_ingestor::sim::spawn`), plain or TLS.
//! - `replay`: a WebSocket server that writes pre-rendered frames (only ids and times patched per
//!   message), for rates the simulator cannot generate itself (it formats JSON and frames each
//!   message through tungstenite).
//!
//! Per run: messages/s sustained, CPU per message of the ingester (utime+stime from
//! `/proc/<pid>/stat` over the measured window), peak RSS (`VmHWM`), per-stage latency
//! percentiles from `GET /latency/<stage>` (saved as `.hgrm`), a latency-by-percentile chart
//! (`latency.svg`), `summary.json`, and a markdown table on stdout. With `--sink kafka` a consumer
//! also measures end to end: Kafka log-append time (and consumer receive time) minus the
//! exchange event time in the record.
//!
//! Modes: fixed rate (default), `--max` (stepwise search of the highest rate sustained without
//! loss), `--soak MINUTES` (RSS every 10 s), `--compare-cryptofeed` (the same feed through the
//! ingester and through cryptofeed's Binance feed with its Kafka backend, measured identically).
//!
//! Every child is killed when this process exits (SIGTERM, then SIGKILL; and PDEATHSIG if this
//! process dies first). Nothing is pinned: the ingester chooses its own cores.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::task::{Context as TaskContext, Poll as TaskPoll, Wake};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use serde::Serialize;

use marketflow_ingestor::binance::stream::StreamKind;
use marketflow_ingestor::clock;
use marketflow_ingestor::sim::{self, SimConfig, SimHandle};

const STAGES: [&str; 3] = ["exchange_to_receive", "receive_to_enqueue", "enqueue_to_ack"];

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    about = "Load harness: the real ingester binary fed over loopback by the simulator (or a replay feeder)"
)]
struct Args {
    /// Messages per second over all symbols and streams
    #[arg(long, default_value_t = 100_000.0)]
    rate: f64,
    /// Core the feeder's threads run on: a number, `none`, or `auto` (the lowest allowed core when
    /// there are two or more). The ingester pins its event loop to the highest core by default, so
    /// on a two-core machine the feeder shares a core with the producer thread and the event loop
    /// has its own, as in production, where the exchange is not on the same machine.
    #[arg(long, default_value = "auto")]
    feeder_core: String,
    /// Only measure the machine's noise floor: spin this many seconds on the core the ingester's
    /// event loop would take, and report the gaps (interrupts, hypervisor steal) it saw
    #[arg(long, value_name = "SECS")]
    noise: Option<f64>,
    /// Length of the measured window, seconds (after the warm-up)
    #[arg(long, default_value_t = 20.0)]
    secs: f64,
    /// Warm-up before the measured window, seconds
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Ingester sink: null (counting) or kafka (the local broker)
    #[arg(long, default_value = "null", value_parser = ["null", "kafka"])]
    sink: String,
    /// Serve wss:// (the ingester trusts the generated certificate through TLS_CA_FILE)
    #[arg(long)]
    tls: bool,
    /// Lower-case symbols, comma-separated
    #[arg(long, default_value = "btcusdt,ethusdt,solusdt")]
    symbols: String,
    /// Stream kinds, comma-separated (trade, aggTrade, ...); the rate is split evenly between them
    #[arg(long, default_value = "trade")]
    streams: String,
    /// Who sends: the Binance simulator, or the replay feeder (trade and aggTrade only)
    #[arg(long, default_value = "sim", value_parser = ["sim", "replay"])]
    feeder: String,
    /// Find the highest rate sustained without loss (doubling from --max-start, then bisecting)
    #[arg(long)]
    max: bool,
    /// First rate of the --max search
    #[arg(long, default_value_t = 100_000.0)]
    max_start: f64,
    /// Highest rate the --max search tries
    #[arg(long, default_value_t = 8_000_000.0)]
    max_ceiling: f64,
    /// Bisection steps after the first failure
    #[arg(long, default_value_t = 3)]
    max_refine: u32,
    /// Measured seconds of each --max step
    #[arg(long, default_value_t = 6.0)]
    step_secs: f64,
    /// Soak: --rate (default 100,000/s) for this many minutes, RSS sampled every 10 s
    #[arg(long, value_name = "MINUTES")]
    soak: Option<f64>,
    /// RSS ceiling the soak checks against, MiB
    #[arg(long, default_value_t = 64.0)]
    soak_limit_mib: f64,
    /// Output folder; each run writes `OUT/<run>/`
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Run name (default: derived from the settings)
    #[arg(long)]
    name: Option<String>,
    /// The ingester binary (default: marketflow-ingestor next to this binary)
    #[arg(long)]
    ingester: Option<PathBuf>,
    /// Kafka bootstrap server for --sink kafka and --compare-cryptofeed
    #[arg(long, default_value = "127.0.0.1:9092")]
    kafka_broker: String,
    /// Kafka topic (default: a fresh one per run, created with LogAppendTime timestamps)
    #[arg(long)]
    topic: Option<String>,
    /// Extra environment for the ingester, K=V (repeatable), e.g. --env RING_BYTES=8388608
    #[arg(long = "env", value_name = "K=V")]
    extra_env: Vec<String>,
    /// Longest wait after the window for everything sent to be counted, seconds
    #[arg(long, default_value_t = 5.0)]
    drain_secs: f64,
    /// Run the same feed through the ingester and through cryptofeed (Kafka sink, aggTrade)
    #[arg(long)]
    compare_cryptofeed: bool,
    /// Which contenders the comparison runs: ours, cryptofeed (comma-separated)
    #[arg(long, default_value = "ours,cryptofeed")]
    contenders: String,
    /// Python interpreter with cryptofeed installed
    #[arg(long, default_value = "python3")]
    cf_python: String,
    /// The cryptofeed helper script
    #[arg(long, default_value = "scripts/cryptofeed_feed.py")]
    cf_script: PathBuf,
    /// Passed to the helper: cryptofeed's backend batch_interval (seconds); default = cryptofeed's own
    #[arg(long)]
    cf_batch_interval: Option<f64>,
}

// ------------------------------------------------------------------------------------------
// Interruption and child processes

fn interrupted_flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Sleeps, but returns an error as soon as SIGINT/SIGTERM arrived (children are then dropped,
/// which kills them).
fn nap(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        if interrupted_flag().load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
struct ChildGuard {
    child: Child,
    what: String,
    exit: Option<String>,
}

impl ChildGuard {
    fn spawn(mut cmd: Command, what: &str) -> Result<ChildGuard> {
        // SAFETY: prctl is async-signal-safe; the closure touches nothing else.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("cannot start {what}"))?;
        Ok(ChildGuard { child, what: what.to_string(), exit: None })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `sig`, waits up to `grace`, then SIGKILL. Returns how it ended.
    fn stop(&mut self, sig: i32, grace: Duration) -> String {
        if let Some(e) = &self.exit {
            return e.clone();
        }
        if self.alive() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(self.child.id() as i32, sig) };
            let end = Instant::now() + grace;
            while Instant::now() < end && self.alive() {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.alive() {
                eprintln!("loadgen: {} did not stop within {grace:?}: SIGKILL", self.what);
                let _ = self.child.kill();
            }
        }
        let e = match self.child.wait() {
            Ok(s) => s.to_string(),
            Err(e) => format!("wait failed: {e}"),
        };
        self.exit = Some(e.clone());
        e
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(libc::SIGTERM, Duration::from_secs(3));
    }
}

// ------------------------------------------------------------------------------------------
// /proc readings

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, seconds.
fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / clk_tck())
}

/// A `kB` line of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), in KiB.
fn proc_status_kib(pid: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds per thread name (schedstat: nanosecond resolution), threads of one name summed.
fn thread_cpu(pid: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for e in dir.flatten() {
        let p = e.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default().trim().to_string();
        let ns: f64 = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0);
        // librdkafka names its threads rdk:main, rdk:broker1, ...: one bucket is enough.
        let name = if comm.starts_with("rdk:") { "librdkafka".to_string() } else { comm };
        *out.entry(name).or_insert(0.0) += ns / 1e9;
    }
    out
}

/// (busy, total) jiffies of the whole machine.
fn machine_cpu() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> =
        s.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 5 {
        return (0.0, 0.0);
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let total: f64 = v.iter().take(8).sum();
    (total - v[3] - v[4], total)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ------------------------------------------------------------------------------------------
// HTTP: /metrics, /readyz, /latency/<stage>

fn http_get(url: &str) -> Result<(u16, String)> {
    match ureq::get(url).timeout(Duration::from_secs(5)).call() {
        Ok(r) => {
            let status = r.status();
            Ok((status, r.into_string()?))
        }
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
        Err(e) => Err(anyhow!("GET {url}: {e}")),
    }
}

/// The Prometheus text exposition, as (name, labels, value).
struct Prom(Vec<(String, String, f64)>);

impl Prom {
    fn parse(text: &str) -> Prom {
        let mut v = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(x) => x,
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n.to_string(), l.trim_end_matches('}').to_string()),
                None => (series.to_string(), String::new()),
            };
            v.push((name, labels, value));
        }
        Prom(v)
    }

    fn sum(&self, name: &str) -> f64 {
        self.0.iter().filter(|(n, _, _)| n == name).map(|(_, _, v)| v).sum()
    }
}

fn m(name: &str) -> String {
    format!("marketflow_ingestor_{name}")
}

// ------------------------------------------------------------------------------------------
// HdrHistogram percentile distributions (.hgrm)

#[derive(Clone, Debug, Default, Serialize)]
struct Pcts {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    count: u64,
}

/// A parsed `.hgrm`: rows of (value µs, cumulative count), and the footer.
#[derive(Clone, Debug, Default)]
struct Hgrm {
    rows: Vec<(f64, u64)>,
    max: f64,
    count: u64,
}

impl Hgrm {
    fn parse(text: &str) -> Hgrm {
        let mut h = Hgrm::default();
        let mut counts = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("#[Max") {
                // #[Max     =     2000.000, Total count    =            5]
                let mut parts = rest.split(',');
                h.max =
                    parts.next().and_then(|p| p.split('=').nth(1)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0);
                h.count = parts
                    .next()
                    .and_then(|p| p.split('=').nth(1))
                    .and_then(|v| v.trim().trim_end_matches(']').trim().parse().ok())
                    .unwrap_or(0);
                continue;
            }
            let f: Vec<&str> = t.split_whitespace().collect();
            if f.len() == 4 {
                if let (Ok(v), Ok(_), Ok(c)) = (f[0].parse::<f64>(), f[1].parse::<f64>(), f[2].parse::<u64>()) {
                    counts.push((v, c));
                }
            }
        }
        // The ingester writes the count since the previous row in the TotalCount column
        // (HdrHistogram's own format has the running total there): accept either.
        let sum: u64 = counts.iter().map(|x| x.1).sum();
        let cumulative_already = sum != h.count && counts.last().is_some_and(|x| x.1 == h.count);
        let mut run = 0;
        for (v, c) in counts {
            run = if cumulative_already { c } else { run + c };
            h.rows.push((v, run));
        }
        h
    }
}

/// A latency distribution as (value µs, cumulative fraction) steps.
#[derive(Clone, Debug, Default)]
struct Dist {
    steps: Vec<(f64, f64)>,
    max: f64,
    count: u64,
}

impl Dist {
    fn whole(h: &Hgrm) -> Dist {
        let n = h.count.max(1) as f64;
        Dist { steps: h.rows.iter().map(|&(v, c)| (v, c as f64 / n)).collect(), max: h.max, count: h.count }
    }

    /// What was recorded between snapshot `a` and snapshot `b` of the same cumulative histogram.
    /// `b`'s cumulative counts are exact at its row values; `a`'s are interpolated between its
    /// rows, so the error is bounded by `a`'s mass in one row interval (small: `a` is the warm-up).
    fn window(a: &Hgrm, b: &Hgrm) -> Dist {
        let total = b.count.saturating_sub(a.count);
        if total == 0 || a.rows.is_empty() {
            return if total == 0 { Dist::default() } else { Dist::whole(b) };
        }
        let ca = |v: f64| -> f64 {
            match a.rows.iter().position(|r| r.0 >= v) {
                None => a.count as f64,
                Some(0) => {
                    let (v0, c0) = a.rows[0];
                    if v >= v0 {
                        c0 as f64
                    } else {
                        0.0
                    }
                }
                Some(i) => {
                    let ((v0, c0), (v1, c1)) = (a.rows[i - 1], a.rows[i]);
                    if v1 <= v0 {
                        c1 as f64
                    } else {
                        c0 as f64 + (c1 as f64 - c0 as f64) * (v - v0) / (v1 - v0)
                    }
                }
            }
        };
        let mut steps = Vec::with_capacity(b.rows.len());
        let mut best = 0.0f64;
        let mut last_rise = 0.0;
        for &(v, cb) in &b.rows {
            let d = (cb as f64 - ca(v)).clamp(0.0, total as f64);
            if d > best + 0.5 {
                last_rise = v;
            }
            best = best.max(d);
            steps.push((v, best / total as f64));
        }
        // The window's max: the run's max if it grew during the window, else the last value
        // whose count grew in the window.
        let max = if b.max > a.max { b.max } else { last_rise };
        Dist { steps, max, count: total }
    }

    fn quantile(&self, q: f64) -> f64 {
        if q >= 1.0 {
            return self.max;
        }
        self.steps.iter().find(|(_, f)| *f >= q - 1e-12).map(|(v, _)| *v).unwrap_or(self.max)
    }

    fn pcts(&self) -> Pcts {
        Pcts {
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max,
            count: self.count,
        }
    }

    /// Chart points: (1/(1-p), value), up to the max.
    fn points(&self) -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> = Vec::new();
        for &(v, f) in &self.steps {
            if f >= 1.0 - 1e-9 {
                break;
            }
            pts.push((1.0 / (1.0 - f), v.max(0.001)));
        }
        let x_end = (self.count.max(2) as f64).max(pts.last().map(|p| p.0 * 2.0).unwrap_or(2.0));
        if !pts.is_empty() {
            pts.push((x_end, self.max.max(0.001)));
        }
        pts
    }
}

/// The same `.hgrm` layout the ingester serves, for histograms recorded here (values in µs).
fn hgrm_text(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let inv = if q < 1.0 { 1.0 / (1.0 - q) } else { f64::INFINITY };
            let _ = writeln!(
                out,
                "{:>12.3} {:>14.12} {:>10} {:>14.2}",
                v.value_iterated_to() as f64,
                q,
                v.count_since_last_iteration(),
                inv
            );
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.mean(),
        h.stdev(),
        h.max() as f64,
        h.len()
    );
    out
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds")
}

// ------------------------------------------------------------------------------------------
// Chart

fn pct_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let s = format!("{p:.5}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

fn us_label(y: f64) -> String {
    if y >= 1_000_000.0 {
        format!("{:.0} s", y / 1e6)
    } else if y >= 1000.0 {
        format!("{:.0} ms", y / 1e3)
    } else if y >= 1.0 {
        format!("{y:.0} µs")
    } else {
        format!("{:.0} ns", y * 1e3)
    }
}

fn chart(path: &Path, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    use plotters::prelude::*;
    let pts = || series.iter().flat_map(|(_, p)| p.iter());
    if pts().next().is_none() {
        return Ok(());
    }
    let xmax = pts().map(|p| p.0).fold(10.0, f64::max) * 1.2;
    let ymin = pts().map(|p| p.1).fold(f64::INFINITY, f64::min).max(0.001) / 1.5;
    let ymax = pts().map(|p| p.1).fold(0.0, f64::max).max(ymin * 10.0) * 1.5;
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut ch = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d((1f64..xmax).log_scale(), (ymin..ymax).log_scale())
        .map_err(|e| anyhow!("{e}"))?;
    ch.configure_mesh()
        .x_desc("percentile (x = 1/(1-percentile), log scale)")
        .y_desc("latency (log scale)")
        .x_label_formatter(&|x| pct_label(*x))
        .y_label_formatter(&|y| us_label(*y))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, (name, p)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        ch.draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    ch.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Feeders

/// One stream's pre-rendered combined frame, with the digits patched per message.
struct Template {
    bytes: Vec<u8>,
    /// (offset, width, what)
    fields: Vec<(usize, usize, Field)>,
    base: u64,
}

#[derive(Clone, Copy)]
enum Field {
    EventTime,
    /// base + mult * k + add
    Id {
        mult: u64,
        add: u64,
    },
}

struct TemplateBuilder {
    buf: Vec<u8>,
    fields: Vec<(usize, usize, Field)>,
}

impl TemplateBuilder {
    fn lit(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }
    fn field(&mut self, width: usize, f: Field) {
        self.fields.push((self.buf.len(), width, f));
        self.buf.resize(self.buf.len() + width, b'0');
    }
}

impl Template {
    fn new(stream: &str, idx: usize) -> Result<Template> {
        let (sym, kind) = stream.split_once('@').ok_or_else(|| anyhow!("bad stream {stream}"))?;
        let base = (idx as u64 + 1) * 1_000_000_000;
        let w = base.to_string().len();
        let up = sym.to_uppercase();
        let mut b = TemplateBuilder { buf: Vec::new(), fields: Vec::new() };
        b.lit(&format!(r#"{{"stream":"{stream}","data":"#));
        match kind {
            "trade" => {
                b.lit(r#"{"e":"trade","E":"#);
                b.field(13, Field::EventTime);
                b.lit(&format!(r#","s":"{up}","t":"#));
                b.field(w, Field::Id { mult: 1, add: 0 });
                b.lit(r#","p":"43125.37000000","q":"0.01532000","T":"#);
                b.field(13, Field::EventTime);
                b.lit(r#","m":true,"M":true}"#);
            }
            "aggTrade" => {
                b.lit(r#"{"e":"aggTrade","E":"#);
                b.field(13, Field::EventTime);
                b.lit(&format!(r#","s":"{up}","a":"#));
                b.field(w, Field::Id { mult: 1, add: 0 });
                b.lit(r#","p":"43125.37000000","q":"0.01532000","f":"#);
                b.field(w, Field::Id { mult: 2, add: 0 });
                b.lit(r#","l":"#);
                b.field(w, Field::Id { mult: 2, add: 1 });
                b.lit(r#","T":"#);
                b.field(13, Field::EventTime);
                b.lit(r#","m":true,"M":true}"#);
            }
            other => bail!("the replay feeder renders trade and aggTrade only, not {other}"),
        }
        b.lit("}");
        let len = b.buf.len();
        let header: Vec<u8> = if len < 126 {
            vec![0x81, len as u8]
        } else if len < 65536 {
            vec![0x81, 126, (len >> 8) as u8, len as u8]
        } else {
            bail!("template too long");
        };
        let mut bytes = header.clone();
        bytes.extend_from_slice(&b.buf);
        let fields = b.fields.into_iter().map(|(o, w, f)| (o + header.len(), w, f)).collect();
        Ok(Template { bytes, fields, base })
    }
}

fn put_digits(dst: &mut [u8], mut v: u64) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

struct ReplayShared {
    sent: AtomicU64,
    started: OnceLock<Instant>,
    stop: AtomicBool,
    error: Mutex<Option<String>>,
}

/// The replay feeder: one connection, frames written straight to the socket on schedule.
struct Replay {
    addr: SocketAddr,
    cert_pem: Option<String>,
    rate: f64,
    duration: Option<Duration>,
    shared: Arc<ReplayShared>,
    thread: Option<JoinHandle<()>>,
}

impl Replay {
    fn spawn(rate: f64, duration: Option<Duration>, tls: bool) -> Result<Replay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (cert_pem, tls_cfg) = if tls {
            let (pem, cfg) = marketflow_ingestor::tls::self_signed_server()?;
            (Some(pem), Some(cfg))
        } else {
            (None, None)
        };
        let shared = Arc::new(ReplayShared {
            sent: AtomicU64::new(0),
            started: OnceLock::new(),
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
        });
        let sh = shared.clone();
        let thread = std::thread::Builder::new().name("replay".into()).spawn(move || {
            let tcp = loop {
                if sh.stop.load(Ordering::Relaxed) {
                    return;
                }
                match listener.accept() {
                    Ok((t, _)) => break t,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => {
                        *sh.error.lock().unwrap() = Some(format!("accept: {e}"));
                        return;
                    }
                }
            };
            let r = (|| -> Result<()> {
                tcp.set_nonblocking(false)?;
                tcp.set_nodelay(true)?;
                match tls_cfg {
                    Some(cfg) => {
                        let conn = rustls::ServerConnection::new(cfg)?;
                        replay_pump(rustls::StreamOwned::new(conn, tcp), rate, duration, &sh)
                    }
                    None => replay_pump(tcp, rate, duration, &sh),
                }
            })();
            if let Err(e) = r {
                if !sh.stop.load(Ordering::Relaxed) {
                    *sh.error.lock().unwrap() = Some(format!("{e:#}"));
                }
            }
        })?;
        Ok(Replay { addr, cert_pem, rate, duration, shared, thread: Some(thread) })
    }

    fn scheduled(&self) -> u64 {
        match self.shared.started.get() {
            None => 0,
            Some(t0) => {
                let mut el = t0.elapsed().as_secs_f64();
                if let Some(d) = self.duration {
                    el = el.min(d.as_secs_f64());
                }
                (el * self.rate) as u64
            }
        }
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn replay_pump<S: Read + Write>(stream: S, rate: f64, duration: Option<Duration>, sh: &ReplayShared) -> Result<()> {
    let path = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
    let seen = path.clone();
    // tungstenite fixes this callback's signature, large error type included.
    #[allow(clippy::result_large_err)]
    let cb = move |req: &tungstenite::handshake::server::Request,
                   resp: tungstenite::handshake::server::Response|
          -> Result<
        tungstenite::handshake::server::Response,
        tungstenite::handshake::server::ErrorResponse,
    > {
        *seen.borrow_mut() = req.uri().to_string();
        Ok(resp)
    };
    let mut ws = tungstenite::accept_hdr(stream, cb).map_err(|e| anyhow!("handshake: {e}"))?;
    let path = path.borrow().clone();
    let streams: Vec<String> = path
        .split_once("streams=")
        .map(|(_, q)| {
            q.split('&').next().unwrap_or("").split('/').filter(|s| !s.is_empty()).map(String::from).collect()
        })
        .unwrap_or_default();
    if streams.is_empty() {
        bail!("the client asked for no streams in its URL ({path})");
    }
    let templates: Vec<Template> =
        streams.iter().enumerate().map(|(i, s)| Template::new(s, i)).collect::<Result<_>>()?;
    const MAX_BATCH: u64 = 1024;
    let frame_max = templates.iter().map(|t| t.bytes.len()).max().unwrap_or(256);
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_BATCH as usize * frame_max);
    let mut k = vec![0u64; templates.len()];
    let mut rr = 0usize;
    let mut sent = 0u64;
    let t0 = *sh.started.get_or_init(Instant::now);
    let limit = duration.map(|d| (d.as_secs_f64() * rate) as u64);
    let out = ws.get_mut();
    while !sh.stop.load(Ordering::Relaxed) {
        let el = t0.elapsed().as_secs_f64();
        let mut due = (el * rate) as u64;
        if let Some(l) = limit {
            due = due.min(l);
        }
        if due <= sent {
            if limit.is_some_and(|l| sent >= l) {
                std::thread::sleep(Duration::from_millis(10));
            } else {
                let wait = ((sent + 1) as f64 / rate - el).clamp(0.0, 0.0005);
                std::thread::sleep(Duration::from_secs_f64(wait));
            }
            continue;
        }
        let n = (due - sent).min(MAX_BATCH);
        buf.clear();
        let now_ms = clock::now_ms() as u64;
        for _ in 0..n {
            let t = &templates[rr];
            let start = buf.len();
            buf.extend_from_slice(&t.bytes);
            for &(off, w, f) in &t.fields {
                let v = match f {
                    Field::EventTime => now_ms,
                    Field::Id { mult, add } => t.base + mult * k[rr] + add,
                };
                put_digits(&mut buf[start + off..start + off + w], v);
            }
            k[rr] += 1;
            rr = (rr + 1) % templates.len();
        }
        out.write_all(&buf)?;
        out.flush()?;
        sent += n;
        sh.sent.store(sent, Ordering::Relaxed);
    }
    Ok(())
}

enum Feeder {
    Sim { h: SimHandle, kinds: Vec<StreamKind>, nsym: u64 },
    Replay(Replay),
}

impl Feeder {
    fn start(
        kind: &str,
        rate: f64,
        symbols: &[String],
        streams: &[String],
        duration: Option<Duration>,
        tls: bool,
    ) -> Result<Feeder> {
        let kinds: Vec<StreamKind> =
            streams.iter().map(|s| s.parse::<StreamKind>().map_err(anyhow::Error::msg)).collect::<Result<_>>()?;
        let per_kind = rate / kinds.len().max(1) as f64;
        match kind {
            "replay" => Ok(Feeder::Replay(Replay::spawn(rate, duration, tls)?)),
            _ => {
                let cfg = SimConfig {
                    symbols: symbols.to_vec(),
                    trade_rate: per_kind,
                    aux_rate: per_kind / symbols.len().max(1) as f64,
                    duration,
                    tls,
                    ..SimConfig::default()
                };
                let h = sim::spawn(cfg, "127.0.0.1:0")?;
                Ok(Feeder::Sim { h, kinds, nsym: symbols.len() as u64 })
            }
        }
    }

    fn ws_url(&self) -> String {
        match self {
            Feeder::Sim { h, .. } => h.ws_url(),
            Feeder::Replay(r) => format!("{}://{}", if r.cert_pem.is_some() { "wss" } else { "ws" }, r.addr),
        }
    }

    fn rest_url(&self) -> String {
        match self {
            Feeder::Sim { h, .. } => h.rest_url(),
            // Never used: backfill and recovery are off.
            Feeder::Replay(_) => "http://127.0.0.1:9".into(),
        }
    }

    fn cert_pem(&self) -> Option<&str> {
        match self {
            Feeder::Sim { h, .. } => h.cert_pem.as_deref(),
            Feeder::Replay(r) => r.cert_pem.as_deref(),
        }
    }

    fn sent(&self) -> u64 {
        match self {
            Feeder::Sim { h, .. } => h.market.sent.load(Ordering::Relaxed),
            Feeder::Replay(r) => r.shared.sent.load(Ordering::Relaxed),
        }
    }

    /// Messages the schedule says should have gone out by now. For the simulator this starts
    /// the market clock if nobody subscribed yet, so it is only read once the ingester is in.
    fn scheduled(&self) -> u64 {
        match self {
            Feeder::Sim { h, kinds, nsym } => kinds.iter().map(|k| h.market.generated(*k) * nsym).sum(),
            Feeder::Replay(r) => r.scheduled(),
        }
    }

    fn thread_prefix(&self) -> &'static str {
        match self {
            Feeder::Sim { .. } => "sim-conn",
            Feeder::Replay(_) => "replay",
        }
    }

    fn error(&self) -> Option<String> {
        match self {
            Feeder::Sim { .. } => None,
            Feeder::Replay(r) => r.shared.error.lock().unwrap().clone(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Kafka: topic with log-append timestamps, and an end-to-end consumer

fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark()
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = TaskContext::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let TaskPoll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// Creates `topic` (3 partitions) with `message.timestamp.type=LogAppendTime`, so every record
/// carries the broker's append time.
fn create_topic(broker: &str, topic: &str) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::ClientConfig;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", broker).create()?;
    let t = NewTopic::new(topic, 3, TopicReplication::Fixed(1)).set("message.timestamp.type", "LogAppendTime");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    let res = block_on(admin.create_topics(&[t], &opts))?;
    for r in res {
        if let Err((name, code)) = r {
            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                bail!("cannot create topic {name}: {code}");
            }
        }
    }
    Ok(())
}

/// Where the exchange event time is in a record.
#[derive(Clone, Copy, Debug)]
enum TimeField {
    /// Ours: `"event_time_ms":<int>`.
    EventTimeMs,
    /// cryptofeed's: `"timestamp":<float seconds>`.
    TimestampSecs,
}

fn event_ms(payload: &[u8], f: TimeField) -> Option<i64> {
    let key: &[u8] = match f {
        TimeField::EventTimeMs => b"\"event_time_ms\":",
        TimeField::TimestampSecs => b"\"timestamp\":",
    };
    let at = payload.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &payload[at..];
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'e' | b'E' | b'+')))
        .unwrap_or(rest.len());
    let v: f64 = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    Some(match f {
        TimeField::EventTimeMs => v as i64,
        TimeField::TimestampSecs => (v * 1000.0).round() as i64,
    })
}

struct E2eOut {
    /// Broker append time - event time, µs (ms resolution).
    append: Histogram<u64>,
    /// Consumer receive time - event time, µs.
    consume: Histogram<u64>,
    in_window: u64,
}

/// A consumer reading one topic from the beginning, timing records whose event time falls in
/// the window.
struct E2eConsumer {
    stop: Arc<AtomicBool>,
    window: Arc<(AtomicI64, AtomicI64)>,
    total: Arc<AtomicU64>,
    handle: Option<JoinHandle<Result<E2eOut>>>,
}

impl E2eConsumer {
    fn start(broker: &str, topic: &str, field: TimeField) -> Result<E2eConsumer> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{ClientConfig, Message, Offset, Timestamp, TopicPartitionList};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker)
            .set("group.id", format!("loadgen-{}-{}", std::process::id(), clock::now_ns()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "50")
            .set("client.id", "loadgen-e2e")
            .create()?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let parts = md.topics().first().map(|t| t.partitions().len()).unwrap_or(0).max(1);
        let mut tpl = TopicPartitionList::new();
        for p in 0..parts as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let stop = Arc::new(AtomicBool::new(false));
        let window = Arc::new((AtomicI64::new(i64::MAX), AtomicI64::new(i64::MAX)));
        let total = Arc::new(AtomicU64::new(0));
        let (s, w, t) = (stop.clone(), window.clone(), total.clone());
        let handle = std::thread::Builder::new().name("e2e-consumer".into()).spawn(move || {
            let mut out = E2eOut { append: new_hist(), consume: new_hist(), in_window: 0 };
            while !s.load(Ordering::Relaxed) {
                let Some(r) = consumer.poll(Duration::from_millis(100)) else { continue };
                let msg = match r {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("loadgen: consumer: {e}");
                        continue;
                    }
                };
                let now_us = clock::now_ns() / 1000;
                t.fetch_add(1, Ordering::Relaxed);
                let Some(ev) = msg.payload().and_then(|p| event_ms(p, field)) else { continue };
                let (from, to) = (w.0.load(Ordering::Relaxed), w.1.load(Ordering::Relaxed));
                if ev < from || ev >= to {
                    continue;
                }
                out.in_window += 1;
                if let Timestamp::LogAppendTime(a) | Timestamp::CreateTime(a) = msg.timestamp() {
                    out.append.saturating_record(((a - ev).max(0) as u64 * 1000).max(1));
                }
                out.consume.saturating_record(now_us.saturating_sub(ev as u64 * 1000).max(1));
            }
            Ok(out)
        })?;
        Ok(E2eConsumer { stop, window, total, handle: Some(handle) })
    }

    fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    fn open_window(&self, from_ms: i64) {
        self.window.0.store(from_ms, Ordering::Relaxed);
    }

    fn close_window(&self, to_ms: i64) {
        self.window.1.store(to_ms, Ordering::Relaxed);
    }

    fn finish(mut self) -> Result<E2eOut> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().map_err(|_| anyhow!("consumer panicked"))?
    }
}

impl Drop for E2eConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn hist_pcts_ms(h: &Histogram<u64>) -> Pcts {
    let q = |x: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(x) as f64 / 1000.0 };
    Pcts { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: h.max() as f64 / 1000.0, count: h.len() }
}

// ------------------------------------------------------------------------------------------
// The ingester child

struct Ingester {
    child: ChildGuard,
    metrics: String,
    warn_lines: Arc<AtomicU64>,
}

struct IngesterSpec<'a> {
    bin: &'a Path,
    feeder: &'a Feeder,
    dir: &'a Path,
    sink: &'a str,
    symbols: &'a [String],
    streams: &'a [String],
    broker: &'a str,
    topic: &'a str,
    extra_env: &'a [String],
}

fn spawn_ingester(s: &IngesterSpec<'_>) -> Result<Ingester> {
    let mut cmd = Command::new(s.bin);
    unpinned(&mut cmd);
    for (k, _) in marketflow_ingestor::config::VARS {
        cmd.env_remove(k);
    }
    cmd.env("SINK", s.sink)
        .env("BINANCE_WS_URL", s.feeder.ws_url())
        .env("BINANCE_REST_URL", s.feeder.rest_url())
        .env("KAFKA_BROKER", s.broker)
        .env("KAFKA_TOPIC", s.topic)
        .env("STREAMS", s.streams.join(","))
        .env("SYMBOLS", s.symbols.join(","))
        .env("PROM_PORT", "0")
        .env("METRICS_BIND", "127.0.0.1")
        .env("LOG_FORMAT", "json")
        .env("RECOVER_FROM_KAFKA", "off")
        .env("BACKFILL", "off")
        .env("RUST_LOG", "info");
    if let Some(pem) = s.feeder.cert_pem() {
        let p = s.dir.join("feeder-ca.pem");
        std::fs::write(&p, pem)?;
        cmd.env("TLS_CA_FILE", &p);
    }
    for kv in s.extra_env {
        let (k, v) = kv.split_once('=').ok_or_else(|| anyhow!("--env wants K=V, got {kv}"))?;
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(cmd, "marketflow-ingestor")?;
    let stderr = child.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let warn_lines = Arc::new(AtomicU64::new(0));
    let warns = warn_lines.clone();
    let mut log = std::fs::File::create(s.dir.join("ingester.log"))?;
    std::thread::Builder::new().name("ingester-log".into()).spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            let _ = writeln!(log, "{line}");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if matches!(v["level"].as_str(), Some("WARN" | "ERROR")) {
                    warns.fetch_add(1, Ordering::Relaxed);
                }
                if v["message"].as_str() == Some("metrics listening") {
                    if let Some(a) = v["addr"].as_str() {
                        let _ = tx.send(a.to_string());
                    }
                }
            }
        }
    })?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = loop {
        if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
            break a;
        }
        if !child.alive() {
            let e = child.stop(libc::SIGTERM, Duration::ZERO);
            bail!("the ingester exited at start ({e}); see {}", s.dir.join("ingester.log").display());
        }
        if Instant::now() > deadline {
            bail!("the ingester did not report its metrics address; see {}", s.dir.join("ingester.log").display());
        }
        nap(Duration::ZERO)?;
    };
    Ok(Ingester { child, metrics: format!("http://{addr}"), warn_lines })
}

fn wait_ready(ing: &mut Ingester, timeout: Duration) -> Result<()> {
    let end = Instant::now() + timeout;
    loop {
        if let Ok((200, _)) = http_get(&format!("{}/readyz", ing.metrics)) {
            return Ok(());
        }
        if !ing.child.alive() {
            bail!("the ingester exited before it was ready");
        }
        if Instant::now() > end {
            bail!("the ingester was not ready within {timeout:?}");
        }
        nap(Duration::from_millis(50))?;
    }
}

// ------------------------------------------------------------------------------------------
// One measured run

#[derive(Clone, Debug)]
struct RunSpec {
    name: String,
    dir: PathBuf,
    rate: f64,
    warmup: f64,
    secs: f64,
    sink: String,
    tls: bool,
    feeder: String,
    symbols: Vec<String>,
    streams: Vec<String>,
    soak: bool,
}

#[derive(Clone, Debug, Default)]
struct Snap {
    at: Option<Instant>,
    cpu: f64,
    threads: BTreeMap<String, f64>,
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
    Ok(Snap {
        at: Some(Instant::now()),
        cpu: proc_cpu_secs(pid).unwrap_or(0.0),
        threads: thread_cpu(&pid.to_string()),
        feeder_cpu: thread_cpu("self").iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum(),
        parsed: p.sum(&m("messages_parsed_total")),
        acked: p.sum(&m("messages_sent_total")),
        overflow: p.sum(&m("overflow_dropped_total")),
        rejected: p.sum(&m("messages_rejected_total")),
        gaps: p.sum(&m("gap_ids_missing_total")),
        kafka_errors: p.sum(&m("kafka_delivery_errors_total")),
        ring_full_waits: p.sum(&m("ring_full_waits_total")),
        feeder_sent: feeder.sent(),
        feeder_sched: feeder.scheduled(),
        machine: machine_cpu(),
    })
}

#[derive(Clone, Debug, Default, Serialize)]
struct RunResult {
    name: String,
    feeder: String,
    sink: String,
    tls: bool,
    symbols: usize,
    streams: String,
    target_rate: f64,
    warmup_s: f64,
    window_s: f64,
    /// Messages the feeder wrote per second in the window.
    feeder_rate: f64,
    /// Records the ingester parsed and enqueued per second in the window (the sustained rate).
    parsed_rate: f64,
    /// Records the sink acknowledged per second (null: counted; kafka: acks=all).
    acked_rate: f64,
    sustained: bool,
    problems: Vec<String>,
    /// How much further the feeder fell behind its schedule during the window (messages).
    schedule_lag_growth: i64,
    /// Sent by the end of the window but not counted by the ingester after the drain.
    not_counted_after_drain: i64,
    overflow_dropped: u64,
    rejected: u64,
    gap_ids_missing: u64,
    kafka_delivery_errors: u64,
    ring_full_waits: u64,
    cpu_s: f64,
    cpu_ns_per_msg: f64,
    cpu_util_pct: f64,
    /// Per-thread CPU of the ingester over the window, % of one core.
    threads_pct: BTreeMap<String, f64>,
    event_loop_ns_per_msg: f64,
    feeder_thread_pct: f64,
    feeder_ns_per_msg: f64,
    machine_busy_pct: f64,
    loadavg: String,
    vm_hwm_mib: f64,
    vm_rss_end_mib: f64,
    /// Per stage, µs, over the measured window: `GET /latency/<stage>` at the end minus its state
    /// at the end of the warm-up (the `.hgrm` files keep both).
    latency_us: BTreeMap<String, Pcts>,
    /// Per stage, µs, over the whole run (warm-up and drain included), as the ingester reports it.
    latency_run_us: BTreeMap<String, Pcts>,
    /// Kafka runs: append time - event time and consumer receive - event time, ms (window only).
    e2e_ms: BTreeMap<String, Pcts>,
    consumed_in_window: u64,
    rss_series_mib: Vec<(f64, f64)>,
    rate_series: Vec<(f64, f64)>,
    bottleneck: String,
    exit: String,
    warn_lines: u64,
    feeder_error: Option<String>,
}

fn mib(kib: Option<u64>) -> f64 {
    kib.unwrap_or(0) as f64 / 1024.0
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' }).collect()
}

fn run_once(args: &Args, spec: &RunSpec) -> Result<RunResult> {
    std::fs::create_dir_all(&spec.dir)?;
    let bin = ingester_path(args)?;
    let kafka = spec.sink == "kafka";
    // The market generates for the warm-up and the window (plus start-up slack), then stops, so
    // the drain afterwards has a fixed target. A soak runs open-ended.
    let duration = (!spec.soak).then(|| Duration::from_secs_f64(spec.warmup + spec.secs + 2.0));
    let feeder = Feeder::start(&spec.feeder, spec.rate, &spec.symbols, &spec.streams, duration, spec.tls)?;
    let topic = args.topic.clone().unwrap_or_else(|| format!("loadgen-{}-{}", sanitize(&spec.name), clock::now_ms()));
    let consumer = if kafka {
        create_topic(&args.kafka_broker, &topic)?;
        Some(E2eConsumer::start(&args.kafka_broker, &topic, TimeField::EventTimeMs)?)
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
    nap(Duration::from_secs_f64(spec.warmup))?;
    let a = snapshot(&ing, &feeder)?;
    if let Some(c) = &consumer {
        c.open_window(clock::now_ms());
    }
    // The ingester's histograms count from its start: keep their state at the end of the warm-up
    // so the window can be told apart.
    let mut at_a = BTreeMap::new();
    for st in STAGES {
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
            let parsed = Prom::parse(&text).sum(&m("messages_parsed_total"));
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
            drained.parsed = p.sum(&m("messages_parsed_total"));
            drained.acked = p.sum(&m("messages_sent_total"));
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
    for st in STAGES {
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
        "{}: {} msg/s target, {} sink, {}{}",
        spec.name,
        fmt_rate(spec.rate),
        spec.sink,
        if spec.tls { "wss" } else { "ws" },
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
    let mut r = RunResult {
        name: spec.name.clone(),
        feeder: spec.feeder.clone(),
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
        loadavg: loadavg(),
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

/// Sustained = the feeder kept its schedule, everything it wrote was counted (and acknowledged),
/// nothing dropped, rejected or missing.
fn judge(r: &mut RunResult, kafka: bool, acked_total: f64, sent_at_end: u64) {
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

fn ingester_path(args: &Args) -> Result<PathBuf> {
    if let Some(p) = &args.ingester {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let p = exe.parent().ok_or_else(|| anyhow!("no parent dir"))?.join("marketflow-ingestor");
    if !p.exists() {
        bail!("{} not found: build it (cargo build --release --bins) or pass --ingester", p.display());
    }
    Ok(p)
}

// ------------------------------------------------------------------------------------------
// Reports

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn fmt_us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.2} µs")
    }
}

fn table(results: &[RunResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| run | feeder | sink | TLS | target/s | feeder sent/s | sustained/s | no loss | CPU ns/msg (loop) | CPU % | VmHWM MiB | bottleneck |"
    );
    let _ = writeln!(s, "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---|");
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} ({:.0}) | {:.0} | {:.1} | {} |",
            r.name,
            r.feeder,
            r.sink,
            if r.tls { "yes" } else { "no" },
            fmt_rate(r.target_rate),
            fmt_rate(r.feeder_rate),
            fmt_rate(r.parsed_rate),
            if r.sustained { "yes".to_string() } else { format!("NO: {}", r.problems.join("; ")) },
            r.cpu_ns_per_msg,
            r.event_loop_ns_per_msg,
            r.cpu_util_pct,
            r.vm_hwm_mib,
            r.bottleneck
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| run | stage (measured window) | p50 | p90 | p99 | p99.9 | max | count |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for r in results {
        for (st, p) in &r.latency_us {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                st,
                fmt_us(p.p50),
                fmt_us(p.p90),
                fmt_us(p.p99),
                fmt_us(p.p999),
                fmt_us(p.max),
                p.count
            );
        }
        for (st, p) in &r.e2e_ms {
            let _ = writeln!(
                s,
                "| {} | {} (window) | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
                r.name, st, p.p50, p.p90, p.p99, p.p999, p.max, p.count
            );
        }
    }
    s
}

/// `<sink>-<plain|tls>-<streams>-<rate|max>[-replay]`
fn default_name(args: &Args, rate: Option<f64>) -> String {
    format!(
        "{}-{}-{}-{}{}",
        args.sink,
        if args.tls { "tls" } else { "plain" },
        args.streams.replace(',', "+"),
        rate.map(|r| fmt_rate(r).to_lowercase()).unwrap_or_else(|| "max".into()),
        if args.feeder == "replay" { "-replay" } else { "" }
    )
}

fn spec_for(args: &Args, name: &str, dir: PathBuf, rate: f64, secs: f64) -> RunSpec {
    RunSpec {
        name: name.to_string(),
        dir,
        rate,
        warmup: args.warmup,
        secs,
        sink: args.sink.clone(),
        tls: args.tls,
        feeder: args.feeder.clone(),
        symbols: split(&args.symbols),
        streams: split(&args.streams),
        soak: false,
    }
}

fn split(s: &str) -> Vec<String> {
    s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
}

fn print_and_save(dir: &Path, results: &[RunResult], extra: Option<&str>) -> Result<()> {
    let mut t = table(results);
    if let Some(e) = extra {
        t.push('\n');
        t.push_str(e);
    }
    println!("{t}");
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("table.md"), &t)?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Modes

fn mode_fixed(args: &Args) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(|| default_name(args, Some(args.rate)));
    let dir = args.out.join(&name);
    let r = run_once(args, &spec_for(args, &name, dir.clone(), args.rate, args.secs))?;
    print_and_save(&dir, &[r], None)
}

fn mode_max(args: &Args) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(|| default_name(args, None));
    let root = args.out.join(&name);
    let mut results = Vec::new();
    let step = |rate: f64, results: &mut Vec<RunResult>| -> Result<bool> {
        let n = format!("{name}-{}", fmt_rate(rate).to_lowercase());
        eprintln!("loadgen: --max step at {} msg/s", fmt_rate(rate));
        let r = run_once(args, &spec_for(args, &n, root.join(format!("step-{:09.0}", rate)), rate, args.step_secs))?;
        eprintln!(
            "loadgen:   sustained {} msg/s: {} ({})",
            fmt_rate(r.parsed_rate),
            if r.sustained { "no loss" } else { "LOSS" },
            r.bottleneck
        );
        let ok = r.sustained;
        results.push(r);
        Ok(ok)
    };
    let mut good: Option<f64> = None;
    let mut bad: Option<f64> = None;
    let mut rate = args.max_start;
    while rate <= args.max_ceiling {
        if step(rate, &mut results)? {
            good = Some(rate);
            rate *= 2.0;
        } else {
            bad = Some(rate);
            break;
        }
    }
    if let Some(mut hi) = bad {
        let mut lo = good.unwrap_or(0.0);
        for _ in 0..args.max_refine {
            let mid = ((lo + hi) / 2.0 / 1000.0).round() * 1000.0;
            if mid <= lo || mid >= hi {
                break;
            }
            if step(mid, &mut results)? {
                lo = mid;
                good = Some(mid);
            } else {
                hi = mid;
            }
        }
    }
    let best = good.unwrap_or(0.0);
    let best_run = results.iter().filter(|r| r.sustained).max_by(|a, b| a.target_rate.total_cmp(&b.target_rate));
    let first_fail = results.iter().filter(|r| !r.sustained).min_by(|a, b| a.target_rate.total_cmp(&b.target_rate));
    let mut extra = format!(
        "**Highest rate sustained without loss: {} msg/s** ({} feeder, {} sink, {}).\n",
        fmt_rate(best),
        args.feeder,
        args.sink,
        if args.tls { "wss" } else { "ws" }
    );
    if let Some(f) = first_fail {
        let _ = writeln!(
            extra,
            "Lowest failing step {} msg/s: sustained {} msg/s, feeder wrote {} msg/s; limit: {}.",
            fmt_rate(f.target_rate),
            fmt_rate(f.parsed_rate),
            fmt_rate(f.feeder_rate),
            f.bottleneck
        );
    }
    #[derive(Serialize)]
    struct MaxSummary<'a> {
        max_sustained_rate: f64,
        best: Option<&'a RunResult>,
        steps: &'a [RunResult],
    }
    std::fs::create_dir_all(&root)?;
    std::fs::write(
        root.join("summary.json"),
        serde_json::to_string_pretty(&MaxSummary { max_sustained_rate: best, best: best_run, steps: &results })?,
    )?;
    print_and_save(&root, &results, Some(&extra))
}

fn mode_soak(args: &Args, minutes: f64) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(|| format!("soak-{}-{minutes}min", fmt_rate(args.rate).to_lowercase()));
    let dir = args.out.join(&name);
    let mut spec = spec_for(args, &name, dir.clone(), args.rate, minutes * 60.0);
    spec.soak = true;
    let r = run_once(args, &spec)?;
    let rss: Vec<f64> = r.rss_series_mib.iter().map(|x| x.1).collect();
    let max = rss.iter().copied().fold(0.0, f64::max);
    let after_1min: Vec<f64> = r.rss_series_mib.iter().filter(|x| x.0 >= 60.0).map(|x| x.1).collect();
    let growth = match (after_1min.first(), after_1min.last()) {
        (Some(a), Some(b)) => b - a,
        _ => rss.last().copied().unwrap_or(0.0) - rss.first().copied().unwrap_or(0.0),
    };
    let mut extra = String::from("RSS every 10 s (MiB): ");
    extra.push_str(&r.rss_series_mib.iter().map(|(t, v)| format!("{t:.0}s={v:.1}")).collect::<Vec<_>>().join(", "));
    let _ = write!(
        extra,
        "\n\nRSS max {max:.1} MiB, VmHWM {:.1} MiB, growth after the first minute {growth:+.1} MiB: {} (limit {} MiB).\n",
        r.vm_hwm_mib,
        if r.vm_hwm_mib < args.soak_limit_mib && growth.abs() < 2.0 { "flat and under the limit" } else { "NOT within the limit / not flat" },
        args.soak_limit_mib
    );
    print_and_save(&dir, &[r], Some(&extra))
}

// ------------------------------------------------------------------------------------------
// The cryptofeed comparison

#[derive(Clone, Debug, Default, Serialize)]
struct ContenderResult {
    contender: String,
    feeder: String,
    rate: f64,
    window_s: f64,
    feeder_rate: f64,
    /// Records that reached Kafka per second (event time within the window).
    kafka_rate: f64,
    sustained: bool,
    problems: Vec<String>,
    cpu_s: f64,
    cpu_us_per_msg: f64,
    cpu_util_pct: f64,
    vm_hwm_mib: f64,
    e2e_ms: BTreeMap<String, Pcts>,
    lost: i64,
    extra: BTreeMap<String, String>,
}

fn run_contender(args: &Args, who: &str, rate: f64, dir: &Path, secs: f64) -> Result<ContenderResult> {
    std::fs::create_dir_all(dir)?;
    let symbols = split(&args.symbols);
    let streams = vec!["aggTrade".to_string()];
    let duration = Some(Duration::from_secs_f64(args.warmup + secs + 30.0));
    // wss for both: cryptofeed refuses ws:// addresses (and Binance is wss anyway).
    let feeder = Feeder::start(&args.feeder, rate, &symbols, &streams, duration, true)?;
    // The replay feeder has no REST side: a simulator serves cryptofeed's exchangeInfo.
    let rest_sim = match &feeder {
        Feeder::Replay(_) => {
            Some(sim::spawn(SimConfig { symbols: symbols.clone(), ..SimConfig::default() }, "127.0.0.1:0")?)
        }
        Feeder::Sim { .. } => None,
    };
    let rest_url = rest_sim.as_ref().map(|s| s.rest_url()).unwrap_or_else(|| feeder.rest_url());
    let topic = format!("cmp-{who}-{}-{}", fmt_rate(rate).to_lowercase(), clock::now_ms());
    create_topic(&args.kafka_broker, &topic)?;
    let field = if who == "ours" { TimeField::EventTimeMs } else { TimeField::TimestampSecs };
    let consumer = E2eConsumer::start(&args.kafka_broker, &topic, field)?;
    let cf_stats: Arc<Mutex<serde_json::Value>> = Arc::new(Mutex::new(serde_json::Value::Null));
    let mut child = if who == "ours" {
        let mut ing = spawn_ingester(&IngesterSpec {
            bin: &ingester_path(args)?,
            feeder: &feeder,
            dir,
            sink: "kafka",
            symbols: &symbols,
            streams: &streams,
            broker: &args.kafka_broker,
            topic: &topic,
            extra_env: &args.extra_env,
        })?;
        wait_ready(&mut ing, Duration::from_secs(20))?;
        ing.child
    } else {
        let mut cmd = Command::new(&args.cf_python);
        unpinned(&mut cmd);
        cmd.arg(&args.cf_script)
            .arg("--ws")
            .arg(feeder.ws_url())
            .arg("--rest")
            .arg(&rest_url)
            .arg("--symbols")
            .arg(symbols.join(","))
            .arg("--topic")
            .arg(&topic)
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
        // Ready = its first record is in Kafka.
        let end = Instant::now() + Duration::from_secs(60);
        while consumer.total() == 0 {
            if !c.alive() {
                bail!("cryptofeed exited at start; see {}", dir.join("cryptofeed.log").display());
            }
            if Instant::now() > end {
                bail!(
                    "cryptofeed delivered nothing to Kafka within 60 s; see {}",
                    dir.join("cryptofeed.log").display()
                );
            }
            nap(Duration::from_millis(100))?;
        }
        c
    };
    let pid = child.pid();
    nap(Duration::from_secs_f64(args.warmup))?;
    let (cpu_a, sent_a, sched_a, t_a) =
        (proc_cpu_secs(pid).unwrap_or(0.0), feeder.sent(), feeder.scheduled(), Instant::now());
    let threads_a = thread_cpu(&pid.to_string());
    consumer.open_window(clock::now_ms());
    nap(Duration::from_secs_f64(secs))?;
    let (cpu_b, sent_b, sched_b, t_b) =
        (proc_cpu_secs(pid).unwrap_or(0.0), feeder.sent(), feeder.scheduled(), Instant::now());
    let threads_b = thread_cpu(&pid.to_string());
    consumer.close_window(clock::now_ms());
    if !child.alive() {
        bail!("{who} died during the run; see {}", dir.display());
    }
    let drain_end = Instant::now() + Duration::from_secs_f64(args.drain_secs.max(3.0));
    // Everything the connection (this simulator's only one) was sent by the end of the window
    // must reach the topic.
    while consumer.total() < sent_b && Instant::now() < drain_end {
        nap(Duration::from_millis(100))?;
    }
    let vm_hwm = mib(proc_status_kib(&pid.to_string(), "VmHWM:"));
    let lost = sent_b as i64 - consumer.total() as i64;
    let exit = child.stop(libc::SIGINT, Duration::from_secs(15));
    drop(feeder);
    let out = consumer.finish()?;
    let window = t_b.duration_since(t_a).as_secs_f64();
    let msgs = out.in_window.max(1) as f64;
    let mut r = ContenderResult {
        contender: who.to_string(),
        feeder: args.feeder.clone(),
        rate,
        window_s: window,
        feeder_rate: (sent_b - sent_a) as f64 / window,
        kafka_rate: out.in_window as f64 / window,
        cpu_s: cpu_b - cpu_a,
        cpu_us_per_msg: (cpu_b - cpu_a) * 1e6 / msgs,
        cpu_util_pct: 100.0 * (cpu_b - cpu_a) / window,
        vm_hwm_mib: vm_hwm,
        lost,
        ..ContenderResult::default()
    };
    let mut series = Vec::new();
    for (label, h) in [("e2e_log_append", &out.append), ("e2e_consumer_receive", &out.consume)] {
        let text = hgrm_text(h);
        std::fs::write(dir.join(format!("{label}.hgrm")), &text)?;
        r.e2e_ms.insert(label.to_string(), hist_pcts_ms(h));
        series.push((format!("{who} {label}"), Dist::whole(&Hgrm::parse(&text)).points()));
    }
    let lag_growth = (sched_b as i64 - sent_b as i64) - (sched_a as i64 - sent_a as i64);
    if lag_growth as f64 > (0.01 * rate * window).max(100.0) {
        r.problems.push(format!("the simulator fell {lag_growth} messages behind its schedule (backpressure)"));
    }
    if lost > 0 {
        r.problems.push(format!("{lost} records sent but not in Kafka after the drain"));
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
    let threads: Vec<String> = threads_b
        .iter()
        .map(|(k, v)| (k, 100.0 * (v - threads_a.get(k).copied().unwrap_or(0.0)) / window))
        .filter(|(_, v)| *v >= 0.05)
        .map(|(k, v)| format!("{k} {v:.1} %"))
        .collect();
    r.extra.insert("threads_cpu_pct_of_a_core".into(), threads.join(", "));
    r.sustained = r.problems.is_empty();
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&r)?)?;
    let _ = chart(&dir.join("latency.svg"), &format!("{who}: aggTrade {} msg/s into Kafka", fmt_rate(rate)), &series);
    Ok(r)
}

fn compare_table(rs: &[ContenderResult]) -> String {
    let mut s = String::new();
    let ours = rs.iter().find(|r| r.contender == "ours");
    let theirs = rs.iter().find(|r| r.contender == "cryptofeed");
    type Metric = (&'static str, fn(&ContenderResult) -> f64, bool);
    let rows: Vec<Metric> = vec![
        ("sustained msgs/s into Kafka", |r| r.kafka_rate, true),
        ("CPU µs per message", |r| r.cpu_us_per_msg, false),
        ("CPU % of a core", |r| r.cpu_util_pct, false),
        ("peak RSS (VmHWM) MiB", |r| r.vm_hwm_mib, false),
        ("e2e log-append p50 ms", |r| r.e2e_ms.get("e2e_log_append").map(|p| p.p50).unwrap_or(0.0), false),
        ("e2e log-append p99 ms", |r| r.e2e_ms.get("e2e_log_append").map(|p| p.p99).unwrap_or(0.0), false),
        ("e2e log-append p99.9 ms", |r| r.e2e_ms.get("e2e_log_append").map(|p| p.p999).unwrap_or(0.0), false),
        ("e2e log-append max ms", |r| r.e2e_ms.get("e2e_log_append").map(|p| p.max).unwrap_or(0.0), false),
        ("e2e consumer-receive p50 ms", |r| r.e2e_ms.get("e2e_consumer_receive").map(|p| p.p50).unwrap_or(0.0), false),
        ("e2e consumer-receive p99 ms", |r| r.e2e_ms.get("e2e_consumer_receive").map(|p| p.p99).unwrap_or(0.0), false),
        (
            "e2e consumer-receive p99.9 ms",
            |r| r.e2e_ms.get("e2e_consumer_receive").map(|p| p.p999).unwrap_or(0.0),
            false,
        ),
        ("e2e consumer-receive max ms", |r| r.e2e_ms.get("e2e_consumer_receive").map(|p| p.max).unwrap_or(0.0), false),
        ("records lost", |r| r.lost.max(0) as f64, false),
    ];
    let rate = rs.first().map(|r| r.rate).unwrap_or(0.0);
    let _ = writeln!(
        s,
        "Same feeder ({}, wss), {} aggTrade msg/s, same local Kafka, one topic each (run one after the other).\n",
        rs.first().map(|r| r.feeder.as_str()).unwrap_or("sim"),
        fmt_rate(rate)
    );
    let _ = writeln!(s, "| metric | marketflow-ingestor | cryptofeed | ours/theirs | better by |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for (label, f, higher_better) in rows {
        let o = ours.map(f);
        let t = theirs.map(f);
        let ratio = match (o, t) {
            (Some(o), Some(t)) if t > 0.0 => format!("{:.3}", o / t),
            _ => "-".into(),
        };
        let better = match (o, t) {
            (Some(o), Some(t)) if o > 0.0 && t > 0.0 => {
                let x = if higher_better { o / t } else { t / o };
                format!("{x:.1}x")
            }
            _ => "-".into(),
        };
        let show = |v: Option<f64>| {
            v.map(|v| if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.3}") }).unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(s, "| {label} | {} | {} | {ratio} | {better} |", show(o), show(t));
    }
    let _ = writeln!(
        s,
        "| no loss | {} | {} | | |",
        ours.map(|r| if r.sustained { "yes".into() } else { format!("NO: {}", r.problems.join("; ")) })
            .unwrap_or_else(|| "-".into()),
        theirs
            .map(|r| if r.sustained { "yes".into() } else { format!("NO: {}", r.problems.join("; ")) })
            .unwrap_or_else(|| "-".into())
    );
    s
}

fn mode_compare(args: &Args) -> Result<()> {
    let name =
        args.name.clone().unwrap_or_else(|| format!("compare-cryptofeed-{}", fmt_rate(args.rate).to_lowercase()));
    let root = args.out.join(&name);
    let contenders = split(&args.contenders);
    if args.max {
        // Highest rate each contender sustains into Kafka without loss.
        let mut lines = String::new();
        let mut all = Vec::new();
        for who in &contenders {
            let mut good: Option<f64> = None;
            let mut bad: Option<f64> = None;
            let mut rate = args.max_start;
            while rate <= args.max_ceiling {
                eprintln!("loadgen: {who} at {} msg/s", fmt_rate(rate));
                let r = run_contender(args, who, rate, &root.join(format!("{who}-{:08.0}", rate)), args.step_secs)?;
                eprintln!(
                    "loadgen:   {} msg/s into Kafka: {}",
                    fmt_rate(r.kafka_rate),
                    if r.sustained { "ok" } else { "LOSS" }
                );
                let ok = r.sustained;
                all.push(r);
                if ok {
                    good = Some(rate);
                    rate *= 2.0;
                } else {
                    bad = Some(rate);
                    break;
                }
            }
            if let Some(mut hi) = bad {
                let mut lo = good.unwrap_or(0.0);
                for _ in 0..args.max_refine {
                    let mid = ((lo + hi) / 2.0 / 100.0).round() * 100.0;
                    if mid <= lo || mid >= hi {
                        break;
                    }
                    let r = run_contender(args, who, mid, &root.join(format!("{who}-{:08.0}", mid)), args.step_secs)?;
                    eprintln!("loadgen:   {who} {} msg/s: {}", fmt_rate(mid), if r.sustained { "ok" } else { "LOSS" });
                    if r.sustained {
                        lo = mid;
                        good = Some(mid);
                    } else {
                        hi = mid;
                    }
                    all.push(r);
                }
            }
            let _ = writeln!(lines, "| {who} | {} |", fmt_rate(good.unwrap_or(0.0)));
        }
        let mut t = String::from("| contender | highest aggTrade rate into Kafka without loss (msg/s) |\n|---|---:|\n");
        t.push_str(&lines);
        t.push_str("\n| contender | rate | into Kafka/s | CPU µs/msg | VmHWM MiB | e2e append p99 ms | no loss |\n|---|---:|---:|---:|---:|---:|---|\n");
        for r in &all {
            let _ = writeln!(
                t,
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
                r.contender,
                fmt_rate(r.rate),
                fmt_rate(r.kafka_rate),
                r.cpu_us_per_msg,
                r.vm_hwm_mib,
                r.e2e_ms.get("e2e_log_append").map(|p| p.p99).unwrap_or(0.0),
                if r.sustained { "yes".into() } else { r.problems.join("; ") }
            );
        }
        println!("{t}");
        std::fs::create_dir_all(&root)?;
        std::fs::write(root.join("table.md"), &t)?;
        std::fs::write(root.join("summary.json"), serde_json::to_string_pretty(&all)?)?;
        return Ok(());
    }
    let mut rs = Vec::new();
    for who in &contenders {
        eprintln!("loadgen: {who}: aggTrade at {} msg/s into Kafka", fmt_rate(args.rate));
        rs.push(run_contender(args, who, args.rate, &root.join(who), args.secs)?);
    }
    let t = compare_table(&rs);
    println!("{t}");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("table.md"), &t)?;
    std::fs::write(root.join("summary.json"), serde_json::to_string_pretty(&rs)?)?;
    Ok(())
}

/// The noise floor of the event loop's core: a thread that only reads the clock sees a gap
/// whenever the core is taken away (interrupts, other tasks, hypervisor steal). Every frame in
/// flight during a gap waits that long, so the share of time lost bounds the latency percentiles
/// any program can reach on this core.
fn mode_noise(secs: f64) -> Result<()> {
    let allowed = START_CPUS.get().cloned().unwrap_or_default();
    let core = *allowed.last().ok_or_else(|| anyhow!("no allowed core"))?;
    let h = std::thread::spawn(move || {
        marketflow_ingestor::pinning::pin_current(core);
        let bounds_us = [1u64, 5, 10, 20, 50, 100, 1000, u64::MAX];
        let mut counts = [0u64; 7];
        let mut lost = [Duration::ZERO; 7];
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        let mut prev = start;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let gap = now - prev;
            prev = now;
            let us = gap.as_micros() as u64;
            if us >= 1 {
                let i = bounds_us.windows(2).position(|w| us >= w[0] && us < w[1]).unwrap_or(6);
                counts[i] += 1;
                lost[i] += gap;
            }
        }
        (core, counts, lost, start.elapsed())
    });
    let (core, counts, lost, took) = h.join().map_err(|_| anyhow!("noise thread panicked"))?;
    let labels = ["1-5 µs", "5-10 µs", "10-20 µs", "20-50 µs", "50-100 µs", "0.1-1 ms", "≥ 1 ms"];
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / took.as_secs_f64();
    println!("| core | gap | count | per second | time lost |\n|---|---|---:|---:|---:|");
    for ((l, c), d) in labels.iter().zip(counts).zip(lost) {
        println!("| {core} | {l} | {c} | {:.0} | {:.3} % |", c as f64 / took.as_secs_f64(), pct(d));
    }
    println!(
        "\ncore {core}: {:.2} % of {:.1} s lost in gaps of 1 µs or more, {:.2} % in gaps of 10 µs or more",
        pct(lost.iter().sum()),
        took.as_secs_f64(),
        pct(lost[2..].iter().sum()),
    );
    Ok(())
}

/// The CPU set this process started with, before the feeder pinned it; child processes get it back.
static START_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

/// Pins this thread, and so every feeder thread spawned from it, to `--feeder-core`.
fn pin_feeder(spec: &str) -> Result<Option<usize>> {
    let allowed = marketflow_ingestor::pinning::allowed_cores();
    let _ = START_CPUS.set(allowed.clone());
    let core = match spec {
        "none" => None,
        "auto" => (allowed.len() >= 2).then(|| allowed[0]),
        n => Some(n.parse::<usize>().map_err(|_| anyhow!("--feeder-core: `{n}` is not a core, auto or none"))?),
    };
    if let Some(c) = core {
        if !allowed.contains(&c) || !marketflow_ingestor::pinning::pin_current(c) {
            bail!("--feeder-core {c}: not in the allowed CPU set {allowed:?}");
        }
    }
    Ok(core)
}

/// Child processes (the ingester, cryptofeed) start with the CPU set this process started with,
/// not the feeder's core.
fn unpinned(cmd: &mut Command) {
    let cpus = START_CPUS.get().cloned().unwrap_or_default();
    if cpus.is_empty() {
        return;
    }
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe libc
    // functions on a set built on its own stack; `cpus` was allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in &cpus {
                libc::CPU_SET(c, &mut set);
            }
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match pin_feeder(&args.feeder_core) {
        Ok(Some(c)) => eprintln!("loadgen: feeder on core {c}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    }
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, interrupted_flag().clone());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let r = if let Some(secs) = args.noise {
        mode_noise(secs)
    } else if args.compare_cryptofeed {
        mode_compare(&args)
    } else if let Some(min) = args.soak {
        mode_soak(&args, min)
    } else if args.max {
        mode_max(&args)
    } else {
        mode_fixed(&args)
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_round_trip_and_quantiles() {
        let mut h = new_hist();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let first = Hgrm::parse(&hgrm_text(&h));
        let p = Dist::whole(&first);
        assert_eq!(p.count, 1000);
        assert!((p.max - 1000.0).abs() < 1.0);
        assert!((p.quantile(0.5) - 500.0).abs() <= 5.0, "{}", p.quantile(0.5));
        assert!(p.quantile(0.99) >= 990.0 && p.quantile(0.99) <= 1000.0);
        // A window: 1000 more values around 5000 recorded after the first snapshot.
        for v in 4501..=5500u64 {
            h.record(v).unwrap();
        }
        let w = Dist::window(&first, &Hgrm::parse(&hgrm_text(&h)));
        assert_eq!(w.count, 1000);
        assert!((w.quantile(0.5) - 5000.0).abs() <= 60.0, "{}", w.quantile(0.5));
        assert!(w.quantile(0.01) >= 4500.0, "{}", w.quantile(0.01));
        assert!((w.max - 5500.0).abs() <= 6.0);
    }

    #[test]
    fn templates_are_valid_frames_and_ids_patch() {
        let t = Template::new("btcusdt@aggTrade", 1).unwrap();
        let mut b = t.bytes.clone();
        for &(off, w, f) in &t.fields {
            let v = match f {
                Field::EventTime => 1_700_000_000_123,
                Field::Id { mult, add } => t.base + mult * 7 + add,
            };
            put_digits(&mut b[off..off + w], v);
        }
        assert_eq!(b[0], 0x81);
        let payload = &b[4..];
        assert_eq!(((b[2] as usize) << 8) | b[3] as usize, payload.len());
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(v["data"]["a"], 2_000_000_007i64);
        assert_eq!(v["data"]["f"], 2_000_000_014i64);
        assert_eq!(v["data"]["l"], 2_000_000_015i64);
        assert_eq!(v["data"]["E"], 1_700_000_000_123i64);
    }

    #[test]
    fn event_times_are_found_in_both_payloads() {
        assert_eq!(
            event_ms(br#"{"type":"trade","event_time_ms":1700000000123,"x":1}"#, TimeField::EventTimeMs),
            Some(1_700_000_000_123)
        );
        let cf = br#"{"exchange":"BINANCE","timestamp":1700000000.123,"receipt_timestamp":1700000000.2}"#;
        assert_eq!(event_ms(cf, TimeField::TimestampSecs), Some(1_700_000_000_123));
    }

    #[test]
    fn prometheus_text_sums() {
        let p = Prom::parse("# HELP x\nfoo_total{a=\"1\"} 2\nfoo_total{a=\"2\"} 3\nbar 1e3\n");
        assert_eq!(p.sum("foo_total"), 5.0);
        assert_eq!(p.sum("bar"), 1000.0);
    }
}
