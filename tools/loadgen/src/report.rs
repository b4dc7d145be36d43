//! The markdown tables of runs, printed and saved as `table.md`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::outcome::RunResult;
use crate::units::{fmt_rate, fmt_us};

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
