//! [`decode`]: the one way into a frame. It walks the frame the way the generated decoders will,
//! and before each of their reads checks that what they are about to read is inside the frame,
//! using the lengths the frame announces (header `blockLength`, each group's `blockLength` ×
//! `numInGroup`, the symbol's length byte). The generated code indexes slices and would panic
//! past the end: it only ever sees a frame that passed these checks.

use spot_stream::bool_enum::BoolEnum;
use spot_stream::group_size_16_encoding_codec::{self as dim16, GroupSize16EncodingDecoder};
use spot_stream::group_size_encoding_codec::{self as dim32, GroupSizeEncodingDecoder};
use spot_stream::message_header_codec::{self, MessageHeaderDecoder};
use spot_stream::{
    best_bid_ask_stream_event_codec as bba, depth_diff_stream_event_codec as diff,
    depth_snapshot_stream_event_codec as snap, trades_stream_event_codec as trades,
};
use spot_stream::{Decoder, ReadBuf, SBE_SCHEMA_ID, SBE_SCHEMA_VERSION};

use crate::error::{Group, Part, SbeError};
use crate::event::{BestBidAskEvent, DepthDiffEvent, DepthSnapshotEvent, Message, MessageKind, TradesEvent};

/// The message header's length: `blockLength`, `templateId`, `schemaId`, `version`, each a
/// `uint16`.
pub const HEADER_LEN: usize = message_header_codec::ENCODED_LENGTH;

/// The schema's block lengths of the groups' entries (the generated encoders' constants): the
/// least a frame may announce, or the generated getters would read into the next entry.
const TRADE_BLOCK: u16 = trades::encoder::TradesEncoder::<trades::TradesStreamEventEncoder<'static>>::block_length();
const SNAPSHOT_BID_BLOCK: u16 =
    snap::encoder::BidsEncoder::<snap::DepthSnapshotStreamEventEncoder<'static>>::block_length();
const SNAPSHOT_ASK_BLOCK: u16 =
    snap::encoder::AsksEncoder::<snap::DepthSnapshotStreamEventEncoder<'static>>::block_length();
const DIFF_BID_BLOCK: u16 = diff::encoder::BidsEncoder::<diff::DepthDiffStreamEventEncoder<'static>>::block_length();
const DIFF_ASK_BLOCK: u16 = diff::encoder::AsksEncoder::<diff::DepthDiffStreamEventEncoder<'static>>::block_length();

/// Decodes one binary frame of Binance's SBE market-data streams (one message, nothing after it).
///
/// Refused, with the reason: a frame shorter than the header; a schema id, schema version or
/// template id other than the generated schema's (never guessed at: a new schema needs new
/// generated code); a root or group block length shorter than the schema's; any part the frame's
/// own lengths place beyond its end; an `isBuyerMaker` that is neither False nor True; a symbol
/// that is not UTF-8; bytes after the symbol. Nothing is read beyond the frame, nothing panics,
/// nothing is allocated; the work is linear in the number of trades (each `isBuyerMaker` is
/// checked) and constant otherwise.
pub fn decode(frame: &[u8]) -> Result<Message<'_>, SbeError> {
    if frame.len() < HEADER_LEN {
        return Err(SbeError::ShortHeader { len: frame.len(), need: HEADER_LEN });
    }
    let buf = ReadBuf::new(frame);
    // The frame holds the whole header.
    let header = MessageHeaderDecoder::default().wrap(buf, 0);
    let schema_id = header.schema_id();
    if schema_id != SBE_SCHEMA_ID {
        return Err(SbeError::UnknownSchema { schema_id, expected: SBE_SCHEMA_ID });
    }
    let version = header.version();
    if version != SBE_SCHEMA_VERSION {
        return Err(SbeError::UnknownVersion { version, expected: SBE_SCHEMA_VERSION });
    }
    let template_id = header.template_id();
    let Some(kind) = MessageKind::from_template_id(template_id) else {
        return Err(SbeError::UnknownTemplate { template_id });
    };
    let block_length = header.block_length();
    let walk = Walk { frame, kind };
    walk.root_block(block_length)?;
    match kind {
        MessageKind::Trades => {
            let root = trades::TradesStreamEventDecoder::default().wrap(buf, HEADER_LEN, block_length, version);
            let (count, end) = walk.group32(Group::Trades, root.get_limit(), TRADE_BLOCK)?;
            // The group is inside the frame now: the generated group decoder may read it.
            let mut group = root.trades_decoder();
            while let Ok(Some(index)) = group.advance() {
                if group.is_buyer_maker() == BoolEnum::NullVal {
                    return Err(SbeError::InvalidBool { index });
                }
            }
            let mut tail = root;
            let symbol = walk.symbol(end, |at| {
                tail.set_limit(at);
                tail.symbol_decoder()
            })?;
            Ok(Message::Trades(TradesEvent { root, count, symbol }))
        }
        MessageKind::BestBidAsk => {
            let root = bba::BestBidAskStreamEventDecoder::default().wrap(buf, HEADER_LEN, block_length, version);
            let mut tail = root;
            let symbol = walk.symbol(root.get_limit(), |at| {
                tail.set_limit(at);
                tail.symbol_decoder()
            })?;
            Ok(Message::BestBidAsk(BestBidAskEvent { root, symbol }))
        }
        MessageKind::DepthSnapshot => {
            let bids_at = snap::DepthSnapshotStreamEventDecoder::default().wrap(buf, HEADER_LEN, block_length, version);
            let (bid_count, bids_end) = walk.group16(Group::Bids, bids_at.get_limit(), SNAPSHOT_BID_BLOCK)?;
            let (ask_count, asks_end) = walk.group16(Group::Asks, bids_end, SNAPSHOT_ASK_BLOCK)?;
            let mut asks_at = bids_at;
            asks_at.set_limit(bids_end);
            let mut tail = bids_at;
            let symbol = walk.symbol(asks_end, |at| {
                tail.set_limit(at);
                tail.symbol_decoder()
            })?;
            Ok(Message::DepthSnapshot(DepthSnapshotEvent { bids_at, asks_at, bid_count, ask_count, symbol }))
        }
        MessageKind::DepthDiff => {
            let bids_at = diff::DepthDiffStreamEventDecoder::default().wrap(buf, HEADER_LEN, block_length, version);
            let (bid_count, bids_end) = walk.group16(Group::Bids, bids_at.get_limit(), DIFF_BID_BLOCK)?;
            let (ask_count, asks_end) = walk.group16(Group::Asks, bids_end, DIFF_ASK_BLOCK)?;
            let mut asks_at = bids_at;
            asks_at.set_limit(bids_end);
            let mut tail = bids_at;
            let symbol = walk.symbol(asks_end, |at| {
                tail.set_limit(at);
                tail.symbol_decoder()
            })?;
            Ok(Message::DepthDiff(DepthDiffEvent { bids_at, asks_at, bid_count, ask_count, symbol }))
        }
    }
}

/// The bounds checks of one frame. Offsets are computed in u64 from u16/u32 wire values, so they
/// cannot overflow (at most 2^32 × 2^16 plus a frame length).
struct Walk<'a> {
    frame: &'a [u8],
    kind: MessageKind,
}

impl<'a> Walk<'a> {
    fn fits(&self, part: Part, end: u64) -> Result<(), SbeError> {
        if end > self.frame.len() as u64 {
            return Err(SbeError::Truncated { message: self.kind, part, need: end, len: self.frame.len() });
        }
        Ok(())
    }

    /// The root block: at least the schema's length, inside the frame.
    fn root_block(&self, block_length: u16) -> Result<(), SbeError> {
        let min = self.kind.block_length();
        if block_length < min {
            return Err(SbeError::BlockTooShort { message: self.kind, part: Part::RootBlock, block_length, min });
        }
        self.fits(Part::RootBlock, HEADER_LEN as u64 + u64::from(block_length))
    }

    /// A group with a `groupSizeEncoding` header at `at`: its entry count and end.
    fn group32(&self, group: Group, at: usize, min_block: u16) -> Result<(usize, usize), SbeError> {
        self.fits(Part::GroupHeader(group), (at + dim32::ENCODED_LENGTH) as u64)?;
        let dim = GroupSizeEncodingDecoder::default().wrap(ReadBuf::new(self.frame), at);
        self.entries(group, at + dim32::ENCODED_LENGTH, dim.block_length(), u64::from(dim.num_in_group()), min_block)
    }

    /// A group with a `groupSize16Encoding` header at `at`: its entry count and end.
    fn group16(&self, group: Group, at: usize, min_block: u16) -> Result<(usize, usize), SbeError> {
        self.fits(Part::GroupHeader(group), (at + dim16::ENCODED_LENGTH) as u64)?;
        let dim = GroupSize16EncodingDecoder::default().wrap(ReadBuf::new(self.frame), at);
        self.entries(group, at + dim16::ENCODED_LENGTH, dim.block_length(), u64::from(dim.num_in_group()), min_block)
    }

    fn entries(
        &self,
        group: Group,
        start: usize,
        block_length: u16,
        count: u64,
        min_block: u16,
    ) -> Result<(usize, usize), SbeError> {
        let part = Part::GroupEntries(group);
        if block_length < min_block {
            return Err(SbeError::BlockTooShort { message: self.kind, part, block_length, min: min_block });
        }
        let end = start as u64 + count * u64::from(block_length);
        self.fits(part, end)?;
        // Both fit in usize: end is at most the frame's length, and the count at most that.
        Ok((count as usize, end as usize))
    }

    /// The `symbol` var-data at `at`, the message's last field: its length byte and bytes inside
    /// the frame, UTF-8, and the frame's end. `read_length` is the generated decoder's
    /// `symbol_decoder` positioned at `at`, giving the bytes' offset and length.
    // Inlined always: a call of its own for the one field every message ends with was about 20
    // instructions an SBE trade (benches/sbe.rs, callgrind).
    #[inline(always)]
    fn symbol(&self, at: usize, read_length: impl FnOnce(usize) -> (usize, usize)) -> Result<&'a str, SbeError> {
        self.fits(Part::SymbolLength, at as u64 + 1)?;
        let (offset, len) = read_length(at);
        let end = offset + len;
        let Some(bytes) = self.frame.get(offset..end) else {
            return Err(SbeError::Truncated {
                message: self.kind,
                part: Part::Symbol,
                need: end as u64,
                len: self.frame.len(),
            });
        };
        // The symbol ends the frame (checked next, after its text): a short one is checked in the
        // frame's last word.
        let text = if end == self.frame.len() { utf8_tail(self.frame, offset) } else { utf8(bytes) };
        let symbol = text.ok_or(SbeError::SymbolNotUtf8 { message: self.kind })?;
        if end != self.frame.len() {
            return Err(SbeError::TrailingBytes { message: self.kind, extra: self.frame.len() - end });
        }
        Ok(symbol)
    }
}

/// `bytes` as text if they are UTF-8. Binance's symbols are ASCII: checked inline (a word at a
/// time from 8 bytes, a byte at a time below), where the `str::from_utf8` call cost about 110 of
/// an SBE trade's 3,175; anything else takes the full check.
#[inline]
fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        Some(unsafe { core::str::from_utf8_unchecked(bytes) })
    } else {
        core::str::from_utf8(bytes).ok()
    }
}

/// `frame[start..]` as text if it is UTF-8 ([`utf8`]). A text of 1 to 8 bytes (`BTCUSDT` and most
/// symbols) in a frame of at least 8 (every SBE frame: its header alone is 8) is checked in one
/// word ([`tail_is_ascii`]), where [`utf8`] goes a byte at a time below 8 bytes (about 30
/// instructions for `BTCUSDT`); anything else, or a text that is not ASCII, takes [`utf8`].
#[inline]
fn utf8_tail(frame: &[u8], start: usize) -> Option<&str> {
    let bytes = frame.get(start..)?;
    if tail_is_ascii(frame, bytes.len()) {
        // SAFETY: ASCII is UTF-8.
        return Some(unsafe { core::str::from_utf8_unchecked(bytes) });
    }
    utf8(bytes)
}

/// Whether the last `n` bytes of `frame` are ASCII, read as the frame's last word with the bytes
/// before them masked off; false when `n` is not 1 to 8 or the frame is shorter than a word (the
/// caller then checks the long way).
#[inline]
fn tail_is_ascii(frame: &[u8], n: usize) -> bool {
    match (n, frame.last_chunk::<8>()) {
        // Little-endian: the last `n` bytes are the word's top `n`.
        (1..=8, Some(last)) => u64::from_le_bytes(*last) & (u64::MAX << (8 * (8 - n))) & 0x8080_8080_8080_8080 == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{tail_is_ascii, utf8, utf8_tail};

    /// ASCII texts of every length up to `max` (the empty one too), and each with one non-ASCII
    /// byte (a continuation byte, an invalid one, a lead byte without its follower) at every place.
    fn ascii_and_one_bad_byte(max: usize) -> Vec<Vec<u8>> {
        let mut cases = Vec::new();
        for len in 0..=max {
            let ascii: Vec<u8> = (0..len).map(|i| b'A' + (i % 26) as u8).collect();
            for at in 0..len {
                for bad in [0x80u8, 0xff, 0xc3] {
                    let mut b = ascii.clone();
                    b[at] = bad;
                    cases.push(b);
                }
            }
            cases.push(ascii);
        }
        cases
    }

    /// The ASCII shortcut answers what `str::from_utf8` answers, at every length a word-wide
    /// check treats differently.
    #[test]
    fn utf8_is_from_utf8() {
        let mut cases: Vec<Vec<u8>> = vec!["币安人生USDT".into(), vec![0xe5, 0xb8], vec![0xff], vec![0x80]];
        cases.extend(ascii_and_one_bad_byte(24));
        for b in &cases {
            assert_eq!(utf8(b), core::str::from_utf8(b).ok(), "{b:?}");
        }
    }

    /// The frame's-last-word check answers what `str::from_utf8` answers for the frame's tail
    /// from every start, with non-ASCII bytes just before it and in it, and for valid non-ASCII
    /// text (which the long way must accept); the word check itself says ASCII exactly when the
    /// tail it covers is, whatever comes before (a mask too wide would refuse, and the long way
    /// hide it).
    #[test]
    fn utf8_tail_is_from_utf8() {
        let mut frames = ascii_and_one_bad_byte(20);
        for text in ["\u{e9}", "\u{5e01}\u{5b89}", "\u{5e01}\u{5b89}\u{4eba}\u{751f}USDT", "A\u{e9}"] {
            for header in [&b""[..], b"\xff\xff\xff\xff\xff\xff\xff\xff", b"abcdefgh"] {
                frames.push([header, text.as_bytes()].concat());
            }
        }
        for frame in &frames {
            for start in 0..=frame.len() + 1 {
                let want = frame.get(start..).and_then(|b| core::str::from_utf8(b).ok());
                assert_eq!(utf8_tail(frame, start), want, "{frame:?} from {start}");
                let n = frame.len().saturating_sub(start);
                let word = (1..=8).contains(&n) && frame.len() >= 8 && frame[start..].is_ascii();
                assert_eq!(tail_is_ascii(frame, n), word, "{frame:?}: the last {n} bytes");
            }
        }
    }
}
