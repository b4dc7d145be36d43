//! Why a frame was refused. Every refusal names what was wrong and where, and maps to a short,
//! stable label ([`SbeError::kind`]) for the counter the ingester keeps per reason.

use crate::event::MessageKind;

/// The part of a frame a length check was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The message's fixed-size root block (header `blockLength` bytes).
    RootBlock,
    /// A repeating group's dimension header (`blockLength` + `numInGroup`).
    GroupHeader(Group),
    /// A repeating group's entries (`numInGroup` × its `blockLength`).
    GroupEntries(Group),
    /// The one-byte length of the `symbol` var-data.
    SymbolLength,
    /// The `symbol` var-data's bytes.
    Symbol,
}

/// The repeating groups of the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// `TradesStreamEvent.trades`.
    Trades,
    /// `bids` of a depth snapshot or diff.
    Bids,
    /// `asks` of a depth snapshot or diff.
    Asks,
}

/// A frame [`decode`](crate::decode) refused. Nothing of the frame was read past its end and
/// nothing was guessed: an unknown schema, version or template is refused, not skipped over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SbeError {
    /// Shorter than the 8-byte message header.
    #[error("SBE frame of {len} bytes is shorter than the {need}-byte message header")]
    ShortHeader {
        /// The frame's length.
        len: usize,
        /// The header's length.
        need: usize,
    },
    /// The header's schema id is not Binance's stream schema.
    #[error("SBE schema id {schema_id} is not the stream schema's ({expected})")]
    UnknownSchema {
        /// The id in the header.
        schema_id: u16,
        /// The id of the schema this decoder was generated from.
        expected: u16,
    },
    /// The header's schema version is not the one this decoder was generated from.
    #[error("SBE schema version {version} is not the version this decoder was generated from ({expected})")]
    UnknownVersion {
        /// The version in the header.
        version: u16,
        /// The version of the schema this decoder was generated from.
        expected: u16,
    },
    /// The header's template id is no message of the schema.
    #[error("SBE template id {template_id} is no message of the stream schema")]
    UnknownTemplate {
        /// The id in the header.
        template_id: u16,
    },
    /// A block length on the wire is shorter than the schema's fields need: reading them would run
    /// into the next part of the frame.
    #[error("{message:?}: {part:?} block length {block_length} is shorter than the schema's {min}")]
    BlockTooShort {
        /// The message.
        message: MessageKind,
        /// [`Part::RootBlock`] or the group's [`Part::GroupEntries`].
        part: Part,
        /// The length on the wire.
        block_length: u16,
        /// The schema's length.
        min: u16,
    },
    /// The frame ends before a part its own lengths announce.
    #[error("{message:?} frame of {len} bytes is truncated: {part:?} needs {need} bytes")]
    Truncated {
        /// The message.
        message: MessageKind,
        /// The part that does not fit.
        part: Part,
        /// The frame length that part needs (saturated: lengths on the wire are hostile).
        need: u64,
        /// The frame's length.
        len: usize,
    },
    /// A trade's `isBuyerMaker` is neither 0 (False) nor 1 (True).
    #[error("trade {index} of the event: isBuyerMaker is neither False (0) nor True (1)")]
    InvalidBool {
        /// The trade's position in the event's group.
        index: usize,
    },
    /// The `symbol` is not UTF-8.
    #[error("{message:?}: the symbol is not UTF-8")]
    SymbolNotUtf8 {
        /// The message.
        message: MessageKind,
    },
    /// Bytes follow the message's last field: one binary frame carries one message.
    #[error("{message:?}: {extra} bytes after the message's end")]
    TrailingBytes {
        /// The message.
        message: MessageKind,
        /// How many.
        extra: usize,
    },
}

impl SbeError {
    /// A short, stable label of the reason, for a counter (e.g. a Prometheus `reason` label).
    pub const fn kind(&self) -> &'static str {
        match self {
            SbeError::ShortHeader { .. } => "short_header",
            SbeError::UnknownSchema { .. } => "unknown_schema",
            SbeError::UnknownVersion { .. } => "unknown_version",
            SbeError::UnknownTemplate { .. } => "unknown_template",
            SbeError::BlockTooShort { .. } => "block_too_short",
            SbeError::Truncated { .. } => "truncated",
            SbeError::InvalidBool { .. } => "invalid_bool",
            SbeError::SymbolNotUtf8 { .. } => "symbol_not_utf8",
            SbeError::TrailingBytes { .. } => "trailing_bytes",
        }
    }
}
