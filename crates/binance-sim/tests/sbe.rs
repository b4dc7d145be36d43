//! The SBE endpoint as a client sees it: an API key required on the upgrade (401 without it, or
//! with another than the configured one), trades as SBE binary frames carrying the JSON stream's
//! trades, and control replies as JSON text frames.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use binance_sim::{SimConfig, SimHandle};
use common::{sim, PATIENCE};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// Opens `path` on the SBE listener with `key` as `X-MBX-APIKEY`; the HTTP status if refused.
fn sbe_connect(s: &SimHandle, path: &str, key: Option<&str>) -> Result<WebSocket<TcpStream>, u16> {
    let tcp = TcpStream::connect(s.sbe_addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut req = format!("{}{path}", s.sbe_url()).into_client_request().unwrap();
    if let Some(k) = key {
        req.headers_mut().insert("X-MBX-APIKEY", k.parse().unwrap());
    }
    match tungstenite::client(req, tcp) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => Err(r.status().as_u16()),
        Err(e) => panic!("handshake: {e}"),
    }
}

#[test]
fn an_upgrade_without_the_key_is_refused_with_401() {
    let s = sim(SimConfig { sbe_api_key: Some("good".into()), ..SimConfig::default() });
    assert_eq!(sbe_connect(&s, "/stream?streams=btcusdt@trade", None).err(), Some(401));
    assert_eq!(sbe_connect(&s, "/stream?streams=btcusdt@trade", Some("bad")).err(), Some(401));
    assert!(sbe_connect(&s, "/stream?streams=btcusdt@trade", Some("good")).is_ok());
    assert_eq!(s.market.sbe_key_refused.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[test]
fn trades_come_as_sbe_frames_of_the_json_stream_s_trades_and_replies_as_json_text() {
    let s = sim(SimConfig { trade_rate: 600.0, ..SimConfig::default() });
    let mut ws = sbe_connect(&s, "/stream?streams=ethusdt@trade&timeUnit=MILLISECOND", Some("k")).unwrap();
    ws.send(Message::text(r#"{"method":"LIST_SUBSCRIPTIONS","id":3}"#)).unwrap();
    let (mut trades, mut reply) = (Vec::new(), None);
    let deadline = Instant::now() + PATIENCE;
    while (trades.len() < 20 || reply.is_none()) && Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Binary(b)) => {
                let Ok(binance_sbe::Message::Trades(ev)) = binance_sbe::decode(&b) else { panic!("not a trade event") };
                assert_eq!((ev.symbol(), ev.price_exponent(), ev.qty_exponent()), ("ETHUSDT", -2, -8));
                for t in ev.trades() {
                    trades.push((t, ev.transact_time_us(), ev.event_time_us()));
                }
            }
            Ok(Message::Text(t)) => reply = Some(t.to_string()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    assert_eq!(reply.as_deref(), Some(r#"{"id":3,"result":["ethusdt@trade"]}"#));
    assert!(trades.len() >= 20, "{} trades", trades.len());
    let first = trades[0].0.id - binance_sim::Market::trade_id_base(1);
    let mut buf = [0u8; binance_sbe::MAX_TEXT_LEN];
    for (i, (t, transact_us, event_us)) in trades.iter().enumerate() {
        let want = s.market.expected_trade(1, first as u64 + i as u64);
        let text = |d: binance_sbe::Decimal, buf: &mut [u8]| {
            let n = d.write_fixed(8, buf).unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        // Times in µs whatever the URL's timeUnit says (SBE's are always microseconds).
        assert_eq!(
            (t.id, text(t.price, &mut buf), text(t.qty, &mut buf), t.is_buyer_maker, *transact_us, *event_us),
            (want.trade_id, want.price, want.qty, want.buyer_is_maker, want.trade_time_us, want.trade_time_us)
        );
    }
}
