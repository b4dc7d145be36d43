//! Real Binance frames, recorded from the live service (common/captures.rs names the public
//! captures and their licences), replayed byte for byte over a WebSocket through the whole
//! ingester into the real local Kafka, and every field of every record read back checked against
//! an independent reading of its frame (serde_json here, sonic-rs in the ingester): exact decimal
//! strings, sides, ids, times, keys, Kafka timestamps, and the order per symbol. The documented
//! examples the fixture tests use are one frame each; these are what Binance really sends:
//! thousand-level depth updates, padded decimals, `M` fields, frames of several symbols
//! interleaved.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{ErrorKind, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::Message;

use crate::common::captures::{self, Capture};
use crate::common::*;

/// A WebSocket server on loopback that sends `frames`, each as one text message exactly as
/// recorded, to the first connection, then holds every connection open without data until
/// dropped (the ingester must not be given a reason to reconnect and be served twice).
struct ReplayServer {
    url: String,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl ReplayServer {
    fn start(frames: Vec<String>) -> ReplayServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let accept = std::thread::spawn(move || {
            let mut frames = Some(frames);
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        tcp.set_nonblocking(false).unwrap();
                        let (frames, s) = (frames.take(), s.clone());
                        std::thread::spawn(move || serve(tcp, frames, &s));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        ReplayServer { url, stop, accept: Some(accept) }
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Binance's REST on loopback as the capture saw it: `/api/v3/depth` answers each symbol's
/// recorded snapshot (whatever `limit` is asked: the recording has one depth), anything else 404.
/// The ingester's books start from these, as they would have from Binance that day.
fn recorded_rest(snapshots: &[(String, String)]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies: HashMap<String, String> = snapshots.iter().cloned().collect();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let req = read_request_head(&mut c);
            let head = String::from_utf8_lossy(&req);
            let target = head.split_whitespace().nth(1).unwrap_or("");
            let symbol = target.strip_prefix("/api/v3/depth?symbol=").and_then(|q| q.split('&').next());
            let (status, body) = match symbol.and_then(|s| bodies.get(&s.to_ascii_uppercase())) {
                Some(b) => ("200 OK", b.as_str()),
                None => ("404 Not Found", r#"{"code":-1100,"msg":"not recorded"}"#),
            };
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn serve(tcp: std::net::TcpStream, frames: Option<Vec<String>>, stop: &AtomicBool) {
    let Ok(mut ws) = tungstenite::accept(tcp) else { return };
    for f in frames.into_iter().flatten() {
        if ws.write(Message::text(f)).is_err() {
            return;
        }
    }
    if ws.flush().is_err() {
        return;
    }
    // Answer what the client sends (pongs, a close) until it goes or the test ends.
    let _ = ws.get_ref().set_read_timeout(Some(Duration::from_millis(200)));
    while !stop.load(Ordering::Relaxed) {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// A frame's record and the Kafka timestamp it must carry.
type Expected = (Value, Option<i64>);

/// The record a frame must become, read independently of the ingester (serde_json, straight
/// from Binance's documented keys), without `recv_time_ns` (our own clock); and the Kafka
/// timestamp it must carry (`None`: the receive time, for a book ticker).
fn expected(frame: &str) -> (Value, Option<i64>) {
    let v: Value = serde_json::from_str(frame).expect("a recorded frame is JSON");
    let (stream, d) = (v["stream"].as_str().expect("combined frame"), &v["data"]);
    let kind = stream.split_once('@').expect("<symbol>@<kind>").1;
    let side = |m: &Value| if m.as_bool().expect("m is a bool") { "sell" } else { "buy" };
    let rec = match kind {
        "trade" => json!({
            "type": "trade", "exchange": "binance", "symbol": d["s"], "trade_id": d["t"], "price": d["p"],
            "qty": d["q"], "side": side(&d["m"]), "trade_time_ms": d["T"], "event_time_ms": d["E"],
        }),
        "aggTrade" => json!({
            "type": "agg_trade", "exchange": "binance", "symbol": d["s"], "agg_id": d["a"], "first_trade_id": d["f"],
            "last_trade_id": d["l"], "price": d["p"], "qty": d["q"], "side": side(&d["m"]),
            "trade_time_ms": d["T"], "event_time_ms": d["E"],
        }),
        k if k.starts_with("kline_") => {
            let k = &d["k"];
            json!({
                "type": "kline", "exchange": "binance", "symbol": d["s"], "interval": k["i"],
                "open_time_ms": k["t"], "close_time_ms": k["T"], "open": k["o"], "high": k["h"], "low": k["l"],
                "close": k["c"], "volume": k["v"], "quote_volume": k["q"], "trades": k["n"],
                "taker_buy_volume": k["V"], "taker_buy_quote_volume": k["Q"], "closed": k["x"],
                "first_trade_id": k["f"], "last_trade_id": k["L"], "event_time_ms": d["E"],
            })
        }
        "bookTicker" => json!({
            "type": "book_ticker", "exchange": "binance", "symbol": d["s"], "update_id": d["u"],
            "bid_price": d["b"], "bid_qty": d["B"], "ask_price": d["a"], "ask_qty": d["A"],
        }),
        "depth" | "depth@100ms" => json!({
            "type": "depth_update", "exchange": "binance", "symbol": d["s"], "first_update_id": d["U"],
            "final_update_id": d["u"], "bids": d["b"], "asks": d["a"], "event_time_ms": d["E"],
        }),
        other => panic!("the capture holds a stream kind this test does not know: {other}"),
    };
    // Every field was there to read: a missing key would have become `null` above.
    assert!(rec.as_object().unwrap().values().all(|v| !v.is_null()), "frame lacks a field: {frame:.200}");
    (rec, d["E"].as_i64().filter(|_| kind != "bookTicker"))
}

/// Replays `capture` through the ingester subscribed to `streams` of `symbols`, then checks every
/// record in Kafka against its frame.
fn replay(capture: &Capture, symbols: &str, streams: &str) {
    let frames = capture.frames.len();
    let want: Vec<(Value, Option<i64>)> = capture.frames.iter().map(|f| expected(f)).collect();
    let server = ReplayServer::start(capture.frames.clone());
    let topic = unique_topic("replay");
    // REST answers the snapshots recorded with the frames, so each depth symbol's book starts as
    // it would have that day; no backfill: a recorded session has nothing to fetch, and a gap
    // would show as a gap record.
    let rest = recorded_rest(&capture.snapshots);
    let books = capture.snapshots.len();
    let mut ing = Ingester::spawn(&[
        ("SYMBOLS", symbols),
        ("STREAMS", streams),
        ("BINANCE_WS_URL", &server.url),
        ("BINANCE_REST_URL", &rest),
        ("BACKFILL", "off"),
        ("RECOVER_FROM_KAFKA", "off"),
        ("DEPTH_SNAPSHOT_INTERVAL", "0"),
        ("KAFKA_BROKER", kafka()),
        ("KAFKA_TOPIC", &topic),
    ]);
    ing.wait_ready(Duration::from_secs(60));
    // Every frame's record and one start snapshot per depth symbol.
    let records = frames + books;
    let t = Instant::now();
    while ing.metric_sum("marketflow_ingestor_messages_sent_total") < records as f64 {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "{frames} frames and {books} books, {} acknowledged:\n{}",
            ing.metric_sum("marketflow_ingestor_messages_sent_total"),
            ing.dump_logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(ing.metric_sum("marketflow_ingestor_messages_rejected_total"), 0.0, "{}", ing.dump_logs());
    let (st, _) = ing.terminate(Duration::from_secs(30));
    assert!(st.success(), "{}", ing.dump_logs());
    drop(server);

    let mut got = consume(&topic, records, Duration::from_secs(120), Duration::from_secs(3));
    assert_eq!(got.len(), records, "one record per frame and one snapshot per book, no more (no gap, no duplicate)");
    // A symbol's records share its partition; within it, Kafka's order is the order received,
    // per stream: a depth symbol's diffs wait for its snapshot while its trades go on.
    got.sort_by_key(|m| (m.partition, m.offset));
    let rest_books: HashMap<&str, Value> = capture
        .snapshots
        .iter()
        .map(|(s, b)| (s.as_str(), serde_json::from_str(b).expect("a recorded snapshot")))
        .collect();
    let mut started = HashSet::new();
    let mut want_by_stream: HashMap<(String, String), VecDeque<&Expected>> = HashMap::new();
    for w in &want {
        let key = (w.0["symbol"].as_str().unwrap().to_string(), w.0["type"].as_str().unwrap().to_string());
        want_by_stream.entry(key).or_default().push_back(w);
    }
    for (i, m) in got.iter().enumerate() {
        let mut p = m.payload.clone();
        let sym = p["symbol"].as_str().unwrap_or_else(|| panic!("record {i} has no symbol: {p}")).to_string();
        assert_eq!(m.key, sym.as_bytes(), "key = symbol: {p}");
        let recv_ns = p.as_object_mut().unwrap().remove("recv_time_ns").and_then(|v| v.as_u64());
        let recv_ns = recv_ns.unwrap_or_else(|| panic!("record {i} has no recv_time_ns: {p}"));
        let kind = p["type"].as_str().unwrap_or_default().to_string();
        if kind == "depth_snapshot" {
            // The book as REST recorded it, before any of the symbol's diffs, once.
            let rest = &rest_books[sym.as_str()];
            assert_eq!(
                (&p["reason"], &p["last_update_id"], &p["bids"], &p["asks"]),
                (&Value::from("start"), &rest["lastUpdateId"], &rest["bids"], &rest["asks"]),
                "{sym}: the start snapshot is the recorded REST book"
            );
            assert!(started.insert(sym.clone()), "{sym}: a second snapshot: {p}");
            continue;
        }
        if kind == "depth_update" {
            assert!(started.contains(&sym), "{sym}: a depth_update before the book's snapshot (offset {})", m.offset);
        }
        let (w, ts) = want_by_stream
            .get_mut(&(sym.clone(), kind.clone()))
            .and_then(|q| q.pop_front())
            .unwrap_or_else(|| panic!("{sym} {kind}: more records than frames: {p}"));
        assert_eq!(&p, w, "record {i} of {sym} (offset {}) differs from its frame", m.offset);
        let want_ts = ts.unwrap_or((recv_ns / 1_000_000) as i64);
        assert_eq!(m.timestamp_ms, Some(want_ts), "Kafka timestamp = event time (book ticker: receive time): {p}");
    }
    assert_eq!(started.len(), books, "every depth symbol's book started");
    assert!(want_by_stream.values().all(|q| q.is_empty()), "frames never published");
}

/// hftbacktest's BTCUSDT and ETHUSDT sessions (trade, bookTicker, depth@100ms): about 75,000
/// frames, including depth updates of hundreds of levels.
#[test]
fn recorded_binance_frames_of_two_busy_symbols_reach_kafka_exactly() {
    let dir = captures::captures_dir();
    let mut c = captures::hftbacktest(&dir, &captures::HFT_BTCUSDT, "BTCUSDT");
    let eth = captures::hftbacktest(&dir, &captures::HFT_ETHUSDT, "ETHUSDT");
    c.frames.extend(eth.frames);
    c.snapshots.extend(eth.snapshots);
    assert!(c.frames.len() > 70_000 && c.snapshots.len() == 2, "{} frames", c.frames.len());
    replay(&c, "btcusdt,ethusdt", "trade,bookTicker,depth@100ms");
}

/// cryptofeed's session of four listings (aggTrade, kline_1m, bookTicker, depth@100ms), recorded
/// in 2021: older frames of the same shapes, quieter symbols, a euro and an ether quote.
#[test]
fn recorded_binance_frames_of_four_listings_with_klines_and_agg_trades_reach_kafka_exactly() {
    let dir = captures::captures_dir();
    let c = captures::cryptofeed(&dir);
    assert!(c.frames.len() > 200 && c.snapshots.len() == 4, "{} frames", c.frames.len());
    replay(&c, "nknusdt,blzeth,lrcbtc,runeeur", "depth@100ms,bookTicker,kline_1m,aggTrade");
}
