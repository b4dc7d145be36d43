//! WebSocket frame decoding from an in-memory buffer holding many frames: tungstenite with our
//! configuration (16 KiB read buffer) against its default (128 KiB, zero-filled before every
//! socket read), same frames, same run.

mod common;

use common::{trade_wire, MemSocket};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

const FRAMES: u64 = 10_000;

fn decode(wire: &[u8], cfg: WebSocketConfig) -> u64 {
    let mut ws = WebSocket::from_raw_socket(MemSocket(std::io::Cursor::new(wire.to_vec())), Role::Client, Some(cfg));
    let mut n = 0;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                n += 1;
                std::hint::black_box(t.as_str().len());
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(n, FRAMES);
    n
}

fn bench(c: &mut Criterion) {
    let wire = trade_wire(FRAMES);
    let ours = marketflow_ingestor::ws::Dialer::new(
        marketflow_ingestor::config::Endpoint::parse("ws://127.0.0.1:1", ("ws", "wss")).unwrap(),
        None,
        std::time::Duration::from_secs(45),
        std::time::Duration::from_secs(82_800),
    )
    .ws_config;
    let mut g = c.benchmark_group("ws_decode");
    g.throughput(Throughput::Elements(FRAMES));
    g.bench_with_input(BenchmarkId::new("tungstenite_16k_buffer", FRAMES), &wire, |b, w| b.iter(|| decode(w, ours)));
    g.bench_with_input(BenchmarkId::new("tungstenite_default", FRAMES), &wire, |b, w| {
        b.iter(|| decode(w, WebSocketConfig::default()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
