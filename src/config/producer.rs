//! The producer thread's batching window (`KAFKA_BATCH_WINDOW_US`): its one variable, listed
//! after `KAFKA_PROPS` in `--help`, `--check-config` and README.

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
