//! Hostile input from the exchange side: malformed JSON, binary frames, unknown streams and
//! event types, non-ASCII and unknown symbols, absurd numbers, an oversized frame, and finally
//! garbage bytes on the socket. Each is counted and dropped (the message, or the connection);
//! the process never goes down and valid records around them still arrive.

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::common::*;
use tungstenite::Message;

const VALID: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":ID,"p":"1.5","q":"2","T":1,"m":true,"M":true}}"#;

fn valid(id: u64) -> Message {
    Message::text(VALID.replace("ID", &id.to_string()))
}

#[test]
fn hostile_frames_are_counted_and_dropped_never_the_process() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        // First connection: every kind of bad frame between valid ones, then garbage bytes.
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(tcp).unwrap();
        let hostile: Vec<Message> = vec![
            valid(1),
            Message::text("{not json"),
            Message::text(r#"{"stream":"btcusdt@trade","data":{"e":"trade""#),
            Message::binary(vec![0u8, 159, 146, 150]),
            Message::text(r#"{"stream":"btcusdt@miniTicker","data":{"e":"24hrMiniTicker"}}"#),
            Message::text(
                r#"{"stream":"btcusdt@trade","data":{"e":"blockTrade","E":1,"s":"BTCUSDT","t":2,"p":"1","q":"1","T":1,"m":true}}"#,
            ),
            Message::text(
                r#"{"stream":"币安人生usdt@trade","data":{"e":"trade","E":1,"s":"币安人生USDT","t":2,"p":"1","q":"1","T":1,"m":true}}"#,
            ),
            Message::text(
                r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1e300,"p":"1","q":"1","T":1,"m":true}}"#,
            ),
            Message::text(
                r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":3,"p":"NaN","q":"1","T":1,"m":true}}"#,
            ),
            Message::text(format!(
                r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"s":"BTCUSDT","t":3,"p":"{}","q":"1","T":1,"m":true}}}}"#,
                "9".repeat(100)
            )),
            valid(2),
        ];
        for m in hostile {
            ws.send(m).unwrap();
        }
        std::thread::sleep(Duration::from_millis(500));
        // Garbage on the wire: a frame with reserved bits set and a bogus opcode.
        let tcp = ws.get_mut();
        let _ = tcp.write_all(&[0xff, 0xff, 0xde, 0xad, 0xbe, 0xef]);
        let _ = tcp.flush();
        std::thread::sleep(Duration::from_millis(500));
        drop(ws);
        // Second connection: an oversized frame (past the 8 MiB message limit).
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(tcp).unwrap();
        ws.send(valid(3)).unwrap();
        let _ = ws.send(Message::text("x".repeat(9 << 20)));
        std::thread::sleep(Duration::from_millis(500));
        drop(ws);
        // Third connection: healthy again.
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(tcp).unwrap();
        for id in 4..=6 {
            ws.send(valid(id)).unwrap();
        }
        std::thread::sleep(Duration::from_secs(3));
    });

    let url = format!("ws://{addr}");
    let mut ing =
        Ingester::spawn(&[("BINANCE_WS_URL", &url), ("SYMBOLS", "btcusdt"), ("SINK", "null"), ("BACKFILL", "off")]);
    let t = Instant::now();
    // Not waited ready first: the metrics port may not answer yet.
    while ing.metric_if_present("marketflow_ingestor_messages_sent_total{symbol=\"btcusdt\"}").unwrap_or(0.0) < 6.0 {
        assert!(t.elapsed() < Duration::from_secs(30), "valid records did not all arrive:\n{}", ing.dump_logs());
        assert_ne!(ing.get("/healthz").0, 503, "the event loop must keep turning");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rejected =
        |reason: &str| ing.metric(&format!("marketflow_ingestor_messages_rejected_total{{reason=\"{reason}\"}}"));
    assert!(rejected("malformed_json") >= 3.0, "not json, truncated, absurd number");
    assert_eq!(rejected("binary_frame"), 1.0);
    assert_eq!(rejected("unknown_stream"), 1.0);
    assert_eq!(rejected("event_type_mismatch"), 1.0);
    assert_eq!(rejected("unknown_symbol"), 1.0, "a non-ASCII symbol we did not subscribe to");
    assert_eq!(rejected("bad_decimal"), 2.0, "NaN and a 100-digit price");
    assert!(rejected("ws_protocol") >= 1.0, "garbage bytes cost the connection");
    assert!(rejected("frame_too_large") >= 1.0, "oversized frame cost the connection");
    assert!(ing.metric("marketflow_ingestor_ws_reconnects_total{symbol=\"btcusdt\"}") >= 2.0);
    assert_eq!(ing.metric("marketflow_ingestor_messages_sent_total{symbol=\"btcusdt\"}"), 6.0);
    let (st, _) = ing.terminate(Duration::from_secs(10));
    assert!(st.success(), "{}", ing.dump_logs());
    let _ = server.join();
}
