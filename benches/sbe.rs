//! One trade, decode + normalize + encode into the ring, over JSON and over SBE (`TRANSPORT=sbe`),
//! same trades, same run: the simulator's trades as its JSON stream writes them
//! (`{"stream":"btcusdt@trade","data":{...}}`, parsed by sonic-rs) and as its SBE endpoint sends
//! them (`TradesStreamEvent` of one trade, built by the generated encoder, read by
//! `binance_sbe::decode` with the decimals written at the symbol's scale). Each iteration is a
//! fresh pipeline taking `N` frames of new trade ids (a repeated id would be dropped as a
//! duplicate before it is normalized). Only those `N` calls are timed: the pipeline is built
//! before the clock starts and dropped after it stops (the routine hands it back to criterion),
//! and its ring has had every page written once (a fresh allocation's first pass takes a page
//! fault per 4 KiB, about one per 15 trades, which a ring in service has long paid); the ring
//! holds the `N` records without being drained.
//!
//! A third function, `enqueue_only`, times the part both paths share at the least: the same
//! records, parsed before the clock starts, encoded into the ring (`Pipeline::enqueue`, without
//! the symbol lookup, sequence checks and counters of a frame). However fast a transport decodes,
//! its time per trade stays above this one, so JSON's time over it bounds the SBE/JSON ratio
//! the gate checks (scripts/bench_gate.py prints that bound).
//!
//! The timed loops are the functions `json_trades`, `sbe_trades` and `enqueue_records`, kept out
//! of line so that `scripts/bench_instructions.py` finds them by name in a callgrind profile.
//!
//! `sbe_events_of_3` (in both groups) takes the same trades three an SBE event, at the time of the
//! event's first: on the recorded BTCUSDT day two trades of three come in the event of the one
//! before them ([`PER_EVENT`]), and what an event's trades share (the decode of its header, the
//! symbol, their times' text) is paid once an event. `sbe` keeps one trade an event, the worst
//! case. Each event's records are checked, in both groups, against its trades sent one an event.
//!
//! A second group, `trade_decode_normalize_encode_alone`, times the three steps the issue names
//! and nothing else, as benches/parse.rs times the JSON path against serde_json: each frame
//! decoded (sonic-rs, or `binance_sbe::decode` with the decimals at the symbol's scale) and its
//! record encoded into one reused buffer as the pipeline encodes it, its constant start copied
//! from the symbol's prefix (`record::Prefixes`, built before the clock starts); no pipeline, so
//! no sequence check, counter, latency histogram or ring. The straightforward serde_json
//! implementation of benches/parse.rs runs on the same JSON frames beside them. Both groups are
//! in the gate: the first is what the event loop pays per trade, the second what the transport
//! itself changes.
//!
//! `cargo bench --bench sbe` (`-- --test` runs each once, as scripts/test.sh does).

mod common;

use std::time::Duration;

use binance_sbe::encode::{TradeRow, TradesFrame};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use marketflow_ingestor::binance::sbe::BINARY;
use marketflow_ingestor::binance::venue::VENUE;
use marketflow_ingestor::binance::wire::{parse_frame, parse_text, Frame};
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Outcome, Pipeline};
use marketflow_ingestor::record::{Prefixes, Record, RecordType, Trade, TradeTail};
use marketflow_ingestor::ring::{ring, RecordMeta, RingReader, RingWriter};
use marketflow_ingestor::stream::StreamKind;
use marketflow_ingestor::time_unit::TimeUnit;
use marketflow_ingestor::venue::{each_frame, BinaryCtx, BinarySink, Refusal, Scale};

const N: u64 = 1_000;
/// Room for the `N` records of an iteration (about 280 bytes each with their header) and more.
const RING: usize = 1 << 20;

fn pipeline(binary: bool) -> (Pipeline, RingReader) {
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (mut w, mut r) = ring(RING);
    prefault(&mut w, &mut r);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    p.track_streams(&[StreamKind::Trade]);
    if binary {
        // The simulator's exchangeInfo: tickSize and stepSize written with 8 decimals.
        let scales = vec![Scale { price: 8, qty: 8 }];
        p.set_binary(BinaryCtx::new(metrics.symbols.clone(), scales, Default::default()));
    }
    (p, r)
}

/// Writes filler records through the whole ring and reads them back, so that every page of it
/// is mapped before the clock starts.
fn prefault(w: &mut RingWriter, r: &mut RingReader) {
    let meta = RecordMeta { kind: RecordType::Trade, flags: 0, symbol_idx: 0, event_time_ms: 0, recv_ns: 0 };
    loop {
        w.stage(meta, b"").resize(1024, 0);
        if w.commit(0).is_err() {
            w.abort();
            break;
        }
    }
    while r.drain_with(usize::MAX, |v| {
        std::hint::black_box(v.payload.len());
    }) > 0
    {}
}

/// The outcome every frame must have: anything else (a full ring, a duplicate) would time
/// another path, so it fails the run (one comparison per frame, in the timed loop).
fn expect_records(outcomes: usize) {
    assert_eq!(outcomes, N as usize, "every frame must give a record");
}

#[inline(never)]
fn json_trades(p: &mut Pipeline, frames: &[String]) -> usize {
    frames.iter().filter(|f| p.on_text(f, 1, Admission::Normal) == Outcome::Record).count()
}

#[inline(never)]
fn sbe_trades(p: &mut Pipeline, frames: &[Vec<u8>]) -> usize {
    frames.iter().filter(|f| p.on_binary(f, 1, Admission::Normal) == Outcome::Record).count()
}

#[inline(never)]
fn enqueue_records(p: &mut Pipeline, records: &[Record<'_>]) -> usize {
    records.iter().filter(|rec| p.enqueue(rec, 0, 1, 0, b"") == Outcome::Record).count()
}

/// The receive time every record of the ring-less group carries.
const RECV_NS: u64 = 1_700_000_000_000_000_000;

/// `record` encoded as `Pipeline::enqueue` encodes it: its start from the prefix of the one
/// symbol these frames carry (index 0), written field by field if the record is not that one's.
#[inline(always)]
fn encode(prefixes: &Prefixes, record: &Record<'_>, out: &mut Vec<u8>) -> bool {
    record.encode_to(prefixes.of(record, 0), TimeUnit::Millis, RECV_NS, false, out).is_ok()
}

// Both loops encode each record where the parser left it (a borrow): matching the frame by value
// copied the record out of it first (a `memcpy` of about 30 instructions a trade).
#[inline(never)]
fn json_alone(prefixes: &Prefixes, frames: &[String], out: &mut Vec<u8>) -> usize {
    let mut n = 0;
    for f in frames {
        out.clear();
        if let Ok(Frame::Market { record, .. }) = &parse_text(f) {
            n += usize::from(encode(prefixes, record, out));
        }
    }
    n
}

/// What the ring-less SBE loop hands its frames to: a trade taken the fast way, as the pipeline
/// takes it (`TradeTail::encode` after the symbol's prefix, no `Record`), any other record
/// encoded as `Pipeline::enqueue` encodes it.
struct Alone<'a> {
    prefixes: &'a Prefixes,
    tail: TradeTail,
    out: &'a mut Vec<u8>,
    n: usize,
}

impl BinarySink for Alone<'_> {
    fn frame(&mut self, frame: Result<Frame<'_>, Refusal>) {
        if let Ok(Frame::Market { record, .. }) = &frame {
            self.n += usize::from(encode(self.prefixes, record, self.out));
        }
    }

    #[inline]
    fn trade(&mut self, symbol_idx: u16, trade: &Trade<'_>, more: bool) -> bool {
        let Some(prefix) = self.prefixes.trade(trade, symbol_idx) else { return false };
        let written = self.tail.encode(trade, prefix, TimeUnit::Millis, RECV_NS, false, more, self.out);
        self.n += usize::from(written.is_ok());
        true
    }
}

#[inline(never)]
fn sbe_alone(
    prefixes: &Prefixes,
    ctx: &BinaryCtx,
    scratch: &mut Vec<u8>,
    frames: &[Vec<u8>],
    out: &mut Vec<u8>,
) -> usize {
    let mut sink = Alone { prefixes, tail: TradeTail::default(), out, n: 0 };
    for f in frames {
        sink.out.clear();
        let _ = (BINARY.parse)(f, ctx, scratch, &mut sink);
    }
    sink.n
}

#[inline(never)]
fn serde_alone(frames: &[String]) -> usize {
    frames.iter().map(|f| usize::from(!std::hint::black_box(common::baseline::run(f.as_bytes())).is_empty())).sum()
}

/// The ring-less group: decode + normalize + encode, each record into one reused buffer.
fn bench_alone(c: &mut Criterion, json: &[String], sbe: &[Vec<u8>], events: &Events) {
    let ctx = BinaryCtx::new(
        Metrics::new(&["btcusdt".to_string()]).symbols.clone(),
        vec![Scale { price: 8, qty: 8 }],
        Default::default(),
    );
    let prefixes = Prefixes::new(VENUE.exchange, ["BTCUSDT"]);
    let mut scratch = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    // Same records from both transports and from the serde_json implementation, frame by frame.
    for (j, s) in json.iter().zip(sbe).take(16) {
        assert_eq!(json_alone(&prefixes, std::slice::from_ref(j), &mut out), 1);
        let mut unprefixed = Vec::new();
        assert!(parse_text(j).is_ok_and(
            |f| matches!(f, Frame::Market { record, .. } if record.encode(RECV_NS, false, &mut unprefixed).is_ok())
        ));
        assert_eq!(out, unprefixed, "the prefix writes what the fields write");
        let mut prefixed = 0;
        if let Ok(Frame::Market { record, .. }) = parse_text(j) {
            prefixed += usize::from(prefixes.of(&record, 0).is_some());
        }
        let _ = (BINARY.parse)(
            s,
            &ctx,
            &mut scratch,
            &mut each_frame(|r| {
                if let Ok(Frame::Market { record, .. }) = r {
                    prefixed += usize::from(prefixes.of(&record, 0).is_some());
                }
            }),
        );
        assert_eq!(prefixed, 2, "both transports' records take the prefix");
        let from_json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(sbe_alone(&prefixes, &ctx, &mut scratch, std::slice::from_ref(s), &mut out), 1);
        let from_sbe: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let from_serde: serde_json::Value = serde_json::from_slice(&common::baseline::run(j.as_bytes())).unwrap();
        assert_eq!(from_json, from_sbe, "JSON and SBE give the same record");
        assert_eq!(from_json, from_serde, "ours and the serde_json implementation give the same record");
    }

    // An event of several trades gives the records of its trades sent one an event.
    let mut whole = Vec::new();
    for (event, singles) in events.frames.iter().zip(events.singles.chunks(PER_EVENT)) {
        assert_eq!(sbe_alone(&prefixes, &ctx, &mut scratch, std::slice::from_ref(event), &mut whole), singles.len());
        let mut expected = Vec::new();
        for single in singles {
            assert_eq!(sbe_alone(&prefixes, &ctx, &mut scratch, std::slice::from_ref(single), &mut out), 1);
            expected.extend_from_slice(&out);
        }
        assert_eq!(whole, expected, "an event's trades are the records of its trades one an event");
    }

    let mut g = c.benchmark_group("trade_decode_normalize_encode_alone");
    g.throughput(Throughput::Elements(N));
    g.bench_function("json_sonic", |b| b.iter(|| expect_records(json_alone(&prefixes, json, &mut out))));
    g.bench_function("sbe", |b| b.iter(|| expect_records(sbe_alone(&prefixes, &ctx, &mut scratch, sbe, &mut out))));
    g.bench_function("sbe_events_of_3", |b| {
        b.iter(|| expect_records(sbe_alone(&prefixes, &ctx, &mut scratch, &events.frames, &mut out)))
    });
    g.bench_function("serde_json_owned", |b| b.iter(|| expect_records(serde_alone(json))));
    g.finish();
}

/// Trades an SBE trade event holds in `sbe_events_of_3`: on the recorded BTCUSDT day
/// (`tests/e2e/captures/hftbacktest/`), 9,757 trades fall in 3,241 runs of one trade time and
/// side, one taker order's fills, which SBE sends as one event: 3.0 a run
/// (`scripts/trade_runs.py`).
const PER_EVENT: usize = 3;

/// The same `N` trades, [`PER_EVENT`] an SBE event at the time of its first (`frames`), and
/// each alone in an event at that time (`singles`, to check the events' records against).
struct Events {
    frames: Vec<Vec<u8>>,
    singles: Vec<Vec<u8>>,
}

fn events(m: &binance_sim::Market) -> Events {
    let rows: Vec<(TradeRow, i64)> = (0..N)
        .map(|k| {
            let (price, qty, is_buyer_maker, t) = m.trade_mantissas(0, k);
            (TradeRow { id: binance_sim::Market::trade_id_base(0) + k as i64, price, qty, is_buyer_maker }, t)
        })
        .collect();
    let (mut frames, mut singles) = (Vec::new(), Vec::new());
    for run in rows.chunks(PER_EVENT) {
        let t = run[0].1;
        let trades: Vec<TradeRow> = run.iter().map(|&(r, _)| r).collect();
        frames.push(TradesFrame::at("BTCUSDT", t, &trades).encode().unwrap());
        singles.extend(trades.iter().map(|r| TradesFrame::at("BTCUSDT", t, std::slice::from_ref(r)).encode().unwrap()));
    }
    Events { frames, singles }
}

fn bench(c: &mut Criterion) {
    let m = binance_sim::Market::new(binance_sim::SimConfig::default());
    let json: Vec<String> = (0..N)
        .map(|k| {
            let mut data = String::new();
            m.render(binance_sim::StreamKind::Trade, 0, k, &mut data);
            format!(r#"{{"stream":"btcusdt@trade","data":{data}}}"#)
        })
        .collect();
    // Each frame one trade of its own millisecond: a trade's tail (its times and receive time)
    // is then written for every frame, never taken from the frame before, as for events
    // received apart in service (the receive time is a constant here).
    let ms: Vec<i64> = (0..N).map(|k| m.trade_mantissas(0, k).3.div_euclid(1000)).collect();
    assert!(ms.windows(2).all(|w| w[0] != w[1]), "one trade a millisecond");
    let sbe: Vec<Vec<u8>> = (0..N)
        .map(|k| {
            let (price, qty, is_buyer_maker, t) = m.trade_mantissas(0, k);
            let id = binance_sim::Market::trade_id_base(0) + k as i64;
            TradesFrame::at("BTCUSDT", t, &[TradeRow { id, price, qty, is_buyer_maker }]).encode().unwrap()
        })
        .collect();

    // What is measured is the same work: every frame becomes a record, the same one.
    let records = |binary: bool| {
        let (mut p, mut r) = pipeline(binary);
        for k in 0..N as usize {
            let o = if binary {
                p.on_binary(&sbe[k], 1, Admission::Normal)
            } else {
                p.on_text(&json[k], 1, Admission::Normal)
            };
            assert_eq!(o, Outcome::Record);
        }
        let mut out = Vec::new();
        while r.drain_with(4096, |v| out.push(v.payload.to_vec())) > 0 {}
        out
    };
    assert_eq!(records(false), records(true), "JSON and SBE give the same records");
    let events = events(&m);
    let through = |frames: &[Vec<u8>]| {
        let (mut p, mut r) = pipeline(true);
        assert_eq!(sbe_trades(&mut p, frames), frames.len());
        let mut out = Vec::new();
        while r.drain_with(4096, |v| out.push(v.payload.to_vec())) > 0 {}
        out
    };
    let by_event = through(&events.frames);
    assert_eq!(by_event.len(), N as usize);
    assert_eq!(by_event, through(&events.singles), "an event's trades are the records of its trades one an event");

    let mut g = c.benchmark_group("trade_decode_normalize_encode");
    g.throughput(Throughput::Elements(N));
    g.bench_function("json_sonic", |b| {
        b.iter_batched(
            || pipeline(false),
            |(mut p, r)| {
                expect_records(json_trades(&mut p, &json));
                (p, r)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("sbe", |b| {
        b.iter_batched(
            || pipeline(true),
            |(mut p, r)| {
                expect_records(sbe_trades(&mut p, &sbe));
                (p, r)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("sbe_events_of_3", |b| {
        b.iter_batched(
            || pipeline(true),
            |(mut p, r)| {
                assert_eq!(sbe_trades(&mut p, &events.frames), events.frames.len(), "every event gives records");
                (p, r)
            },
            BatchSize::PerIteration,
        )
    });
    let records: Vec<_> = json
        .iter()
        .map(|f| match parse_frame(f.as_bytes()) {
            Ok(Frame::Market { record, .. }) => record,
            other => panic!("not a market frame: {other:?}"),
        })
        .collect();
    g.bench_function("enqueue_only", |b| {
        b.iter_batched(
            || pipeline(false),
            |(mut p, r)| {
                expect_records(enqueue_records(&mut p, &records));
                (p, r)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    bench_alone(c, &json, &sbe, &events);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
