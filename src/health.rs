//! Liveness and readiness, as the HTTP endpoints report them, and the latch that records the
//! first thread that died (readiness then stays down until the process exits).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[derive(Default)]
pub struct Health {
    /// Unix ns of the event loop's last turn; `/healthz` fails when it goes stale.
    pub loop_heartbeat_ns: AtomicU64,
    /// Every connection is open and every stream acknowledged.
    pub subscribed: AtomicBool,
    /// The sink can deliver (Kafka metadata answered, or a non-Kafka sink).
    pub sink_ready: AtomicBool,
    /// How long the sink's records have waited in flight with no acknowledgement, in ms, once
    /// past `KAFKA_STALL_SECS` (`sink::StallWatch`); 0: no stall. Not ready while it lasts.
    pub sink_stall_ms: AtomicU64,
    /// Producer turns that saw an acknowledgement (`sink::StallWatch`), counted, never reset: the
    /// backfill's read-back of deliveries in doubt waits for one after the doubt.
    pub ack_turns: AtomicU64,
    /// Start-up work (crash recovery from Kafka) before the event loop's first turn: alive.
    pub starting: AtomicBool,
    /// The transport streaming, when another than JSON was asked for (`/readyz` shows it):
    /// set at start and at each switch between transports (`transport.rs`).
    pub transport: Note,
    /// The first thread that panicked or stopped unexpectedly, and why.
    failed: OnceLock<Failure>,
}

/// A line of text another thread may replace now and then (a switch of transport: rare, never
/// per message, so a lock costs nothing).
#[derive(Default)]
pub struct Note(Mutex<Option<String>>);

impl Note {
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
    pub fn set(&self, text: String) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text);
    }
}

/// A thread that died.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub thread: String,
    pub reason: String,
}

impl Health {
    pub fn beat(&self, now_ns: u64) {
        self.loop_heartbeat_ns.store(now_ns, Ordering::Relaxed);
        self.starting.store(false, Ordering::Relaxed);
    }
    pub fn live(&self, now_ns: u64, max_age: Duration) -> bool {
        if self.starting.load(Ordering::Relaxed) {
            return true;
        }
        let hb = self.loop_heartbeat_ns.load(Ordering::Relaxed);
        hb != 0 && now_ns.saturating_sub(hb) <= max_age.as_nanos() as u64
    }
    pub fn ready(&self) -> bool {
        self.failed().is_none()
            && self.subscribed.load(Ordering::Relaxed)
            && self.sink_ready.load(Ordering::Relaxed)
            && self.sink_stall_ms.load(Ordering::Relaxed) == 0
    }
    /// Whether what is published now reaches the broker: the sink ready and not stalled. The
    /// backfill waits otherwise, so that its fetches (and the REST weight they cost) come when
    /// their records can be delivered, and the ids dropped meanwhile merge into ranges.
    pub fn sink_delivering(&self) -> bool {
        self.sink_ready.load(Ordering::Relaxed) && self.sink_stall_ms.load(Ordering::Relaxed) == 0
    }
    /// Records a dead thread; true if it is the first (the one to report).
    pub fn fail(&self, thread: &str, reason: &str) -> bool {
        self.failed.set(Failure { thread: thread.to_string(), reason: reason.to_string() }).is_ok()
    }
    pub fn failed(&self) -> Option<&Failure> {
        self.failed.get()
    }
}
