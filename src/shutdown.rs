//! Orderly shutdown: SIGTERM or SIGINT sets one flag and wakes the event loop; the loop stops
//! reading, the producer drains the ring and flushes, and the process exits 0. A second signal
//! exits at once, for an operator who means it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    wakers: Mutex<Vec<Arc<mio::Waker>>>,
    /// Threads that may nap outside a poll (the event loop's coalescing): unparked on shutdown.
    threads: Mutex<Vec<std::thread::Thread>>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    pub fn trigger(&self) {
        if !self.inner.flag.swap(true, Ordering::SeqCst) {
            for w in self.inner.wakers.lock().unwrap().iter() {
                let _ = w.wake();
            }
            for t in self.inner.threads.lock().unwrap().iter() {
                t.unpark();
            }
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::Relaxed)
    }

    /// Registers a poll waker to be woken on shutdown.
    pub fn add_waker(&self, w: Arc<mio::Waker>) {
        if self.is_triggered() {
            let _ = w.wake();
        }
        self.inner.wakers.lock().unwrap().push(w);
    }

    /// Registers a thread to be unparked on shutdown: one that sleeps in `park_timeout` checks
    /// [`Shutdown::is_triggered`] when it wakes. A thread registered after the trigger is not
    /// unparked: it checks the flag before it parks.
    pub fn add_thread(&self, t: std::thread::Thread) {
        self.inner.threads.lock().unwrap().push(t);
    }
}

/// Turns SIGTERM/SIGINT into `shutdown.trigger()`: registers the handlers now and returns the
/// loop that waits for them, to run on a (supervised) thread of its own.
pub fn signal_handlers(shutdown: Shutdown) -> std::io::Result<impl FnOnce() + Send + 'static> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    Ok(move || {
        for sig in signals.forever() {
            let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
            if shutdown.is_triggered() {
                warn!(signal = name, "second signal: exiting without draining");
                std::process::exit(130);
            }
            info!(signal = name, "shutting down: draining the ring and flushing the sink");
            shutdown.trigger();
        }
    })
}
