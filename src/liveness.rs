//! Per-stream liveness: whether every configured stream (one symbol's trades, its book ticker, a
//! kline interval, ...) still delivers while its connection lives on.
//!
//! In Binance's 2026 USD-M routing change a connection acknowledged a subscription, answered
//! pings and streamed its other streams while one stream sent nothing: the connection-level
//! staleness check (`WS_STALE_MS`) never fires on that. So each stream's last message is kept
//! ([`Slots`]: one store per frame into a slot preallocated for every `(symbol, kind)` of the
//! configuration, with the receive time the socket read already took), and a [`Watch`] looks at
//! the slots a few times a second, off the per-message path:
//!
//! - it learns each stream's cadence from its own gaps ([`cadence`]), so an illiquid market that
//!   trades every two minutes is not a false alarm while a busy one is caught within seconds;
//! - a kind the venue sends on a fixed clock (a mark price every 3 s or every second,
//!   [`Pace::Every`]) expects that clock before it has learned anything: its first bound is
//!   [`cadence::MEAN_FACTOR`] periods (within the floor and cap), not the prior for kinds of
//!   unknown cadence;
//! - a kind that speaks only when something happens ([`Pace::Eventual`]: liquidations, silent for
//!   hours on a calm market) is never called stale: its silence proves nothing;
//! - a trade stream whose sibling (the same symbol's aggTrade stream, or the other way round)
//!   delivers while it does not is silent whatever its cadence: each aggregate trade is made of
//!   trades;
//! - past the bound, it asks for the cheapest remedy first and escalates ([`Action`]): resubscribe
//!   that one stream, then, if it stays silent, replace the connection (make-before-break), then
//!   wait ever longer (doubling, up to the configured cap) and start over.
//!
//! Time is the watch's own monotonic clock: the slots only say *that* something arrived (their
//! value changed), so a wall-clock step cannot make every stream look silent at once. The slot's
//! wall-clock value is what a `stale` record reports as the last message's time.
//!
//! Memory: 8 bytes per slot on the per-message path and about 100 bytes per slot in the watch,
//! `symbols x kinds` slots, fixed at start.

pub mod cadence;

use std::time::{Duration, Instant};

use crate::interval::KLINE_INTERVALS;
use crate::stream::{Pace, StreamKind};
use cadence::Cadence;

/// Kinds a slot table can index: trade, aggTrade, bookTicker, depth, depth@100ms, each kline
/// interval, then markPrice, markPrice@1s, forceOrder, depth@500ms.
const ORDINALS: usize = 5 + KLINE_INTERVALS.len() + 4;
/// A kind not configured: no slot.
const NO_SLOT: u8 = u8::MAX;

fn ordinal(kind: StreamKind) -> usize {
    match kind {
        StreamKind::Trade => 0,
        StreamKind::AggTrade => 1,
        StreamKind::BookTicker => 2,
        StreamKind::Depth => 3,
        StreamKind::Depth100ms => 4,
        StreamKind::Kline(i) => 5 + i as usize,
        StreamKind::MarkPrice => 5 + KLINE_INTERVALS.len(),
        StreamKind::MarkPrice1s => 6 + KLINE_INTERVALS.len(),
        StreamKind::ForceOrder => 7 + KLINE_INTERVALS.len(),
        StreamKind::Depth500ms => 8 + KLINE_INTERVALS.len(),
    }
}

/// The last message of every configured stream: written per frame, read by the [`Watch`].
#[derive(Debug, Default)]
pub struct Slots {
    /// The configured kinds, each once, in configuration order.
    kinds: Vec<StreamKind>,
    /// Each kind's position in `kinds`, by [`ordinal`].
    pos: [u8; ORDINALS],
    /// Receive time (Unix ns) of the last message, per `symbol * kinds.len() + position`; 0 = none.
    last_ns: Box<[u64]>,
}

impl Slots {
    /// A slot for each of `kinds` of each of `symbols` symbols.
    pub fn new(symbols: usize, kinds: &[StreamKind]) -> Slots {
        let mut unique: Vec<StreamKind> = Vec::new();
        for k in kinds {
            if !unique.contains(k) {
                unique.push(*k);
            }
        }
        let mut pos = [NO_SLOT; ORDINALS];
        for (i, k) in unique.iter().enumerate() {
            if let Some(p) = pos.get_mut(ordinal(*k)) {
                *p = i as u8;
            }
        }
        Slots { last_ns: vec![0; symbols * unique.len()].into_boxed_slice(), kinds: unique, pos }
    }

    /// Notes a message of `kind` for symbol `symbol_idx`, received at `recv_ns`: one store (a
    /// stream the configuration does not name has no slot and is left alone).
    #[inline]
    pub fn seen(&mut self, symbol_idx: u16, kind: StreamKind, recv_ns: u64) {
        if let Some(i) = self.index(symbol_idx, kind) {
            self.last_ns[i] = recv_ns;
        }
    }

    /// The slot of `kind` for symbol `symbol_idx`.
    #[inline]
    pub fn index(&self, symbol_idx: u16, kind: StreamKind) -> Option<usize> {
        let p = *self.pos.get(ordinal(kind))?;
        if p == NO_SLOT {
            return None;
        }
        let i = symbol_idx as usize * self.kinds.len() + p as usize;
        (i < self.last_ns.len()).then_some(i)
    }

    /// The stream of slot `slot`: (symbol index, kind).
    pub fn stream(&self, slot: usize) -> (u16, StreamKind) {
        let n = self.kinds.len().max(1);
        ((slot / n) as u16, self.kinds[slot % n])
    }

    /// Receive time (Unix ns) of each slot's last message; 0 for none yet.
    pub fn last_ns(&self) -> &[u64] {
        &self.last_ns
    }

    pub fn len(&self) -> usize {
        self.last_ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_ns.is_empty()
    }
}

/// The silence a stream may keep whatever its cadence says: never alarmed below `floor`, always
/// alarmed past `cap` (`STREAM_STALE_MIN_MS`, `STREAM_STALE_MAX_MS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub floor: Duration,
    pub cap: Duration,
}

/// What the watch asks for, or reports, for one stream; the `action` of a `stale` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Silent past its bound: unsubscribe and subscribe that one stream again on its connection.
    Resubscribe,
    /// Still silent after resubscribing: open a new connection beside the old one
    /// (make-before-break), which subscribes everything afresh.
    ReplaceConnection,
    /// A message arrived again: the silence is over.
    Recovered,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Resubscribe, Action::ReplaceConnection, Action::Recovered];

    /// The `action` field of a `stale` record, and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Resubscribe => "resubscribe",
            Action::ReplaceConnection => "replace_connection",
            Action::Recovered => "recovered",
        }
    }
}

/// One thing the watch decided about one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub slot: usize,
    pub action: Action,
    /// How long the stream has been silent (for [`Action::Recovered`]: was).
    pub silent: Duration,
    /// The silence it was allowed when it was found silent.
    pub bound: Duration,
    /// Wall-clock time (Unix ns) the silence began: the receive time of the stream's last
    /// message, or when its connection subscribed it if it has sent nothing since.
    pub since_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Resubscribed,
    Replaced,
    /// Remedies did not help this round: the next round starts once the wait is over.
    Waiting(Duration),
}

/// A silence being dealt with.
#[derive(Clone, Copy, Debug)]
struct Silence {
    began: Instant,
    since_ns: u64,
    bound: Duration,
    step: Step,
    /// When the step began.
    at: Instant,
    /// Rounds of remedies that did not help.
    round: u32,
}

/// The watch's view of one stream.
#[derive(Clone, Debug)]
struct Stream {
    /// Trades and aggregate trades may be rare on an illiquid market; the other kinds are
    /// frequent on any listed one.
    rare: bool,
    /// Whether a silence may be a fault at all: not for a stream that speaks only when
    /// something happens ([`Pace::Eventual`]).
    watched: bool,
    /// The same symbol's other trade stream, if configured.
    sibling: Option<usize>,
    /// The slot's value at the last look.
    seen_ns: u64,
    /// When the watch saw the value change last (monotonic).
    changed_at: Option<Instant>,
    cadence: Cadence,
    silence: Option<Silence>,
}

/// Looks at every slot, learns each stream's cadence and decides what a silent one needs.
/// Owned by the event loop, which carries the decisions out.
#[derive(Debug)]
pub struct Watch {
    bounds: Bounds,
    streams: Vec<Stream>,
    /// When the watch began (the age of a stream that never sent anything).
    started: Instant,
}

impl Watch {
    /// A watch over every slot of `slots`, from `now`.
    pub fn new(slots: &Slots, bounds: Bounds, now: Instant) -> Watch {
        let streams = (0..slots.len())
            .map(|s| {
                let (sym, kind) = slots.stream(s);
                let other = match kind {
                    StreamKind::Trade => Some(StreamKind::AggTrade),
                    StreamKind::AggTrade => Some(StreamKind::Trade),
                    _ => None,
                };
                let pace = kind.pace();
                let cadence = match pace {
                    Pace::Every(period) => Cadence::expecting(period),
                    Pace::Market { .. } | Pace::Eventual => Cadence::default(),
                };
                Stream {
                    rare: matches!(pace, Pace::Market { may_be_rare: true }),
                    watched: pace != Pace::Eventual,
                    sibling: other.and_then(|o| slots.index(sym, o)),
                    seen_ns: 0,
                    changed_at: None,
                    cadence,
                    silence: None,
                }
            })
            .collect();
        Watch { bounds, streams, started: now }
    }

    /// One look at every stream at `now` (`now_ns` the wall clock): `last_ns` is the slot table,
    /// `carried[slot]` when the connection carrying the stream finished subscribing (`None`
    /// while no connection carries it ready: connecting, reconnecting, or with frames still
    /// unread). Decisions are appended to `out`.
    pub fn check(
        &mut self,
        now: Instant,
        now_ns: u64,
        last_ns: &[u64],
        carried: &[Option<Instant>],
        out: &mut Vec<Event>,
    ) {
        let floor = self.bounds.floor;
        for s in 0..self.streams.len() {
            let value = last_ns.get(s).copied().unwrap_or(0);
            let since = carried.get(s).copied().flatten();
            if value != self.streams[s].seen_ns {
                self.arrived(s, value, now, since, out);
            }
            let Some(subscribed) = since else { continue };
            if !self.streams[s].watched {
                continue;
            }
            let sibling_at = self.streams[s].sibling.and_then(|o| self.streams[o].changed_at);
            let bounds = self.bounds;
            let st = &mut self.streams[s];
            let mark = st.changed_at.map_or(subscribed, |c| c.max(subscribed));
            let age = now.saturating_duration_since(mark);
            let Some(sil) = &mut st.silence else {
                let mut bound = st.cadence.bound(st.rare, bounds);
                // The sibling delivered well after this stream's last message: trades happen.
                if sibling_at.is_some_and(|at| at > mark + floor) {
                    bound = floor;
                }
                if age > bound {
                    let since_ns =
                        if st.changed_at == Some(mark) { st.seen_ns } else { now_ns.saturating_sub(nanos(age)) };
                    st.silence =
                        Some(Silence { began: mark, since_ns, bound, step: Step::Resubscribed, at: now, round: 0 });
                    out.push(Event { slot: s, action: Action::Resubscribe, silent: age, bound, since_ns });
                }
                continue;
            };
            // A remedy is judged from when it could take effect: a replacement, once it subscribed.
            let waited = now.saturating_duration_since(sil.at.max(subscribed));
            let silent = now.saturating_duration_since(sil.began);
            let next = match sil.step {
                Step::Resubscribed if waited >= sil.bound => Some((Step::Replaced, Some(Action::ReplaceConnection))),
                Step::Replaced if waited >= sil.bound => {
                    sil.round = sil.round.saturating_add(1);
                    let wait = sil.bound.saturating_mul(1u32 << sil.round.min(20)).min(bounds.cap.max(sil.bound));
                    Some((Step::Waiting(wait), None))
                }
                Step::Waiting(wait) if waited >= wait => Some((Step::Resubscribed, Some(Action::Resubscribe))),
                _ => None,
            };
            if let Some((step, action)) = next {
                sil.step = step;
                sil.at = now;
                if let Some(action) = action {
                    out.push(Event { slot: s, action, silent, bound: sil.bound, since_ns: sil.since_ns });
                }
            }
        }
    }

    /// Slot `s` changed to `value` at `now`: data arrived.
    fn arrived(&mut self, s: usize, value: u64, now: Instant, since: Option<Instant>, out: &mut Vec<Event>) {
        let floor = self.bounds.floor;
        let st = &mut self.streams[s];
        st.seen_ns = value;
        let mark = match (st.changed_at, since) {
            (Some(c), Some(t)) => Some(c.max(t)),
            (None, t) => t,
            // Not carried by a ready connection (a retiring one delivered it): no gap to learn.
            (Some(_), None) => None,
        };
        if let Some(sil) = st.silence.take() {
            let silent = now.saturating_duration_since(sil.began);
            out.push(Event { slot: s, action: Action::Recovered, silent, bound: sil.bound, since_ns: sil.since_ns });
            // A remedy that works shows at once (a fresh subscription starts at the live edge).
            // Back right after one: the fault's silence says nothing of the cadence. Back later:
            // the stream came back on its own, so that silence was its cadence, a false alarm
            // to learn from.
            let remedy_at = match sil.step {
                Step::Waiting(_) => None,
                Step::Resubscribed | Step::Replaced => since.map(|t| sil.at.max(t)).or(Some(sil.at)),
            };
            let on_its_own = remedy_at.is_none_or(|at| now.saturating_duration_since(at) > floor / 4);
            if on_its_own {
                st.cadence.learn(now.saturating_duration_since(sil.began), now);
            }
        } else if let Some(m) = mark {
            st.cadence.learn(now.saturating_duration_since(m), now);
        }
        st.changed_at = Some(now);
    }

    /// How long ago slot `s` last delivered (or, when it never did, since the watch began).
    pub fn age(&self, s: usize, now: Instant) -> Duration {
        let st = &self.streams[s];
        now.saturating_duration_since(st.changed_at.unwrap_or(self.started))
    }

    /// Whether slot `s` is in a silence the watch is dealing with.
    pub fn is_silent(&self, s: usize) -> bool {
        self.streams.get(s).is_some_and(|st| st.silence.is_some())
    }

    /// How many streams are silent now.
    pub fn silent_count(&self) -> usize {
        self.streams.iter().filter(|st| st.silence.is_some()).count()
    }

    /// The silence slot `s` may keep now, as learned (sibling evidence aside).
    pub fn bound(&self, s: usize) -> Duration {
        let st = &self.streams[s];
        st.cadence.bound(st.rare, self.bounds)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Appends the `stale` control record of `ev` for `symbol`'s stream `stream` (the venue's name
/// of its kind, as gap records name it). No allocation beyond the buffer's growth.
pub fn write_record(out: &mut Vec<u8>, exchange: &str, symbol: &str, stream: &str, ev: &Event, now_ns: u64) {
    use std::io::Write;
    let (silent, bound) = (ev.silent.as_millis(), ev.bound.as_millis());
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        r#"{{"type":"stale","exchange":"{exchange}","symbol":"{symbol}","stream":"{stream}","since_ns":{},"silent_ms":{silent},"bound_ms":{bound},"action":"{}","recv_time_ns":{now_ns}}}"#,
        ev.since_ns,
        ev.action.as_str(),
    );
}

#[cfg(test)]
mod tests;
