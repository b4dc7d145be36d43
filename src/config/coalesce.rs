//! `LOOP_COALESCE_US`: how long the blocking event loop lets messages gather after a wake-up
//! that read data (`crate::event_loop` applies it). Its own file so that the spot table in
//! `vars.rs` names it in one line, after `LOOP_MODE`.

use std::time::Duration;

use super::var::*;

/// Longest coalescing window, µs: every message may wait this long, so it stays well under the
/// millisecond that the source -> broker-append p50 is on a quiet machine.
pub const MAX_LOOP_COALESCE_US: u64 = 1_000;

pub(super) const LOOP_COALESCE: Var = Var {
    env: "LOOP_COALESCE_US",
    flag: "loop-coalesce-us",
    value_name: "US",
    unset: Unset::Default("0"),
    help: "Blocking mode: after a turn that read data, let messages gather this long (0 to 1000 µs) from the \
           wake-up before polling again; 0: off",
    more: "Fewer wake-ups (epoll_wait, recv, the context switch) at smooth rates, for up to this much latency a \
           message. Only while messages come at least twice a window (below that each one goes at once), never \
           past a deadline (pings, timeouts, housekeeping) nor past shutdown; ignored by `LOOP_MODE=busy`. \
           tuning.md, \"Event-loop wake-ups\", has the measured trade-off.",
    secret: false,
    apply: |v, b| {
        if let Some(n) = b.int_in(v, 0..=MAX_LOOP_COALESCE_US, " µs") {
            b.cfg.loop_coalesce = Duration::from_micros(n);
        }
    },
    show: |c, o| o.value(c.loop_coalesce.as_micros()),
};
