//! The producer thread's variables, listed after `KAFKA_PROPS` in `--help`, `--check-config` and
//! README: its batching window (`KAFKA_BATCH_WINDOW_US`) and the bound of a broker that stops
//! acknowledging (`KAFKA_STALL_SECS`).

use std::time::Duration;

use super::var::*;

/// Longest window, in µs: twice the 10 ms p99 budget of a record from the exchange to the broker.
/// A record waits up to one window in the ring, so longer is no longer batching but delay;
/// librdkafka's `linger.ms` (`KAFKA_PROPS`) is the lever for that.
pub const MAX_KAFKA_BATCH_WINDOW_US: u64 = 20_000;

pub(super) const KAFKA_BATCH_WINDOW: Var = Var {
    env: "KAFKA_BATCH_WINDOW_US",
    flag: "kafka-batch-window-us",
    value_name: "US",
    // What `linger.ms` was before the window existed, so records wait about as long at high rates.
    unset: Unset::Default("500"),
    help: "While records flow, how long the producer thread lets them gather in the ring before handing them \
           to librdkafka together, in µs",
    more: "Fewer wake-ups of the producer and of librdkafka's threads (one produce request a window) for up to \
           this much more latency; a record after a quiet spell goes at once, and delivery reports are served as \
           they come. `0`: every record is handed over as soon as the producer wakes. At most 20000 (20 ms); \
           see tuning.md, \"Producer batching and wake-ups\".",
    secret: false,
    apply: |v, b| {
        if let Some(us) = b.int_in(v, 0..=MAX_KAFKA_BATCH_WINDOW_US, "") {
            b.cfg.kafka_batch_window = Duration::from_micros(us);
        }
    },
    show: |c, o| o.value(c.kafka_batch_window.as_micros()),
};

/// Longest `KAFKA_STALL_SECS`: an hour; a pod unready for less than that after its broker stopped
/// answering helps no one.
pub const MAX_KAFKA_STALL_SECS: u64 = 3600;

pub(super) const KAFKA_STALL: Var = Var {
    env: "KAFKA_STALL_SECS",
    flag: "kafka-stall-secs",
    value_name: "SECS",
    // Well above an acknowledgement's normal wait (milliseconds; Event Hubs holds a throttled
    // request a few seconds) and a leader move, well below librdkafka's 60 s request timeout
    // (`socket.timeout.ms`, after which it reconnects and tries again): the pod leaves the Service
    // while the records still wait in memory, long before the ring fills at the default rates.
    unset: Unset::Default("15"),
    help: "Records handed to Kafka unacknowledged this long (no delivery report while some are in flight) \
           take /readyz down, in s",
    more: "A broker that keeps its connections open and stops answering (a paused JVM, a full disk, a throttled \
           namespace) raises no client error; `kafka_unacked_age_seconds` shows the wait as it grows, and \
           `/readyz` names it (`kafka_stall=`) past this bound, until the next acknowledgement. 1 to 3600. The records \
           wait meanwhile, up to librdkafka's `message.timeout.ms` (300 s); see README, \"A broker that stops \
           answering\".",
    secret: false,
    apply: |v, b| {
        if let Some(s) = b.int_in(v, 1..=MAX_KAFKA_STALL_SECS, "") {
            b.cfg.kafka_stall = Duration::from_secs(s);
        }
    },
    show: |c, o| o.value(c.kafka_stall.as_secs()),
};
