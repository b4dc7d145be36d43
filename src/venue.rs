//! The seam between the generic engine and a venue: what a connection, the event loop and the
//! records need to know of an exchange, as data. A venue (`binance/`) fills in one [`Venue`];
//! `main.rs` hands it to the engine, which never names the venue itself. Plain data and `fn`
//! pointers: the only one called per message is [`Venue::parse`], one indirect call whose target
//! never changes (the pipeline bench measures it against a direct call's baseline).

pub mod rest;

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::record::{Record, Trade};
use crate::stream::StreamKind;
use crate::symbols::Symbols;
use crate::time_unit::TimeUnit;

/// What one text frame from a venue turned out to be. Not boxed: it lives on the stack for one
/// message, and the market variant is the one that matters.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    /// A market-data record from the stream of `kind`; `stream_symbol` is the symbol as the
    /// subscription names it (lower case), which finds its index in [`crate::symbols::Symbols`].
    Market { kind: StreamKind, stream_symbol: &'a str, record: Record<'a> },
    /// The reply to one of our requests; `result` is its raw JSON (`null` = ok).
    ControlReply { id: Option<i64>, result: &'a str },
    /// The venue refused a request we sent.
    ErrorReply { code: i64, msg: &'a str },
    /// The venue is about to close this connection.
    ServerShutdown { event_time_ms: i64 },
}

/// Why a venue's parser refused a frame: a bounded metric label (`messages_rejected_total`'s
/// `reason`) and a sentence for the log. Static text both: a refusal allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub why: &'static str,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.why)
    }
}

/// What the venue allows a client; the engine keeps below each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Messages a connection may send per second (pongs and control requests together).
    pub messages_per_second: usize,
    /// Connection attempts per [`Limits::attempt_window`], for all connections of the process.
    pub attempts: usize,
    pub attempt_window: Duration,
    /// Streams one SUBSCRIBE request names.
    pub streams_per_subscribe: usize,
    /// Stream-name bytes put in the connect URL; the rest are subscribed once open.
    pub url_stream_bytes: usize,
    /// How often the venue pings an open connection: all a connection whose streams may be
    /// quiet for hours (liquidations) hears from a healthy peer.
    pub server_ping_interval: Duration,
}

/// One venue's market-data endpoint, as data.
#[derive(Clone, Copy, Debug)]
pub struct Venue {
    /// The `exchange` field of every record and gap marker.
    pub exchange: &'static str,
    pub limits: Limits,
    /// The name of the stream of `kind` for `symbol` (as configured, lower case).
    pub stream_name: fn(symbol: &str, kind: StreamKind) -> String,
    /// The venue's name of a kind of stream, without a symbol (`aggTrade`, `kline_1m`): the
    /// `stream` of control records and metric labels.
    pub kind_name: fn(kind: StreamKind) -> String,
    /// The request path of a connection subscribed to `streams` from the start (`base` is the
    /// configured path prefix), asking for times in `unit`.
    pub stream_path: fn(base: &str, streams: &[&str], unit: TimeUnit) -> String,
    /// The text of a request subscribing to `streams`, answered with the same `id`.
    pub subscribe: fn(id: i64, streams: &[&str]) -> String,
    /// The text of a request unsubscribing from `streams`, answered with the same `id`.
    pub unsubscribe: fn(id: i64, streams: &[&str]) -> String,
    /// Parses one text frame, borrowing from it; allocation-free (it runs per message).
    pub parse: for<'a> fn(&'a str) -> Result<Frame<'a>, Refusal>,
    /// The path segment (`""`, `"/public"`) a connection carrying `kind` must use: the
    /// connection planner never puts streams of two routes on one connection, and each
    /// connection's URL is `<configured path><route>/stream?streams=...`.
    pub route: fn(kind: StreamKind) -> &'static str,
    /// The venue's binary transport (Binance's SBE streams), when it has one: used only when
    /// `TRANSPORT` asks for it and [`Binary`]'s requirements are met at start.
    pub binary: Option<&'static Binary>,
}

/// The decimal scale of a symbol's prices and quantities: how many fractional digits the
/// venue's text transport writes them with. A binary transport sends mantissa and exponent; the
/// records carry the text the text transport would have sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    pub price: u8,
    pub qty: u8,
}

/// What a binary frame's parser needs besides the frame: the configured symbols (a frame names
/// its symbol), each one's [`Scale`] (same index), and the unit records carry times in.
#[derive(Debug)]
pub struct BinaryCtx {
    pub symbols: Arc<Symbols>,
    pub scales: Vec<Scale>,
    pub unit: TimeUnit,
    /// The index of the symbol the last frame named, tried first: a connection's frames come in
    /// runs of one symbol, and comparing one name costs less than the look-up (about 60
    /// instructions an SBE trade). Only a hint: a stale one costs the look-up.
    pub last_symbol: Cell<u16>,
}

impl BinaryCtx {
    pub fn new(symbols: Arc<Symbols>, scales: Vec<Scale>, unit: TimeUnit) -> BinaryCtx {
        BinaryCtx { symbols, scales, unit, last_symbol: Cell::new(0) }
    }
}

/// Parses one binary frame, handing each record it holds to `sink` (an SBE trade event holds
/// several trades: one each; a trade that cannot become a record is an `Err` of its own, the
/// others still go). `Err` refuses the whole frame. Allocation-free once `scratch` (the
/// caller's, kept between frames) has grown to the largest frame's text: the text of decimals
/// lives on the parser's stack, that of a depth event's levels in `scratch`, for the duration of
/// the sink's call.
pub type BinaryParse = for<'a> fn(
    frame: &'a [u8],
    ctx: &'a BinaryCtx,
    scratch: &'a mut Vec<u8>,
    sink: &mut dyn BinarySink,
) -> Result<(), Refusal>;

/// Where a binary frame's records go, one call each.
///
/// Trades, most of what a binary transport carries, are offered first as they are: a sink that
/// can take one without a [`Frame`] (the pipeline, for the next trade of its sequence with room
/// in the ring) writes it straight, and one that does not gets it as a [`Frame`]. Through the
/// pipeline, an SBE trade taken straight took 1,766 instructions where wrapped in a `Record` and
/// a `Frame` it took 1,992 (bench-results/sbe-trade-bench-s17/).
pub trait BinarySink {
    /// A record as a [`Frame`], or why the venue could not make one.
    fn frame(&mut self, frame: Result<Frame<'_>, Refusal>);
    /// Takes `trade` of the configured symbol `symbol_idx` without a [`Frame`]: true if it did
    /// everything [`BinarySink::frame`] would have (then that is not called for it); false if the
    /// venue is to hand it to [`BinarySink::frame`] instead. `more`: trades of the same event
    /// follow, with the same times (what they share is worth keeping).
    fn trade(&mut self, symbol_idx: u16, trade: &Trade<'_>, more: bool) -> bool {
        let _ = (symbol_idx, trade, more);
        false
    }
}

/// A [`BinarySink`] taking every record as a [`Frame`], by calling `f`.
pub struct EachFrame<F>(F);

/// A sink calling `f` with each record's [`Frame`] (trades included).
pub fn each_frame<F: for<'b> FnMut(Result<Frame<'b>, Refusal>)>(f: F) -> EachFrame<F> {
    EachFrame(f)
}

impl<F: for<'b> FnMut(Result<Frame<'b>, Refusal>)> BinarySink for EachFrame<F> {
    fn frame(&mut self, frame: Result<Frame<'_>, Refusal>) {
        (self.0)(frame)
    }
}

/// A venue's binary market-data transport.
#[derive(Clone, Copy)]
pub struct Binary {
    /// Its name in logs, metrics and `TRANSPORT` (`sbe`).
    pub name: &'static str,
    pub parse: BinaryParse,
    /// The upgrade header carrying the API key the transport requires.
    pub key_header: &'static str,
    /// Every `messages_rejected_total` reason `parse` gives (exported at 0 from the start).
    pub reasons: &'static [&'static str],
    /// The REST call giving every symbol's [`Scale`], and its reader (symbols as configured, in
    /// order; `Err` names the first symbol without one, or what is wrong with the body).
    pub scales_call: fn(symbols: &[String]) -> rest::Call,
    pub parse_scales: fn(body: &str, symbols: &[String]) -> Result<Vec<Scale>, String>,
    /// The `messages_rejected_total` reason of a decimal that does not fit its symbol's scale:
    /// the venue may have changed it, so the scales are fetched again soon.
    pub rescale_reason: &'static str,
    /// The venue as its binary endpoint serves it: its own stream names (Binance's SBE
    /// `bestBidAsk` for `bookTicker`), the rest as the text venue's. A lane's connections on the
    /// binary transport are named with it.
    pub venue: &'static Venue,
    /// The kind of the binary stream that carries a configured kind's events (`depth@100ms` is
    /// SBE's one `depth` stream), `None` for a kind the transport does not carry. Connections
    /// keep the configured kinds (a lane may move between transports); the pipeline reports
    /// the binary stream's events under the configured kind.
    pub carried: fn(kind: StreamKind) -> Option<StreamKind>,
}

// By name: its venue refers back to it, and a derived `Debug` would print the two in a loop.
impl fmt::Debug for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binary").field("name", &self.name).finish_non_exhaustive()
    }
}
