//! The hand-off between the event-loop thread and the producer thread: a bounded, lock-free,
//! single-producer single-consumer byte ring ([`rtrb`]) carrying variable-length records.
//!
//! Each record is `[header][key][payload]`, encoded straight into the ring's free space
//! ([`RingWriter::direct`]), or staged and copied in with one `memcpy` where that space is not
//! contiguous (at the wrap point) or too short (a large depth update). A byte ring (rather
//! than a ring of fixed slots) lets a 200-byte trade and a 20 KiB depth update share one bounded
//! buffer without allocating per message and without sizing every slot for the worst case.
//!
//! The consumer may sleep when the ring is empty; the writer wakes it at most once per batch
//! (an atomic load per batch, a futex only when the consumer actually sleeps).

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rtrb::{Consumer, Producer, RingBuffer};

use crate::record::RecordType;

mod direct;

pub use direct::Direct;

const HEADER_LEN: usize = 40;
/// Spin iterations before parking, at most (tens of microseconds) and at least. The spin adapts:
/// it grows while records keep arriving during it and shrinks when it ends in a park, so a busy
/// feed is taken without futex round trips and a quiet one does not burn a core.
const SPIN_MAX: u32 = 2_000;
const SPIN_MIN: u32 = 32;

/// Record flags (a bit set carried with each record).
pub const FLAG_BACKFILLED: u8 = 1;
/// A control record (gap marker, depth resync or snapshot), not market data.
pub const FLAG_MARKER: u8 = 2;
/// Implausibly far ahead of its sequence: published with `"quarantined":true`.
pub const FLAG_QUARANTINED: u8 = 4;

/// What the producer thread needs besides the bytes: routing, key and timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    pub kind: RecordType,
    pub flags: u8,
    /// Index into the configured symbol list: a bounded metric label without a string lookup.
    pub symbol_idx: u16,
    /// Kafka message timestamp (exchange event time, or receive time when Binance sends none).
    pub event_time_ms: i64,
    /// Wall-clock receive time of the frame, Unix ns.
    pub recv_ns: u64,
}

/// A record as read back by the consumer; borrows the ring (or a scratch copy when it wrapped).
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    pub meta: RecordMeta,
    /// Wall-clock time the record was committed to the ring, Unix ns.
    pub enqueue_ns: u64,
    pub key: &'a [u8],
    pub payload: &'a [u8],
}

/// The ring is full: nothing was written; the staged record is kept for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFull;

struct Wake {
    parked: AtomicBool,
    /// Set by a [`Kick`]: work for the reader that is not in the ring (a delivery report).
    kicked: AtomicBool,
    /// The reader sleeps for a kick only ([`RingReader::wait_for_kick`]): the writer's records
    /// leave it asleep, so only a [`Kick`] unparks it.
    kick_parked: AtomicBool,
    /// Set by the writer when the ring is full ([`RingWriter::press`]): a batching window must end
    /// now, or the event loop waits on a ring nobody drains.
    pressed: AtomicBool,
    consumer: OnceLock<Thread>,
}

impl Wake {
    /// Unparks the reader if it sleeps. The caller has published its work (ring records or the
    /// `kicked` flag) and issued a SeqCst fence, pairing with the one in `RingReader::wait`: either
    /// the reader sees the work, or we see its `parked` flag (a store-load pattern).
    fn unpark_if_parked(&self) {
        self.unpark_if(&self.parked);
    }

    /// Unparks the reader if it sleeps with `flag` set (`parked` or `kick_parked`).
    fn unpark_if(&self, flag: &AtomicBool) {
        if flag.load(Ordering::Relaxed) && flag.swap(false, Ordering::AcqRel) {
            if let Some(t) = self.consumer.get() {
                t.unpark();
            }
        }
    }
}

/// Wakes the ring's reader from any thread for work outside the ring: librdkafka calls it when
/// delivery reports arrive, so the producer thread sleeps until there is something to do instead
/// of polling on a timer. Costs an atomic store and load when the reader is awake, a futex wake
/// when it sleeps.
#[derive(Clone)]
pub struct Kick(Arc<Wake>);

impl Kick {
    pub fn kick(&self) {
        let w = &self.0;
        w.kicked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        w.unpark_if_parked();
        // Pairs with the fence in `RingReader::wait_for_kick`, as above with `wait`'s.
        w.unpark_if(&w.kick_parked);
    }
}

/// Creates a ring of `capacity` bytes.
pub fn ring(capacity: usize) -> (RingWriter, RingReader) {
    let (prod, cons) = RingBuffer::new(capacity);
    let wake = Arc::new(Wake {
        parked: AtomicBool::new(false),
        kicked: AtomicBool::new(false),
        kick_parked: AtomicBool::new(false),
        pressed: AtomicBool::new(false),
        consumer: OnceLock::new(),
    });
    (
        RingWriter { prod, staged: Vec::with_capacity(64 * 1024), wake: wake.clone(), capacity },
        RingReader { cons, scratch: Vec::with_capacity(64 * 1024), wake, spin: SPIN_MAX },
    )
}

/// The event-loop side.
pub struct RingWriter {
    prod: Producer<u8>,
    /// The record being built; kept between a failed and a retried commit.
    staged: Vec<u8>,
    wake: Arc<Wake>,
    capacity: usize,
}

impl RingWriter {
    /// Starts a record and returns the buffer to append its payload to.
    pub fn stage(&mut self, meta: RecordMeta, key: &[u8]) -> &mut Vec<u8> {
        self.staged.clear();
        self.staged.resize(HEADER_LEN, 0);
        header((&mut self.staged[..HEADER_LEN]).try_into().unwrap(), meta, key.len());
        self.staged.extend_from_slice(key);
        &mut self.staged
    }

    /// Drops a staged record (its payload failed to encode).
    pub fn abort(&mut self) {
        self.staged.clear();
    }

    /// Publishes the staged record, stamping its enqueue time. On [`RingFull`] the record stays
    /// staged, so the caller can wait and call `commit` again without re-encoding.
    pub fn commit(&mut self, enqueue_ns: u64) -> Result<(), RingFull> {
        let len = self.staged.len();
        debug_assert!(len >= HEADER_LEN, "commit without stage");
        if len > self.capacity {
            // Cannot ever fit; refusing is better than blocking forever. `RING_BYTES` is
            // validated to be far larger than any Binance frame, so this means hostile input.
            self.staged.clear();
            return Err(RingFull);
        }
        self.staged[0..4].copy_from_slice(&(len as u32).to_le_bytes());
        self.staged[32..40].copy_from_slice(&enqueue_ns.to_le_bytes());
        self.prod.push_entire_slice(&self.staged).map_err(|_| RingFull)?;
        self.staged.clear();
        Ok(())
    }

    /// Whether a staged record is waiting for space.
    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// Wakes the consumer if it sleeps. Call once per batch of commits, not per record.
    pub fn notify(&self) {
        // Pairs with the fence in `RingReader::wait`: either the reader sees our records, or we
        // see its `parked` flag (a store-load pattern needs SeqCst on both sides).
        fence(Ordering::SeqCst);
        self.wake.unpark_if_parked();
    }

    /// The ring is full and a record waits for space: wakes the reader whatever it sleeps for,
    /// and ends a batching window ([`RingReader::wait_for_kick`] returns at once).
    pub fn press(&self) {
        self.wake.pressed.store(true, Ordering::Relaxed);
        // Pairs with the fences in `wait` and `wait_for_kick`.
        fence(Ordering::SeqCst);
        self.wake.unpark_if_parked();
        self.wake.unpark_if(&self.wake.kick_parked);
    }

    pub fn used_bytes(&self) -> usize {
        self.capacity - self.prod.slots()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// A record's header but its length and enqueue time (written at commit).
#[inline(always)]
fn header(h: &mut [u8; HEADER_LEN], meta: RecordMeta, key_len: usize) {
    h[4] = meta.kind as u8;
    h[5] = meta.flags;
    h[6..8].copy_from_slice(&(key_len as u16).to_le_bytes());
    h[8..10].copy_from_slice(&meta.symbol_idx.to_le_bytes());
    h[16..24].copy_from_slice(&meta.event_time_ms.to_le_bytes());
    h[24..32].copy_from_slice(&meta.recv_ns.to_le_bytes());
}

/// The producer-thread side.
pub struct RingReader {
    cons: Consumer<u8>,
    /// Where a record that wraps around the end of the ring is made contiguous.
    scratch: Vec<u8>,
    wake: Arc<Wake>,
    /// Current spin before parking, between `SPIN_MIN` and `SPIN_MAX`.
    spin: u32,
}

impl RingReader {
    /// Pops one record and hands it to `f`; `None` if the ring is empty.
    pub fn pop_with<R>(&mut self, f: impl FnOnce(RecordView<'_>) -> R) -> Option<R> {
        let mut h = [0u8; HEADER_LEN];
        {
            let chunk = self.cons.read_chunk(HEADER_LEN).ok()?;
            let (a, b) = chunk.as_slices();
            h[..a.len()].copy_from_slice(a);
            h[a.len()..].copy_from_slice(b);
            // Dropped without commit: the header stays in the ring until the whole record is read.
        }
        let total = u32::from_le_bytes(h[0..4].try_into().unwrap()) as usize;
        let chunk = self.cons.read_chunk(total).expect("a committed record is always whole");
        let (a, b) = chunk.as_slices();
        let bytes: &[u8] = if b.is_empty() {
            a
        } else {
            self.scratch.clear();
            self.scratch.extend_from_slice(a);
            self.scratch.extend_from_slice(b);
            &self.scratch
        };
        let view = view(bytes);
        let r = f(view);
        chunk.commit_all();
        Some(r)
    }

    /// Hands every record available now (at most `max`) to `f`, reading the ring's indices once
    /// and releasing the space once for the whole batch; returns how many were handed over.
    pub fn drain_with(&mut self, max: usize, mut f: impl FnMut(RecordView<'_>)) -> usize {
        let avail = self.cons.slots();
        if avail < HEADER_LEN {
            return 0;
        }
        let Ok(chunk) = self.cons.read_chunk(avail) else { return 0 };
        let (a, b) = chunk.as_slices();
        let mut off = 0;
        let mut n = 0;
        while n < max && off + HEADER_LEN <= avail {
            // The record starting at `off`: contiguous in `a` or `b`, or straddling the two.
            let at = |i: usize| if i < a.len() { a[i] } else { b[i - a.len()] };
            let total = u32::from_le_bytes([at(off), at(off + 1), at(off + 2), at(off + 3)]) as usize;
            let bytes: &[u8] = if off + total <= a.len() {
                &a[off..off + total]
            } else if off >= a.len() {
                &b[off - a.len()..off - a.len() + total]
            } else {
                self.scratch.clear();
                self.scratch.extend_from_slice(&a[off..]);
                self.scratch.extend_from_slice(&b[..off + total - a.len()]);
                &self.scratch
            };
            f(view(bytes));
            off += total;
            n += 1;
        }
        chunk.commit(off);
        n
    }

    pub fn is_empty(&self) -> bool {
        self.cons.is_empty()
    }

    /// The writer is gone (the event loop stopped): once empty, nothing more will come.
    pub fn is_abandoned(&self) -> bool {
        self.cons.is_abandoned()
    }

    /// A handle that wakes this reader from another thread ([`Kick`]).
    pub fn kick_handle(&self) -> Kick {
        Kick(self.wake.clone())
    }

    /// Sleeps until the writer notifies, a [`Kick`] comes or `timeout` passes; returns at once if
    /// the ring is not empty or a kick came since the last wait returned. Spins briefly first: a
    /// record usually follows within microseconds under load, and a futex round trip (writer's
    /// unpark, our wake-up) costs more than the wait.
    pub fn wait(&mut self, timeout: Duration) {
        let kicked = &self.wake.kicked;
        for _ in 0..self.spin {
            if !self.cons.is_empty() {
                self.spin = (self.spin * 2).min(SPIN_MAX);
                return;
            }
            if kicked.load(Ordering::Relaxed) {
                kicked.store(false, Ordering::Relaxed);
                return;
            }
            std::hint::spin_loop();
        }
        self.spin = (self.spin / 4).max(SPIN_MIN);
        let _ = self.wake.consumer.get_or_init(std::thread::current);
        self.wake.parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.cons.is_empty() && !self.cons.is_abandoned() && !kicked.load(Ordering::Relaxed) {
            std::thread::park_timeout(timeout);
        }
        self.wake.parked.store(false, Ordering::Relaxed);
        // The caller serves whatever the kick announced after this returns, so a kick that came
        // before this point is not lost by clearing it.
        kicked.store(false, Ordering::Relaxed);
    }

    /// Sleeps until a [`Kick`] or `until`, whichever is first, whatever the writer commits
    /// meanwhile; true for a kick (since the last wait returned), which the caller then serves.
    /// The producer's batching window: records gather unannounced, delivery reports are served
    /// as they come. A full ring ([`RingWriter::press`]) ends it as `until` does (false).
    pub fn wait_for_kick(&mut self, until: Instant) -> bool {
        let w = &*self.wake;
        let _ = w.consumer.get_or_init(std::thread::current);
        loop {
            if w.pressed.load(Ordering::Relaxed) {
                w.pressed.store(false, Ordering::Relaxed);
                return false;
            }
            if w.kicked.load(Ordering::Relaxed) {
                // Cleared before the caller serves it: a kick after this is not lost.
                w.kicked.store(false, Ordering::Relaxed);
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            w.kick_parked.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if !w.kicked.load(Ordering::Relaxed) && !w.pressed.load(Ordering::Relaxed) {
                // May also end early (a stale unpark): the loop checks again.
                std::thread::park_timeout(until - now);
            }
            w.kick_parked.store(false, Ordering::Relaxed);
        }
    }
}

/// Decodes one whole record (`[header][key][payload]`).
fn view(bytes: &[u8]) -> RecordView<'_> {
    let h = &bytes[..HEADER_LEN];
    let key_len = u16::from_le_bytes([h[6], h[7]]) as usize;
    RecordView {
        meta: RecordMeta {
            // The writer only ever stores valid discriminants.
            kind: RecordType::from_u8(h[4]).expect("ring header corrupted"),
            flags: h[5],
            symbol_idx: u16::from_le_bytes([h[8], h[9]]),
            event_time_ms: i64::from_le_bytes(h[16..24].try_into().unwrap()),
            recv_ns: u64::from_le_bytes(h[24..32].try_into().unwrap()),
        },
        enqueue_ns: u64::from_le_bytes(h[32..40].try_into().unwrap()),
        key: &bytes[HEADER_LEN..HEADER_LEN + key_len],
        payload: &bytes[HEADER_LEN + key_len..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(i: u16) -> RecordMeta {
        RecordMeta { kind: RecordType::Trade, flags: 0, symbol_idx: i, event_time_ms: i as i64, recv_ns: 7 }
    }

    #[test]
    fn records_round_trip_across_the_wrap_point() {
        let (mut w, mut r) = ring(1000);
        for round in 0..200u16 {
            let payload = vec![b'a' + (round % 26) as u8; 50 + (round as usize * 7) % 150];
            w.stage(meta(round), b"BTCUSDT").extend_from_slice(&payload);
            w.commit(99).unwrap();
            let got = r
                .pop_with(|v| {
                    assert_eq!(v.meta, meta(round));
                    assert_eq!(v.enqueue_ns, 99);
                    assert_eq!(v.key, b"BTCUSDT");
                    v.payload.to_vec()
                })
                .unwrap();
            assert_eq!(got, payload);
        }
        assert!(r.pop_with(|_| ()).is_none());
    }

    #[test]
    fn drained_batches_keep_order_across_the_wrap_point() {
        let (mut w, mut r) = ring(1000);
        let mut next_in = 0u32;
        let mut next_out = 0u32;
        for round in 0..300 {
            for _ in 0..(round % 7) {
                let len = 10 + (next_in as usize * 13) % 90;
                w.stage(meta(0), b"K").extend_from_slice(&vec![next_in as u8; len - 4]);
                if w.commit(next_in as u64).is_err() {
                    w.abort();
                    break;
                }
                next_in += 1;
            }
            r.drain_with(3, |v| {
                assert_eq!(v.enqueue_ns, next_out as u64);
                assert!(v.payload.iter().all(|&b| b == next_out as u8));
                next_out += 1;
            });
        }
        while r.drain_with(100, |_| next_out += 1) > 0 {}
        assert_eq!(next_out, next_in);
    }

    #[test]
    fn full_ring_keeps_the_staged_record_for_retry() {
        let (mut w, mut r) = ring(200);
        w.stage(meta(1), b"K").extend_from_slice(&[1; 100]);
        w.commit(1).unwrap();
        w.stage(meta(2), b"K").extend_from_slice(&[2; 100]);
        assert_eq!(w.commit(2), Err(RingFull));
        assert!(w.has_staged());
        r.pop_with(|v| assert_eq!(v.payload, &[1; 100])).unwrap();
        w.commit(3).unwrap();
        r.pop_with(|v| assert_eq!((v.payload, v.enqueue_ns), (&[2u8; 100][..], 3))).unwrap();
        // A record larger than the whole ring is refused instead of waiting forever.
        w.stage(meta(3), b"K").extend_from_slice(&[3; 300]);
        assert_eq!(w.commit(4), Err(RingFull));
        assert!(!w.has_staged());
    }

    /// Bounds a wait that must end by itself; the bound only keeps a broken build from hanging.
    const BOUND: Duration = Duration::from_secs(60);

    #[test]
    fn a_kick_wakes_a_sleeping_reader() {
        let (_w, mut r) = ring(1000);
        let kick = r.kick_handle();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(()).unwrap();
            // A day: only the kick can end this wait within the test's bound.
            r.wait(Duration::from_secs(86_400));
            tx.send(()).unwrap();
        });
        rx.recv().unwrap();
        // Once the reader has announced it sleeps (and a moment more, so that it usually does),
        // only the unpark can end its wait: the flag was checked before.
        while !kick.0.parked.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(50));
        kick.kick();
        rx.recv_timeout(BOUND).expect("the kick did not wake the sleeping reader");
        t.join().unwrap();
    }

    #[test]
    fn a_kick_before_the_wait_is_not_lost() {
        let (_w, mut r) = ring(1000);
        r.kick_handle().kick();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            r.wait(Duration::from_secs(86_400));
            tx.send(r).unwrap();
        });
        let mut r = rx.recv_timeout(BOUND).expect("a kick that came first did not end the wait");
        t.join().unwrap();
        // Served: the next wait sleeps its timeout again instead of returning at once for it.
        r.spin = 0;
        r.wait(Duration::from_millis(1));
        assert!(!r.wake.kicked.load(Ordering::Relaxed));
    }

    #[test]
    fn a_full_ring_ends_a_wait_for_kicks() {
        let (mut w, mut r) = ring(200);
        let kick = r.kick_handle();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            // A day: only the writer's press can end this wait within the test's bound.
            let kicked = r.wait_for_kick(Instant::now() + Duration::from_secs(86_400));
            tx.send(kicked).unwrap();
            r
        });
        while !kick.0.kick_parked.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let mut n = 0;
        loop {
            w.stage(meta(n), b"K").extend_from_slice(b"x");
            if w.commit(1).is_err() {
                break;
            }
            n += 1;
        }
        w.press();
        let kicked = rx.recv_timeout(BOUND).expect("a full ring left the batching window asleep");
        assert!(!kicked, "pressure is no kick to serve");
        let mut r = t.join().unwrap();
        assert_eq!(r.drain_with(usize::MAX, |_| {}), n as usize);
    }

    #[test]
    fn a_kick_ends_a_wait_for_kicks_and_records_do_not() {
        let (mut w, mut r) = ring(1000);
        let kick = r.kick_handle();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(()).unwrap();
            // A day: only the kick can end this wait within the test's bound.
            let kicked = r.wait_for_kick(Instant::now() + Duration::from_secs(86_400));
            tx.send(()).unwrap();
            (kicked, r)
        });
        rx.recv().unwrap();
        while !kick.0.kick_parked.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // A record and its notify leave the sleeper asleep: the writer wakes only `wait`.
        w.stage(meta(1), b"K").extend_from_slice(b"x");
        w.commit(1).unwrap();
        w.notify();
        kick.kick();
        rx.recv_timeout(BOUND).expect("the kick did not wake the sleeping reader");
        let (kicked, mut r) = t.join().unwrap();
        assert!(kicked);
        // Served: with none since, the wait ends at its deadline, records or not, and says so.
        assert!(!r.wait_for_kick(Instant::now()));
        assert!(!r.is_empty());
    }

    #[test]
    fn order_is_kept_between_threads() {
        let (mut w, mut r) = ring(4096);
        let n = 100_000u32;
        let t = std::thread::spawn(move || {
            let mut next = 0u32;
            while next < n {
                match r.pop_with(|v| u32::from_le_bytes(v.payload.try_into().unwrap())) {
                    Some(x) => {
                        assert_eq!(x, next);
                        next += 1;
                    }
                    None => r.wait(Duration::from_millis(10)),
                }
            }
        });
        for i in 0..n {
            w.stage(meta(0), b"").extend_from_slice(&i.to_le_bytes());
            while w.commit(0).is_err() {
                w.notify();
                std::thread::yield_now();
            }
            if i % 64 == 0 {
                w.notify();
            }
        }
        w.notify();
        t.join().unwrap();
    }
}
