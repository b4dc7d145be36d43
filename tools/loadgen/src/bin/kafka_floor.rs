//! The floor under the ingester's Kafka side: CPU per delivered record of librdkafka driven by the
//! simplest possible producer thread, with no WebSocket, TLS, parse or ring in front of it.
//!
//! Issue 14 asks for 3 µs of CPU per delivered message at 16k msg/s smooth, for the whole
//! ingester. What librdkafka alone costs at that rate, with the ingester's producer settings
//! (idempotent, `acks=all`), says how much of that budget is left for receiving: if this floor is
//! already over it, no change to our receive path or event loop can meet the target with
//! librdkafka on this host. Records arrive evenly, one every 1/rate s, and are handed over every
//! `--window-us` (0: each on its own wake-up), like `KAFKA_BATCH_WINDOW_US`.
//!
//! ```text
//! cargo run --release -p loadgen --bin kafka_floor -- --rate 16000 --window-us 1000 --linger-ms 2
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use loadgen::{procfs, sched};

#[derive(Parser)]
#[command(about = "CPU per delivered record of librdkafka alone at a smooth rate (issue 14's floor)")]
struct Args {
    /// Records per second, spread evenly.
    #[arg(long, default_value_t = 16000.0)]
    rate: f64,
    /// Hand the records due every this many µs (0: each record on its own wake-up).
    #[arg(long, default_value_t = 500)]
    window_us: u64,
    /// librdkafka's `linger.ms` (the ingester's default is 0.05).
    #[arg(long, default_value = "0.05")]
    linger_ms: String,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Seconds before measuring (connection, metadata, producer id).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    #[arg(long, default_value = "127.0.0.1:9092")]
    broker: String,
    #[arg(long, default_value = "kafka-floor")]
    topic: String,
}

struct Counting(Arc<AtomicU64>, Arc<AtomicU64>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        let c = if r.is_ok() { &self.0 } else { &self.1 };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    let valid = a.rate > 0.0
        && a.rate <= 1e6
        && a.secs > 0.0
        && a.secs <= 3600.0
        && (0.0..=60.0).contains(&a.warmup)
        && a.window_us <= 1_000_000;
    if !valid {
        bail!("--rate must be in (0, 1e6], --secs in (0, 3600], --warmup in [0, 60], --window-us at most 1000000");
    }
    // A topic of its own per run: the shared broker keeps the others' records.
    let topic =
        format!("{}-{}", a.topic, std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis());
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let producer: BaseProducer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", &a.broker)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", &a.linger_ms)
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Counting(ok.clone(), failed.clone()))
        .context("creating the producer")?;
    let pid = std::process::id().to_string();
    let keys = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
    let mut payload = br#"{"type":"agg_trade","exchange":"binance","symbol":"BTCUSDT","event_time_ms":1700000000000,"agg_trade_id":0000000000,"price":"43250.12000000","quantity":"0.01230000","first_trade_id":1,"last_trade_id":2,"trade_time_ms":1700000000000,"buyer_is_maker":true}"#.to_vec();
    let id_at = payload.windows(10).position(|w| w == b"0000000000").context("no id field")?;
    // SAFETY: the client pointer is valid while `producer` lives; the reference is released
    // before the producer is dropped.
    let main_queue = unsafe { rdkafka::bindings::rd_kafka_queue_get_main(producer.client().native_ptr()) };
    if main_queue.is_null() {
        bail!("librdkafka has no main queue");
    }
    let window = Duration::from_micros(a.window_us);
    let start = Instant::now();
    let (measure_from, end) = (Duration::from_secs_f64(a.warmup), Duration::from_secs_f64(a.warmup + a.secs));
    let mut sent: u64 = 0;
    let mut before = None;
    let mut next_wake = start;
    loop {
        let now = Instant::now();
        let elapsed = now - start;
        if before.is_none() && elapsed >= measure_from {
            before = Some((sched::thread_cpu(&pid), ok.load(Ordering::Relaxed), now));
        }
        if elapsed >= end {
            break;
        }
        let due = (elapsed.as_secs_f64() * a.rate) as u64;
        while sent < due && start.elapsed() < end {
            // A different id in each record, like the real stream (same length, written in place).
            let mut id = sent;
            for b in payload[id_at..id_at + 10].iter_mut().rev() {
                *b = b'0' + (id % 10) as u8;
                id /= 10;
            }
            let key = keys[(sent % 3) as usize];
            match producer.send(BaseRecord::to(&topic).key(key).payload(&payload[..])) {
                Ok(()) => {}
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    producer.poll(Duration::from_millis(1));
                    continue;
                }
                Err((e, _)) => bail!("producing to {topic}: {e}"),
            }
            sent += 1;
        }
        // Serve every delivery report batch waiting (one per `poll`), as the ingester does.
        for _ in 0..64 {
            producer.poll(Duration::ZERO);
            // SAFETY: `main_queue` is a live reference until it is destroyed below.
            if unsafe { rdkafka::bindings::rd_kafka_queue_length(main_queue) } == 0 {
                break;
            }
        }
        // Sleep to the next window (or the next record when the window is 0), never spin.
        let step = if window.is_zero() { Duration::from_secs_f64(1.0 / a.rate) } else { window };
        next_wake += step;
        let now = Instant::now();
        if next_wake > now {
            std::thread::sleep(next_wake - now);
        } else {
            next_wake = now;
        }
    }
    let (cpu_a, acked_a, t_a) = before.context("the run ended before the warm-up did")?;
    let cpu_b = sched::thread_cpu(&pid);
    let acked_b = ok.load(Ordering::Relaxed);
    let window_s = t_a.elapsed().as_secs_f64();
    let _ = producer.flush(Duration::from_secs(10));
    // SAFETY: taken above, not used after this.
    unsafe { rdkafka::bindings::rd_kafka_queue_destroy(main_queue) };
    let delivered = (acked_b - acked_a) as f64;
    let (due, failures) = (a.rate * window_s, failed.load(Ordering::Relaxed));
    // A floor read off a run that did not deliver what was due would be a made-up figure.
    if failures > 0 || delivered < 0.99 * due {
        bail!("{delivered} records delivered in the window of {due:.0} due, {failures} failed: no figure");
    }
    let mut total = 0.0;
    let mut rows = Vec::new();
    for (name, b) in &cpu_b {
        let d = (b - cpu_a.get(name).copied().unwrap_or(0.0)).max(0.0);
        total += d;
        let group = if procfs::thread_group(name) == "librdkafka" { "librdkafka" } else { "producer (this thread)" };
        rows.push((group, name.clone(), d));
    }
    let grouped = |g: &str| rows.iter().filter(|r| r.0 == g).map(|r| r.2).sum::<f64>();
    println!(
        "kafka_floor: {:.0} records/s delivered over {:.1} s (window {} µs, linger.ms {}), {} failed; load {}",
        delivered / window_s,
        window_s,
        a.window_us,
        a.linger_ms,
        failures,
        procfs::loadavg()
    );
    println!(
        "CPU µs per delivered record: total {:.2} = producer thread {:.2} + librdkafka's threads {:.2}",
        total * 1e6 / delivered,
        grouped("producer (this thread)") * 1e6 / delivered,
        grouped("librdkafka") * 1e6 / delivered
    );
    Ok(())
}
