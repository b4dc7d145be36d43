#![no_main]

//! `decode` on arbitrary bytes: it returns, never panics; what it accepts is read whole (every
//! trade and level) and every decimal formatted at a few scales, which must not panic either and
//! must give the digits, sign and point only.

use binance_sbe::{decode, Decimal, Message, MAX_TEXT_LEN};
use libfuzzer_sys::fuzz_target;

fn text(d: Decimal) {
    let mut buf = [0u8; MAX_TEXT_LEN];
    for scale in [0u8, 8, 255] {
        if let Ok(n) = d.write_fixed(scale, &mut buf) {
            assert!(buf[..n].iter().all(|b| b.is_ascii_digit() || b"-.".contains(b)));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = decode(data) else { return };
    let _ = m.event_time_us();
    match m {
        Message::Trades(t) => {
            let _ = t.transact_time_us();
            let mut n = 0;
            for x in t.trades() {
                text(x.price);
                text(x.qty);
                n += 1;
            }
            assert_eq!(n, t.trade_count());
        }
        Message::BestBidAsk(b) => {
            let _ = b.book_update_id();
            [b.bid_price(), b.bid_qty(), b.ask_price(), b.ask_qty()].into_iter().for_each(text);
        }
        Message::DepthSnapshot(d) => {
            let _ = d.book_update_id();
            assert_eq!(d.bids().len(), d.bid_count());
            d.bids().chain(d.asks()).for_each(|l| {
                text(l.price);
                text(l.qty)
            });
        }
        Message::DepthDiff(d) => {
            let _ = (d.first_book_update_id(), d.last_book_update_id());
            assert_eq!(d.asks().len(), d.ask_count());
            d.bids().chain(d.asks()).for_each(|l| {
                text(l.price);
                text(l.qty)
            });
        }
    }
});
