//! TRANSPORT=sbe in operation: the lane leaves SBE for JSON when SBE fails (the API key refused:
//! at once; the endpoint unreachable: after `SBE_MAX_FAILURES` attempts), comes back to SBE
//! after `SBE_RETRY_SECS` (make-before-break), and starts on SBE late when `exchangeInfo` failed
//! at start; each switch said by `transport_info`, `/readyz` and a log line, and no trade lost:
//! every trade of the market in the topic exactly once, live or backfilled.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::*;
use binance_sim::{RestDown, RestOutage, SimConfig, SimHandle, StreamKind};

const KEY: &str = "e2e-switch-key";

/// The series of `transport_info` at 1 for `used` and `reason` (SBE asked for).
fn transport(used: &str, reason: &str) -> String {
    format!("marketflow_ingestor_transport_info{{reason=\"{reason}\",requested=\"sbe\",used=\"{used}\"}}")
}

/// Waits until `series` is exported with value 1.
fn wait_for(ing: &Ingester, series: &str, within: Duration) {
    let t = Instant::now();
    while ing.metric_if_present(series) != Some(1.0) {
        assert!(t.elapsed() < within, "{series} not 1 after {within:?}:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for the market's last trade, then checks the topic holds every trade once (live or
/// backfilled, nothing named missing) and stops the ingester cleanly.
fn every_trade_once(sim: &SimHandle, mut ing: Ingester, topic: &str) -> Completeness {
    let per = sim.market.total_trades_per_symbol().unwrap();
    let t = Instant::now();
    while sim.market.generated(StreamKind::Trade) < per {
        assert!(t.elapsed() < Duration::from_secs(120), "market never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    let want = per as usize * sim.market.cfg.symbols.len();
    let msgs = consume(topic, want, Duration::from_secs(120), Duration::from_secs(3));
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    let c = verify_complete(&msgs, &sim.market, per, |_| false);
    assert_eq!((c.live + c.backfilled) as usize, want, "{c:?}");
    c
}

/// An upgrade answered 401 with Binance's -2015 body: one attempt, then JSON at once (not an
/// attempt every few seconds against the 300-per-5-minutes limit), and said so.
#[test]
fn a_refused_api_key_switches_to_json_at_once_and_loses_nothing() {
    let sim = sim(sbe_market(KEY, 1_000.0, 10));
    let topic = unique_topic("e2e_switch_key");
    let (sbe, key) = (sim.sbe_url(), key_file("wrong-key", "not-the-key"));
    let ing = start(&sim, &topic, &sbe_env(&sbe, &key, &[("STREAMS", "trade"), ("SBE_RETRY_SECS", "0")]));
    wait_for(&ing, &transport("json", "key_refused"), Duration::from_secs(30));
    let readyz = ing.get("/readyz").1;
    assert!(readyz.contains("transport=json (sbe unavailable: key_refused)\n"), "{readyz}");
    let line = ing.log_event("sbe failing (key_refused): streaming JSON").expect("the switch's log line");
    assert_eq!(line["reason"], "key_refused");
    let refused = ing.metric("marketflow_ingestor_ws_connect_attempts_total{result=\"key_refused\"}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ing.metric("marketflow_ingestor_ws_connect_attempts_total{result=\"key_refused\"}"), refused);
    // One refusal per planned connection (one here): never retried.
    assert_eq!((refused, sim.market.sbe_key_refused.load(Ordering::Relaxed)), (1.0, 1));
    let logs = ing.dump_logs();
    assert!(!logs.contains("not-the-key"), "the key was logged");
    every_trade_once(&sim, ing, &topic);
}

/// A TCP forwarder standing for the SBE endpoint, which the test takes down and brings back on
/// the same port: down, it refuses connections and cuts those open.
struct Forwarder {
    port: u16,
    target: SocketAddr,
    running: Option<Running>,
}

/// While up: the accepting thread's stop flag, the thread, and every socket it opened.
type Running = (Arc<AtomicBool>, JoinHandle<()>, Arc<Mutex<Vec<TcpStream>>>);

impl Forwarder {
    fn new(target: SocketAddr) -> Forwarder {
        Forwarder { port: free_port(), target, running: None }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop, open) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (s, o, target) = (stop.clone(), open.clone(), self.target);
        let accept = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(target) else { continue };
                o.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        self.running = Some((stop, accept, open));
    }

    fn down(&mut self) {
        if let Some((stop, accept, open)) = self.running.take() {
            stop.store(true, Ordering::Relaxed);
            accept.join().unwrap();
            for c in open.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The SBE endpoint goes away while streaming: after 3 failed attempts the lane streams JSON
/// (what was missed meanwhile backfilled), a retry while SBE is still away is given up with the
/// JSON connection streaming on, and once SBE is back the next retry moves the lane back to SBE
/// make-before-break. Every trade once.
#[test]
fn sbe_failures_switch_to_json_and_the_retry_brings_sbe_back_losing_nothing() {
    let sim = sim(sbe_market(KEY, 1_000.0, 30));
    let mut sbe = Forwarder::new(sim.sbe_addr);
    sbe.up();
    let topic = unique_topic("e2e_switch_failures");
    let (url, key) = (sbe.url(), key_file("key", KEY));
    let extra = [("STREAMS", "trade"), ("SBE_MAX_FAILURES", "3"), ("SBE_RETRY_SECS", "4")];
    let ing = start(&sim, &topic, &sbe_env(&url, &key, &extra));
    assert_eq!(ing.metric(&transport("sbe", "")), 1.0, "{}", ing.dump_logs());
    std::thread::sleep(Duration::from_secs(3));

    sbe.down();
    wait_for(&ing, &transport("json", "sbe_failures"), Duration::from_secs(30));
    let readyz = ing.get("/readyz").1;
    assert!(readyz.contains("transport=json (sbe unavailable: sbe_failures)\n"), "{readyz}");
    assert!(ing.log_event("sbe failing (sbe_failures): streaming JSON").is_some(), "{}", ing.dump_logs());
    // The retry 4 s later finds SBE still away: given up, JSON streams on.
    let t = Instant::now();
    while ing.log_event("replacement on the failing transport given up").is_none() {
        assert!(t.elapsed() < Duration::from_secs(30), "no retry given up:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ing.get("/readyz").0, 200, "JSON kept streaming through the failed retry");

    sbe.up();
    wait_for(&ing, &transport("sbe", ""), Duration::from_secs(30));
    assert!(ing.get("/readyz").1.contains("transport=sbe\n"));
    // Back on SBE by a rotation that closed the JSON connection once SBE streamed.
    let t = Instant::now();
    while ing.log_event("replacement streaming: closing the old connection").is_none() {
        assert!(t.elapsed() < Duration::from_secs(30), "JSON never handed over:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let c = every_trade_once(&sim, ing, &topic);
    assert!(c.backfilled > 0, "the SBE outage's trades came from REST: {c:?}");
    sbe.down();
}

/// `exchangeInfo` fails at start (REST answers 503 for its first seconds): the lane streams
/// JSON for want of scales, fetches them again, and switches to SBE once they come.
#[test]
fn scales_missing_at_start_are_fetched_again_and_the_lane_moves_to_sbe() {
    let sim = sim(SimConfig {
        rest_outage: Some(RestOutage {
            how: RestDown::Status(503),
            after: Duration::ZERO,
            len: Duration::from_secs(5),
        }),
        ..sbe_market(KEY, 1_000.0, 15)
    });
    let topic = unique_topic("e2e_switch_scales");
    let (sbe, key) = (sim.sbe_url(), key_file("key-scales", KEY));
    let extra = [("BINANCE_REST_FALLBACK_URL", "off"), ("STREAMS", "trade"), ("SBE_SCALES_REFRESH_SECS", "1")];
    let ing = start(&sim, &topic, &sbe_env(&sbe, &key, &extra));
    assert_eq!(ing.metric(&transport("json", "no_scales")), 1.0, "{}", ing.dump_logs());
    wait_for(&ing, &transport("sbe", ""), Duration::from_secs(40));
    assert!(ing.get("/readyz").1.contains("transport=sbe\n"));
    assert!(ing.log_event("decimal scales updated").is_some());
    every_trade_once(&sim, ing, &topic);
    assert!(sim.market.sbe_key_refused.load(Ordering::Relaxed) == 0);
}
