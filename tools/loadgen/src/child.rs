//! Child processes that cannot outlive this one, and waits that end at SIGINT/SIGTERM.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub fn interrupted_flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Sleeps, but returns an error as soon as SIGINT/SIGTERM arrived (children are then dropped,
/// which kills them).
pub fn nap(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        if interrupted_flag().load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
pub struct ChildGuard {
    pub child: Child,
    pub what: String,
    pub exit: Option<String>,
}

impl ChildGuard {
    pub fn spawn(mut cmd: Command, what: &str) -> Result<ChildGuard> {
        // SAFETY: prctl is async-signal-safe; the closure touches nothing else.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("cannot start {what}"))?;
        Ok(ChildGuard { child, what: what.to_string(), exit: None })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `sig`, waits up to `grace`, then SIGKILL. Returns how it ended.
    pub fn stop(&mut self, sig: i32, grace: Duration) -> String {
        if let Some(e) = &self.exit {
            return e.clone();
        }
        if self.alive() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(self.child.id() as i32, sig) };
            let end = Instant::now() + grace;
            while Instant::now() < end && self.alive() {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.alive() {
                eprintln!("loadgen: {} did not stop within {grace:?}: SIGKILL", self.what);
                let _ = self.child.kill();
            }
        }
        let e = match self.child.wait() {
            Ok(s) => s.to_string(),
            Err(e) => format!("wait failed: {e}"),
        };
        self.exit = Some(e.clone());
        e
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(libc::SIGTERM, Duration::from_secs(3));
    }
}
