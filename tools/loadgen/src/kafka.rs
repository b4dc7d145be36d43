//! Kafka: a topic with log-append timestamps, and an end-to-end consumer timing every record
//! against the exchange event time it carries.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll as TaskPoll, Wake};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use hdrhistogram::Histogram;
use marketflow_ingestor::clock;

use crate::hgrm::new_hist;

fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark()
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = TaskContext::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let TaskPoll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// Creates `topic` (3 partitions) with `message.timestamp.type=LogAppendTime`, so every record
/// carries the broker's append time.
pub fn create_topic(broker: &str, topic: &str) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::ClientConfig;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", broker).create()?;
    let t = NewTopic::new(topic, 3, TopicReplication::Fixed(1)).set("message.timestamp.type", "LogAppendTime");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    let res = block_on(admin.create_topics(&[t], &opts))?;
    for r in res {
        if let Err((name, code)) = r {
            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                bail!("cannot create topic {name}: {code}");
            }
        }
    }
    Ok(())
}

/// Where the exchange event time is in a record.
#[derive(Clone, Copy, Debug)]
pub enum TimeField {
    /// Ours: `"event_time_ms":<int>`, or `"event_time_us":<int>` when the ingester runs
    /// `TIME_UNIT=us`; the unit is the one the field's name says.
    EventTime,
    /// cryptofeed's: `"timestamp":<float seconds>`.
    TimestampSecs,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The exchange event time in a record, µs since the epoch.
pub fn event_us(payload: &[u8], f: TimeField) -> Option<i64> {
    let (at, us_per_unit) = match f {
        TimeField::EventTime => {
            const KEY: &[u8] = b"\"event_time_";
            let at = find(payload, KEY)? + KEY.len();
            let unit = match payload.get(at..at + 4)? {
                b"ms\":" => 1_000.0,
                b"us\":" => 1.0,
                _ => return None,
            };
            (at + 4, unit)
        }
        TimeField::TimestampSecs => {
            const KEY: &[u8] = b"\"timestamp\":";
            (find(payload, KEY)? + KEY.len(), 1e6)
        }
    };
    let rest = &payload[at..];
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'e' | b'E' | b'+')))
        .unwrap_or(rest.len());
    let v: f64 = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    Some((v * us_per_unit).round() as i64)
}

pub struct E2eOut {
    /// Broker append time - event time, µs (ms resolution).
    pub append: Histogram<u64>,
    /// Consumer receive time - event time, µs.
    pub consume: Histogram<u64>,
    pub in_window: u64,
}

/// A consumer reading one topic from the beginning, timing records whose event time falls in
/// the window.
pub struct E2eConsumer {
    pub stop: Arc<AtomicBool>,
    pub window: Arc<(AtomicI64, AtomicI64)>,
    pub total: Arc<AtomicU64>,
    /// Records seen so far whose event time is in the window.
    pub in_window: Arc<AtomicU64>,
    pub handle: Option<JoinHandle<Result<E2eOut>>>,
}

impl E2eConsumer {
    pub fn start(broker: &str, topic: &str, field: TimeField) -> Result<E2eConsumer> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{ClientConfig, Message, Offset, Timestamp, TopicPartitionList};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker)
            .set("group.id", format!("loadgen-{}-{}", std::process::id(), clock::now_ns()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "50")
            .set("client.id", "loadgen-e2e")
            .create()?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let parts = md.topics().first().map(|t| t.partitions().len()).unwrap_or(0).max(1);
        let mut tpl = TopicPartitionList::new();
        for p in 0..parts as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let stop = Arc::new(AtomicBool::new(false));
        let window = Arc::new((AtomicI64::new(i64::MAX), AtomicI64::new(i64::MAX)));
        let total = Arc::new(AtomicU64::new(0));
        let in_window = Arc::new(AtomicU64::new(0));
        let (s, w, t, iw) = (stop.clone(), window.clone(), total.clone(), in_window.clone());
        let handle = std::thread::Builder::new().name("e2e-consumer".into()).spawn(move || {
            let mut out = E2eOut { append: new_hist(), consume: new_hist(), in_window: 0 };
            while !s.load(Ordering::Relaxed) {
                let Some(r) = consumer.poll(Duration::from_millis(100)) else { continue };
                let msg = match r {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("loadgen: consumer: {e}");
                        continue;
                    }
                };
                let now_us = clock::now_ns() / 1000;
                t.fetch_add(1, Ordering::Relaxed);
                let Some(ev_us) = msg.payload().and_then(|p| event_us(p, field)) else { continue };
                // The broker's append time is whole milliseconds: it is set against the event
                // time in whole milliseconds too, whichever unit the record carries, so that
                // TIME_UNIT=us and ms runs (and cryptofeed's) read alike.
                let ev = ev_us.div_euclid(1000);
                let (from, to) = (w.0.load(Ordering::Relaxed), w.1.load(Ordering::Relaxed));
                if ev < from || ev >= to {
                    continue;
                }
                out.in_window += 1;
                iw.store(out.in_window, Ordering::Relaxed);
                if let Timestamp::LogAppendTime(a) | Timestamp::CreateTime(a) = msg.timestamp() {
                    out.append.saturating_record(((a - ev).max(0) as u64 * 1000).max(1));
                }
                out.consume.saturating_record(now_us.saturating_sub(ev_us.max(0) as u64).max(1));
            }
            Ok(out)
        })?;
        Ok(E2eConsumer { stop, window, total, in_window, handle: Some(handle) })
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn in_window(&self) -> u64 {
        self.in_window.load(Ordering::Relaxed)
    }

    pub fn open_window(&self, from_ms: i64) {
        self.window.0.store(from_ms, Ordering::Relaxed);
    }

    pub fn close_window(&self, to_ms: i64) {
        self.window.1.store(to_ms, Ordering::Relaxed);
    }

    pub fn finish(mut self) -> Result<E2eOut> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().map_err(|_| anyhow!("consumer panicked"))?
    }
}

impl Drop for E2eConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_are_found_in_both_payloads() {
        assert_eq!(
            event_us(br#"{"type":"trade","event_time_ms":1700000000123,"x":1}"#, TimeField::EventTime),
            Some(1_700_000_000_123_000)
        );
        let cf = br#"{"exchange":"BINANCE","timestamp":1700000000.123,"receipt_timestamp":1700000000.2}"#;
        assert_eq!(event_us(cf, TimeField::TimestampSecs), Some(1_700_000_000_123_000));
    }

    /// `TIME_UNIT=us`: the ingester writes `event_time_us` (an aggTrade record as tests/fixtures.rs
    /// has it, its trade time moved a microsecond so the two fields can be told apart).
    #[test]
    fn microsecond_event_times_are_read_as_microseconds() {
        let r = br#"{"type":"agg_trade","exchange":"binance","symbol":"BNBBTC","agg_id":12345,"first_trade_id":100,"last_trade_id":105,"price":"0.001","qty":"100","side":"sell","trade_time_us":1672515782136122,"event_time_us":1672515782136123,"recv_time_ns":1700000000123456789}"#;
        assert_eq!(event_us(r, TimeField::EventTime), Some(1_672_515_782_136_123));
    }

    /// The unit comes from the name, never from the size of the number: a field in another unit
    /// is not read as either.
    #[test]
    fn an_event_time_in_an_unknown_unit_is_not_guessed() {
        assert_eq!(event_us(br#"{"event_time_ns":1700000000123456789}"#, TimeField::EventTime), None);
        assert_eq!(event_us(br#"{"event_time":1700000000123}"#, TimeField::EventTime), None);
        assert_eq!(event_us(br#"{"trade_time_ms":1700000000123}"#, TimeField::EventTime), None);
    }
}
