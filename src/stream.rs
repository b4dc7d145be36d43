//! What can be subscribed: the kinds of stream, each for every configured symbol, and the record
//! type each carries. Their names on the wire are the venue's (`binance::stream` for Binance's).

use std::time::Duration;

use crate::record::RecordType;
use crate::sequence::Dense;

/// One kind of stream, for every configured symbol. A venue serves a subset of them: its own
/// parser of configured names says which (spot has no mark price, USD-M no `trade`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Trade,
    AggTrade,
    /// Index into [`crate::interval::KLINE_INTERVALS`].
    Kline(u8),
    BookTicker,
    Depth,
    Depth100ms,
    /// Mark price and funding, every 3 s.
    MarkPrice,
    /// Mark price and funding, every second.
    MarkPrice1s,
    /// Liquidation orders, at most one a symbol a second, and only when one happens.
    ForceOrder,
    /// The diff-depth stream at 500 ms.
    Depth500ms,
}

/// What the per-stream silence watch (`crate::liveness`) may expect of a kind of stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Whenever the market moves; `may_be_rare`: an illiquid market may not trade for minutes.
    Market { may_be_rare: bool },
    /// On a fixed clock, whatever the market does: a longer silence is a fault from the start.
    Every(Duration),
    /// Only when something happens that may not happen for hours (a liquidation): silence is
    /// normal, so the watch never calls such a stream stale.
    Eventual,
}

impl StreamKind {
    /// The type of the records this kind of stream carries.
    pub fn record_type(self) -> RecordType {
        match self {
            StreamKind::Trade => RecordType::Trade,
            StreamKind::AggTrade => RecordType::AggTrade,
            StreamKind::Kline(_) => RecordType::Kline,
            StreamKind::BookTicker => RecordType::BookTicker,
            StreamKind::Depth | StreamKind::Depth100ms | StreamKind::Depth500ms => RecordType::DepthUpdate,
            StreamKind::MarkPrice | StreamKind::MarkPrice1s => RecordType::MarkPrice,
            StreamKind::ForceOrder => RecordType::Liquidation,
        }
    }

    /// The gap-free sequence this kind of stream carries, if any (a rotation's replacement
    /// catches up on it). Liquidations are snapshots with no sequence to check.
    pub fn dense(self) -> Option<Dense> {
        match self {
            StreamKind::Trade => Some(Dense::Trade),
            StreamKind::AggTrade => Some(Dense::AggTrade),
            StreamKind::Depth | StreamKind::Depth100ms | StreamKind::Depth500ms => Some(Dense::Depth),
            StreamKind::Kline(_)
            | StreamKind::BookTicker
            | StreamKind::MarkPrice
            | StreamKind::MarkPrice1s
            | StreamKind::ForceOrder => None,
        }
    }

    /// How often a stream of this kind speaks (the mark-price cadences are Binance's USD-M
    /// "Update Speed": 3000 ms or 1000 ms).
    pub fn pace(self) -> Pace {
        match self {
            StreamKind::Trade | StreamKind::AggTrade => Pace::Market { may_be_rare: true },
            StreamKind::Kline(_)
            | StreamKind::BookTicker
            | StreamKind::Depth
            | StreamKind::Depth100ms
            | StreamKind::Depth500ms => Pace::Market { may_be_rare: false },
            StreamKind::MarkPrice => Pace::Every(Duration::from_secs(3)),
            StreamKind::MarkPrice1s => Pace::Every(Duration::from_secs(1)),
            // Silent whenever nothing is liquidated, which may last hours on a calm market.
            StreamKind::ForceOrder => Pace::Eventual,
        }
    }
}
