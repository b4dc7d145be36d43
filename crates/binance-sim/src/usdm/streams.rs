//! USD-M stream names and where Binance serves them since its 2026 routing change (README §6,
//! §9): `/public` for the order book (`@depth*`, `@bookTicker`), `/market` for the rest
//! (`@aggTrade`, `@markPrice*`, `@kline_*`, `@forceOrder`). "Connections that do not include a
//! routed path … will only receive data from the Public endpoint": on the retired root path a
//! `/market` stream is acknowledged, listed, and never delivered — and so is a stream asked for
//! on the other routed path.

use crate::kind::{interval_index, StreamKind};

/// The path a USD-M connection was opened on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/public/ws/...`, `/public/stream?...`
    Public,
    /// `/market/ws/...`, `/market/stream?...`
    Market,
    /// `/ws/...`, `/stream?...`: the retired root path.
    Root,
}

/// Splits a USD-M URL path into its endpoint and the rest (`/public/ws/x` -> `Public`, `/ws/x`);
/// `Err` for a path Binance has no market data on (`/private` is user data, not simulated).
pub(crate) fn split_endpoint(path: &str) -> Result<(Endpoint, &str), (u16, String)> {
    let routed = |prefix: &str| path.strip_prefix(prefix).filter(|rest| rest.starts_with('/'));
    if let Some(rest) = routed("/public") {
        Ok((Endpoint::Public, rest))
    } else if let Some(rest) = routed("/market") {
        Ok((Endpoint::Market, rest))
    } else if path.starts_with("/private") {
        Err((404, "user data streams are not simulated".into()))
    } else {
        Ok((Endpoint::Root, path))
    }
}

/// The USD-M kind named by the part of a stream name after the first `@`, whatever the path;
/// `None` for a stream this market does not produce (no `@trade` in Binance's USD-M docs, no
/// `kline_1s` on futures).
pub(crate) fn kind(suffix: &str) -> Option<StreamKind> {
    Some(match suffix {
        "aggTrade" => StreamKind::AggTrade,
        "bookTicker" => StreamKind::BookTicker,
        "depth" => StreamKind::Depth,
        "depth@100ms" => StreamKind::Depth100ms,
        "depth@500ms" => StreamKind::Depth500ms,
        "markPrice" => StreamKind::MarkPrice,
        "markPrice@1s" => StreamKind::MarkPrice1s,
        "forceOrder" => StreamKind::ForceOrder,
        s => match interval_index(s.strip_prefix("kline_")?)? {
            0 => return None, // "1s": spot only
            iv => StreamKind::Kline(iv),
        },
    })
}

/// Whether Binance routes `kind` to `/public` (else `/market`).
pub(crate) fn is_public(kind: StreamKind) -> bool {
    matches!(kind, StreamKind::Depth | StreamKind::Depth100ms | StreamKind::Depth500ms | StreamKind::BookTicker)
}

/// The kind a connection on `endpoint` receives for a stream named by `suffix`: `None` when it
/// receives nothing (an unknown stream, or one routed elsewhere).
pub(crate) fn delivered(endpoint: Endpoint, suffix: &str) -> Option<StreamKind> {
    let kind = kind(suffix)?;
    let public = is_public(kind);
    let here = match endpoint {
        Endpoint::Public | Endpoint::Root => public,
        Endpoint::Market => !public,
    };
    here.then_some(kind)
}

/// Every kind the USD-M market serves, each kline interval once.
pub fn usdm_kinds() -> impl Iterator<Item = StreamKind> {
    [
        StreamKind::AggTrade,
        StreamKind::BookTicker,
        StreamKind::Depth,
        StreamKind::Depth100ms,
        StreamKind::Depth500ms,
        StreamKind::MarkPrice,
        StreamKind::MarkPrice1s,
        StreamKind::ForceOrder,
    ]
    .into_iter()
    .chain((1..crate::kind::KLINE_INTERVALS.len() as u8).map(StreamKind::Kline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_usdm_name_reads_back_as_its_kind_and_spot_only_names_do_not() {
        let kinds: Vec<StreamKind> = usdm_kinds().collect();
        assert_eq!(kinds.len(), 8 + 15, "no 1s candles on futures");
        for k in &kinds {
            assert_eq!(kind(&k.to_string()), Some(*k), "{k}");
        }
        for spot_only in ["trade", "kline_1s", "depth@1000ms", "markprice", "forceOrder@arr", "kline_1mo"] {
            assert_eq!(kind(spot_only), None, "{spot_only}");
        }
    }

    #[test]
    fn the_order_book_is_public_the_rest_market_and_the_root_gets_only_public() {
        let public = ["depth", "depth@100ms", "depth@500ms", "bookTicker"];
        let market = ["aggTrade", "markPrice", "markPrice@1s", "kline_1m", "kline_1M", "forceOrder"];
        for s in public {
            assert!(delivered(Endpoint::Public, s).is_some() && delivered(Endpoint::Root, s).is_some(), "{s}");
            assert_eq!(delivered(Endpoint::Market, s), None, "{s}");
        }
        for s in market {
            assert!(delivered(Endpoint::Market, s).is_some(), "{s}");
            assert_eq!((delivered(Endpoint::Public, s), delivered(Endpoint::Root, s)), (None, None), "{s}");
        }
        assert_eq!(delivered(Endpoint::Market, "trade"), None);
    }

    #[test]
    fn paths_name_their_endpoint() {
        assert_eq!(split_endpoint("/public/ws/btcusdt@depth"), Ok((Endpoint::Public, "/ws/btcusdt@depth")));
        assert_eq!(split_endpoint("/market/stream"), Ok((Endpoint::Market, "/stream")));
        assert_eq!(split_endpoint("/stream"), Ok((Endpoint::Root, "/stream")));
        assert_eq!(split_endpoint("/ws/btcusdt@aggTrade"), Ok((Endpoint::Root, "/ws/btcusdt@aggTrade")));
        // Not a routed prefix: left whole (and refused by the path rules after it).
        assert_eq!(split_endpoint("/publicws"), Ok((Endpoint::Root, "/publicws")));
        assert_eq!(split_endpoint("/private/ws/key").unwrap_err().0, 404);
    }
}
