//! The bounded label sets: every value a labelled counter can take, registered at 0 from the
//! start, and the frame kinds counted on receipt.

use crate::record::RecordType;

/// Every `reason` of `messages_rejected_total` (parse, record, pipeline and WebSocket reasons).
pub const REJECT_REASONS: &[&str] = &[
    "malformed_json",
    "unknown_shape",
    "unknown_stream",
    "event_type_mismatch",
    "symbol_mismatch",
    "interval_mismatch",
    "too_deep",
    "bad_decimal",
    "bad_symbol",
    "bad_levels",
    "bad_interval",
    "bad_word",
    "unknown_side",
    "ring_overflow",
    "unknown_symbol",
    "binary_frame",
    "frame_too_large",
    "ws_protocol",
    "invalid_utf8",
];

/// Every `result` of `kafka_in_doubt_total` (see `backfill::doubt`).
pub const IN_DOUBT_RESULTS: &[&str] = &["in_doubt", "published", "refetched", "unverified"];

/// Every `result` of `kafka_gap_records_failed_total` (see `sink::resend`).
pub const FAILED_GAP_RESULTS: &[&str] = &["kept", "dropped"];

/// Every `kind` of `kafka_delivery_errors_total` (see `sink::error_kind`).
pub const KAFKA_ERROR_KINDS: &[&str] = &[
    "message_timed_out",
    "queue_full",
    "message_too_large",
    "all_brokers_down",
    "broker_transport",
    "authentication",
    "authorization",
    "unknown_topic",
    "not_enough_replicas",
    "fatal",
    "resolve",
    "tls",
    "other",
];

/// What a received text frame was: the `type` label of `messages_received_total`. A record
/// type's discriminant is its own, so [`FrameKind::of`] is a cast-free match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Trade = 0,
    AggTrade = 1,
    Kline = 2,
    BookTicker = 3,
    DepthUpdate = 4,
    MarkPrice = 5,
    Liquidation = 6,
    ControlReply = 7,
    ErrorReply = 8,
    ServerShutdown = 9,
    Unparsed = 10,
}

impl FrameKind {
    pub const ALL: [FrameKind; 11] = [
        FrameKind::Trade,
        FrameKind::AggTrade,
        FrameKind::Kline,
        FrameKind::BookTicker,
        FrameKind::DepthUpdate,
        FrameKind::MarkPrice,
        FrameKind::Liquidation,
        FrameKind::ControlReply,
        FrameKind::ErrorReply,
        FrameKind::ServerShutdown,
        FrameKind::Unparsed,
    ];

    /// The frame kind of a market-data frame carrying a record of type `t`.
    pub fn of(t: RecordType) -> FrameKind {
        match t {
            RecordType::Trade => FrameKind::Trade,
            RecordType::AggTrade => FrameKind::AggTrade,
            RecordType::Kline => FrameKind::Kline,
            RecordType::BookTicker => FrameKind::BookTicker,
            RecordType::DepthUpdate => FrameKind::DepthUpdate,
            RecordType::MarkPrice => FrameKind::MarkPrice,
            RecordType::Liquidation => FrameKind::Liquidation,
        }
    }

    pub fn as_str(self) -> &'static str {
        FRAME_KINDS[self as usize]
    }
}

/// Frame kinds counted on receipt (a bounded label set).
pub const FRAME_KINDS: &[&str] = &[
    "trade",
    "agg_trade",
    "kline",
    "book_ticker",
    "depth_update",
    "mark_price",
    "liquidation",
    "control_reply",
    "error_reply",
    "server_shutdown",
    "unparsed",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_kinds_index_their_labels() {
        assert_eq!(FrameKind::ALL.len(), FRAME_KINDS.len());
        for (i, k) in FrameKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        for t in RecordType::ALL {
            assert_eq!(FrameKind::of(t).as_str(), t.as_str(), "a record's frame kind is labelled by its type");
        }
        assert_eq!(FrameKind::Unparsed.as_str(), "unparsed");
    }
}
