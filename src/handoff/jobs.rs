//! What the engine's threads hand one another about gaps: backfill jobs over a bounded channel
//! that never blocks its senders, and the buffers a sender keeps what the channel refused in.
//!
//! ```text
//! event loop (gaps, ring drops) --\
//!                                  JobSender: bounded channel, try_send only --> backfill thread
//! producer (failed deliveries) ---/
//! ```
//!
//! Nothing here blocks a sender, and nothing is dropped silently: a job that does not fit comes
//! back to its sender, which publishes it at once as a `gap` record with reason
//! `backfill_queue_full` (or, briefly, holds it in a fixed-size [`Owed`] buffer while even that
//! cannot be written). Memory bound: the channel holds at most [`CHANNEL_JOBS`] jobs (32 bytes
//! each, 512 KiB), a depth resync is one flag per symbol.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::sequence::Dense;
use crate::time_unit::TimeUnit;

/// Jobs in flight between the senders and the backfill thread. The thread moves them into its
/// own queue whenever it waits (rate limits, retries, a busy producer), so this only fills while
/// it is stuck in one REST call (10 s at most) or reading Kafka back for deliveries in doubt
/// (30 s at most, `backfill::doubt`) under a flood of gaps.
pub const CHANNEL_JOBS: usize = 16_384;

/// Something to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Ids `from..to` (exclusive) of a dense trade or aggTrade sequence never reached Kafka.
    Range { symbol_idx: u16, kind: Dense, from: i64, to: i64 },
    /// The producer's book of this symbol needs a REST snapshot (its first, or after its
    /// sequence broke); it comes back over [`super::depth`].
    DepthResync { symbol_idx: u16 },
    /// Closed candles of interval `KLINE_INTERVALS[interval]` opening at `from..to` (in `unit`,
    /// exclusive) never arrived.
    Klines { symbol_idx: u16, interval: u8, unit: TimeUnit, from: i64, to: i64 },
    /// Trade (or aggTrade) `id`'s delivery failed after its request reached `partition`: it may
    /// be in the topic. Read back from `timestamp_ms` before it is fetched again
    /// (`backfill::doubt`); refused by the channel, or left at shutdown, it is named in a gap
    /// record of reason `delivery_in_doubt` (a range of one id, [`Job::range`]).
    InDoubt { symbol_idx: u16, kind: Dense, id: i64, timestamp_ms: i64, partition: i32 },
}

/// A sequence whose missing parts are ranges: ids, or candle open times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seq {
    Ids {
        symbol_idx: u16,
        kind: Dense,
    },
    /// Open times in `unit`, the unit of the stream they were missed on.
    Candles {
        symbol_idx: u16,
        interval: u8,
        unit: TimeUnit,
    },
}

impl Seq {
    pub fn symbol_idx(self) -> u16 {
        match self {
            Seq::Ids { symbol_idx, .. } | Seq::Candles { symbol_idx, .. } => symbol_idx,
        }
    }
}

impl Job {
    /// The sequence and range of a range job (not of a depth resync).
    pub fn range(self) -> Option<(Seq, i64, i64)> {
        match self {
            Job::Range { symbol_idx, kind, from, to } => Some((Seq::Ids { symbol_idx, kind }, from, to)),
            Job::Klines { symbol_idx, interval, unit, from, to } => {
                Some((Seq::Candles { symbol_idx, interval, unit }, from, to))
            }
            Job::InDoubt { symbol_idx, kind, id, .. } => {
                Some((Seq::Ids { symbol_idx, kind }, id, id.saturating_add(1)))
            }
            Job::DepthResync { .. } => None,
        }
    }

    pub fn of(seq: Seq, from: i64, to: i64) -> Job {
        match seq {
            Seq::Ids { symbol_idx, kind } => Job::Range { symbol_idx, kind, from, to },
            Seq::Candles { symbol_idx, interval, unit } => Job::Klines { symbol_idx, interval, unit, from, to },
        }
    }
}

/// The two ends of the job queue, for `symbols` symbols.
pub fn channel(symbols: usize) -> (JobSender, JobReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_JOBS);
    let shared = Arc::new(Shared {
        resync: (0..symbols).map(|_| AtomicBool::new(false)).collect(),
        closed: AtomicBool::new(false),
        sending: AtomicUsize::new(0),
    });
    (JobSender { tx, shared: shared.clone() }, JobReceiver { rx, shared })
}

struct Shared {
    /// A depth resync per symbol is a flag, not a queue entry: any number of breaks before the
    /// thread gets to it need one snapshot, so it always fits.
    resync: Box<[AtomicBool]>,
    /// Set once the backfill thread takes its last jobs (shutdown): later ones come back to
    /// their sender, which publishes them as gaps, rather than vanish in a channel nobody reads.
    closed: AtomicBool,
    /// Senders between their check of `closed` and their send.
    sending: AtomicUsize,
}

/// The senders' end: never blocks.
#[derive(Clone)]
pub struct JobSender {
    tx: Sender<Job>,
    shared: Arc<Shared>,
}

impl JobSender {
    /// Queues `job`, or hands it back when the queue is full (or the backfill thread is gone).
    pub fn try_send(&self, job: Job) -> Result<(), Job> {
        let s = &self.shared;
        if let Job::DepthResync { symbol_idx } = job {
            if let Some(f) = s.resync.get(symbol_idx as usize) {
                f.store(true, Ordering::Release);
            }
            // Only a wake-up: the flag is the request.
            let _ = self.tx.try_send(job);
            return Ok(());
        }
        // Two atomics, no lock: either the closing thread waits for this send and then takes
        // the job, or this sender sees `closed` and keeps it.
        s.sending.fetch_add(1, Ordering::SeqCst);
        let sent = if s.closed.load(Ordering::SeqCst) {
            Err(job)
        } else {
            self.tx.try_send(job).map_err(|e| match e {
                TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
            })
        };
        s.sending.fetch_sub(1, Ordering::SeqCst);
        sent
    }
}

/// The backfill thread's end.
pub struct JobReceiver {
    rx: Receiver<Job>,
    shared: Arc<Shared>,
}

impl Drop for JobReceiver {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
    }
}

impl JobReceiver {
    /// Refuses every later job and returns once no send is under way: what the channel then
    /// holds is everything that will ever arrive.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        while self.shared.sending.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }

    pub fn recv_timeout(&self, d: Duration) -> Result<Job, RecvTimeoutError> {
        self.rx.recv_timeout(d)
    }

    pub fn try_recv(&self) -> Option<Job> {
        self.rx.try_recv().ok()
    }

    /// A symbol whose book asked for a snapshot since the last call (its flag is cleared),
    /// looking from index `from` on and wrapping around, so that a symbol asking again and again
    /// cannot starve the ones after it.
    pub fn take_resync(&self, from: usize) -> Option<u16> {
        let flags = &self.shared.resync;
        let n = flags.len();
        (0..n).map(|i| (from + i) % n).find(|&i| flags[i].swap(false, Ordering::AcqRel)).map(|i| i as u16)
    }
}

/// Jobs a sender could not hand over yet (the channel full and, for the event loop, the ring
/// full too), in arrival order: a fixed capacity allocated once, each new range merged into the
/// last one of its sequence when they touch (a run of dropped records is one range).
pub struct Owed {
    jobs: VecDeque<(Seq, i64, i64)>,
    cap: usize,
}

impl Owed {
    pub fn with_capacity(cap: usize) -> Owed {
        Owed { jobs: VecDeque::with_capacity(cap), cap }
    }

    /// Keeps `from..to` of `seq`; false when full and it merges with nothing.
    pub fn push(&mut self, seq: Seq, from: i64, to: i64) -> bool {
        // Only the sequence's latest entry can touch a new range: each gap starts right after the
        // last id accepted. The search back stops there, so it costs the number of sequences
        // interleaved since, not the length of the buffer.
        if extend_run(self.jobs.iter_mut(), seq, from, to) {
            return true;
        }
        if self.jobs.len() >= self.cap {
            return false;
        }
        self.jobs.push_back((seq, from, to));
        true
    }

    /// Hands the oldest jobs to `deliver` until it refuses one (kept, in order).
    pub fn flush(&mut self, mut deliver: impl FnMut(Seq, i64, i64) -> bool) {
        while let Some(&(s, a, b)) = self.jobs.front() {
            if !deliver(s, a, b) {
                return;
            }
            self.jobs.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// Ranges a thread could not queue and cannot publish at once either (the producer, inside a
/// delivery callback), in order, runs merged, for that thread to publish as gaps later. Unbounded
/// by itself: its owner drains it every turn, so it holds what failed within one turn.
#[derive(Default)]
pub struct Unqueued {
    ranges: std::sync::Mutex<Vec<(Seq, i64, i64)>>,
    /// Not empty: one atomic load per turn instead of a lock.
    any: AtomicBool,
}

impl Unqueued {
    pub fn push(&self, seq: Seq, from: i64, to: i64) {
        let mut u = self.ranges.lock().unwrap_or_else(|p| p.into_inner());
        if !extend_run(u.iter_mut(), seq, from, to) {
            u.push((seq, from, to));
        }
        self.any.store(true, Ordering::Release);
    }

    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    /// Everything held, oldest first; `None` (without locking) when there is nothing.
    pub fn take(&self) -> Option<Vec<(Seq, i64, i64)>> {
        self.any
            .swap(false, Ordering::AcqRel)
            .then(|| std::mem::take(&mut *self.ranges.lock().unwrap_or_else(|p| p.into_inner())))
    }

    /// Puts back what could not be published yet, before anything added meanwhile; returns how
    /// many ranges are held.
    pub fn put_back(&self, mut ranges: Vec<(Seq, i64, i64)>) -> usize {
        let mut u = self.ranges.lock().unwrap_or_else(|p| p.into_inner());
        ranges.append(&mut u);
        *u = ranges;
        self.any.store(!u.is_empty(), Ordering::Release);
        u.len()
    }
}

/// Merges `from..to` into the latest entry of `seq` among `entries` if they touch; false if not.
pub fn extend_run<'a>(
    entries: impl DoubleEndedIterator<Item = &'a mut (Seq, i64, i64)>,
    seq: Seq,
    from: i64,
    to: i64,
) -> bool {
    let mut entries = entries;
    match entries.rfind(|e| e.0 == seq) {
        Some(e) if from <= e.2 && to >= e.1 => {
            e.1 = e.1.min(from);
            e.2 = e.2.max(to);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Seq = Seq::Ids { symbol_idx: 0, kind: Dense::Trade };
    const T1: Seq = Seq::Ids { symbol_idx: 1, kind: Dense::Trade };
    const A0: Seq = Seq::Ids { symbol_idx: 0, kind: Dense::AggTrade };

    #[test]
    fn owed_jobs_merge_runs_and_stay_within_their_capacity() {
        let mut o = Owed::with_capacity(2);
        for id in 100..200 {
            assert!(o.push(T0, id, id + 1), "a run of drops is one range");
        }
        assert!(o.push(T1, 5, 6));
        assert!(!o.push(T0, 500, 501), "full, and it touches nothing");
        assert!(o.push(T0, 200, 201), "full, but it extends the run");
        let mut got = Vec::new();
        o.flush(|s, a, b| {
            got.push((s, a, b));
            got.len() < 2
        });
        assert_eq!(got, vec![(T0, 100, 201), (T1, 5, 6)]);
        assert_eq!(o.len(), 1, "the refused one is kept");
    }

    #[test]
    fn unqueued_failures_merge_runs_and_keep_their_order() {
        let u = Unqueued::default();
        assert_eq!(u.take(), None);
        for id in 10..20 {
            u.push(T0, id, id + 1);
        }
        u.push(T1, 3, 4);
        u.push(T0, 20, 21);
        let mut got = u.take().unwrap();
        assert_eq!(got, vec![(T0, 10, 21), (T1, 3, 4)]);
        assert!(u.is_empty());
        u.push(A0, 1, 2);
        got.remove(0);
        assert_eq!(u.put_back(got), 2, "the unpublished one goes back in front");
        assert_eq!(u.take().unwrap(), vec![(T1, 3, 4), (A0, 1, 2)]);
    }

    #[test]
    fn a_full_channel_hands_the_job_back_and_resyncs_always_fit() {
        let (tx, rx) = channel(2);
        let job = |i| Job::Range { symbol_idx: 0, kind: Dense::Trade, from: i, to: i + 1 };
        for i in 0..CHANNEL_JOBS as i64 {
            tx.try_send(job(i)).unwrap();
        }
        assert_eq!(tx.try_send(job(-1)), Err(job(-1)));
        assert_eq!(tx.try_send(Job::DepthResync { symbol_idx: 1 }), Ok(()));
        assert_eq!(tx.try_send(Job::DepthResync { symbol_idx: 0 }), Ok(()));
        assert_eq!(rx.take_resync(1), Some(1), "from 1 on: 1 before 0");
        assert_eq!(rx.take_resync(1), Some(0), "wrapping around");
        assert_eq!(rx.take_resync(0), None);
        rx.close();
        assert_eq!(tx.try_send(job(7)), Err(job(7)), "closed: handed back, not lost");
        assert_eq!(rx.try_recv(), Some(job(0)), "what was queued before is still there");
    }
}
