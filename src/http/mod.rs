//! The metrics thread: an HTTP/1 server for `/metrics`, `/healthz`, `/readyz` and
//! `/latency/<stage>` ([`routes`]) that holds against hostile clients.
//!
//! # Why hyper, not tiny_http
//!
//! The seed served these endpoints with tiny_http 0.12, which cannot be bounded: its accept
//! thread hands every connection to a pool that spawns a new thread whenever none is idle (1000
//! idle sockets made ~965 threads); it reads a header line into a `Vec` until CRLF with no limit
//! (64 MiB of unterminated header took 381 MB of RSS); it exposes neither the accepted socket nor a
//! timeout, so nothing ever closes an idle or stalled client; and every request goes through one
//! queue to one thread, so a client that pipelines requests and never reads its responses blocks
//! every later `/healthz`. hyper's HTTP/1 server has each of these limits as an option, and on a
//! current-thread tokio runtime it serves every connection as a task on this one thread, so no
//! client can block another and no client can make a thread.
//!
//! # Limits ([`Limits::default`])
//!
//! - Request head (request line and headers) at most 8 KiB: past it hyper answers
//!   `431 Request Header Fields Too Large` and closes.
//! - At most 64 connections open. At the limit a new connection is still served and the least
//!   recently active one is closed for it (`slots.rs` says why); nothing is queued here, and the
//!   kernel's listen backlog bounds what waits for `accept`.
//! - A request head must arrive whole within 10 s of the connection opening or of the previous
//!   response (slow headers, and idle keep-alive connections, are closed then).
//! - A write blocked for 10 s (the client stopped reading) cuts the connection.
//! - Each request is answered by a plain function; a panic in it answers 500 and costs that request
//!   only. A panic in hyper itself ends its connection's task only (tokio catches it).
//!
//! # Memory bound
//!
//! Per connection: hyper's read buffer (at most 16 KiB), its head write buffer (8 KiB), the task,
//! timers and parser state (a few KiB), and one response body (hyper answers pipelined requests
//! one after the other; `/metrics` is about 7 KiB plus 11 KiB per symbol up to
//! `METRICS_SYMBOL_DETAIL_MAX` symbols, 0.2 KiB past it, and 0.1 KiB per stream);
//! in the kernel, the socket buffers, capped at 128 KiB (send) and 64 KiB (receive), which Linux
//! doubles for bookkeeping. So at most 64 x (~32 KiB + one `/metrics` body) in the process (~4 MiB
//! with 3 symbols, ~72 MiB with 100, ~38 MiB with 1,000; but ~700 MiB with 1,000 and every series
//! per symbol, `METRICS_SYMBOL_DETAIL_MAX=65535`) and 64 x 384 KiB = 24 MiB in the kernel, on one thread,
//! whatever clients send. Measured: RSS grew ~20 KiB per connection holding an 8 KB partial head,
//! ~58 KiB per connection stalled on a 3-symbol `/metrics`.
//!
//! What was refused or cut is counted in `marketflow_ingestor_http_rejected_total{reason}`
//! ([`Reason`]), and every log line a client can cause is rate-limited.

mod conn;
pub mod exposition;
pub mod routes;
mod slots;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::Method;
use hyper_util::rt::TokioTimer;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tracing::{info, warn};

use crate::log_limit::LogLimiter;
use crate::metrics::{Metrics, NAMESPACE};
use crate::shutdown::Shutdown;
use routes::{Markets, Reply};

/// The bounds of the server; [`Limits::default`] is what the ingester runs with.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once (at least 1); a new one past it evicts the least recently active.
    pub max_connections: usize,
    /// Longest request head (request line and headers), in bytes; longer gets 431.
    pub max_header_bytes: usize,
    /// Longest wait for a whole request head, counted from the connection's start or the end of
    /// its previous response.
    pub header_timeout: Duration,
    /// Longest a write may stay blocked because the client does not read.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // Prometheus (a pair, in HA), the kubelet's probes (one connection each, closed after
            // the answer) and an operator's curl need a handful; 64 leaves room for a surge.
            max_connections: 64,
            // Probes and scrapers send a few hundred bytes.
            max_header_bytes: 8 << 10,
            // Well under the probes' 10 s period x 6 failures before a restart.
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// hyper refuses a smaller read buffer.
const MIN_READ_BUF: usize = 8 << 10;
/// Kernel socket buffers per accepted connection: bounded whatever the sysctl autotuning allows
/// (up to 4 MiB / 32 MiB on a default Linux), still ample for an 800 KiB `/metrics` in-cluster.
const SEND_BUF: usize = 128 << 10;
const RECV_BUF: usize = 64 << 10;
/// After a failed `accept` (out of file descriptors), wait before the next one rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How often the accept loop looks at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(200);

/// Why a connection or request was refused or cut: the `reason` label of
/// `marketflow_ingestor_http_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Closed to make room for a new connection at the connection limit.
    Evicted,
    /// Request head over [`Limits::max_header_bytes`] (answered 431).
    HeaderTooLarge,
    /// No whole request head within [`Limits::header_timeout`] of connecting.
    ReadTimeout,
    /// A keep-alive connection sent no next request within [`Limits::header_timeout`].
    IdleTimeout,
    /// A write blocked for [`Limits::write_timeout`]: the client stopped reading.
    WriteTimeout,
    /// Not HTTP/1 (answered 400 where possible).
    BadRequest,
    /// The request handler panicked (answered 500).
    HandlerPanic,
    /// `accept` failed (e.g. out of file descriptors).
    AcceptError,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Evicted,
        Reason::HeaderTooLarge,
        Reason::ReadTimeout,
        Reason::IdleTimeout,
        Reason::WriteTimeout,
        Reason::BadRequest,
        Reason::HandlerPanic,
        Reason::AcceptError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Evicted => "evicted",
            Reason::HeaderTooLarge => "header_too_large",
            Reason::ReadTimeout => "read_timeout",
            Reason::IdleTimeout => "idle_timeout",
            Reason::WriteTimeout => "write_timeout",
            Reason::BadRequest => "bad_request",
            Reason::HandlerPanic => "handler_panic",
            Reason::AcceptError => "accept_error",
        }
    }
}

/// `marketflow_ingestor_http_rejected_total{reason}` and the rate limit of the lines that go with it.
pub struct Counters {
    by_reason: Vec<IntCounter>,
    limiter: LogLimiter,
}

impl Counters {
    /// Registers the counter, every reason at 0 from the start.
    fn register(registry: &Registry) -> io::Result<Counters> {
        let opts = Opts::new(
            format!("{NAMESPACE}_http_rejected_total"),
            "Metrics/health server connections or requests refused or cut, by reason",
        );
        let failed = |e| io::Error::other(format!("cannot register the metrics server's counters: {e}"));
        let vec = IntCounterVec::new(opts, &["reason"]).map_err(failed)?;
        registry.register(Box::new(vec.clone())).map_err(failed)?;
        let by_reason = Reason::ALL.iter().map(|r| vec.with_label_values(&[r.as_str()])).collect();
        Ok(Counters { by_reason, limiter: LogLimiter::new(Duration::from_secs(10)) })
    }

    fn inc(&self, r: Reason) {
        self.by_reason[Reason::ALL.iter().position(|x| *x == r).unwrap_or(0)].inc();
    }

    /// Counts, and logs at most one line per reason every 10 s.
    pub fn count(&self, r: Reason, what: &str) {
        self.inc(r);
        if let Some(suppressed) = self.limiter.check(r.as_str()) {
            warn!(reason = r.as_str(), suppressed, "metrics server: {what}");
        }
    }

    /// A connection cut by a limit; an idle keep-alive closing is routine and not logged.
    pub fn cut(&self, r: Reason, e: &hyper::Error) {
        if r == Reason::IdleTimeout {
            self.inc(r);
        } else {
            self.count(r, &format!("connection cut: {e}"));
        }
    }
}

/// Answers one request from its method and request target (path, and `?query` when sent).
pub type Handler = Arc<dyn Fn(&Method, &str) -> Reply + Send + Sync>;

/// Binds the server's socket; the returned address is the real one (port 0 picks a free port).
pub fn bind(addr: &str) -> io::Result<(TcpListener, SocketAddr)> {
    let listener =
        TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves the ingester's endpoints until shutdown. Returns an error if the server cannot run at
/// all; a panic in the server itself propagates to the caller's thread (a panic in one request's
/// handling does not).
pub fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: Shutdown, limits: Limits) -> io::Result<()> {
    serve_markets(listener, vec![("spot", metrics)], shutdown, limits)
}

/// [`serve`] for a process of several markets (`(name, metrics)`, one per lane): `/metrics`
/// merges their series, `/healthz` and `/readyz` hold for all of them at once.
pub fn serve_markets(
    listener: TcpListener,
    markets: Vec<(&'static str, Arc<Metrics>)>,
    shutdown: Shutdown,
    limits: Limits,
) -> io::Result<()> {
    let markets = Arc::new(Markets::new(markets));
    let m = markets.clone();
    let handler: Handler = Arc::new(move |method, path| routes::respond(&m, method, path));
    serve_with(listener, markets.server(), handler, shutdown, limits)
}

/// Serves `handler` until shutdown, counting into `registry` (see [`serve`]).
pub fn serve_with(
    listener: TcpListener,
    registry: &Registry,
    handler: Handler,
    shutdown: Shutdown,
    limits: Limits,
) -> io::Result<()> {
    let counters = Counters::register(registry)?;
    // No worker threads, and no blocking pool use (no DNS, no files): this thread is the server.
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let ctx = Arc::new(conn::Ctx { handler, counters });
    rt.block_on(accept_loop(listener, ctx, shutdown, limits))?;
    info!("metrics server stopped");
    Ok(())
}

async fn accept_loop(listener: TcpListener, ctx: Arc<conn::Ctx>, shutdown: Shutdown, limits: Limits) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slots = slots::Slots::new(limits.max_connections);
    let max_header = limits.max_header_bytes.clamp(1 << 10, 1 << 20);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(max_header)
        .max_buf_size((2 * max_header).max(MIN_READ_BUF))
        .keep_alive(true);
    let mut tick = tokio::time::interval(SHUTDOWN_POLL);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = tick.tick() => {
                if shutdown.is_triggered() {
                    return Ok(());
                }
                continue;
            }
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                ctx.counters.count(Reason::AcceptError, &format!("accept failed: {e}"));
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let sock = socket2::SockRef::from(&stream);
        let _ = sock.set_send_buffer_size(SEND_BUF);
        let _ = sock.set_recv_buffer_size(RECV_BUF);
        let admitted = slots.admit();
        if admitted.made_room {
            ctx.counters.count(Reason::Evicted, "connection limit reached: closed the least recently active");
            // Let the evicted task run and free its socket and buffers before the next accept, so
            // the bound holds at every moment, not only eventually.
            tokio::task::yield_now().await;
        }
        tokio::spawn(conn::serve(stream, admitted, http.clone(), limits, ctx.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn rejected(registry: &Registry, reason: &str) -> f64 {
        let families = registry.gather();
        let family = families.iter().find(|f| f.name() == "marketflow_ingestor_http_rejected_total").unwrap();
        let m = family.get_metric().iter().find(|m| m.get_label()[0].value() == reason).unwrap();
        m.get_counter().get_value()
    }

    #[test]
    fn a_panicking_handler_costs_its_request_only_and_the_server_stops_on_shutdown() {
        let registry = Registry::new();
        let handler: Handler = Arc::new(|_, path| match path {
            "/boom" => panic!("a handler bug"),
            _ => routes::plain(200, "fine\n"),
        });
        let (listener, addr) = bind("127.0.0.1:0").unwrap();
        let shutdown = Shutdown::new();
        let server = {
            let (r, s) = (registry.clone(), shutdown.clone());
            std::thread::spawn(move || serve_with(listener, &r, handler, s, Limits::default()))
        };

        // Two requests on one keep-alive connection: the panic costs the first, not the connection.
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        c.write_all(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\nGET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut raw = String::new();
        let _ = c.read_to_string(&mut raw);
        let statuses: Vec<&str> = raw.lines().filter(|l| l.starts_with("HTTP/1.1 ")).collect();
        assert_eq!(statuses, ["HTTP/1.1 500 Internal Server Error", "HTTP/1.1 200 OK"], "{raw}");
        assert!(raw.ends_with("fine\n"), "{raw}");
        assert_eq!(rejected(&registry, "handler_panic"), 1.0);
        assert_eq!(rejected(&registry, "evicted"), 0.0);

        shutdown.trigger();
        assert!(server.join().expect("the server thread did not panic").is_ok());
    }

    #[test]
    fn serve_reports_what_stops_it_from_running() {
        let registry = Registry::new();
        let handler: Handler = Arc::new(|_, _| routes::plain(200, "\n"));
        Counters::register(&registry).unwrap();
        let (listener, _) = bind("127.0.0.1:0").unwrap();
        // Its counter is already registered: the server refuses to run rather than count nowhere.
        let e = serve_with(listener, &registry, handler, Shutdown::new(), Limits::default()).unwrap_err();
        assert!(e.to_string().contains("cannot register"), "{e}");
        assert!(bind("256.0.0.1:0").is_err());
    }
}
