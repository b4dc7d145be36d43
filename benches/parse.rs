//! Parse + normalize + encode, per message type: ours (sonic-rs, borrowed fields, into a reused
//! buffer) against a straightforward serde_json implementation of the same mapping (owned
//! structs in, an owned record serialized out), measured in the same run so the ratio survives
//! a noisy machine.

mod common;

use common::{baseline, frames};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use marketflow_ingestor::binance::wire::{parse_text, Frame};

fn ours(frame: &str, out: &mut Vec<u8>) {
    out.clear();
    match parse_text(frame).unwrap() {
        Frame::Market { record, .. } => record.encode(1_700_000_000_000_000_000, false, out).unwrap(),
        _ => unreachable!(),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_normalize_encode");
    let mut buf = Vec::with_capacity(4096);
    for (name, frame) in frames() {
        // Both implementations must produce the same record, or the comparison means nothing.
        ours(&frame, &mut buf);
        let a: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&baseline::run(frame.as_bytes())).unwrap();
        assert_eq!(a, b, "{name}: ours and the baseline disagree");

        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("sonic_borrowed", name), frame.as_str(), |bch, f| {
            bch.iter(|| ours(black_box(f), &mut buf))
        });
        group.bench_with_input(BenchmarkId::new("serde_json_owned", name), frame.as_bytes(), |bch, f| {
            bch.iter(|| black_box(baseline::run(black_box(f))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
