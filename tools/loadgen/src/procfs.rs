//! `/proc` readings: CPU time per process and per thread, memory, machine load.

use std::collections::BTreeMap;

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
pub fn proc_cpu_secs(pid: u32) -> Option<f64> {
    stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A `kB` line of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), in KiB.
pub fn proc_status_kib(pid: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process's thread, seconds, from its `stat` line.
fn stat_cpu_secs(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / clk_tck())
}

/// CPU seconds per thread name, threads of one name summed: from `schedstat` (time on a CPU,
/// nanoseconds: a 10 s window at 1k msg/s gives 10,000 messages, and `stat`'s 10 ms ticks would
/// be a microsecond per message per thread), or `stat`'s utime + stime where the kernel has no
/// schedstat.
pub fn thread_cpu(pid: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for e in dir.flatten() {
        let p = e.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default().trim().to_string();
        let secs = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
            .map(|ns| ns / 1e9)
            .or_else(|| stat_cpu_secs(&std::fs::read_to_string(p.join("stat")).ok()?))
            .unwrap_or(0.0);
        // librdkafka names its threads rdk:main, rdk:broker1, ...: one bucket is enough.
        let name = if comm.starts_with("rdk:") { "librdkafka".to_string() } else { comm };
        *out.entry(name).or_insert(0.0) += secs;
    }
    out
}

/// The ingester's thread groups, in table order.
pub const THREAD_GROUPS: [&str; 6] = ["event loop", "producer", "librdkafka", "metrics", "backfill", "other"];

/// Which group a thread (as [`thread_cpu`] names it) belongs to. A second market's threads are
/// named `<market>-<thread>` (lane.rs), the metrics server's workers inherit `metrics`.
pub fn thread_group(name: &str) -> &'static str {
    if name.ends_with("event-loop") {
        "event loop"
    } else if name.ends_with("producer") {
        "producer"
    } else if name == "librdkafka" || name.starts_with("rdk:") {
        "librdkafka"
    } else if name == "metrics" {
        "metrics"
    } else if name.ends_with("backfill") {
        "backfill"
    } else {
        "other"
    }
}

/// CPU seconds per group between two [`thread_cpu`] readings (a thread gone by the second
/// reading counts nothing; one new in it counts from zero).
pub fn group_delta(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = THREAD_GROUPS.iter().map(|g| (g.to_string(), 0.0)).collect();
    for (name, v) in b {
        let d = (v - a.get(name).copied().unwrap_or(0.0)).max(0.0);
        *out.entry(thread_group(name).to_string()).or_insert(0.0) += d;
    }
    out
}

/// (busy, total) jiffies of the whole machine.
pub fn machine_cpu() -> (f64, f64) {
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

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// KiB (as `/proc` reports them) to MiB; an unreadable value counts as 0.
pub fn mib(kib: Option<u64>) -> f64 {
    kib.unwrap_or(0) as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_fall_into_their_groups() {
        for (name, group) in [
            ("event-loop", "event loop"),
            ("usdm-event-loop", "event loop"),
            ("producer", "producer"),
            ("usdm-producer", "producer"),
            ("librdkafka", "librdkafka"),
            ("rdk:broker1", "librdkafka"),
            ("metrics", "metrics"),
            ("backfill", "backfill"),
            ("signals", "other"),
            ("marketflow-inge", "other"),
        ] {
            assert_eq!(thread_group(name), group, "{name}");
        }
        let a: BTreeMap<String, f64> = [("event-loop", 1.0), ("producer", 2.0), ("gone", 5.0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let b: BTreeMap<String, f64> = [("event-loop", 1.5), ("producer", 2.25), ("librdkafka", 0.5), ("signals", 0.1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let d = group_delta(&a, &b);
        assert_eq!((d["event loop"], d["producer"], d["librdkafka"], d["other"]), (0.5, 0.25, 0.5, 0.1));
        assert_eq!((d["metrics"], d["backfill"]), (0.0, 0.0), "every group is reported");
    }

    #[test]
    fn this_process_s_threads_are_read() {
        let t = std::thread::Builder::new()
            .name("probe-thread".into())
            .spawn(|| {
                let end = std::time::Instant::now() + std::time::Duration::from_millis(30);
                while std::time::Instant::now() < end {}
                thread_cpu("self")
            })
            .unwrap();
        let seen = t.join().unwrap();
        assert!(seen.get("probe-thread").is_some_and(|s| *s > 0.0), "{seen:?}");
        assert!(proc_cpu_secs(std::process::id()).is_some());
    }
}
