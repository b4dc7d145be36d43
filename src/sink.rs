//! Where normalized records go, and the producer thread that drains the ring into it.
//!
//! The Kafka sink is an rdkafka `BaseProducer` polled by this thread (no extra poll thread, no
//! per-message future): key = symbol, timestamp = exchange event time, idempotent with
//! `acks=all` by default. Delivery reports count successes and failures and time each record
//! from ring commit to broker acknowledgement.

pub mod books;
mod kafka;
mod kafka_context;
mod null;
mod ordering;
mod producer;
mod resend;
mod stall;
mod stdout;

use std::time::Duration;

use crate::ring::{Kick, RecordView};

pub use books::{BookSettings, Books};
pub use kafka::{KafkaSink, ProducerConfigError};
pub use kafka_context::{error_kind, KafkaContext};
pub use null::NullSink;
pub use ordering::{Limits, StrictOrder, LIMITS};
pub use producer::{run_producer, ProducerReport};
pub use stall::StallWatch;
pub use stdout::StdoutSink;

/// How a sink refused a record.
#[derive(Debug)]
pub enum SendError {
    /// Its queue is full: poll and offer the same record again.
    Backpressure,
    /// This record can never be sent (e.g. larger than the broker accepts); it is counted and dropped.
    Rejected(&'static str),
}

pub trait Sink: Send {
    /// Runs once on the producer thread before the first record (e.g. a reachability probe).
    fn start(&mut self) {}
    fn send(&mut self, rec: &RecordView<'_>) -> Result<(), SendError>;
    /// Serves delivery reports, waiting at most `timeout` for one.
    fn poll(&mut self, timeout: Duration);
    /// Asks the sink to `kick` the producer thread whenever delivery reports wait to be served;
    /// true if it will (the thread then sleeps until there is work instead of polling on a timer).
    fn wake_on_reports(&mut self, _kick: Kick) -> bool {
        false
    }
    /// After handing records over, how long the producer thread lets the next ones gather in the
    /// ring before taking them (one batch per window instead of a wake-up per read batch of the
    /// event loop); zero takes them as they come.
    fn batch_window(&self) -> Duration {
        Duration::ZERO
    }
    /// Records handed over but not yet acknowledged.
    fn in_flight(&self) -> usize;
    /// How long records may wait in flight with no acknowledgement before the sink counts as
    /// stalled ([`StallWatch`]); `None`: a sink that acknowledges as it takes (nothing to watch).
    fn stall_after(&self) -> Option<Duration> {
        None
    }
    /// Whether a record was acknowledged since the last call.
    fn take_acked(&mut self) -> bool {
        false
    }
    /// Waits up to `timeout` for everything in flight; returns how many are still unacknowledged.
    fn flush(&mut self, timeout: Duration) -> usize;
    /// Hands `f` each symbol one of whose depth records the sink failed to deliver since the
    /// last call (its book is then published again, after the hole).
    fn take_depth_failures(&mut self, _f: &mut dyn FnMut(u16)) {}
}
