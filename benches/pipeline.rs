//! The in-process pipeline: frames in memory -> WebSocket decode -> parse + normalize + encode ->
//! ring -> a consumer thread that only counts. Ours against the obvious build (serde_json owned
//! records over a crossbeam channel of `Vec<u8>`), same frames, same run.
//!
//! `pipeline_depth`: diff-depth frames through the same path, the consumer thread (the producer's
//! place) only counting, or keeping the order book on every record as the producer does
//! (`sink::books`): the cost of book upkeep on the pipeline's rate, with and without, same run.

mod common;

use std::time::{Duration, Instant};

use common::{baseline, depth_wire, trade_wire, MemSocket};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use marketflow_ingestor::binance::venue::VENUE;
use marketflow_ingestor::handoff::depth::DepthSeed;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Outcome, Pipeline};
use marketflow_ingestor::sink::{BookSettings, Books};
use marketflow_ingestor::stream::StreamKind;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

const FRAMES: u64 = 20_000;

fn socket(wire: &[u8], cfg: WebSocketConfig) -> WebSocket<MemSocket> {
    WebSocket::from_raw_socket(MemSocket(std::io::Cursor::new(wire.to_vec())), Role::Client, Some(cfg))
}

fn ours(wire: &[u8]) -> Duration {
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (w, mut r) = marketflow_ingestor::ring::ring(64 << 20);
    let mut pipeline = Pipeline::new(&VENUE, w, metrics, None);
    // As the event loop runs it: every frame notes its stream's last message.
    pipeline.track_streams(&[StreamKind::Trade]);
    let mut ws = socket(wire, WebSocketConfig::default().read_buffer_size(16 * 1024));
    let consumer = std::thread::spawn(move || {
        let mut n = 0;
        while n < FRAMES {
            let k = r.drain_with(4096, |v| {
                std::hint::black_box(v.payload.len());
            });
            if k == 0 {
                r.wait(Duration::from_millis(1));
            }
            n += k as u64;
        }
    });
    let t = Instant::now();
    while let Ok(Message::Text(text)) = ws.read() {
        let o = pipeline.on_text(text.as_str(), 1, Admission::Normal);
        debug_assert_eq!(o, Outcome::Record);
        std::hint::black_box(o);
    }
    pipeline.flush_batch();
    consumer.join().unwrap();
    t.elapsed()
}

fn naive(wire: &[u8]) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(4096);
    let mut ws = socket(wire, WebSocketConfig::default());
    let consumer = std::thread::spawn(move || {
        let mut n = 0;
        while n < FRAMES {
            rx.recv().unwrap();
            n += 1;
        }
    });
    let t = Instant::now();
    while let Ok(Message::Text(text)) = ws.read() {
        tx.send(baseline::run(text.as_bytes())).unwrap();
    }
    consumer.join().unwrap();
    t.elapsed()
}

/// The books of one symbol (btcusdt), seeded empty just before the first frame's `U`.
fn seeded_books(metrics: &Metrics, first_update_id: i64) -> Books {
    let (jobs, _rx) = marketflow_ingestor::handoff::jobs::channel(1);
    let (seeds, seed_rx) = marketflow_ingestor::handoff::depth::channel();
    let settings = BookSettings { levels: 1000, interval: None };
    let mut books = Books::new("binance", metrics, settings, jobs, seed_rx);
    let seed = DepthSeed { symbol_idx: 0, last_update_id: first_update_id - 1, bids: vec![], asks: vec![] };
    seeds.send(seed).unwrap();
    books.tick(&mut |r| std::hint::black_box(r.payload.len()) > 0);
    books
}

/// Depth frames through the pipeline; the consumer keeps the book (`with_book`) or only counts.
fn depth(wire: &[u8], first_update_id: i64, with_book: bool) -> Duration {
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (w, mut r) = marketflow_ingestor::ring::ring(64 << 20);
    let mut pipeline = Pipeline::new(&VENUE, w, metrics.clone(), None);
    let mut books = with_book.then(|| seeded_books(&metrics, first_update_id));
    let mut ws = socket(wire, WebSocketConfig::default().read_buffer_size(16 * 1024));
    let consumer = std::thread::spawn(move || {
        let mut n = 0;
        while n < FRAMES {
            let k = r.drain_with(4096, |v| match books.as_mut() {
                Some(b) => b.on_record(&v, &mut |out| std::hint::black_box(out.payload.len()) > 0),
                None => {
                    std::hint::black_box(v.payload.len());
                }
            });
            if k == 0 {
                r.wait(Duration::from_millis(1));
            }
            n += k as u64;
        }
        assert!(books.is_none_or(|b| std::hint::black_box(b).is_synced(0)), "the book followed every diff");
    });
    let t = Instant::now();
    while let Ok(Message::Text(text)) = ws.read() {
        let o = pipeline.on_text(text.as_str(), 1, Admission::Normal);
        debug_assert_eq!(o, Outcome::Record);
        std::hint::black_box(o);
    }
    pipeline.flush_batch();
    consumer.join().unwrap();
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    let wire = trade_wire(FRAMES);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(FRAMES));
    g.bench_function("ours", |b| b.iter_custom(|iters| (0..iters).map(|_| ours(&wire)).sum()));
    g.bench_function("naive_serde_crossbeam", |b| b.iter_custom(|iters| (0..iters).map(|_| naive(&wire)).sum()));
    g.finish();

    let (wire, first) = depth_wire(FRAMES);
    let mut g = c.benchmark_group("pipeline_depth");
    g.throughput(Throughput::Elements(FRAMES));
    for (name, with_book) in [("with_book", true), ("without_book", false)] {
        g.bench_function(name, |b| b.iter_custom(|iters| (0..iters).map(|_| depth(&wire, first, with_book)).sum()));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
