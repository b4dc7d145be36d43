//! Hostile clients against the real metrics/health server, in-process on 127.0.0.1 port 0: a
//! client that pipelines requests and never reads, an endless header, a thousand idle sockets, a
//! reader that stalls. The probes must keep answering, and threads, memory and connections must
//! stay bounded. The tests run one at a time (they measure this process's threads and memory).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use marketflow_ingestor::http;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::shutdown::Shutdown;

/// Bounds a wait, never a speed: a slow machine only makes the test take longer.
const GENEROUS: Duration = Duration::from_secs(15);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

struct Server {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

impl Server {
    /// `symbols` sizes `/metrics` (about 8 KiB each).
    fn start(symbols: usize, limits: http::Limits) -> Server {
        let names: Vec<String> = (0..symbols).map(|i| format!("sym{i}usdt")).collect();
        let metrics = Metrics::new(&names);
        // Alive as during start-up: `/healthz` answers 200 without an event loop.
        metrics.health.starting.store(true, Ordering::Relaxed);
        let shutdown = Shutdown::new();
        let (listener, addr) = http::bind("127.0.0.1:0").unwrap();
        let (m, s) = (metrics.clone(), shutdown.clone());
        std::thread::spawn(move || {
            let _ = http::serve(listener, m, s, limits);
        });
        Server { addr, metrics, shutdown }
    }

    /// One request on a fresh connection: status and body, or `None` if no answer came in time.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut c = TcpStream::connect(self.addr).unwrap();
        c.set_read_timeout(Some(GENEROUS)).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        let _ = c.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((status, body))
    }

    /// `marketflow_ingestor_http_rejected_total{reason}`, 0 if absent.
    fn rejected(&self, reason: &str) -> u64 {
        let series = format!("marketflow_ingestor_http_rejected_total{{reason=\"{reason}\"}} ");
        let text = self.metrics.render();
        text.lines().find_map(|l| l.strip_prefix(series.as_str())?.parse().ok()).unwrap_or(0)
    }

    /// Waits (bounded) until `cond` holds; returns whether it did.
    fn wait_until(&self, mut cond: impl FnMut(&Server) -> bool) -> bool {
        let t = Instant::now();
        while t.elapsed() < GENEROUS {
            if cond(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        cond(self)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Not joined: a server stuck on a client (the bug these tests catch) must not hang the run.
        self.shutdown.trigger();
    }
}

/// A field of /proc/self/status, e.g. `Threads` or `VmRSS` (kB).
fn proc_status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A client that sends `n` pipelined `GET /metrics` and reads nothing; its tiny receive buffer
/// makes the server's writes block after a response or so.
fn pipelining_hog(addr: SocketAddr, n: usize) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    socket2::SockRef::from(&c).set_recv_buffer_size(4096).unwrap();
    let reqs = "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n".repeat(n);
    c.write_all(reqs.as_bytes()).unwrap();
    c
}

/// How a read-everything on `c` ended: the bytes read and whether the peer closed (EOF or reset)
/// rather than leaving the socket open and silent.
fn drain(c: &mut TcpStream) -> (Vec<u8>, bool) {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return (got, false),
            Err(_) => return (got, true),
        }
    }
}

#[test]
fn pipelined_metrics_never_read_do_not_block_healthz() {
    let _serial = serial();
    // A write timeout far past the test: the hog stays connected throughout.
    let limits = http::Limits { write_timeout: Duration::from_secs(300), ..http::Limits::default() };
    let server = Server::start(20, limits);
    let hog = pipelining_hog(server.addr, 200);
    // Time for the server to fill the hog's buffers and block on it (the old server's one thread
    // then hung); not an assertion.
    std::thread::sleep(Duration::from_secs(2));

    // `None` is no answer within the generous bound: the probe would have failed.
    assert_eq!(server.get("/healthz"), Some((200, "ok\n".to_string())));
    assert_eq!(server.get("/readyz"), Some((503, "subscribed=false sink=false\n".to_string())));
    // The hog was still connected all along: nothing cut it.
    assert_eq!(server.rejected("write_timeout"), 0);
    assert!(hog.peer_addr().is_ok());
}

#[test]
fn a_header_past_the_limit_gets_431_and_memory_does_not_grow_with_it() {
    let _serial = serial();
    let server = Server::start(3, http::Limits::default());
    assert_eq!(server.get("/healthz").map(|r| r.0), Some(200));
    let rss_before_kb = proc_status("VmRSS");

    // 64 MiB of one header line that never ends (the reproduction, one connection).
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_write_timeout(Some(GENEROUS)).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nX-Big: ").unwrap();
    let chunk = vec![b'a'; 64 << 10];
    let mut sent = 0usize;
    while sent < 64 << 20 {
        match c.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break, // the server closed the connection
        }
    }
    let (answer, closed) = drain(&mut c);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 431") || (answer.is_empty() && closed),
        "expected 431 or a closed connection after {sent} header bytes, got closed={closed} {:?}",
        &answer[..answer.len().min(200)]
    );
    assert!(closed, "the connection stayed open after an oversized header");

    let grown_kb = proc_status("VmRSS").saturating_sub(rss_before_kb);
    // The server keeps at most 16 KiB of a request head; 16 MiB leaves room for the allocator and
    // the test itself, and is a quarter of what was sent.
    assert!(grown_kb < 16 << 10, "RSS grew by {grown_kb} kB after {sent} bytes of header");
    assert!(server.wait_until(|s| s.rejected("header_too_large") == 1));
    assert_eq!(server.get("/healthz").map(|r| r.0), Some(200));
}

#[test]
fn a_thousand_idle_connections_stay_bounded_and_are_closed_after_the_read_timeout() {
    let _serial = serial();
    let limits = http::Limits { header_timeout: Duration::from_secs(2), ..http::Limits::default() };
    let server = Server::start(3, limits);
    assert_eq!(server.get("/healthz").map(|r| r.0), Some(200));
    let threads_before = proc_status("Threads");
    let fds_before = open_fds();

    let mut idle: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    // Time for the server to accept them all (the old one made a thread per socket); not an assertion.
    std::thread::sleep(Duration::from_millis(500));

    let threads = proc_status("Threads");
    assert!(threads <= threads_before + 2, "threads went from {threads_before} to {threads} with 1000 idle sockets");
    // Our 1000 client ends, plus the server's ends of at most `max_connections` of them.
    let server_fds = open_fds().saturating_sub(fds_before + 1000);
    assert!(server_fds <= limits.max_connections + 2, "the server holds {server_fds} sockets");
    assert_eq!(server.get("/healthz"), Some((200, "ok\n".to_string())));

    // Every idle socket is closed: evicted for newer ones at once, the rest after the read timeout.
    for (i, c) in idle.iter_mut().enumerate() {
        c.set_read_timeout(Some(limits.header_timeout + GENEROUS)).unwrap();
        let mut b = [0u8; 16];
        match c.read(&mut b) {
            Ok(0) => {}
            Ok(n) => panic!("idle connection {i} was sent {n} bytes"),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("idle connection {i} still open after the read timeout: {e}"),
        }
    }
    assert!(
        server.wait_until(|s| s.rejected("evicted") + s.rejected("read_timeout") == 1000),
        "evicted {} + read_timeout {} != 1000",
        server.rejected("evicted"),
        server.rejected("read_timeout")
    );
    assert!(server.rejected("read_timeout") >= 1, "none was left to time out");

    // A keep-alive connection that goes quiet after a request is closed too, counted apart.
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(limits.header_timeout + GENEROUS)).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let got = drain_until_closed(&mut c);
    assert!(String::from_utf8_lossy(&got).ends_with("\r\n\r\nok\n"), "{got:?}");
    assert!(server.wait_until(|s| s.rejected("idle_timeout") == 1));
}

/// Reads until the peer closes; panics if it stays open past the socket's read timeout.
fn drain_until_closed(c: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    match c.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => got,
        Err(e) => panic!("still open after {} bytes: {e}", got.len()),
    }
}

#[test]
fn a_client_that_stops_reading_is_cut_after_the_write_timeout() {
    let _serial = serial();
    let limits = http::Limits { write_timeout: Duration::from_secs(1), ..http::Limits::default() };
    let server = Server::start(20, limits);
    let mut hog = pipelining_hog(server.addr, 200);

    // Bounded wait for the cut; the socket itself is the judge below.
    server.wait_until(|s| s.rejected("write_timeout") == 1);
    // Reading now finds what was in flight and then the end, not an open, silent socket.
    let (got, closed) = drain(&mut hog);
    let responses = String::from_utf8_lossy(&got).matches("HTTP/1.1 200 OK").count();
    assert!(closed, "still connected after {responses} responses");
    assert!(responses < 200, "all {responses} responses were written: nothing was cut");
    assert_eq!(server.rejected("write_timeout"), 1);
    // The server goes on.
    assert_eq!(server.get("/healthz").map(|r| r.0), Some(200));
}
