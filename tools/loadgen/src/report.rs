//! The markdown tables of runs, printed and saved as `table.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::outcome::RunResult;
use crate::procfs::THREAD_GROUPS;
use crate::sched::Wake;
use crate::units::{fmt_rate, fmt_us};

/// What the wake-up tables' columns mean, said once above each.
pub const WAKE_NOTE: &str = "Wake-ups: voluntary context switches (a thread went to sleep and was \
    woken), preemptions: involuntary ones, per second of the window; CPU µs per wake-up: the \
    group's time on a CPU over its wake-ups; run-queue wait: the mean wait for a CPU each time a \
    thread was put on one (/proc/<pid>/task/*/schedstat and status; the process: the sum over its \
    threads, those that exited in the window not counted).";

/// The wake-up columns, after the caller's own.
pub const WAKE_COLUMNS: &str = " thread group | wake-ups/s | preemptions/s | wake-ups per msg | \
    CPU µs per wake-up | CPU % of a core | run-queue wait µs |";
pub const WAKE_RULE: &str = "---|---:|---:|---:|---:|---:|---:|";

/// `µs` of CPU per wake-up, `-` without wake-ups.
pub fn per_wakeup(w: &Wake) -> String {
    if w.wakeups_per_s > 0.0 {
        format!("{:.1}", w.cpu_us_per_wakeup)
    } else {
        "-".into()
    }
}

/// Rows of a wake-up table: the process, then each group that ran (the ingester's in
/// THREAD_GROUPS order, other names after), each row led by `lead` (the caller's columns).
pub fn wake_rows(s: &mut String, lead: &str, process: &Wake, groups: &BTreeMap<String, Wake>) {
    let rank = |g: &str| THREAD_GROUPS.iter().position(|x| *x == g).unwrap_or(THREAD_GROUPS.len());
    let mut gs: Vec<(&String, &Wake)> = groups.iter().collect();
    gs.sort_by_key(|(g, _)| rank(g.as_str()));
    let ran = |w: &Wake| w.wakeups_per_s > 0.0 || w.cpu_pct >= 0.05;
    let rows = gs.into_iter().filter(|&(_, w)| ran(w)).map(|(g, w)| (g.as_str(), w));
    for (g, w) in std::iter::once(("process", process)).chain(rows) {
        let _ = writeln!(
            s,
            "| {lead} | {g} | {} | {} | {:.2} | {} | {:.1} | {:.1} |",
            fmt_rate(w.wakeups_per_s),
            fmt_rate(w.preemptions_per_s),
            w.wakeups_per_msg,
            per_wakeup(w),
            w.cpu_pct,
            w.run_queue_wait_us
        );
    }
}

pub fn table(results: &[RunResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| run | feeder, transport | sink | TLS | target/s | feeder sent/s | sustained/s | no loss | CPU ns/msg (loop) | CPU % | VmHWM MiB | bottleneck |"
    );
    let _ = writeln!(s, "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---|");
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {}, {} | {} | {} | {} | {} | {} | {} | {:.0} ({:.0}) | {:.0} | {:.1} | {} |",
            r.name,
            r.feeder,
            r.transport,
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
    let _ = writeln!(s, "\n{WAKE_NOTE} Per msg: per message parsed.\n");
    let _ = writeln!(s, "| run |{WAKE_COLUMNS}\n|---|{WAKE_RULE}");
    for r in results {
        wake_rows(&mut s, &r.name, &r.wake, &r.wake_by_group);
    }
    s
}

pub fn print_and_save(dir: &Path, results: &[RunResult], extra: Option<&str>) -> Result<()> {
    let mut t = table(results);
    // Every step's host line: on a shared machine the load changes between steps.
    t.push('\n');
    for r in results {
        let _ = writeln!(t, "{}: {}", r.name, r.host.line());
    }
    if let Some(e) = extra {
        t.push('\n');
        t.push_str(e);
    }
    println!("{t}");
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("table.md"), &t)?;
    Ok(())
}
