//! A hostile WebSocket peer against the real ingester binary (issue 9, section 2): a ping flood
//! that never reads our pongs, ping and pong floods that do, a peer that accepts and then fails
//! (with and without announcing `serverShutdown`), and floods of control replies and shutdown
//! notices. The peer is written here: tungstenite's handshake over a std listener on
//! 127.0.0.1, then raw frames, as fast as a socket takes them.
//!
//! Bounds are on memory, counts, states and log lines; the only times are generous waits.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// The floods take a core each: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const TRADE: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":ID,"p":"1.5","q":"2","T":1,"m":true,"M":true}}"#;
const SHUTDOWN: &str = r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}"#;
const CONTROL_REPLY: &str = r#"{"result":null,"id":1}"#;

/// A server-to-client frame (unmasked) with a payload of at most 125 bytes.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 125);
    let mut f = vec![0x80 | opcode, payload.len() as u8];
    f.extend_from_slice(payload);
    f
}

/// About 64 KiB of the same frame, for `write_all` in a loop.
fn burst(one: &[u8]) -> Vec<u8> {
    one.repeat((64 << 10) / one.len())
}

/// A peer on 127.0.0.1: each accepted connection is upgraded and handed, with its sequence
/// number, to `handle` on a thread of its own, until `stop`.
struct Peer {
    url: String,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Peer {
    fn spawn(handle: impl Fn(TcpStream, usize, &AtomicBool) + Send + Sync + 'static) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s, handle) = (accepted.clone(), stop.clone(), Arc::new(handle));
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let n = a.fetch_add(1, Ordering::Relaxed);
                let (s, handle) = (s.clone(), handle.clone());
                std::thread::spawn(move || {
                    if let Ok(ws) = tungstenite::accept(tcp) {
                        handle(ws.into_inner(), n, &s);
                    }
                });
            }
        });
        Peer { url, accepted, stop }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Writes `bytes` over and over until the client goes or the test ends.
fn flood(mut tcp: &TcpStream, bytes: &[u8], stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) && tcp.write_all(bytes).is_ok() {}
}

/// Reads and discards what the client sends (our pongs), until it goes.
fn drain(tcp: &TcpStream) {
    let mut tcp = tcp.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 << 10];
        while matches!(tcp.read(&mut buf), Ok(n) if n > 0) {}
    });
}

/// The ingester against `url`, once its metrics server answers.
fn spawn_ingester(url: &str) -> Ingester {
    let ing =
        Ingester::spawn(&[("BINANCE_WS_URL", url), ("SYMBOLS", "btcusdt"), ("SINK", "null"), ("BACKFILL", "off")]);
    let t = Instant::now();
    while ing.get("/healthz").0 == 0 {
        assert!(t.elapsed() < Duration::from_secs(30), "metrics server never answered:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    ing
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn attempts(ing: &Ingester, result: &str) -> f64 {
    // A result label appears with its first attempt: absent means none yet.
    ing.metric_if_present(&format!("marketflow_ingestor_ws_connect_attempts_total{{result=\"{result}\"}}"))
        .unwrap_or(0.0)
}

/// The JSON log lines whose message starts with `prefix`.
fn log_lines(ing: &Ingester, prefix: &str) -> Vec<serde_json::Value> {
    ing.logs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
        .collect()
}

/// Memory the ingester may hold under the flood: its idle footprint (about 10 MiB) plus the
/// per-connection bound of README "Bounds" with room to spare. The old code passed 1 GiB.
const RSS_BOUND_KIB: u64 = 64 << 10;

#[test]
fn a_ping_flood_that_never_reads_our_pongs_costs_the_connection_not_the_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pings = burst(&frame(0x9, &[b'p'; 125]));
    // Never reads: our pongs back up in the kernel, then in the WebSocket's write buffer.
    let peer = Peer::spawn(move |tcp, _, stop| flood(&tcp, &pings, stop));
    let mut ing = spawn_ingester(&peer.url);
    let pid = ing.child.id();
    let t = Instant::now();
    let mut max_rss = 0;
    while t.elapsed() < Duration::from_secs(8) {
        max_rss = max_rss.max(rss_kib(pid));
        assert!(max_rss < RSS_BOUND_KIB, "RSS {max_rss} KiB under a ping flood");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("peak RSS {max_rss} KiB over {} connections", peer.accepted());
    assert!(peer.accepted() >= 1);
    assert!(attempts(&ing, "ping_flood") >= 1.0, "the flood must cost the connection:\n{}", ing.dump_logs());
    let lost = log_lines(&ing, "connection lost: ping flood");
    assert!(!lost.is_empty(), "a clear error in the log:\n{}", ing.dump_logs());
    let (st, _) = ing.terminate(Duration::from_secs(10));
    assert!(st.success(), "{}", ing.dump_logs());
}

#[test]
fn ping_and_pong_floods_leave_the_loop_alive_and_sigterm_obeyed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pings = burst(&frame(0x9, b"ping"));
    let pongs = burst(&frame(0xA, b""));
    // First a ping flood (a protocol violation: dropped), then unsolicited pongs, which Binance
    // allows from a client and we tolerate from a server: only the read budget keeps the loop
    // turning. Both read what we send.
    let peer = Peer::spawn(move |tcp, n, stop| {
        drain(&tcp);
        flood(&tcp, if n == 0 { &pings } else { &pongs }, stop);
    });
    let mut ing = spawn_ingester(&peer.url);
    let t = Instant::now();
    while attempts(&ing, "ping_flood") < 1.0 || peer.accepted() < 2 {
        assert!(t.elapsed() < Duration::from_secs(30), "no ping flood detected:\n{}", ing.dump_logs());
        assert_eq!(ing.get("/healthz").0, 200, "heartbeat during the ping flood");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The pong flood runs now; the loop must keep beating (it goes stale after 5 s).
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(7) {
        assert_eq!(ing.get("/healthz").0, 200, "heartbeat during the pong flood");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(peer.accepted(), 2, "pongs are tolerated: the connection stays");
    let (st, took) = ing.terminate(Duration::from_secs(10));
    assert!(st.success(), "{}", ing.dump_logs());
    eprintln!("stopped {took:?} after SIGTERM, mid-flood");
}

/// How many connection attempts a flapping peer gets within `window`, and the ingester.
fn flapping(
    window: Duration,
    handle: impl Fn(TcpStream, usize, &AtomicBool) + Send + Sync + 'static,
) -> (usize, Ingester) {
    let peer = Peer::spawn(handle);
    let ing = spawn_ingester(&peer.url);
    let t = Instant::now();
    while t.elapsed() < window {
        assert_eq!(ing.get("/healthz").0, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    (peer.accepted(), ing)
}

/// Garbage with reserved bits set: the client fails the connection (`ws_protocol`).
fn break_connection(mut tcp: &TcpStream) {
    let _ = tcp.write_all(&[0xff, 0xff, 0xde, 0xad, 0xbe, 0xef]);
}

/// Attempts a backoff that keeps growing allows in 15 s: 250 ms doubling, jittered by half
/// (0.125 + 0.25 + ... + 8 s < 15 s < that + 16 s: at most 8 attempts), plus slack.
const ATTEMPTS_IN_15S: usize = 10;

#[test]
fn a_peer_that_accepts_then_fails_sees_a_growing_backoff() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Upgrades, sends a valid trade (data alone does not make a connection stable), then fails.
    let (accepted, mut ing) = flapping(Duration::from_secs(15), |mut tcp, n, _| {
        let trade = TRADE.replace("ID", &(n + 1).to_string());
        let _ = tcp.write_all(&frame(0x1, trade.as_bytes()));
        std::thread::sleep(Duration::from_millis(100));
        break_connection(&tcp);
    });
    eprintln!("{accepted} connection attempts in 15 s");
    // The old code reset the backoff on every open: a reconnect every 125-250 ms, 60+ here.
    assert!(accepted >= 4, "the peer must have been reached a few times: {accepted}");
    assert!(accepted <= ATTEMPTS_IN_15S, "{accepted} connection attempts in 15 s:\n{}", ing.dump_logs());
    assert!(attempts(&ing, "lost") >= 3.0);
    let (st, _) = ing.terminate(Duration::from_secs(10));
    assert!(st.success(), "{}", ing.dump_logs());
}

#[test]
fn a_peer_announcing_shutdown_after_every_open_neither_floods_attempts_nor_grows_the_list() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Upgrades, announces serverShutdown, and fails 300 ms later (after the loop has rotated).
    let (accepted, mut ing) = flapping(Duration::from_secs(15), |mut tcp, _, _| {
        let _ = tcp.write_all(&frame(0x1, SHUTDOWN.as_bytes()));
        std::thread::sleep(Duration::from_millis(300));
        break_connection(&tcp);
    });
    let rotations = ing.metric("marketflow_ingestor_ws_rotations_total");
    eprintln!("{accepted} connection attempts and {rotations} rotations in 15 s");
    assert!(rotations >= 3.0, "the peer must have asked for rotations: {rotations}\n{}", ing.dump_logs());
    // Each rotation's replacement takes a retired connection's slot: with one planned
    // connection, slots 0 and 1 only (the old code appended one per rotation).
    let slots: Vec<u64> = log_lines(&ing, "rotating connection").iter().filter_map(|v| v["new"].as_u64()).collect();
    assert!(!slots.is_empty());
    assert!(slots.iter().all(|&s| s <= 1), "replacement slots {slots:?}");
    // The replacement inherits the backoff (the old code reconnected every loop turn: 150 here).
    assert!(accepted <= ATTEMPTS_IN_15S, "{accepted} connection attempts in 15 s:\n{}", ing.dump_logs());
    let live = ing.metric_sum("marketflow_ingestor_ws_connections");
    assert!(live <= 2.0, "{live} connections alive");
    let (st, _) = ing.terminate(Duration::from_secs(10));
    assert!(st.success(), "{}", ing.dump_logs());
}

#[test]
fn floods_of_control_replies_and_shutdown_notices_cost_a_bounded_number_of_log_lines() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let replies = burst(&frame(0x1, CONTROL_REPLY.as_bytes()));
    let shutdown = frame(0x1, SHUTDOWN.as_bytes());
    // Every connection: control replies as fast as they go, a serverShutdown every 50 ms.
    let peer = Peer::spawn(move |mut tcp, _, stop| {
        drain(&tcp);
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) && tcp.write_all(&replies).is_ok() {
            if last.elapsed() >= Duration::from_millis(50) {
                last = Instant::now();
                let _ = tcp.write_all(&shutdown);
            }
        }
    });
    let mut ing = spawn_ingester(&peer.url);
    let received = |kind: &str| ing.metric(&format!("marketflow_ingestor_messages_received_total{{type=\"{kind}\"}}"));
    let t = Instant::now();
    while received("control_reply") < 50_000.0 || received("server_shutdown") < 40.0 {
        assert!(t.elapsed() < Duration::from_secs(60), "the floods did not arrive:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    let lines = ing.logs.lock().unwrap().len();
    eprintln!(
        "{lines} log lines for {} control replies and {} shutdown notices",
        received("control_reply"),
        received("server_shutdown")
    );
    // Start-up and connection lines, and one line per kind per 10 s: a few dozen. The old code
    // wrote one per frame.
    let head = ing.logs.lock().unwrap().iter().take(40).cloned().collect::<Vec<_>>().join("\n");
    assert!(lines < 150, "{lines} log lines, the first:\n{head}");
    let (st, _) = ing.terminate(Duration::from_secs(10));
    assert!(st.success(), "{}", ing.dump_logs());
}
