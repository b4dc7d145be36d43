//! Target (c): the WebSocket frame decoder. The input becomes the payload of raw server-to-client
//! frames (unmasked, as a server sends them), read by a client-role `tungstenite::WebSocket` with
//! the ingester's own limits over an in-memory stream that hands out random-sized chunks.
//!
//! Two shapes: *well-formed* (a text message, possibly fragmented, with pings between fragments
//! and maybe a close frame), where the messages read must be exactly the ones written; and
//! *chaos* (random opcodes, FIN/RSV/mask bits, non-minimal and lying lengths, garbage between
//! frames), where reading must end in an error, never a panic or a hang. Every text message
//! read also goes through the frame target.

use std::io::{self, Read, Write};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::Stats;

/// The limits the ingester's connections use (`ws::Dialer::new` in src/ws.rs; copied, not
/// called, so this harness does not depend on the dialer's constructor).
pub fn ingester_ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024).max_message_size(Some(8 << 20)).max_frame_size(Some(8 << 20))
}

/// A server's byte stream, read in chunks of random size; what the client writes (pongs, the
/// close reply) is counted and dropped.
struct Feed<'a> {
    data: &'a [u8],
    pos: usize,
    rng: SmallRng,
    max_chunk: usize,
    written: usize,
}

impl Read for Feed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.data.len() - self.pos;
        let n = buf.len().min(left).min(self.rng.random_range(1..=self.max_chunk));
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Feed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How the payload length is written.
#[derive(Clone, Copy)]
enum Len {
    Minimal,
    Force16,
    Force64,
    Declared(u64),
}

fn header(out: &mut Vec<u8>, fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: usize, enc: Len) {
    out.push(u8::from(fin) << 7 | (rsv & 7) << 4 | (opcode & 15));
    let m = if mask.is_some() { 0x80 } else { 0 };
    let declared = match enc {
        Len::Declared(d) => d,
        _ => len as u64,
    };
    match enc {
        Len::Minimal | Len::Declared(_) if declared < 126 => out.push(m | declared as u8),
        Len::Minimal | Len::Force16 | Len::Declared(_) if declared <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(declared as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 127);
            out.extend_from_slice(&declared.to_be_bytes());
        }
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
}

fn frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8]) {
    header(out, fin, 0, opcode, None, payload.len(), Len::Minimal);
    out.extend_from_slice(payload);
}

/// What a well-formed stream must decode to.
#[derive(Debug, PartialEq)]
enum Want {
    Ping(Vec<u8>),
    Text(Vec<u8>),
    Close(u16, Vec<u8>),
}

/// One WebSocket input: the wire bytes, the reader's chunking, and (for well-formed streams)
/// the expected messages.
pub struct WsCase {
    pub wire: Vec<u8>,
    pub chunk_seed: u64,
    pub max_chunk: usize,
    want: Option<Vec<Want>>,
}

impl WsCase {
    /// A byte stream replayed as is (a saved crash, or a libFuzzer input).
    pub fn raw(wire: Vec<u8>, chunk_seed: u64, max_chunk: usize) -> WsCase {
        WsCase { wire, chunk_seed, max_chunk, want: None }
    }
}

fn cuts(rng: &mut SmallRng, len: usize, parts: usize) -> Vec<usize> {
    let mut c: Vec<usize> = (1..parts).map(|_| rng.random_range(0..=len)).collect();
    c.push(0);
    c.push(len);
    c.sort_unstable();
    c
}

/// Wraps `payload` as a frame stream (well-formed or chaos).
pub fn build(rng: &mut SmallRng, payload: &[u8]) -> WsCase {
    let mut wire = Vec::with_capacity(payload.len() + 64);
    // Tiny reads are rare: tungstenite zero-fills its 16 KiB read buffer before every read.
    let max_chunk = match rng.random_range(0..50) {
        0 => 1,
        1 => 2,
        2..=4 => 7,
        5..=14 => 64,
        15..=32 => 4096,
        _ => 1 << 20,
    };
    let chunk_seed = rng.random();
    if rng.random_bool(0.5) {
        let mut want = Vec::new();
        let parts = if rng.random_bool(0.5) { 1 } else { rng.random_range(2..=5) };
        let c = cuts(rng, payload.len(), parts);
        for (i, w) in c.windows(2).enumerate() {
            if i > 0 && rng.random_bool(0.3) {
                let p: Vec<u8> = (0..rng.random_range(0..=125)).map(|_| rng.random()).collect();
                frame(&mut wire, true, 9, &p);
                want.push(Want::Ping(p));
            }
            let last = i + 2 == c.len();
            frame(&mut wire, last, if i == 0 { 1 } else { 0 }, &payload[w[0]..w[1]]);
        }
        want.push(Want::Text(payload.to_vec()));
        if rng.random_bool(0.3) {
            let reason = b"bye";
            let mut p = 1000u16.to_be_bytes().to_vec();
            p.extend_from_slice(reason);
            frame(&mut wire, true, 8, &p);
            want.push(Want::Close(1000, reason.to_vec()));
        }
        return WsCase { wire, chunk_seed, max_chunk, want: Some(want) };
    }
    let parts = rng.random_range(1..=6);
    let c = cuts(rng, payload.len(), parts);
    for w in c.windows(2) {
        let body = &payload[w[0]..w[1]];
        let opcode = match rng.random_range(0..20) {
            0..=6 => 1,
            7..=11 => 0,
            12 => 2,
            13 | 14 => 8,
            15 | 16 => 9,
            17 => 10,
            _ => rng.random_range(0..16),
        };
        let fin = rng.random_bool(0.7);
        let rsv = if rng.random_ratio(1, 16) { rng.random_range(1..8) } else { 0 };
        let mask = if rng.random_ratio(1, 16) { Some(rng.random()) } else { None };
        let enc = match rng.random_range(0..20) {
            0..=14 => Len::Minimal,
            15 => Len::Force16,
            16 => Len::Force64,
            17 => Len::Declared((body.len() as u64).saturating_add_signed(rng.random_range(-3..=3))),
            18 => Len::Declared([0, 125, 126, 65535, 65536, 8 << 20, (8 << 20) + 1][rng.random_range(0..7)]),
            _ => Len::Declared([u64::MAX, 1 << 63, (1 << 63) - 1, 1 << 32][rng.random_range(0..4)]),
        };
        header(&mut wire, fin, rsv, opcode, mask, body.len(), enc);
        if let Some(k) = mask {
            wire.extend(body.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        } else {
            wire.extend_from_slice(body);
        }
        if rng.random_ratio(1, 20) {
            let n = rng.random_range(1..8);
            wire.extend((0..n).map(|_| rng.random::<u8>()));
        }
    }
    WsCase { wire, chunk_seed, max_chunk, want: None }
}

fn error_label(e: &tungstenite::Error) -> &'static str {
    use tungstenite::Error as E;
    match e {
        E::ConnectionClosed => "closed",
        E::AlreadyClosed => "already_closed",
        E::Io(_) => "io",
        E::Capacity(_) => "capacity",
        E::Utf8(_) => "utf8",
        E::Protocol(p) => {
            let name = format!("{p:?}");
            const KNOWN: &[(&str, &str)] = &[
                ("ResetWithoutClosingHandshake", "eof_without_close"),
                ("NonZeroReservedBits", "reserved_bits"),
                ("MaskedFrameFromServer", "masked_frame"),
                ("FragmentedControlFrame", "fragmented_control"),
                ("ControlFrameTooBig", "control_too_big"),
                ("UnknownControlFrameType", "unknown_control_opcode"),
                ("UnknownDataFrameType", "unknown_data_opcode"),
                ("UnexpectedContinueFrame", "unexpected_continue"),
                ("ExpectedFragment", "expected_fragment"),
                ("ReceivedAfterClosing", "after_close"),
                ("InvalidCloseSequence", "invalid_close"),
                ("InvalidOpcode", "invalid_opcode"),
            ];
            KNOWN.iter().find(|(k, _)| name.starts_with(k)).map_or("protocol_other", |(_, l)| l)
        }
        _ => "other",
    }
}

/// Reads `case` to its end; returns the outcome label. `on_text` gets every text message.
pub fn websocket(case: &WsCase, st: &mut Stats, on_text: &mut dyn FnMut(&[u8], &mut Stats)) -> &'static str {
    let feed = Feed {
        data: &case.wire,
        pos: 0,
        rng: SmallRng::seed_from_u64(case.chunk_seed),
        max_chunk: case.max_chunk.max(1),
        written: 0,
    };
    let mut ws = WebSocket::from_raw_socket(feed, Role::Client, Some(ingester_ws_config()));
    let mut got = Vec::new();
    // Every message consumes at least two bytes of the wire: more reads than that is a loop.
    let max_reads = case.wire.len() / 2 + 2;
    let mut end = None;
    for _ in 0..max_reads {
        match ws.read() {
            Ok(Message::Text(t)) => {
                st.ws.accept("text");
                on_text(t.as_bytes(), st);
                got.push(Want::Text(t.as_bytes().to_vec()));
            }
            Ok(Message::Ping(p)) => {
                st.ws.accept("ping");
                got.push(Want::Ping(p.to_vec()));
            }
            Ok(Message::Close(c)) => {
                st.ws.accept("close");
                let (code, reason) = c.map_or((0, Vec::new()), |c| (u16::from(c.code), c.reason.as_bytes().to_vec()));
                got.push(Want::Close(code, reason));
            }
            Ok(Message::Binary(_)) => st.ws.accept("binary"),
            Ok(Message::Pong(_)) => st.ws.accept("pong"),
            Ok(Message::Frame(_)) => st.ws.accept("raw_frame"),
            Err(e) => {
                end = Some(e);
                break;
            }
        }
    }
    let Some(err) = end else {
        panic!("websocket: {max_reads} reads of a {}-byte stream without reaching its end", case.wire.len())
    };
    let label = error_label(&err);
    st.ws.reject(label);
    assert!(ws.get_ref().pos <= case.wire.len());
    if let Some(want) = &case.want {
        let text_ok = want.iter().all(|w| match w {
            Want::Text(t) => std::str::from_utf8(t).is_ok() && t.len() <= 8 << 20,
            _ => true,
        });
        if text_ok {
            assert_eq!(got, *want, "well-formed stream decoded differently (ended with {err})");
        } else {
            // Invalid UTF-8 text: what was read before the error is a prefix of the pings.
            assert!(matches!(err, tungstenite::Error::Utf8(_)), "invalid UTF-8 text ended with {err:?}");
            assert!(got.iter().all(|g| matches!(g, Want::Ping(_))), "{got:?}");
            assert!(want.starts_with(&got), "read {got:?}, wrote {want:?}");
        }
    }
    label
}
