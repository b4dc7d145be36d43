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
    /// Acknowledgements per partition of the trade and aggTrade topics: the read-back of a
    /// delivery in doubt waits for one on its own partition, not on any (`backfill::doubt`).
    pub partition_acks: PartitionAcks,
    /// Start-up work (crash recovery from Kafka) before the event loop's first turn: alive.
    pub starting: AtomicBool,
    /// The transport streaming, when another than JSON was asked for (`/readyz` shows it):
    /// set at start and at each switch between transports (`transport.rs`).
    pub transport: Note,
    /// The first thread that panicked or stopped unexpectedly, and why.
    failed: OnceLock<Failure>,
}

/// Partitions counted per topic by [`PartitionAcks`]; a partition past them is counted in
/// [`Health::ack_turns`] only. (Event Hubs allows at most 32 partitions a topic in its standard
/// tier and 2,000 in dedicated; Kafka topics this wide are rare.)
pub const ACK_PARTITIONS: usize = 1_024;

/// Topics counted by [`PartitionAcks`]: the trade topic and the aggTrade topic
/// (`kafka_client::ack_slot`).
pub const ACK_SLOTS: usize = 2;

/// Acknowledged records per (topic slot, partition), counted by the producer thread, which
/// serves every delivery report (so a plain load and store, no read-modify-write per record),
/// read by the backfill. Fixed size: 16 KiB.
pub struct PartitionAcks(Box<[AtomicU64]>);

impl Default for PartitionAcks {
    fn default() -> Self {
        PartitionAcks((0..ACK_SLOTS * ACK_PARTITIONS).map(|_| AtomicU64::new(0)).collect())
    }
}

impl PartitionAcks {
    fn index(slot: usize, partition: i32) -> Option<usize> {
        let p = usize::try_from(partition).ok().filter(|p| *p < ACK_PARTITIONS)?;
        (slot < ACK_SLOTS).then_some(slot * ACK_PARTITIONS + p)
    }

    /// One more acknowledgement on `partition` of the topic in `slot`. Only the producer thread
    /// calls it: the load and store cannot race another writer.
    pub fn count(&self, slot: usize, partition: i32) {
        if let Some(c) = Self::index(slot, partition).and_then(|i| self.0.get(i)) {
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
    }

    /// Acknowledgements so far on `partition` of the topic in `slot`; `None` for one not counted.
    pub fn get(&self, slot: usize, partition: i32) -> Option<u64> {
        Self::index(slot, partition).and_then(|i| self.0.get(i)).map(|c| c.load(Ordering::Relaxed))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_are_counted_per_topic_slot_and_partition_within_bounds() {
        let acks = PartitionAcks::default();
        acks.count(0, 3);
        acks.count(0, 3);
        acks.count(1, 3);
        assert_eq!((acks.get(0, 3), acks.get(1, 3), acks.get(0, 4)), (Some(2), Some(1), Some(0)));
        // Hostile or wide partitions and unknown slots are not counted, and never panic.
        for (slot, p) in [(0, -1), (0, ACK_PARTITIONS as i32), (ACK_SLOTS, 0), (0, i32::MAX)] {
            acks.count(slot, p);
            assert_eq!(acks.get(slot, p), None, "{slot} {p}");
        }
    }
}
