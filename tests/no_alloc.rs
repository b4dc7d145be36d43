//! "No allocation per message on the hot path", checked rather than claimed: a counting global
//! allocator around frame -> parse -> normalize -> encode -> ring commit, for every record type,
//! and for SBE trade, best bid/ask and diff-depth events (`TRANSPORT=sbe`: decode, decimals and
//! levels as text, one record per trade).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use marketflow_ingestor::binance::usdm::stream::parse_kind;
use marketflow_ingestor::binance::usdm::venue::VENUE as USDM;
use marketflow_ingestor::binance::venue::VENUE;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Outcome, Pipeline};
use marketflow_ingestor::stream::StreamKind;
use marketflow_ingestor::venue::Venue;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed unchanged to `System`, which upholds GlobalAlloc's contract; the
// counter is an atomic and allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: our caller upholds `alloc`'s contract (non-zero size), which is System's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System` with layout `l`: every block this allocator hands out does.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc`, `p` and `l` are System's; our caller upholds the rest of the contract.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn the_per_message_path_does_not_allocate() {
    // One test, the markets one after the other: the counter is process-wide, and tests in one
    // binary run on parallel threads.
    let spot = binance_sim::Market::new(binance_sim::SimConfig::default());
    let spot_kinds = ["trade", "aggTrade", "kline_1m", "bookTicker", "depth@100ms"];
    run(&VENUE, &spot, &spot_kinds, |k| k.parse().unwrap(), |k| k.parse().unwrap());
    // USD-M: a frame of each payload type (one per record shape; depth@500ms and markPrice
    // parse as depth@100ms and markPrice@1s do).
    let usdm = binance_sim::Market::usdm(binance_sim::SimConfig::usdm_market());
    let usdm_kinds = ["aggTrade", "kline_1m", "bookTicker", "depth@100ms", "markPrice@1s", "forceOrder"];
    let sim_kind = |k: &str| binance_sim::usdm_kinds().find(|s| s.to_string() == k).unwrap();
    run(&USDM, &usdm, &usdm_kinds, |k| parse_kind(k).unwrap(), sim_kind);
    sbe_trades();
    sbe_book();
}

/// SBE trade events of three trades each, through the SBE decode, the pipeline and the ring.
fn sbe_trades() {
    use binance_sbe::encode::{TradeRow, TradesFrame};
    use marketflow_ingestor::venue::{BinaryCtx, Scale};
    const PER_EVENT: usize = 3;
    let frames: Vec<Vec<u8>> = (0..2_000i64)
        .map(|e| {
            let rows: Vec<TradeRow> = (0..PER_EVENT as i64)
                .map(|i| TradeRow { id: e * 3 + i, price: 4_200_000 + e, qty: 1 + i, is_buyer_maker: i == 1 })
                .collect();
            TradesFrame::at("BTCUSDT", 1_700_000_000_000_000 + e, &rows).encode().unwrap()
        })
        .collect();
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (w, mut r) = marketflow_ingestor::ring::ring(64 << 20);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    p.track_streams(&[StreamKind::Trade]);
    let scales = vec![Scale { price: 8, qty: 8 }];
    p.set_binary(BinaryCtx::new(metrics.symbols.clone(), scales, Default::default()));
    for f in &frames[..100] {
        assert_eq!(p.on_binary(f, 1, Admission::Normal), Outcome::Record);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for f in &frames[100..] {
        assert_eq!(p.on_binary(f, 1, Admission::Normal), Outcome::Record);
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(allocs, 0, "{allocs} allocations for {} SBE trade events", frames.len() - 100);
    // One record per trade, in order.
    let mut ids = Vec::new();
    while r.drain_with(4096, |v| {
        let rec: serde_json::Value = serde_json::from_slice(v.payload).unwrap();
        ids.push(rec["trade_id"].as_i64().unwrap());
    }) > 0
    {}
    assert_eq!(ids, (0..(frames.len() * PER_EVENT) as i64).collect::<Vec<_>>());
}

/// SBE best bid/ask and diff-depth events (ten levels a side), one after the other, through the
/// SBE decode, the levels' text, the pipeline's sequence checks and the ring.
fn sbe_book() {
    use binance_sbe::encode::{BestBidAskFrame, DepthDiffFrame, LevelRow};
    use marketflow_ingestor::venue::{BinaryCtx, Scale};
    let levels = |e: i64| -> Vec<LevelRow> { (0..10).map(|i| LevelRow { price: 4_200_000 + e + i, qty: i }).collect() };
    let frames: Vec<Vec<u8>> = (0..2_000i64)
        .map(|e| {
            let t = 1_700_000_000_000_000 + e;
            if e % 2 == 0 {
                let (bids, asks) = (levels(e), levels(e + 20));
                let d = DepthDiffFrame {
                    event_time_us: t,
                    // Dense: each diff continues the one before (e / 2 is its index).
                    first_book_update_id: 3 * (e / 2) + 1,
                    last_book_update_id: 3 * (e / 2) + 3,
                    price_exponent: -2,
                    qty_exponent: -8,
                    bids: &bids,
                    asks: &asks,
                    symbol: "BTCUSDT",
                };
                d.encode().unwrap()
            } else {
                let b = BestBidAskFrame {
                    event_time_us: t,
                    book_update_id: 3 * e,
                    price_exponent: -2,
                    qty_exponent: -8,
                    bid_price: 4_200_000 + e,
                    bid_qty: 5,
                    ask_price: 4_200_100 + e,
                    ask_qty: 7,
                    symbol: "BTCUSDT",
                };
                b.encode().unwrap()
            }
        })
        .collect();
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (w, mut r) = marketflow_ingestor::ring::ring(64 << 20);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    p.track_streams(&[StreamKind::BookTicker, StreamKind::Depth]);
    let scales = vec![Scale { price: 8, qty: 8 }];
    p.set_binary(BinaryCtx::new(metrics.symbols.clone(), scales, Default::default()));
    for f in &frames[..100] {
        assert_eq!(p.on_binary(f, 1, Admission::Normal), Outcome::Record);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for f in &frames[100..] {
        assert_eq!(p.on_binary(f, 1, Admission::Normal), Outcome::Record);
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(allocs, 0, "{allocs} allocations for {} SBE book events", frames.len() - 100);
    assert!(p.streams().last_ns().iter().all(|&t| t == 1), "both streams' last message noted");
    let mut types = Vec::new();
    while r.drain_with(4096, |v| {
        let rec: serde_json::Value = serde_json::from_slice(v.payload).unwrap();
        types.push(rec["type"].as_str().unwrap().to_string());
    }) > 0
    {}
    assert_eq!(types.len(), frames.len(), "one record per event, no gap: {:?}", metrics.render());
    assert!(types.iter().step_by(2).all(|t| t == "depth_update") && types[1] == "book_ticker", "{:?}", &types[..4]);
}

/// Frames of `kinds` from market `m`, through `venue`'s parse, the pipeline and the ring; `kind`
/// and `sim_kind` read a kind's name as the ingester and as the simulator do.
fn run(
    venue: &'static Venue,
    m: &binance_sim::Market,
    kinds: &[&str],
    kind: impl Fn(&str) -> StreamKind,
    sim_kind: impl Fn(&str) -> binance_sim::StreamKind,
) {
    // Frames prepared up front: in production they are the WebSocket layer's buffers.
    let n = kinds.len() as u64;
    let frames: Vec<String> = (0..2_000u64)
        .map(|k| {
            let name = kinds[(k % n) as usize];
            let mut data = String::new();
            m.render(sim_kind(name), 0, k / n, &mut data);
            format!(r#"{{"stream":"btcusdt@{name}","data":{data}}}"#)
        })
        .collect();
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (w, mut r) = marketflow_ingestor::ring::ring(64 << 20);
    let mut p = Pipeline::new(venue, w, metrics, None);
    // Every stream's last message is kept, as the event loop has it kept.
    let tracked: Vec<StreamKind> = kinds.iter().map(|k| kind(k)).collect();
    p.track_streams(&tracked);
    // Warm-up: buffers grow to the largest record once.
    for f in &frames[..100] {
        assert_eq!(p.on_text(f, 1, Admission::Normal), Outcome::Record, "{f}");
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for f in &frames[100..] {
        assert_eq!(p.on_text(f, 1, Admission::Normal), Outcome::Record, "{f}");
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(allocs, 0, "{allocs} allocations for {} {} messages", frames.len() - 100, venue.exchange);
    assert!(p.streams().last_ns().iter().all(|&t| t == 1), "every stream's last message noted");
    // And the producer side's drain is allocation-free too.
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut n = 0;
    while r.drain_with(4096, |v| n += v.payload.len().min(1)) > 0 {}
    assert_eq!(n, frames.len());
    assert_eq!(ALLOCS.load(Ordering::Relaxed) - before, 0);
}
