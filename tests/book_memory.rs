//! The order book's memory, measured rather than estimated (README, "Order book", quotes these
//! numbers), and "no allocation per message" for its upkeep: a counting global allocator around
//! a book of 1000 and of 5000 levels a side, seeded full, then kept through diffs that insert,
//! remove and trim, and published as snapshots.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use marketflow_ingestor::book::{diff, Book, Side};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is passed unchanged to `System`, which upholds GlobalAlloc's contract; the
// counters are atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(l.size() as i64, Ordering::Relaxed);
        // SAFETY: our caller upholds `alloc`'s contract (non-zero size), which is System's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE_BYTES.fetch_sub(l.size() as i64, Ordering::Relaxed);
        // SAFETY: `p` came from `System` with layout `l`: every block this allocator hands out does.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(n as i64 - l.size() as i64, Ordering::Relaxed);
        // SAFETY: as for `dealloc`, `p` and `l` are System's; our caller upholds the rest of the contract.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Binance-shaped texts: a price of 14 characters, a quantity of 11.
fn price(tick: i64) -> String {
    format!("{}.{:02}000000", tick / 100, tick % 100)
}
fn qty(n: i64) -> String {
    format!("{}.{:05}000", n % 500, n % 100_000)
}

/// A `depth_update` payload as the ingester encodes it: `changes` bid and ask levels.
fn update(u: i64, bids: &[(i64, i64)], asks: &[(i64, i64)]) -> String {
    let side = |v: &[(i64, i64)]| {
        v.iter()
            .map(|&(t, q)| format!(r#"["{}","{}"]"#, price(t), if q == 0 { "0.00000000".into() } else { qty(q) }))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        r#"{{"type":"depth_update","exchange":"binance","symbol":"BTCUSDT","first_update_id":{u},"final_update_id":{u},"bids":[{}],"asks":[{}],"event_time_ms":{u},"recv_time_ns":1}}"#,
        side(bids),
        side(asks)
    )
}

/// Bytes a book of `levels` a side holds once seeded full, and after a churn of updates (which
/// must allocate nothing).
fn measure(levels: usize) -> (i64, u64) {
    let mid = 2_000_000i64;
    let n = levels as i64;
    let bid_texts: Vec<(String, String)> = (1..=n).map(|i| (price(mid - i), qty(i))).collect();
    let ask_texts: Vec<(String, String)> = (1..=n).map(|i| (price(mid + i), qty(i))).collect();
    // Updates that add levels beyond the far end (making the book trim), remove near ones, and
    // change quantities: every path of the upkeep.
    let updates: Vec<String> = (0..4_000i64)
        .map(|k| {
            // Two new far levels and one removal a side: a net level each, past the bound.
            let far = n + 1 + 2 * k;
            update(
                1_001 + k,
                &[(mid - far, k + 1), (mid - far - 1, k + 2), (mid - 1 - k % n, 0), (mid - 2 - k % 7, k + 3)],
                &[(mid + far, k + 1), (mid + far + 1, k + 2), (mid + 1 + k % n, 0), (mid + 2 + k % 7, k + 3)],
            )
        })
        .collect();
    let mut scratch = Vec::with_capacity(4 * levels);
    let mut out = Vec::with_capacity(128 * levels);

    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut book = Book::new(levels);
    let bids = bid_texts.iter().map(|(p, q)| (p.as_str(), q.as_str()));
    let asks = ask_texts.iter().map(|(p, q)| (p.as_str(), q.as_str()));
    book.seed(1_000, bids, asks).unwrap();
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    assert_eq!((book.len(Side::Bid), book.len(Side::Ask)), (levels, levels));

    // Warm-up: the first trim and snapshot may size nothing new, but are not what is measured.
    let allocs = ALLOCS.load(Ordering::Relaxed);
    for u in &updates {
        book.apply(&diff::read(u.as_bytes()).unwrap()).unwrap();
    }
    for side in [Side::Bid, Side::Ask] {
        book.write_levels(side, &mut out, &mut scratch);
    }
    let upkeep_allocs = ALLOCS.load(Ordering::Relaxed) - allocs;
    assert!(book.trimmed() > 0, "the churn went past the bound");
    assert!(book.len(Side::Bid) <= book.max_levels());
    (held, upkeep_allocs)
}

#[test]
fn a_book_costs_what_readme_says_and_its_upkeep_allocates_nothing() {
    for (levels, bound_kib) in [(1_000, 600), (5_000, 2_400)] {
        let (bytes, allocs) = measure(levels);
        println!("{levels} levels a side: {} KiB per symbol", bytes / 1024);
        assert_eq!(allocs, 0, "{levels} levels: {allocs} allocations keeping the book");
        assert!(
            bytes <= bound_kib * 1024,
            "{levels} levels: {} KiB, over the {bound_kib} KiB README states",
            bytes / 1024
        );
    }
}
