//! Order-book snapshots fetched from REST, on their way from the backfill thread (which owns the
//! REST client, its weights and waits) to the producer thread (which keeps the books and decides
//! where in the topic a snapshot goes). The producer asks for one by setting the symbol's
//! `Job::DepthResync` flag ([`super::jobs`]); the answer comes back here.

/// A REST snapshot of one symbol's book, as the venue sent it (levels best first, exact texts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepthSeed {
    pub symbol_idx: u16,
    pub last_update_id: i64,
    pub bids: Vec<[String; 2]>,
    pub asks: Vec<[String; 2]>,
}

/// Snapshots in flight: a snapshot holds up to 10,000 levels (about 1 MiB), so only a couple
/// wait; the backfill thread waits for room (taking jobs in meanwhile), and the producer takes
/// them every turn.
pub const SEEDS_IN_FLIGHT: usize = 2;

pub fn channel() -> (crossbeam_channel::Sender<DepthSeed>, crossbeam_channel::Receiver<DepthSeed>) {
    crossbeam_channel::bounded(SEEDS_IN_FLIGHT)
}
