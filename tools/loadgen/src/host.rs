//! The host a run was made on, written into every summary: a figure quoted in README.md or
//! tuning.md must say which machine made it (CPU model, cores, and whether other work shared
//! them), and on a shared machine the load before and after the run is the only evidence of how
//! much it was shared.

use serde::Serialize;

use crate::cpuset::START_CPUS;
use crate::procfs::loadavg;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Host {
    /// `model name` of the first CPU in /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs online, and those loadgen was allowed to run on when it started (its
    /// affinity mask before the feeder was pinned; the ingester and cryptofeed get the same).
    pub cpus_online: usize,
    pub cpus_allowed: usize,
    /// /proc/loadavg (1, 5, 15 minutes) when the run started and when it ended.
    pub loadavg_before: String,
    pub loadavg_after: String,
    /// What the operator said about the machine (`--host-note`), e.g. that the cores were shared
    /// with other builds: loadgen cannot tell a shared VM from a quiet one by itself.
    pub note: String,
}

impl Host {
    /// At the start of a run.
    pub fn begin(note: &str) -> Host {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_string();
        let cpus_online = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
        // The set loadgen started with: once the feeder is pinned, this process's own mask is one core.
        let cpus_allowed = START_CPUS
            .get()
            .map(|c| c.len())
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
        Host {
            cpu_model,
            cpus_online,
            cpus_allowed,
            loadavg_before: loadavg(),
            note: note.to_string(),
            ..Host::default()
        }
    }

    /// At the end of the run.
    pub fn end(mut self) -> Host {
        self.loadavg_after = loadavg();
        self
    }

    /// One line for a table.md.
    pub fn line(&self) -> String {
        let note = if self.note.is_empty() { String::new() } else { format!("; {}", self.note) };
        format!(
            "Host: {}, {} CPUs online ({} allowed); load average (1/5/15 min) {} before, {} after{note}.",
            self.cpu_model, self.cpus_online, self.cpus_allowed, self.loadavg_before, self.loadavg_after
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine_and_both_load_averages() {
        let h = Host::begin("cores shared").end();
        assert!(h.cpus_online >= 1, "{h:?}");
        assert!(h.cpus_allowed >= 1 && h.cpus_allowed <= h.cpus_online, "{h:?}");
        // "unknown" where /proc/cpuinfo has no `model name` (some ARM kernels), never empty.
        assert!(!h.cpu_model.is_empty(), "{h:?}");
        assert_eq!(h.loadavg_before.split_whitespace().count(), 3, "{h:?}");
        assert_eq!(h.loadavg_after.split_whitespace().count(), 3, "{h:?}");
        let line = h.line();
        assert!(line.contains(&h.cpu_model) && line.ends_with("; cores shared."), "{line}");
    }
}
