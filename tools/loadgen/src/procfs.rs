//! `/proc` readings: CPU time per process, memory, machine load; the ingester's thread groups.
//! (Per-thread counters: sched.rs.)

pub fn clk_tck() -> f64 {
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

/// utime + stime of a process (or of one of its threads), seconds, from its `stat` line.
pub fn stat_cpu_secs(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / clk_tck())
}

/// The ingester's thread groups, in table order.
pub const THREAD_GROUPS: [&str; 6] = ["event loop", "producer", "librdkafka", "metrics", "backfill", "other"];

/// Which group a thread (by its name, or as [`crate::sched::thread_cpu`] names it) belongs to. A
/// second market's threads are named `<market>-<thread>` (lane.rs), the metrics server's workers inherit `metrics`.
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
    }

    #[test]
    fn this_process_s_cpu_is_read() {
        assert!(proc_cpu_secs(std::process::id()).is_some());
    }
}
