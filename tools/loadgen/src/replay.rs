//! The replay feeder: a WebSocket server on loopback writing pre-rendered combined-stream frames
//! (only ids and times patched per message), for rates the simulator cannot generate itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use marketflow_ingestor::clock;

/// One stream's pre-rendered combined frame, with the digits patched per message.
struct Template {
    bytes: Vec<u8>,
    /// (offset, width, what)
    fields: Vec<(usize, usize, Field)>,
    base: u64,
}

#[derive(Clone, Copy)]
enum Field {
    EventTime,
    /// base + mult * k + add
    Id {
        mult: u64,
        add: u64,
    },
}

struct TemplateBuilder {
    buf: Vec<u8>,
    fields: Vec<(usize, usize, Field)>,
}

impl TemplateBuilder {
    fn lit(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }
    fn field(&mut self, width: usize, f: Field) {
        self.fields.push((self.buf.len(), width, f));
        self.buf.resize(self.buf.len() + width, b'0');
    }
}

impl Template {
    fn new(stream: &str, idx: usize) -> Result<Template> {
        let (sym, kind) = stream.split_once('@').ok_or_else(|| anyhow!("bad stream {stream}"))?;
        let base = (idx as u64 + 1) * 1_000_000_000;
        let w = base.to_string().len();
        let up = sym.to_uppercase();
        let mut b = TemplateBuilder { buf: Vec::new(), fields: Vec::new() };
        b.lit(&format!(r#"{{"stream":"{stream}","data":"#));
        match kind {
            "trade" => {
                b.lit(r#"{"e":"trade","E":"#);
                b.field(13, Field::EventTime);
                b.lit(&format!(r#","s":"{up}","t":"#));
                b.field(w, Field::Id { mult: 1, add: 0 });
                b.lit(r#","p":"43125.37000000","q":"0.01532000","T":"#);
                b.field(13, Field::EventTime);
                b.lit(r#","m":true,"M":true}"#);
            }
            "aggTrade" => {
                b.lit(r#"{"e":"aggTrade","E":"#);
                b.field(13, Field::EventTime);
                b.lit(&format!(r#","s":"{up}","a":"#));
                b.field(w, Field::Id { mult: 1, add: 0 });
                b.lit(r#","p":"43125.37000000","q":"0.01532000","f":"#);
                b.field(w, Field::Id { mult: 2, add: 0 });
                b.lit(r#","l":"#);
                b.field(w, Field::Id { mult: 2, add: 1 });
                b.lit(r#","T":"#);
                b.field(13, Field::EventTime);
                b.lit(r#","m":true,"M":true}"#);
            }
            other => bail!("the replay feeder renders trade and aggTrade only, not {other}"),
        }
        b.lit("}");
        let len = b.buf.len();
        let header: Vec<u8> = if len < 126 {
            vec![0x81, len as u8]
        } else if len < 65536 {
            vec![0x81, 126, (len >> 8) as u8, len as u8]
        } else {
            bail!("template too long");
        };
        let mut bytes = header.clone();
        bytes.extend_from_slice(&b.buf);
        let fields = b.fields.into_iter().map(|(o, w, f)| (o + header.len(), w, f)).collect();
        Ok(Template { bytes, fields, base })
    }
}

fn put_digits(dst: &mut [u8], mut v: u64) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

pub struct ReplayShared {
    pub sent: AtomicU64,
    pub started: OnceLock<Instant>,
    pub stop: AtomicBool,
    pub error: Mutex<Option<String>>,
}

/// The replay feeder: one connection, frames written straight to the socket on schedule.
pub struct Replay {
    pub addr: SocketAddr,
    pub cert_pem: Option<String>,
    pub rate: f64,
    pub duration: Option<Duration>,
    pub shared: Arc<ReplayShared>,
    pub thread: Option<JoinHandle<()>>,
}

impl Replay {
    pub fn spawn(rate: f64, duration: Option<Duration>, tls: bool) -> Result<Replay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (cert_pem, tls_cfg) = if tls {
            let (pem, cfg) = binance_sim::tls::self_signed_server()?;
            (Some(pem), Some(cfg))
        } else {
            (None, None)
        };
        let shared = Arc::new(ReplayShared {
            sent: AtomicU64::new(0),
            started: OnceLock::new(),
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
        });
        let sh = shared.clone();
        let thread = std::thread::Builder::new().name("replay".into()).spawn(move || {
            let tcp = loop {
                if sh.stop.load(Ordering::Relaxed) {
                    return;
                }
                match listener.accept() {
                    Ok((t, _)) => break t,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => {
                        *sh.error.lock().unwrap() = Some(format!("accept: {e}"));
                        return;
                    }
                }
            };
            let r = (|| -> Result<()> {
                tcp.set_nonblocking(false)?;
                tcp.set_nodelay(true)?;
                match tls_cfg {
                    Some(cfg) => {
                        let conn = rustls::ServerConnection::new(cfg)?;
                        replay_pump(rustls::StreamOwned::new(conn, tcp), rate, duration, &sh)
                    }
                    None => replay_pump(tcp, rate, duration, &sh),
                }
            })();
            if let Err(e) = r {
                if !sh.stop.load(Ordering::Relaxed) {
                    *sh.error.lock().unwrap() = Some(format!("{e:#}"));
                }
            }
        })?;
        Ok(Replay { addr, cert_pem, rate, duration, shared, thread: Some(thread) })
    }

    pub fn scheduled(&self) -> u64 {
        match self.shared.started.get() {
            None => 0,
            Some(t0) => {
                let mut el = t0.elapsed().as_secs_f64();
                if let Some(d) = self.duration {
                    el = el.min(d.as_secs_f64());
                }
                (el * self.rate) as u64
            }
        }
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn replay_pump<S: Read + Write>(stream: S, rate: f64, duration: Option<Duration>, sh: &ReplayShared) -> Result<()> {
    let path = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
    let seen = path.clone();
    // tungstenite fixes this callback's signature, large error type included.
    #[allow(clippy::result_large_err)]
    let cb = move |req: &tungstenite::handshake::server::Request,
                   resp: tungstenite::handshake::server::Response|
          -> Result<
        tungstenite::handshake::server::Response,
        tungstenite::handshake::server::ErrorResponse,
    > {
        *seen.borrow_mut() = req.uri().to_string();
        Ok(resp)
    };
    let mut ws = tungstenite::accept_hdr(stream, cb).map_err(|e| anyhow!("handshake: {e}"))?;
    let path = path.borrow().clone();
    let streams: Vec<String> = path
        .split_once("streams=")
        .map(|(_, q)| {
            q.split('&').next().unwrap_or("").split('/').filter(|s| !s.is_empty()).map(String::from).collect()
        })
        .unwrap_or_default();
    if streams.is_empty() {
        bail!("the client asked for no streams in its URL ({path})");
    }
    let templates: Vec<Template> =
        streams.iter().enumerate().map(|(i, s)| Template::new(s, i)).collect::<Result<_>>()?;
    const MAX_BATCH: u64 = 1024;
    let frame_max = templates.iter().map(|t| t.bytes.len()).max().unwrap_or(256);
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_BATCH as usize * frame_max);
    let mut k = vec![0u64; templates.len()];
    let mut rr = 0usize;
    let mut sent = 0u64;
    let t0 = *sh.started.get_or_init(Instant::now);
    let limit = duration.map(|d| (d.as_secs_f64() * rate) as u64);
    let out = ws.get_mut();
    while !sh.stop.load(Ordering::Relaxed) {
        let el = t0.elapsed().as_secs_f64();
        let mut due = (el * rate) as u64;
        if let Some(l) = limit {
            due = due.min(l);
        }
        if due <= sent {
            if limit.is_some_and(|l| sent >= l) {
                std::thread::sleep(Duration::from_millis(10));
            } else {
                let wait = ((sent + 1) as f64 / rate - el).clamp(0.0, 0.0005);
                std::thread::sleep(Duration::from_secs_f64(wait));
            }
            continue;
        }
        let n = (due - sent).min(MAX_BATCH);
        buf.clear();
        let now_ms = clock::now_ms() as u64;
        for _ in 0..n {
            let t = &templates[rr];
            let start = buf.len();
            buf.extend_from_slice(&t.bytes);
            for &(off, w, f) in &t.fields {
                let v = match f {
                    Field::EventTime => now_ms,
                    Field::Id { mult, add } => t.base + mult * k[rr] + add,
                };
                put_digits(&mut buf[start + off..start + off + w], v);
            }
            k[rr] += 1;
            rr = (rr + 1) % templates.len();
        }
        out.write_all(&buf)?;
        out.flush()?;
        sent += n;
        sh.sent.store(sent, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_valid_frames_and_ids_patch() {
        let t = Template::new("btcusdt@aggTrade", 1).unwrap();
        let mut b = t.bytes.clone();
        for &(off, w, f) in &t.fields {
            let v = match f {
                Field::EventTime => 1_700_000_000_123,
                Field::Id { mult, add } => t.base + mult * 7 + add,
            };
            put_digits(&mut b[off..off + w], v);
        }
        assert_eq!(b[0], 0x81);
        let payload = &b[4..];
        assert_eq!(((b[2] as usize) << 8) | b[3] as usize, payload.len());
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(v["data"]["a"], 2_000_000_007i64);
        assert_eq!(v["data"]["f"], 2_000_000_014i64);
        assert_eq!(v["data"]["l"], 2_000_000_015i64);
        assert_eq!(v["data"]["E"], 1_700_000_000_123i64);
    }
}
