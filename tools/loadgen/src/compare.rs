//! `--compare-cryptofeed`: the same feed through the ingester and through cryptofeed's Binance
//! feed with its Kafka backend, both timed by the same consumer (Kafka log-append time, and
//! consumer receive time, minus the exchange event time in each record).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::args::{split, Args};
use crate::cell::{run_cell, Cell, ContenderResult};
use crate::search::{Phase, RateSearch};
use crate::units::fmt_rate;

/// One contender through Kafka at `rate`, with `--arrival`.
fn run_contender(args: &Args, who: &str, rate: f64, dir: &Path, secs: f64) -> Result<ContenderResult> {
    let cell = Cell { who: who.to_string(), sink: "kafka".into(), rate, arrival: args.arrival, secs, perf: None };
    run_cell(args, &cell, dir)
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
        ("wake-ups/s, all threads (voluntary context switches)", |r| r.wake.wakeups_per_s, false),
        ("wake-ups per message", |r| r.wake.wakeups_per_msg, false),
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
