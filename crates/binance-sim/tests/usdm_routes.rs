//! USD-M over the wire: Binance's 2026 routed paths (`/public` for the order book, `/market` for
//! the rest), the retired root path that acknowledges `/market` streams and then sends nothing
//! for them, and the futures connection limits.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use binance_sim::{Market, SimConfig, SimHandle, StreamKind, UsdmHandle};
use common::*;
use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

fn busy() -> SimConfig {
    SimConfig {
        symbols: vec!["btcusdt".into(), "ethusdt".into()],
        trade_rate: 400.0,
        aux_rate: 100.0,
        ping_interval: Duration::from_millis(300),
        ..SimConfig::usdm_market()
    }
}

fn usdm(sim: &SimHandle) -> &UsdmHandle {
    sim.usdm.as_ref().expect("a USD-M market")
}

/// The sequence number of the event of `kind` whose payload is exactly `v`: what was sent is
/// what the market recomputes (key order is the unit tests' concern).
fn which(m: &Market, kind: StreamKind, sym: usize, v: &Value) -> u64 {
    let mut s = String::new();
    (0..m.generated_for(kind, sym) + 1)
        .find(|&k| {
            s.clear();
            m.render(kind, sym, k, &mut s);
            serde_json::from_str::<Value>(&s).is_ok_and(|e| e == *v)
        })
        .unwrap_or_else(|| panic!("{kind}: no event of the market reads {v}"))
}

/// Reads combined frames until every stream of `wanted` has come once; the count per stream.
fn until_each(c: &mut Client, wanted: &[&str]) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    while !wanted.iter().all(|w| seen.contains_key(*w)) {
        let v = c.next().expect("a frame");
        if let Some(s) = v["stream"].as_str() {
            *seen.entry(s.to_string()).or_default() += 1;
        }
    }
    seen
}

#[test]
fn the_market_path_serves_trades_marks_candles_and_liquidations_as_the_market_recomputes_them() {
    let sim = usdm_sim(busy());
    let u = usdm(&sim);
    let kinds = [
        ("btcusdt@aggTrade", StreamKind::AggTrade),
        ("btcusdt@markPrice@1s", StreamKind::MarkPrice1s),
        ("btcusdt@markPrice", StreamKind::MarkPrice),
        ("btcusdt@kline_1m", StreamKind::Kline(1)),
        ("btcusdt@forceOrder", StreamKind::ForceOrder),
    ];
    let names: Vec<&str> = kinds.iter().map(|k| k.0).chain(["btcusdt@depth@100ms", "btcusdt@bookTicker"]).collect();
    let mut c = connect_at(u.addr, &format!("/market/stream?streams={}", names.join("/")));
    let mut checked: HashMap<&str, usize> = HashMap::new();
    while kinds.iter().any(|(name, _)| !checked.contains_key(name)) {
        let v = c.next().expect("a frame");
        let stream = v["stream"].as_str().unwrap_or_default();
        let (name, kind) = *kinds.iter().find(|k| k.0 == stream).unwrap_or_else(|| panic!("not on /market: {v}"));
        which(&u.market, kind, 0, &v["data"]);
        *checked.entry(name).or_default() += 1;
    }
    assert!(u.market.generated_for(StreamKind::Depth, 0) > 50, "depth events were due all along");
    assert_eq!(sim.market.connections.load(std::sync::atomic::Ordering::Relaxed), 0, "not the spot listener");
}

#[test]
fn the_public_path_serves_the_order_book_and_acknowledges_the_rest_without_sending_it() {
    let sim = usdm_sim(busy());
    let u = usdm(&sim);
    let names =
        ["btcusdt@depth", "btcusdt@depth@500ms", "btcusdt@bookTicker", "btcusdt@aggTrade", "btcusdt@markPrice@1s"];
    let mut c = connect_at(u.addr, &format!("/public/stream?streams={}", names.join("/")));
    let (reply, _) =
        c.request(1, r#"{"method":"SUBSCRIBE","params":["ethusdt@depth@100ms","ethusdt@forceOrder"],"id":1}"#);
    assert_eq!(reply["result"], Value::Null);
    let (list, _) = c.request(2, r#"{"method":"LIST_SUBSCRIPTIONS","id":2}"#);
    let mut all = names.to_vec();
    all.extend(["ethusdt@depth@100ms", "ethusdt@forceOrder"]);
    assert_eq!(list["result"], serde_json::json!(all), "everything is listed");
    let seen =
        until_each(&mut c, &["btcusdt@depth", "btcusdt@depth@500ms", "btcusdt@bookTicker", "ethusdt@depth@100ms"]);
    let mut more = 0;
    while more < 300 {
        let v = c.next().expect("a frame");
        let s = v["stream"].as_str().unwrap_or_default();
        assert!(s.contains("@depth") || s.ends_with("@bookTicker"), "a /market stream on /public: {v}");
        more += 1;
    }
    assert!(seen.keys().all(|s| s.contains("@depth") || s.ends_with("@bookTicker")), "{seen:?}");
    assert!(u.market.generated_for(StreamKind::AggTrade, 0) > 100, "aggregate trades were due all along");
    // A raw public stream, and a raw one on the wrong path.
    let mut raw = connect_at(u.addr, "/public/ws/ethusdt@bookTicker");
    let v = raw.next().unwrap();
    assert_eq!((v["e"].as_str(), v["s"].as_str()), (Some("bookTicker"), Some("ETHUSDT")));
    which(&u.market, StreamKind::BookTicker, 1, &v);
}

/// README §9: on the retired root URL a `/market` stream is acknowledged and then never
/// delivered, while the connection lives (pings) and public streams flow: only a per-stream
/// liveness check notices.
#[test]
fn the_retired_root_path_acknowledges_market_streams_then_sends_nothing_for_them() {
    let sim = usdm_sim(busy());
    let u = usdm(&sim);
    let mut c = connect_at(u.addr, "/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker");
    let (reply, _) = c.request(
        1,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@markPrice@1s","ethusdt@kline_1m","ethusdt@depth"],"id":1}"#,
    );
    assert_eq!(reply["result"], Value::Null, "acknowledged like any subscription");
    let (list, _) = c.request(2, r#"{"method":"LIST_SUBSCRIPTIONS","id":2}"#);
    assert_eq!(
        list["result"],
        serde_json::json!([
            "btcusdt@aggTrade",
            "btcusdt@bookTicker",
            "btcusdt@markPrice@1s",
            "ethusdt@kline_1m",
            "ethusdt@depth"
        ])
    );
    let pings = c.pings;
    let mut counts: HashMap<String, usize> = HashMap::new();
    // 300 book tickers at 100 a second: 3 s, in which 600 aggregate trades and 3 mark prices fell due.
    while counts.get("btcusdt@bookTicker").copied().unwrap_or(0) < 300 {
        let v = c.next().expect("public streams keep coming");
        *counts.entry(v["stream"].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    assert!(counts.contains_key("ethusdt@depth"), "{counts:?}");
    assert_eq!(counts.len(), 2, "only the public streams: {counts:?}");
    assert!(c.pings - pings >= 2, "the connection is alive: pings go on");
    assert!(
        u.market.generated_for(StreamKind::AggTrade, 0) > 300
            && u.market.generated_for(StreamKind::MarkPrice1s, 0) >= 3
    );

    // Raw, the same: a /market stream in the path, a public one subscribed.
    let mut raw = connect_at(u.addr, "/ws/btcusdt@markPrice");
    raw.request(3, r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":3}"#);
    for _ in 0..400 {
        let v = raw.next().expect("book tickers");
        assert_eq!(v["e"].as_str(), Some("bookTicker"), "{v}");
    }
    assert!(u.market.generated_for(StreamKind::MarkPrice, 0) >= 1, "a mark price fell due meanwhile");
}

#[test]
fn paths_are_the_listener_s_own() {
    let sim = usdm_sim(busy());
    let u = usdm(&sim);
    for path in ["/private/ws/listenkey", "/api/v3/depth", "/fapi/v1/depth", "/public/wss/x", "/marketws/x"] {
        assert_eq!(try_connect_at(u.addr, path).err(), Some(404), "{path}");
    }
    // The spot listener has no routed paths, and futures streams are unknown there.
    assert_eq!(try_connect(&sim, "/public/ws/btcusdt@depth").err(), Some(404));
    let mut spot = connect(&sim, "/stream?streams=btcusdt@markPrice@1s/btcusdt@trade");
    for _ in 0..20 {
        assert_eq!(stream(&spot.next().unwrap()), "btcusdt@trade");
    }
    // USD-M documents no timeUnit: milliseconds whatever the URL says, and no 400 for it.
    let mut c = connect_at(u.addr, "/market/ws/btcusdt@aggTrade?timeUnit=MICROSECOND");
    let v = c.next().unwrap();
    let k = which(&u.market, StreamKind::AggTrade, 0, &v);
    assert_eq!(v["T"].as_i64(), Some(u.market.expected_agg_trade(0, k).trade_time_ms));
    assert!(try_connect_at(u.addr, "/market/ws/btcusdt@aggTrade?timeUnit=NANOSECOND").is_ok());
}

/// Reads until the simulator closes the connection; its close code.
fn close_code(c: &mut Client) -> CloseCode {
    let deadline = std::time::Instant::now() + PATIENCE;
    while std::time::Instant::now() < deadline {
        match c.ws.read() {
            Ok(Message::Close(Some(f))) => return f.code,
            Ok(Message::Close(None)) => panic!("closed without a code"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    panic!("never closed");
}

#[test]
fn ten_incoming_messages_a_second_are_allowed_and_more_close_the_connection() {
    // Default USD-M pings (3 minutes): no pong counts against the limit here.
    let sim = usdm_sim(SimConfig { aux_rate: 20.0, ..SimConfig::usdm_market() });
    let u = usdm(&sim);
    let mut ten = connect_at(u.addr, "/public/ws/btcusdt@bookTicker");
    for id in 1..=10 {
        ten.send(&format!(r#"{{"method":"LIST_SUBSCRIPTIONS","id":{id}}}"#));
    }
    let (last, _) = ten.until(|v| v["id"].as_u64() == Some(10));
    assert_eq!(last["result"], serde_json::json!(["btcusdt@bookTicker"]), "ten in a second are answered");
    let mut many = connect_at(u.addr, "/public/ws/btcusdt@bookTicker");
    for id in 1..=50 {
        many.send(&format!(r#"{{"method":"LIST_SUBSCRIPTIONS","id":{id}}}"#));
    }
    assert_eq!(close_code(&mut many), CloseCode::Policy, "more than ten a second: 1008");
}

#[test]
fn a_connection_listens_to_at_most_1024_streams() {
    let sim = usdm_sim(SimConfig::usdm_market());
    let u = usdm(&sim);
    let names = |n: usize, from: usize| (from..from + n).map(|i| format!("s{i}usdt@aggTrade")).collect::<Vec<_>>();
    let url = |n: usize| format!("/market/stream?streams={}", names(n, 0).join("/"));
    assert_eq!(try_connect_at(u.addr, &url(1025)).err(), Some(400), "1025 streams in the URL");
    let mut c = connect_at(u.addr, &url(1000));
    let sub = |ids: Vec<String>, id: u64| serde_json::json!({"method":"SUBSCRIBE","params":ids,"id":id}).to_string();
    let (refused, _) = c.request(1, &sub(names(25, 1000), 1));
    assert_eq!(refused["code"].as_i64(), Some(2), "{refused}");
    assert_eq!(refused["id"].as_u64(), Some(1));
    // Names already subscribed do not count again; exactly 1024 is fine.
    let mut again = names(24, 1000);
    again.extend(names(10, 0));
    let (ok, _) = c.request(2, &sub(again, 2));
    assert_eq!(ok["result"], Value::Null, "{ok}");
    let (list, _) = c.request(3, r#"{"method":"LIST_SUBSCRIPTIONS","id":3}"#);
    assert_eq!(list["result"].as_array().map(Vec::len), Some(1024));
}

#[test]
fn usdm_limits_are_binance_s_futures_limits() {
    let c = SimConfig::usdm_market();
    assert_eq!(
        (c.ping_interval, c.pong_timeout, c.max_incoming_per_sec, c.max_streams, c.rest_weight_limit),
        (Duration::from_secs(180), Duration::from_secs(600), 10, 1024, 2400)
    );
    let spot = SimConfig::default();
    assert_eq!((spot.max_incoming_per_sec, spot.max_streams, spot.rest_weight_limit), (5, 1024, 6000));
}

/// The frames the server sends, read below tungstenite (whose reads answer pings): opcodes in
/// order, up to and including a close frame, and its code.
fn frames_until_close(c: &mut Client) -> (Vec<u8>, Option<u16>) {
    use std::io::Read;
    let tcp = c.ws.get_mut();
    let (mut bytes, mut buf, mut ops) = (Vec::new(), [0u8; 4096], Vec::new());
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        // Parse every whole frame buffered (the server's are unmasked).
        while bytes.len() >= 2 {
            let (op, len7) = (bytes[0] & 0x0F, (bytes[1] & 0x7F) as usize);
            let (head, len) = match len7 {
                126 if bytes.len() >= 4 => (4, u16::from_be_bytes([bytes[2], bytes[3]]) as usize),
                127 if bytes.len() >= 10 => (10, u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize),
                126 | 127 => break,
                n => (2, n),
            };
            if bytes.len() < head + len {
                break;
            }
            ops.push(op);
            if op == 0x8 {
                let code = (len >= 2).then(|| u16::from_be_bytes([bytes[head], bytes[head + 1]]));
                return (ops, code);
            }
            bytes.drain(..head + len);
        }
        assert!(std::time::Instant::now() < deadline, "never closed; frames {ops:?}");
        match tcp.read(&mut buf) {
            Ok(0) => return (ops, None),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Pings every `ping_interval` (Binance: 3 minutes on USD-M), and a client whose pong is later
/// than `pong_timeout` (10 minutes) is closed with 1008; both short here.
#[test]
fn a_client_that_never_answers_pings_is_closed_after_the_pong_timeout() {
    let sim = usdm_sim(SimConfig {
        ping_interval: Duration::from_millis(200),
        pong_timeout: Duration::from_millis(700),
        ..SimConfig::usdm_market()
    });
    // No streams: the server sends only pings, each a whole small frame, so what tungstenite
    // may have read past the handshake never splits a frame.
    let mut c = connect_at(usdm(&sim).addr, "/public/ws");
    let (ops, code) = frames_until_close(&mut c);
    assert_eq!(code, Some(1008), "closed for the missing pong; frames {ops:?}");
    assert!(ops.contains(&0x9), "the unanswered ping came first: {ops:?}");
}
