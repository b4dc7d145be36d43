use super::*;

#[test]
fn decimals_are_plain_text_numbers() {
    for ok in ["0", "0.001", "100", "25.35190000", "-1.5", "123456789012345678901234567890.123"] {
        assert!(is_decimal(ok), "{ok}");
    }
    for bad in ["", "-", ".5", "5.", "1e5", "+1", " 1", "1 ", "0x10", "NaN", "1.2.3", "١٢"] {
        assert!(!is_decimal(bad), "{bad}");
    }
    assert!(!is_decimal(&"9".repeat(65)));
}

#[test]
fn side_follows_the_maker_flag() {
    assert_eq!(Side::from_buyer_is_maker(true), Side::Sell);
    assert_eq!(Side::from_buyer_is_maker(false), Side::Buy);
}

#[test]
fn levels_are_reencoded_compactly_and_validated() {
    let d = |b: &'static str| {
        Record::DepthUpdate(DepthUpdate {
            exchange: "binance",
            symbol: "BNBBTC",
            first_update_id: 1,
            final_update_id: 2,
            bids: Levels(b),
            asks: Levels("[]"),
            event_time_ms: 3,
            prev_final_update_id: None,
            transaction_time_ms: None,
        })
    };
    let mut out = Vec::new();
    d(r#"[ [ "0.0024", "10" ], ["0.0025","0.00000000"] ]"#).encode(7, false, &mut out).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"type":"depth_update","exchange":"binance","symbol":"BNBBTC","first_update_id":1,"final_update_id":2,"bids":[["0.0024","10"],["0.0025","0.00000000"]],"asks":[],"event_time_ms":3,"recv_time_ns":7}"#
    );
    for bad in [r#"[["1"]]"#, r#"[["1","2","3"]]"#, r#"[[1,2]]"#, r#"{"a":1}"#, r#"[["x","1"]]"#, "7"] {
        out.clear();
        assert!(d(bad).encode(7, false, &mut out).is_err(), "{bad}");
    }
}

#[test]
fn an_unknown_kline_interval_is_counted_as_such() {
    let k = Kline {
        exchange: "binance",
        symbol: "BNBBTC",
        interval: "2m",
        open_time_ms: 0,
        close_time_ms: 59_999,
        open: "1".into(),
        high: "1".into(),
        low: "1".into(),
        close: "1".into(),
        volume: "1".into(),
        quote_volume: "1".into(),
        trades: 1,
        taker_buy_volume: "1".into(),
        taker_buy_quote_volume: "1".into(),
        closed: true,
        first_trade_id: None,
        last_trade_id: None,
        event_time_ms: 1,
    };
    let e = Record::Kline(k).encode(1, false, &mut Vec::new()).unwrap_err();
    assert_eq!(e.reason(), "bad_interval");
    let ok = Record::Kline(Kline { interval: "1M", ..k });
    assert!(ok.encode(1, false, &mut Vec::new()).is_ok());
}

#[test]
fn unsafe_symbols_are_refused() {
    assert!(is_safe_symbol("BTCUSDT"));
    assert!(is_safe_symbol("币安人生USDT"));
    // Fifty CJK letters: Binance's longest symbol, 150 bytes.
    assert!(is_safe_symbol(&"币".repeat(50)));
    assert!(!is_safe_symbol(&"币".repeat(51)));
    assert!(!is_safe_symbol("BTC\"USDT"));
    assert!(!is_safe_symbol("BTC\u{1}"));
    assert!(!is_safe_symbol(""));
}

fn mark(ap: Option<&'static str>) -> Record<'static> {
    Record::MarkPrice(MarkPrice {
        exchange: "binance-usdm",
        symbol: "BTCUSDT",
        mark_price: "11794.15000000".into(),
        index_price: "11784.62659091".into(),
        estimated_settle_price: "11784.25641265".into(),
        funding_rate: "-0.00038167".into(),
        mark_price_avg: ap.map(Into::into),
        next_funding_time_ms: 1_562_306_400_000,
        event_time_ms: 1_562_305_380_000,
    })
}

fn liquidation(order_type: &str) -> Record<'_> {
    Record::Liquidation(Liquidation {
        exchange: "binance-usdm",
        symbol: "BTCUSDT",
        side: Side::Sell,
        order_type,
        time_in_force: "IOC",
        status: "FILLED",
        orig_qty: "0.014".into(),
        price: "9910".into(),
        avg_price: "9910".into(),
        last_filled_qty: "0.014".into(),
        filled_qty: "0.014".into(),
        trade_time_ms: 1_568_014_460_893,
        event_time_ms: 1_568_014_460_894,
    })
}

fn encoded(r: Record<'_>, unit: TimeUnit) -> Result<String, RecordError> {
    let mut out = Vec::new();
    r.encode_in(unit, 7, false, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn mark_prices_and_liquidations_encode_every_field_named_for_the_unit() {
    assert_eq!(
        encoded(mark(None), TimeUnit::Millis).unwrap(),
        r#"{"type":"mark_price","exchange":"binance-usdm","symbol":"BTCUSDT","mark_price":"11794.15000000","index_price":"11784.62659091","estimated_settle_price":"11784.25641265","funding_rate":"-0.00038167","next_funding_time_ms":1562306400000,"event_time_ms":1562305380000,"recv_time_ns":7}"#
    );
    assert_eq!(
        encoded(mark(Some("11790.5")), TimeUnit::Micros).unwrap(),
        r#"{"type":"mark_price","exchange":"binance-usdm","symbol":"BTCUSDT","mark_price":"11794.15000000","index_price":"11784.62659091","estimated_settle_price":"11784.25641265","funding_rate":"-0.00038167","mark_price_avg":"11790.5","next_funding_time_us":1562306400000,"event_time_us":1562305380000,"recv_time_ns":7}"#
    );
    assert_eq!(
        encoded(liquidation("LIMIT"), TimeUnit::Micros).unwrap(),
        r#"{"type":"liquidation","exchange":"binance-usdm","symbol":"BTCUSDT","side":"sell","order_type":"LIMIT","time_in_force":"IOC","orig_qty":"0.014","price":"9910","avg_price":"9910","status":"FILLED","last_filled_qty":"0.014","filled_qty":"0.014","trade_time_us":1568014460893,"event_time_us":1568014460894,"snapshot":true,"recv_time_ns":7}"#
    );
    assert_eq!(encoded(mark(Some("1e3")), TimeUnit::Millis).unwrap_err().reason(), "bad_decimal");
    for bad in ["", "LIMIT\u{1}", "limit", "A\"B", &*"X".repeat(33)] {
        let e = encoded(liquidation(bad), TimeUnit::Millis).unwrap_err();
        assert_eq!((e.reason(), e.to_string()), ("bad_word", "field order_type is not a plain upper-case word".into()));
    }
    assert!(encoded(liquidation("GOOD_TILL_CROSSING"), TimeUnit::Millis).is_ok());
}

#[test]
fn futures_times_and_previous_id_are_written_only_when_sent() {
    let spot = BookTicker {
        exchange: "binance",
        symbol: "BNBUSDT",
        update_id: 400900217,
        bid_price: "25.35190000".into(),
        bid_qty: "31.21000000".into(),
        ask_price: "25.36520000".into(),
        ask_qty: "40.66000000".into(),
        event_time_ms: None,
        transaction_time_ms: None,
    };
    assert_eq!(
        encoded(Record::BookTicker(spot), TimeUnit::Millis).unwrap(),
        r#"{"type":"book_ticker","exchange":"binance","symbol":"BNBUSDT","update_id":400900217,"bid_price":"25.35190000","bid_qty":"31.21000000","ask_price":"25.36520000","ask_qty":"40.66000000","recv_time_ns":7}"#
    );
    let futures = BookTicker { event_time_ms: Some(1568014460893), transaction_time_ms: Some(1568014460891), ..spot };
    assert_eq!(
        encoded(Record::BookTicker(futures), TimeUnit::Micros).unwrap(),
        r#"{"type":"book_ticker","exchange":"binance","symbol":"BNBUSDT","update_id":400900217,"bid_price":"25.35190000","bid_qty":"31.21000000","ask_price":"25.36520000","ask_qty":"40.66000000","event_time_us":1568014460893,"transaction_time_us":1568014460891,"recv_time_ns":7}"#
    );
    assert_eq!(Record::BookTicker(futures).event_time_ms(), Some(1568014460893));
    assert_eq!(Record::BookTicker(spot).event_time_ms(), None);
}

#[test]
fn record_types_index_their_tables() {
    for (i, t) in RecordType::ALL.iter().enumerate() {
        assert_eq!(RecordType::from_u8(i as u8), Some(*t));
    }
    assert_eq!(RecordType::ALL.len(), RecordType::COUNT);
    assert_eq!((RecordType::MarkPrice.as_str(), RecordType::Liquidation.as_str()), ("mark_price", "liquidation"));
}
