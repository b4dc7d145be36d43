//! `--table`: issue 14's table in one command. Every rate x arrival, each through every
//! contender (ours into Kafka, ours with SINK=null, cryptofeed into Kafka), one after the other
//! on a fresh simulator: offered and delivered rates, CPU per delivered message in total and per
//! thread group, source -> broker-append percentiles; then, with `--profile-rate`, one more run
//! of ours under `perf record` summarised per thread and function.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, Context, Result};
use binance_sim::Arrival;

use crate::args::{split, Args};
use crate::cell::{run_cell, Cell, ContenderResult};
use crate::host::Host;
use crate::procfs::THREAD_GROUPS;
use crate::report::{per_wakeup, wake_rows, WAKE_COLUMNS, WAKE_NOTE, WAKE_RULE};
use crate::units::fmt_rate;

/// The thread groups the side-by-side table names wake-ups of (the rest are in the detail).
const WAKE_GROUPS: [&str; 3] = ["event loop", "producer", "librdkafka"];

/// Ours: the process's figure, then its main groups', `all (event loop / producer / librdkafka)`.
fn ours_wake(r: Option<&ContenderResult>, f: fn(&crate::sched::Wake) -> String) -> String {
    match r {
        Some(r) if r.wake.wakeups_per_s > 0.0 => {
            let g: Vec<String> =
                WAKE_GROUPS.iter().map(|g| r.wake_by_group.get(*g).map(f).unwrap_or_else(|| "-".into())).collect();
            format!("{} ({})", f(&r.wake), g.join(" / "))
        }
        _ => "-".into(),
    }
}

/// The contender and sink a `--contenders` item names: `ours`, `ours-null`, `cryptofeed`.
fn contender(item: &str) -> (String, String) {
    match item.strip_suffix("-null") {
        Some(who) => (who.to_string(), "null".to_string()),
        None => (item.to_string(), "kafka".to_string()),
    }
}

fn pct_triple(r: &ContenderResult) -> String {
    match r.e2e_ms.get("e2e_log_append") {
        Some(p) if p.count > 0 => format!("{} / {} / {}", ms(p.p50), ms(p.p99), ms(p.p999)),
        _ => "-".into(),
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn verdict(r: &ContenderResult) -> String {
    if r.sustained {
        "yes".into()
    } else {
        format!(
            "NOT SUSTAINED: delivered {}/s of {}/s; {}",
            fmt_rate(r.kafka_rate),
            fmt_rate(r.rate),
            r.problems.join("; ")
        )
    }
}

/// The markdown: the issue's side-by-side table, then every cell in detail.
pub fn render(rs: &[ContenderResult], host: &Host, cmd: &str, secs: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Simulator (wss, aggTrade, 3 symbols) -> contender -> local Kafka (one topic each, acks=all), \
         one contender at a time, {secs:.0} s measured per cell after the warm-up. Latency: Kafka \
         log-append time minus the event time in the record (both milliseconds). CPU: utime+stime of \
         the process (total) and time on a CPU per thread (/proc/<pid>/task/*/schedstat) over the \
         window, per message delivered in the window.\n"
    );
    let _ = writeln!(s, "Command: `{cmd}`\n");
    let _ = writeln!(s, "{}\n", host.line());
    let _ = writeln!(
        s,
        "| offered load | our CPU µs per delivered msg (Kafka / null sink) | cryptofeed's | ours better by | \
         source -> broker append p50 / p99 / p99.9 ms, ours vs cryptofeed | wake-ups/s ours: process \
         (event loop / producer / librdkafka) | cryptofeed's | µs of CPU per wake-up, ours (event loop / \
         producer / librdkafka) vs cryptofeed |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---|---|---:|---|");
    let mut keys: Vec<(f64, String)> = Vec::new();
    for r in rs {
        if !keys.iter().any(|(rate, a)| *rate == r.rate && *a == r.arrival) {
            keys.push((r.rate, r.arrival.clone()));
        }
    }
    let cpu = |r: Option<&ContenderResult>| match r {
        Some(r) if r.kafka_rate > 0.0 => {
            let v = format!("{:.1}", r.cpu_us_per_msg);
            if r.sustained {
                v
            } else {
                format!("{v} (not sustained: {}/s)", fmt_rate(r.kafka_rate))
            }
        }
        Some(_) => "nothing delivered".into(),
        None => "-".into(),
    };
    for (rate, arrival) in &keys {
        let find = |who: &str, sink: &str| {
            rs.iter().find(|r| r.rate == *rate && r.arrival == *arrival && r.contender == who && r.sink == sink)
        };
        let (o, n, t) = (find("ours", "kafka"), find("ours", "null"), find("cryptofeed", "kafka"));
        let better = match (o, t) {
            (Some(o), Some(t)) if o.cpu_us_per_msg > 0.0 && t.kafka_rate > 0.0 => {
                format!("{:.1}x", t.cpu_us_per_msg / o.cpu_us_per_msg)
            }
            _ => "-".into(),
        };
        let rate_of = |w: &crate::sched::Wake| fmt_rate(w.wakeups_per_s);
        let theirs = t.filter(|t| t.wake.wakeups_per_s > 0.0);
        let _ = writeln!(
            s,
            "| {}/s {arrival} | {} / {} | {} | {better} | {} vs {} | {} | {} | {} vs {} |",
            fmt_rate(*rate),
            cpu(o),
            cpu(n),
            cpu(t),
            o.map(pct_triple).unwrap_or_else(|| "-".into()),
            t.map(pct_triple).unwrap_or_else(|| "-".into()),
            ours_wake(o, rate_of),
            theirs.map(|t| rate_of(&t.wake)).unwrap_or_else(|| "-".into()),
            ours_wake(o, per_wakeup),
            theirs.map(|t| per_wakeup(&t.wake)).unwrap_or_else(|| "-".into()),
        );
    }
    let _ = writeln!(
        s,
        "\nEvery cell (CPU µs per delivered message; thread groups of ours; cryptofeed: the whole process):\n"
    );
    let mut head =
        String::from("| rate | arrival | contender | sink | offered/s | msgs per write | delivered/s | CPU µs/msg |");
    let mut rule = String::from("|---|---|---|---|---:|---:|---:|---:|");
    for g in THREAD_GROUPS {
        let _ = write!(head, " {g} |");
        rule.push_str("---:|");
    }
    head.push_str(" append p50 / p99 / p99.9 ms | CPU % of a core | sustained |");
    rule.push_str("---|---:|---|");
    let _ = writeln!(s, "{head}\n{rule}");
    for r in rs {
        let _ = write!(
            s,
            "| {} | {} | {} | {} | {} | {:.1} | {} | {:.2} |",
            fmt_rate(r.rate),
            r.arrival,
            r.contender,
            r.sink,
            fmt_rate(r.feeder_rate),
            r.msgs_per_write,
            fmt_rate(r.kafka_rate),
            r.cpu_us_per_msg
        );
        for g in THREAD_GROUPS {
            match (r.contender.as_str(), r.cpu_us_per_msg_by_group.get(g)) {
                ("ours", Some(v)) => {
                    let _ = write!(s, " {v:.2} |");
                }
                _ => s.push_str(" - |"),
            }
        }
        let _ = writeln!(s, " {} | {:.1} | {} |", pct_triple(r), r.cpu_util_pct, verdict(r));
    }
    let _ = writeln!(
        s,
        "\nWake-ups per cell, ours by thread group, cryptofeed by thread. {WAKE_NOTE} Per msg: per \
         message delivered.\n"
    );
    let _ = writeln!(s, "| rate | arrival | contender | sink |{WAKE_COLUMNS}\n|---|---|---|---|{WAKE_RULE}");
    for r in rs {
        let lead = format!("{} | {} | {} | {}", fmt_rate(r.rate), r.arrival, r.contender, r.sink);
        wake_rows(&mut s, &lead, &r.wake, &r.wake_by_group);
    }
    let _ = writeln!(s, "\nLoad average per cell (1/5/15 min, before -> after):\n");
    for r in rs {
        let _ = writeln!(
            s,
            "- {} {} {} {}: {} -> {}{}",
            fmt_rate(r.rate),
            r.arrival,
            r.contender,
            r.sink,
            r.host.loadavg_before,
            r.host.loadavg_after,
            match r.extra.get("threads_cpu_pct_of_a_core") {
                Some(t) if r.contender != "ours" => format!(" (threads, % of a core: {t})"),
                _ => String::new(),
            }
        );
    }
    s
}

/// `perf report` of `data`: self time per thread and function, the top `limit` percent.
fn perf_summary(data: &Path) -> Result<String> {
    let out = Command::new("perf")
        .arg("report")
        .arg("-i")
        .arg(data)
        .args(["--no-children", "--sort", "comm,dso,sym", "--stdio", "--percent-limit", "0.3", "-g", "none"])
        .output()
        .context("perf report")?;
    if !out.status.success() {
        return Err(anyhow!("perf report: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // Only the rows: perf's comment header names the file and the machine.
    Ok(text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect::<Vec<_>>().join("\n"))
}

/// Per-thread totals of a perf profile, from `perf report --sort comm`.
fn perf_threads(data: &Path) -> Result<String> {
    perf_rows(data, &["--no-children", "--sort", "comm", "--stdio", "-g", "none"])
}

/// Time in each function and below it (call graphs), for one thread: where its wake-ups go.
fn perf_inclusive(data: &Path, comm: &str) -> Result<String> {
    perf_rows(data, &["--children", "--comm", comm, "--sort", "sym", "--stdio", "-g", "none", "--percent-limit", "3"])
}

fn perf_rows(data: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("perf").arg("report").arg("-i").arg(data).args(args).output().context("perf report")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Frames perf could not name (JIT-less raw addresses in librdkafka's stacks) say nothing.
    let named = |l: &&str| !l.contains("] 0x") && !l.contains("] 0000");
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter(named)
        .collect::<Vec<_>>()
        .join("\n"))
}

pub fn mode_table(args: &Args) -> Result<()> {
    let rates: Vec<f64> = split(&args.table_rates)
        .iter()
        .map(|r| r.parse::<f64>().map_err(|e| anyhow!("--table-rates {r}: {e}")))
        .collect::<Result<_>>()?;
    let arrivals: Vec<Arrival> = split(&args.table_arrivals)
        .iter()
        .map(|a| a.parse::<Arrival>().map_err(|e| anyhow!("--table-arrivals: {e}")))
        .collect::<Result<_>>()?;
    let contenders: Vec<(String, String)> = split(&args.contenders).iter().map(|c| contender(c)).collect();
    let name = args.name.clone().unwrap_or_else(|| "issue14-table".into());
    let root = args.out.join(&name);
    std::fs::create_dir_all(&root)?;
    let cmd = std::env::args().collect::<Vec<_>>().join(" ");
    let host = Host::begin(&args.host_note);
    let mut rs: Vec<ContenderResult> = Vec::new();
    let write = |rs: &[ContenderResult], host: &Host| -> Result<()> {
        std::fs::write(root.join("table.md"), render(rs, host, &cmd, args.secs))?;
        std::fs::write(root.join("summary.json"), serde_json::to_string_pretty(rs)?)?;
        Ok(())
    };
    for &rate in &rates {
        for &arrival in &arrivals {
            for (who, sink) in &contenders {
                let cell = Cell {
                    who: who.clone(),
                    sink: sink.clone(),
                    rate,
                    arrival: Some(arrival),
                    secs: args.secs,
                    perf: None,
                };
                let dir =
                    root.join(format!("{:06.0}-{}-{}", rate, arrival.to_string().replace(':', "x"), cell.label()));
                eprintln!("loadgen: {} at {}/s {arrival}", cell.label(), fmt_rate(rate));
                let r = run_cell(args, &cell, &dir).unwrap_or_else(|e| {
                    // A contender that could not run at all still gets its row, saying why.
                    ContenderResult {
                        contender: who.clone(),
                        sink: sink.clone(),
                        arrival: arrival.to_string(),
                        rate,
                        problems: vec![format!("did not run: {e:#}")],
                        host: Host::begin(&args.host_note).end(),
                        ..ContenderResult::default()
                    }
                });
                eprintln!(
                    "loadgen:   delivered {}/s, {:.2} CPU µs/msg{}",
                    fmt_rate(r.kafka_rate),
                    r.cpu_us_per_msg,
                    if r.sustained { String::new() } else { format!(" ({})", r.problems.join("; ")) }
                );
                rs.push(r);
                write(&rs, &host.clone().end())?;
            }
        }
    }
    let host = host.end();
    write(&rs, &host)?;
    let table = render(&rs, &host, &cmd, args.secs);
    println!("{table}");
    if let Some(rate) = args.profile_rate {
        let arrival = arrivals.first().copied();
        let data = root.join("profile.perf.data");
        let cell =
            Cell { who: "ours".into(), sink: "kafka".into(), rate, arrival, secs: args.secs, perf: Some(data.clone()) };
        eprintln!("loadgen: profiling ours at {}/s under perf record", fmt_rate(rate));
        let r = run_cell(args, &cell, &root.join("profile"))?;
        let mut p = String::new();
        let _ = writeln!(
            p,
            "perf record -e cpu-clock -g -F 999 -p <ingester> over the {:.0} s window: ours into Kafka at {}/s {} \
             (delivered {}/s, {:.2} CPU µs/msg; perf's own sampling included).\n{}\n",
            r.window_s,
            fmt_rate(rate),
            r.arrival,
            fmt_rate(r.kafka_rate),
            r.cpu_us_per_msg,
            r.host.line()
        );
        let _ = writeln!(
            p,
            "On a VM, cpu-clock samples taken while interrupts are off land where they are turned back on: \
             `finish_task_switch` and `_raw_spin_unlock_irqrestore` stand for the context switches and \
             wake-ups around them.\n"
        );
        let _ = writeln!(p, "## Samples per thread\n\n```\n{}\n```\n", perf_threads(&data)?);
        let _ = writeln!(
            p,
            "## Self time per thread, library and function (>= 0.3 % of samples)\n\n```\n{}\n```",
            perf_summary(&data)?
        );
        for comm in ["event-loop", "producer", "rdk:broker1"] {
            let _ = writeln!(
                p,
                "\n## {comm}: time in each function and what it calls (% of all samples, >= 3 %)\n\n```\n{}\n```",
                perf_inclusive(&data, comm)?
            );
        }
        std::fs::write(root.join(format!("profile-{}.txt", fmt_rate(rate).to_lowercase())), p)?;
        // The raw profile is megabytes and names this machine's paths: the summary is kept.
        let _ = std::fs::remove_file(&data);
        let _ = std::fs::remove_file(data.with_extension("data.old"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hgrm::Pcts;
    use crate::sched::Wake;

    fn wake(per_s: f64, us: f64) -> Wake {
        Wake { wakeups_per_s: per_s, cpu_us_per_wakeup: us, cpu_pct: per_s * us / 1e4, ..Wake::default() }
    }

    fn cell(who: &str, sink: &str, rate: f64, cpu: f64, sustained: bool) -> ContenderResult {
        let mut r = ContenderResult {
            contender: who.into(),
            sink: sink.into(),
            arrival: "even".into(),
            rate,
            kafka_rate: if sustained { rate } else { rate / 4.0 },
            cpu_us_per_msg: cpu,
            sustained,
            ..ContenderResult::default()
        };
        if !sustained {
            r.problems.push("lost".into());
        }
        if sink == "kafka" {
            let p = Pcts { p50: 1.0, p90: 2.0, p99: 16.0, p999: 141.0, max: 200.0, count: 10 };
            r.e2e_ms.insert("e2e_log_append".into(), p);
        }
        r.cpu_us_per_msg_by_group.insert("event loop".into(), cpu / 2.0);
        r
    }

    #[test]
    fn contenders_name_their_sink() {
        assert_eq!(contender("ours"), ("ours".into(), "kafka".into()));
        assert_eq!(contender("ours-null"), ("ours".into(), "null".into()));
        assert_eq!(contender("cryptofeed"), ("cryptofeed".into(), "kafka".into()));
    }

    /// The side-by-side row holds both contenders, the ratio, both percentile triples; a
    /// contender that could not keep up says so with what it delivered, never a blank.
    #[test]
    fn the_table_puts_both_side_by_side_and_names_what_was_not_sustained() {
        let rs = vec![
            cell("ours", "kafka", 16_000.0, 3.0, true),
            cell("cryptofeed", "kafka", 16_000.0, 45.0, true),
            cell("ours", "null", 16_000.0, 2.0, true),
            cell("ours", "kafka", 100_000.0, 2.5, true),
            cell("cryptofeed", "kafka", 100_000.0, 40.0, false),
        ];
        let t = render(&rs, &Host::default(), "loadgen --table", 10.0);
        assert!(
            t.contains("| 16.0k/s even | 3.0 / 2.0 | 45.0 | 15.0x | 1.00 / 16.0 / 141 vs 1.00 / 16.0 / 141 |"),
            "{t}"
        );
        assert!(t.contains("40.0 (not sustained: 25.0k/s)"), "{t}");
        assert!(t.contains("NOT SUSTAINED: delivered 25.0k/s of 100.0k/s; lost"), "{t}");
        // Thread groups: ours has them, cryptofeed's are dashes.
        assert!(t.contains("| 16.0k | even | ours | kafka |"), "{t}");
        let cf_row = t.lines().find(|l| l.starts_with("| 16.0k | even | cryptofeed |")).unwrap();
        assert_eq!(cf_row.matches(" - |").count(), THREAD_GROUPS.len(), "{cf_row}");
    }

    /// The wake-up columns: ours' process and its three main groups beside cryptofeed's process,
    /// and every group (or thread) that ran in the detail, the process first, idle ones left out.
    #[test]
    fn wake_ups_stand_beside_the_cpu_and_every_group_is_detailed() {
        let mut o = cell("ours", "kafka", 16_000.0, 20.0, true);
        o.wake = wake(21_000.0, 15.2);
        for (g, n, us) in [("event loop", 10_000.0, 9.8), ("producer", 5_000.0, 12.5), ("librdkafka", 6_000.0, 18.3)] {
            o.wake_by_group.insert(g.into(), wake(n, us));
        }
        o.wake_by_group.insert("backfill".into(), Wake::default());
        o.wake_by_group.insert("metrics".into(), wake(20.0, 40.0));
        let mut t = cell("cryptofeed", "kafka", 16_000.0, 36.0, true);
        t.wake = wake(310.0, 1_858.1);
        t.wake_by_group.insert("python3".into(), wake(300.0, 1_900.0));
        t.wake_by_group.insert("stats".into(), wake(10.0, 5.0));
        let n = cell("ours", "null", 16_000.0, 9.0, true);
        let md = render(&[o, t, n], &Host::default(), "loadgen --table", 10.0);
        assert!(md.contains("| 21.0k (10.0k / 5.0k / 6.0k) | 310 | 15.2 (9.8 / 12.5 / 18.3) vs 1858.1 |"), "{md}");
        let detail: Vec<&str> = md.lines().filter(|l| l.starts_with("| 16.0k | even |")).skip(3).collect();
        let names: Vec<&str> = detail.iter().map(|l| l.split(" | ").nth(4).unwrap()).collect();
        assert_eq!(
            names,
            ["process", "event loop", "producer", "librdkafka", "metrics", "process", "python3", "stats", "process"],
            "{md}"
        );
        assert!(detail[1].contains("| event loop | 10.0k | 0 | 0.00 | 9.8 | 9.8 |"), "{}", detail[1]);
        assert!(detail[8].contains("| process | 0 | 0 | 0.00 | - |"), "no wake-ups, no µs per wake-up: {}", detail[8]);
    }
}
