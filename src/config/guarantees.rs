//! The delivery guarantees' variables: backfill from REST, recovery from Kafka at start and
//! strict ordering. Part of the one table of variables (`vars.rs`, which lists them after
//! `SHUTDOWN_TIMEOUT_MS`).

use std::time::Duration;

use super::var::*;
use super::MAX_ORDERING_WAIT_MS;

pub(super) const GUARANTEE_VARS: &[Var] = &[
    Var {
        env: "BACKFILL",
        flag: "backfill",
        value_name: "ON|OFF",
        unset: Unset::Default("on"),
        help: "Fetch missing trades/aggTrades from REST and publish them flagged `backfilled`: on or off",
        more: "Closed klines too (by open time). Off, each gap is named at once in a `gap` record (reason \
               `backfill_off`), and so is a trade whose Kafka delivery failed for good; order books still \
               take their REST snapshots (see Order book).",
        secret: false,
        apply: |v, b| {
            if let Some(on) = b.choice(v, SWITCH, "on or off") {
                b.cfg.backfill = on;
            }
        },
        show: |c, o| o.value(name_of(SWITCH, c.backfill)),
    },
    Var {
        env: "BACKFILL_MAX_IDS",
        flag: "backfill-max-ids",
        value_name: "N",
        unset: Unset::Default("1000000"),
        help: "Longest id range one gap may fetch from REST; beyond it a `gap` marker",
        more: "Candles for klines; 1 to 100000000. The part of a larger gap beyond it is published at once as a \
               `gap` record with reason `backfill_limit`. Also the quarantine bound: a record further ahead of its \
               sequence is published flagged `\"quarantined\":true`.",
        secret: false,
        apply: |v, b| {
            if let Some(n) = b.int_in::<i64>(v, 1..=100_000_000, "") {
                b.cfg.backfill_max_ids = n;
            }
        },
        show: |c, o| o.value(c.backfill_max_ids),
    },
    Var {
        env: "RECOVER_FROM_KAFKA",
        flag: "recover-from-kafka",
        value_name: "ON|OFF",
        unset: Unset::Default("on"),
        help: "At start, continue from the last trade/aggTrade id per symbol found in Kafka: on or off",
        more: "",
        secret: false,
        apply: |v, b| {
            if let Some(on) = b.choice(v, SWITCH, "on or off") {
                b.cfg.recover_from_kafka = on;
            }
        },
        show: |c, o| o.value(name_of(SWITCH, c.recover_from_kafka)),
    },
    Var {
        env: "ORDERING",
        flag: "ordering",
        value_name: "MODE",
        unset: Unset::Default("default"),
        help: "`default` or `strict`: with `strict`, trade and aggTrade ids are strictly increasing per symbol in \
               Kafka",
        more: "Strict holds a symbol's live records behind an open gap until REST fills it or a `gap` record names \
               it, at most `ORDERING_MAX_WAIT_MS`; see README, \"Ordering\". Default: backfilled records land \
               after the live ones that follow their gap.",
        secret: false,
        apply: |v, b| {
            if let Some(m) = b.choice(v, ORDERINGS, "default or strict") {
                b.cfg.ordering = m;
            }
        },
        show: |c, o| o.value(name_of(ORDERINGS, c.ordering)),
    },
    Var {
        env: "ORDERING_MAX_WAIT_MS",
        flag: "ordering-max-wait-ms",
        value_name: "MS",
        unset: Unset::Default("2000"),
        help: "With `ORDERING=strict`, longest wait for a gap to be filled before it is named (reason \
               `ordering_timeout`) and the held records go on, ms",
        more: "1 to 60000.",
        secret: false,
        // Every held millisecond is held memory and latency for that symbol: a minute is already
        // far past what a consumer waiting for ordered ids would accept.
        apply: |v, b| {
            if let Some(ms) = b.int_in::<u64>(v, 1..=MAX_ORDERING_WAIT_MS, "") {
                b.cfg.ordering_max_wait = Duration::from_millis(ms);
            }
        },
        show: |c, o| o.value(c.ordering_max_wait.as_millis()),
    },
];
