//! The producer thread's pacing, observed by counting what it hands the sink (never by timing).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::ring::{ring, Kick, RecordMeta, RingWriter};
use crate::shutdown::Shutdown;

/// Bounds a wait that must end by itself; the bound only keeps a broken build from hanging.
const BOUND: Duration = Duration::from_secs(60);

/// What the producer did to the sink, read from the test's thread.
#[derive(Default)]
struct Seen {
    sends: AtomicUsize,
    /// Polls since the last send.
    polls: AtomicUsize,
    /// The producer's wake-up, as a sink with delivery reports would keep it.
    kick: Mutex<Option<Kick>>,
    /// Records the sink says are in flight, and whether one was acknowledged since the producer
    /// last asked: the test plays the broker.
    in_flight: AtomicUsize,
    acked: AtomicBool,
}

impl Seen {
    fn sends(&self) -> usize {
        self.sends.load(Ordering::SeqCst)
    }

    fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }

    /// A delivery report arriving, as librdkafka announces it.
    fn kick(&self) {
        self.kick.lock().unwrap().as_ref().expect("the producer asked for report wake-ups").kick();
    }
}

/// Takes every record at once and counts; its batch window and stall bound are the test's.
struct Counting {
    seen: Arc<Seen>,
    window: Duration,
    stall_after: Option<Duration>,
}

impl Sink for Counting {
    fn send(&mut self, _rec: &RecordView<'_>) -> Result<(), SendError> {
        self.seen.polls.store(0, Ordering::SeqCst);
        self.seen.sends.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn poll(&mut self, _timeout: Duration) {
        self.seen.polls.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_on_reports(&mut self, kick: Kick) -> bool {
        *self.seen.kick.lock().unwrap() = Some(kick);
        true
    }
    fn batch_window(&self) -> Duration {
        self.window
    }
    fn in_flight(&self) -> usize {
        self.seen.in_flight.load(Ordering::SeqCst)
    }
    fn stall_after(&self) -> Option<Duration> {
        self.stall_after
    }
    fn take_acked(&mut self) -> bool {
        self.seen.acked.swap(false, Ordering::SeqCst)
    }
    fn flush(&mut self, _timeout: Duration) -> usize {
        0
    }
}

struct Rig {
    writer: RingWriter,
    seen: Arc<Seen>,
    shutdown: Shutdown,
    metrics: Arc<Metrics>,
    producer: std::thread::JoinHandle<ProducerReport>,
}

fn rig(window: Duration) -> Rig {
    rig_with(window, None)
}

fn rig_with(window: Duration, stall_after: Option<Duration>) -> Rig {
    let (writer, reader) = ring(1 << 16);
    let seen = Arc::new(Seen::default());
    let sink = Box::new(Counting { seen: seen.clone(), window, stall_after });
    let shutdown = Shutdown::new();
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (s, m) = (shutdown.clone(), metrics.clone());
    let producer = std::thread::spawn(move || run_producer(reader, None, sink, m, Duration::from_secs(1), s, None));
    let rig = Rig { writer, seen, shutdown, metrics, producer };
    rig.until("the producer started", |s| s.kick.lock().unwrap().is_some());
    rig
}

impl Rig {
    /// Commits one trade record and wakes the producer as the event loop does after a read.
    fn record(&mut self) {
        let meta = RecordMeta { kind: RecordType::Trade, flags: 0, symbol_idx: 0, event_time_ms: 1, recv_ns: 1 };
        self.writer.stage(meta, b"BTCUSDT").extend_from_slice(b"{}");
        self.writer.commit(crate::clock::now_ns()).unwrap();
        self.writer.notify();
    }

    fn until(&self, what: &str, cond: impl Fn(&Seen) -> bool) {
        let t = Instant::now();
        while !cond(&self.seen) {
            assert!(t.elapsed() < BOUND, "{what}: not within {BOUND:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The event loop stops (drops its writer): the producer drains, flushes and returns.
    fn finish(self) -> ProducerReport {
        drop(self.writer);
        self.producer.join().unwrap()
    }
}

/// Guards `0` = off: a zero window read as "unset" (a default, or a long window) would hold the
/// second record for that window. It cannot tell 0 from a window shorter than its polling; the
/// hour-long window below shows that a window does hold.
#[test]
fn a_window_of_zero_hands_each_record_over_as_it_comes() {
    let mut rig = rig(Duration::ZERO);
    for n in 1..=3 {
        rig.record();
        rig.until("the record was handed over", |s| s.sends() == n);
    }
    assert_eq!(rig.finish().handed_over, 3);
}

#[test]
fn a_window_holds_the_records_but_serves_delivery_reports_as_they_come() {
    // An hour: only a kick or the shutdown can let the producer act before the window ends.
    let mut rig = rig(Duration::from_secs(3600));
    rig.record();
    rig.until("the first record after a quiet spell went at once", |s| s.sends() == 1);
    // Its turn polled once after the send; the window has begun (or begins with a kick waiting).
    rig.until("the turn polled", |s| s.polls() >= 1);
    rig.record();
    rig.seen.kick();
    rig.until("the delivery report was served within the window", |s| s.polls() >= 2);
    assert_eq!(rig.seen.sends(), 1, "a record that came during the window was taken before it ended");
    // Shutdown ends the window at the next kick: the held record goes, then the flush.
    rig.shutdown.trigger();
    rig.seen.kick();
    rig.until("the held record went after the shutdown", |s| s.sends() == 2);
    assert_eq!(rig.finish().handed_over, 2);
}

/// The watch's arithmetic is tested with an injected clock (`sink::stall`); this is its wiring:
/// the producer looks at each turn, idle or not, and an acknowledgement clears the stall at once.
#[test]
fn records_left_unacknowledged_past_the_bound_take_readiness_down_until_the_next_acknowledgement() {
    let mut rig = rig_with(Duration::ZERO, Some(Duration::from_millis(1)));
    let h = rig.metrics.health.clone();
    h.subscribed.store(true, Ordering::SeqCst);
    h.sink_ready.store(true, Ordering::SeqCst);
    rig.seen.in_flight.store(3, Ordering::SeqCst);
    rig.record();
    let t = Instant::now();
    while h.ready() {
        assert!(t.elapsed() < BOUND, "still ready {BOUND:?} after records stopped being acknowledged");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(h.sink_stall_ms.load(Ordering::SeqCst) >= 1);
    assert!(rig.metrics.kafka_unacked_age.get() >= 0.001);
    // The broker answers again, records still in flight: the next turn (a delivery report kicks
    // the producer) sees an acknowledgement.
    let t = Instant::now();
    while !h.ready() {
        assert!(t.elapsed() < BOUND, "not ready again {BOUND:?} after acknowledgements resumed");
        rig.seen.acked.store(true, Ordering::SeqCst);
        rig.seen.kick();
        std::thread::sleep(Duration::from_millis(1));
    }
    // Nothing in flight is no stall however long it lasts.
    rig.seen.in_flight.store(0, Ordering::SeqCst);
    rig.seen.kick();
    rig.until("the gauge fell to 0", |_| rig.metrics.kafka_unacked_age.get() == 0.0);
    assert_eq!(rig.finish().handed_over, 1);
}
