//! Cores: the feeder pinned to its own, every child process given back the whole set.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};

/// The CPU set this process started with, before the feeder pinned it; child processes get it back.
pub static START_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

/// Pins this thread, and so every feeder thread spawned from it, to `--feeder-core`.
pub fn pin_feeder(spec: &str) -> Result<Option<usize>> {
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
pub fn unpinned(cmd: &mut Command) {
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
