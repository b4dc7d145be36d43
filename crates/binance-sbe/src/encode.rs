//! Frames of the stream schema built with the generated encoders, for the simulator (and tests):
//! an encoder independent of [`decode`](crate::decode)'s checks, so a misreading of the schema
//! cannot hide in both.
//!
//! Each frame's exact length is computed first and the buffer sized to it, since the generated
//! encoders index slices (and would panic on a short buffer), and inputs the schema cannot carry
//! are refused (the generated `symbol` setter would silently cut a symbol over 254 bytes, or
//! panic when the cut falls inside a UTF-8 character).

use spot_stream::bool_enum::BoolEnum;
use spot_stream::{
    best_bid_ask_stream_event_codec as bba, depth_diff_stream_event_codec as diff,
    depth_snapshot_stream_event_codec as snap, group_size_16_encoding_codec as dim16,
    group_size_encoding_codec as dim32, trades_stream_event_codec as trades,
};
use spot_stream::{SbeErr, WriteBuf};

use crate::decode::HEADER_LEN;

/// The longest symbol the generated encoder writes whole (its `varString8` setter cuts at 254).
pub const MAX_SYMBOL_LEN: usize = u8::MAX as usize - 1;
/// The most trades one event can carry: the schema's `maxValue` of the trades group's
/// `numInGroup`.
pub const MAX_TRADES: usize = i32::MAX as usize;
/// The most levels one side of a depth event can carry: a `uint16` `numInGroup` whose largest
/// value, 65535, is its null value.
pub const MAX_LEVELS: usize = u16::MAX as usize - 1;

/// Why a frame was not built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The symbol is longer than [`MAX_SYMBOL_LEN`] bytes.
    #[error("symbol of {len} bytes is longer than the {MAX_SYMBOL_LEN} a varString8 carries")]
    SymbolTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// More entries than the group's `numInGroup` can count.
    #[error("{count} entries are more than the group's {max}")]
    TooManyEntries {
        /// How many were given.
        count: usize,
        /// The most the group carries.
        max: usize,
    },
    /// The generated encoder reported an error (it only has "parent not set", which the order of
    /// calls here rules out).
    #[error("generated encoder: {0}")]
    Generated(SbeErr),
}

impl From<SbeErr> for EncodeError {
    fn from(e: SbeErr) -> Self {
        EncodeError::Generated(e)
    }
}

/// One trade of a [`TradesFrame`]: mantissas, the exponents being the event's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TradeRow {
    /// The trade id.
    pub id: i64,
    /// The price's mantissa.
    pub price: i64,
    /// The quantity's mantissa.
    pub qty: i64,
    /// Whether the buyer was the maker.
    pub is_buyer_maker: bool,
}

/// One level of a depth frame: mantissas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelRow {
    /// The price's mantissa.
    pub price: i64,
    /// The quantity's mantissa.
    pub qty: i64,
}

/// A `TradesStreamEvent` to encode.
#[derive(Clone, Copy, Debug)]
pub struct TradesFrame<'a> {
    /// Event time, µs.
    pub event_time_us: i64,
    /// Transaction time, µs.
    pub transact_time_us: i64,
    /// Exponent of every price.
    pub price_exponent: i8,
    /// Exponent of every quantity.
    pub qty_exponent: i8,
    /// The trades (up to [`MAX_TRADES`]).
    pub trades: &'a [TradeRow],
    /// The symbol (up to [`MAX_SYMBOL_LEN`] bytes).
    pub symbol: &'a str,
}

/// A `BestBidAskStreamEvent` to encode.
#[derive(Clone, Copy, Debug)]
pub struct BestBidAskFrame<'a> {
    /// Event time, µs.
    pub event_time_us: i64,
    /// The book's update id.
    pub book_update_id: i64,
    /// Exponent of both prices.
    pub price_exponent: i8,
    /// Exponent of both quantities.
    pub qty_exponent: i8,
    /// Best bid price's mantissa.
    pub bid_price: i64,
    /// Best bid quantity's mantissa.
    pub bid_qty: i64,
    /// Best ask price's mantissa.
    pub ask_price: i64,
    /// Best ask quantity's mantissa.
    pub ask_qty: i64,
    /// The symbol (up to [`MAX_SYMBOL_LEN`] bytes).
    pub symbol: &'a str,
}

/// A `DepthSnapshotStreamEvent` to encode.
#[derive(Clone, Copy, Debug)]
pub struct DepthSnapshotFrame<'a> {
    /// Event time, µs.
    pub event_time_us: i64,
    /// The book's update id.
    pub book_update_id: i64,
    /// Exponent of every price.
    pub price_exponent: i8,
    /// Exponent of every quantity.
    pub qty_exponent: i8,
    /// Bid levels (up to [`MAX_LEVELS`]).
    pub bids: &'a [LevelRow],
    /// Ask levels (up to [`MAX_LEVELS`]).
    pub asks: &'a [LevelRow],
    /// The symbol (up to [`MAX_SYMBOL_LEN`] bytes).
    pub symbol: &'a str,
}

/// A `DepthDiffStreamEvent` to encode.
#[derive(Clone, Copy, Debug)]
pub struct DepthDiffFrame<'a> {
    /// Event time, µs.
    pub event_time_us: i64,
    /// First book update id of the diff.
    pub first_book_update_id: i64,
    /// Last book update id of the diff.
    pub last_book_update_id: i64,
    /// Exponent of every price.
    pub price_exponent: i8,
    /// Exponent of every quantity.
    pub qty_exponent: i8,
    /// Bid levels (up to [`MAX_LEVELS`]).
    pub bids: &'a [LevelRow],
    /// Ask levels (up to [`MAX_LEVELS`]).
    pub asks: &'a [LevelRow],
    /// The symbol (up to [`MAX_SYMBOL_LEN`] bytes).
    pub symbol: &'a str,
}

fn symbol_len(symbol: &str) -> Result<usize, EncodeError> {
    if symbol.len() > MAX_SYMBOL_LEN {
        return Err(EncodeError::SymbolTooLong { len: symbol.len() });
    }
    Ok(1 + symbol.len())
}

fn count<T>(rows: &[T], max: usize) -> Result<usize, EncodeError> {
    if rows.len() > max {
        return Err(EncodeError::TooManyEntries { count: rows.len(), max });
    }
    Ok(rows.len())
}

/// Resizes `out` to `len` zero bytes: the buffer the generated encoder writes.
fn frame_buf(out: &mut Vec<u8>, len: usize) -> WriteBuf<'_> {
    out.clear();
    out.resize(len, 0);
    WriteBuf::new(out.as_mut_slice())
}

fn bool_enum(b: bool) -> BoolEnum {
    if b {
        BoolEnum::True
    } else {
        BoolEnum::False
    }
}

impl<'a> TradesFrame<'a> {
    /// A trade event of `symbol` whose trades all happened at `time_us` (its event and
    /// transaction time), prices in hundredths and quantities in 10^-8 (exponents -2 and -8, as
    /// the simulator sends BTCUSDT): the frame the ingester's SBE benchmark and tests build.
    pub fn at(symbol: &'a str, time_us: i64, trades: &'a [TradeRow]) -> Self {
        TradesFrame {
            event_time_us: time_us,
            transact_time_us: time_us,
            price_exponent: -2,
            qty_exponent: -8,
            trades,
            symbol,
        }
    }

    /// Replaces `out`'s contents with the frame.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let n = count(self.trades, MAX_TRADES)?;
        let block = usize::from(trades::encoder::TradesEncoder::<trades::TradesStreamEventEncoder>::block_length());
        let len = HEADER_LEN
            + usize::from(trades::SBE_BLOCK_LENGTH)
            + dim32::ENCODED_LENGTH
            + n * block
            + symbol_len(self.symbol)?;
        let mut root = trades::TradesStreamEventEncoder::default().wrap(frame_buf(out, len), HEADER_LEN);
        root = root.header(0).parent()?;
        root.event_time(self.event_time_us)
            .transact_time(self.transact_time_us)
            .price_exponent(self.price_exponent)
            .qty_exponent(self.qty_exponent);
        // n <= MAX_TRADES = i32::MAX.
        let mut group = root.trades_encoder(n as u32, Default::default());
        for t in self.trades {
            group.advance()?;
            group.id(t.id).price(t.price).qty(t.qty).is_buyer_maker(bool_enum(t.is_buyer_maker));
        }
        group.parent()?.symbol(self.symbol);
        Ok(())
    }

    /// The frame.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

impl BestBidAskFrame<'_> {
    /// Replaces `out`'s contents with the frame.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let len = HEADER_LEN + usize::from(bba::SBE_BLOCK_LENGTH) + symbol_len(self.symbol)?;
        let mut root = bba::BestBidAskStreamEventEncoder::default().wrap(frame_buf(out, len), HEADER_LEN);
        root = root.header(0).parent()?;
        root.event_time(self.event_time_us)
            .book_update_id(self.book_update_id)
            .price_exponent(self.price_exponent)
            .qty_exponent(self.qty_exponent)
            .bid_price(self.bid_price)
            .bid_qty(self.bid_qty)
            .ask_price(self.ask_price)
            .ask_qty(self.ask_qty)
            .symbol(self.symbol);
        Ok(())
    }

    /// The frame.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

/// The two depth messages have the same shape; each is encoded by its own generated encoder.
macro_rules! depth_frame {
    ($frame:ident, $codec:ident, $root:ident, |$r:ident, $f:ident| $fields:block) => {
        impl $frame<'_> {
            /// Replaces `out`'s contents with the frame.
            pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                let bids = count(self.bids, MAX_LEVELS)?;
                let asks = count(self.asks, MAX_LEVELS)?;
                let bid_block = usize::from($codec::encoder::BidsEncoder::<$codec::$root>::block_length());
                let ask_block = usize::from($codec::encoder::AsksEncoder::<$codec::$root>::block_length());
                let len = HEADER_LEN
                    + usize::from($codec::SBE_BLOCK_LENGTH)
                    + 2 * dim16::ENCODED_LENGTH
                    + bids * bid_block
                    + asks * ask_block
                    + symbol_len(self.symbol)?;
                let mut $r = $codec::$root::default().wrap(frame_buf(out, len), HEADER_LEN);
                $r = $r.header(0).parent()?;
                let $f = self;
                $fields
                // Both counts are at most MAX_LEVELS < u16::MAX.
                let mut group = $r.bids_encoder(bids as u16, Default::default());
                for l in self.bids {
                    group.advance()?;
                    group.price(l.price).qty(l.qty);
                }
                let mut group = group.parent()?.asks_encoder(asks as u16, Default::default());
                for l in self.asks {
                    group.advance()?;
                    group.price(l.price).qty(l.qty);
                }
                group.parent()?.symbol(self.symbol);
                Ok(())
            }

            /// The frame.
            pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
                let mut out = Vec::new();
                self.encode_into(&mut out)?;
                Ok(out)
            }
        }
    };
}

depth_frame!(DepthSnapshotFrame, snap, DepthSnapshotStreamEventEncoder, |root, f| {
    root.event_time(f.event_time_us)
        .book_update_id(f.book_update_id)
        .price_exponent(f.price_exponent)
        .qty_exponent(f.qty_exponent);
});

depth_frame!(DepthDiffFrame, diff, DepthDiffStreamEventEncoder, |root, f| {
    root.event_time(f.event_time_us)
        .first_book_update_id(f.first_book_update_id)
        .last_book_update_id(f.last_book_update_id)
        .price_exponent(f.price_exponent)
        .qty_exponent(f.qty_exponent);
});
