//! The client side of the crate's tests: a simulator on loopback, a WebSocket client and REST
//! requests, with waits bounded by generous deadlines (never a timing assertion).
#![allow(dead_code)]

use std::net::TcpStream;
use std::time::{Duration, Instant};

use binance_sim::{SimConfig, SimHandle};
use serde_json::Value;
use tungstenite::{Message, WebSocket};

/// How long any wait may take before the test gives up: long enough for a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn sim(cfg: SimConfig) -> SimHandle {
    binance_sim::spawn(cfg, "127.0.0.1:0").expect("simulator")
}

pub struct Client {
    pub ws: WebSocket<TcpStream>,
    /// Pings received so far.
    pub pings: u64,
}

/// Opens `path` (`/stream?streams=...`, `/ws/...`) on the simulator; the HTTP status if refused.
pub fn try_connect(sim: &SimHandle, path: &str) -> Result<Client, u16> {
    let tcp = TcpStream::connect(sim.addr).expect("tcp connect");
    tcp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    match tungstenite::client(format!("ws://{}{path}", sim.addr), tcp) {
        Ok((ws, _)) => Ok(Client { ws, pings: 0 }),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => Err(r.status().as_u16()),
        Err(e) => panic!("handshake with {path}: {e}"),
    }
}

pub fn connect(sim: &SimHandle, path: &str) -> Client {
    try_connect(sim, path).unwrap_or_else(|status| panic!("{path}: refused with {status}"))
}

impl Client {
    /// The next text frame, parsed, or `None` if none came within `PATIENCE`; pings are counted
    /// (and answered by tungstenite).
    pub fn next(&mut self) -> Option<Value> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).unwrap_or_else(|e| panic!("{e}: {t}")))
                }
                Ok(Message::Ping(_)) => self.pings += 1,
                Ok(Message::Close(c)) => panic!("closed by the simulator: {c:?}"),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        None
    }

    /// Reads until `pred` holds for a frame, and returns it with the frames before it; panics if
    /// none does within `PATIENCE`.
    pub fn until(&mut self, mut pred: impl FnMut(&Value) -> bool) -> (Value, Vec<Value>) {
        let deadline = Instant::now() + PATIENCE;
        let mut before = Vec::new();
        while Instant::now() < deadline {
            let v = self.next().expect("a frame within the patience");
            if pred(&v) {
                return (v, before);
            }
            before.push(v);
        }
        panic!("no such frame within {PATIENCE:?}; the last: {:?}", before.last());
    }

    pub fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    /// Sends a control request and reads up to its reply: the reply and the frames before it.
    pub fn request(&mut self, id: u64, text: &str) -> (Value, Vec<Value>) {
        self.send(text);
        self.until(|v| v.get("id").and_then(Value::as_u64) == Some(id))
    }
}

/// The stream name of a combined frame.
pub fn stream(v: &Value) -> &str {
    v["stream"].as_str().unwrap_or("")
}

/// Result of a REST request: status, body and the weight header.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub weight: Option<u32>,
    pub content_type: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// GETs `url` with `query` and `headers`; `Err` for a transport failure (a refused connection),
/// by kind.
pub fn get_with(
    agent: &ureq::Agent,
    url: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<Answer, ureq::ErrorKind> {
    let mut req = agent.get(url);
    for (k, v) in query {
        req = req.query(k, v);
    }
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => return Err(t.kind()),
    };
    let status = resp.status();
    let weight = resp.header("X-MBX-USED-WEIGHT-1M").and_then(|w| w.parse().ok());
    let content_type = resp.header("Content-Type").unwrap_or("").to_string();
    let body = resp.into_string().expect("body");
    Ok(Answer { status, body, weight, content_type })
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(PATIENCE).build()
}

pub fn get(url: &str, query: &[(&str, &str)]) -> Answer {
    get_with(&agent(), url, query, &[]).unwrap_or_else(|e| panic!("{url}: {e:?}"))
}

/// Waits until `f` holds, up to `PATIENCE`.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
