//! Per-thread scheduler counters of a process, over a window: how often each thread went to sleep
//! and was woken, how often it was preempted, its time on a CPU and its wait for one. Issue 14:
//! on a VM a cross-CPU wake-up costs several µs of CPU (bench-results/wakeup-cost/), and smooth
//! arrival brings one per TCP segment, so a group's CPU is read against its wake-ups.
//!
//! Sources, per thread (`/proc/<pid>/task/<tid>/`): `schedstat` (three numbers: ns on a CPU, ns
//! waiting on a run queue, times put on a CPU) and `status` (`voluntary_ctxt_switches`: the thread blocked,
//! so it was woken once more; `nonvoluntary_ctxt_switches`: preempted, or a `sched_yield`).
//! `/proc/<pid>/schedstat` and `/proc/<pid>/status` hold the main thread's counters only, so the
//! whole process is the sum over its threads.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::procfs::{stat_cpu_secs, thread_group, THREAD_GROUPS};

/// One thread's counters at one reading.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThreadStat {
    /// `comm` (librdkafka's threads as `rdk:main`, `rdk:broker1`, ...).
    pub name: String,
    pub counts: Counts,
}

/// Scheduler counters, of one thread at one reading or summed over threads and a window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub cpu_ns: u64,
    pub run_delay_ns: u64,
    /// Times put on a CPU (schedstat's third field).
    pub runs: u64,
    pub voluntary: u64,
    pub nonvoluntary: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.cpu_ns += o.cpu_ns;
        self.run_delay_ns += o.run_delay_ns;
        self.runs += o.runs;
        self.voluntary += o.voluntary;
        self.nonvoluntary += o.nonvoluntary;
    }

    /// `self - a`, or `None` when any counter went backwards (the tid now names another thread).
    fn since(&self, a: &Counts) -> Option<Counts> {
        Some(Counts {
            cpu_ns: self.cpu_ns.checked_sub(a.cpu_ns)?,
            run_delay_ns: self.run_delay_ns.checked_sub(a.run_delay_ns)?,
            runs: self.runs.checked_sub(a.runs)?,
            voluntary: self.voluntary.checked_sub(a.voluntary)?,
            nonvoluntary: self.nonvoluntary.checked_sub(a.nonvoluntary)?,
        })
    }
}

/// `schedstat`: ns on a CPU, ns waiting on a run queue, times put on a CPU.
pub fn parse_schedstat(text: &str) -> Option<(u64, u64, u64)> {
    let mut f = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some((f.next()??, f.next()??, f.next()??))
}

/// `status`: (voluntary, nonvoluntary) context switches.
pub fn parse_switches(text: &str) -> Option<(u64, u64)> {
    let get = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse().ok());
    Some((get("voluntary_ctxt_switches:")?, get("nonvoluntary_ctxt_switches:")?))
}

/// One thread from its `comm`, `schedstat` (or, where the kernel has none, `stat`'s utime + stime
/// in clock ticks, and no run-queue figures) and `status`.
pub fn parse_thread(comm: &str, schedstat: Option<&str>, stat: Option<&str>, status: &str) -> Option<ThreadStat> {
    let (voluntary, nonvoluntary) = parse_switches(status)?;
    let (cpu_ns, run_delay_ns, runs) = match schedstat.and_then(parse_schedstat) {
        Some(s) => s,
        None => ((stat_cpu_secs(stat?)? * 1e9) as u64, 0, 0),
    };
    let counts = Counts { cpu_ns, run_delay_ns, runs, voluntary, nonvoluntary };
    Some(ThreadStat { name: comm.trim().to_string(), counts })
}

/// Every thread of `pid` (`self` for this process), by tid. A thread that exits while it is read
/// is left out.
pub fn read_threads(pid: &str) -> BTreeMap<u32, ThreadStat> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        let p = e.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).ok();
        let (Some(comm), Some(status)) = (read("comm"), read("status")) else { continue };
        if let Some(t) = parse_thread(&comm, read("schedstat").as_deref(), read("stat").as_deref(), &status) {
            out.insert(tid, t);
        }
    }
    out
}

/// CPU seconds per thread name at one reading, threads of one name summed (time on a CPU, from
/// `schedstat`, in ns: a 10 s window at 1k msg/s gives 10,000 messages, and `stat`'s 10 ms ticks
/// would be a microsecond per message per thread).
pub fn cpu_by_name(threads: &BTreeMap<u32, ThreadStat>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for t in threads.values() {
        // librdkafka names its threads rdk:main, rdk:broker1, ...: one bucket is enough.
        let name = if t.name.starts_with("rdk:") { "librdkafka".to_string() } else { t.name.clone() };
        *out.entry(name).or_insert(0.0) += t.counts.cpu_ns as f64 / 1e9;
    }
    out
}

/// [`cpu_by_name`] of `pid`'s threads now.
pub fn thread_cpu(pid: &str) -> BTreeMap<String, f64> {
    cpu_by_name(&read_threads(pid))
}

/// What the threads did between readings `a` and `b`, summed per `group(name)`, and over all of
/// them under [`PROCESS`]. A thread gone by `b` counts nothing (its share of the window left /proc
/// with it); a thread new in `b`, or a tid reused by another thread (another name, or a counter
/// lower than before), counts from zero.
pub fn delta_by(
    a: &BTreeMap<u32, ThreadStat>,
    b: &BTreeMap<u32, ThreadStat>,
    group: impl Fn(&str) -> String,
) -> BTreeMap<String, Counts> {
    let mut out: BTreeMap<String, Counts> = BTreeMap::new();
    out.insert(PROCESS.to_string(), Counts::default());
    for (tid, tb) in b {
        let d = match a.get(tid) {
            Some(ta) if ta.name == tb.name => tb.counts.since(&ta.counts).unwrap_or(tb.counts),
            _ => tb.counts,
        };
        out.entry(group(&tb.name)).or_default().add(&d);
        out.entry(PROCESS.to_string()).or_default().add(&d);
    }
    out
}

/// [`delta_by`] for the ingester (`ours`): per thread group, every one of [`THREAD_GROUPS`]
/// present; for another program (cryptofeed): per thread name.
pub fn by_group(a: &BTreeMap<u32, ThreadStat>, b: &BTreeMap<u32, ThreadStat>, ours: bool) -> BTreeMap<String, Counts> {
    if !ours {
        return delta_by(a, b, |n| n.to_string());
    }
    let mut d = delta_by(a, b, |n| thread_group(n).to_string());
    for g in THREAD_GROUPS {
        d.entry(g.to_string()).or_default();
    }
    d
}

/// The key of the whole process's figures in [`delta_by`]'s map.
pub const PROCESS: &str = "process";

/// Wake-ups of a thread group (or the process) over a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Wake {
    /// Voluntary context switches per second: the group's threads went to sleep and were woken.
    pub wakeups_per_s: f64,
    /// Involuntary context switches per second: preempted (or yielded the CPU while runnable).
    pub preemptions_per_s: f64,
    /// Wake-ups per message delivered (or, in a fixed-rate run, parsed) in the window.
    pub wakeups_per_msg: f64,
    /// The group's time on a CPU over its wake-ups, µs (0 without wake-ups): what each wake-up
    /// costs if wake-ups are all the group does.
    pub cpu_us_per_wakeup: f64,
    /// Time on a CPU, % of one core.
    pub cpu_pct: f64,
    /// Mean wait on a run queue each time a thread of the group was put on a CPU, µs.
    pub run_queue_wait_us: f64,
}

impl Wake {
    pub fn from_counts(c: &Counts, window_s: f64, msgs: f64) -> Wake {
        let per_s = |v: u64| if window_s > 0.0 { v as f64 / window_s } else { 0.0 };
        Wake {
            wakeups_per_s: per_s(c.voluntary),
            preemptions_per_s: per_s(c.nonvoluntary),
            wakeups_per_msg: if msgs > 0.0 { c.voluntary as f64 / msgs } else { 0.0 },
            cpu_us_per_wakeup: if c.voluntary > 0 { c.cpu_ns as f64 / 1e3 / c.voluntary as f64 } else { 0.0 },
            cpu_pct: if window_s > 0.0 { 100.0 * c.cpu_ns as f64 / 1e9 / window_s } else { 0.0 },
            run_queue_wait_us: if c.runs > 0 { c.run_delay_ns as f64 / 1e3 / c.runs as f64 } else { 0.0 },
        }
    }
}

/// A [`delta_by`] map as [`Wake`]s: the process's, and each group's.
pub fn wakes(d: &BTreeMap<String, Counts>, window_s: f64, msgs: f64) -> (Wake, BTreeMap<String, Wake>) {
    let process = d.get(PROCESS).copied().unwrap_or_default();
    let groups = d
        .iter()
        .filter(|(g, _)| g.as_str() != PROCESS)
        .map(|(g, c)| (g.clone(), Wake::from_counts(c, window_s, msgs)))
        .collect();
    (Wake::from_counts(&process, window_s, msgs), groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::{clk_tck, proc_cpu_secs};

    /// Lines as this VM's kernel (6.18) writes them; the status file shortened to a few lines.
    const SCHEDSTAT: &str = "1520458209 36290421 10433\n";
    const STATUS: &str = "Name:\tevent-loop\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4121\nPid:\t4125\n\
        Cpus_allowed_list:\t1\nMems_allowed_list:\t0\nvoluntary_ctxt_switches:\t10380\n\
        nonvoluntary_ctxt_switches:\t53\n";
    const STAT: &str = "4125 (rdk:broker1) S 1 4121 4121 0 -1 4194368 84 0 0 0 152 31 0 0 20 0 9 0 9160 \
        1208004608 2451 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 -1 1 0 0 0 0 0";

    fn thread(name: &str, cpu_ms: u64, vol: u64, invol: u64) -> ThreadStat {
        let counts = Counts {
            cpu_ns: cpu_ms * 1_000_000,
            run_delay_ns: vol * 2_000,
            runs: vol + invol,
            voluntary: vol,
            nonvoluntary: invol,
        };
        ThreadStat { name: name.into(), counts }
    }

    #[test]
    fn a_thread_is_read_from_its_schedstat_and_status() {
        assert_eq!(parse_schedstat(SCHEDSTAT), Some((1_520_458_209, 36_290_421, 10_433)));
        assert_eq!(parse_switches(STATUS), Some((10_380, 53)));
        let t = parse_thread("event-loop\n", Some(SCHEDSTAT), None, STATUS).unwrap();
        assert_eq!(t.name, "event-loop");
        let want = Counts {
            cpu_ns: 1_520_458_209,
            run_delay_ns: 36_290_421,
            runs: 10_433,
            voluntary: 10_380,
            nonvoluntary: 53,
        };
        assert_eq!(t.counts, want);
    }

    /// Without schedstat (a kernel without CONFIG_SCHED_INFO) the CPU comes from `stat`'s ticks;
    /// a file cut short or missing its lines is no reading rather than zeros.
    #[test]
    fn a_thread_without_schedstat_falls_back_to_stat_and_a_torn_file_reads_as_none() {
        let t = parse_thread("rdk:broker1", None, Some(STAT), STATUS).unwrap();
        assert_eq!(t.counts.cpu_ns, ((152.0 + 31.0) / clk_tck() * 1e9) as u64);
        assert_eq!((t.counts.runs, t.counts.voluntary), (0, 10_380));
        assert_eq!(parse_schedstat("1520458209 36290421"), None);
        assert_eq!(parse_switches("Name:\tx\nvoluntary_ctxt_switches:\t5\n"), None);
        assert!(parse_thread("x", Some(SCHEDSTAT), None, "Name:\tx\n").is_none());
        assert!(parse_thread("x", None, None, STATUS).is_none());
    }

    #[test]
    fn a_window_counts_per_group_and_process_and_a_vanished_thread_counts_nothing() {
        let a: BTreeMap<u32, ThreadStat> = [
            (10, thread("event-loop", 100, 1_000, 5)),
            (11, thread("producer", 50, 400, 1)),
            (12, thread("rdk:broker1", 30, 300, 0)),
            (13, thread("rdk:broker2", 10, 100, 0)),
            // Exits before the second reading: none of it can be told apart from before the window.
            (14, thread("rdk:broker3", 20, 200, 0)),
            // Its tid reused by another thread by the second reading.
            (15, thread("backfill", 40, 90, 0)),
        ]
        .into_iter()
        .collect();
        let b: BTreeMap<u32, ThreadStat> = [
            (10, thread("event-loop", 300, 11_000, 25)),
            (11, thread("producer", 70, 2_400, 1)),
            (12, thread("rdk:broker1", 60, 1_300, 0)),
            (13, thread("rdk:broker2", 20, 600, 0)),
            (15, thread("metrics", 2, 10, 0)),
            // New in the window: counts from zero.
            (16, thread("rdk:broker4", 5, 50, 0)),
        ]
        .into_iter()
        .collect();
        let d = delta_by(&a, &b, |n| thread_group(n).to_string());
        assert_eq!(
            (d["event loop"].cpu_ns, d["event loop"].voluntary, d["event loop"].nonvoluntary),
            (200_000_000, 10_000, 20)
        );
        assert_eq!((d["producer"].cpu_ns, d["producer"].voluntary), (20_000_000, 2_000));
        assert_eq!((d["librdkafka"].cpu_ns, d["librdkafka"].voluntary), (45_000_000, 1_550));
        assert_eq!((d["metrics"].cpu_ns, d["metrics"].voluntary), (2_000_000, 10));
        assert!(!d.contains_key("backfill"), "{d:?}");
        let ours = by_group(&a, &b, true);
        assert_eq!(ours.len(), THREAD_GROUPS.len() + 1, "every group, and the process: {ours:?}");
        assert_eq!((ours["backfill"], ours["librdkafka"]), (Counts::default(), d["librdkafka"]));
        assert_eq!(by_group(&a, &b, false)["rdk:broker2"].voluntary, 500, "another program: by thread name");
        assert_eq!((d[PROCESS].cpu_ns, d[PROCESS].voluntary, d[PROCESS].runs), (267_000_000, 13_560, 13_580));

        let (p, g) = wakes(&d, 2.0, 20_000.0);
        assert!(!g.contains_key(PROCESS));
        assert_eq!(p.wakeups_per_s, 6_780.0);
        assert_eq!(g["event loop"].wakeups_per_s, 5_000.0);
        assert_eq!(g["event loop"].preemptions_per_s, 10.0);
        assert_eq!(g["event loop"].cpu_us_per_wakeup, 20.0);
        assert_eq!(g["event loop"].wakeups_per_msg, 0.5);
        assert_eq!(g["event loop"].cpu_pct, 10.0);
        assert_eq!(g["event loop"].run_queue_wait_us, 2.0 * 10_000.0 / 10_020.0);
        assert_eq!(g["producer"].cpu_us_per_wakeup, 10.0);
    }

    /// A tid whose counters went backwards under the same name is a new thread too.
    #[test]
    fn counters_that_go_backwards_count_from_zero() {
        let a: BTreeMap<u32, ThreadStat> = [(7, thread("producer", 90, 900, 0))].into_iter().collect();
        let b: BTreeMap<u32, ThreadStat> = [(7, thread("producer", 3, 30, 0))].into_iter().collect();
        let (p, g) = wakes(&delta_by(&a, &b, |n| n.to_string()), 1.0, 0.0);
        assert_eq!((p.wakeups_per_s, g["producer"].wakeups_per_s, p.wakeups_per_msg), (30.0, 30.0, 0.0));
        assert_eq!(Wake::from_counts(&Counts::default(), 0.0, 0.0), Wake::default(), "nothing, not NaN");
    }

    /// This process, read for real: a thread that sleeps 20 times was woken at least 20 times.
    #[test]
    fn this_process_s_threads_are_read_with_their_switches() {
        let t = std::thread::Builder::new()
            .name("sleepy-probe".into())
            .spawn(|| {
                let a = read_threads("self");
                for _ in 0..20 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                (a, read_threads("self"))
            })
            .unwrap();
        let (a, b) = t.join().unwrap();
        let d = delta_by(&a, &b, |n| n.to_string());
        assert!(d.get("sleepy-probe").is_some_and(|c| c.voluntary >= 20), "{d:?}");
        assert!(cpu_by_name(&b).get("sleepy-probe").is_some_and(|s| *s > 0.0), "{b:?}");
        assert!(proc_cpu_secs(std::process::id()).is_some());
    }

    #[test]
    fn librdkafka_s_threads_share_one_name() {
        let t: BTreeMap<u32, ThreadStat> =
            [(1, thread("rdk:main", 1, 1, 0)), (2, thread("rdk:broker1", 2, 1, 0)), (3, thread("producer", 4, 1, 0))]
                .into_iter()
                .collect();
        let c = cpu_by_name(&t);
        assert_eq!((c["librdkafka"], c["producer"], c.len()), (0.003, 0.004, 2));
    }
}
