//! No thread dies silently. Every helper thread is spawned through a [`Supervisor`]: if it panics,
//! returns an error, or returns at all before shutdown was asked for, readiness goes down for good
//! (`/readyz` names the thread), an orderly shutdown starts, and the process exits with
//! [`EXIT_THREAD_FAILED`] so that Kubernetes restarts it. A panic hook does the same for threads
//! spawned elsewhere (the resolver) and logs each panic once, as one structured line.

use std::any::Any;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::error;

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Exit code after a thread died (sysexits' `EX_SOFTWARE`, "internal software error"); a bad
/// configuration exits 64 (`EX_USAGE`).
pub const EXIT_THREAD_FAILED: u8 = 70;

#[derive(Clone)]
pub struct Supervisor {
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

impl Supervisor {
    pub fn new(metrics: Arc<Metrics>, shutdown: Shutdown) -> Supervisor {
        Supervisor { metrics, shutdown }
    }

    /// Replaces the default panic hook (an unstructured stderr print) for the whole process: each
    /// panic, in any thread, is logged once with its thread, message and location, and recorded
    /// as that thread's failure.
    pub fn install_panic_hook(&self) {
        let sup = self.clone();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
            let message = panic_message(info.payload());
            let location = info.location().map(|l| l.to_string()).unwrap_or_default();
            error!(thread, location, "thread panicked: {message}");
            sup.record(&thread, &format!("panicked: {message}"), true);
        }));
    }

    /// Spawns `f` on a thread named `name`. It is expected to run until shutdown: a panic, an
    /// `Err`, or an `Ok` before shutdown was triggered is a failure. The handle yields `f`'s value
    /// when it had one.
    pub fn spawn<T, F>(&self, name: &str, f: F) -> io::Result<JoinHandle<Option<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, String> + Send + 'static,
    {
        let (sup, thread) = (self.clone(), name.to_string());
        std::thread::Builder::new().name(name.to_string()).spawn(move || match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(v)) => {
                if !sup.shutdown.is_triggered() {
                    sup.record(&thread, "stopped before shutdown", false);
                }
                Some(v)
            }
            Ok(Err(e)) => {
                sup.record(&thread, &e, false);
                None
            }
            Err(payload) => {
                sup.record(&thread, &format!("panicked: {}", panic_message(&*payload)), true);
                None
            }
        })
    }

    /// Takes readiness down (for good), logs the first failure, and starts the orderly shutdown.
    fn record(&self, thread: &str, reason: &str, panicked: bool) {
        if self.metrics.health.fail(thread, reason) {
            // A panic's message was logged by the hook (or the test harness) already.
            let reason = if panicked { "panicked" } else { reason };
            error!(thread, reason, exit_code = EXIT_THREAD_FAILED, "thread failed: readiness down, shutting down");
        }
        self.shutdown.trigger();
    }

    /// The first thread that failed, if any: the process must then exit [`EXIT_THREAD_FAILED`].
    pub fn failed(&self) -> Option<crate::health::Failure> {
        self.metrics.health.failed().cloned()
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn supervisor() -> (Supervisor, Arc<Metrics>, Shutdown) {
        let metrics = Metrics::new(&["btcusdt".to_string()]);
        metrics.health.subscribed.store(true, Ordering::Relaxed);
        metrics.health.sink_ready.store(true, Ordering::Relaxed);
        let shutdown = Shutdown::new();
        (Supervisor::new(metrics.clone(), shutdown.clone()), metrics, shutdown)
    }

    #[test]
    fn a_panicking_thread_takes_readiness_down_and_the_process_out() {
        let (sup, metrics, shutdown) = supervisor();
        assert!(metrics.health.ready());
        let h = sup.spawn("backfill", || -> Result<(), String> { panic!("Instant + Duration overflowed") }).unwrap();
        assert_eq!(h.join().unwrap(), None, "the panic is caught, the join is clean");
        assert!(!metrics.health.ready(), "readiness down");
        assert!(shutdown.is_triggered(), "orderly shutdown started");
        let f = sup.failed().expect("failure recorded");
        assert_eq!(f.thread, "backfill");
        assert!(f.reason.contains("Instant + Duration overflowed"), "{f:?}");
        // A later failure does not replace the first.
        let h = sup.spawn("metrics", || Err::<(), _>("bind".to_string())).unwrap();
        h.join().unwrap();
        assert_eq!(sup.failed().unwrap().thread, "backfill");
    }

    #[test]
    fn returning_before_shutdown_is_a_failure_after_it_is_not() {
        let cases: [(bool, Result<u8, String>, Option<&str>); 4] = [
            (false, Ok(1), Some("stopped before shutdown")),
            (true, Ok(1), None),
            (true, Err("event loop: epoll failed".to_string()), Some("event loop: epoll failed")),
            (false, Err("x".to_string()), Some("x")),
        ];
        for (i, (after_shutdown, result, want)) in cases.into_iter().enumerate() {
            let (sup, metrics, shutdown) = supervisor();
            if after_shutdown {
                shutdown.trigger();
            }
            let ok = result.is_ok();
            let got = sup.spawn("producer", move || result).unwrap().join().unwrap();
            assert_eq!(got.is_some(), ok, "TC{i}: the value is handed back");
            assert_eq!(sup.failed().map(|f| f.reason), want.map(str::to_string), "TC{i}");
            assert_eq!(metrics.health.ready(), want.is_none(), "TC{i}");
            assert!(shutdown.is_triggered(), "TC{i}");
        }
    }
}
