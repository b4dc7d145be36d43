//! What loadgen's binaries share: `/proc` readings of CPU time, memory and wake-ups (`loadgen`
//! the harness, `kafka_floor` librdkafka's floor).

pub mod procfs;
pub mod sched;
