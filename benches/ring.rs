//! The hop between two threads: our byte ring (rtrb, variable-length records, one wake-up per
//! batch) against a bounded crossbeam-channel of fixed-size records, same payload, same run.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use marketflow_ingestor::record::RecordType;
use marketflow_ingestor::ring::{ring, RecordMeta};

const PAYLOAD: usize = 220; // a normalized trade record
const BATCH: u64 = 64;

fn meta() -> RecordMeta {
    RecordMeta { kind: RecordType::Trade, flags: 0, symbol_idx: 0, event_time_ms: 1, recv_ns: 2 }
}

/// Sends `n` records through our ring to a consumer thread that counts them; returns the time.
fn ours(n: u64) -> Duration {
    let (mut w, mut r) = ring(1 << 20);
    let consumer = std::thread::spawn(move || {
        let mut got = 0u64;
        let mut bytes = 0usize;
        while got < n {
            let k = r.drain_with(4096, |v| bytes += v.payload.len());
            if k == 0 {
                r.wait(Duration::from_millis(1));
            }
            got += k as u64;
        }
        bytes
    });
    let payload = [b'x'; PAYLOAD];
    let t = Instant::now();
    for i in 0..n {
        w.stage(meta(), b"BTCUSDT").extend_from_slice(&payload);
        while w.commit(i).is_err() {
            w.notify();
            std::hint::spin_loop();
        }
        if i % BATCH == BATCH - 1 {
            w.notify();
        }
    }
    w.notify();
    drop(w);
    let bytes = consumer.join().unwrap();
    assert_eq!(bytes, PAYLOAD * n as usize);
    t.elapsed()
}

/// The same hop through `crossbeam_channel::bounded` carrying the record by value.
fn crossbeam(n: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<(RecordMeta, [u8; PAYLOAD])>(4096);
    let consumer = std::thread::spawn(move || {
        let mut bytes = 0usize;
        for _ in 0..n {
            let (_, p) = rx.recv().unwrap();
            bytes += p.len();
        }
        bytes
    });
    let payload = [b'x'; PAYLOAD];
    let t = Instant::now();
    for _ in 0..n {
        tx.send((meta(), payload)).unwrap();
    }
    let bytes = consumer.join().unwrap();
    assert_eq!(bytes, PAYLOAD * n as usize);
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring_hop");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rtrb_byte_ring", |b| b.iter_custom(ours));
    g.bench_function("crossbeam_bounded", |b| b.iter_custom(crossbeam));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
