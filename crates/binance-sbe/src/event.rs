//! The decoded messages: zero-copy views over a frame that [`decode`](crate::decode) checked.
//! Every getter reads through the generated decoders; the checks made before guarantee each read
//! is inside the frame, so none of them can panic.

use spot_stream::bool_enum::BoolEnum;
use spot_stream::{
    best_bid_ask_stream_event_codec as bba, depth_diff_stream_event_codec as diff,
    depth_snapshot_stream_event_codec as snap, trades_stream_event_codec as trades,
};

use crate::decimal::Decimal;

/// The messages of the stream schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `TradesStreamEvent`, stream `<symbol>@trade`.
    Trades,
    /// `BestBidAskStreamEvent`, stream `<symbol>@bestBidAsk`.
    BestBidAsk,
    /// `DepthSnapshotStreamEvent`, stream `<symbol>@depth20`.
    DepthSnapshot,
    /// `DepthDiffStreamEvent`, stream `<symbol>@depth`.
    DepthDiff,
}

impl MessageKind {
    /// Every message of the schema.
    pub const ALL: [MessageKind; 4] =
        [MessageKind::Trades, MessageKind::BestBidAsk, MessageKind::DepthSnapshot, MessageKind::DepthDiff];

    /// The schema's template id (the generated constant).
    pub const fn template_id(self) -> u16 {
        match self {
            MessageKind::Trades => trades::SBE_TEMPLATE_ID,
            MessageKind::BestBidAsk => bba::SBE_TEMPLATE_ID,
            MessageKind::DepthSnapshot => snap::SBE_TEMPLATE_ID,
            MessageKind::DepthDiff => diff::SBE_TEMPLATE_ID,
        }
    }

    /// The message of a template id, if the schema has one.
    pub const fn from_template_id(template_id: u16) -> Option<MessageKind> {
        match template_id {
            trades::SBE_TEMPLATE_ID => Some(MessageKind::Trades),
            bba::SBE_TEMPLATE_ID => Some(MessageKind::BestBidAsk),
            snap::SBE_TEMPLATE_ID => Some(MessageKind::DepthSnapshot),
            diff::SBE_TEMPLATE_ID => Some(MessageKind::DepthDiff),
            _ => None,
        }
    }

    /// The schema's root block length (the generated constant): the least a frame may announce.
    pub const fn block_length(self) -> u16 {
        match self {
            MessageKind::Trades => trades::SBE_BLOCK_LENGTH,
            MessageKind::BestBidAsk => bba::SBE_BLOCK_LENGTH,
            MessageKind::DepthSnapshot => snap::SBE_BLOCK_LENGTH,
            MessageKind::DepthDiff => diff::SBE_BLOCK_LENGTH,
        }
    }

    /// The schema's name of the message.
    pub const fn name(self) -> &'static str {
        match self {
            MessageKind::Trades => "TradesStreamEvent",
            MessageKind::BestBidAsk => "BestBidAskStreamEvent",
            MessageKind::DepthSnapshot => "DepthSnapshotStreamEvent",
            MessageKind::DepthDiff => "DepthDiffStreamEvent",
        }
    }
}

/// A decoded frame. Times are microseconds since the epoch, as the SBE streams send them.
#[derive(Clone, Copy, Debug)]
pub enum Message<'a> {
    /// A trade event: one or more trades.
    Trades(TradesEvent<'a>),
    /// The best bid and ask.
    BestBidAsk(BestBidAskEvent<'a>),
    /// The top levels of the book.
    DepthSnapshot(DepthSnapshotEvent<'a>),
    /// A diff of the book.
    DepthDiff(DepthDiffEvent<'a>),
}

impl<'a> Message<'a> {
    /// Which message.
    pub const fn kind(&self) -> MessageKind {
        match self {
            Message::Trades(_) => MessageKind::Trades,
            Message::BestBidAsk(_) => MessageKind::BestBidAsk,
            Message::DepthSnapshot(_) => MessageKind::DepthSnapshot,
            Message::DepthDiff(_) => MessageKind::DepthDiff,
        }
    }

    /// The symbol, as sent (upper case, UTF-8 checked; its grammar is the ingester's to check).
    pub const fn symbol(&self) -> &'a str {
        match self {
            Message::Trades(m) => m.symbol,
            Message::BestBidAsk(m) => m.symbol,
            Message::DepthSnapshot(m) => m.symbol,
            Message::DepthDiff(m) => m.symbol,
        }
    }

    /// The event time, µs.
    pub fn event_time_us(&self) -> i64 {
        match self {
            Message::Trades(m) => m.event_time_us(),
            Message::BestBidAsk(m) => m.event_time_us(),
            Message::DepthSnapshot(m) => m.event_time_us(),
            Message::DepthDiff(m) => m.event_time_us(),
        }
    }
}

/// One trade of a [`TradesEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    /// The trade id.
    pub id: i64,
    /// The price (the event's `priceExponent`).
    pub price: Decimal,
    /// The quantity (the event's `qtyExponent`).
    pub qty: Decimal,
    /// Whether the buyer was the maker. (`isBestMatch` is a constant True in the schema: not on
    /// the wire.)
    pub is_buyer_maker: bool,
}

/// One price level of a depth snapshot or diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// The price (the event's `priceExponent`).
    pub price: Decimal,
    /// The quantity (the event's `qtyExponent`); zero in a diff removes the level.
    pub qty: Decimal,
}

/// `TradesStreamEvent`.
#[derive(Clone, Copy, Debug)]
pub struct TradesEvent<'a> {
    /// Positioned at the trades group (the root block's end).
    pub(crate) root: trades::TradesStreamEventDecoder<'a>,
    pub(crate) count: usize,
    pub(crate) symbol: &'a str,
}

impl<'a> TradesEvent<'a> {
    /// The event time, µs.
    pub fn event_time_us(&self) -> i64 {
        self.root.event_time()
    }
    /// The transaction time, µs.
    pub fn transact_time_us(&self) -> i64 {
        self.root.transact_time()
    }
    /// The exponent of every price.
    pub fn price_exponent(&self) -> i8 {
        self.root.price_exponent()
    }
    /// The exponent of every quantity.
    pub fn qty_exponent(&self) -> i8 {
        self.root.qty_exponent()
    }
    /// The symbol.
    pub const fn symbol(&self) -> &'a str {
        self.symbol
    }
    /// How many trades the event holds (the group's `numInGroup`, checked to fit the frame).
    pub const fn trade_count(&self) -> usize {
        self.count
    }
    /// The trades, in the event's order.
    // It and its `next` are `#[inline]`: the ingester's loop over them (another crate, thin LTO)
    // had kept them calls; inlined, with the ingester's decimal formatting, 70 instructions an
    // SBE trade fewer (bench-results/sbe-trade-bench-s13/).
    #[inline]
    pub fn trades(&self) -> impl ExactSizeIterator<Item = Trade> + 'a {
        Trades {
            group: self.root.trades_decoder(),
            price_exponent: self.price_exponent(),
            qty_exponent: self.qty_exponent(),
            remaining: self.count,
        }
    }
}

struct Trades<'a> {
    group: trades::decoder::TradesDecoder<trades::TradesStreamEventDecoder<'a>>,
    price_exponent: i8,
    qty_exponent: i8,
    remaining: usize,
}

impl Iterator for Trades<'_> {
    type Item = Trade;

    #[inline]
    fn next(&mut self) -> Option<Trade> {
        if self.remaining == 0 || !matches!(self.group.advance(), Ok(Some(_))) {
            return None;
        }
        self.remaining -= 1;
        Some(Trade {
            id: self.group.id(),
            price: Decimal::new(self.group.price(), self.price_exponent),
            qty: Decimal::new(self.group.qty(), self.qty_exponent),
            // decode() refused any value but False and True.
            is_buyer_maker: self.group.is_buyer_maker() == BoolEnum::True,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Trades<'_> {}

/// `BestBidAskStreamEvent`.
#[derive(Clone, Copy, Debug)]
pub struct BestBidAskEvent<'a> {
    pub(crate) root: bba::BestBidAskStreamEventDecoder<'a>,
    pub(crate) symbol: &'a str,
}

impl<'a> BestBidAskEvent<'a> {
    /// The event time, µs.
    pub fn event_time_us(&self) -> i64 {
        self.root.event_time()
    }
    /// The book's update id.
    pub fn book_update_id(&self) -> i64 {
        self.root.book_update_id()
    }
    /// The best bid price.
    pub fn bid_price(&self) -> Decimal {
        Decimal::new(self.root.bid_price(), self.root.price_exponent())
    }
    /// The quantity at the best bid.
    pub fn bid_qty(&self) -> Decimal {
        Decimal::new(self.root.bid_qty(), self.root.qty_exponent())
    }
    /// The best ask price.
    pub fn ask_price(&self) -> Decimal {
        Decimal::new(self.root.ask_price(), self.root.price_exponent())
    }
    /// The quantity at the best ask.
    pub fn ask_qty(&self) -> Decimal {
        Decimal::new(self.root.ask_qty(), self.root.qty_exponent())
    }
    /// The symbol.
    pub const fn symbol(&self) -> &'a str {
        self.symbol
    }
}

/// A generated level group decoder (bids or asks, of a snapshot or a diff: four types of the
/// same shape).
trait LevelGroup {
    fn next_level(&mut self) -> bool;
    fn level_price(&self) -> i64;
    fn level_qty(&self) -> i64;
}

macro_rules! level_group {
    ($($group:ty),*) => {$(
        impl LevelGroup for $group {
            fn next_level(&mut self) -> bool {
                matches!(self.advance(), Ok(Some(_)))
            }
            fn level_price(&self) -> i64 {
                self.price()
            }
            fn level_qty(&self) -> i64 {
                self.qty()
            }
        }
    )*};
}

level_group!(
    snap::decoder::BidsDecoder<snap::DepthSnapshotStreamEventDecoder<'_>>,
    snap::decoder::AsksDecoder<snap::DepthSnapshotStreamEventDecoder<'_>>,
    diff::decoder::BidsDecoder<diff::DepthDiffStreamEventDecoder<'_>>,
    diff::decoder::AsksDecoder<diff::DepthDiffStreamEventDecoder<'_>>
);

struct Levels<G> {
    group: G,
    price_exponent: i8,
    qty_exponent: i8,
    remaining: usize,
}

impl<G: LevelGroup> Iterator for Levels<G> {
    type Item = Level;

    fn next(&mut self) -> Option<Level> {
        if self.remaining == 0 || !self.group.next_level() {
            return None;
        }
        self.remaining -= 1;
        Some(Level {
            price: Decimal::new(self.group.level_price(), self.price_exponent),
            qty: Decimal::new(self.group.level_qty(), self.qty_exponent),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<G: LevelGroup> ExactSizeIterator for Levels<G> {}

/// The common shape of the two depth messages: root fields, bids, asks, symbol.
macro_rules! depth_event {
    ($(#[$doc:meta])* $name:ident, $decoder:ty) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name<'a> {
            /// Positioned at the bids group (the root block's end).
            pub(crate) bids_at: $decoder,
            /// Positioned at the asks group (the bids group's end).
            pub(crate) asks_at: $decoder,
            pub(crate) bid_count: usize,
            pub(crate) ask_count: usize,
            pub(crate) symbol: &'a str,
        }

        impl<'a> $name<'a> {
            /// The event time, µs.
            pub fn event_time_us(&self) -> i64 {
                self.bids_at.event_time()
            }
            /// The exponent of every price.
            pub fn price_exponent(&self) -> i8 {
                self.bids_at.price_exponent()
            }
            /// The exponent of every quantity.
            pub fn qty_exponent(&self) -> i8 {
                self.bids_at.qty_exponent()
            }
            /// The symbol.
            pub const fn symbol(&self) -> &'a str {
                self.symbol
            }
            /// How many bid levels.
            pub const fn bid_count(&self) -> usize {
                self.bid_count
            }
            /// How many ask levels.
            pub const fn ask_count(&self) -> usize {
                self.ask_count
            }
            /// The bid levels, in the event's order.
            pub fn bids(&self) -> impl ExactSizeIterator<Item = Level> + 'a {
                Levels {
                    group: self.bids_at.bids_decoder(),
                    price_exponent: self.price_exponent(),
                    qty_exponent: self.qty_exponent(),
                    remaining: self.bid_count,
                }
            }
            /// The ask levels, in the event's order.
            pub fn asks(&self) -> impl ExactSizeIterator<Item = Level> + 'a {
                Levels {
                    group: self.asks_at.asks_decoder(),
                    price_exponent: self.price_exponent(),
                    qty_exponent: self.qty_exponent(),
                    remaining: self.ask_count,
                }
            }
        }
    };
}

depth_event!(
    /// `DepthSnapshotStreamEvent`: the top levels of the book.
    DepthSnapshotEvent,
    snap::DepthSnapshotStreamEventDecoder<'a>
);
depth_event!(
    /// `DepthDiffStreamEvent`: the levels changed between two book update ids.
    DepthDiffEvent,
    diff::DepthDiffStreamEventDecoder<'a>
);

impl DepthSnapshotEvent<'_> {
    /// The book's update id.
    pub fn book_update_id(&self) -> i64 {
        self.bids_at.book_update_id()
    }
}

impl DepthDiffEvent<'_> {
    /// The first book update id of the diff.
    pub fn first_book_update_id(&self) -> i64 {
        self.bids_at.first_book_update_id()
    }
    /// The last book update id of the diff.
    pub fn last_book_update_id(&self) -> i64 {
        self.bids_at.last_book_update_id()
    }
}
