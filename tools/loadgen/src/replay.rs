//! The replay feeder: a WebSocket server on loopback writing pre-rendered combined-stream frames
//! (only ids and times patched per message), for rates the simulator cannot generate itself.
//! With `sbe` it stands for Binance's SBE endpoint instead: the same trades as SBE binary frames
//! (`TradesStreamEvent`, built once by the generated encoder), so the two transports are fed the
//! same trades at the same cost per message to the feeder. With several trades an event (the fills
//! of one taker order), SBE sends one frame of them all and JSON one message each, as Binance does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use binance_sbe::encode::{TradeRow, TradesFrame};
use marketflow_ingestor::clock;

/// One stream's pre-rendered frame, with its ids and times patched per message.
struct Template {
    bytes: Vec<u8>,
    /// (offset, width, what)
    fields: Vec<(usize, usize, Field)>,
    base: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    /// Milliseconds, as decimal digits (JSON).
    EventTime,
    /// base + mult * k + add, as decimal digits (JSON).
    Id { mult: u64, add: u64 },
    /// Microseconds, an SBE `int64` (little-endian).
    EventTimeUs,
    /// base + mult * k + add, an SBE `int64` (little-endian).
    IdLe { mult: u64, add: u64 },
}

/// A price and a quantity as the JSON template writes them (8 decimals, the simulator's
/// `exchangeInfo` scale) and as SBE mantissas (exponents -2 and -8, the simulator's).
const PRICE: &str = "43125.37000000";
const QTY: &str = "0.01532000";
const PRICE_MANTISSA: i64 = 4_312_537;
const QTY_MANTISSA: i64 = 1_532_000;
/// Values no real field takes, written by the encoder where the ids and times go, then found.
const ID_MARK: i64 = 0x0A1B_2C3D_4E5F_6071;
const TIME_MARK: i64 = 0x0B1C_2D3E_4F50_6172;

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

/// Every offset of `value`'s little-endian bytes in `frame`.
fn find_le(frame: &[u8], value: i64) -> Vec<usize> {
    let v = value.to_le_bytes();
    frame.windows(8).enumerate().filter(|(_, w)| *w == v).map(|(i, _)| i).collect()
}

/// A WebSocket frame header (server to client: no mask) for a payload of `len` bytes.
fn ws_header(opcode: u8, len: usize) -> Result<Vec<u8>> {
    Ok(if len < 126 {
        vec![0x80 | opcode, len as u8]
    } else if len < 65536 {
        vec![0x80 | opcode, 126, (len >> 8) as u8, len as u8]
    } else {
        bail!("template too long");
    })
}

impl Template {
    /// Message `k` of `stream` is its event `k`: `per_event` trades (ids `per_event * k` on), one
    /// SBE frame or `per_event` JSON messages.
    fn new(stream: &str, idx: usize, sbe: bool, per_event: u64) -> Result<Template> {
        if sbe {
            return Template::sbe(stream, idx, per_event);
        }
        let mut t = Template { bytes: Vec::new(), fields: Vec::new(), base: 0 };
        for add in 0..per_event {
            let one = Template::json(stream, idx, per_event, add)?;
            let at = t.bytes.len();
            t.fields.extend(one.fields.into_iter().map(|(o, w, f)| (o + at, w, f)));
            t.bytes.extend_from_slice(&one.bytes);
            t.base = one.base;
        }
        Ok(t)
    }

    /// One JSON message of `stream`: the trade `add` of each event of `per_event`.
    fn json(stream: &str, idx: usize, per_event: u64, add: u64) -> Result<Template> {
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
                b.field(w, Field::Id { mult: per_event, add });
                b.lit(&format!(r#","p":"{PRICE}","q":"{QTY}","T":"#));
                b.field(13, Field::EventTime);
                b.lit(r#","m":true,"M":true}"#);
            }
            "aggTrade" if per_event > 1 => bail!("the replay feeder groups trades in events, not {stream}"),
            "aggTrade" => {
                b.lit(r#"{"e":"aggTrade","E":"#);
                b.field(13, Field::EventTime);
                b.lit(&format!(r#","s":"{up}","a":"#));
                b.field(w, Field::Id { mult: 1, add: 0 });
                b.lit(&format!(r#","p":"{PRICE}","q":"{QTY}","f":"#));
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
        let header = ws_header(0x1, b.buf.len())?;
        let mut bytes = header.clone();
        bytes.extend_from_slice(&b.buf);
        let fields = b.fields.into_iter().map(|(o, w, f)| (o + header.len(), w, f)).collect();
        Ok(Template { bytes, fields, base })
    }

    /// `<symbol>@trade` as Binance's SBE endpoint sends it: a `TradesStreamEvent` of `per_event`
    /// trades (the JSON template's price, quantity and side), a binary message. The offsets of
    /// the ids and the two times are where the encoder put the marks, so no offset of the schema
    /// is written here.
    fn sbe(stream: &str, idx: usize, per_event: u64) -> Result<Template> {
        let (sym, kind) = stream.split_once('@').ok_or_else(|| anyhow!("bad stream {stream}"))?;
        if kind != "trade" {
            bail!("the replay feeder's SBE streams are trade only (Binance has no SBE {kind}), not {stream}");
        }
        let rows: Vec<TradeRow> = (0..per_event as i64)
            .map(|j| TradeRow { id: ID_MARK + j, price: PRICE_MANTISSA, qty: QTY_MANTISSA, is_buyer_maker: true })
            .collect();
        let frame = TradesFrame {
            event_time_us: TIME_MARK,
            transact_time_us: TIME_MARK,
            price_exponent: -2,
            qty_exponent: -8,
            trades: &rows,
            symbol: &sym.to_uppercase(),
        }
        .encode()
        .map_err(|e| anyhow!("SBE template for {stream}: {e:?}"))?;
        let times = find_le(&frame, TIME_MARK);
        if times.len() != 2 {
            bail!("SBE template for {stream}: times at {times:?} (two expected)");
        }
        let header = ws_header(0x2, frame.len())?;
        let at = |o: usize| o + header.len();
        let mut fields: Vec<(usize, usize, Field)> = times.iter().map(|&o| (at(o), 8, Field::EventTimeUs)).collect();
        for add in 0..per_event {
            let ids = find_le(&frame, ID_MARK + add as i64);
            let [id] = ids[..] else { bail!("SBE template for {stream}: trade {add}'s id at {ids:?} (one expected)") };
            fields.push((at(id), 8, Field::IdLe { mult: per_event, add }));
        }
        let mut bytes = header;
        bytes.extend_from_slice(&frame);
        Ok(Template { bytes, fields, base: (idx as u64 + 1) * 1_000_000_000 })
    }

    /// Writes message `k` of this stream at `dst` (this template's bytes, already copied there).
    fn patch(&self, dst: &mut [u8], k: u64, now_ns: u64) {
        for &(off, w, f) in &self.fields {
            let field = &mut dst[off..off + w];
            match f {
                Field::EventTime => put_digits(field, now_ns / 1_000_000),
                Field::Id { mult, add } => put_digits(field, self.base + mult * k + add),
                Field::EventTimeUs => field.copy_from_slice(&(now_ns / 1000).to_le_bytes()),
                Field::IdLe { mult, add } => field.copy_from_slice(&(self.base + mult * k + add).to_le_bytes()),
            }
        }
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
    /// `per_write`: messages (events) per write (`--arrival even:K`), each write one segment of
    /// exactly that many; `None`: whatever is due at once (up to 1,024), so a faster feeder writes
    /// smaller batches. `rate` and the counts are in trades, `per_event` to an event.
    pub fn spawn(
        rate: f64,
        duration: Option<Duration>,
        tls: bool,
        sbe: bool,
        per_write: Option<u32>,
        per_event: u32,
    ) -> Result<Replay> {
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
                        let tls = rustls::StreamOwned::new(conn, tcp);
                        replay_pump(tls, rate, duration, sbe, per_write, per_event, &sh)
                    }
                    None => replay_pump(tcp, rate, duration, sbe, per_write, per_event, &sh),
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

fn replay_pump<S: Read + Write>(
    stream: S,
    trade_rate: f64,
    duration: Option<Duration>,
    sbe: bool,
    per_write: Option<u32>,
    per_event: u32,
    sh: &ReplayShared,
) -> Result<()> {
    let path = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
    let seen = path.clone();
    let key = std::rc::Rc::new(std::cell::Cell::new(false));
    let key_seen = key.clone();
    // tungstenite fixes this callback's signature, large error type included.
    #[allow(clippy::result_large_err)]
    let cb = move |req: &tungstenite::handshake::server::Request,
                   resp: tungstenite::handshake::server::Response|
          -> Result<
        tungstenite::handshake::server::Response,
        tungstenite::handshake::server::ErrorResponse,
    > {
        *seen.borrow_mut() = req.uri().to_string();
        key_seen.set(req.headers().get("X-MBX-APIKEY").is_some_and(|v| !v.is_empty()));
        Ok(resp)
    };
    let mut ws = tungstenite::accept_hdr(stream, cb).map_err(|e| anyhow!("handshake: {e}"))?;
    let path = path.borrow().clone();
    // Binance refuses an SBE upgrade without a key: a run that sent none would not be Binance's.
    if sbe && !key.get() {
        bail!("the client's SBE upgrade carried no X-MBX-APIKEY");
    }
    let streams: Vec<String> = path
        .split_once("streams=")
        .map(|(_, q)| {
            q.split('&').next().unwrap_or("").split('/').filter(|s| !s.is_empty()).map(String::from).collect()
        })
        .unwrap_or_default();
    if streams.is_empty() {
        bail!("the client asked for no streams in its URL ({path})");
    }
    let per_event = u64::from(per_event.max(1));
    // Scheduled in events; `sent` is reported in trades.
    let rate = trade_rate / per_event as f64;
    let templates: Vec<Template> =
        streams.iter().enumerate().map(|(i, s)| Template::new(s, i, sbe, per_event)).collect::<Result<_>>()?;
    let frame_max = templates.iter().map(|t| t.bytes.len()).max().unwrap_or(256);
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_BATCH as usize * frame_max);
    let mut k = vec![0u64; templates.len()];
    let mut rr = 0usize;
    let mut sent = 0u64;
    let t0 = *sh.started.get_or_init(Instant::now);
    let limit = duration.map(|d| (d.as_secs_f64() * rate) as u64);
    let segment = segment(per_write);
    let out = ws.get_mut();
    while !sh.stop.load(Ordering::Relaxed) {
        let el = t0.elapsed().as_secs_f64();
        let mut due = (el * rate) as u64;
        if let Some(l) = limit {
            due = due.min(l);
        }
        let n = to_write(due, sent, segment, limit.is_some_and(|l| due >= l));
        if n == 0 {
            if limit.is_some_and(|l| sent >= l) {
                std::thread::sleep(Duration::from_millis(10));
            } else {
                // Until the next write is due: the next message, or a whole segment (sleeping
                // only until its first message was a busy wait of the rest, seen as the feeder's
                // CPU doubling at 200 k/s on two cores the ingester shares).
                let next = sent + segment.map_or(1, NonZeroU64::get);
                let next = limit.map_or(next, |l| next.min(l));
                let wait = (next as f64 / rate - el).clamp(0.0, 0.0005);
                std::thread::sleep(Duration::from_secs_f64(wait));
            }
            continue;
        }
        buf.clear();
        let now_ns = clock::now_ns();
        for _ in 0..n {
            let t = &templates[rr];
            let start = buf.len();
            buf.extend_from_slice(&t.bytes);
            t.patch(&mut buf[start..], k[rr], now_ns);
            k[rr] += 1;
            rr = (rr + 1) % templates.len();
        }
        out.write_all(&buf)?;
        out.flush()?;
        sent += n;
        sh.sent.store(sent * per_event, Ordering::Relaxed);
    }
    Ok(())
}

/// Most messages in one write when no segment size is set.
const MAX_BATCH: u64 = 1024;

/// The segment size `--arrival even:K` asked for, once: a 0 (the parser refuses it; the type
/// does not) is one message, not none.
fn segment(per_write: Option<u32>) -> Option<NonZeroU64> {
    per_write.map(|k| NonZeroU64::new(u64::from(k)).unwrap_or(NonZeroU64::MIN))
}

/// How many messages to write now, `due` of them due and `sent` sent (0: wait). With a segment
/// size `segment`, exactly one segment once a whole one is due (`last`: the run's end is due,
/// and the rest goes out even if short): both transports then reach the ingester K messages to a
/// write, however fast this thread renders them. Without, whatever is due, up to [`MAX_BATCH`].
fn to_write(due: u64, sent: u64, segment: Option<NonZeroU64>, last: bool) -> u64 {
    let ready = due.saturating_sub(sent);
    match segment.map(NonZeroU64::get) {
        Some(k) if ready < k && !last => 0,
        Some(k) => ready.min(k),
        None => ready.min(MAX_BATCH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_whole_segments_or_whatever_is_due() {
        // Whatever is due, capped.
        assert_eq!(to_write(10, 3, None, false), 7);
        assert_eq!(to_write(5000, 0, None, false), MAX_BATCH);
        assert_eq!(to_write(3, 3, None, false), 0);
        // Segments of 8: none until 8 are due, then exactly 8 however many more are.
        assert_eq!(to_write(7, 0, segment(Some(8)), false), 0);
        assert_eq!(to_write(8, 0, segment(Some(8)), false), 8);
        assert_eq!(to_write(100, 16, segment(Some(8)), false), 8);
        // The end of a bounded run goes out short; nothing once everything is sent.
        assert_eq!(to_write(103, 100, segment(Some(8)), true), 3);
        assert_eq!(to_write(103, 103, segment(Some(8)), true), 0);
        // A segment of 0 (the parser refuses it; the type does not) is one message, not none.
        assert_eq!(to_write(2, 0, segment(Some(0)), false), 1);
    }

    #[test]
    fn templates_are_valid_frames_and_ids_patch() {
        let t = Template::new("btcusdt@aggTrade", 1, false, 1).unwrap();
        let mut b = t.bytes.clone();
        t.patch(&mut b, 7, 1_700_000_000_123_456_789);
        assert_eq!(b[0], 0x81);
        let payload = &b[4..];
        assert_eq!(((b[2] as usize) << 8) | b[3] as usize, payload.len());
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(v["data"]["a"], 2_000_000_007i64);
        assert_eq!(v["data"]["f"], 2_000_000_014i64);
        assert_eq!(v["data"]["l"], 2_000_000_015i64);
        assert_eq!(v["data"]["E"], 1_700_000_000_123i64);
    }

    /// The SBE template, patched, is the trade the JSON template says, as the generated decoder
    /// reads it: the id and both times where the marks were, nothing else changed.
    #[test]
    fn sbe_templates_are_binary_trade_events_the_decoder_reads_back() {
        let t = Template::new("ethusdt@trade", 2, true, 1).unwrap();
        let mut b = t.bytes.clone();
        t.patch(&mut b, 9, 1_700_000_000_123_456_789);
        assert_eq!((b[0], b[1] as usize), (0x82, b.len() - 2), "one binary message, length in the header");
        let Ok(binance_sbe::Message::Trades(ev)) = binance_sbe::decode(&b[2..]) else { panic!("not a trade event") };
        let trades: Vec<_> = ev.trades().collect();
        assert_eq!(trades.len(), 1);
        let mut text = [0u8; binance_sbe::MAX_TEXT_LEN];
        let n = trades[0].price.write_fixed(8, &mut text).unwrap();
        assert_eq!(&text[..n], PRICE.as_bytes());
        let n = trades[0].qty.write_fixed(8, &mut text).unwrap();
        assert_eq!(&text[..n], QTY.as_bytes());
        assert_eq!(
            (ev.symbol(), trades[0].id, trades[0].is_buyer_maker, ev.event_time_us(), ev.transact_time_us()),
            ("ETHUSDT", 3_000_000_009, true, 1_700_000_000_123_456, 1_700_000_000_123_456)
        );
        assert!(Template::new("ethusdt@aggTrade", 0, true, 1).is_err(), "Binance has no SBE aggTrade");
    }

    /// An event of three trades: one SBE frame of three, or three JSON messages, the same ids
    /// (event k holds trades 3k..3k+2) and times either way.
    #[test]
    fn an_event_of_several_trades_is_one_sbe_frame_or_as_many_json_messages() {
        let now = 1_700_000_000_123_456_789;
        let sbe = Template::new("btcusdt@trade", 0, true, 3).unwrap();
        let mut b = sbe.bytes.clone();
        sbe.patch(&mut b, 5, now);
        assert_eq!((b[0], b[1] as usize), (0x82, b.len() - 2), "one binary message");
        let Ok(binance_sbe::Message::Trades(ev)) = binance_sbe::decode(&b[2..]) else { panic!("not a trade event") };
        let ids: Vec<i64> = ev.trades().map(|t| t.id).collect();
        assert_eq!(ids, [1_000_000_015, 1_000_000_016, 1_000_000_017]);
        assert_eq!((ev.event_time_us(), ev.transact_time_us()), (1_700_000_000_123_456, 1_700_000_000_123_456));

        let json = Template::new("btcusdt@trade", 0, false, 3).unwrap();
        let mut b = json.bytes.clone();
        json.patch(&mut b, 5, now);
        let mut rest = &b[..];
        let mut ids = Vec::new();
        while !rest.is_empty() {
            assert_eq!((rest[0], rest[1] as usize & 0x7f), (0x81, 126), "a text message, 16-bit length");
            let len = ((rest[2] as usize) << 8) | rest[3] as usize;
            let v: serde_json::Value = serde_json::from_slice(&rest[4..4 + len]).unwrap();
            assert_eq!(
                (&v["data"]["E"], &v["data"]["T"]),
                (&1_700_000_000_123i64.into(), &1_700_000_000_123i64.into())
            );
            ids.push(v["data"]["t"].as_i64().unwrap());
            rest = &rest[4 + len..];
        }
        assert_eq!(ids, [1_000_000_015, 1_000_000_016, 1_000_000_017], "three messages, in id order");
        assert!(Template::new("btcusdt@aggTrade", 0, false, 3).is_err(), "aggregate trades are not grouped");
    }
}
