//! What can be subscribed: the kinds of stream, each for every configured symbol, and the record
//! type each carries. Their names on the wire are the venue's (`binance::stream` for Binance's).

use crate::record::RecordType;
use crate::sequence::Dense;

/// One kind of stream, for every configured symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Trade,
    AggTrade,
    /// Index into [`crate::interval::KLINE_INTERVALS`].
    Kline(u8),
    BookTicker,
    Depth,
    Depth100ms,
}

impl StreamKind {
    /// The type of the records this kind of stream carries.
    pub fn record_type(self) -> RecordType {
        match self {
            StreamKind::Trade => RecordType::Trade,
            StreamKind::AggTrade => RecordType::AggTrade,
            StreamKind::Kline(_) => RecordType::Kline,
            StreamKind::BookTicker => RecordType::BookTicker,
            StreamKind::Depth | StreamKind::Depth100ms => RecordType::DepthUpdate,
        }
    }

    /// The gap-free sequence this kind of stream carries, if any (a rotation's replacement
    /// catches up on it).
    pub fn dense(self) -> Option<Dense> {
        match self {
            StreamKind::Trade => Some(Dense::Trade),
            StreamKind::AggTrade => Some(Dense::AggTrade),
            StreamKind::Depth | StreamKind::Depth100ms => Some(Dense::Depth),
            StreamKind::Kline(_) | StreamKind::BookTicker => None,
        }
    }
}
