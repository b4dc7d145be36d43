//! What a simulator is asked to be: its market ([`SimConfig`]) and the faults it injects.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Lower-case symbols the market trades; UTF-8 listings such as `币安人生usdt` included.
    pub symbols: Vec<String>,
    /// Trades per second over all symbols (each symbol without a [`SimConfig::cadences`] entry
    /// trades `trade_rate / symbols.len()` a second).
    pub trade_rate: f64,
    /// Events per second per symbol for each other stream kind (aggTrade, kline, bookTicker, depth).
    pub aux_rate: f64,
    /// Symbols that trade at their own pace (trade and aggTrade streams): an illiquid listing
    /// beside busy ones.
    pub cadences: Vec<(String, Cadence)>,
    /// Mixed into the random parts of the order book and of [`Cadence::Every`] gaps.
    pub seed: u64,
    /// Price levels per side the order book holds at most (1..=5000; Binance's snapshots go to 5000).
    pub depth_levels: usize,
    /// How long the market generates events after it starts; `None` = forever.
    pub duration: Option<Duration>,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    /// Serve `wss://` with a generated self-signed certificate.
    pub tls: bool,
    /// Incoming messages per second allowed per connection before a 1008 close.
    pub max_incoming_per_sec: u32,
    /// Streams one connection may listen to (Binance: 1024, spot and USD-M). What Binance does
    /// beyond it is not documented; the simulator refuses a URL naming more (400) and answers a
    /// `SUBSCRIBE` that would go beyond it with an error, subscribing none of it.
    pub max_streams: usize,
    /// Close every connection this long after it opened (Binance: 24 h).
    pub connection_lifetime: Option<Duration>,
    /// Announce `serverShutdown` this long before the lifetime ends.
    pub shutdown_notice: Option<Duration>,
    /// Trades left out of the stream but kept in REST: `(period, len)` drops the last `len` of
    /// every `period` trades of each symbol.
    pub stream_skip: Option<(u64, u64)>,
    /// Trades missing from REST as well (truly unrecoverable), in the same form; a subset of
    /// `stream_skip` makes a gap nobody can fill.
    pub rest_missing: Option<(u64, u64)>,
    /// Candles left out of the stream (every update of them) but kept in REST, in the same form,
    /// counted from the first candle of each kline stream.
    pub kline_skip: Option<(u64, u64)>,
    /// Diff-depth events left out of both depth streams, in the same form: the `U`/`u` chain
    /// breaks and a client must resync from a REST snapshot (which always has the whole book).
    pub depth_skip: Option<(u64, u64)>,
    /// REST request weight allowed per window before 429 (Binance: 6000 per minute).
    pub rest_weight_limit: u32,
    /// The weight limiter's window (Binance: one minute); short in tests.
    pub rest_weight_window: Duration,
    /// Connections that go silent with their TCP connection open.
    pub silence: Option<Silence>,
    /// Streams that stop on a connection while everything else on it goes on.
    pub mutes: Vec<Mute>,
    /// A web-application-firewall block (HTTP 403) for a period.
    pub waf: Option<Waf>,
    /// The main REST listener down for a period (data-api stays up).
    pub rest_outage: Option<RestOutage>,
    /// A Binance USD-M futures market beside this one, on listeners of its own
    /// (`fstream.binance.com`, `fapi.binance.com`), configured like this one
    /// ([`SimConfig::usdm_market`] has its limits; `usdm/mod.rs` says what each field means there).
    pub usdm: Option<Box<SimConfig>>,
    /// The API key the SBE listener accepts in `X-MBX-APIKEY`; `None`: any key (an upgrade
    /// without the header is refused either way).
    pub sbe_api_key: Option<String>,
    /// How trades and aggregate trades arrive (`arrival.rs`): evenly spaced or Poisson, in
    /// segments of one or more messages written together. `None`: every symbol's trades evenly
    /// spaced on one beat, sent on a tick of about one event's interval (what tests expect).
    pub arrival: Option<crate::Arrival>,
    /// A new subscription starts at the market's first event rather than at the live edge (what
    /// Binance does): a test whose ingester opens several connections (SBE beside JSON) gets
    /// every stream whole whichever connection subscribed first and started the clock. Only for
    /// short markets: a late subscriber is sent the whole history at once.
    pub from_start: bool,
    /// Only each stream's first subscription starts at the market's first event; later ones
    /// (a replacement connection) start at the live edge, as on Binance. For tests whose
    /// ingester opens a connection per symbol on a busy machine: the clock starts with the first
    /// connection, and a second one subscribing a few ms later must not miss its symbol's first
    /// trades (which no ingester could know of), while a silenced connection's replacement still
    /// leaves the gap the test is about.
    pub first_from_start: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            symbols: vec!["btcusdt".into(), "ethusdt".into(), "solusdt".into()],
            trade_rate: 300.0,
            aux_rate: 2.0,
            cadences: Vec::new(),
            seed: 0,
            depth_levels: DEFAULT_DEPTH_LEVELS,
            duration: None,
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(60),
            tls: false,
            max_incoming_per_sec: 5,
            max_streams: 1024,
            connection_lifetime: None,
            shutdown_notice: None,
            stream_skip: None,
            rest_missing: None,
            kline_skip: None,
            depth_skip: None,
            rest_weight_limit: 6000,
            rest_weight_window: Duration::from_secs(60),
            silence: None,
            mutes: Vec::new(),
            waf: None,
            rest_outage: None,
            usdm: None,
            sbe_api_key: None,
            arrival: None,
            from_start: false,
            first_from_start: false,
        }
    }
}

/// Levels per side of the default book: deeper than the 100 of a default snapshot, far shallower
/// than Binance's 5000, so a resync test sees a book it can hold whole.
pub const DEFAULT_DEPTH_LEVELS: usize = 300;
/// Binance's deepest snapshot (`limit=5000`), and so the deepest book the simulator keeps.
pub const MAX_DEPTH_LEVELS: usize = 5000;

/// How often one symbol trades.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cadence {
    /// Evenly, this many trades a second.
    PerSecond(f64),
    /// One trade every `min..=max` (each gap drawn from the seed): an illiquid listing whose
    /// silences are normal, which a staleness check must learn rather than alarm on.
    Every { min: Duration, max: Duration },
}

/// A connection that stops sending anything (data, pings, replies, close) while its TCP
/// connection stays open: a half-dead peer or a middlebox that lost its state. Only the client's
/// own staleness check can notice it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Silence {
    /// Which connection: `Some(n)` the n-th TCP connection accepted (1 = the first), `None` every one.
    pub connection: Option<u64>,
    /// How long after the WebSocket opened the connection goes silent.
    pub after: Duration,
    /// Keep reading (and discarding) what the client sends, so its writes never block; `false`
    /// leaves it unread in the socket buffers. Either way nothing is answered.
    pub read: bool,
}

/// One stream that stops on a connection while pings, control replies and every other stream go
/// on: what Binance's USD-M root URL did to `/market` streams in 2026 (acknowledged, then never
/// delivered). Only a per-stream liveness check notices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mute {
    /// The stream, as named in a subscription (`btcusdt@aggTrade`).
    pub stream: String,
    /// Which connection: `Some(n)` the n-th TCP connection accepted (1 = the first), `None` every one.
    pub connection: Option<u64>,
    /// How long after the WebSocket opened the stream stops.
    pub after: Duration,
    /// What brings it back.
    pub until: MuteUntil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuteUntil {
    /// A `SUBSCRIBE` naming the stream on the same connection (alone, or after an `UNSUBSCRIBE`)
    /// restarts it at the live edge.
    Resubscribed,
    /// Nothing on this connection: only a new connection gets the stream again.
    Reconnected,
}

/// What a web-application-firewall block (Binance: HTTP 403, README §9) covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WafScope {
    /// The main REST listener (`api.binance.com`).
    pub rest: bool,
    /// The WebSocket upgrade (`stream.binance.com`): new connections are refused with 403; open
    /// ones go on.
    pub ws: bool,
    /// The market-data-only REST listener (`data-api.binance.vision`).
    pub data_api: bool,
}

/// A 403 block from `after` (counted from the simulator's start) for `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waf {
    pub scope: WafScope,
    pub after: Duration,
    pub len: Duration,
}

/// How the main REST listener is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestDown {
    /// The listening socket is closed: connections are refused; a request on a connection
    /// opened before (a client's keep-alive pool) is answered 503, not left hanging.
    Refused,
    /// Every request is answered with this 5xx status (Binance: "the issue is on Binance's side").
    Status(u16),
}

/// The main REST listener down from `after` (counted from the simulator's start) for `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestOutage {
    pub how: RestDown,
    pub after: Duration,
    pub len: Duration,
}
