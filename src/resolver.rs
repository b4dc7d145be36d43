//! Name resolution off the event-loop thread.
//!
//! `getaddrinfo` blocks, for seconds when a DNS server is slow or gone; on the event loop that
//! would stall every connection, pongs included. A background thread resolves the endpoint's host
//! instead, keeps the last good answer, refreshes it periodically and whenever a connect attempt
//! failed, and the loop only ever reads the cached answer.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// How a host name becomes addresses (the system resolver, or a stand-in in tests).
pub type Lookup = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync;

#[derive(Default)]
struct Answer {
    addrs: Vec<SocketAddr>,
    /// The last lookup's error, while no lookup ever succeeded.
    error: Option<String>,
    /// Lookups finished so far.
    lookups: u64,
    refresh: bool,
}

struct Shared {
    host: String,
    port: u16,
    answer: Mutex<Answer>,
    changed: Condvar,
    stop: AtomicBool,
}

pub struct Resolver {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Resolver {
    /// Resolves `host` with the system resolver, again every `every` and after [`Resolver::refresh`].
    /// An IP address needs no lookup and gets no thread.
    pub fn spawn(host: &str, port: u16, every: Duration) -> Resolver {
        Self::spawn_with(host, port, every, Arc::new(|h: &str, p: u16| (h, p).to_socket_addrs().map(|a| a.collect())))
    }

    pub fn spawn_with(host: &str, port: u16, every: Duration, lookup: Arc<Lookup>) -> Resolver {
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        let answer = Answer {
            addrs: literal.map(|ip| vec![SocketAddr::new(ip, port)]).unwrap_or_default(),
            lookups: u64::from(literal.is_some()),
            ..Answer::default()
        };
        let shared = Arc::new(Shared {
            host: host.to_string(),
            port,
            answer: Mutex::new(answer),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let thread = literal.is_none().then(|| {
            let s = shared.clone();
            std::thread::Builder::new()
                .name("resolver".into())
                .spawn(move || run(&s, every, &*lookup))
                .expect("spawn the resolver thread")
        });
        Resolver { shared, thread }
    }

    /// The last good addresses, at once: empty until the first lookup succeeded (then `Err` holds
    /// that lookup's error, if it failed).
    pub fn addrs(&self) -> Result<Vec<SocketAddr>, String> {
        let a = self.shared.answer.lock().unwrap_or_else(|p| p.into_inner());
        match (&a.error, a.addrs.is_empty()) {
            (Some(e), true) => Err(e.clone()),
            _ => Ok(a.addrs.clone()),
        }
    }

    /// Asks for a fresh lookup (a connect attempt failed: the address may have moved).
    pub fn refresh(&self) {
        if self.thread.is_some() {
            self.shared.answer.lock().unwrap_or_else(|p| p.into_inner()).refresh = true;
            self.shared.changed.notify_all();
        }
    }

    /// Waits up to `timeout` for the first lookup to finish (before the event loop starts, so the
    /// first connections need not back off); true if it did.
    pub fn wait_first(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut a = self.shared.answer.lock().unwrap_or_else(|p| p.into_inner());
        while a.lookups == 0 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            a = self.shared.changed.wait_timeout(a, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        // Not joined: a lookup stuck in getaddrinfo must not hold up shutdown.
        drop(self.thread.take());
    }
}

fn run(s: &Shared, every: Duration, lookup: &Lookup) {
    while !s.stop.load(Ordering::Relaxed) {
        let result = lookup(&s.host, s.port);
        {
            let mut a = s.answer.lock().unwrap_or_else(|p| p.into_inner());
            a.lookups += 1;
            match result {
                Ok(addrs) if !addrs.is_empty() => {
                    if addrs != a.addrs {
                        info!(host = %s.host, addrs = ?addrs, "resolved");
                    }
                    a.addrs = addrs;
                    a.error = None;
                }
                // A failed lookup keeps the last good answer: a DNS outage must not take down
                // connections to an exchange that has not moved.
                Ok(_) => a.error = Some(format!("{} resolved to no address", s.host)),
                Err(e) => {
                    warn!(host = %s.host, "cannot resolve: {e}");
                    a.error = Some(format!("cannot resolve {}: {e}", s.host));
                }
            }
            a.refresh = false;
            s.changed.notify_all();
            let end = Instant::now() + every;
            while !a.refresh && !s.stop.load(Ordering::Relaxed) {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                a = s.changed.wait_timeout(a, left).unwrap_or_else(|p| p.into_inner()).0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ip_literals_need_no_lookup() {
        let r = Resolver::spawn("127.0.0.1", 9443, Duration::from_secs(60));
        assert!(r.thread.is_none());
        assert_eq!(r.addrs(), Ok(vec![addr("127.0.0.1:9443")]));
        let r6 = Resolver::spawn("[::1]", 9443, Duration::from_secs(60));
        assert_eq!(r6.addrs(), Ok(vec![addr("[::1]:9443")]));
    }

    #[test]
    fn a_hung_lookup_never_blocks_the_reader_and_failures_keep_the_last_answer() {
        let calls = Arc::new(AtomicU64::new(0));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let c = calls.clone();
        let lookup: Arc<Lookup> = Arc::new(move |_h: &str, p: u16| {
            match c.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(vec![SocketAddr::new([10, 0, 0, 1].into(), p)]),
                // The DNS server hangs until the test lets it fail.
                _ => {
                    let _ = release_rx.lock().unwrap().recv();
                    Err(io::Error::other("timed out"))
                }
            }
        });
        let r = Arc::new(Resolver::spawn_with("stream.example", 443, Duration::from_secs(3600), lookup));
        assert!(r.wait_first(Duration::from_secs(30)));
        assert_eq!(r.addrs(), Ok(vec![addr("10.0.0.1:443")]));
        r.refresh();
        while calls.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        // The second lookup is now hung: a reader still gets the cached answer. (A reader that
        // waited for the lookup would never answer; the generous bound only turns that hang
        // into a failure.)
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = r.clone();
        std::thread::spawn(move || tx.send(reader.addrs()).unwrap());
        let got = rx.recv_timeout(Duration::from_secs(30)).expect("addrs() waited for the hung lookup");
        assert_eq!(got, Ok(vec![addr("10.0.0.1:443")]));
        release_tx.send(()).unwrap();
        let first_failure = {
            let a = r.shared.answer.lock().unwrap();
            let a = r.shared.changed.wait_while(a, |a| a.lookups < 2).unwrap();
            a.lookups
        };
        assert_eq!(first_failure, 2);
        assert_eq!(r.addrs(), Ok(vec![addr("10.0.0.1:443")]), "a failed refresh keeps the last good answer");
    }

    #[test]
    fn a_host_that_never_resolved_reports_why() {
        let lookup: Arc<Lookup> = Arc::new(|_h: &str, _p: u16| Err(io::Error::other("no such host")));
        let r = Resolver::spawn_with("nowhere.invalid", 443, Duration::from_secs(3600), lookup);
        assert!(r.wait_first(Duration::from_secs(5)));
        assert_eq!(r.addrs(), Err("cannot resolve nowhere.invalid: no such host".to_string()));
    }
}
