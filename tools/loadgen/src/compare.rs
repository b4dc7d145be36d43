//! `--compare-cryptofeed`: the same feed through the ingester and through cryptofeed's Binance
//! feed with its Kafka backend, both timed by the same consumer (Kafka log-append time, and
//! consumer receive time, minus the exchange event time in each record).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use binance_sim::{self as sim, SimConfig};
use marketflow_ingestor::clock;
use serde::Serialize;

use crate::args::{split, Args};
use crate::chart::chart;
use crate::child::{nap, ChildGuard};
use crate::cpuset::unpinned;
use crate::feeder::Feeder;
use crate::hgrm::{hgrm_text, hist_pcts_ms, Dist, Hgrm, Pcts};
use crate::host::Host;
use crate::ingester::{ingester_path, spawn_ingester, wait_ready, IngesterSpec};
use crate::kafka::{create_topic, E2eConsumer, TimeField};
use crate::procfs::{mib, proc_cpu_secs, proc_status_kib, thread_cpu};
use crate::search::{Phase, RateSearch};
use crate::units::fmt_rate;

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
    host: Host,
}

fn run_contender(args: &Args, who: &str, rate: f64, dir: &Path, secs: f64) -> Result<ContenderResult> {
    std::fs::create_dir_all(dir)?;
    let host = Host::begin(&args.host_note);
    let symbols = split(&args.symbols);
    let streams = vec!["aggTrade".to_string()];
    let duration = Some(Duration::from_secs_f64(args.warmup + secs + 30.0));
    // wss for both: cryptofeed refuses ws:// addresses (and Binance is wss anyway).
    let feeder = Feeder::start(&args.feeder, rate, &symbols, &streams, duration, true, false)?;
    // The replay feeder has no REST side: a simulator serves cryptofeed's exchangeInfo.
    let rest_sim = match &feeder {
        Feeder::Replay { .. } => {
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
        host: host.end(),
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
    // The ratio means something only if both ran on the same, equally loaded machine.
    let _ = writeln!(s);
    for r in rs {
        let _ = writeln!(s, "{}: {}", r.contender, r.host.line());
    }
    s
}

pub fn mode_compare(args: &Args) -> Result<()> {
    let name =
        args.name.clone().unwrap_or_else(|| format!("compare-cryptofeed-{}", fmt_rate(args.rate).to_lowercase()));
    let root = args.out.join(&name);
    let contenders = split(&args.contenders);
    if args.max {
        // Highest rate each contender sustains into Kafka without loss.
        let mut lines = String::new();
        let mut all = Vec::new();
        // cryptofeed's ceiling is tens of thousands: bisect to 100 msg/s.
        let search = RateSearch::from_args(args, 100.0);
        for who in &contenders {
            let good = search.run(|rate, phase| {
                if phase == Phase::Doubling {
                    eprintln!("loadgen: {who} at {} msg/s", fmt_rate(rate));
                }
                let r = run_contender(args, who, rate, &root.join(format!("{who}-{:08.0}", rate)), args.step_secs)?;
                let verdict = if r.sustained { "ok" } else { "LOSS" };
                match phase {
                    Phase::Doubling => eprintln!("loadgen:   {} msg/s into Kafka: {verdict}", fmt_rate(r.kafka_rate)),
                    Phase::Bisecting => eprintln!("loadgen:   {who} {} msg/s: {verdict}", fmt_rate(rate)),
                }
                let ok = r.sustained;
                all.push(r);
                Ok(ok)
            })?;
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
        t.push('\n');
        for r in &all {
            let _ = writeln!(t, "{} {}: {}", r.contender, fmt_rate(r.rate), r.host.line());
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
