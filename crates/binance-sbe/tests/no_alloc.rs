//! "Zero-copy, no allocation", checked rather than claimed: a counting global allocator around
//! decode + reading every field, trade and level + formatting every decimal, for every message.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use binance_sbe::{decode, Message, MAX_TEXT_LEN};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Only the test's own thread is counted: the harness's main thread allocates while the test
    // starts (it made this test fail about one run in three before).
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed unchanged to `System`, which upholds GlobalAlloc's contract; the
// counter is an atomic and the flag a const-initialized thread-local: neither allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: our caller upholds `alloc`'s contract (non-zero size), which is System's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System` with layout `l`: every block this allocator hands out does.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: as for `dealloc`, `p` and `l` are System's; our caller upholds the rest of the contract.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Reads everything a message holds; returns a checksum so nothing is optimized away.
fn read_all(frame: &[u8], text: &mut [u8]) -> usize {
    let mut sum = 0usize;
    let mut fmt = |d: binance_sbe::Decimal, sum: &mut usize| {
        *sum += d.write_fixed(8, text).unwrap_or(0);
    };
    match decode(frame).expect("a valid frame") {
        Message::Trades(t) => {
            sum += t.symbol().len() + t.event_time_us() as usize + t.transact_time_us() as usize;
            for x in t.trades() {
                sum += x.id as usize + usize::from(x.is_buyer_maker);
                fmt(x.price, &mut sum);
                fmt(x.qty, &mut sum);
            }
        }
        Message::BestBidAsk(b) => {
            sum += b.symbol().len() + b.book_update_id() as usize;
            for d in [b.bid_price(), b.bid_qty(), b.ask_price(), b.ask_qty()] {
                fmt(d, &mut sum);
            }
        }
        Message::DepthSnapshot(d) => {
            sum += d.symbol().len() + d.book_update_id() as usize;
            for l in d.bids().chain(d.asks()) {
                fmt(l.price, &mut sum);
                fmt(l.qty, &mut sum);
            }
        }
        Message::DepthDiff(d) => {
            sum += d.symbol().len() + d.first_book_update_id() as usize + d.last_book_update_id() as usize;
            for l in d.bids().chain(d.asks()) {
                fmt(l.price, &mut sum);
                fmt(l.qty, &mut sum);
            }
        }
    }
    sum
}

#[test]
fn decoding_and_formatting_do_not_allocate() {
    let frames: Vec<Vec<u8>> = common::valid_frames().into_iter().map(|(_, f, _)| f).collect();
    let mut text = [0u8; MAX_TEXT_LEN];
    let mut sum = 0usize;
    COUNTED.with(|c| c.set(true));
    for _ in 0..100 {
        for f in &frames {
            sum = sum.wrapping_add(read_all(f, &mut text));
        }
    }
    COUNTED.with(|c| c.set(false));
    let allocs = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(allocs, 0, "{allocs} allocations for {} frames", frames.len() * 100);
    assert_ne!(sum, 0);
}
