//! Binance's USD-M futures market-data endpoint as a [`Venue`]: spot's URL shape and requests
//! behind a route (`/public` or `/market`, [`super::stream::route`]), USD-M's limits and frames.

use super::stream::route;
use super::{wire, EXCHANGE, MESSAGES_PER_SECOND, SERVER_PING_INTERVAL};
use crate::binance::venue::{
    combined_path, subscribe, to_engine, unsubscribe, CONNECT_ATTEMPTS, CONNECT_WINDOW, STREAMS_PER_SUBSCRIBE,
    URL_STREAM_BYTES,
};
use crate::time_unit::TimeUnit;
use crate::venue::{Limits, Venue};

/// Binance USD-M futures.
pub const VENUE: Venue = Venue {
    exchange: EXCHANGE,
    limits: Limits {
        messages_per_second: MESSAGES_PER_SECOND,
        // USD-M documents no connection-attempt limit of its own: spot's, which is per IP.
        attempts: CONNECT_ATTEMPTS,
        attempt_window: CONNECT_WINDOW,
        streams_per_subscribe: STREAMS_PER_SUBSCRIBE,
        url_stream_bytes: URL_STREAM_BYTES,
        server_ping_interval: SERVER_PING_INTERVAL,
    },
    stream_name: |symbol, kind| kind.stream_name(symbol),
    kind_name: |kind| kind.to_string(),
    stream_path,
    subscribe,
    unsubscribe,
    parse: |text| to_engine(wire::parse_text(text)),
    route,
    // Binance serves SBE market data for spot only.
    binary: None,
};

/// `<base>/stream?streams=...` (`base` already ends in the route). USD-M documents no
/// `timeUnit` parameter: its times are milliseconds, and the URL asks for nothing else.
fn stream_path(base: &str, streams: &[&str], _unit: TimeUnit) -> String {
    combined_path(base, streams, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamKind;
    use crate::venue::Frame;

    #[test]
    fn usd_m_has_its_own_limits_names_and_routes() {
        assert_eq!((VENUE.exchange, VENUE.limits.messages_per_second), ("binance-usdm", 10));
        assert_eq!((VENUE.stream_name)("btcusdt", StreamKind::MarkPrice1s), "btcusdt@markPrice@1s");
        assert_eq!((VENUE.kind_name)(StreamKind::ForceOrder), "forceOrder");
        assert_eq!(
            ((VENUE.route)(StreamKind::Depth500ms), (VENUE.route)(StreamKind::AggTrade)),
            ("/public", "/market")
        );
        assert_eq!(
            (VENUE.stream_path)("/market", &["btcusdt@markPrice", "ethusdt@aggTrade"], TimeUnit::Micros),
            "/market/stream?streams=btcusdt@markPrice/ethusdt@aggTrade"
        );
        assert_eq!(
            (VENUE.subscribe)(2, &["btcusdt@forceOrder"]),
            r#"{"method":"SUBSCRIBE","params":["btcusdt@forceOrder"],"id":2}"#
        );
    }

    #[test]
    fn usd_m_frames_reach_the_engine_as_usd_m_records() {
        let text = r#"{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}}"#;
        let Ok(Frame::Market { kind, stream_symbol, record }) = (VENUE.parse)(text) else {
            panic!("not a market frame")
        };
        assert_eq!((kind, stream_symbol, record.exchange()), (StreamKind::MarkPrice1s, "btcusdt", "binance-usdm"));
        let spot_only = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":2,"s":"BTCUSDT","t":7,"p":"1.5","q":"2","T":1,"m":true}}"#;
        assert_eq!((VENUE.parse)(spot_only).unwrap_err().reason, "unknown_stream");
    }
}
