//! Binance's spot market-data endpoint as a [`Venue`]: the URL shape, the SUBSCRIBE request and
//! the limits of <https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md>
//! ("Live Subscribing/Unsubscribing to streams", "WebSocket Limits").

use std::time::Duration;

use super::symbol::url_encoded;
use super::wire::{self, ParseError};
use crate::time_unit::TimeUnit;
use crate::venue::{Frame, Limits, Refusal, Venue};

/// Binance closes a connection that sends more than this many messages in a second.
pub const MESSAGES_PER_SECOND: usize = 5;
/// Binance allows at most this many streams on one connection.
pub const MAX_STREAMS_PER_CONNECTION: usize = 1024;
/// Binance allows 300 connection attempts per 5 minutes per IP; we keep 20 under it (other
/// clients may share the IP, and a margin costs nothing).
pub const CONNECT_ATTEMPTS: usize = 280;
pub const CONNECT_WINDOW: Duration = Duration::from_secs(300);
/// Streams per SUBSCRIBE request (a long `params` list has been reported to fail silently).
pub const STREAMS_PER_SUBSCRIBE: usize = 200;
/// Stream names beyond this many URL bytes go in SUBSCRIBE requests instead of the URL.
pub const URL_STREAM_BYTES: usize = 2000;
/// "The WebSocket server will send a ping frame every 20 seconds" (shared README §2.1).
pub const SERVER_PING_INTERVAL: Duration = Duration::from_secs(20);

/// Binance spot.
pub const VENUE: Venue = Venue {
    // `TRANSPORT=sbe`: the same streams as SBE binary frames (stream-sbe.binance.com).
    binary: Some(&super::sbe::BINARY),
    ..TEXT
};

/// The spot endpoint without its binary transport: what the SBE endpoint's venue
/// (`sbe::SBE_VENUE`) shares with it. (Built from this rather than from [`VENUE`], whose
/// reference to the transport would make the two statics' initializers depend on each other.)
pub(super) const TEXT: Venue = Venue {
    exchange: super::EXCHANGE,
    limits: Limits {
        messages_per_second: MESSAGES_PER_SECOND,
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
    // One endpoint serves every spot stream.
    route: |_| "",
    binary: None,
};

/// A combined-stream frame (of any Binance market) as the engine sees it.
pub(super) fn to_engine(parsed: Result<Frame<'_>, ParseError>) -> Result<Frame<'_>, Refusal> {
    parsed.map_err(refusal)
}

fn refusal(e: ParseError) -> Refusal {
    Refusal { reason: e.reason(), why: e.why() }
}

/// `<base>/stream?streams=<a>/<b>/...`: the combined-stream endpoint, each name percent-encoded
/// (a UTF-8 listing's name; ASCII names are unchanged). Binance names the stream in each frame
/// decoded, as configured. Microseconds are asked for with `&timeUnit=MICROSECOND`
/// (web-socket-streams.md, "General WSS information"); milliseconds are the default, and the URL
/// says nothing of them.
fn stream_path(base: &str, streams: &[&str], unit: TimeUnit) -> String {
    let unit = match unit {
        TimeUnit::Millis => "",
        TimeUnit::Micros => "&timeUnit=MICROSECOND",
    };
    combined_path(base, streams, unit)
}

/// `<base>/stream?streams=<a>/<b>/...<query>`, each name percent-encoded.
pub(super) fn combined_path(base: &str, streams: &[&str], query: &str) -> String {
    let names: Vec<String> = streams.iter().map(|s| url_encoded(s).to_string()).collect();
    format!("{base}/stream?streams={}{query}", names.join("/"))
}

/// `{"method":"SUBSCRIBE","params":["<a>","<b>"],"id":<id>}`, each name percent-encoded as in the
/// URL: the request stays ASCII and needs no JSON escaping (symbols are checked against Binance's
/// grammar at configuration, and the encoding leaves no `"` or `\\`).
pub(super) fn subscribe(id: i64, streams: &[&str]) -> String {
    request("SUBSCRIBE", id, streams)
}

/// `{"method":"UNSUBSCRIBE","params":["<a>"],"id":<id>}`.
pub(super) fn unsubscribe(id: i64, streams: &[&str]) -> String {
    request("UNSUBSCRIBE", id, streams)
}

fn request(method: &str, id: i64, streams: &[&str]) -> String {
    let params: Vec<String> = streams.iter().map(|s| format!("\"{}\"", url_encoded(s))).collect();
    format!("{{\"method\":\"{method}\",\"params\":[{}],\"id\":{id}}}", params.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_requests_have_binance_s_shape() {
        use crate::stream::StreamKind;
        assert_eq!((VENUE.stream_name)("btcusdt", StreamKind::Kline(1)), "btcusdt@kline_1m");
        assert_eq!((VENUE.stream_name)("币安人生usdt", StreamKind::Depth100ms), "币安人生usdt@depth@100ms");
        assert_eq!(
            (VENUE.stream_path)("", &["btcusdt@trade", "ethusdt@trade"], TimeUnit::Millis),
            "/stream?streams=btcusdt@trade/ethusdt@trade"
        );
        assert_eq!(
            (VENUE.stream_path)("", &["btcusdt@trade"], TimeUnit::Micros),
            "/stream?streams=btcusdt@trade&timeUnit=MICROSECOND"
        );
        assert_eq!(
            (VENUE.subscribe)(3, &["btcusdt@trade", "btcusdt@depth@100ms"]),
            r#"{"method":"SUBSCRIBE","params":["btcusdt@trade","btcusdt@depth@100ms"],"id":3}"#
        );
        // A UTF-8 listing: percent-encoded in the URL and in SUBSCRIBE alike.
        let uni = (VENUE.stream_name)("币安人生usdt", StreamKind::Trade);
        assert_eq!(
            (VENUE.stream_path)("/p", &[&uni, "btcusdt@trade"], TimeUnit::Millis),
            "/p/stream?streams=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt@trade/btcusdt@trade"
        );
        assert_eq!(
            (VENUE.subscribe)(9, &[&uni]),
            r#"{"method":"SUBSCRIBE","params":["%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt@trade"],"id":9}"#
        );
        // The documented request (README facts, section 2.3).
        assert_eq!(
            (VENUE.unsubscribe)(312, &["btcusdt@depth"]),
            r#"{"method":"UNSUBSCRIBE","params":["btcusdt@depth"],"id":312}"#
        );
        assert_eq!(
            ((VENUE.kind_name)(StreamKind::AggTrade), (VENUE.kind_name)(StreamKind::Depth100ms)),
            ("aggTrade".into(), "depth@100ms".into())
        );
    }

    #[test]
    fn frames_reach_the_engine_without_binance_s_types() {
        use crate::stream::StreamKind;
        let text = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":2,"s":"BTCUSDT","t":7,"p":"1.5","q":"2","T":1,"m":true,"M":true}}"#;
        let Ok(Frame::Market { kind, stream_symbol, record }) = (VENUE.parse)(text) else {
            panic!("not a market frame")
        };
        assert_eq!(
            (kind, stream_symbol, record.sequence_id(), record.exchange()),
            (StreamKind::Trade, "btcusdt", 7, "binance")
        );
        assert_eq!((VENUE.parse)(r#"{"result":null,"id":4}"#), Ok(Frame::ControlReply { id: Some(4), result: "null" }));
        let refused = (VENUE.parse)("{").unwrap_err();
        assert_eq!((refused.reason, refused.to_string()), ("malformed_json", "not valid JSON for its shape".into()));
    }
}
