//! The producer thread: drains the ring (live records) and the backfill channel into a sink, and
//! times each record from ring commit to acknowledgement.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::books::Books;
use super::{SendError, Sink, StallWatch};
use crate::handoff::OwnedRecord;
use crate::metrics::{LatencyRecorder, Metrics, Stage};
use crate::record::RecordType;
use crate::ring::{RecordView, RingReader};

thread_local! {
    /// The producer thread's latency recorder. Delivery callbacks run inside `poll` on the same
    /// thread, so a thread-local gives them lock-free access.
    static RECORDER: RefCell<Option<LatencyRecorder>> = const { RefCell::new(None) };
}

pub(super) fn record_latency(stage: Stage, symbol_idx: usize, ns: u64) {
    RECORDER.with(|r| {
        if let Some(r) = r.borrow_mut().as_mut() {
            r.record(stage, symbol_idx, ns);
        }
    });
}

/// Records taken from the ring per turn, at most; a turn that takes this many does not pause.
const DRAIN_MAX: usize = 4096;
/// Longest sleep of the producer thread with nothing to do.
const IDLE_WAIT: Duration = Duration::from_millis(5);

/// What the producer thread did, for the exit log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProducerReport {
    pub handed_over: u64,
    pub rejected: u64,
    /// Accepted but not acknowledged when the flush deadline passed.
    pub unflushed: usize,
}

/// One look of the stall watch (a sink with nothing to watch has none), at the producer's pace:
/// once a turn, and once a wait while the sink pushes back.
fn watch(stall: &mut Option<StallWatch>, sink: &mut dyn Sink, metrics: &Metrics) {
    if let Some(w) = stall {
        let acked = sink.take_acked();
        // An acknowledgement settles the look (the wait starts again at it, whatever is in
        // flight), so librdkafka's count, which takes two of its locks, is asked only on turns
        // without one: a busy producer, acknowledged every turn, never asks.
        let in_flight = if acked { 1 } else { sink.in_flight() };
        w.update(Instant::now(), in_flight, acked, metrics);
    }
}

/// Offers one record to the sink until it takes it, polling delivery reports while it pushes
/// back. Gives up (false) only past `stop_at`, the shutdown deadline.
fn send_blocking(
    sink: &mut dyn Sink,
    v: &RecordView<'_>,
    metrics: &Metrics,
    stop_at: Option<Instant>,
    stall: &mut Option<StallWatch>,
) -> bool {
    loop {
        match sink.send(v) {
            Ok(()) => return true,
            Err(SendError::Rejected(_)) => return false,
            Err(SendError::Backpressure) => {
                metrics.sink_errors.with_label_values(&["backpressure"]).inc();
                sink.poll(Duration::from_millis(5));
                // A stalled broker fills librdkafka's queue: the gauge keeps growing meanwhile.
                watch(stall, sink, metrics);
                if stop_at.is_some_and(|t| Instant::now() >= t) {
                    return false;
                }
            }
        }
    }
}

/// Hands one record to the sink ([`send_blocking`]) and counts the outcome.
fn emit(
    sink: &mut dyn Sink,
    v: &RecordView<'_>,
    metrics: &Metrics,
    stop_at: Option<Instant>,
    report: &mut ProducerReport,
    stall: &mut Option<StallWatch>,
) -> bool {
    let ok = send_blocking(sink, v, metrics, stop_at, stall);
    if ok {
        report.handed_over += 1
    } else {
        report.rejected += 1
    }
    ok
}

/// Drains the ring (live records) and the backfill channel (records fetched from REST, gap
/// markers) into the sink until the event loop has stopped, the backfill thread is done and both
/// are empty, then flushes within `flush_timeout`. With `books`, depth records pass through the
/// order books, which hold, publish and add snapshots in their place ([`super::books`]).
pub fn run_producer(
    mut reader: RingReader,
    backfilled: Option<Receiver<OwnedRecord>>,
    mut sink: Box<dyn Sink>,
    metrics: Arc<Metrics>,
    flush_timeout: Duration,
    shutdown: crate::shutdown::Shutdown,
    mut books: Option<Books>,
) -> ProducerReport {
    // The sinks' delivery reports record the last stage only.
    RECORDER.with(|r| *r.borrow_mut() = Some(metrics.latency.recorder_for(&[Stage::EnqueueToAck])));
    sink.start();
    let reports_wake = sink.wake_on_reports(reader.kick_handle());
    let window = sink.batch_window();
    let mut report = ProducerReport::default();
    let mut stop_at: Option<Instant> = None;
    let mut backfill_open = backfilled.is_some();
    let mut stall = sink.stall_after().map(StallWatch::new);
    loop {
        if stop_at.is_none() && shutdown.is_triggered() {
            stop_at = Some(Instant::now() + flush_timeout);
        }
        let mut n = reader.drain_with(DRAIN_MAX, |v| match books.as_mut() {
            Some(b) if v.meta.kind == RecordType::DepthUpdate => {
                b.on_record(&v, &mut |r| emit(sink.as_mut(), r, &metrics, stop_at, &mut report, &mut stall));
            }
            _ => {
                emit(sink.as_mut(), &v, &metrics, stop_at, &mut report, &mut stall);
            }
        });
        if let Some(rx) = &backfilled {
            loop {
                match rx.try_recv() {
                    Ok(rec) => {
                        let v = RecordView {
                            meta: rec.meta,
                            enqueue_ns: crate::clock::now_ns(),
                            key: &rec.key,
                            payload: &rec.payload,
                        };
                        emit(sink.as_mut(), &v, &metrics, stop_at, &mut report, &mut stall);
                        n += 1;
                    }
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        backfill_open = false;
                        break;
                    }
                }
            }
        }
        if let Some(b) = books.as_mut() {
            sink.take_depth_failures(&mut |s| b.republish(s));
            b.tick(&mut |r| emit(sink.as_mut(), r, &metrics, stop_at, &mut report, &mut stall));
        }
        sink.poll(Duration::ZERO);
        watch(&mut stall, sink.as_mut(), &metrics);
        RECORDER.with(|r| r.borrow_mut().as_mut().map(|r| r.maybe_publish(Duration::from_millis(250))));
        if n > 0 && n < DRAIN_MAX && !window.is_zero() && stop_at.is_none() {
            // Records are flowing: let the next ones gather for one window, unannounced, so that
            // neither the event loop (one unpark per read batch) nor librdkafka's threads (one
            // request per hand-over) wake for every few records. A quiet ring ends the pacing
            // below: the first record after it wakes us at once. Delivery reports are served as
            // their kick comes, not at the window's end: that wait would add to every record's
            // `enqueue_to_ack` and delay the acknowledgement of the batch before.
            let end = Instant::now() + window;
            while reader.wait_for_kick(end) {
                sink.poll(Duration::ZERO);
                if shutdown.is_triggered() {
                    break;
                }
            }
        } else if n == 0 {
            if reader.is_abandoned() && reader.is_empty() && !backfill_open {
                break;
            }
            metrics.kafka_in_flight.set(sink.in_flight() as i64);
            // Sleep until the event loop commits more (it unparks us) or delivery reports arrive
            // (the sink kicks us); the timer only bounds how late the backfill channel and the
            // books' ticks are served. A sink that cannot kick is polled every 200 µs instead
            // while records are in flight.
            let in_flight = !reports_wake && sink.in_flight() > 0;
            reader.wait(if in_flight { Duration::from_micros(200) } else { IDLE_WAIT });
        }
    }
    if let Some(b) = books.as_mut() {
        b.finish(&mut |r| emit(sink.as_mut(), r, &metrics, stop_at, &mut report, &mut stall));
    }
    let left = stop_at.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or(flush_timeout);
    report.unflushed = sink.flush(left.max(Duration::from_millis(100)));
    metrics.kafka_in_flight.set(report.unflushed as i64);
    RECORDER.with(|r| r.borrow_mut().as_mut().map(|r| r.publish()));
    report
}

#[cfg(test)]
mod tests;
